//! `durafs demo`: every bundled engine, in each setting, run through a
//! durafs volume and crashed at many points under several policies; the
//! acknowledged puts that recovery lost are counted. The result is the
//! measured version of the loss-window analysis' table.

pub(crate) mod cli;
pub mod rows;
pub mod trial;

use durafs::model::crash::{CrashOptions, Policy};
use durafs::model::enumerate::EnumOptions;
use durafs::model::rng::SplitMix64;
use rows::Row;
use std::fmt::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use trial::{Choice, Outcome, TrialError, Workload};

/// How much of the crash-state space each row tries.
#[derive(Clone, Debug)]
pub struct Plan {
    pub work: Workload,
    /// Where the trials' temporary volumes go (the system's temp dir if
    /// `None`).
    pub dir: Option<std::path::PathBuf>,
    /// Cut points, spread evenly over the workload.
    pub points: usize,
    /// Seeds per seeded policy (random, torn, prefix) and point.
    pub seeds: usize,
    /// Most enumerated states tried at the end of the workload (all of them
    /// when there are no more).
    pub enum_cap: usize,
    pub seed: u64,
    /// Rows run at once.
    pub threads: usize,
}

impl Default for Plan {
    fn default() -> Self {
        Plan {
            work: Workload::default(),
            dir: None,
            points: 6,
            seeds: 2,
            enum_cap: 24,
            seed: 1,
            threads: 2,
        }
    }
}

/// One row of the table.
#[derive(Clone, Debug, serde::Serialize)]
pub struct RowResult {
    pub engine: String,
    pub setting: String,
    pub wal: bool,
    pub fsync: String,
    pub safe: bool,
    pub states_tried: usize,
    pub states_lost: usize,
    pub worst_loss: usize,
    pub recovery_errors: usize,
    /// The crash that produced the worst case: policy (or state) and seed.
    pub worst_case: String,
    pub seed: u64,
    pub window: String,
    /// The first recovery error seen, if any.
    pub first_error: Option<String>,
}

impl RowResult {
    /// A vulnerable row showed a loss, or a crash-safe row showed none.
    pub fn as_expected(&self) -> bool {
        let harmed = self.states_lost > 0 || self.recovery_errors > 0;
        harmed != self.safe
    }
}

struct Tally {
    tried: usize,
    lost_states: usize,
    errors: usize,
    worst: Option<Outcome>,
    policies: Vec<String>,
    first_error: Option<String>,
}

impl Tally {
    fn add(&mut self, o: Outcome) {
        self.tried += 1;
        let harmed = o.lost > 0 || o.recovery_error.is_some();
        if o.lost > 0 {
            self.lost_states += 1;
        }
        if let Some(e) = &o.recovery_error {
            self.errors += 1;
            self.first_error.get_or_insert_with(|| e.clone());
        }
        if harmed {
            let p = o.label.split(' ').next().unwrap_or("").to_string();
            if !self.policies.contains(&p) {
                self.policies.push(p);
            }
        }
        if self.worst.as_ref().is_none_or(|w| o.lost > w.lost) {
            self.worst = Some(o);
        }
    }
}

/// The trials of one row, in order.
fn choices(row_index: usize, plan: &Plan) -> Vec<(usize, Choice)> {
    let n = plan.work.puts;
    let mut rng = SplitMix64::new(plan.seed ^ (row_index as u64).wrapping_mul(0x9E37_79B9));
    let mut out = Vec::new();
    for p in 1..=plan.points.max(1) {
        let at = n * p / plan.points.max(1);
        for policy in [Policy::DropAll, Policy::MetaFirst] {
            out.push((
                at,
                Choice::Policy(CrashOptions {
                    policy,
                    ..CrashOptions::default()
                }),
            ));
        }
        for policy in [Policy::Random, Policy::Torn, Policy::Prefix] {
            for _ in 0..plan.seeds {
                let opts = CrashOptions {
                    policy,
                    seed: rng.next_u64(),
                    ..CrashOptions::default()
                };
                out.push((at, Choice::Policy(opts)));
            }
        }
    }
    out
}

fn enum_opts(plan: &Plan) -> EnumOptions {
    EnumOptions {
        cap: plan.enum_cap,
        seed: plan.seed,
        sector: 512,
        torn: true,
        // Set from each trace's model where the states are enumerated.
        rules: Default::default(),
    }
}

/// What a row reports as it goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step<'a> {
    /// One more trial of the row named here done.
    Trial(&'a str),
    /// The row tries this many enumerated states, where [`planned`]
    /// counted [`Plan::enum_cap`]: the planned total changes by the
    /// difference.
    Enumerated(usize),
}

/// Trials row `index` is planned to run: its policy trials and the cap of
/// its enumerated states ([`Step::Enumerated`] then gives the true count).
pub fn planned(index: usize, plan: &Plan) -> usize {
    choices(index, plan).len() + plan.enum_cap
}

/// Runs every trial of `row` (`index` seeds it); `progress` hears about
/// each trial.
pub fn run_row(
    index: usize,
    row: &Row,
    plan: &Plan,
    progress: &(dyn Fn(Step<'_>) + Sync),
) -> Result<RowResult, TrialError> {
    let mut t = Tally {
        tried: 0,
        lost_states: 0,
        errors: 0,
        worst: None,
        policies: Vec::new(),
        first_error: None,
    };
    let name = format!("{} / {}", row.engine, row.setting);
    for (at, choice) in choices(index, plan) {
        t.add(trial::run(
            row,
            plan.dir.as_deref(),
            &plan.work,
            at,
            &choice,
        )?);
        progress(Step::Trial(&name));
    }
    if plan.enum_cap > 0 {
        let eo = enum_opts(plan);
        let first = trial::run(
            row,
            plan.dir.as_deref(),
            &plan.work,
            plan.work.puts,
            &Choice::Enumerated(0, eo),
        )?;
        let total = first.enumerated;
        t.add(first);
        progress(Step::Enumerated(total.max(1)));
        progress(Step::Trial(&name));
        for k in 1..total {
            t.add(trial::run(
                row,
                plan.dir.as_deref(),
                &plan.work,
                plan.work.puts,
                &Choice::Enumerated(k, eo),
            )?);
            progress(Step::Trial(&name));
        }
    }
    let worst = t.worst.clone();
    let (worst_loss, worst_case, seed) = match &worst {
        Some(w) if w.lost > 0 => (w.lost, format!("{} seed {}", w.label, w.seed), w.seed),
        _ => (0, "-".to_string(), 0),
    };
    let harmed = t.lost_states > 0 || t.errors > 0;
    let seen = t.policies.join(", ");
    let window = match (row.safe, harmed) {
        (true, false) => "none: every acknowledged put survived every crash tried".to_string(),
        (false, true) => format!("{} (seen under {seen})", row.mechanism),
        (false, false) => "none found: a vulnerable setting that lost nothing is a bug".to_string(),
        (true, true) => format!("BUG: a crash-safe setting was harmed under {seen}"),
    };
    Ok(RowResult {
        engine: row.engine.into(),
        setting: row.setting.into(),
        wal: row.wal,
        fsync: row.fsync.into(),
        safe: row.safe,
        states_tried: t.tried,
        states_lost: t.lost_states,
        worst_loss,
        recovery_errors: t.errors,
        worst_case,
        seed,
        window,
        first_error: t.first_error,
    })
}

/// Runs every row (on `plan.threads` threads), in table order.
pub fn run_all(
    rows: &[Row],
    plan: &Plan,
    progress: &(dyn Fn(Step<'_>) + Sync),
) -> Result<Vec<RowResult>, TrialError> {
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<Result<RowResult, TrialError>>>> =
        Mutex::new((0..rows.len()).map(|_| None).collect());
    std::thread::scope(|s| {
        for _ in 0..plan.threads.max(1) {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(row) = rows.get(i) else { break };
                    let r = run_row(i, row, plan, progress);
                    if let Ok(mut all) = results.lock() {
                        all[i] = Some(r);
                    }
                }
            });
        }
    });
    let all = results
        .into_inner()
        .map_err(|_| TrialError("a demo thread panicked".into()))?;
    all.into_iter()
        .map(|r| r.unwrap_or_else(|| Err(TrialError("a row did not run".into()))))
        .collect()
}

/// The table, as text.
pub fn table(results: &[RowResult]) -> String {
    let header = [
        "engine",
        "setting",
        "WAL?",
        "fsync?",
        "crash states tried",
        "states that lost acked writes",
        "worst loss (acked writes)",
        "recovery errors",
        "loss window found",
    ];
    let cells: Vec<Vec<String>> = results
        .iter()
        .map(|r| {
            vec![
                r.engine.clone(),
                r.setting.clone(),
                if r.wal { "yes" } else { "no" }.into(),
                r.fsync.clone(),
                r.states_tried.to_string(),
                r.states_lost.to_string(),
                if r.worst_loss > 0 {
                    format!("{} ({})", r.worst_loss, r.worst_case)
                } else {
                    "0".into()
                },
                r.recovery_errors.to_string(),
                r.window.clone(),
            ]
        })
        .collect();
    let mut out = String::new();
    let _ = writeln!(out, "| {} |", header.join(" | "));
    let _ = writeln!(out, "|{}", "---|".repeat(header.len()));
    for c in cells {
        let _ = writeln!(out, "| {} |", c.join(" | "));
    }
    out
}
