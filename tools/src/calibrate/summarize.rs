//! `durafs calibrate --summarize RUN.json...`: the Markdown tables of saved
//! `--json` runs, as `docs/fidelity.md` shows them: one row of totals per
//! run, the false negatives per family, and every false negative with its
//! workload's steps and the explanation [`families`](super::families)
//! found. False negatives of runs saved before they were sorted are sorted
//! here, from the workload their name regenerates (`seed-S-I`).

use super::compare::Counts;
use super::families::{Family, History, Sorted};
use super::outcome::Outcome;
use super::script::step_line;
use super::workload::{Workload, generate};
use crate::{Result, err};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Read;
use std::path::{Path, PathBuf};

#[derive(serde::Deserialize)]
struct Run {
    fs: String,
    model: String,
    sector: u64,
    command: String,
    workloads: Vec<RunWorkload>,
    total: Counts,
    seconds: f64,
    errors: usize,
}

#[derive(serde::Deserialize)]
struct RunWorkload {
    name: String,
    false_negatives: Vec<RunFn>,
    #[serde(default)]
    points: Vec<RunPoint>,
}

#[derive(serde::Deserialize)]
struct RunPoint {
    /// Absent in runs saved before it was recorded.
    #[serde(default)]
    unseen: BTreeMap<String, usize>,
    /// Absent in runs saved before reach.
    #[serde(default)]
    unreached: BTreeMap<String, usize>,
}

#[derive(serde::Deserialize)]
struct RunFn {
    point: String,
    real: Outcome,
    nearest: Option<Outcome>,
    sorted: Option<Sorted>,
    /// Allowed by the model after all (membership): not listed.
    #[serde(default)]
    allowed: Option<String>,
}

fn read(path: &Path) -> Result<Run> {
    let e = |x: String| err(format!("--summarize {}: {x}", path.display()));
    let f = std::fs::File::open(path).map_err(|x| e(x.to_string()))?;
    let mut text = String::new();
    if path.extension().is_some_and(|x| x == "gz") {
        flate2::read::GzDecoder::new(f).read_to_string(&mut text)
    } else {
        std::io::BufReader::new(f).read_to_string(&mut text)
    }
    .map_err(|x| e(x.to_string()))?;
    serde_json::from_str(&text).map_err(|x| e(format!("not a calibrate --json run: {x}")))
}

/// `seed-S-I` regenerated.
fn regenerate(name: &str) -> Option<Workload> {
    let mut it = name.strip_prefix("seed-")?.splitn(2, '-');
    let seed = it.next()?.parse().ok()?;
    let index = it.next()?.parse().ok()?;
    Some(generate(seed, index))
}

/// `1234567` as `1,234,567`.
fn thousands(n: usize) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// One listed false negative.
struct Listed {
    run: String,
    workload: String,
    point: String,
    steps: String,
    sorted: Option<Sorted>,
}

fn run_label(r: &Run) -> String {
    let mut how = String::new();
    for flag in [
        "--writeback",
        "--commits",
        "--settle",
        "--union",
        "--timings",
        "--no-reach",
    ] {
        if r.command.contains(flag) {
            how.push_str(&format!(" `{flag}`"));
        }
    }
    format!("{}{how} | {} | {}", r.fs, r.model, r.sector)
}

/// Lists and sorts one run's false negatives.
fn listed(r: &Run) -> Vec<Listed> {
    let mut out = Vec::new();
    for w in &r.workloads {
        let generated = regenerate(&w.name);
        let history = generated.as_ref().map(History::of);
        for f in w.false_negatives.iter().filter(|f| f.allowed.is_none()) {
            let k: usize = f
                .point
                .split(':')
                .next()
                .and_then(|k| k.parse().ok())
                .unwrap_or(0);
            let sorted = f.sorted.clone().or_else(|| {
                history
                    .as_ref()
                    .map(|h| h.sort(k, &f.real, f.nearest.as_ref()))
            });
            let steps = match &generated {
                Some(g) if k > 0 => g
                    .steps
                    .iter()
                    .take(k)
                    .map(|s| format!("`{}`", step_line(s)))
                    .collect::<Vec<_>>()
                    .join(" → "),
                Some(_) => "(setup)".to_string(),
                None => String::new(),
            };
            out.push(Listed {
                run: run_label(r),
                workload: w.name.clone(),
                point: f.point.clone(),
                steps,
                sorted,
            });
        }
    }
    out
}

/// The Markdown of `paths`' runs.
pub fn markdown(paths: &[PathBuf]) -> Result<String> {
    let runs = paths.iter().map(|p| read(p)).collect::<Result<Vec<_>>>()?;
    let mut out = String::from(
        "| fs | model | sector | N | errors | states | incons. | real | predicted | common | allowed | reached | FN | coverage | precision | time |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    for r in &runs {
        let t = &r.total;
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {:.3} | {:.3} | {:.0} s |",
            run_label(r),
            r.workloads.len(),
            r.errors,
            thousands(t.real_states),
            thousands(t.inconsistent),
            thousands(t.real),
            thousands(t.predicted),
            thousands(t.common),
            thousands(t.allowed),
            thousands(t.reached),
            thousands(t.false_negatives()),
            t.coverage(),
            t.precision(),
            r.seconds
        );
    }
    let all: Vec<Vec<Listed>> = runs.iter().map(listed).collect();
    out.push_str("\nFalse negatives by family:\n\n| fs | model | sector | FN |");
    for f in Family::ALL {
        let _ = write!(out, " {} |", f.name());
    }
    out.push_str(" unsorted |\n|---|---|---|---|");
    out.push_str(&"---|".repeat(Family::ALL.len() + 1));
    out.push('\n');
    for (r, list) in runs.iter().zip(&all) {
        let mut n: BTreeMap<Option<Family>, usize> = BTreeMap::new();
        for l in list {
            *n.entry(l.sorted.as_ref().map(|s| s.family)).or_insert(0) += 1;
        }
        let _ = write!(out, "| {} | {} |", run_label(r), list.len());
        for f in Family::ALL.map(Some).into_iter().chain([None]) {
            let _ = write!(out, " {} |", n.get(&f).copied().unwrap_or(0));
        }
        out.push('\n');
    }
    unseen(&mut out, &runs);
    every(&mut out, &all);
    Ok(out)
}

/// Where precision is lost: the predicted outcomes no real state showed,
/// by the kind of crash state that first gave each, most first.
fn unseen(out: &mut String, runs: &[Run]) {
    tally(
        out,
        runs,
        |p| &p.unseen,
        "Predicted outcomes no real state showed, by the kind of crash state that first gave each",
        "kinds",
    );
    tally(
        out,
        runs,
        |p| &p.unreached,
        "The same, by why reach built no device state for them",
        "reasons",
    );
}

/// A table of `of(point)`'s counts summed per run, most first; nothing
/// when every run's are empty.
fn tally(
    out: &mut String,
    runs: &[Run],
    of: impl Fn(&RunPoint) -> &BTreeMap<String, usize>,
    title: &str,
    what: &str,
) {
    let per_run: Vec<BTreeMap<&str, usize>> = runs
        .iter()
        .map(|r| {
            let mut m = BTreeMap::new();
            for p in r.workloads.iter().flat_map(|w| &w.points) {
                for (k, n) in of(p) {
                    *m.entry(k.as_str()).or_insert(0) += n;
                }
            }
            m
        })
        .collect();
    if per_run.iter().all(BTreeMap::is_empty) {
        return;
    }
    let _ = write!(
        out,
        "\n{title}:\n\n| fs | model | sector | unseen | {what}, most first |\n|---|---|---|---|---|\n"
    );
    for (r, m) in runs.iter().zip(per_run) {
        if m.is_empty() {
            continue;
        }
        let mut kinds: Vec<(&str, usize)> = m.into_iter().collect();
        kinds.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        let total: usize = kinds.iter().map(|(_, n)| n).sum();
        let list: Vec<String> = kinds.iter().map(|(k, n)| format!("{k} {n}")).collect();
        let _ = writeln!(
            out,
            "| {} | {} | {} |",
            run_label(r),
            thousands(total),
            list.join(", ")
        );
    }
}

/// Every false negative, a table per family.
fn every(out: &mut String, all: &[Vec<Listed>]) {
    let families = Family::ALL.map(Some).into_iter().chain([None]);
    for f in families {
        let rows: Vec<&Listed> = all
            .iter()
            .flatten()
            .filter(|l| l.sorted.as_ref().map(|s| s.family) == f)
            .collect();
        if rows.is_empty() {
            continue;
        }
        let name = f.map_or("unsorted", Family::name);
        let _ = write!(
            out,
            "\n### {name} ({})\n\n| fs | model | sector | workload | mark | steps | explanation |\n|---|---|---|---|---|---|---|\n",
            rows.len()
        );
        for l in rows {
            let why = l.sorted.as_ref().map_or("", |s| s.why.as_str());
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} |",
                l.run,
                l.workload,
                l.point,
                l.steps.replace('|', "\\|"),
                why.replace('|', "\\|")
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thousands_separates_groups_of_three() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(44624), "44,624");
        assert_eq!(thousands(1234567), "1,234,567");
    }

    #[test]
    fn a_generated_name_regenerates_its_workload() {
        assert_eq!(regenerate("seed-1-42"), Some(generate(1, 42)));
        assert_eq!(regenerate("my-test.sh"), None);
        assert_eq!(regenerate("seed-x-1"), None);
    }
}
