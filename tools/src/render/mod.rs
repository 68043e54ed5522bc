//! Human-readable forms of the control file's JSON replies.

use serde_json::Value;
use std::fmt::Write;

fn ranges(v: &Value) -> String {
    let Some(rs) = v.as_array() else {
        return String::new();
    };
    let parts: Vec<String> = rs.iter().map(|r| format!("{}..{}", r[0], r[1])).collect();
    parts.join(" ")
}

/// The `status` reply as text: totals, then one line per file, then each
/// pending name with the fsync that makes it durable.
pub fn status(v: &Value) -> String {
    let st = &v["status"];
    let vol = &v["volume"];
    let mut out = String::new();
    let files = st["files"].as_array().map(Vec::as_slice).unwrap_or(&[]);
    let names = st["names"].as_array().map(Vec::as_slice).unwrap_or(&[]);
    let _ = writeln!(
        out,
        "model {} · {} unsynced bytes in {} files · {} pending names · {} pending operations",
        st["model"].as_str().unwrap_or("?"),
        st["unsynced_bytes"],
        files.len(),
        names.len(),
        st["pending_ops"],
    );
    if vol["writebacks"].as_u64().unwrap_or(0) > 0 {
        let _ = writeln!(
            out,
            "dirty limit {} passed: {} writebacks made {} bytes durable",
            vol["dirty_limit"], vol["writebacks"], vol["written_back_bytes"]
        );
    }
    if !files.is_empty() {
        let _ = writeln!(out, "\nunsynced data (byte ranges [start..end)):");
        for f in files {
            let mut notes = Vec::new();
            if f["new_inode"] == Value::Bool(true) {
                notes.push("new file".to_string());
            }
            if let Some(sc) = f["size_change"].as_array() {
                notes.push(format!("size {} -> {}", sc[0], sc[1]));
            }
            if f["attrs_pending"] == Value::Bool(true) {
                notes.push("attributes".to_string());
            }
            if let Some(x) = f["xattrs_pending"].as_array() {
                let names: Vec<&str> = x.iter().filter_map(Value::as_str).collect();
                notes.push(format!("xattrs {} (fsync)", names.join(" ")));
            }
            let _ = writeln!(
                out,
                "  {}  {} bytes  {}{}",
                f["path"].as_str().unwrap_or("?"),
                f["unsynced_bytes"],
                ranges(&f["ranges"]),
                if notes.is_empty() {
                    String::new()
                } else {
                    format!("  ({})", notes.join(", "))
                }
            );
        }
    }
    if !names.is_empty() {
        let _ = writeln!(out, "\npending names (what makes each durable):");
        for n in names {
            let _ = writeln!(
                out,
                "  {}: {}",
                n["op"].as_str().unwrap_or("?"),
                n["fix"].as_str().unwrap_or("?")
            );
        }
    }
    if files.is_empty() && names.is_empty() {
        let _ = writeln!(out, "everything is durable");
    }
    out
}

/// The `cut` summary as text.
pub fn cut(c: &Value) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "power cut: policy {} seed {}: {}",
        c["policy"].as_str().unwrap_or("?"),
        c["seed"],
        c["description"].as_str().unwrap_or("")
    );
    let _ = writeln!(
        out,
        "lost {} of {} pending operations whole and {} in part: {} bytes of data in {} files, {} name changes",
        c["ops_lost"],
        c["ops_pending"],
        c["ops_partial"].as_u64().unwrap_or(0),
        c["bytes_lost"],
        c["files_lost"],
        c["names_lost"]
    );
    if let Some(lost) = c["lost"].as_array() {
        for l in lost {
            let _ = writeln!(out, "  lost: {}", l.as_str().unwrap_or("?"));
        }
        let total = c["ops_lost"].as_u64().unwrap_or(0) + c["ops_partial"].as_u64().unwrap_or(0);
        if total > lost.len() as u64 {
            let _ = writeln!(out, "  ... and {} more", total - lost.len() as u64);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_lists_ranges_sizes_and_fixes() {
        let v: Value = serde_json::json!({
            "ok": true,
            "status": {
                "model": "posix",
                "files": [{"ino": 2, "path": "f", "ranges": [[12, 26]], "unsynced_bytes": 14,
                           "size_change": [12, 26], "attrs_pending": false, "new_inode": false}],
                "names": [{"seq": 1, "op": "create f", "fix": "fsync directory /"}],
                "unsynced_bytes": 14,
                "pending_ops": 2
            },
            "volume": {"writebacks": 0}
        });
        let s = status(&v);
        assert!(s.contains("14 unsynced bytes in 1 files"), "{s}");
        assert!(s.contains("f  14 bytes  12..26  (size 12 -> 26)"), "{s}");
        assert!(s.contains("create f: fsync directory /"), "{s}");
    }

    #[test]
    fn status_lists_pending_xattrs() {
        let v: Value = serde_json::json!({
            "ok": true,
            "status": {
                "model": "posix",
                "files": [{"ino": 2, "path": "f", "ranges": [], "unsynced_bytes": 0,
                           "size_change": null, "attrs_pending": true,
                           "xattrs_pending": ["user.a", "user.b"], "new_inode": false}],
                "names": [],
                "unsynced_bytes": 0,
                "pending_ops": 2
            },
            "volume": {"writebacks": 0}
        });
        let s = status(&v);
        assert!(
            s.contains("(attributes, xattrs user.a user.b (fsync))"),
            "{s}"
        );
    }

    #[test]
    fn cut_lists_what_was_lost() {
        let c = serde_json::json!({
            "policy": "drop-all", "seed": 7, "description": "nothing survives",
            "ops_pending": 3, "ops_lost": 3, "bytes_lost": 14, "files_lost": 1,
            "names_lost": 2, "lost": ["write f 12..26"]
        });
        let s = cut(&c);
        assert!(s.contains("seed 7"), "{s}");
        assert!(
            s.contains("14 bytes of data in 1 files, 2 name changes"),
            "{s}"
        );
        assert!(s.contains("lost: write f 12..26"), "{s}");
        assert!(s.contains("and 2 more"), "{s}");
    }
}
