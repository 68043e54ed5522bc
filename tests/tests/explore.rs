//! `durafs explore` on small shell workloads: each classic durability bug
//! is found, and each fixed workload passes. The CLI is the real one (the
//! `durafs-cli` binary, on `PATH` as `durafs` so workloads can call
//! `durafs mark`); files are fsynced with coreutils' `sync FILE`, the
//! current directory with `sync .`.

use std::fs;
use std::path::Path;
use std::process::{Command, Output};

const EXE: &str = env!("CARGO_BIN_EXE_durafs-cli");

/// A scratch directory with `bin/durafs` and `init/` (the starting tree).
struct Scratch {
    tmp: tempfile::TempDir,
}

impl Scratch {
    fn new(init: &[(&str, &str)]) -> Scratch {
        let tmp = tempfile::tempdir().expect("tempdir");
        fs::create_dir(tmp.path().join("bin")).expect("mkdir bin");
        std::os::unix::fs::symlink(EXE, tmp.path().join("bin/durafs")).expect("symlink");
        fs::create_dir(tmp.path().join("init")).expect("mkdir init");
        for (name, content) in init {
            fs::write(tmp.path().join("init").join(name), content).expect("init file");
        }
        Scratch { tmp }
    }

    fn path(&self) -> &Path {
        self.tmp.path()
    }

    /// `durafs ARGS` with `bin/` first on PATH, in the scratch directory.
    fn durafs(&self, args: &[&str]) -> Output {
        let path = format!(
            "{}:{}",
            self.path().join("bin").display(),
            std::env::var("PATH").unwrap_or_default()
        );
        Command::new(EXE)
            .args(args)
            .current_dir(self.path())
            .env("PATH", path)
            .output()
            .expect("running durafs")
    }

    /// `durafs explore --init init [extra] --check CHECK -- sh -c WORKLOAD`.
    fn explore(&self, extra: &[&str], check: &str, workload: &str) -> Explored {
        let mut args = vec!["explore", "--init", "init", "--json"];
        args.extend_from_slice(extra);
        args.extend_from_slice(&["--check", check, "--", "sh", "-c", workload]);
        let out = self.durafs(&args);
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        let json = serde_json::from_str(&stdout).unwrap_or(serde_json::Value::Null);
        Explored {
            code: out.status.code(),
            json,
            stderr,
        }
    }
}

struct Explored {
    code: Option<i32>,
    json: serde_json::Value,
    stderr: String,
}

impl Explored {
    fn failed(&self) -> u64 {
        self.json["states_failed"]
            .as_u64()
            .unwrap_or_else(|| panic!("no report (exit {:?}): {}", self.code, self.stderr))
    }

    fn tried(&self) -> u64 {
        self.json["states_tried"].as_u64().unwrap_or(0)
    }

    /// Expects some failures and exit 1.
    fn finds_the_bug(&self) -> &serde_json::Value {
        assert!(self.failed() > 0, "no state failed: {}", self.json);
        assert_eq!(self.code, Some(1), "{}", self.stderr);
        &self.json["failures"][0]
    }

    /// Expects no failures among several states, and exit 0.
    fn passes(&self) {
        assert_eq!(self.failed(), 0, "{:#}", self.json["failures"]);
        assert!(self.tried() > 1, "{}", self.json);
        assert_eq!(self.code, Some(0), "{}", self.stderr);
    }
}

/// `data` holds the old or the new content, whole.
const OLD_OR_NEW: &str = r#"c=$(cat data); test "$c" = old || test "$c" = new"#;

#[test]
fn replacing_a_file_by_rename_without_fsync_can_leave_it_empty() {
    let s = Scratch::new(&[("data", "old")]);
    let r = s.explore(&[], OLD_OR_NEW, "printf new > tmp && mv tmp data");
    let first = r.finds_the_bug();
    assert!(
        first["after"]
            .as_str()
            .unwrap_or_default()
            .contains("rename /tmp -> /data"),
        "{first}"
    );
    let repro = first["reproduce"].as_str().expect("a reproduction line");
    assert!(
        repro.contains("--only") && repro.contains("-- sh -c"),
        "{repro}"
    );
}

#[test]
fn replacing_a_file_after_fsync_of_the_file_and_the_directory_is_safe() {
    let s = Scratch::new(&[("data", "old")]);
    s.explore(
        &[],
        OLD_OR_NEW,
        "printf new > tmp && sync tmp && mv tmp data && sync .",
    )
    .passes();
}

/// A file fsynced without fsyncing its directory; the check holds the
/// program to its promise once it made it.
const CREATED: &str = "printf x > f && sync f && durafs mark f-durable";
const CREATED_CHECK: &str =
    r#"if grep -qx f-durable "$DURAFS_MARKS"; then test "$(cat f)" = x; fi"#;

#[test]
fn a_created_file_fsynced_without_its_directory_is_lost_under_posix() {
    let s = Scratch::new(&[]);
    let first = s
        .explore(&["--model", "posix"], CREATED_CHECK, CREATED)
        .finds_the_bug()
        .clone();
    assert_eq!(first["marks"][0], "f-durable");
}

/// ext4 and xfs commit the name with the journal; btrfs logs it with the
/// file (`docs/durability.md`, "Profiles").
#[test]
fn a_created_file_fsynced_without_its_directory_survives_under_every_profile() {
    for model in ["journal", "ext4", "xfs", "btrfs"] {
        let s = Scratch::new(&[]);
        s.explore(&["--model", model], CREATED_CHECK, CREATED)
            .passes();
    }
}

/// An append-only log: every acknowledged record must be in it.
const LOG_CHECK: &str =
    r#"while read m; do grep -qx "$m" log || { echo "lost $m"; exit 1; }; done < "$DURAFS_MARKS""#;

#[test]
fn acknowledging_an_append_before_its_fsync_can_lose_it() {
    let s = Scratch::new(&[("log", "")]);
    let r = s.explore(
        &[],
        LOG_CHECK,
        "for i in 1 2 3; do echo rec$i >> log; durafs mark rec$i; sync log; done",
    );
    let first = r.finds_the_bug();
    assert_eq!(first["marks"][0], "rec1");
    assert!(
        first["output"]
            .as_str()
            .unwrap_or_default()
            .contains("lost rec1")
    );
    assert!(
        first["ops"]
            .as_array()
            .is_some_and(|ops| ops.iter().any(|o| o["fate"] != "kept")),
        "{first}"
    );
}

#[test]
fn acknowledging_an_append_after_its_fsync_is_safe() {
    let s = Scratch::new(&[("log", "")]);
    s.explore(
        &[],
        LOG_CHECK,
        "for i in 1 2 3; do echo rec$i >> log; sync log; durafs mark rec$i; done",
    )
    .passes();
}

#[test]
fn truncating_and_rewriting_in_place_without_fsync_can_leave_it_empty() {
    let s = Scratch::new(&[("data", "old")]);
    let first = s
        .explore(&[], OLD_OR_NEW, "printf new > data")
        .finds_the_bug()
        .clone();
    let ops = first["ops"].as_array().expect("ops");
    assert!(
        ops.iter()
            .any(|o| o["op"].as_str().unwrap_or_default() == "#1 truncate /data to 0"),
        "{first}"
    );
}

#[test]
fn a_recorded_trace_replays_to_the_same_states_and_a_failure_reproduces() {
    let s = Scratch::new(&[("data", "old")]);
    let workload = "printf new > tmp && mv tmp data";
    let recorded = s.explore(&["--trace", "t.jsonl"], OLD_OR_NEW, workload);
    recorded.finds_the_bug();
    let replayed = {
        let out = s.durafs(&[
            "explore", "--json", "--replay", "t.jsonl", "--check", OLD_OR_NEW,
        ]);
        assert_eq!(out.status.code(), Some(1));
        serde_json::from_slice::<serde_json::Value>(&out.stdout).expect("json")
    };
    assert_eq!(replayed["states_tried"], recorded.json["states_tried"]);
    assert_eq!(replayed["failures"], {
        let mut f = recorded.json["failures"].clone();
        // The reproduction lines differ (replay vs workload).
        for (a, b) in f
            .as_array_mut()
            .into_iter()
            .flatten()
            .zip(replayed["failures"].as_array().into_iter().flatten())
        {
            a["reproduce"] = b["reproduce"].clone();
        }
        f
    });

    // The state a failure names, checked alone and kept for inspection.
    let id = recorded.json["failures"][0]["state"]
        .as_u64()
        .expect("id")
        .to_string();
    let out = s.durafs(&[
        "explore", "--replay", "t.jsonl", "--only", &id, "--keep", "kept", "--check", OLD_OR_NEW,
    ]);
    assert_eq!(out.status.code(), Some(1));
    let kept = s.path().join(format!("kept/state-{id}"));
    let data = fs::read(kept.join("data")).unwrap_or_default();
    assert!(
        data != b"old" && data != b"new",
        "kept state holds {data:?}"
    );
}

/// Errors follow the exit-code table: 2 usage, 3 durafs failed, 4 the
/// program under test failed (never 1, a finding).
#[test]
fn errors_exit_with_the_tables_codes_and_a_reason() {
    let s = Scratch::new(&[]);
    let no_program = s.durafs(&["explore", "--check", "true"]);
    assert_eq!(no_program.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&no_program.stderr).contains("nothing to explore"));

    let r = s.explore(&[], "true", "exit 3");
    assert_eq!(r.code, Some(4));
    assert!(r.stderr.contains("the program failed"), "{}", r.stderr);

    let r = s.explore(&["--at", "sometimes"], "true", "true");
    assert_eq!(r.code, Some(2));
    assert!(r.stderr.contains("--at"), "{}", r.stderr);

    let out = s.durafs(&["explore", "--replay", "missing.jsonl", "--check", "true"]);
    assert_eq!(out.status.code(), Some(3));
}

/// `explore --allow-other`: the recorded program may be another user's
/// (uid 65534 appending to a log it fsyncs), and its crash states are
/// explored as any other's. Marks come from the mounting user (root): the
/// control file is refused to others.
#[test]
fn allow_other_records_a_program_of_another_user() {
    durafs_tests::tools::require("setpriv", "util-linux");
    let s = Scratch::new(&[("log", "")]);
    let workload = "chmod 666 log && setpriv --reuid=65534 --regid=65534 --clear-groups \
                    sh -c 'echo rec >> log && sync log' && durafs mark rec";
    let check = r#"! grep -qx rec "$DURAFS_MARKS" || grep -qx rec log"#;
    let e = s.explore(&["--allow-other"], check, workload);
    e.passes();
}

/// Regression (issue 17's reproduction): the page cache writes back pages,
/// and a page carries every write made to it, so no crash state holds the
/// second of two appends to one sector without the first (ten zero bytes
/// then `BBBBBBBBBB` was shown before the page rule).
#[test]
fn a_later_append_never_survives_without_the_earlier_one_in_its_sector() {
    let check = r#"a=$(head -c 10 f | tr -d '\0'); b=$(tail -c +11 f | head -c 10)
if [ "$b" = BBBBBBBBBB ] && [ "$a" != AAAAAAAAAA ]; then echo "second append without the first"; exit 1; fi"#;
    for model in ["posix", "ext4", "xfs", "btrfs", "journal"] {
        let s = Scratch::new(&[("f", "")]);
        s.explore(
            &["--model", model],
            check,
            "printf AAAAAAAAAA >> f; printf BBBBBBBBBB >> f",
        )
        .passes();
    }
}

/// A written-back page whose size change was never committed: an
/// extending write's bytes inside the old size, at the old size (seen on
/// ext4 and xfs by `durafs calibrate`). The state exists, and says so.
#[test]
fn an_extending_writes_bytes_can_survive_inside_the_old_size_without_it() {
    let s = Scratch::new(&[("f", "0123456789")]);
    let r = s.explore(
        &[],
        r#"if [ "$(wc -c < f)" = 10 ] && grep -q X f; then echo "new bytes, old size"; exit 1; fi"#,
        "printf XXXXXXXXXXXXXXX | dd of=f bs=15 seek=5 oflag=seek_bytes conv=notrunc status=none",
    );
    let first = r.finds_the_bug();
    let state = first["description"].as_str().unwrap_or_default();
    assert!(
        state.contains("without its size change") || state.contains("no size change"),
        "{first:#}"
    );
}

/// Profiles (`docs/durability.md`): xfs and btrfs move a file's on-disk
/// size only once its data is there, so an unsynced append never reads as
/// zeros under their models; posix and ext4 (a write into an allocated
/// block sets ext4's size at once) show it.
#[test]
fn an_appends_size_without_its_data_is_a_state_of_posix_and_ext4_only() {
    let check = r#"if [ "$(wc -c < f)" = 20 ] && [ -z "$(tail -c 10 f | tr -d '\0')" ]; then echo "size without data"; exit 1; fi"#;
    for (model, shown) in [
        ("posix", true),
        ("ext4", true),
        ("xfs", false),
        ("btrfs", false),
    ] {
        let s = Scratch::new(&[("f", "0123456789")]);
        let r = s.explore(&["--model", model], check, "printf AAAAAAAAAA >> f");
        if shown {
            r.finds_the_bug();
        } else {
            r.passes();
        }
    }
}

/// The ext4 profile's size rule: an append into a new page gets unwritten
/// blocks that turn written only once its data is on the device, so with
/// its size the page is all there or all zeros, never torn at a sector;
/// posix tears it.
#[test]
fn an_appended_new_page_is_never_torn_with_its_size_under_ext4() {
    let check = r#"t=$(tail -c 1024 f | tr -d '\0' | wc -c)
if [ "$(wc -c < f)" = 5120 ] && [ "$t" != 0 ] && [ "$t" != 1024 ]; then echo "new page torn"; exit 1; fi"#;
    let old = "o".repeat(4096);
    for (model, shown) in [("posix", true), ("ext4", false)] {
        let s = Scratch::new(&[("f", old.as_str())]);
        let r = s.explore(
            &["--model", model],
            check,
            "head -c 1024 /dev/zero | tr '\\0' A >> f",
        );
        if shown {
            r.finds_the_bug();
        } else {
            r.passes();
        }
    }
}

/// Profiles: btrfs data is copy-on-write, so an overwrite of a page never
/// survives torn inside the page; posix tears it at sectors.
#[test]
fn a_page_is_torn_under_posix_and_never_under_btrfs() {
    let check = r#"n=$(head -c 4096 f | tr -d A | wc -c)
if [ "$n" != 0 ] && [ "$n" != 4096 ]; then echo "page torn: $n old bytes"; exit 1; fi"#;
    let old = "B".repeat(8192);
    for (model, torn) in [("posix", true), ("btrfs", false)] {
        let s = Scratch::new(&[("f", old.as_str())]);
        let r = s.explore(
            &["--model", model],
            check,
            "head -c 8192 /dev/zero | tr '\\0' A | dd of=f bs=8192 conv=notrunc status=none",
        );
        if torn {
            r.finds_the_bug();
        } else {
            r.passes();
        }
    }
}

/// The ext4 profile's `auto_da_alloc`: a rename of a file over another
/// file starts its writeback, so once the rename survives, the size the
/// file's writes gave it survives too (its bytes may still read as
/// zeros); posix shows the renamed file without its size.
#[test]
fn a_file_renamed_over_another_keeps_its_size_under_ext4() {
    let check = r#"if [ "$(cat a)" != old ] && [ "$(wc -c < a)" != 9000 ]; then echo "renamed without its size: $(wc -c < a) bytes"; exit 1; fi"#;
    for (model, shown) in [("posix", true), ("ext4", false)] {
        let s = Scratch::new(&[("a", "old")]);
        let r = s.explore(
            &["--model", model],
            check,
            "head -c 9000 /dev/zero | tr '\\0' n > tmp && mv -f tmp a && sync .",
        );
        if shown {
            r.finds_the_bug();
        } else {
            r.passes();
        }
    }
}

/// ext4's `auto_da_alloc`, close half: `printf new > data` truncates
/// `data` to 0 and writes it, and its close starts the writeback that
/// journals the new size, so under ext4 a crash that keeps the later
/// `mkdir` never shows `data` empty; posix may. FUSE sends the close
/// (`release`) after `close(2)` returned, so the volume can see it after
/// the `mkdir`; the recorded trace says which came first, and with the
/// close last ext4 allows the empty file too (a later close only allows
/// more states, never fewer).
#[test]
fn a_rewrite_closed_before_a_later_change_keeps_its_size_under_ext4() {
    let check = r#"if [ -d d ] && [ ! -s data ]; then echo "mkdir kept, data empty"; exit 1; fi"#;
    let workload = "printf new > data && mkdir d";
    for (model, shown) in [("posix", true), ("ext4", false)] {
        let s = Scratch::new(&[("data", "old")]);
        let r = s.explore(&["--model", model, "--trace", "t.jsonl"], check, workload);
        let trace = fs::read_to_string(s.path().join("t.jsonl")).expect("trace");
        let at = |what: &[&str]| {
            trace
                .lines()
                .position(|l| what.iter().all(|w| l.contains(w)))
        };
        let close = at(&[r#""op":"close""#]);
        let mkdir = at(&[r#""op":"create""#, r#""kind":"dir""#]);
        assert!(close.is_some() && mkdir.is_some(), "{trace}");
        if shown || close > mkdir {
            r.finds_the_bug();
        } else {
            r.passes();
        }
    }
}

/// Regression (issue 19): the report did not say how it was made. Text and
/// JSON name the model, the crash points, the budget, the seed, the sector
/// size, the jobs and the version.
#[test]
fn the_report_says_how_it_was_made() {
    let s = Scratch::new(&[("data", "old")]);
    let args = [
        "--model",
        "ext4",
        "--at",
        "fsync",
        "--max-states",
        "77",
        "--seed",
        "5",
        "--jobs",
        "1",
    ];
    let r = s.explore(&args, "true", "printf new > data");
    let c = &r.json["settings"];
    assert_eq!(c["model"], "ext4", "{}", r.json);
    assert_eq!(c["at"], "fsync");
    assert_eq!(
        (c["max_states"].as_u64(), c["seed"].as_u64()),
        (Some(77), Some(5))
    );
    assert_eq!(
        (c["jobs"].as_u64(), c["sector"].as_u64()),
        (Some(1), Some(512))
    );
    assert_eq!(c["version"], env!("CARGO_PKG_VERSION"));
    let mut text_args = vec!["explore", "--init", "init"];
    text_args.extend_from_slice(&args);
    text_args.extend_from_slice(&["--check", "true", "--", "sh", "-c", "printf new > data"]);
    let out = s.durafs(&text_args);
    let text = String::from_utf8_lossy(&out.stdout);
    let first = text.lines().next().unwrap_or_default();
    assert!(
        first.contains("model ext4, crash points fsync, at most 77 states, seed 5")
            && first.ends_with("1 jobs"),
        "{text}"
    );
}

/// The vulnerabilities of a report.
fn vulnerabilities(r: &Explored) -> Vec<serde_json::Value> {
    r.json["vulnerabilities"]
        .as_array()
        .unwrap_or_else(|| panic!("no vulnerabilities in {}", r.json))
        .clone()
}

#[test]
fn twenty_creates_without_a_directory_fsync_are_one_durability_vulnerability() {
    let s = Scratch::new(&[]);
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
    let s = Scratch::new(&[("data", "old")]);
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
    let s = Scratch::new(&[("data", "old")]);
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
    let s = Scratch::new(&[]);
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
    let s = Scratch::new(&[]);
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
    let s = Scratch::new(&[]);
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
    let s = Scratch::new(&[]);
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
    let s = Scratch::new(&[]);
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
    let s = Scratch::new(&[]);
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
        .filter(|l| l.contains("states checked, 0 failed"))
        .collect();
    assert!(lines.len() >= 2, "{err}");
    assert!(lines[0].contains("of at most"), "{err}");
    assert!(
        !err.contains('\r') && !err.contains('\x1b'),
        "no terminal escapes: {err:?}"
    );
}

#[test]
fn shards_split_the_states_and_their_failures_add_up_to_the_whole() {
    let s = Scratch::new(&[("data", "old")]);
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
