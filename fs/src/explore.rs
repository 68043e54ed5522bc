//! Crash states from a trace, without re-running the program: the trace is
//! replayed on an in-memory model ([`crate::trace::replay`]); at each crash
//! point the pending operations are enumerated with the model's
//! [`enumerate`](crate::model::enumerate::enumerate), each state is applied to a copy of the durable store, and
//! the resulting tree becomes a [`Snapshot`] that can be materialised into
//! a scratch directory for a checker.
//!
//! Order and identity: states are numbered from 1 in the order of crash
//! points, then of the enumeration at each point. A state whose tree and
//! marks equal an earlier one's is skipped (checking it again could only
//! repeat the verdict). The same trace and options give the same states in
//! the same order.
//!
//! Budget: when the enumeration at every point would give more than
//! `max_states` states in all, each point gets an equal share (at least the
//! three fixed states: drop-all, keep-all, meta-first), sampled as
//! [`EnumOptions::cap`] describes, and generation stops at `max_states`.

use crate::model::enumerate::{EnumOptions, count, enumerate_named};
use crate::model::{Kind, MemStore, PendingOp, Survival, TreeNode};
use crate::trace::replay::Replayer;
use crate::trace::{Trace, TraceError};
pub use sparse::{SparseEntry, SparseSnapshot};
use std::collections::{HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
pub use tree::Tree;

/// Where crashes are placed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum CrashPoints {
    /// Before the first operation and after every operation.
    #[default]
    Every,
    /// Just before every fsync, fdatasync, fsyncdir and sync, and at the end.
    Fsync,
}

impl std::str::FromStr for CrashPoints {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "every" | "all" => Ok(CrashPoints::Every),
            "fsync" => Ok(CrashPoints::Fsync),
            other => Err(format!(
                "unknown crash points {other:?} (expected every or fsync)"
            )),
        }
    }
}

/// Settings of an exploration.
#[derive(Clone, Copy, Debug)]
pub struct ExploreOptions {
    pub at: CrashPoints,
    /// Most states yielded in all.
    pub max_states: usize,
    /// Enumeration at each point (its `cap` is lowered to share the budget).
    pub enumerate: EnumOptions,
    /// Crash points before this one (the number of trace events done) are
    /// skipped: `explore --fsync-failures` checks the states after the
    /// failed fsync only.
    pub from: usize,
}

impl Default for ExploreOptions {
    fn default() -> Self {
        ExploreOptions {
            at: CrashPoints::Every,
            max_states: 10_000,
            enumerate: EnumOptions::default(),
            from: 0,
        }
    }
}

/// How one pending operation fared in a state.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct OpFate {
    /// The trace event that made it (`None` for none: a replay from
    /// before the trace).
    pub event: Option<u64>,
    /// The event as recorded, with the paths it named then, e.g.
    /// `#4 write /log [0, 100)`.
    pub op: String,
    /// `kept`, `dropped`, `metadata only` or `torn: kept [0, 512)`.
    pub fate: String,
    /// Where the program made the call, when recorded with stacks.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub at: Option<String>,
}

/// One crash state to check; its tree is a [`Snapshot`] by default, or a
/// [`SparseSnapshot`] (from [`sparse_states`]).
#[derive(Clone, Debug)]
pub struct State<S = Snapshot> {
    /// From 1, in generation order.
    pub id: usize,
    /// Events applied before the crash.
    pub point: usize,
    /// The last event applied (`None` for a crash before the first).
    pub after: Option<String>,
    /// Marks recorded before the crash.
    pub marks: Vec<String>,
    /// The crash state in a line.
    pub description: String,
    pub seed: u64,
    /// The pending operations and what became of each.
    pub ops: Vec<OpFate>,
    /// Pending operations dropped entirely.
    pub dropped: usize,
    /// What survived: `(index into the pending operations at the point,
    /// how)`, ascending, after the model's rules.
    pub kept: Vec<(usize, Survival)>,
    /// Equal for states with equal trees and marks (a hash of both).
    pub key: u64,
    /// Most states the exploration yields in all (duplicates are skipped,
    /// so it may yield fewer): for progress and its estimate.
    pub planned: usize,
    pub snapshot: S,
}

/// A crash state whose files share the model's memory.
pub type SparseState = State<SparseSnapshot>;

impl<S> State<S> {
    /// The same state with its tree converted by `f`.
    pub fn map<T>(self, f: impl FnOnce(S) -> T) -> State<T> {
        State {
            id: self.id,
            point: self.point,
            after: self.after,
            marks: self.marks,
            description: self.description,
            seed: self.seed,
            ops: self.ops,
            dropped: self.dropped,
            kept: self.kept,
            key: self.key,
            planned: self.planned,
            snapshot: f(self.snapshot),
        }
    }
}

/// What generation saw.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Stats {
    pub events: usize,
    pub points: usize,
    /// States the whole enumeration holds, duplicates included, before
    /// the `--max-states` budget cut it.
    pub total: usize,
    /// States enumerated, duplicates included (all of `total` unless
    /// `sampled`).
    pub enumerated: usize,
    /// Distinct states yielded.
    pub distinct: usize,
    /// True when the budget sampled or cut the enumeration.
    pub sampled: bool,
}

fn points(trace: &Trace, at: CrashPoints) -> Vec<usize> {
    let n = trace.events.len();
    match at {
        CrashPoints::Every => (0..=n).collect(),
        CrashPoints::Fsync => {
            let mut v: Vec<usize> = (0..n)
                .filter(|&k| trace.events[k].op.is_persistence_point())
                .collect();
            v.push(n);
            v
        }
    }
}

/// Replays `trace` and calls `each` with the replayer at every point.
fn walk(
    trace: &Trace,
    pts: &[usize],
    mut each: impl FnMut(usize, &Replayer) -> bool,
) -> Result<(), TraceError> {
    let mut r = Replayer::new(&trace.header)?;
    for &k in pts {
        while r.applied() < k {
            r.apply(&trace.events[r.applied()])?;
        }
        if !each(k, &r) {
            break;
        }
    }
    Ok(())
}

/// Generates the crash states of `trace`, calling `sink` with each in
/// order until it returns false or the states run out.
pub fn states(
    trace: &Trace,
    opts: &ExploreOptions,
    mut sink: impl FnMut(State) -> bool,
) -> Result<Stats, TraceError> {
    sparse_states(trace, opts, |s| sink(s.map(|t| t.to_snapshot())))
}

/// [`states`] with each tree as a [`SparseSnapshot`]: the same states, in
/// the same order, with the same numbers, but a state costs the chunk
/// count of its files rather than their bytes (file content is shared
/// with the replayed model, copied only where the state wrote), so big
/// sparse files such as filesystem images stay cheap.
pub fn sparse_states(
    trace: &Trace,
    opts: &ExploreOptions,
    sink: impl FnMut(SparseState) -> bool,
) -> Result<Stats, TraceError> {
    sparse_states_and_duplicates(trace, opts, sink, |_| {})
}

/// A state equal to an earlier one (same tree and marks), reached at
/// another crash point or by another enumeration: not checked again, but
/// its verdict is the earlier state's, and its cause at this point may
/// differ (see [`explain`]).
#[derive(Clone, Debug)]
pub struct Duplicate {
    /// The [`State::key`] it shares with an earlier state.
    pub key: u64,
    pub point: usize,
    pub kept: Vec<(usize, Survival)>,
}

/// [`sparse_states`], also calling `dup` with every duplicate skipped.
pub fn sparse_states_and_duplicates(
    trace: &Trace,
    opts: &ExploreOptions,
    mut sink: impl FnMut(SparseState) -> bool,
    mut dup: impl FnMut(Duplicate),
) -> Result<Stats, TraceError> {
    let mut pts = points(trace, opts.at);
    pts.retain(|&p| p >= opts.from);
    let mut stats = Stats {
        events: trace.events.len(),
        points: pts.len(),
        ..Stats::default()
    };
    let mut eopts = opts.enumerate.under(trace.header.model);
    walk(trace, &pts, |_, r| {
        stats.total = stats.total.saturating_add(count(&r.pending(), &eopts));
        true
    })?;
    if stats.total > opts.max_states {
        stats.sampled = true;
        eopts.cap = eopts.cap.min((opts.max_states / pts.len().max(1)).max(3));
    }
    let mut seen: HashSet<u64> = HashSet::new();
    let mut go = true;
    walk(trace, &pts, |k, r| {
        let pending = r.pending();
        let marks = trace.marks_before(k);
        let after = k.checked_sub(1).map(|i| trace.events[i].to_string());
        let labels = labels(trace, r, &pending);
        for cs in enumerate_named(&pending, &labels, &eopts) {
            stats.enumerated += 1;
            if stats.distinct >= opts.max_states {
                stats.sampled = true;
                go = false;
                break;
            }
            let (snapshot, key) = tree(r, &pending, &cs.kept, &marks);
            if !seen.insert(key) {
                dup(Duplicate {
                    key,
                    point: k,
                    kept: cs.kept,
                });
                continue;
            }
            stats.distinct += 1;
            let ops = fates(trace, &labels, &pending, r, &cs.kept);
            let state = State {
                id: stats.distinct,
                point: k,
                after: after.clone(),
                marks: marks.clone(),
                description: cs.description.clone(),
                seed: cs.seed,
                ops,
                dropped: cs.dropped().len(),
                kept: cs.kept,
                key,
                planned: stats.total.min(opts.max_states),
                snapshot,
            };
            if !sink(state) {
                go = false;
                break;
            }
        }
        go
    })?;
    Ok(stats)
}

/// The tree of the state that keeps `kept` of `pending` on the durable
/// store of `r`, and its key (with the marks).
pub(crate) fn tree(
    r: &Replayer,
    pending: &[PendingOp],
    kept: &[(usize, Survival)],
    marks: &[String],
) -> (SparseSnapshot, u64) {
    let mut store = r.durable().clone();
    let mut effects = Vec::new();
    for (i, how) in kept {
        if let Some(p) = pending.get(*i) {
            p.op.effects(how, &mut effects);
        }
    }
    store.apply_all(&effects);
    let snapshot = SparseSnapshot::of(&store);
    // The key only deduplicates states within one run: a fast
    // non-keyed hash of the bytes suffices (SipHash was most of the time
    // spent enumerating a state of a 512 KiB workload).
    let mut h = twox_hash::XxHash3_64::new();
    snapshot.hash(&mut h);
    marks.hash(&mut h);
    (snapshot, h.finish())
}

/// Each pending operation named by the trace event that recorded it, with
/// the paths it named then (`#19 rename /a -> /b`); one from before the
/// trace by the model's description at the point.
pub(crate) fn labels(trace: &Trace, r: &Replayer, pending: &[PendingOp]) -> Vec<String> {
    pending
        .iter()
        .map(|p| match r.event_of(p.seq).and_then(|n| trace.event(n)) {
            Some(ev) => ev.to_string(),
            None => r.model().describe(&p.op),
        })
        .collect()
}

/// How `how` left an operation, in words.
pub(crate) fn fate_text(how: Option<&Survival>) -> String {
    use crate::model::op::show_ranges;
    match how {
        None => "dropped".to_string(),
        Some(Survival::Full) => "kept".to_string(),
        Some(Survival::MetaOnly) => "metadata only".to_string(),
        Some(Survival::Torn { persisted, .. }) => format!("torn: kept {}", show_ranges(persisted)),
        Some(Survival::DataOnly { persisted }) => format!(
            "data only, size change lost: kept {}",
            show_ranges(persisted)
        ),
    }
}

/// The fate of each pending operation (labelled in order) given the
/// `kept` list of a crash state (ascending indices).
fn fates(
    trace: &Trace,
    labels: &[String],
    pending: &[PendingOp],
    r: &Replayer,
    kept: &[(usize, Survival)],
) -> Vec<OpFate> {
    let mut kept = kept.iter().peekable();
    labels
        .iter()
        .zip(pending)
        .enumerate()
        .map(|(i, (op, p))| {
            let how = match kept.peek() {
                Some((j, how)) if *j == i => {
                    kept.next();
                    Some(how)
                }
                _ => None,
            };
            let event = r.event_of(p.seq);
            OpFate {
                event,
                op: op.clone(),
                fate: fate_text(how),
                at: event
                    .and_then(|n| trace.event(n))
                    .and_then(|e| e.caller.as_ref())
                    .and_then(crate::stacks::Caller::location),
            }
        })
        .collect()
}

/// One node of a [`Snapshot`] (file content `F`: bytes, or a
/// [`crate::model::FileData`] in a [`SparseSnapshot`]).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum SnapNode<F = Vec<u8>> {
    /// A regular file and its content.
    File(F),
    /// Another name of the file at this earlier path.
    HardLink(Vec<u8>),
    /// A directory (its entries are paths of their own).
    Dir,
    /// A symlink and its target.
    Symlink(Vec<u8>),
    /// A fifo, socket or device.
    Special(Kind),
}

/// One path of a [`Snapshot`].
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct SnapEntry<F = Vec<u8>> {
    /// Relative, `/`-separated; parents come before their children.
    pub path: Vec<u8>,
    pub node: SnapNode<F>,
    /// Permission bits.
    pub mode: u32,
    /// Extended attributes, by name (none for a hard link's later names:
    /// they share the first one's inode).
    pub xattrs: Vec<(Vec<u8>, bytes::Bytes)>,
}

/// A post-crash tree, ready to be written into a directory.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Snapshot {
    pub entries: Vec<SnapEntry>,
}

impl Snapshot {
    /// The tree a remount after a crash finds in `store`.
    pub fn of(store: &MemStore) -> Snapshot {
        let tree = store.tree();
        let image = store.image();
        let mut first: HashMap<u64, Vec<u8>> = HashMap::new();
        let entries = tree
            .0
            .into_iter()
            .map(|(path, (node, ino))| {
                let inode = image.inodes.get(&ino);
                let mode = inode.map_or(0o644, |i| i.attrs.mode) & 0o7777;
                let mut xattrs: Vec<(Vec<u8>, bytes::Bytes)> = inode
                    .map(|i| i.xattrs.clone().into_iter().collect())
                    .unwrap_or_default();
                let node = match node {
                    TreeNode::File(data) => match first.get(&ino) {
                        Some(p) => {
                            xattrs.clear();
                            SnapNode::HardLink(p.clone())
                        }
                        None => {
                            first.insert(ino, path.clone());
                            SnapNode::File(data)
                        }
                    },
                    TreeNode::Dir => SnapNode::Dir,
                    TreeNode::Symlink(t) => SnapNode::Symlink(t),
                    TreeNode::Special(k) => SnapNode::Special(k),
                };
                SnapEntry {
                    path,
                    node,
                    mode,
                    xattrs,
                }
            })
            .collect();
        Snapshot { entries }
    }

    /// Writes the tree into `dir`, which must exist and be empty. Sockets
    /// and device nodes are left out (a checker rarely needs them).
    pub fn materialise(&self, dir: &Path) -> io::Result<()> {
        materialise(&self.entries, dir)
    }
}

/// File content that [`materialise`] can write into a new file.
trait Content {
    fn create(&self, path: &Path) -> io::Result<()>;
}

impl Content for Vec<u8> {
    fn create(&self, path: &Path) -> io::Result<()> {
        std::fs::write(path, self)
    }
}

/// Writes `entries` into `dir`, which must exist and be empty.
fn materialise<F: Content>(entries: &[SnapEntry<F>], dir: &Path) -> io::Result<()> {
    let mut dirs = Vec::new();
    for e in entries {
        create_entry(dir, e, &mut dirs)?;
    }
    set_dir_modes(dirs)
}

/// Creates entry `e` under `dir` (its parent exists, its path does not),
/// with its xattrs; a directory's mode is pushed on `dirs` for
/// [`set_dir_modes`] instead, so that a read-only one still gets its
/// children. Sockets and device nodes are left out.
fn create_entry<F: Content>(
    dir: &Path,
    e: &SnapEntry<F>,
    dirs: &mut Vec<(PathBuf, u32)>,
) -> io::Result<()> {
    let at = |p: &[u8]| -> PathBuf { dir.join(std::ffi::OsStr::from_bytes(p)) };
    let path = at(&e.path);
    match &e.node {
        SnapNode::File(data) => {
            data.create(&path)?;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(e.mode))?;
        }
        SnapNode::HardLink(p) => std::fs::hard_link(at(p), &path)?,
        SnapNode::Dir => {
            std::fs::create_dir(&path)?;
            dirs.push((path.clone(), e.mode));
        }
        SnapNode::Symlink(t) => std::os::unix::fs::symlink(std::ffi::OsStr::from_bytes(t), &path)?,
        SnapNode::Special(Kind::Fifo) => {
            let c =
                std::ffi::CString::new(path.as_os_str().as_bytes()).map_err(io::Error::other)?;
            // SAFETY: a valid NUL-terminated path.
            if unsafe { libc::mkfifo(c.as_ptr(), e.mode as libc::mode_t) } != 0 {
                return Err(io::Error::last_os_error());
            }
        }
        SnapNode::Special(_) => return Ok(()),
    }
    for (name, value) in &e.xattrs {
        crate::backing::xattrs::lset(&path, name, Some(value))?;
    }
    Ok(())
}

/// Sets the directory modes [`create_entry`] collected, deepest first.
fn set_dir_modes(dirs: Vec<(PathBuf, u32)>) -> io::Result<()> {
    for (path, mode) in dirs.into_iter().rev() {
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode))?;
    }
    Ok(())
}

pub mod explain;
mod sparse;
#[cfg(test)]
mod tests;
pub mod tree;
