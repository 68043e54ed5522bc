//! Crash states by step: the trace is replayed on the model and, at each
//! crash position, the pending operations are enumerated
//! ([`durafs::model::enumerate`]) and each crash state applied to a copy of
//! the durable store. Both sides use this: the real side on the trace of
//! the image file (block writes), the predicted side on the workload's own
//! trace.
//!
//! A crash position belongs to the step that ends at the next mark: the
//! point `step-K` stands for every crash after mark `step-(K-1)` up to mark
//! `step-K` (the first mark only for itself: the setup is not compared).
//! [`Placement`] says which positions inside a step are taken.
//!
//! Budget: each position gets at most `max_states / positions` states (at least
//! the enumeration's three fixed ones), the enumeration's seeded sample
//! beyond that; `sampled` says when that happened.

use durafs::model::MemStore;
use durafs::model::enumerate::{EnumOptions, count, enumerate};
use durafs::trace::replay::Replayer;
use durafs::trace::{Trace, TraceError, TraceOp};

/// A crash point: the `index`-th mark of the trace.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub struct Point {
    pub index: usize,
    pub label: String,
}

/// What a walk saw.
#[derive(Clone, Copy, Debug, Default, serde::Serialize)]
pub struct WalkStats {
    pub events: usize,
    pub marks: usize,
    /// Crash positions (marks included).
    pub positions: usize,
    /// Crash states enumerated (before any deduplication).
    pub states: usize,
    pub sampled: bool,
}

/// Which crash positions inside a step are taken.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Placement {
    /// Only at the marks.
    Marks,
    /// Just before each persistence event (fsync, fdatasync, fsyncdir,
    /// sync) and at the mark: on a block device's trace, every earlier
    /// crash inside the step is one of these states with fewer writes kept.
    Persistence,
    /// Before every event and at the mark.
    Every,
}

/// The crash positions of `trace` (events applied before the crash), each
/// with the step it belongs to.
pub fn positions(trace: &Trace, placement: Placement) -> Vec<(usize, Point)> {
    let mut out = Vec::new();
    let mut prev: Option<usize> = None;
    for (k, point) in marks(trace) {
        if let Some(p) = prev {
            for j in p + 1..k {
                let take = match placement {
                    Placement::Marks => false,
                    Placement::Persistence => trace.events[j].op.is_persistence_point(),
                    Placement::Every => true,
                };
                if take {
                    out.push((j, point.clone()));
                }
            }
        }
        out.push((k, point));
        prev = Some(k);
    }
    out
}

/// The marks of `trace`, in order, with their event positions.
pub fn marks(trace: &Trace) -> Vec<(usize, Point)> {
    trace
        .events
        .iter()
        .enumerate()
        .filter_map(|(k, e)| match &e.op {
            TraceOp::Mark { label } => Some((k, label.clone())),
            _ => None,
        })
        .enumerate()
        .map(|(index, (k, label))| (k, Point { index, label }))
        .collect()
}

/// Calls `sink(point, store)` with every crash state at every position,
/// in order, until it returns false. `only_keep_all` yields only the state
/// where every pending operation survived (a deliberately wrong model, for
/// tests of the comparison).
pub fn at_marks(
    trace: &Trace,
    placement: Placement,
    opts: &EnumOptions,
    max_states: usize,
    only_keep_all: bool,
    mut sink: impl FnMut(&Point, MemStore) -> bool,
) -> Result<WalkStats, TraceError> {
    let pts = positions(trace, placement);
    let mut stats = WalkStats {
        events: trace.events.len(),
        marks: marks(trace).len(),
        positions: pts.len(),
        ..WalkStats::default()
    };
    let mut eopts = *opts;
    eopts.cap = eopts.cap.min((max_states / pts.len().max(1)).max(3));
    let mut r = Replayer::new(&trace.header)?;
    for (k, point) in &pts {
        while r.applied() < *k {
            r.apply(&trace.events[r.applied()])?;
        }
        let pending = r.pending();
        if only_keep_all {
            // The enumeration's order: drop-all, then keep-all.
            let keep_all = usize::from(!pending.is_empty());
            if let Some(cs) = enumerate(&pending, &eopts).nth(keep_all) {
                let mut store = r.durable().clone();
                store.apply_all(&cs.effects(&pending));
                stats.states += 1;
                if !sink(point, store) {
                    break;
                }
            }
            continue;
        }
        if count(&pending, opts) > eopts.cap {
            stats.sampled = true;
        }
        let mut go = true;
        for cs in enumerate(&pending, &eopts) {
            let mut store = r.durable().clone();
            store.apply_all(&cs.effects(&pending));
            stats.states += 1;
            if !sink(point, store) {
                go = false;
                break;
            }
        }
        if !go {
            break;
        }
    }
    Ok(stats)
}
