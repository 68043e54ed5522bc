//! Crash policies: which of the pending operations survive a power cut.
//!
//! Every policy yields a *legal* post-crash state: everything durable is
//! kept, the surviving operations are applied in their original order on
//! top of it ([`CrashState::effects`]), and their data obeys the page rule
//! ([`super::pages`]: each sector holds a version of itself). The same seed
//! always yields the same state.

use super::op::{Effect, Op, PendingOp, Survival};
use super::profile::{Cuts, Rules};
use super::rng::SplitMix64;
use std::fmt;

/// What survives a power cut.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Policy {
    /// Nothing unsynced survives.
    DropAll,
    /// Everything survives (a process crash, not a power cut).
    KeepAll,
    /// A seeded random prefix of the operations survives (ordered writeback).
    Prefix,
    /// Each operation survives independently (reordered writeback).
    Random,
    /// As `Random`, and a surviving write may persist only some sectors.
    Torn,
    /// Every namespace, size and attribute change survives; no data does.
    MetaFirst,
}

impl Policy {
    pub const ALL: [Policy; 6] = [
        Policy::DropAll,
        Policy::KeepAll,
        Policy::Prefix,
        Policy::Random,
        Policy::Torn,
        Policy::MetaFirst,
    ];

    /// The policy's command-line name.
    pub fn name(self) -> &'static str {
        match self {
            Policy::DropAll => "drop-all",
            Policy::KeepAll => "keep-all",
            Policy::Prefix => "prefix",
            Policy::Random => "random",
            Policy::Torn => "torn",
            Policy::MetaFirst => "meta-first",
        }
    }
}

impl fmt::Display for Policy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Policy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Policy::ALL
            .iter()
            .copied()
            .find(|p| p.name() == s)
            .ok_or_else(|| {
                let names: Vec<&str> = Policy::ALL.iter().map(|p| p.name()).collect();
                format!(
                    "unknown policy {s:?} (expected one of: {})",
                    names.join(", ")
                )
            })
    }
}

/// Settings of a crash.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CrashOptions {
    pub policy: Policy,
    pub seed: u64,
    /// Sector size for torn writes (bytes, > 0).
    pub sector: u64,
    /// Survival probability of each operation (`Random`, `Torn`), and of
    /// each sector of a torn write.
    pub probability: f64,
    /// Fill sectors that did not persist with seeded garbage instead of
    /// leaving the old bytes.
    pub garbage: bool,
    /// The model's rules ([`super::profile`]).
    pub rules: Rules,
}

impl CrashOptions {
    /// These options under model `p`: the one place that decides what a
    /// model adds to a policy ([`super::profile`]), shared by the volume's
    /// cut and every prediction of it.
    pub fn under(self, p: super::Persistence) -> CrashOptions {
        let rules = p.rules();
        CrashOptions {
            rules,
            sector: rules.unit(self.sector),
            ..self
        }
    }
}

impl Default for CrashOptions {
    fn default() -> Self {
        CrashOptions {
            policy: Policy::DropAll,
            seed: 0,
            sector: 512,
            probability: 0.5,
            garbage: false,
            rules: Rules::default(),
        }
    }
}

/// One legal post-crash state, as the pending operations that survive.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CrashState {
    /// The seed that produced this state (0 for seedless ones).
    pub seed: u64,
    /// `(index into the pending list, how it survived)`, increasing index.
    pub kept: Vec<(usize, Survival)>,
    /// Number of pending operations the state was chosen from.
    pub total: usize,
    /// What was kept and dropped, in a line.
    pub description: String,
}

impl CrashState {
    /// Indices of the operations dropped entirely.
    pub fn dropped(&self) -> Vec<usize> {
        let mut k = self.kept.iter().map(|(i, _)| *i).peekable();
        (0..self.total)
            .filter(|i| {
                if k.peek() == Some(i) {
                    k.next();
                    false
                } else {
                    true
                }
            })
            .collect()
    }

    /// The effects to apply to the durable store, in order.
    pub fn effects(&self, pending: &[PendingOp]) -> Vec<Effect> {
        let mut out = Vec::new();
        for (i, how) in &self.kept {
            if let Some(p) = pending.get(*i) {
                p.op.effects(how, &mut out);
            }
        }
        out
    }
}

impl fmt::Display for CrashState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (seed {})", self.description, self.seed)
    }
}

/// Chooses the post-crash state for `pending` under `opts`.
pub fn crash_state(pending: &[PendingOp], opts: &CrashOptions) -> CrashState {
    let n = pending.len();
    let mut rng = SplitMix64::new(opts.seed ^ 0xC8A5_11CE);
    let (kept, what): (Vec<(usize, Survival)>, String) = match opts.policy {
        Policy::DropAll => (Vec::new(), "drop-all: every unsynced operation lost".into()),
        Policy::KeepAll => (full(0..n), "keep-all: every unsynced operation kept".into()),
        Policy::Prefix => {
            let k = rng.below(n as u64 + 1) as usize;
            (
                full(0..k),
                format!("prefix: kept the first {k} of {n} unsynced operations"),
            )
        }
        Policy::Random => {
            let kept: Vec<(usize, Survival)> = (0..n)
                .filter(|_| rng.chance(opts.probability))
                .map(|i| (i, Survival::Full))
                .collect();
            let k = kept.len();
            (kept, format!("random: kept {k} of {n} unsynced operations"))
        }
        Policy::Torn => {
            let mut size_rng = SplitMix64::new(opts.seed ^ 0x5123_0E57);
            let mut torn = 0;
            let mut kept = Vec::new();
            for (i, p) in pending.iter().enumerate() {
                if !rng.chance(opts.probability) {
                    continue;
                }
                let how = match &p.op {
                    Op::Write { offset, data, .. } if rng.chance(0.5) => {
                        let persisted = random_sectors(
                            *offset,
                            data.len() as u64,
                            opts.sector,
                            opts.probability,
                            &mut rng,
                        );
                        match persisted {
                            Some(persisted) => {
                                torn += 1;
                                Survival::Torn {
                                    persisted,
                                    garbage: opts.garbage.then(|| rng.next_u64()),
                                }
                            }
                            None => Survival::Full,
                        }
                    }
                    _ => Survival::Full,
                };
                // A written-back page whose size change was not committed
                // (its own generator: the draws above stay as they were).
                let how = match (p.op.changes_size(), p.op.data_range(), how) {
                    (true, Some((s, e)), how) if size_rng.chance(0.25) => {
                        if how == Survival::Full {
                            torn += 1;
                        }
                        Survival::DataOnly {
                            persisted: match how {
                                Survival::Torn { persisted, .. } => persisted,
                                _ => vec![(s, e)],
                            },
                        }
                    }
                    (_, _, how) => how,
                };
                kept.push((i, how));
            }
            let k = kept.len();
            (
                kept,
                format!(
                    "torn: kept {k} of {n} unsynced operations, {torn} torn at {}-byte sectors or without their size change",
                    opts.sector
                ),
            )
        }
        Policy::MetaFirst => (
            meta_first(pending),
            "meta-first: names, sizes and attributes kept, unsynced data lost".into(),
        ),
    };
    let (kept, cuts) = super::profile::apply(pending, kept, opts.rules, opts.sector);
    CrashState {
        seed: opts.seed,
        kept,
        total: n,
        description: with_notes(what, cuts),
    }
}

/// `what`, saying how many operations each rule of the model cut back.
pub(crate) fn with_notes(mut what: String, cuts: Cuts) -> String {
    use std::fmt::Write;
    let ops = |n: usize| {
        if n == 1 {
            "1 operation".to_string()
        } else {
            format!("{n} operations")
        }
    };
    // Writing to a String cannot fail.
    if cuts.journal > 0 {
        let _ = write!(
            what,
            "; {} later journaled changes lost with the journal's tail",
            cuts.journal
        );
    }
    if cuts.pages > 0 {
        let _ = write!(
            what,
            "; {} lost data on sectors an earlier loss rolled back",
            ops(cuts.pages)
        );
    }
    if cuts.flushes > 0 {
        let _ = write!(
            what,
            "; {} kept by a later rename over another file or close after a truncate to 0 (auto_da_alloc)",
            match cuts.flushes {
                1 => "1 write's size".to_string(),
                n => format!("{n} writes' sizes"),
            }
        );
    }
    match cuts.sizes {
        0 => {}
        1 => what.push_str("; 1 write without its size change, its data not all on disk"),
        n => {
            let _ = write!(
                what,
                "; {n} writes without their size change, their data not all on disk"
            );
        }
    }
    what
}

pub(crate) fn full(r: std::ops::Range<usize>) -> Vec<(usize, Survival)> {
    r.map(|i| (i, Survival::Full)).collect()
}

pub(crate) fn meta_first(pending: &[PendingOp]) -> Vec<(usize, Survival)> {
    pending
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let how = match p.op {
                Op::Write { .. } | Op::Punch { .. } => Survival::MetaOnly,
                _ => Survival::Full,
            };
            (i, how)
        })
        .collect()
}

/// The sectors of a write, as absolute `[start, end)` ranges clipped to it.
/// `[offset, offset + len)` cut at `sector` boundaries.
pub fn sectors(offset: u64, len: u64, sector: u64) -> Vec<(u64, u64)> {
    let sector = sector.max(1);
    let end = offset + len;
    let mut out = Vec::new();
    let mut s = offset - offset % sector;
    while s < end {
        out.push((s.max(offset), (s + sector).min(end)));
        s += sector;
    }
    out
}

/// A random proper subset of a write's sectors (`None` when the write has a
/// single sector, or the draw kept all of them).
fn random_sectors(
    offset: u64,
    len: u64,
    sector: u64,
    p: f64,
    rng: &mut SplitMix64,
) -> Option<Vec<(u64, u64)>> {
    let all = sectors(offset, len, sector);
    if all.len() < 2 {
        return None;
    }
    let kept: Vec<(u64, u64)> = all.iter().copied().filter(|_| rng.chance(p)).collect();
    (kept.len() < all.len()).then(|| merge_adjacent(kept))
}

/// Sorted byte ranges with adjacent ones joined.
pub fn merge_adjacent(r: Vec<(u64, u64)>) -> Vec<(u64, u64)> {
    let mut out: Vec<(u64, u64)> = Vec::new();
    for (s, e) in r {
        match out.last_mut() {
            Some(last) if last.1 == s => last.1 = e,
            _ => out.push((s, e)),
        }
    }
    out
}
