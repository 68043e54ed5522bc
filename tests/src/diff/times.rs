//! Which mtimes a run compares.
//!
//! Times the calls set implicitly (a write sets the mtime to "now") differ
//! between the two sides by the microseconds between the calls, so the
//! trees leave mtimes out, except where both sides must agree: an inode
//! whose mtime an [`Op::Utimens`](super::Op::Utimens) set to an explicit
//! time is *stamped* (keyed by its durafs inode number, which is also the
//! model's). While the native side still shows that time for it (nothing
//! since changed it there), durafs must show it too, at every path of the
//! inode and through every descriptor slot open on it. Once the native
//! side shows another mtime the stamp is dropped: what changed it set an
//! implicit time.
//!
//! At a cut the predicted and the remounted trees are compared on the
//! mtimes of stamped inodes ([`Stamps::at_cut`]) when the prediction is
//! exact for them: under keep-all (everything pending applies, the last of
//! it the stamp's attribute change or later ones carrying the same mtime),
//! or when the stamp was made durable by an fsync of the file or directory
//! or a sync-all and nothing changed the mtime since; both must show the
//! stamp's time.
//! Stamps end at a cut (the native side is rebuilt without times).

use super::tree::{Ids, Tree};
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// An explicit mtime, `(secs, nanos)`, and whether it is durable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Stamp {
    mtime: (i64, i64),
    durable: bool,
}

/// The stamped inodes of one mount.
#[derive(Clone, Debug, Default)]
pub struct Stamps(HashMap<u64, Stamp>);

/// What `fstat` showed through one slot on each side: `(durafs inode,
/// durafs mtime, native mtime)`.
pub type SlotTimes = (u64, (i64, i64), (i64, i64));

impl Stamps {
    /// A `utimensat` on durafs inode `ino` succeeded: `mtime` is the
    /// explicit mtime it set (`Some`), or `None` when it set the mtime to
    /// now. An omitted mtime does not call this.
    pub fn set(&mut self, ino: u64, mtime: Option<(i64, i64)>) {
        match mtime {
            Some(mtime) => {
                self.0.insert(
                    ino,
                    Stamp {
                        mtime,
                        durable: false,
                    },
                );
            }
            None => {
                self.0.remove(&ino);
            }
        }
    }

    /// An fsync of the regular file `ino` succeeded: its attributes are
    /// durable.
    pub fn synced(&mut self, ino: u64) {
        if let Some(s) = self.0.get_mut(&ino) {
            s.durable = true;
        }
    }

    /// A sync-all succeeded.
    pub fn synced_all(&mut self) {
        for s in self.0.values_mut() {
            s.durable = true;
        }
    }

    pub fn clear(&mut self) {
        self.0.clear();
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// After a step: drops the stamps the native side no longer shows (in
    /// the `native` tree, at the paths durafs's `ids` give the inode, and
    /// through the descriptor `slots`), and returns the paths whose mtime
    /// the trees compare. An error names a slot where the native side
    /// still shows the stamp and durafs does not.
    pub fn settle(
        &mut self,
        ids: &Ids,
        native: &Tree,
        slots: &[(u8, SlotTimes)],
    ) -> Result<BTreeSet<String>, String> {
        for (path, (_, ino)) in ids {
            let (Some(s), Some(n)) = (self.0.get(ino), native.0.get(path)) else {
                continue;
            };
            if n.mtime != Some(s.mtime) {
                self.0.remove(ino);
            }
        }
        for (_, (ino, _, native)) in slots {
            if self.0.get(ino).is_some_and(|s| s.mtime != *native) {
                self.0.remove(ino);
            }
        }
        for (slot, (ino, durafs, _)) in slots {
            if let Some(s) = self.0.get(ino) {
                if *durafs != s.mtime {
                    return Err(format!(
                        "slot {slot}: durafs mtime {durafs:?}, native (and the utimensat) {:?}",
                        s.mtime
                    ));
                }
            }
        }
        Ok(ids
            .iter()
            .filter(|(_, (_, ino))| self.0.contains_key(ino))
            .map(|(p, _)| p.clone())
            .collect())
    }

    /// The paths of the `predicted` tree (`inos` gives each one's model
    /// inode number) whose mtime the cut check compares, each with the
    /// mtime the stamp set: the prediction and the remount must both show
    /// it.
    pub fn at_cut(
        &self,
        predicted: &Tree,
        inos: &BTreeMap<String, u64>,
        keep_all: bool,
    ) -> BTreeMap<String, (i64, i64)> {
        inos.iter()
            .filter(|(p, _)| predicted.0.contains_key(*p))
            .filter_map(|(p, ino)| {
                let s = self.0.get(ino).filter(|s| keep_all || s.durable)?;
                Some((p.clone(), s.mtime))
            })
            .collect()
    }
}
