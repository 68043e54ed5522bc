//! Runs one [`Op`] on a directory tree through plain system calls and
//! returns what the calls returned: the value, or the errno of the first
//! call that failed. Every descriptor is opened and closed within the op;
//! the descriptors held across operations are in [`super::fds`].

use super::{Falloc, Op, Ren, Time, pattern};
use std::ffi::CString;
use std::fmt;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// What an operation returned.
#[derive(Clone, PartialEq, Eq)]
pub enum Outcome {
    Done,
    /// Bytes a write reported written.
    Wrote(usize),
    /// Bytes a read returned.
    Read(Vec<u8>),
    /// What `lstat` shows after a `utimensat` of the times it set
    /// explicitly ([`Time::At`]), as `(secs, nanos)`; `None` for times
    /// omitted or set to now.
    Times {
        atime: Option<(i64, i64)>,
        mtime: Option<(i64, i64)>,
    },
    /// The errno of the call that failed.
    Err(i32),
}

impl fmt::Debug for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Done => write!(f, "ok"),
            Outcome::Wrote(n) => write!(f, "wrote {n}"),
            Outcome::Read(d) => {
                let nz = d.iter().filter(|b| **b != 0).count();
                write!(f, "read {} bytes ({nz} non-zero)", d.len())
            }
            Outcome::Times { atime, mtime } => write!(f, "atime {atime:?}, mtime {mtime:?}"),
            Outcome::Err(e) => write!(f, "errno {e} ({})", std::io::Error::from_raw_os_error(*e)),
        }
    }
}

fn c(root: &Path, rel: &str) -> CString {
    CString::new(root.join(rel).as_os_str().as_bytes()).expect("no NUL in paths")
}

pub(super) fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

/// `Ok(())` when `rc` is 0, else the errno.
pub(super) fn zero(rc: libc::c_int) -> Result<(), i32> {
    if rc == 0 { Ok(()) } else { Err(errno()) }
}

/// An open descriptor, closed on drop.
pub(super) struct Fd(pub(super) libc::c_int);

impl Drop for Fd {
    fn drop(&mut self) {
        // SAFETY: our own descriptor, closed once.
        unsafe { libc::close(self.0) };
    }
}

pub(super) fn open(root: &Path, rel: &str, flags: libc::c_int, mode: u32) -> Result<Fd, i32> {
    let p = c(root, rel);
    // SAFETY: a valid NUL-terminated path.
    let fd = unsafe { libc::open(p.as_ptr(), flags | libc::O_CLOEXEC, mode as libc::c_uint) };
    if fd < 0 { Err(errno()) } else { Ok(Fd(fd)) }
}

/// Runs `op` on the tree at `root`. [`Op::SyncAll`] and [`Op::Cut`] are
/// volume operations the harness does; here they do nothing. Panics on a
/// descriptor operation ([`super::Fds::apply`] runs those).
pub fn apply(root: &Path, op: &Op) -> Outcome {
    match run(root, op) {
        Ok(o) => o,
        Err(e) => Outcome::Err(e),
    }
}

fn run(root: &Path, op: &Op) -> Result<Outcome, i32> {
    // SAFETY (every block below): plain system calls on valid
    // NUL-terminated paths, descriptors we own, and buffers of the length
    // passed.
    match *op {
        Op::Create {
            path,
            mode,
            excl,
            trunc,
        } => {
            let mut fl = libc::O_CREAT | libc::O_WRONLY;
            if excl {
                fl |= libc::O_EXCL;
            }
            if trunc {
                fl |= libc::O_TRUNC;
            }
            open(root, path, fl, mode)?;
            Ok(Outcome::Done)
        }
        Op::Write {
            path,
            off,
            len,
            fill,
            append,
        } => {
            let data = pattern(fill, len);
            let fl = libc::O_WRONLY | if append { libc::O_APPEND } else { 0 };
            let fd = open(root, path, fl, 0)?;
            let n = unsafe {
                if append {
                    libc::write(fd.0, data.as_ptr().cast(), data.len())
                } else {
                    libc::pwrite(fd.0, data.as_ptr().cast(), data.len(), off as libc::off_t)
                }
            };
            if n < 0 {
                return Err(errno());
            }
            Ok(Outcome::Wrote(n as usize))
        }
        Op::Read { path, off, len } => {
            let fd = open(root, path, libc::O_RDONLY, 0)?;
            let mut buf = vec![0u8; len as usize];
            let n = unsafe {
                libc::pread(fd.0, buf.as_mut_ptr().cast(), buf.len(), off as libc::off_t)
            };
            if n < 0 {
                return Err(errno());
            }
            buf.truncate(n as usize);
            Ok(Outcome::Read(buf))
        }
        Op::Truncate { path, size } => {
            let p = c(root, path);
            zero(unsafe { libc::truncate(p.as_ptr(), size as libc::off_t) })?;
            Ok(Outcome::Done)
        }
        Op::Fallocate {
            path,
            mode,
            off,
            len,
        } => {
            let fd = open(root, path, libc::O_WRONLY, 0)?;
            let m = match mode {
                Falloc::Alloc => 0,
                Falloc::KeepSize => libc::FALLOC_FL_KEEP_SIZE,
                Falloc::Punch => libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE,
                Falloc::Zero => libc::FALLOC_FL_ZERO_RANGE,
                Falloc::ZeroKeepSize => libc::FALLOC_FL_ZERO_RANGE | libc::FALLOC_FL_KEEP_SIZE,
            };
            zero(unsafe { libc::fallocate(fd.0, m, off as libc::off_t, len as libc::off_t) })?;
            Ok(Outcome::Done)
        }
        Op::Rename { from, to, flags } => {
            let (a, b) = (c(root, from), c(root, to));
            let fl = match flags {
                Ren::Plain => 0,
                Ren::NoReplace => libc::RENAME_NOREPLACE,
                Ren::Exchange => libc::RENAME_EXCHANGE,
            };
            zero(unsafe {
                libc::renameat2(libc::AT_FDCWD, a.as_ptr(), libc::AT_FDCWD, b.as_ptr(), fl)
            })?;
            Ok(Outcome::Done)
        }
        Op::Link { from, to } => {
            let (a, b) = (c(root, from), c(root, to));
            zero(unsafe { libc::link(a.as_ptr(), b.as_ptr()) })?;
            Ok(Outcome::Done)
        }
        Op::Unlink { path } => {
            let p = c(root, path);
            zero(unsafe { libc::unlink(p.as_ptr()) })?;
            Ok(Outcome::Done)
        }
        Op::Mkdir { path, mode } => {
            let p = c(root, path);
            zero(unsafe { libc::mkdir(p.as_ptr(), mode as libc::mode_t) })?;
            Ok(Outcome::Done)
        }
        Op::Rmdir { path } => {
            let p = c(root, path);
            zero(unsafe { libc::rmdir(p.as_ptr()) })?;
            Ok(Outcome::Done)
        }
        Op::Symlink { target, path } => {
            let t = CString::new(target).expect("no NUL in targets");
            let p = c(root, path);
            zero(unsafe { libc::symlink(t.as_ptr(), p.as_ptr()) })?;
            Ok(Outcome::Done)
        }
        Op::Chmod { path, mode } => {
            let p = c(root, path);
            zero(unsafe { libc::chmod(p.as_ptr(), mode as libc::mode_t) })?;
            Ok(Outcome::Done)
        }
        Op::Fsync { path } => {
            let fd = open(root, path, libc::O_RDONLY, 0)?;
            zero(unsafe { libc::fsync(fd.0) })?;
            Ok(Outcome::Done)
        }
        Op::Fdatasync { path } => {
            let fd = open(root, path, libc::O_RDONLY, 0)?;
            zero(unsafe { libc::fdatasync(fd.0) })?;
            Ok(Outcome::Done)
        }
        Op::FsyncDir { path } => {
            let fd = open(root, path, libc::O_RDONLY | libc::O_DIRECTORY, 0)?;
            zero(unsafe { libc::fsync(fd.0) })?;
            Ok(Outcome::Done)
        }
        Op::Chown { path, uid, gid } => {
            let p = c(root, path);
            // -1 leaves the id unchanged.
            let id = |x: Option<u32>| x.unwrap_or(u32::MAX);
            zero(unsafe {
                libc::fchownat(
                    libc::AT_FDCWD,
                    p.as_ptr(),
                    id(uid),
                    id(gid),
                    libc::AT_SYMLINK_NOFOLLOW,
                )
            })?;
            Ok(Outcome::Done)
        }
        Op::Utimens { path, atime, mtime } => {
            let p = c(root, path);
            let times = [timespec(atime), timespec(mtime)];
            zero(unsafe {
                libc::utimensat(
                    libc::AT_FDCWD,
                    p.as_ptr(),
                    times.as_ptr(),
                    libc::AT_SYMLINK_NOFOLLOW,
                )
            })?;
            let st = lstat(root, path)?;
            let set = |t: Time, secs: i64, nanos: i64| match t {
                Time::At { .. } => Some((secs, nanos)),
                Time::Omit | Time::Now => None,
            };
            Ok(Outcome::Times {
                atime: set(atime, st.st_atime, st.st_atime_nsec),
                mtime: set(mtime, st.st_mtime, st.st_mtime_nsec),
            })
        }
        Op::Open { .. }
        | Op::FdWrite { .. }
        | Op::FdRead { .. }
        | Op::FdTruncate { .. }
        | Op::FdFsync { .. }
        | Op::FdClose { .. } => panic!("{op}: descriptor operations run on a `Fds` (diff::fds)"),
        Op::SyncAll | Op::Cut { .. } => Ok(Outcome::Done),
    }
}

fn timespec(t: Time) -> libc::timespec {
    match t {
        Time::Omit => libc::timespec {
            tv_sec: 0,
            tv_nsec: libc::UTIME_OMIT,
        },
        Time::Now => libc::timespec {
            tv_sec: 0,
            tv_nsec: libc::UTIME_NOW,
        },
        Time::At { secs, nanos } => libc::timespec {
            tv_sec: secs as libc::time_t,
            tv_nsec: libc::c_long::from(nanos as i32),
        },
    }
}

/// `lstat(2)` of `rel` under `root`.
pub(super) fn lstat(root: &Path, rel: &str) -> Result<libc::stat, i32> {
    let p = c(root, rel);
    // SAFETY: an all-zero stat is a valid value to be overwritten; a valid
    // path and out-pointer.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    zero(unsafe { libc::lstat(p.as_ptr(), &mut st) })?;
    Ok(st)
}

/// `stat(2)` of `rel` under `root` (following a symlink).
pub(super) fn stat(root: &Path, rel: &str) -> Result<libc::stat, i32> {
    let p = c(root, rel);
    // SAFETY: as in `lstat`.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    zero(unsafe { libc::stat(p.as_ptr(), &mut st) })?;
    Ok(st)
}
