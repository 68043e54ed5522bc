//! Generated workloads, in the manner of CrashMonkey's ACE: a bounded
//! sequence (seq-1, seq-2, seq-3) of core operations over the files `A`,
//! `B`, `dir/C`, `dir2/C` and the directories `dir`, `dir2`, each followed
//! or not by a persistence call. Unlike ACE, which enumerates every
//! sequence, workloads are drawn at random from a seed: workload `i` of
//! seed `s` is the same on every run.
//!
//! Each workload is a POSIX shell script run in the filesystem's root:
//! a setup (made durable with a whole-filesystem sync), `"$DURAFS" mark
//! start`, then every step followed by `"$DURAFS" mark step-K`. It needs
//! only coreutils and util-linux: `dd` writes (one `write(2)` of the whole
//! length), `sync FILE` / `sync -d FILE` / `sync DIR` are fsync, fdatasync
//! and fsyncdir, `sync -f .` is syncfs. FUSE never sees syncfs, so when
//! `$DURAFS_SYNC` names a durafs mount the script also asks it to sync.
//!
//! Invariant: every generated step is valid in the state the earlier steps
//! leave (the generator simulates the tree), so a script that fails on a
//! filesystem is a finding about that filesystem, not about the generator.

use durafs::model::rng::SplitMix64;
use std::collections::BTreeMap;

/// The files an operation may name.
const FILES: [&str; 4] = ["A", "B", "dir/C", "dir2/C"];
/// The directories an operation may name.
const DIRS: [&str; 2] = ["dir", "dir2"];
const PAGE: u64 = 4096;

/// How a write places its bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum WriteKind {
    Append,
    /// Inside one page of the file.
    InPage,
    /// Across a page boundary.
    AcrossPages,
    /// Unaligned offset and length, several sectors.
    Unaligned,
    /// Less than one 512-byte sector.
    SubSector,
}

/// One core operation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    Create(&'static str),
    Mkdir(&'static str),
    Write {
        path: &'static str,
        kind: WriteKind,
        offset: u64,
        len: u64,
        byte: u8,
    },
    Truncate {
        path: &'static str,
        size: u64,
        grow: bool,
    },
    Fallocate {
        path: &'static str,
        offset: u64,
        len: u64,
    },
    Rename {
        from: &'static str,
        to: &'static str,
    },
    Link {
        from: &'static str,
        to: &'static str,
    },
    Unlink(&'static str),
    Rmdir(&'static str),
    Symlink {
        target: &'static str,
        path: &'static str,
    },
}

/// A persistence call after an operation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Persist {
    Fsync(&'static str),
    Fdatasync(&'static str),
    Fsyncdir(&'static str),
    Sync,
}

/// One step: an operation and its persistence call, if any.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Step {
    pub op: Op,
    pub persist: Option<Persist>,
}

/// A generated workload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Workload {
    /// e.g. `seed-1-7`.
    pub name: String,
    /// Made durable before the `start` mark.
    pub setup: Vec<Op>,
    pub steps: Vec<Step>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Node {
    /// A regular file: its inode number in the simulation.
    File(usize),
    Dir,
    Symlink,
}

/// The simulated tree: paths to nodes, inode numbers to sizes.
#[derive(Clone, Debug, Default)]
struct Sim {
    nodes: BTreeMap<&'static str, Node>,
    sizes: Vec<u64>,
}

fn parent(p: &str) -> Option<&'static str> {
    DIRS.iter()
        .copied()
        .find(|d| p.starts_with(&format!("{d}/")))
}

impl Sim {
    fn exists(&self, p: &str) -> bool {
        self.nodes.contains_key(p)
    }
    fn parent_ok(&self, p: &str) -> bool {
        parent(p).is_none_or(|d| self.nodes.get(d) == Some(&Node::Dir))
    }
    fn file(&self, p: &str) -> Option<usize> {
        match self.nodes.get(p) {
            Some(Node::File(i)) => Some(*i),
            _ => None,
        }
    }
    fn files(&self) -> Vec<&'static str> {
        FILES
            .into_iter()
            .filter(|p| self.file(p).is_some())
            .collect()
    }
    fn free(&self) -> Vec<&'static str> {
        FILES
            .into_iter()
            .filter(|p| !self.exists(p) && self.parent_ok(p))
            .collect()
    }
    fn empty_dir(&self, d: &str) -> bool {
        self.nodes.get(d) == Some(&Node::Dir) && !self.nodes.keys().any(|p| parent(p) == Some(d))
    }

    fn apply(&mut self, op: &Op) {
        match op {
            Op::Create(p) => {
                self.sizes.push(0);
                self.nodes.insert(p, Node::File(self.sizes.len() - 1));
            }
            Op::Mkdir(d) => {
                self.nodes.insert(d, Node::Dir);
            }
            Op::Write {
                path, offset, len, ..
            }
            | Op::Fallocate { path, offset, len } => {
                if let Some(i) = self.file(path) {
                    self.sizes[i] = self.sizes[i].max(offset + len);
                }
            }
            Op::Truncate { path, size, .. } => {
                if let Some(i) = self.file(path) {
                    self.sizes[i] = *size;
                }
            }
            Op::Rename { from, to } => {
                if let Some(n) = self.nodes.remove(from) {
                    self.nodes.insert(to, n);
                }
            }
            Op::Link { from, to } => {
                if let Some(n) = self.nodes.get(from).cloned() {
                    self.nodes.insert(to, n);
                }
            }
            Op::Unlink(p) | Op::Rmdir(p) => {
                self.nodes.remove(p);
            }
            Op::Symlink { path, .. } => {
                self.nodes.insert(path, Node::Symlink);
            }
        }
    }

    /// Every valid operation here, one per kind (parameters drawn).
    fn candidates(&self, rng: &mut SplitMix64, byte: u8) -> Vec<Op> {
        let mut out = Vec::new();
        let pick = |rng: &mut SplitMix64, v: &[&'static str]| v[rng.below(v.len() as u64) as usize];
        let files = self.files();
        let free = self.free();
        if !free.is_empty() {
            out.push(Op::Create(pick(rng, &free)));
            out.push(Op::Symlink {
                target: "A",
                path: pick(rng, &free),
            });
        }
        let absent: Vec<&'static str> = DIRS.into_iter().filter(|d| !self.exists(d)).collect();
        if !absent.is_empty() {
            out.push(Op::Mkdir(pick(rng, &absent)));
        }
        let empty: Vec<&'static str> = DIRS.into_iter().filter(|d| self.empty_dir(d)).collect();
        if !empty.is_empty() {
            out.push(Op::Rmdir(pick(rng, &empty)));
        }
        if !files.is_empty() {
            self.file_candidates(rng, byte, &files, &free, &mut out);
        }
        out
    }

    /// The operations on an existing file (one drawn from `files`).
    fn file_candidates(
        &self,
        rng: &mut SplitMix64,
        byte: u8,
        files: &[&'static str],
        free: &[&'static str],
        out: &mut Vec<Op>,
    ) {
        let pick = |rng: &mut SplitMix64, v: &[&'static str]| v[rng.below(v.len() as u64) as usize];
        let f = pick(rng, files);
        let size = self.file(f).map_or(0, |i| self.sizes[i]);
        let kinds = [
            WriteKind::Append,
            WriteKind::InPage,
            WriteKind::AcrossPages,
            WriteKind::Unaligned,
            WriteKind::SubSector,
        ];
        let kind = kinds[rng.below(kinds.len() as u64) as usize];
        let (offset, len) = match kind {
            WriteKind::Append => (size, 1000 + rng.below(6000)),
            WriteKind::InPage => (1024, 2048),
            WriteKind::AcrossPages => (PAGE - 300, 600 + rng.below(PAGE)),
            WriteKind::Unaligned => (1 + rng.below(3000), 2000 + rng.below(5000)),
            WriteKind::SubSector => (rng.below(size.max(1)), 1 + rng.below(400)),
        };
        out.push(Op::Write {
            path: f,
            kind,
            offset,
            len,
            byte,
        });
        out.push(if size > 14 && rng.chance(0.5) {
            Op::Truncate {
                path: f,
                size: size / 2 + 7,
                grow: false,
            }
        } else {
            Op::Truncate {
                path: f,
                size: size + 5000,
                grow: true,
            }
        });
        out.push(Op::Fallocate {
            path: f,
            offset: size,
            len: 8192,
        });
        out.push(Op::Unlink(pick(rng, files)));
        // Rename: to a free name (maybe across directories) or over
        // another existing file.
        // Not onto another name of the same inode: rename(2) does nothing
        // there and mv(1) refuses.
        let others: Vec<&'static str> = files
            .iter()
            .copied()
            .filter(|p| self.file(p) != self.file(f))
            .collect();
        let mut targets = free.to_vec();
        targets.extend(others);
        if !targets.is_empty() {
            out.push(Op::Rename {
                from: f,
                to: pick(rng, &targets),
            });
        }
        if !free.is_empty() {
            out.push(Op::Link {
                from: f,
                to: pick(rng, free),
            });
        }
    }

    /// A persistence call fitting `op` (after it ran), or none.
    fn persist(&self, op: &Op, rng: &mut SplitMix64) -> Option<Persist> {
        let touched = match op {
            Op::Create(p)
            | Op::Write { path: p, .. }
            | Op::Truncate { path: p, .. }
            | Op::Fallocate { path: p, .. } => Some(*p),
            Op::Rename { to, .. } | Op::Link { to, .. } => Some(*to),
            _ => None,
        };
        let dir = match op {
            Op::Mkdir(d) | Op::Rmdir(d) | Op::Unlink(d) => parent(d).unwrap_or("."),
            Op::Symlink { path, .. } => parent(path).unwrap_or("."),
            _ => touched.and_then(parent).unwrap_or("."),
        };
        match rng.below(5) {
            0 => None,
            1 => touched.map(Persist::Fsync),
            2 => touched.map(Persist::Fdatasync),
            3 => Some(Persist::Fsyncdir(dir)),
            _ => Some(Persist::Sync),
        }
    }
}

/// Workload `index` of `seed`: 1..=3 steps.
pub fn generate(seed: u64, index: u64) -> Workload {
    let mut rng = SplitMix64::new(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ index);
    let mut sim = Sim::default();
    let mut setup = vec![
        Op::Mkdir("dir"),
        Op::Create("A"),
        Op::Write {
            path: "A",
            kind: WriteKind::Append,
            offset: 0,
            len: 8192,
            byte: b'a',
        },
        Op::Create("dir/C"),
        Op::Write {
            path: "dir/C",
            kind: WriteKind::Append,
            offset: 0,
            len: 5000,
            byte: b'c',
        },
    ];
    if rng.chance(0.5) {
        setup.push(Op::Create("B"));
        setup.push(Op::Write {
            path: "B",
            kind: WriteKind::Append,
            offset: 0,
            len: 3000,
            byte: b'b',
        });
    }
    for op in &setup {
        sim.apply(op);
    }
    let n = 1 + rng.below(3);
    let mut steps = Vec::new();
    for k in 0..n {
        let cands = sim.candidates(&mut rng, b'0' + k as u8);
        if cands.is_empty() {
            break;
        }
        let op = cands[rng.below(cands.len() as u64) as usize].clone();
        sim.apply(&op);
        let persist = sim.persist(&op, &mut rng);
        steps.push(Step { op, persist });
    }
    Workload {
        name: format!("seed-{seed}-{index}"),
        setup,
        steps,
    }
}

#[cfg(test)]
#[path = "workload_tests.rs"]
mod tests;
