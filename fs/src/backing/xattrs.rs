//! Extended attributes in `BACKING`: each durable attribute is the same
//! attribute on the backing inode, so the backing tree stays a plain copy
//! of the durable state (`getfattr -d` on it shows them).
//!
//! * Only the namespaces durafs stores are read back (`user.`, `trusted.`):
//!   labels the host itself puts on backing files (`security.selinux`) never
//!   reach the model.
//! * `trusted.` on the host needs `CAP_SYS_ADMIN`: a daemon without it finds
//!   the namespace unsupported at [`probe`] and refuses `trusted.` names.
//! * A backing filesystem without extended attributes (vfat, ramfs, tmpfs
//!   before Linux 6.6 for `user.`) is found by [`probe`] at open; durafs then
//!   refuses to set such names (`EOPNOTSUPP`, as that filesystem would)
//!   rather than accept what no fsync could make durable.
//!
//! Regular files are changed through their open descriptor (`fsetxattr`).
//! Other kinds are reached as `/proc/self/fd/N` of an `O_PATH` handle on
//! the inode itself (`set_at`, `list_at`): a FIFO or device cannot be
//! opened for this, `O_PATH` descriptors refuse `fsetxattr`, and a path
//! joined from the backing root may exceed `PATH_MAX` (module `loc`). The
//! path-following calls on that magic link act on the inode the handle
//! holds, a symlink included, never on what a symlink points to.

use bytes::Bytes;
use std::collections::BTreeMap;
use std::ffi::CStr;
use std::ffi::CString;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// The namespaces stored in `BACKING`.
const STORED: [&[u8]; 2] = [b"user.", b"trusted."];

/// Which namespaces the backing filesystem holds, probed once at open.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Support {
    pub user: bool,
    pub trusted: bool,
    /// The largest name plus value length one attribute alone may have
    /// (ext4 without `ea_inode`: about 4 KiB, one block; tmpfs, xfs: the
    /// Linux limit).
    pub max_entry: usize,
}

impl Support {
    /// True when the backing filesystem can hold attribute `name`.
    pub fn allows(&self, name: &[u8]) -> bool {
        (self.user && name.starts_with(b"user.")) || (self.trusted && name.starts_with(b"trusted."))
    }
}

fn cname(name: &[u8]) -> io::Result<CString> {
    CString::new(name).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))
}

fn cpath(p: &Path) -> io::Result<CString> {
    CString::new(p.as_os_str().as_bytes()).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))
}

fn check(r: libc::c_int) -> io::Result<()> {
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// A removal of an attribute that is not there already holds.
fn absent_ok(r: io::Result<()>) -> io::Result<()> {
    match r {
        Err(e) if e.raw_os_error() == Some(libc::ENODATA) => Ok(()),
        other => other,
    }
}

/// Sets (`Some`) or removes (`None`) attribute `name` of open file `f`.
pub fn fset(f: &File, name: &[u8], value: Option<&[u8]>) -> io::Result<()> {
    let n = cname(name)?;
    let fd = f.as_raw_fd();
    match value {
        // SAFETY: a valid descriptor, a NUL-terminated name and a buffer of
        // the length passed.
        Some(v) => check(unsafe { libc::fsetxattr(fd, n.as_ptr(), v.as_ptr().cast(), v.len(), 0) }),
        // SAFETY: a valid descriptor and a NUL-terminated name.
        None => absent_ok(check(unsafe { libc::fremovexattr(fd, n.as_ptr()) })),
    }
}

/// As [`fset`], on `path` itself (a symlink is not followed).
pub fn lset(path: &Path, name: &[u8], value: Option<&[u8]>) -> io::Result<()> {
    set_c(&cpath(path)?, false, name, value)
}

/// As [`fset`], on the inode `dir/name` itself (whatever its kind).
pub(super) fn set_at(
    dir: BorrowedFd<'_>,
    node: &CStr,
    name: &[u8],
    value: Option<&[u8]>,
) -> io::Result<()> {
    let fd = super::at::node(dir, node)?;
    set_c(&proc_path(fd.as_raw_fd())?, true, name, value)
}

/// `/proc/self/fd/<fd>`.
fn proc_path(fd: libc::c_int) -> io::Result<CString> {
    cname(format!("/proc/self/fd/{fd}").as_bytes())
}

/// Sets or removes attribute `name` of path `p`; `follow`: the `set`
/// rather than the `lset` calls (for `/proc/self/fd` links).
fn set_c(p: &CStr, follow: bool, name: &[u8], value: Option<&[u8]>) -> io::Result<()> {
    let n = cname(name)?;
    // SAFETY (all four calls): NUL-terminated path and name, and a buffer
    // of the length passed.
    match (value, follow) {
        (Some(v), false) => {
            check(unsafe { libc::lsetxattr(p.as_ptr(), n.as_ptr(), v.as_ptr().cast(), v.len(), 0) })
        }
        (Some(v), true) => {
            check(unsafe { libc::setxattr(p.as_ptr(), n.as_ptr(), v.as_ptr().cast(), v.len(), 0) })
        }
        (None, false) => absent_ok(check(unsafe { libc::lremovexattr(p.as_ptr(), n.as_ptr()) })),
        (None, true) => absent_ok(check(unsafe { libc::removexattr(p.as_ptr(), n.as_ptr()) })),
    }
}

/// The stored attributes (`user.`, `trusted.`) of `path` (not following a
/// symlink); none when its filesystem has no extended attributes. Tests
/// only: the store reads through `list_at`.
#[cfg(test)]
pub(crate) fn list(path: &Path) -> io::Result<BTreeMap<Vec<u8>, Bytes>> {
    list_c(&cpath(path)?, false)
}

/// The stored attributes of the inode `dir/name` itself (whatever its kind).
pub(super) fn list_at(dir: BorrowedFd<'_>, node: &CStr) -> io::Result<BTreeMap<Vec<u8>, Bytes>> {
    let fd = super::at::node(dir, node)?;
    list_c(&proc_path(fd.as_raw_fd())?, true)
}

fn list_c(p: &CStr, follow: bool) -> io::Result<BTreeMap<Vec<u8>, Bytes>> {
    let mut out = BTreeMap::new();
    let names = match read_sized(|buf, len| {
        // SAFETY: NUL-terminated path; `buf` holds `len` bytes (or is null
        // with 0 for the size query).
        unsafe {
            if follow {
                libc::listxattr(p.as_ptr(), buf.cast(), len)
            } else {
                libc::llistxattr(p.as_ptr(), buf.cast(), len)
            }
        }
    }) {
        Ok(n) => n,
        Err(e) if matches!(e.raw_os_error(), Some(libc::ENOTSUP)) => return Ok(out),
        Err(e) => return Err(e),
    };
    for name in names.split(|b| *b == 0).filter(|n| !n.is_empty()) {
        if !STORED.iter().any(|s| name.starts_with(s)) {
            continue;
        }
        let n = cname(name)?;
        let value = match read_sized(|buf, len| {
            // SAFETY: as above, with a NUL-terminated name.
            unsafe {
                if follow {
                    libc::getxattr(p.as_ptr(), n.as_ptr(), buf.cast(), len)
                } else {
                    libc::lgetxattr(p.as_ptr(), n.as_ptr(), buf.cast(), len)
                }
            }
        }) {
            Ok(v) => v,
            // Removed meanwhile: nothing else changes BACKING, but a name
            // the host lists and then cannot read is simply not there.
            Err(e) if e.raw_os_error() == Some(libc::ENODATA) => continue,
            Err(e) => return Err(e),
        };
        out.insert(name.to_vec(), Bytes::from(value));
    }
    Ok(out)
}

/// Calls a `*listxattr` / `*getxattr` style `f(buf, len)` with a buffer
/// of the size it asks for, retrying while the answer grows (`ERANGE`).
fn read_sized(f: impl Fn(*mut u8, usize) -> libc::ssize_t) -> io::Result<Vec<u8>> {
    for _ in 0..8 {
        let want = f(std::ptr::null_mut(), 0);
        let want = usize::try_from(want).map_err(|_| io::Error::last_os_error())?;
        let mut buf = vec![0u8; want];
        let got = f(buf.as_mut_ptr(), buf.len());
        match usize::try_from(got) {
            Ok(n) => {
                buf.truncate(n);
                return Ok(buf);
            }
            Err(_) => {
                let e = io::Error::last_os_error();
                if e.raw_os_error() != Some(libc::ERANGE) {
                    return Err(e);
                }
            }
        }
    }
    Err(io::Error::from_raw_os_error(libc::ERANGE))
}

/// Copies the stored attributes of inode `from` to inode `to` (each a name
/// in an open directory; symlinks not followed).
pub(super) fn copy(from: &super::loc::Loc, to: &super::loc::Loc) -> io::Result<()> {
    for (name, value) in list_at(from.fd(), from.name())? {
        set_at(to.fd(), to.name(), &name, Some(&value))?;
    }
    Ok(())
}

/// Which namespaces the filesystem holding directory `dir` stores: sets and
/// removes one attribute of each on a scratch file in `dir`, then removes
/// the file.
pub fn probe(dir: &Path) -> io::Result<Support> {
    let path = dir.join("xattr-probe");
    let f = OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .open(&path)?;
    let try_ns = |name: &[u8]| match fset(&f, name, Some(b"1")) {
        Ok(()) => fset(&f, name, None).map(|()| true),
        // Not supported there, or (trusted.) not permitted to this process.
        Err(e) if matches!(e.raw_os_error(), Some(libc::ENOTSUP | libc::EPERM)) => Ok(false),
        Err(e) => Err(e),
    };
    let (user_name, trusted_name) = (&b"user.durafs.probe"[..], &b"trusted.durafs.probe"[..]);
    let support = try_ns(user_name).and_then(|user| {
        let trusted = try_ns(trusted_name)?;
        let max_entry = match (user, trusted) {
            (true, _) => user_name.len() + max_value(&f, user_name)?,
            (false, true) => trusted_name.len() + max_value(&f, trusted_name)?,
            (false, false) => 0,
        };
        Ok(Support {
            user,
            trusted,
            max_entry,
        })
    });
    drop(f);
    let removed = std::fs::remove_file(&path);
    let support = support?;
    removed?;
    Ok(support)
}

/// The largest value attribute `name` of `f` may take (up to the Linux
/// limit, 64 KiB): a binary search, the attribute removed again.
fn max_value(f: &File, name: &[u8]) -> io::Result<usize> {
    // Invariant: a value of `lo` bytes is accepted, of `hi` bytes refused.
    let (mut lo, mut hi) = (0usize, crate::model::XATTR_SIZE_MAX + 1);
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        match fset(f, name, Some(&vec![0u8; mid])) {
            Ok(()) => lo = mid,
            Err(e)
                if matches!(
                    e.raw_os_error(),
                    Some(libc::ENOSPC | libc::E2BIG | libc::ERANGE)
                ) =>
            {
                hi = mid
            }
            Err(e) => return Err(e),
        }
    }
    fset(f, name, None)?;
    Ok(lo)
}
