//! One crash trial: mount a fresh volume, run an engine's workload through
//! it up to a cut point (with the row's fault armed, if it has one), cut
//! the power, remount, let the engine recover and check every acknowledged
//! put.

use super::rows::Row;
use durafs::fs::{DuraFs, FsOptions};
use durafs::model::crash::{CrashOptions, CrashState};
use durafs::model::enumerate::{EnumOptions, enumerate};
use durafs::model::fsync_fail::FsyncFailure;
use durafs::model::{PendingOp, Persistence};
use durafs::mount::{MountOptions, Mounted, mount};
use durafs_engines::KvStore;
use std::path::Path;
use std::sync::Arc;

/// The deterministic workload: `puts` puts of distinct keys, the engine's
/// maintenance step after every `maintain_every`.
#[derive(Clone, Copy, Debug)]
pub struct Workload {
    pub puts: usize,
    pub maintain_every: usize,
    pub value_len: usize,
    /// The durability model of the trial's volume.
    pub model: Persistence,
    /// What follows a failed fsync on the volume of a row that injects
    /// one ([`Row::fault`]): ext4's semantics by default.
    pub fsync_failure: FsyncFailure,
}

impl Default for Workload {
    fn default() -> Self {
        Workload {
            puts: 240,
            maintain_every: 60,
            value_len: 100,
            model: Persistence::Posix,
            fsync_failure: FsyncFailure::Ext4,
        }
    }
}

/// How the trial chooses its crash state.
#[derive(Clone, Debug)]
pub enum Choice {
    /// A crash policy with its options.
    Policy(CrashOptions),
    /// State number `n` of the enumeration of the pending operations.
    Enumerated(usize, EnumOptions),
}

/// What one trial observed.
#[derive(Clone, Debug)]
pub struct Outcome {
    /// Puts acknowledged before the cut.
    pub acked: usize,
    /// Puts that failed (and so were not acknowledged) before the cut: a
    /// poisoned store refuses every put after the one that failed.
    pub refused: usize,
    /// Acknowledged puts missing or wrong after recovery.
    pub lost: usize,
    /// The engine's recovery (or a read) failed.
    pub recovery_error: Option<String>,
    /// The policy (or enumerated state) and its seed.
    pub label: String,
    pub seed: u64,
    /// States the enumeration had (for [`Choice::Enumerated`]).
    pub enumerated: usize,
}

/// A setup failure: the trial could not run (not an engine finding).
#[derive(Debug)]
pub struct TrialError(pub String);

fn key(i: usize) -> Vec<u8> {
    format!("key-{i:06}").into_bytes()
}

fn value(i: usize, len: usize) -> Vec<u8> {
    let mut v = format!("value of put {i}:").into_bytes();
    v.resize(len.max(v.len()), b'a' + (i % 26) as u8);
    v
}

/// The options of a trial's volume: the workload's model, and for a row
/// that injects a fault, its semantics for a failed fsync (ext4's: the
/// failed pages are marked clean, a retried fsync returns 0, their data is
/// lost at the next cut).
fn volume_options(work: &Workload, row: &Row) -> FsOptions {
    let defaults = FsOptions::default();
    FsOptions {
        persistence: work.model,
        fsync_failure: match row.fault {
            Some(_) => work.fsync_failure,
            None => defaults.fsync_failure,
        },
        ..defaults
    }
}

fn mount_fresh(backing: &Path, mnt: &Path, opts: FsOptions) -> Result<Mounted, TrialError> {
    let fs = DuraFs::open(backing, opts)
        .map_err(|e| TrialError(format!("backing {}: {e}", backing.display())))?;
    mount(Arc::new(fs), mnt, &MountOptions::default())
        .map_err(|e| TrialError(format!("mount {}: {e}", mnt.display())))
}

/// Runs one trial of `row`: `cut_after` puts, then the cut `choice`.
pub fn run(
    row: &Row,
    dir: Option<&Path>,
    work: &Workload,
    cut_after: usize,
    choice: &Choice,
) -> Result<Outcome, TrialError> {
    let tmp = match dir {
        Some(d) => tempfile::tempdir_in(d),
        None => tempfile::tempdir(),
    }
    .map_err(|e| TrialError(format!("temp dir: {e}")))?;
    let backing = tmp.path().join("backing");
    let mnt = tmp.path().join("mnt");
    std::fs::create_dir(&mnt).map_err(|e| TrialError(format!("mkdir: {e}")))?;
    let store_dir = mnt.join("store");

    let mounted = mount_fresh(&backing, &mnt, volume_options(work, row))?;
    let mut store = (row.open)(&store_dir)
        .map_err(|e| TrialError(format!("{} {}: open: {e}", row.engine, row.setting)))?;
    if let Some(spec) = row.fault {
        mounted
            .fs()
            .add_fault(spec)
            .map_err(|e| TrialError(format!("fault {spec}: {e}")))?;
    }
    let driven = drive(store.as_mut(), work, cut_after);
    let mut enumerated = 0;
    let cut = match choice {
        Choice::Policy(opts) => mounted.cut(*opts),
        Choice::Enumerated(n, eo) => mounted.cut_with("enumerated", |pending: &[PendingOp]| {
            let eo = eo.under(work.model);
            let states: Vec<CrashState> = enumerate(pending, &eo).collect();
            enumerated = states.len();
            let pick = (*n).min(states.len().saturating_sub(1));
            states.into_iter().nth(pick).unwrap_or_else(|| CrashState {
                seed: 0,
                kept: Vec::new(),
                total: pending.len(),
                description: "drop-all".into(),
            })
        }),
    }
    .map_err(|e| TrialError(format!("cut: {e}")))?;
    // The process dies with the machine: its store is dropped only now, so
    // nothing it does on the way out can land.
    drop(store);

    // The volume after the cut has no fault armed.
    let mounted = mount_fresh(&backing, &mnt, volume_options(work, row))?;
    let (lost, recovery_error) = check(row, &store_dir, &driven.acked, work.value_len);
    mounted
        .unmount()
        .map_err(|e| TrialError(format!("unmount: {e}")))?;
    Ok(Outcome {
        acked: driven.acked.len(),
        refused: driven.refused,
        lost,
        recovery_error,
        label: match choice {
            Choice::Policy(o) => o.policy.name().to_string(),
            Choice::Enumerated(n, _) => format!("enumerated state {n} ({})", cut.description),
        },
        seed: cut.seed,
        enumerated,
    })
}

/// The puts of a trial's workload up to the cut.
struct Driven {
    /// The puts acknowledged, by number.
    acked: Vec<usize>,
    /// Puts that failed.
    refused: usize,
}

/// Runs `cut_after` puts of the workload on `store`, its maintenance step
/// after every `maintain_every`. A put that fails is not acknowledged; the
/// workload goes on, as a program would (a poisoned store refuses the rest).
fn drive(store: &mut dyn KvStore, work: &Workload, cut_after: usize) -> Driven {
    let mut driven = Driven {
        acked: Vec::new(),
        refused: 0,
    };
    for i in 0..cut_after {
        match store.put(&key(i), &value(i, work.value_len)) {
            Ok(()) => driven.acked.push(i),
            Err(_) => driven.refused += 1,
        }
        if work.maintain_every > 0 && (i + 1) % work.maintain_every == 0 {
            // A failed step loses no acknowledged put in a crash-safe
            // store; what it left is what the cut and recovery measure.
            let _ = store.maintain();
        }
    }
    driven
}

/// Recovers the store and counts the acknowledged puts it lost.
fn check(row: &Row, dir: &Path, acked: &[usize], value_len: usize) -> (usize, Option<String>) {
    let mut store: Box<dyn KvStore> = match (row.open)(dir) {
        Ok(s) => s,
        Err(e) => return (acked.len(), Some(format!("recovery failed: {e}"))),
    };
    let mut lost = 0;
    let mut error = None;
    for &i in acked {
        match store.get(&key(i)) {
            Ok(Some(v)) if v == value(i, value_len) => {}
            Ok(_) => lost += 1,
            Err(e) => {
                lost += 1;
                error.get_or_insert_with(|| format!("read after recovery failed: {e}"));
            }
        }
    }
    if let Err(e) = store.close() {
        error.get_or_insert_with(|| format!("close after recovery failed: {e}"));
    }
    (lost, error)
}
