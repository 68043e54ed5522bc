//! Replaying a trace on a fresh in-memory model: the state after any prefix
//! of the events, with its pending operations and its durable store,
//! exactly as the recording volume had them.

use super::{Event, Header, TraceError, TraceOp};
use crate::model::{
    Attrs, Config, Effect, Image, ImageInode, Kind, MemStore, Model, NewInode, PendingOp, ROOT,
    RenameFlags,
};
use std::collections::{BTreeMap, VecDeque};

/// A model and its durable store, advanced one event at a time.
#[derive(Debug)]
pub struct Replayer {
    model: Model,
    store: MemStore,
    applied: usize,
}

fn bad_header(what: impl Into<String>) -> TraceError {
    TraceError::Format {
        line: 1,
        what: what.into(),
    }
}

impl Replayer {
    /// The state the recording started from.
    pub fn new(header: &Header) -> Result<Replayer, TraceError> {
        let mut image = Image::default();
        for i in &header.inodes {
            let size = match i.kind {
                Kind::File => i.size,
                _ => 0,
            };
            image.inodes.insert(
                i.ino,
                ImageInode {
                    kind: i.kind,
                    attrs: i.attrs,
                    size,
                    target: i.target.as_ref().map(|t| t.0.clone()),
                    xattrs: i
                        .xattrs
                        .iter()
                        .map(|x| (x.name.0.clone(), x.value.0.clone()))
                        .collect(),
                },
            );
            if i.kind == Kind::Dir {
                image.entries.insert(i.ino, BTreeMap::new());
            }
        }
        for e in &header.entries {
            image
                .entries
                .get_mut(&e.dir)
                .ok_or_else(|| bad_header(format!("entry in #{}, not a directory", e.dir)))?
                .insert(e.name.0.clone(), e.ino);
        }
        let cfg = Config {
            persistence: header.model,
            ..Config::default()
        };
        let model = Model::from_image(cfg, &image).map_err(bad_header)?;

        let root_attrs = image
            .inodes
            .get(&ROOT)
            .map_or(Attrs::default(), |i| i.attrs);
        let mut store = MemStore::new(root_attrs);
        let mut queue = VecDeque::from([ROOT]);
        let mut seen = std::collections::BTreeSet::from([ROOT]);
        while let Some(dir) = queue.pop_front() {
            for (name, ino) in image.entries.get(&dir).into_iter().flatten() {
                let Some(i) = image.inodes.get(ino) else {
                    continue;
                };
                store.apply(&Effect::Link {
                    dir,
                    name: name.clone(),
                    ino: *ino,
                    init: NewInode {
                        kind: i.kind,
                        attrs: i.attrs,
                        target: i.target.clone(),
                    },
                });
                if i.kind == Kind::Dir && seen.insert(*ino) {
                    queue.push_back(*ino);
                }
            }
        }
        for i in &header.inodes {
            for x in &i.xattrs {
                store.apply(&Effect::SetXattr {
                    ino: i.ino,
                    name: x.name.0.clone(),
                    value: Some(x.value.0.clone()),
                });
            }
        }
        for i in header.inodes.iter().filter(|i| i.kind == Kind::File) {
            if let Some(d) = &i.data {
                if d.0.len() as u64 > i.size {
                    return Err(bad_header(format!(
                        "#{}: {} bytes of data for size {}",
                        i.ino,
                        d.0.len(),
                        i.size
                    )));
                }
                store.apply(&Effect::Write {
                    ino: i.ino,
                    offset: 0,
                    data: d.0.clone(),
                });
            }
            for e in &i.extents {
                if e.offset.saturating_add(e.data.0.len() as u64) > i.size {
                    return Err(bad_header(format!(
                        "#{}: {} bytes at {} for size {}",
                        i.ino,
                        e.data.0.len(),
                        e.offset,
                        i.size
                    )));
                }
                store.apply(&Effect::Write {
                    ino: i.ino,
                    offset: e.offset,
                    data: e.data.0.clone(),
                });
            }
            store.apply(&Effect::Extend {
                ino: i.ino,
                size: i.size,
            });
        }
        Ok(Replayer {
            model,
            store,
            applied: 0,
        })
    }

    /// Events applied so far.
    pub fn applied(&self) -> usize {
        self.applied
    }

    /// The live model after the applied events.
    pub fn model(&self) -> &Model {
        &self.model
    }

    /// The durable store after the applied events.
    pub fn durable(&self) -> &MemStore {
        &self.store
    }

    /// The operations not yet durable, in order.
    pub fn pending(&self) -> Vec<PendingOp> {
        self.model.pending_ops()
    }

    /// Applies the next event.
    pub fn apply(&mut self, ev: &Event) -> Result<(), TraceError> {
        let fail = |what: String| TraceError::Replay { n: ev.n, what };
        let m = &self.model;
        let effects: Vec<Effect> = match &ev.op {
            TraceOp::Create {
                parent,
                name,
                kind,
                attrs,
                target,
                ino,
            } => {
                let st = m
                    .create(
                        *parent,
                        &name.0,
                        *kind,
                        *attrs,
                        target.as_ref().map(|t| t.0.clone()),
                    )
                    .map_err(|e| fail(e.to_string()))?;
                if st.ino != *ino {
                    return Err(fail(format!(
                        "created inode #{} where the recording made #{ino}",
                        st.ino
                    )));
                }
                Vec::new()
            }
            TraceOp::Link {
                ino,
                newparent,
                newname,
                t,
            } => {
                m.link(*ino, *newparent, &newname.0, *t)
                    .map_err(|e| fail(e.to_string()))?;
                Vec::new()
            }
            TraceOp::Unlink { parent, name, t } => {
                m.unlink(*parent, &name.0, *t)
                    .map_err(|e| fail(e.to_string()))?;
                Vec::new()
            }
            TraceOp::Rmdir { parent, name, t } => {
                m.rmdir(*parent, &name.0, *t)
                    .map_err(|e| fail(e.to_string()))?;
                Vec::new()
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
                m.rename(*parent, &name.0, *newparent, &newname.0, flags, *t)
                    .map_err(|e| fail(e.to_string()))?;
                Vec::new()
            }
            TraceOp::Setattr { ino, set, t } => {
                m.setattr(*ino, *set, *t).map_err(|e| fail(e.to_string()))?;
                Vec::new()
            }
            TraceOp::Write {
                ino,
                offset,
                data,
                t,
            } => {
                m.write(*ino, *offset, data.0.clone(), *t)
                    .map_err(|e| fail(e.to_string()))?;
                Vec::new()
            }
            TraceOp::Fallocate {
                ino,
                offset,
                len,
                mode,
                t,
            } => {
                m.fallocate(*ino, *offset, *len, *mode, *t)
                    .map_err(|e| fail(e.to_string()))?;
                Vec::new()
            }
            TraceOp::Setxattr {
                ino,
                name,
                value,
                mode,
                t,
            } => {
                m.setxattr(*ino, &name.0, value.0.clone(), *mode, *t)
                    .map_err(|e| fail(e.to_string()))?;
                Vec::new()
            }
            TraceOp::Removexattr { ino, name, t } => {
                m.removexattr(*ino, &name.0, *t)
                    .map_err(|e| fail(e.to_string()))?;
                Vec::new()
            }
            TraceOp::Fsync { ino, datasync } => {
                m.fsync(*ino, *datasync).map_err(|e| fail(e.to_string()))?
            }
            TraceOp::Fsyncdir { dir } => m.fsyncdir(*dir).map_err(|e| fail(e.to_string()))?,
            TraceOp::Sync => m.sync_all().map_err(|e| fail(e.to_string()))?,
            TraceOp::Writeback { ino } => {
                match m.writeback_oldest().map_err(|e| fail(e.to_string()))? {
                    Some((i, effects)) if i == *ino => effects,
                    Some((i, _)) => {
                        return Err(fail(format!(
                            "the oldest dirty file is #{i}, the recording wrote back #{ino}"
                        )));
                    }
                    None => return Err(fail("nothing is dirty to write back".into())),
                }
            }
            TraceOp::Close { ino } => {
                m.release(*ino);
                Vec::new()
            }
            TraceOp::Mark { .. } => Vec::new(),
        };
        self.store.apply_all(&effects);
        self.applied += 1;
        Ok(())
    }
}
