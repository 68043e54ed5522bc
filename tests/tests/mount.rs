//! Mounted tests: a real FUSE mount over a fresh backing directory, cuts,
//! and remounts over what the cut left. Each test uses its own temp dirs;
//! `Mounted` unmounts on drop (also when a test panics). Nothing sleeps:
//! every FUSE call returns only after durafs replied.
//!
//! Without `/dev/fuse` these tests fail with a message saying so.

use durafs::fs::{DuraFs, FsOptions};
use durafs::fuse::{MountOptions, Mounted, mount};
use durafs::model::Persistence;
use durafs::model::crash::{CrashOptions, Policy};
use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A volume: a backing directory and a mount point, mounted.
struct Vol {
    // Declared first: unmounts before the directories are removed.
    mounted: Option<Mounted>,
    opts: FsOptions,
    backing: PathBuf,
    mnt: PathBuf,
    _tmp: tempfile::TempDir,
}

fn mount_at(backing: &Path, mnt: &Path, opts: FsOptions) -> Mounted {
    let fs = DuraFs::open(backing, opts)
        .unwrap_or_else(|e| panic!("opening backing {}: {e}", backing.display()));
    mount(Arc::new(fs), mnt, &MountOptions::default()).unwrap_or_else(|e| {
        panic!(
            "cannot mount durafs at {} ({e}); these tests need /dev/fuse and the right to mount \
             (root, or fusermount3)",
            mnt.display()
        )
    })
}

impl Vol {
    fn new(persistence: Persistence) -> Vol {
        let tmp = tempfile::tempdir().expect("tempdir");
        let backing = tmp.path().join("backing");
        let mnt = tmp.path().join("mnt");
        fs::create_dir(&mnt).expect("mkdir mnt");
        let opts = FsOptions {
            persistence,
            real_fsync: false,
        };
        let mounted = mount_at(&backing, &mnt, opts);
        Vol {
            mounted: Some(mounted),
            opts,
            backing,
            mnt,
            _tmp: tmp,
        }
    }

    fn p(&self, rel: &str) -> PathBuf {
        self.mnt.join(rel)
    }

    fn fs(&self) -> &Arc<DuraFs> {
        self.mounted.as_ref().expect("mounted").fs()
    }

    fn cut(&self, policy: Policy) {
        let opts = CrashOptions {
            policy,
            ..CrashOptions::default()
        };
        self.fs().cut(opts).expect("cut");
    }

    /// Unmounts, then mounts a fresh volume over what the backing holds.
    fn remount(&mut self) {
        if let Some(m) = self.mounted.take() {
            m.unmount().expect("unmount");
        }
        self.mounted = Some(mount_at(&self.backing, &self.mnt, self.opts));
    }
}

fn fsync_dir(p: &Path) {
    File::open(p)
        .expect("open dir")
        .sync_all()
        .expect("fsync dir");
}

#[test]
fn only_fsynced_bytes_survive_a_drop_all_cut() {
    let mut v = Vol::new(Persistence::Posix);
    {
        let mut f = File::create(v.p("f")).expect("create");
        f.write_all(b"durable-part").expect("write");
        f.sync_all().expect("fsync");
        fsync_dir(&v.mnt);
        f.write_all(b"-unsynced-tail").expect("write tail");
    }
    assert_eq!(
        fs::read(v.p("f")).expect("read live"),
        b"durable-part-unsynced-tail"
    );
    v.cut(Policy::DropAll);
    let err = fs::read(v.p("f")).expect_err("reads fail after the cut");
    assert_eq!(err.raw_os_error(), Some(libc::EIO), "{err}");
    v.remount();
    assert_eq!(
        fs::read(v.p("f")).expect("read after remount"),
        b"durable-part"
    );
}

#[test]
fn status_reports_the_exact_unsynced_range() {
    let v = Vol::new(Persistence::Posix);
    let mut f = File::create(v.p("f")).expect("create");
    f.write_all(b"0123456789ab").expect("write");
    f.sync_all().expect("fsync");
    f.write_all(b"cdefghijklmnop").expect("write tail");
    let rep = v.fs().status();
    let file = rep
        .files
        .iter()
        .find(|r| r.path == "f")
        .expect("f in the report");
    assert_eq!(file.ranges, vec![(12, 26)]);
    assert_eq!(file.unsynced_bytes, 14);
    assert_eq!(file.size_change, Some((12, 26)));
    assert_eq!(
        rep.names.len(),
        1,
        "the create is unsynced: {:?}",
        rep.names
    );
}

/// Creates `f`, writes and fsyncs it (but not the directory), cuts, and
/// returns whether `f` exists after a remount, with its content.
fn fsynced_file_without_dir_fsync(p: Persistence) -> Option<Vec<u8>> {
    let mut v = Vol::new(p);
    {
        let mut f = File::create(v.p("f")).expect("create");
        f.write_all(b"payload").expect("write");
        f.sync_all().expect("fsync file only");
    }
    v.cut(Policy::DropAll);
    v.remount();
    match fs::read(v.p("f")) {
        Ok(d) => Some(d),
        Err(e) if e.kind() == ErrorKind::NotFound => None,
        Err(e) => panic!("reading f after remount: {e}"),
    }
}

#[test]
fn file_fsync_without_dir_fsync_is_lost_under_posix() {
    assert_eq!(fsynced_file_without_dir_fsync(Persistence::Posix), None);
}

#[test]
fn file_fsync_without_dir_fsync_survives_under_journal() {
    assert_eq!(
        fsynced_file_without_dir_fsync(Persistence::Journal),
        Some(b"payload".to_vec())
    );
}

#[test]
fn unsynced_rename_over_a_file_is_undone_by_a_cut() {
    let mut v = Vol::new(Persistence::Posix);
    fs::write(v.p("a"), b"old content").expect("write a");
    fs::write(v.p("b"), b"new content").expect("write b");
    for n in ["a", "b"] {
        OpenOptions::new()
            .write(true)
            .open(v.p(n))
            .expect("open")
            .sync_all()
            .expect("fsync");
    }
    fsync_dir(&v.mnt);
    fs::rename(v.p("b"), v.p("a")).expect("rename");
    assert_eq!(fs::read(v.p("a")).expect("read a"), b"new content");
    v.cut(Policy::DropAll);
    v.remount();
    assert_eq!(
        fs::read(v.p("a")).expect("read a after cut"),
        b"old content"
    );
    assert_eq!(
        fs::read(v.p("b")).expect("read b after cut"),
        b"new content"
    );
}

#[test]
fn fsynced_rename_and_directories_survive_and_backing_is_plain() {
    let mut v = Vol::new(Persistence::Posix);
    fs::create_dir(v.p("d")).expect("mkdir");
    fs::write(v.p("d/tmp"), b"atomic").expect("write");
    OpenOptions::new()
        .write(true)
        .open(v.p("d/tmp"))
        .expect("open")
        .sync_all()
        .expect("fsync");
    fs::rename(v.p("d/tmp"), v.p("d/final")).expect("rename");
    fsync_dir(&v.p("d"));
    fsync_dir(&v.mnt);
    assert_eq!(
        fs::read(v.backing.join("d/final")).expect("plain file in backing"),
        b"atomic"
    );
    assert!(
        fs::read_dir(&v.mnt)
            .expect("readdir")
            .all(|e| e.map(|e| e.file_name() != ".durafs").unwrap_or(true))
    );
    v.cut(Policy::DropAll);
    v.remount();
    assert_eq!(fs::read(v.p("d/final")).expect("read after cut"), b"atomic");
    assert!(!v.p("d/tmp").exists());
}
