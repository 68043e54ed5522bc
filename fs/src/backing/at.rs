//! The system calls of the backing store, relative to directory
//! descriptors: every call names one component in one open directory, so a
//! tree of any depth works (a joined path of a deep tree exceeds PATH_MAX,
//! `ENAMETOOLONG`). The only `unsafe` of the store's namespace code is here.
//!
//! Names are single components (no `/`); no call follows a symlink in the
//! last component.

use std::ffi::{CStr, CString};
use std::fs::{File, Metadata};
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// The name of the directory a descriptor is open on, for calls on itself.
pub(super) const DOT: &CStr = c".";

fn cvt(r: libc::c_int) -> io::Result<()> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

fn cvt_fd(r: libc::c_int) -> io::Result<OwnedFd> {
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a descriptor the kernel just returned and nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(r) })
}

/// A name as a C string; a NUL byte in it is `EINVAL`.
pub(super) fn cname(name: &[u8]) -> io::Result<CString> {
    CString::new(name).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))
}

#[cfg(test)]
thread_local! {
    /// `openat` calls made on this thread (tests count them).
    pub(super) static OPENS: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

fn openat(dir: BorrowedFd<'_>, name: &CStr, flags: libc::c_int, mode: u32) -> io::Result<OwnedFd> {
    #[cfg(test)]
    OPENS.with(|n| n.set(n.get() + 1));
    let flags = flags | libc::O_CLOEXEC;
    loop {
        // SAFETY: a valid descriptor and NUL-terminated name.
        let r = unsafe { libc::openat(dir.as_raw_fd(), name.as_ptr(), flags, mode) };
        match cvt_fd(r) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            r => return r,
        }
    }
}

/// Opens the directory at `path` for reading, listing and fsync.
pub(super) fn open_dir_path(path: &Path) -> io::Result<OwnedFd> {
    let c = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    // SAFETY: a NUL-terminated path.
    let r = unsafe {
        libc::open(
            c.as_ptr(),
            libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
        )
    };
    cvt_fd(r)
}

/// A handle on directory `dir/name` for naming things in it (`O_PATH`:
/// needs search permission only, as a path lookup does).
pub(super) fn walk(dir: BorrowedFd<'_>, name: &CStr) -> io::Result<OwnedFd> {
    openat(
        dir,
        name,
        libc::O_PATH | libc::O_DIRECTORY | libc::O_NOFOLLOW,
        0,
    )
}

/// A handle on any inode `dir/name` itself (`O_PATH`, a symlink not
/// followed): what `/proc/self/fd/N` then names (module `xattrs`).
pub(super) fn node(dir: BorrowedFd<'_>, name: &CStr) -> io::Result<OwnedFd> {
    openat(dir, name, libc::O_PATH | libc::O_NOFOLLOW, 0)
}

/// Directory `dir/name` opened for listing and fsync.
pub(super) fn open_dir(dir: BorrowedFd<'_>, name: &CStr) -> io::Result<File> {
    openat(
        dir,
        name,
        libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW,
        0,
    )
    .map(File::from)
}

/// Regular file `dir/name` opened for reading and writing.
pub(super) fn open_file(dir: BorrowedFd<'_>, name: &CStr) -> io::Result<File> {
    openat(dir, name, libc::O_RDWR | libc::O_NOFOLLOW, 0).map(File::from)
}

/// Regular file `dir/name` opened for writing, created if missing.
pub(super) fn open_or_create(dir: BorrowedFd<'_>, name: &CStr, mode: u32) -> io::Result<File> {
    let flags = libc::O_WRONLY | libc::O_CREAT | libc::O_NOFOLLOW;
    openat(dir, name, flags, mode).map(File::from)
}

/// Takes an exclusive `flock` on `f` without waiting (`EWOULDBLOCK` when
/// another holds it); the kernel drops it when the descriptor closes.
pub(super) fn lock_exclusive(f: &File) -> io::Result<()> {
    // SAFETY: a valid open descriptor.
    cvt(unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) })
}

/// Drops the `flock` on `f`'s open file description, also for every copy
/// of the descriptor a forked child still holds.
pub(super) fn unlock(f: &File) -> io::Result<()> {
    // SAFETY: a valid open descriptor.
    cvt(unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_UN) })
}

/// Creates the empty regular file `dir/name` (it must not exist), opened
/// for reading and writing.
pub(super) fn create_file(dir: BorrowedFd<'_>, name: &CStr, mode: u32) -> io::Result<File> {
    let flags = libc::O_RDWR | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW;
    openat(dir, name, flags, mode).map(File::from)
}

/// Sets the owner of the open file `f`.
pub(super) fn fchown(f: &File, uid: u32, gid: u32) -> io::Result<()> {
    // SAFETY: a valid open descriptor.
    cvt(unsafe { libc::fchown(f.as_raw_fd(), uid, gid) })
}

/// Sets the permission bits of the open file `f`.
pub(super) fn fchmod(f: &File, mode: u32) -> io::Result<()> {
    // SAFETY: a valid open descriptor.
    cvt(unsafe { libc::fchmod(f.as_raw_fd(), mode as libc::mode_t) })
}

/// Sets atime and mtime of the open file `f`.
pub(super) fn futimens(f: &File, atime: libc::timespec, mtime: libc::timespec) -> io::Result<()> {
    let times = [atime, mtime];
    // SAFETY: a valid open descriptor and two timespecs.
    cvt(unsafe { libc::futimens(f.as_raw_fd(), times.as_ptr()) })
}

pub(super) fn mkdir(dir: BorrowedFd<'_>, name: &CStr, mode: u32) -> io::Result<()> {
    // SAFETY: a valid descriptor and NUL-terminated name.
    cvt(unsafe { libc::mkdirat(dir.as_raw_fd(), name.as_ptr(), mode as libc::mode_t) })
}

/// `mknodat`: `mode` holds the file type bits.
pub(super) fn mknod(dir: BorrowedFd<'_>, name: &CStr, mode: u32, rdev: u64) -> io::Result<()> {
    // SAFETY: a valid descriptor and NUL-terminated name.
    cvt(unsafe {
        libc::mknodat(
            dir.as_raw_fd(),
            name.as_ptr(),
            mode as libc::mode_t,
            rdev as libc::dev_t,
        )
    })
}

pub(super) fn symlink(target: &CStr, dir: BorrowedFd<'_>, name: &CStr) -> io::Result<()> {
    // SAFETY: NUL-terminated strings and a valid descriptor.
    cvt(unsafe { libc::symlinkat(target.as_ptr(), dir.as_raw_fd(), name.as_ptr()) })
}

/// A hard link `to_dir/to` of `from_dir/from` (a symlink itself, never
/// its target).
pub(super) fn link(
    from_dir: BorrowedFd<'_>,
    from: &CStr,
    to_dir: BorrowedFd<'_>,
    to: &CStr,
) -> io::Result<()> {
    // SAFETY: valid descriptors and NUL-terminated names.
    cvt(unsafe {
        libc::linkat(
            from_dir.as_raw_fd(),
            from.as_ptr(),
            to_dir.as_raw_fd(),
            to.as_ptr(),
            0,
        )
    })
}

fn renameat2(
    from_dir: BorrowedFd<'_>,
    from: &CStr,
    to_dir: BorrowedFd<'_>,
    to: &CStr,
    flags: libc::c_uint,
) -> io::Result<()> {
    // SAFETY: valid descriptors and NUL-terminated names.
    cvt(unsafe {
        libc::renameat2(
            from_dir.as_raw_fd(),
            from.as_ptr(),
            to_dir.as_raw_fd(),
            to.as_ptr(),
            flags,
        )
    })
}

/// `rename(2)`: atomically replaces `to_dir/to` if it exists.
pub(super) fn rename(
    from_dir: BorrowedFd<'_>,
    from: &CStr,
    to_dir: BorrowedFd<'_>,
    to: &CStr,
) -> io::Result<()> {
    renameat2(from_dir, from, to_dir, to, 0)
}

/// Swaps two names atomically (`RENAME_EXCHANGE`).
pub(super) fn exchange(
    a_dir: BorrowedFd<'_>,
    a: &CStr,
    b_dir: BorrowedFd<'_>,
    b: &CStr,
) -> io::Result<()> {
    renameat2(a_dir, a, b_dir, b, libc::RENAME_EXCHANGE)
}

/// Removes the non-directory `dir/name`.
pub(super) fn unlink(dir: BorrowedFd<'_>, name: &CStr) -> io::Result<()> {
    // SAFETY: a valid descriptor and NUL-terminated name.
    cvt(unsafe { libc::unlinkat(dir.as_raw_fd(), name.as_ptr(), 0) })
}

fn rmdir(dir: BorrowedFd<'_>, name: &CStr) -> io::Result<()> {
    // SAFETY: a valid descriptor and NUL-terminated name.
    cvt(unsafe { libc::unlinkat(dir.as_raw_fd(), name.as_ptr(), libc::AT_REMOVEDIR) })
}

/// The metadata of `dir/name` itself (a symlink is not followed).
pub(super) fn lstat(dir: BorrowedFd<'_>, name: &CStr) -> io::Result<Metadata> {
    let fd = openat(dir, name, libc::O_PATH | libc::O_NOFOLLOW, 0)?;
    File::from(fd).metadata()
}

pub(super) fn lchown(dir: BorrowedFd<'_>, name: &CStr, uid: u32, gid: u32) -> io::Result<()> {
    // SAFETY: a valid descriptor and NUL-terminated name.
    cvt(unsafe {
        libc::fchownat(
            dir.as_raw_fd(),
            name.as_ptr(),
            uid,
            gid,
            libc::AT_SYMLINK_NOFOLLOW,
        )
    })
}

/// Sets the permission bits of `dir/name`, which must not be a symlink
/// (Linux cannot chmod a symlink; `fchmodat` would follow it).
pub(super) fn chmod(dir: BorrowedFd<'_>, name: &CStr, mode: u32) -> io::Result<()> {
    // SAFETY: a valid descriptor and NUL-terminated name.
    cvt(unsafe { libc::fchmodat(dir.as_raw_fd(), name.as_ptr(), mode as libc::mode_t, 0) })
}

/// Sets atime and mtime of `dir/name` itself (never a symlink's target).
pub(super) fn utimens(
    dir: BorrowedFd<'_>,
    name: &CStr,
    atime: libc::timespec,
    mtime: libc::timespec,
) -> io::Result<()> {
    let times = [atime, mtime];
    // SAFETY: a valid descriptor, a NUL-terminated name and two timespecs.
    cvt(unsafe {
        libc::utimensat(
            dir.as_raw_fd(),
            name.as_ptr(),
            times.as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    })
}

/// The target of symlink `dir/name`.
pub(super) fn readlink(dir: BorrowedFd<'_>, name: &CStr) -> io::Result<Vec<u8>> {
    let mut buf = vec![0u8; 256];
    loop {
        // SAFETY: a valid descriptor, a NUL-terminated name and a buffer of
        // `buf.len()` bytes.
        let r = unsafe {
            libc::readlinkat(
                dir.as_raw_fd(),
                name.as_ptr(),
                buf.as_mut_ptr().cast(),
                buf.len(),
            )
        };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
        let n = r as usize;
        if n < buf.len() {
            buf.truncate(n);
            return Ok(buf);
        }
        buf.resize(buf.len() * 2, 0);
    }
}

/// The names in directory `dir` (without `.` and `..`), in the order the
/// host lists them.
pub(super) fn list(dir: BorrowedFd<'_>) -> io::Result<Vec<Vec<u8>>> {
    let fd = openat(dir, DOT, libc::O_RDONLY | libc::O_DIRECTORY, 0)?;
    let raw = std::os::fd::IntoRawFd::into_raw_fd(fd);
    // SAFETY: `raw` is an open directory descriptor, owned from here by
    // the DIR stream (closedir closes it).
    let stream = unsafe { libc::fdopendir(raw) };
    if stream.is_null() {
        let e = io::Error::last_os_error();
        // SAFETY: fdopendir failed, so `raw` is still ours.
        drop(unsafe { OwnedFd::from_raw_fd(raw) });
        return Err(e);
    }
    let mut names = Vec::new();
    let res = loop {
        // errno tells the end of the stream from an error.
        // SAFETY: errno is thread-local.
        unsafe { *libc::__errno_location() = 0 };
        // SAFETY: a valid stream, used by this thread only.
        let ent = unsafe { libc::readdir64(stream) };
        if ent.is_null() {
            let e = io::Error::last_os_error();
            break if e.raw_os_error() == Some(0) {
                Ok(())
            } else {
                Err(e)
            };
        }
        // SAFETY: `d_name` of a returned entry is NUL-terminated and valid
        // until the next readdir on the stream.
        let name = unsafe { CStr::from_ptr((*ent).d_name.as_ptr()) }.to_bytes();
        if name != b"." && name != b".." {
            names.push(name.to_vec());
        }
    };
    // SAFETY: a valid stream, closed once.
    unsafe { libc::closedir(stream) };
    res.map(|()| names)
}

/// Removes `dir/name` and, for a directory, everything beneath it; one
/// descriptor is open per level of depth.
pub(super) fn remove_all(dir: BorrowedFd<'_>, name: &CStr) -> io::Result<()> {
    if !lstat(dir, name)?.is_dir() {
        return unlink(dir, name);
    }
    let sub = walk(dir, name)?;
    for n in list(std::os::fd::AsFd::as_fd(&sub))? {
        remove_all(std::os::fd::AsFd::as_fd(&sub), &cname(&n)?)?;
    }
    drop(sub);
    rmdir(dir, name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;
    use std::os::unix::fs::MetadataExt;

    /// A tree deeper than PATH_MAX is built, listed and removed through
    /// descriptors.
    #[test]
    fn calls_work_below_path_max() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let root = open_dir_path(tmp.path()).expect("root");
        let long = cname(&[b'x'; 255]).expect("name");
        let mut cur = walk(root.as_fd(), DOT).expect("dot");
        for _ in 0..20 {
            mkdir(cur.as_fd(), &long, 0o755).expect("mkdir");
            cur = walk(cur.as_fd(), &long).expect("walk");
        }
        drop(create_file(cur.as_fd(), c"f", 0o644).expect("create"));
        symlink(c"f", cur.as_fd(), c"l").expect("symlink");
        link(cur.as_fd(), c"f", cur.as_fd(), c"g").expect("link");
        assert_eq!(readlink(cur.as_fd(), c"l").expect("readlink"), b"f");
        assert_eq!(lstat(cur.as_fd(), c"g").expect("stat").nlink(), 2);
        let mut names = list(cur.as_fd()).expect("list");
        names.sort();
        assert_eq!(names, [b"f".to_vec(), b"g".to_vec(), b"l".to_vec()]);
        exchange(cur.as_fd(), c"f", cur.as_fd(), c"l").expect("exchange");
        assert!(lstat(cur.as_fd(), c"f").expect("f").is_symlink());
        open_dir(cur.as_fd(), DOT)
            .and_then(|d| d.sync_all())
            .expect("fsync");
        remove_all(root.as_fd(), &long).expect("remove_all");
        assert!(list(root.as_fd()).expect("list").is_empty());
    }
}
