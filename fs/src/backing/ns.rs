//! Namespace effects on disk: reconciling the logical durable entries with
//! the physical ones, in the order the parent module's documentation argues
//! is kill -9 safe.
//!
//! Invariants (between effects):
//! * a non-directory has a physical name for each of its logical entries
//!   (plus, maybe, its orphan name);
//! * a directory has at most one physical name, which is one of its logical
//!   entries, or a stale entry queued in `stale`, or none (an orphan);
//! * `phys_dirs[d][n] == x` iff `(d, n)` is in `nodes[x].phys`.

use super::loc::set_attrs;
use super::{State, Touched, at, attrs_of};
use crate::failpoint;
use crate::model::{Ino, Kind, Name, NewInode, ROOT};
use std::collections::{BTreeSet, VecDeque};
use std::io;

impl State {
    fn kind(&self, ino: Ino) -> Option<Kind> {
        self.nodes.get(&ino).map(|n| n.kind)
    }

    fn phys_at(&self, dir: Ino, name: &[u8]) -> Option<Ino> {
        self.phys_dirs.get(&dir).and_then(|d| d.get(name)).copied()
    }

    fn phys_add(&mut self, dir: Ino, name: &[u8], ino: Ino) {
        if let Some(d) = self.phys_dirs.get_mut(&dir) {
            d.insert(name.to_vec(), ino);
        }
        if let Some(n) = self.nodes.get_mut(&ino) {
            n.phys.push((dir, name.to_vec()));
            if n.kind == Kind::Dir {
                // Its `..` may have changed, and with it its times.
                self.disturbed.insert(ino);
            }
        }
        self.touched_dirs.insert(Touched::Dir(dir));
        self.disturbed.insert(dir);
    }

    fn phys_remove(&mut self, dir: Ino, name: &[u8]) -> Option<Ino> {
        let ino = self.phys_dirs.get_mut(&dir).and_then(|d| d.remove(name))?;
        if let Some(n) = self.nodes.get_mut(&ino) {
            n.phys.retain(|(d, nm)| !(*d == dir && nm == name));
        }
        self.touched_dirs.insert(Touched::Dir(dir));
        self.disturbed.insert(dir);
        Some(ino)
    }

    /// True when directory `dir` is `ancestor` or lies beneath it on disk.
    fn within_phys(&self, mut dir: Ino, ancestor: Ino) -> bool {
        for _ in 0..4096 {
            if dir == ancestor {
                return true;
            }
            match self.nodes.get(&dir).and_then(|n| n.phys.first()) {
                Some((p, _)) => dir = *p,
                None => return false,
            }
        }
        true
    }

    /// True when `dir` is physically inside `.durafs/orphans/` (an orphaned
    /// directory or beneath one): what is there is deleted at the cut.
    fn in_orphans(&self, mut dir: Ino) -> bool {
        for _ in 0..4096 {
            match self.nodes.get(&dir) {
                Some(n) => match n.phys.first() {
                    Some((p, _)) => dir = *p,
                    None => return n.orphan,
                },
                None => return false,
            }
        }
        false
    }

    /// `Effect::Link`.
    pub(super) fn link(
        &mut self,
        dir: Ino,
        name: &[u8],
        ino: Ino,
        init: &NewInode,
    ) -> io::Result<()> {
        if !self.logical.contains_key(&dir) {
            return Ok(());
        }
        self.ensure_exists(ino, init)?;
        let old = self.logical.get(&dir).and_then(|d| d.get(name)).copied();
        if old == Some(ino) {
            return Ok(());
        }
        if let Some(y) = old {
            self.drop_logical(dir, name, y)?;
        }
        self.note_entry(dir, name);
        self.note_links(ino);
        if let Some(d) = self.logical.get_mut(&dir) {
            d.insert(name.to_vec(), ino);
        }
        self.links
            .entry(ino)
            .or_default()
            .push((dir, name.to_vec()));
        if self.kind(ino) != Some(Kind::Dir) {
            return self.place(dir, name, ino);
        }
        // A directory stays at its physical name while that is still one of
        // its logical entries (oldest entry wins) and not inside a directory
        // that went to the orphans; otherwise it moves here.
        let placed = self.nodes.get(&ino).and_then(|n| n.phys.first().cloned());
        match placed {
            Some((pd, pn))
                if self.logical.get(&pd).and_then(|d| d.get(&pn)) == Some(&ino)
                    && !self.in_orphans(pd) =>
            {
                Ok(())
            }
            _ => self.place(dir, name, ino),
        }
    }

    /// `Effect::Unlink`.
    pub(super) fn unlink(&mut self, dir: Ino, name: &[u8]) -> io::Result<()> {
        match self.logical.get(&dir).and_then(|d| d.get(name)).copied() {
            Some(y) => self.drop_logical(dir, name, y),
            None => Ok(()),
        }
    }

    /// Removes the logical entry `dir/name -> y` and handles its physical
    /// name: removed now when `y` keeps another entry, else at batch end.
    fn drop_logical(&mut self, dir: Ino, name: &[u8], y: Ino) -> io::Result<()> {
        self.note_entry(dir, name);
        self.note_links(y);
        if let Some(d) = self.logical.get_mut(&dir) {
            d.remove(name);
        }
        if let Some(l) = self.links.get_mut(&y) {
            l.retain(|(d, n)| !(*d == dir && n == name));
        }
        if self.phys_at(dir, name) != Some(y) {
            return Ok(());
        }
        let has_other = self.links.get(&y).is_some_and(|l| !l.is_empty());
        match (self.kind(y), has_other) {
            (Some(Kind::Dir), true) => self.relocate(y),
            (Some(_), true) => {
                let at = self.name_loc(dir, name)?;
                at::unlink(at.fd(), at.name())?;
                self.phys_remove(dir, name);
                Ok(())
            }
            _ => {
                self.stale.push((dir, name.to_vec(), y));
                Ok(())
            }
        }
    }

    /// Removes the physical names whose logical entries the batch dropped.
    pub(super) fn finish_batch(&mut self) -> io::Result<()> {
        for (dir, name, y) in std::mem::take(&mut self.stale) {
            failpoint::pass("apply");
            if self.phys_at(dir, &name) != Some(y)
                || self.logical.get(&dir).and_then(|d| d.get(&name)) == Some(&y)
            {
                continue;
            }
            let n = self.nodes.get(&y).map(|n| (n.kind, n.phys.len(), n.orphan));
            match n {
                Some((Kind::Dir, _, _)) => self.relocate(y)?,
                Some((_, phys, orphan)) if phys > 1 || orphan => {
                    let at = self.name_loc(dir, &name)?;
                    at::unlink(at.fd(), at.name())?;
                    self.phys_remove(dir, &name);
                }
                Some(_) => self.move_to_orphans(y, None)?,
                None => {}
            }
        }
        Ok(())
    }

    /// Moves directory `y` to its oldest logical entry that is not beneath
    /// it, or to the orphans.
    fn relocate(&mut self, y: Ino) -> io::Result<()> {
        let cands = self.links.get(&y).cloned().unwrap_or_default();
        for (d, n) in cands {
            if !self.within_phys(d, y) {
                return self.place(d, &n, y);
            }
        }
        if self.nodes.get(&y).is_some_and(|n| !n.phys.is_empty()) {
            self.move_to_orphans(y, None)?;
        }
        Ok(())
    }

    /// Renames the only physical name of `y` to `.durafs/orphans/<y>`.
    /// `evicting` is a name being freed for another inode: nothing is
    /// rescued to it (that inode takes it next).
    fn move_to_orphans(&mut self, y: Ino, evicting: Option<(Ino, &[u8])>) -> io::Result<()> {
        if self.kind(y) == Some(Kind::Dir) && self.nodes.get(&y).is_some_and(|n| !n.phys.is_empty())
        {
            // IMPORTANT: before `y` leaves, or what it holds leaves with it.
            self.rescue_beneath(y, evicting)?;
        }
        // Read after the rescue: placing a rescued directory can evict `y`
        // itself (to the orphans) when `y` holds the rescued one's name.
        let Some((d, n)) = self.nodes.get(&y).and_then(|n| n.phys.first().cloned()) else {
            return Ok(());
        };
        let (from, to) = (self.name_loc(d, &n)?, self.orphan_loc(y));
        at::rename(from.fd(), from.name(), to.fd(), to.name())?;
        self.phys_remove(d, &n);
        self.set_orphan(y);
        self.touched_dirs.insert(Touched::Orphans);
        Ok(())
    }

    /// Moves every directory physically beneath directory `y` that has a
    /// logical entry outside `y` to that entry. A directory lives at its
    /// oldest logical entry, which can be inside a directory that is now
    /// going to the orphans (its entry there is a ghost: `y`'s own removal
    /// of it is not durable yet); it must not be orphaned, and deleted,
    /// with `y` while a durable entry elsewhere still reaches it.
    fn rescue_beneath(&mut self, y: Ino, evicting: Option<(Ino, &[u8])>) -> io::Result<()> {
        let mut queue = vec![y];
        while let Some(dir) = queue.pop() {
            let kids: Vec<Ino> = self
                .phys_dirs
                .get(&dir)
                .map(|m| m.values().copied().collect())
                .unwrap_or_default();
            for c in kids {
                if self.kind(c) != Some(Kind::Dir) {
                    continue;
                }
                let outside = self.links.get(&c).and_then(|l| {
                    l.iter()
                        .find(|(d, n)| {
                            !self.within_phys(*d, y) && evicting != Some((*d, n.as_slice()))
                        })
                        .cloned()
                });
                match outside {
                    Some((d, n)) => self.place(d, &n, c)?,
                    None => queue.push(c),
                }
            }
        }
        Ok(())
    }

    /// Makes the physical name `dir/name` reach `x`, atomically whenever the
    /// name keeps or gets a non-directory (see the module documentation).
    fn place(&mut self, dir: Ino, name: &[u8], x: Ino) -> io::Result<()> {
        let Some(kind) = self.kind(x) else {
            return Ok(());
        };
        if self.phys_at(dir, name) == Some(x) {
            return Ok(());
        }
        if !self.phys_dirs.contains_key(&dir) {
            return Ok(());
        }
        if kind == Kind::Dir && self.within_phys(dir, x) {
            log::warn!(
                "durafs backing: not moving directory #{x} beneath itself (#{dir}); it stays where it is"
            );
            return Ok(());
        }
        let target = self.name_loc(dir, name)?;
        if let Some(y) = self.phys_at(dir, name) {
            self.evict(dir, name, y, kind)?;
        }
        let orphan_only = self.nodes.get(&x).is_some_and(|n| n.phys.is_empty());
        if kind == Kind::Dir || orphan_only {
            let from = self.loc(x)?;
            let old = self.nodes.get(&x).and_then(|n| n.phys.first().cloned());
            at::rename(from.fd(), from.name(), target.fd(), target.name())?;
            match old {
                Some((d, n)) => {
                    self.phys_remove(d, &n);
                }
                None => {
                    self.touched_dirs.insert(Touched::Orphans);
                    if let Some(node) = self.nodes.get_mut(&x) {
                        node.orphan = false;
                    }
                }
            }
        } else {
            let from = self.loc(x)?;
            let tmp = self.tmp_loc(x);
            let _ = at::unlink(tmp.fd(), tmp.name());
            at::link(from.fd(), from.name(), tmp.fd(), tmp.name())?;
            failpoint::pass("apply");
            at::rename(tmp.fd(), tmp.name(), target.fd(), target.name())?;
            self.touched_dirs.insert(Touched::Tmp);
        }
        if self.phys_at(dir, name).is_some() {
            // The rename replaced it (y keeps a name elsewhere, see evict).
            self.phys_remove(dir, name);
        }
        self.phys_add(dir, name, x);
        Ok(())
    }

    /// Prepares the physical name `dir/name`, now holding `y`, to be taken
    /// by an inode of kind `incoming`: `y` keeps a name elsewhere, and the
    /// name is left for an atomic rename over it when the kinds allow it.
    fn evict(&mut self, dir: Ino, name: &[u8], y: Ino, incoming: Kind) -> io::Result<()> {
        let Some((ykind, phys, orphan)) =
            self.nodes.get(&y).map(|n| (n.kind, n.phys.len(), n.orphan))
        else {
            return Ok(());
        };
        let p = self.name_loc(dir, name)?;
        if ykind != Kind::Dir {
            if phys == 1 && !orphan {
                let o = self.orphan_loc(y);
                at::link(p.fd(), p.name(), o.fd(), o.name())?;
                self.set_orphan(y);
                self.touched_dirs.insert(Touched::Orphans);
            }
            if incoming == Kind::Dir {
                // Not atomic: a directory cannot be renamed over a file.
                at::unlink(p.fd(), p.name())?;
                self.phys_remove(dir, name);
            }
            return Ok(());
        }
        let dead = self.links.get(&y).is_none_or(|l| l.is_empty())
            && self.logical.get(&y).is_none_or(|d| d.is_empty())
            && self.phys_dirs.get(&y).is_none_or(|d| d.is_empty());
        if dead && incoming == Kind::Dir {
            // An empty directory no entry reaches: the rename replaces it
            // atomically, and an identical empty copy (mode, owner, times)
            // is made in the orphans first, where later effects can still
            // give it entries or link it again. (Forgetting it instead lost
            // entries made in it later: regression test
            // `backing_places_directories_reached_twice_where_the_model_does`,
            // seed 1131.)
            let md = at::lstat(p.fd(), p.name())?;
            let copy = self.orphan_loc(y);
            at::mkdir(copy.fd(), copy.name(), 0o700)?;
            set_attrs(&copy, Kind::Dir, &attrs_of(&md))?;
            super::xattrs::copy(&p, &copy)?;
            // IMPORTANT: `y` is now the copy; the rename over `p` destroys
            // the directory a cached handle of `y` would still reach.
            self.forget_dir(y);
            self.phys_remove(dir, name);
            self.set_orphan(y);
            self.touched_dirs.insert(Touched::Orphans);
            return Ok(());
        }
        // Not atomic (see "Not safe yet"): move y aside first.
        let cands: Vec<(Ino, Name)> = self.links.get(&y).cloned().unwrap_or_default();
        for (d, n) in cands {
            if (d, n.as_slice()) != (dir, name)
                && !self.within_phys(d, y)
                && self.phys_at(d, &n).is_none()
            {
                return self.place(d, &n, y);
            }
        }
        self.move_to_orphans(y, Some((dir, name)))
    }

    /// Swaps two physical names in one `renameat2(RENAME_EXCHANGE)` when the
    /// effects `Link(d1/n1 -> y)`, `Link(d2/n2 -> x)` swap them. Returns
    /// false (doing nothing) when they are not such a pair.
    pub(super) fn try_exchange(
        &mut self,
        d1: Ino,
        n1: &[u8],
        y: Ino,
        d2: Ino,
        n2: &[u8],
        x: Ino,
    ) -> io::Result<bool> {
        if x == y
            || (d1, n1) == (d2, n2)
            || self.phys_at(d1, n1) != Some(x)
            || self.phys_at(d2, n2) != Some(y)
            || self.logical.get(&d1).and_then(|d| d.get(n1)) != Some(&x)
            || self.logical.get(&d2).and_then(|d| d.get(n2)) != Some(&y)
        {
            return Ok(false);
        }
        let (kx, ky) = (self.kind(x), self.kind(y));
        if (kx == Some(Kind::Dir) && self.within_phys(d2, x))
            || (ky == Some(Kind::Dir) && self.within_phys(d1, y))
        {
            return Ok(false);
        }
        let (p1, p2) = (self.name_loc(d1, n1)?, self.name_loc(d2, n2)?);
        at::exchange(p1.fd(), p1.name(), p2.fd(), p2.name())?;
        self.phys_remove(d1, n1);
        self.phys_remove(d2, n2);
        self.phys_add(d1, n1, y);
        self.phys_add(d2, n2, x);
        for (dir, name, new, old) in [(d1, n1, y, x), (d2, n2, x, y)] {
            self.note_entry(dir, name);
            self.note_links(old);
            self.note_links(new);
            if let Some(d) = self.logical.get_mut(&dir) {
                d.insert(name.to_vec(), new);
            }
            if let Some(l) = self.links.get_mut(&old) {
                l.retain(|(d, n)| !(*d == dir && n == name));
            }
            self.links
                .entry(new)
                .or_default()
                .push((dir, name.to_vec()));
        }
        Ok(true)
    }

    /// Moves every directory to the entry a crash keeps for it, the rule of
    /// [`crate::model::MemStore::after_crash`]: walking the logical namespace
    /// breadth-first from the root in name order, a directory lives at the
    /// first entry that reaches it. During a session a directory with
    /// several logical entries lives at its oldest (kill -9 safety, module
    /// documentation); at a cut, where nothing links again, the store takes
    /// the model's choice, so a remount shows what `durafs explore` predicts.
    ///
    /// Directories are placed in walk order, so the parent of each target is
    /// already at its final place and never beneath the directory moved.
    /// Inodes the walk does not reach are unreachable on disk as well (every
    /// physical name is a logical entry) and go with the orphans.
    pub(super) fn settle_dirs(&mut self) -> io::Result<()> {
        let mut seen = BTreeSet::from([ROOT]);
        let mut queue = VecDeque::from([ROOT]);
        while let Some(dir) = queue.pop_front() {
            let kids: Vec<(Name, Ino)> = self
                .logical
                .get(&dir)
                .map(|m| m.iter().map(|(n, i)| (n.clone(), *i)).collect())
                .unwrap_or_default();
            for (name, ino) in kids {
                if self.kind(ino) != Some(Kind::Dir) || !seen.insert(ino) {
                    continue;
                }
                let home = self.nodes.get(&ino).and_then(|n| n.phys.first());
                if home != Some(&(dir, name.clone())) {
                    self.place(dir, &name, ino)?;
                }
                queue.push_back(ino);
            }
        }
        Ok(())
    }

    /// Forgets inode `ino` (its names are gone from disk) and, for a
    /// directory, every inode that had a name only beneath it.
    pub(super) fn forget_subtree(&mut self, ino: Ino) {
        let mut todo = vec![ino];
        while let Some(i) = todo.pop() {
            let Some(node) = self.nodes.remove(&i) else {
                continue;
            };
            self.forget_dir(i);
            self.files.remove(&i);
            for (d, n) in self.links.remove(&i).unwrap_or_default() {
                if let Some(m) = self.logical.get_mut(&d) {
                    m.remove(&n);
                }
            }
            for (d, n) in &node.phys {
                if let Some(m) = self.phys_dirs.get_mut(d) {
                    m.remove(n);
                }
            }
            if node.kind != Kind::Dir {
                continue;
            }
            for (name, child) in self.logical.remove(&i).unwrap_or_default() {
                if let Some(l) = self.links.get_mut(&child) {
                    l.retain(|(d, n)| !(*d == i && *n == name));
                }
            }
            for (name, child) in self.phys_dirs.remove(&i).unwrap_or_default() {
                if let Some(c) = self.nodes.get_mut(&child) {
                    c.phys.retain(|(d, n)| !(*d == i && *n == name));
                    if c.phys.is_empty() && !c.orphan {
                        todo.push(child);
                    }
                }
            }
        }
    }
}
