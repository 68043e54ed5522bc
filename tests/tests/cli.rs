//! The `durafs` command line as users run it: a background daemon per
//! mount, driven by `status`, `sync`, `cut` and `umount`, and killed with
//! SIGKILL. Each test owns fresh temp dirs; `Daemon` tears its mount down in
//! `Drop` (also when a test panics).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const EXE: &str = env!("CARGO_BIN_EXE_durafs-cli");

fn durafs(args: &[&str]) -> Output {
    durafs_tests::cli::run(EXE, args)
}

fn ok(args: &[&str]) -> String {
    durafs_tests::cli::ok(EXE, args)
}

fn fails(args: &[&str]) -> String {
    let out = durafs(args);
    assert!(!out.status.success(), "durafs {args:?} should fail");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A backing directory and a mountpoint, mounted by a daemon.
struct Daemon {
    tmp: tempfile::TempDir,
}

impl Daemon {
    fn mount(extra: &[&str]) -> Daemon {
        let tmp = tempfile::tempdir().expect("tempdir");
        fs::create_dir(tmp.path().join("mnt")).expect("mkdir mnt");
        let d = Daemon { tmp };
        let mut args = vec!["mount"];
        args.extend_from_slice(extra);
        let (b, m) = (d.s(&d.backing()), d.s(&d.mnt()));
        args.extend_from_slice(&[b.as_str(), m.as_str()]);
        ok(&args);
        d
    }

    fn s(&self, p: &Path) -> String {
        p.to_str().expect("utf8 path").to_string()
    }

    fn backing(&self) -> PathBuf {
        self.tmp.path().join("backing")
    }

    fn mnt(&self) -> PathBuf {
        self.tmp.path().join("mnt")
    }

    fn m(&self) -> String {
        self.s(&self.mnt())
    }

    fn p(&self, rel: &str) -> PathBuf {
        self.mnt().join(rel)
    }

    fn status(&self) -> serde_json::Value {
        serde_json::from_str(&ok(&["status", &self.m(), "--json"])).expect("status JSON")
    }

    fn pid(&self) -> i32 {
        self.status()["volume"]["pid"].as_i64().expect("pid") as i32
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let mnt = self.mnt();
        if durafs::mount::is_dead_mount(&mnt) || is_mount(&mnt) {
            if let Ok(st) = fs::read(mnt.join(".durafs")) {
                if let Ok(v) = serde_json::from_slice::<serde_json::Value>(&st) {
                    if let Some(pid) = v["volume"]["pid"].as_i64() {
                        // SAFETY: signalling a process.
                        unsafe { libc::kill(pid as i32, libc::SIGKILL) };
                    }
                }
            }
            durafs::mount::detach(&mnt);
        }
    }
}

fn is_mount(p: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (fs::metadata(p), p.parent().map(fs::metadata)) {
        (Ok(a), Some(Ok(b))) => a.dev() != b.dev(),
        _ => false,
    }
}

#[test]
fn mount_status_sync_cut_remount_and_umount() {
    let d = Daemon::mount(&[]);
    let mut f = fs::File::create(d.p("f")).expect("create");
    use std::io::Write;
    f.write_all(b"0123456789ab").expect("write");
    f.sync_all().expect("fsync");
    f.write_all(b"cdefghijklmnop").expect("write tail");
    drop(f);
    let st = d.status();
    assert_eq!(
        st["status"]["files"][0]["ranges"],
        serde_json::json!([[12, 26]])
    );
    let text = ok(&["status", &d.m()]);
    assert!(text.contains("12..26"), "{text}");
    assert!(text.contains("create f  fsync directory /"), "{text}");
    // The file's row: unsynced bytes, size, its bar (plain ASCII on a
    // pipe: the last 14 of 26 bytes unsynced, one cell of the bar in part),
    // the range.
    let row = text
        .lines()
        .find(|l| l.starts_with("  f "))
        .unwrap_or_else(|| panic!("no row for f: {text}"));
    assert!(
        row.contains("14 B  26 B  [..............+#################]  12..26"),
        "{text}"
    );
    assert!(!text.contains('\x1b'), "colors on a pipe: {text:?}");
    assert_eq!(ok(&["status", &d.m(), "--no-color"]), text);

    ok(&["sync", &d.m()]);
    assert_eq!(d.status()["status"]["pending_ops"], 0);
    fs::write(d.p("g"), b"unsynced").expect("write g");

    let out = ok(&["cut", &d.m(), "--seed", "3", "--remount"]);
    assert!(out.contains("seed 3"), "{out}");
    assert!(
        out.contains("8 bytes of data in 1 files, 1 name changes"),
        "{out}"
    );
    assert_eq!(
        fs::read(d.p("f")).expect("f after the cut"),
        b"0123456789abcdefghijklmnop"
    );
    assert!(!d.p("g").exists(), "the unsynced file is gone");

    ok(&["umount", &d.m()]);
    assert!(!is_mount(&d.mnt()));
    assert_eq!(
        fs::read(d.backing().join("f")).expect("plain file in backing"),
        b"0123456789abcdefghijklmnop"
    );
}

/// Regression (issue 19): `cut --json --remount` printed a second,
/// non-JSON line on stdout. It is one JSON document, naming the remount.
#[test]
fn cut_json_with_remount_is_one_json_document() {
    let d = Daemon::mount(&[]);
    fs::write(d.p("g"), b"unsynced").expect("write g");
    let out = ok(&["cut", &d.m(), "--seed", "1", "--json", "--remount"]);
    let v: serde_json::Value = serde_json::from_str(&out)
        .unwrap_or_else(|e| panic!("not one JSON document ({e}): {out:?}"));
    assert_eq!(v["remounted"], d.m(), "{v}");
    assert_eq!(v["seed"], 1, "{v}");
    assert!(is_mount(&d.mnt()), "remounted");
    assert!(!d.p("g").exists(), "the unsynced file is gone");
    ok(&["umount", &d.m()]);
}

#[test]
fn kill_9_then_mount_again_shows_the_drop_all_state() {
    let d = Daemon::mount(&["--model", "journal"]);
    fs::write(d.p("durable"), b"synced").expect("write");
    ok(&["sync", &d.m()]);
    fs::write(d.p("durable"), b"overwritten, unsynced").expect("overwrite");
    fs::write(d.p("new"), b"never synced").expect("write new");
    durafs_tests::kill_and_wait(d.pid());
    let e = fails(&["status", &d.m()]);
    assert!(e.contains("gone"), "{e}");
    let (b, m) = (d.s(&d.backing()), d.m());
    ok(&["mount", &b, &m]);
    assert_eq!(fs::read(d.p("durable")).expect("durable"), b"synced");
    assert!(!d.p("new").exists());
}

#[test]
fn clear_errors_and_nothing_left_mounted() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let b = tmp.path().join("b");
    let full = tmp.path().join("full");
    fs::create_dir(&full).expect("mkdir");
    fs::write(full.join("x"), b"").expect("write");
    let s = |p: &Path| p.to_str().expect("utf8").to_string();
    let e = fails(&["mount", &s(&b), &s(&full)]);
    assert!(e.contains("not empty"), "{e}");
    let e = fails(&["mount", &s(&b), &s(&tmp.path().join("missing"))]);
    assert!(e.contains("does not exist"), "{e}");
    let e = fails(&["mount", "--model", "ext9", &s(&b), &s(&full)]);
    assert!(e.contains("ext9") && e.contains("btrfs"), "{e}");
    let e = fails(&["mount", "--transport", "tcp", &s(&b), &s(&full)]);
    assert!(e.contains("tcp") && e.contains("uring"), "{e}");
    assert!(!is_mount(&full));

    let d = Daemon::mount(&[]);
    let e = fails(&["mount", &s(&tmp.path().join("b2")), &d.m()]);
    assert!(e.contains("busy"), "{e}");
    // Refused by the parser, which lists the policies (exit 2, a usage
    // error): the daemon never sees it.
    let out = durafs(&["cut", &d.m(), "--policy", "nope"]);
    let e = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{e}");
    assert!(e.contains("'nope'") && e.contains("meta-first"), "{e}");
    fs::write(d.p("still"), b"serving").expect("the mount survived the bad command");
    let e = fails(&["status", &s(tmp.path())]);
    assert!(e.contains("not a durafs mount"), "{e}");
}

#[test]
fn plain_umount_persists_everything_first() {
    let d = Daemon::mount(&[]);
    fs::create_dir(d.p("dir")).expect("mkdir");
    fs::write(d.p("dir/f"), b"never fsynced").expect("write");
    let pid = d.pid();
    let c = std::ffi::CString::new(d.m()).expect("path");
    // The unmount any script would do: umount(8), not durafs.
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::umount2(c.as_ptr(), 0) }, 0);
    durafs_tests::wait_exit(pid);
    assert_eq!(
        fs::read(d.backing().join("dir/f")).expect("persisted at unmount"),
        b"never fsynced"
    );
}

#[test]
fn a_mount_traced_by_hand_is_explored_afterwards_and_marks_reach_the_check() {
    let dir = tempfile::tempdir().expect("tempdir");
    let trace = dir.path().join("trace.jsonl");
    let d = Daemon::mount(&["--trace", trace.to_str().expect("utf8")]);
    fs::write(d.p("tmp"), b"new").expect("write tmp");
    ok(&["mark", "--mount", &d.m(), "replaced"]);
    fs::rename(d.p("tmp"), d.p("data")).expect("rename");
    ok(&["umount", &d.m()]);

    let t = trace.to_str().expect("utf8").to_string();
    let check = r#"if grep -qx replaced "$DURAFS_MARKS"; then test "$(cat data)" = new; fi"#;
    let out = durafs(&["explore", "--replay", &t, "--check", check]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("marks recorded before the crash: \"replaced\""),
        "{text}"
    );
    assert!(text.contains("reproduce: durafs explore"), "{text}");

    let e = fails(&["mark", "no volume"]);
    assert!(e.contains("DURAFS_MOUNT"), "{e}");
}

/// Runs `durafs ARGS` with its stdout on a pipe whose reader is already
/// gone; (exit status, stderr).
fn into_closed_pipe(args: &[&str]) -> (std::process::ExitStatus, String) {
    use std::os::fd::FromRawFd;
    let mut fds = [0i32; 2];
    // SAFETY: a valid out-array; the result is checked.
    assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    // SAFETY: both descriptors were just created and are owned here.
    let (reader, writer) = unsafe {
        (
            std::os::fd::OwnedFd::from_raw_fd(fds[0]),
            std::os::fd::OwnedFd::from_raw_fd(fds[1]),
        )
    };
    drop(reader);
    let out = Command::new(EXE)
        .args(args)
        .stdout(std::process::Stdio::from(writer))
        .stderr(std::process::Stdio::piped())
        .output()
        .expect("running the durafs binary");
    (
        out.status,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Regression: `durafs status MNT | head` panicked with "failed printing
/// to stdout: Broken pipe". A printing command whose reader is gone now
/// ends by SIGPIPE, silently, and the daemon serving the mount lives on.
#[test]
fn printing_into_a_closed_pipe_ends_quietly_and_spares_the_daemon() {
    use std::os::unix::process::ExitStatusExt;
    let d = Daemon::mount(&[]);
    fs::write(d.p("f"), b"unsynced").expect("write");
    let mnt = d.m();
    for args in [
        vec!["status", mnt.as_str()],
        vec!["status", mnt.as_str(), "--json"],
        vec!["demo", "--help"],
    ] {
        let (status, stderr) = into_closed_pipe(&args);
        assert!(!stderr.contains("panicked"), "durafs {args:?}: {stderr}");
        assert!(
            status.signal() == Some(libc::SIGPIPE) || status.success(),
            "durafs {args:?}: {status}; {stderr}"
        );
    }
    // The mount still answers, so the daemon did not die of SIGPIPE.
    assert_eq!(fs::read(d.p("f")).expect("read"), b"unsynced");
    assert!(d.status()["status"]["pending_ops"].as_u64() > Some(0));
}

/// Regression (issue 19): `explore --jobs 0` was accepted. A count of
/// checks at once is at least 1, refused by the parser (exit 2).
#[test]
fn zero_jobs_is_a_usage_error() {
    for args in [
        &["explore", "--jobs", "0", "--check", "true", "--", "true"][..],
        &[
            "calibrate",
            "--jobs",
            "0",
            "--fs",
            "ext4",
            "--generate",
            "1",
        ],
    ] {
        let (cmd, out) = (args[0], durafs(args));
        let e = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{cmd}: {e}");
        assert!(e.contains("at least 1"), "{cmd}: {e}");
    }
}

/// The exit-code table (issue 19): durafs's own failure is 3, a usage
/// error 2 (clap's, or found after parsing), never confused with a check's.
#[test]
fn durafs_failures_exit_3_and_usage_errors_exit_2() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let t = tmp.path().to_str().expect("utf8");
    for (args, code, says) in [
        (vec!["status", t], 3, "not a durafs mount"),
        (vec!["sync", t], 3, "not a durafs mount"),
        (vec!["mark", "x"], 2, "DURAFS_MOUNT"),
        (vec!["mark", "--mount", t, "two\nlines"], 2, "one line"),
        (vec!["status"], 2, "MOUNTPOINT"),
        (vec!["mount", "--dirty-limit", "12Q", t, t], 2, "12Q"),
        (vec!["run", "--cut", "nonsense", "--", "true"], 2, "--cut"),
        // The grammar the control file shares checks values up front.
        (vec!["cut", t, "--probability", "2"], 2, "0..=1"),
        (vec!["cut", t, "--policy=nope"], 2, "meta-first"),
        (
            vec!["run", "--sector=0", "--cut", "exit", "--", "true"],
            2,
            "must be positive",
        ),
    ] {
        let out = durafs(&args);
        let e = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(code), "{args:?}: {e}");
        assert!(e.contains(says), "{args:?}: {e}");
    }
    let help = ok(&["--help"]);
    assert!(help.contains("Exit status:"), "{help}");
    assert!(help.contains("143  stopped by SIGTERM"), "{help}");
}

/// Every `--json` (issue 19) prints exactly one valid JSON document on
/// stdout, whatever the program under test prints.
#[test]
fn every_json_flag_prints_one_json_document() {
    let d = Daemon::mount(&[]);
    fs::write(d.p("f"), b"unsynced").expect("write");
    let tmp = tempfile::tempdir().expect("tempdir");
    let t = tmp.path().to_str().expect("utf8").to_string();
    let noisy = "echo noise from the program; echo a > f; sync f";
    let mut commands: Vec<Vec<&str>> = vec![
        vec!["status", "--json"],
        vec!["cut", "--json", "--seed", "1"],
        vec![
            "run",
            "--json",
            "--cut",
            "exit",
            "--check",
            "echo check output",
            "--",
            "sh",
            "-c",
            noisy,
        ],
        vec![
            "explore",
            "--json",
            "--check",
            "echo check output",
            "--",
            "sh",
            "-c",
            noisy,
        ],
        vec![
            "demo",
            "--json",
            "--puts",
            "60",
            "--points",
            "2",
            "--seeds",
            "1",
            "--enum-cap",
            "4",
        ],
        vec![
            "bench", "--json", "--quick", "--runs", "1", "--only", "metadata", &t,
        ],
    ];
    let m = d.m();
    commands[0].insert(1, &m);
    commands[1].insert(1, &m);
    if durafs_tests::tools::have("mkfs.ext4") && durafs_tests::tools::have("losetup") {
        commands.push(vec![
            "calibrate",
            "--json",
            "--fs",
            "ext4",
            "--generate",
            "1",
            "--max-states",
            "5",
            "--max-predicted",
            "20",
            "--no-reach",
        ]);
    }
    for args in &commands {
        let out = Command::new(EXE)
            .args(args)
            .current_dir(tmp.path())
            .output()
            .expect("running durafs");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "durafs {args:?}: {stderr}");
        serde_json::from_slice::<serde_json::Value>(&out.stdout)
            .unwrap_or_else(|e| panic!("durafs {args:?}: not one JSON document ({e}): {stdout:?}"));
    }
}

/// `demo` (issue 19): no carriage returns or escapes in a log (stderr not a
/// terminal), the engines' warnings counted and summarised instead of
/// interleaved, and shown with `-v`.
#[test]
fn demo_keeps_logs_plain_and_summarises_engine_warnings() {
    let small = [
        "demo",
        "--puts",
        "60",
        "--points",
        "2",
        "--seeds",
        "1",
        "--enum-cap",
        "4",
    ];
    let out = durafs(&small);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(!err.contains('\r') && !err.contains('\x1b'), "{err:?}");
    assert!(!err.contains(" WARN "), "warnings interleaved: {err}");
    let rows = durafs_tools::demo::rows::all().len();
    assert!(
        err.contains(&format!("durafs demo: done: {rows} rows")),
        "{err}"
    );
    let summary = err
        .lines()
        .find(|l| l.contains("warnings: recovery found damaged files"))
        .unwrap_or_else(|| panic!("no summary of the engines' warnings: {err}"));
    assert!(summary.contains("durafs demo -v shows them"), "{summary}");
    let counted: usize = summary
        .split_whitespace()
        .nth(2)
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no count: {summary}"));
    assert!(counted > 0, "{summary}");

    let mut verbose = vec!["-v"];
    verbose.extend_from_slice(&small[1..]);
    verbose.insert(0, "demo");
    let out = durafs(&verbose);
    let err = String::from_utf8_lossy(&out.stderr);
    let shown = err
        .lines()
        .filter(|l| l.contains(" WARN  durafs_engines") || l.contains(" WARN  durafs::fs::faults"))
        .count();
    assert_eq!(shown, counted, "{err}");
    assert!(!err.contains("warnings: recovery found"), "{err}");
}

/// The daemon's threads serving a FUSE io_uring queue (`fuser-ring-N`).
fn ring_threads(pid: i32) -> usize {
    fs::read_dir(format!("/proc/{pid}/task"))
        .expect("the daemon's threads")
        .filter_map(|t| fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .filter(|comm| comm.starts_with("fuser-ring-"))
        .count()
}

/// CPUs the kernel may run a caller on: one FUSE io_uring queue each.
fn cpus() -> usize {
    // SAFETY: sysconf has no preconditions.
    unsafe { libc::sysconf(libc::_SC_NPROCESSORS_CONF) as usize }
}

/// `mount --transport uring`: the daemon serves through its rings, says so
/// in the status, and a cut's remount keeps the transport.
#[test]
fn a_daemon_over_io_uring_serves_through_its_rings_and_remounts_on_them() {
    let d = Daemon::mount(&["--transport", "uring"]);
    fs::write(d.p("f"), vec![7u8; 64 << 10]).expect("write");
    durafs_tests::fsync_file(&d.p("f"));
    durafs_tests::fsync_dir(&d.mnt());
    assert_eq!(d.status()["volume"]["transport"], "uring");
    assert_eq!(ring_threads(d.pid()), cpus(), "a ring thread per CPU");
    assert!(ok(&["status", &d.m()]).contains("served over FUSE io_uring"));
    ok(&["cut", &d.m(), "--policy", "drop-all", "--remount"]);
    assert_eq!(
        d.status()["volume"]["transport"],
        "uring",
        "the remount keeps io_uring"
    );
    assert_eq!(ring_threads(d.pid()), cpus());
    assert_eq!(fs::read(d.p("f")).expect("read").len(), 64 << 10);
    ok(&["umount", &d.m()]);
    assert!(!is_mount(&d.mnt()));
}
