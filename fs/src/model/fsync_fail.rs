//! An fsync or fdatasync that fails with EIO after writing back only some
//! of the file's dirty pages, and what the filesystem does next.
//!
//! The failed call writes back a seeded choice of the file's dirty pages
//! ([`written_pages`]: each with probability 1/2, at least one failing);
//! those are durable. The file's size changes are committed with them (see
//! [`Model::fsync_failed_applied`]), names are not, attributes are not. The
//! failed pages then follow the [`FailRules`] of a semantics
//! ([`FsyncFailure`]), whose values are the one table [`RULES`]: they
//! stay pending (`strict`), or are marked clean — live, not pending, not
//! durable: no later fsync writes them and the next cut loses them, unless
//! a write dirties the page again, which makes the whole page pending
//! (its earlier failed bytes too: the kernel writes whole pages back).
//!
//! Evidence: Rebello, Patel, Alagappan, Arpaci-Dusseau, Arpaci-Dusseau,
//! "Can Applications Recover from fsync Failures?", USENIX ATC 2020 (its
//! file-system findings: "pages are always marked clean" on ext4, XFS and
//! Btrfs, "page content and failure reporting is varied"), and the kernel
//! functions named in [`RULES`]. The rules are documented in
//! `docs/durability.md`, "Failed fsync".

use super::op::{Effect, Op, PAGE};
use super::overlay::Fill;
use super::rng::SplitMix64;
use super::types::*;
use super::{Model, Node};
use std::fmt;
use std::sync::atomic::Ordering;

/// What a filesystem does after an fsync failed: the semantics a fault
/// chooses. Each has its [`FailRules`] in [`RULES`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FsyncFailure {
    /// An ideal filesystem: the failed pages stay dirty and pending, and a
    /// retry makes them durable (what applications that retry assume).
    Strict,
    Ext4,
    Xfs,
    Btrfs,
}

/// The knobs of a failed fsync, per semantics ([`RULES`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FailRules {
    /// Pages that failed are marked clean: they stay in the live view
    /// (reads see them, per `read_new`) but are no longer pending, so a
    /// later fsync does not persist them and the next cut loses them —
    /// unless a later write dirties that page again, in which case the
    /// whole page (the earlier failed bytes in it too, as the kernel writes
    /// back whole pages) becomes pending again. `false`: failed pages stay
    /// pending and dirty; a retry persists them.
    pub marks_clean: bool,
    /// After the failure, reads of the failed pages return the new (never
    /// durable) bytes (the page cache keeps them), or the durable old bytes
    /// (the filesystem drops them: zeros past the durable size). `false`
    /// leaves nothing of the failed bytes to retry, so `marks_clean` then
    /// changes nothing.
    pub read_new: bool,
    /// For a failed append (the file's last page failed): the durable size
    /// becomes the live size (the metadata was committed; the failed pages
    /// read back as the old durable bytes, zeros past the old size), or
    /// stays where the written pages leave it (at least the old durable
    /// size, at most the live size).
    pub size_commits: bool,
    /// One failed page fails every dirty page of the call: none is
    /// durable (btrfs writes a copy-on-write extent whose item is never
    /// inserted when any of its I/O fails).
    pub whole: bool,
    /// After a failed append whose pages were marked clean, how a later
    /// successful flush moves the durable size.
    pub later_size: LaterSize,
    /// The pages of a failed append stay unwritten extents: a later write
    /// to them reaches the disk but reads back as zeros, though its fsync
    /// returns 0 (ext4).
    pub appended_unwritten: bool,
}

/// How a successful flush after a failed append moves the durable size
/// while the append's pages are still clean past it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LaterSize {
    /// To the live size, as any flush (ext4, whose failed append already
    /// committed the size; strict, whose pages are pending).
    Live,
    /// To the end of the last page the flush wrote, never past the live
    /// size (xfs: `xfs_setfilesize` at the end of a successful I/O).
    WrittenEnd,
    /// To the live size if the flush wrote any data, else not at all
    /// (btrfs: the new ordered extent's completion moves `disk_i_size`).
    IfData,
}

impl FailRules {
    /// Which of the `dirty` pages (indices) a failed fsync seeded with
    /// `seed` writes back under these rules.
    pub fn written(self, dirty: &[u64], seed: u64) -> Vec<bool> {
        if self.whole {
            vec![false; dirty.len()]
        } else {
            written_pages(dirty, seed)
        }
    }
}

/// Every semantics' rules, in [`FsyncFailure::ALL`] order: the one table
/// to update when measurements come in. Evidence, row by row:
///
/// * `strict`: no Linux filesystem; the behaviour applications that retry
///   fsync assumed before PostgreSQL's "fsyncgate" (2018).
/// * `ext4` (data=ordered): `marks_clean` — Rebello et al. (all three
///   filesystems mark failed pages clean); writeback clears the dirty bit
///   before the I/O (`folio_clear_dirty_for_io` in `write_cache_pages`)
///   and the end of a failed I/O only records the error
///   (`ext4_finish_bio` → `mapping_set_error`), never redirties.
///   `read_new` — the folio stays uptodate, so reads hit the cache (Rebello
///   et al.: page content is the new data on ext4). `size_commits` —
///   `mpage_map_and_submit_extent` moves `i_disksize` when it submits the
///   I/O, in a journal handle, and jbd2 commits a transaction whose data
///   failed (`jbd2_journal_commit_transaction`: "Detected IO errors while
///   flushing file data", aborting only with `data_err=abort`). To be
///   calibrated: `ext4_sync_file` returns before `ext4_fsync_journal` when
///   writeback failed, so that size reaches the disk at the next commit
///   (the periodic one or the next fsync); the model commits it at once.
/// * `xfs`: `marks_clean`, `read_new` — Rebello et al., and
///   `iomap_finish_folio_write` → `mapping_set_error` leaves the folio
///   uptodate and clean. `size_commits` false — `xfs_end_ioend` skips
///   `xfs_setfilesize` for an I/O that failed, so the on-disk size covers
///   only what was written (measured: row c).
/// * `btrfs`: `marks_clean` — Rebello et al. `read_new` — measured on
///   Linux 6.18 (`docs/fsync-failures-evidence.md`, row b): the failed
///   bytes stay readable until the page is evicted (older kernels cleared
///   the folio's uptodate bit in `end_extent_writepage`; 6.18 does not).
///   `size_commits` false — measured (row c): after a failed append the
///   remounted file has its old size; the ordered extent of a failed write
///   never moves `disk_i_size` (`btrfs_finish_one_ordered` on
///   `BTRFS_ORDERED_IOERR`). `whole` — measured (row d): with one page of
///   four failing, none of the four is durable.
///
/// `later_size`, `appended_unwritten` — `durafs calibrate
/// --fsync-failures` (docs/fsync-failures-evidence.md, "Checked by durafs
/// calibrate"): after a failed append, a later fsync moves the remounted
/// size only to the end of a page it wrote (xfs), or to the live size only
/// if it wrote data (btrfs); on ext4 a rewrite of a failed appended page
/// returns 0 but reads back as zeros ("failed to convert unwritten extents
/// to written extents -- potential data loss!").
///
/// ext4 and xfs, measured too (rows a–d): failed pages clean and never
/// retried, readable until evicted; after a failed append ext4 keeps the
/// new size (zeros), xfs the old; with one page of four failing, the other
/// three are durable.
pub const RULES: [FailRules; 4] = [
    // strict
    FailRules {
        marks_clean: false,
        read_new: true,
        size_commits: false,
        whole: false,
        later_size: LaterSize::Live,
        appended_unwritten: false,
    },
    // ext4
    FailRules {
        marks_clean: true,
        read_new: true,
        size_commits: true,
        whole: false,
        later_size: LaterSize::Live,
        appended_unwritten: true,
    },
    // xfs
    FailRules {
        marks_clean: true,
        read_new: true,
        size_commits: false,
        whole: false,
        later_size: LaterSize::WrittenEnd,
        appended_unwritten: false,
    },
    // btrfs
    FailRules {
        marks_clean: true,
        read_new: true,
        size_commits: false,
        whole: true,
        later_size: LaterSize::IfData,
        appended_unwritten: false,
    },
];

impl FsyncFailure {
    pub const ALL: [FsyncFailure; 4] = [
        FsyncFailure::Strict,
        FsyncFailure::Ext4,
        FsyncFailure::Xfs,
        FsyncFailure::Btrfs,
    ];

    /// The name a fault and a trace use: `strict`, `ext4`, `xfs`, `btrfs`.
    pub const fn name(self) -> &'static str {
        match self {
            FsyncFailure::Strict => "strict",
            FsyncFailure::Ext4 => "ext4",
            FsyncFailure::Xfs => "xfs",
            FsyncFailure::Btrfs => "btrfs",
        }
    }

    /// This semantics' row of [`RULES`].
    pub const fn rules(self) -> FailRules {
        RULES[self as usize]
    }
}

impl fmt::Display for FsyncFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for FsyncFailure {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        FsyncFailure::ALL
            .into_iter()
            .find(|x| x.name() == s)
            .ok_or_else(|| {
                let names: Vec<&str> = FsyncFailure::ALL.iter().map(|x| x.name()).collect();
                format!(
                    "unknown fsync failure semantics {s:?} (expected one of: {})",
                    names.join(", ")
                )
            })
    }
}

/// What a failed fsync did: byte ranges `[start, end)` (whole pages, cut at
/// the live size, adjacent ones merged) made durable, and that failed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FailedFsync {
    pub written: Vec<(u64, u64)>,
    pub failed: Vec<(u64, u64)>,
}

/// For each of the dirty pages `dirty` (ascending), whether the failed
/// fsync seeded with `seed` writes it back: each with probability 1/2,
/// and, when all were drawn written, one of them (seeded) fails.
pub fn written_pages(dirty: &[u64], seed: u64) -> Vec<bool> {
    let mut rng = SplitMix64::new(seed ^ 0xF5F1_FA11);
    let mut out: Vec<bool> = dirty.iter().map(|_| rng.next_u64() & 1 == 1).collect();
    if !out.is_empty() && out.iter().all(|w| *w) {
        let i = rng.below(out.len() as u64) as usize;
        out[i] = false;
    }
    out
}

impl Model {
    /// fsync (`datasync` false) or fdatasync of `ino` that fails: returns
    /// the effects the store must apply (the written pages) and what
    /// happened; the caller answers EIO. See
    /// [`Model::fsync_failed_applied`].
    pub fn fsync_failed(
        &self,
        ino: Ino,
        datasync: bool,
        sem: FsyncFailure,
        seed: u64,
    ) -> FsResult<(Vec<Effect>, FailedFsync)> {
        let mut out = Vec::new();
        match self.fsync_failed_applied(ino, datasync, sem, seed, |e| {
            out = e.to_vec();
            Ok::<(), std::convert::Infallible>(())
        })? {
            Ok(r) => Ok((out, r)),
        }
    }

    /// fsync (`datasync` false) or fdatasync of `ino` that fails. Of the
    /// file's dirty pages ([`PAGE`] bytes: those holding unsynced bytes
    /// not marked clean), the ones [`written_pages`] picks with `seed` are
    /// written back: their effects go to `apply` while the inode is
    /// locked, together with the file's size changes (truncates,
    /// allocations, extensions: committed as a successful fsync would, so
    /// that no pending operation lies under the written pages; only a
    /// failed append's size follows [`FailRules::size_commits`]). The rest
    /// fail per `sem.rules()`. Neither call commits attributes or extended
    /// attributes (the failed call never reached its journal commit), so
    /// `datasync` changes nothing. Names are not committed either, under
    /// every persistence model: the journal fsync of ext4 and xfs and
    /// btrfs's log of the file's names are skipped. A file with no dirty
    /// page, or an inode that is not a file, is left as it was.
    ///
    /// When `apply` fails the inode is put back as it was, as by
    /// [`Model::fsync_applied`].
    pub fn fsync_failed_applied<E>(
        &self,
        ino: Ino,
        datasync: bool,
        sem: FsyncFailure,
        seed: u64,
        apply: impl FnOnce(&[Effect]) -> Result<(), E>,
    ) -> FsResult<Result<FailedFsync, E>> {
        let _ = datasync;
        let node = self.node(ino)?;
        let mut n = node.lock();
        self.usable(&n)?;
        if n.kind != Kind::File {
            return Ok(apply(&[]).map(|()| FailedFsync::default()));
        }
        let saved = n.clone();
        let before = pending_bytes(&n);
        let mut out = Vec::new();
        let done = self.fail_node(ino, &mut n, sem.rules(), seed, &mut out);
        match apply(&out) {
            Ok(()) => Ok(Ok(done)),
            Err(e) => {
                let after = pending_bytes(&n);
                *n = saved;
                if before >= after {
                    self.dirty_bytes
                        .fetch_add(before - after, Ordering::Relaxed);
                } else {
                    self.dirty_bytes
                        .fetch_sub(after - before, Ordering::Relaxed);
                }
                Ok(Err(e))
            }
        }
    }

    /// The failed fsync of file node `n`: appends the effects to `out`.
    fn fail_node(
        &self,
        ino: Ino,
        n: &mut Node,
        rules: FailRules,
        seed: u64,
        out: &mut Vec<Effect>,
    ) -> FailedFsync {
        let dirty = dirty_pages(n);
        if dirty.is_empty() {
            return FailedFsync::default();
        }
        let old_durable = n.durable().map_or(0, |d| d.size);
        let picks = rules.written(&dirty, seed);
        let (mut written, mut failed) = (Vec::new(), Vec::new());
        for (p, w) in dirty.iter().zip(picks) {
            if w { &mut written } else { &mut failed }.push(*p);
        }
        // The failed pages' bytes leave the overlay for the flush below,
        // which then writes only the written pages.
        let mut held = Vec::new();
        for p in &failed {
            held.extend(n.overlay.extents_in(p * PAGE, (p + 1) * PAGE));
            n.overlay.remove(p * PAGE, (p + 1) * PAGE);
        }
        let live = n.size;
        let last_failed = live > 0 && failed.binary_search(&((live - 1) / PAGE)).is_ok();
        let size = if rules.size_commits || !last_failed {
            live
        } else {
            let written_end = n
                .overlay
                .dirty_extents()
                .last()
                .map_or(0, |(off, len, _)| off + len);
            n.base_end.max(written_end).min(live)
        };
        // Committed as fsync's flush does, at `size`: every data operation
        // leaves the pending list (attributes stay).
        n.size = size;
        self.flush_node(ino, n, false, out);
        n.size = live;
        if rules.read_new {
            for (off, len, fill) in held {
                n.overlay.put(off, len, fill);
            }
            if rules.marks_clean {
                n.overlay.mark_clean(&failed);
                if last_failed && !rules.size_commits {
                    n.overlay.set_cap(rules.later_size);
                }
                if rules.appended_unwritten {
                    let first_new = old_durable.div_ceil(PAGE);
                    let appended: Vec<u64> =
                        failed.iter().copied().filter(|p| *p >= first_new).collect();
                    n.overlay.stick(&appended);
                }
            } else {
                self.pend_pages(ino, n, &failed, size);
            }
        }
        FailedFsync {
            written: page_ranges(&written, live),
            failed: page_ranges(&failed, live),
        }
    }

    /// The byte ranges of `ino` a failed fsync marked clean (whole pages
    /// cut at the live size): live bytes no durability point writes, lost
    /// by the next cut unless a write dirties their page again. They are
    /// in [`Model::report`]'s unsynced ranges but in no pending operation,
    /// so an empty [`Model::pending_ops`] does not mean live equals durable.
    pub fn clean_ranges(&self, ino: Ino) -> FsResult<Vec<(u64, u64)>> {
        let node = self.node(ino)?;
        let n = node.lock();
        self.usable(&n)?;
        let pages: Vec<u64> = n.overlay.clean_pages().iter().copied().collect();
        Ok(page_ranges(&pages, n.size))
    }

    /// A write, punch or zeroing of `[from, to)` is about to change the
    /// pages it touches: those a failed fsync marked clean become dirty
    /// again, whole (their earlier failed bytes pending again, before the
    /// call's own operations).
    pub(super) fn dirty_again(&self, ino: Ino, n: &mut Node, from: u64, to: u64) {
        let pages = n.overlay.take_clean(from, to);
        if !pages.is_empty() {
            let durable = n.durable().map_or(0, |d| d.size);
            self.pend_pages(ino, n, &pages, durable);
        }
    }

    /// Records the overlay bytes on `pages` as pending operations (writes,
    /// punched holes for zeros), numbered now, and, when the live size
    /// exceeds `durable` (the durable size), the growth to it.
    fn pend_pages(&self, ino: Ino, n: &mut Node, pages: &[u64], durable: u64) {
        let mut ops = Vec::new();
        for p in pages {
            for (offset, len, fill) in n.overlay.extents_in(p * PAGE, (p + 1) * PAGE) {
                ops.push(match fill {
                    Fill::Data(data) => Op::Write {
                        ino,
                        offset,
                        data,
                        size_before: durable,
                    },
                    Fill::Zero => Op::Punch { ino, offset, len },
                });
            }
        }
        let reach = ops
            .iter()
            .filter_map(|op| op.data_range().map(|r| r.1))
            .max()
            .unwrap_or(0)
            .max(durable);
        if n.size > reach {
            ops.push(Op::Allocate {
                ino,
                offset: reach,
                len: n.size - reach,
            });
        }
        let added: u64 = ops.iter().map(Op::data_len).sum();
        let first = self.next_seqs(ops.len() as u64);
        for (seq, op) in (first..).zip(ops) {
            n.pending.insert(seq, op);
        }
        self.dirty_bytes.fetch_add(added, Ordering::Relaxed);
    }
}

/// Bytes the node's pending operations carry (what the dirty count holds).
fn pending_bytes(n: &Node) -> u64 {
    n.pending.values().map(Op::data_len).sum()
}

/// The pages holding overlay bytes that are not marked clean, below the
/// live size, ascending.
fn dirty_pages(n: &Node) -> Vec<u64> {
    let mut out: Vec<u64> = Vec::new();
    for (off, len, _) in n.overlay.dirty_extents() {
        let end = (off + len).min(n.size);
        if off >= end {
            continue;
        }
        for p in off / PAGE..end.div_ceil(PAGE) {
            if out.last() != Some(&p) {
                out.push(p);
            }
        }
    }
    out
}

/// `pages` (ascending) as byte ranges cut at `size`, adjacent ones merged.
fn page_ranges(pages: &[u64], size: u64) -> Vec<(u64, u64)> {
    let mut out: Vec<(u64, u64)> = Vec::new();
    for p in pages {
        let (s, e) = (p * PAGE, ((p + 1) * PAGE).min(size));
        match out.last_mut() {
            Some(last) if last.1 == s => last.1 = e,
            _ => out.push((s, e)),
        }
    }
    out
}

#[cfg(test)]
#[path = "fsync_fail_tests.rs"]
mod tests;

/// The durable size a flush of `n` leaves (its durable size `durable`,
/// having written data up to `written_end`): the live size, unless a failed
/// append's pages are still clean past `durable` ([`LaterSize`]).
pub(super) fn flushed_size(n: &Node, durable: u64, written_end: Option<u64>) -> u64 {
    let past = n
        .overlay
        .clean_pages()
        .iter()
        .any(|p| (p + 1) * PAGE > durable);
    match (n.overlay.cap(), past) {
        (Some(LaterSize::WrittenEnd), true) => {
            let end = written_end.map_or(0, |e| e.div_ceil(PAGE) * PAGE);
            durable.max(end).min(n.size)
        }
        (Some(LaterSize::IfData), true) if written_end.is_none() => durable.min(n.size),
        _ => n.size,
    }
}
