//! Traces: every state-changing operation a volume applied, in order, with
//! its data, so that crash states can be rebuilt later without re-running
//! the program ([`replay::Replayer`], [`crate::explore`]).
//!
//! # Recording
//!
//! While a [`Recorder`] is attached ([`crate::fs::DuraFs::start_trace`]),
//! every state-changing call (create, link, unlink, rmdir, rename, setattr,
//! write, fallocate, fsync, fsyncdir, sync, a dirty-limit writeback, and
//! `mark`) runs under the recorder's lock, so the trace order is the order
//! the model applied them in. Only calls that succeeded are recorded (a
//! failed call changes nothing). Recording therefore serialises writers;
//! it is meant for test workloads, not for benchmarks.
//!
//! # File format (JSON lines, UTF-8)
//!
//! ```text
//! line 1   header  {"durafs_trace":3,"model":"posix",
//!                   "inodes":[{"ino":1,"kind":"dir","attrs":{..},"size":0,
//!                              "target":null,"data":null},
//!                             {"ino":2,"kind":"file",..,"size":4294967300,
//!                              "data":null,"extents":[{"offset":0,"data":"aGVhZA=="},
//!                                {"offset":4294967296,"data":"dGFpbA=="}],
//!                              "xattrs":[{"name":"user.k","value":"dg=="}]}, ...],
//!                   "entries":[{"dir":1,"name":"a","ino":2}, ...]}
//! line 2.. event   {"n":1,"op":"write","ino":2,"offset":0,"data":"aGVsbG8=",
//!                   "t":{"secs":..,"nanos":..},"paths":["/a"]}
//! ```
//!
//! * The header holds the durable tree the recording started from: every
//!   inode with its attributes and content, and every directory entry. A
//!   file's content is its `extents`: the 4 KiB blocks that are not all
//!   zeros, merged where adjacent (holes are skipped with `SEEK_DATA`, so a
//!   sparse file costs its data only); everything else up to `size` is
//!   zeros. Version 1 wrote the whole content as `data` from offset 0;
//!   it is still read. An inode's extended attributes are `xattrs` (name,
//!   base64 value), omitted when it has none; version 3 added them and the
//!   `setxattr` / `removexattr` events (versions 1 and 2 are still read:
//!   they have neither).
//! * Events added in version 3:
//!   `{"op":"setxattr","ino":2,"name":"user.k","value":"dg==","mode":"any","t":..}`
//!   (`mode`: `any`, `create` or `replace`, the `XATTR_*` flag) and
//!   `{"op":"removexattr","ino":2,"name":"user.k","t":..}`; `fallocate`
//!   gained the modes `zero-range` and `zero-range-keep-size`.
//! * Event added without a version bump (version 3 traces without it
//!   read as before; a durafs older than this one rejects a trace that
//!   holds it, naming the unknown variant):
//!   `{"op":"fsync-failed","ino":2,"datasync":false,"sem":"ext4","seed":7}`,
//!   an fsync or fdatasync a fault made fail (`sem`: `strict`, `ext4`,
//!   `xfs` or `btrfs`; `seed` picks the pages written back).
//! * `n` numbers events from 1 without gaps; `op` names the call and the
//!   other fields are its arguments as the model received them (inode
//!   numbers, timestamps, the attributes a create resolved), plus results a
//!   replay checks (`ino` of a create). `paths` are live paths at the time,
//!   for people; replays ignore them.
//! * Byte strings: file data and symlink targets are base64 (standard
//!   alphabet, padded); names are JSON strings when they are UTF-8 and
//!   `{"b64":"..."}` otherwise.
//! * A trace cut short by a crash ends at the last complete line; a partial
//!   last line is ignored with a warning, damage elsewhere is an error.

mod apply;
pub mod replay;

pub use apply::{Applied, ApplyError, Store};

use crate::model::{
    Attrs, Fallocate, FsyncFailure, Ino, Kind, Persistence, SetAttrs, Timestamp, XattrMode,
};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use bytes::Bytes;
use parking_lot::{Mutex, MutexGuard};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::fs::File;
use std::io::{self, BufRead, BufWriter, Write};

/// Version written in the header (versions 1, without `extents`, and 2,
/// without extended attributes, are still read).
pub const TRACE_VERSION: u32 = 3;

/// A name: a JSON string when it is UTF-8, `{"b64": ...}` otherwise.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Text(pub Vec<u8>);

#[derive(Serialize, Deserialize)]
#[serde(untagged)]
enum TextRepr {
    Utf8(String),
    Raw { b64: String },
}

impl Serialize for Text {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match std::str::from_utf8(&self.0) {
            Ok(t) => TextRepr::Utf8(t.to_string()).serialize(s),
            Err(_) => TextRepr::Raw {
                b64: B64.encode(&self.0),
            }
            .serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for Text {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match TextRepr::deserialize(d)? {
            TextRepr::Utf8(t) => Ok(Text(t.into_bytes())),
            TextRepr::Raw { b64 } => B64.decode(b64).map(Text).map_err(serde::de::Error::custom),
        }
    }
}

/// Bytes as a base64 string.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Data(pub Bytes);

impl Serialize for Data {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&B64.encode(&self.0))
    }
}

impl<'de> Deserialize<'de> for Data {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        B64.decode(s)
            .map(|v| Data(Bytes::from(v)))
            .map_err(serde::de::Error::custom)
    }
}

/// One recorded call, with the arguments the model received.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "lowercase")]
pub enum TraceOp {
    /// create, mkdir, symlink and mknod; `ino` is the inode it made.
    Create {
        parent: Ino,
        name: Text,
        kind: Kind,
        attrs: Attrs,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        target: Option<Data>,
        ino: Ino,
    },
    Link {
        ino: Ino,
        newparent: Ino,
        newname: Text,
        t: Timestamp,
    },
    Unlink {
        parent: Ino,
        name: Text,
        t: Timestamp,
    },
    Rmdir {
        parent: Ino,
        name: Text,
        t: Timestamp,
    },
    Rename {
        parent: Ino,
        name: Text,
        newparent: Ino,
        newname: Text,
        #[serde(default)]
        noreplace: bool,
        #[serde(default)]
        exchange: bool,
        t: Timestamp,
    },
    Setattr {
        ino: Ino,
        set: SetAttrs,
        t: Timestamp,
    },
    Write {
        ino: Ino,
        offset: u64,
        data: Data,
        t: Timestamp,
    },
    Fallocate {
        ino: Ino,
        offset: u64,
        len: u64,
        mode: Fallocate,
        t: Timestamp,
    },
    Setxattr {
        ino: Ino,
        name: Text,
        value: Data,
        #[serde(default)]
        mode: XattrMode,
        t: Timestamp,
    },
    Removexattr {
        ino: Ino,
        name: Text,
        t: Timestamp,
    },
    Fsync {
        ino: Ino,
        datasync: bool,
    },
    /// An fsync (`datasync` false) or fdatasync of `ino` that a fault made
    /// fail with EIO after writing back some of the file's dirty pages
    /// (`seed` picks them), the rest following `sem`
    /// (`Model::fsync_failed_applied`). The program got EIO.
    #[serde(rename = "fsync-failed")]
    FsyncFailed {
        ino: Ino,
        datasync: bool,
        sem: FsyncFailure,
        seed: u64,
    },
    Fsyncdir {
        dir: Ino,
    },
    Sync,
    /// The dirty limit wrote back the oldest dirty file, `ino`.
    Writeback {
        ino: Ino,
    },
    /// The first close (FUSE `release`) of file `ino` after a truncate
    /// left it empty: under ext4 it starts the file's writeback
    /// (`Model::release`). Other closes change nothing and are not
    /// recorded.
    Close {
        ino: Ino,
    },
    /// A promise the workload recorded (`durafs mark LABEL`).
    Mark {
        label: String,
    },
    /// A fault fired ([`crate::faults`]): fault `id` did `act` (`error
    /// ENOSPC`, `delay 5 ms`, `cut (drop-all)`, `torn`) on `call` (the call
    /// as [`TraceOp::summary`] wrote it). Changes nothing; a failed fsync
    /// is its own event, [`TraceOp::FsyncFailed`].
    Fault {
        id: u64,
        act: String,
        call: String,
    },
}

impl TraceOp {
    /// The operation's name as triggers and reports use it: `create`,
    /// `mkdir`, `symlink`, `mknod`, `link`, `unlink`, `rmdir`, `rename`,
    /// `truncate` (a setattr of the size alone), `setattr`, `write`,
    /// `fallocate`, `setxattr`, `removexattr`, `fsync`, `fdatasync`,
    /// `fsync-failed` (an fsync or fdatasync that failed), `fsyncdir`,
    /// `sync`, `writeback`, `close`, `mark`.
    pub fn name(&self) -> &'static str {
        match self {
            TraceOp::Create { kind, .. } => match kind {
                Kind::File => "create",
                Kind::Dir => "mkdir",
                Kind::Symlink => "symlink",
                _ => "mknod",
            },
            TraceOp::Link { .. } => "link",
            TraceOp::Unlink { .. } => "unlink",
            TraceOp::Rmdir { .. } => "rmdir",
            TraceOp::Rename { .. } => "rename",
            TraceOp::Setattr { set, .. } => {
                let only_size = set.size.is_some()
                    && set.mode.is_none()
                    && set.uid.is_none()
                    && set.gid.is_none()
                    && set.atime.is_none()
                    && set.mtime.is_none();
                if only_size { "truncate" } else { "setattr" }
            }
            TraceOp::Write { .. } => "write",
            TraceOp::Fallocate { .. } => "fallocate",
            TraceOp::Setxattr { .. } => "setxattr",
            TraceOp::Removexattr { .. } => "removexattr",
            TraceOp::Fsync {
                datasync: false, ..
            } => "fsync",
            TraceOp::Fsync { datasync: true, .. } => "fdatasync",
            TraceOp::FsyncFailed { .. } => "fsync-failed",
            TraceOp::Fsyncdir { .. } => "fsyncdir",
            TraceOp::Sync => "sync",
            TraceOp::Writeback { .. } => "writeback",
            TraceOp::Close { .. } => "close",
            TraceOp::Mark { .. } => "mark",
            TraceOp::Fault { .. } => "fault",
        }
    }

    /// Every name [`TraceOp::name`] returns.
    pub const NAMES: &'static [&'static str] = &[
        "create",
        "mkdir",
        "symlink",
        "mknod",
        "link",
        "unlink",
        "rmdir",
        "rename",
        "truncate",
        "setattr",
        "write",
        "fallocate",
        "setxattr",
        "removexattr",
        "fsync",
        "fdatasync",
        "fsync-failed",
        "fsyncdir",
        "sync",
        "writeback",
        "close",
        "mark",
        "fault",
    ];

    /// What this operation names, in order (a trigger matches their paths).
    pub fn names(&self) -> Vec<Named<'_>> {
        match self {
            TraceOp::Create { parent, name, .. }
            | TraceOp::Unlink { parent, name, .. }
            | TraceOp::Rmdir { parent, name, .. } => vec![Named::Entry(*parent, name)],
            TraceOp::Link {
                ino,
                newparent,
                newname,
                ..
            } => vec![Named::Inode(*ino), Named::Entry(*newparent, newname)],
            TraceOp::Rename {
                parent,
                name,
                newparent,
                newname,
                ..
            } => vec![
                Named::Entry(*parent, name),
                Named::Entry(*newparent, newname),
            ],
            TraceOp::Setattr { ino, .. }
            | TraceOp::Write { ino, .. }
            | TraceOp::Fallocate { ino, .. }
            | TraceOp::Setxattr { ino, .. }
            | TraceOp::Removexattr { ino, .. }
            | TraceOp::Fsync { ino, .. }
            | TraceOp::FsyncFailed { ino, .. }
            | TraceOp::Writeback { ino }
            | TraceOp::Close { ino } => vec![Named::Inode(*ino)],
            TraceOp::Fsyncdir { dir } => vec![Named::Inode(*dir)],
            TraceOp::Sync | TraceOp::Mark { .. } | TraceOp::Fault { .. } => Vec::new(),
        }
    }

    /// True for calls a program made on the volume (not a writeback the
    /// dirty limit forced, a close, nor a mark): what `after-ops=N` counts.
    pub fn is_user_op(&self) -> bool {
        !matches!(
            self,
            TraceOp::Writeback { .. }
                | TraceOp::Close { .. }
                | TraceOp::Mark { .. }
                | TraceOp::Fault { .. }
        )
    }

    /// True for fsync, fdatasync, fsyncdir and sync, and for an fsync or
    /// fdatasync that failed: the program called fsync there, so a crash
    /// just before it is worth checking, and the pages it wrote back reach
    /// the store (it runs alone with the store, as every durability point
    /// does). It is not a *successful* durability point: what it leaves
    /// pending or marks clean is in the model's pending list and durable
    /// store, so crash states after it need nothing more.
    pub fn is_persistence_point(&self) -> bool {
        matches!(
            self,
            TraceOp::Fsync { .. }
                | TraceOp::FsyncFailed { .. }
                | TraceOp::Fsyncdir { .. }
                | TraceOp::Sync
        )
    }

    /// A line for people, e.g. `write /log [0, 100)`.
    pub fn summary(&self, paths: &[String]) -> String {
        let p = |i: usize| paths.get(i).map_or("?", String::as_str);
        let name = self.name();
        match self {
            TraceOp::Write { offset, data, .. } => {
                format!(
                    "{name} {} [{offset}, {})",
                    p(0),
                    offset + data.0.len() as u64
                )
            }
            TraceOp::Fallocate {
                offset, len, mode, ..
            } => format!("{name} {} [{offset}, {}) {mode:?}", p(0), offset + len),
            TraceOp::Setattr { set, .. } if name == "truncate" => {
                format!("{name} {} to {}", p(0), set.size.unwrap_or(0))
            }
            TraceOp::Rename { .. } | TraceOp::Link { .. } => {
                format!("{name} {} -> {}", p(0), p(1))
            }
            TraceOp::Setxattr { name: x, .. } | TraceOp::Removexattr { name: x, .. } => {
                format!("{name} {} {}", p(0), String::from_utf8_lossy(&x.0))
            }
            TraceOp::FsyncFailed {
                datasync,
                sem,
                seed,
                ..
            } => {
                let call = if *datasync { "fdatasync" } else { "fsync" };
                format!("{name} {} ({call}, {sem}, seed {seed})", p(0))
            }
            TraceOp::Sync => name.to_string(),
            TraceOp::Mark { label } => format!("{name} {label:?}"),
            TraceOp::Fault { id, act, call } => format!("{name} #{id}: {act} on {call}"),
            _ => format!("{name} {}", p(0)),
        }
    }
}

/// Something an operation names ([`TraceOp::names`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Named<'a> {
    /// An inode, by number.
    Inode(Ino),
    /// The entry `name` in directory `dir`.
    Entry(Ino, &'a Text),
}

/// One line of a trace after the header.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// Position in the trace, from 1.
    pub n: u64,
    #[serde(flatten)]
    pub op: TraceOp,
    /// Live paths the call named (for people).
    #[serde(default)]
    pub paths: Vec<String>,
    /// Who made the call and where in its code (recorded with stacks:
    /// `explore --stacks`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub caller: Option<crate::stacks::Caller>,
}

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{} {}", self.n, self.op.summary(&self.paths))
    }
}

/// One inode of the starting tree.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InitInode {
    pub ino: Ino,
    pub kind: Kind,
    pub attrs: Attrs,
    #[serde(default)]
    pub size: u64,
    #[serde(default)]
    pub target: Option<Data>,
    /// Version 1: file content from offset 0 (absent: zeros up to `size`).
    #[serde(default)]
    pub data: Option<Data>,
    /// File content: non-zero parts, ascending; zeros elsewhere.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extents: Vec<Extent>,
    /// Extended attributes, by name (version 3).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub xattrs: Vec<InitXattr>,
}

/// One extended attribute of an inode of the starting tree.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InitXattr {
    pub name: Text,
    pub value: Data,
}

/// Bytes of a file of the starting tree at `offset`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Extent {
    pub offset: u64,
    pub data: Data,
}

/// One directory entry of the starting tree.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InitEntry {
    pub dir: Ino,
    pub name: Text,
    pub ino: Ino,
}

/// The first line of a trace: the durable tree the recording started from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Header {
    pub durafs_trace: u32,
    pub model: Persistence,
    pub inodes: Vec<InitInode>,
    pub entries: Vec<InitEntry>,
}

/// A whole trace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Trace {
    pub header: Header,
    pub events: Vec<Event>,
}

/// A trace that cannot be read or replayed.
#[derive(Debug)]
pub enum TraceError {
    Io(io::Error),
    /// Line `line` (from 1) is not what the format says.
    Format {
        line: usize,
        what: String,
    },
    /// Event `n` does not replay on the state the earlier events left.
    Replay {
        n: u64,
        what: String,
    },
}

impl fmt::Display for TraceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TraceError::Io(e) => write!(f, "trace: {e}"),
            TraceError::Format { line, what } => write!(f, "trace line {line}: {what}"),
            TraceError::Replay { n, what } => write!(f, "trace event {n} does not replay: {what}"),
        }
    }
}

impl std::error::Error for TraceError {}

impl From<io::Error> for TraceError {
    fn from(e: io::Error) -> Self {
        TraceError::Io(e)
    }
}

impl Trace {
    /// The event numbered `n`.
    pub fn event(&self, n: u64) -> Option<&Event> {
        let i = self.events.partition_point(|e| e.n < n);
        self.events.get(i).filter(|e| e.n == n)
    }

    /// Reads a trace file (see the module docs). A torn last line is
    /// dropped with a warning.
    pub fn read(r: impl BufRead) -> Result<Trace, TraceError> {
        let mut lines: Vec<String> = Vec::new();
        for line in r.split(b'\n') {
            let line = line?;
            lines.push(String::from_utf8(line).map_err(|_| TraceError::Format {
                line: lines.len() + 1,
                what: "not UTF-8".into(),
            })?);
        }
        while lines.last().is_some_and(|l| l.trim().is_empty()) {
            lines.pop();
        }
        let first = lines.first().ok_or(TraceError::Format {
            line: 1,
            what: "empty trace (no header)".into(),
        })?;
        let header: Header = serde_json::from_str(first).map_err(|e| TraceError::Format {
            line: 1,
            what: format!("bad header: {e}"),
        })?;
        if !(1..=TRACE_VERSION).contains(&header.durafs_trace) {
            return Err(TraceError::Format {
                line: 1,
                what: format!(
                    "trace version {} (this durafs reads {TRACE_VERSION})",
                    header.durafs_trace
                ),
            });
        }
        let mut events = Vec::with_capacity(lines.len().saturating_sub(1));
        let last = lines.len();
        for (i, line) in lines.iter().enumerate().skip(1) {
            match serde_json::from_str::<Event>(line) {
                Ok(ev) => {
                    let want = events.len() as u64 + 1;
                    if ev.n != want {
                        return Err(TraceError::Format {
                            line: i + 1,
                            what: format!("event numbered {} where {want} was due", ev.n),
                        });
                    }
                    events.push(ev);
                }
                Err(e) if i + 1 == last => {
                    log::warn!("durafs: trace: ignoring a torn last line {}: {e}", i + 1);
                }
                Err(e) => {
                    return Err(TraceError::Format {
                        line: i + 1,
                        what: e.to_string(),
                    });
                }
            }
        }
        Ok(Trace { header, events })
    }

    /// Reads the trace file at `path`.
    pub fn read_file(path: &std::path::Path) -> Result<Trace, TraceError> {
        let f = File::open(path).map_err(|e| {
            TraceError::Io(io::Error::new(e.kind(), format!("{}: {e}", path.display())))
        })?;
        Trace::read(io::BufReader::new(f))
    }

    /// Writes the trace in the file format.
    pub fn write(&self, mut w: impl Write) -> io::Result<()> {
        write_line(&mut w, &self.header)?;
        for ev in &self.events {
            write_line(&mut w, ev)?;
        }
        w.flush()
    }

    /// The labels of the marks among the first `k` events.
    pub fn marks_before(&self, k: usize) -> Vec<String> {
        self.events
            .iter()
            .take(k)
            .filter_map(|e| match &e.op {
                TraceOp::Mark { label } => Some(label.clone()),
                _ => None,
            })
            .collect()
    }
}

fn write_line(w: &mut impl Write, v: &impl Serialize) -> io::Result<()> {
    serde_json::to_writer(&mut *w, v).map_err(io::Error::other)?;
    w.write_all(b"\n")
}

/// What a recorder holds.
#[derive(Debug)]
pub struct RecState {
    header: Header,
    events: Vec<Event>,
    keep: bool,
    next: u64,
    file: Option<BufWriter<File>>,
    stopped: bool,
    failed: bool,
}

impl RecState {
    /// Appends one event (nothing once stopped).
    pub fn push(&mut self, op: TraceOp, paths: Vec<String>, caller: Option<crate::stacks::Caller>) {
        if self.stopped {
            return;
        }
        let ev = Event {
            n: self.next,
            op,
            paths,
            caller,
        };
        self.next += 1;
        if let Some(f) = self.file.as_mut() {
            if let Err(e) = write_line(f, &ev).and_then(|()| f.flush()) {
                if !self.failed {
                    log::error!("durafs: writing the trace failed: {e}; recording stops");
                }
                self.failed = true;
                self.stopped = true;
            }
        }
        if self.keep {
            self.events.push(ev);
        }
    }

    /// True while events are being recorded.
    pub fn recording(&self) -> bool {
        !self.stopped
    }
}

/// Records the calls of one volume. Holding its lock orders calls.
#[derive(Debug)]
pub struct Recorder {
    state: Mutex<RecState>,
}

impl Recorder {
    /// A recorder starting from `header`; it keeps events in memory when
    /// `keep`, and appends them to `file` when given (the header first).
    pub fn new(header: Header, keep: bool, file: Option<File>) -> io::Result<Recorder> {
        let file = match file {
            Some(f) => {
                let mut w = BufWriter::new(f);
                write_line(&mut w, &header)?;
                w.flush()?;
                Some(w)
            }
            None => None,
        };
        Ok(Recorder {
            state: Mutex::new(RecState {
                header,
                events: Vec::new(),
                keep,
                next: 1,
                file,
                stopped: false,
                failed: false,
            }),
        })
    }

    /// Locks the recorder: the caller's call is ordered before every call
    /// that locks it later.
    pub fn lock(&self) -> MutexGuard<'_, RecState> {
        self.state.lock()
    }

    /// Stops recording and returns the trace kept in memory (empty events
    /// unless created with `keep`). Whether writing the file failed is
    /// returned as an error.
    pub fn finish(&self) -> io::Result<Trace> {
        let mut s = self.state.lock();
        s.stopped = true;
        if let Some(f) = s.file.as_mut() {
            f.flush()?;
        }
        if s.failed {
            return Err(io::Error::other(
                "writing the trace file failed (see the log)",
            ));
        }
        Ok(Trace {
            header: s.header.clone(),
            events: std::mem::take(&mut s.events),
        })
    }
}

#[cfg(test)]
mod tests;
