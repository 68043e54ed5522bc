//! The seeded operation generator. Each operation is chosen knowing the
//! tree the earlier ones left (the native side's, equal to durafs's), so
//! most of them aim at existing files and directories and succeed, while
//! the rest still collide and fail. A generated sequence is then a fixed
//! list: replaying it does not consult the generator.

use super::tree::{NodeKind, Tree};
use super::{
    CutPolicy, DIRS, Falloc, MAX_WRITE, Mix, Op, OpenMode, PATHS, REGIONS, Ren, Rng, SLOTS,
    TARGETS, Time,
};

/// Explicit times [`Op::Utimens`] sets, `(secs, nanos)`: whole and
/// fractional seconds, before the epoch and past 2038.
pub const STAMPS: &[(i64, u32)] = &[
    (1_000_000_000, 0),
    (1_234_567_890, 123_456_789),
    (1_500_000_000, 999_999_999),
    (-86_400, 0),
    (-1_000_000, 250_000_000),
    (1 << 33, 1),
];

/// The paths each descriptor slot was opened at (`None`: empty).
pub type Opened = [Option<&'static str>; SLOTS as usize];

/// Generator state: the RNG, which operations it makes, when the next cut
/// is due, the files and directories of the current tree (those among
/// [`PATHS`]) and the paths the open descriptors were opened at.
#[derive(Clone, Debug)]
pub struct Gen {
    r: Rng,
    mix: Mix,
    count: usize,
    next_cut: usize,
    files: Vec<&'static str>,
    links: Vec<&'static str>,
    dirs: Vec<&'static str>,
    opened: Opened,
    /// The op [`Mix::Full`] chose to come next.
    follow: Option<Op>,
}

impl Gen {
    /// A generator of [`Mix::Classic`] sequences.
    pub fn new(seed: u64) -> Gen {
        Gen::with_mix(seed, Mix::Classic)
    }

    pub fn with_mix(seed: u64, mix: Mix) -> Gen {
        let mut r = Rng::new(seed);
        let next_cut = 100 + r.below(201) as usize;
        Gen {
            r,
            mix,
            count: 0,
            next_cut,
            files: Vec::new(),
            links: Vec::new(),
            dirs: Vec::new(),
            opened: [None; SLOTS as usize],
            follow: None,
        }
    }

    /// The next operation for a volume that now holds `tree`, with no
    /// descriptor open: see [`Gen::next_with`].
    pub fn next(&mut self, tree: &Tree) -> Op {
        self.next_with(tree, [None; SLOTS as usize])
    }

    /// The next operation for a volume that now holds `tree` and whose
    /// descriptor slots were opened at `opened`: a cut every 100 to 300
    /// operations, otherwise (for [`Mix::Full`], often) a descriptor,
    /// owner or time operation (an explicit time is followed by an fsync
    /// of its path 40% of the time), or [`Gen::op`].
    pub fn next_with(&mut self, tree: &Tree, opened: Opened) -> Op {
        self.opened = opened;
        self.count += 1;
        if self.count == self.next_cut {
            self.next_cut += 100 + self.r.below(201) as usize;
            return Op::Cut {
                policy: self.r.pick(&CutPolicy::ALL),
                seed: self.r.below(1 << 20),
            };
        }
        if let Some(op) = self.follow.take() {
            return op;
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
        if self.mix == Mix::Full {
            if let Some(op) = self.full_op() {
                return op;
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

    /// A write length: mostly short.
    fn write_len(&mut self) -> u32 {
        if self.r.chance(80) {
            1 + self.r.below(1500) as u32
        } else {
            1 + self.r.below(u64::from(MAX_WRITE)) as u32
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

    /// A slot: usually an open one.
    fn slot(&mut self) -> u8 {
        let open: Vec<u8> = (0..SLOTS)
            .filter(|s| self.opened[*s as usize].is_some())
            .collect();
        if !open.is_empty() && self.r.chance(90) {
            self.r.pick(&open)
        } else {
            self.r.below(u64::from(SLOTS)) as u8
        }
    }

    /// The top-level directory of a two-deep path (itself for one deep).
    fn top(path: &'static str) -> &'static str {
        path.split_once('/').map_or(path, |(top, _)| top)
    }

    /// A time for [`Op::Utimens`].
    fn time(&mut self) -> Time {
        match self.r.below(100) {
            0..15 => Time::Omit,
            15..20 => Time::Now,
            _ => {
                let (secs, nanos) = self.r.pick(STAMPS);
                Time::At { secs, nanos }
            }
        }
    }

    fn id(&mut self) -> Option<u32> {
        self.r.pick(&[Some(0), Some(1000), Some(1001), None])
    }

    /// For [`Mix::Full`]: a descriptor, owner or time operation, or an
    /// unlink or rename aimed at a path a descriptor was opened at; `None`
    /// (about half the time) for a classic [`Gen::op`].
    fn full_op(&mut self) -> Option<Op> {
        let any_open = self.opened.iter().any(Option::is_some);
        let mut n = self.r.below(100);
        if !any_open && (7..32).contains(&n) {
            // Nothing to use: open something.
            n = 0;
        }
        Some(match n {
            0..7 => {
                let empty: Vec<u8> = (0..SLOTS)
                    .filter(|s| self.opened[*s as usize].is_none())
                    .collect();
                let slot = if empty.is_empty() {
                    self.r.below(u64::from(SLOTS)) as u8
                } else {
                    self.r.pick(&empty)
                };
                let how = self.r.pick(&[
                    OpenMode::ReadWrite,
                    OpenMode::ReadWrite,
                    OpenMode::Append,
                    OpenMode::Create,
                    OpenMode::Create,
                    OpenMode::ReadOnly,
                ]);
                let path = match how {
                    OpenMode::Create if self.r.chance(50) => self.any(),
                    OpenMode::ReadOnly => self.entry(),
                    _ => self.file(),
                };
                Op::Open { slot, path, how }
            }
            7..17 => {
                let len = self.write_len();
                Op::FdWrite {
                    slot: self.slot(),
                    off: self.offset(u64::from(len)),
                    len,
                    fill: self.r.below(256) as u8,
                }
            }
            17..20 => Op::FdRead {
                slot: self.slot(),
                off: self.offset(0),
                len: 1 + self.r.below(8192) as u32,
            },
            20..23 => Op::FdTruncate {
                slot: self.slot(),
                size: if self.r.chance(20) { 0 } else { self.offset(0) },
            },
            23..29 => Op::FdFsync {
                slot: self.slot(),
                datasync: self.r.chance(30),
            },
            29..32 => Op::FdClose { slot: self.slot() },
            32..40 => {
                let open: Vec<&'static str> = self.opened.iter().flatten().copied().collect();
                if open.is_empty() {
                    return None;
                }
                let p = self.r.pick(&open);
                match self.r.below(4) {
                    0 => Op::Unlink { path: p },
                    1 => Op::Rename {
                        from: p,
                        to: self.any(),
                        flags: Ren::Plain,
                    },
                    // A rename over it.
                    2 => Op::Rename {
                        from: self.file(),
                        to: p,
                        flags: Ren::Plain,
                    },
                    // Its directory moves.
                    _ => Op::Rename {
                        from: Self::top(p),
                        to: self.r.pick(&PATHS[..4]),
                        flags: self.r.pick(&[Ren::Plain, Ren::Exchange]),
                    },
                }
            }
            40..43 => Op::Chown {
                path: self.entry(),
                uid: self.id(),
                gid: self.id(),
            },
            43..46 => {
                let path = self.entry();
                if self.r.chance(40) {
                    // So that explicit times are often durable at a cut.
                    self.follow = Some(Op::Fsync { path });
                }
                Op::Utimens {
                    path,
                    atime: self.time(),
                    mtime: self.time(),
                }
            }
            _ => return None,
        })
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
                let len = self.write_len();
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
                // In the order the fields were drawn before ZERO_RANGE.
                let path = self.file();
                let mut mode = self
                    .r
                    .pick(&[Falloc::Alloc, Falloc::KeepSize, Falloc::Punch]);
                // Only in the full mix: classic sequences stay as they were
                // (`classic_generation_is_unchanged`).
                if self.mix == Mix::Full && self.r.chance(40) {
                    mode = self.r.pick(&[Falloc::Zero, Falloc::ZeroKeepSize]);
                }
                Op::Fallocate {
                    path,
                    mode,
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
