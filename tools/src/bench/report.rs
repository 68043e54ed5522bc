//! The benchmark's result: medians, ratios and targets from the samples of
//! every run, as an aligned text table or one JSON object.

use super::block::BlockSample;
use super::plan::{Unit, Workload};
use super::solo::{ExploreSample, MemorySample};
use serde::Serialize;
use std::fmt::Write;

/// The machine and settings a report was made with.
#[derive(Clone, Debug, Serialize)]
pub struct Header {
    pub date: String,
    pub kernel: String,
    pub cores: usize,
    pub fs: String,
    /// The directory the scratch directory went in.
    pub dir: String,
    pub runs: usize,
    pub quick: bool,
    pub mount_options: String,
}

/// One workload measured on both sides.
#[derive(Clone, Debug, Serialize)]
pub struct Row {
    pub name: &'static str,
    pub unit: &'static str,
    pub native: f64,
    pub durafs: f64,
    pub ratio: f64,
    pub target: f64,
    pub met: bool,
    pub runs_native: Vec<f64>,
    pub runs_durafs: Vec<f64>,
}

impl Row {
    pub fn new(w: Workload, runs_native: Vec<f64>, runs_durafs: Vec<f64>) -> Row {
        let (native, durafs) = (median(&runs_native), median(&runs_durafs));
        let ratio = ratio(durafs, native);
        Row {
            name: w.name(),
            unit: w.unit().label(),
            native,
            durafs,
            ratio,
            target: w.target(),
            met: ratio >= w.target(),
            runs_native,
            runs_durafs,
        }
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct Memory {
    pub peak_rss_bytes: u64,
    pub unsynced_bytes: u64,
    pub limit_bytes: u64,
    pub met: bool,
}

impl Memory {
    /// The run with the highest peak: a bound must hold in every run.
    pub fn worst(samples: &[MemorySample]) -> Option<Memory> {
        let s = samples.iter().max_by_key(|s| s.peak_rss_bytes)?;
        Some(Memory {
            peak_rss_bytes: s.peak_rss_bytes,
            unsynced_bytes: s.unsynced_bytes,
            limit_bytes: s.limit_bytes(),
            met: s.met(),
        })
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct Explore {
    pub states: u64,
    pub seconds: f64,
    pub states_per_second: f64,
    pub met: bool,
}

impl Explore {
    /// Medians over the runs.
    pub fn median(samples: &[ExploreSample]) -> Option<Explore> {
        if samples.is_empty() {
            return None;
        }
        let states: Vec<f64> = samples.iter().map(|s| s.states as f64).collect();
        let seconds: Vec<f64> = samples.iter().map(|s| s.seconds).collect();
        let rates: Vec<f64> = samples.iter().map(|s| s.states_per_second).collect();
        let states_per_second = median(&rates);
        Some(Explore {
            states: median(&states).round() as u64,
            seconds: median(&seconds),
            states_per_second,
            met: states_per_second >= Workload::Explore.target(),
        })
    }
}

/// `explore-ext4`: medians over the runs.
#[derive(Clone, Debug, Serialize)]
pub struct ExploreExt4 {
    pub states: u64,
    pub seconds: f64,
    pub states_per_second: f64,
    /// The check alone on a fixed image, same jobs.
    pub check_per_second: f64,
    pub met: bool,
}

impl ExploreExt4 {
    pub fn median(samples: &[BlockSample]) -> Option<ExploreExt4> {
        let e: Vec<ExploreSample> = samples.iter().map(|s| s.explore).collect();
        let m = Explore::median(&e)?;
        let checks: Vec<f64> = samples.iter().map(|s| s.check_per_second).collect();
        Some(ExploreExt4 {
            states: m.states,
            seconds: m.seconds,
            states_per_second: m.states_per_second,
            check_per_second: median(&checks),
            met: m.states_per_second >= Workload::ExploreExt4.target(),
        })
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct Report {
    #[serde(flatten)]
    pub header: Header,
    pub workloads: Vec<Row>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory: Option<Memory>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub explore: Option<Explore>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub explore_ext4: Option<ExploreExt4>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

/// The median (the mean of the middle two for an even count); NaN when
/// empty.
pub fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    match s.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => s[n / 2],
        n => (s[n / 2 - 1] + s[n / 2]) / 2.0,
    }
}

/// durafs / native; 0 when native measured nothing (never met).
pub fn ratio(durafs: f64, native: f64) -> f64 {
    if native > 0.0 && durafs.is_finite() {
        durafs / native
    } else {
        0.0
    }
}

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

/// The report as text: a header line, the table, then memory, explore and
/// notes.
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
    if !r.workloads.is_empty() {
        let mut cells = vec![
            [
                "workload", "unit", "native", "durafs", "ratio", "target", "met",
            ]
            .map(String::from),
        ];
        for w in &r.workloads {
            cells.push([
                w.name.to_string(),
                w.unit.to_string(),
                num(w.native),
                num(w.durafs),
                format!("{:.2}", w.ratio),
                format!(">= {:.2}", w.target),
                yes(w.met).to_string(),
            ]);
        }
        let _ = writeln!(out);
        out.push_str(&table(&cells));
    }
    if let Some(m) = &r.memory {
        let _ = writeln!(
            out,
            "\nmemory: daemon peak RSS {} with {} unsynced; limit {} (1.15 x unsynced + 64 MiB): {}",
            mib(m.peak_rss_bytes),
            mib(m.unsynced_bytes),
            mib(m.limit_bytes),
            yes(m.met)
        );
    }
    if let Some(e) = &r.explore {
        let _ = writeln!(
            out,
            "{}explore: {} states in {:.2} s = {} states/s (target >= {}): {}",
            if r.memory.is_some() { "" } else { "\n" },
            e.states,
            e.seconds,
            num(e.states_per_second),
            Workload::Explore.target(),
            yes(e.met)
        );
    }
    if let Some(e) = &r.explore_ext4 {
        let _ = writeln!(
            out,
            "explore-ext4: {} states in {:.2} s = {} states/s (target >= {}; the check alone: {}/s): {}",
            e.states,
            e.seconds,
            num(e.states_per_second),
            Workload::ExploreExt4.target(),
            num(e.check_per_second),
            yes(e.met)
        );
    }
    for n in &r.notes {
        let _ = writeln!(out, "note: {n}");
    }
    out
}

/// Aligned columns: the first left-aligned, the others right-aligned.
fn table<const N: usize>(rows: &[[String; N]]) -> String {
    let mut width = [0usize; N];
    for row in rows {
        for (w, c) in width.iter_mut().zip(row) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut out = String::new();
    for row in rows {
        let mut line = String::new();
        for (i, (c, w)) in row.iter().zip(width).enumerate() {
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
    use super::*;

    #[test]
    fn medians() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), 2.5);
        assert_eq!(median(&[7.0]), 7.0);
        assert!(median(&[]).is_nan());
    }

    #[test]
    fn ratios_and_targets() {
        let r = Row::new(
            Workload::SeqWrite,
            vec![100.0, 300.0, 200.0],
            vec![140.0, 150.0, 10.0],
        );
        assert_eq!((r.native, r.durafs), (200.0, 140.0));
        assert!((r.ratio - 0.7).abs() < 1e-12 && r.met, "0.7 meets >= 0.7");
        let r = Row::new(Workload::SeqWrite, vec![200.0], vec![139.0]);
        assert!(!r.met);
        let r = Row::new(Workload::Append, vec![100.0], vec![250.0]);
        assert!(r.met && r.target == 2.0 && r.unit == "IOPS");
        let r = Row::new(Workload::Metadata, vec![0.0], vec![5.0]);
        assert!(r.ratio == 0.0 && !r.met);
        let e = Explore::median(&[
            ExploreSample {
                states: 10,
                seconds: 0.2,
                states_per_second: 50.0,
            },
            ExploreSample {
                states: 10,
                seconds: 0.05,
                states_per_second: 200.0,
            },
            ExploreSample {
                states: 10,
                seconds: 0.1,
                states_per_second: 100.0,
            },
        ]);
        assert!(e.is_some_and(|e| e.met && e.states_per_second == 100.0));
        assert!(Explore::median(&[]).is_none());
    }

    #[test]
    fn explore_ext4_is_the_median_and_printed_with_the_check_alone() {
        let sample = |sps: f64, check: f64| BlockSample {
            explore: ExploreSample {
                states: 77,
                seconds: 77.0 / sps,
                states_per_second: sps,
            },
            check_per_second: check,
        };
        let b = ExploreExt4::median(&[sample(19.0, 30.0), sample(40.0, 35.0), sample(25.0, 31.0)]);
        let b = b.expect("samples");
        assert!(b.met && b.states_per_second == 25.0 && b.check_per_second == 31.0);
        let b = ExploreExt4::median(&[sample(19.9, 30.0)]).expect("a sample");
        assert!(!b.met, "19.9 misses >= 20");
        assert!(ExploreExt4::median(&[]).is_none());
        let r = Report {
            header: Header {
                date: "d".into(),
                kernel: "k".into(),
                cores: 2,
                fs: "ext4".into(),
                dir: "/var/tmp".into(),
                runs: 1,
                quick: true,
                mount_options: String::new(),
            },
            workloads: Vec::new(),
            memory: None,
            explore: None,
            explore_ext4: Some(b),
            notes: Vec::new(),
        };
        let t = text(&r);
        assert!(
            t.contains("explore-ext4: 77 states") && t.contains("the check alone: 30"),
            "{t}"
        );
    }

    #[test]
    fn text_table_is_aligned() {
        let r = Report {
            header: Header {
                date: "d".into(),
                kernel: "k".into(),
                cores: 2,
                fs: "ext4".into(),
                dir: "/var/tmp".into(),
                runs: 1,
                quick: true,
                mount_options: "--threads 2".into(),
            },
            workloads: vec![
                Row::new(Workload::SeqWrite, vec![1000.0], vec![500.0]),
                Row::new(Workload::Metadata, vec![9.0], vec![3.0]),
            ],
            memory: None,
            explore: None,
            explore_ext4: None,
            notes: vec!["n".into()],
        };
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
        assert_eq!(
            lines[3].find("0.50"),
            lines[2].find("ratio").map(|i| i + 1),
            "{t}"
        );
        assert!(t.ends_with("note: n\n"));
        let j = serde_json::to_value(&r).unwrap();
        assert_eq!(j["workloads"][1]["name"], "metadata");
        assert_eq!(j["fs"], "ext4");
        assert!(j.get("memory").is_none() && j.get("explore").is_none());
    }
}
