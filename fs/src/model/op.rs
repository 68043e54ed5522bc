//! Unsynced operations and the effects that make state durable.
//!
//! An [`Op`] is one unsynced change, self-contained: it names inodes by
//! number and carries its data, so a crash state can apply any subset of the
//! pending operations, in their original order, on top of the durable state.
//!
//! An [`Effect`] is one change to the durable store. fsync, fsyncdir and
//! sync-all return the effects that their durability point requires; crash
//! policies return the effects of the operations that survive. Every store
//! (the in-memory [`crate::model::MemStore`], the backing directory) applies
//! effects with the same contract:
//!
//! * `Link` sets `dir[name] = ino`, replacing any entry; when `ino` does not
//!   exist yet it is created from `init` (empty). Skipped when `dir` does not
//!   exist.
//! * `Unlink` removes `dir[name]` if present.
//! * `Write`, `WriteKeepSize`, `Truncate`, `Extend`, `Zero`, `SetAttrs` and
//!   `SetXattr` are skipped when `ino` does not exist.
//! * `WriteKeepSize` puts bytes on disk without changing the size: those past
//!   the end are *hidden* (written back into a block whose size change was
//!   not committed) until a later `Write` or `Extend` grows the size over
//!   them; a `Truncate` discards the inode's hidden bytes (it frees or zeroes
//!   what lies past the old end).
//! * Inodes that no entry reaches survive until the store is materialised after
//!   a crash, when they are discarded (what fsck does with orphans).

use super::types::{Attrs, Ino, Kind, Name};
use bytes::Bytes;

/// What a new inode starts as, carried by every entry that may create it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewInode {
    pub kind: Kind,
    pub attrs: Attrs,
    /// Symlink target.
    pub target: Option<Bytes>,
}

/// One change to one directory entry. `target: None` removes the entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EntryChange {
    pub name: Name,
    pub target: Option<(Ino, NewInode)>,
}

/// Which user-visible call a namespace operation came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NsKind {
    /// `open(O_CREAT)` / `creat(2)` of a regular file.
    Create,
    /// `mkdir(2)`.
    Mkdir,
    /// `symlink(2)`.
    Symlink,
    /// `mknod(2)`: a fifo, socket or device.
    Mknod,
    /// `link(2)`.
    Link,
    /// `unlink(2)`.
    Unlink,
    /// `rmdir(2)`.
    Rmdir,
    /// Same-directory rename (one atomic operation).
    Rename,
    /// The source half of a rename across directories.
    RenameFrom,
    /// The destination half of a rename across directories.
    RenameTo,
    /// `RENAME_EXCHANGE`: two entries swapped (one operation per directory).
    Exchange,
}

/// Byte ranges as `[0, 512) [1024, 2048)` (`nothing` when empty).
pub fn show_ranges(r: &[(u64, u64)]) -> String {
    if r.is_empty() {
        return "nothing".to_string();
    }
    let v: Vec<String> = r.iter().map(|(a, b)| format!("[{a}, {b})")).collect();
    v.join(" ")
}

/// The page size of the page cache: the unit in which a kernel writes a
/// file's data back, and the block a shrinking truncate zeroes the tail of.
pub const PAGE: u64 = 4096;

/// One unsynced operation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    /// Changes to the entries of one directory, applied atomically.
    /// `peer` is the other directory and name of a rename, for reports.
    /// `over` is set on the half of a rename that puts the file on a name
    /// that held another file (ext4's `auto_da_alloc`, [`super::profile`]).
    Names {
        dir: Ino,
        what: NsKind,
        changes: Vec<EntryChange>,
        peer: Option<(Ino, Name)>,
        over: bool,
    },
    /// Bytes written at an offset (extends the size when past the end).
    /// `size_before` is the file's size when it was written (the ext4
    /// profile's size rule, [`super::profile`]).
    Write {
        ino: Ino,
        offset: u64,
        data: Bytes,
        size_before: u64,
    },
    /// The size set exactly (shrink or extend).
    Truncate { ino: Ino, size: u64 },
    /// `fallocate` default mode: the size grows to at least `offset + len`.
    Allocate { ino: Ino, offset: u64, len: u64 },
    /// A punched hole: the range reads as zeros, size unchanged.
    Punch { ino: Ino, offset: u64, len: u64 },
    /// Attributes replaced (chmod, chown, utimes).
    SetAttrs { ino: Ino, attrs: Attrs },
    /// One extended attribute set (`Some`) or removed (`None`): an
    /// attribute, durable with fsync but not fdatasync.
    SetXattr {
        ino: Ino,
        name: Name,
        value: Option<Bytes>,
    },
    /// ext4's `auto_da_alloc` at a close after a truncate to size 0: the
    /// file's writeback started here (`ext4_release_file` →
    /// `ext4_alloc_da_blocks`), which allocates its delayed blocks and
    /// journals the size its earlier writes gave it
    /// ([`super::profile::flushes_keep_sizes`]). No effect of its own:
    /// journaled metadata that carries those sizes.
    CloseFlush { ino: Ino },
}

impl Op {
    /// The inode whose data or attributes this changes (`None` for names).
    pub fn inode(&self) -> Option<Ino> {
        match self {
            Op::Names { .. } => None,
            Op::Write { ino, .. }
            | Op::Truncate { ino, .. }
            | Op::Allocate { ino, .. }
            | Op::Punch { ino, .. }
            | Op::SetAttrs { ino, .. }
            | Op::SetXattr { ino, .. }
            | Op::CloseFlush { ino } => Some(*ino),
        }
    }

    /// True when this is a namespace change that links `ino` under a name.
    pub fn links(&self, ino: Ino) -> bool {
        match self {
            Op::Names { changes, .. } => changes
                .iter()
                .any(|c| c.target.as_ref().is_some_and(|(i, _)| *i == ino)),
            _ => false,
        }
    }

    /// The directory whose entries this changes (`None` for data).
    pub fn dir(&self) -> Option<Ino> {
        match self {
            Op::Names { dir, .. } => Some(*dir),
            _ => None,
        }
    }

    /// Bytes of data this carries.
    pub fn data_len(&self) -> u64 {
        match self {
            Op::Write { data, .. } => data.len() as u64,
            _ => 0,
        }
    }

    /// The byte range whose on-disk bytes this changes (its *data part*),
    /// apart from any size change: a write's bytes; a punched hole; a
    /// shrinking truncate's zeroed tail, from the new size to the end of its
    /// page (the kernel zeroes that page's tail and writes it back like any
    /// page; the blocks past it are freed with the size change). `None` for
    /// names, attributes and allocation.
    pub fn data_range(&self) -> Option<(u64, u64)> {
        match self {
            Op::Write { offset, data, .. } if !data.is_empty() => {
                Some((*offset, offset + data.len() as u64))
            }
            Op::Punch { offset, len, .. } if *len > 0 => Some((*offset, offset + len)),
            Op::Truncate { size, .. } if size % PAGE != 0 => {
                Some((*size, size.next_multiple_of(PAGE)))
            }
            _ => None,
        }
    }

    /// True when this changes a size (a write may extend; a truncate sets).
    pub fn changes_size(&self) -> bool {
        matches!(
            self,
            Op::Write { .. } | Op::Truncate { .. } | Op::Allocate { .. }
        )
    }

    /// True for operations that fdatasync makes durable (data and size;
    /// a [`Op::CloseFlush`] is the allocation of written data).
    pub fn is_data(&self) -> bool {
        matches!(
            self,
            Op::Write { .. }
                | Op::Truncate { .. }
                | Op::Allocate { .. }
                | Op::Punch { .. }
                | Op::CloseFlush { .. }
        )
    }

    /// The effects of this operation surviving a crash in the given way.
    pub fn effects(&self, how: &Survival, out: &mut Vec<Effect>) {
        match (self, how) {
            (Op::Names { dir, changes, .. }, _) => {
                for c in changes {
                    out.push(match &c.target {
                        Some((ino, init)) => Effect::Link {
                            dir: *dir,
                            name: c.name.clone(),
                            ino: *ino,
                            init: init.clone(),
                        },
                        None => Effect::Unlink {
                            dir: *dir,
                            name: c.name.clone(),
                        },
                    });
                }
            }
            (
                Op::Write {
                    ino, offset, data, ..
                },
                Survival::Full,
            ) => out.push(Effect::Write {
                ino: *ino,
                offset: *offset,
                data: data.clone(),
            }),
            (
                Op::Write {
                    ino, offset, data, ..
                },
                Survival::MetaOnly,
            ) => out.push(Effect::Extend {
                ino: *ino,
                size: offset + data.len() as u64,
            }),
            (
                Op::Write {
                    ino, offset, data, ..
                },
                Survival::Torn { persisted, garbage },
            ) => {
                out.push(Effect::Extend {
                    ino: *ino,
                    size: offset + data.len() as u64,
                });
                let end = offset + data.len() as u64;
                let mut pos = *offset;
                for &(s, e) in persisted {
                    let (s, e) = (s.max(*offset), e.min(end));
                    if s >= e {
                        continue;
                    }
                    if let (Some(seed), true) = (garbage, s > pos) {
                        out.push(garbage_write(*ino, pos, s - pos, *seed));
                    }
                    out.push(Effect::Write {
                        ino: *ino,
                        offset: s,
                        data: data.slice((s - offset) as usize..(e - offset) as usize),
                    });
                    pos = e;
                }
                if let (Some(seed), true) = (garbage, end > pos) {
                    out.push(garbage_write(*ino, pos, end - pos, *seed));
                }
            }
            (
                Op::Write {
                    ino, offset, data, ..
                },
                Survival::DataOnly { persisted },
            ) => {
                let end = offset + data.len() as u64;
                for &(s, e) in persisted {
                    let (s, e) = (s.max(*offset), e.min(end));
                    if s < e {
                        out.push(Effect::WriteKeepSize {
                            ino: *ino,
                            offset: s,
                            data: data.slice((s - offset) as usize..(e - offset) as usize),
                        });
                    }
                }
            }
            (
                Op::Truncate { ino, .. } | Op::Punch { ino, .. },
                Survival::DataOnly { persisted },
            )
            | (Op::Punch { ino, .. }, Survival::Torn { persisted, .. }) => {
                let Some((start, end)) = self.data_range() else {
                    return;
                };
                for &(s, e) in persisted {
                    let (s, e) = (s.max(start), e.min(end));
                    if s < e {
                        out.push(Effect::Zero {
                            ino: *ino,
                            offset: s,
                            len: e - s,
                        });
                    }
                }
            }
            (Op::Truncate { ino, size }, _) => out.push(Effect::Truncate {
                ino: *ino,
                size: *size,
            }),
            (Op::Allocate { .. }, Survival::DataOnly { .. }) => {}
            (Op::Allocate { ino, offset, len }, _) => out.push(Effect::Extend {
                ino: *ino,
                size: offset + len,
            }),
            (Op::Punch { ino, offset, len }, Survival::Full) => out.push(Effect::Zero {
                ino: *ino,
                offset: *offset,
                len: *len,
            }),
            (Op::Punch { .. }, _) => {}
            (Op::SetAttrs { ino, attrs }, _) => out.push(Effect::SetAttrs {
                ino: *ino,
                attrs: *attrs,
            }),
            (Op::SetXattr { ino, name, value }, _) => out.push(Effect::SetXattr {
                ino: *ino,
                name: name.clone(),
                value: value.clone(),
            }),
            (Op::CloseFlush { .. }, _) => {}
        }
    }
}

fn garbage_write(ino: Ino, offset: u64, len: u64, seed: u64) -> Effect {
    let mut rng = super::rng::SplitMix64::new(seed ^ offset.rotate_left(17));
    let data: Vec<u8> = (0..len).map(|_| rng.next_u64() as u8).collect();
    Effect::Write {
        ino,
        offset,
        data: Bytes::from(data),
    }
}

/// An operation with its place in the global order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PendingOp {
    /// Position in the global order of all operations (increasing).
    pub seq: u64,
    pub op: Op,
}

/// How an operation survives a crash.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Survival {
    /// Entirely.
    Full,
    /// Its namespace and size changes survive, its data does not (the
    /// extended region reads as zeros; overwritten bytes keep their old value).
    MetaOnly,
    /// A write of which only the sectors in `persisted` (absolute byte ranges,
    /// sorted) reached the disk; the size change survives. Other sectors keep
    /// their old bytes, or get seeded garbage when `garbage` is set. (A punch
    /// zeroes only `persisted`.)
    Torn {
        persisted: Vec<(u64, u64)>,
        garbage: Option<u64>,
    },
    /// The data part ([`Op::data_range`]) reached the disk in `persisted`
    /// (absolute byte ranges, sorted; all of it or some sectors), the size
    /// change did not: a written-back page whose size change the journal
    /// never committed. Bytes past the durable end stay hidden (see
    /// [`Effect::WriteKeepSize`]).
    DataOnly { persisted: Vec<(u64, u64)> },
}

/// One change to a durable store; see the module documentation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Effect {
    /// The inode exists (as an orphan until an entry links it).
    Alloc { ino: Ino, init: NewInode },
    /// `dir[name] = ino`, replacing any entry; `ino` made from `init` if
    /// it does not exist yet.
    Link {
        dir: Ino,
        name: Name,
        ino: Ino,
        init: NewInode,
    },
    /// `dir[name]` removed if present.
    Unlink { dir: Ino, name: Name },
    /// Bytes at `offset`; the size grows to cover them.
    Write { ino: Ino, offset: u64, data: Bytes },
    /// Bytes on disk, the size unchanged: those past the end are hidden
    /// until the size grows over them (see the module documentation).
    WriteKeepSize { ino: Ino, offset: u64, data: Bytes },
    /// The size set exactly.
    Truncate { ino: Ino, size: u64 },
    /// The size grown to at least `size`.
    Extend { ino: Ino, size: u64 },
    /// The range reads as zeros; size unchanged.
    Zero { ino: Ino, offset: u64, len: u64 },
    /// The attributes replaced (mode, owner, times).
    SetAttrs { ino: Ino, attrs: Attrs },
    /// Extended attribute `name` set to `value`, or removed (`None`).
    SetXattr {
        ino: Ino,
        name: Name,
        value: Option<Bytes>,
    },
}

impl Op {
    /// A short description naming inodes by number, e.g.
    /// `write #5 [0, 4096)`.
    pub fn summary(&self) -> String {
        match self {
            Op::Names {
                dir, what, changes, ..
            } => {
                let names: Vec<String> = changes
                    .iter()
                    .map(|c| String::from_utf8_lossy(&c.name).into_owned())
                    .collect();
                let what = format!("{what:?}").to_lowercase();
                format!("{what} in dir #{dir}: {}", names.join(", "))
            }
            Op::Write {
                ino, offset, data, ..
            } => {
                format!("write #{ino} [{offset}, {})", offset + data.len() as u64)
            }
            Op::Truncate { ino, size } => format!("truncate #{ino} to {size}"),
            Op::Allocate { ino, offset, len } => {
                format!("fallocate #{ino} [{offset}, {})", offset + len)
            }
            Op::Punch { ino, offset, len } => {
                format!("punch hole #{ino} [{offset}, {})", offset + len)
            }
            Op::SetAttrs { ino, .. } => format!("setattr #{ino}"),
            Op::SetXattr { ino, name, value } => format!(
                "{} #{ino} {}",
                if value.is_some() {
                    "setxattr"
                } else {
                    "removexattr"
                },
                String::from_utf8_lossy(name)
            ),
            Op::CloseFlush { ino } => format!("close #{ino} (auto_da_alloc writeback)"),
        }
    }
}
