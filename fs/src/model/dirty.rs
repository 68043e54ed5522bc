//! The dirty index: the inodes that hold pending data, ordered by their
//! oldest data operation, so that a writeback (the kernel's, under memory
//! pressure; `--dirty-limit`; a trace's replay) finds the inode dirtied
//! longest ago in O(log n) instead of visiting every inode.
//!
//! Invariants, each kept under the inode's lock:
//!
//! * an inode with a pending data operation has an index entry
//!   `(seq, ino)` with `seq` at most its oldest data operation's number,
//!   and records that `seq` as its [`Node::index_mark`];
//! * `index_mark == 0` means the index holds no entry for the inode.
//!
//! An entry can be stale (the inode was flushed, or its oldest data
//! operation left): a writeback checks the entry it takes against the inode
//! and puts back the right one. A data operation on an inode the index does
//! not hold takes the index lock *before* its sequence number (see
//! [`Model::index_guard`]), so a writeback, which reads the newest number
//! under that lock, never misses an operation numbered before it began.

use super::sync::{Mutex, MutexGuard};
use super::{Model, Node};
use crate::model::Ino;
use std::collections::BTreeSet;

/// `(sequence, inode)` entries, ordered.
#[derive(Debug)]
pub(super) struct DirtyIndex(Mutex<BTreeSet<(u64, Ino)>>);

impl Default for DirtyIndex {
    fn default() -> DirtyIndex {
        DirtyIndex(Mutex::new(BTreeSet::new()))
    }
}

/// The index, locked.
pub(super) type IndexGuard<'a> = MutexGuard<'a, BTreeSet<(u64, Ino)>>;

/// The number of the oldest pending data operation of `n`.
pub(super) fn first_data_seq(n: &Node) -> Option<u64> {
    n.pending
        .iter()
        .find(|(_, op)| op.is_data())
        .map(|(s, _)| *s)
}

impl Model {
    /// To be taken, with `n` locked, before numbering a data operation on
    /// it and held until [`Model::index_after`]: the index lock when the
    /// index does not hold the inode, nothing otherwise (the common case:
    /// writes to an inode already dirty take no global lock).
    pub(super) fn index_guard(&self, n: &Node) -> Option<IndexGuard<'_>> {
        (n.index_mark == 0).then(|| self.dirty_index.0.lock())
    }

    /// Records inode `ino` in the index if [`Model::index_guard`] found it
    /// missing and it now holds pending data.
    pub(super) fn index_after(&self, ino: Ino, n: &mut Node, guard: Option<IndexGuard<'_>>) {
        let Some(mut ix) = guard else {
            return;
        };
        if let Some(first) = first_data_seq(n) {
            ix.insert((first, ino));
            n.index_mark = first;
        }
    }

    /// Makes the index's entry for inode `ino` (locked as `n`) exact: at
    /// its oldest data operation, or none when it holds no pending data.
    pub(super) fn reindex(&self, ino: Ino, n: &mut Node) {
        let want = first_data_seq(n).unwrap_or(0);
        if want == n.index_mark {
            return;
        }
        let mut ix = self.dirty_index.0.lock();
        if n.index_mark != 0 {
            ix.remove(&(n.index_mark, ino));
        }
        if want != 0 {
            ix.insert((want, ino));
        }
        n.index_mark = want;
    }

    /// Takes the index's oldest entry numbered below the operations
    /// recorded since this call began; `None` when there is none.
    pub(super) fn take_oldest_dirty(&self, start: &mut Option<u64>) -> Option<(u64, Ino)> {
        let mut ix = self.dirty_index.0.lock();
        // Read under the lock: an operation numbered before this is in the
        // index already (or its inode's entry is older).
        let start = *start.get_or_insert_with(|| self.seq_watermark());
        let first = ix.first().copied().filter(|(s, _)| *s < start)?;
        ix.remove(&first);
        Some(first)
    }

    /// Entries in the index (tests).
    #[cfg(test)]
    pub(super) fn dirty_index_len(&self) -> usize {
        self.dirty_index.0.lock().len()
    }
}

#[cfg(test)]
mod tests {
    use crate::model::*;
    use bytes::Bytes;

    fn files(m: &Model, n: usize) -> Vec<Ino> {
        (0..n)
            .map(|i| {
                m.create(
                    ROOT,
                    format!("f{i}").as_bytes(),
                    Kind::File,
                    Attrs::default(),
                    None,
                )
                .expect("create")
                .ino
            })
            .collect()
    }

    fn write(m: &Model, ino: Ino, offset: u64) {
        let data = Bytes::from_static(b"data");
        m.write(ino, offset, data, Timestamp::default())
            .expect("write");
    }

    /// Writebacks take the inodes in the order their oldest pending data
    /// was written, whatever else happened to them since, as the scan of
    /// every inode did (issue 21: that scan made each writeback O(files)).
    #[test]
    fn writebacks_take_inodes_oldest_data_first() {
        let m = Model::new(Config::default(), Attrs::default());
        let f = files(&m, 6);
        // Oldest data: f[3], f[0], f[5], f[1]; f[2] written then fsynced;
        // f[4] never written.
        for &i in &[3, 0, 5, 2, 1] {
            write(&m, f[i], 0);
        }
        write(&m, f[3], 4); // a later write does not make f[3] younger
        m.fsync(f[2], true).expect("fdatasync");
        m.setattr(
            f[4],
            SetAttrs {
                mode: Some(0o600),
                ..SetAttrs::default()
            },
            Timestamp::default(),
        )
        .expect("chmod: not data");
        assert_eq!(m.dirty_index_len(), 4);
        let mut order = Vec::new();
        while let Some((ino, _)) = m.writeback_oldest().expect("writeback") {
            order.push(ino);
        }
        assert_eq!(order, vec![f[3], f[0], f[5], f[1]]);
        assert_eq!(m.dirty_index_len(), 0);
    }

    /// An inode flushed, then written again, is indexed at its new oldest
    /// write: it comes after one written in between.
    #[test]
    fn an_inode_written_again_after_an_fsync_is_as_young_as_that_write() {
        let m = Model::new(Config::default(), Attrs::default());
        let f = files(&m, 2);
        write(&m, f[0], 0);
        m.fsync(f[0], false).expect("fsync");
        write(&m, f[1], 0);
        write(&m, f[0], 0);
        let first = m.writeback_oldest().expect("writeback").map(|(i, _)| i);
        assert_eq!(first, Some(f[1]));
        let second = m.writeback_oldest().expect("writeback").map(|(i, _)| i);
        assert_eq!(second, Some(f[0]));
        assert_eq!(
            m.writeback_oldest().expect("writeback").map(|(i, _)| i),
            None
        );
    }

    /// A failed writeback leaves the inode dirty and indexed.
    #[test]
    fn a_failed_writeback_keeps_the_inode_in_the_index() {
        let m = Model::new(Config::default(), Attrs::default());
        let f = files(&m, 1);
        write(&m, f[0], 0);
        let failed = m
            .writeback_oldest_applied(|_| Err::<(), &str>("disk full"))
            .expect("writeback");
        assert_eq!(failed, Some((f[0], Err("disk full"))));
        assert_eq!(m.dirty_index_len(), 1);
        let again = m.writeback_oldest().expect("writeback").map(|(i, _)| i);
        assert_eq!(again, Some(f[0]));
    }

    /// The index holds one entry per dirty inode, not one per write, and
    /// none once everything is durable.
    #[test]
    fn the_index_holds_one_entry_per_dirty_inode() {
        let m = Model::new(Config::default(), Attrs::default());
        let f = files(&m, 50);
        for (k, &ino) in f.iter().enumerate() {
            for j in 0..4 {
                write(&m, ino, (k as u64 + j) * 4);
            }
        }
        assert_eq!(m.dirty_index_len(), 50);
        for &ino in &f {
            m.fsync(ino, false).expect("fsync");
        }
        assert_eq!(m.dirty_index_len(), 0);
    }
}
