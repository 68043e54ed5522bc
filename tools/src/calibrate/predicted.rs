//! The model's outcomes: the workload runs once on a tracing durafs volume
//! with the model under test, and at each mark every crash state the
//! model allows there becomes an outcome straight from its snapshot (no
//! materialisation, no mount).

use super::compare::state_kind;
use super::outcome::{Contents, of_snapshot_keeping};
use super::points::{Placement, at_marks};
use super::{PointOutcomes, Side};
use crate::workload::{self, ENV_MOUNT, check_interrupted, spawn};
use crate::{Result, err};
use durafs::explore::Snapshot;
use durafs::fs::FsOptions;
use durafs::model::Persistence;
use durafs::model::enumerate::EnumOptions;
use durafs::trace::Trace;
use std::path::Path;

/// Environment variable naming a durafs mount the script's `dsync` also
/// syncs (FUSE never sees syncfs).
pub const ENV_SYNC: &str = "DURAFS_SYNC";

/// Runs `script` on a fresh durafs volume in `dir`; its trace. `settle`:
/// the script's `wb` syncs (`calibrate --settle`).
pub fn record(model: Persistence, script: &str, settle: bool, dir: &Path) -> Result<Trace> {
    let opts = FsOptions {
        persistence: model,
        ..FsOptions::default()
    };
    let mounted = workload::volume(dir, None, opts, false, |fs| {
        fs.start_trace(true, None)
            .map_err(|e| err(format!("tracing: {e}")))
    })?;
    let mnt = mounted.mountpoint().to_path_buf();
    let exe = std::env::current_exe().map_err(|e| err(format!("finding durafs: {e}")))?;
    let argv = ["sh".to_string(), "-c".to_string(), script.to_string()];
    let mut env: Vec<(&str, &Path)> = vec![("DURAFS", &exe), (ENV_MOUNT, &mnt), (ENV_SYNC, &mnt)];
    if settle {
        env.push(("DURAFS_SETTLE", Path::new("1")));
    }
    let status = spawn(&argv, &mnt, &env)?
        .wait()
        .map_err(|e| err(format!("waiting for the workload: {e}")))?;
    let trace = workload::take_trace(&mounted)?;
    mounted
        .unmount()
        .map_err(|e| err(format!("unmounting the model's volume: {e}")))?;
    check_interrupted()?;
    if !status.success() {
        return Err(err(format!("the workload failed ({status}) on durafs")));
    }
    Ok(trace)
}

/// The predicted outcomes at every mark of `trace`. `wrong` keeps only the
/// state where everything pending survived: a deliberately wrong model
/// that tests use to see a false negative reported.
pub fn outcomes(trace: &Trace, opts: &EnumOptions, max_states: usize, wrong: bool) -> Result<Side> {
    // The model's own rules: under `journal`, journaled metadata in order.
    let opts = &opts.under(trace.header.model);
    let mut points: Vec<PointOutcomes> = Vec::new();
    let mut contents = Contents::new();
    // The wrong model predicts at the marks only: a crash inside a step
    // would otherwise give it the state before the step's operations.
    let placement = if wrong {
        Placement::Marks
    } else {
        Placement::Every
    };
    let stats = at_marks(
        trace,
        placement,
        opts,
        max_states,
        wrong,
        |point, store, at| {
            if points.last().map(|p| &p.point) != Some(point) {
                points.push(PointOutcomes::new(point.clone()));
            }
            if let Some(p) = points.last_mut() {
                let o = of_snapshot_keeping(&Snapshot::of(&store), Some(&mut contents));
                p.add_from(o, state_kind(&at.state.description));
            }
            true
        },
    )
    .map_err(|e| err(e.to_string()))?;
    Ok(Side {
        points,
        stats,
        contents,
    })
}
