//! The control file as the mount shows it: the entry [`CONTROL_NAME`] in
//! the root, inode [`ControlFile::INO`], whose open handles each carry
//! their own exchange of command and reply ([`super`] has the protocol).
//! Independent of fuser: the adapter turns each callback on this inode
//! into one call here and a [`Refused`] into its errno.
//!
//! Invariants: only the mounting user and root open it; each handle holds
//! the reply to its last command and how much of it was read; a handle
//! whose command cut the power ends the mount when it is closed
//! ([`ControlFile::release`]), so the `cut` reply can still be read.

use super::{CONTROL_NAME, run, status_reply};
use crate::fs::{DuraFs, now};
use crate::model::{Attrs, Ino, Kind, ROOT, Stat};
use dashmap::DashMap;
use parking_lot::Mutex;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// Why a call on the control file is refused; each is one errno.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refused {
    /// Only the mounting user and root may open it.
    NotOwner,
    /// No open handle has this number.
    BadHandle,
    /// The entry and its attributes cannot change (rename, link, chmod...).
    Fixed,
    /// It has no extended attributes.
    NoXattr,
    /// It takes no extended attributes.
    XattrUnsupported,
    /// The command failed with this errno; the reply says why.
    Command(i32),
}

impl Refused {
    /// The errno the call fails with.
    pub fn errno(self) -> i32 {
        match self {
            Refused::NotOwner => libc::EACCES,
            Refused::BadHandle => libc::EBADF,
            Refused::Fixed => libc::EPERM,
            Refused::NoXattr => libc::ENODATA,
            Refused::XattrUnsupported => libc::EOPNOTSUPP,
            Refused::Command(e) => e,
        }
    }
}

/// One open handle.
#[derive(Debug, Default)]
struct Handle {
    /// The reply to the last command (or the status, read first).
    reply: Option<Vec<u8>>,
    /// Bytes of `reply` already read. The file offset is ignored, so a
    /// handle that wrote a command reads the reply from its start.
    cursor: usize,
    /// This handle cut the power: the mount ends when it is closed.
    cut: bool,
}

/// The control file of one mounted volume.
pub struct ControlFile {
    fs: Arc<DuraFs>,
    owner: (u32, u32),
    started: crate::model::Timestamp,
    handles: DashMap<u64, Mutex<Handle>>,
    next_fh: AtomicU64,
}

impl ControlFile {
    /// Inode number of the control file (never allocated by the model).
    pub const INO: Ino = u64::MAX - 1;

    /// The control file of `fs`, owned by `uid`:`gid`.
    pub fn new(fs: Arc<DuraFs>, uid: u32, gid: u32) -> ControlFile {
        ControlFile {
            fs,
            owner: (uid, gid),
            started: now(),
            handles: DashMap::new(),
            next_fh: AtomicU64::new(1),
        }
    }

    /// True for the control file's entry: [`CONTROL_NAME`] in the root.
    pub fn is_entry(parent: Ino, name: &[u8]) -> bool {
        parent == ROOT && name == CONTROL_NAME.as_bytes()
    }

    /// Its attributes: an empty regular file, mode 0600, owned by the
    /// mounting user, its times those of the mount.
    pub fn stat(&self) -> Stat {
        Stat {
            ino: Self::INO,
            kind: Kind::File,
            size: 0,
            nlink: 1,
            attrs: Attrs {
                mode: 0o600,
                uid: self.owner.0,
                gid: self.owner.1,
                rdev: 0,
                atime: self.started,
                mtime: self.started,
                ctime: self.started,
            },
        }
    }

    /// Opens a handle for user `uid`; returns its number.
    pub fn open(&self, uid: u32) -> Result<u64, Refused> {
        if uid != self.owner.0 && uid != 0 {
            log::warn!(
                "durafs: control file: uid {uid} refused (owner {})",
                self.owner.0
            );
            return Err(Refused::NotOwner);
        }
        let fh = self.next_fh.fetch_add(1, Ordering::Relaxed);
        self.handles.insert(fh, Mutex::new(Handle::default()));
        Ok(fh)
    }

    /// The next at most `size` unread bytes of handle `fh`'s reply (the
    /// status when it sent no command).
    pub fn read(&self, fh: u64, size: u32) -> Result<Vec<u8>, Refused> {
        let h = self.handles.get(&fh).ok_or(Refused::BadHandle)?;
        let mut guard = h.lock();
        let h = &mut *guard;
        let data = h.reply.get_or_insert_with(|| status_reply(&self.fs));
        let start = h.cursor.min(data.len());
        let end = start.saturating_add(size as usize).min(data.len());
        h.cursor = end;
        Ok(data[start..end].to_vec())
    }

    /// Runs the command `data` on handle `fh`; returns the bytes taken.
    pub fn write(&self, fh: u64, data: &[u8]) -> Result<u32, Refused> {
        let h = self.handles.get(&fh).ok_or(Refused::BadHandle)?;
        let mut h = h.lock();
        let out = run(&self.fs, data);
        h.reply = Some(out.reply);
        h.cursor = 0;
        h.cut |= out.cut;
        match out.errno {
            None => Ok(u32::try_from(data.len()).unwrap_or(u32::MAX)),
            Some(e) => Err(Refused::Command(e)),
        }
    }

    /// Closes handle `fh`. True when its command cut the power: the mount
    /// must end now.
    pub fn release(&self, fh: u64) -> bool {
        self.handles
            .remove(&fh)
            .is_some_and(|(_, h)| h.into_inner().cut)
    }

    /// A change of its attributes: only a truncation to 0 and no other
    /// change (an open with `O_TRUNC`) is accepted, and changes nothing.
    pub fn setattr(&self, size: Option<u64>, other: bool) -> Result<Stat, Refused> {
        match (size, other) {
            (Some(0) | None, false) => Ok(self.stat()),
            _ => Err(Refused::Fixed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fs::FsOptions;

    fn control() -> (tempfile::TempDir, ControlFile) {
        let dir = tempfile::tempdir().unwrap();
        let fs = DuraFs::open(dir.path(), FsOptions::default()).unwrap();
        (dir, ControlFile::new(Arc::new(fs), 1000, 1000))
    }

    fn json(bytes: &[u8]) -> serde_json::Value {
        serde_json::from_slice(bytes).unwrap()
    }

    #[test]
    fn only_the_owner_and_root_open_it_and_each_handle_reads_its_own_reply() {
        let (_dir, c) = control();
        assert_eq!(c.open(1001), Err(Refused::NotOwner));
        let (a, b) = (c.open(1000).unwrap(), c.open(0).unwrap());
        assert_eq!(c.write(a, b"sync\n"), Ok(5));
        assert_eq!(json(&c.read(a, 4096).unwrap())["ok"], true);
        assert_eq!(c.read(a, 4096), Ok(Vec::new()), "read to end of file");
        // A handle that sent nothing reads the status, in pieces.
        let head = c.read(b, 5).unwrap();
        let rest = c.read(b, 1 << 20).unwrap();
        assert!(json(&[head, rest].concat())["status"].is_object());
        assert_eq!(
            c.write(b, b"frobnicate"),
            Err(Refused::Command(libc::EINVAL))
        );
        assert!(!c.release(a));
        assert_eq!(c.read(a, 1), Err(Refused::BadHandle));
    }

    #[test]
    fn the_handle_that_cut_the_power_ends_the_mount_when_closed() {
        let (_dir, c) = control();
        let (other, cutter) = (c.open(1000).unwrap(), c.open(1000).unwrap());
        assert_eq!(c.write(cutter, b"cut --seed 1"), Ok(12));
        assert!(json(&c.read(cutter, 4096).unwrap())["cut"].is_object());
        assert_eq!(c.write(other, b"sync"), Err(Refused::Command(libc::EIO)));
        assert!(!c.release(other));
        assert!(c.release(cutter));
        assert!(!c.release(cutter), "closed once");
    }

    #[test]
    fn it_is_the_root_entry_named_durafs_and_its_attributes_are_fixed() {
        let (_dir, c) = control();
        assert!(ControlFile::is_entry(ROOT, b".durafs"));
        assert!(!ControlFile::is_entry(ROOT + 1, b".durafs"));
        assert!(!ControlFile::is_entry(ROOT, b"durafs"));
        let st = c.stat();
        assert_eq!((st.attrs.mode, st.attrs.uid, st.size), (0o600, 1000, 0));
        assert_eq!(c.setattr(Some(0), false), Ok(st));
        assert_eq!(c.setattr(None, false), Ok(st));
        assert_eq!(c.setattr(Some(5), false), Err(Refused::Fixed));
        assert_eq!(c.setattr(None, true), Err(Refused::Fixed));
        assert_eq!(Refused::Fixed.errno(), libc::EPERM);
    }
}
