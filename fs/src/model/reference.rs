//! A deliberately naive reference filesystem for the property tests: whole
//! byte vectors, a pending list of its own, and the durability rules applied
//! literally ("fsync applies that inode's pending operations in order").

use super::op::Survival;
use super::store::TreeNode;
use super::types::*;
use std::collections::BTreeMap;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RInode {
    pub kind: Kind,
    pub data: Vec<u8>,
    pub target: Vec<u8>,
    pub xattrs: BTreeMap<Vec<u8>, Vec<u8>>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RTree {
    pub inodes: BTreeMap<Ino, RInode>,
    pub dirs: BTreeMap<Ino, BTreeMap<Name, Ino>>,
    /// Bytes on disk past a file's end, one by one (a crash state's data
    /// kept without its size change): shown when the size grows over them,
    /// gone with a truncate.
    pub hidden: BTreeMap<(Ino, u64), u8>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ROp {
    Names {
        dir: Ino,
        changes: Vec<(Name, Option<(Ino, RInode)>)>,
        /// The two halves of a rename across directories share an id.
        pair: Option<u64>,
        /// The half of a rename that puts a file on another file's name.
        over: bool,
    },
    Write {
        ino: Ino,
        off: u64,
        data: Vec<u8>,
    },
    Truncate {
        ino: Ino,
        size: u64,
    },
    Allocate {
        ino: Ino,
        end: u64,
    },
    Punch {
        ino: Ino,
        off: u64,
        len: u64,
    },
    Attr {
        ino: Ino,
    },
    /// An extended attribute set (`Some`) or removed (`None`).
    Xattr {
        ino: Ino,
        name: Vec<u8>,
        value: Option<Vec<u8>>,
    },
    /// ext4: the first close after a truncate to 0, with writes pending.
    CloseFlush {
        ino: Ino,
    },
}

impl ROp {
    fn ino(&self) -> Option<Ino> {
        match self {
            ROp::Names { .. } => None,
            ROp::Write { ino, .. }
            | ROp::Truncate { ino, .. }
            | ROp::Allocate { ino, .. }
            | ROp::Punch { ino, .. }
            | ROp::Attr { ino }
            | ROp::Xattr { ino, .. }
            | ROp::CloseFlush { ino } => Some(*ino),
        }
    }

    /// A data or size change, which fdatasync makes durable.
    fn is_data(&self) -> bool {
        matches!(
            self,
            ROp::Write { .. }
                | ROp::Truncate { .. }
                | ROp::Allocate { .. }
                | ROp::Punch { .. }
                | ROp::CloseFlush { .. }
        )
    }
}

impl RTree {
    pub fn with_root() -> RTree {
        let mut t = RTree::default();
        t.inodes.insert(
            ROOT,
            RInode {
                kind: Kind::Dir,
                data: vec![],
                target: vec![],
                xattrs: BTreeMap::new(),
            },
        );
        t.dirs.insert(ROOT, BTreeMap::new());
        t
    }

    /// Applies `op` with the effect contract: links allocate, data on a
    /// missing inode is skipped.
    pub fn apply(&mut self, op: &ROp, how: &Survival) {
        match op {
            ROp::Names { dir, changes, .. } => {
                if !self.dirs.contains_key(dir) {
                    return;
                }
                for (name, t) in changes {
                    match t {
                        Some((ino, init)) => {
                            if !self.inodes.contains_key(ino) {
                                let fresh = RInode {
                                    data: vec![],
                                    xattrs: BTreeMap::new(),
                                    ..init.clone()
                                };
                                if fresh.kind == Kind::Dir {
                                    self.dirs.insert(*ino, BTreeMap::new());
                                }
                                self.inodes.insert(*ino, fresh);
                            }
                            if let Some(d) = self.dirs.get_mut(dir) {
                                d.insert(name.clone(), *ino);
                            }
                        }
                        None => {
                            if let Some(d) = self.dirs.get_mut(dir) {
                                d.remove(name);
                            }
                        }
                    }
                }
            }
            ROp::Xattr { ino, name, value } => {
                if let Some(i) = self.inodes.get_mut(ino) {
                    match value {
                        Some(v) => i.xattrs.insert(name.clone(), v.clone()),
                        None => i.xattrs.remove(name),
                    };
                }
            }
            other => {
                let Some(i) = other.ino().and_then(|ino| self.inodes.get_mut(&ino)) else {
                    return;
                };
                if i.kind != Kind::File {
                    return;
                }
                let ino = other.ino().unwrap_or(0);
                let (d, hidden) = (&mut i.data, &mut self.hidden);
                let grow = |d: &mut Vec<u8>, hidden: &mut BTreeMap<(Ino, u64), u8>, end: u64| {
                    for pos in d.len() as u64..end {
                        d.push(hidden.get(&(ino, pos)).copied().unwrap_or(0));
                    }
                };
                let zero = |d: &mut Vec<u8>, s: u64, e: u64| {
                    for pos in s..e.min(d.len() as u64) {
                        d[pos as usize] = 0;
                    }
                };
                match (other, how) {
                    (ROp::Write { off, data, .. }, Survival::Full) => {
                        grow(d, hidden, *off);
                        write(d, *off, data)
                    }
                    (ROp::Write { off, data, .. }, Survival::MetaOnly) => {
                        grow(d, hidden, off + data.len() as u64)
                    }
                    (ROp::Write { off, data, .. }, Survival::Torn { persisted, .. }) => {
                        grow(d, hidden, off + data.len() as u64);
                        for (s, e) in persisted {
                            let from = (s - off) as usize;
                            let to = (e - off) as usize;
                            write(d, *s, &data[from..to]);
                        }
                    }
                    (ROp::Write { off, data, .. }, Survival::DataOnly { persisted }) => {
                        for (s, e) in persisted {
                            for pos in *s..*e {
                                let b = data[(pos - off) as usize];
                                match d.get_mut(pos as usize) {
                                    Some(x) => *x = b,
                                    None => {
                                        hidden.insert((ino, pos), b);
                                    }
                                }
                            }
                        }
                    }
                    (ROp::Truncate { .. }, Survival::DataOnly { persisted }) => {
                        for (s, e) in persisted {
                            zero(d, *s, *e);
                        }
                    }
                    (ROp::Truncate { size, .. }, _) => {
                        hidden.retain(|(n, _), _| *n != ino);
                        d.resize(*size as usize, 0)
                    }
                    (ROp::Allocate { .. }, Survival::DataOnly { .. }) => {}
                    (ROp::Allocate { end, .. }, _) => grow(d, hidden, *end),
                    (ROp::Punch { off, len, .. }, Survival::Full) => zero(d, *off, off + len),
                    (
                        ROp::Punch { .. },
                        Survival::Torn { persisted, .. } | Survival::DataOnly { persisted },
                    ) => {
                        for (s, e) in persisted {
                            zero(d, *s, *e);
                        }
                    }
                    _ => {}
                }
            }
        }
    }

    /// The extended attributes of every reachable path that has any (paths
    /// as in [`RTree::shapes`]).
    pub fn xattrs(&self) -> BTreeMap<Vec<u8>, BTreeMap<Vec<u8>, Vec<u8>>> {
        let mut out = BTreeMap::new();
        let mut seen = std::collections::BTreeSet::from([ROOT]);
        let mut queue = std::collections::VecDeque::from([(ROOT, Vec::new())]);
        while let Some((dir, prefix)) = queue.pop_front() {
            for (name, ino) in self.dirs.get(&dir).into_iter().flatten() {
                let Some(i) = self.inodes.get(ino) else {
                    continue;
                };
                let mut p = prefix.clone();
                if !p.is_empty() {
                    p.push(b'/');
                }
                p.extend_from_slice(name);
                if i.kind == Kind::Dir {
                    if !seen.insert(*ino) {
                        continue;
                    }
                    queue.push_back((*ino, p.clone()));
                }
                if !i.xattrs.is_empty() {
                    out.insert(p, i.xattrs.clone());
                }
            }
        }
        out
    }

    /// Paths reachable from the root, as in `MemStore::tree` (first path in
    /// name order wins for a directory reached twice).
    pub fn shapes(&self) -> BTreeMap<Vec<u8>, TreeNode> {
        let mut out = BTreeMap::new();
        let mut seen = std::collections::BTreeSet::from([ROOT]);
        let mut queue = std::collections::VecDeque::from([(ROOT, Vec::new())]);
        while let Some((dir, prefix)) = queue.pop_front() {
            for (name, ino) in self.dirs.get(&dir).into_iter().flatten() {
                let Some(i) = self.inodes.get(ino) else {
                    continue;
                };
                let mut p = prefix.clone();
                if !p.is_empty() {
                    p.push(b'/');
                }
                p.extend_from_slice(name);
                let node = match i.kind {
                    Kind::File => TreeNode::File(i.data.clone()),
                    Kind::Dir => {
                        if !seen.insert(*ino) {
                            continue;
                        }
                        queue.push_back((*ino, p.clone()));
                        TreeNode::Dir
                    }
                    Kind::Symlink => TreeNode::Symlink(i.target.clone()),
                    k => TreeNode::Special(k),
                };
                out.insert(p, node);
            }
        }
        out
    }
}

fn write(d: &mut Vec<u8>, off: u64, data: &[u8]) {
    let end = off as usize + data.len();
    if d.len() < end {
        d.resize(end, 0);
    }
    d[off as usize..end].copy_from_slice(data);
}

/// Live tree, durable tree and pending list, with literal rules.
#[derive(Clone, Debug)]
pub struct RefFs {
    pub live: RTree,
    pub durable: RTree,
    pub pending: Vec<ROp>,
    pub persistence: Persistence,
    /// Files a truncate left empty since their last close.
    pub truncated_to_zero: std::collections::BTreeSet<Ino>,
}

impl RefFs {
    pub fn new(persistence: Persistence) -> RefFs {
        RefFs {
            live: RTree::with_root(),
            durable: RTree::with_root(),
            pending: Vec::new(),
            persistence,
            truncated_to_zero: Default::default(),
        }
    }

    /// Records `op` and applies it to the live tree.
    pub fn record(&mut self, op: ROp) {
        if let ROp::Truncate { ino, size: 0 } = op {
            self.truncated_to_zero.insert(ino);
        }
        self.live.apply(&op, &Survival::Full);
        self.pending.push(op);
    }

    /// A close of `ino`: under ext4, the first one after a truncate to 0
    /// records its writeback when writes to it are pending.
    pub fn release(&mut self, ino: Ino) {
        if !self.truncated_to_zero.remove(&ino) || !self.persistence.rules().auto_da_alloc {
            return;
        }
        if self
            .pending
            .iter()
            .any(|op| matches!(op, ROp::Write { ino: i, .. } if *i == ino))
        {
            self.record(ROp::CloseFlush { ino });
        }
    }

    /// Records a write: as two operations when it runs past the end of the
    /// 4096-byte page holding the file's last byte (a size not a multiple
    /// of 4096), split at that page's end.
    pub fn record_write(&mut self, ino: Ino, off: u64, data: Vec<u8>) {
        let size = self
            .live
            .inodes
            .get(&ino)
            .map_or(0, |i| i.data.len() as u64);
        let page_end = size.div_ceil(4096) * 4096;
        let end = off + data.len() as u64;
        if size % 4096 != 0 && off < page_end && end > page_end {
            let (a, b) = data.split_at((page_end - off) as usize);
            self.record(ROp::Write {
                ino,
                off,
                data: a.to_vec(),
            });
            self.record(ROp::Write {
                ino,
                off: page_end,
                data: b.to_vec(),
            });
        } else {
            self.record(ROp::Write { ino, off, data });
        }
    }

    fn commit(&mut self, pick: impl Fn(&ROp) -> bool) {
        let picked: Vec<bool> = self.pending.iter().map(pick).collect();
        self.commit_at(|i| picked[i]);
    }

    /// Commits the pending operations whose positions `pick` selects.
    fn commit_at(&mut self, pick: impl Fn(usize) -> bool) {
        let mut rest = Vec::new();
        let pending = std::mem::take(&mut self.pending);
        for (i, op) in pending.iter().enumerate() {
            if pick(i) {
                match op {
                    ROp::Names { dir, .. } => self.ensure_durable(*dir),
                    other => {
                        if let Some(ino) = other.ino() {
                            self.ensure_durable(ino);
                        }
                    }
                }
                self.durable.apply(op, &Survival::Full);
                self.auto_da_alloc(op, &pending[..i]);
            } else {
                rest.push(op.clone());
            }
        }
        self.pending = rest;
    }

    /// ext4: a committed rename of a file onto another file's name commits
    /// the size the file's writes in `before` gave it (unless a truncate,
    /// punch or allocation is among them); their data stays pending.
    fn auto_da_alloc(&mut self, op: &ROp, before: &[ROp]) {
        let ROp::Names {
            changes,
            over: true,
            ..
        } = op
        else {
            return;
        };
        if !self.persistence.rules().auto_da_alloc {
            return;
        }
        for ino in changes
            .iter()
            .filter_map(|(_, t)| t.as_ref().map(|(i, _)| *i))
        {
            let Some(durable) = self.durable.inodes.get(&ino).map(|i| i.data.len() as u64) else {
                continue;
            };
            let mut size = Some(durable);
            for o in before.iter().filter(|o| o.ino() == Some(ino)) {
                size = match o {
                    ROp::Write { off, data, .. } => size.map(|s| s.max(off + data.len() as u64)),
                    ROp::Truncate { .. } | ROp::Punch { .. } | ROp::Allocate { .. } => None,
                    _ => size,
                };
            }
            if let (Some(size), Some(i)) = (size, self.durable.inodes.get_mut(&ino)) {
                if size > durable {
                    i.data.resize(size as usize, 0);
                }
            }
        }
    }

    /// btrfs's fsync of `ino`: the positions of the pending names that link
    /// it, and, again for each picked one, the other half of its rename,
    /// the earlier names changes of the same directory and names, and the
    /// names linking its directory if that is not durable yet.
    fn own_names(&self, ino: Ino) -> std::collections::BTreeSet<usize> {
        let links = |op: &ROp, x: Ino| match op {
            ROp::Names { changes, .. } => changes
                .iter()
                .any(|(_, t)| t.as_ref().is_some_and(|(i, _)| *i == x)),
            _ => false,
        };
        let mut picked: std::collections::BTreeSet<usize> = (0..self.pending.len())
            .filter(|i| links(&self.pending[*i], ino))
            .collect();
        loop {
            let mut more = Vec::new();
            for &i in &picked {
                let ROp::Names {
                    dir, pair, changes, ..
                } = &self.pending[i]
                else {
                    continue;
                };
                for (j, op) in self.pending.iter().enumerate() {
                    let partner =
                        pair.is_some() && matches!(op, ROp::Names { pair: p, .. } if p == pair);
                    let new_dir = !self.durable.inodes.contains_key(dir) && links(op, *dir);
                    let same_names = j < i
                        && matches!(op, ROp::Names { dir: d, changes: c, .. }
                            if d == dir && c.iter().any(|(n, _)| changes.iter().any(|(m, _)| n == m)));
                    if partner || new_dir || same_names {
                        more.push(j);
                    }
                }
            }
            let before = picked.len();
            picked.extend(more);
            if picked.len() == before {
                return picked;
            }
        }
    }

    fn ensure_durable(&mut self, ino: Ino) {
        if !self.durable.inodes.contains_key(&ino) {
            if let Some(i) = self.live.inodes.get(&ino) {
                let fresh = RInode {
                    data: vec![],
                    xattrs: BTreeMap::new(),
                    ..i.clone()
                };
                if fresh.kind == Kind::Dir {
                    self.durable.dirs.insert(ino, BTreeMap::new());
                }
                self.durable.inodes.insert(ino, fresh);
            }
        }
    }

    pub fn fsync(&mut self, ino: Ino, datasync: bool) {
        if self.persistence.fsync_commits_names() {
            // ext4's fdatasync: the journal up to the file's last data change.
            let upto = if datasync && self.persistence.datasync_forces_only_data() {
                self.pending
                    .iter()
                    .rposition(|op| op.ino() == Some(ino) && op.is_data())
                    .unwrap_or(0)
            } else {
                self.pending.len()
            };
            let names: Vec<bool> = (0..self.pending.len())
                .map(|i| i < upto && matches!(self.pending[i], ROp::Names { .. }))
                .collect();
            self.commit_at(|i| names[i]);
        }
        if self.persistence.fsync_commits_own_names() {
            let own = self.own_names(ino);
            self.commit_at(|i| own.contains(&i));
        }
        self.ensure_durable(ino);
        self.commit(|op| {
            op.ino() == Some(ino)
                && (!datasync || !matches!(op, ROp::Attr { .. } | ROp::Xattr { .. }))
        });
    }

    pub fn fsyncdir(&mut self, dir: Ino) {
        if self.persistence.fsync_commits_names() {
            self.commit(|op| matches!(op, ROp::Names { .. }));
        } else {
            self.commit(|op| matches!(op, ROp::Names { dir: d, .. } if *d == dir));
        }
        // fsync(2) of a directory also makes the directory inode durable,
        // even while no durable entry names it.
        self.ensure_durable(dir);
        self.commit(|op| op.ino() == Some(dir));
    }

    pub fn sync_all(&mut self) {
        self.commit(|_| true);
    }

    /// The durable tree with the pending operations `kept` applied.
    pub fn crash(&self, kept: &[(usize, Survival)]) -> BTreeMap<Vec<u8>, TreeNode> {
        self.crash_tree(kept).shapes()
    }

    /// As [`RefFs::crash`], the whole tree.
    pub fn crash_tree(&self, kept: &[(usize, Survival)]) -> RTree {
        let mut t = self.durable.clone();
        for (i, how) in kept {
            t.apply(&self.pending[*i], how);
        }
        t
    }
}
