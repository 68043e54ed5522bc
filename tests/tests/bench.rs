//! `durafs bench` as users run it (needs root and /dev/fuse; fio,
//! libfuse3-dev, sqlite3, losetup and mkfs.ext4 are installed when
//! missing, `durafs_tests::tools::require`): quick runs, split with
//! `--only`, give every figure, positive, on native, durafs and two peers,
//! and leave their directory empty with nothing mounted under it; `--only`
//! rejects unknown workloads.

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

/// Runs `durafs bench --quick --runs 1 --json ARGS DIR` in a fresh parent
/// directory; its report, after checking that it succeeded and left
/// nothing mounted or written there.
fn quick_bench(args: &[&str]) -> serde_json::Value {
    let parent = Parent {
        tmp: tempfile::tempdir().expect("tempdir"),
    };
    let dir = fs::canonicalize(parent.tmp.path()).expect("canonical dir");
    let d = dir.to_str().expect("utf8 path");
    let mut all = vec!["bench", "--quick", "--runs", "1", "--json"];
    all.extend_from_slice(args);
    all.push(d);
    let out = durafs(&all);
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
    r
}

/// The rows issue 21 gives passthrough_ll a target on.
const PASSTHROUGH_TARGETS: [&str; 5] = [
    "seqwrite-128k",
    "seqread-128k",
    "randwrite-4k",
    "write-4k-x4",
    "metadata",
];

/// Every compared workload on native, durafs and two peers (libfuse's C
/// passthrough_ll built from the third-party directory, and durafs itself
/// through the generic mount command), with memory and pending.
#[test]
fn quick_bench_with_peers_reports_every_figure_and_leaves_nothing_behind() {
    durafs_tests::tools::require("fio", "fio");
    durafs_tests::tools::require("pkg-config", "pkg-config");
    durafs_tests::tools::require("cc", "gcc");
    durafs_tests::tools::require("/usr/include/fuse3/fuse_lowlevel.h", "libfuse3-dev");
    let only = COMPARED.join(",") + ",memory,pending";
    // In the foreground, so that the harness reaps it: a daemonised durafs
    // still writes its backing after the unmount returns.
    let self_peer = format!("self={EXE} mount --foreground {{backing}} {{mnt}}");
    let r = quick_bench(&[
        "--only",
        &only,
        "--peer",
        "passthrough_ll",
        "--peer",
        &self_peer,
    ]);
    let peers = r["peers"].as_array().expect("the peers");
    assert_eq!(peers.len(), 2, "{r}");
    assert_eq!(peers[0]["name"], "passthrough_ll");
    assert!(
        peers[0]["command"]
            .as_str()
            .is_some_and(|c| c.contains("target/peers/passthrough_ll -f")),
        "{r}"
    );
    assert_eq!(peers[1]["name"], "self");
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
        for key in ["runs_native", "runs_durafs"] {
            assert_eq!(row[key].as_array().map(Vec::len), Some(1), "{row}");
        }
        assert!(row["unit"].is_string(), "{row}");
        let peers = row["peers"].as_array().expect("each row has the peers");
        assert_eq!(peers.len(), 2, "{row}");
        for p in peers {
            let m = positive(&p["median"], &format!("{name} {}", p["name"]));
            let pr = positive(&p["ratio"], &format!("{name} durafs/{}", p["name"]));
            assert!((pr - durafs / m).abs() < 1e-9 * pr.max(1.0), "{row}");
            assert_eq!(p["runs"].as_array().map(Vec::len), Some(1), "{row}");
        }
        let targeted = PASSTHROUGH_TARGETS.contains(&name);
        assert_eq!(
            peers[0]["target"].as_f64(),
            targeted.then_some(1.2),
            "{row}"
        );
        assert_eq!(peers[0]["met"].is_boolean(), targeted, "{row}");
        assert!(
            peers[1]["target"].is_null() && peers[1]["met"].is_null(),
            "{row}"
        );
    }
    assert!(rows.len() <= COMPARED.len(), "{r}");

    let m = &r["memory"];
    let peak = positive(&m["peak_rss_bytes"], "memory peak");
    let unsynced = positive(&m["unsynced_bytes"], "memory unsynced");
    let limit = positive(&m["limit_bytes"], "memory limit");
    assert!(limit > unsynced, "{m}");
    assert_eq!(m["met"], peak <= limit, "{m}");

    let p = &r["pending"];
    assert_eq!(
        (p["small"]["files"].as_u64(), p["big"]["files"].as_u64()),
        (Some(1000), Some(10_000)),
        "{p}"
    );
    for size in ["small", "big"] {
        positive(&p[size]["status_seconds"], "pending status");
        positive(&p[size]["cut_seconds"], "pending cut");
        positive(&p[size]["native_seconds"], "pending cut's native floor");
        let kept = positive(&p[size]["kept_files"], "files a random cut kept");
        let files = p[size]["files"].as_f64().unwrap_or(0.0);
        assert!(kept < files, "a random cut keeps some files, not all: {p}");
        assert!(p[size]["bytes_per_file"].is_number(), "{p}");
    }
    let sr = positive(&p["status_ratio"], "pending status ratio");
    let big = p["big"]["status_seconds"].as_f64().unwrap_or(0.0);
    let small = p["small"]["status_seconds"].as_f64().unwrap_or(1.0);
    assert!((sr - big / small).abs() < 1e-9 * sr, "{p}");
    assert_eq!(
        p["ratio_met"],
        sr < 12.0 && p["cut_ratio"].as_f64().is_some_and(|c| c < 12.0),
        "{p}"
    );
    assert!(r.get("explore").is_none(), "--only leaves explore out: {r}");
}

/// A mount command that returns once mounted (as daemonising FUSE
/// filesystems do): a bind mount of the backing directory, measured, then
/// unmounted.
#[test]
fn a_peer_whose_command_exits_after_mounting_is_measured_and_unmounted() {
    let r = quick_bench(&[
        "--only",
        "metadata",
        "--peer",
        "bind=mount --bind {backing} {mnt}",
    ]);
    let row = &r["workloads"][0];
    assert_eq!(row["name"], "metadata", "{r}");
    let p = &row["peers"][0];
    assert_eq!(p["name"], "bind", "{r}");
    positive(&p["median"], "bind median");
    assert!(p["target"].is_null(), "{r}");
}

/// The explore rows, each next to its check alone, and states/s.
#[test]
fn quick_bench_explore_rows_are_next_to_the_check_alone() {
    durafs_tests::tools::require("losetup", "mount");
    durafs_tests::tools::require("mkfs.ext4", "e2fsprogs");
    durafs_tests::tools::require("sqlite3", "sqlite3");
    let r = quick_bench(&["--only", "explore,explore-sqlite,explore-ext4"]);
    assert!(r["workloads"].as_array().is_some_and(Vec::is_empty), "{r}");
    for (key, target) in [
        ("explore", Some(100.0)),
        ("explore_sqlite", None),
        ("explore_ext4", Some(20.0)),
    ] {
        let e = &r[key];
        positive(&e["states"], &format!("{key} states"));
        positive(&e["seconds"], &format!("{key} seconds"));
        let sps = positive(&e["states_per_second"], &format!("{key} states/s"));
        let alone = positive(&e["check_per_second"], &format!("{key} check alone"));
        let ratio = positive(&e["check_ratio"], &format!("{key} ratio"));
        assert!((ratio - sps / alone).abs() < 1e-9 * ratio, "{e}");
        assert_eq!(e["target"].as_f64(), target, "{e}");
        let ratio_target = (key != "explore_ext4").then_some(0.9);
        assert_eq!(e["check_ratio_target"].as_f64(), ratio_target, "{e}");
        let met = target.is_none_or(|t| sps >= t) && ratio_target.is_none_or(|t| ratio >= t);
        assert_eq!(e["met"], met, "{e}");
    }
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
    for name in COMPARED.iter().chain(&[
        "memory",
        "pending",
        "explore",
        "explore-sqlite",
        "explore-ext4",
    ]) {
        assert!(stderr.contains(name), "{name} not listed: {stderr}");
    }
    assert!(out.stdout.is_empty());
    assert_eq!(fs::read_dir(d).expect("read dir").count(), 0);
}
