//! `durafs explore`: record one run of a program on a tracing volume, then
//! check every crash state the trace allows, without running the program
//! again: each state is materialised into a scratch directory and the
//! check runs there, several at a time.

mod explain;
mod fsync_failures;
mod html;
mod report;

use crate::exit::Code;
use crate::leftovers::{self, Leftover};
use crate::workload::{
    self, ENV_MARKS, ENV_MOUNT, ENV_STATE, check_interrupted, interrupted, run_check_timed,
    spawn_logged, write_marks,
};
use crate::{CliError, ExploreArgs, Result, err, signals, usage};
use durafs::explore::explain::{Findings, Vulnerability};
use durafs::explore::{
    CrashPoints, Duplicate, ExploreOptions, OpFate, SparseState as State, Stats, Tree,
    sparse_states_and_duplicates as states,
};
use durafs::fs::FsOptions;
use durafs::model::Persistence;
use durafs::model::enumerate::EnumOptions;
use durafs::trace::Trace;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, mpsc};
use std::time::Instant;

/// One checked state.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Checked {
    pub state: usize,
    pub point: usize,
    pub after: Option<String>,
    pub marks: Vec<String>,
    pub description: String,
    pub seed: u64,
    pub dropped: usize,
    pub ops: Vec<OpFate>,
    pub passed: bool,
    /// The check ran past `--check-timeout` and was killed.
    pub timed_out: bool,
    pub exit: i32,
    pub output: String,
    /// What survived (see `durafs::explore::State::kept`).
    #[serde(skip)]
    pub kept: Vec<(usize, durafs::model::Survival)>,
    /// Equal for equal states.
    #[serde(skip)]
    pub key: u64,
}

/// A vulnerability with its member states.
#[derive(Debug, serde::Serialize)]
pub struct Found {
    #[serde(flatten)]
    pub vulnerability: Vulnerability,
    /// The members, smallest first (as `failures`).
    pub members: Vec<Checked>,
}

/// Failing states that lose nothing (their keep-all state fails too).
#[derive(Debug, Default, serde::Serialize)]
pub struct NoLoss {
    pub states: Vec<usize>,
    pub members: Vec<Checked>,
}

/// Where an exploration's time went: generating states (one thread, wall
/// time not spent waiting for a free checker) and, summed over the
/// checkers, materialising states, running the check, and the rest of a
/// checker's loop (see [`PerState`]).
#[derive(Debug, Default, serde::Serialize)]
pub struct Timings {
    pub generate_seconds: f64,
    pub materialise_seconds: f64,
    pub check_seconds: f64,
    /// Checkers taking a state off the queue and recording its verdict.
    pub schedule_seconds: f64,
    /// Checkers waiting for the generator (an empty queue): not durafs's
    /// cost per state, which `generate_seconds` already holds.
    pub wait_seconds: f64,
    /// States written into an empty directory.
    pub trees_fresh: usize,
    /// States made by patching the tree of the checker's previous state.
    pub trees_patched: usize,
}

/// Durafs's own time per checked state, apart from the check's, in
/// milliseconds: each figure is a sum of times (over the checkers, with
/// `--jobs` > 1) divided by the states checked, so a cost per state, not
/// wall time. `durafs` = `enumerate` + `materialise` + `schedule`.
#[derive(Debug, Default, serde::Serialize)]
pub struct PerState {
    /// The generating thread's time (`Timings::generate_seconds`).
    pub enumerate: f64,
    /// Checkers writing (or patching) the state's tree and marks file,
    /// and removing what was left.
    pub materialise: f64,
    /// Checkers taking the state off the queue (when one was ready) and
    /// recording its verdict.
    pub schedule: f64,
}

impl PerState {
    fn of(t: &Timings, states: usize) -> PerState {
        let ms = |s: f64| {
            if states == 0 {
                0.0
            } else {
                s * 1e3 / states as f64
            }
        };
        PerState {
            enumerate: ms(t.generate_seconds),
            materialise: ms(t.materialise_seconds),
            schedule: ms(t.schedule_seconds),
        }
    }

    pub fn durafs(&self) -> f64 {
        self.enumerate + self.materialise + self.schedule
    }
}

/// Nanoseconds accumulated by several threads.
#[derive(Default)]
struct Clock(std::sync::atomic::AtomicU64);

impl Clock {
    fn add(&self, since: Instant) {
        self.add_span(since.elapsed());
    }
    fn add_span(&self, d: std::time::Duration) {
        let ns = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        self.0.fetch_add(ns, Ordering::Relaxed);
    }
    fn seconds(&self) -> f64 {
        self.0.load(Ordering::Relaxed) as f64 / 1e9
    }
}

/// How an exploration was made, so that a report can be read (and run
/// again) on its own.
#[derive(Debug, serde::Serialize)]
pub struct Settings {
    /// The durafs that made it.
    pub version: &'static str,
    /// The model the crash states follow (the trace's).
    pub model: String,
    /// Where crash points are (`every`, `fsync`).
    pub at: String,
    /// The budget of distinct states (`--max-states`).
    pub max_states: usize,
    /// Seed of sampled and torn states.
    pub seed: u64,
    /// Sector size of torn writes, in bytes.
    pub sector: u64,
    /// Torn writes enumerated.
    pub torn: bool,
    /// Checks run at once.
    pub jobs: usize,
    /// The shard checked (`I/N`), when not all.
    pub shard: Option<String>,
}

/// What an exploration found.
#[derive(Debug, serde::Serialize)]
pub struct Exploration {
    pub settings: Settings,
    pub states_tried: usize,
    pub states_failed: usize,
    #[serde(flatten)]
    pub stats: Stats,
    pub seconds: f64,
    pub states_per_second: f64,
    /// Durafs's own milliseconds per checked state (enumeration,
    /// materialisation, scheduling; see [`PerState`]).
    pub durafs_ms_per_state: f64,
    /// The check's milliseconds per checked state (its wall time from
    /// spawn to exit, summed over the checkers, divided by the states).
    pub check_ms_per_state: f64,
    pub durafs_breakdown_ms_per_state: PerState,
    /// Where the time went.
    pub timings: Timings,
    /// Processes the program left running on the recording volume (killed
    /// before it was unmounted).
    pub left_running: Vec<Leftover>,
    /// The signal that stopped the exploration early (`SIGINT`): the
    /// report covers the states checked until then, unexplained.
    pub interrupted: Option<String>,
    /// The failures explained: vulnerabilities in the order of their first
    /// crash point, each with its member states.
    pub vulnerabilities: Vec<Found>,
    /// Failures nothing lost explains.
    pub no_loss: NoLoss,
    /// Checks run to explain the failures.
    pub explain_checks: usize,
    /// Failures, smallest first: earliest crash point, fewest operations
    /// dropped, then state number.
    pub failures: Vec<Checked>,
}

pub fn explore(args: &ExploreArgs) -> Result<Code> {
    workload::kill_children_on_interrupt();
    if args.fsync_failures {
        return fsync_failures::explore(args);
    }
    let persistence = args.volume.model;
    let opts = options(args, 0)?;
    if args.replay.is_none() && args.command.is_empty() {
        return Err(usage(
            "nothing to explore: give the program after `--`, or --replay TRACE",
        ));
    }
    if args.sector == 0 {
        return Err(usage("--sector must be positive"));
    }
    let jobs = args
        .jobs
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()))
        .max(1);
    let work = match &args.dir {
        Some(d) => {
            fs::create_dir_all(d).map_err(|e| err(format!("--dir {}: {e}", d.display())))?;
            tempfile::Builder::new()
                .prefix("durafs-explore-")
                .tempdir_in(d)
        }
        None => tempfile::Builder::new().prefix("durafs-explore-").tempdir(),
    }
    .map_err(|e| err(format!("creating a scratch directory: {e}")))?;
    if args.volume.allow_other {
        workload::traversable(work.path())?;
    }

    let started = Instant::now();
    workload::provide_durafs(work.path())?;
    let (trace, left_running) = match &args.replay {
        Some(p) => (
            Trace::read_file(p).map_err(|e| err(e.to_string()))?,
            Vec::new(),
        ),
        None => match record(args, persistence, &work.path().join("record")) {
            Ok(t) => t,
            Err(e) => match workload::interrupted_by() {
                Some(sig) => {
                    eprintln!(
                        "durafs explore: {} while recording the program: nothing was checked",
                        signals::name(sig)
                    );
                    return Ok(Code::from_signal(sig));
                }
                None => return Err(e),
            },
        },
    };
    if let Some(t) = &args.trace {
        let f = fs::File::create(t).map_err(|e| err(format!("--trace {}: {e}", t.display())))?;
        trace
            .write(std::io::BufWriter::new(f))
            .map_err(|e| err(format!("--trace {}: {e}", t.display())))?;
    }
    let scratch = work.path().join("states");
    fs::create_dir_all(&scratch).map_err(|e| err(format!("{}: {e}", scratch.display())))?;
    let checking = Instant::now();
    let (stats, mut checked, duplicates, timings) = check_all(args, &trace, &opts, jobs, &scratch)?;
    if let Some(only) = args.only {
        if checked.is_empty() {
            return Err(usage(format!(
                "no state {only}: this exploration has {} states",
                stats.distinct
            )));
        }
    }
    let seconds = checking.elapsed().as_secs_f64();
    checked.sort_by_key(|c| (c.point, c.dropped, c.state));
    let tried = checked.len();
    let per_state = PerState::of(&timings, tried);
    let findings = if args.only.is_some() || workload::interrupted() {
        Findings::default()
    } else {
        match explain::explain_failures(args, &trace, &opts, &checked, duplicates, &scratch) {
            Ok(f) => f,
            Err(_) if workload::interrupted() => Findings::default(),
            Err(e) => return Err(e),
        }
    };
    let stopped = workload::interrupted_by();
    let failures: Vec<Checked> = checked.iter().filter(|c| !c.passed).cloned().collect();
    let (vulnerabilities, no_loss) = members(findings.vulnerabilities, findings.no_loss, &failures);
    let points = html::outcomes(&checked, &vulnerabilities, trace.events.len());
    drop(checked);
    let result = Exploration {
        settings: Settings {
            version: env!("CARGO_PKG_VERSION"),
            model: trace.header.model.to_string(),
            at: args.at.clone(),
            max_states: opts.max_states,
            seed: args.seed,
            sector: args.sector,
            torn: !args.no_torn,
            jobs,
            shard: args.shard.map(|(i, n)| format!("{i}/{n}")),
        },
        states_tried: tried,
        states_failed: failures.len(),
        stats,
        seconds,
        states_per_second: if seconds > 0.0 {
            tried as f64 / seconds
        } else {
            0.0
        },
        durafs_ms_per_state: per_state.durafs(),
        check_ms_per_state: if tried == 0 {
            0.0
        } else {
            timings.check_seconds * 1e3 / tried as f64
        },
        durafs_breakdown_ms_per_state: per_state,
        timings,
        left_running,
        interrupted: stopped.map(signals::name),
        vulnerabilities,
        no_loss,
        explain_checks: findings.checks,
        failures,
    };
    log::info!(
        "durafs explore: {:.2} s in all",
        started.elapsed().as_secs_f64()
    );
    if let Some(path) = &args.html {
        std::fs::write(path, html::page(args, &trace, &result, &points))
            .map_err(|e| err(format!("--html {}: {e}", path.display())))?;
    }
    if args.json {
        let mut v = serde_json::to_value(&result).map_err(|e| err(e.to_string()))?;
        let add = |list: &mut serde_json::Value| {
            for f in list.as_array_mut().into_iter().flatten() {
                let id = f["state"].as_u64().unwrap_or(0) as usize;
                f["reproduce"] = report::reproduce(args, id).into();
            }
        };
        add(&mut v["failures"]);
        add(&mut v["no_loss"]["members"]);
        for found in v["vulnerabilities"].as_array_mut().into_iter().flatten() {
            add(&mut found["members"]);
        }
        println!("{v}");
    } else {
        print!("{}", report::text(args, &result));
    }
    Ok(if let Some(sig) = stopped {
        Code::from_signal(sig)
    } else if result.states_failed == 0 {
        Code::Success
    } else {
        Code::Findings
    })
}

/// The exploration's settings from the command line; crash points from
/// event `from` on.
fn options(args: &ExploreArgs, from: usize) -> Result<ExploreOptions> {
    let at: CrashPoints = args
        .at
        .parse()
        .map_err(|e: String| usage(format!("--at: {e}")))?;
    Ok(ExploreOptions {
        at,
        max_states: args.max_states.max(1),
        enumerate: EnumOptions {
            seed: args.seed,
            sector: args.sector,
            torn: !args.no_torn,
            ..EnumOptions::default()
        },
        from,
    })
}

/// Each vulnerability with its member states, and the failures that lose
/// nothing, from `failures` (smallest first, an order members keep).
fn members(
    found: Vec<Vulnerability>,
    no_loss: Vec<usize>,
    failures: &[Checked],
) -> (Vec<Found>, NoLoss) {
    let pick = |ids: &[usize]| -> Vec<Checked> {
        failures
            .iter()
            .filter(|c| ids.binary_search(&c.state).is_ok())
            .cloned()
            .collect()
    };
    let found = found
        .into_iter()
        .map(|v| Found {
            members: pick(&v.states),
            vulnerability: v,
        })
        .collect();
    let no_loss = NoLoss {
        members: pick(&no_loss),
        states: no_loss,
    };
    (found, no_loss)
}

/// Runs the program once on a tracing volume; its trace.
fn record(
    args: &ExploreArgs,
    persistence: Persistence,
    dir: &Path,
) -> Result<(Trace, Vec<Leftover>)> {
    let r = record_with(args, persistence, dir, &[])?;
    if !r.status.success() {
        return Err(CliError {
            code: Code::Program,
            msg: format!(
                "the program failed ({}) on the recording volume; a crash test needs a run that works{}",
                r.status,
                last_lines(&r.log, 20)
            ),
        });
    }
    Ok((r.trace, r.left))
}

/// One recorded run.
pub(crate) struct Recording {
    pub trace: Trace,
    pub left: Vec<Leftover>,
    pub status: std::process::ExitStatus,
    /// The program's output.
    pub log: PathBuf,
}

/// Runs the program once on a tracing volume with `faults` armed.
pub(crate) fn record_with(
    args: &ExploreArgs,
    persistence: Persistence,
    dir: &Path,
    faults: &[String],
) -> Result<Recording> {
    let opts = FsOptions {
        persistence,
        ..args.volume.fs_options()
    };
    let mounted = workload::volume(
        dir,
        args.volume.init.as_deref(),
        opts,
        args.volume.allow_other,
        |fs| {
            if args.stacks {
                fs.capture_stacks();
            }
            for f in faults {
                fs.add_fault(f)
                    .map_err(|e| err(format!("fault {f:?}: {e}")))?;
            }
            fs.start_trace(true, None)
                .map_err(|e| err(format!("tracing: {e}")))
        },
    )?;
    let mnt = mounted.mountpoint().to_path_buf();
    let log = dir.join("program.log");
    let mut child = spawn_logged(&args.command, &mnt, &[(ENV_MOUNT, &mnt)], &log)?;
    let status = child
        .wait()
        .map_err(|e| err(format!("waiting for the program: {e}")))?;
    let left = leftovers::kill(child.id(), &mnt, std::time::Duration::from_secs(10));
    if !left.is_empty() {
        let names: Vec<String> = left.iter().map(ToString::to_string).collect();
        eprintln!(
            "durafs explore: the program left {} running on the recording volume, killed: {}",
            if left.len() == 1 {
                "a process"
            } else {
                "processes"
            },
            names.join(", ")
        );
    }
    let trace = workload::take_trace(&mounted)?;
    mounted
        .unmount()
        .map_err(|e| err(format!("unmounting the recording volume: {e}")))?;
    check_interrupted()?;
    Ok(Recording {
        trace,
        left,
        status,
        log,
    })
}

/// The last `n` lines of the program's output, as a block to append to
/// a message (empty when it printed nothing).
fn last_lines(log: &Path, n: usize) -> String {
    let text = fs::read(log).unwrap_or_default();
    let text = String::from_utf8_lossy(&text);
    let lines: Vec<&str> = text.lines().collect();
    if lines.is_empty() {
        return "; it printed nothing".to_string();
    }
    let from = lines.len().saturating_sub(n);
    let mut out = format!("; the last {} lines of its output:", lines.len() - from);
    for l in &lines[from..] {
        out.push_str("\n  | ");
        out.push_str(l);
    }
    out
}

/// Generates the states and checks them on `jobs` threads.
fn check_all(
    args: &ExploreArgs,
    trace: &Trace,
    opts: &ExploreOptions,
    jobs: usize,
    scratch: &Path,
) -> Result<(Stats, Vec<Checked>, Vec<Duplicate>, Timings)> {
    let mut duplicates = Vec::new();
    let (tx, rx) = mpsc::sync_channel::<State>(jobs * 2);
    let rx = Mutex::new(rx);
    let results: Mutex<Vec<Checked>> = Mutex::new(Vec::new());
    let first_error: Mutex<Option<crate::CliError>> = Mutex::new(None);
    let failed = AtomicUsize::new(0);
    let progress = crate::progress::Progress::stderr("durafs explore", "crash states", 0);
    let only = args.only;
    let (clocks, waiting, job) = (Clocks::default(), Clock::default(), AtomicUsize::new(0));
    let generating = Instant::now();
    let stats = std::thread::scope(|s| {
        for _ in 0..jobs {
            s.spawn(|| {
                let probe = scratch.join(format!("probe{}", job.fetch_add(1, Ordering::Relaxed)));
                let mut tree = Tree::new(probe);
                while let Some(state) = next_state(&rx, &clocks) {
                    // After a set-up error, drain the queue so generation ends.
                    if interrupted() || first_error.lock().map_or(true, |e| e.is_some()) {
                        continue;
                    }
                    match check_one(args, state, scratch, &mut tree, &clocks) {
                        // A check the interrupt killed has no verdict.
                        Ok(_) if interrupted() => {}
                        Ok(c) => {
                            let t = Instant::now();
                            let f = failed.fetch_add(usize::from(!c.passed), Ordering::Relaxed)
                                + usize::from(!c.passed);
                            progress.inc(&format!("{f} failed"));
                            if let Ok(mut r) = results.lock() {
                                r.push(c);
                            }
                            clocks.schedule.add(t);
                        }
                        Err(e) => {
                            if let Ok(mut slot) = first_error.lock() {
                                slot.get_or_insert(e);
                            }
                        }
                    }
                }
                let t = Instant::now();
                tree.clear();
                clocks.materialise.add(t);
                clocks.fresh.fetch_add(tree.counts.fresh, Ordering::Relaxed);
                clocks
                    .patched
                    .fetch_add(tree.counts.patched, Ordering::Relaxed);
            });
        }
        let stats = states(
            trace,
            opts,
            |st| match only {
                _ if interrupted() => false,
                None if !in_shard(args.shard, st.id) => true,
                Some(o) if st.id < o => true,
                Some(o) if st.id > o => false,
                _ => {
                    progress.set_len(st.planned as u64);
                    let t = Instant::now();
                    let ok = tx.send(st).is_ok();
                    waiting.add(t);
                    ok && only.is_none()
                }
            },
            |d| duplicates.push(d),
        );
        drop(tx);
        (stats, generating.elapsed().as_secs_f64())
    });
    let (stats, generated) = stats;
    let timings = Timings {
        generate_seconds: (generated - waiting.seconds()).max(0.0),
        materialise_seconds: clocks.materialise.seconds(),
        check_seconds: clocks.check.seconds(),
        schedule_seconds: clocks.schedule.seconds(),
        wait_seconds: clocks.wait.seconds(),
        trees_fresh: clocks.fresh.into_inner(),
        trees_patched: clocks.patched.into_inner(),
    };
    progress.finish();
    if let Some(e) = first_error.into_inner().ok().flatten() {
        return Err(e);
    }
    let stats = stats.map_err(|e| err(e.to_string()))?;
    let results = results.into_inner().unwrap_or_default();
    Ok((stats, results, duplicates, timings))
}

/// True when state `id` belongs to `shard` (`(i, n)`: ids i, i+n, ...).
fn in_shard(shard: Option<(usize, usize)>, id: usize) -> bool {
    shard.is_none_or(|(i, n)| (id + n - i) % n == 0)
}

/// The checkers' clocks and tree counts, summed over them.
#[derive(Default)]
struct Clocks {
    materialise: Clock,
    check: Clock,
    schedule: Clock,
    wait: Clock,
    fresh: AtomicUsize,
    patched: AtomicUsize,
}

/// The next state off the queue (`None` once it is closed and empty).
/// Time spent waiting for the generator (or for a checker waiting for it)
/// is `wait`; taking a ready state is `schedule`.
fn next_state(rx: &Mutex<mpsc::Receiver<State>>, clocks: &Clocks) -> Option<State> {
    let t = Instant::now();
    let r = rx.lock().ok()?;
    let locked = Instant::now();
    match r.try_recv() {
        Ok(state) => {
            clocks.wait.add_span(locked - t);
            clocks.schedule.add(locked);
            Some(state)
        }
        Err(mpsc::TryRecvError::Disconnected) => None,
        Err(mpsc::TryRecvError::Empty) => {
            let state = r.recv().ok();
            clocks.wait.add(t);
            state
        }
    }
}

/// Materialises `state` in `tree` (patching the checker's previous state
/// when the check left it untouched), runs the check there, and keeps the
/// state under `--keep` when it failed or was asked for by `--only`. The
/// tree stays until the checker's next state.
fn check_one(
    args: &ExploreArgs,
    state: State,
    scratch: &Path,
    tree: &mut Tree,
    clocks: &Clocks,
) -> Result<Checked> {
    let t = Instant::now();
    let dir = scratch.join(format!("s{}", state.id));
    let marks = scratch.join(format!("s{}.marks", state.id));
    let setup = |e: std::io::Error| err(format!("materialising state {}: {e}", state.id));
    tree.prepare(&dir, &state.snapshot).map_err(setup)?;
    write_marks(&marks, &state.marks)?;
    clocks.materialise.add(t);
    let t = Instant::now();
    let run = run_check_timed(
        &args.check,
        &dir,
        &[(ENV_STATE, &dir), (ENV_MARKS, &marks)],
        true,
        Some(std::time::Duration::from_secs_f64(args.check_timeout)),
    )?;
    clocks.check.add(t);
    let t = Instant::now();
    let _ = fs::remove_file(&marks);
    clocks.materialise.add(t);
    if let Some(keep) = &args.keep {
        if !run.passed() || args.only.is_some() {
            keep_state(keep, &state)?;
        }
    }
    Ok(Checked {
        state: state.id,
        point: state.point,
        after: state.after,
        marks: state.marks,
        description: state.description,
        seed: state.seed,
        dropped: state.dropped,
        ops: state.ops,
        passed: run.passed(),
        timed_out: run.timed_out,
        exit: run.code(),
        output: run.output,
        kept: state.kept,
        key: state.key,
    })
}

/// Leaves `state` in `KEEP/state-N` (and its marks in `KEEP/state-N.marks`).
fn keep_state(keep: &Path, state: &State) -> Result<PathBuf> {
    let dir = keep.join(format!("state-{}", state.id));
    let e = |x: std::io::Error| err(format!("--keep {}: {x}", dir.display()));
    if dir.exists() {
        fs::remove_dir_all(&dir).map_err(e)?;
    }
    fs::create_dir_all(&dir).map_err(e)?;
    state.snapshot.materialise(&dir).map_err(e)?;
    write_marks(
        &keep.join(format!("state-{}.marks", state.id)),
        &state.marks,
    )?;
    Ok(dir)
}
