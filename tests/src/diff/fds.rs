//! Descriptors held open across operations. Each side of a run (the durafs
//! mount and the native directory) keeps its own descriptor in each of
//! [`SLOTS`] slots: [`Op::Open`] fills one (closing what it held), the
//! `Fd*` operations use it whatever happened to its names since (unlinked,
//! renamed, its directory renamed, replaced by a rename over it), and
//! [`Op::FdClose`] empties it. An operation on an empty slot fails with
//! `EBADF` on both sides without a system call.
//!
//! After every step the harness compares what `fstat` shows through each
//! slot ([`Fds::stats`]): an unlinked file has no name left in the tree,
//! so this is where its size and link count are checked.

use super::exec::{Fd, errno, open, zero};
use super::{Op, OpenMode, Outcome, SLOTS, pattern};
use std::path::Path;

/// One side's descriptor slots; closed on drop.
#[derive(Default)]
pub struct Fds {
    slots: [Option<Fd>; SLOTS as usize],
}

/// What `fstat` shows through a slot, as compared between the sides (no
/// times, inode numbers or blocks, and no size for a directory).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FdStat {
    /// The file-type and permission bits.
    pub mode: u32,
    pub size: u64,
    pub nlink: u64,
    pub uid: u32,
    pub gid: u32,
}

fn fstat(fd: &Fd) -> Result<libc::stat, i32> {
    // SAFETY: an all-zero stat is a valid value to be overwritten; our own
    // descriptor and a valid out-pointer.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    zero(unsafe { libc::fstat(fd.0, &mut st) })?;
    Ok(st)
}

impl Fds {
    pub fn new() -> Fds {
        Fds::default()
    }

    /// Closes every slot's descriptor (errors are not reported: a close
    /// on a cut mount fails).
    pub fn close_all(&mut self) {
        for s in &mut self.slots {
            *s = None;
        }
    }

    /// Which slots hold a descriptor.
    pub fn open_slots(&self) -> [bool; SLOTS as usize] {
        std::array::from_fn(|i| self.slots[i].is_some())
    }

    /// `fstat` through each slot: `None` for an empty slot.
    pub fn stats(&self) -> Vec<Option<Result<FdStat, i32>>> {
        self.slots
            .iter()
            .map(|s| {
                s.as_ref().map(|fd| {
                    fstat(fd).map(|st| FdStat {
                        mode: st.st_mode,
                        // As in the trees: a directory's size is its
                        // filesystem's business.
                        size: if st.st_mode & libc::S_IFMT == libc::S_IFREG {
                            st.st_size as u64
                        } else {
                            0
                        },
                        nlink: st.st_nlink,
                        uid: st.st_uid,
                        gid: st.st_gid,
                    })
                })
            })
            .collect()
    }

    /// The raw `fstat` through `slot`, if it holds a descriptor.
    pub fn stat(&self, slot: u8) -> Option<libc::stat> {
        self.slots[slot as usize]
            .as_ref()
            .and_then(|fd| fstat(fd).ok())
    }

    /// Runs a descriptor operation ([`Op::Open`], [`Op::FdWrite`],
    /// [`Op::FdRead`], [`Op::FdTruncate`], [`Op::FdFsync`],
    /// [`Op::FdClose`]) with paths under `root`; `None` for any other op.
    pub fn apply(&mut self, root: &Path, op: &Op) -> Option<Outcome> {
        let r = match *op {
            Op::Open { slot, path, how } => {
                // Closed first: a failed open leaves the slot empty.
                self.slots[slot as usize] = None;
                let fl = match how {
                    OpenMode::ReadWrite => libc::O_RDWR,
                    OpenMode::Append => libc::O_RDWR | libc::O_APPEND,
                    OpenMode::Create => libc::O_RDWR | libc::O_CREAT,
                    OpenMode::ReadOnly => libc::O_RDONLY,
                };
                open(root, path, fl, 0o644).map(|fd| {
                    self.slots[slot as usize] = Some(fd);
                    Outcome::Done
                })
            }
            Op::FdClose { slot } => match self.slots[slot as usize].take() {
                None => Err(libc::EBADF),
                Some(fd) => {
                    let raw = fd.0;
                    std::mem::forget(fd);
                    // SAFETY: our own descriptor, closed once (the `Fd` is
                    // forgotten so that its drop does not close it again).
                    zero(unsafe { libc::close(raw) }).map(|()| Outcome::Done)
                }
            },
            Op::FdWrite {
                slot,
                off,
                len,
                fill,
            } => self.with(slot, |fd| {
                let data = pattern(fill, len);
                // SAFETY: our descriptor and a buffer of the length passed.
                let n = unsafe {
                    libc::pwrite(fd, data.as_ptr().cast(), data.len(), off as libc::off_t)
                };
                if n < 0 {
                    Err(errno())
                } else {
                    Ok(Outcome::Wrote(n as usize))
                }
            }),
            Op::FdRead { slot, off, len } => self.with(slot, |fd| {
                let mut buf = vec![0u8; len as usize];
                // SAFETY: our descriptor and a buffer of the length passed.
                let n = unsafe {
                    libc::pread(fd, buf.as_mut_ptr().cast(), buf.len(), off as libc::off_t)
                };
                if n < 0 {
                    return Err(errno());
                }
                buf.truncate(n as usize);
                Ok(Outcome::Read(buf))
            }),
            Op::FdTruncate { slot, size } => self.with(slot, |fd| {
                // SAFETY: a plain call on our descriptor.
                zero(unsafe { libc::ftruncate(fd, size as libc::off_t) }).map(|()| Outcome::Done)
            }),
            Op::FdFsync { slot, datasync } => self.with(slot, |fd| {
                // SAFETY: plain calls on our descriptor.
                let rc = unsafe {
                    if datasync {
                        libc::fdatasync(fd)
                    } else {
                        libc::fsync(fd)
                    }
                };
                zero(rc).map(|()| Outcome::Done)
            }),
            _ => return None,
        };
        Some(r.unwrap_or_else(Outcome::Err))
    }

    fn with(
        &self,
        slot: u8,
        f: impl FnOnce(libc::c_int) -> Result<Outcome, i32>,
    ) -> Result<Outcome, i32> {
        match &self.slots[slot as usize] {
            Some(fd) => f(fd.0),
            None => Err(libc::EBADF),
        }
    }
}
