//! A failed persist is never reported as success later (issue 15,
//! point 3). The failure is injected without long paths: the backing
//! store lives on a small tmpfs whose inodes are all taken, where a hard
//! link (which the store makes to give a durable file a second name) fails
//! with `ENOSPC`.
//!
//! Regression: the store recorded the new name before the link failed, so
//! a retried sync found nothing to do and succeeded, and `durafs umount`,
//! run a second time, unmounted and lost the name.

use durafs::fs::FsOptions;
use durafs_tests::{cpath, fsync_dir, fsync_file, mount_at};
use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const EXE: &str = env!("CARGO_BIN_EXE_durafs-cli");

/// A tmpfs of 64 inodes in a temp dir, holding BACKING; unmounted in Drop
/// (after whatever test mount uses it, which the test drops first).
struct Small {
    small: PathBuf,
    tmp: tempfile::TempDir,
}

impl Small {
    fn new() -> Small {
        let tmp = tempfile::tempdir().expect("tempdir");
        let small = tmp.path().join("small");
        fs::create_dir(&small).expect("mkdir small");
        fs::create_dir(tmp.path().join("mnt")).expect("mkdir mnt");
        // SAFETY: valid NUL-terminated strings; the result is checked.
        let rc = unsafe {
            libc::mount(
                c"tmpfs".as_ptr(),
                cpath(&small).as_ptr(),
                c"tmpfs".as_ptr(),
                libc::MS_NOSUID | libc::MS_NODEV,
                c"size=4m,nr_inodes=64,mode=0700".as_ptr().cast(),
            )
        };
        assert_eq!(rc, 0, "mount tmpfs: {}", io::Error::last_os_error());
        Small { small, tmp }
    }

    fn backing(&self) -> PathBuf {
        self.small.join("backing")
    }

    fn mnt(&self) -> PathBuf {
        self.tmp.path().join("mnt")
    }

    /// Takes every free inode of the tmpfs.
    fn fill(&self) {
        let filler = self.small.join("filler");
        fs::create_dir(&filler).expect("mkdir filler");
        let mut n = 0;
        while File::create(filler.join(n.to_string())).is_ok() {
            n += 1;
        }
        assert!(n > 0, "the filler took no inode");
    }

    fn free(&self) {
        fs::remove_dir_all(self.small.join("filler")).expect("free the inodes");
    }
}

impl Drop for Small {
    fn drop(&mut self) {
        let c = cpath(&self.small);
        // SAFETY: a valid NUL-terminated path.
        if unsafe { libc::umount2(c.as_ptr(), 0) } != 0 {
            // SAFETY: as above; lazily, so nothing stays mounted.
            unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
        }
    }
}

/// `a` durable, then `b` a hard link of it, held in memory.
fn durable_a_and_pending_link(mnt: &Path) {
    fs::write(mnt.join("a"), b"content of a").expect("write a");
    fsync_file(&mnt.join("a"));
    fsync_dir(mnt);
    fs::hard_link(mnt.join("a"), mnt.join("b")).expect("link b");
}

#[test]
fn a_failed_sync_fails_again_on_retry_and_unmount_keeps_the_mount() {
    let sm = Small::new();
    let mut m = mount_at(&sm.backing(), &sm.mnt(), FsOptions::default());
    durable_a_and_pending_link(&sm.mnt());
    sm.fill();
    let e = m.fs().sync().expect_err("no inode for the link");
    assert_eq!(e.errno(), libc::ENOSPC, "{e}");
    let retry = m.fs().sync();
    assert!(
        retry.is_err(),
        "the retried sync stored nothing yet succeeded"
    );
    let e = m
        .try_unmount()
        .expect_err("an unmount that cannot persist must fail");
    assert!(e.to_string().contains("stays mounted"), "{e}");
    assert_eq!(
        fs::read(sm.mnt().join("b")).expect("still mounted"),
        b"content of a"
    );
    sm.free();
    m.try_unmount().expect("unmount once the space is back");
    drop(m);
    let m = mount_at(&sm.backing(), &sm.mnt(), FsOptions::default());
    assert_eq!(
        fs::read(sm.mnt().join("b")).expect("b after remount"),
        b"content of a"
    );
    drop(m);
}

fn durafs(args: &[&str]) -> Output {
    Command::new(EXE)
        .args(args)
        .output()
        .expect("running the durafs binary")
}

fn s(p: &Path) -> String {
    p.to_str().expect("utf8 path").to_string()
}

/// Runs `durafs args`, which must fail; returns its stderr.
fn fails(args: &[&str]) -> String {
    let out = durafs(args);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "durafs {args:?} should fail: {err}");
    err
}

fn ok(args: &[&str]) {
    let out = durafs(args);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "durafs {args:?} failed: {err}");
}

/// Unmounts with the CLI when a test fails half way (lazily: a test that
/// failed may have left it unable to persist).
struct CliMount(PathBuf);

impl Drop for CliMount {
    fn drop(&mut self) {
        let m = s(&self.0);
        if !durafs(&["umount", &m]).status.success() {
            let _ = durafs(&["umount", "--lazy", &m]);
        }
    }
}

#[test]
fn durafs_umount_that_cannot_persist_fails_every_time_and_keeps_the_mount() {
    let sm = Small::new();
    let (b, m) = (s(&sm.backing()), s(&sm.mnt()));
    ok(&["mount", &b, &m]);
    let guard = CliMount(sm.mnt());
    durable_a_and_pending_link(&sm.mnt());
    sm.fill();
    for attempt in 1..=2 {
        let err = fails(&["umount", &m]);
        assert!(
            err.contains("stays mounted") && err.contains("No space left"),
            "attempt {attempt}: {err}"
        );
        assert_eq!(
            fs::read(sm.mnt().join("b")).expect("still mounted"),
            b"content of a",
            "attempt {attempt}"
        );
    }
    fails(&["sync", &m]);
    sm.free();
    ok(&["umount", &m]);
    std::mem::forget(guard);
    ok(&["mount", &b, &m]);
    let guard = CliMount(sm.mnt());
    assert_eq!(
        fs::read(sm.mnt().join("b")).expect("b after remount"),
        b"content of a"
    );
    drop(guard);
}

#[test]
fn durafs_umount_lazy_that_cannot_persist_unmounts_and_lists_what_was_lost() {
    let sm = Small::new();
    let (b, m) = (s(&sm.backing()), s(&sm.mnt()));
    ok(&["mount", &b, &m]);
    let guard = CliMount(sm.mnt());
    durable_a_and_pending_link(&sm.mnt());
    sm.fill();
    let err = fails(&["umount", "--lazy", &m]);
    assert!(
        err.contains("No space left") && err.contains("lost 1 of 1 pending operations"),
        "{err}"
    );
    assert!(err.contains("lost: link"), "the lost link is listed: {err}");
    std::mem::forget(guard);
    sm.free();
    ok(&["mount", &b, &m]);
    let guard = CliMount(sm.mnt());
    assert_eq!(fs::read(sm.mnt().join("a")).expect("a"), b"content of a");
    assert!(!sm.mnt().join("b").exists(), "b was reported lost");
    drop(guard);
}

/// A plain `umount` (no `durafs umount` sync first): the kernel's own sync
/// at the end of the session (FUSE `destroy`) fails, and cannot fail the
/// unmount any more; the daemon records it, with what was not persisted,
/// where `durafs umount` reads it.
#[test]
fn a_failed_sync_at_destroy_is_recorded_with_what_was_lost() {
    let sm = Small::new();
    let (b, m) = (s(&sm.backing()), s(&sm.mnt()));
    ok(&["mount", &b, &m]);
    let guard = CliMount(sm.mnt());
    let out = durafs(&["status", &m, "--json"]);
    let st: serde_json::Value = serde_json::from_slice(&out.stdout).expect("status JSON");
    let pid = st["volume"]["pid"].as_i64().expect("pid") as i32;
    durable_a_and_pending_link(&sm.mnt());
    sm.fill();
    // SAFETY: a valid NUL-terminated path; the result is checked.
    let rc = unsafe { libc::umount2(cpath(&sm.mnt()).as_ptr(), 0) };
    assert_eq!(rc, 0, "umount: {}", io::Error::last_os_error());
    std::mem::forget(guard);
    durafs_tests::wait_exit(pid);
    let record = sm.backing().join(".durafs").join("unmount-failed");
    let v: serde_json::Value =
        serde_json::from_slice(&fs::read(&record).expect("the record")).expect("JSON");
    let why = v["error"].as_str().unwrap_or_default();
    assert!(why.contains("No space left"), "{v}");
    assert_eq!(v["status"]["status"]["pending_ops"], 1, "{v}");
}
