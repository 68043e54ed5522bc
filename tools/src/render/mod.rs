//! Human-readable forms of the control file's replies, from their typed
//! structs (`durafs::control::StatusReply`, `durafs::fs::CutSummary`):
//! sizes people read (`40.0 MiB (41,943,103 bytes)`), aligned columns,
//! each file's unsynced ranges as a bar, long lists folded.

pub mod bar;

use crate::size;
use bar::Look;
use durafs::control::StatusReply;
use durafs::fs::CutSummary;
use durafs::model::FileReport;
use std::fmt::Write;

/// Files (and pending names) listed before the rest are folded.
pub const LISTED: usize = 50;

fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// The `status` reply as text: totals, then one aligned row per file
/// (unsynced bytes, size, a bar of the file with its unsynced parts, the
/// ranges), then each pending name with the fsync that makes it durable.
pub fn status(r: &StatusReply, look: Look) -> String {
    let st = &r.status;
    let vol = &r.volume;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "model {} · {} unsynced in {} · {} · {}",
        st.model,
        size::human(st.unsynced_bytes),
        plural(st.files.len(), "file", "files"),
        plural(st.names.len(), "pending name", "pending names"),
        plural(st.pending_ops, "pending operation", "pending operations"),
    );
    // The rings' request count is in `--json` only: the text stays the
    // same between two calls with nothing changed in between.
    if vol.transport == "uring" {
        let _ = writeln!(out, "served over FUSE io_uring (one ring per CPU)");
    }
    if vol.writebacks > 0 {
        let _ = writeln!(
            out,
            "dirty limit {} passed: {} made {} durable",
            size::human(vol.dirty_limit),
            plural(vol.writebacks as usize, "writeback", "writebacks"),
            size::human(vol.written_back_bytes)
        );
    }
    if !st.files.is_empty() {
        files(&mut out, &st.files, look);
    }
    if !st.names.is_empty() {
        let _ = writeln!(out, "\npending names (what makes each durable):");
        let w = st
            .names
            .iter()
            .take(LISTED)
            .map(|n| n.op.chars().count())
            .max()
            .unwrap_or(0);
        for n in st.names.iter().take(LISTED) {
            let _ = writeln!(out, "  {:<w$}  {}", n.op, n.fix);
        }
        fold(&mut out, st.names.len(), "pending names");
    }
    if st.files.is_empty() && st.names.is_empty() {
        let _ = writeln!(out, "everything is durable");
    }
    if !r.faults.is_empty() {
        let _ = writeln!(out, "\nfaults:");
        for line in faults(&r.faults).lines() {
            let _ = writeln!(out, "  {line}");
        }
    }
    out
}

fn fold(out: &mut String, total: usize, what: &str) {
    if total > LISTED {
        let _ = writeln!(
            out,
            "  ... and {} more {what} (`durafs status --json` lists them all)",
            total - LISTED
        );
    }
}

/// What else is pending for a file: new, size change, attributes.
fn notes(f: &FileReport) -> String {
    let mut notes = Vec::new();
    if f.new_inode {
        notes.push("new file".to_string());
    }
    if let Some((from, to)) = f.size_change {
        notes.push(format!("size {from} -> {to}"));
    }
    if f.attrs_pending {
        notes.push("attributes".to_string());
    }
    if !f.xattrs_pending.is_empty() {
        notes.push(format!("xattrs {} (fsync)", f.xattrs_pending.join(" ")));
    }
    if notes.is_empty() {
        String::new()
    } else {
        format!("  ({})", notes.join(", "))
    }
}

/// The per-file table: header, one row per file, folded past [`LISTED`].
fn files(out: &mut String, files: &[FileReport], look: Look) {
    let legend = if look.color {
        "█ unsynced, ▒ in part"
    } else {
        "# unsynced, + in part, . durable"
    };
    let _ = writeln!(
        out,
        "\nunsynced data (bar: the file, {legend}; ranges: [start..end) in bytes):"
    );
    let shown = &files[..files.len().min(LISTED)];
    let rows: Vec<[String; 3]> = shown
        .iter()
        .map(|f| {
            [
                f.path.clone(),
                size::short(f.unsynced_bytes),
                size::short(f.size),
            ]
        })
        .collect();
    let header = ["path", "unsynced", "size"];
    let width = |i: usize| {
        rows.iter()
            .map(|r| r[i].chars().count())
            .chain([header[i].len()])
            .max()
            .unwrap_or(0)
    };
    let (wp, wu, ws) = (width(0), width(1), width(2));
    let _ = writeln!(
        out,
        "  {:<wp$}  {:>wu$}  {:>ws$}  {:<bw$}  ranges",
        header[0],
        header[1],
        header[2],
        "map",
        bw = bar::WIDTH + 2
    );
    for (f, r) in shown.iter().zip(&rows) {
        let _ = writeln!(
            out,
            "  {:<wp$}  {:>wu$}  {:>ws$}  {}  {}{}",
            r[0],
            r[1],
            r[2],
            bar::bar(&f.ranges, f.size, look),
            bar::fold_ranges(&f.ranges),
            notes(f)
        );
    }
    fold(out, files.len(), "files");
}

/// The faults of a volume, one line each: id, state, counters, spec.
pub fn faults(list: &[durafs::faults::FaultStatus]) -> String {
    let mut out = String::new();
    if list.is_empty() {
        out.push_str("no faults\n");
    }
    for f in list {
        let left = match f.remaining {
            None => "armed for good".to_string(),
            Some(n) => format!("{n} left"),
        };
        let _ = writeln!(
            out,
            "#{:<3} {:<8} matched {:<6} fired {:<4} {:<14} {}",
            f.id,
            if f.armed { "armed" } else { "disarmed" },
            f.matched,
            f.fired,
            left,
            f.spec
        );
    }
    out
}

/// The `cut` summary as text.
pub fn cut(c: &CutSummary) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "power cut: policy {} seed {}: {}",
        c.policy, c.seed, c.description
    );
    let _ = writeln!(
        out,
        "lost {} of {} pending operations whole and {} in part: {} of data in {} files, {} name changes",
        c.ops_lost,
        c.ops_pending,
        c.ops_partial,
        size::human(c.bytes_lost),
        c.files_lost,
        c.names_lost
    );
    for l in &c.lost {
        let _ = writeln!(out, "  lost: {l}");
    }
    let total = c.ops_lost + c.ops_partial;
    if total > c.lost.len() {
        let _ = writeln!(out, "  ... and {} more", total - c.lost.len());
    }
    out
}

#[cfg(test)]
mod tests;
