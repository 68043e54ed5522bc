//! The backing store: the durable state of a durafs volume, kept as a plain
//! directory tree `BACKING` that any tool can read after an unmount.
//!
//! The layout of `BACKING` (every durable name under its own name, the
//! bookkeeping in `BACKING/.durafs/`), the kill -9 argument case by case,
//! `real_fsync`, and what a failed batch leaves are in `docs/design.md`,
//! "`BACKING`: layout and kill -9 safety"; the code below keeps them (the
//! deferred unlink of a last entry, the atomic replace through
//! `.durafs/tmp`, the undo of a failed batch in module `undo`).
//!
//! # Names
//!
//! The store keeps the *logical* durable namespace exactly as
//! [`crate::model::MemStore`] does (`dir -> name -> ino`) and the *physical*
//! one (what is on disk), and reconciles them per effect. They differ only
//! for directories: a directory can have one name on disk, yet effects can
//! give it two durable entries (the two halves of a cross-directory rename
//! committed by different fsyncdirs). Rule: a directory lives at its
//! **oldest** surviving logical entry; the other entries are "ghosts" that
//! exist only logically until the physical one is removed, when the
//! directory moves to the next one (or to the orphans). At a cut,
//! [`Backing::after_crash`] then moves each directory to the entry
//! [`crate::model::MemStore::after_crash`] keeps (the first met in a
//! breadth-first walk from the root), so a remount after a cut shows exactly
//! the model's prediction. A kill -9 of the daemon skips that step: the
//! directory is then found at its oldest entry, also a legal crash state.
//!
//! Per inode we store `(parent ino, name)` pairs, never full paths, so a
//! directory rename needs no update beneath it.
//!
//! # Locations, not paths
//!
//! Rule: no operation on `BACKING` goes through a path joined from the
//! backing root (one below 16 names of 255 bytes exceeds PATH_MAX although
//! every path inside the mount is fine). An inode resolves to a location,
//! `(open parent directory, name)` (module `loc`): directories are walked
//! one `openat(O_PATH)` per level from the root, or from
//! `.durafs/orphans/`, and cached by inode (an `O_PATH` handle follows its
//! directory across renames; the cache forgets a directory whose inode is
//! destroyed). Every system call names one component in such a directory
//! (module `at`, the only `unsafe` of the namespace code). The root, the
//! orphans and tmp directories are opened once.

mod at;
mod extents;
pub mod limits;
mod loc;
mod ns;
mod reclaim;
mod scan;
#[cfg(test)]
mod tests;
mod times;
mod undo;
pub mod xattrs;

use crate::failpoint;
use crate::fsio;
use crate::model::{Effect, Image, Ino, Kind, Name, NewInode, Timestamp};
use loc::{create_node, set_attrs};
use parking_lot::Mutex;
use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::fs::{self, File};
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

pub use reclaim::Orphan;
pub use scan::attrs_of;
use scan::{lock_store, scan};

/// Name of the bookkeeping directory at the top of `BACKING`.
pub const META_DIR: &str = ".durafs";

/// Settings of a backing store.
#[derive(Clone, Copy, Debug, Default)]
pub struct BackingOptions {
    /// fsync what each batch touched (see the module documentation).
    pub real_fsync: bool,
}

/// Why a backing directory could not be opened.
#[derive(Debug)]
pub enum BackingError {
    /// A system call on `path` failed.
    Io { path: PathBuf, source: io::Error },
    /// Something in the tree durafs cannot represent.
    Unsupported { path: PathBuf, what: String },
    /// Another durafs process serves this directory (`.durafs/lock`).
    InUse { path: PathBuf },
}

impl fmt::Display for BackingError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BackingError::Io { path, source } => write!(f, "{}: {source}", path.display()),
            BackingError::Unsupported { path, what } => write!(f, "{}: {what}", path.display()),
            BackingError::InUse { path } => write!(
                f,
                "{}: another durafs process is serving this backing directory",
                path.display()
            ),
        }
    }
}

impl std::error::Error for BackingError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            BackingError::Io { source, .. } => Some(source),
            BackingError::Unsupported { .. } | BackingError::InUse { .. } => None,
        }
    }
}

fn io_at(path: &Path) -> impl FnOnce(io::Error) -> BackingError + '_ {
    move |source| BackingError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// One inode of the store.
#[derive(Debug)]
struct NodeInfo {
    kind: Kind,
    /// Physical names (oldest first). Directories: at most one.
    phys: Vec<(Ino, Name)>,
    /// It also has the name `.durafs/orphans/<ino>`.
    /// Invariant: every inode but the root has a physical name or this.
    orphan: bool,
    /// `(atime, mtime)` the store last gave it (module `times`).
    times: Option<(Timestamp, Timestamp)>,
}

/// A directory whose entries a batch changed (for `real_fsync`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Touched {
    Dir(Ino),
    Orphans,
    Tmp,
}

/// Everything behind the store's lock.
#[derive(Debug)]
struct State {
    /// The backing root, opened once (its own path may be long).
    root_fd: loc::Dir,
    /// `.durafs/orphans/` and `.durafs/tmp/`.
    orphans_fd: loc::Dir,
    tmp_fd: loc::Dir,
    /// Resolved directories by inode (module `loc`). Behind the store's
    /// lock; a cell so that resolving needs only `&self`.
    dirs: RefCell<HashMap<Ino, loc::Dir>>,
    /// What the running batch changed in `logical` and `links` (module
    /// `undo`); `None` between batches.
    undo: Option<undo::Undo>,
    nodes: HashMap<Ino, NodeInfo>,
    /// Durable entries of every durable directory (the `MemStore` view).
    logical: HashMap<Ino, BTreeMap<Name, Ino>>,
    /// The logical entries reaching each inode, oldest first.
    links: HashMap<Ino, Vec<(Ino, Name)>>,
    /// Entries on disk of every directory.
    phys_dirs: HashMap<Ino, BTreeMap<Name, Ino>>,
    /// Logical unlinks whose physical name is removed at the end of the batch.
    stale: Vec<(Ino, Name, Ino)>,
    /// Open regular files (an fd stays valid across renames and links).
    files: HashMap<Ino, Arc<File>>,
    touched_dirs: BTreeSet<Touched>,
    touched_files: BTreeSet<Ino>,
    /// Candidates for [`Backing::orphans`] (see `reclaim`).
    orphaned: BTreeSet<Ino>,
    /// Inodes whose times the host changed since the store set them.
    disturbed: BTreeSet<Ino>,
    /// Bytes this batch put past a file's end.
    hidden: HashMap<Ino, crate::model::hidden::Hidden>,
    /// The size on disk of the file the previous effect of this batch
    /// wrote with [`Effect::Write`]. Invariant: `Some` only while every
    /// effect since that size was read was such a write of that file, so
    /// a run of writes to one file asks its size once instead of once a
    /// write (a `statx` and an `ftruncate` per 4 KiB at an fsync).
    written_size: Option<(Ino, u64)>,
    /// Times a file's size on disk was asked while applying (a `statx`).
    size_probes: u64,
}

/// The backing store over a directory. All methods take `&self`; one lock
/// serialises them (a batch is applied as a whole).
#[derive(Debug)]
pub struct Backing {
    root: PathBuf,
    opts: BackingOptions,
    state: Mutex<State>,
    /// Holds an exclusive `flock` on `.durafs/lock` until the store is
    /// dropped or [`Backing::release`]d.
    lock: Mutex<Option<scan::StoreLock>>,
    /// fsyncs of the backing directory made (`real_fsync`).
    fsyncs: AtomicU64,
}

const MAX_OPEN_FILES: usize = 512;

impl Backing {
    /// Opens (creating if missing) the backing directory `path`: deletes the
    /// orphans a previous run left, scans the tree and returns the store and
    /// the durable image (every existing file counts as durable).
    pub fn open(path: &Path, opts: BackingOptions) -> Result<(Backing, Image), BackingError> {
        Self::open_inner(path, opts, true)
    }

    /// Opens without taking the lock, to read a store back while it is
    /// still open.
    #[cfg(test)]
    pub(crate) fn open_unlocked(path: &Path) -> Result<(Backing, Image), BackingError> {
        Self::open_inner(path, BackingOptions::default(), false)
    }

    fn open_inner(
        path: &Path,
        opts: BackingOptions,
        lock: bool,
    ) -> Result<(Backing, Image), BackingError> {
        fs::create_dir_all(path).map_err(io_at(path))?;
        let root = fs::canonicalize(path).map_err(io_at(path))?;
        let meta = root.join(META_DIR);
        let root_fd = at::open_dir_path(&root).map_err(io_at(&root))?;
        let meta_fd = sub_dir(root_fd.as_fd(), META_DIR, &meta)?;
        let lock = if lock {
            Some(lock_store(&root, meta_fd.as_fd(), &meta)?)
        } else {
            None
        };
        // A reader (unlocked) must not empty the directories of the store
        // it reads back.
        let sub = |name| match lock {
            Some(_) => fresh_dir(meta_fd.as_fd(), name, &meta),
            None => sub_dir(meta_fd.as_fd(), name, &meta.join(name)),
        };
        let orphans_fd = Arc::new(sub("orphans")?);
        let tmp_fd = Arc::new(sub("tmp")?);
        let mut st = State {
            root_fd: Arc::new(root_fd),
            orphans_fd,
            tmp_fd,
            dirs: RefCell::new(HashMap::new()),
            undo: None,
            nodes: HashMap::new(),
            logical: HashMap::new(),
            links: HashMap::new(),
            phys_dirs: HashMap::new(),
            stale: Vec::new(),
            files: HashMap::new(),
            touched_dirs: BTreeSet::new(),
            touched_files: BTreeSet::new(),
            orphaned: BTreeSet::new(),
            disturbed: BTreeSet::new(),
            hidden: HashMap::new(),
            written_size: None,
            size_probes: 0,
        };
        let image = scan(&root, &mut st)?;
        if opts.real_fsync {
            at::open_dir(meta_fd.as_fd(), at::DOT)
                .and_then(|d| fsio::fsync_dir_handle(&d))
                .map_err(io_at(&meta))?;
        }
        let b = Backing {
            root,
            opts,
            state: Mutex::new(st),
            lock: Mutex::new(lock),
            fsyncs: AtomicU64::new(0),
        };
        Ok((b, image))
    }

    /// Releases the directory for another store; call only once this one
    /// will never write again (after a cut).
    pub fn release(&self) {
        self.lock.lock().take();
    }

    /// fsyncs of the backing directory made so far (0 without
    /// `real_fsync`).
    pub fn fsyncs(&self) -> u64 {
        self.fsyncs.load(Ordering::Relaxed)
    }

    /// The backing directory (canonical path).
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Applies a batch of effects (see the contract in [`crate::model::op`]),
    /// ordered as the module documentation argues.
    ///
    /// On failure the store's record of the durable names is put back as
    /// it was before the batch, as the model puts its own back, so that a
    /// retry of the same effects does the same work again (and fails again
    /// while the cause remains) instead of finding nothing to do. What the
    /// batch already did on disk stays (module `undo`).
    pub fn apply(&self, effects: &[Effect]) -> io::Result<()> {
        let mut st = self.state.lock();
        st.undo = Some(undo::Undo::default());
        // IMPORTANT: the times go back before anything is fsynced.
        let res = st.apply_batch(effects).and_then(|()| st.restore_times());
        let synced = if self.opts.real_fsync {
            st.sync_touched().map(|n| {
                self.fsyncs.fetch_add(n, Ordering::Relaxed);
            })
        } else {
            Ok(())
        };
        st.touched_dirs.clear();
        st.touched_files.clear();
        let res = res.and(synced);
        let undo = st.undo.take();
        if res.is_err() {
            st.roll_back(undo);
        }
        res
    }

    /// What a crash followed by fsck leaves: every directory reached by
    /// several durable entries keeps the one [`MemStore::after_crash`]
    /// keeps, and every orphan (an inode no durable entry reaches) is
    /// deleted. Call only when no later effect can link them again (after a
    /// cut).
    ///
    /// [`MemStore::after_crash`]: crate::model::MemStore::after_crash
    pub fn after_crash(&self) -> io::Result<()> {
        let mut st = self.state.lock();
        st.settle_dirs()?;
        st.delete_orphans()?;
        st.restore_times()
    }

    /// The inodes only `.durafs/orphans/` holds: no durable entry reaches
    /// them, but a later effect may still link them (module `reclaim`).
    pub fn orphans(&self) -> Vec<Orphan> {
        self.state.lock().orphans()
    }

    /// True when `ino` is one of [`Backing::orphans`].
    pub fn is_orphan(&self, ino: Ino) -> bool {
        let st = self.state.lock();
        st.nodes
            .get(&ino)
            .is_some_and(|n| n.orphan && n.phys.is_empty())
    }

    /// The open backing file of regular file `ino`; `None` when the store
    /// holds no such file (its content is all zeros).
    fn stored_file(&self, ino: Ino) -> io::Result<Option<Arc<File>>> {
        let mut st = self.state.lock();
        match st.nodes.get(&ino).map(|n| n.kind) {
            Some(Kind::File) => st.file(ino).map(Some),
            _ => Ok(None),
        }
    }

    /// Deletes orphan `ino` and what lies beneath it. The caller guarantees
    /// that no later effect names any inode of its [`Orphan::takes`].
    pub fn delete_orphan(&self, ino: Ino) -> io::Result<()> {
        self.state.lock().delete_orphan(ino)
    }

    /// Reads `len` durable bytes of `ino` at `offset` into `out` (zeros past
    /// the end of the file, or when `ino` is unknown).
    pub fn read(&self, ino: Ino, offset: u64, len: u64, out: &mut Vec<u8>) -> io::Result<()> {
        let file = self.stored_file(ino)?;
        let start = out.len();
        let len = usize::try_from(len).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
        out.resize(start + len, 0);
        if let Some(f) = file {
            let mut done = 0;
            while done < len {
                match f.read_at(&mut out[start + done..], offset + done as u64) {
                    Ok(0) => break,
                    Ok(n) => done += n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => {
                        out.truncate(start);
                        return Err(e);
                    }
                }
            }
        }
        Ok(())
    }
}

/// Opens (creating if missing) directory `name` of `parent`; `path` names
/// it in errors.
fn sub_dir(
    parent: std::os::fd::BorrowedFd<'_>,
    name: &str,
    path: &Path,
) -> Result<OwnedFd, BackingError> {
    let c = at::cname(name.as_bytes()).map_err(io_at(path))?;
    match at::mkdir(parent, &c, 0o755) {
        Err(e) if e.kind() != io::ErrorKind::AlreadyExists => return Err(io_at(path)(e)),
        _ => {}
    }
    at::walk(parent, &c).map_err(io_at(path))
}

/// Empties (creating if missing) directory `name` of `meta`.
fn fresh_dir(
    meta: std::os::fd::BorrowedFd<'_>,
    name: &str,
    meta_path: &Path,
) -> Result<OwnedFd, BackingError> {
    let p = meta_path.join(name);
    let c = at::cname(name.as_bytes()).map_err(io_at(&p))?;
    match at::remove_all(meta, &c) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(io_at(&p)(e)),
        _ => {}
    }
    sub_dir(meta, name, &p)
}

/// Punches a hole (reads as zeros, size unchanged), or writes zeros where
/// the host filesystem cannot punch.
fn zero_range(f: &File, offset: u64, len: u64) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let size = f.metadata()?.len();
    let end = offset.saturating_add(len).min(size);
    if offset >= end {
        return Ok(());
    }
    let (o, l) = (offset as libc::off_t, (end - offset) as libc::off_t);
    // SAFETY: a valid open fd.
    let r = unsafe {
        libc::fallocate(
            f.as_raw_fd(),
            libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE,
            o,
            l,
        )
    };
    if r == 0 {
        return Ok(());
    }
    let err = io::Error::last_os_error();
    if err.raw_os_error() != Some(libc::EOPNOTSUPP) {
        return Err(err);
    }
    let zeros = vec![0u8; 1 << 16];
    let mut pos = offset;
    while pos < end {
        let n = (end - pos).min(zeros.len() as u64) as usize;
        f.write_all_at(&zeros[..n], pos)?;
        pos += n as u64;
    }
    Ok(())
}

impl State {
    /// An open handle on regular file `ino` (cached).
    fn file(&mut self, ino: Ino) -> io::Result<Arc<File>> {
        if let Some(f) = self.files.get(&ino) {
            return Ok(Arc::clone(f));
        }
        let at = self.loc(ino)?;
        let f = Arc::new(at::open_file(at.fd(), at.name())?);
        self.cache_file(ino, Arc::clone(&f));
        Ok(f)
    }

    fn cache_file(&mut self, ino: Ino, f: Arc<File>) {
        if self.files.len() >= MAX_OPEN_FILES {
            self.files.clear();
        }
        self.files.insert(ino, f);
    }

    fn apply_batch(&mut self, effects: &[Effect]) -> io::Result<()> {
        self.hidden.clear();
        self.written_size = None;
        let mut i = 0;
        while i < effects.len() {
            failpoint::pass("apply");
            if let (
                Effect::Link {
                    dir: d1,
                    name: n1,
                    ino: y,
                    ..
                },
                Some(Effect::Link {
                    dir: d2,
                    name: n2,
                    ino: x,
                    ..
                }),
            ) = (&effects[i], effects.get(i + 1))
            {
                if self.try_exchange(*d1, n1, *y, *d2, n2, *x)? {
                    i += 2;
                    continue;
                }
            }
            self.apply_one(&effects[i])?;
            i += 1;
        }
        self.finish_batch()
    }

    fn apply_one(&mut self, e: &Effect) -> io::Result<()> {
        let known = self.written_size.take();
        match e {
            Effect::Alloc { ino, init } => self.ensure_exists(*ino, init),
            Effect::Link {
                dir,
                name,
                ino,
                init,
            } => self.link(*dir, name, *ino, init),
            Effect::Unlink { dir, name } => self.unlink(*dir, name),
            Effect::Write { ino, offset, data } => self.write(*ino, *offset, data, known),
            Effect::WriteKeepSize { ino, offset, data } => {
                let (ino, offset) = (*ino, *offset);
                let mut size = 0;
                self.with_file(ino, |f| {
                    size = f.metadata()?.len();
                    let inside = (size.saturating_sub(offset) as usize).min(data.len());
                    f.write_all_at(&data[..inside], offset)
                })?;
                self.hidden.entry(ino).or_default().keep(offset, data, size);
                Ok(())
            }
            Effect::Truncate { ino, size } => {
                self.hidden.remove(ino);
                self.with_file(*ino, |f| f.set_len(*size))
            }
            Effect::Extend { ino, size } => self.grow(*ino, *size, *size).map(|_| ()),
            Effect::Zero { ino, offset, len } => {
                self.with_file(*ino, |f| zero_range(f, *offset, *len))
            }
            Effect::SetAttrs { ino, attrs } => {
                let Some(kind) = self.nodes.get(ino).map(|n| n.kind) else {
                    return Ok(());
                };
                set_attrs(&self.loc(*ino)?, kind, attrs)?;
                self.set_times(*ino, attrs);
                self.touched_files.insert(*ino);
                Ok(())
            }
            Effect::SetXattr { ino, name, value } => {
                let value = value.as_deref();
                match self.nodes.get(ino).map(|n| n.kind) {
                    None => return Ok(()),
                    Some(Kind::File) => xattrs::fset(&*self.file(*ino)?, name, value)?,
                    Some(_) => {
                        let at = self.loc(*ino)?;
                        xattrs::set_at(at.fd(), at.name(), name, value)?
                    }
                }
                self.touched_files.insert(*ino);
                Ok(())
            }
        }
    }

    /// Grows file `ino` to at least `size`, writing the hidden bytes the
    /// growth shows; returns its size once the caller wrote `[written,
    /// size)`. When that starts at or below the old end, the write itself
    /// grows the file and no `set_len` is made (the bytes it covers are the
    /// same either way).
    fn grow(&mut self, ino: Ino, written: u64, size: u64) -> io::Result<u64> {
        let mut old = size;
        self.size_probes += 1;
        self.with_file(ino, |f| {
            old = f.metadata()?.len();
            if old < size && written > old {
                f.set_len(size)?;
            }
            Ok(())
        })?;
        let shown = self
            .hidden
            .get(&ino)
            .map_or_else(Vec::new, |h| h.revealed(old, size));
        self.with_file(ino, |f| {
            for (off, d) in &shown {
                f.write_all_at(d, *off)?;
            }
            Ok(())
        })?;
        Ok(old.max(size))
    }

    /// `data` at `offset` of file `ino`, growing it first (see
    /// [`State::grow`]); `known` is [`State::written_size`] as the previous
    /// effect left it. With the size known and no hidden bytes to reveal,
    /// the write alone grows the file as `grow` would have.
    fn write(
        &mut self,
        ino: Ino,
        offset: u64,
        data: &[u8],
        known: Option<(Ino, u64)>,
    ) -> io::Result<()> {
        let end = offset + data.len() as u64;
        let size = match known {
            Some((i, size)) if i == ino && !self.hidden.contains_key(&ino) => size.max(end),
            _ => self.grow(ino, offset, end)?,
        };
        self.with_file(ino, |f| f.write_all_at(data, offset))?;
        self.written_size = Some((ino, size));
        Ok(())
    }

    /// Runs `f` on regular file `ino`; skipped when it does not exist.
    fn with_file(&mut self, ino: Ino, f: impl FnOnce(&File) -> io::Result<()>) -> io::Result<()> {
        if self.nodes.get(&ino).map(|n| n.kind) != Some(Kind::File) {
            return Ok(());
        }
        let file = self.file(ino)?;
        self.touched_files.insert(ino);
        self.disturbed.insert(ino);
        f(&file)
    }

    /// Creates `ino` as an orphan from `init` unless it exists.
    fn ensure_exists(&mut self, ino: Ino, init: &NewInode) -> io::Result<()> {
        if self.nodes.contains_key(&ino) {
            return Ok(());
        }
        let at = self.orphan_loc(ino);
        // The number may have named a directory the cache still holds.
        self.forget_dir(ino);
        // An earlier run may have left something under this number (a kill
        // -9 before its rename): removed only when the create finds it, so
        // a new inode costs no lookup of a name that is almost never there.
        let created = match create_node(&at, init) {
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                at::remove_all(at.fd(), at.name())?;
                create_node(&at, init)?
            }
            r => r?,
        };
        if let Some(f) = created {
            self.cache_file(ino, Arc::new(f));
            // The next effect (a new file's first write) needs no size probe.
            self.written_size = Some((ino, 0));
        }
        self.note_created(ino);
        self.nodes.insert(
            ino,
            NodeInfo {
                kind: init.kind,
                phys: Vec::new(),
                orphan: false,
                times: Some((init.attrs.atime, init.attrs.mtime)),
            },
        );
        self.set_orphan(ino);
        if init.kind == Kind::Dir {
            self.logical.insert(ino, BTreeMap::new());
            self.phys_dirs.insert(ino, BTreeMap::new());
        }
        self.touched_dirs.insert(Touched::Orphans);
        self.touched_files.insert(ino);
        Ok(())
    }

    /// fsyncs what the batch touched: files first, then directories.
    /// fsyncs what the batch touched; returns how many fsyncs it made.
    fn sync_touched(&mut self) -> io::Result<u64> {
        let mut n = 0;
        let files: Vec<Ino> = self.touched_files.iter().copied().collect();
        for ino in files {
            match self.nodes.get(&ino).map(|n| n.kind) {
                Some(Kind::File) => {
                    let f = self.file(ino)?;
                    fsio::fsync_file(&f)?;
                    n += 1;
                }
                Some(Kind::Dir) => {
                    if let Ok(d) = self.dir_fd(ino) {
                        fsio::fsync_dir_handle(&at::open_dir(d.as_fd(), at::DOT)?)?;
                        n += 1;
                    }
                }
                _ => {}
            }
        }
        let dirs: Vec<Touched> = self.touched_dirs.iter().copied().collect();
        for d in dirs {
            let d = match d {
                Touched::Dir(ino) => match self.dir_fd(ino) {
                    Ok(d) => d,
                    Err(_) => continue,
                },
                Touched::Orphans => Arc::clone(&self.orphans_fd),
                Touched::Tmp => Arc::clone(&self.tmp_fd),
            };
            fsio::fsync_dir_handle(&at::open_dir(d.as_fd(), at::DOT)?)?;
            n += 1;
        }
        Ok(n)
    }

    fn delete_orphans(&mut self) -> io::Result<()> {
        let orphans: Vec<Ino> = self
            .nodes
            .iter()
            .filter(|(_, n)| n.orphan)
            .map(|(i, _)| *i)
            .collect();
        for ino in orphans {
            let Some((is_dir, named)) = self
                .nodes
                .get(&ino)
                .map(|n| (n.kind == Kind::Dir, !n.phys.is_empty()))
            else {
                continue;
            };
            self.remove_orphan_name(ino, is_dir)?;
            if named {
                // A hard link kept it alive; it keeps its other names.
                if let Some(n) = self.nodes.get_mut(&ino) {
                    n.orphan = false;
                }
            } else {
                self.forget_subtree(ino);
            }
        }
        Ok(())
    }
}
