//! Safe wrappers for the system calls that more than one place of the
//! workspace makes (the daemon, the `durafs` tool, the tests): each checks
//! its arguments, makes the call and turns `-1` into an [`io::Error`].

use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// `path` as a C string; a path holding a NUL byte is `InvalidInput`.
pub fn cstring(path: &Path) -> io::Result<CString> {
    CString::new(path.as_os_str().as_bytes()).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{}: path contains a NUL byte", path.display()),
        )
    })
}

/// The effective user and group ids of this process.
pub fn effective_ids() -> (u32, u32) {
    // SAFETY: plain getters; they cannot fail.
    unsafe { (libc::geteuid(), libc::getegid()) }
}

/// True when this process runs as root (effective uid 0).
pub fn is_root() -> bool {
    effective_ids().0 == 0
}

/// `umount2(2)` of `path`: at once, or with `detach` lazily (the mount
/// dies once nothing uses it). A busy mount is `EBUSY`
/// ([`io::ErrorKind::ResourceBusy`]).
pub fn umount(path: &Path, detach: bool) -> io::Result<()> {
    let c = cstring(path)?;
    let flags = if detach { libc::MNT_DETACH } else { 0 };
    // SAFETY: a valid NUL-terminated path.
    if unsafe { libc::umount2(c.as_ptr(), flags) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// True when `e` is `EBUSY`.
pub fn is_busy(e: &io::Error) -> bool {
    e.raw_os_error() == Some(libc::EBUSY)
}

/// True when `e` says a FUSE mount's daemon is gone: `ENOTCONN`, or, for
/// a call made while the kernel was still ending the connection,
/// `ECONNABORTED`, or `ECANCELED` over FUSE io_uring (the rings hold
/// `/dev/fuse` until their asynchronous teardown; a request on its way to a
/// dead daemon's ring is cancelled: seen on Linux 6.18).
pub fn is_disconnected(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::ENOTCONN | libc::ECONNABORTED | libc::ECANCELED)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dead_daemon_shows_as_any_of_the_kernels_disconnect_errors() {
        for e in [libc::ENOTCONN, libc::ECONNABORTED, libc::ECANCELED] {
            assert!(is_disconnected(&io::Error::from_raw_os_error(e)), "{e}");
        }
        for e in [libc::EIO, libc::ENOENT, libc::EBUSY] {
            assert!(!is_disconnected(&io::Error::from_raw_os_error(e)), "{e}");
        }
    }

    #[test]
    fn paths_with_nul_and_missing_mounts_are_errors_not_panics() {
        let nul = Path::new(std::ffi::OsStr::from_bytes(b"a\0b"));
        assert_eq!(
            cstring(nul).unwrap_err().kind(),
            io::ErrorKind::InvalidInput
        );
        assert_eq!(
            umount(nul, false).unwrap_err().kind(),
            io::ErrorKind::InvalidInput
        );
        let dir = tempfile::tempdir().unwrap();
        // Not a mount point: EINVAL (root) or EPERM (others), never success.
        assert!(umount(dir.path(), false).is_err());
        assert_eq!(is_root(), effective_ids().0 == 0);
    }
}
