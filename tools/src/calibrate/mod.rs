//! `durafs calibrate`: measures how exactly a durafs model predicts a real
//! kernel filesystem. Each workload runs twice: on the real filesystem,
//! recorded at the block level ([`real`]), and on a durafs volume with the
//! model under test ([`predicted`]); at each step (the crashes between two
//! marks) both sides' crash outcomes are compared ([`compare`]) and reported ([`report`]).
//!
//! Exit status: 0 when no false negative was found, 1 when one was (a real
//! outcome the model cannot produce), 2 on a usage or set-up error, or when
//! a workload could not run on one of the sides.

pub mod commit;
mod compare;
pub mod device;
pub mod families;
mod fiemap;
pub mod fsync_fail;
mod member;
pub mod outcome;
mod points;
mod predicted;
mod reach;
pub mod real;
mod report;
pub mod script;
mod summarize;
pub mod workload;

use crate::exit::Code;
use crate::workload::{check_interrupted, kill_children_on_interrupt};
use crate::{CalibrateArgs, Result, err, usage};
use compare::{Counts, FalseNegative, PointResult, compare_point};
use device::FsKind;
use durafs::model::Persistence;
use durafs::model::enumerate::EnumOptions;
use families::History;
use outcome::Outcome;
use points::{Point, WalkStats};
use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// The outcomes of one side at one crash point.
#[derive(Clone, Debug)]
pub struct PointOutcomes {
    pub point: Point,
    /// Distinct outcomes, with how many crash states gave each.
    pub outcomes: BTreeMap<Outcome, usize>,
    /// Why real states were not outcomes, with how many.
    pub inconsistent: BTreeMap<String, usize>,
    /// Predicted side: the kind of the first crash state that gave each
    /// outcome ([`compare::state_kind`]).
    pub kinds: BTreeMap<Outcome, String>,
    /// Real side: for each outcome, the first crash state of the image
    /// that gave it at each crash position ([`reach`]).
    pub origins: BTreeMap<Outcome, Vec<reach::Origin>>,
    pub states: usize,
}

impl PointOutcomes {
    pub fn new(point: Point) -> PointOutcomes {
        PointOutcomes {
            point,
            outcomes: BTreeMap::new(),
            inconsistent: BTreeMap::new(),
            kinds: BTreeMap::new(),
            origins: BTreeMap::new(),
            states: 0,
        }
    }
    pub fn add(&mut self, o: Outcome) {
        self.states += 1;
        *self.outcomes.entry(o).or_insert(0) += 1;
    }
    /// As [`PointOutcomes::add`], remembering the kind of state it came
    /// from if it is the first to give this outcome.
    pub fn add_from(&mut self, o: Outcome, kind: String) {
        self.kinds.entry(o.clone()).or_insert(kind);
        self.add(o);
    }
    pub fn add_inconsistent(&mut self, why: &str) {
        self.states += 1;
        *self.inconsistent.entry(why.to_string()).or_insert(0) += 1;
    }
}

/// One side of one workload.
#[derive(Clone, Debug)]
pub struct Side {
    pub points: Vec<PointOutcomes>,
    pub stats: WalkStats,
    /// Real side: the bytes of every file of every outcome, by digest.
    pub contents: outcome::Contents,
}

impl Side {
    /// Adds another recording's outcomes, step by step (the same marks).
    pub fn merge(&mut self, other: Side) -> std::result::Result<(), String> {
        let labels = |s: &Side| s.points.iter().map(|p| p.point.clone()).collect::<Vec<_>>();
        if labels(self) != labels(&other) {
            return Err(format!(
                "the recordings have different marks: {:?} and {:?}",
                labels(self),
                labels(&other)
            ));
        }
        for (a, b) in self.points.iter_mut().zip(other.points) {
            for (o, n) in b.outcomes {
                *a.outcomes.entry(o).or_insert(0) += n;
            }
            for (why, n) in b.inconsistent {
                *a.inconsistent.entry(why).or_insert(0) += n;
            }
            for (o, v) in b.origins {
                a.origins.entry(o).or_default().extend(v);
            }
            a.states += b.states;
        }
        self.stats.events += other.stats.events;
        self.stats.positions += other.stats.positions;
        self.stats.states += other.stats.states;
        self.stats.sampled |= other.stats.sampled;
        self.contents.extend(other.contents);
        Ok(())
    }
}

/// One workload compared.
#[derive(Clone, Debug, serde::Serialize)]
pub struct WorkloadResult {
    pub name: String,
    pub script: String,
    /// Set when the workload could not run on one side.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub points: Vec<PointResult>,
    pub counts: Counts,
    pub coverage: f64,
    pub precision: f64,
    /// True when a side's enumeration was sampled (`--max-states`).
    pub sampled: bool,
    pub false_negatives: Vec<FalseNegative>,
    /// The first few predicted outcomes a real device state was built for
    /// ([`reach`]).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub reached: Vec<compare::Reached>,
    /// The first few predicted outcomes neither a real state showed nor
    /// reach built, with why.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub unreached: Vec<compare::Unreached>,
    pub seconds: f64,
}

/// What one run of `calibrate` compares.
pub struct Plan {
    pub fs: FsKind,
    pub model: Persistence,
    pub enumerate: EnumOptions,
    /// Most crash states per workload and side.
    pub max_states: usize,
    /// Most predicted crash states per workload.
    pub max_predicted: usize,
    pub jobs: usize,
    /// Predict only the keep-all state at each mark (tests only).
    pub wrong_model: bool,
    /// Where scripts and traces are kept.
    pub keep: Option<PathBuf>,
    /// What the real side does between operations.
    pub recording: real::Recording,
    /// Search real device states for unseen predictions ([`reach`]).
    pub reach: bool,
    /// Record the real side once more with writeback (`--union`).
    pub union: bool,
    /// And once more per step, with writeback before that step's mark
    /// only (`--timings`).
    pub timings: bool,
}

/// One workload to run.
pub struct Job {
    pub name: String,
    pub script: String,
    /// A generated workload's history, to sort its false negatives.
    pub history: Option<History>,
}

/// The workloads of `args`.
fn scripts(args: &CalibrateArgs) -> Result<Vec<Job>> {
    if !args.workload.is_empty() {
        return args
            .workload
            .iter()
            .map(|p| {
                let text = fs::read_to_string(p)
                    .map_err(|e| err(format!("--workload {}: {e}", p.display())))?;
                let name = p.file_name().map_or_else(
                    || p.display().to_string(),
                    |n| n.to_string_lossy().into_owned(),
                );
                Ok(Job {
                    name,
                    script: format!("{}{text}", script::PRELUDE),
                    history: None,
                })
            })
            .collect();
    }
    match args.generate {
        Some(n) => Ok((0..n)
            .map(|i| {
                let w = workload::generate(args.seed, i);
                Job {
                    name: w.name.clone(),
                    script: w.script(),
                    history: Some(History::of(&w)),
                }
            })
            .collect()),
        None => Err(usage(
            "nothing to run: give --generate N or --workload FILE",
        )),
    }
}

pub fn calibrate(args: &CalibrateArgs) -> Result<Code> {
    if args.fsync_failures {
        return fsync_fail::calibrate(args);
    }
    if args.print {
        for j in scripts(args)? {
            println!("# ---- {}\n{}", j.name, j.script);
        }
        return Ok(Code::Success);
    }
    if !args.summarize.is_empty() {
        print!("{}", summarize::markdown(&args.summarize)?);
        return Ok(Code::Success);
    }
    kill_children_on_interrupt();
    let fs_kind: FsKind = args
        .fs
        .as_deref()
        .ok_or_else(|| usage("--fs is required"))?
        .parse()
        .map_err(|e: String| usage(format!("--fs: {e}")))?;
    let model = args.model;
    if args.sector != 512 && args.sector != 4096 {
        return Err(usage("--sector must be 512 or 4096"));
    }
    if !durafs::sys::is_root() {
        return Err(err("calibrate needs root (losetup and mount)"));
    }
    device::require_tools(fs_kind)?;
    let jobs = jobs_for(fs_kind, args.jobs);
    let plan = Plan {
        fs: fs_kind,
        model,
        enumerate: EnumOptions {
            seed: args.seed,
            sector: args.sector,
            torn: true,
            ..EnumOptions::default()
        },
        max_states: args.max_states.max(3),
        max_predicted: args.max_predicted.max(3),
        jobs,
        wrong_model: args.test_wrong_model,
        keep: args.keep.clone(),
        recording: real::Recording {
            writeback: args.writeback,
            writeback_at: None,
            commits: args.commits,
            settle: args.settle,
        },
        reach: !args.no_reach,
        union: args.union,
        timings: args.timings,
    };
    let _xfssyncd = if args.commits && fs_kind == FsKind::Xfs {
        Some(commit::XfsSyncd::set()?)
    } else {
        None
    };
    if let Some(k) = &plan.keep {
        fs::create_dir_all(k).map_err(|e| err(format!("--keep {}: {e}", k.display())))?;
    }
    let list = scripts(args)?;
    let started = Instant::now();
    let mut results = Vec::new();
    for (i, job) in list.iter().enumerate() {
        if !args.json {
            eprintln!("durafs calibrate: [{}/{}] {}", i + 1, list.len(), job.name);
        }
        results.push(one(&plan, job)?);
        check_interrupted()?;
    }
    let summary = report::Summary::new(&plan, args, results, started.elapsed().as_secs_f64());
    if args.json {
        let v = serde_json::to_string(&summary).map_err(|e| err(e.to_string()))?;
        println!("{v}");
    } else {
        print!("{}", report::text(&summary));
    }
    Ok(verdict(summary.errors, summary.total.false_negatives()))
}

/// The exit code of a calibration: a workload that could not run (on
/// either side) outranks false negatives, which outrank success.
fn verdict(errors: usize, false_negatives: usize) -> Code {
    if errors > 0 {
        Code::Program
    } else if false_negatives > 0 {
        Code::Findings
    } else {
        Code::Success
    }
}

/// Scratch space: a temp dir in `/dev/shm` when there is one (images are
/// written there once per distinct state), else the system's.
fn scratch() -> Result<tempfile::TempDir> {
    let shm = Path::new("/dev/shm");
    let b = tempfile::Builder::new().prefix("durafs-calibrate-").clone();
    if shm.is_dir() {
        if let Ok(t) = b.tempdir_in(shm) {
            return Ok(t);
        }
    }
    b.tempdir()
        .map_err(|e| err(format!("creating a scratch directory: {e}")))
}

/// Runs and compares one workload; a side that fails makes an error row.
fn one(plan: &Plan, job: &Job) -> Result<WorkloadResult> {
    let (name, script) = (job.name.as_str(), job.script.as_str());
    let started = Instant::now();
    let mut r = WorkloadResult {
        name: name.to_string(),
        script: script.to_string(),
        error: None,
        points: Vec::new(),
        counts: Counts::default(),
        coverage: 1.0,
        precision: 1.0,
        sampled: false,
        false_negatives: Vec::new(),
        reached: Vec::new(),
        unreached: Vec::new(),
        seconds: 0.0,
    };
    match sides(plan, name, script) {
        Ok(sides) => {
            let Sides {
                real,
                predicted,
                trace,
                recordings,
                scratch,
            } = &sides;
            let member = |wanted: &[(Point, &Outcome)]| {
                if plan.wrong_model {
                    return vec![None; wanted.len()];
                }
                member::allowed(trace, &plan.enumerate, wanted, &real.contents)
            };
            let reach = |wanted: &[(usize, &Outcome)]| {
                if plan.wrong_model || !plan.reach {
                    return vec![Err(reach::Miss::NotSearched); wanted.len()];
                }
                let side = reach::RealSide {
                    kind: plan.fs,
                    recordings,
                    opts: &plan.enumerate,
                    points: &real.points,
                    contents: &real.contents,
                };
                reach::reached(&side, &predicted.contents, wanted, scratch.path())
            };
            compare_sides(&mut r, real, predicted, job.history.as_ref(), member, reach);
        }
        Err(e) => {
            check_interrupted()?;
            r.error = Some(e.msg);
        }
    }
    r.seconds = started.elapsed().as_secs_f64();
    Ok(r)
}

/// Both sides of one workload, with what the searches need.
struct Sides {
    real: Side,
    predicted: Side,
    /// The model's trace.
    trace: durafs::trace::Trace,
    /// The real side's recordings.
    recordings: Vec<real::Recorded>,
    scratch: tempfile::TempDir,
}

/// How the real side records `script`: as asked; with `--union` once more
/// with writeback before each mark; with `--timings` once more per `wb`
/// call of the script, writing back at that call only.
fn recordings(plan: &Plan, script: &str) -> Vec<real::Recording> {
    let mut v = vec![plan.recording];
    if plan.union && !plan.recording.writeback {
        v.push(real::Recording {
            writeback: true,
            ..plan.recording
        });
    }
    if plan.timings && !plan.recording.writeback && !plan.recording.settle {
        v.extend((1..=script::wb_calls(script)).map(|k| real::Recording {
            writeback_at: Some(k),
            ..plan.recording
        }));
    }
    v
}

/// The real and predicted sides of one workload.
fn sides(plan: &Plan, name: &str, script: &str) -> Result<Sides> {
    let work = tempfile::Builder::new()
        .prefix("durafs-calibrate-")
        .tempdir()
        .map_err(|e| err(format!("creating a work directory: {e}")))?;
    let mut recorded = Vec::new();
    for (n, how) in recordings(plan, script).into_iter().enumerate() {
        let dir = work.path().join(format!("real-{n}"));
        recorded.push(real::record(plan.fs, script, how, &dir)?);
    }
    let model_trace = predicted::record(
        plan.model,
        script,
        plan.recording.settle,
        &work.path().join("model"),
    )?;
    if let Some(k) = &plan.keep {
        let traces: Vec<&durafs::trace::Trace> = recorded.iter().map(|r| &r.trace).collect();
        keep(k, name, script, &traces, &model_trace)?;
    }
    let shm = scratch()?;
    let mut real: Option<Side> = None;
    for (n, rec) in recorded.iter().enumerate() {
        let side = real::outcomes(
            plan.fs,
            rec,
            n,
            &plan.enumerate,
            plan.max_states,
            plan.jobs,
            shm.path(),
        )?;
        real = Some(match real {
            None => side,
            Some(mut r) => {
                r.merge(side).map_err(err)?;
                r
            }
        });
    }
    let real = real.ok_or_else(|| err("no recording"))?;
    let predicted = predicted::outcomes(
        &model_trace,
        &plan.enumerate,
        plan.max_predicted,
        plan.wrong_model,
    )?;
    Ok(Sides {
        real,
        predicted,
        trace: model_trace,
        recordings: recorded,
        scratch: shm,
    })
}

fn keep(
    dir: &Path,
    name: &str,
    script: &str,
    real: &[&durafs::trace::Trace],
    model: &durafs::trace::Trace,
) -> Result<()> {
    let e = |p: &Path, x: std::io::Error| err(format!("--keep {}: {x}", p.display()));
    let path = dir.join(format!("{name}.sh"));
    fs::write(&path, script).map_err(|x| e(&path, x))?;
    let mut traces: Vec<(String, &durafs::trace::Trace)> = real
        .iter()
        .enumerate()
        .map(|(n, t)| {
            let suffix = if n == 0 {
                "real".to_string()
            } else {
                format!("real-{n}")
            };
            (suffix, *t)
        })
        .collect();
    traces.push(("model".to_string(), model));
    for (suffix, t) in traces {
        let path = dir.join(format!("{name}.{suffix}.trace"));
        let f = fs::File::create(&path).map_err(|x| e(&path, x))?;
        t.write(std::io::BufWriter::new(f))
            .map_err(|x| e(&path, x))?;
    }
    Ok(())
}

/// Compares the sides point by point; `member` says which real outcomes
/// outside the prediction the model allows ([`member::allowed`]), `reach`
/// which predicted outcomes no real state showed a real device state gives
/// ([`reach::reached`]).
fn compare_sides(
    r: &mut WorkloadResult,
    real: &Side,
    predicted: &Side,
    history: Option<&History>,
    member: impl FnOnce(&[(Point, &Outcome)]) -> Vec<Option<String>>,
    reach: impl FnOnce(&[(usize, &Outcome)]) -> Vec<reach::Reached>,
) {
    r.sampled = real.stats.sampled || predicted.stats.sampled;
    let labels = |s: &Side| s.points.iter().map(|p| p.point.clone()).collect::<Vec<_>>();
    if labels(real) != labels(predicted) {
        r.error = Some(format!(
            "the sides recorded different marks: real {:?}, predicted {:?}",
            labels(real),
            labels(predicted)
        ));
        return;
    }
    let mut found: Vec<(usize, FalseNegative)> = Vec::new();
    for (k, (a, b)) in real.points.iter().zip(&predicted.points).enumerate() {
        let (pr, fns) = compare_point(a, b);
        r.points.push(pr);
        found.extend(fns.into_iter().map(|f| (k, f)));
    }
    let wanted: Vec<(Point, &Outcome)> = found
        .iter()
        .map(|(k, f)| (real.points[*k].point.clone(), &f.real))
        .collect();
    let allowed = member(&wanted);
    for ((k, mut f), why) in found
        .into_iter()
        .zip(allowed.into_iter().chain(std::iter::repeat(None)))
    {
        let p = &mut r.points[k];
        if why.is_some() {
            p.counts.allowed += 1;
            p.coverage = p.counts.coverage();
        } else if let Some(h) = history {
            f.sorted = Some(h.sort(real.points[k].point.index, &f.real, f.nearest.as_ref()));
        }
        f.allowed = why;
        r.false_negatives.push(f);
    }
    reached(r, real, predicted, reach);
    for p in &r.points {
        r.counts.add(&p.counts);
    }
    r.coverage = r.counts.coverage();
    r.precision = r.counts.precision();
}

/// Counts the predicted outcomes no real state showed that `reach` finds a
/// real device state for, and keeps the first few as examples.
fn reached(
    r: &mut WorkloadResult,
    real: &Side,
    predicted: &Side,
    reach: impl FnOnce(&[(usize, &Outcome)]) -> Vec<reach::Reached>,
) {
    let wanted: Vec<(usize, &Outcome)> = real
        .points
        .iter()
        .zip(&predicted.points)
        .enumerate()
        .flat_map(|(k, (a, b))| {
            b.outcomes
                .keys()
                .filter(|o| !a.outcomes.contains_key(*o))
                .map(move |o| (k, o))
        })
        .collect();
    let found = reach(&wanted);
    for ((k, o), how) in wanted.into_iter().zip(found) {
        let p = &mut r.points[k];
        let how = match how {
            Ok(how) => how,
            Err(miss) => {
                *p.unreached.entry(miss.name().to_string()).or_insert(0) += 1;
                if r.unreached.len() < MAX_UNREACHED_SHOWN {
                    r.unreached.push(compare::Unreached {
                        point: p.point.clone(),
                        outcome: o.clone(),
                        kind: predicted.points[k].kinds.get(o).cloned(),
                        why: miss.name(),
                    });
                }
                continue;
            }
        };
        p.counts.reached += 1;
        p.precision = p.counts.precision();
        if let Some(kind) = predicted.points[k].kinds.get(o) {
            if let Some(n) = p.unseen.get_mut(kind) {
                *n -= 1;
                if *n == 0 {
                    p.unseen.remove(kind);
                }
            }
        }
        if r.reached.len() < MAX_REACHED_SHOWN {
            r.reached.push(compare::Reached {
                point: p.point.clone(),
                outcome: o.clone(),
                how,
            });
        }
    }
}

/// Reached outcomes a workload's result shows, with the state that gave
/// each.
const MAX_REACHED_SHOWN: usize = 5;

/// Unreached outcomes a workload's result shows, with why.
const MAX_UNREACHED_SHOWN: usize = 8;

/// Real states checked at once: `--jobs` (default 2), but one for btrfs,
/// which refuses to mount two filesystems with the same fsid (every state
/// of one workload's image has the same).
fn jobs_for(fs: FsKind, asked: Option<usize>) -> usize {
    let jobs = asked.unwrap_or(2).max(1);
    if fs == FsKind::Btrfs && jobs > 1 {
        if asked.is_some() {
            eprintln!(
                "durafs calibrate: btrfs states are checked one at a time (--jobs 1): \
                 btrfs refuses two mounts with the same fsid"
            );
        }
        return 1;
    }
    jobs
}

#[cfg(test)]
mod jobs_tests {
    use super::*;

    #[test]
    fn btrfs_is_checked_one_state_at_a_time() {
        assert_eq!(jobs_for(FsKind::Btrfs, Some(4)), 1);
        assert_eq!(jobs_for(FsKind::Btrfs, None), 1);
        assert_eq!(jobs_for(FsKind::Ext4, Some(4)), 4);
        assert_eq!(jobs_for(FsKind::Xfs, None), 2);
        assert_eq!(jobs_for(FsKind::Ext4, Some(0)), 1);
    }
}

#[cfg(test)]
mod verdict_tests {
    use super::*;

    /// A workload that could not run is the program's failure (exit 4),
    /// never a usage error; false negatives are findings (exit 1).
    #[test]
    fn exit_codes_follow_the_table() {
        assert_eq!(verdict(0, 0), Code::Success);
        assert_eq!(verdict(0, 3), Code::Findings);
        assert_eq!(verdict(1, 3), Code::Program);
        assert_eq!(verdict(1, 0).number(), 4);
    }
}
