//! Faults on a live volume: power cuts, I/O errors, delays, torn writes
//! and failing fsyncs, armed by operation, path, byte range and count,
//! from the control file (`fault add ...`), `durafs fault MNT ...`, a
//! plan (`durafs mount --faults FILE`, [`plan`]) or [`DuraFs::add_fault`].
//!
//! One grammar ([`args`]) for all of them. This module decides which
//! faults fire on a call ([`Faults::check`]); the volume acts on them
//! (`fs::faults`).
//!
//! Invariants:
//! * With no fault armed, [`Faults::is_armed`] is one atomic load and
//!   nothing else is paid.
//! * A fault watches the calls of programs on the volume only: the control
//!   file never reaches [`Faults::check`], nor do writebacks, closes and
//!   marks.
//! * A fault's counters (matched, fired) move under the list's lock, so
//!   concurrent calls never fire a `--times 1` fault twice.
//! * Every random choice is seeded: the same calls fire the same faults.
//!
//! [`DuraFs::add_fault`]: crate::fs::DuraFs::add_fault

pub mod args;
pub mod at;
pub mod plan;

use crate::model::Ino;
use crate::model::crash::CrashOptions;
use crate::model::rng::SplitMix64;
use crate::trace::TraceOp;
use args::{ActionArgs, TriggerArgs};
pub use args::{When, errno_name};
use clap::Parser;
use parking_lot::Mutex;
use regex::Regex;
use std::fmt;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

/// A fault that could not be armed, or an id that names none.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FaultError(pub String);

impl fmt::Display for FaultError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for FaultError {}

fn bad(msg: impl Into<String>) -> FaultError {
    FaultError(msg.into())
}

/// How a torn write is split.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Split {
    /// Into `parts` equal parts, of which `keep` (1-based) persist.
    Parts { parts: u64, keep: Vec<u64> },
    /// Into sectors, each persisting with probability 1/2 (seeded).
    Sectors { sector: u64 },
}

/// What a fault does when it fires on a call.
#[derive(Clone, Debug, PartialEq)]
pub enum Act {
    /// Cut the power (the options' seed is the firing's).
    Cut { opts: CrashOptions, remount: bool },
    /// Fail the call with this errno; it takes no effect.
    Error(i32),
    /// Hold the call.
    Delay(Duration),
    /// The write survives the next cut only in part; `cut`: cut now.
    Torn { split: Split, seed: u64, cut: bool },
    /// One write of a torn sequence: it survives the next cut whole
    /// (`keep`) or not at all; `cut`: it is the last, cut now.
    Sequence { keep: bool, cut: bool },
    /// The fsync fails after writing back some pages (seeded); with
    /// `journal`, the journal's write failed and the volume degrades.
    FsyncFail { seed: u64, journal: bool },
}

impl Act {
    /// A word for logs and status: `cut`, `error EIO`, ...
    pub fn label(&self) -> String {
        match self {
            Act::Cut { opts, .. } => format!("cut ({})", opts.policy),
            Act::Error(e) => format!("error {}", errno_name(*e)),
            Act::Delay(d) => format!("delay {} ms", d.as_millis()),
            Act::Torn { .. } => "torn".into(),
            Act::Sequence { keep: true, .. } => "torn-seq (kept)".into(),
            Act::Sequence { keep: false, .. } => "torn-seq (dropped)".into(),
            Act::FsyncFail { journal: false, .. } => "fsync-fail".into(),
            Act::FsyncFail { journal: true, .. } => "fsync-fail (journal)".into(),
        }
    }
}

/// A fault that fired on a call.
#[derive(Clone, Debug, PartialEq)]
pub struct Fired {
    pub id: u64,
    /// The fault as armed (its `fault add` words).
    pub spec: String,
    pub act: Act,
}

/// A fault's state, for `fault list` and `status`.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FaultStatus {
    pub id: u64,
    /// The fault as armed (its `fault add` words).
    pub spec: String,
    /// Still able to fire.
    pub armed: bool,
    /// Calls it watched that matched its operation, path and range.
    pub matched: u64,
    pub fired: u64,
    /// Firings left (`None`: armed for good, `--forever`).
    pub remaining: Option<u64>,
}

#[derive(Clone, Copy, Debug)]
enum Count {
    Nth(u64),
    Every(u64),
    AfterOps(u64),
    Chance(f64),
}

/// What a fault does, as armed.
#[derive(Clone, Debug)]
enum Action {
    Cut {
        opts: CrashOptions,
        remount: bool,
    },
    Error(i32),
    Delay(Duration),
    Torn {
        split: Split,
        cut: bool,
    },
    Sequence {
        count: u64,
        keep: Vec<u64>,
        cut: bool,
    },
    FsyncFail {
        journal: bool,
    },
}

#[derive(Debug)]
struct Fault {
    id: u64,
    spec: String,
    when: When,
    /// Operation names it watches (`None`: any call of a program).
    ops: Option<Vec<&'static str>>,
    path: Option<Regex>,
    range: Option<(u64, u64)>,
    count: Count,
    action: Action,
    seed: u64,
    rng: SplitMix64,
    matched: u64,
    fired: u64,
    remaining: Option<u64>,
    /// A torn sequence under way: its file and the writes it has taken.
    sequence: Option<(Ino, u64)>,
}

/// The operation names a fault with `--op` (or none) watches.
fn watched(action: &ActionArgs, op: Option<&str>) -> Result<Option<Vec<&'static str>>, FaultError> {
    let name = |o: &str| TraceOp::NAMES.iter().copied().find(|n| *n == o);
    let only = |allowed: &[&'static str], what: &str| match op {
        None => Ok(Some(allowed.to_vec())),
        Some(o) if allowed.contains(&o) => Ok(name(o).map(|n| vec![n])),
        Some(o) => Err(bad(format!(
            "{what} faults watch {}, not {o}",
            allowed.join(" or ")
        ))),
    };
    match action {
        ActionArgs::FsyncFail { .. } => only(&["fsync", "fdatasync"], "fsync-fail"),
        ActionArgs::Torn { .. } | ActionArgs::TornSeq { .. } => only(&["write"], "torn"),
        _ => Ok(match op {
            None => None,
            Some(o) => Some(vec![
                name(o).ok_or_else(|| bad(format!("unknown operation {o:?}")))?,
            ]),
        }),
    }
}

fn when_of(action: &ActionArgs, at: &TriggerArgs) -> Result<When, FaultError> {
    let (default, allowed): (When, &[When]) = match action {
        ActionArgs::Cut { .. } => (When::After, &[When::Before, When::After]),
        ActionArgs::Delay { .. } => (When::Before, &[When::Before, When::After]),
        ActionArgs::Torn { .. } | ActionArgs::TornSeq { .. } => (When::After, &[When::After]),
        ActionArgs::Error { .. } | ActionArgs::FsyncFail { .. } => (When::Before, &[When::Before]),
    };
    let when = at.when.unwrap_or(default);
    if !allowed.contains(&when) {
        return Err(bad(match when {
            When::After => "this action acts before the call: --when after is not possible",
            When::Before => "torn writes are chosen after the write: --when before is not possible",
        }));
    }
    Ok(when)
}

fn action_of(a: ActionArgs) -> Result<Action, FaultError> {
    Ok(match a {
        ActionArgs::Cut { crash, remount, at } => Action::Cut {
            opts: crash.options(at.seed.unwrap_or(0)),
            remount,
        },
        ActionArgs::Error { errno, .. } => Action::Error(errno),
        ActionArgs::Delay { ms, .. } => Action::Delay(Duration::from_millis(ms)),
        ActionArgs::Torn {
            parts,
            keep,
            sector,
            cut,
            ..
        } => {
            let split = match (parts, keep, sector) {
                (Some(parts), Some(args::Indices(keep)), None) => {
                    if keep.iter().any(|k| *k > parts) {
                        return Err(bad(format!("--keep names a part above --parts {parts}")));
                    }
                    Split::Parts { parts, keep }
                }
                (None, None, sector) => Split::Sectors {
                    sector: sector.unwrap_or(512),
                },
                _ => return Err(bad("torn takes --parts N --keep LIST, or --sector BYTES")),
            };
            Action::Torn { split, cut }
        }
        ActionArgs::TornSeq {
            count,
            keep: args::Indices(keep),
            cut,
            ..
        } => {
            if keep.iter().any(|k| *k > count) {
                return Err(bad(format!("--keep names a write above --count {count}")));
            }
            Action::Sequence { count, keep, cut }
        }
        ActionArgs::FsyncFail { journal, .. } => Action::FsyncFail { journal },
    })
}

/// `--at`'s trigger written out as the other options; true for
/// `after-fsync=N`, which watches every persistence point.
fn spell_out(at: &mut TriggerArgs) -> bool {
    match at.at.take() {
        None => false,
        Some(at::At::AfterOps(n)) => {
            at.when = Some(When::After);
            at.after_ops = Some(n);
            false
        }
        Some(at::At::AfterFsync(n)) => {
            at.when = Some(When::After);
            at.nth = Some(n);
            true
        }
        Some(at::At::Op {
            when,
            op,
            pattern,
            nth,
        }) => {
            at.when = Some(when);
            at.op = op;
            at.path = Some(pattern);
            at.nth = Some(nth);
            false
        }
    }
}

impl Fault {
    fn new(id: u64, spec: String, a: ActionArgs) -> Result<Fault, FaultError> {
        let mut at = a.at().clone();
        let persistence_points = spell_out(&mut at);
        let ops = if persistence_points {
            if !matches!(a, ActionArgs::Cut { .. } | ActionArgs::Delay { .. }) {
                return Err(bad("--at after-fsync=N is for cut and delay faults"));
            }
            Some(at::PERSISTENCE_POINTS.to_vec())
        } else {
            watched(&a, at.op.as_deref())?
        };
        let when = when_of(&a, &at)?;
        let path = match &at.path {
            Some(p) => Some(Regex::new(p).map_err(|e| bad(format!("--path {p:?}: {e}")))?),
            None => None,
        };
        let count = match (at.nth, at.every, at.after_ops, at.chance) {
            (_, Some(k), _, _) => Count::Every(k),
            (_, _, Some(n), _) => Count::AfterOps(n),
            (_, _, _, Some(p)) => Count::Chance(p),
            (k, _, _, _) => Count::Nth(k.unwrap_or(1)),
        };
        let seed = at.seed.unwrap_or(0);
        Ok(Fault {
            id,
            spec,
            when,
            ops,
            path,
            range: at.range,
            count,
            action: action_of(a)?,
            seed,
            rng: SplitMix64::new(seed ^ id.wrapping_mul(0x9E37_79B9_7F4A_7C15)),
            matched: 0,
            fired: 0,
            remaining: if at.forever {
                None
            } else {
                Some(at.times.unwrap_or(1))
            },
            sequence: None,
        })
    }

    fn armed(&self) -> bool {
        self.remaining != Some(0) || self.sequence.is_some()
    }

    fn status(&self) -> FaultStatus {
        FaultStatus {
            id: self.id,
            spec: self.spec.clone(),
            armed: self.armed(),
            matched: self.matched,
            fired: self.fired,
            remaining: self.remaining,
        }
    }

    /// The call is one this fault watches: its operation, a path and the
    /// byte range.
    fn matches(&self, op: &TraceOp, paths: &[String]) -> bool {
        let name_ok = match &self.ops {
            Some(names) => names.contains(&op.name()),
            None => op.is_user_op(),
        };
        if !name_ok {
            return false;
        }
        if let Some(re) = &self.path {
            let hit = paths.iter().any(|p| re.is_match(p)) || (paths.is_empty() && re.is_match(""));
            if !hit {
                return false;
            }
        }
        match (self.range, op) {
            (None, _) => true,
            (Some((a, b)), TraceOp::Write { offset, data, .. }) => {
                *offset < b && offset + data.0.len() as u64 > a
            }
            (Some((a, b)), TraceOp::Fallocate { offset, len, .. }) => {
                *offset < b && offset + len > a
            }
            (Some(_), _) => false,
        }
    }

    /// Counts a matching call; true when the count selects it.
    fn selects(&mut self, count: u64) -> bool {
        self.matched += 1;
        match self.count {
            Count::Nth(k) => self.matched >= k,
            Count::Every(k) => self.matched % k == 0,
            Count::AfterOps(n) => count >= n,
            Count::Chance(p) => {
                p > 0.0 && ((self.rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64) < p
            }
        }
    }

    /// The seed of this firing: the fault's for the first, then others.
    fn firing_seed(&self) -> u64 {
        self.seed.wrapping_add(self.fired.saturating_sub(1))
    }

    /// Fires on a call `selects` chose.
    fn fire(&mut self, op: &TraceOp) -> Act {
        self.fired += 1;
        if let Some(r) = self.remaining.as_mut() {
            *r -= 1;
        }
        let seed = self.firing_seed();
        match &self.action {
            Action::Cut { opts, remount } => Act::Cut {
                opts: CrashOptions { seed, ..*opts },
                remount: *remount,
            },
            Action::Error(e) => Act::Error(*e),
            Action::Delay(d) => Act::Delay(*d),
            Action::Torn { split, cut } => Act::Torn {
                split: split.clone(),
                seed,
                cut: *cut,
            },
            Action::Sequence { count, keep, cut } => {
                if let TraceOp::Write { ino, .. } = op {
                    self.sequence = (*count > 1).then_some((*ino, 1));
                }
                Act::Sequence {
                    keep: keep.contains(&1),
                    cut: *cut && *count == 1,
                }
            }
            Action::FsyncFail { journal } => Act::FsyncFail {
                seed,
                journal: *journal,
            },
        }
    }

    /// A write to the file of a torn sequence under way: its place in it.
    fn continue_sequence(&mut self, op: &TraceOp) -> Option<Act> {
        let (file, taken) = self.sequence?;
        let Action::Sequence { count, keep, cut } = &self.action else {
            return None;
        };
        match op {
            TraceOp::Write { ino, .. } if *ino == file => {
                let n = taken + 1;
                let last = n >= *count;
                self.sequence = (!last).then_some((file, n));
                Some(Act::Sequence {
                    keep: keep.contains(&n),
                    cut: *cut && last,
                })
            }
            _ => None,
        }
    }
}

/// The faults of a volume.
#[derive(Debug, Default)]
pub struct Faults {
    /// Faults able to fire (the fast path's one load).
    armed: AtomicUsize,
    list: Mutex<Vec<Fault>>,
    next_id: AtomicU64,
}

impl Faults {
    /// True when some fault may fire.
    pub fn is_armed(&self) -> bool {
        self.armed.load(Ordering::Acquire) > 0
    }

    fn recount(&self, list: &[Fault]) {
        let n = list.iter().filter(|f| f.armed()).count();
        self.armed.store(n, Ordering::Release);
    }

    /// Arms the fault `line` describes (the words after `fault add`,
    /// split as a shell would); returns its id.
    pub fn add_line(&self, line: &str) -> Result<u64, FaultError> {
        let words =
            shlex::split(line).ok_or_else(|| bad("unbalanced quotes or a trailing backslash"))?;
        self.add_words(&words)
    }

    /// Arms the fault of these words (after `fault add`).
    pub fn add_words(&self, words: &[String]) -> Result<u64, FaultError> {
        let parsed = args::AddLine::try_parse_from(words).map_err(|e| {
            let msg = e.to_string();
            bad(msg.trim_start_matches("error: ").trim_end().to_string())
        })?;
        self.add(parsed.action, spec_text(words))
    }

    /// Arms a parsed fault, `spec` being how it was written.
    pub fn add(&self, action: ActionArgs, spec: String) -> Result<u64, FaultError> {
        let id = self.next_id.fetch_add(1, Ordering::SeqCst) + 1;
        let fault = Fault::new(id, spec, action)?;
        let mut list = self.list.lock();
        list.push(fault);
        self.recount(&list);
        Ok(id)
    }

    /// Every fault, in the order armed.
    pub fn list(&self) -> Vec<FaultStatus> {
        self.list.lock().iter().map(Fault::status).collect()
    }

    /// Removes the faults `ids` names (all when empty); returns how many.
    /// An id that names no fault is refused and nothing is removed.
    pub fn clear(&self, ids: &[u64]) -> Result<usize, FaultError> {
        let mut list = self.list.lock();
        if let Some(missing) = ids.iter().find(|id| !list.iter().any(|f| f.id == **id)) {
            return Err(bad(format!("no fault #{missing}")));
        }
        let before = list.len();
        list.retain(|f| !ids.is_empty() && !ids.contains(&f.id));
        self.recount(&list);
        Ok(before - list.len())
    }

    /// The specs of the faults still armed (for a remount).
    pub fn armed_specs(&self) -> Vec<String> {
        self.list
            .lock()
            .iter()
            .filter(|f| f.armed() && f.sequence.is_none())
            .map(|f| f.spec.clone())
            .collect()
    }

    /// The faults that fire on call `op` naming `paths`, at `when`;
    /// `count` is the volume's trace events so far.
    pub fn check(&self, when: When, count: u64, op: &TraceOp, paths: &[String]) -> Vec<Fired> {
        let mut list = self.list.lock();
        let mut out = Vec::new();
        for f in list.iter_mut().filter(|f| f.when == when) {
            if let Some(act) = f.continue_sequence(op) {
                out.push(Fired {
                    id: f.id,
                    spec: f.spec.clone(),
                    act,
                });
                continue;
            }
            if f.remaining == Some(0) || f.sequence.is_some() || !f.matches(op, paths) {
                continue;
            }
            if f.selects(count) {
                let act = f.fire(op);
                out.push(Fired {
                    id: f.id,
                    spec: f.spec.clone(),
                    act,
                });
            }
        }
        self.recount(&list);
        out
    }
}

/// How words read back as one line (quoted where needed).
pub fn spec_text(words: &[String]) -> String {
    shlex::try_join(words.iter().map(String::as_str)).unwrap_or_else(|_| words.join(" "))
}

#[cfg(test)]
mod tests;
