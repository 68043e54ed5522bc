//! Durable images: the metadata a model starts from ([`Image`]), an
//! in-memory durable store that applies [`Effect`]s ([`MemStore`]), and the
//! path-level view of a filesystem that tests and checkers compare
//! ([`Tree`]).
//!
//! [`MemStore`] is the reference implementation of the effect contract in
//! [`super::op`]; the backing directory implements the same contract on disk.

use super::Model;
use super::op::Effect;
use super::overlay::Segment;
use super::types::*;
use bytes::Bytes;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;

/// The durable metadata of one inode.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageInode {
    pub kind: Kind,
    pub attrs: Attrs,
    pub size: u64,
    pub target: Option<Bytes>,
    /// Extended attributes.
    pub xattrs: BTreeMap<Name, Bytes>,
}

/// A durable namespace: inodes and directory entries.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Image {
    pub inodes: BTreeMap<Ino, ImageInode>,
    pub entries: BTreeMap<Ino, BTreeMap<Name, Ino>>,
}

impl Image {
    /// Checks that the image is a tree rooted at [`ROOT`]: every entry points
    /// at an inode, every directory has exactly one entry (but the root).
    pub fn validate(&self) -> Result<(), String> {
        match self.inodes.get(&ROOT) {
            Some(i) if i.kind == Kind::Dir => {}
            _ => return Err("the root inode is missing or not a directory".into()),
        }
        let mut dir_parents: BTreeMap<Ino, usize> = BTreeMap::new();
        for (dir, entries) in &self.entries {
            match self.inodes.get(dir) {
                Some(i) if i.kind == Kind::Dir => {}
                _ => {
                    return Err(format!(
                        "entries listed for #{dir}, which is not a directory"
                    ));
                }
            }
            for (name, ino) in entries {
                check_name(name)
                    .map_err(|e| format!("bad name {:?}: {e}", String::from_utf8_lossy(name)))?;
                let i = self.inodes.get(ino).ok_or_else(|| {
                    format!(
                        "entry {:?} points at missing #{ino}",
                        String::from_utf8_lossy(name)
                    )
                })?;
                if i.kind == Kind::Dir {
                    *dir_parents.entry(*ino).or_insert(0) += 1;
                }
            }
        }
        for (ino, i) in &self.inodes {
            if i.kind == Kind::Dir && *ino != ROOT && dir_parents.get(ino) != Some(&1) {
                return Err(format!("directory #{ino} does not have exactly one parent"));
            }
        }
        Ok(())
    }
}

/// The unit of [`MemStore`] file content and of [`FileData`] extents.
pub const CHUNK: u64 = 4096;

/// One chunk of file content, shared between clones of a store until one
/// of them writes it (copy on write): cloning a store costs its chunk
/// count, not its bytes.
pub type Chunk = Arc<[u8; CHUNK as usize]>;

/// Sparse file content: 4 KiB chunks, absent chunks read as zeros.
/// Invariant: bytes of the last chunk past `size` are zero, and no chunk
/// lies wholly past `size`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Sparse {
    size: u64,
    chunks: BTreeMap<u64, Chunk>,
    /// Bytes on disk past `size` (`Effect::WriteKeepSize`), in the order
    /// written: shown when the size grows over them, dropped by a truncate
    /// and by [`MemStore::after_crash`].
    hidden: super::hidden::Hidden,
}

/// A file's content as its size and its non-zero chunks, sharing the
/// store's memory. Canonical: two `FileData` are equal exactly when the
/// files' bytes are (all-zero chunks are left out, and bytes past `size`
/// in the last chunk are zero).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct FileData {
    pub size: u64,
    /// `(byte offset, chunk)`, offsets multiples of [`CHUNK`], ascending.
    pub chunks: Vec<(u64, Chunk)>,
}

impl FileData {
    /// The whole content, holes as zeros.
    pub fn to_vec(&self) -> Vec<u8> {
        let mut v = vec![0u8; self.size as usize];
        for (off, c) in &self.chunks {
            let start = *off as usize;
            let n = (self.size as usize).saturating_sub(start).min(c.len());
            v[start..start + n].copy_from_slice(&c[..n]);
        }
        v
    }

    /// The bytes of chunk `(off, c)` that lie inside the file.
    pub fn within<'a>(&self, off: u64, c: &'a Chunk) -> &'a [u8] {
        let n = self.size.saturating_sub(off).min(CHUNK) as usize;
        &c[..n]
    }
}

impl Sparse {
    /// Grows the size to `size`, showing the hidden bytes below it.
    fn grow(&mut self, size: u64) {
        if size <= self.size {
            return;
        }
        let old = self.size;
        self.size = size;
        for (off, d) in self.hidden.revealed(old, size) {
            self.put(off, &d);
        }
    }

    /// Writes `data` at `offset` without changing the size: bytes past the
    /// end are kept hidden.
    fn write_keep_size(&mut self, offset: u64, data: &bytes::Bytes) {
        let end = offset + data.len() as u64;
        let inside = end.min(self.size);
        if offset < inside {
            self.put(offset, &data[..(inside - offset) as usize]);
        }
        self.hidden.keep(offset, data, self.size);
    }

    fn write(&mut self, offset: u64, data: &[u8]) {
        self.grow(offset);
        self.put(offset, data);
        self.size = self.size.max(offset + data.len() as u64);
    }

    /// Writes `data` at `offset` into the chunks (the caller sets the size).
    fn put(&mut self, offset: u64, data: &[u8]) {
        let mut pos = offset;
        let mut rest = data;
        while !rest.is_empty() {
            let idx = pos / CHUNK;
            let within = (pos % CHUNK) as usize;
            let n = rest.len().min(CHUNK as usize - within);
            let chunk = self
                .chunks
                .entry(idx)
                .or_insert_with(|| Arc::new([0u8; CHUNK as usize]));
            Arc::make_mut(chunk)[within..within + n].copy_from_slice(&rest[..n]);
            rest = &rest[n..];
            pos += n as u64;
        }
    }

    fn zero(&mut self, offset: u64, len: u64) {
        let end = (offset + len).min(self.size);
        let mut pos = offset;
        while pos < end {
            let idx = pos / CHUNK;
            let within = (pos % CHUNK) as usize;
            let n = ((end - pos) as usize).min(CHUNK as usize - within);
            if let Some(c) = self.chunks.get_mut(&idx) {
                Arc::make_mut(c)[within..within + n].fill(0);
            }
            pos += n as u64;
        }
    }

    fn truncate(&mut self, size: u64) {
        self.hidden.clear();
        if size < self.size {
            self.zero(size, self.size - size);
            let first_dead = size.div_ceil(CHUNK);
            self.chunks.split_off(&first_dead);
        }
        self.size = size;
    }

    fn data(&self) -> FileData {
        FileData {
            size: self.size,
            chunks: self
                .chunks
                .iter()
                .filter(|(_, c)| c.iter().any(|&b| b != 0))
                .map(|(idx, c)| (idx * CHUNK, c.clone()))
                .collect(),
        }
    }

    fn read(&self, offset: u64, len: u64, out: &mut Vec<u8>) {
        let end = (offset + len).min(self.size);
        let mut pos = offset;
        while pos < end {
            let idx = pos / CHUNK;
            let within = (pos % CHUNK) as usize;
            let n = ((end - pos) as usize).min(CHUNK as usize - within);
            match self.chunks.get(&idx) {
                Some(c) => out.extend_from_slice(&c[within..within + n]),
                None => out.extend(std::iter::repeat_n(0u8, n)),
            }
            pos += n as u64;
        }
        if end < offset + len {
            let pad = (offset + len - end.max(offset)) as usize;
            out.extend(std::iter::repeat_n(0u8, pad));
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct MemInode {
    kind: Kind,
    attrs: Attrs,
    target: Option<Bytes>,
    data: Sparse,
    xattrs: BTreeMap<Name, Bytes>,
}

/// An in-memory durable store. Applies effects; materialises trees.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MemStore {
    inodes: BTreeMap<Ino, MemInode>,
    entries: BTreeMap<Ino, BTreeMap<Name, Ino>>,
}

impl MemStore {
    /// A store holding only the root directory.
    pub fn new(root_attrs: Attrs) -> MemStore {
        let mut s = MemStore::default();
        s.inodes.insert(
            ROOT,
            MemInode {
                kind: Kind::Dir,
                attrs: root_attrs,
                target: None,
                data: Sparse::default(),
                xattrs: BTreeMap::new(),
            },
        );
        s.entries.insert(ROOT, BTreeMap::new());
        s
    }

    /// Applies one effect (see the contract in [`super::op`]).
    pub fn apply(&mut self, e: &Effect) {
        match e {
            Effect::Alloc { ino, init } => self.alloc(*ino, init),
            Effect::Link {
                dir,
                name,
                ino,
                init,
            } => {
                if !self.entries.contains_key(dir) {
                    return;
                }
                self.alloc(*ino, init);
                if let Some(d) = self.entries.get_mut(dir) {
                    d.insert(name.clone(), *ino);
                }
            }
            Effect::Unlink { dir, name } => {
                if let Some(d) = self.entries.get_mut(dir) {
                    d.remove(name);
                }
            }
            Effect::Write { ino, offset, data } => self.with_data(*ino, |s| s.write(*offset, data)),
            Effect::WriteKeepSize { ino, offset, data } => {
                self.with_data(*ino, |s| s.write_keep_size(*offset, data))
            }
            Effect::Truncate { ino, size } => self.with_data(*ino, |s| s.truncate(*size)),
            Effect::Extend { ino, size } => self.with_data(*ino, |s| s.grow(*size)),
            Effect::Zero { ino, offset, len } => self.with_data(*ino, |s| s.zero(*offset, *len)),
            Effect::SetAttrs { ino, attrs } => {
                if let Some(i) = self.inodes.get_mut(ino) {
                    i.attrs = *attrs;
                }
            }
            Effect::SetXattr { ino, name, value } => {
                if let Some(i) = self.inodes.get_mut(ino) {
                    match value {
                        Some(v) => i.xattrs.insert(name.clone(), v.clone()),
                        None => i.xattrs.remove(name),
                    };
                }
            }
        }
    }

    /// Applies effects in order.
    pub fn apply_all<'a>(&mut self, effects: impl IntoIterator<Item = &'a Effect>) {
        for e in effects {
            self.apply(e);
        }
    }

    fn alloc(&mut self, ino: Ino, init: &super::op::NewInode) {
        if self.inodes.contains_key(&ino) {
            return;
        }
        self.inodes.insert(
            ino,
            MemInode {
                kind: init.kind,
                attrs: init.attrs,
                target: init.target.clone(),
                data: Sparse::default(),
                xattrs: BTreeMap::new(),
            },
        );
        if init.kind == Kind::Dir {
            self.entries.insert(ino, BTreeMap::new());
        }
    }

    fn with_data(&mut self, ino: Ino, f: impl FnOnce(&mut Sparse)) {
        if let Some(i) = self.inodes.get_mut(&ino) {
            if i.kind == Kind::File {
                f(&mut i.data);
            }
        }
    }

    /// The durable inodes no durable entry names (the root aside), each
    /// with what deleting it deletes: itself and, for a directory, every
    /// inode beneath it. The backing store keeps such inodes under
    /// `.durafs/orphans/` until nothing can link them again.
    pub fn orphans(&self) -> Vec<(Ino, Vec<Ino>)> {
        let named: BTreeSet<Ino> = self
            .entries
            .values()
            .flat_map(|d| d.values())
            .copied()
            .collect();
        self.inodes
            .keys()
            .filter(|i| **i != ROOT && !named.contains(i))
            .map(|&ino| (ino, self.beneath(ino)))
            .collect()
    }

    /// `ino` and every inode its entries reach.
    fn beneath(&self, ino: Ino) -> Vec<Ino> {
        let mut out = vec![ino];
        let mut i = 0;
        while i < out.len() {
            if let Some(d) = self.entries.get(&out[i]) {
                out.extend(
                    d.values()
                        .filter(|c| !out.contains(c))
                        .copied()
                        .collect::<Vec<_>>(),
                );
            }
            i += 1;
        }
        out
    }

    /// Deletes orphan `ino` and what it takes ([`MemStore::orphans`]);
    /// false when it is not an orphan.
    pub fn delete_orphan(&mut self, ino: Ino) -> bool {
        let Some((_, takes)) = self.orphans().into_iter().find(|(o, _)| *o == ino) else {
            return false;
        };
        for i in takes {
            self.inodes.remove(&i);
            self.entries.remove(&i);
        }
        true
    }

    /// Reads durable bytes of `ino` (zeros past its end).
    pub fn read(&self, ino: Ino, offset: u64, len: u64, out: &mut Vec<u8>) {
        match self.inodes.get(&ino) {
            Some(i) => i.data.read(offset, len, out),
            None => out.extend(std::iter::repeat_n(0u8, len as usize)),
        }
    }

    /// What a power cut leaves: the inodes reachable from the root, each
    /// directory reached once (the first path in name order wins; a second
    /// parent or a cycle made by a partial rename is dropped, as fsck would).
    pub fn after_crash(&self) -> MemStore {
        let mut out = MemStore::default();
        let mut seen_dirs = BTreeSet::new();
        let mut queue = VecDeque::from([ROOT]);
        seen_dirs.insert(ROOT);
        let mut keep = BTreeSet::from([ROOT]);
        while let Some(dir) = queue.pop_front() {
            let mut kept = BTreeMap::new();
            for (name, ino) in self.entries.get(&dir).into_iter().flatten() {
                let Some(i) = self.inodes.get(ino) else {
                    continue;
                };
                if i.kind == Kind::Dir {
                    if !seen_dirs.insert(*ino) {
                        continue;
                    }
                    queue.push_back(*ino);
                }
                keep.insert(*ino);
                kept.insert(name.clone(), *ino);
            }
            out.entries.insert(dir, kept);
        }
        for ino in keep {
            if let Some(i) = self.inodes.get(&ino) {
                let mut i = i.clone();
                i.data.hidden.clear();
                out.inodes.insert(ino, i);
            }
        }
        out
    }

    /// The metadata image of this store (call on an [`Self::after_crash`]
    /// result, or on a store with no orphans).
    pub fn image(&self) -> Image {
        Image {
            inodes: self
                .inodes
                .iter()
                .map(|(ino, i)| {
                    (
                        *ino,
                        ImageInode {
                            kind: i.kind,
                            attrs: i.attrs,
                            size: i.data.size,
                            target: i.target.clone(),
                            xattrs: i.xattrs.clone(),
                        },
                    )
                })
                .collect(),
            entries: self.entries.clone(),
        }
    }

    /// The path-level view of what is reachable from the root.
    pub fn tree(&self) -> Tree {
        Tree(self.paths(|d| TreeNode::File(d.to_vec())))
    }

    /// [`Self::tree`] with file content as [`FileData`] (no copy of the
    /// bytes: the chunks are shared with this store).
    pub fn sparse_tree(&self) -> BTreeMap<Vec<u8>, (SparseNode, Ino)> {
        self.paths(SparseNode::File)
    }

    /// The paths reachable after a crash, files made by `file`.
    fn paths<T>(&self, file: impl Fn(FileData) -> T) -> BTreeMap<Vec<u8>, (T, Ino)>
    where
        T: From<Kind> + From<Vec<u8>>,
    {
        let mut t = BTreeMap::new();
        let s = self.after_crash();
        s.walk(ROOT, &mut Vec::new(), &mut t, &file);
        t
    }

    fn walk<T: From<Kind> + From<Vec<u8>>>(
        &self,
        dir: Ino,
        prefix: &mut Vec<u8>,
        t: &mut BTreeMap<Vec<u8>, (T, Ino)>,
        file: &impl Fn(FileData) -> T,
    ) {
        for (name, ino) in self.entries.get(&dir).into_iter().flatten() {
            let Some(i) = self.inodes.get(ino) else {
                continue;
            };
            let len = prefix.len();
            if !prefix.is_empty() {
                prefix.push(b'/');
            }
            prefix.extend_from_slice(name);
            let node = match i.kind {
                Kind::File => file(i.data.data()),
                Kind::Symlink => T::from(i.target.as_deref().unwrap_or_default().to_vec()),
                k => T::from(k),
            };
            t.insert(prefix.clone(), (node, *ino));
            if i.kind == Kind::Dir {
                self.walk(*ino, prefix, t, file);
            }
            prefix.truncate(len);
        }
    }
}

impl MemStore {
    /// The extended attributes of every path reachable from the root that
    /// has any (paths as in [`MemStore::tree`]).
    pub fn xattrs(&self) -> BTreeMap<Vec<u8>, BTreeMap<Name, Bytes>> {
        self.tree()
            .0
            .into_iter()
            .filter_map(|(path, (_, ino))| {
                let x = &self.inodes.get(&ino)?.xattrs;
                (!x.is_empty()).then(|| (path, x.clone()))
            })
            .collect()
    }
}

/// The live extended attributes of every path of `model` that has any.
pub fn live_xattrs(model: &Model) -> FsResult<BTreeMap<Vec<u8>, BTreeMap<Name, Bytes>>> {
    let mut out = BTreeMap::new();
    for (path, (_, ino)) in live_tree(model, &MemStore::default())?.0 {
        let mut x = BTreeMap::new();
        for name in model.listxattr(ino)? {
            let v = model.getxattr(ino, &name)?;
            x.insert(name, v);
        }
        if !x.is_empty() {
            out.insert(path, x);
        }
    }
    Ok(out)
}

/// One node of a [`Tree`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TreeNode {
    File(Vec<u8>),
    Dir,
    Symlink(Vec<u8>),
    Special(Kind),
}

/// Not a file nor a symlink: `Dir` or `Special`.
impl From<Kind> for TreeNode {
    fn from(k: Kind) -> TreeNode {
        match k {
            Kind::Dir => TreeNode::Dir,
            k => TreeNode::Special(k),
        }
    }
}

/// A symlink's target.
impl From<Vec<u8>> for TreeNode {
    fn from(target: Vec<u8>) -> TreeNode {
        TreeNode::Symlink(target)
    }
}

/// A [`TreeNode`] whose file content is a [`FileData`].
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum SparseNode {
    File(FileData),
    Dir,
    Symlink(Vec<u8>),
    Special(Kind),
}

/// Not a file nor a symlink: `Dir` or `Special`.
impl From<Kind> for SparseNode {
    fn from(k: Kind) -> SparseNode {
        match k {
            Kind::Dir => SparseNode::Dir,
            k => SparseNode::Special(k),
        }
    }
}

/// A symlink's target.
impl From<Vec<u8>> for SparseNode {
    fn from(target: Vec<u8>) -> SparseNode {
        SparseNode::Symlink(target)
    }
}

/// A filesystem as paths (relative, `/`-separated bytes) to nodes and the
/// inode each path reaches.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Tree(pub BTreeMap<Vec<u8>, (TreeNode, Ino)>);

impl Tree {
    /// The tree without inode numbers, for comparing content only.
    pub fn shapes(&self) -> BTreeMap<Vec<u8>, TreeNode> {
        self.0
            .iter()
            .map(|(p, (n, _))| (p.clone(), n.clone()))
            .collect()
    }
}

/// The live view of `model`, reading durable bytes from `base`.
pub fn live_tree(model: &Model, base: &MemStore) -> FsResult<Tree> {
    let mut t = Tree::default();
    live_walk(model, base, ROOT, &mut Vec::new(), &mut t)?;
    Ok(t)
}

fn live_walk(
    model: &Model,
    base: &MemStore,
    dir: Ino,
    prefix: &mut Vec<u8>,
    t: &mut Tree,
) -> FsResult<()> {
    for (name, ino, kind) in model.readdir(dir)? {
        let len = prefix.len();
        if !prefix.is_empty() {
            prefix.push(b'/');
        }
        prefix.extend_from_slice(&name);
        let node = match kind {
            Kind::File => TreeNode::File(read_all(model, base, ino)?),
            Kind::Dir => TreeNode::Dir,
            Kind::Symlink => TreeNode::Symlink(model.readlink(ino)?.to_vec()),
            k => TreeNode::Special(k),
        };
        t.0.insert(prefix.clone(), (node, ino));
        if kind == Kind::Dir {
            live_walk(model, base, ino, prefix, t)?;
        }
        prefix.truncate(len);
    }
    Ok(())
}

/// Reads the whole live content of file `ino`.
pub fn read_all(model: &Model, base: &MemStore, ino: Ino) -> FsResult<Vec<u8>> {
    let size = model.getattr(ino)?.size;
    let mut v = Vec::new();
    for seg in model.read(ino, 0, size)? {
        match seg {
            Segment::Data(b) => v.extend_from_slice(&b),
            Segment::Zero(n) => v.extend(std::iter::repeat_n(0u8, n as usize)),
            Segment::Base { offset, len } => base.read(ino, offset, len, &mut v),
        }
    }
    Ok(v)
}
