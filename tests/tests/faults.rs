//! Faults on a live mount (issue 20): errors, delays, torn writes and
//! power cuts armed by operation, path and count, through the Rust API,
//! the control file, `durafs fault` and a plan of `durafs mount --faults`.

use durafs::model::Persistence;
use durafs_tests::{Vol, fsync_dir, fsync_file, wait_exit};
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::Output;

const EXE: &str = env!("CARGO_BIN_EXE_durafs-cli");

fn durafs(args: &[&str]) -> Output {
    durafs_tests::cli::run(EXE, args)
}

fn ok(args: &[&str]) -> String {
    durafs_tests::cli::ok(EXE, args)
}

/// A durable file of `len` bytes of `fill`.
fn durable(v: &Vol, name: &str, len: usize, fill: u8) -> PathBuf {
    let p = v.p(name);
    fs::write(&p, vec![fill; len]).unwrap();
    fsync_file(&p);
    fsync_dir(&v.mnt);
    p
}

#[test]
fn an_error_fault_fails_the_nth_matching_write_which_takes_no_effect() {
    let v = Vol::new(Persistence::Posix);
    let p = durable(&v, "data", 4, b'a');
    let other = durable(&v, "other", 4, b'a');
    v.fs()
        .add_fault("error ENOSPC --op write --path '^/data$' --nth 2")
        .unwrap();
    let f = OpenOptions::new().write(true).open(&p).unwrap();
    let g = OpenOptions::new().write(true).open(&other).unwrap();
    f.write_at(b"b", 0).unwrap();
    g.write_at(b"b", 1).unwrap();
    let e = f.write_at(b"c", 1).unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::ENOSPC), "{e}");
    f.write_at(b"d", 2).unwrap();
    assert_eq!(
        fs::read(&p).unwrap(),
        b"bada",
        "the failed write took no effect"
    );
    let list = v.fs().faults().list();
    assert_eq!(
        (list[0].matched, list[0].fired, list[0].armed),
        (2, 1, false)
    );
}

#[test]
fn an_armed_fault_never_fires_on_the_control_file() {
    let v = Vol::new(Persistence::Posix);
    v.fs().add_fault("error EIO --forever").unwrap();
    let ctl = v.p(".durafs");
    let st = fs::read_to_string(&ctl).unwrap();
    assert!(st.contains("\"ok\":true"), "{st}");
    fs::write(&ctl, "sync").expect("sync through the control file");
    fs::write(&ctl, "mark still here").expect("mark through the control file");
    assert_eq!(v.fs().faults().list()[0].matched, 0);
    let e = fs::write(v.p("f"), b"x").unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::EIO));
}

#[test]
fn a_delay_fault_holds_the_call() {
    let v = Vol::new(Persistence::Posix);
    let p = durable(&v, "slow", 1, b'a');
    v.fs()
        .add_fault("delay 300 --op fsync --path '^/slow$'")
        .unwrap();
    let f = File::open(&p).unwrap();
    let t = std::time::Instant::now();
    f.sync_all().unwrap();
    assert!(
        t.elapsed() >= std::time::Duration::from_millis(300),
        "{:?}",
        t.elapsed()
    );
    let t = std::time::Instant::now();
    f.sync_all().unwrap();
    assert!(
        t.elapsed() < std::time::Duration::from_millis(300),
        "fired once"
    );
}

#[test]
fn a_torn_op_keeps_the_chosen_parts_and_cuts_as_lazyfs_does() {
    let mut v = Vol::new(Persistence::Posix);
    let p = durable(&v, "f", 4096, b'.');
    v.fs()
        .add_fault("torn --parts 4 --keep 1,3 --cut --path '^/f$'")
        .unwrap();
    let f = OpenOptions::new().write(true).open(&p).unwrap();
    f.write_at(&[b'x'; 4096], 0)
        .expect_err("the machine died after the write");
    assert!(v.fs().is_cut());
    v.remount();
    let got = fs::read(v.p("f")).unwrap();
    let want: Vec<u8> = [b'x', b'.', b'x', b'.']
        .iter()
        .flat_map(|c| vec![*c; 1024])
        .collect();
    assert_eq!(got, want, "parts 1 and 3 of 4 persisted");
}

#[test]
fn a_torn_sequence_keeps_the_chosen_writes_at_the_next_cut() {
    let mut v = Vol::new(Persistence::Posix);
    let p = durable(&v, "log", 0, b'.');
    v.fs()
        .add_fault("torn-seq --count 3 --keep 1,3 --path '^/log$'")
        .unwrap();
    let mut f = OpenOptions::new().append(true).open(&p).unwrap();
    for rec in ["one\n", "two\n", "six\n"] {
        f.write_all(rec.as_bytes()).unwrap();
    }
    drop(f);
    let cut = v.cut(durafs::model::crash::Policy::KeepAll);
    assert!(
        cut.description.contains("torn by fault #1"),
        "{}",
        cut.description
    );
    v.remount();
    let got = fs::read(v.p("log")).unwrap();
    // The size of the kept third write survives; the dropped second
    // write's bytes read as zeros.
    assert_eq!(got, b"one\n\0\0\0\0six\n");
}

fn mount_daemon(backing: &Path, mnt: &Path, extra: &[&str]) -> i32 {
    let mut args = vec!["mount"];
    args.extend_from_slice(extra);
    let (b, m) = (backing.to_str().unwrap(), mnt.to_str().unwrap());
    args.extend_from_slice(&[b, m]);
    ok(&args);
    let st: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(mnt.join(".durafs")).unwrap()).unwrap();
    st["volume"]["pid"].as_i64().unwrap() as i32
}

/// Unmounts a daemon's volume on drop, even when the test panics.
struct Daemon {
    tmp: tempfile::TempDir,
}

impl Daemon {
    fn new() -> Daemon {
        let tmp = tempfile::tempdir().unwrap();
        fs::create_dir(tmp.path().join("mnt")).unwrap();
        Daemon { tmp }
    }
    fn backing(&self) -> PathBuf {
        self.tmp.path().join("backing")
    }
    fn mnt(&self) -> PathBuf {
        self.tmp.path().join("mnt")
    }
    fn m(&self) -> String {
        self.mnt().to_str().unwrap().to_string()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if !durafs(&["umount", "--lazy", &self.m()]).status.success() {
            durafs::mount::detach(&self.mnt());
        }
    }
}

/// The README's harness: a fault armed with `durafs fault` cuts the power
/// when the WAL's 3rd fsync returns; the daemon mounts the post-crash
/// state again, and exactly the fsynced records are there.
#[test]
fn a_cut_armed_by_the_cli_fires_at_the_third_wal_fsync_and_remounts() {
    let d = Daemon::new();
    let pid = mount_daemon(&d.backing(), &d.mnt(), &[]);
    let out = ok(&[
        "fault",
        &d.m(),
        "add",
        "cut",
        "--remount",
        "--op",
        "fsync",
        "--path",
        "^/wal",
        "--nth",
        "3",
    ]);
    assert!(out.contains("fault #1 armed"), "{out}");
    let list = ok(&["fault", &d.m(), "list"]);
    assert!(list.contains("armed") && list.contains("--nth 3"), "{list}");
    let wal = d.mnt().join("wal");
    let mut f = File::create(&wal).unwrap();
    fsync_dir(&d.mnt());
    for (i, rec) in ["rec1\n", "rec2\n", "rec3\n"].iter().enumerate() {
        f.write_all(rec.as_bytes()).unwrap();
        let r = f.sync_all();
        if i < 2 {
            r.unwrap();
        } else {
            assert_eq!(r.unwrap_err().raw_os_error(), Some(libc::EIO), "the cut");
        }
    }
    drop(f);
    ok(&["wait", &d.m()]);
    // The cut came after the third fsync took effect, before the program
    // learned it: all three records are durable.
    assert_eq!(fs::read_to_string(&wal).unwrap(), "rec1\nrec2\nrec3\n");
    let st: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(d.mnt().join(".durafs")).unwrap()).unwrap();
    assert_eq!(
        st["volume"]["pid"].as_i64(),
        Some(i64::from(pid)),
        "the same daemon"
    );
    assert_eq!(
        st["faults"],
        serde_json::json!([]),
        "the fired fault is not re-armed"
    );
}

/// A plan's fault cuts the power without a remount: the daemon exits and
/// leaves the post-crash state in BACKING.
#[test]
fn a_plan_arms_faults_at_mount_and_a_malformed_plan_refuses_the_mount() {
    let d = Daemon::new();
    let plan = d.tmp.path().join("plan.toml");
    fs::write(
        &plan,
        "[[fault]]\naction = \"cut\"\n\n[[fault]]\naction = \"error\"\nerrno = \"EWHAT\"\n",
    )
    .unwrap();
    let (b, m, p) = (
        d.backing().to_str().unwrap().to_string(),
        d.m(),
        plan.to_str().unwrap().to_string(),
    );
    let out = durafs(&["mount", "--faults", &p, &b, &m]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("line 4, column 1: fault 2") && stderr.contains("EIO"),
        "{stderr}"
    );

    fs::write(&plan, "[[fault]]\naction = \"cut\"\nop = \"rename\"\n").unwrap();
    let pid = mount_daemon(&d.backing(), &d.mnt(), &["--faults", &p]);
    let st = ok(&["status", &m]);
    assert!(
        st.contains("faults:") && st.contains("cut --op rename"),
        "{st}"
    );
    fs::write(d.mnt().join("tmp"), b"new").unwrap();
    let e = fs::rename(d.mnt().join("tmp"), d.mnt().join("data")).unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::EIO));
    wait_exit(pid);
    assert!(!d.backing().join("data").exists(), "nothing was fsynced");
}

/// `durafs run --fault`: the program's write fails with the injected
/// errno and takes no effect; its `durafs sync` (the control file) is
/// never faulted.
#[test]
fn run_arms_faults_on_the_programs_volume() {
    let out = durafs(&[
        "run",
        "--fault",
        "error ENOSPC --op write --path '^/data$'",
        "--check",
        "grep -q 'rc=1' rc && test -e data && test ! -s data",
        "--",
        "sh",
        "-c",
        "printf abc > data; echo \"rc=$?\" > rc; durafs sync \"$DURAFS_MOUNT\"",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("fault #1") && stderr.contains("error ENOSPC"),
        "{stderr}"
    );

    let out = durafs(&["run", "--fault", "error EWHAT", "--", "true"]);
    assert_eq!(out.status.code(), Some(2), "a bad fault is a usage error");
    assert!(String::from_utf8_lossy(&out.stderr).contains("one of EIO"));
}

/// Linux's errseq rule (`docs/faults.md`): every open description learns
/// a failed fsync once; a retry on the same one returns 0.
#[test]
fn an_fsync_failure_is_reported_once_to_each_open_description() {
    let v = Vol::new(Persistence::Posix);
    let p = durable(&v, "f", 8, b'a');
    let one = OpenOptions::new().write(true).open(&p).unwrap();
    let two = OpenOptions::new().write(true).open(&p).unwrap();
    v.fs().add_fault("fsync-fail --path '^/f$'").unwrap();
    one.write_at(b"b", 0).unwrap();
    let e = one.sync_all().unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::EIO));
    one.sync_all()
        .expect("a retry on the same description returns 0");
    let e = two.sync_data().unwrap_err();
    assert_eq!(
        e.raw_os_error(),
        Some(libc::EIO),
        "the other description learns it"
    );
    two.sync_data().unwrap();
    let three = OpenOptions::new().write(true).open(&p).unwrap();
    three.sync_all().expect("seen before it was opened");
}

/// `fsync-fail --journal` degrades the volume as each filesystem does
/// (docs/fsync-failures-evidence.md, row f′), and nothing unsynced then
/// becomes durable.
#[test]
fn a_journal_failure_degrades_the_volume_as_its_filesystem_does() {
    use durafs::model::FsyncFailure;
    for (model, sem, second_fsync, create, read_ok) in [
        (
            Persistence::Ext4,
            FsyncFailure::Ext4,
            None,
            libc::EROFS,
            true,
        ),
        (
            Persistence::Btrfs,
            FsyncFailure::Btrfs,
            Some(libc::EROFS),
            libc::EIO,
            true,
        ),
        (
            Persistence::Xfs,
            FsyncFailure::Xfs,
            Some(libc::EIO),
            libc::EIO,
            false,
        ),
    ] {
        let mut v = Vol::with(durafs::fs::FsOptions {
            persistence: model,
            fsync_failure: sem,
            ..Default::default()
        });
        let p = durable(&v, "f", 4, b'a');
        v.fs()
            .add_fault("fsync-fail --journal --path '^/f$'")
            .unwrap();
        let f = OpenOptions::new().write(true).open(&p).unwrap();
        f.write_at(b"b", 0).unwrap();
        assert_eq!(
            f.sync_all().unwrap_err().raw_os_error(),
            Some(libc::EIO),
            "{model}"
        );
        assert_eq!(
            f.sync_all().err().and_then(|e| e.raw_os_error()),
            second_fsync,
            "{model}"
        );
        let e = File::create(v.p("new")).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(create), "{model}: create");
        assert_eq!(fs::metadata(&p).is_ok(), read_ok, "{model}: stat");
        assert!(v.fs().info().degraded.is_some());
        let e = fs::write(v.p(".durafs"), "sync").unwrap_err();
        assert_eq!(
            e.raw_os_error(),
            Some(libc::EIO),
            "{model}: the harness's sync says so"
        );
        drop(f);
        v.cut(durafs::model::crash::Policy::KeepAll);
        v.remount();
        assert_eq!(
            fs::read(v.p("f")).unwrap(),
            b"aaaa",
            "{model}: nothing became durable"
        );
    }
}

/// The fsyncgate bug, as each filesystem shows it (docs/faults.md): the
/// failed page is marked clean, a retried fsync returns 0, reads still see
/// the new bytes, and the next cut loses them; under `strict` the retry
/// persists them. A failed append keeps the new size (zeros) on ext4 only.
#[test]
fn a_failed_fsync_marks_pages_clean_so_a_retry_that_returns_0_persists_nothing() {
    use durafs::fs::FsOptions;
    use durafs::model::FsyncFailure;
    use durafs::model::crash::Policy;
    for (sem, kept, appended_size) in [
        (FsyncFailure::Ext4, &b"aaaa"[..], 8192),
        (FsyncFailure::Xfs, b"aaaa", 4),
        (FsyncFailure::Btrfs, b"aaaa", 4),
        (FsyncFailure::Strict, b"baaa", 8192),
    ] {
        let mut v = Vol::with(FsOptions {
            fsync_failure: sem,
            ..FsOptions::default()
        });
        let p = durable(&v, "f", 4, b'a');
        let q = durable(&v, "g", 4, b'a');
        v.fs().add_fault("fsync-fail --path '^/f$'").unwrap();
        v.fs().add_fault("fsync-fail --path '^/g$'").unwrap();
        let f = OpenOptions::new().write(true).open(&p).unwrap();
        f.write_at(b"b", 0).unwrap();
        assert_eq!(
            f.sync_all().unwrap_err().raw_os_error(),
            Some(libc::EIO),
            "{sem}"
        );
        f.sync_all()
            .unwrap_or_else(|e| panic!("{sem}: the retry returns 0: {e}"));
        assert_eq!(
            fs::read(&p).unwrap(),
            b"baaa",
            "{sem}: reads see the new bytes"
        );
        let g = OpenOptions::new().write(true).open(&q).unwrap();
        g.write_at(&[b'n'; 4096], 4096).unwrap();
        assert_eq!(
            g.sync_data().unwrap_err().raw_os_error(),
            Some(libc::EIO),
            "{sem}"
        );
        drop((f, g));
        v.cut(Policy::KeepAll);
        v.remount();
        assert_eq!(fs::read(v.p("f")).unwrap(), kept, "{sem}: after the cut");
        let g = fs::read(v.p("g")).unwrap();
        assert_eq!(g.len(), appended_size, "{sem}: the failed append's size");
        assert!(
            g[4..].iter().all(|b| *b == 0) || sem == FsyncFailure::Strict,
            "{sem}"
        );
    }
}

/// The README's second harness: an `fsync-fail` armed on a service's WAL;
/// the service retries the failed fsync (it returns 0), acknowledges, and
/// the power cut that follows loses the acknowledged record.
#[test]
fn an_fsync_fail_armed_by_the_cli_loses_a_record_the_retry_acknowledged() {
    let d = Daemon::new();
    mount_daemon(&d.backing(), &d.mnt(), &["--fsync-failure", "ext4"]);
    let wal = d.mnt().join("wal");
    File::create(&wal).unwrap().sync_all().unwrap();
    fsync_dir(&d.mnt());
    ok(&[
        "fault",
        &d.m(),
        "add",
        "fsync-fail",
        "--path",
        "^/wal$",
        "--nth",
        "2",
    ]);
    let mut f = OpenOptions::new().append(true).open(&wal).unwrap();
    let mut acked = Vec::new();
    for rec in ["rec1\n", "rec2\n"] {
        f.write_all(rec.as_bytes()).unwrap();
        // PostgreSQL before 2018: retry, and trust the retry.
        if f.sync_all().or_else(|_| f.sync_all()).is_ok() {
            acked.push(rec);
        }
    }
    assert_eq!(acked, ["rec1\n", "rec2\n"], "both acknowledged");
    drop(f);
    let st = ok(&["status", &d.m()]);
    assert!(st.contains("fired 1"), "{st}");
    ok(&["cut", &d.m(), "--policy", "keep-all", "--remount"]);
    assert_eq!(
        fs::read_to_string(&wal).unwrap(),
        "rec1\n\0\0\0\0\0",
        "rec2 was never durable: ext4 kept its size, zeros"
    );
}
