//! The report as text: a header line, the table of compared workloads
//! (each side's median, durafs/native and durafs/PEER with their targets),
//! then memory, pending, the explore rows and notes.

use super::plan::Unit;
use super::report::{Explore, Pending, Report, Row};
use std::fmt::Write;

/// A figure with the precision its size deserves.
fn num(x: f64) -> String {
    if x >= 100.0 {
        format!("{x:.0}")
    } else if x >= 10.0 {
        format!("{x:.1}")
    } else {
        format!("{x:.2}")
    }
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / f64::from(1u32 << 20))
}

fn yes(met: bool) -> &'static str {
    if met { "yes" } else { "NO" }
}

fn opt(x: Option<f64>) -> String {
    x.map_or_else(|| "n/a".to_string(), |x| format!("{x:.2}"))
}

/// The report as text.
pub fn text(r: &Report) -> String {
    let h = &r.header;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "durafs bench {} · kernel {} · {} cores · {} ({}) · {}{} · mount {}",
        h.date,
        h.kernel,
        h.cores,
        h.fs,
        h.dir,
        if h.runs == 1 {
            "1 run".to_string()
        } else {
            format!("{} runs, medians", h.runs)
        },
        if h.quick { ", quick sizes" } else { "" },
        h.mount_options
    );
    for p in &h.peers {
        let _ = writeln!(out, "peer {}: {}", p.name, p.command);
    }
    if !r.workloads.is_empty() {
        let _ = writeln!(out);
        out.push_str(&table(&workload_cells(&r.workloads)));
    }
    let mut gap = "\n";
    if let Some(m) = &r.memory {
        let _ = writeln!(
            out,
            "{gap}memory: daemon peak RSS {} with {} unsynced; limit {} (1.15 x unsynced + 64 MiB): {}",
            mib(m.peak_rss_bytes),
            mib(m.unsynced_bytes),
            mib(m.limit_bytes),
            yes(m.met)
        );
        gap = "";
    }
    if let Some(p) = &r.pending {
        let _ = write!(out, "{gap}{}", pending(p));
        gap = "";
    }
    let explores = [
        ("explore", &r.explore),
        ("explore-sqlite", &r.explore_sqlite),
        ("explore-ext4", &r.explore_ext4),
    ];
    if explores.iter().any(|(_, e)| e.is_some()) {
        let _ = writeln!(out, "{gap}");
        out.push_str(&table(&explore_cells(&explores)));
    }
    for n in &r.notes {
        let _ = writeln!(out, "note: {n}");
    }
    out
}

/// The compared workloads: the medians, then durafs/native with its target,
/// then durafs/PEER for each peer (with target and met for the peers that
/// have targets).
fn workload_cells(rows: &[Row]) -> Vec<Vec<String>> {
    let peers: Vec<(&str, bool)> = rows[0]
        .peers
        .iter()
        .map(|p| {
            let targeted = rows.iter().any(|r| {
                r.peers
                    .iter()
                    .any(|q| q.name == p.name && q.target.is_some())
            });
            (p.name.as_str(), targeted)
        })
        .collect();
    let mut head: Vec<String> = ["workload", "unit", "native", "durafs"]
        .map(String::from)
        .into();
    head.extend(peers.iter().map(|(n, _)| n.to_string()));
    head.extend(["durafs/native", "target", "met"].map(String::from));
    for (n, targeted) in &peers {
        head.push(format!("durafs/{n}"));
        if *targeted {
            head.extend(["target", "met"].map(String::from));
        }
    }
    let mut cells = vec![head];
    for w in rows {
        let mut c = vec![
            w.name.to_string(),
            w.unit.to_string(),
            num(w.native),
            num(w.durafs),
        ];
        c.extend(w.peers.iter().map(|p| num(p.median)));
        c.push(format!("{:.2}", w.ratio));
        c.push(format!(">= {:.2}", w.target));
        c.push(yes(w.met).to_string());
        for (p, (_, targeted)) in w.peers.iter().zip(&peers) {
            c.push(format!("{:.2}", p.ratio));
            if *targeted {
                c.push(p.target.map_or_else(String::new, |t| format!(">= {t:.2}")));
                c.push(p.met.map_or("", yes).to_string());
            }
        }
        cells.push(c);
    }
    cells
}

fn pending(p: &Pending) -> String {
    let (s, b) = (&p.small, &p.big);
    format!(
        "pending: {} files: status {:.3} s, cut {:.3} s; {} files: status {:.3} s, cut {:.3} s\n  \
         the cut's floor, creating the {:.0} files it kept natively where it created them: \
         {:.3} s\n  \
         {}/{}: status x{:.1}, cut x{:.1} (target < {}): {}; at {} files status < {} s, cut < {} s: {}; \
         daemon memory {:.0} B per pending file beyond its data (target < {}): {}\n",
        s.files,
        s.status_seconds,
        s.cut_seconds,
        b.files,
        b.status_seconds,
        b.cut_seconds,
        b.kept_files,
        b.native_seconds,
        b.files,
        s.files,
        p.status_ratio,
        p.cut_ratio,
        p.ratio_limit,
        yes(p.ratio_met),
        b.files,
        p.status_limit_seconds,
        p.cut_limit_seconds,
        yes(p.seconds_met),
        b.bytes_per_file,
        p.bytes_per_file_limit,
        yes(p.memory_met),
    )
}

fn explore_cells(rows: &[(&str, &Option<Explore>)]) -> Vec<Vec<String>> {
    let head = [
        "row",
        "states",
        "seconds",
        "states/s",
        "target",
        "check alone/s",
        "ratio",
        "target",
        "durafs ms/state",
        "check ms/state",
        "met",
    ];
    let mut cells = vec![head.map(String::from).to_vec()];
    for (name, e) in rows {
        let Some(e) = e else { continue };
        let at_least = |t: Option<f64>| t.map_or_else(String::new, |t| format!(">= {t}"));
        cells.push(vec![
            name.to_string(),
            e.states.to_string(),
            format!("{:.2}", e.seconds),
            num(e.states_per_second),
            at_least(e.target),
            num(e.check_per_second),
            format!("{:.2}", e.check_ratio),
            at_least(e.check_ratio_target),
            opt(e.durafs_ms_per_state),
            opt(e.check_ms_per_state),
            yes(e.met).to_string(),
        ]);
    }
    cells
}

/// Aligned columns: the first left-aligned, the others right-aligned.
fn table(rows: &[Vec<String>]) -> String {
    let mut width: Vec<usize> = Vec::new();
    for row in rows {
        for (i, c) in row.iter().enumerate() {
            if width.len() <= i {
                width.push(0);
            }
            width[i] = width[i].max(c.chars().count());
        }
    }
    let mut out = String::new();
    for row in rows {
        let mut line = String::new();
        for (i, (c, w)) in row.iter().zip(&width).enumerate() {
            let _ = match i {
                0 => write!(line, "{c:<w$}"),
                _ => write!(line, "  {c:>w$}"),
            };
        }
        let _ = writeln!(out, "{}", line.trim_end());
    }
    out
}

/// How each unit reads in a progress line.
pub fn progress_figure(unit: Unit, x: f64) -> String {
    format!("{} {}", num(x), unit.label())
}

#[cfg(test)]
mod tests {
    use super::super::plan::Workload;
    use super::super::report::{Header, PeerInfo};
    use super::*;

    fn header(peers: Vec<PeerInfo>) -> Header {
        Header {
            date: "d".into(),
            kernel: "k".into(),
            cores: 2,
            fs: "ext4".into(),
            dir: "/var/tmp".into(),
            runs: 1,
            quick: true,
            mount_options: "--threads 2".into(),
            peers,
        }
    }

    fn report(workloads: Vec<Row>, peers: Vec<PeerInfo>) -> Report {
        Report {
            header: header(peers),
            workloads,
            memory: None,
            pending: None,
            explore: None,
            explore_sqlite: None,
            explore_ext4: None,
            notes: vec!["n".into()],
        }
    }

    #[test]
    fn text_table_is_aligned() {
        let r = report(
            vec![
                Row::new(Workload::SeqWrite, vec![1000.0], vec![500.0], Vec::new()),
                Row::new(Workload::Metadata, vec![9.0], vec![3.0], Vec::new()),
            ],
            Vec::new(),
        );
        let t = text(&r);
        let lines: Vec<&str> = t.lines().collect();
        assert!(lines[0].contains("1 run, quick sizes"), "{t}");
        assert!(
            lines[2].starts_with("workload ") && lines[2].ends_with("met"),
            "{t}"
        );
        assert!(
            lines[3].starts_with("seqwrite-128k") && lines[3].ends_with("NO"),
            "{t}"
        );
        assert!(lines[4].ends_with("yes"), "{t}");
        assert_eq!(lines[2].len(), lines[4].len(), "{t}");
        assert!(t.ends_with("note: n\n"));
        let j = serde_json::to_value(&r).unwrap();
        assert_eq!(j["workloads"][1]["name"], "metadata");
        assert_eq!(j["fs"], "ext4");
        assert!(j.get("memory").is_none() && j.get("explore").is_none());
        assert!(j.get("peers").is_none() && j["workloads"][0].get("peers").is_none());
    }

    #[test]
    fn each_peer_has_its_median_and_ratio_and_passthrough_its_targets() {
        let peers = || {
            vec![
                ("passthrough_ll".to_string(), vec![400.0]),
                ("self".to_string(), vec![1000.0]),
            ]
        };
        let r = report(
            vec![
                Row::new(Workload::SeqWrite, vec![1000.0], vec![500.0], peers()),
                Row::new(Workload::Append, vec![100.0], vec![300.0], peers()),
            ],
            vec![PeerInfo {
                name: "self".into(),
                command: "durafs mount {backing} {mnt}".into(),
            }],
        );
        let t = text(&r);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines[1], "peer self: durafs mount {backing} {mnt}", "{t}");
        let head: Vec<&str> = lines[3].split_whitespace().collect();
        assert_eq!(
            head,
            [
                "workload",
                "unit",
                "native",
                "durafs",
                "passthrough_ll",
                "self",
                "durafs/native",
                "target",
                "met",
                "durafs/passthrough_ll",
                "target",
                "met",
                "durafs/self"
            ],
            "{t}"
        );
        let seq: Vec<&str> = lines[4].split_whitespace().collect();
        assert_eq!(
            seq[4..],
            [
                "400", "1000", "0.50", ">=", "0.70", "NO", "1.25", ">=", "1.20", "yes", "0.50"
            ],
            "{t}"
        );
        // append has no passthrough target: its cells are blank, the
        // columns still aligned.
        assert_eq!(lines[5].len(), lines[4].len(), "{t}");
        assert!(lines[5].ends_with("0.30"), "{t}");
        let j = serde_json::to_value(&r).unwrap();
        assert_eq!(j["peers"][0]["name"], "self");
        let p = &j["workloads"][0]["peers"][0];
        assert_eq!(
            (p["name"].as_str(), p["ratio"].as_f64()),
            (Some("passthrough_ll"), Some(1.25))
        );
        assert_eq!(
            (p["target"].as_f64(), p["met"].as_bool()),
            (Some(1.2), Some(true))
        );
        assert!(j["workloads"][0]["peers"][1]["target"].is_null());
    }

    #[test]
    fn explore_rows_show_n_a_without_the_time_split() {
        use super::super::solo::{ExploreRun, ExploreSample};
        let run = |split: Option<f64>| ExploreRun {
            explore: ExploreSample {
                states: 300,
                seconds: 1.5,
                states_per_second: 200.0,
                durafs_ms_per_state: split,
                check_ms_per_state: split,
            },
            check_per_second: 210.0,
        };
        let mut r = report(Vec::new(), Vec::new());
        r.explore = Explore::median(Workload::Explore, &[run(None)]);
        r.explore_sqlite = Explore::median(Workload::ExploreSqlite, &[run(Some(0.25))]);
        let t = text(&r);
        let row = |name: &str| {
            t.lines()
                .find(|l| l.starts_with(&format!("{name} ")))
                .unwrap_or_else(|| panic!("no {name} row: {t}"))
                .split_whitespace()
                .collect::<Vec<_>>()
        };
        assert_eq!(
            row("explore")[1..],
            [
                "300", "1.50", "200", ">=", "100", "210", "0.95", ">=", "0.9", "n/a", "n/a", "yes"
            ],
            "{t}"
        );
        assert_eq!(row("explore-sqlite")[8..], ["0.25", "0.25", "yes"], "{t}");
        assert!(!t.contains("explore-ext4"), "{t}");
    }
}
