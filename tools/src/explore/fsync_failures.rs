//! `durafs explore --fsync-failures`: for every fsync and fdatasync of one
//! recorded run, the program runs again with that call failing
//! (`fsync-fail --nth K`), and the crash states after the failure are
//! checked. What is tested is the program's reaction to the error: the
//! report names each failed fsync, what the program did next (retried it,
//! carried on, exited) and what the crash states after it lost.

use super::{Checked, Found, check_all, explain, members, options, record, record_with};
use crate::exit::Code;
use crate::workload::{self, check_interrupted};
use crate::{ExploreArgs, Result, err, usage};
use durafs::trace::{Named, Trace, TraceOp};
use std::fmt::Write;
use std::fs;
use std::path::Path;

/// What the program did after its fsync failed.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum Reaction {
    /// It called fsync (or fdatasync) on the same file again.
    Retried { event: String },
    /// It went on changing the volume without fsyncing that file again.
    CarriedOn { event: String },
    /// It made no further change and exited with this status.
    Exited { status: String },
}

impl Reaction {
    fn describe(&self) -> String {
        match self {
            Reaction::Retried { event } => {
                format!(
                    "retried the fsync ({event}): on Linux the failed pages were marked clean, so a retry that returns 0 proves nothing"
                )
            }
            Reaction::CarriedOn { event } => {
                format!("carried on without fsyncing the file again (next: {event})")
            }
            Reaction::Exited { status } => {
                format!("stopped changing the volume and exited ({status})")
            }
        }
    }
}

/// One failed fsync and the states after it.
#[derive(Debug, serde::Serialize)]
pub struct FailedFsync {
    /// Which fsync or fdatasync of the run failed (1-based).
    pub nth: usize,
    /// The call, e.g. `fsync /wal` (its event in the run with the failure).
    pub call: String,
    pub event: usize,
    pub reaction: Reaction,
    pub states_tried: usize,
    pub states_failed: usize,
    pub vulnerabilities: Vec<Found>,
    /// Failing states with nothing lost.
    pub no_loss: Vec<usize>,
}

/// The whole report.
#[derive(Debug, serde::Serialize)]
pub struct Report {
    /// fsyncs and fdatasyncs of the recorded run.
    pub fsyncs: usize,
    pub fsync_failures: Vec<FailedFsync>,
    pub states_tried: usize,
    pub states_failed: usize,
}

fn is_file_fsync(op: &TraceOp) -> bool {
    matches!(op.name(), "fsync" | "fdatasync")
}

/// The file an fsync names.
fn file_of(op: &TraceOp) -> Option<u64> {
    op.names().into_iter().find_map(|n| match n {
        Named::Inode(ino) => Some(ino),
        Named::Entry(..) => None,
    })
}

/// The failed fsync's event in `trace`, and what came after it.
fn reaction(trace: &Trace, status: std::process::ExitStatus) -> Option<(usize, Reaction)> {
    let at = trace
        .events
        .iter()
        .position(|e| e.op.name() == "fsync-failed")?;
    let file = file_of(&trace.events[at].op);
    let later = trace.events[at + 1..].iter().enumerate().filter(|(_, e)| {
        e.op.is_user_op() || is_file_fsync(&e.op) || matches!(e.op, TraceOp::Mark { .. })
    });
    // Retried: the very next thing it did was to fsync that file again.
    let next = later.map(|(i, e)| {
        let label = format!("#{} {}", at + i + 2, e.op.summary(&e.paths));
        (is_file_fsync(&e.op) && file_of(&e.op) == file, label)
    });
    Some((
        at,
        match next.into_iter().next() {
            Some((true, event)) => Reaction::Retried { event },
            Some((false, event)) => Reaction::CarriedOn { event },
            None => Reaction::Exited {
                status: status.to_string(),
            },
        },
    ))
}

/// The run with its `nth` fsync failing, explored after the failure.
fn one(args: &ExploreArgs, nth: usize, jobs: usize, dir: &Path) -> Result<Option<FailedFsync>> {
    let spec = format!("fsync-fail --nth {nth} --seed {}", args.seed);
    let rec = record_with(args, args.volume.model, &dir.join("record"), &[spec])?;
    let Some((at, reaction)) = reaction(&rec.trace, rec.status) else {
        eprintln!("durafs explore: the run with fsync {nth} failing made fewer fsyncs: skipped");
        return Ok(None);
    };
    let e = &rec.trace.events[at];
    let call = e.op.summary(&e.paths);
    eprintln!(
        "durafs explore: fsync {nth} ({call}) failed: the program {}",
        reaction.describe()
    );
    let opts = options(args, at + 1)?;
    let scratch = dir.join("states");
    fs::create_dir_all(&scratch).map_err(|e| err(format!("{}: {e}", scratch.display())))?;
    let (_, mut checked, duplicates, _) = check_all(args, &rec.trace, &opts, jobs, &scratch)?;
    checked.sort_by_key(|c| (c.point, c.dropped, c.state));
    let findings =
        explain::explain_failures(args, &rec.trace, &opts, &checked, duplicates, &scratch)?;
    let failures: Vec<Checked> = checked.iter().filter(|c| !c.passed).cloned().collect();
    let (vulnerabilities, no_loss) = members(findings.vulnerabilities, findings.no_loss, &failures);
    Ok(Some(FailedFsync {
        nth,
        call,
        event: at + 1,
        reaction,
        states_tried: checked.len(),
        states_failed: failures.len(),
        vulnerabilities,
        no_loss: no_loss.states,
    }))
}

pub fn explore(args: &ExploreArgs) -> Result<Code> {
    if args.command.is_empty() {
        return Err(usage("--fsync-failures needs the program after `--`"));
    }
    let jobs = args
        .jobs
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()))
        .max(1);
    let work = workload::WorkDir::new(args.dir.as_deref(), "durafs-explore-")?;
    workload::provide_durafs(work.path())?;
    if args.volume.allow_other {
        work.open_to_all()?;
    }
    let (trace, _) = record(args, args.volume.model, &work.path().join("record"))?;
    let fsyncs = trace.events.iter().filter(|e| is_file_fsync(&e.op)).count();
    if fsyncs == 0 {
        eprintln!("durafs explore: the program made no fsync or fdatasync: nothing to fail");
    }
    let mut failures = Vec::new();
    for nth in 1..=fsyncs {
        check_interrupted()?;
        if let Some(f) = one(args, nth, jobs, &work.path().join(format!("fsync-{nth}")))? {
            failures.push(f);
        }
    }
    let report = Report {
        fsyncs,
        states_tried: failures.iter().map(|f| f.states_tried).sum(),
        states_failed: failures.iter().map(|f| f.states_failed).sum(),
        fsync_failures: failures,
    };
    if args.json {
        println!(
            "{}",
            serde_json::to_string(&report).map_err(|e| err(e.to_string()))?
        );
    } else {
        print!("{}", text(&report));
    }
    Ok(if report.states_failed == 0 {
        Code::Success
    } else {
        Code::Findings
    })
}

fn text(r: &Report) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "durafs explore --fsync-failures: {} of {} fsyncs failed one at a time; {} crash states after them checked, {} failed",
        r.fsync_failures.len(),
        r.fsyncs,
        r.states_tried,
        r.states_failed
    );
    for f in &r.fsync_failures {
        let _ = writeln!(
            out,
            "\nfsync {} of {}: #{} {} failed with EIO",
            f.nth, r.fsyncs, f.event, f.call
        );
        let _ = writeln!(out, "  the program {}", f.reaction.describe());
        let _ = writeln!(
            out,
            "  {} crash states after it, {} failed",
            f.states_tried, f.states_failed
        );
        for v in &f.vulnerabilities {
            let v = &v.vulnerability;
            let _ = writeln!(out, "  - {}: {}", v.kind, v.summary);
            let _ = writeln!(out, "    fix: {}", v.fix);
        }
        if !f.no_loss.is_empty() {
            let _ = writeln!(
                out,
                "  - {} failing {} nothing still pending: what the failed fsync left clean of {} was never durable{}",
                f.no_loss.len(),
                if f.no_loss.len() == 1 {
                    "state loses"
                } else {
                    "states lose"
                },
                f.call.split_whitespace().nth(1).unwrap_or("the bytes"),
                if matches!(f.reaction, Reaction::Retried { .. }) {
                    ", although the retry returned 0"
                } else {
                    ""
                }
            );
            let _ = writeln!(
                out,
                "    fix: treat a failed fsync as fatal: stop, and recover from what is durable (PostgreSQL panics on it since 2018), or rewrite everything since the last fsync that succeeded"
            );
        }
    }
    out
}
