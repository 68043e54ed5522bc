//! Crash-state enumeration: for a crash at the current point, the distinct
//! states worth checking, in a fixed order:
//!
//! 1. drop-all, keep-all, meta-first (sizes and names, no unsynced data),
//!    data and names (every data part and name, no size change), data-first
//!    (every data part and nothing else: ordered-mode data written back, the
//!    journal commit after it not);
//! 2. every proper prefix of the pending operations;
//! 3. every single-operation omission (all others kept, in order): for a data
//!    operation, its sectors rolled back to before it, with the later writes
//!    to those sectors (the page rule);
//! 4. every size change lost alone: a size-changing data operation's data
//!    kept without its size change (a written-back page the journal never
//!    committed the size of: an extending write's bytes inside the old size,
//!    a shrinking truncate's zeroed tail under the old size);
//! 5. sector splits of each multi-sector data part: the first sector only,
//!    all but the last, all but the first, a seeded random subset; up to 64
//!    sectors every proper prefix and suffix and every single sector
//!    missing; up to 16 sectors every inner run kept alone or left out; each
//!    with and without its size change (a truncate's zeroed tail only
//!    without it), and without it also on the data-first base.
//!
//! Past `cap` states, the states of (1) are always kept and the rest are a
//! deterministic, seeded sample in the same order. Every state then passes
//! through the page rule ([`super::pages`]), and equal states are yielded
//! once (so a capped enumeration may yield fewer than `cap`).

use super::crash::{CrashState, full, merge_adjacent, meta_first, sectors, with_notes};
use super::op::{Op, PendingOp, Survival, show_ranges};
use super::profile::{Cuts, Rules, apply};
use super::rng::SplitMix64;
use std::collections::HashSet;

/// Settings of an enumeration.
#[derive(Clone, Copy, Debug)]
pub struct EnumOptions {
    /// Most states yielded.
    pub cap: usize,
    /// Seed of the sample beyond `cap` and of random torn variants.
    pub seed: u64,
    /// Sector size for torn variants and the page rule.
    pub sector: u64,
    /// Include torn variants.
    pub torn: bool,
    /// The model's rules ([`super::profile`]).
    pub rules: Rules,
}

impl EnumOptions {
    /// These options under model `p` (see [`super::crash::CrashOptions::under`]).
    pub fn under(self, p: super::Persistence) -> EnumOptions {
        let rules = p.rules();
        EnumOptions {
            rules,
            sector: rules.unit(self.sector),
            ..self
        }
    }
}

impl Default for EnumOptions {
    fn default() -> Self {
        EnumOptions {
            cap: 1000,
            seed: 0,
            sector: 512,
            torn: true,
            rules: Rules::default(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Spec {
    DropAll,
    KeepAll,
    MetaFirst,
    /// Every data part and name, no size change.
    DataAndNames,
    /// Every data part and nothing else: a crash after ordered-mode data
    /// writeback, before the journal commit that follows it.
    DataFirst,
    Prefix(usize),
    Omit(usize),
    SizeLost(usize),
    Torn {
        index: usize,
        persisted: Vec<(u64, u64)>,
        size: bool,
        /// The other operations as in data-first, not kept whole.
        data_first: bool,
        label: &'static str,
    },
}

/// The distinct crash states of `pending`, lazily built; descriptions name
/// an operation as `op #SEQ (summary)`.
pub fn enumerate<'a>(
    pending: &'a [PendingOp],
    opts: &EnumOptions,
) -> impl Iterator<Item = CrashState> + 'a {
    let names: Vec<String> = pending
        .iter()
        .map(|p| format!("op #{} ({})", p.seq, p.op.summary()))
        .collect();
    let seed = opts.seed;
    plan(pending, opts)
        .into_iter()
        .map(move |(spec, kept, notes)| build(pending, &names, spec, kept, notes, seed))
}

/// [`enumerate`] with the descriptions naming operation `i` as `names[i]`
/// (e.g. its trace event: `#19 rename /a -> /b`).
pub fn enumerate_named<'a>(
    pending: &'a [PendingOp],
    names: &'a [String],
    opts: &EnumOptions,
) -> impl Iterator<Item = CrashState> + 'a {
    let seed = opts.seed;
    plan(pending, opts)
        .into_iter()
        .map(move |(spec, kept, notes)| build(pending, names, spec, kept, notes, seed))
}

/// How many states [`enumerate`] yields.
pub fn count(pending: &[PendingOp], opts: &EnumOptions) -> usize {
    plan(pending, opts).len()
}

/// True for operations with a data part and a size change (writes and
/// shrinking truncates).
fn sized_data(op: &Op) -> bool {
    op.changes_size() && op.data_range().is_some()
}

fn specs(pending: &[PendingOp], opts: &EnumOptions) -> (Vec<Spec>, usize) {
    let n = pending.len();
    let mut specs = vec![Spec::DropAll];
    if n == 0 {
        return (specs, 1);
    }
    specs.push(Spec::KeepAll);
    if pending.iter().any(|p| p.op.data_range().is_some()) {
        specs.push(Spec::MetaFirst);
    }
    if pending.iter().any(|p| sized_data(&p.op)) {
        specs.push(Spec::DataAndNames);
        specs.push(Spec::DataFirst);
    }
    let fixed = specs.len();
    specs.extend((1..n).map(Spec::Prefix));
    // Omitting the last equals the prefix of n - 1; with n == 1 it is drop-all.
    specs.extend((0..n.saturating_sub(1)).map(Spec::Omit));
    specs.extend(
        (0..n)
            .filter(|i| sized_data(&pending[*i].op))
            .map(Spec::SizeLost),
    );
    if opts.torn {
        torn_specs(pending, opts, &mut specs);
    }
    (specs, fixed)
}

/// Data parts of at most this many sectors (32 KiB at 512) get every prefix,
/// suffix and single missing sector; longer ones only the fixed splits, so
/// that a large write does not make thousands of states.
const MAX_SPLIT_SECTORS: usize = 64;

/// Data parts of at most this many sectors also get every inner run of their
/// sectors, kept alone or left out (a block of a page written back torn).
const MAX_RUN_SECTORS: usize = 16;

/// Sector splits of every multi-sector data operation.
fn torn_specs(pending: &[PendingOp], opts: &EnumOptions, specs: &mut Vec<Spec>) {
    let mut rng = SplitMix64::new(opts.seed ^ 0x70E2_5EC7);
    for (index, p) in pending.iter().enumerate() {
        let Some((start, end)) = p.op.data_range() else {
            continue;
        };
        let all = sectors(start, end - start, opts.sector);
        let m = all.len();
        if m < 2 {
            continue;
        }
        let random: Vec<(u64, u64)> = all.iter().copied().filter(|_| rng.chance(0.5)).collect();
        let mut variants: Vec<(&'static str, Vec<(u64, u64)>)> = vec![
            ("first sector only", vec![all[0]]),
            ("all but the last sector", all[..m - 1].to_vec()),
            ("all but the first sector", all[1..].to_vec()),
            ("a random subset of sectors", random),
        ];
        if m <= MAX_SPLIT_SECTORS {
            for k in 1..m {
                variants.push(("a prefix of its sectors", all[..k].to_vec()));
                variants.push(("a suffix of its sectors", all[k..].to_vec()));
            }
            for k in 0..m {
                let mut v = all.clone();
                v.remove(k);
                variants.push(("all sectors but one", v));
            }
        }
        if m <= MAX_RUN_SECTORS {
            for a in 1..m {
                for b in a + 1..m {
                    variants.push(("a run of its sectors", all[a..b].to_vec()));
                    let mut v = all[..a].to_vec();
                    v.extend_from_slice(&all[b..]);
                    variants.push(("all sectors but a run", v));
                }
            }
        }
        // A truncate's zeroed tail matters only without its size change.
        let sizes: &[bool] = match &p.op {
            Op::Truncate { .. } => &[false],
            op if op.changes_size() => &[true, false],
            _ => &[true],
        };
        for (label, v) in variants {
            if v.len() == m || v.is_empty() {
                continue;
            }
            for &size in sizes {
                // Without its size change, also on the data-first base.
                for data_first in [false, true].into_iter().take(1 + usize::from(!size)) {
                    specs.push(Spec::Torn {
                        index,
                        persisted: merge_adjacent(v.clone()),
                        size,
                        data_first,
                        label,
                    });
                }
            }
        }
    }
}

/// A planned state: what names it, what survives (after the model's
/// rules), and how many operations each rule cut back.
type Planned = (Spec, Vec<(usize, Survival)>, Cuts);

/// The specs, capped (a seeded sample past the cap), each turned into the
/// state the model's rules allow, the duplicates dropped.
fn plan(pending: &[PendingOp], opts: &EnumOptions) -> Vec<Planned> {
    let (mut specs, fixed) = specs(pending, opts);
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
    // Built only once sampled: each costs a pass over the pending list.
    let mut seen = HashSet::new();
    specs
        .into_iter()
        .filter_map(|spec| {
            let (kept, cuts) = apply(pending, kept_of(pending, &spec), opts.rules, opts.sector);
            seen.insert(kept.clone()).then_some((spec, kept, cuts))
        })
        .collect()
}

/// Every operation kept but `index`, which survives as `how`.
fn all_but(n: usize, index: usize, how: Option<Survival>) -> Vec<(usize, Survival)> {
    (0..n)
        .filter_map(|j| {
            if j == index {
                how.clone().map(|h| (j, h))
            } else {
                Some((j, Survival::Full))
            }
        })
        .collect()
}

/// The whole data part, without the size change.
fn data_only(op: &Op) -> Option<Survival> {
    op.data_range().map(|(s, e)| Survival::DataOnly {
        persisted: vec![(s, e)],
    })
}

/// The state `spec` names, before the page rule.
fn kept_of(pending: &[PendingOp], spec: &Spec) -> Vec<(usize, Survival)> {
    let n = pending.len();
    match spec {
        Spec::DropAll => Vec::new(),
        Spec::KeepAll => full(0..n),
        Spec::MetaFirst => meta_first(pending),
        Spec::DataAndNames => data_first(pending, true),
        Spec::DataFirst => data_first(pending, false),
        Spec::Prefix(k) => full(0..*k),
        Spec::Omit(i) => all_but(n, *i, None),
        Spec::SizeLost(i) => all_but(n, *i, data_only(&pending[*i].op)),
        Spec::Torn {
            index,
            persisted,
            size,
            data_first: base,
            ..
        } => {
            let how = if *size {
                Survival::Torn {
                    persisted: persisted.clone(),
                    garbage: None,
                }
            } else {
                Survival::DataOnly {
                    persisted: persisted.clone(),
                }
            };
            if *base {
                let mut kept = data_first(pending, false);
                kept.retain(|(j, _)| j != index);
                let at = kept.partition_point(|(j, _)| j < index);
                kept.insert(at, (*index, how));
                kept
            } else {
                all_but(n, *index, Some(how))
            }
        }
    }
}

/// Every data part without its size change; with `names`, every other
/// operation but fallocate kept too, else nothing else.
fn data_first(pending: &[PendingOp], names: bool) -> Vec<(usize, Survival)> {
    pending
        .iter()
        .enumerate()
        .filter_map(|(i, p)| match &p.op {
            Op::Allocate { .. } => None,
            op if op.data_range().is_some() && (sized_data(op) || !names) => {
                data_only(op).map(|h| (i, h))
            }
            _ if names => Some((i, Survival::Full)),
            _ => None,
        })
        .collect()
}

fn build(
    pending: &[PendingOp],
    names: &[String],
    spec: Spec,
    kept: Vec<(usize, Survival)>,
    cuts: Cuts,
    seed: u64,
) -> CrashState {
    let n = pending.len();
    let name = |i: usize| names.get(i).map_or("?", String::as_str);
    let description = match spec {
        Spec::DropAll => format!("drop-all: all {n} unsynced operations lost"),
        Spec::KeepAll => format!("keep-all: all {n} unsynced operations kept"),
        Spec::MetaFirst => {
            "meta-first: names, sizes and attributes kept, unsynced data lost".to_string()
        }
        Spec::DataAndNames => {
            "data and names: every data part and name kept, no size change".to_string()
        }
        Spec::DataFirst => {
            "data-first: every data part kept, no name, size or attribute change".to_string()
        }
        Spec::Prefix(k) => format!(
            "prefix: kept up to {}, dropped {} and the {} after",
            name(k - 1),
            name(k),
            n - k - 1
        ),
        Spec::Omit(i) if pending[i].op.data_range().is_some() => format!(
            "omit: {} lost, its sectors rolled back to before it",
            name(i)
        ),
        Spec::Omit(i) => format!("omit: dropped only {}", name(i)),
        Spec::SizeLost(i) => format!("size lost: {} on disk without its size change", name(i)),
        Spec::Torn {
            index,
            persisted,
            size,
            data_first,
            label,
        } => format!(
            "torn: {} persisted {label}, {}{}{}",
            name(index),
            show_ranges(&persisted),
            if data_first {
                ", with only the other data parts (data-first)"
            } else {
                ""
            },
            if size {
                ""
            } else {
                ", without its size change"
            }
        ),
    };
    CrashState {
        seed,
        kept,
        total: n,
        description: with_notes(description, cuts),
    }
}
