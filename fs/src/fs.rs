//! The filesystem core, independent of FUSE: a [`Model`] for what readers
//! see and what is unsynced, and a backing directory (`Backing`) for what is durable.
//!
//! Invariants:
//! * Effects returned by a durability point (fsync, fsyncdir, sync-all) are
//!   applied to the backing store **before** the call returns, so a caller
//!   that saw fsync succeed has its data in `BACKING`.
//! * `sync` (a `RwLock`) orders the store against reads: a read plans its
//!   [`Segment::Base`] pieces and fills them under the read lock; durability
//!   points and cuts take the write lock around "model call + apply", so a
//!   read never sees a base the model counts as durable before the store
//!   holds it.
//! * After [`DuraFs::cut`] every call fails with `EIO` ([`FsError::Cut`]).
//! * The root entry of the control file is reserved
//!   ([`ControlFile::is_entry`]; in `BACKING` the same name holds the
//!   store's bookkeeping): creating, removing, renaming or linking it fails
//!   with `EPERM`.

use crate::backing::{Backing, BackingError, BackingOptions, META_DIR};
use crate::control::ControlFile;
use crate::model::crash::{CrashOptions, CrashState, Policy, crash_state};
use crate::model::{
    Attrs, Config, Effect, Fallocate, FsError, FsyncFailure, Ino, Kind, Model, Name, PendingOp,
    Persistence, RenameFlags, Report, Segment, SetAttrs, Stat,
};
use bytes::Bytes;
use parking_lot::Mutex;
use std::fmt;
use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use store::Store;

pub(crate) mod caller;
pub mod degraded;
mod errseq;
pub(crate) mod faults;
mod hooks;
mod order;
mod reclaim;
mod statfs;
mod store;
mod summary;
mod time;
mod unmount;
mod xattr;

pub use time::{now, to_system_time, to_timestamp};

use crate::trace::{Applied, ApplyError, Data, Text, TraceOp};
use hooks::Hooks;
pub use hooks::{MAX_MARK, Tripwire};
pub use statfs::StatFs;
use summary::Loss;
pub use summary::{CutSummary, LOST_LISTED};

/// A failed call: a model error, or the backing store failing.
#[derive(Debug)]
pub enum Error {
    /// The model refused the call (its errno: [`FsError::errno`]).
    Fs(FsError),
    /// The backing directory failed; reported as `EIO` or, for a full or
    /// read-only backing filesystem, as that ([`Error::errno`]).
    Backing(io::Error),
    /// A fault ([`crate::faults`]) failed the call with this errno.
    Fault(i32),
    /// An fsync failed writing back the file (`fsync-fail`; `EIO`).
    WritebackFailed,
}

impl Error {
    /// The errno for the kernel (model errors: [`FsError::errno`]).
    ///
    /// A backing failure is `EIO`, except the ones a program can act on and
    /// a real filesystem reports as themselves: the backing filesystem is
    /// full (`ENOSPC`), over quota (`EDQUOT`), cannot hold a file that large
    /// (`EFBIG`) or is read-only (`EROFS`) pass through unchanged.
    pub fn errno(&self) -> i32 {
        match self {
            Error::Fs(e) => e.errno(),
            Error::Fault(errno) => *errno,
            Error::WritebackFailed => libc::EIO,
            Error::Backing(e) => match e.raw_os_error() {
                Some(n @ (libc::ENOSPC | libc::EDQUOT | libc::EFBIG | libc::EROFS)) => n,
                _ => libc::EIO,
            },
        }
    }
}

impl From<FsError> for Error {
    fn from(e: FsError) -> Self {
        Error::Fs(e)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Fs(e) => write!(f, "{e}"),
            Error::Backing(e) => write!(f, "backing store: {e}"),
            Error::Fault(errno) => write!(
                f,
                "{} injected by a fault",
                crate::faults::errno_name(*errno)
            ),
            Error::WritebackFailed => f.write_str("writing the file back failed (fsync-fail)"),
        }
    }
}

impl std::error::Error for Error {}

/// Result alias for [`DuraFs`] calls.
pub type Result<T> = std::result::Result<T, Error>;

/// Default [`FsOptions::dirty_limit`]: 1 GiB.
pub const DEFAULT_DIRTY_LIMIT: u64 = 1 << 30;

/// Settings of a volume.
#[derive(Clone, Copy, Debug)]
pub struct FsOptions {
    pub persistence: Persistence,
    /// fsync the backing directory after each durability point.
    pub real_fsync: bool,
    /// Unsynced bytes past which the oldest dirty data is written back and
    /// becomes durable, as a kernel under memory pressure does.
    pub dirty_limit: u64,
    /// What follows an fsync that an `fsync-fail` fault fails: which
    /// filesystem's semantics (`docs/faults.md`).
    pub fsync_failure: FsyncFailure,
}

impl Default for FsOptions {
    fn default() -> Self {
        FsOptions {
            persistence: Persistence::default(),
            real_fsync: false,
            dirty_limit: DEFAULT_DIRTY_LIMIT,
            fsync_failure: FsyncFailure::Ext4,
        }
    }
}

/// Counters of a volume, reported with the status.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct VolumeInfo {
    /// The process serving the volume.
    pub pid: u32,
    pub backing: String,
    pub model: String,
    /// The semantics of a failed fsync (`fsync-fail` faults).
    #[serde(default)]
    pub fsync_failure: String,
    pub real_fsync: bool,
    pub dirty_limit: u64,
    /// Unsynced bytes in memory (overwritten bytes counted again).
    pub dirty_bytes: u64,
    /// Files written back because the dirty limit was passed.
    pub writebacks: u64,
    /// Bytes those writebacks made durable.
    pub written_back_bytes: u64,
    /// fsyncs of `BACKING` made (`real_fsync`).
    pub backing_fsyncs: u64,
    /// The power was cut: the volume answers `EIO` until the mount is gone.
    #[serde(default)]
    pub cut: bool,
    /// A journal failure degraded the volume (read-only, shut down).
    #[serde(default)]
    pub degraded: Option<String>,
    /// How requests travel: `dev` or `uring` (`durafs::transport`).
    #[serde(default)]
    pub transport: String,
}

/// One durafs volume.
#[derive(Debug)]
pub struct DuraFs {
    model: Model,
    /// The durable store: `BACKING`, or memory in unit tests (`store`).
    store: Box<dyn Store>,
    opts: FsOptions,
    /// Reads of the store against the calls that change it (`order`).
    store_order: order::StoreOrder,
    cut: Mutex<Option<CutSummary>>,
    writebacks: AtomicU64,
    written_back_bytes: AtomicU64,
    hooks: Hooks,
    faults: faults::FaultState,
    /// Which open descriptions learn an fsync failure (`errseq`).
    errseq: errseq::ErrSeq,
    /// Why the sync at unmount failed (module `unmount`).
    unmount_failure: Mutex<Option<String>>,
    /// The extended attribute namespaces `BACKING` holds.
    xattr_support: crate::backing::xattrs::Support,
}

fn backing_err(what: &str, e: io::Error) -> Error {
    log::error!("durafs: {what}: backing store failed: {e}");
    Error::Backing(e)
}

/// An operation gave back something else than its kind does
/// ([`TraceOp::apply`]): a bug, reported as `EIO`, never a panic.
fn internal(want: &str, got: Applied) -> Error {
    log::error!("durafs: internal error: expected {want}, the operation gave {got:?}");
    Error::Backing(io::Error::other("internal error"))
}

impl DuraFs {
    /// Opens the backing directory `path` (creating it) and starts a model
    /// whose durable and live views are its content.
    pub fn open(path: &Path, opts: FsOptions) -> std::result::Result<DuraFs, BackingError> {
        let (backing, image) = Backing::open(
            path,
            BackingOptions {
                real_fsync: opts.real_fsync,
            },
        )?;
        let default = Config::default();
        let scratch = backing.root().join(META_DIR).join("tmp");
        let max_file_size = match crate::backing::limits::max_file_size(&scratch) {
            Ok(m) => m.min(default.max_file_size),
            Err(e) => {
                log::warn!(
                    "durafs: probing the largest file {}: {e}",
                    scratch.display()
                );
                default.max_file_size
            }
        };
        // IMPORTANT: only the namespaces the backing filesystem holds, or a
        // setxattr is accepted that no fsync can make durable.
        let xattr_support =
            crate::backing::xattrs::probe(&scratch).map_err(|e| BackingError::Unsupported {
                path: path.to_path_buf(),
                what: format!("probing extended attributes: {e}"),
            })?;
        if !xattr_support.user {
            log::warn!("durafs: the backing filesystem has no user.* xattrs: setxattr refused");
        }
        // IMPORTANT: no larger than the backing filesystem holds, or a write
        // is accepted that no fsync can make durable.
        let cfg = Config {
            persistence: opts.persistence,
            max_file_size,
        };
        let model = Model::from_image(cfg, &image).map_err(|what| BackingError::Unsupported {
            path: path.to_path_buf(),
            what,
        })?;
        Ok(DuraFs::over(model, Box::new(backing), opts, xattr_support))
    }

    /// A volume of `model` over `store`.
    fn over(
        model: Model,
        store: Box<dyn Store>,
        opts: FsOptions,
        xattr_support: crate::backing::xattrs::Support,
    ) -> DuraFs {
        DuraFs {
            model,
            store,
            opts,
            store_order: order::StoreOrder::default(),
            cut: Mutex::new(None),
            writebacks: AtomicU64::new(0),
            written_back_bytes: AtomicU64::new(0),
            hooks: Hooks::default(),
            faults: faults::FaultState::default(),
            errseq: errseq::ErrSeq::default(),
            unmount_failure: Mutex::new(None),
            xattr_support,
        }
    }

    /// The model (for reports and tests).
    pub fn model(&self) -> &Model {
        &self.model
    }

    /// The backing directory (`None` for a volume in memory).
    pub fn backing_root(&self) -> Option<&Path> {
        self.store.root()
    }

    /// The settings the volume was opened with.
    pub fn options(&self) -> FsOptions {
        self.opts
    }

    /// Settings and counters, for the status.
    pub fn info(&self) -> VolumeInfo {
        VolumeInfo {
            pid: std::process::id(),
            backing: self
                .store
                .root()
                .map_or_else(|| "<memory>".to_string(), |r| r.display().to_string()),
            model: self.opts.persistence.to_string(),
            fsync_failure: self.opts.fsync_failure.to_string(),
            real_fsync: self.opts.real_fsync,
            dirty_limit: self.opts.dirty_limit,
            dirty_bytes: self.model.dirty_bytes(),
            writebacks: self.writebacks.load(Ordering::Relaxed),
            written_back_bytes: self.written_back_bytes.load(Ordering::Relaxed),
            backing_fsyncs: self.store.fsyncs(),
            cut: self.model.is_cut(),
            degraded: self.degraded().map(|d| d.describe().to_string()),
            transport: self.transport().to_string(),
        }
    }

    /// True once the power was cut.
    pub fn is_cut(&self) -> bool {
        self.model.is_cut()
    }

    /// Every inode the model knows (for invalidating kernel caches).
    pub fn inodes(&self) -> Vec<Ino> {
        self.model.inodes()
    }

    /// Refuses the control file's name ([`ControlFile::is_entry`] owns
    /// the reservation): nothing may be created, linked or renamed there.
    fn check_name(parent: Ino, name: &[u8]) -> Result<()> {
        if ControlFile::is_entry(parent, name) {
            return Err(FsError::NotPermitted.into());
        }
        Ok(())
    }

    /// Applies durability effects (the caller is alone with the store:
    /// `order`).
    fn apply(&self, what: &str, effects: &[Effect]) -> Result<()> {
        self.store.apply(effects).map_err(|e| backing_err(what, e))
    }

    /// Runs operation `op` under the hooks ([`DuraFs::observed`]) through
    /// [`TraceOp::apply`], the code replay runs too. Durability points run
    /// alone with the store and then reclaim orphans; a writeback runs alone
    /// with it.
    fn run(&self, op: TraceOp) -> Result<Applied> {
        self.observed(op, |op| {
            let what = op.name();
            let apply = || {
                let mut store = |e: &[Effect]| self.apply(what, e);
                op.apply(&self.model, &mut store).map_err(|e| match e {
                    ApplyError::Model(e) => Error::Fs(e),
                    ApplyError::Store(e) => e,
                })
            };
            match op {
                TraceOp::Writeback { .. } => {
                    let _g = self.store_order.applying();
                    apply()
                }
                _ if op.is_persistence_point() => self.durability_point(apply),
                _ => apply(),
            }
        })
    }

    /// [`DuraFs::run`] of an operation that gives back the inode's state.
    fn run_stat(&self, op: TraceOp) -> Result<Stat> {
        match self.run(op)? {
            Applied::Stat(st) => Ok(st),
            other => Err(internal("a stat", other)),
        }
    }

    /// [`DuraFs::run`] of an operation that gives back nothing.
    fn run_done(&self, op: TraceOp) -> Result<()> {
        self.run(op).map(|_| ())
    }

    /// The entry `name` of directory `parent`.
    pub fn lookup(&self, parent: Ino, name: &[u8]) -> Result<Stat> {
        self.check_reads()?;
        Ok(self.model.lookup(parent, name)?)
    }

    /// The live attributes of `ino`.
    pub fn getattr(&self, ino: Ino) -> Result<Stat> {
        self.check_reads()?;
        Ok(self.model.getattr(ino)?)
    }

    /// Changes the attributes `set` names (a size is a truncate).
    pub fn setattr(&self, ino: Ino, set: SetAttrs) -> Result<Stat> {
        self.run_stat(TraceOp::Setattr { ino, set, t: now() })
    }

    /// Creates a file, directory, symlink or special file. In a set-group-ID
    /// directory the new entry takes the directory's group, and a new
    /// directory the set-group-ID bit too (as every Unix filesystem).
    pub fn create(
        &self,
        parent: Ino,
        name: &[u8],
        kind: Kind,
        attrs: Attrs,
        target: Option<Bytes>,
    ) -> Result<Stat> {
        Self::check_name(parent, name)?;
        let t = now();
        let mut attrs = attrs;
        let dir = self.model.getattr(parent)?.attrs;
        if dir.mode & libc::S_ISGID != 0 {
            attrs.gid = dir.gid;
            if kind == Kind::Dir {
                attrs.mode |= libc::S_ISGID;
            }
        }
        let attrs = Attrs {
            atime: t,
            mtime: t,
            ctime: t,
            ..attrs
        };
        self.run_stat(TraceOp::Create {
            parent,
            name: Text(name.to_vec()),
            kind,
            attrs,
            target: target.map(Data),
            ino: 0,
        })
    }

    /// A hard link of `ino` as `newname` in `newparent`.
    pub fn link(&self, ino: Ino, newparent: Ino, newname: &[u8]) -> Result<Stat> {
        Self::check_name(newparent, newname)?;
        self.run_stat(TraceOp::Link {
            ino,
            newparent,
            newname: Text(newname.to_vec()),
            t: now(),
        })
    }

    /// Removes the non-directory entry `name` of `parent`.
    pub fn unlink(&self, parent: Ino, name: &[u8]) -> Result<()> {
        Self::check_name(parent, name)?;
        self.run_done(TraceOp::Unlink {
            parent,
            name: Text(name.to_vec()),
            t: now(),
        })
    }

    /// Removes the empty directory `name` of `parent`.
    pub fn rmdir(&self, parent: Ino, name: &[u8]) -> Result<()> {
        Self::check_name(parent, name)?;
        self.run_done(TraceOp::Rmdir {
            parent,
            name: Text(name.to_vec()),
            t: now(),
        })
    }

    /// `renameat2(2)`: `name` in `parent` to `newname` in `newparent`, with
    /// `RENAME_NOREPLACE` or `RENAME_EXCHANGE` as `flags` say.
    pub fn rename(
        &self,
        parent: Ino,
        name: &[u8],
        newparent: Ino,
        newname: &[u8],
        flags: RenameFlags,
    ) -> Result<()> {
        Self::check_name(parent, name)?;
        Self::check_name(newparent, newname)?;
        self.run_done(TraceOp::Rename {
            parent,
            name: Text(name.to_vec()),
            newparent,
            newname: Text(newname.to_vec()),
            noreplace: flags.noreplace,
            exchange: flags.exchange,
            t: now(),
        })
    }

    /// The target of symlink `ino`.
    pub fn readlink(&self, ino: Ino) -> Result<Bytes> {
        self.check_reads()?;
        Ok(self.model.readlink(ino)?)
    }

    /// Entries of `dir`, with `.` and `..` first.
    pub fn readdir(&self, dir: Ino) -> Result<Vec<(Name, Ino, Kind)>> {
        self.check_reads()?;
        let entries = self.model.readdir(dir)?;
        let parent = self.model.parent_of(dir)?;
        let mut out = Vec::with_capacity(entries.len() + 2);
        out.push((b".".to_vec(), dir, Kind::Dir));
        out.push((b"..".to_vec(), parent, Kind::Dir));
        out.extend(entries);
        Ok(out)
    }

    /// Entries of `dir` with their attributes, `.` and `..` first (an entry
    /// removed while listing is skipped).
    pub fn readdir_plus(&self, dir: Ino) -> Result<Vec<(Name, Stat)>> {
        let entries = self.readdir(dir)?;
        let mut out = Vec::with_capacity(entries.len());
        for (name, ino, _) in entries {
            match self.model.getattr(ino) {
                Ok(st) => out.push((name, st)),
                Err(FsError::NotFound) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(out)
    }

    /// Reads up to `len` bytes at `offset` (short at the end of the file).
    pub fn read(&self, ino: Ino, offset: u64, len: u32) -> Result<Vec<u8>> {
        self.check_reads()?;
        let _g = self.store_order.reading();
        let segs = self.model.read(ino, offset, u64::from(len))?;
        let mut out = Vec::with_capacity(segs.iter().map(|s| s.len() as usize).sum());
        for seg in segs {
            match seg {
                Segment::Data(b) => out.extend_from_slice(&b),
                Segment::Zero(n) => out.resize(out.len() + n as usize, 0),
                Segment::Base { offset, len } => self
                    .store
                    .read(ino, offset, len, &mut out)
                    .map_err(|e| backing_err("read", e))?,
            }
        }
        Ok(out)
    }

    /// Writes `data` at `offset` (live at once, durable at its fsync);
    /// past the dirty limit the oldest dirty files are written back.
    pub fn write(&self, ino: Ino, offset: u64, data: &[u8]) -> Result<u32> {
        let n = match self.run(TraceOp::Write {
            ino,
            offset,
            data: Data(Bytes::copy_from_slice(data)),
            t: now(),
        })? {
            Applied::Written(n) => n,
            other => return Err(internal("a byte count", other)),
        };
        if self.model.dirty_bytes() > self.opts.dirty_limit {
            match self.write_back() {
                // The write itself took effect. As a kernel's background
                // writeback, a failed one keeps the data unsynced (the
                // model restored it) and the file's next fsync reports it.
                Err(Error::Backing(e)) => {
                    log::warn!("durafs: writeback past the dirty limit failed: {e}");
                }
                other => other?,
            }
        }
        Ok(n)
    }

    /// Writes back the oldest dirty files until the unsynced bytes are
    /// within the dirty limit; each becomes durable as by fdatasync.
    fn write_back(&self) -> Result<()> {
        while self.model.dirty_bytes() > self.opts.dirty_limit {
            let before = self.model.dirty_bytes();
            // IMPORTANT: applied under the inode's lock, which restores the
            // inode if the backing store fails.
            let Applied::WroteBack(Some(ino)) = self.run(TraceOp::Writeback { ino: 0 })? else {
                break;
            };
            let bytes = before.saturating_sub(self.model.dirty_bytes());
            self.writebacks.fetch_add(1, Ordering::Relaxed);
            self.written_back_bytes.fetch_add(bytes, Ordering::Relaxed);
            log::info!(
                "durafs: dirty limit {} passed: wrote back {bytes} bytes of inode {ino}",
                self.opts.dirty_limit
            );
        }
        Ok(())
    }

    /// `fallocate(2)` in one of the modes durafs implements.
    pub fn fallocate(&self, ino: Ino, offset: u64, len: u64, mode: Fallocate) -> Result<()> {
        self.run_done(TraceOp::Fallocate {
            ino,
            offset,
            len,
            mode,
            t: now(),
        })
    }

    /// The last close of an open file description of `ino` (FUSE
    /// `release`, which the kernel sends after the close returned). Only
    /// the first close after a truncate to size 0 changes anything (ext4's
    /// `auto_da_alloc`, [`crate::model::Model::release`]), and only that
    /// one is recorded. Never fails: after a cut it does nothing.
    pub fn release(&self, ino: Ino) {
        if let Err(e) = self.run(TraceOp::Close { ino }) {
            log::debug!("close of #{ino}: {e}");
        }
    }

    /// fsync / fdatasync: returns once the effects are in the backing
    /// store. A failed fsync makes nothing of the file durable in the model
    /// (the backing store may hold part of it, as a disk may after an fsync
    /// that failed).
    pub fn fsync(&self, ino: Ino, datasync: bool) -> Result<()> {
        // IMPORTANT: applied under the inode's lock; if the backing store
        // fails (ENOSPC) the file's unsynced bytes stay live and pending, and
        // the fsync reports the error.
        self.run_done(TraceOp::Fsync { ino, datasync })
    }

    /// fsync of a directory.
    pub fn fsyncdir(&self, dir: Ino) -> Result<()> {
        // IMPORTANT: applied under the namespace lock; if the backing store
        // fails nothing is committed.
        self.run_done(TraceOp::Fsyncdir { dir })
    }

    /// Makes everything durable (`sync(2)`).
    pub fn sync(&self) -> Result<()> {
        // IMPORTANT: names, then each inode, each put back if the backing
        // store fails it.
        self.run_done(TraceOp::Sync)
    }

    /// The kernel dropped its references to `ino`.
    pub fn forget(&self, ino: Ino) {
        if self.model.forget(ino) {
            self.errseq.forget(ino);
            self.reclaim_forgotten(ino);
        }
    }

    /// The exact unsynced report.
    pub fn status(&self) -> Report {
        self.model.report()
    }

    /// Simulates a power cut: stops the model, applies the effects of the
    /// pending operations that survive under `opts` to the backing store,
    /// and deletes the orphans. Every later call fails with `EIO`; the
    /// backing directory is then what a remount after the crash finds.
    pub fn cut(&self, opts: CrashOptions) -> Result<CutSummary> {
        let opts = opts.under(self.model.config().persistence);
        self.cut_with(opts.policy.name(), |pending| crash_state(pending, &opts))
    }

    /// As [`DuraFs::cut`], with the crash state chosen by `choose` from the
    /// pending operations (e.g. one of [`crate::model::enumerate::enumerate`]);
    /// `label` names the choice in the summary.
    pub fn cut_with(
        &self,
        label: &str,
        choose: impl FnOnce(&[PendingOp]) -> CrashState,
    ) -> Result<CutSummary> {
        let _g = self.store_order.applying();
        let mut done = self.cut.lock();
        if let Some(prev) = done.as_ref() {
            log::warn!("durafs: cut requested twice; the first cut stands");
            return Ok(prev.clone());
        }
        let started = std::time::Instant::now();
        let pending = self.model.cut();
        // Calls frozen by a trigger may go on now: the model refuses them.
        self.hooks.gate.release();
        let collected = started.elapsed();
        let state = self.forced(&pending, choose(&pending));
        // IMPORTANT: a degraded volume persists nothing more (`degraded`).
        let state = match self.degraded() {
            Some(d) => CrashState {
                kept: Vec::new(),
                description: format!("nothing unsynced survives: {}", d.describe()),
                ..state
            },
            None => state,
        };
        let effects = state.effects(&pending);
        let dropped = state.dropped();
        let loss = Loss::of(&pending, &state, |op| self.model.describe(op));
        let chosen = started.elapsed();
        self.apply("cut", &effects)?;
        let applied = started.elapsed();
        self.store
            .after_crash()
            .map_err(|e| backing_err("cut: settling the backing store", e))?;
        log::debug!(
            "durafs: cut of {} pending operations: collected at {:?}, state and loss at {:?}, \
             applied at {:?}, settled at {:?}",
            pending.len(),
            collected,
            chosen,
            applied,
            started.elapsed()
        );
        // Nothing touches BACKING after the cut: a remount may take it over
        // while this volume still answers `EIO` to files left open.
        self.store.release();
        let summary = CutSummary {
            policy: label.to_string(),
            seed: state.seed,
            description: state.description.clone(),
            ops_pending: pending.len(),
            ops_lost: dropped.len(),
            ops_partial: loss.partial,
            bytes_lost: loss.bytes,
            files_lost: loss.files.len(),
            names_lost: loss.names,
            lost: loss.listed,
        };
        *done = Some(summary.clone());
        Ok(summary)
    }

    /// The operations not yet durable, in order (for crash-state search).
    pub fn pending(&self) -> Vec<PendingOp> {
        self.model.pending_ops()
    }

    /// A drop-all cut with seed 0.
    pub fn cut_drop_all(&self) -> Result<CutSummary> {
        self.cut(CrashOptions {
            policy: Policy::DropAll,
            ..CrashOptions::default()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ROOT;

    pub(super) fn attrs() -> Attrs {
        Attrs {
            mode: 0o644,
            ..Attrs::default()
        }
    }

    #[test]
    fn fsynced_prefix_survives_a_drop_all_cut_and_reads_fill_from_backing() {
        let dir = tempfile::tempdir().unwrap();
        let fs = DuraFs::open(dir.path(), FsOptions::default()).unwrap();
        let f = fs
            .create(ROOT, b"f", Kind::File, attrs(), None)
            .unwrap()
            .ino;
        fs.write(f, 0, b"durable-part").unwrap();
        fs.fsync(f, false).unwrap();
        fs.fsyncdir(ROOT).unwrap();
        fs.write(f, 12, b"-unsynced-tail").unwrap();
        assert_eq!(fs.read(f, 0, 100).unwrap(), b"durable-part-unsynced-tail");
        assert_eq!(
            fs.read(f, 3, 4).unwrap(),
            b"able",
            "Base segment read from the backing file"
        );
        let rep = fs.status();
        assert_eq!(rep.files.len(), 1);
        assert_eq!(rep.files[0].ranges, vec![(12, 26)]);
        let cut = fs.cut_drop_all().unwrap();
        assert_eq!((cut.ops_lost, cut.bytes_lost), (1, 14));
        assert_eq!(fs.read(f, 0, 1).unwrap_err().errno(), libc::EIO);
        drop(fs);
        let fs = DuraFs::open(dir.path(), FsOptions::default()).unwrap();
        let st = fs.lookup(ROOT, b"f").unwrap();
        assert_eq!(fs.read(st.ino, 0, 100).unwrap(), b"durable-part");
    }

    #[test]
    fn meta_dir_name_is_reserved() {
        let dir = tempfile::tempdir().unwrap();
        let fs = DuraFs::open(dir.path(), FsOptions::default()).unwrap();
        let err = fs
            .create(ROOT, META_DIR.as_bytes(), Kind::Dir, attrs(), None)
            .unwrap_err();
        assert_eq!(err.errno(), libc::EPERM);
        assert!(fs.lookup(ROOT, META_DIR.as_bytes()).is_err());
    }
}
