//! Differential testing of a durafs mount against a real filesystem.
//!
//! A seeded generator ([`Gen`]) makes a sequence of [`Op`]s over a
//! small name space (four names, paths one or two deep, a few symlink
//! targets), each chosen knowing the tree the earlier ones left, so that
//! about half succeed and the rest collide and hit errors: create, write (also far
//! sparse offsets up to 1 GiB, and `O_APPEND`), read, truncate up and down,
//! fallocate (default, `KEEP_SIZE`, `PUNCH_HOLE|KEEP_SIZE`), rename (plain,
//! `RENAME_NOREPLACE`, `RENAME_EXCHANGE`), link, unlink, mkdir, rmdir,
//! symlink, chmod, fsync, fdatasync, fsyncdir, durafs's sync-all, and power
//! cuts. [`check`] runs a sequence on a fresh durafs volume
//! ([`crate::Vol`]) and on a plain temp directory side by side and compares,
//! after every operation, the result (value or errno) and the whole visible
//! tree ([`tree::Tree`]: names, kinds, sizes, content, permission bits,
//! symlink targets, nlink and which paths are hard links of each other; not
//! times, inode numbers or blocks).
//!
//! Content: a file up to [`FULL_LIMIT`] bytes is compared whole. Every
//! offset the generator uses (writes, truncates, fallocates) lies inside one
//! of the [`REGIONS`] windows, so in a bigger file only those windows can
//! hold non-zero bytes; they are compared, plus a few probes between them.
//!
//! A [`Op::Cut`] cuts the power on the durafs volume and remounts it. The
//! volume is traced from each mount on; before the cut the trace is replayed
//! on the in-memory model ([`durafs::trace::replay::Replayer`]), the crash
//! state the same [`durafs::model::crash::CrashOptions`] choose is applied
//! to a copy of its durable store, and the remounted tree must equal that
//! prediction; under `keep-all` it must also equal the live tree before the
//! cut. The native directory is then rebuilt from the recovered tree.
//!
//! On a discrepancy, [`fuzz`] shrinks the sequence (greedy delta debugging,
//! each try on fresh volumes) and panics with the seed and the shrunk
//! sequence as a ready-made regression test ([`check`] replays a fixed
//! sequence without the generator).
//!
//! Not generated, because of known bugs with their own tests in
//! `tests/tests/differential.rs`: the set-group-ID bit on directories.
//!
//! # Soak mode
//!
//! `DURAFS_DIFF_OPS=N` makes the tests in `tests/tests/differential.rs`
//! that call [`fuzz_from_env`] run `N` operations each, and
//! `DURAFS_DIFF_SEED=S` fixes the seed (otherwise their own). For example:
//!
//! ```text
//! DURAFS_DIFF_OPS=20000 DURAFS_DIFF_SEED=7 cargo test -p durafs-tests \
//!     --test differential -- --nocapture --exact posix_seed_1
//! ```
//!
//! `DURAFS_DIFF_SHRINK_SECS` bounds the time spent shrinking (default 120);
//! `DURAFS_DIFF_VERBOSE=1` prints every operation and its result.

mod exec;
mod generate;
mod run;
pub mod tree;

pub use durafs::model::Persistence;
pub use exec::{Outcome, apply};
pub use generate::Gen;
pub use run::{Failure, Runner, Stats, check, fuzz, fuzz_from_env, run_generated, shrink};

use std::fmt;

/// Path names the generator draws from: one or two components.
pub const PATHS: &[&str] = &[
    "a", "b", "c", "d", "a/a", "a/b", "a/c", "a/d", "b/a", "b/b", "b/c", "b/d", "c/a", "c/b",
    "c/c", "c/d", "d/a", "d/b", "d/c", "d/d",
];

/// Directories fsyncdir draws from (`.` is the root).
pub const DIRS: &[&str] = &[".", "a", "b", "c", "d", "a/a", "b/b"];

/// Symlink targets (relative to the link's directory; some dangle, `a` at
/// `a` loops). None starts with `..`: since links move (rename, link)
/// between depths, such a target could leave the tree.
pub const TARGETS: &[&str] = &["a", "b", "c/d", "zz", "a/b/../c", "a/../b"];

/// Offset windows `(start, len)`: every generated write, truncate and
/// fallocate lies inside one.
pub const REGIONS: &[(u64, u64)] = &[
    (0, 24 << 10),
    ((1 << 20) - 3000, 20 << 10),
    ((64 << 20) + 123, 16 << 10),
    ((1 << 30) - (16 << 10), 16 << 10),
];

/// Files up to this size are compared whole.
pub const FULL_LIMIT: u64 = 64 << 10;

/// Longest generated write.
pub const MAX_WRITE: u32 = 6000;

/// fallocate modes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Falloc {
    /// Mode 0: allocate, growing the file.
    Alloc,
    /// `FALLOC_FL_KEEP_SIZE`.
    KeepSize,
    /// `FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE`.
    Punch,
}

/// renameat2 flags.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ren {
    Plain,
    NoReplace,
    Exchange,
}

/// Crash policies a cut uses: every policy of `durafs cut`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CutPolicy {
    KeepAll,
    DropAll,
    Random,
    Prefix,
    /// Random survivors, writes torn at 512-byte sectors, lost sectors
    /// filled with seeded garbage.
    Torn,
    MetaFirst,
}

impl CutPolicy {
    pub const ALL: [CutPolicy; 6] = [
        CutPolicy::KeepAll,
        CutPolicy::DropAll,
        CutPolicy::Random,
        CutPolicy::Prefix,
        CutPolicy::Torn,
        CutPolicy::MetaFirst,
    ];
}

/// One step of a differential run. Paths are relative to the volume root.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// `open(O_CREAT | O_WRONLY [| O_EXCL] [| O_TRUNC], mode)`.
    Create {
        path: &'static str,
        mode: u32,
        excl: bool,
        trunc: bool,
    },
    /// `pwrite` of `len` bytes of pattern `fill` (or `write` on an
    /// `O_APPEND` descriptor, ignoring `off`).
    Write {
        path: &'static str,
        off: u64,
        len: u32,
        fill: u8,
        append: bool,
    },
    /// `pread` of up to `len` bytes.
    Read {
        path: &'static str,
        off: u64,
        len: u32,
    },
    /// `truncate(2)`.
    Truncate {
        path: &'static str,
        size: u64,
    },
    /// `fallocate(2)` on an `O_WRONLY` descriptor.
    Fallocate {
        path: &'static str,
        mode: Falloc,
        off: u64,
        len: u64,
    },
    /// `renameat2(2)`.
    Rename {
        from: &'static str,
        to: &'static str,
        flags: Ren,
    },
    /// `link(2)`.
    Link {
        from: &'static str,
        to: &'static str,
    },
    Unlink {
        path: &'static str,
    },
    Mkdir {
        path: &'static str,
        mode: u32,
    },
    Rmdir {
        path: &'static str,
    },
    Symlink {
        target: &'static str,
        path: &'static str,
    },
    Chmod {
        path: &'static str,
        mode: u32,
    },
    /// `fsync` on an `O_RDONLY` descriptor (a directory's too).
    Fsync {
        path: &'static str,
    },
    Fdatasync {
        path: &'static str,
    },
    /// `fsync` on an `O_RDONLY | O_DIRECTORY` descriptor.
    FsyncDir {
        path: &'static str,
    },
    /// durafs's sync-all ([`durafs::fs::DuraFs::sync`]); nothing natively.
    SyncAll,
    /// A power cut of the durafs volume, then a remount.
    Cut {
        policy: CutPolicy,
        seed: u64,
    },
}

impl fmt::Display for Op {
    /// Rust source for the op, for pasting into a regression test.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Op::Create {
                path,
                mode,
                excl,
                trunc,
            } => write!(
                f,
                "Op::Create {{ path: {path:?}, mode: {mode:#o}, excl: {excl}, trunc: {trunc} }}"
            ),
            Op::Write {
                path,
                off,
                len,
                fill,
                append,
            } => write!(
                f,
                "Op::Write {{ path: {path:?}, off: {off}, len: {len}, fill: {fill}, append: {append} }}"
            ),
            Op::Read { path, off, len } => {
                write!(f, "Op::Read {{ path: {path:?}, off: {off}, len: {len} }}")
            }
            Op::Truncate { path, size } => {
                write!(f, "Op::Truncate {{ path: {path:?}, size: {size} }}")
            }
            Op::Fallocate {
                path,
                mode,
                off,
                len,
            } => write!(
                f,
                "Op::Fallocate {{ path: {path:?}, mode: Falloc::{mode:?}, off: {off}, len: {len} }}"
            ),
            Op::Rename { from, to, flags } => write!(
                f,
                "Op::Rename {{ from: {from:?}, to: {to:?}, flags: Ren::{flags:?} }}"
            ),
            Op::Link { from, to } => write!(f, "Op::Link {{ from: {from:?}, to: {to:?} }}"),
            Op::Unlink { path } => write!(f, "Op::Unlink {{ path: {path:?} }}"),
            Op::Mkdir { path, mode } => {
                write!(f, "Op::Mkdir {{ path: {path:?}, mode: {mode:#o} }}")
            }
            Op::Rmdir { path } => write!(f, "Op::Rmdir {{ path: {path:?} }}"),
            Op::Symlink { target, path } => {
                write!(f, "Op::Symlink {{ target: {target:?}, path: {path:?} }}")
            }
            Op::Chmod { path, mode } => {
                write!(f, "Op::Chmod {{ path: {path:?}, mode: {mode:#o} }}")
            }
            Op::Fsync { path } => write!(f, "Op::Fsync {{ path: {path:?} }}"),
            Op::Fdatasync { path } => write!(f, "Op::Fdatasync {{ path: {path:?} }}"),
            Op::FsyncDir { path } => write!(f, "Op::FsyncDir {{ path: {path:?} }}"),
            Op::SyncAll => write!(f, "Op::SyncAll"),
            Op::Cut { policy, seed } => write!(
                f,
                "Op::Cut {{ policy: CutPolicy::{policy:?}, seed: {seed} }}"
            ),
        }
    }
}

/// The operation's name (`write`, `rename`, ...).
impl Op {
    pub fn name(&self) -> &'static str {
        match self {
            Op::Create { .. } => "create",
            Op::Write { .. } => "write",
            Op::Read { .. } => "read",
            Op::Truncate { .. } => "truncate",
            Op::Fallocate { .. } => "fallocate",
            Op::Rename { .. } => "rename",
            Op::Link { .. } => "link",
            Op::Unlink { .. } => "unlink",
            Op::Mkdir { .. } => "mkdir",
            Op::Rmdir { .. } => "rmdir",
            Op::Symlink { .. } => "symlink",
            Op::Chmod { .. } => "chmod",
            Op::Fsync { .. } => "fsync",
            Op::Fdatasync { .. } => "fdatasync",
            Op::FsyncDir { .. } => "fsyncdir",
            Op::SyncAll => "sync-all",
            Op::Cut { .. } => "cut",
        }
    }
}

/// The model's SplitMix64, with the choices the generator makes. `below`
/// keeps its own (modulo) mapping so that seeds quoted in
/// docs/reliability.md keep producing the same sequences.
#[derive(Clone, Debug)]
pub struct Rng(durafs::model::rng::SplitMix64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(durafs::model::rng::SplitMix64::new(seed))
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0.next_u64()
    }

    /// Uniform in `0..n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    pub fn pick<T: Copy>(&mut self, xs: &[T]) -> T {
        xs[self.below(xs.len() as u64) as usize]
    }
}

/// The bytes a write of `len` with pattern `fill` writes.
pub fn pattern(fill: u8, len: u32) -> Vec<u8> {
    let mut r = Rng::new(u64::from(fill) | 0xD1FF_0000);
    (0..len).map(|_| (r.next_u64() >> 56) as u8 | 1).collect()
}
