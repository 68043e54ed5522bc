//! Explaining the failures: the states delta debugging asks for are
//! materialised and checked one at a time, like the exploration's.

use super::Checked;
use crate::workload::{ENV_MARKS, ENV_STATE, run_check_timed, write_marks};
use crate::{CliError, ExploreArgs, Result, err};
use durafs::explore::Duplicate;
use durafs::explore::ExploreOptions;
use durafs::explore::explain::{Failing, Findings, explain, with_duplicates};
use durafs::trace::{Trace, TraceError};
use std::collections::HashMap;
use std::fs;
use std::path::Path;

impl From<TraceError> for CliError {
    fn from(e: TraceError) -> Self {
        err(e.to_string())
    }
}

/// The vulnerabilities behind the failures of `checked`.
pub fn explain_failures(
    args: &ExploreArgs,
    trace: &Trace,
    opts: &ExploreOptions,
    checked: &[Checked],
    duplicates: Vec<Duplicate>,
    scratch: &Path,
) -> Result<Findings> {
    let mut verdicts: HashMap<u64, bool> = checked.iter().map(|c| (c.key, !c.passed)).collect();
    let failing: Vec<Failing> = checked
        .iter()
        .filter(|c| !c.passed)
        .map(|c| Failing {
            id: c.state,
            point: c.point,
            kept: c.kept.clone(),
            duplicate: false,
        })
        .collect();
    let ids: HashMap<u64, (usize, usize)> = checked
        .iter()
        .map(|c| (c.key, (c.state, c.point)))
        .collect();
    let failing = with_duplicates(failing, duplicates, &ids, &verdicts);
    if failing.is_empty() {
        return Ok(Findings::default());
    }
    let mut n = 0usize;
    explain(
        trace,
        opts,
        &failing,
        &mut verdicts,
        args.explain_checks,
        |snapshot, marks| {
            crate::workload::check_interrupted()?;
            n += 1;
            let dir = scratch.join(format!("x{n}"));
            let marks_file = scratch.join(format!("x{n}.marks"));
            let setup = |e: std::io::Error| err(format!("materialising a state to explain: {e}"));
            fs::create_dir(&dir).map_err(setup)?;
            snapshot.materialise(&dir).map_err(setup)?;
            write_marks(&marks_file, marks)?;
            let run = run_check_timed(
                &args.check,
                &dir,
                &[(ENV_STATE, &dir), (ENV_MARKS, &marks_file)],
                true,
                Some(std::time::Duration::from_secs_f64(args.check_timeout)),
            );
            let _ = fs::remove_dir_all(&dir);
            let _ = fs::remove_file(&marks_file);
            Ok(!run?.passed())
        },
    )
}
