//! `durafs explore` reuses each checker's tree from one state to the next
//! (`durafs::explore::Tree`): a check that changes its tree must still see
//! every state exactly as a fresh tree shows it, and the report gives
//! durafs's own time per state apart from the check's.

use durafs_tests::explore::Scratch;
use std::collections::BTreeMap;

const EXE: &str = env!("CARGO_BIN_EXE_durafs-cli");

/// States that differ in a file's bytes, a directory and its file, and a
/// file that comes and goes.
const WORKLOAD: &str = "printf aaaa > f && sync f && mkdir d && printf bb > d/g && \
     printf cccc > f && sync . && rm d/g && printf zz > h && sync h";

/// Prints the whole tree (names, modes, bytes), then fails, so that every
/// state's output is in the report.
const LOOK: &str = r#"for x in $(find . | sort); do stat -c '%n %A' "$x"; [ -f "$x" ] && od -c "$x"; done; exit 1"#;

/// What a check sees of each state, by state number.
fn seen(s: &Scratch, jobs: &str, check: &str) -> (BTreeMap<u64, String>, serde_json::Value) {
    let r = s.explore(&["--jobs", jobs], check, WORKLOAD);
    assert_eq!(r.code, Some(1), "{}", r.stderr);
    let mut out = BTreeMap::new();
    for f in r.json["failures"].as_array().expect("failures") {
        let text = f["output"].as_str().unwrap_or_default().to_string();
        out.insert(f["state"].as_u64().expect("a state number"), text);
    }
    assert_eq!(out.len() as u64, r.tried(), "every state fails");
    (out, r.json)
}

#[test]
fn a_check_that_changes_its_tree_still_sees_each_state_exactly() {
    let s = Scratch::new(EXE, &[("keep", "k")]);
    let (expected, json) = seen(&s, "1", LOOK);
    assert!(expected.len() > 3, "{json}");
    assert!(
        json["timings"]["trees_patched"].as_u64() > Some(0),
        "an untouched tree is reused: {}",
        json["timings"]
    );
    let tampers = [
        // Same size, so only the change time tells.
        "printf XXXX > f",
        "rm -rf d",
        "touch extra",
        "chmod 600 keep",
        "mv keep elsewhere",
        "chmod 700 .",
    ];
    for tamper in tampers {
        for jobs in ["1", "2"] {
            let check = format!("{}; {tamper}; exit 1", LOOK.trim_end_matches("; exit 1"));
            let (got, _) = seen(&s, jobs, &check);
            assert_eq!(got, expected, "after `{tamper}` with --jobs {jobs}");
        }
    }
}

#[test]
fn the_report_splits_each_states_time_between_durafs_and_the_check() {
    let s = Scratch::new(EXE, &[]);
    let r = s.explore(&["--jobs", "2"], "true", WORKLOAD);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    let j = &r.json;
    let b = &j["durafs_breakdown_ms_per_state"];
    let parts: Vec<f64> = ["enumerate", "materialise", "schedule"]
        .iter()
        .map(|k| b[k].as_f64().unwrap_or_else(|| panic!("no {k}: {j}")))
        .collect();
    let durafs = j["durafs_ms_per_state"]
        .as_f64()
        .expect("durafs_ms_per_state");
    assert!((durafs - parts.iter().sum::<f64>()).abs() < 1e-9, "{j}");
    assert!(parts.iter().all(|p| *p >= 0.0) && parts[1] > 0.0, "{j}");
    let check = j["check_ms_per_state"]
        .as_f64()
        .expect("check_ms_per_state");
    let summed = j["timings"]["check_seconds"].as_f64().unwrap_or(0.0) * 1e3;
    let tried = r.tried() as f64;
    assert!((check - summed / tried).abs() < 1e-6, "{j}");
    let text = s.durafs(&[
        "explore", "--init", "init", "--check", "true", "--", "sh", "-c", WORKLOAD,
    ]);
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.contains("per state, durafs") && text.contains("and the check"),
        "{text}"
    );
}
