//! `durafs bench` as users run it (needs root and /dev/fuse; fio, losetup and mkfs.ext4 are
//! installed when missing, `durafs_tests::tools::require`): a quick
//! run gives every figure, positive, and leaves its directory empty with
//! nothing mounted under it; `--only` rejects unknown workloads.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const EXE: &str = env!("CARGO_BIN_EXE_durafs-cli");

const COMPARED: [&str; 8] = [
    "seqwrite-128k",
    "seqread-128k",
    "seqread-128k-cold",
    "randwrite-4k",
    "append-4k-fsync",
    "append-4k-fsync-real",
    "write-4k-x4",
    "metadata",
];

fn durafs(args: &[&str]) -> Output {
    Command::new(EXE)
        .args(args)
        .output()
        .expect("running the durafs binary")
}

/// Mount points at or under `dir`, from `/proc/self/mountinfo`.
fn mounts_under(dir: &Path) -> Vec<PathBuf> {
    let info = fs::read_to_string("/proc/self/mountinfo").expect("reading mountinfo");
    info.lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(|m| PathBuf::from(m.replace("\\040", " ")))
        .filter(|m| m.starts_with(dir))
        .collect()
}

/// The bench's parent directory; whatever a failing bench left mounted
/// there is detached on drop (the assertions say so first).
struct Parent {
    tmp: tempfile::TempDir,
}

impl Drop for Parent {
    fn drop(&mut self) {
        let mut left = mounts_under(self.tmp.path());
        left.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
        for m in left {
            durafs::mount::detach(&m);
        }
    }
}

fn positive(v: &serde_json::Value, what: &str) -> f64 {
    let x = v.as_f64().unwrap_or(f64::NAN);
    assert!(x > 0.0, "{what} should be a positive number, is {v}");
    x
}

#[test]
fn quick_bench_reports_every_figure_and_leaves_nothing_behind() {
    durafs_tests::tools::require("fio", "fio");
    durafs_tests::tools::require("losetup", "mount");
    durafs_tests::tools::require("mkfs.ext4", "e2fsprogs");
    let parent = Parent {
        tmp: tempfile::tempdir().expect("tempdir"),
    };
    let dir = fs::canonicalize(parent.tmp.path()).expect("canonical dir");
    let d = dir.to_str().expect("utf8 path");
    let out = durafs(&["bench", "--quick", "--runs", "1", "--json", d]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(0),
        "durafs bench failed:\n{stdout}\n{stderr}"
    );
    assert_eq!(mounts_under(&dir), Vec::<PathBuf>::new(), "left mounted");
    let left: Vec<_> = fs::read_dir(&dir)
        .expect("read dir")
        .map(|e| e.map(|e| e.path()))
        .collect();
    assert!(left.is_empty(), "left behind in {d}: {left:?}");

    let r: serde_json::Value = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("bench --json is not JSON ({e}): {stdout}"));
    assert_eq!(r["runs"], 1);
    assert_eq!(r["quick"], true);
    positive(&r["cores"], "cores");
    for key in ["date", "kernel", "fs", "mount_options"] {
        assert!(r[key].is_string(), "{key} missing: {r}");
    }
    let rows = r["workloads"].as_array().expect("workloads array");
    let notes = r["notes"].to_string();
    for name in COMPARED {
        let Some(row) = rows.iter().find(|w| w["name"] == name) else {
            // Only dropping the page cache may be impossible (not root).
            assert!(
                name == "seqread-128k-cold" && notes.contains("skipped"),
                "no row {name}: {r}"
            );
            continue;
        };
        let native = positive(&row["native"], &format!("{name} native"));
        let durafs = positive(&row["durafs"], &format!("{name} durafs"));
        let ratio = positive(&row["ratio"], &format!("{name} ratio"));
        assert!(
            (ratio - durafs / native).abs() < 1e-9 * ratio.max(1.0),
            "{row}"
        );
        positive(&row["target"], &format!("{name} target"));
        assert!(row["met"].is_boolean(), "{row}");
        assert_eq!(
            row["runs_native"].as_array().map(Vec::len),
            Some(1),
            "{row}"
        );
        assert_eq!(
            row["runs_durafs"].as_array().map(Vec::len),
            Some(1),
            "{row}"
        );
        assert!(row["unit"].is_string(), "{row}");
    }
    assert!(rows.len() <= COMPARED.len(), "{r}");

    let m = &r["memory"];
    let peak = positive(&m["peak_rss_bytes"], "memory peak");
    let unsynced = positive(&m["unsynced_bytes"], "memory unsynced");
    let limit = positive(&m["limit_bytes"], "memory limit");
    assert!(limit > unsynced, "{m}");
    assert_eq!(m["met"], peak <= limit, "{m}");

    let e = &r["explore"];
    positive(&e["states"], "explore states");
    positive(&e["seconds"], "explore seconds");
    let sps = positive(&e["states_per_second"], "explore states/s");
    assert_eq!(e["met"], sps >= 100.0, "{e}");

    let b = &r["explore_ext4"];
    positive(&b["states"], "explore-ext4 states");
    positive(&b["check_per_second"], "explore-ext4 check alone");
    let sps = positive(&b["states_per_second"], "explore-ext4 states/s");
    assert_eq!(b["met"], sps >= 20.0, "{b}");
}

#[test]
fn only_rejects_an_unknown_workload_and_names_the_valid_ones() {
    let parent = Parent {
        tmp: tempfile::tempdir().expect("tempdir"),
    };
    let d = parent.tmp.path().to_str().expect("utf8 path");
    let out = durafs(&["bench", "--only", "nonsense", d]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("\"nonsense\""), "{stderr}");
    for name in COMPARED
        .iter()
        .chain(&["memory", "explore", "explore-ext4"])
    {
        assert!(stderr.contains(name), "{name} not listed: {stderr}");
    }
    assert!(out.stdout.is_empty());
    assert_eq!(fs::read_dir(d).expect("read dir").count(), 0);
}
