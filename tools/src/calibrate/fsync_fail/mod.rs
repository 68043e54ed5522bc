//! `durafs calibrate --fsync-failures`: checks the model of a failed
//! fsync (`durafs::model::fsync_fail`) against ext4, xfs or btrfs on
//! generated workloads ([`workload`]), with durafs's own fault injection
//! as the failing disk ([`real`]): each workload runs on the real
//! filesystem, then on a durafs volume with that filesystem's fsync-failure
//! semantics and an `fsync-fail` fault that writes back the pages that
//! really reached the medium ([`model`]); every step's result (each
//! fsync's return code, the file's size and bytes read live, after
//! `drop_caches` and after a clean remount) is compared.
//!
//! Exit status: 0 when the model matched every compared workload, 1 when
//! some step differed, 3 when a workload could not be set up or run.

mod model;
mod real;
mod space;
mod steps;
pub mod workload;

use super::device::{self, FsKind};
use crate::exit::Code;
use crate::workload::{check_interrupted, kill_children_on_interrupt};
use crate::{CalibrateArgs, Result, err, usage};
use durafs::model::fsync_fail::FsyncFailure;
use std::time::Instant;
use steps::{Obs, Seen};
use workload::{PAGE, Workload};

/// One step as shown: its name and what it saw.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Step {
    pub step: &'static str,
    pub seen: String,
}

/// A step whose outcomes differ.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Mismatch {
    pub step: &'static str,
    pub real: String,
    pub model: String,
}

/// One workload checked.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Checked {
    pub name: String,
    pub description: String,
    pub workload: Workload,
    /// The dirty pages at the failed fsync.
    pub dirty: Vec<u64>,
    /// Of those, the ones whose new bytes reached the medium.
    pub reached: Option<Vec<u64>>,
    /// Device write requests the faults failed.
    pub failed_writes: u64,
    /// The `fsync-fail` fault's seed on the model's side.
    pub seed: Option<u64>,
    pub comparable: bool,
    /// Why it was not compared, or the error that stopped it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub why: Option<String>,
    pub error: bool,
    pub real: Vec<Step>,
    pub model: Vec<Step>,
    pub mismatches: Vec<Mismatch>,
    pub seconds: f64,
}

/// The whole run.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Summary {
    pub fs: FsKind,
    pub model: String,
    pub semantics: String,
    pub seed: u64,
    pub workloads: Vec<Checked>,
    pub compared: usize,
    pub matched: usize,
    pub not_comparable: usize,
    pub errors: usize,
    pub mismatches: usize,
    pub seconds: f64,
}

/// The fsync-failure semantics the model has for `fs`.
fn semantics(fs: FsKind) -> FsyncFailure {
    match fs {
        FsKind::Ext4 => FsyncFailure::Ext4,
        FsKind::Xfs => FsyncFailure::Xfs,
        FsKind::Btrfs => FsyncFailure::Btrfs,
    }
}

/// `durafs calibrate --fsync-failures`.
pub fn calibrate(args: &CalibrateArgs) -> Result<Code> {
    let kind: FsKind = args
        .fs
        .as_deref()
        .ok_or_else(|| usage("--fs is required"))?
        .parse()
        .map_err(|e: String| usage(format!("--fs: {e}")))?;
    let n = args
        .generate
        .ok_or_else(|| usage("--fsync-failures needs --generate N"))?;
    let list: Vec<Workload> = (0..n)
        .map(|i| workload::generate(kind, args.seed, i))
        .collect();
    if args.print {
        for w in &list {
            println!("{}: {}", w.name, w.describe());
        }
        return Ok(Code::Success);
    }
    if !durafs::sys::is_root() {
        return Err(err("calibrate needs root (losetup, mount, drop_caches)"));
    }
    device::require_tools(kind)?;
    kill_children_on_interrupt();
    let started = Instant::now();
    let mut out = Vec::new();
    for (i, w) in list.iter().enumerate() {
        if !args.json {
            eprintln!("durafs calibrate: [{}/{}] {}", i + 1, list.len(), w.name);
        }
        out.push(check(kind, args.model, w));
        check_interrupted()?;
    }
    let s = summarize(kind, args, out, started.elapsed().as_secs_f64());
    if args.json {
        println!(
            "{}",
            serde_json::to_string(&s).map_err(|e| err(e.to_string()))?
        );
    } else {
        print!("{}", text(&s));
    }
    Ok(verdict(s.errors, s.mismatches))
}

fn verdict(errors: usize, mismatches: usize) -> Code {
    if errors > 0 {
        Code::Failed
    } else if mismatches > 0 {
        Code::Findings
    } else {
        Code::Success
    }
}

fn summarize(kind: FsKind, args: &CalibrateArgs, w: Vec<Checked>, seconds: f64) -> Summary {
    let compared = w.iter().filter(|c| c.comparable && !c.error).count();
    Summary {
        fs: kind,
        model: args.model.to_string(),
        semantics: semantics(kind).to_string(),
        seed: args.seed,
        compared,
        matched: w
            .iter()
            .filter(|c| c.comparable && !c.error && c.mismatches.is_empty())
            .count(),
        not_comparable: w.iter().filter(|c| !c.comparable && !c.error).count(),
        errors: w.iter().filter(|c| c.error).count(),
        mismatches: w.iter().map(|c| c.mismatches.len()).sum(),
        workloads: w,
        seconds,
    }
}

/// Runs `w` on both sides and compares them.
fn check(kind: FsKind, persistence: durafs::model::Persistence, w: &Workload) -> Checked {
    let started = Instant::now();
    let mut c = Checked {
        name: w.name.clone(),
        description: w.describe(),
        workload: w.clone(),
        dirty: w.dirty(),
        reached: None,
        failed_writes: 0,
        seed: None,
        comparable: false,
        why: None,
        error: false,
        real: Vec::new(),
        model: Vec::new(),
        mismatches: Vec::new(),
        seconds: 0.0,
    };
    if let Err(e) = both_sides(kind, persistence, w, &mut c) {
        c.error = true;
        c.comparable = false;
        c.why = Some(e.msg);
    }
    c.seconds = started.elapsed().as_secs_f64();
    c
}

fn both_sides(
    kind: FsKind,
    persistence: durafs::model::Persistence,
    w: &Workload,
    c: &mut Checked,
) -> Result<()> {
    let (real, reached) = {
        let mut rig = real::Rig::new(kind)?;
        let obs = steps::execute(w, &mut rig)?;
        c.failed_writes = rig.failed_writes;
        (obs, rig.reached.clone())
    };
    c.real = shown(w, &real);
    let reached = reached.ok_or_else(|| err("the medium was not measured"))?;
    c.reached = Some(
        c.dirty
            .iter()
            .zip(&reached)
            .filter(|(_, r)| **r)
            .map(|(p, _)| *p)
            .collect(),
    );
    if real.first().map(|o| &o.seen) == Some(&Seen::Rc("0".into())) {
        c.why = Some(format!(
            "the fsync did not fail ({} device writes failed)",
            c.failed_writes
        ));
        return Ok(());
    }
    let Some(seed) = model::seed_for(&c.dirty, &reached) else {
        c.why = Some(
            "every dirty page reached the medium: no fsync-fail seed writes back all of them"
                .into(),
        );
        return Ok(());
    };
    c.seed = Some(seed);
    let predicted = {
        let mut b = model::ModelBench::new(persistence, semantics(kind), seed)?;
        steps::execute(w, &mut b)?
    };
    c.model = shown(w, &predicted);
    c.comparable = true;
    c.mismatches = compare(w, &real, &predicted);
    Ok(())
}

fn render(w: &Workload, s: &Seen) -> String {
    match s {
        Seen::Rc(rc) => format!("rc={rc}"),
        Seen::Read { size, bytes } => {
            let short = if (bytes.len() as u64) < *size {
                format!(" (read {} B)", bytes.len())
            } else {
                String::new()
            };
            format!("size={size} {}{short}", w.labels(bytes))
        }
    }
}

fn shown(w: &Workload, obs: &[Obs]) -> Vec<Step> {
    obs.iter()
        .map(|o| Step {
            step: o.step,
            seen: render(w, &o.seen),
        })
        .collect()
}

/// The steps whose outcomes differ (a step only one side has too).
fn compare(w: &Workload, real: &[Obs], model: &[Obs]) -> Vec<Mismatch> {
    let mut out = Vec::new();
    for i in 0..real.len().max(model.len()) {
        let (a, b) = (real.get(i), model.get(i));
        if a == b {
            continue;
        }
        let show =
            |o: Option<&Obs>| o.map_or_else(|| "(no step)".to_string(), |o| render(w, &o.seen));
        let (mut ra, mut rb) = (show(a), show(b));
        if ra == rb {
            ra += " (bytes differ)";
            rb += " (bytes differ)";
        }
        out.push(Mismatch {
            step: a.or(b).map_or("?", |o| o.step),
            real: ra,
            model: rb,
        });
    }
    out
}

/// The table `calibrate --fsync-failures` prints.
pub fn text(s: &Summary) -> String {
    let mut t = format!(
        "durafs calibrate --fsync-failures: {} (model {}, semantics {}), seed {}, page {} B\n",
        s.fs.name(),
        s.model,
        s.semantics,
        s.seed,
        PAGE
    );
    for c in &s.workloads {
        let state = if c.error {
            "ERROR"
        } else if !c.comparable {
            "not comparable"
        } else if c.mismatches.is_empty() {
            "matched"
        } else {
            "MISMATCH"
        };
        let reached = c
            .reached
            .as_ref()
            .map_or("?".to_string(), |r| format!("{r:?}"));
        t += &format!(
            "  {:<10} {:<15} {} | dirty {:?}, reached {reached}, {} writes failed",
            c.name, state, c.description, c.dirty, c.failed_writes
        );
        if let Some(seed) = c.seed {
            t += &format!(", fault seed {seed}");
        }
        t += "\n";
        if let Some(why) = &c.why {
            t += &format!("      {why}\n");
        }
        for m in &c.mismatches {
            t += &format!("      {}: real {} | model {}\n", m.step, m.real, m.model);
        }
    }
    t += &format!(
        "{}: {} workloads, {} compared, {} matched, {} mismatches, {} not comparable, {} errors ({:.1} s)\n",
        s.fs.name(),
        s.workloads.len(),
        s.compared,
        s.matched,
        s.mismatches,
        s.not_comparable,
        s.errors,
        s.seconds
    );
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_outrank_mismatches_which_outrank_success() {
        assert_eq!(verdict(0, 0), Code::Success);
        assert_eq!(verdict(0, 2), Code::Findings);
        assert_eq!(verdict(1, 2).number(), 3);
    }

    #[test]
    fn differing_steps_are_listed_with_both_outcomes() {
        let w = workload::generate(FsKind::Ext4, 3, 1);
        let read = |b: Vec<u8>| Obs {
            step: "read",
            seen: Seen::Read {
                size: b.len() as u64,
                bytes: b,
            },
        };
        let rc = |s: &str| Obs {
            step: "fsync",
            seen: Seen::Rc(s.into()),
        };
        let real = [rc("EIO"), read(w.page_bytes(workload::OLD, 0))];
        let model = [rc("EIO"), read(w.page_bytes(workload::NEW, 0))];
        let m = compare(&w, &real, &model);
        assert_eq!(m.len(), 1);
        assert_eq!(m[0].step, "read");
        assert_eq!(m[0].real, "size=4096 old");
        assert!(m[0].model.starts_with("size=4096 "), "{m:?}");
        assert!(compare(&w, &real, &real).is_empty());
    }
}
