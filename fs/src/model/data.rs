//! File data, attributes and fsync: the read/write path. Every call here
//! takes only the inode's own lock, except fsync under the journal model,
//! which also commits the namespace.

use super::dirty;
use super::op::{Effect, Op, PAGE};
use super::overlay::{Fill, Segment};
use super::types::*;
use super::{DurableMeta, Model, Node};
use bytes::Bytes;
use std::sync::atomic::Ordering;

impl Model {
    /// Writes `data` at `offset` (read-your-writes; nothing durable).
    pub fn write(&self, ino: Ino, offset: u64, data: Bytes, now: Timestamp) -> FsResult<u32> {
        let node = self.node(ino)?;
        let mut n = node.lock();
        self.usable(&n)?;
        self.write_locked(ino, &mut n, offset, data, now)
    }

    /// Appends `data` at the live size, atomically (O_APPEND). Returns the
    /// offset written at.
    pub fn append(&self, ino: Ino, data: Bytes, now: Timestamp) -> FsResult<u64> {
        let node = self.node(ino)?;
        let mut n = node.lock();
        self.usable(&n)?;
        let at = n.size;
        self.write_locked(ino, &mut n, at, data, now)?;
        Ok(at)
    }

    fn write_locked(
        &self,
        ino: Ino,
        n: &mut Node,
        offset: u64,
        data: Bytes,
        now: Timestamp,
    ) -> FsResult<u32> {
        // Taken before the writes' numbers; every early return below comes
        // before any operation is recorded.
        let guard = self.index_guard(n);
        check_file(n)?;
        let len = data.len() as u64;
        let end = offset.checked_add(len).ok_or(FsError::TooBig)?;
        if end > self.cfg.max_file_size {
            return Err(FsError::TooBig);
        }
        n.attrs.mtime = now;
        n.attrs.ctime = now;
        if len == 0 {
            return Ok(0);
        }
        self.dirty_again(ino, n, offset, end);
        n.overlay.write(offset, data.clone());
        let size_before = n.size;
        n.size = n.size.max(end);
        for (at, part, before) in split_at_old_last_page(offset, data, size_before) {
            let op = Op::Write {
                ino,
                offset: at,
                data: part,
                size_before: before,
            };
            n.pending.insert(self.next_seq(), op);
        }
        self.index_after(ino, n, guard);
        self.dirty_bytes.fetch_add(len, Ordering::Relaxed);
        u32::try_from(len).map_err(|_| FsError::Invalid)
    }

    /// Plans a read of up to `len` bytes at `offset`: the caller fills
    /// [`Segment::Base`] pieces from the durable store.
    pub fn read(&self, ino: Ino, offset: u64, len: u64) -> FsResult<Vec<Segment>> {
        let node = self.node(ino)?;
        let n = node.lock();
        self.usable(&n)?;
        check_file(&n)?;
        if offset >= n.size {
            return Ok(Vec::new());
        }
        let end = offset.saturating_add(len).min(n.size);
        Ok(n.overlay.plan(offset, end, n.base_end))
    }

    /// Changes attributes and, with `size`, truncates or extends the file.
    pub fn setattr(&self, ino: Ino, set: SetAttrs, now: Timestamp) -> FsResult<Stat> {
        let node = self.node(ino)?;
        let mut n = node.lock();
        self.usable(&n)?;
        // Taken before the truncate's number; every error below comes
        // before any operation is recorded.
        let guard = self.index_guard(&n);
        if let Some(size) = set.size {
            if n.kind == Kind::Dir {
                return Err(FsError::IsDir);
            }
            check_file(&n)?;
            if size > self.cfg.max_file_size {
                return Err(FsError::TooBig);
            }
            truncate_live(&mut n, size);
            n.truncated_to_zero |= size == 0;
            n.attrs.mtime = now;
            n.attrs.ctime = now;
        }
        let before = n.attrs;
        if let Some(m) = set.mode {
            n.attrs.mode = m & 0o7777;
        }
        if let Some(u) = set.uid {
            n.attrs.uid = u;
        }
        if let Some(g) = set.gid {
            n.attrs.gid = g;
        }
        if let Some(t) = set.atime {
            n.attrs.atime = t;
        }
        if let Some(t) = set.mtime {
            n.attrs.mtime = t;
        }
        let changed =
            n.attrs != before || set.mode.is_some() || set.uid.is_some() || set.gid.is_some();
        if changed {
            n.attrs.ctime = now;
        }
        // One call's operations take consecutive sequence numbers.
        let mut seq = self.next_seqs(u64::from(set.size.is_some()) + u64::from(changed));
        if let Some(size) = set.size {
            n.pending.insert(seq, Op::Truncate { ino, size });
            seq += 1;
        }
        if changed {
            let attrs = n.attrs;
            n.pending.insert(seq, Op::SetAttrs { ino, attrs });
        }
        self.index_after(ino, &mut n, guard);
        Ok(n.stat(ino))
    }

    /// The last close of an open file description of `ino` (FUSE
    /// `release`). Under ext4's `auto_da_alloc` the first one after a
    /// truncate to size 0 starts the file's writeback (`ext4_release_file`
    /// → `ext4_alloc_da_blocks` → `filemap_flush`), which allocates the
    /// delayed blocks of its pending writes and journals their size:
    /// recorded as an [`Op::CloseFlush`] when writes are pending
    /// ([`super::profile::flushes_keep_sizes`]). True when it was that
    /// first close (under any model: a trace replays under others). A
    /// close never fails: on an inode that is gone, or after a cut, it does
    /// nothing.
    pub fn release(&self, ino: Ino) -> bool {
        let Ok(node) = self.node(ino) else {
            return false;
        };
        let mut n = node.lock();
        if self.usable(&n).is_err() || !std::mem::take(&mut n.truncated_to_zero) {
            return false;
        }
        let writes = n.pending.values().any(|op| matches!(op, Op::Write { .. }));
        if writes && self.cfg.persistence.rules().auto_da_alloc {
            // Pending writes: the index holds the inode already.
            n.pending.insert(self.next_seq(), Op::CloseFlush { ino });
        }
        true
    }

    /// `fallocate(2)` on a regular file.
    pub fn fallocate(
        &self,
        ino: Ino,
        offset: u64,
        len: u64,
        mode: Fallocate,
        now: Timestamp,
    ) -> FsResult<()> {
        let node = self.node(ino)?;
        let mut n = node.lock();
        self.usable(&n)?;
        check_file(&n)?;
        if len == 0 {
            return Err(FsError::Invalid);
        }
        let end = offset.checked_add(len).ok_or(FsError::TooBig)?;
        // Every error below comes before any operation is recorded.
        let guard = self.index_guard(&n);
        match mode {
            Fallocate::KeepSize => {}
            Fallocate::Default => {
                if end > self.cfg.max_file_size {
                    return Err(FsError::TooBig);
                }
                if end > n.size {
                    n.size = end;
                    n.attrs.ctime = now;
                    n.pending
                        .insert(self.next_seq(), Op::Allocate { ino, offset, len });
                }
            }
            Fallocate::ZeroRange | Fallocate::ZeroRangeKeepSize => {
                let grow = mode == Fallocate::ZeroRange && end > n.size;
                if grow && end > self.cfg.max_file_size {
                    return Err(FsError::TooBig);
                }
                zero_range(self, ino, &mut n, offset, end, grow, now);
            }
            Fallocate::PunchHole => {
                let end = end.min(n.size);
                if offset < end {
                    self.dirty_again(ino, &mut n, offset, end);
                    n.overlay.zero(offset, end - offset);
                    n.attrs.mtime = now;
                    n.attrs.ctime = now;
                    n.pending.insert(
                        self.next_seq(),
                        Op::Punch {
                            ino,
                            offset,
                            len: end - offset,
                        },
                    );
                }
            }
        }
        self.index_after(ino, &mut n, guard);
        Ok(())
    }

    /// fsync (`datasync: false`) or fdatasync (`true`) of `ino`: returns the
    /// effects the store must apply before the call may return.
    ///
    /// fsync makes the inode's data, size and attributes durable; fdatasync
    /// its data and size. Neither makes its *name* durable, except under
    /// [`Persistence::Ext4`], where both also commit every earlier
    /// namespace operation.
    pub fn fsync(&self, ino: Ino, datasync: bool) -> FsResult<Vec<Effect>> {
        let mut out = Vec::new();
        match self.fsync_applied(ino, datasync, |e| {
            out = e.to_vec();
            Ok::<(), std::convert::Infallible>(())
        })? {
            Ok(()) => Ok(out),
        }
    }

    /// As [`Model::fsync`], with `apply` making the effects durable while
    /// the inode is still locked. When `apply` fails the inode is put back
    /// as it was (its bytes stay live and pending, the dirty count is
    /// unchanged) and the error is returned: an fsync that failed made
    /// nothing of the file durable. Where the model's fsync commits names
    /// (`ext4` and `xfs`: every earlier one; `btrfs`: those linking the
    /// file), that commit comes first and is undone as well.
    pub fn fsync_applied<E>(
        &self,
        ino: Ino,
        datasync: bool,
        apply: impl FnOnce(&[Effect]) -> Result<(), E>,
    ) -> FsResult<Result<(), E>> {
        let mut out = Vec::new();
        let own = self.cfg.persistence.fsync_commits_own_names();
        if self.cfg.persistence.fsync_commits_names() || own {
            let mut ns = self.ns.lock();
            self.check_cut()?;
            let node = self.node(ino)?;
            let upto = {
                let n = node.lock();
                self.usable(&n)?;
                self.journal_upto(&n, datasync)
            };
            let undo = if own {
                let picked = self.own_names(&ns, ino);
                self.commit_names(&mut ns, |seq, _| picked.contains(&seq), &mut out)
            } else {
                self.commit_names(&mut ns, |seq, _| seq < upto, &mut out)
            };
            let mut n = node.lock();
            if let Err(e) = self.usable(&n) {
                drop(n);
                self.undo_names(&mut ns, undo);
                return Err(e);
            }
            let res = self.flush_applied(ino, &mut n, !datasync, out, apply);
            drop(n);
            if res.is_err() {
                // IMPORTANT: after the node's lock is released (the undo
                // may lock the same inode).
                self.undo_names(&mut ns, undo);
            }
            Ok(res)
        } else {
            let node = self.node(ino)?;
            let mut n = node.lock();
            self.usable(&n)?;
            Ok(self.flush_applied(ino, &mut n, !datasync, out, apply))
        }
    }

    /// btrfs's fsync of `ino` logs the inode with its names: the pending
    /// namespace operations that link it, and, again for each picked one,
    /// the other half of its rename, the earlier operations on the same
    /// names (a name's changes commit in order), and the operations linking
    /// its directory if that is not durable yet (a new parent is logged
    /// too, `btrfs_log_inode_parent`). By sequence number.
    fn own_names(&self, ns: &super::Namespace, ino: Ino) -> std::collections::BTreeSet<u64> {
        let mut picked: std::collections::BTreeSet<u64> = ns
            .pending
            .iter()
            .filter(|(_, op)| op.links(ino))
            .map(|(s, _)| *s)
            .collect();
        loop {
            let mut more = Vec::new();
            for &s in &picked {
                let Some(op) = ns.pending.get(&s) else {
                    continue;
                };
                let Op::Names { dir, changes, .. } = op else {
                    continue;
                };
                let same_names = |o: &Op| match o {
                    Op::Names {
                        dir: d, changes: c, ..
                    } => d == dir && c.iter().any(|x| changes.iter().any(|y| x.name == y.name)),
                    _ => false,
                };
                more.extend(
                    ns.pending
                        .range(..s)
                        .filter(|(_, o)| same_names(o))
                        .map(|(t, _)| *t),
                );
                // The halves of a rename across directories have
                // consecutive numbers and name each other.
                for t in [s.wrapping_sub(1), s + 1] {
                    if ns.pending.get(&t).is_some_and(|o| halves(op, o)) {
                        more.push(t);
                    }
                }
                let new_dir = self
                    .nodes
                    .get(dir)
                    .is_some_and(|n| n.value().lock().durable().is_none());
                if new_dir {
                    more.extend(
                        ns.pending
                            .iter()
                            .filter(|(_, o)| o.links(*dir))
                            .map(|(t, _)| *t),
                    );
                }
            }
            let before = picked.len();
            picked.extend(more);
            if picked.len() == before {
                return picked;
            }
        }
    }

    /// The journal fsync or fdatasync of node `n` commits the namespace
    /// operations numbered below this. ext4's fdatasync forces only the
    /// transaction of the file's last data or size change
    /// (`ext4_sync_file`: `i_datasync_tid`), so with clean data it commits
    /// nothing, and names after that change are not forced (those in the
    /// same transaction may be: leaving them pending shows more states, never
    /// fewer).
    fn journal_upto(&self, n: &Node, datasync: bool) -> u64 {
        if !(datasync && self.cfg.persistence.datasync_forces_only_data()) {
            return u64::MAX;
        }
        n.pending
            .iter()
            .filter(|(_, op)| op.is_data())
            .map(|(s, _)| *s)
            .max()
            .unwrap_or(0)
    }

    /// [`Model::flush_node`], then `apply` on all of `out`; on failure the
    /// node and the dirty count are restored.
    pub(super) fn flush_applied<E>(
        &self,
        ino: Ino,
        n: &mut Node,
        with_attrs: bool,
        mut out: Vec<Effect>,
        apply: impl FnOnce(&[Effect]) -> Result<(), E>,
    ) -> Result<(), E> {
        let saved = n.clone();
        let pending_bytes = |n: &Node| n.pending.values().map(Op::data_len).sum::<u64>();
        let before = pending_bytes(n);
        self.flush_node(ino, n, with_attrs, &mut out);
        let res = apply(&out);
        if res.is_err() {
            let freed = before.saturating_sub(pending_bytes(n));
            *n = saved;
            self.dirty_bytes.fetch_add(freed, Ordering::Relaxed);
        } else {
            self.reindex(ino, n);
        }
        res
    }

    /// Makes the unsynced data (and with `with_attrs`, attributes) of one
    /// inode durable, appending the effects to `out`.
    pub(crate) fn flush_node(
        &self,
        ino: Ino,
        n: &mut Node,
        with_attrs: bool,
        out: &mut Vec<Effect>,
    ) {
        let had_data = n.pending.values().any(|op| op.is_data());
        let needs_attrs = with_attrs && n.durable().is_some_and(|d| d.attrs != n.attrs);
        let dur = match n.durable() {
            Some(d) => d,
            None => {
                out.push(Effect::Alloc {
                    ino,
                    init: n.init(),
                });
                let d = DurableMeta {
                    attrs: n.attrs,
                    size: if n.kind == Kind::File { 0 } else { n.size },
                };
                n.set_durable(Some(d));
                d
            }
        };
        let mut durable_size = n.size;
        if n.kind == Kind::File && (had_data || n.size != dur.size) {
            if n.base_end < dur.size {
                out.push(Effect::Truncate {
                    ino,
                    size: n.base_end,
                });
            }
            // Pages a failed fsync marked clean are not written
            // (`fsync_fail`): they stay live and not durable.
            n.overlay.restick();
            let mut written_end = None;
            for (off, len, fill) in n.overlay.dirty_extents() {
                written_end = Some(off + len);
                out.push(match fill {
                    Fill::Data(b) => Effect::Write {
                        ino,
                        offset: off,
                        data: b,
                    },
                    Fill::Zero => Effect::Zero {
                        ino,
                        offset: off,
                        len,
                    },
                });
            }
            let size = super::fsync_fail::flushed_size(n, dur.size, written_end);
            out.push(Effect::Truncate { ino, size });
            n.overlay.clear_dirty();
            n.base_end = size;
            durable_size = size;
        }
        if with_attrs {
            // In their order: a later set or removal of a name wins.
            for op in n.pending.values() {
                if let Op::SetXattr { ino, name, value } = op {
                    out.push(Effect::SetXattr {
                        ino: *ino,
                        name: name.clone(),
                        value: value.clone(),
                    });
                }
            }
        }
        let mut freed = 0;
        n.pending.retain(|_, op| {
            let goes = op.is_data() || with_attrs;
            if goes {
                freed += op.data_len();
            }
            !goes
        });
        self.dirty_bytes.fetch_sub(freed, Ordering::Relaxed);
        let attrs = if with_attrs { n.attrs } else { dur.attrs };
        // Writing a backing file sets its mtime to the host's time; the
        // store gives back the durable times itself (`backing::times`).
        if needs_attrs {
            out.push(Effect::SetAttrs { ino, attrs });
        }
        let d = DurableMeta {
            attrs,
            size: durable_size,
        };
        n.set_durable(Some(d));
    }

    /// Writes back the data of the inode dirtied longest ago (as a kernel
    /// under memory pressure does), making it durable like fdatasync.
    /// Returns the inode and the effects, or `None` when nothing is dirty.
    pub fn writeback_oldest(&self) -> FsResult<Option<(Ino, Vec<Effect>)>> {
        let mut out = Vec::new();
        let done = self.writeback_oldest_applied(|e| {
            out = e.to_vec();
            Ok::<(), std::convert::Infallible>(())
        })?;
        Ok(done.map(|(ino, Ok(()))| (ino, out)))
    }

    /// As [`Model::writeback_oldest`], with `apply` making the effects
    /// durable under the inode's lock; when it fails the inode is put back
    /// as it was (see [`Model::fsync_applied`]).
    pub fn writeback_oldest_applied<E>(
        &self,
        apply: impl FnOnce(&[Effect]) -> Result<(), E>,
    ) -> FsResult<Option<(Ino, Result<(), E>)>> {
        self.check_cut()?;
        // IMPORTANT: only operations numbered before this call began are
        // weighed, and every one of those is in the dirty index (`dirty.rs`):
        // the inode picked is still the oldest dirty one when it is flushed
        // (regression test
        // `shuttle_writeback_picks_the_inode_oldest_when_it_flushes`).
        let mut start = None;
        while let Some((seq, ino)) = self.take_oldest_dirty(&mut start) {
            // A forgotten inode's entry, or one another call replaced.
            let Ok(node) = self.node(ino) else { continue };
            let mut n = node.lock();
            if n.index_mark != seq {
                continue;
            }
            n.index_mark = 0;
            let first = dirty::first_data_seq(&n);
            if first != Some(seq) {
                self.reindex(ino, &mut n);
                continue;
            }
            if let Err(e) = self.usable(&n) {
                self.reindex(ino, &mut n);
                return Err(e);
            }
            let res = self.flush_applied(ino, &mut n, false, Vec::new(), apply);
            self.reindex(ino, &mut n);
            return Ok(Some((ino, res)));
        }
        Ok(None)
    }
}

/// `FALLOC_FL_ZERO_RANGE` of `[offset, end)`: recorded as a punch of the
/// part inside the live size, then (`grow`) an allocate to `end`, with
/// consecutive sequence numbers; a crash may keep either, as each is lost
/// or kept like a write.
fn zero_range(
    m: &Model,
    ino: Ino,
    n: &mut Node,
    offset: u64,
    end: u64,
    grow: bool,
    now: Timestamp,
) {
    let zend = end.min(n.size);
    let zero = offset < zend;
    if !zero && !grow {
        return;
    }
    if zero {
        // Before this call's numbers: the pages' earlier bytes come first.
        m.dirty_again(ino, n, offset, zend);
    }
    let mut seq = m.next_seqs(u64::from(zero) + u64::from(grow));
    if zero {
        n.overlay.zero(offset, zend - offset);
        let len = zend - offset;
        n.pending.insert(seq, Op::Punch { ino, offset, len });
        seq += 1;
    }
    if grow {
        n.size = end;
        let len = end - offset;
        n.pending.insert(seq, Op::Allocate { ino, offset, len });
    }
    n.attrs.mtime = now;
    n.attrs.ctime = now;
}

fn check_file(n: &Node) -> FsResult<()> {
    match n.kind {
        Kind::File => Ok(()),
        Kind::Dir => Err(FsError::IsDir),
        _ => Err(FsError::Invalid),
    }
}

/// Sets the live size; bytes past a shrink never come back from the base.
fn truncate_live(n: &mut Node, size: u64) {
    if size < n.size {
        n.overlay.truncate(size);
        n.base_end = n.base_end.min(size);
    }
    n.size = size;
}

/// True when `a` and `b` are the two halves of one rename across
/// directories: each names the other's directory and name as its peer.
fn halves(a: &Op, b: &Op) -> bool {
    let (
        Op::Names {
            dir: da,
            changes: ca,
            peer: Some(pa),
            ..
        },
        Op::Names {
            dir: db,
            changes: cb,
            peer: Some(pb),
            ..
        },
    ) = (a, b)
    else {
        return false;
    };
    let (Some(na), Some(nb)) = (ca.first(), cb.first()) else {
        return false;
    };
    da != db && *pa == (*db, nb.name.clone()) && *pb == (*da, na.name.clone())
}

/// A write as the pending operations it is recorded as: one, or two when it
/// extends past the end of the page that held the file's old end (a size
/// that is not a multiple of [`PAGE`]): the part up to that page's end and
/// the rest, each with the size before it. The kernel copies a buffered
/// write page by page and moves the size after each page
/// (`generic_perform_write`, `iomap_write_iter`), and ext4 puts that size
/// on disk at once when the page's block is already mapped
/// (`ext4_da_do_write_end`): only the old last page's is, so a crash may
/// show the size at that page's end without the rest ([`super::profile`]).
pub fn split_at_old_last_page(
    offset: u64,
    data: Bytes,
    size_before: u64,
) -> Vec<(u64, Bytes, u64)> {
    let page_end = size_before.next_multiple_of(PAGE);
    let end = offset + data.len() as u64;
    if size_before % PAGE == 0 || offset >= page_end || end <= page_end {
        return vec![(offset, data, size_before)];
    }
    let cut = (page_end - offset) as usize;
    vec![
        (offset, data.slice(..cut), size_before),
        (page_end, data.slice(cut..), page_end),
    ]
}
