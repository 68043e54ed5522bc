//! Reclaiming orphans while the volume is mounted.
//!
//! An inode whose last durable entry is removed goes to
//! `.durafs/orphans/<ino>`, because a later effect may still link it again
//! (a pending rename's other half, an open file's next fsync). Only the
//! model knows when that can no longer happen, so the store offers the
//! candidates ([`Backing::orphans`]) and deletes one when told
//! ([`Backing::delete_orphan`]); [`crate::fs::DuraFs`] asks the model in
//! between. Everything else is deleted at the next cut or open, as before.
//!
//! Invariant: `State::orphaned` holds every inode whose only name is its
//! orphan name (it may hold more: stale candidates are dropped when read).

use super::{State, at};
use crate::model::{Ino, Kind};
use std::io;

/// An inode only `.durafs/orphans/` holds, with what deleting it deletes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Orphan {
    pub ino: Ino,
    /// `ino` and, for a directory, every inode physically beneath it.
    pub takes: Vec<Ino>,
}

impl State {
    /// Gives `ino` (which has just lost its last physical name, or never
    /// had one) the orphan name's bookkeeping.
    pub(super) fn set_orphan(&mut self, ino: Ino) {
        if let Some(n) = self.nodes.get_mut(&ino) {
            n.orphan = true;
            self.orphaned.insert(ino);
        }
    }

    pub(super) fn only_orphan(&self, ino: Ino) -> bool {
        self.nodes
            .get(&ino)
            .is_some_and(|n| n.orphan && n.phys.is_empty())
    }

    pub(super) fn orphans(&mut self) -> Vec<Orphan> {
        let cands: Vec<Ino> = self.orphaned.iter().copied().collect();
        let mut out = Vec::new();
        for ino in cands {
            if !self.only_orphan(ino) {
                self.orphaned.remove(&ino);
                continue;
            }
            out.push(Orphan {
                ino,
                takes: self.beneath(ino),
            });
        }
        out
    }

    /// `ino` and, for a directory, every inode physically beneath it.
    pub(super) fn beneath(&self, ino: Ino) -> Vec<Ino> {
        let mut takes = vec![ino];
        let mut i = 0;
        while i < takes.len() {
            if let Some(d) = self.phys_dirs.get(&takes[i]) {
                takes.extend(d.values().copied());
            }
            i += 1;
        }
        takes
    }

    /// Removes `.durafs/orphans/<ino>` (with what is beneath a directory);
    /// already gone is fine.
    pub(super) fn remove_orphan_name(&self, ino: Ino, is_dir: bool) -> io::Result<()> {
        let at = self.orphan_loc(ino);
        let r = if is_dir {
            at::remove_all(at.fd(), at.name())
        } else {
            at::unlink(at.fd(), at.name())
        };
        match r {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    pub(super) fn delete_orphan(&mut self, ino: Ino) -> io::Result<()> {
        if !self.only_orphan(ino) {
            return Ok(());
        }
        let is_dir = self.nodes.get(&ino).is_some_and(|n| n.kind == Kind::Dir);
        self.remove_orphan_name(ino, is_dir)?;
        self.orphaned.remove(&ino);
        self.forget_subtree(ino);
        Ok(())
    }
}
