//! The journal rule: under a journaling model, metadata survives a crash as
//! an in-order prefix. A journal commits transactions in order, and
//! recovery replays them in order up to the first one that is incomplete
//! (ext4: `fs/jbd2/recovery.c`, `do_one_pass` stops at the first missing or
//! bad commit block; xfs: log recovery replays from the tail to the head in
//! LSN order), so a later name, attribute or size change that the journal
//! set is never on disk without every earlier one.
//!
//! Metadata here is what the filesystem journals when the call is made:
//! namespace changes, attribute and extended-attribute changes, a
//! truncate's size change and a fallocate. A write's size change is not:
//! with delayed allocation it is set when the data is written back (ext4's
//! `i_disksize` moves at writeback), so it follows the data and the page
//! rule ([`super::pages`]), not the journal's order.
//!
//! [`journal_order`] turns any choice of surviving operations into one that
//! obeys the rule by dropping metadata: after the first metadata change that
//! did not survive, no later one does (a truncate keeps its zeroed tail,
//! written back like any page, without its size change).

use super::op::{Op, PendingOp, Survival};
use super::pages::keeps_size;

/// True when `op` is journaled metadata, wholly or (a truncate) by its size.
fn is_journaled(op: &Op) -> bool {
    !matches!(op, Op::Write { .. } | Op::Punch { .. })
}

/// True when `how` keeps `op`'s journaled part.
fn keeps_journaled(op: &Op, how: Option<&Survival>) -> bool {
    match (op, how) {
        (_, None) => false,
        (Op::Truncate { .. }, Some(h)) => keeps_size(h),
        (_, Some(_)) => true,
    }
}

/// `kept` with every journaled change after the first lost one dropped,
/// and how many operations that changed.
pub fn journal_order(
    pending: &[PendingOp],
    kept: Vec<(usize, Survival)>,
) -> (Vec<(usize, Survival)>, usize) {
    let mut out = Vec::with_capacity(kept.len());
    let mut changed = 0;
    let mut broken = false;
    let mut kept = kept.into_iter().peekable();
    for (i, p) in pending.iter().enumerate() {
        let how = match kept.peek() {
            Some((j, _)) if *j == i => kept.next().map(|(_, h)| h),
            _ => None,
        };
        if !is_journaled(&p.op) {
            if let Some(h) = how {
                out.push((i, h));
            }
            continue;
        }
        if !broken {
            broken = !keeps_journaled(&p.op, how.as_ref());
            if let Some(h) = how {
                out.push((i, h));
            }
            continue;
        }
        let Some(h) = how else { continue };
        if !keeps_journaled(&p.op, Some(&h)) {
            out.push((i, h));
            continue;
        }
        changed += 1;
        // A truncate past the break keeps at most its zeroed tail, written
        // back like any page, without its size change.
        let tail = match (&p.op, h) {
            (Op::Truncate { .. }, Survival::Full) => p.op.data_range().map(|r| vec![r]),
            (Op::Truncate { .. }, Survival::Torn { persisted, .. }) => Some(persisted),
            _ => None,
        };
        if let Some(persisted) = tail.filter(|t| !t.is_empty()) {
            out.push((i, Survival::DataOnly { persisted }));
        }
    }
    (out, changed)
}

#[cfg(test)]
#[path = "journal_tests.rs"]
mod tests;
