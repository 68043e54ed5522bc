//! Crash states at marks: the trace is replayed on the model and, just
//! before each `mark` event, the pending operations are enumerated
//! ([`durafs::model::enumerate`]) and each crash state applied to a copy of
//! the durable store. Both sides use this: the real side on the trace of
//! the image file (block writes), the predicted side on the workload's own
//! trace.
//!
//! Budget: each mark gets at most `max_states / marks` states (at least
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
    /// Crash states enumerated (before any deduplication).
    pub states: usize,
    pub sampled: bool,
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

/// Calls `sink(point, store)` with every crash state at every mark, in
/// order, until it returns false. `only_keep_all` yields only the state
/// where every pending operation survived (a deliberately wrong model, for
/// tests of the comparison).
pub fn at_marks(
    trace: &Trace,
    opts: &EnumOptions,
    max_states: usize,
    only_keep_all: bool,
    mut sink: impl FnMut(&Point, MemStore) -> bool,
) -> Result<WalkStats, TraceError> {
    let pts = marks(trace);
    let mut stats = WalkStats {
        events: trace.events.len(),
        marks: pts.len(),
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
