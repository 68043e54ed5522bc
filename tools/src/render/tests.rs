use super::*;

const PLAIN: Look = Look { color: false };

/// A status reply as the control file sends it.
fn reply(files: serde_json::Value, names: serde_json::Value, writebacks: u64) -> StatusReply {
    let v = serde_json::json!({
        "ok": true,
        "status": {
            "model": "posix",
            "files": files,
            "names": names,
            "unsynced_bytes": 41_943_103,
            "pending_ops": 2
        },
        "volume": {
            "pid": 1, "backing": "/b", "model": "posix", "real_fsync": false,
            "dirty_limit": 1u64 << 30, "dirty_bytes": 0, "writebacks": writebacks,
            "written_back_bytes": 3u64 << 30, "backing_fsyncs": 0
        }
    });
    serde_json::from_value(v).expect("the control file's JSON is a StatusReply")
}

fn file(path: &str, ranges: serde_json::Value, size: u64) -> serde_json::Value {
    serde_json::json!({"ino": 2, "path": path, "ranges": ranges, "unsynced_bytes": 14,
                       "size": size, "size_change": [12, 26], "attrs_pending": false,
                       "new_inode": false})
}

#[test]
fn status_shows_human_sizes_aligned_rows_bars_and_fixes() {
    let r = reply(
        serde_json::json!([
            file("f", serde_json::json!([[12, 26]]), 26),
            file(
                "a/much-longer-name",
                serde_json::json!([[0, 4096]]),
                41_943_103
            ),
        ]),
        serde_json::json!([{"seq": 1, "op": "create f", "fix": "fsync directory /"},
                           {"seq": 2, "op": "rename a/x -> a/y", "fix": "fsync directory a"}]),
        0,
    );
    let s = status(&r, PLAIN);
    assert!(
        s.contains("40.0 MiB (41,943,103 bytes) unsynced in 2 files · 2 pending names"),
        "{s}"
    );
    let rows: Vec<&str> = s
        .lines()
        .filter(|l| l.starts_with("  ") && l.contains(" ["))
        .collect();
    assert_eq!(rows.len(), 2, "{s}");
    // Columns line up: every bar starts at the same place.
    let at: Vec<usize> = rows.iter().filter_map(|l| l.find(" [")).collect();
    assert_eq!(at[0], at[1], "{s}");
    assert!(rows[0].starts_with("  f                   "), "{s}");
    assert!(rows[0].contains("14 B      26 B  ["), "{s}");
    assert!(
        rows[0].contains("[..............+#################]  12..26  (size 12 -> 26)"),
        "{s}"
    );
    assert!(rows[1].contains("40.0 MiB  [+..."), "{s}");
    assert!(s.contains("  create f           fsync directory /"), "{s}");
    assert!(s.contains("  rename a/x -> a/y  fsync directory a"), "{s}");
    assert!(!s.contains('\x1b') && !s.contains("dirty limit"), "{s}");
}

#[test]
fn status_folds_long_lists_and_counts_writebacks() {
    let ranges: Vec<(u64, u64)> = (0..31).map(|i| (i * 100, i * 100 + 10)).collect();
    let files: Vec<serde_json::Value> = (0..LISTED + 3)
        .map(|i| file(&format!("f{i}"), serde_json::json!(ranges), 4000))
        .collect();
    let s = status(&reply(files.into(), serde_json::json!([]), 2), PLAIN);
    assert!(
        s.contains("0..10 100..110 200..210 300..310 ... and 27 more"),
        "{s}"
    );
    assert!(s.contains("... and 3 more files"), "{s}");
    assert!(!s.contains(&format!("f{LISTED} ")), "{s}");
    assert!(
        s.contains(
            "dirty limit 1.0 GiB (1,073,741,824 bytes) passed: 2 writebacks made \
             3.0 GiB (3,221,225,472 bytes) durable"
        ),
        "{s}"
    );
}

#[test]
fn status_lists_pending_xattrs_and_an_old_reply_without_sizes() {
    // A reply without "size" (an older daemon) still reads.
    let r = reply(
        serde_json::json!([{"ino": 2, "path": "f", "ranges": [], "unsynced_bytes": 0,
                           "size_change": null, "attrs_pending": true,
                           "xattrs_pending": ["user.a", "user.b"], "new_inode": true}]),
        serde_json::json!([]),
        0,
    );
    let s = status(&r, PLAIN);
    assert!(
        s.contains("(new file, attributes, xattrs user.a user.b (fsync))"),
        "{s}"
    );
}

#[test]
fn status_in_color_paints_the_bars() {
    let r = reply(
        serde_json::json!([file("f", serde_json::json!([[12, 26]]), 26)]),
        serde_json::json!([]),
        0,
    );
    let s = status(&r, Look { color: true });
    assert!(s.contains('\x1b') && s.contains('█'), "{s}");
}

#[test]
fn cut_lists_what_was_lost_with_human_sizes() {
    let c: CutSummary = serde_json::from_value(serde_json::json!({
        "policy": "drop-all", "seed": 7, "description": "nothing survives",
        "ops_pending": 3, "ops_lost": 3, "ops_partial": 0, "bytes_lost": 14,
        "files_lost": 1, "names_lost": 2, "lost": ["write f 12..26"]
    }))
    .expect("a cut summary");
    let s = cut(&c);
    assert!(s.contains("seed 7"), "{s}");
    assert!(
        s.contains("14 bytes of data in 1 files, 2 name changes"),
        "{s}"
    );
    assert!(s.contains("lost: write f 12..26"), "{s}");
    assert!(s.contains("and 2 more"), "{s}");
    let big = CutSummary {
        bytes_lost: 41_943_103,
        ..c
    };
    assert!(cut(&big).contains("40.0 MiB (41,943,103 bytes) of data"));
}

#[test]
fn status_names_the_io_uring_transport() {
    let mut r = reply(serde_json::json!([]), serde_json::json!([]), 0);
    assert!(
        !status(&r, PLAIN).contains("io_uring"),
        "no line on /dev/fuse"
    );
    r.volume.transport = "uring".into();
    let text = status(&r, PLAIN);
    assert!(text.contains("served over FUSE io_uring"), "{text}");
}
