//! `durafs run` with each trigger kind. The workload appends `1`..`5` to a
//! log that starts durable, fsyncing after each line, so what survives a
//! drop-all cut proves where the cut landed: the lines fsynced before it.

use std::fs;
use std::path::Path;
use std::process::{Command, Output};

const EXE: &str = env!("CARGO_BIN_EXE_durafs-cli");

/// Appends 1..=5 to `log`, each followed by `sync log` (fsync).
const APPENDS: &str = "for i in 1 2 3 4 5; do echo $i >> log; sync log; done";

struct Scratch {
    tmp: tempfile::TempDir,
}

impl Scratch {
    fn new() -> Scratch {
        let tmp = tempfile::tempdir().expect("tempdir");
        fs::create_dir(tmp.path().join("bin")).expect("mkdir bin");
        std::os::unix::fs::symlink(EXE, tmp.path().join("bin/durafs")).expect("symlink");
        fs::create_dir(tmp.path().join("init")).expect("mkdir init");
        fs::write(tmp.path().join("init/log"), "").expect("init log");
        Scratch { tmp }
    }

    fn path(&self) -> &Path {
        self.tmp.path()
    }

    /// `durafs run --init init ARGS` in the scratch directory.
    fn run(&self, args: &[&str]) -> Output {
        let path = format!(
            "{}:{}",
            self.path().join("bin").display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let mut all = vec!["run", "--init", "init"];
        all.extend_from_slice(args);
        Command::new(EXE)
            .args(&all)
            .current_dir(self.path())
            .env("PATH", path)
            .output()
            .expect("running durafs")
    }

    /// Runs the appends with `cut` and a drop-all cut; the surviving log
    /// (printed by the check) and durafs's stderr.
    fn survivors(&self, cut: &str, extra: &[&str]) -> (String, String) {
        let mut args = vec!["--cut", cut, "--check", "cat log"];
        args.extend_from_slice(extra);
        args.extend_from_slice(&["--", "sh", "-c", APPENDS]);
        let out = self.run(&args);
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "durafs run failed: {stderr}");
        (String::from_utf8_lossy(&out.stdout).into_owned(), stderr)
    }
}

fn lines(n: u32) -> String {
    (1..=n).map(|i| format!("{i}\n")).collect()
}

#[test]
fn after_fsync_cuts_once_the_nth_fsync_took_effect() {
    let s = Scratch::new();
    let (log, err) = s.survivors("after-fsync=2", &[]);
    assert_eq!(log, lines(2));
    assert!(err.contains("hit after #4 fsync /log"), "{err}");
    assert!(err.contains("lost 0 of 0 unsynced operations"), "{err}");
}

#[test]
fn after_ops_counts_every_state_changing_call() {
    let s = Scratch::new();
    // write 1, fsync, write 2, fsync, write 3 | cut: line 3 was unsynced.
    let (log, err) = s.survivors("after-ops=5", &[]);
    assert_eq!(log, lines(2));
    assert!(err.contains("hit after #5 write /log [4, 6)"), "{err}");
    assert!(
        err.contains("lost 1 of 1 unsynced operations whole and 0 in part: 2 bytes"),
        "{err}"
    );
    // The same point, keeping what was unsynced.
    let (log, _) = s.survivors("after-ops=5", &["--policy", "keep-all", "--dir", "keep"]);
    assert_eq!(log, lines(3));
}

/// Regression: `meta-first` keeps the write's size change and loses its
/// bytes; the summary said "lost 0 of 1 unsynced operations, 2 bytes", as
/// if nothing and something were lost at once.
#[test]
fn a_write_kept_in_part_is_counted_as_such() {
    let s = Scratch::new();
    let (_, err) = s.survivors("after-ops=5", &["--policy", "meta-first"]);
    assert!(
        err.contains("lost 0 of 1 unsynced operations whole and 1 in part: 2 bytes"),
        "{err}"
    );
}

#[test]
fn before_a_matching_call_it_does_not_take_effect() {
    let s = Scratch::new();
    let (log, err) = s.survivors("before:fsync:^/log$:nth=3", &[]);
    assert_eq!(log, lines(2));
    assert!(err.contains("hit before #6 fsync /log"), "{err}");
}

#[test]
fn after_a_matching_call_it_took_effect() {
    let s = Scratch::new();
    let (log, _) = s.survivors("after:write:log:nth=3", &["--policy", "keep-all"]);
    assert_eq!(log, lines(3));
    let s = Scratch::new();
    let (log, _) = s.survivors("after:write:log:nth=3", &[]);
    assert_eq!(log, lines(2));
}

#[test]
fn exit_cuts_when_the_program_ends_and_loses_what_it_left_unsynced() {
    let s = Scratch::new();
    let out = s.run(&[
        "--cut",
        "exit",
        "--check",
        "cat log",
        "--",
        "sh",
        "-c",
        "echo 1 >> log && sync log && echo 2 >> log",
    ]);
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout), lines(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("the program exited"));
}

#[test]
fn after_ms_cuts_a_program_that_would_run_on_and_kills_its_whole_group() {
    let s = Scratch::new();
    let pidfile = s.path().join("bg.pid");
    // Line 1 is durable at once; the program then waits (in a background
    // process of its group, too) far longer than the trigger.
    let workload = format!(
        "echo 1 >> log && sync log && (sleep 600 & echo $! > {}; wait) ; echo 2 >> log; sync log",
        pidfile.display()
    );
    let out = s.run(&[
        "--cut",
        "after-ms=3000",
        "--check",
        "cat log",
        "--",
        "sh",
        "-c",
        &workload,
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), lines(1));
    assert!(err.contains("trigger after-ms=3000 hit"), "{err}");
    let pid = fs::read_to_string(&pidfile).expect("the background pid");
    let stat = fs::read_to_string(format!("/proc/{}/stat", pid.trim())).unwrap_or_default();
    assert!(
        stat.is_empty() || stat.contains(") Z "),
        "the background sleep survived: {stat}"
    );
}

#[test]
fn random_is_seeded_and_repeat_reports_the_failing_seeds() {
    let s = Scratch::new();
    let check = "test $(wc -l < log) -ge 3";
    let run = |seed: &str| {
        let out = s.run(&[
            "--cut", "random", "--seed", seed, "--repeat", "4", "--check", check, "--", "sh", "-c",
            APPENDS,
        ]);
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, err) = run("10");
    let picks: Vec<&str> = err
        .lines()
        .filter(|l| l.contains("random: after event #"))
        .collect();
    assert_eq!(picks.len(), 4, "{err}");
    assert!(picks.iter().all(|l| l.contains("of 10 (seed")), "{err}");
    assert_eq!(
        run("10")
            .1
            .lines()
            .filter(|l| l.contains("random:"))
            .collect::<Vec<_>>(),
        picks
    );
    let summary = err
        .lines()
        .find(|l| l.contains("the check failed in"))
        .expect("a summary line");
    let failed_runs: usize = summary
        .split("failed in ")
        .nth(1)
        .and_then(|r| r.split(' ').next())
        .and_then(|n| n.parse().ok())
        .expect("a count");
    assert_eq!(code, Some(if failed_runs > 0 { 1 } else { 0 }), "{err}");
}

#[test]
fn the_check_sees_the_marks_made_before_the_cut_and_decides_the_verdict() {
    let s = Scratch::new();
    let out = s.run(&[
        "--cut",
        "after:fsync:log:nth=1",
        "--check",
        r#"cat "$DURAFS_MARKS"; exit 7"#,
        "--",
        "sh",
        "-c",
        "durafs mark before && echo 1 >> log && sync log && durafs mark after",
    ]);
    // A failed check is a finding (exit 1); its own code is reported.
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "before\n");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("check FAILED (exit 7)"), "{err}");
}

/// Regression (issue 19): `run` exited with the check's status, so a check
/// exiting 2 read as durafs's usage error. It is a failed check: exit 1.
#[test]
fn a_check_exiting_2_is_a_finding_not_a_usage_error() {
    let s = Scratch::new();
    let out = s.run(&["--cut", "exit", "--check", "exit 2", "--", "true"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("check FAILED (exit 2)"), "{err}");
}

#[test]
fn a_bad_trigger_is_a_usage_error() {
    let s = Scratch::new();
    let out = s.run(&["--cut", "after-ops=0", "--", "true"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--cut"));
}

/// `run --allow-other`: a program of another user (uid 65534, as a service
/// drops root) works on the volume; the cut keeps what it fsynced.
#[test]
fn allow_other_lets_a_program_of_another_user_run_on_the_volume() {
    durafs_tests::tools::require("setpriv", "util-linux");
    let s = Scratch::new();
    let as_nobody = format!(
        "chmod 666 log && setpriv --reuid=65534 --regid=65534 --clear-groups sh -c '{APPENDS}'"
    );
    let out = s.run(&[
        "--allow-other",
        "--cut",
        "after-fsync=2",
        "--check",
        "cat log && stat -c %u:%a log",
        "--",
        "sh",
        "-c",
        &as_nobody,
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "durafs run failed: {stderr}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "1\n2\n0:666\n",
        "{stderr}"
    );
}

/// Regression: `after-ops=N` counted program calls but not marks, so the
/// `#N` of `explore`'s report and of a trace named another call than
/// `after-ops=N` did. Now both count trace events.
#[test]
fn after_ops_names_the_same_call_as_the_trace_event_of_that_number() {
    let s = Scratch::new();
    let workload = "echo 1 >> log && durafs mark one && echo 2 >> log && sync log";
    let out = s.run(&[
        "--cut",
        "after-ops=2",
        "--policy",
        "keep-all",
        "--check",
        "cat log",
        "--",
        "sh",
        "-c",
        workload,
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("hit after #2 mark \"one\""), "{err}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "1\n", "{err}");
    let trace = s.path().join("t.jsonl");
    let explored = Command::new(EXE)
        .args(["explore", "--init", "init", "--trace"])
        .arg(&trace)
        .args(["--check", "true", "--", "sh", "-c", workload])
        .current_dir(s.path())
        .env(
            "PATH",
            format!(
                "{}:{}",
                s.path().join("bin").display(),
                std::env::var("PATH").unwrap_or_default()
            ),
        )
        .output()
        .expect("explore");
    assert!(explored.status.success());
    let text = fs::read_to_string(&trace).expect("trace");
    let second = text.lines().nth(2).unwrap_or_default();
    assert!(
        second.contains("\"n\":2") && second.contains("\"mark\""),
        "{second}"
    );
}

/// `run --json` (issue 19): one JSON document on stdout, nothing else
/// (the program's own stdout goes to stderr), with each repetition's
/// trigger, cut and check (verdict, exit code, output).
#[test]
fn json_is_one_document_with_each_cut_and_the_checks_verdict_code_and_output() {
    let s = Scratch::new();
    let out = s.run(&[
        "--json",
        "--repeat",
        "2",
        "--cut",
        "after:fsync:log:nth=1",
        "--check",
        r#"cat log; echo "marks: $(cat "$DURAFS_MARKS")"; exit 7"#,
        "--",
        "sh",
        "-c",
        "echo program says hi; durafs mark one && echo 1 >> log && sync log && echo 2 >> log",
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let v: serde_json::Value = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("not one JSON document ({e}): {stdout:?}"));
    assert_eq!(stdout.trim_end().lines().count(), 1, "{stdout}");
    assert!(stderr.contains("program says hi"), "{stderr}");
    assert_eq!(v["verdict"], "failed", "{v}");
    assert_eq!(v["failed_seeds"], serde_json::json!([0, 1]), "{v}");
    let runs = v["runs"].as_array().expect("runs");
    assert_eq!(runs.len(), 2, "{v}");
    for (seed, r) in runs.iter().enumerate() {
        assert_eq!(r["seed"], seed, "{r}");
        assert_eq!(r["trigger"], "after:fsync:log:nth=1", "{r}");
        assert_eq!(r["hit"]["when"], "after", "{r}");
        assert_eq!(r["hit"]["op"], "fsync /log", "{r}");
        assert_eq!(r["cut"]["policy"], "drop-all", "{r}");
        assert_eq!(r["check"]["passed"], false, "{r}");
        assert_eq!(r["check"]["exit_code"], 7, "{r}");
        assert_eq!(r["check"]["output"], "1\nmarks: one\n", "{r}");
    }

    // A passing check, and no check at all.
    let out = s.run(&["--json", "--cut", "exit", "--check", "true", "--", "true"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(
        (out.status.code(), &v["verdict"]),
        (Some(0), &"passed".into())
    );
    assert_eq!(v["runs"][0]["program_exit"]["code"], 0, "{v}");
    let out = s.run(&["--json", "--cut", "exit", "--", "true"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(v["verdict"], "no check", "{v}");
    assert!(v["runs"][0]["check"].is_null(), "{v}");
}

/// Ctrl-C ends `run` with 130 (the exit-code table), never with a code a
/// check or a usage error could give.
#[test]
fn an_interrupted_run_exits_130() {
    let s = Scratch::new();
    let child = Command::new(EXE)
        .args([
            "run",
            "--dir",
            "kept",
            "--cut",
            "after-ms=600000",
            "--",
            "sh",
            "-c",
            "touch started; exec sleep 600",
        ])
        .current_dir(s.path())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("running durafs");
    // Once the program runs on the volume, interrupt.
    let started = s.path().join("kept/run-0/mnt/started");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !started.exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "the program never started"
        );
        std::thread::yield_now();
    }
    let pid = i32::try_from(child.id()).expect("pid");
    // SAFETY: signalling our own child.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGINT) }, 0);
    let out = child.wait_with_output().expect("waiting for durafs");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{err}");
    assert!(err.contains("interrupted"), "{err}");
}
