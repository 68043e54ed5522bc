//! Where an inode is on disk, as a location `(open parent directory,
//! name)` instead of a path: the store never joins a path below the backing
//! root, so a durable tree of any depth can be stored (a path joined from
//! the root of a deep tree exceeds PATH_MAX even when every path inside the
//! mount is shorter).
//!
//! A directory is resolved by walking its physical names from the root (or
//! from `.durafs/orphans/`), one `openat(O_PATH)` per level. Resolved
//! directories are cached by inode: an `O_PATH` descriptor follows its inode
//! across renames, so an entry stays right until the directory inode itself
//! is destroyed on disk, which is where the cache forgets it
//! ([`State::forget_dir`]).

use super::{State, at};
use crate::model::{Attrs, Ino, Kind, NewInode, ROOT, Timestamp};
use std::ffi::{CStr, CString};
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::sync::Arc;

/// An open directory shared by the locations in it.
pub(super) type Dir = Arc<OwnedFd>;

/// How many resolved directories the cache keeps (each holds a descriptor).
const MAX_CACHED_DIRS: usize = 128;

/// A name in an open directory.
#[derive(Debug)]
pub(super) struct Loc {
    pub(super) dir: Dir,
    pub(super) name: CString,
}

impl Loc {
    pub(super) fn fd(&self) -> BorrowedFd<'_> {
        self.dir.as_fd()
    }

    pub(super) fn name(&self) -> &CStr {
        &self.name
    }
}

impl State {
    /// `.durafs/orphans/<ino>`.
    pub(super) fn orphan_loc(&self, ino: Ino) -> Loc {
        Loc {
            dir: Arc::clone(&self.orphans_fd),
            name: ino_name(ino),
        }
    }

    /// `.durafs/tmp/<ino>`.
    pub(super) fn tmp_loc(&self, ino: Ino) -> Loc {
        Loc {
            dir: Arc::clone(&self.tmp_fd),
            name: ino_name(ino),
        }
    }

    /// The location of an inode: its oldest physical name, or its orphan
    /// name; the root is `.` in itself.
    pub(super) fn loc(&self, ino: Ino) -> io::Result<Loc> {
        if ino == ROOT {
            return Ok(Loc {
                dir: Arc::clone(&self.root_fd),
                name: at::DOT.to_owned(),
            });
        }
        let n = self.nodes.get(&ino).ok_or_else(|| not_found(ino))?;
        match n.phys.first() {
            Some((p, name)) => self.name_loc(*p, name),
            None if n.orphan => Ok(self.orphan_loc(ino)),
            None => Err(not_found(ino)),
        }
    }

    /// The location of `name` in directory `dir`.
    pub(super) fn name_loc(&self, dir: Ino, name: &[u8]) -> io::Result<Loc> {
        Ok(Loc {
            dir: self.dir_fd(dir)?,
            name: at::cname(name)?,
        })
    }

    /// An open handle on directory `ino`: from the cache, or walked from
    /// the nearest cached ancestor (the root and `.durafs/orphans/` count).
    pub(super) fn dir_fd(&self, ino: Ino) -> io::Result<Dir> {
        let mut down: Vec<(Ino, &[u8])> = Vec::new();
        let mut cur = ino;
        let mut base = loop {
            if cur == ROOT {
                break Arc::clone(&self.root_fd);
            }
            if let Some(d) = self.dirs.borrow().get(&cur) {
                break Arc::clone(d);
            }
            let n = self.nodes.get(&cur).ok_or_else(|| not_found(cur))?;
            if n.kind != Kind::Dir {
                return Err(io::Error::from_raw_os_error(libc::ENOTDIR));
            }
            match n.phys.first() {
                Some((p, name)) => {
                    down.push((cur, name));
                    cur = *p;
                }
                None if n.orphan => {
                    let d = Arc::new(at::walk(self.orphans_fd.as_fd(), &ino_name(cur))?);
                    self.cache_dir(cur, &d);
                    break d;
                }
                None => return Err(not_found(cur)),
            }
            if down.len() > self.nodes.len() {
                return Err(io::Error::other(format!(
                    "durafs backing: the names of #{ino} loop"
                )));
            }
        };
        for (i, name) in down.into_iter().rev() {
            base = Arc::new(at::walk(base.as_fd(), &at::cname(name)?)?);
            self.cache_dir(i, &base);
        }
        Ok(base)
    }

    fn cache_dir(&self, ino: Ino, d: &Dir) {
        let mut dirs = self.dirs.borrow_mut();
        if dirs.len() >= MAX_CACHED_DIRS {
            dirs.clear();
        }
        dirs.insert(ino, Arc::clone(d));
    }

    /// Forgets the cached handle of directory `ino`: call when its inode is
    /// destroyed on disk or the number is given to another directory.
    pub(super) fn forget_dir(&self, ino: Ino) {
        self.dirs.borrow_mut().remove(&ino);
    }
}

fn ino_name(ino: Ino) -> CString {
    CString::new(ino.to_string()).unwrap_or_default()
}

pub(super) fn not_found(ino: Ino) -> io::Error {
    io::Error::new(
        io::ErrorKind::NotFound,
        format!("durafs backing: inode #{ino} has no name"),
    )
}

/// Creates `at` as a fresh inode described by `init` (empty content); a
/// regular file is returned open, its attributes set through that
/// descriptor (no lookup of its name after the create).
pub(super) fn create_node(at: &Loc, init: &NewInode) -> io::Result<Option<File>> {
    let mode = init.attrs.mode & 0o7777;
    match init.kind {
        Kind::File => {
            let f = at::create_file(at.fd(), at.name(), mode)?;
            set_file_attrs(&f, &init.attrs)?;
            return Ok(Some(f));
        }
        Kind::Dir => at::mkdir(at.fd(), at.name(), mode)?,
        Kind::Symlink => {
            let t = init.target.as_deref().unwrap_or_default();
            at::symlink(&at::cname(t)?, at.fd(), at.name())?;
        }
        k => {
            let fmt = match k {
                Kind::Fifo => libc::S_IFIFO,
                Kind::Socket => libc::S_IFSOCK,
                Kind::CharDev => libc::S_IFCHR,
                _ => libc::S_IFBLK,
            };
            at::mknod(at.fd(), at.name(), fmt | mode, u64::from(init.attrs.rdev))?;
        }
    }
    set_attrs(at, init.kind, &init.attrs).map(|()| None)
}

/// [`set_attrs`] on an open regular file.
pub(super) fn set_file_attrs(f: &File, a: &Attrs) -> io::Result<()> {
    let mut md = f.metadata()?;
    if md.uid() != a.uid || md.gid() != a.gid {
        at::fchown(f, a.uid, a.gid)?;
        // IMPORTANT: the host's chown cleared set-user-ID and set-group-ID.
        md = f.metadata()?;
    }
    if md.mode() & 0o7777 != a.mode & 0o7777 {
        at::fchmod(f, a.mode & 0o7777)?;
    }
    at::futimens(f, timespec(a.atime), timespec(a.mtime))
}

fn timespec(t: Timestamp) -> libc::timespec {
    libc::timespec {
        tv_sec: t.secs as libc::time_t,
        tv_nsec: libc::c_long::from(t.nanos.min(999_999_999) as i32),
    }
}

/// Sets owner, mode, atime and mtime of `at` (never following a symlink).
/// ctime cannot be set: it is the host's.
pub(super) fn set_attrs(at: &Loc, kind: Kind, a: &Attrs) -> io::Result<()> {
    let mut md = at::lstat(at.fd(), at.name())?;
    if md.uid() != a.uid || md.gid() != a.gid {
        at::lchown(at.fd(), at.name(), a.uid, a.gid)?;
        // IMPORTANT: the host's chown cleared set-user-ID and set-group-ID.
        md = at::lstat(at.fd(), at.name())?;
    }
    if kind != Kind::Symlink && md.mode() & 0o7777 != a.mode & 0o7777 {
        at::chmod(at.fd(), at.name(), a.mode & 0o7777)?;
    }
    set_times(at, a.atime, a.mtime)
}

/// Sets atime and mtime of `at` (never following a symlink).
pub(super) fn set_times(at: &Loc, atime: Timestamp, mtime: Timestamp) -> io::Result<()> {
    at::utimens(at.fd(), at.name(), timespec(atime), timespec(mtime))
}

/// [`set_times`] on an open file.
pub(super) fn set_file_times(f: &File, atime: Timestamp, mtime: Timestamp) -> io::Result<()> {
    at::futimens(f, timespec(atime), timespec(mtime))
}
