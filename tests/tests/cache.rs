//! The kernel caches durafs's pages (`KEEP_CACHE`), entries and attributes
//! (long TTLs), and with `--writeback-cache` its writes. These tests check
//! that no cache ever shows what the volume does not hold: every change goes
//! through the kernel, and a cut invalidates everything.

use durafs::fs::FsOptions;
use durafs::model::Persistence;
use durafs::model::crash::Policy;
use durafs::mount::MountOptions;
use durafs_tests::{Vol, fsync_dir};
use std::ffi::CString;
use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Read, Seek, SeekFrom, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::Path;

fn read_all(f: &mut File) -> Vec<u8> {
    let mut out = Vec::new();
    f.seek(SeekFrom::Start(0)).expect("seek");
    f.read_to_end(&mut out).expect("read");
    out
}

#[test]
fn a_second_handle_sees_every_write_of_the_first() {
    let v = Vol::new(Persistence::Posix);
    let mut w = File::create(v.p("f")).expect("create");
    w.write_all(&[b'a'; 8192]).expect("write");
    let mut r = File::open(v.p("f")).expect("open");
    assert_eq!(read_all(&mut r), vec![b'a'; 8192]);
    w.write_all_at(b"bbbb", 4094)
        .expect("overwrite across a page");
    let mut want = vec![b'a'; 8192];
    want[4094..4098].copy_from_slice(b"bbbb");
    assert_eq!(read_all(&mut r), want);
    drop(r);
    let mut again = File::open(v.p("f")).expect("reopen");
    assert_eq!(read_all(&mut again), want);
}

#[test]
fn truncate_and_unlink_through_one_name_show_through_a_hard_link() {
    let v = Vol::new(Persistence::Posix);
    fs::write(v.p("a"), vec![b'x'; 10_000]).expect("write a");
    fs::hard_link(v.p("a"), v.p("b")).expect("link");
    assert_eq!(fs::read(v.p("b")).expect("read b").len(), 10_000);
    assert_eq!(fs::metadata(v.p("b")).expect("stat b").nlink(), 2);
    OpenOptions::new()
        .write(true)
        .open(v.p("a"))
        .expect("open a")
        .set_len(100)
        .expect("truncate a");
    assert_eq!(fs::metadata(v.p("b")).expect("stat b").len(), 100);
    assert_eq!(fs::read(v.p("b")).expect("read b"), vec![b'x'; 100]);
    fs::remove_file(v.p("a")).expect("unlink a");
    assert_eq!(fs::metadata(v.p("b")).expect("stat b").nlink(), 1);
    assert_eq!(
        fs::metadata(v.p("a")).map_err(|e| e.kind()).err(),
        Some(ErrorKind::NotFound)
    );
}

#[test]
fn rename_over_a_cached_file_shows_the_new_content_at_the_name() {
    let v = Vol::new(Persistence::Posix);
    fs::write(v.p("x"), b"old content").expect("write x");
    fs::write(v.p("y"), b"new").expect("write y");
    assert_eq!(fs::read(v.p("x")).expect("read x"), b"old content");
    fs::rename(v.p("y"), v.p("x")).expect("rename");
    assert_eq!(fs::read(v.p("x")).expect("read x"), b"new");
    assert_eq!(fs::metadata(v.p("x")).expect("stat x").len(), 3);
    assert_eq!(
        fs::metadata(v.p("y")).map_err(|e| e.kind()).err(),
        Some(ErrorKind::NotFound)
    );
}

/// Regression: pages cached across opens must not outlive a cut. The file
/// is durable with `durable`, then overwritten (unsynced) and read, so the
/// kernel caches the unsynced bytes; after the cut and a remount at the same
/// place the name must read the durable bytes.
#[test]
fn cut_and_remount_read_the_durable_bytes_not_cached_ones() {
    let mut v = Vol::new(Persistence::Posix);
    let mut f = File::create(v.p("f")).expect("create");
    f.write_all(b"durable").expect("write");
    f.sync_all().expect("fsync");
    fsync_dir(&v.mnt);
    f.write_all_at(b"UNSYNC!", 0).expect("overwrite");
    assert_eq!(fs::read(v.p("f")).expect("read"), b"UNSYNC!");
    drop(f);
    v.cut(Policy::DropAll);
    v.remount();
    assert_eq!(fs::read(v.p("f")).expect("read after remount"), b"durable");
}

fn xattr_errno(path: &Path, name: &std::ffi::CStr, set: bool) -> Option<i32> {
    let p = CString::new(path.as_os_str().as_bytes()).expect("path");
    let mut buf = [0u8; 16];
    // SAFETY: valid NUL-terminated strings and a buffer of the given size.
    let rc = unsafe {
        if set {
            libc::setxattr(p.as_ptr(), name.as_ptr(), buf.as_ptr().cast(), 1, 0) as isize
        } else {
            libc::getxattr(
                p.as_ptr(),
                name.as_ptr(),
                buf.as_mut_ptr().cast(),
                buf.len(),
            )
        }
    };
    (rc < 0).then(|| std::io::Error::last_os_error().raw_os_error().unwrap_or(0))
}

#[test]
fn security_xattrs_are_unsupported_every_time_and_user_xattrs_work() {
    let v = Vol::new(Persistence::Posix);
    fs::write(v.p("f"), b"data").expect("write");
    let (user, security) = (c"user.durafs", c"security.durafs");
    assert_eq!(xattr_errno(&v.p("f"), user, false), Some(libc::ENODATA));
    for _ in 0..2 {
        assert_eq!(xattr_errno(&v.p("f"), security, false), Some(libc::ENODATA));
        assert_eq!(
            xattr_errno(&v.p("f"), security, true),
            Some(libc::EOPNOTSUPP)
        );
        assert_eq!(xattr_errno(&v.p("f"), user, true), None);
        assert_eq!(xattr_errno(&v.p("f"), user, false), None);
    }
    // Writes still work (with HANDLE_KILLPRIV_V2 the kernel no longer asks
    // per write whether set-uid bits must be dropped).
    let mut f = OpenOptions::new()
        .append(true)
        .open(v.p("f"))
        .expect("open");
    f.write_all(b"+more").expect("append");
    assert_eq!(fs::read(v.p("f")).expect("read"), b"data+more");
}

fn writeback_vol() -> Vol {
    Vol::with_mount(
        FsOptions::default(),
        MountOptions {
            writeback_cache: true,
            ..MountOptions::default()
        },
    )
}

#[test]
fn writeback_cache_sends_writes_by_close_and_a_cut_keeps_only_fsynced_ones() {
    let mut v = writeback_vol();
    let mut d = File::create(v.p("durable")).expect("create durable");
    let mut u = File::create(v.p("unsynced")).expect("create unsynced");
    fsync_dir(&v.mnt);
    for i in 0..64u8 {
        d.write_all(&[i; 100]).expect("write durable");
        u.write_all(&[i; 100]).expect("write unsynced");
    }
    d.sync_all().expect("fsync");
    drop(u);
    // close sent the cached writes: the volume reports them.
    let rep = v.fs().status();
    let file = rep
        .files
        .iter()
        .find(|r| r.path == "unsynced")
        .expect("unsynced in the report");
    assert!(file.unsynced_bytes >= 6400, "{file:?}");
    assert!(rep.files.iter().all(|r| r.path != "durable"), "{rep:?}");
    let mut want = Vec::new();
    for i in 0..64u8 {
        want.extend_from_slice(&[i; 100]);
    }
    drop(d);
    assert_eq!(fs::read(v.p("durable")).expect("durable"), want);
    v.cut(Policy::DropAll);
    v.remount();
    assert_eq!(fs::read(v.p("durable")).expect("durable"), want);
    assert_eq!(fs::read(v.p("unsynced")).expect("unsynced"), b"");
}

#[test]
fn writeback_cache_keeps_partial_page_writes_and_appends_exact() {
    let v = writeback_vol();
    fs::write(v.p("f"), vec![b'.'; 5000]).expect("write");
    let f = OpenOptions::new().write(true).open(v.p("f")).expect("open");
    f.write_all_at(b"hello", 4090).expect("write across a page");
    drop(f);
    let mut a = OpenOptions::new()
        .append(true)
        .open(v.p("f"))
        .expect("open");
    a.write_all(b"tail").expect("append");
    drop(a);
    let mut want = vec![b'.'; 5000];
    want[4090..4095].copy_from_slice(b"hello");
    want.extend_from_slice(b"tail");
    assert_eq!(fs::read(v.p("f")).expect("read"), want);
    assert_eq!(fs::metadata(v.p("f")).expect("stat").len(), 5004);
    v.fs().sync().expect("sync");
    assert_eq!(fs::read(v.backing.join("f")).expect("backing"), want);
}

#[test]
fn writeback_cache_raises_the_mounts_dirty_share() {
    use std::os::unix::fs::MetadataExt;
    let v = writeback_vol();
    let dev = fs::metadata(&v.mnt).expect("stat mnt").dev();
    let path = format!(
        "/sys/class/bdi/{}:{}/max_ratio",
        libc::major(dev),
        libc::minor(dev)
    );
    let ratio = fs::read_to_string(&path).expect("read max_ratio");
    assert_eq!(
        ratio.trim(),
        durafs::mount::DIRTY_SHARE_PERCENT.to_string(),
        "{path}"
    );
}
