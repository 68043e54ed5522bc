//! The durability model: a pure state machine, with no FUSE and no I/O.
//!
//! It holds two views of a filesystem:
//!
//! * the **live view**, what a reader sees now (read-your-writes);
//! * the **durable view**, what survives a power cut that keeps nothing
//!   unsynced. The model keeps the durable *metadata* of each inode (size,
//!   attributes, whether it exists at all); durable *bytes* live in a store
//!   (the backing directory, or [`MemStore`]) and reach it only through the
//!   [`Effect`]s that fsync, fsyncdir and sync-all return.
//!
//! Between them sits the ordered list of pending operations ([`PendingOp`]):
//! every unsynced change, in the order the filesystem saw it. Crash policies
//! choose subsets of that list ([`crash`]). For fast reads each file also
//! keeps a merged [`overlay::Overlay`] of its unsynced bytes, so a read never
//! replays history.
//!
//! Concurrency: per-inode state sits in a `DashMap` of per-inode mutexes; the
//! read/write/fsync path of a file takes only that file's lock. Namespace
//! operations take the namespace lock, then inode locks in ascending order.
//! A global sequence number (an atomic) orders all operations; the operations
//! one call records take consecutive numbers.
//! The locks come from `sync.rs`, which swaps in shuttle's under the `shuttle`
//! feature so `shuttle_tests.rs` can explore their interleavings.
//!
//! The rules are documented in `docs/durability.md`.

mod commit;
pub mod crash;
mod data;
mod dirty;
pub mod enumerate;
mod extent_map;
pub mod fsync_fail;
pub(crate) mod hidden;
pub mod journal;
mod names;
mod namespace;
pub mod op;
mod oplog;
pub mod overlay;
pub mod pages;
pub mod profile;
mod report;
pub mod rng;
pub mod store;
mod sync;
pub mod types;
mod xattr;

#[cfg(test)]
mod reference;
#[cfg(test)]
mod scenarios;
#[cfg(all(test, feature = "shuttle"))]
mod shuttle_tests;
#[cfg(test)]
mod tests;

pub use fsync_fail::{FailRules, FailedFsync, FsyncFailure};
pub use op::{Effect, EntryChange, NewInode, NsKind, Op, PendingOp, Survival};
pub use overlay::Segment;
pub use report::{FileReport, NameReport, Report};
pub use store::{FileData, Image, ImageInode, MemStore, SparseNode, Tree, TreeNode};
pub use types::*;

use bytes::Bytes;
use namespace::Namespace;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use sync::{AtomicBool, AtomicU64, DashMap, Mutex};

/// Settings of a model.
#[derive(Clone, Copy, Debug)]
pub struct Config {
    pub persistence: Persistence,
    /// Largest file size; writes past it fail with [`FsError::TooBig`].
    pub max_file_size: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            persistence: Persistence::Posix,
            max_file_size: 1 << 44,
        }
    }
}

/// What is durable of an inode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct DurableMeta {
    pub attrs: Attrs,
    pub size: u64,
}

/// Per-inode state.
#[derive(Clone, Debug)]
pub(crate) struct Node {
    pub kind: Kind,
    pub attrs: Attrs,
    pub nlink: u32,
    pub size: u64,
    /// Symlink target (boxed: one word for every other inode).
    pub target: Option<Box<Bytes>>,
    /// `None`: nothing of this inode is durable yet. Boxed: a pending new
    /// file pays one word, not the whole record ([`Node::durable`]).
    durable: Option<Box<DurableMeta>>,
    /// Durable bytes below this offset are still live; above it the live
    /// view reads the overlay or zeros. Invariant: `base_end <= size` and
    /// `base_end <= durable size`.
    pub base_end: u64,
    pub overlay: overlay::Overlay,
    /// Unsynced data and attribute operations on this inode, by sequence.
    pub pending: oplog::OpLog,
    /// Live extended attributes (the durable ones are in the store; the
    /// difference is the pending [`Op::SetXattr`] operations).
    /// `None` when there are none (most files: one word instead of a map).
    // The box is the point: the field is 8 bytes, an empty map 24.
    #[allow(clippy::box_collection)]
    pub xattrs: Option<Box<BTreeMap<Name, Bytes>>>,
    /// Dropped by [`Model::forget`]. A call that took the inode from the
    /// map before that and locks it after finds this set and fails as if
    /// it had come later, so nothing is done to a node no one can see.
    pub gone: bool,
    /// A truncate left the file at size 0 since its last close (ext4's
    /// `EXT4_STATE_DA_ALLOC_CLOSE`, set in `ext4_truncate`): the next close
    /// starts its writeback ([`Model::release`]).
    pub truncated_to_zero: bool,
    /// The sequence number under which the model's dirty index holds this
    /// inode, 0 when it holds none (`dirty.rs`).
    pub index_mark: u64,
}

impl Node {
    fn stat(&self, ino: Ino) -> Stat {
        Stat {
            ino,
            kind: self.kind,
            size: self.size,
            nlink: self.nlink,
            attrs: self.attrs,
        }
    }

    fn init(&self) -> NewInode {
        NewInode {
            kind: self.kind,
            attrs: self.attrs,
            target: self.target.as_deref().cloned(),
        }
    }

    /// What is durable of this inode; `None` when nothing is yet.
    pub(crate) fn durable(&self) -> Option<DurableMeta> {
        self.durable.as_deref().copied()
    }

    pub(crate) fn set_durable(&mut self, d: Option<DurableMeta>) {
        match (&mut self.durable, d) {
            (Some(b), Some(d)) => **b = d,
            (slot, d) => *slot = d.map(Box::new),
        }
    }
}

/// The durability model. All methods take `&self` and are safe to call from
/// many threads.
#[derive(Debug)]
pub struct Model {
    cfg: Config,
    seq: AtomicU64,
    next_ino: AtomicU64,
    nodes: DashMap<Ino, Arc<Mutex<Node>>>,
    ns: Mutex<Namespace>,
    cut: AtomicBool,
    dirty_bytes: AtomicU64,
    /// The inodes with pending data, by their oldest data operation
    /// (`dirty.rs`).
    dirty_index: dirty::DirtyIndex,
}

impl Model {
    /// An empty filesystem whose root directory is durable.
    pub fn new(cfg: Config, root_attrs: Attrs) -> Model {
        let mut image = Image::default();
        image.inodes.insert(
            ROOT,
            ImageInode {
                kind: Kind::Dir,
                attrs: root_attrs,
                size: 0,
                target: None,
                xattrs: BTreeMap::new(),
            },
        );
        image.entries.insert(ROOT, BTreeMap::new());
        match Model::from_image(cfg, &image) {
            Ok(m) => m,
            Err(_) => unreachable!("a lone root directory is a valid image"),
        }
    }

    /// A model whose durable and live views are both `image`.
    pub fn from_image(cfg: Config, image: &Image) -> Result<Model, String> {
        image.validate()?;
        let nodes = DashMap::new();
        let mut nlinks: HashMap<Ino, u32> = HashMap::new();
        let mut ns = Namespace::default();
        for dir in image.entries.keys() {
            ns.add_dir(*dir);
        }
        for (dir, entries) in &image.entries {
            for (name, ino) in entries {
                let kind = image.inodes.get(ino).map(|i| i.kind).ok_or("dangling")?;
                ns.insert(*dir, name, *ino, kind);
                if kind == Kind::Dir {
                    *nlinks.entry(*dir).or_insert(0) += 1;
                } else {
                    *nlinks.entry(*ino).or_insert(0) += 1;
                }
            }
        }
        for (ino, i) in &image.inodes {
            let nlink = if i.kind == Kind::Dir {
                2 + nlinks.get(ino).copied().unwrap_or(0)
            } else {
                nlinks.get(ino).copied().unwrap_or(0)
            };
            let size = match i.kind {
                Kind::File => i.size,
                Kind::Symlink => i.target.as_ref().map_or(0, |t| t.len() as u64),
                _ => 0,
            };
            let node = Node {
                kind: i.kind,
                attrs: i.attrs,
                nlink,
                size,
                target: i.target.clone().map(Box::new),
                durable: Some(Box::new(DurableMeta {
                    attrs: i.attrs,
                    size,
                })),
                base_end: size,
                overlay: overlay::Overlay::default(),
                pending: oplog::OpLog::default(),
                xattrs: (!i.xattrs.is_empty()).then(|| Box::new(i.xattrs.clone())),
                gone: false,
                truncated_to_zero: false,
                index_mark: 0,
            };
            nodes.insert(*ino, Arc::new(Mutex::new(node)));
        }
        let max_ino = image.inodes.keys().max().copied().unwrap_or(ROOT);
        Ok(Model {
            cfg,
            seq: AtomicU64::new(1),
            next_ino: AtomicU64::new(max_ino + 1),
            nodes,
            ns: Mutex::new(ns),
            cut: AtomicBool::new(false),
            dirty_bytes: AtomicU64::new(0),
            dirty_index: dirty::DirtyIndex::default(),
        })
    }

    /// The model's settings.
    pub fn config(&self) -> Config {
        self.cfg
    }

    fn next_seq(&self) -> u64 {
        self.next_seqs(1)
    }

    /// The sequence number the next recorded operation gets: every
    /// operation recorded so far has a smaller one.
    pub fn seq_watermark(&self) -> u64 {
        self.seq.load(Ordering::SeqCst)
    }

    /// The first of `n` consecutive sequence numbers, for a call that
    /// records `n` operations: no other call's operation falls between them.
    fn next_seqs(&self, n: u64) -> u64 {
        self.seq.fetch_add(n, Ordering::SeqCst)
    }

    fn alloc_ino(&self) -> Ino {
        self.next_ino.fetch_add(1, Ordering::SeqCst)
    }

    pub(crate) fn node(&self, ino: Ino) -> FsResult<Arc<Mutex<Node>>> {
        self.check_cut()?;
        self.nodes
            .get(&ino)
            .map(|n| Arc::clone(n.value()))
            .ok_or(FsError::NotFound)
    }

    /// Checks that calls on node `n` (locked) may go on: the model is not
    /// cut and `n` was not forgotten.
    fn usable(&self, n: &Node) -> FsResult<()> {
        if n.gone {
            return Err(FsError::NotFound);
        }
        self.check_cut()
    }

    fn check_cut(&self) -> FsResult<()> {
        if self.cut.load(Ordering::SeqCst) {
            Err(FsError::Cut)
        } else {
            Ok(())
        }
    }

    /// Stops the model: every later call fails with [`FsError::Cut`], and
    /// returns the pending operations at that instant. A call that held an
    /// inode lock when this began completes before that inode is collected.
    pub fn cut(&self) -> Vec<PendingOp> {
        self.cut.store(true, Ordering::SeqCst);
        self.collect_pending()
    }

    /// True once [`Model::cut`] was called.
    pub fn is_cut(&self) -> bool {
        self.cut.load(Ordering::SeqCst)
    }

    /// Every pending operation, in global order.
    pub fn pending_ops(&self) -> Vec<PendingOp> {
        self.collect_pending()
    }

    fn collect_pending(&self) -> Vec<PendingOp> {
        let ns = self.ns.lock();
        let mut out: Vec<PendingOp> = ns
            .pending
            .iter()
            .map(|(s, op)| PendingOp {
                seq: *s,
                op: op.clone(),
            })
            .collect();
        for ino in self.sorted_inos() {
            if let Some(node) = self.nodes.get(&ino).map(|n| Arc::clone(n.value())) {
                let node = node.lock();
                out.extend(node.pending.iter().map(|(s, op)| PendingOp {
                    seq: *s,
                    op: op.clone(),
                }));
            }
        }
        drop(ns);
        out.sort_by_key(|p| p.seq);
        out
    }

    /// Every inode the model holds, ascending.
    pub fn inodes(&self) -> Vec<Ino> {
        self.sorted_inos()
    }

    fn sorted_inos(&self) -> Vec<Ino> {
        let mut inos: Vec<Ino> = self.nodes.iter().map(|e| *e.key()).collect();
        inos.sort_unstable();
        inos
    }

    /// Bytes written and not yet durable (counting overwritten bytes again).
    pub fn dirty_bytes(&self) -> u64 {
        self.dirty_bytes.load(Ordering::Relaxed)
    }

    /// Looks `name` up in directory `parent`.
    pub fn lookup(&self, parent: Ino, name: &[u8]) -> FsResult<Stat> {
        self.check_cut()?;
        if name.len() > NAME_MAX {
            // As ext4 and tmpfs: a name no entry can have is an error of
            // its own, not a miss.
            return Err(FsError::NameTooLong);
        }
        let ino = {
            let ns = self.ns.lock();
            let dir = self.entries(&ns, parent)?;
            dir.get(name).map(|e| e.0).ok_or(FsError::NotFound)?
        };
        self.getattr(ino)
    }

    /// The live entries of directory `dir`: `NotDir` when `dir` is another
    /// kind of inode, `NotFound` when it is gone.
    fn entries<'n>(
        &self,
        ns: &'n Namespace,
        dir: Ino,
    ) -> FsResult<&'n BTreeMap<Name, (Ino, Kind)>> {
        ns.dir(dir).ok_or_else(|| self.not_dir_or_gone(dir))
    }

    fn not_dir_or_gone(&self, ino: Ino) -> FsError {
        match self.nodes.get(&ino) {
            Some(n) if n.value().lock().kind != Kind::Dir => FsError::NotDir,
            _ => FsError::NotFound,
        }
    }

    /// The attributes of `ino`.
    pub fn getattr(&self, ino: Ino) -> FsResult<Stat> {
        let node = self.node(ino)?;
        let n = node.lock();
        self.usable(&n)?;
        Ok(n.stat(ino))
    }

    /// The entries of directory `dir`, in name order.
    pub fn readdir(&self, dir: Ino) -> FsResult<Vec<(Name, Ino, Kind)>> {
        self.check_cut()?;
        let ns = self.ns.lock();
        let entries = self.entries(&ns, dir)?;
        Ok(entries
            .iter()
            .map(|(name, (ino, kind))| (name.clone(), *ino, *kind))
            .collect())
    }

    /// The live parent of directory `dir` (the root is its own parent).
    pub fn parent_of(&self, dir: Ino) -> FsResult<Ino> {
        self.check_cut()?;
        if dir == ROOT {
            return Ok(ROOT);
        }
        let ns = self.ns.lock();
        ns.parent(dir).map(|p| p.0).ok_or(FsError::NotFound)
    }

    /// The target of symlink `ino`.
    pub fn readlink(&self, ino: Ino) -> FsResult<Bytes> {
        let node = self.node(ino)?;
        let n = node.lock();
        self.usable(&n)?;
        n.target.as_deref().cloned().ok_or(FsError::Invalid)
    }

    /// Drops an inode the caller no longer references, if it has no name
    /// and nothing unsynced. Returns true when it was dropped.
    pub fn forget(&self, ino: Ino) -> bool {
        if ino == ROOT {
            return false;
        }
        self.nodes
            .remove_if(&ino, |_, n| {
                let mut n = n.lock();
                n.gone = n.nlink == 0 && n.pending.is_empty();
                if n.gone {
                    // A stale entry (a failed fsync's flush leaves one).
                    self.reindex(ino, &mut n);
                }
                n.gone
            })
            .is_some()
    }

    /// Those of `inos` that the model may still give a durable entry: the
    /// model holds the inode (a name, an open file, unsynced data), or a
    /// pending namespace operation names it (as an entry's target, as the
    /// directory it changes, or as the other side of a rename). Once an
    /// inode is not referenced it never is again: every new operation needs
    /// a live inode.
    pub fn referenced(&self, inos: &[Ino]) -> std::collections::BTreeSet<Ino> {
        let mut out: std::collections::BTreeSet<Ino> = inos
            .iter()
            .copied()
            .filter(|i| self.nodes.contains_key(i))
            .collect();
        if out.len() == inos.len() {
            return out;
        }
        let want: std::collections::BTreeSet<Ino> = inos.iter().copied().collect();
        let ns = self.ns.lock();
        for op in ns.pending.values() {
            if let Op::Names {
                dir, changes, peer, ..
            } = op
            {
                let named = changes
                    .iter()
                    .filter_map(|c| c.target.as_ref().map(|t| t.0));
                for i in std::iter::once(*dir)
                    .chain(peer.as_ref().map(|p| p.0))
                    .chain(named)
                {
                    if want.contains(&i) {
                        out.insert(i);
                    }
                }
            }
        }
        out
    }

    /// A path of `ino` in the live namespace, for reports (`None` if it has
    /// no name): O(depth), through the namespace's parent and reverse
    /// links.
    pub fn path_of(&self, ino: Ino) -> Option<String> {
        let ns = self.ns.lock();
        report::path_in(&ns, ino)
    }

    /// The sequence number of the newest pending write of `len` bytes at
    /// `offset` to file `ino` (a fault marks the write it fired on).
    pub fn pending_write_seq(&self, ino: Ino, offset: u64, len: u64) -> Option<u64> {
        let node = self.nodes.get(&ino).map(|n| Arc::clone(n.value()))?;
        let n = node.lock();
        n.pending.iter().rev().find_map(|(seq, op)| match op {
            Op::Write {
                offset: o, data, ..
            } if *o == offset && data.len() as u64 == len => Some(*seq),
            _ => None,
        })
    }
}
