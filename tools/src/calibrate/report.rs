//! The calibration report: an aligned text table (a row per workload, then
//! the total and every false negative with its script) or one JSON
//! document.

use super::compare::{Counts, PointResult};
use super::families::Family;
use super::{Plan, WorkloadResult};
use crate::CalibrateArgs;
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// Everything a run found.
#[derive(Debug, serde::Serialize)]
pub struct Summary {
    pub fs: &'static str,
    pub model: String,
    pub sector: u64,
    pub max_states: usize,
    /// The command line that repeats this run.
    pub command: String,
    pub workloads: Vec<WorkloadResult>,
    pub total: Counts,
    pub coverage: f64,
    pub precision: f64,
    /// Workloads that could not run on a side.
    pub errors: usize,
    /// Workloads with a sampled enumeration.
    pub sampled: usize,
    pub seconds: f64,
}

impl Summary {
    pub fn new(
        plan: &Plan,
        args: &CalibrateArgs,
        workloads: Vec<WorkloadResult>,
        seconds: f64,
    ) -> Summary {
        let mut total = Counts::default();
        for w in &workloads {
            total.add(&w.counts);
        }
        let mut command = format!(
            "durafs calibrate --fs {} --model {} --sector {} --max-states {} --max-predicted {}",
            plan.fs.name(),
            args.model,
            args.sector,
            plan.max_states,
            plan.max_predicted
        );
        if args.writeback {
            command.push_str(" --writeback");
        }
        if args.commits {
            command.push_str(" --commits");
        }
        if args.settle {
            command.push_str(" --settle");
        }
        if args.union {
            command.push_str(" --union");
        }
        if args.timings {
            command.push_str(" --timings");
        }
        if args.no_reach {
            command.push_str(" --no-reach");
        }
        match args.generate {
            Some(n) if args.workload.is_empty() => {
                let _ = write!(command, " --generate {n} --seed {}", args.seed);
            }
            _ => {
                let _ = write!(command, " --seed {}", args.seed);
                for w in &args.workload {
                    let _ = write!(command, " --workload {}", w.display());
                }
            }
        }
        Summary {
            fs: plan.fs.name(),
            model: args.model.to_string(),
            sector: args.sector,
            max_states: plan.max_states,
            command,
            errors: workloads.iter().filter(|w| w.error.is_some()).count(),
            sampled: workloads.iter().filter(|w| w.sampled).count(),
            coverage: total.coverage(),
            precision: total.precision(),
            total,
            workloads,
            seconds,
        }
    }
}

fn row(cells: &[String], widths: &[usize]) -> String {
    let mut s = String::new();
    for (i, (c, w)) in cells.iter().zip(widths).enumerate() {
        if i == 0 {
            let _ = write!(s, "{c:<w$}");
        } else {
            let _ = write!(s, "  {c:>w$}");
        }
    }
    s.trim_end().to_string() + "\n"
}

fn cells(name: &str, c: &Counts, note: &str) -> Vec<String> {
    vec![
        name.to_string(),
        c.real_states.to_string(),
        c.inconsistent.to_string(),
        c.real.to_string(),
        c.predicted.to_string(),
        c.common.to_string(),
        c.false_negatives().to_string(),
        format!("{:.3}", c.coverage()),
        format!("{:.3}", c.precision()),
        note.to_string(),
    ]
}

/// The text report.
pub fn text(s: &Summary) -> String {
    let header: Vec<String> = [
        "workload",
        "states",
        "inconsistent",
        "real",
        "predicted",
        "common",
        "false-neg",
        "coverage",
        "precision",
        "",
    ]
    .iter()
    .map(|h| h.to_string())
    .collect();
    let mut rows = vec![header];
    for w in &s.workloads {
        let note = match &w.error {
            Some(e) => format!("error: {e}"),
            None if w.sampled => "sampled".to_string(),
            None => String::new(),
        };
        rows.push(cells(&w.name, &w.counts, &note));
    }
    rows.push(cells("total", &s.total, ""));
    let n = rows[0].len();
    let widths: Vec<usize> = (0..n)
        .map(|i| {
            if i + 1 == n {
                0
            } else {
                rows.iter().map(|r| r[i].len()).max().unwrap_or(0)
            }
        })
        .collect();
    let mut out = format!(
        "durafs calibrate: {} against model {} (sector {} B, at most {} states per side and workload)\n\n",
        s.fs, s.model, s.sector, s.max_states
    );
    for r in &rows {
        out.push_str(&row(r, &widths));
    }
    let _ = writeln!(
        out,
        "\n{} workloads in {:.1} s: coverage {:.3}, precision {:.3}, {} false negatives ({} more real outcomes outside the enumeration allowed by the model; {} predicted outcomes reached by a device state built for them), {} inconsistent real states, {} errors, {} sampled",
        s.workloads.len(),
        s.seconds,
        s.coverage,
        s.precision,
        s.total.false_negatives(),
        s.total.allowed,
        s.total.reached,
        s.total.inconsistent,
        s.errors,
        s.sampled
    );
    let mut reasons: BTreeMap<&str, usize> = Default::default();
    for w in &s.workloads {
        for p in &w.points {
            for (why, n) in &p.inconsistent_reasons {
                *reasons.entry(why.as_str()).or_insert(0) += n;
            }
        }
    }
    if !reasons.is_empty() {
        out.push_str("\ninconsistent real states, by reason:\n");
        for (why, n) in reasons {
            let _ = writeln!(out, "  {n:>5}  {why}");
        }
    }
    type Counted = fn(&PointResult) -> &BTreeMap<String, usize>;
    let titles: [(&str, Counted); 2] = [
        (
            "predicted outcomes no real state showed, by kind of crash state",
            |p| &p.unseen,
        ),
        (
            "the same, by why reach built no device state for them",
            |p| &p.unreached,
        ),
    ];
    for (title, of) in titles {
        let mut sum: BTreeMap<&str, usize> = Default::default();
        for p in s.workloads.iter().flat_map(|w| &w.points) {
            for (k, n) in of(p) {
                *sum.entry(k.as_str()).or_insert(0) += n;
            }
        }
        if !sum.is_empty() {
            let _ = writeln!(out, "\n{title}:");
            for (k, n) in sum {
                let _ = writeln!(out, "  {n:>5}  {k}");
            }
        }
    }
    let families = by_family(s);
    if !families.is_empty() {
        out.push_str("\nfalse negatives by family (docs/fidelity.md):\n");
        for (f, n) in families {
            let _ = writeln!(out, "  {n:>5}  {}", f.name());
        }
    }
    for w in &s.workloads {
        for f in w.false_negatives.iter().filter(|f| f.allowed.is_none()) {
            let _ = write!(
                out,
                "\nfalse negative in {} at mark {}: the real filesystem showed\n{}which no predicted outcome matches; nearest difference:\n{}",
                w.name,
                f.point,
                f.real.describe(),
                f.diff,
            );
            if let Some(x) = &f.sorted {
                let _ = writeln!(out, "family: {}: {}", x.family.name(), x.why);
            }
            let _ = write!(out, "reproduce with this workload:\n{}", w.script);
        }
    }
    let _ = writeln!(out, "\nrepeat: {}", s.command);
    out
}

/// Sorted false negatives per family.
fn by_family(s: &Summary) -> BTreeMap<Family, usize> {
    let mut m = BTreeMap::new();
    for f in s.workloads.iter().flat_map(|w| &w.false_negatives) {
        if let Some(x) = &f.sorted {
            *m.entry(x.family).or_insert(0) += 1;
        }
    }
    m
}
