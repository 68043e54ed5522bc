//! `durafs explore`'s findings and conduct: vulnerabilities explained and
//! grouped, interrupts, timeouts, leftover processes, progress, shards and
//! the web page.

use durafs_tests::explore::{Explored, Scratch};
use std::fs;
use std::path::Path;
use std::process::Command;

const EXE: &str = env!("CARGO_BIN_EXE_durafs-cli");

fn scratch(init: &[(&str, &str)]) -> Scratch {
    Scratch::new(EXE, init)
}

/// `data` holds the old or the new content, whole.
const OLD_OR_NEW: &str = r#"c=$(cat data); test "$c" = old || test "$c" = new"#;

/// The vulnerabilities of a report.
fn vulnerabilities(r: &Explored) -> Vec<serde_json::Value> {
    r.json["vulnerabilities"]
        .as_array()
        .unwrap_or_else(|| panic!("no vulnerabilities in {}", r.json))
        .clone()
}

#[test]
fn twenty_creates_without_a_directory_fsync_are_one_durability_vulnerability() {
    let s = scratch(&[]);
    let r = s.explore(
        &[],
        "test -f f5",
        "for i in $(seq 1 20); do echo $i > f$i; done",
    );
    r.finds_the_bug();
    let v = vulnerabilities(&r);
    assert_eq!(v.len(), 1, "{:#}", r.json["vulnerabilities"]);
    assert_eq!(v[0]["kind"], "durability");
    assert_eq!(v[0]["summary"], "#9 create /f5 lost");
    assert_eq!(v[0]["fix"], "fsync directory / after #9 create /f5");
    let members = v[0]["members"].as_array().map_or(0, Vec::len);
    let no_loss = r.json["no_loss"]["states"].as_array().map_or(0, Vec::len);
    assert_eq!(
        (members + no_loss) as u64,
        r.failed(),
        "every failure is explained or loses nothing"
    );
    assert!(
        no_loss > 0,
        "before the create, the check fails with nothing lost"
    );
    let text = s.durafs(&[
        "explore",
        "--check",
        "test -f f5",
        "--",
        "sh",
        "-c",
        "for i in $(seq 1 20); do echo $i > f$i; done",
    ]);
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.contains("\nvulnerability 1 of 1 (durability): #9 create /f5 lost\n  fix: fsync directory / after #9 create /f5\n"),
        "the text report leads with it:\n{text}"
    );
}

#[test]
fn the_readme_replace_by_rename_is_one_ordering_vulnerability() {
    let s = scratch(&[("data", "old")]);
    let r = s.explore(&[], OLD_OR_NEW, "printf new > tmp && mv tmp data");
    r.finds_the_bug();
    let v = vulnerabilities(&r);
    assert_eq!(v.len(), 1, "{:#}", r.json["vulnerabilities"]);
    assert_eq!(v[0]["kind"], "ordering");
    assert_eq!(
        v[0]["summary"],
        "#3 rename /tmp -> /data can persist before #2 write /tmp [0, 3)"
    );
    assert_eq!(v[0]["fix"], "fsync /tmp before #3 rename /tmp -> /data");
    assert_eq!(v[0]["lost"][0]["event"], 2);
    assert_eq!(v[0]["kept"][0]["event"], 3);
    let members = v[0]["members"].as_array().expect("members");
    assert_eq!(members.len() as u64, r.failed());
    assert!(
        members.iter().all(|m| m["reproduce"].is_string()),
        "{members:?}"
    );
}

#[test]
fn no_explanation_checks_still_groups_every_failure() {
    let s = scratch(&[("data", "old")]);
    let r = s.explore(
        &["--explain-checks", "0"],
        OLD_OR_NEW,
        "printf new > tmp && mv tmp data",
    );
    r.finds_the_bug();
    assert_eq!(r.json["explain_checks"], 0);
    let members: u64 = vulnerabilities(&r)
        .iter()
        .map(|v| v["states"].as_array().map_or(0, Vec::len) as u64)
        .sum();
    assert_eq!(members, r.failed());
}

/// Starts `durafs explore` on a slow check, waits until checks run, sends
/// `sig`; its exit code, stdout and the leftovers under its `--dir`.
fn interrupt(sig: i32, json: bool) -> (Option<i32>, String, Vec<String>) {
    let s = scratch(&[]);
    let done = s.path().join("done");
    // States without f5 fail at once; the others hang until killed.
    let check = format!(
        "if test -f f5; then sleep 60; else echo x >> {}; exit 1; fi",
        done.display()
    );
    let mut args = vec!["explore", "--jobs", "1", "--dir", "work", "--check", &check];
    if json {
        args.push("--json");
    }
    args.extend([
        "--",
        "sh",
        "-c",
        "for i in 1 2 3 4 5 6; do echo $i > f$i; done",
    ]);
    fs::create_dir(s.path().join("work")).expect("mkdir work");
    let child = Command::new(EXE)
        .args(&args)
        .current_dir(s.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("explore");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    // With one job, a second check started means the first one's verdict
    // was counted.
    while fs::read_to_string(&done).map_or(0, |t| t.lines().count()) < 2 {
        assert!(std::time::Instant::now() < deadline, "no check ran");
        std::thread::yield_now();
    }
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(child.id() as i32, sig) };
    let out = child.wait_with_output().expect("wait");
    let left = fs::read_dir(s.path().join("work"))
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        left,
    )
}

#[test]
fn sigint_prints_the_report_so_far_removes_temp_dirs_and_exits_130() {
    let (code, out, left) = interrupt(libc::SIGINT, false);
    assert_eq!(code, Some(130), "{out}");
    assert!(out.contains("interrupted by SIGINT"), "{out}");
    assert!(out.contains("state 1 FAILED"), "the findings so far: {out}");
    assert!(left.is_empty(), "left behind: {left:?}");
}

#[test]
fn sigterm_prints_the_json_so_far_and_exits_143() {
    let (code, out, left) = interrupt(libc::SIGTERM, true);
    assert_eq!(code, Some(143), "{out}");
    let v: serde_json::Value = serde_json::from_str(&out).expect("one JSON document");
    assert_eq!(v["interrupted"], "SIGTERM");
    assert!(v["states_failed"].as_u64().unwrap_or(0) >= 1, "{v}");
    assert!(left.is_empty(), "left behind: {left:?}");
}

#[test]
fn a_hung_check_times_out_and_fails_its_state() {
    let s = scratch(&[]);
    let r = s.explore(
        &["--check-timeout", "0.5", "--at", "fsync"],
        "test -f hang && sleep 60; true",
        "touch hang",
    );
    r.finds_the_bug();
    let hung: Vec<&serde_json::Value> = r.json["failures"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|f| f["timed_out"] == true)
        .collect();
    assert!(!hung.is_empty(), "{}", r.json);
    assert!(
        hung.iter().all(|f| f["reproduce"]
            .as_str()
            .unwrap_or_default()
            .contains("--check-timeout 0.5")),
        "{hung:?}"
    );
    let bad = s.durafs(&[
        "explore",
        "--check-timeout",
        "0",
        "--check",
        "true",
        "--",
        "true",
    ]);
    assert_eq!(
        bad.status.code(),
        Some(2),
        "a zero timeout is a usage error"
    );
}

#[test]
fn a_server_the_program_leaves_running_is_killed_and_reported() {
    let s = scratch(&[]);
    // A "server" outside the program's process group, holding a file open
    // on the volume, and one in the group.
    let r = s.explore(
        &["--at", "fsync"],
        "true",
        "setsid sh -c 'exec 3>held; exec sleep 600' & sleep 600 > /dev/null & \
         while ! test -e held; do :; done; echo ok > f",
    );
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    let left = r.json["left_running"].as_array().expect("left_running");
    assert_eq!(left.len(), 2, "{}", r.json);
    assert!(left.iter().all(|p| p["command"] == "sleep"), "{left:?}");
    assert!(
        r.stderr
            .contains("left processes running on the recording volume, killed"),
        "{}",
        r.stderr
    );
    for p in left {
        let pid = p["pid"].as_u64().unwrap_or(0);
        assert!(
            !Path::new(&format!("/proc/{pid}")).exists()
                || fs::read_to_string(format!("/proc/{pid}/stat"))
                    .unwrap_or_default()
                    .contains(") Z"),
            "{pid} still runs"
        );
    }
}

#[test]
fn the_workload_and_the_check_find_durafs_on_their_path_and_in_durafs() {
    let s = scratch(&[]);
    // No bin/ on this PATH: durafs must come from explore itself.
    let out = Command::new(EXE)
        .args([
            "explore",
            "--json",
            "--at",
            "fsync",
            "--check",
            "command -v durafs && test -x \"$DURAFS\"",
            "--",
            "sh",
            "-c",
            "durafs mark one && \"$DURAFS\" mark two",
        ])
        .current_dir(s.path())
        .env("PATH", "/usr/bin:/bin")
        .output()
        .expect("explore");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(v["events"], 2, "both marks recorded: {v}");
}

#[test]
fn a_failing_program_shows_its_exit_status_and_last_output() {
    let s = scratch(&[]);
    let r = s.explore(
        &[],
        "true",
        "echo starting; echo 'no such table: t' >&2; exit 3",
    );
    assert_eq!(r.code, Some(4), "{}", r.stderr);
    assert!(r.stderr.contains("exit status: 3"), "{}", r.stderr);
    assert!(r.stderr.contains("| no such table: t"), "{}", r.stderr);
    assert!(r.stderr.contains("| starting"), "{}", r.stderr);
}

#[test]
fn progress_reaches_a_non_terminal_stderr_as_plain_lines() {
    let s = scratch(&[]);
    let out = Command::new(EXE)
        .args([
            "explore",
            "--jobs",
            "1",
            "--check",
            "true",
            "--",
            "sh",
            "-c",
            "echo a > a; echo b > b",
        ])
        .current_dir(s.path())
        .env("DURAFS_PROGRESS_EVERY", "0")
        .output()
        .expect("explore");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    let lines: Vec<&str> = err
        .lines()
        .filter(|l| {
            l.starts_with("durafs explore: ")
                && l.contains(" crash states (")
                && l.ends_with(": 0 failed")
        })
        .collect();
    assert!(lines.len() >= 2, "{err}");
    assert!(
        !err.contains('\r') && !err.contains('\x1b'),
        "no terminal escapes: {err:?}"
    );
}

#[test]
fn shards_split_the_states_and_their_failures_add_up_to_the_whole() {
    let s = scratch(&[("data", "old")]);
    let whole = s.explore(&[], OLD_OR_NEW, "printf new > tmp && mv tmp data");
    let ids = |r: &Explored| -> Vec<u64> {
        r.json["failures"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|f| f["state"].as_u64())
            .collect()
    };
    let (mut tried, mut failed) = (0, Vec::new());
    for shard in ["1/3", "2/3", "3/3"] {
        let part = s.explore(
            &["--shard", shard],
            OLD_OR_NEW,
            "printf new > tmp && mv tmp data",
        );
        assert_eq!(part.json["settings"]["shard"], shard);
        tried += part.tried();
        failed.extend(ids(&part));
    }
    failed.sort_unstable();
    assert_eq!(tried, whole.tried());
    assert_eq!(failed, ids(&whole));
    let bad = s.durafs(&["explore", "--shard", "4/3", "--check", "true", "--", "true"]);
    assert_eq!(bad.status.code(), Some(2));
}

/// Chromium, headless, on a local file: the page's DOM as rendered, and
/// a screenshot.
fn chromium(args: &[&str], page: &Path) -> std::process::Output {
    durafs_tests::tools::require("chromium", "chromium");
    Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
        ])
        .args(args)
        .arg(format!("file://{}", page.display()))
        .output()
        .expect("running chromium")
}

#[test]
fn the_html_report_renders_in_a_headless_browser() {
    let s = scratch(&[("data", "old")]);
    let page = s.path().join("report.html");
    let html = page.to_str().expect("a UTF-8 path");
    let r = s.explore(
        &["--html", html],
        OLD_OR_NEW,
        "printf new > tmp && mv tmp data",
    );
    r.finds_the_bug();
    let dom = chromium(&["--dump-dom"], &page);
    let dom = String::from_utf8_lossy(&dom.stdout);
    assert!(
        dom.contains("class=\"card\""),
        "a vulnerability card: {dom}"
    );
    assert!(
        dom.contains("fix: fsync /tmp before #3 rename /tmp -&gt; /data"),
        "{dom}"
    );
    assert!(
        dom.contains("class=\"pt vuln\""),
        "a red crash point: {dom}"
    );
    assert!(
        dom.contains("class=\"op lost\""),
        "the lost write outlined: {dom}"
    );
    let shot = s.path().join("shot.png");
    let out = chromium(
        &[
            "--window-size=1000,700",
            &format!("--screenshot={}", shot.display()),
        ],
        &page,
    );
    let png = fs::read(&shot).unwrap_or_else(|e| {
        panic!(
            "no screenshot ({e}): {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 10_000,
        "{} bytes",
        png.len()
    );
}

/// A C program replacing `data` through `tmp` without an fsync, built with
/// debug info; the lines of its `write` and `rename` calls are marked.
const SAVE_C: &str = r#"#include <fcntl.h>
#include <unistd.h>
#include <stdio.h>

static void save(const char *data) {
    int fd = open("tmp", O_CREAT | O_WRONLY | O_TRUNC, 0644);
    write(fd, data, 3); /* line 7 */
    close(fd);
    rename("tmp", "data"); /* line 9 */
}

int main(void) {
    save("new");
    return 0;
}
"#;

#[test]
fn stacks_name_the_source_lines_of_the_calls_of_a_vulnerability() {
    durafs_tests::tools::require("gcc", "gcc");
    let s = scratch(&[("data", "old")]);
    let src = s.path().join("save.c");
    fs::write(&src, SAVE_C).expect("write save.c");
    let exe = s.path().join("save");
    let built = Command::new("gcc")
        .args(["-g", "-O0", "-o"])
        .arg(&exe)
        .arg(&src)
        .output()
        .expect("gcc");
    assert!(
        built.status.success(),
        "{}",
        String::from_utf8_lossy(&built.stderr)
    );
    let r = s.explore(&["--stacks"], OLD_OR_NEW, &exe.display().to_string());
    r.finds_the_bug();
    let v = &r.json["vulnerabilities"][0];
    assert_eq!(v["kind"], "ordering", "{v}");
    let at = |f: &serde_json::Value| f["at"].as_str().unwrap_or_default().to_string();
    assert!(
        at(&v["kept"][0]).contains("save.c:9 (save)"),
        "the rename: {v}"
    );
    assert!(
        at(&v["lost"][0]).contains("save.c:7 (save)"),
        "the write: {v}"
    );
    let without = s.explore(&[], OLD_OR_NEW, &exe.display().to_string());
    assert!(without.json["vulnerabilities"][0]["kept"][0]["at"].is_null());
}
