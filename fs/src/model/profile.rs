//! Profiles: what each model adds to a crash, beyond the page rule that
//! every model obeys ([`super::pages`]).
//!
//! | model   | names in journal order | fsync commits every name | write size only with its data | data unit |
//! |---------|------------------------|--------------------------|-------------------------------|-----------|
//! | `posix` | no                     | no                       | no                            | sector    |
//! | `ext4`  | yes                    | yes                      | no                            | sector    |
//! | `xfs`   | yes                    | yes                      | yes                           | sector    |
//! | `btrfs` | no                     | no                       | yes                           | page      |
//!
//! Evidence, rule by rule (`docs/durability.md`, "Profiles", has the
//! calibration runs):
//!
//! * **Journal order** ([`super::journal`]): jbd2 and the xfs log replay
//!   transactions in order up to the first incomplete one. btrfs has no
//!   such order for names: fsync writes the inode and its new names to a
//!   per-subvolume log tree that is replayed without the earlier
//!   transactions' names (`fs/btrfs/tree-log.c`), and calibration under the
//!   journal rules found btrfs outcomes with a later name and without an
//!   earlier one (23 false negatives of family `names` in 500 workloads).
//! * **A write's size change only with all its data** (xfs, btrfs): xfs
//!   moves the on-disk size in a transaction run at I/O completion
//!   (`fs/xfs/xfs_aops.c`, `xfs_end_ioend` → `xfs_setfilesize`), and the
//!   log force that commits it flushes the device cache first, so a size
//!   covers bytes that are on disk; btrfs moves `disk_i_size` when an
//!   ordered extent completes (`fs/btrfs/ordered-data.c`,
//!   `btrfs_inode_safe_disk_i_size_write`), in the transaction that also
//!   points the file at the new extent. ext4 does not obey it: a write
//!   into an allocated block sets `i_disksize` at write time
//!   (`ext4_da_write_end`), and calibration with timed commits shows the
//!   zeros of a committed size without its data.
//! * **Data in whole pages** (btrfs): data is copy-on-write and
//!   checksummed; a file points at a new extent only after the extent's
//!   I/O completed, so no sector of a page can be old while another is new
//!   (a torn extent never becomes visible, and a torn checksum reads as an
//!   I/O error, never as mixed bytes).
//!
//! [`apply`] turns any choice of surviving operations into one that obeys
//! a profile, by dropping what the profile cannot show.

use super::journal::journal_order;
use super::op::{Op, PAGE, PendingOp, Survival};
use super::pages::page_rule;
use super::types::Persistence;

/// What a model adds to a crash.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Rules {
    /// Journaled metadata survives as an in-order prefix.
    pub journal: bool,
    /// A write's size change survives only with all of its data.
    pub size_after_data: bool,
    /// Data survives in whole pages, never torn inside one.
    pub whole_pages: bool,
}

impl Persistence {
    /// The rules of this model (the table of [`super::profile`]).
    pub fn rules(self) -> Rules {
        match self {
            Persistence::Posix => Rules::default(),
            Persistence::Ext4 => Rules {
                journal: true,
                ..Rules::default()
            },
            Persistence::Xfs => Rules {
                journal: true,
                size_after_data: true,
                whole_pages: false,
            },
            Persistence::Btrfs => Rules {
                journal: false,
                size_after_data: true,
                whole_pages: true,
            },
        }
    }
}

impl Rules {
    /// The smallest unit data survives in, on a device of `sector`-byte
    /// sectors.
    pub fn unit(self, sector: u64) -> u64 {
        if self.whole_pages {
            sector.max(PAGE)
        } else {
            sector
        }
    }
}

/// How many operations each rule cut back.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Cuts {
    /// Journaled changes lost with the journal's tail.
    pub journal: usize,
    /// Operations that lost data on sectors an earlier loss rolled back.
    pub pages: usize,
    /// Writes whose size change was lost with part of their data.
    pub sizes: usize,
}

/// `kept` under `rules` at `sector`-byte sectors: the journal rule, the
/// page rule (at the profile's unit), then the size rule.
pub fn apply(
    pending: &[PendingOp],
    kept: Vec<(usize, Survival)>,
    rules: Rules,
    sector: u64,
) -> (Vec<(usize, Survival)>, Cuts) {
    let mut cuts = Cuts::default();
    let kept = if rules.journal {
        let (k, n) = journal_order(pending, kept);
        cuts.journal = n;
        k
    } else {
        kept
    };
    let (kept, n) = page_rule(pending, kept, rules.unit(sector));
    cuts.pages = n;
    if !rules.size_after_data {
        return (kept, cuts);
    }
    let (kept, n) = size_after_data(pending, kept);
    cuts.sizes = n;
    (kept, cuts)
}

/// `kept` with every write's size change dropped unless all of its data
/// survives: a write kept torn keeps its sectors without the size
/// ([`Survival::DataOnly`]), a write kept without data is dropped.
pub fn size_after_data(
    pending: &[PendingOp],
    kept: Vec<(usize, Survival)>,
) -> (Vec<(usize, Survival)>, usize) {
    let mut changed = 0;
    let out = kept
        .into_iter()
        .filter_map(|(i, how)| {
            let Some(p) = pending.get(i) else {
                return Some((i, how));
            };
            if !matches!(p.op, Op::Write { .. }) || !p.op.changes_size() {
                return Some((i, how));
            }
            match how {
                Survival::MetaOnly => {
                    changed += 1;
                    None
                }
                Survival::Torn { persisted, .. } if persisted.is_empty() => {
                    changed += 1;
                    None
                }
                Survival::Torn { persisted, .. } => {
                    changed += 1;
                    Some((i, Survival::DataOnly { persisted }))
                }
                how => Some((i, how)),
            }
        })
        .collect();
    (out, changed)
}

#[cfg(test)]
#[path = "profile_tests.rs"]
mod tests;
