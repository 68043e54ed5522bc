//! The live namespace: every directory's entries, and the reverse links
//! that find an inode's names without scanning directories.
//!
//! Invariants (checked by [`Namespace::check`] in tests):
//! * `dirs` holds the entries of every live directory;
//! * `parent[d] = (p, n)` exactly when `dirs[p][n]` is directory `d`;
//! * `links[i]` holds `(dir, name)` exactly when `dirs[dir][name]` is the
//!   non-directory `i` (hard links included), and no inode has an empty set.
//!
//! Every change of an entry goes through [`Namespace::insert`] and
//! [`Namespace::remove`], which keep the three in step: an inode's path is
//! a walk up `parent`, O(depth), never a scan.

use super::op::Op;
use super::types::*;
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// The names of one non-directory inode, as `(directory, name)`.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Links {
    /// The usual case, without the set's allocation.
    One(Ino, Name),
    /// Two or more, ordered: the first is the lowest directory, then the
    /// first name in it.
    Many(BTreeSet<(Ino, Name)>),
}

/// The live namespace and the unsynced namespace operations.
#[derive(Debug, Default)]
pub(crate) struct Namespace {
    dirs: HashMap<Ino, BTreeMap<Name, (Ino, Kind)>>,
    parent: HashMap<Ino, (Ino, Name)>,
    links: HashMap<Ino, Links>,
    /// Unsynced namespace operations, by sequence.
    pub pending: BTreeMap<u64, Op>,
    /// Map lookups made through the accessors (tests count work with it).
    #[cfg(test)]
    lookups: std::sync::atomic::AtomicUsize,
}

impl Namespace {
    /// The entries of directory `dir`, if it is a live directory.
    pub fn dir(&self, dir: Ino) -> Option<&BTreeMap<Name, (Ino, Kind)>> {
        self.count();
        self.dirs.get(&dir)
    }

    /// The live parent and name of directory `dir` (none for the root).
    pub fn parent(&self, dir: Ino) -> Option<&(Ino, Name)> {
        self.count();
        self.parent.get(&dir)
    }

    /// Adds the empty directory `dir` (its entry is added by `insert`).
    pub fn add_dir(&mut self, dir: Ino) {
        self.dirs.entry(dir).or_default();
    }

    /// Drops directory `dir`'s entries and parent link (it was removed).
    pub fn remove_dir(&mut self, dir: Ino) {
        self.dirs.remove(&dir);
        self.parent.remove(&dir);
    }

    /// Sets `dir/name` to `(ino, kind)`, replacing what it held; does
    /// nothing when `dir` is not a live directory.
    pub fn insert(&mut self, dir: Ino, name: &[u8], ino: Ino, kind: Kind) {
        let Some(entries) = self.dirs.get_mut(&dir) else {
            return;
        };
        let old = entries.insert(name.to_vec(), (ino, kind));
        if let Some((o, okind)) = old {
            self.unlink_reverse(dir, name, o, okind);
        }
        if kind == Kind::Dir {
            self.parent.insert(ino, (dir, name.to_vec()));
        } else {
            match self.links.get_mut(&ino) {
                None => {
                    self.links.insert(ino, Links::One(dir, name.to_vec()));
                }
                Some(Links::One(d, n)) => {
                    let first = (*d, std::mem::take(n));
                    let set = BTreeSet::from([first, (dir, name.to_vec())]);
                    self.links.insert(ino, Links::Many(set));
                }
                Some(Links::Many(set)) => {
                    set.insert((dir, name.to_vec()));
                }
            }
        }
    }

    /// Removes `dir/name`; returns what it held.
    pub fn remove(&mut self, dir: Ino, name: &[u8]) -> Option<(Ino, Kind)> {
        let (ino, kind) = self.dirs.get_mut(&dir)?.remove(name)?;
        self.unlink_reverse(dir, name, ino, kind);
        Some((ino, kind))
    }

    /// Forgets that `dir/name` names `ino` in the reverse maps.
    fn unlink_reverse(&mut self, dir: Ino, name: &[u8], ino: Ino, kind: Kind) {
        if kind == Kind::Dir {
            // A directory moved elsewhere first keeps its new parent link.
            if self
                .parent
                .get(&ino)
                .is_some_and(|(p, n)| *p == dir && n == name)
            {
                self.parent.remove(&ino);
            }
            return;
        }
        let empty = match self.links.get_mut(&ino) {
            Some(Links::One(d, n)) => *d == dir && n == name,
            Some(Links::Many(set)) => {
                set.remove(&(dir, name.to_vec()));
                if set.len() == 1 {
                    if let Some((d, n)) = set.pop_first() {
                        self.links.insert(ino, Links::One(d, n));
                    }
                }
                false
            }
            None => false,
        };
        if empty {
            self.links.remove(&ino);
        }
    }

    /// The entry that names non-directory `ino` first: the lowest
    /// directory, then the first name in it (what a scan of the
    /// directories in inode order finds). O(1).
    pub fn first_link(&self, ino: Ino) -> Option<(Ino, &Name)> {
        self.count();
        match self.links.get(&ino)? {
            Links::One(d, n) => Some((*d, n)),
            Links::Many(set) => set.first().map(|(d, n)| (*d, n)),
        }
    }

    fn count(&self) {
        #[cfg(test)]
        self.lookups
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    /// Map lookups made through the accessors so far.
    #[cfg(test)]
    pub fn lookups(&self) -> usize {
        self.lookups.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Every live directory, ascending.
    #[cfg(test)]
    pub fn dir_inos(&self) -> Vec<Ino> {
        let mut d: Vec<Ino> = self.dirs.keys().copied().collect();
        d.sort_unstable();
        d
    }

    /// Panics unless the reverse maps agree with a scan of every
    /// directory (the module's invariants).
    #[cfg(test)]
    pub fn check(&self) {
        let mut parent = HashMap::new();
        let mut links: HashMap<Ino, BTreeSet<(Ino, Name)>> = HashMap::new();
        for (d, entries) in &self.dirs {
            for (name, (ino, kind)) in entries {
                if *kind == Kind::Dir {
                    parent.insert(*ino, (*d, name.clone()));
                } else {
                    links.entry(*ino).or_default().insert((*d, name.clone()));
                }
            }
        }
        assert_eq!(parent, self.parent, "parent links");
        let ours: HashMap<Ino, BTreeSet<(Ino, Name)>> = self
            .links
            .iter()
            .map(|(i, l)| {
                let set = match l {
                    Links::One(d, n) => BTreeSet::from([(*d, n.clone())]),
                    Links::Many(s) => {
                        assert!(s.len() > 1, "#{i}: a set of one link");
                        s.clone()
                    }
                };
                (*i, set)
            })
            .collect();
        assert_eq!(links, ours, "reverse links");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::rng::SplitMix64;
    use crate::model::{Config, Model};

    fn attrs() -> Attrs {
        Attrs {
            mode: 0o644,
            ..Attrs::default()
        }
    }

    /// The path the model gave before the reverse links: the first entry
    /// naming `ino` in a scan of every directory in inode order.
    fn scanned_path(ns: &Namespace, ino: Ino) -> Option<String> {
        if ino == ROOT || ns.parent(ino).is_some() {
            return super::super::report::path_in(ns, ino);
        }
        ns.dir_inos().into_iter().find_map(|d| {
            let (name, _) = ns.dir(d)?.iter().find(|(_, (i, _))| *i == ino)?;
            let dir = super::super::report::path_in(ns, d)?;
            let name = String::from_utf8_lossy(name);
            Some(if dir.is_empty() {
                name.into_owned()
            } else {
                format!("{dir}/{name}")
            })
        })
    }

    /// One random namespace call on a small pool of names, so that links,
    /// renames over existing names and exchanges happen often.
    fn random_call(m: &Model, rng: &mut SplitMix64, dirs: &mut Vec<Ino>) {
        let t = Timestamp::default();
        let names: [&[u8]; 4] = [b"a", b"b", b"c", b"d"];
        let pick_dir = |rng: &mut SplitMix64| dirs[rng.below(dirs.len() as u64) as usize];
        let (d1, d2) = (pick_dir(rng), pick_dir(rng));
        let n1 = names[rng.below(4) as usize];
        let n2 = names[rng.below(4) as usize];
        match rng.below(7) {
            0 | 1 => {
                let _ = m.create(d1, n1, Kind::File, attrs(), None);
            }
            2 => {
                if let Ok(st) = m.create(d1, n1, Kind::Dir, attrs(), None) {
                    dirs.push(st.ino);
                }
            }
            3 => {
                if let Ok(st) = m.lookup(d1, n1) {
                    let _ = m.link(st.ino, d2, n2, t);
                }
            }
            4 => {
                let _ = m.unlink(d1, n1, t);
                let _ = m.rmdir(d1, n1, t);
            }
            _ => {
                let flags = RenameFlags {
                    noreplace: rng.chance(0.2),
                    exchange: rng.chance(0.3),
                };
                let _ = m.rename(d1, n1, d2, n2, flags, t);
            }
        }
        dirs.retain(|d| m.ns.lock().dir(*d).is_some());
    }

    /// The reverse links agree with a scan of every directory after each
    /// call (hard links, renames over a name, exchanges, unlinks, rmdirs),
    /// and every inode's path is the one the scan found.
    #[test]
    fn the_reverse_links_agree_with_a_scan_after_every_call() {
        for seed in 0..40 {
            let m = Model::new(Config::default(), attrs());
            let mut rng = SplitMix64::new(seed);
            let mut dirs = vec![ROOT];
            for _ in 0..150 {
                random_call(&m, &mut rng, &mut dirs);
                let ns = m.ns.lock();
                ns.check();
                for ino in m.inodes() {
                    assert_eq!(
                        super::super::report::path_in(&ns, ino),
                        scanned_path(&ns, ino),
                        "seed {seed}, #{ino}"
                    );
                }
            }
        }
    }

    /// The index survives a cut and is rebuilt from an image.
    #[test]
    fn a_cut_and_an_image_keep_the_links() {
        let m = Model::new(Config::default(), attrs());
        let t = Timestamp::default();
        let d = m.create(ROOT, b"d", Kind::Dir, attrs(), None).unwrap().ino;
        let f = m.create(d, b"f", Kind::File, attrs(), None).unwrap().ino;
        m.link(f, ROOT, b"g", t).unwrap();
        let mut store = crate::model::MemStore::new(attrs());
        for e in m.sync_all().unwrap() {
            store.apply(&e);
        }
        m.ns.lock().check();
        let image = store.image();
        m.cut();
        assert_eq!(m.path_of(f).as_deref(), Some("g"));
        let m2 = Model::from_image(Config::default(), &image).unwrap();
        m2.ns.lock().check();
        assert_eq!(m2.path_of(f).as_deref(), Some("g"));
        m2.unlink(ROOT, b"g", t).unwrap();
        assert_eq!(m2.path_of(f).as_deref(), Some("d/f"));
        m2.ns.lock().check();
    }

    /// Regression (issue 21): a file's path was found by scanning every
    /// directory, so recording a trace cost O(entries) per call. Now a
    /// lookup costs the depth of the path, whatever the directory holds.
    #[test]
    fn a_path_costs_its_depth_not_the_entries() {
        let m = Model::new(Config::default(), attrs());
        let d = m.create(ROOT, b"d", Kind::Dir, attrs(), None).unwrap().ino;
        let mut last = 0;
        for i in 0..2000 {
            let name = format!("f{i}");
            last = m
                .create(d, name.as_bytes(), Kind::File, attrs(), None)
                .unwrap()
                .ino;
            m.write(
                last,
                0,
                bytes::Bytes::from_static(b"x"),
                Timestamp::default(),
            )
            .unwrap();
        }
        let before = m.ns.lock().lookups();
        assert_eq!(m.path_of(last).as_deref(), Some("d/f1999"));
        let spent = m.ns.lock().lookups() - before;
        assert!(spent <= 4, "{spent} lookups for a path two deep");
        let before = m.ns.lock().lookups();
        let rep = m.report();
        let spent = m.ns.lock().lookups() - before;
        assert_eq!(rep.files.len(), 2000);
        // Each of the 2,001 creates is named with its directory, and each
        // file: a few lookups apiece, however many entries `d` holds.
        assert!(spent <= 10 * 4002, "{spent} lookups for 4,002 paths");
    }
}
