//! `durafs run`: run a program on a fresh volume, cut the power at a
//! scripted point, remount what survived, and run a check there.
//!
//! At the trigger the volume freezes (no later call takes effect; callers
//! block), the program's whole process group is killed with SIGKILL, the
//! crash policy is applied, and the post-crash state is mounted at the same
//! place. `durafs run` exits 0 when the check passed (every check, with
//! `--repeat`) and 1 when it failed; the check's own exit code is reported.

mod json;
pub mod trigger;

use crate::exit::Code;
use crate::workload::{
    self, CheckRun, ENV_MARKS, ENV_MOUNT, WorkDir, check_interrupted, kill_group, run_check,
    spawn_to, write_marks,
};
use crate::{Result, RunArgs, err, usage};
use durafs::fs::{CutSummary, FsOptions};
use durafs::model::rng::SplitMix64;
use std::path::Path;
use std::process::{ExitStatus, Stdio};
use std::sync::Arc;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::{Duration, Instant};
use trigger::{Event, Hit, Trigger, When, Wire};

/// What one run did.
#[derive(Debug)]
pub struct Outcome {
    pub seed: u64,
    /// The trigger used (`random` resolved to `after-ops=K`).
    pub trigger: String,
    /// The trigger fired (else the program exited first).
    pub hit: Option<Hit>,
    /// Program operations before the cut.
    pub ops: u64,
    /// The program's own exit status, when it exited before the cut.
    pub exited: Option<ExitStatus>,
    pub cut: CutSummary,
    pub check: Option<CheckRun>,
}

struct Plan<'a> {
    args: &'a RunArgs,
    opts: FsOptions,
}

pub fn run(args: &RunArgs) -> Result<Code> {
    workload::kill_children_on_interrupt();
    let trigger: Trigger = args.cut.clone().unwrap_or(Trigger::Exit);
    let persistence = args.volume.model;
    if args.command.is_empty() {
        return Err(usage(
            "no program given: durafs run --cut TRIGGER -- CMD [ARGS...]",
        ));
    }
    let plan = Plan {
        args,
        opts: FsOptions {
            persistence,
            ..args.volume.fs_options()
        },
    };
    let work = WorkDir::new(args.dir.as_deref(), "durafs-run-")?;
    workload::provide_durafs(work.path())?;
    if args.volume.allow_other {
        work.open_to_all()?;
    }
    let total = match trigger {
        Trigger::Random => Some(count_ops(&plan, &work.path().join("count"))?),
        _ => None,
    };
    let repeat = args.repeat.max(1);
    let mut runs = Vec::new();
    for i in 0..repeat {
        let seed = args.seed.wrapping_add(i);
        let dir = work.path().join(format!("run-{seed}"));
        let t = match (total, &trigger) {
            (Some(n), _) => {
                let k = 1 + SplitMix64::new(seed).below(n);
                eprintln!("durafs run: random: after event #{k} of {n} (seed {seed})");
                Trigger::AfterOps(k)
            }
            (None, t) => t.clone(),
        };
        runs.push(json::Run::new(&once(&plan, &t, seed, &dir)?));
    }
    let kept = (!work.is_temporary()).then(|| work.path().display().to_string());
    if let Some(k) = &kept {
        eprintln!("durafs run: volumes kept in {k}");
    }
    let report = json::Report::new(runs, args.check.is_some(), kept);
    if repeat > 1 {
        let seeds: Vec<String> = report.failed_seeds.iter().map(u64::to_string).collect();
        match args.check {
            Some(_) => eprintln!(
                "durafs run: the check failed in {} of {repeat} runs{}",
                seeds.len(),
                if seeds.is_empty() {
                    String::new()
                } else {
                    format!(" (seeds {})", seeds.join(", "))
                }
            ),
            None => eprintln!("durafs run: {repeat} runs (no --check)"),
        }
    }
    if args.json {
        let text = serde_json::to_string(&report).map_err(|e| err(e.to_string()))?;
        println!("{text}");
    }
    // The check's verdict, never its own code: a check exiting 2 must not
    // read as a usage error (the check's code is in the output).
    Ok(if report.failed_seeds.is_empty() {
        Code::Success
    } else {
        Code::Findings
    })
}

/// Where the program's stdout goes: ours, or with `--json` our stderr, so
/// that stdout carries the JSON document alone.
fn program_stdout(args: &RunArgs) -> Result<Stdio> {
    if args.json {
        workload::to_stderr()
    } else {
        Ok(Stdio::inherit())
    }
}

/// Runs the program once without a cut and counts its operations.
fn count_ops(plan: &Plan<'_>, dir: &Path) -> Result<u64> {
    let (tx, rx) = mpsc::channel();
    let wire = Arc::new(Wire::new(Trigger::Exit, tx.clone()));
    let mounted = workload::volume(
        dir,
        plan.args.volume.init.as_deref(),
        plan.opts,
        plan.args.volume.allow_other,
        |fs| {
            fs.set_tripwire(wire)
                .map_err(|e| err(format!("tripwire: {e}")))
        },
    )?;
    let mnt = mounted.mountpoint().to_path_buf();
    let out = program_stdout(plan.args)?;
    let mut child = spawn_to(&plan.args.command, &mnt, &[(ENV_MOUNT, &mnt)], out)?;
    let status = child
        .wait()
        .map_err(|e| err(format!("waiting for the program: {e}")))?;
    drop(rx);
    check_interrupted()?;
    let n = mounted.fs().op_count();
    mounted
        .unmount()
        .map_err(|e| err(format!("unmounting the counting volume: {e}")))?;
    if !status.success() {
        log::warn!("durafs run: the counting run exited with {status}");
    }
    if n == 0 {
        return Err(err("random: the program made no operations on the volume"));
    }
    Ok(n)
}

fn once(plan: &Plan<'_>, t: &Trigger, seed: u64, dir: &Path) -> Result<Outcome> {
    let args = plan.args;
    let (tx, rx) = mpsc::channel();
    let wire = Arc::new(Wire::new(t.clone(), tx.clone()));
    let mounted = workload::volume(
        dir,
        args.volume.init.as_deref(),
        plan.opts,
        plan.args.volume.allow_other,
        |fs| {
            arm_faults(fs, &args.fault, &tx)?;
            fs.set_tripwire(wire)
                .map_err(|e| err(format!("tripwire: {e}")))
        },
    )?;
    let fs = Arc::clone(mounted.fs());
    let mnt = mounted.mountpoint().to_path_buf();
    let started = Instant::now();
    let out = program_stdout(args)?;
    let mut child = spawn_to(&args.command, &mnt, &[(ENV_MOUNT, &mnt)], out)?;
    let pgid = child.id();
    let waiter = std::thread::spawn(move || {
        let _ = tx.send(Event::Exited(child.wait()));
    });

    let first = first_event(t, &rx, started)?;
    // Interrupted: the program was killed; dropping the mount unmounts it.
    check_interrupted()?;
    let by_fault = matches!(first, Some(Event::FaultCut));
    let (hit, exited) = match first {
        Some(Event::Hit(h)) => (Some(h), None),
        Some(Event::FaultCut) => (None, None),
        Some(Event::Exited(s)) => (
            None,
            Some(s.map_err(|e| err(format!("waiting for the program: {e}")))?),
        ),
        None => (
            Some(Hit {
                count: fs.op_count(),
                op: None,
                when: When::After,
            }),
            None,
        ),
    };
    // The machine dies here: nothing more takes effect, and every process
    // of the program is killed (those blocked in a call die once the cut
    // answers it).
    fs.freeze();
    kill_group(pgid);
    let ops = fs.op_count();
    let marks = fs.marks();
    let cut = mounted
        // The volume sets the rules from its model.
        .cut(args.crash.options(seed))
        .map_err(|e| err(format!("cut: {e}")))?;
    let _ = waiter.join();
    if by_fault {
        eprintln!("durafs run: a --fault cut the power after {ops} events");
    }
    report(t, seed, &hit, ops, exited.as_ref(), &cut);

    let check = check_after(plan, dir, &mnt, &marks)?;
    Ok(Outcome {
        seed,
        trigger: t.to_string(),
        hit,
        ops,
        exited,
        cut,
        check,
    })
}

/// Arms `--fault`s on `fs`; a fault's cut ends the run as a trigger's hit.
fn arm_faults(fs: &durafs::fs::DuraFs, faults: &[String], tx: &mpsc::Sender<Event>) -> Result<()> {
    for spec in faults {
        fs.add_fault(spec)
            .map_err(|e| usage(format!("--fault {spec:?}: {e}")))?;
    }
    if !faults.is_empty() {
        let tx = std::sync::Mutex::new(tx.clone());
        fs.on_fault_cut(Box::new(move || {
            if let Ok(tx) = tx.lock() {
                let _ = tx.send(Event::FaultCut);
            }
        }));
    }
    Ok(())
}

/// The first thing that happens: the trigger, the program's exit, or (for
/// `after-ms`) the time running out (`None`).
fn first_event(t: &Trigger, rx: &mpsc::Receiver<Event>, started: Instant) -> Result<Option<Event>> {
    match t {
        Trigger::AfterMs(ms) => {
            let left = Duration::from_millis(*ms).saturating_sub(started.elapsed());
            match rx.recv_timeout(left) {
                Ok(ev) => Ok(Some(ev)),
                Err(RecvTimeoutError::Timeout) => Ok(None),
                Err(RecvTimeoutError::Disconnected) => Err(err("the program vanished")),
            }
        }
        _ => rx
            .recv()
            .map(Some)
            .map_err(|_| err("the program vanished without an exit status")),
    }
}

/// Remounts the post-crash state at `mnt` and runs the check there (with
/// the `marks` made before the cut); `None` without `--check`.
fn check_after(
    plan: &Plan<'_>,
    dir: &Path,
    mnt: &Path,
    marks: &[String],
) -> Result<Option<CheckRun>> {
    let args = plan.args;
    let post = workload::volume(dir, None, plan.opts, args.volume.allow_other, |_| Ok(()))
        .map_err(|e| err(format!("remounting after the cut: {}", e.msg)))?;
    let check = match &args.check {
        Some(c) => {
            let marks_file = dir.join("marks");
            write_marks(&marks_file, marks)?;
            // With --json the check's output goes into the document.
            Some(run_check(
                c,
                mnt,
                &[(ENV_MOUNT, mnt), (ENV_MARKS, &marks_file)],
                args.json,
            )?)
        }
        None => None,
    };
    post.unmount()
        .map_err(|e| err(format!("unmounting after the check: {e}")))?;
    check_interrupted()?;
    if let Some(c) = &check {
        eprintln!(
            "durafs run: check {} (exit {})",
            if c.passed() { "passed" } else { "FAILED" },
            c.code()
        );
    }
    Ok(check)
}

fn report(
    t: &Trigger,
    seed: u64,
    hit: &Option<Hit>,
    ops: u64,
    exited: Option<&ExitStatus>,
    c: &CutSummary,
) {
    let at = match (hit, exited) {
        (
            Some(Hit {
                op: Some(op),
                when,
                count,
            }),
            _,
        ) => format!(
            "trigger {t} hit {}",
            // Before a call, it would have been the next event.
            if *when == When::Before {
                format!("before #{} {op}", count + 1)
            } else {
                format!("after #{count} {op}")
            },
        ),
        (Some(_), _) => format!("trigger {t} hit after {ops} events"),
        (None, Some(s)) if matches!(t, Trigger::Exit) => {
            format!("the program exited ({s}) after {ops} events")
        }
        (None, Some(s)) => {
            format!("the program exited ({s}) after {ops} events, before trigger {t} fired")
        }
        (None, None) => format!("cut after {ops} operations"),
    };
    eprintln!("durafs run: {at}");
    eprintln!(
        "durafs run: power cut ({}, seed {seed}): lost {} of {} unsynced operations whole and {} in part: {} of data, {} files, {} names",
        c.policy,
        c.ops_lost,
        c.ops_pending,
        c.ops_partial,
        crate::size::human(c.bytes_lost),
        c.files_lost,
        c.names_lost
    );
    for l in &c.lost {
        eprintln!("durafs run:   lost: {l}");
    }
}
