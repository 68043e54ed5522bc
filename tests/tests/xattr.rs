//! Extended attributes and `fallocate(FALLOC_FL_ZERO_RANGE)` through a
//! mount: the calls' semantics (flags, size queries, limits, namespaces),
//! durability across a cut (fsync keeps them, fdatasync and nothing do
//! not), a clean remount, copying with `cp -a`, set-ID clearing under
//! `HANDLE_KILLPRIV_V2`, and `O_TMPFILE`'s documented errno.

use durafs::model::Persistence;
use durafs::model::crash::Policy;
use durafs_tests::{Vol, cpath, fsync_dir, fsync_file};
use std::fs::{self, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

fn set(p: &Path, name: &str, value: &[u8], flags: i32) -> io::Result<()> {
    let (c, n) = (cpath(p), std::ffi::CString::new(name).expect("name"));
    // SAFETY: NUL-terminated strings and a buffer of the length passed.
    let r = unsafe {
        libc::setxattr(
            c.as_ptr(),
            n.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            flags,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// `getxattr` with a buffer of `size` bytes: the value, or the size alone
/// when `size` is 0.
fn get_sized(p: &Path, name: &str, size: usize) -> io::Result<(usize, Vec<u8>)> {
    let (c, n) = (cpath(p), std::ffi::CString::new(name).expect("name"));
    let mut buf = vec![0u8; size];
    let ptr = if size == 0 {
        std::ptr::null_mut()
    } else {
        buf.as_mut_ptr()
    };
    // SAFETY: as above; a null buffer with size 0 is the size query.
    let r = unsafe { libc::getxattr(c.as_ptr(), n.as_ptr(), ptr.cast(), size) };
    let n = usize::try_from(r).map_err(|_| io::Error::last_os_error())?;
    buf.truncate(n.min(size));
    Ok((n, buf))
}

fn get(p: &Path, name: &str) -> io::Result<Vec<u8>> {
    get_sized(p, name, 65536).map(|(_, v)| v)
}

fn remove(p: &Path, name: &str) -> io::Result<()> {
    let (c, n) = (cpath(p), std::ffi::CString::new(name).expect("name"));
    // SAFETY: NUL-terminated strings.
    let r = unsafe { libc::removexattr(c.as_ptr(), n.as_ptr()) };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

fn list(p: &Path) -> io::Result<Vec<String>> {
    let c = cpath(p);
    let mut buf = vec![0u8; 65536];
    // SAFETY: a NUL-terminated path and a buffer of the length passed.
    let r = unsafe { libc::listxattr(c.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    let n = usize::try_from(r).map_err(|_| io::Error::last_os_error())?;
    Ok(buf[..n]
        .split(|b| *b == 0)
        .filter(|s| !s.is_empty())
        .map(|s| String::from_utf8_lossy(s).into_owned())
        .collect())
}

fn errno(r: io::Result<impl std::fmt::Debug>) -> i32 {
    r.expect_err("must fail").raw_os_error().expect("an errno")
}

#[test]
fn xattr_calls_follow_linux_semantics() {
    let v = Vol::new(Persistence::Posix);
    let f = v.p("f");
    fs::write(&f, b"x").expect("create");
    assert_eq!(errno(get(&f, "user.k")), libc::ENODATA);
    set(&f, "user.k", b"value", 0).expect("set");
    assert_eq!(get(&f, "user.k").expect("get"), b"value");
    assert_eq!(get_sized(&f, "user.k", 0).expect("size query").0, 5);
    assert_eq!(errno(get_sized(&f, "user.k", 2)), libc::ERANGE);
    assert_eq!(
        errno(set(&f, "user.k", b"v2", libc::XATTR_CREATE)),
        libc::EEXIST
    );
    assert_eq!(
        errno(set(&f, "user.new", b"v", libc::XATTR_REPLACE)),
        libc::ENODATA
    );
    set(&f, "user.k", b"v2", libc::XATTR_REPLACE).expect("replace");
    set(&f, "user.empty", b"", libc::XATTR_CREATE).expect("empty value");
    assert_eq!(get(&f, "user.empty").expect("get empty"), b"");
    set(&f, "trusted.t", b"root only", 0).expect("trusted as root");
    let mut names = list(&f).expect("list");
    names.sort();
    assert_eq!(names, ["trusted.t", "user.empty", "user.k"]);
    remove(&f, "user.k").expect("remove");
    assert_eq!(errno(remove(&f, "user.k")), libc::ENODATA);
    assert_eq!(errno(get(&f, "user.k")), libc::ENODATA);
    // Limits as Linux: the value at most 64 KiB, the name at most 255.
    // Within them, what the backing filesystem holds: a 64 KiB value is
    // refused with ENOSPC where the host refuses it too (ext4 without
    // ea_inode), never accepted and then lost at fsync.
    let host = v.backing.parent().expect("parent").join("host-probe");
    fs::write(&host, b"").expect("host file");
    let big = vec![7u8; 65536];
    match set(&host, "user.big", &big, 0) {
        Ok(()) => {
            set(&f, "user.big", &big, 0).expect("64 KiB value");
            assert_eq!(get(&f, "user.big").expect("big").len(), 65536);
        }
        Err(e) => {
            assert_eq!(e.raw_os_error(), Some(libc::ENOSPC), "host: {e}");
            assert_eq!(errno(set(&f, "user.big", &big, 0)), libc::ENOSPC);
        }
    }
    set(&f, "user.mid", &[5u8; 2000], 0).expect("2000-byte value");
    assert_eq!(
        errno(set(&f, "user.big", &vec![7u8; 65537], 0)),
        libc::E2BIG
    );
    let long = format!("user.{}", "n".repeat(250));
    set(&f, &long, b"v", 0).expect("255-byte name");
    assert_eq!(errno(set(&f, &format!("{long}n"), b"v", 0)), libc::ERANGE);
    // Namespaces durafs does not store.
    assert_eq!(errno(set(&f, "security.test", b"v", 0)), libc::EOPNOTSUPP);
    // A well-formed ACL (user::rw- group::r-- other::r--): no ACL support.
    let acl = [
        2, 0, 0, 0, 1, 0, 6, 0, 255, 255, 255, 255, 4, 0, 4, 0, 255, 255, 255, 255, 0x20, 0, 4, 0,
        255, 255, 255, 255,
    ];
    assert_eq!(
        errno(set(&f, "system.posix_acl_access", &acl, 0)),
        libc::EOPNOTSUPP
    );
    // Directories hold them too; symlinks refuse user.* (the kernel's rule).
    let d = v.p("d");
    fs::create_dir(&d).expect("mkdir");
    set(&d, "user.dir", b"dv", 0).expect("set on a directory");
    assert_eq!(get(&d, "user.dir").expect("get dir"), b"dv");
    // The control file has none and takes none.
    let ctl = v.p(".durafs");
    assert_eq!(errno(get(&ctl, "user.k")), libc::ENODATA);
    assert_eq!(errno(set(&ctl, "user.k", b"v", 0)), libc::EOPNOTSUPP);
    assert_eq!(list(&ctl).expect("list control"), Vec::<String>::new());
}

/// The durable xattrs of `rel` after a cut with `policy` and a remount.
fn after_cut(mut v: Vol, rel: &str, name: &str) -> io::Result<Vec<u8>> {
    v.cut(Policy::DropAll);
    v.remount();
    get(&v.p(rel), name)
}

fn file_with_xattr(durable_first: bool) -> (Vol, std::fs::File) {
    let v = Vol::new(Persistence::Posix);
    let p = v.p("f");
    let f = OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .open(&p)
        .expect("create");
    f.sync_all().expect("fsync");
    fsync_dir(&v.mnt);
    if durable_first {
        set(&p, "user.k", b"old", 0).expect("set old");
        f.sync_all().expect("fsync old");
    }
    set(&p, "user.k", b"new", 0).expect("set new");
    (v, f)
}

#[test]
fn an_xattr_set_then_fsync_survives_a_cut() {
    let (v, f) = file_with_xattr(false);
    f.sync_all().expect("fsync");
    drop(f);
    assert_eq!(after_cut(v, "f", "user.k").expect("kept"), b"new");
}

#[test]
fn an_xattr_set_then_fdatasync_is_lost_at_a_cut() {
    let (v, f) = file_with_xattr(true);
    f.sync_data().expect("fdatasync");
    drop(f);
    assert_eq!(after_cut(v, "f", "user.k").expect("old kept"), b"old");
}

#[test]
fn an_unsynced_xattr_set_is_lost_and_status_lists_it() {
    let (v, f) = file_with_xattr(false);
    let rep = v.fs().status();
    let file = rep
        .files
        .iter()
        .find(|r| r.path == "f")
        .expect("f reported");
    assert_eq!(file.xattrs_pending, ["user.k"]);
    drop(f);
    assert_eq!(errno(after_cut(v, "f", "user.k")), libc::ENODATA);
}

#[test]
fn an_unsynced_removal_is_undone_by_a_cut() {
    let (v, f) = file_with_xattr(true);
    f.sync_all().expect("fsync new");
    remove(&v.p("f"), "user.k").expect("remove");
    drop(f);
    assert_eq!(after_cut(v, "f", "user.k").expect("kept"), b"new");
}

#[test]
fn a_directory_xattr_is_durable_with_fsyncdir() {
    let v = Vol::new(Persistence::Posix);
    let d = v.p("d");
    fs::create_dir(&d).expect("mkdir");
    fsync_dir(&v.mnt);
    set(&d, "user.dir", b"dv", 0).expect("set");
    fsync_dir(&d);
    assert_eq!(after_cut(v, "d", "user.dir").expect("kept"), b"dv");
}

#[test]
fn xattrs_survive_a_clean_remount_and_are_real_xattrs_in_backing() {
    let mut v = Vol::new(Persistence::Posix);
    fs::write(v.p("f"), b"x").expect("create");
    set(&v.p("f"), "user.k", b"v", 0).expect("set");
    set(&v.p("f"), "trusted.t", b"t", 0).expect("set trusted");
    v.remount();
    assert_eq!(get(&v.p("f"), "user.k").expect("after remount"), b"v");
    assert_eq!(
        get(&v.p("f"), "trusted.t").expect("trusted after remount"),
        b"t"
    );
    assert_eq!(
        get(&v.backing.join("f"), "user.k").expect("in backing"),
        b"v"
    );
}

#[test]
fn cp_a_copies_xattrs_within_the_mount() {
    let v = Vol::new(Persistence::Posix);
    fs::create_dir(v.p("src")).expect("mkdir");
    fs::write(v.p("src/f"), b"data").expect("create");
    set(&v.p("src/f"), "user.k", b"v", 0).expect("set");
    set(&v.p("src"), "user.d", b"dv", 0).expect("set dir");
    let out = Command::new("cp")
        .arg("-a")
        .arg(v.p("src"))
        .arg(v.p("dst"))
        .output()
        .expect("run cp");
    assert!(
        out.status.success(),
        "cp -a: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(get(&v.p("dst/f"), "user.k").expect("copied"), b"v");
    assert_eq!(get(&v.p("dst"), "user.d").expect("copied dir"), b"dv");
    assert_eq!(fs::read(v.p("dst/f")).expect("read"), b"data");
}

/// In a forked child that dropped `CAP_FSETID` (and stays root, the only
/// user the mount serves): appends to `p`; true when the write succeeded.
fn append_without_cap_fsetid(p: &Path) -> bool {
    #[repr(C)]
    struct Header {
        version: u32,
        pid: i32,
    }
    #[repr(C)]
    #[derive(Clone, Copy)]
    struct Data {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }
    const CAP_V3: u32 = 0x2008_0522;
    const CAP_FSETID: u32 = 4;
    let c = cpath(p);
    let mut hdr = Header {
        version: CAP_V3,
        pid: 0,
    };
    let mut data = [Data {
        effective: 0,
        permitted: 0,
        inheritable: 0,
    }; 2];
    // SAFETY: the child makes only raw syscalls on memory prepared before
    // the fork, then `_exit`s.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0);
    if pid == 0 {
        // SAFETY: see above.
        unsafe {
            let hp = std::ptr::addr_of_mut!(hdr);
            let dp = data.as_mut_ptr();
            if libc::syscall(libc::SYS_capget, hp, dp) != 0 {
                libc::_exit(2);
            }
            (*dp).effective &= !(1 << CAP_FSETID);
            if libc::syscall(libc::SYS_capset, hp, dp) != 0 {
                libc::_exit(3);
            }
            let fd = libc::open(c.as_ptr(), libc::O_WRONLY | libc::O_APPEND);
            let ok = fd >= 0 && libc::write(fd, b"more".as_ptr().cast(), 4) == 4;
            libc::_exit(if ok { 0 } else { 1 });
        }
    }
    let mut status = 0;
    // SAFETY: our own child.
    unsafe { libc::waitpid(pid, &mut status, 0) };
    libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0
}

#[test]
fn a_write_without_cap_fsetid_clears_set_id_bits() {
    let v = Vol::new(Persistence::Posix);
    let p = v.p("prog");
    fs::write(&p, b"#!").expect("create");
    fs::set_permissions(&p, fs::Permissions::from_mode(0o6777)).expect("chmod 6777");
    assert!(append_without_cap_fsetid(&p), "the write failed");
    let mode = fs::metadata(&p).expect("stat").permissions().mode() & 0o7777;
    assert_eq!(
        mode, 0o777,
        "set-user-ID and set-group-ID (group exec) cleared"
    );
    // Without group execute the set-group-ID bit stays (as Linux).
    fs::set_permissions(&p, fs::Permissions::from_mode(0o6744)).expect("chmod 6744");
    assert!(append_without_cap_fsetid(&p), "the write failed");
    let mode = fs::metadata(&p).expect("stat").permissions().mode() & 0o7777;
    assert_eq!(mode, 0o2744);
}

#[test]
fn a_chown_clears_set_id_bits_even_by_root() {
    let v = Vol::new(Persistence::Posix);
    let p = v.p("prog");
    fs::write(&p, b"#!").expect("create");
    fs::set_permissions(&p, fs::Permissions::from_mode(0o6755)).expect("chmod 6755");
    std::os::unix::fs::chown(&p, Some(1), None).expect("chown");
    let mode = fs::metadata(&p).expect("stat").permissions().mode() & 0o7777;
    assert_eq!(mode, 0o755);
    // A directory keeps them.
    let d = v.p("d");
    fs::create_dir(&d).expect("mkdir");
    fs::set_permissions(&d, fs::Permissions::from_mode(0o2755)).expect("chmod dir");
    std::os::unix::fs::chown(&d, Some(1), None).expect("chown dir");
    let mode = fs::metadata(&d).expect("stat").permissions().mode() & 0o7777;
    assert_eq!(mode, 0o2755);
}

#[test]
fn fallocate_zero_range_zeroes_and_grows_and_is_lost_unsynced() {
    let mut v = Vol::new(Persistence::Posix);
    let p = v.p("f");
    let f = OpenOptions::new()
        .create(true)
        .truncate(true)
        .read(true)
        .write(true)
        .open(&p)
        .expect("create");
    fs::write(&p, vec![b'a'; 8192]).expect("write");
    fsync_file(&p);
    fsync_dir(&v.mnt);
    let fd = f.as_raw_fd();
    // SAFETY: a valid descriptor.
    let r = unsafe { libc::fallocate(fd, libc::FALLOC_FL_ZERO_RANGE, 4096, 8192) };
    assert_eq!(r, 0, "zero range: {}", io::Error::last_os_error());
    let mut want = vec![b'a'; 4096];
    want.resize(12288, 0);
    assert_eq!(fs::read(&p).expect("read"), want);
    // SAFETY: as above.
    let r = unsafe {
        libc::fallocate(
            fd,
            libc::FALLOC_FL_ZERO_RANGE | libc::FALLOC_FL_KEEP_SIZE,
            0,
            100_000,
        )
    };
    assert_eq!(r, 0, "zero range keep size: {}", io::Error::last_os_error());
    assert_eq!(fs::read(&p).expect("read"), vec![0u8; 12288]);
    drop(f);
    v.cut(Policy::DropAll);
    v.remount();
    assert_eq!(fs::read(v.p("f")).expect("read"), vec![b'a'; 8192]);
}

#[test]
fn fallocate_dash_z_works_and_fsync_keeps_it() {
    let mut v = Vol::new(Persistence::Posix);
    let p = v.p("f");
    fs::write(&p, vec![b'a'; 4096]).expect("write");
    let out = Command::new("fallocate")
        .args(["-z", "-o", "1024", "-l", "1024"])
        .arg(&p)
        .output()
        .expect("run fallocate");
    assert!(
        out.status.success(),
        "fallocate -z: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    fsync_file(&p);
    fsync_dir(&v.mnt);
    v.cut(Policy::DropAll);
    v.remount();
    let mut want = vec![b'a'; 4096];
    want[1024..2048].fill(0);
    assert_eq!(fs::read(v.p("f")).expect("read"), want);
}

#[test]
fn o_tmpfile_fails_with_eopnotsupp() {
    let v = Vol::new(Persistence::Posix);
    let c = cpath(&v.mnt);
    // SAFETY: a NUL-terminated path.
    let fd = unsafe { libc::open(c.as_ptr(), libc::O_TMPFILE | libc::O_RDWR, 0o600) };
    let e = io::Error::last_os_error();
    assert_eq!(fd, -1);
    assert_eq!(e.raw_os_error(), Some(libc::EOPNOTSUPP), "{e}");
}

/// A ramfs mounted for the test's life (it has no extended attributes).
struct Ramfs(std::path::PathBuf);

impl Drop for Ramfs {
    fn drop(&mut self) {
        let c = cpath(&self.0);
        // SAFETY: a NUL-terminated path; failure only leaks a mount.
        unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
    }
}

#[test]
fn a_backing_without_xattrs_refuses_setxattr_with_eopnotsupp() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let backing = tmp.path().join("backing");
    let mnt = tmp.path().join("mnt");
    fs::create_dir(&backing).expect("mkdir backing");
    fs::create_dir(&mnt).expect("mkdir mnt");
    let (src, dst, ty) = (
        cpath(Path::new("none")),
        cpath(&backing),
        cpath(Path::new("ramfs")),
    );
    // SAFETY: NUL-terminated strings and no data.
    let r = unsafe { libc::mount(src.as_ptr(), dst.as_ptr(), ty.as_ptr(), 0, std::ptr::null()) };
    assert_eq!(r, 0, "mount ramfs: {}", io::Error::last_os_error());
    let _ramfs = Ramfs(backing.clone());
    let m = durafs_tests::mount_at(&backing, &mnt, durafs::fs::FsOptions::default());
    let f = mnt.join("f");
    fs::write(&f, b"x").expect("create");
    assert_eq!(errno(set(&f, "user.k", b"v", 0)), libc::EOPNOTSUPP);
    assert_eq!(errno(set(&f, "trusted.k", b"v", 0)), libc::EOPNOTSUPP);
    assert_eq!(errno(get(&f, "user.k")), libc::ENODATA);
    assert_eq!(list(&f).expect("list"), Vec::<String>::new());
    drop(m);
}
