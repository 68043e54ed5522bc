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
use durafs::model::crash::CrashState;
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

/// Where a crash state of a walk comes from: the crash position (events
/// applied) and the state enumerated there.
#[derive(Clone, Copy, Debug)]
pub struct At<'a> {
    pub position: usize,
    pub state: &'a CrashState,
}

/// Calls `sink(point, store, at)` with every crash state at every
/// position, in order, until it returns false. `only_keep_all` yields only the state
/// where every pending operation survived (a deliberately wrong model, for
/// tests of the comparison).
pub fn at_marks(
    trace: &Trace,
    placement: Placement,
    opts: &EnumOptions,
    max_states: usize,
    only_keep_all: bool,
    mut sink: impl FnMut(&Point, MemStore, At<'_>) -> bool,
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
                let at = At {
                    position: *k,
                    state: &cs,
                };
                if !sink(point, store, at) {
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
            let at = At {
                position: *k,
                state: &cs,
            };
            if !sink(point, store, at) {
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

#[cfg(test)]
mod tests {
    use super::*;

    /// `durafs calibrate --keep` of: write A, sync, mark start, append, mark
    /// step-1, append, fsync A, mark step-2.
    const TRACE: &str = r#"
{"durafs_trace":3,"model":"posix","inodes":[{"ino":1,"kind":"dir","attrs":{"mode":493,"uid":0,"gid":0,"rdev":0,"atime":{"secs":1796191059,"nanos":998969324},"mtime":{"secs":1796191059,"nanos":998969324},"ctime":{"secs":1796191059,"nanos":998969324}},"size":0,"target":null,"data":null}],"entries":[]}
{"n":1,"op":"create","parent":1,"name":"A","kind":"file","attrs":{"mode":420,"uid":0,"gid":0,"rdev":0,"atime":{"secs":1796191060,"nanos":70525422},"mtime":{"secs":1796191060,"nanos":70525422},"ctime":{"secs":1796191060,"nanos":70525422}},"ino":2,"paths":["/A"]}
{"n":2,"op":"write","ino":2,"offset":0,"data":"eHh4eHh4eHh4eA==","t":{"secs":1796191060,"nanos":72048328},"paths":["/A"]}
{"n":3,"op":"sync","paths":[]}
{"n":4,"op":"mark","label":"start","paths":[]}
{"n":5,"op":"write","ino":2,"offset":10,"data":"eXl5eXl5eXl5eQ==","t":{"secs":1796191060,"nanos":89437031},"paths":["/A"]}
{"n":6,"op":"mark","label":"step-1","paths":[]}
{"n":7,"op":"write","ino":2,"offset":20,"data":"enp6enp6enp6eg==","t":{"secs":1796191060,"nanos":100606510},"paths":["/A"]}
{"n":8,"op":"fsync","ino":2,"datasync":false,"paths":["/A"]}
{"n":9,"op":"mark","label":"step-2","paths":[]}
"#;

    fn at(placement: Placement) -> Vec<(usize, String)> {
        let t = Trace::read(TRACE.trim_start().as_bytes()).unwrap();
        positions(&t, placement)
            .into_iter()
            .map(|(k, p)| (k, p.label))
            .collect()
    }

    #[test]
    fn a_step_s_positions_run_from_after_the_previous_mark_to_its_own() {
        let s = |k: usize, l: &str| (k, l.to_string());
        assert_eq!(
            at(Placement::Marks),
            vec![s(3, "start"), s(5, "step-1"), s(8, "step-2")]
        );
        assert_eq!(
            at(Placement::Persistence),
            vec![
                s(3, "start"),
                s(5, "step-1"),
                s(7, "step-2"),
                s(8, "step-2")
            ]
        );
        assert_eq!(
            at(Placement::Every),
            vec![
                s(3, "start"),
                s(4, "step-1"),
                s(5, "step-1"),
                s(6, "step-2"),
                s(7, "step-2"),
                s(8, "step-2")
            ]
        );
    }

    #[test]
    fn inside_a_step_the_states_before_and_after_its_operation_are_both_there() {
        let t = Trace::read(TRACE.trim_start().as_bytes()).unwrap();
        let mut sizes: Vec<(String, u64)> = Vec::new();
        let opts = EnumOptions::default();
        at_marks(&t, Placement::Every, &opts, 1000, false, |p, store, _| {
            let size = store.image().inodes.get(&2).map_or(0, |i| i.size);
            sizes.push((p.label.clone(), size));
            true
        })
        .unwrap();
        sizes.sort();
        sizes.dedup();
        let s = |l: &str, n: u64| (l.to_string(), n);
        assert_eq!(
            sizes,
            vec![
                s("start", 10),
                s("step-1", 10),
                s("step-1", 20),
                s("step-2", 10),
                s("step-2", 20),
                s("step-2", 30)
            ]
        );
    }
}
