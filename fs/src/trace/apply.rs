//! An operation applied to the model: the one place where a [`TraceOp`]
//! changes a [`Model`]. The live mount (`DuraFs::run`) and replay
//! ([`super::replay::Replayer`]) both go through [`TraceOp::apply`], so a
//! replayed trace reaches the state the mount reached by the same code,
//! and adding an operation means adding it here, to the model, and to the
//! FUSE callback that builds it.

use super::TraceOp;
use crate::model::{Effect, FsError, Ino, Model, RenameFlags, Stat};

/// What applying an operation gave back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Applied {
    /// Nothing to report.
    Done,
    /// The inode afterwards (create, link, setattr).
    Stat(Stat),
    /// Bytes written.
    Written(u32),
    /// A close: true when it was the first after a truncate to 0, the only
    /// kind that changes anything.
    Closed(bool),
    /// A writeback: the file written back, `None` when nothing was dirty.
    WroteBack(Option<Ino>),
}

/// Why an operation failed: the model refused it, or the store did not
/// take a durability point's effects (the model is then as before).
#[derive(Debug)]
pub enum ApplyError<E> {
    Model(FsError),
    Store(E),
}

impl<E> From<FsError> for ApplyError<E> {
    fn from(e: FsError) -> Self {
        ApplyError::Model(e)
    }
}

/// Where a durability point's effects go: the store, which must have them
/// durable when it returns `Ok` (the model's locks are held meanwhile).
pub type Store<'s, E> = &'s mut dyn FnMut(&[Effect]) -> Result<(), E>;

impl TraceOp {
    /// Applies this operation to `m`. Durability points (fsync, fdatasync,
    /// a failed fsync's written pages, fsyncdir, sync, writeback) hand
    /// their effects to `store`; when it fails, nothing is committed. A
    /// mark changes nothing.
    pub fn apply<E>(&self, m: &Model, store: Store<'_, E>) -> Result<Applied, ApplyError<E>> {
        let done = |r: Result<(), E>| r.map(|()| Applied::Done).map_err(ApplyError::Store);
        Ok(match self {
            TraceOp::Create {
                parent,
                name,
                kind,
                attrs,
                target,
                ..
            } => {
                let target = target.as_ref().map(|t| t.0.clone());
                Applied::Stat(m.create(*parent, &name.0, *kind, *attrs, target)?)
            }
            TraceOp::Link {
                ino,
                newparent,
                newname,
                t,
            } => Applied::Stat(m.link(*ino, *newparent, &newname.0, *t)?),
            TraceOp::Unlink { parent, name, t } => {
                m.unlink(*parent, &name.0, *t)?;
                Applied::Done
            }
            TraceOp::Rmdir { parent, name, t } => {
                m.rmdir(*parent, &name.0, *t)?;
                Applied::Done
            }
            TraceOp::Rename {
                parent,
                name,
                newparent,
                newname,
                noreplace,
                exchange,
                t,
            } => {
                let flags = RenameFlags {
                    noreplace: *noreplace,
                    exchange: *exchange,
                };
                m.rename(*parent, &name.0, *newparent, &newname.0, flags, *t)?;
                Applied::Done
            }
            TraceOp::Setattr { ino, set, t } => Applied::Stat(m.setattr(*ino, *set, *t)?),
            TraceOp::Write {
                ino,
                offset,
                data,
                t,
            } => Applied::Written(m.write(*ino, *offset, data.0.clone(), *t)?),
            TraceOp::Fallocate {
                ino,
                offset,
                len,
                mode,
                t,
            } => {
                m.fallocate(*ino, *offset, *len, *mode, *t)?;
                Applied::Done
            }
            TraceOp::Setxattr {
                ino,
                name,
                value,
                mode,
                t,
            } => {
                m.setxattr(*ino, &name.0, value.0.clone(), *mode, *t)?;
                Applied::Done
            }
            TraceOp::Removexattr { ino, name, t } => {
                m.removexattr(*ino, &name.0, *t)?;
                Applied::Done
            }
            TraceOp::Fsync { ino, datasync } => {
                return done(m.fsync_applied(*ino, *datasync, |e| store(e))?);
            }
            TraceOp::FsyncFailed {
                ino,
                datasync,
                sem,
                seed,
            } => {
                // The model's step succeeded; the caller answers EIO.
                let r = m.fsync_failed_applied(*ino, *datasync, *sem, *seed, |e| store(e))?;
                return r.map(|_| Applied::Done).map_err(ApplyError::Store);
            }
            TraceOp::Fsyncdir { dir } => return done(m.fsyncdir_applied(*dir, |e| store(e))?),
            TraceOp::Sync => return done(m.sync_all_applied(|e| store(e))?),
            TraceOp::Writeback { .. } => match m.writeback_oldest_applied(|e| store(e))? {
                Some((ino, Ok(()))) => Applied::WroteBack(Some(ino)),
                Some((_, Err(e))) => return Err(ApplyError::Store(e)),
                None => Applied::WroteBack(None),
            },
            TraceOp::Close { ino } => Applied::Closed(m.release(*ino)),
            TraceOp::Mark { .. } | TraceOp::Fault { .. } => Applied::Done,
        })
    }

    /// Completes this description from what applying it gave back: the
    /// inode a create made, the file a writeback wrote. False when there is
    /// nothing to record (a close that changed nothing, a writeback with
    /// nothing dirty).
    pub fn complete(&mut self, applied: &Applied) -> bool {
        match (self, applied) {
            (TraceOp::Create { ino, .. }, Applied::Stat(st)) => {
                *ino = st.ino;
                true
            }
            (TraceOp::Writeback { ino }, Applied::WroteBack(done)) => match done {
                Some(i) => {
                    *ino = *i;
                    true
                }
                None => false,
            },
            (TraceOp::Close { .. }, Applied::Closed(first)) => *first,
            _ => true,
        }
    }
}
