//! One scratch tree per checker, reused from one crash state to the next:
//! [`Tree::prepare`] turns the directory that held the previous state into
//! the next state by writing only the entries that differ, instead of
//! writing every state from scratch. The check that ran in between may
//! have changed the tree (SQLite rolls back a journal, a program repairs
//! its files), so the tree is reused only when provably untouched.
//!
//! Soundness rests on the inode change time (ctime). The kernel sets it to
//! the current time on every change of an inode's data or metadata (write,
//! truncate, chmod, chown, xattr, link count, rename), and user space
//! cannot set it. After writing a state, `prepare` records a `Stamp` of
//! every entry (inode, type and mode, size, link count, ctime), then
//! changes a probe file beside the tree (`touch`), so that the probe's
//! ctime is the current time just before the check starts, and later than
//! the entries' where the kernel allows. Timestamps handed out later are
//! no earlier than the probe's (the clock the kernel stamps with is
//! monotonic but for a step of the wall clock, and on kernels with
//! multigrain timestamps a fine-grained stamp raises the floor of later
//! coarse ones). So any entry the check changes gets a ctime at or after
//! the probe's:
//! - an entry whose recorded ctime is before the probe's and whose stamp is
//!   unchanged was not touched;
//! - an entry recorded at or after the probe's ctime (written in the same
//!   clock tick, on a filesystem with coarse timestamps) is "racy": its
//!   stamp proves nothing, and the tree is not reused;
//! - entries created or removed show in the walk's names, an entry
//!   replaced by another in its inode number or ctime.
//!
//! On any difference (or a racy entry, or a tree `patchable` rules out)
//! the tree is removed and the state written from scratch, as without
//! reuse. The reused tree holds exactly what a fresh one would: the same
//! names, kinds, bytes (holes where a fresh write leaves holes), modes and
//! xattrs. Only times differ: an entry left untouched keeps the mtime and
//! atime of the state that wrote it (no state defines times: a fresh tree
//! has the time of writing).
//!
//! Reuse is limited to filesystems known to keep POSIX ctime
//! (`reliable_ctime`); elsewhere every state is written afresh.

use super::{SnapNode, SparseEntry, SparseSnapshot, create_entry, materialise, set_dir_modes};
use crate::model::Kind;
use std::collections::HashMap;
use std::ffi::OsStr;
use std::fs;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// What proves an entry unchanged since it was recorded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Stamp {
    ino: u64,
    /// Type and permission bits.
    mode: u32,
    size: u64,
    nlink: u64,
    /// Seconds and nanoseconds.
    ctime: (i64, i64),
}

impl Stamp {
    fn of(m: &fs::Metadata) -> Stamp {
        Stamp {
            ino: m.ino(),
            mode: m.mode(),
            size: m.size(),
            nlink: m.nlink(),
            ctime: (m.ctime(), m.ctime_nsec()),
        }
    }
}

/// The state a tree holds and the proof that it still holds it.
struct Held {
    dir: PathBuf,
    snapshot: SparseSnapshot,
    /// Every entry by relative path (the tree's root as the empty path).
    stamps: HashMap<Vec<u8>, Stamp>,
    /// The probe's ctime when the tree was handed to the check.
    probe: (i64, i64),
}

/// Work done by a [`Tree`], for reports and tests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TreeCounts {
    /// States written into an empty directory.
    pub fresh: usize,
    /// States made by patching the previous state's tree.
    pub patched: usize,
    /// Entries created, rewritten, changed or removed, over all states.
    pub entries_written: usize,
    /// Entries whose stamp was taken, over all walks.
    pub entries_visited: usize,
}

/// A scratch tree reused from one state to the next (see the module).
pub struct Tree {
    probe: PathBuf,
    reuse: bool,
    held: Option<Held>,
    pub counts: TreeCounts,
}

impl Tree {
    /// A tree whose states go into directories beside `probe`, a file of
    /// its own (created as needed) on the same filesystem.
    pub fn new(probe: PathBuf) -> Tree {
        let reuse = probe.parent().is_some_and(reliable_ctime);
        Tree {
            probe,
            reuse,
            held: None,
            counts: TreeCounts::default(),
        }
    }

    /// Makes `dir` (which must not exist; its parent must) hold exactly
    /// `next`, moving the previous state's tree there and patching it when
    /// nothing has changed it, or writing `next` from scratch.
    pub fn prepare(&mut self, dir: &Path, next: &SparseSnapshot) -> io::Result<()> {
        let reusable = match self.held.take() {
            Some(h) if self.reuse && patchable(&h.snapshot) && self.untouched(&h) => Some(h),
            Some(h) => {
                let _ = fs::remove_dir_all(&h.dir);
                None
            }
            None => None,
        };
        match reusable {
            Some(h) => {
                if h.dir != dir {
                    fs::rename(&h.dir, dir)?;
                }
                self.counts.entries_written += patch(dir, &h.snapshot, next)?;
                self.counts.patched += 1;
            }
            None => {
                fs::create_dir(dir)?;
                materialise(&next.entries, dir)?;
                self.counts.entries_written += next.entries.len();
                self.counts.fresh += 1;
            }
        }
        let (stamps, probe) = if self.reuse {
            (self.walk(dir)?, touch(&self.probe)?)
        } else {
            (HashMap::new(), (0, 0))
        };
        self.held = Some(Held {
            dir: dir.to_path_buf(),
            snapshot: next.clone(),
            stamps,
            probe,
        });
        Ok(())
    }

    /// Removes the tree (and the probe).
    pub fn clear(&mut self) {
        if let Some(h) = self.held.take() {
            let _ = fs::remove_dir_all(&h.dir);
        }
        let _ = fs::remove_file(&self.probe);
    }

    /// True when the tree still holds what `h` recorded: the same names
    /// with the same stamps, none of them racy.
    fn untouched(&mut self, h: &Held) -> bool {
        match self.walk(&h.dir) {
            Ok(now) => now == h.stamps && h.stamps.values().all(|s| s.ctime < h.probe),
            Err(_) => false,
        }
    }

    /// The stamp of every entry under `dir` (`dir` itself as the empty
    /// path), symlinks not followed.
    fn walk(&mut self, dir: &Path) -> io::Result<HashMap<Vec<u8>, Stamp>> {
        let mut out = HashMap::new();
        let root = fs::symlink_metadata(dir)?;
        if !root.is_dir() {
            return Err(io::Error::other("the tree's root is not a directory"));
        }
        out.insert(Vec::new(), Stamp::of(&root));
        let mut todo = vec![(dir.to_path_buf(), Vec::new())];
        while let Some((path, rel)) = todo.pop() {
            for e in fs::read_dir(&path)? {
                let e = e?;
                let m = e.metadata()?;
                let mut name = rel.clone();
                if !name.is_empty() {
                    name.push(b'/');
                }
                name.extend_from_slice(e.file_name().as_bytes());
                if m.is_dir() {
                    todo.push((e.path(), name.clone()));
                }
                out.insert(name, Stamp::of(&m));
            }
        }
        self.counts.entries_visited += out.len();
        Ok(out)
    }
}

impl Drop for Tree {
    fn drop(&mut self) {
        self.clear();
    }
}

/// True when the filesystem holding `dir` is one whose ctime follows
/// POSIX (set by the kernel on every change, never by user space): ext2/3/4,
/// XFS, Btrfs, tmpfs, F2FS, overlayfs.
fn reliable_ctime(dir: &Path) -> bool {
    const KNOWN: [i64; 6] = [
        0xEF53,      // ext2/3/4
        0x5846_5342, // XFS
        0x9123_683E, // Btrfs
        0x0102_1994, // tmpfs
        0xF2F5_2010, // F2FS
        0x794C_7630, // overlayfs
    ];
    let Ok(c) = std::ffi::CString::new(dir.as_os_str().as_bytes()) else {
        return false;
    };
    // SAFETY: statfs fills the zeroed struct it is given.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: a valid NUL-terminated path and a struct to fill.
    if unsafe { libc::statfs(c.as_ptr(), &mut st) } != 0 {
        return false;
    }
    // `f_type`'s integer type differs between targets.
    #[allow(clippy::unnecessary_cast)]
    let kind = st.f_type as i64;
    KNOWN.contains(&kind)
}

/// Sets the ctime of `probe` (created as needed) to a time later than
/// every ctime set before the call, where the kernel allows; that ctime.
///
/// A chmod sets the ctime even when the mode does not change, to the
/// coarse clock (one tick, a few ms), so the first chmod may share the
/// tick of entries just written. The second, after a query of the ctime,
/// gets either a later tick or, on a kernel with multigrain timestamps
/// (Linux 6.13 on ext4, XFS, Btrfs, tmpfs), a fine-grained time later
/// than the first, which also raises the floor of every later coarse
/// stamp. Elsewhere it may equal the entries' ctime: they are then racy
/// and the tree is written afresh.
fn touch(probe: &Path) -> io::Result<(i64, i64)> {
    let f = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(probe)?;
    f.set_permissions(fs::Permissions::from_mode(0o600))?;
    f.metadata()?;
    f.set_permissions(fs::Permissions::from_mode(0o600))?;
    let m = f.metadata()?;
    Ok((m.ctime(), m.ctime_nsec()))
}

/// True when a tree holding `held` can be patched in place: no hard links
/// (a name's inode would have to follow its first name) and every file
/// and directory writable by its owner (patching writes into them).
fn patchable(held: &SparseSnapshot) -> bool {
    held.entries.iter().all(|e| match e.node {
        SnapNode::HardLink(_) => false,
        SnapNode::File(_) => e.mode & 0o600 == 0o600,
        SnapNode::Dir => e.mode & 0o700 == 0o700,
        SnapNode::Symlink(_) | SnapNode::Special(_) => true,
    })
}

/// True when an entry of kind `a` can become one of kind `b` in place
/// (the same kind, and for a symlink or special file, the same node).
fn same_node(a: &SparseEntry, b: &SparseEntry) -> bool {
    match (&a.node, &b.node) {
        (SnapNode::File(_), SnapNode::File(_)) | (SnapNode::Dir, SnapNode::Dir) => true,
        (SnapNode::Symlink(x), SnapNode::Symlink(y)) => x == y && a.xattrs == b.xattrs,
        (SnapNode::Special(x), SnapNode::Special(y)) => x == y && a == b,
        _ => false,
    }
}

/// Turns `dir`, which holds `old` exactly, into `new`; the entries
/// written (created, changed or removed).
fn patch(dir: &Path, old: &SparseSnapshot, new: &SparseSnapshot) -> io::Result<usize> {
    let at = |p: &[u8]| -> PathBuf { dir.join(OsStr::from_bytes(p)) };
    let olds: HashMap<&[u8], &SparseEntry> = old.entries.iter().map(|e| (&e.path[..], e)).collect();
    let news: HashMap<&[u8], &SparseEntry> = new.entries.iter().map(|e| (&e.path[..], e)).collect();
    let mut written = 0;
    // Children before their parents.
    for e in old.entries.iter().rev() {
        if news.get(&e.path[..]).is_some_and(|n| same_node(e, n)) {
            continue;
        }
        written += 1;
        match &e.node {
            SnapNode::Dir => fs::remove_dir_all(at(&e.path))?,
            SnapNode::Special(k) if *k != Kind::Fifo => {}
            _ => fs::remove_file(at(&e.path))?,
        }
    }
    let mut dirs = Vec::new();
    for e in &new.entries {
        match olds.get(&e.path[..]).filter(|o| same_node(o, e)) {
            Some(o) => written += usize::from(update(&at(&e.path), o, e, &mut dirs)?),
            None => {
                create_entry(dir, e, &mut dirs)?;
                written += 1;
            }
        }
    }
    set_dir_modes(dirs)?;
    Ok(written)
}

/// Makes the file or directory at `path`, holding `old`, hold `new` (of
/// the same kind); a directory's new mode is pushed on `dirs`. True when
/// anything changed.
fn update(
    path: &Path,
    old: &SparseEntry,
    new: &SparseEntry,
    dirs: &mut Vec<(PathBuf, u32)>,
) -> io::Result<bool> {
    let mut changed = false;
    if let (SnapNode::File(was), SnapNode::File(now)) = (&old.node, &new.node) {
        if was != now {
            let f = fs::OpenOptions::new().write(true).open(path)?;
            now.patch(&f, was)?;
            changed = true;
        }
    }
    if old.mode != new.mode {
        match new.node {
            SnapNode::Dir => dirs.push((path.to_path_buf(), new.mode)),
            _ => fs::set_permissions(path, fs::Permissions::from_mode(new.mode))?,
        }
        changed = true;
    }
    if old.xattrs != new.xattrs {
        for (name, _) in &old.xattrs {
            if !new.xattrs.iter().any(|(n, _)| n == name) {
                crate::backing::xattrs::lset(path, name, None)?;
            }
        }
        for (name, value) in &new.xattrs {
            if !old.xattrs.iter().any(|(n, v)| n == name && v == value) {
                crate::backing::xattrs::lset(path, name, Some(value))?;
            }
        }
        changed = true;
    }
    Ok(changed)
}

#[cfg(test)]
mod tests;
