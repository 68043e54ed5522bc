//! Crash states at the cost of what differs: a [`SparseSnapshot`] holds
//! each file as a [`FileData`] (its size and non-zero 4 KiB chunks, shared
//! with the replayed model), so a state of a 64 MiB filesystem image costs
//! the image's written chunks, not 64 MiB, to generate, hash and write.
//!
//! For one traced file (e.g. a loop-device image) a state is "base +
//! extents": [`FileData::extents`] gives the chunks where a state differs
//! from a base (say the image's content at the crash point, or at the
//! previous state), and [`FileData::patch`] turns a file holding the base
//! into the state by writing only those; [`FileData::write_into`] writes a
//! state into any file from scratch, in proportion to its data.

use super::{Content, SnapEntry, SnapNode, Snapshot, materialise};
use crate::model::store::{CHUNK, Chunk};
use crate::model::{FileData, MemStore, SparseNode};
use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;

/// One path of a [`SparseSnapshot`].
pub type SparseEntry = SnapEntry<FileData>;

/// A post-crash tree whose files are [`FileData`]: a [`Snapshot`] without
/// the copies. Equal exactly when the [`Snapshot`]s are equal.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct SparseSnapshot {
    pub entries: Vec<SparseEntry>,
}

impl SparseSnapshot {
    /// The tree a remount after a crash finds in `store` (as
    /// [`Snapshot::of`]).
    pub fn of(store: &MemStore) -> SparseSnapshot {
        let image = store.image();
        let mut first: HashMap<u64, Vec<u8>> = HashMap::new();
        let entries = store
            .sparse_tree()
            .into_iter()
            .map(|(path, (node, ino))| {
                let inode = image.inodes.get(&ino);
                let mode = inode.map_or(0o644, |i| i.attrs.mode) & 0o7777;
                let mut xattrs: Vec<(Vec<u8>, bytes::Bytes)> = inode
                    .map(|i| i.xattrs.clone().into_iter().collect())
                    .unwrap_or_default();
                let node = match node {
                    SparseNode::File(data) => match first.get(&ino) {
                        Some(p) => {
                            xattrs.clear();
                            SnapNode::HardLink(p.clone())
                        }
                        None => {
                            first.insert(ino, path.clone());
                            SnapNode::File(data)
                        }
                    },
                    SparseNode::Dir => SnapNode::Dir,
                    SparseNode::Symlink(t) => SnapNode::Symlink(t),
                    SparseNode::Special(k) => SnapNode::Special(k),
                };
                SnapEntry {
                    path,
                    node,
                    mode,
                    xattrs,
                }
            })
            .collect();
        SparseSnapshot { entries }
    }

    /// The same tree with every file's bytes copied out.
    pub fn to_snapshot(&self) -> Snapshot {
        let entries = self
            .entries
            .iter()
            .map(|e| SnapEntry {
                path: e.path.clone(),
                node: match &e.node {
                    SnapNode::File(d) => SnapNode::File(d.to_vec()),
                    SnapNode::HardLink(p) => SnapNode::HardLink(p.clone()),
                    SnapNode::Dir => SnapNode::Dir,
                    SnapNode::Symlink(t) => SnapNode::Symlink(t.clone()),
                    SnapNode::Special(k) => SnapNode::Special(*k),
                },
                mode: e.mode,
                xattrs: e.xattrs.clone(),
            })
            .collect();
        Snapshot { entries }
    }

    /// The content of the file at `path` (relative, `/`-separated; a hard
    /// link's later names too).
    pub fn file(&self, path: &[u8]) -> Option<&FileData> {
        let e = self.entries.iter().find(|e| e.path == path)?;
        match &e.node {
            SnapNode::File(d) => Some(d),
            SnapNode::HardLink(first) => self.file(first),
            _ => None,
        }
    }

    /// Writes the tree into `dir`, which must exist and be empty, as
    /// [`Snapshot::materialise`] does, but each file sparse: only its
    /// non-zero chunks are written, the rest are holes.
    pub fn materialise(&self, dir: &Path) -> io::Result<()> {
        materialise(&self.entries, dir)
    }
}

impl Content for FileData {
    fn create(&self, path: &Path) -> io::Result<()> {
        self.write_into(&File::create(path)?)
    }
}

/// Runs of consecutive chunks, each written with one call.
fn runs<'a>(chunks: impl Iterator<Item = (u64, &'a [u8])>) -> Vec<(u64, Vec<u8>)> {
    let mut out: Vec<(u64, Vec<u8>)> = Vec::new();
    for (off, bytes) in chunks {
        match out.last_mut() {
            Some((start, run)) if *start + run.len() as u64 == off => run.extend_from_slice(bytes),
            _ => out.push((off, bytes.to_vec())),
        }
    }
    out
}

impl FileData {
    /// Makes `f` hold exactly this content, whatever it held before: its
    /// old blocks are freed, then only the non-zero chunks are written
    /// (the rest stay holes). Costs this file's data, not its size.
    pub fn write_into(&self, f: &File) -> io::Result<()> {
        f.set_len(0)?;
        f.set_len(self.size)?;
        let chunks = self.chunks.iter().map(|(o, c)| (*o, self.within(*o, c)));
        for (off, run) in runs(chunks) {
            f.write_all_at(&run, off)?;
        }
        Ok(())
    }

    /// The chunks where this content differs from `base`, as `(offset,
    /// bytes)` (bytes past this file's size left out; a chunk this file
    /// lacks is a run of zeros). With [`Self::size`], all that a file
    /// holding `base` needs to become this one.
    pub fn extents<'a>(&'a self, base: &'a FileData) -> Vec<(u64, &'a [u8])> {
        const ZEROS: [u8; CHUNK as usize] = [0; CHUNK as usize];
        let ours: HashMap<u64, &Chunk> = self.chunks.iter().map(|(o, c)| (*o, c)).collect();
        let theirs: HashMap<u64, &Chunk> = base.chunks.iter().map(|(o, c)| (*o, c)).collect();
        let mut out: Vec<(u64, &[u8])> = Vec::new();
        for (off, c) in &self.chunks {
            if theirs.get(off).is_none_or(|b| b[..] != c[..]) {
                out.push((*off, self.within(*off, c)));
            }
        }
        for (off, _) in &base.chunks {
            if *off < self.size && !ours.contains_key(off) {
                let n = (self.size - off).min(CHUNK) as usize;
                out.push((*off, &ZEROS[..n]));
            }
        }
        out.sort_by_key(|(o, _)| *o);
        out
    }

    /// Turns `f`, which holds `base` exactly, into this content by writing
    /// only the [`Self::extents`] that differ, then setting the size.
    pub fn patch(&self, f: &File, base: &FileData) -> io::Result<()> {
        if self.size < base.size {
            f.set_len(self.size)?;
        }
        for (off, run) in runs(self.extents(base).into_iter()) {
            f.write_all_at(&run, off)?;
        }
        f.set_len(self.size)
    }
}

#[cfg(test)]
mod tests;
