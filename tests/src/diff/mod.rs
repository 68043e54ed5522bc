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
//! cuts ([`Mix::Classic`]). [`Mix::Full`] adds, for about half the
//! operations: descriptors held open across operations ([`Op::Open`] into
//! one of [`SLOTS`] slots, then pwrite, pread, ftruncate, fsync, fdatasync
//! and close through it, see [`Fds`]) with unlinks and renames aimed at the
//! paths the open files were opened at (so that files are written,
//! truncated and fsynced after their last name went, after they or their
//! directory were renamed, after a rename replaced their name), `lchown`
//! ([`Op::Chown`]: uids and gids 0, 1000, 1001, or unchanged) and
//! `utimensat` ([`Op::Utimens`]: explicit times from [`STAMPS`], before
//! 1970 and past 2038 included, `UTIME_NOW` and `UTIME_OMIT`).
//!
//! [`check`] runs a sequence on a fresh durafs volume ([`crate::Vol`],
//! mounted with the kernel's writeback cache when the [`Setup`] says so)
//! and on a plain temp directory side by side and compares, after every
//! operation, the result (value or errno; for `utimensat`, the explicit
//! times `lstat` shows right after it), the whole visible tree
//! ([`tree::Tree`]: names, kinds, sizes, content, permission bits, owner
//! and group, symlink targets, nlink and which paths are hard links of each
//! other; mtimes only as below; not atimes, ctimes, inode numbers or
//! blocks), and what `fstat` shows through each open slot (kind, mode,
//! size, nlink, owner, group: the only view of an unlinked file).
//!
//! Content: a file up to [`FULL_LIMIT`] bytes is compared whole. Every
//! offset the generator uses (writes, truncates, fallocates) lies inside one
//! of the [`REGIONS`] windows, so in a bigger file only those windows can
//! hold non-zero bytes; they are compared, plus a few probes between them.
//!
//! # Times
//!
//! Times set implicitly differ between the sides, so mtimes are compared
//! only for inodes whose mtime an explicit `utimensat` set (*stamped*,
//! [`Stamps`]) and while the native side still shows that time there: then
//! durafs must show it too, at every path of the inode and through every
//! slot open on it. At a cut, stamped inodes ([`Stamps::at_cut`]) are
//! compared when the prediction is exact for them, under keep-all or once
//! an fsync of the file or directory or a sync-all made the stamp durable;
//! the prediction and the
//! remount must both show the stamped time. atime is compared only in the
//! `utimensat` result (every read may change it natively).
//!
//! # Cuts
//!
//! A [`Op::Cut`] cuts the power on the durafs volume and remounts it. The
//! volume is traced from each mount on; before the cut the live tree is
//! read, the volume is frozen (no later call takes effect) and its trace
//! and pending list are taken. After the remount the trace is replayed on
//! the in-memory model ([`durafs::trace::replay::Replayer`]), which must
//! end with the same pending list, the crash state the same
//! [`durafs::model::crash::CrashOptions`] choose is applied to a copy of its
//! durable store, and the remounted tree must equal that prediction
//! (owners, groups and stamped mtimes included); under `keep-all` it must
//! also equal the live tree before the cut. The native directory is then
//! rebuilt from the recovered tree (owners set, times not; stamps end).
//!
//! Descriptors do not survive a cut: durafs's are closed once the mount is
//! cut (on a writeback-cache mount, what the kernel still cached for them
//! never reached durafs and is lost, as a page cache is), the native ones
//! with them, and every slot is empty afterwards. Data written through a
//! descriptor to a file whose last name was durably removed must not come
//! back; an fsync through a descriptor makes the data durable for the
//! inode, under whichever names are durable (the renamed ones once their
//! directories are fsynced): the prediction, from durafs's own trace,
//! decides, and fixed tests in `tests/tests/differential/fds.rs` state it
//! explicitly.
//!
//! # Writeback cache
//!
//! With [`Setup::writeback_cache`] the kernel holds written pages and sends
//! them (whole pages, with its own mtime) at fsync, close (every close of
//! the file, also the harness's reads of the tree after each step) and
//! writeback. durafs's model sees only what was sent, and the prediction
//! comes from durafs's own trace, so it still must match the remount
//! exactly; results and trees must still equal the native side's. In
//! practice a step's tree read sends every named file's pages, so what the
//! kernel holds across steps is the pages (and times) of open unlinked
//! files, which it sends when it chooses: the pending list at a cut, and
//! what a random, prefix or torn cut keeps, can differ between runs of one
//! seed, and so can the rest of the sequence. Each run is still checked
//! exactly against its own trace; a shrink may then report that a failure
//! did not reproduce.
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
//! The binary `diff-soak` runs long sequences over a range of seeds:
//!
//! ```text
//! cargo run -p durafs-tests --bin diff-soak -- --ops 20000 --seed 7 --seeds 4 --setup posix-wb
//! ```
//!
//! (setups `posix`, `journal`, `posix-full`, `journal-full`, `posix-wb`,
//! `journal-wb`). In the test suite, `DURAFS_DIFF_OPS=N` makes the tests in `tests/tests/differential.rs`
//! that call [`fuzz_from_env`] run `N` operations each, and
//! `DURAFS_DIFF_SEED=S` fixes the seed (otherwise their own). For example:
//!
//! ```text
//! DURAFS_DIFF_OPS=20000 DURAFS_DIFF_SEED=7 cargo test -p durafs-tests \
//!     --test differential -- --nocapture --exact posix_seed_1
//! ```
//!
//! The tests `posix_full_seed_5` and `journal_full_seed_6` run [`Mix::Full`]
//! on a plain mount, `posix_writeback_cache_seed_7` and
//! `journal_writeback_cache_seed_8` on a writeback-cache mount.
//! `DURAFS_DIFF_SHRINK_SECS` bounds the time spent shrinking (default 120);
//! `DURAFS_DIFF_VERBOSE=1` prints every operation and its result.

mod exec;
mod fds;
mod generate;
mod run;
mod times;
pub mod tree;

pub use durafs::model::Persistence;
pub use exec::{Outcome, apply};
pub use fds::{FdStat, Fds};
pub use generate::{Gen, Opened, STAMPS};
pub use run::{Failure, Runner, Stats, check, fuzz, fuzz_from_env, run_generated, shrink};
pub use times::Stamps;

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
    /// `FALLOC_FL_ZERO_RANGE`.
    Zero,
    /// `FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE`.
    ZeroKeepSize,
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

/// Descriptor slots: [`Op::Open`] and the `Fd*` operations name one.
pub const SLOTS: u8 = 3;

/// How [`Op::Open`] opens.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpenMode {
    /// `O_RDWR`.
    ReadWrite,
    /// `O_RDWR | O_APPEND`.
    Append,
    /// `O_RDWR | O_CREAT`, mode `0o644`.
    Create,
    /// `O_RDONLY` (directories too: an fsync of it is an fsyncdir).
    ReadOnly,
}

/// A time [`Op::Utimens`] sets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Time {
    /// `UTIME_OMIT`: left as it is.
    Omit,
    /// `UTIME_NOW`.
    Now,
    /// An explicit time (`nanos` below 10^9; `secs` may be negative).
    At { secs: i64, nanos: u32 },
}

/// Which operations [`Gen`] makes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mix {
    /// The path operations and cuts only: the sequences the seeds quoted
    /// in docs/reliability.md were made with.
    Classic,
    /// As `Classic`, plus descriptors held open across operations
    /// ([`Op::Open`] and the `Fd*` operations, with unlinks and renames
    /// aimed at open files), [`Op::Chown`] and [`Op::Utimens`].
    Full,
}

/// What a run runs on and what its generator makes. A [`Persistence`]
/// converts into the classic setup (a plain mount, [`Mix::Classic`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Setup {
    pub persistence: Persistence,
    /// Mount with the kernel's writeback cache
    /// ([`durafs::mount::MountOptions::writeback_cache`]).
    pub writeback_cache: bool,
    pub mix: Mix,
}

impl From<Persistence> for Setup {
    fn from(persistence: Persistence) -> Setup {
        Setup {
            persistence,
            writeback_cache: false,
            mix: Mix::Classic,
        }
    }
}

impl Setup {
    /// Every operation, on a plain mount.
    pub fn full(persistence: Persistence) -> Setup {
        Setup {
            persistence,
            writeback_cache: false,
            mix: Mix::Full,
        }
    }

    /// Every operation, on a writeback-cache mount.
    pub fn writeback(persistence: Persistence) -> Setup {
        Setup {
            writeback_cache: true,
            ..Setup::full(persistence)
        }
    }
}

impl fmt::Display for Setup {
    /// Rust source for the setup, for pasting into a regression test.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if *self == Setup::from(self.persistence) {
            return write!(f, "Persistence::{:?}", self.persistence);
        }
        write!(
            f,
            "Setup {{ persistence: Persistence::{:?}, writeback_cache: {}, mix: Mix::{:?} }}",
            self.persistence, self.writeback_cache, self.mix
        )
    }
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
    /// `lchown(2)` (`fchownat` with `AT_SYMLINK_NOFOLLOW`); `None` leaves
    /// the id as it is.
    Chown {
        path: &'static str,
        uid: Option<u32>,
        gid: Option<u32>,
    },
    /// `utimensat(2)` with `AT_SYMLINK_NOFOLLOW`.
    Utimens {
        path: &'static str,
        atime: Time,
        mtime: Time,
    },
    /// `open(2)` into descriptor slot `slot` (below [`SLOTS`]), closing
    /// what the slot held first.
    Open {
        slot: u8,
        path: &'static str,
        how: OpenMode,
    },
    /// `pwrite` of `len` bytes of pattern `fill` on the slot's descriptor
    /// (on an `O_APPEND` descriptor Linux appends, whatever `off` says).
    FdWrite {
        slot: u8,
        off: u64,
        len: u32,
        fill: u8,
    },
    /// `pread` of up to `len` bytes on the slot's descriptor.
    FdRead {
        slot: u8,
        off: u64,
        len: u32,
    },
    /// `ftruncate(2)` on the slot's descriptor.
    FdTruncate {
        slot: u8,
        size: u64,
    },
    /// `fsync` (or `fdatasync`) on the slot's descriptor.
    FdFsync {
        slot: u8,
        datasync: bool,
    },
    /// `close(2)` of the slot's descriptor.
    FdClose {
        slot: u8,
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
            Op::Chown { path, uid, gid } => write!(
                f,
                "Op::Chown {{ path: {path:?}, uid: {uid:?}, gid: {gid:?} }}"
            ),
            Op::Utimens { path, atime, mtime } => write!(
                f,
                "Op::Utimens {{ path: {path:?}, atime: Time::{atime:?}, mtime: Time::{mtime:?} }}"
            ),
            Op::Open { slot, path, how } => write!(
                f,
                "Op::Open {{ slot: {slot}, path: {path:?}, how: OpenMode::{how:?} }}"
            ),
            Op::FdWrite {
                slot,
                off,
                len,
                fill,
            } => write!(
                f,
                "Op::FdWrite {{ slot: {slot}, off: {off}, len: {len}, fill: {fill} }}"
            ),
            Op::FdRead { slot, off, len } => {
                write!(f, "Op::FdRead {{ slot: {slot}, off: {off}, len: {len} }}")
            }
            Op::FdTruncate { slot, size } => {
                write!(f, "Op::FdTruncate {{ slot: {slot}, size: {size} }}")
            }
            Op::FdFsync { slot, datasync } => {
                write!(f, "Op::FdFsync {{ slot: {slot}, datasync: {datasync} }}")
            }
            Op::FdClose { slot } => write!(f, "Op::FdClose {{ slot: {slot} }}"),
            Op::SyncAll => write!(f, "Op::SyncAll"),
            Op::Cut { policy, seed } => write!(
                f,
                "Op::Cut {{ policy: CutPolicy::{policy:?}, seed: {seed} }}"
            ),
        }
    }
}

impl Op {
    /// The operation's name (`write`, `rename`, ...).
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
            Op::Chown { .. } => "chown",
            Op::Utimens { .. } => "utimens",
            Op::Open { .. } => "open",
            Op::FdWrite { .. } => "fd-write",
            Op::FdRead { .. } => "fd-read",
            Op::FdTruncate { .. } => "fd-truncate",
            Op::FdFsync {
                datasync: false, ..
            } => "fd-fsync",
            Op::FdFsync { datasync: true, .. } => "fd-fdatasync",
            Op::FdClose { .. } => "fd-close",
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
