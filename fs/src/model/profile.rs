//! Profiles: what each model adds to a crash, beyond the page rule that
//! every model obeys ([`super::pages`]).
//!
//! | model   | names in journal order | fsync commits every name | write size only with its data         | data unit |
//! |---------|------------------------|--------------------------|---------------------------------------|-----------|
//! | `posix` | no                     | no                       | no                                    | sector    |
//! | `ext4`  | yes                    | yes                      | no; past the old last page, whole pages; kept by a rename over a file or a close after a truncate to 0 | sector |
//! | `xfs`   | yes                    | yes                      | yes                                   | sector    |
//! | `btrfs` | no                     | no                       | yes                                   | page      |
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
//!   points the file at the new extent.
//! * **ext4: past the old last page, a write's size keeps its data only in
//!   whole pages** (ext4 with 4 KiB blocks, whose default `dioread_nolock`
//!   allocates delayed blocks as unwritten extents, `ext4_map_blocks` with
//!   `EXT4_GET_BLOCKS_IO_CREATE_EXT`, and converts them to written only at
//!   I/O completion, in a later transaction, `ext4_convert_unwritten_io_end_vec`):
//!   the size committed with the allocation may survive over zeros (the
//!   extent still unwritten), and a converted block's data was on the
//!   device before the conversion's commit, so with its size the write's
//!   data survives page by page, never torn inside a page. Inside the old
//!   last page the block is mapped and overwritten in place: any sector,
//!   with or without the size (`ext4_da_do_write_end` moves the size at
//!   write time there). Calibration on ext4: the size without its data
//!   (seed-1-19, `--commits` runs), and no page of new blocks torn.
//! * **ext4: a rename over another file, or a close after a truncate to
//!   size 0, keeps the file's size** (`auto_da_alloc`,
//!   [`flushes_keep_sizes`] and, at a commit of the rename,
//!   `Model::commit_size_before`): `ext4_rename` starts the source's
//!   writeback (`ext4_alloc_da_blocks`) before its handle, and
//!   `ext4_release_file` does at the first close after `ext4_truncate`
//!   left the file empty (`EXT4_STATE_DA_ALLOC_CLOSE`); the writeback
//!   moves the on-disk size with the allocation; with `dioread_nolock`
//!   the data is not ordered, so it may read as zeros. The close is
//!   FUSE's `release`, which the kernel sends asynchronously after the
//!   close: durafs sees it at or after the point ext4 would flush, which
//!   can only leave more states allowed, never fewer.
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
use super::types::{Ino, Persistence};

/// When a write's size change may survive without all of its data.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SizeRule {
    /// Always (posix).
    #[default]
    Free,
    /// Always, but past the page that held the file's end before the
    /// write, its data survives with the size only in whole pages (ext4's
    /// unwritten extents).
    Ext4,
    /// Never (xfs, btrfs).
    AfterData,
}

/// What a model adds to a crash.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Rules {
    /// Journaled metadata survives as an in-order prefix.
    pub journal: bool,
    /// When a write's size change survives without all of its data.
    pub sizes: SizeRule,
    /// Data survives in whole pages, never torn inside one.
    pub whole_pages: bool,
    /// A rename onto another file's name, and a close after a truncate to
    /// size 0, keep the size of the writes made to the file before them
    /// (ext4's `auto_da_alloc`, [`flushes_keep_sizes`]).
    pub auto_da_alloc: bool,
}

impl Persistence {
    /// The rules of this model (the table of [`super::profile`]).
    pub fn rules(self) -> Rules {
        match self {
            Persistence::Posix => Rules::default(),
            Persistence::Ext4 => Rules {
                journal: true,
                sizes: SizeRule::Ext4,
                whole_pages: false,
                auto_da_alloc: true,
            },
            Persistence::Xfs => Rules {
                journal: true,
                sizes: SizeRule::AfterData,
                whole_pages: false,
                auto_da_alloc: false,
            },
            Persistence::Btrfs => Rules {
                journal: false,
                sizes: SizeRule::AfterData,
                whole_pages: true,
                auto_da_alloc: false,
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
    /// Writes whose size a kept rename over another file, or a kept close
    /// after a truncate to 0, kept (`auto_da_alloc`).
    pub flushes: usize,
}

/// `kept` under `rules` at `sector`-byte sectors: the journal rule, ext4's
/// whole new pages, the page rule (at the profile's unit), then the size
/// rule of xfs and btrfs.
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
    let kept = if rules.auto_da_alloc {
        let (k, n) = flushes_keep_sizes(pending, kept);
        cuts.flushes = n;
        k
    } else {
        kept
    };
    let (mut kept, n) = page_rule(pending, kept, rules.unit(sector));
    cuts.pages = n;
    // ext4's whole new pages and the page rule each roll back sectors the
    // other may then need rolled back: repeated until neither changes
    // anything (each round only removes sectors, so this ends).
    if rules.sizes == SizeRule::Ext4 {
        loop {
            let (k, n) = new_pages_whole(pending, kept);
            if n == 0 {
                return (k, cuts);
            }
            cuts.sizes += n;
            let (k, n) = page_rule(pending, k, rules.unit(sector));
            cuts.pages += n;
            kept = k;
        }
    }
    if rules.sizes == SizeRule::AfterData {
        let (k, n) = size_after_data(pending, kept);
        cuts.sizes = n;
        return (k, cuts);
    }
    (kept, cuts)
}

/// `kept` with the size change of every write to a file before a kept
/// writeback point of that file under ext4's `auto_da_alloc`: a rename of
/// the file onto another file's name, or its [`Op::CloseFlush`] (a close
/// after a truncate to size 0). A write dropped is kept without its data
/// ([`Survival::MetaOnly`]), one kept without its size
/// ([`Survival::DataOnly`]) gets it back.
///
/// ext4 starts writeback of the file at both (`ext4_rename` before its
/// handle starts, `ext4_release_file`; each `ext4_alloc_da_blocks` →
/// `filemap_flush`), and the writeback allocates the delayed blocks and
/// moves the on-disk size (`mpage_map_and_submit_extent`) in that or an
/// earlier transaction: replayed in order, a later journaled change never
/// survives without the size. The data is not ordered before it: with
/// `dioread_nolock` the blocks are unwritten extents until their I/O
/// completes, so they may read as zeros.
pub fn flushes_keep_sizes(
    pending: &[PendingOp],
    kept: Vec<(usize, Survival)>,
) -> (Vec<(usize, Survival)>, usize) {
    // The last kept flush of each inode: a write is sized by a flush after
    // it exactly when it comes before its inode's last one (one lookup per
    // write, not a scan of the flushes).
    let mut last_flush: std::collections::HashMap<Ino, usize> = std::collections::HashMap::new();
    let flushed = kept
        .iter()
        .filter_map(|(i, _)| match pending.get(*i).map(|p| &p.op) {
            Some(Op::Names {
                changes,
                over: true,
                ..
            }) => changes
                .iter()
                .find_map(|c| c.target.as_ref().map(|(ino, _)| (*i, *ino))),
            Some(Op::CloseFlush { ino }) => Some((*i, *ino)),
            _ => None,
        });
    for (i, ino) in flushed {
        last_flush.insert(ino, i);
    }
    if last_flush.is_empty() {
        return (kept, 0);
    }
    let sized = |j: usize| match pending.get(j).map(|p| &p.op) {
        Some(Op::Write {
            ino,
            offset,
            data,
            size_before,
        }) if offset + data.len() as u64 > *size_before => {
            last_flush.get(ino).is_some_and(|i| j < *i)
        }
        _ => false,
    };
    let mut changed = 0;
    let mut out: Vec<(usize, Survival)> = kept
        .into_iter()
        .map(|(j, how)| match how {
            Survival::DataOnly { persisted } if sized(j) => {
                changed += 1;
                let how = if persisted.is_empty() {
                    Survival::MetaOnly
                } else {
                    Survival::Torn {
                        persisted,
                        garbage: None,
                    }
                };
                (j, how)
            }
            how => (j, how),
        })
        .collect();
    let have: std::collections::HashSet<usize> = out.iter().map(|(j, _)| *j).collect();
    for j in (0..pending.len()).filter(|j| !have.contains(j) && sized(*j)) {
        changed += 1;
        out.push((j, Survival::MetaOnly));
    }
    out.sort_by_key(|(j, _)| *j);
    (out, changed)
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
            if !pending
                .get(i)
                .is_some_and(|p| matches!(p.op, Op::Write { .. }))
            {
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

/// `kept` with the data of every write that ends past the page holding
/// the file's old end cut to the pages it covers whole within the write
/// (ext4's unwritten extents, converted to written only when a page's I/O
/// completed): a page of it kept in part is rolled back, with or without
/// the write's size (a size committed later, by a rename over another file
/// or a later extension, shows the blocks as they were converted).
pub fn new_pages_whole(
    pending: &[PendingOp],
    kept: Vec<(usize, Survival)>,
) -> (Vec<(usize, Survival)>, usize) {
    let mut changed = 0;
    let out = kept
        .into_iter()
        .filter_map(|(i, how)| {
            let Some(Op::Write {
                offset,
                data,
                size_before,
                ..
            }) = pending.get(i).map(|p| &p.op)
            else {
                return Some((i, how));
            };
            let end = offset + data.len() as u64;
            // The old last page's end: below it the blocks are mapped and
            // overwritten in place, at any sector.
            let from = size_before.next_multiple_of(PAGE);
            if end <= from {
                return Some((i, how));
            }
            let (persisted, garbage) = match &how {
                Survival::Torn { persisted, garbage } => (persisted, *garbage),
                Survival::DataOnly { persisted } => (persisted, None),
                _ => return Some((i, how)),
            };
            let whole = whole_pages(persisted, *offset, end, from);
            if whole == *persisted {
                return Some((i, how));
            }
            changed += 1;
            match how {
                Survival::DataOnly { .. } if whole.is_empty() => None,
                Survival::DataOnly { .. } => Some((i, Survival::DataOnly { persisted: whole })),
                _ if whole.is_empty() => Some((i, Survival::MetaOnly)),
                _ => Some((
                    i,
                    Survival::Torn {
                        persisted: whole,
                        garbage,
                    },
                )),
            }
        })
        .collect();
    (out, changed)
}

/// `persisted` below `from` as it is, and from there the parts that cover
/// whole pieces of `[start, end)` cut at page boundaries.
fn whole_pages(persisted: &[(u64, u64)], start: u64, end: u64, from: u64) -> Vec<(u64, u64)> {
    let mut out: Vec<(u64, u64)> = persisted
        .iter()
        .filter(|&&(s, _)| s < from)
        .map(|&(s, e)| (s, e.min(from)))
        .collect();
    let mut a = start.max(from);
    while a < end {
        let b = (a / PAGE + 1).saturating_mul(PAGE).min(end);
        if persisted.iter().any(|&(s, e)| s <= a && b <= e) {
            match out.last_mut() {
                Some(r) if r.1 == a => r.1 = b,
                _ => out.push((a, b)),
            }
        }
        a = b;
    }
    out
}

#[cfg(test)]
#[path = "profile_tests.rs"]
mod tests;
