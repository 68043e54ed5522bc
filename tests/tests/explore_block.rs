//! Block-level exploration: a real ext4 on an image file on a traced
//! durafs volume (loop device), explored with a check that mounts each
//! state's image and reads its files. The CLI's sparse materialisation must
//! give exactly the verdicts of the dense one (`Snapshot::materialise`,
//! every byte of the image written), state by state.

use durafs::explore::{ExploreOptions, states};
use durafs::model::enumerate::EnumOptions;
use durafs::trace::Trace;
use durafs_tests::tools::require;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

const EXE: &str = env!("CARGO_BIN_EXE_durafs-cli");
const MAX_STATES: usize = 16;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tools/fixtures")
        .join(name)
}

/// Runs the fixture's check on the state in `dir`: passed or not. The
/// check detaches its loop device and unmounts on every exit path.
fn check(dir: &Path) -> bool {
    Command::new("sh")
        .arg(fixture("ext4-read-check.sh"))
        .env("DURAFS_STATE", dir)
        .current_dir(dir)
        .output()
        .expect("running the check")
        .status
        .success()
}

#[test]
fn sparse_exploration_of_an_ext4_image_gives_the_dense_verdicts() {
    require("losetup", "mount");
    require("mkfs.ext4", "e2fsprogs");
    let tmp = tempfile::tempdir().expect("tempdir");
    let trace_path = tmp.path().join("trace.jsonl");
    // The fixture tears down its loop device and mounts on every exit.
    let rec = Command::new("sh")
        .arg(fixture("ext4-image-trace.sh"))
        .arg(&trace_path)
        .arg("16")
        .env("DURAFS", EXE)
        .env("FILES", "2")
        .output()
        .expect("recording");
    assert!(
        rec.status.success(),
        "recording: {}",
        String::from_utf8_lossy(&rec.stderr)
    );

    let check_cmd = format!("sh {}", fixture("ext4-read-check.sh").display());
    let out = Command::new(EXE)
        .arg("explore")
        .arg("--replay")
        .arg(&trace_path)
        .args(["--json", "--jobs", "2", "--max-states", "16", "--check"])
        .arg(&check_cmd)
        .arg("--dir")
        .arg(tmp.path())
        .output()
        .expect("durafs explore");
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "explore's JSON: {e}; stderr: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    let tried = json["states_tried"].as_u64().expect("states_tried") as usize;
    let fast_failed: Vec<u64> = {
        let mut v: Vec<u64> = json["failures"]
            .as_array()
            .expect("failures")
            .iter()
            .map(|f| f["state"].as_u64().expect("state"))
            .collect();
        v.sort();
        v
    };

    // The dense path: the same states, each image written whole.
    let trace = Trace::read_file(&trace_path).expect("trace");
    let opts = ExploreOptions {
        max_states: MAX_STATES,
        enumerate: EnumOptions {
            seed: 0,
            sector: 512,
            torn: true,
            ..EnumOptions::default()
        },
        ..ExploreOptions::default()
    };
    let mut dense: BTreeMap<u64, bool> = BTreeMap::new();
    states(&trace, &opts, |s| {
        let dir = tmp.path().join(format!("dense-{}", s.id));
        std::fs::create_dir(&dir).expect("mkdir");
        s.snapshot.materialise(&dir).expect("materialise");
        dense.insert(s.id as u64, check(&dir));
        std::fs::remove_dir_all(&dir).expect("cleanup");
        true
    })
    .expect("states");
    let dense_failed: Vec<u64> = dense
        .iter()
        .filter(|(_, ok)| !**ok)
        .map(|(id, _)| *id)
        .collect();

    assert_eq!(tried, dense.len(), "states tried");
    assert!(tried >= 8, "only {tried} states");
    assert!(
        dense.values().any(|ok| *ok),
        "no state mounted: the check cannot tell images apart"
    );
    assert_eq!(fast_failed, dense_failed, "failing states");
}
