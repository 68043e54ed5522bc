//! `durafs explore` on small shell workloads: each classic durability bug
//! is found, and each fixed workload passes. The CLI is the real one (the
//! `durafs-cli` binary, on `PATH` as `durafs` so workloads can call
//! `durafs mark`); files are fsynced with coreutils' `sync FILE`, the
//! current directory with `sync .`.

use durafs_tests::explore::Scratch;
use std::fs;

const EXE: &str = env!("CARGO_BIN_EXE_durafs-cli");

fn scratch(init: &[(&str, &str)]) -> Scratch {
    Scratch::new(EXE, init)
}

/// `data` holds the old or the new content, whole.
const OLD_OR_NEW: &str = r#"c=$(cat data); test "$c" = old || test "$c" = new"#;

#[test]
fn replacing_a_file_by_rename_without_fsync_can_leave_it_empty() {
    let s = scratch(&[("data", "old")]);
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
    let s = scratch(&[("data", "old")]);
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
    let s = scratch(&[]);
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
        let s = scratch(&[]);
        s.explore(&["--model", model], CREATED_CHECK, CREATED)
            .passes();
    }
}

/// An append-only log: every acknowledged record must be in it.
const LOG_CHECK: &str =
    r#"while read m; do grep -qx "$m" log || { echo "lost $m"; exit 1; }; done < "$DURAFS_MARKS""#;

#[test]
fn acknowledging_an_append_before_its_fsync_can_lose_it() {
    let s = scratch(&[("log", "")]);
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
    let s = scratch(&[("log", "")]);
    s.explore(
        &[],
        LOG_CHECK,
        "for i in 1 2 3; do echo rec$i >> log; sync log; durafs mark rec$i; done",
    )
    .passes();
}

#[test]
fn truncating_and_rewriting_in_place_without_fsync_can_leave_it_empty() {
    let s = scratch(&[("data", "old")]);
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
    let s = scratch(&[("data", "old")]);
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
    let s = scratch(&[]);
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
    let s = scratch(&[("log", "")]);
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
        let s = scratch(&[("f", "")]);
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
    let s = scratch(&[("f", "0123456789")]);
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
        let s = scratch(&[("f", "0123456789")]);
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
        let s = scratch(&[("f", old.as_str())]);
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
        let s = scratch(&[("f", old.as_str())]);
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
        let s = scratch(&[("a", "old")]);
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
        let s = scratch(&[("data", "old")]);
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
    let s = scratch(&[("data", "old")]);
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
