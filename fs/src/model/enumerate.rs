//! Crash-state enumeration: for a crash at the current point, the distinct
//! states worth checking, in a fixed order:
//!
//! 1. drop-all, keep-all, meta-first;
//! 2. every proper prefix of the pending operations;
//! 3. every single-operation omission (all others kept, in order);
//! 4. torn variants of each surviving multi-sector write (first sector only;
//!    all but the last sector; a seeded random subset).
//!
//! Duplicates (an omission equal to a prefix, meta-first with no data, two
//! torn variants with the same sectors) are yielded once. Past `cap` states,
//! the three states of (1) are always kept and the rest are a deterministic,
//! seeded sample in the same order.

use super::crash::{CrashState, full, merge_adjacent, meta_first, sectors};
use super::op::{Op, PendingOp, Survival};
use super::rng::SplitMix64;
use std::collections::HashSet;

/// Settings of an enumeration.
#[derive(Clone, Copy, Debug)]
pub struct EnumOptions {
    /// Most states yielded.
    pub cap: usize,
    /// Seed of the sample beyond `cap` and of random torn variants.
    pub seed: u64,
    /// Sector size for torn variants.
    pub sector: u64,
    /// Include torn variants.
    pub torn: bool,
}

impl Default for EnumOptions {
    fn default() -> Self {
        EnumOptions {
            cap: 1000,
            seed: 0,
            sector: 512,
            torn: true,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Spec {
    DropAll,
    KeepAll,
    MetaFirst,
    Prefix(usize),
    Omit(usize),
    Torn {
        index: usize,
        persisted: Vec<(u64, u64)>,
        label: &'static str,
    },
}

/// The distinct crash states of `pending`, lazily.
pub fn enumerate<'a>(
    pending: &'a [PendingOp],
    opts: &EnumOptions,
) -> impl Iterator<Item = CrashState> + 'a {
    let specs = plan(pending, opts);
    let seed = opts.seed;
    specs.into_iter().map(move |s| build(pending, s, seed))
}

/// How many states [`enumerate`] yields.
pub fn count(pending: &[PendingOp], opts: &EnumOptions) -> usize {
    plan(pending, opts).len()
}

fn plan(pending: &[PendingOp], opts: &EnumOptions) -> Vec<Spec> {
    let n = pending.len();
    let mut specs = vec![Spec::DropAll];
    if n == 0 {
        return specs;
    }
    specs.push(Spec::KeepAll);
    if pending
        .iter()
        .any(|p| matches!(p.op, Op::Write { .. } | Op::Punch { .. }))
    {
        specs.push(Spec::MetaFirst);
    }
    let fixed = specs.len();
    specs.extend((1..n).map(Spec::Prefix));
    // Omitting the last equals the prefix of n - 1; with n == 1 it is drop-all.
    specs.extend((0..n.saturating_sub(1)).map(Spec::Omit));
    if opts.torn {
        let mut rng = SplitMix64::new(opts.seed ^ 0x70E2_5EC7);
        let mut seen = HashSet::new();
        for (index, p) in pending.iter().enumerate() {
            let Op::Write { offset, data, .. } = &p.op else {
                continue;
            };
            let all = sectors(*offset, data.len() as u64, opts.sector);
            if all.len() < 2 {
                continue;
            }
            let random: Vec<(u64, u64)> = all.iter().copied().filter(|_| rng.chance(0.5)).collect();
            let variants = [
                ("first sector only", vec![all[0]]),
                ("all but the last sector", all[..all.len() - 1].to_vec()),
                ("a random subset of sectors", random),
            ];
            for (label, v) in variants {
                if v.len() == all.len() {
                    continue;
                }
                let persisted = merge_adjacent(v);
                if seen.insert((index, persisted.clone())) {
                    specs.push(Spec::Torn {
                        index,
                        persisted,
                        label,
                    });
                }
            }
        }
    }
    if specs.len() > opts.cap.max(fixed) {
        let mut rng = SplitMix64::new(opts.seed ^ 0x5A3F_1E00);
        let rest = specs.split_off(fixed);
        let want = opts.cap.saturating_sub(fixed);
        // Selection sampling (Knuth's algorithm S): order preserved.
        let mut left = want;
        let total = rest.len();
        for (i, s) in rest.into_iter().enumerate() {
            if left > 0 && rng.below((total - i) as u64) < left as u64 {
                specs.push(s);
                left -= 1;
            }
        }
    }
    specs
}

fn build(pending: &[PendingOp], spec: Spec, seed: u64) -> CrashState {
    let n = pending.len();
    let seq = |i: usize| pending.get(i).map_or(0, |p| p.seq);
    let (kept, description) = match spec {
        Spec::DropAll => (
            Vec::new(),
            format!("drop-all: all {n} unsynced operations lost"),
        ),
        Spec::KeepAll => (
            full(0..n),
            format!("keep-all: all {n} unsynced operations kept"),
        ),
        Spec::MetaFirst => (
            meta_first(pending),
            "meta-first: names, sizes and attributes kept, unsynced data lost".to_string(),
        ),
        Spec::Prefix(k) => (
            full(0..k),
            format!(
                "prefix: kept ops up to #{}, dropped #{} and the {} after",
                seq(k - 1),
                seq(k),
                n - k - 1
            ),
        ),
        Spec::Omit(i) => {
            let kept = (0..n)
                .filter(|j| *j != i)
                .map(|j| (j, Survival::Full))
                .collect();
            (
                kept,
                format!(
                    "omit: dropped only op #{} ({})",
                    seq(i),
                    summary(pending, i)
                ),
            )
        }
        Spec::Torn {
            index,
            persisted,
            label,
        } => {
            let kept = (0..n)
                .map(|j| {
                    let how = if j == index {
                        Survival::Torn {
                            persisted: persisted.clone(),
                            garbage: None,
                        }
                    } else {
                        Survival::Full
                    };
                    (j, how)
                })
                .collect();
            (
                kept,
                format!(
                    "torn: op #{} ({}) persisted {label}",
                    seq(index),
                    summary(pending, index)
                ),
            )
        }
    };
    CrashState {
        seed,
        kept,
        total: n,
        description,
    }
}

fn summary(pending: &[PendingOp], i: usize) -> String {
    pending.get(i).map(|p| p.op.summary()).unwrap_or_default()
}
