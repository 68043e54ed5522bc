//! Putting the store's logical names back when a batch fails.
//!
//! When [`super::Backing::apply`] fails, the model puts the durability
//! point back (`crate::model::commit`): the operations are pending again
//! and a retry commits the same effects. The store must then hold the
//! logical view (`logical`, `links`) it had before the batch; otherwise the
//! retried `Link` finds its entry already there, does nothing, and the
//! retry reports success with nothing stored. (Regression: a `durafs
//! umount` whose sync failed succeeded when run again, and the directory
//! it could not store was lost.)
//!
//! What the batch already changed on disk stays, and the physical records
//! (`phys_dirs`, `nodes`) keep describing the disk: they are updated only
//! after each system call succeeds. A retry reconciles from there, as the
//! next batch after a kill -9 would. One exception: an inode the batch
//! created that is still only an orphan, with nothing beneath it that the
//! batch did not create, is deleted: the model counts it not durable again,
//! a retry creates it anew, and its partly written data would otherwise
//! hold the space of a backing that the failure may have been the lack of
//! (unit test `a_failed_batch_deletes_the_orphans_it_made`).
//!
//! Invariant: while a batch runs, `Undo` holds, for every logical entry and
//! every inode's entry list the batch changed, the value before its first
//! change.

use super::State;
use crate::model::{Ino, Name};
use std::collections::{BTreeSet, HashMap};

/// The first values of what a batch changed in the logical view.
#[derive(Debug, Default)]
pub(super) struct Undo {
    entries: HashMap<(Ino, Name), Option<Ino>>,
    links: HashMap<Ino, Option<Vec<(Ino, Name)>>>,
    /// Inodes the batch created (`Alloc`, or a `Link` of a new inode).
    created: BTreeSet<Ino>,
}

impl State {
    /// Records logical entry `dir/name` before the batch changes it.
    pub(super) fn note_entry(&mut self, dir: Ino, name: &[u8]) {
        let Some(undo) = self.undo.as_mut() else {
            return;
        };
        let Some(d) = self.logical.get(&dir) else {
            return;
        };
        let before = d.get(name).copied();
        undo.entries.entry((dir, name.to_vec())).or_insert(before);
    }

    /// Records the logical entries of `ino` before the batch changes them.
    pub(super) fn note_links(&mut self, ino: Ino) {
        let Some(undo) = self.undo.as_mut() else {
            return;
        };
        let before = self.links.get(&ino).cloned();
        undo.links.entry(ino).or_insert(before);
    }

    /// Records that the batch created `ino`.
    pub(super) fn note_created(&mut self, ino: Ino) {
        if let Some(undo) = self.undo.as_mut() {
            undo.created.insert(ino);
        }
    }

    /// Puts the logical view back as `undo` recorded it, and drops the
    /// removals the failed batch had queued.
    pub(super) fn roll_back(&mut self, undo: Option<Undo>) {
        self.stale.clear();
        let Some(undo) = undo else {
            return;
        };
        for ((dir, name), before) in undo.entries {
            if let Some(d) = self.logical.get_mut(&dir) {
                match before {
                    Some(ino) => d.insert(name, ino),
                    None => d.remove(&name),
                };
            }
        }
        for (ino, before) in undo.links {
            match before {
                Some(l) => self.links.insert(ino, l),
                None => self.links.remove(&ino),
            };
        }
        for &ino in &undo.created {
            let ours =
                self.only_orphan(ino) && self.beneath(ino).iter().all(|i| undo.created.contains(i));
            if ours && let Err(e) = self.delete_orphan(ino) {
                log::warn!("durafs backing: deleting #{ino}, made by a failed batch: {e}");
            }
        }
    }
}
