//! Vulnerabilities: why crash states fail, found by checking more states.
//!
//! A failing state differs from keep-all at its crash point by *facts*:
//! each unsynced operation that was lost or persisted in part. Delta
//! debugging (`ddmin`, Zeller's algorithm) over those facts, re-checking each candidate state
//! (after the model's rules, so every state checked is one the model
//! allows), finds a smallest set that still fails. Then the later
//! operations that state keeps are minimised the same way: if the check
//! still fails with all of them dropped too, the loss alone is the bug;
//! otherwise the ones it needs were persisted *before* the loss.
//!
//! Kinds ([`VulnKind`]):
//! - **ordering**: later operations persisted while earlier ones were lost
//!   (or persisted in part); fixed by an fsync between them;
//! - **durability**: an operation lost, whatever came after; fixed by an
//!   fsync after it (a part-persisted operation counts here when losing it
//!   whole fails too);
//! - **atomicity**: an operation persisted in part fails the check although
//!   losing it whole does not; fixed only by an atomic protocol (a new
//!   file fsynced and renamed over) or a checksum.
//!
//! Failures whose keep-all state fails too are not crash bugs: nothing lost
//! explains them (the program had not got that far, or the check does not
//! hold mid-run); they are counted apart ([`Findings::no_loss`]).
//!
//! Failures with the same kind and the same operations (by name and path,
//! not by event) form one [`Vulnerability`], with its member states. The
//! explanation of an earlier member is tried first on each later failure
//! (one check when it holds), and every verdict is cached by state key, so
//! a bug repeated at many crash points costs a few checks per point.

use super::{ExploreOptions, fate_text, labels, tree, walk};
use crate::model::profile::apply;
use crate::model::{PendingOp, Survival};
use crate::trace::replay::Replayer;
use crate::trace::{Trace, TraceError};
use serde::Serialize;
use std::collections::{BTreeSet, HashMap};

/// The kind of a vulnerability (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum VulnKind {
    Durability,
    Ordering,
    Atomicity,
}

impl std::fmt::Display for VulnKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            VulnKind::Durability => "durability",
            VulnKind::Ordering => "ordering",
            VulnKind::Atomicity => "atomicity",
        })
    }
}

/// One operation in an explanation: as in a state's list, its trace
/// event, the event as recorded, its fate and where it was called.
pub use super::OpFate as Fact;

/// A failing state to explain: its number, crash point and what it kept
/// (as [`super::State::kept`]). A [`super::Duplicate`] of a failing state
/// fails too, with the earlier state's number: the same files may come
/// from another loss at its point (the one a vulnerability may be only
/// visible through).
#[derive(Clone, Debug)]
pub struct Failing {
    pub id: usize,
    pub point: usize,
    pub kept: Vec<(usize, Survival)>,
    /// A duplicate: counted in a vulnerability, never among `no_loss`
    /// (its state is counted where it was checked).
    pub duplicate: bool,
}

/// `failing`, and the duplicates of its states reached at other crash
/// points (by key, `ids` giving each checked state's number and point) as
/// failing too. A duplicate at its state's own point is left out: the
/// same files at the same crash, another enumeration of them.
pub fn with_duplicates(
    mut failing: Vec<Failing>,
    duplicates: Vec<super::Duplicate>,
    ids: &HashMap<u64, (usize, usize)>,
    verdicts: &HashMap<u64, bool>,
) -> Vec<Failing> {
    for d in duplicates {
        if verdicts.get(&d.key) != Some(&true) {
            continue;
        }
        match ids.get(&d.key) {
            Some(&(id, point)) if point != d.point => failing.push(Failing {
                id,
                point: d.point,
                kept: d.kept,
                duplicate: true,
            }),
            _ => {}
        }
    }
    failing
}

/// Failures that share a cause.
#[derive(Clone, Debug, Serialize)]
pub struct Vulnerability {
    pub kind: VulnKind,
    /// What goes wrong, in a line (from the first member).
    pub summary: String,
    /// The call to add.
    pub fix: String,
    /// The first member's operations lost or persisted in part.
    pub lost: Vec<Fact>,
    /// The first member's later operations that persisted before them
    /// (ordering only).
    pub kept: Vec<Fact>,
    /// Trace events of the lost operations over all members.
    pub events: Vec<u64>,
    /// Member states, ascending.
    pub states: Vec<usize>,
    /// Crash points of the members, ascending (events applied).
    pub points: Vec<usize>,
    /// The last event before the first crash point (`None`: before the
    /// first event).
    pub first_after: Option<String>,
    /// False when the check budget ran out before every member's
    /// explanation was minimal.
    pub minimal: bool,
}

/// What [`explain`] found.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Findings {
    /// In the order of their first crash point.
    pub vulnerabilities: Vec<Vulnerability>,
    /// Failing states whose keep-all state fails too (nothing lost
    /// explains them), ascending.
    pub no_loss: Vec<usize>,
    /// Checks run to explain (states already checked are not run again).
    pub checks: usize,
}

/// Explains `failing` (states of `trace` under `opts`) by checking more
/// states with `check` (true when the state fails), at most `max_checks`
/// new checks in all. `verdicts` caches verdicts by state key, and should
/// hold the exploration's (a state's key is [`super::State::key`]).
pub fn explain<E: From<TraceError>>(
    trace: &Trace,
    opts: &ExploreOptions,
    failing: &[Failing],
    verdicts: &mut HashMap<u64, bool>,
    max_checks: usize,
    check: impl FnMut(&super::SparseSnapshot, &[String]) -> Result<bool, E>,
) -> Result<Findings, E> {
    let mut tester = Tester {
        verdicts,
        checks: 0,
        max_checks,
        check,
    };
    let mut groups = Groups::default();
    // States as checked first, then the duplicates, which join their
    // vulnerabilities (or show one only they reveal).
    for duplicates in [false, true] {
        let list: Vec<&Failing> = failing
            .iter()
            .filter(|f| f.duplicate == duplicates)
            .collect();
        explain_pass(trace, opts, list, &mut tester, &mut groups)?;
    }
    Ok(groups.finish(tester.checks))
}

/// Explains `list` in crash point order, into `groups`.
fn explain_pass<E: From<TraceError>, F>(
    trace: &Trace,
    opts: &ExploreOptions,
    mut list: Vec<&Failing>,
    tester: &mut Tester<F>,
    groups: &mut Groups,
) -> Result<(), E>
where
    F: FnMut(&super::SparseSnapshot, &[String]) -> Result<bool, E>,
{
    list.sort_by_key(|f| (f.point, f.id));
    let pts: Vec<usize> = list
        .iter()
        .map(|f| f.point)
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let mut error: Option<E> = None;
    let eopts = opts.enumerate.under(trace.header.model);
    let mut next = 0;
    walk(trace, &pts, |k, r| {
        let at = Point::new(trace, r, k, eopts.rules, eopts.sector);
        while let Some(f) = list.get(next).filter(|f| f.point == k) {
            next += 1;
            match explain_one(&at, f, &groups.known, tester) {
                Ok(cause) => groups.add(f, cause, trace),
                Err(e) => {
                    error = Some(e);
                    return false;
                }
            }
        }
        true
    })?;
    match error {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// Runs checks, at most `max_checks`, caching verdicts.
struct Tester<'v, F> {
    verdicts: &'v mut HashMap<u64, bool>,
    checks: usize,
    max_checks: usize,
    check: F,
}

impl<F> Tester<'_, F> {
    /// Whether the state keeping `kept` (before the model's rules) at `at`
    /// fails; `None` past the budget.
    fn fails<E>(&mut self, at: &Point, kept: Vec<(usize, Survival)>) -> Result<Option<bool>, E>
    where
        F: FnMut(&super::SparseSnapshot, &[String]) -> Result<bool, E>,
    {
        let (snapshot, key) = at.state(kept);
        if let Some(v) = self.verdicts.get(&key) {
            return Ok(Some(*v));
        }
        if self.checks >= self.max_checks {
            return Ok(None);
        }
        self.checks += 1;
        let failed = (self.check)(&snapshot, &at.marks)?;
        self.verdicts.insert(key, failed);
        Ok(Some(failed))
    }
}

/// One crash point: its pending operations and how to build its states.
struct Point<'a> {
    trace: &'a Trace,
    r: &'a Replayer,
    k: usize,
    pending: Vec<PendingOp>,
    labels: Vec<String>,
    marks: Vec<String>,
    rules: crate::model::profile::Rules,
    sector: u64,
}

impl<'a> Point<'a> {
    fn new(
        trace: &'a Trace,
        r: &'a Replayer,
        k: usize,
        rules: crate::model::profile::Rules,
        sector: u64,
    ) -> Self {
        let pending = r.pending();
        let labels = labels(trace, r, &pending);
        Point {
            trace,
            r,
            k,
            labels,
            marks: trace.marks_before(k),
            pending,
            rules,
            sector,
        }
    }

    fn state(&self, kept: Vec<(usize, Survival)>) -> (super::SparseSnapshot, u64) {
        let (kept, _) = apply(&self.pending, kept, self.rules, self.sector);
        tree(self.r, &self.pending, &kept, &self.marks)
    }

    /// The state the model's rules make of `kept`.
    fn applied(&self, kept: Vec<(usize, Survival)>) -> Vec<(usize, Survival)> {
        apply(&self.pending, kept, self.rules, self.sector).0
    }

    fn event(&self, i: usize) -> Option<&'a crate::trace::Event> {
        self.pending
            .get(i)
            .and_then(|p| self.r.event_of(p.seq))
            .and_then(|n| self.trace.event(n))
    }

    fn fact(&self, i: usize, how: Option<&Survival>) -> Fact {
        Fact {
            event: self.pending.get(i).and_then(|p| self.r.event_of(p.seq)),
            op: self.labels.get(i).cloned().unwrap_or_default(),
            fate: fate_text(how),
            at: self
                .event(i)
                .and_then(|e| e.caller.as_ref())
                .and_then(crate::stacks::Caller::location),
        }
    }

    /// The operation without its ranges: what groups repeated bugs.
    fn shape(&self, i: usize) -> String {
        match self.event(i) {
            Some(ev) => format!("{} {}", ev.op.name(), ev.paths.join(" ")),
            None => self.labels.get(i).cloned().unwrap_or_default(),
        }
    }
}

/// A deviation from keep-all: pending operation `.0` lost (`None`) or
/// persisted in part.
type Dev = (usize, Option<Survival>);

/// Keep-all with `devs` applied.
fn with(n: usize, devs: &[Dev]) -> Vec<(usize, Survival)> {
    (0..n)
        .filter_map(|i| match devs.iter().find(|(j, _)| *j == i) {
            Some((_, how)) => how.clone().map(|h| (i, h)),
            None => Some((i, Survival::Full)),
        })
        .collect()
}

/// The deviations of `kept` from keep-all.
fn devs_of(n: usize, kept: &[(usize, Survival)]) -> Vec<Dev> {
    (0..n)
        .filter_map(|i| match kept.iter().find(|(j, _)| *j == i) {
            Some((_, Survival::Full)) => None,
            Some((_, how)) => Some((i, Some(how.clone()))),
            None => Some((i, None)),
        })
        .collect()
}

/// The cause of one failure.
enum Cause {
    Explained(Described),
    NoLoss,
}

/// A minimal explanation at one crash point.
struct Explanation {
    kind: VulnKind,
    lost: Vec<Dev>,
    later: Vec<usize>,
    minimal: bool,
}

/// A group's identity and its first explanation's facts.
struct Known {
    key: String,
    /// Trace events of the lost operations (to try on later failures).
    events: Vec<u64>,
}

fn explain_one<E, F>(
    at: &Point,
    f: &Failing,
    known: &[Known],
    t: &mut Tester<F>,
) -> Result<Cause, E>
where
    F: FnMut(&super::SparseSnapshot, &[String]) -> Result<bool, E>,
{
    let n = at.pending.len();
    if t.fails(at, with(n, &[]))? != Some(false) {
        return Ok(Cause::NoLoss);
    }
    let devs = devs_of(n, &f.kept);
    let mut minimal = true;
    let mut lost = None;
    for k in known {
        let start: Vec<Dev> = devs
            .iter()
            .filter(|(i, _)| {
                let p = &at.pending[*i];
                at.r.event_of(p.seq).is_some_and(|e| k.events.contains(&e))
            })
            .cloned()
            .collect();
        if start.is_empty() || start.len() == devs.len() {
            continue;
        }
        if t.fails(at, with(n, &start))? == Some(true) {
            lost = Some(reduce(at, start, t, &mut minimal)?);
            break;
        }
    }
    let lost = match lost {
        Some(l) => l,
        None => reduce(at, devs, t, &mut minimal)?,
    };
    let later = needed_later(at, &lost, t, &mut minimal)?;
    let kind = if !later.is_empty() {
        VulnKind::Ordering
    } else if lost.iter().all(|(_, how)| how.is_none()) {
        VulnKind::Durability
    } else {
        let whole: Vec<Dev> = lost.iter().map(|(i, _)| (*i, None)).collect();
        match t.fails(at, with(n, &whole))? {
            Some(false) => VulnKind::Atomicity,
            _ => VulnKind::Durability,
        }
    };
    let e = Explanation {
        kind,
        lost,
        later,
        minimal,
    };
    Ok(Cause::Explained(describe(at, &e)))
}

/// A smallest subset of `devs` (which fails) that still fails.
fn reduce<E, F>(
    at: &Point,
    devs: Vec<Dev>,
    t: &mut Tester<F>,
    minimal: &mut bool,
) -> Result<Vec<Dev>, E>
where
    F: FnMut(&super::SparseSnapshot, &[String]) -> Result<bool, E>,
{
    let n = at.pending.len();
    ddmin(devs, &mut |sub: &[Dev]| {
        let v = t.fails(at, with(n, sub))?;
        *minimal &= v.is_some();
        Ok(v == Some(true))
    })
}

/// The later operations (after the first lost one) that must persist for
/// the state of `lost` to fail: none when it fails with all of them
/// dropped too.
fn needed_later<E, F>(
    at: &Point,
    lost: &[Dev],
    t: &mut Tester<F>,
    minimal: &mut bool,
) -> Result<Vec<usize>, E>
where
    F: FnMut(&super::SparseSnapshot, &[String]) -> Result<bool, E>,
{
    let n = at.pending.len();
    let Some(first) = lost.iter().map(|(i, _)| *i).min() else {
        return Ok(Vec::new());
    };
    let later: Vec<usize> = at
        .applied(with(n, lost))
        .into_iter()
        .filter(|(i, how)| *i > first && *how == Survival::Full)
        .map(|(i, _)| i)
        .filter(|i| !lost.iter().any(|(j, _)| j == i))
        .collect();
    if later.is_empty() {
        return Ok(later);
    }
    let dropping = |keep: &[usize]| -> Vec<Dev> {
        let mut d = lost.to_vec();
        d.extend(
            later
                .iter()
                .filter(|i| !keep.contains(i))
                .map(|i| (*i, None)),
        );
        d
    };
    match t.fails(at, with(n, &dropping(&[])))? {
        Some(true) => return Ok(Vec::new()),
        None => *minimal = false,
        Some(false) => {}
    }
    ddmin(later.clone(), &mut |keep: &[usize]| {
        let v = t.fails(at, with(n, &dropping(keep)))?;
        *minimal &= v.is_some();
        Ok(v == Some(true))
    })
}

/// Zeller's delta debugging: a 1-minimal subset of `items` for which
/// `fails` holds, given that it holds for `items`.
pub(crate) fn ddmin<T: Clone, E>(
    items: Vec<T>,
    fails: &mut impl FnMut(&[T]) -> Result<bool, E>,
) -> Result<Vec<T>, E> {
    let mut cur = items;
    let mut n = 2;
    while cur.len() >= 2 {
        let size = cur.len().div_ceil(n);
        let chunks: Vec<Vec<T>> = cur.chunks(size).map(<[T]>::to_vec).collect();
        let mut reduced = false;
        for c in &chunks {
            if fails(c)? {
                cur = c.clone();
                n = 2;
                reduced = true;
                break;
            }
        }
        if !reduced && chunks.len() > 2 {
            for skip in 0..chunks.len() {
                let rest: Vec<T> = chunks
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| *i != skip)
                    .flat_map(|(_, c)| c.iter().cloned())
                    .collect();
                if fails(&rest)? {
                    cur = rest;
                    n = (n - 1).max(2);
                    reduced = true;
                    break;
                }
            }
        }
        if !reduced {
            if n >= cur.len() {
                break;
            }
            n = (n * 2).min(cur.len());
        }
    }
    Ok(cur)
}

mod describe;
mod groups;

use describe::{Described, describe};
use groups::Groups;

#[cfg(test)]
mod tests;
