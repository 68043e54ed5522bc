//! The seeded operation generator. Each operation is chosen knowing the
//! tree the earlier ones left (the native side's, equal to durafs's), so
//! most of them aim at existing files and directories and succeed, while
//! the rest still collide and fail. A generated sequence is then a fixed
//! list: replaying it does not consult the generator.

use super::tree::{NodeKind, Tree};
use super::{CutPolicy, DIRS, Falloc, MAX_WRITE, Op, PATHS, REGIONS, Ren, Rng, TARGETS};

/// Generator state: the RNG, when the next cut is due, and the files and
/// directories of the current tree (those among [`PATHS`]).
#[derive(Clone, Debug)]
pub struct Gen {
    r: Rng,
    count: usize,
    next_cut: usize,
    files: Vec<&'static str>,
    links: Vec<&'static str>,
    dirs: Vec<&'static str>,
}

impl Gen {
    pub fn new(seed: u64) -> Gen {
        let mut r = Rng::new(seed);
        let next_cut = 100 + r.below(201) as usize;
        Gen {
            r,
            count: 0,
            next_cut,
            files: Vec::new(),
            links: Vec::new(),
            dirs: Vec::new(),
        }
    }

    /// The next operation for a volume that now holds `tree`: a cut every
    /// 100 to 300 operations, otherwise [`Gen::op`].
    pub fn next(&mut self, tree: &Tree) -> Op {
        self.count += 1;
        if self.count == self.next_cut {
            self.next_cut += 100 + self.r.below(201) as usize;
            return Op::Cut {
                policy: self.r.pick(&CutPolicy::ALL),
                seed: self.r.below(1 << 20),
            };
        }
        self.files.clear();
        self.links.clear();
        self.dirs.clear();
        for (path, node) in &tree.0 {
            if let Some(p) = PATHS.iter().find(|p| **p == path.as_str()) {
                match node.kind {
                    NodeKind::Dir => self.dirs.push(p),
                    NodeKind::Symlink(_) => self.links.push(p),
                    _ => self.files.push(p),
                }
            }
        }
        self.op()
    }

    /// Any path: one deep, or two deep, mostly under a guessed directory.
    fn any(&mut self) -> &'static str {
        let r = &mut self.r;
        if r.chance(40) {
            return PATHS[r.below(4) as usize];
        }
        let tops: Vec<usize> = (0..4).filter(|i| self.dirs.contains(&PATHS[*i])).collect();
        let parent = if !tops.is_empty() && r.chance(80) {
            r.pick(&tops)
        } else {
            r.below(4) as usize
        };
        PATHS[4 + parent * 4 + r.below(4) as usize]
    }

    /// An existing file, usually; sometimes a symlink or any path.
    fn file(&mut self) -> &'static str {
        let n = self.r.below(100);
        if !self.files.is_empty() && n < 75 {
            self.r.pick(&self.files)
        } else if !self.links.is_empty() && n < 85 {
            self.r.pick(&self.links)
        } else {
            self.any()
        }
    }

    /// An existing directory, usually.
    fn dir(&mut self) -> &'static str {
        if !self.dirs.is_empty() && self.r.chance(70) {
            self.r.pick(&self.dirs)
        } else {
            self.any()
        }
    }

    /// An existing file or directory, usually.
    fn entry(&mut self) -> &'static str {
        if self.r.chance(70) {
            self.file()
        } else {
            self.dir()
        }
    }

    /// An offset inside a region, leaving room for `room` bytes.
    fn offset(&mut self, room: u64) -> u64 {
        let r = &mut self.r;
        // Far offsets are rarer: a remount reads every file whole into the
        // next trace's header, so 1 GiB files make cuts slow.
        let (start, len) = if r.chance(85) {
            REGIONS[0]
        } else {
            r.pick(&REGIONS[1..])
        };
        let span = len.saturating_sub(room).max(1);
        // Often on a 512-byte or 4 KiB boundary, otherwise anywhere.
        let off = match r.below(3) {
            0 => r.below(span) / 4096 * 4096,
            1 => r.below(span) / 512 * 512,
            _ => r.below(span),
        };
        start + off
    }

    fn mode(&mut self, dir: bool) -> u32 {
        if dir {
            self.r.pick(&[0o755, 0o755, 0o700, 0o1777, 0o500])
        } else {
            // No set-group-ID bit: durafs does not make new entries in a
            // set-group-ID directory inherit it (see
            // `setgid_directory_is_inherited_by_mkdir` in
            // tests/tests/differential.rs); add 0o2644 back when it does.
            self.r
                .pick(&[0o644, 0o644, 0o600, 0o755, 0o000, 0o4755, 0o1644])
        }
    }

    /// One random operation (never a cut), mostly on the files and
    /// directories [`Gen::next`] last saw.
    pub fn op(&mut self) -> Op {
        match self.r.below(100) {
            0..10 => Op::Create {
                path: if self.r.chance(70) {
                    self.any()
                } else {
                    self.file()
                },
                mode: self.mode(false),
                excl: self.r.chance(25),
                trunc: self.r.chance(25),
            },
            10..28 => {
                let len = if self.r.chance(80) {
                    1 + self.r.below(1500) as u32
                } else {
                    1 + self.r.below(u64::from(MAX_WRITE)) as u32
                };
                Op::Write {
                    path: self.file(),
                    off: self.offset(u64::from(len)),
                    len,
                    fill: self.r.below(256) as u8,
                    append: self.r.chance(10),
                }
            }
            28..35 => Op::Read {
                path: self.file(),
                off: self.offset(0),
                len: 1 + self.r.below(8192) as u32,
            },
            35..41 => Op::Truncate {
                path: self.file(),
                size: if self.r.chance(20) { 0 } else { self.offset(0) },
            },
            41..47 => {
                let len = 1 + self.r.below(9000);
                Op::Fallocate {
                    path: self.file(),
                    mode: self
                        .r
                        .pick(&[Falloc::Alloc, Falloc::KeepSize, Falloc::Punch]),
                    off: self.offset(len),
                    len,
                }
            }
            47..56 => Op::Rename {
                from: self.entry(),
                to: if self.r.chance(50) {
                    self.any()
                } else {
                    self.entry()
                },
                flags: self
                    .r
                    .pick(&[Ren::Plain, Ren::Plain, Ren::NoReplace, Ren::Exchange]),
            },
            56..60 => Op::Link {
                from: self.file(),
                to: self.any(),
            },
            60..66 => Op::Unlink { path: self.file() },
            66..73 => Op::Mkdir {
                path: self.any(),
                mode: self.mode(true),
            },
            73..77 => Op::Rmdir { path: self.dir() },
            77..80 => Op::Symlink {
                target: self.r.pick(TARGETS),
                path: self.any(),
            },
            80..83 => {
                let dir = self.r.chance(30);
                Op::Chmod {
                    path: if dir { self.dir() } else { self.file() },
                    mode: self.mode(dir),
                }
            }
            83..90 => Op::Fsync { path: self.entry() },
            90..93 => Op::Fdatasync { path: self.file() },
            93..99 => Op::FsyncDir {
                path: if self.r.chance(40) {
                    self.r.pick(DIRS)
                } else {
                    self.dir()
                },
            },
            _ => Op::SyncAll,
        }
    }
}
