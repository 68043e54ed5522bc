//! The model's locking under shuttle's schedulers.
//!
//! Several threads call one [`Model`] the way `DuraFs` does: durability
//! points (fsync, fsyncdir, sync, writeback) hold a store-order lock
//! (`DuraFs`'s `fs/order.rs`) for writing
//! and apply their effects to a [`MemStore`] standing in for the backing
//! store; reads hold it for reading; everything else takes only the model's
//! own locks. Under the `shuttle` feature every one of those locks and
//! atomics is a point where shuttle may switch threads (`sync.rs`), and its
//! random and PCT schedulers choose the switches. Every execution must:
//!
//! * finish: if every thread waits, shuttle fails the test as a deadlock;
//! * be linearizable: some order of the threads' calls (each thread's in
//!   program order), run one at a time on a fresh model, gives every call
//!   the same result and leaves the same live tree, the same durable store
//!   and the same pending operations with the same sequence numbers. The
//!   last makes every crash state of every policy the same, so the global
//!   sequence numbers order the operations as the calls took effect.
//!
//! `sync(2)` is not atomic: it commits the names and then flushes inode by
//! inode, so a write to an inode it already passed stays unsynced while a
//! later write, by the same thread, to one it has not reached yet is
//! synced. The generated scenarios therefore let a thread sync only while
//! the others change the data of at most one file.
//!
//! Run: `cargo test -p durafs --features shuttle --lib shuttle`;
//! `DURAFS_SHUTTLE_ITERS=N` sets the schedules per scenario and scheduler
//! (default 100), `DURAFS_SHUTTLE_SEEDS=N` the generated scenarios (12),
//! `DURAFS_SHUTTLE_SEED=S` runs generated scenario `S` alone.

use super::rng::SplitMix64;
use super::store::{MemStore, TreeNode, live_tree};
use super::sync::Mutex;
use super::*;
use shuttle::scheduler::{PctScheduler, RandomScheduler, RoundRobinScheduler, Scheduler};
use shuttle::sync::RwLock;
use shuttle::{MaxSteps, Runner};
use std::collections::{BTreeMap, HashSet};
use std::fmt::Write as _;

const T: Timestamp = Timestamp { secs: 1, nanos: 0 };
const NAMES: [&str; 4] = ["f", "g", "h", "x"];

/// One call a thread makes. Files and directories are handles made by
/// [`setup`] (`a/f`, `a/g`, `b/h`; the root, `a`, `b`), as a program holds
/// open descriptors, so a call never resolves a path other threads change.
#[derive(Clone, Copy, Debug)]
enum Call {
    Write(usize, u64, usize, u8),
    Append(usize, usize, u8),
    Truncate(usize, u64),
    /// Truncate and chmod in one call.
    Setattr(usize, u64, u32),
    Read(usize, u64, u64),
    Stat(usize),
    Fsync(usize, bool),
    Fsyncdir(usize),
    SyncAll,
    Writeback,
    Create(usize, &'static str),
    Mkdir(usize, &'static str),
    Unlink(usize, &'static str),
    Rmdir(usize, &'static str),
    Link(usize, usize, &'static str),
    /// From directory, name, to directory, name; flags 0 plain,
    /// 1 `RENAME_NOREPLACE`, 2 `RENAME_EXCHANGE`.
    Rename(usize, &'static str, usize, &'static str, u8),
    Readdir(usize),
    Forget(usize),
}

impl Call {
    fn changes_data(self) -> Option<usize> {
        match self {
            Call::Write(f, ..)
            | Call::Append(f, ..)
            | Call::Truncate(f, _)
            | Call::Setattr(f, ..) => Some(f),
            _ => None,
        }
    }
}

#[derive(Clone, Debug)]
struct Scenario {
    name: String,
    persistence: Persistence,
    threads: Vec<Vec<Call>>,
}

/// A model as `DuraFs` drives it.
struct World {
    m: Model,
    store: Mutex<MemStore>,
    sync: RwLock<()>,
    files: [Ino; 3],
    dirs: [Ino; 3],
}

/// Two directories and three files: `a/f` and the names durable, `a/g`
/// with unsynced bytes, `b/h` empty.
fn setup(p: Persistence) -> World {
    let cfg = super::Config {
        persistence: p,
        ..super::Config::default()
    };
    let m = Model::new(cfg, Attrs::default());
    let mut store = MemStore::new(Attrs::default());
    let mk = |dir, name: &str, kind| {
        m.create(dir, name.as_bytes(), kind, Attrs::default(), None)
            .map(|s| s.ino)
            .unwrap_or_else(|e| panic!("setup {name}: {e:?}"))
    };
    let (a, b) = (mk(ROOT, "a", Kind::Dir), mk(ROOT, "b", Kind::Dir));
    let files = [
        mk(a, "f", Kind::File),
        mk(a, "g", Kind::File),
        mk(b, "h", Kind::File),
    ];
    let ok = |r: FsResult<Vec<Effect>>| r.unwrap_or_else(|e| panic!("setup: {e:?}"));
    m.write(files[0], 0, Bytes::from(vec![b'F'; 64]), T)
        .unwrap_or_else(|e| panic!("setup write: {e:?}"));
    store.apply_all(&ok(m.fsync(files[0], false)));
    for d in [ROOT, a, b] {
        store.apply_all(&ok(m.fsyncdir(d)));
    }
    m.write(files[1], 0, Bytes::from(vec![b'G'; 32]), T)
        .unwrap_or_else(|e| panic!("setup write: {e:?}"));
    World {
        m,
        store: Mutex::new(store),
        sync: RwLock::new(()),
        files,
        dirs: [ROOT, a, b],
    }
}

/// Runs one call as `DuraFs` would and describes its result.
fn run(w: &World, c: Call) -> String {
    let apply = |e: &[Effect]| {
        w.store.lock().apply_all(e);
        Ok::<(), ()>(())
    };
    let f = |i: usize| w.files[i];
    let d = |i: usize| w.dirs[i];
    let flags = |k: u8| RenameFlags {
        noreplace: k == 1,
        exchange: k == 2,
    };
    match c {
        Call::Write(i, off, len, b) => format!("{:?}", w.m.write(f(i), off, fill(len, b), T)),
        Call::Append(i, len, b) => format!("{:?}", w.m.append(f(i), fill(len, b), T)),
        Call::Truncate(i, size) => {
            let set = SetAttrs {
                size: Some(size),
                ..SetAttrs::default()
            };
            format!("{:?}", w.m.setattr(f(i), set, T))
        }
        Call::Setattr(i, size, mode) => {
            let set = SetAttrs {
                size: Some(size),
                mode: Some(mode),
                ..SetAttrs::default()
            };
            format!("{:?}", w.m.setattr(f(i), set, T))
        }
        Call::Read(i, off, len) => {
            let _g = w.sync.read();
            match w.m.read(f(i), off, len) {
                Ok(segs) => {
                    let mut out = Vec::new();
                    for s in segs {
                        match s {
                            Segment::Data(b) => out.extend_from_slice(&b),
                            Segment::Zero(n) => out.resize(out.len() + n as usize, 0),
                            Segment::Base { offset, len } => {
                                w.store.lock().read(f(i), offset, len, &mut out)
                            }
                        }
                    }
                    format!("Ok({})", rle(&out))
                }
                Err(e) => format!("Err({e:?})"),
            }
        }
        Call::Stat(i) => format!("{:?}", w.m.getattr(f(i))),
        Call::Fsync(i, datasync) => {
            let _g = w.sync.write();
            format!("{:?}", w.m.fsync_applied(f(i), datasync, apply))
        }
        Call::Fsyncdir(i) => {
            let _g = w.sync.write();
            format!("{:?}", w.m.fsyncdir_applied(d(i), apply))
        }
        Call::SyncAll => {
            let _g = w.sync.write();
            format!("{:?}", w.m.sync_all_applied(apply))
        }
        Call::Writeback => {
            let _g = w.sync.write();
            format!("{:?}", w.m.writeback_oldest_applied(apply))
        }
        Call::Create(i, n) | Call::Mkdir(i, n) => {
            let kind = if matches!(c, Call::Mkdir(..)) {
                Kind::Dir
            } else {
                Kind::File
            };
            let r = w.m.create(d(i), n.as_bytes(), kind, Attrs::default(), None);
            format!("{:?}", r.map(|s| s.ino))
        }
        Call::Unlink(i, n) => format!("{:?}", w.m.unlink(d(i), n.as_bytes(), T)),
        Call::Rmdir(i, n) => format!("{:?}", w.m.rmdir(d(i), n.as_bytes(), T)),
        Call::Link(i, j, n) => format!("{:?}", w.m.link(f(i), d(j), n.as_bytes(), T)),
        Call::Rename(i, n, j, m, k) => format!(
            "{:?}",
            w.m.rename(d(i), n.as_bytes(), d(j), m.as_bytes(), flags(k), T)
        ),
        Call::Readdir(i) => format!("{:?}", w.m.readdir(d(i))),
        Call::Forget(i) => format!("{:?}", w.m.forget(f(i))),
    }
}

fn fill(len: usize, b: u8) -> Bytes {
    Bytes::from(vec![b; len])
}

/// Bytes as runs: `F*64 0*8`.
fn rle(d: &[u8]) -> String {
    let mut out = String::new();
    let mut i = 0;
    while i < d.len() {
        let j = d[i..]
            .iter()
            .position(|x| *x != d[i])
            .map_or(d.len(), |k| i + k);
        let c = if d[i].is_ascii_alphanumeric() {
            char::from(d[i]).to_string()
        } else {
            format!("\\{}", d[i])
        };
        let _ = write!(out, "{c}*{} ", j - i);
        i = j;
    }
    out
}

fn show(shapes: BTreeMap<Vec<u8>, TreeNode>) -> String {
    let mut out = String::new();
    for (path, node) in shapes {
        let what = match node {
            TreeNode::File(d) => rle(&d),
            other => format!("{other:?}"),
        };
        let _ = write!(out, "{}: {what}; ", String::from_utf8_lossy(&path));
    }
    out
}

/// What an execution leaves, to compare against one-at-a-time runs.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Obs {
    results: Vec<Vec<String>>,
    live: String,
    durable: String,
    pending: String,
}

fn observe(w: &World, results: Vec<Vec<String>>) -> Obs {
    let store = w.store.lock().clone();
    let live = match live_tree(&w.m, &store) {
        Ok(t) => show(t.shapes()),
        Err(e) => format!("live view failed: {e:?}"),
    };
    Obs {
        results,
        live,
        durable: show(store.tree().shapes()),
        pending: format!("{:?}", w.m.pending_ops()),
    }
}

/// Every order of the threads' calls that keeps each thread's own order.
fn interleavings(lens: &[usize]) -> Vec<Vec<usize>> {
    fn go(left: &mut [usize], cur: &mut Vec<usize>, out: &mut Vec<Vec<usize>>) {
        if left.iter().all(|l| *l == 0) {
            out.push(cur.clone());
            return;
        }
        for t in 0..left.len() {
            if left[t] > 0 {
                left[t] -= 1;
                cur.push(t);
                go(left, cur, out);
                cur.pop();
                left[t] += 1;
            }
        }
    }
    let mut out = Vec::new();
    go(&mut lens.to_vec(), &mut Vec::new(), &mut out);
    out
}

/// The observations of every one-at-a-time order.
fn sequential(s: &Scenario) -> HashSet<Obs> {
    let lens: Vec<usize> = s.threads.iter().map(Vec::len).collect();
    let mut valid = HashSet::new();
    for order in interleavings(&lens) {
        let w = setup(s.persistence);
        let mut next = vec![0; lens.len()];
        let mut results = vec![Vec::new(); lens.len()];
        for t in order {
            results[t].push(run(&w, s.threads[t][next[t]]));
            next[t] += 1;
        }
        valid.insert(observe(&w, results));
    }
    valid
}

/// What differs between `obs` and the one-at-a-time outcomes with the
/// same call results.
fn nearest(valid: &HashSet<Obs>, obs: &Obs) -> String {
    let same: Vec<&Obs> = valid.iter().filter(|v| v.results == obs.results).collect();
    let Some(v) = same.first() else {
        return format!("no order gives these results ({} outcomes)", valid.len());
    };
    let mut out = format!(
        "{} orders give these results; the first differs in:",
        same.len()
    );
    for (what, a, b) in [
        ("live", &v.live, &obs.live),
        ("durable", &v.durable, &obs.durable),
        ("pending", &v.pending, &obs.pending),
    ] {
        if a != b {
            let _ = write!(out, "\n  {what}: one at a time {a}");
        }
    }
    out
}

fn iterations() -> usize {
    std::env::var("DURAFS_SHUTTLE_ITERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100)
}

fn runner<S: Scheduler + 'static>(scheduler: S) -> Runner<S> {
    let mut cfg = shuttle::Config::new();
    cfg.stack_size = 1 << 20;
    cfg.max_steps = MaxSteps::None;
    Runner::new(scheduler, cfg)
}

/// Checks every execution shuttle's schedulers choose for `s`.
fn check(s: Scenario) {
    let valid = std::sync::Arc::new(std::sync::Mutex::new(HashSet::new()));
    {
        let (s, valid) = (s.clone(), valid.clone());
        runner(RoundRobinScheduler::new(1)).run(move || {
            let all = sequential(&s);
            *valid.lock().unwrap_or_else(|p| p.into_inner()) = all;
        });
    }
    let n = iterations();
    let body = move || {
        let w = std::sync::Arc::new(setup(s.persistence));
        let joins: Vec<_> = s
            .threads
            .iter()
            .map(|calls| {
                let (w, calls) = (w.clone(), calls.clone());
                shuttle::thread::spawn(move || calls.iter().map(|c| run(&w, *c)).collect())
            })
            .collect();
        let results: Vec<Vec<String>> = joins
            .into_iter()
            .map(|j| {
                j.join()
                    .unwrap_or_else(|_| panic!("{}: a thread panicked", s.name))
            })
            .collect();
        let obs = observe(&w, results);
        let valid = valid.lock().unwrap_or_else(|p| p.into_inner());
        assert!(
            valid.contains(&obs),
            "{}: no one-at-a-time order of the calls explains this execution\n\
             threads: {:?}\nobserved: {obs:#?}\n{}",
            s.name,
            s.threads,
            nearest(&valid, &obs)
        );
    };
    let body = std::sync::Arc::new(body);
    let b = body.clone();
    runner(RandomScheduler::new(n)).run(move || b());
    runner(PctScheduler::new(3, n)).run(move || body());
}

fn scenario(name: &str, persistence: Persistence, threads: Vec<Vec<Call>>) -> Scenario {
    Scenario {
        name: name.to_string(),
        persistence,
        threads,
    }
}

/// A random scenario: three threads of three calls (or two of four, or
/// four of two, by seed) over the handles and
/// [`NAMES`], where a thread that syncs everything runs beside data
/// changes to at most one file (see the module doc).
fn generated(seed: u64, persistence: Persistence) -> Scenario {
    let mut rng = SplitMix64::new(seed);
    let (n_threads, n_calls) = [(3, 3), (2, 4), (4, 2)][(seed % 3) as usize];
    loop {
        let threads: Vec<Vec<Call>> = (0..n_threads)
            .map(|t| {
                (0..n_calls)
                    .map(|i| random_call(&mut rng, b'a' + n_calls * t + i))
                    .collect()
            })
            .collect();
        let syncs = threads
            .iter()
            .any(|c| c.iter().any(|c| matches!(c, Call::SyncAll)));
        let files: HashSet<usize> = threads
            .iter()
            .flatten()
            .filter_map(|c| c.changes_data())
            .collect();
        if !syncs || files.len() <= 1 {
            return scenario(&format!("generated seed {seed}"), persistence, threads);
        }
    }
}

fn random_call(rng: &mut SplitMix64, byte: u8) -> Call {
    let mut pick = |n: usize| rng.below(n as u64) as usize;
    let file = pick(3);
    let dir = pick(3);
    let name = NAMES[pick(NAMES.len())];
    let off = [0, 16, 48, 100][pick(4)];
    let len = [8, 32][pick(2)];
    match pick(18) {
        0 | 1 => Call::Write(file, off, len, byte),
        2 => Call::Append(file, len, byte),
        3 if pick(2) == 0 => Call::Truncate(file, [0, 20, 80][pick(3)]),
        3 => Call::Setattr(file, [0, 20, 80][pick(3)], 0o600),
        4 => Call::Read(file, 0, 128),
        5 => Call::Stat(file),
        6 => Call::Fsync(file, pick(2) == 1),
        7 => Call::Fsyncdir(dir),
        8 => Call::SyncAll,
        9 => Call::Writeback,
        10 => Call::Create(dir, name),
        11 => Call::Mkdir(dir, name),
        12 => Call::Unlink(dir, name),
        13 => Call::Link(file, dir, name),
        16 => Call::Rmdir(dir, name),
        14 | 15 => Call::Rename(dir, name, pick(3), NAMES[pick(NAMES.len())], pick(3) as u8),
        _ => Call::Forget(file),
    }
}

#[test]
fn shuttle_writers_and_fsyncs_of_one_file_are_linearizable() {
    for p in [Persistence::Posix, Persistence::Ext4] {
        check(scenario(
            "one file",
            p,
            vec![
                vec![Call::Write(0, 0, 32, b'a'), Call::Fsync(0, false)],
                vec![Call::Write(0, 16, 32, b'b'), Call::Truncate(0, 40)],
                vec![Call::Read(0, 0, 128), Call::Fsync(0, true), Call::Writeback],
            ],
        ));
    }
}

#[test]
fn shuttle_renames_links_and_fsyncdirs_are_linearizable() {
    for p in [Persistence::Posix, Persistence::Ext4] {
        check(scenario(
            "names",
            p,
            vec![
                vec![
                    Call::Create(1, "x"),
                    Call::Fsyncdir(1),
                    Call::Rename(1, "x", 2, "x", 0),
                ],
                vec![Call::Rename(1, "f", 2, "h", 0), Call::Fsyncdir(2)],
                vec![
                    Call::Link(1, 2, "g"),
                    Call::Unlink(1, "g"),
                    Call::Fsync(1, false),
                ],
            ],
        ));
    }
}

#[test]
fn shuttle_sync_beside_namespace_changes_and_one_writer_is_linearizable() {
    check(scenario(
        "sync",
        Persistence::Posix,
        vec![
            vec![
                Call::Unlink(1, "f"),
                Call::Mkdir(2, "x"),
                Call::Rename(2, "x", 1, "g", 0),
            ],
            vec![Call::Write(2, 0, 8, b'b'), Call::Append(2, 8, b'c')],
            vec![Call::SyncAll, Call::Readdir(1)],
        ],
    ));
}

/// Regression: a call that took an inode from the map just before
/// `forget` dropped it went on with the dropped node: a write returned
/// success and its bytes were in no view. The kernel never forgets an inode
/// a request still uses, but the model must not lie if it did.
#[test]
fn shuttle_forget_beside_fsync_and_unlink_is_linearizable() {
    check(scenario(
        "forget",
        Persistence::Posix,
        vec![
            vec![Call::Unlink(1, "g"), Call::Forget(1)],
            vec![Call::Fsync(1, false), Call::Write(1, 0, 8, b'b')],
            vec![Call::Writeback, Call::Forget(1), Call::Stat(1)],
        ],
    ));
}

/// Regression (found by the generated scenarios, seed 6): the two halves
/// of a rename between directories took their sequence numbers one at a
/// time, so another thread's truncate could fall between them and the
/// pending list matched no order of the calls.
#[test]
fn shuttle_a_rename_between_directories_takes_consecutive_sequence_numbers() {
    check(scenario(
        "rename halves",
        Persistence::Posix,
        vec![
            vec![Call::Rename(1, "f", 0, "f", 0)],
            vec![Call::Truncate(1, 80), Call::Truncate(2, 80)],
        ],
    ));
}

/// Regression (generated scenarios, seed 4): a rename read the moved
/// file's attributes for its pending operation before it took its sequence
/// numbers, so a chmod between the two was numbered before the rename but
/// missing from it, and a crash could show a mode no order of the calls
/// gives.
#[test]
fn shuttle_a_rename_records_the_attributes_of_the_moment_it_is_numbered() {
    check(scenario(
        "rename and chmod",
        Persistence::Posix,
        vec![
            vec![Call::Rename(1, "g", 2, "f", 0)],
            vec![Call::Setattr(1, 20, 0o600)],
            vec![Call::Rename(2, "h", 2, "x", 2), Call::Setattr(2, 8, 0o640)],
        ],
    ));
}

/// Regression (generated scenarios, seed 86): an unlink dropped the
/// file's link count under the file's lock but took its sequence number
/// after releasing it, so a setattr that saw the count at zero was
/// numbered before the unlink. Likewise for the parent's link count under
/// mkdir and rmdir.
#[test]
fn shuttle_namespace_calls_hold_the_inodes_they_change_until_numbered() {
    check(scenario(
        "unlink and setattr",
        Persistence::Posix,
        vec![
            vec![Call::Unlink(2, "h"), Call::Link(1, 2, "h")],
            vec![Call::Setattr(2, 0, 0o600), Call::Stat(1)],
            vec![Call::Rename(1, "g", 1, "f", 0)],
        ],
    ));
}

/// Regression (generated scenarios, seed 164): the dirty-limit writeback
/// scanned the inodes one at a time while a thread truncated one it had
/// passed and then wrote one it had not reached, so it wrote back the
/// newer write and left the older truncate pending: no order of the calls
/// does that. It now weighs only operations numbered before it began.
#[test]
fn shuttle_writeback_picks_the_inode_oldest_when_it_flushes() {
    check(scenario(
        "writeback scan",
        Persistence::Posix,
        vec![
            vec![Call::Setattr(0, 0, 0o600), Call::Write(2, 0, 8, b'c')],
            vec![Call::Fsync(1, false), Call::Writeback, Call::Writeback],
        ],
    ));
}

/// As above, for a truncate and a chmod made by one `setattr`.
#[test]
fn shuttle_a_setattr_takes_consecutive_sequence_numbers() {
    check(scenario(
        "setattr",
        Persistence::Posix,
        vec![
            vec![Call::Setattr(0, 20, 0o600)],
            vec![Call::Truncate(1, 80), Call::Truncate(2, 80)],
        ],
    ));
}

#[test]
fn shuttle_generated_scenarios_are_linearizable() {
    let seeds = std::env::var("DURAFS_SHUTTLE_SEEDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(12u64);
    let only: Option<u64> = std::env::var("DURAFS_SHUTTLE_SEED")
        .ok()
        .and_then(|v| v.parse().ok());
    for seed in only.map_or(0..seeds, |s| s..s + 1) {
        let p = if seed % 2 == 1 {
            Persistence::Ext4
        } else {
            Persistence::Posix
        };
        check(generated(seed, p));
    }
}
