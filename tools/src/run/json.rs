//! `durafs run --json`: one JSON document on stdout with every
//! repetition's cut and check, and the verdict.

use super::Outcome;
use super::trigger::When;
use durafs::fs::CutSummary;
use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;

/// The whole run.
#[derive(Debug, serde::Serialize)]
pub struct Report {
    /// `passed` (every check passed), `failed` (one did) or `no check`.
    pub verdict: &'static str,
    /// Seeds whose check failed.
    pub failed_seeds: Vec<u64>,
    /// Where the volumes were kept (`--dir`), if they were.
    pub volumes_kept: Option<String>,
    /// One per repetition, in order.
    pub runs: Vec<Run>,
}

/// One repetition.
#[derive(Debug, serde::Serialize)]
pub struct Run {
    pub seed: u64,
    /// The trigger this run used (`random` resolved to `after-ops=K`).
    pub trigger: String,
    /// Where the trigger hit; `null` when the program exited first.
    pub hit: Option<Hit>,
    /// Program operations before the cut.
    pub ops: u64,
    /// How the program ended, when it exited before the cut.
    pub program_exit: Option<Exit>,
    /// What the cut lost.
    pub cut: CutSummary,
    /// The check on the post-crash state (`null` without `--check`).
    pub check: Option<Check>,
}

#[derive(Debug, serde::Serialize)]
pub struct Hit {
    /// Program operations when it hit.
    pub count: u64,
    /// `before` or `after` the operation.
    pub when: &'static str,
    /// The operation, e.g. `fsync /log` (`null` for a timer).
    pub op: Option<String>,
}

#[derive(Debug, serde::Serialize)]
pub struct Exit {
    /// The exit code, when it exited.
    pub code: Option<i32>,
    /// The signal that killed it, when one did.
    pub signal: Option<i32>,
}

#[derive(Debug, serde::Serialize)]
pub struct Check {
    pub passed: bool,
    /// The check's own exit code (128 + the signal that killed it).
    pub exit_code: i32,
    /// Its stdout then stderr.
    pub output: String,
}

fn exit(s: &ExitStatus) -> Exit {
    Exit {
        code: s.code(),
        signal: s.signal(),
    }
}

impl Run {
    pub fn new(o: &Outcome) -> Run {
        Run {
            seed: o.seed,
            trigger: o.trigger.clone(),
            hit: o.hit.as_ref().map(|h| Hit {
                count: h.count,
                when: if h.when == When::Before {
                    "before"
                } else {
                    "after"
                },
                op: h.op.clone(),
            }),
            ops: o.ops,
            program_exit: o.exited.as_ref().map(exit),
            cut: o.cut.clone(),
            check: o.check.as_ref().map(|c| Check {
                passed: c.passed(),
                exit_code: c.code(),
                output: c.output.clone(),
            }),
        }
    }
}

impl Report {
    pub fn new(runs: Vec<Run>, checked: bool, volumes_kept: Option<String>) -> Report {
        let failed_seeds: Vec<u64> = runs
            .iter()
            .filter(|r| r.check.as_ref().is_some_and(|c| !c.passed))
            .map(|r| r.seed)
            .collect();
        let verdict = match (checked, failed_seeds.is_empty()) {
            (false, _) => "no check",
            (true, true) => "passed",
            (true, false) => "failed",
        };
        Report {
            verdict,
            failed_seeds,
            volumes_kept,
            runs,
        }
    }
}
