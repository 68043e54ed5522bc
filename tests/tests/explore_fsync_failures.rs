//! `durafs explore --fsync-failures` (issue 20): every fsync of a run
//! fails in turn; the report names the program's reaction and the crash
//! states after it. The fsyncgate pattern (retry and carry on) loses an
//! acknowledged record; treating the failure as fatal loses nothing.

use durafs_tests::explore::Scratch;

const EXE: &str = env!("CARGO_BIN_EXE_durafs-cli");

/// Acknowledged records must be in the log.
const CHECK: &str = "for r in $(cat \"$DURAFS_MARKS\"); do grep -qx \"$r\" log || exit 1; done";

fn reactions(json: &serde_json::Value) -> Vec<String> {
    json["fsync_failures"]
        .as_array()
        .expect("fsync_failures")
        .iter()
        .map(|f| f["reaction"]["kind"].as_str().unwrap_or("?").to_string())
        .collect()
}

#[test]
fn a_retried_fsync_that_returns_0_loses_the_acknowledged_record() {
    let s = Scratch::new(EXE, &[("log", "")]);
    let retry = "printf 'rec1\\n' >> log; (sync log || sync log) && durafs mark rec1; \
                 printf 'rec2\\n' >> log; (sync log || sync log) && durafs mark rec2";
    let out = s.explore(&["--fsync-failures"], CHECK, retry);
    assert_eq!(out.json["fsyncs"], 2, "{}", out.stderr);
    assert_eq!(reactions(&out.json), ["retried", "retried"]);
    assert!(out.failed() > 0, "{}", out.json);
    assert_eq!(out.code, Some(1));
    let first = &out.json["fsync_failures"][0];
    assert!(
        first["call"].as_str().unwrap_or("").contains("/log"),
        "{first}"
    );
    assert!(first["states_failed"].as_u64() > Some(0), "{first}");
}

#[test]
fn a_program_that_stops_at_a_failed_fsync_loses_nothing_acknowledged() {
    let s = Scratch::new(EXE, &[("log", "")]);
    let fatal = "printf 'rec1\\n' >> log; sync log || exit 3; durafs mark rec1; \
                 printf 'rec2\\n' >> log; sync log || exit 3; durafs mark rec2";
    let out = s.explore(&["--fsync-failures"], CHECK, fatal);
    assert_eq!(reactions(&out.json), ["exited", "exited"], "{}", out.stderr);
    assert_eq!(out.failed(), 0, "{}", out.json);
    assert!(out.tried() > 0);
    assert_eq!(out.code, Some(0));
}

#[test]
fn the_strict_contract_makes_the_retry_safe() {
    let s = Scratch::new(EXE, &[("log", "")]);
    let retry = "printf 'rec1\\n' >> log; (sync log || sync log) && durafs mark rec1";
    let out = s.explore(
        &["--fsync-failures", "--fsync-failure", "strict"],
        CHECK,
        retry,
    );
    assert_eq!(reactions(&out.json), ["retried"]);
    assert_eq!(out.failed(), 0, "{}", out.json);
}
