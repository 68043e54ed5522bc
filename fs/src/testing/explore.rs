//! [`explore`]: one traced run of a workload on a [`TestVolume`], every
//! crash state of its trace checked by a Rust closure, and the failures
//! explained ([`crate::explore::explain`]), with a report fit for an
//! `assert!` message.

use super::TestVolume;
use crate::explore::explain::{Failing, Findings, explain, with_duplicates};
use crate::explore::{ExploreOptions, SparseSnapshot, Stats, sparse_states_and_duplicates};
use crate::fs::FsOptions;
use crate::trace::TraceError;
use std::collections::HashMap;
use std::fmt;
use std::io;
use std::path::Path;

/// Checks run to explain the failures, at most.
const EXPLAIN_CHECKS: usize = 1000;

/// What a workload gets: the volume's path, and marks.
pub struct Workload<'a> {
    vol: &'a TestVolume,
}

impl Workload<'_> {
    /// Where the volume is mounted.
    pub fn path(&self) -> &Path {
        self.vol.path()
    }

    /// Records a promise (`durafs mark LABEL`): the check of every crash
    /// state after it gets the label among its marks.
    pub fn mark(&self, label: &str) -> io::Result<()> {
        self.vol
            .fs()?
            .mark(label)
            .map_err(|e| io::Error::other(format!("mark {label:?}: {e}")))
    }
}

/// A crash state that failed its check.
#[derive(Clone, Debug)]
pub struct Failure {
    /// The state's number (from 1, as `durafs explore` numbers them).
    pub state: usize,
    /// Trace events applied before the crash.
    pub point: usize,
    /// The last event before the crash (`#3 rename /tmp -> /data`).
    pub after: Option<String>,
    /// Marks recorded before the crash.
    pub marks: Vec<String>,
    /// The crash state in a line.
    pub description: String,
    /// What the check said.
    pub error: String,
}

/// What [`explore`] found.
#[derive(Clone, Debug, Default)]
pub struct Exploration {
    pub states_tried: usize,
    pub stats: Stats,
    /// Failures in state order.
    pub failures: Vec<Failure>,
    /// The failures explained: vulnerabilities with their fix, and the
    /// failures with nothing lost.
    pub findings: Findings,
}

impl Exploration {
    /// True when every crash state passed its check.
    pub fn passed(&self) -> bool {
        self.failures.is_empty()
    }
}

impl fmt::Display for Exploration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{} crash states checked at {} crash points: {} failed",
            self.states_tried,
            self.stats.points,
            self.failures.len()
        )?;
        let first = |ids: &[usize]| {
            ids.first()
                .and_then(|id| self.failures.iter().find(|x| x.state == *id))
        };
        for (i, v) in self.findings.vulnerabilities.iter().enumerate() {
            writeln!(f, "vulnerability {} ({}): {}", i + 1, v.kind, v.summary)?;
            writeln!(f, "  fix: {}", v.fix)?;
            if let Some(x) = first(&v.states) {
                let at = x.after.as_deref().unwrap_or("before the first operation");
                writeln!(
                    f,
                    "  {} states, e.g. state {} after {at}: {}",
                    v.states.len(),
                    x.state,
                    x.error
                )?;
            }
        }
        if let Some(x) = first(&self.findings.no_loss) {
            let at = x.after.as_deref().unwrap_or("before the first operation");
            writeln!(
                f,
                "{} states fail with nothing lost (the workload's own intermediate state), e.g. state {} after {at}: {}",
                self.findings.no_loss.len(),
                x.state,
                x.error
            )?;
        }
        Ok(())
    }
}

impl From<TraceError> for io::Error {
    fn from(e: TraceError) -> io::Error {
        io::Error::other(e.to_string())
    }
}

/// Runs `workload` once on a fresh traced volume with `volume`'s settings,
/// then, without running it again, checks every crash state its trace
/// allows under `opts` (after every operation by default): each is written
/// into a scratch directory and `check(dir, marks)` judges it (`Err` with
/// a reason when it is wrong). Failures are explained by checking more
/// states. `assert!(e.passed(), "{e}")` prints the vulnerabilities.
///
/// ```
/// # if !durafs::sys::is_root() || !std::path::Path::new("/dev/fuse").exists() {
/// #     panic!("this example mounts a volume: it needs root and /dev/fuse");
/// # }
/// use durafs::explore::ExploreOptions;
/// use durafs::fs::FsOptions;
/// use durafs::testing::explore;
///
/// let e = explore(&ExploreOptions::default(), FsOptions::default(),
///     |w| {
///         std::fs::write(w.path().join("tmp"), b"new")?;
///         std::fs::rename(w.path().join("tmp"), w.path().join("data"))?;
///         w.mark("saved")
///     },
///     |dir, marks| match std::fs::read(dir.join("data")) {
///         Ok(d) if d == b"new" => Ok(()),
///         _ if marks.is_empty() => Ok(()),
///         other => Err(format!("data after the mark: {other:?}")),
///     },
/// ).unwrap();
/// assert!(!e.passed());
/// // Nothing was fsynced before the promise: each lost call is a
/// // durability vulnerability, the write's among them.
/// let v = &e.findings.vulnerabilities;
/// assert!(v.iter().all(|v| v.kind.to_string() == "durability"), "{e}");
/// assert!(
///     v.iter().any(|v| v.fix == "fsync /tmp after #2 write /tmp [0, 3), before #4 mark \"saved\""),
///     "{e}"
/// );
/// ```
pub fn explore(
    opts: &ExploreOptions,
    volume: FsOptions,
    workload: impl FnOnce(&Workload) -> io::Result<()>,
    mut check: impl FnMut(&Path, &[String]) -> Result<(), String>,
) -> io::Result<Exploration> {
    let vol = TestVolume::traced(volume)?;
    workload(&Workload { vol: &vol })?;
    let trace = vol
        .fs()?
        .finish_trace()
        .unwrap_or_else(|| Err(io::Error::other("the volume was not traced")))?;
    drop(vol);
    let scratch = tempfile::tempdir()?;
    let mut n = 0usize;
    let mut judge = |snapshot: &SparseSnapshot, marks: &[String]| -> io::Result<Option<String>> {
        n += 1;
        let dir = scratch.path().join(n.to_string());
        std::fs::create_dir(&dir)?;
        snapshot.materialise(&dir)?;
        let verdict = check(&dir, marks).err();
        std::fs::remove_dir_all(&dir)?;
        Ok(verdict)
    };
    let mut out = Exploration::default();
    let mut verdicts = HashMap::new();
    let mut failing = Vec::new();
    let mut ids = HashMap::new();
    let mut duplicates = Vec::new();
    let mut error = None;
    out.stats = sparse_states_and_duplicates(
        &trace,
        opts,
        |s| {
            let verdict = match judge(&s.snapshot, &s.marks) {
                Ok(v) => v,
                Err(e) => {
                    error = Some(e);
                    return false;
                }
            };
            out.states_tried += 1;
            verdicts.insert(s.key, verdict.is_some());
            ids.insert(s.key, (s.id, s.point));
            if let Some(error) = verdict {
                failing.push(Failing {
                    id: s.id,
                    point: s.point,
                    kept: s.kept,
                    duplicate: false,
                });
                out.failures.push(Failure {
                    state: s.id,
                    point: s.point,
                    after: s.after,
                    marks: s.marks,
                    description: s.description,
                    error,
                });
            }
            true
        },
        |d| duplicates.push(d),
    )?;
    if let Some(e) = error {
        return Err(e);
    }
    let failing = with_duplicates(failing, duplicates, &ids, &verdicts);
    out.findings = explain(
        &trace,
        opts,
        &failing,
        &mut verdicts,
        EXPLAIN_CHECKS,
        |s, m| judge(s, m).map(|v| v.is_some()),
    )?;
    Ok(out)
}
