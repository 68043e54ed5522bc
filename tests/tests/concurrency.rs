//! Many threads on one mount, then a power cut in the middle of them.
//!
//! Eight seeded worker threads share one volume and, in a random mix:
//!
//! * append fixed-size records (64 bytes, fully determined by seed, thread,
//!   file and index) to their own log files `logs/t<T>.<G>`, and fdatasync
//!   or fsync them; now and then they start a new log file, whose name they
//!   acknowledge only after an fsync of `logs`;
//! * overwrite their own slots of the shared file `shared` with versioned
//!   records and fsync it (every thread writes its own disjoint region of
//!   the same file, so their fsyncs make each other's data durable too);
//! * replace `cfg/t<T>` by a new version: write a temp file (in `cfg/`, or
//!   in `stage/` for a cross-directory rename), fsync it, rename it over
//!   `cfg/t<T>`, fsync `cfg`;
//! * read the other threads' files and check that a read returns only bytes
//!   some writer wrote (whole records, complete versions).
//!
//! Two reader threads do nothing but those checks. Each worker logs what a
//! **completed** fsync acknowledged. After a seeded number of acknowledged
//! fsyncs (so other fsyncs are in flight) the power is cut with `DropAll`
//! (first test) or seeded `Random` (second test), and `BACKING`, then a
//! remount, must show: every acknowledged byte and name; every record
//! either intact or (only where a crash may leave a hole) all zeros; every
//! replaced file one complete version at least as new as the acknowledged
//! one; no name that was never created; `.durafs` not listed.
//!
//! Quick by default (one round per test, ~200 operations per thread).
//! Longer runs:
//!
//! ```text
//! DURAFS_CONC_OPS=2000     operations per worker thread per round (default 200)
//! DURAFS_CONC_SECS=120     keep running rounds (seed, seed+1, ...) for that long
//! DURAFS_CONC_SEED=42      first seed (defaults: 1 for drop-all, 1001 for random)
//! CARGO_TARGET_DIR=/work/target-h3 cargo test -p durafs-tests --test concurrency -- --nocapture
//! ```
//!
//! `DURAFS_CONC_SABOTAGE=log-fsync|dir-fsync|cfg-fsync|shared-fsync` makes
//! the workload acknowledge without making the call (to watch the check
//! fail); `a_skipped_fsync_is_caught` does that for each kind.

use durafs::model::Persistence;
use durafs::model::crash::{CrashOptions, Policy};
use durafs::model::rng::SplitMix64;
use durafs_tests::{Vol, dir_sync, env_u64, fsync_dir, mix};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const THREADS: usize = 8;
const READERS: usize = 2;
const REC: usize = 64;
/// Slots per thread in the shared file.
const SLOTS: usize = 8;
const SHARED_LEN: usize = THREADS * SLOTS * REC;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Sabotage {
    None,
    LogFsync,
    DirFsync,
    CfgFsync,
    SharedFsync,
}

impl Sabotage {
    fn from_env() -> Sabotage {
        match std::env::var("DURAFS_CONC_SABOTAGE").as_deref() {
            Err(_) | Ok("") => Sabotage::None,
            Ok("log-fsync") => Sabotage::LogFsync,
            Ok("dir-fsync") => Sabotage::DirFsync,
            Ok("cfg-fsync") => Sabotage::CfgFsync,
            Ok("shared-fsync") => Sabotage::SharedFsync,
            Ok(o) => panic!("DURAFS_CONC_SABOTAGE={o}: unknown"),
        }
    }
}

// ---------------------------------------------------------------- content

fn fnv(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3)
    })
}

/// A 64-byte record: magic, thread, file (log generation or slot), index
/// (log position or slot version), seeded payload, checksum.
fn record(seed: u64, magic: &[u8; 4], t: usize, file: u64, idx: u64) -> [u8; REC] {
    let mut r = [0u8; REC];
    r[0..4].copy_from_slice(magic);
    r[4..8].copy_from_slice(&(t as u32).to_le_bytes());
    r[8..16].copy_from_slice(&file.to_le_bytes());
    r[16..24].copy_from_slice(&idx.to_le_bytes());
    let mut g = mix(seed, t as u64 + u64::from(magic[0]), file, idx);
    for c in r[24..56].chunks_mut(8) {
        c.copy_from_slice(&g.next_u64().to_le_bytes());
    }
    let sum = fnv(&r[..56]);
    r[56..64].copy_from_slice(&sum.to_le_bytes());
    r
}

fn log_rec(seed: u64, t: usize, g: u64, i: u64) -> [u8; REC] {
    record(seed, b"LOG.", t, g, i)
}

fn slot_rec(seed: u64, t: usize, s: usize, v: u64) -> [u8; REC] {
    record(seed, b"SHR.", t, s as u64, v)
}

/// Version `v` of `cfg/t<T>`: 48..1548 bytes, header then seeded bytes.
fn cfg_content(seed: u64, t: usize, v: u64) -> Vec<u8> {
    let mut g = mix(seed, 77 + t as u64, v, 3);
    let len = 48 + g.below(1500) as usize;
    let mut out = Vec::with_capacity(len);
    out.extend_from_slice(b"CFG.");
    out.extend_from_slice(&(t as u32).to_le_bytes());
    out.extend_from_slice(&v.to_le_bytes());
    while out.len() < len {
        out.push(g.next_u64() as u8);
    }
    out
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

// ---------------------------------------------------------------- workers

/// What one log file saw: whether its name was acknowledged, bytes a
/// completed fsync acknowledged, bytes written (an upper bound).
#[derive(Clone, Debug, Default)]
struct LogFile {
    name_acked: bool,
    acked: u64,
    written: u64,
}

/// Everything one worker thread did and had acknowledged.
#[derive(Clone, Debug, Default)]
struct Acked {
    logs: Vec<LogFile>,
    /// Per shared slot: (acknowledged version, last version written).
    slots: Vec<(u64, u64)>,
    /// Last acknowledged version of `cfg/t<T>` (0: none) and last started.
    cfg_acked: u64,
    cfg_started: u64,
    ops: u64,
    fsyncs: u64,
    reads: u64,
}

struct Ctx<'a> {
    root: &'a Path,
    seed: u64,
    ops: u64,
    sabotage: Sabotage,
    /// Set just before the cut: errors from then on end the thread.
    stopping: &'a AtomicBool,
    /// Acknowledged fsyncs, all threads; the cut comes at `cut_at`.
    acks: &'a AtomicU64,
    cut_at: u64,
}

impl Ctx<'_> {
    /// `Some(v)`, or `None` when the call failed because of the cut; any
    /// other failure is a test failure.
    fn ok<T>(&self, r: io::Result<T>, what: &str) -> Option<T> {
        match r {
            Ok(v) => Some(v),
            Err(_) if self.stopping.load(Ordering::SeqCst) => None,
            Err(e) => panic!("seed {}: {what}: {e}", self.seed),
        }
    }

    fn acked(&self, st: &mut Acked, tx: &mpsc::Sender<()>) {
        st.fsyncs += 1;
        if self.acks.fetch_add(1, Ordering::SeqCst) + 1 == self.cut_at {
            let _ = tx.send(());
        }
    }
}

fn new_log(ctx: &Ctx, t: usize, st: &mut Acked, tx: &mpsc::Sender<()>) -> Option<File> {
    let g = st.logs.len();
    st.logs.push(LogFile::default());
    let f = ctx.ok(
        OpenOptions::new()
            .create_new(true)
            .append(true)
            .open(ctx.root.join(format!("logs/t{t}.{g}"))),
        "create log",
    )?;
    if ctx.sabotage != Sabotage::DirFsync {
        ctx.ok(dir_sync(&ctx.root.join("logs")), "fsync logs")?;
    }
    st.logs[g].name_acked = true;
    ctx.acked(st, tx);
    Some(f)
}

fn worker(ctx: &Ctx, t: usize, tx: mpsc::Sender<()>) -> Acked {
    let mut rng = mix(ctx.seed, 1000 + t as u64, 0, 0);
    let mut st = Acked {
        slots: vec![(0, 0); SLOTS],
        ..Acked::default()
    };
    let _ = work(ctx, t, &mut rng, &mut st, &tx);
    st
}

fn work(
    ctx: &Ctx,
    t: usize,
    rng: &mut SplitMix64,
    st: &mut Acked,
    tx: &mpsc::Sender<()>,
) -> Option<()> {
    let shared = ctx.ok(
        OpenOptions::new()
            .read(true)
            .write(true)
            .open(ctx.root.join("shared")),
        "open shared",
    )?;
    let mut log = new_log(ctx, t, st, tx)?;
    while st.ops < ctx.ops {
        st.ops += 1;
        let g = st.logs.len() - 1;
        match rng.below(100) {
            0..=34 => {
                let l = &mut st.logs[g];
                let rec = log_rec(ctx.seed, t, g as u64, l.written / REC as u64);
                l.written += REC as u64;
                ctx.ok(log.write_all(&rec), "append")?;
            }
            35..=49 => {
                let len = st.logs[g].written;
                if ctx.sabotage != Sabotage::LogFsync {
                    let r = if rng.chance(0.5) {
                        log.sync_data()
                    } else {
                        log.sync_all()
                    };
                    ctx.ok(r, "fsync log")?;
                }
                st.logs[g].acked = len;
                ctx.acked(st, tx);
            }
            50..=64 => {
                let s = rng.below(SLOTS as u64) as usize;
                st.slots[s].1 += 1;
                let rec = slot_rec(ctx.seed, t, s, st.slots[s].1);
                let off = ((t * SLOTS + s) * REC) as u64;
                ctx.ok(shared.write_all_at(&rec, off), "write slot")?;
            }
            65..=72 => {
                let snap: Vec<u64> = st.slots.iter().map(|s| s.1).collect();
                if ctx.sabotage != Sabotage::SharedFsync {
                    ctx.ok(shared.sync_all(), "fsync shared")?;
                }
                for (s, v) in st.slots.iter_mut().zip(snap) {
                    s.0 = v;
                }
                ctx.acked(st, tx);
            }
            73..=84 => {
                st.cfg_started += 1;
                let v = st.cfg_started;
                let stage = if rng.chance(0.5) { "stage" } else { "cfg" };
                let tmp = ctx.root.join(format!("{stage}/.t{t}.{v}"));
                let mut f = ctx.ok(
                    OpenOptions::new().create_new(true).write(true).open(&tmp),
                    "create tmp",
                )?;
                ctx.ok(f.write_all(&cfg_content(ctx.seed, t, v)), "write tmp")?;
                if ctx.sabotage != Sabotage::CfgFsync {
                    ctx.ok(f.sync_all(), "fsync tmp")?;
                }
                drop(f);
                let dst = ctx.root.join(format!("cfg/t{t}"));
                ctx.ok(fs::rename(&tmp, &dst), "rename")?;
                if ctx.sabotage != Sabotage::DirFsync {
                    ctx.ok(dir_sync(&ctx.root.join("cfg")), "fsync cfg")?;
                }
                st.cfg_acked = v;
                ctx.acked(st, tx);
            }
            85..=89 => {
                log = new_log(ctx, t, st, tx)?;
            }
            _ => {
                let u = rng.below(THREADS as u64) as usize;
                ctx.ok(verify_live(ctx.root, ctx.seed, u), "live read")?;
                st.reads += 1;
            }
        }
    }
    Some(())
}

/// Reads thread `u`'s files and the shared file as they are now: only whole
/// records and complete versions that some writer wrote.
fn verify_live(root: &Path, seed: u64, u: usize) -> io::Result<()> {
    let shared = fs::read(root.join("shared"))?;
    assert_eq!(shared.len(), SHARED_LEN, "seed {seed}: live shared size");
    for (i, rec) in shared.chunks(REC).enumerate() {
        let (t, s) = (i / SLOTS, i % SLOTS);
        let v = u64_at(rec, 16);
        assert_eq!(
            rec,
            slot_rec(seed, t, s, v),
            "seed {seed}: live read of shared slot {t}/{s}: not a record anyone wrote"
        );
    }
    for e in fs::read_dir(root.join("logs"))? {
        let name = e?.file_name().into_string().expect("utf8");
        let Some((t, g)) = parse_log(&name) else {
            panic!("seed {seed}: live listing shows logs/{name}");
        };
        if t != u {
            continue;
        }
        let data = match fs::read(root.join("logs").join(&name)) {
            Ok(d) => d,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        assert_eq!(
            data.len() % REC,
            0,
            "seed {seed}: live read of logs/{name}: a partial record"
        );
        for (i, rec) in data.chunks(REC).enumerate() {
            assert_eq!(
                rec,
                log_rec(seed, t, g, i as u64),
                "seed {seed}: live read of logs/{name} record {i}"
            );
        }
    }
    match fs::read(root.join(format!("cfg/t{u}"))) {
        Ok(d) => {
            let v = if d.len() >= 16 { u64_at(&d, 8) } else { 0 };
            assert!(
                v > 0 && d == cfg_content(seed, u, v),
                "seed {seed}: live read of cfg/t{u}: not a complete version ({} bytes)",
                d.len()
            );
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    Ok(())
}

fn parse_log(name: &str) -> Option<(usize, u64)> {
    let (t, g) = name.strip_prefix('t')?.split_once('.')?;
    Some((t.parse().ok()?, g.parse().ok()?))
}

/// `.t<T>.<V>` (a temp file of a replacement).
fn parse_tmp(name: &str) -> Option<(usize, u64)> {
    parse_log(name.strip_prefix('.')?)
}

// ---------------------------------------------------------------- checks

/// Checks the tree at `root` (BACKING or a fresh mount) against what the
/// workers had acknowledged. `exact`: no holes are legal (drop-all from a
/// cut that applies atomically); otherwise a record beyond the acknowledged
/// prefix may also be all zeros.
fn check(root: &Path, is_backing: bool, seed: u64, acked: &[Acked], exact: bool) -> Vec<String> {
    let mut bad = Vec::new();
    let where_ = if is_backing { "BACKING" } else { "remount" };
    let mut top: Vec<String> = match fs::read_dir(root) {
        Ok(rd) => rd
            .map(|e| e.expect("entry").file_name().into_string().expect("utf8"))
            .collect(),
        Err(e) => return vec![format!("{where_}: listing the root: {e}")],
    };
    top.sort();
    if is_backing {
        // The store's bookkeeping; through the mount it must not be listed.
        top.retain(|n| n != ".durafs");
    }
    let want: Vec<String> = ["cfg", "logs", "shared", "stage"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    if top != want {
        bad.push(format!("{where_}: root lists {top:?}, expected {want:?}"));
    }

    // The shared file: every slot a whole record of a version between the
    // acknowledged one and the last written.
    match fs::read(root.join("shared")) {
        Ok(d) if d.len() == SHARED_LEN => {
            for (i, rec) in d.chunks(REC).enumerate() {
                let (t, s) = (i / SLOTS, i % SLOTS);
                let v = u64_at(rec, 16);
                let (lo, hi) = acked[t].slots[s];
                if rec != slot_rec(seed, t, s, v) {
                    bad.push(format!("{where_}: shared slot {t}/{s}: garbage"));
                } else if v < lo || v > hi {
                    bad.push(format!(
                        "{where_}: shared slot {t}/{s}: version {v}, acknowledged {lo}, last written {hi}"
                    ));
                }
            }
        }
        Ok(d) => bad.push(format!("{where_}: shared is {} bytes", d.len())),
        Err(e) => bad.push(format!("{where_}: shared: {e}")),
    }

    // Logs.
    let mut seen = vec![Vec::new(); THREADS];
    for name in list(root, "logs", &mut bad, where_) {
        let Some((t, g)) =
            parse_log(&name).filter(|(t, g)| *t < THREADS && (*g as usize) < acked[*t].logs.len())
        else {
            bad.push(format!("{where_}: logs/{name}: a name never created"));
            continue;
        };
        seen[t].push(g);
        let l = &acked[t].logs[g as usize];
        let data = match fs::read(root.join("logs").join(&name)) {
            Ok(d) => d,
            Err(e) => {
                bad.push(format!("{where_}: logs/{name}: {e}"));
                continue;
            }
        };
        let len = data.len() as u64;
        if len % REC as u64 != 0 || len < l.acked || len > l.written {
            bad.push(format!(
                "{where_}: logs/{name}: {len} bytes, acknowledged {}, written {}",
                l.acked, l.written
            ));
        }
        for (i, rec) in data.chunks(REC).enumerate() {
            let pos = (i * REC) as u64;
            let hole_ok = !exact && pos >= l.acked && rec.iter().all(|b| *b == 0);
            if rec != log_rec(seed, t, g, i as u64) && !hole_ok {
                bad.push(format!(
                    "{where_}: logs/{name}: record {i} (acknowledged up to {}) is {}",
                    l.acked / REC as u64,
                    if rec.iter().all(|b| *b == 0) {
                        "zeros"
                    } else {
                        "garbage"
                    }
                ));
                break;
            }
        }
    }
    for (t, a) in acked.iter().enumerate() {
        for (g, l) in a.logs.iter().enumerate() {
            if l.name_acked && !seen[t].contains(&(g as u64)) {
                bad.push(format!(
                    "{where_}: logs/t{t}.{g} is missing; its name was acknowledged"
                ));
            }
        }
    }

    // Replaced files and their temp names.
    for dir in ["cfg", "stage"] {
        let mut present = [false; THREADS];
        for name in list(root, dir, &mut bad, where_) {
            let path = root.join(dir).join(&name);
            let data = fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            if let Some((t, v)) = parse_tmp(&name)
                .filter(|(t, v)| *t < THREADS && *v >= 1 && *v <= acked[*t].cfg_started)
            {
                if !data.is_empty() && data != cfg_content(seed, t, v) {
                    bad.push(format!(
                        "{where_}: {dir}/{name}: neither empty nor version {v} ({} bytes)",
                        data.len()
                    ));
                }
                continue;
            }
            let t = name
                .strip_prefix('t')
                .and_then(|t| t.parse::<usize>().ok())
                .filter(|t| dir == "cfg" && *t < THREADS);
            let Some(t) = t else {
                bad.push(format!("{where_}: {dir}/{name}: a name never created"));
                continue;
            };
            present[t] = true;
            let v = if data.len() >= 16 {
                u64_at(&data, 8)
            } else {
                0
            };
            let a = &acked[t];
            if v == 0 || data != cfg_content(seed, t, v) {
                bad.push(format!(
                    "{where_}: cfg/t{t}: not a complete version ({} bytes); acknowledged {}",
                    data.len(),
                    a.cfg_acked
                ));
            } else if v < a.cfg_acked || v > a.cfg_started {
                bad.push(format!(
                    "{where_}: cfg/t{t}: version {v}, acknowledged {}, last started {}",
                    a.cfg_acked, a.cfg_started
                ));
            }
        }
        if dir == "cfg" {
            for (t, a) in acked.iter().enumerate() {
                if a.cfg_acked > 0 && !present[t] {
                    bad.push(format!(
                        "{where_}: cfg/t{t} is missing; version {} was acknowledged",
                        a.cfg_acked
                    ));
                }
            }
        }
    }
    bad
}

fn list(root: &Path, dir: &str, bad: &mut Vec<String>, where_: &str) -> Vec<String> {
    match fs::read_dir(root.join(dir)) {
        Ok(rd) => rd
            .map(|e| e.expect("entry").file_name().into_string().expect("utf8"))
            .collect(),
        Err(e) => {
            bad.push(format!("{where_}: {dir}: {e}"));
            Vec::new()
        }
    }
}

// ---------------------------------------------------------------- rounds

#[derive(Debug, Default)]
struct Figures {
    rounds: u64,
    ops: u64,
    fsyncs: u64,
    reads: u64,
    pending_at_cut: u64,
    lost_at_cut: u64,
}

/// One volume: workers and readers, a cut after the `cut_at`-th
/// acknowledged fsync, checks of BACKING and of a remount. Returns the
/// violations found.
fn round(
    seed: u64,
    policy: Policy,
    ops: u64,
    sabotage: Sabotage,
    mid_run: bool,
    fig: &mut Figures,
) -> Vec<String> {
    let mut v = Vol::new(Persistence::Posix);
    for d in ["logs", "cfg", "stage"] {
        fs::create_dir(v.p(d)).expect("mkdir");
    }
    let mut init = Vec::with_capacity(SHARED_LEN);
    for t in 0..THREADS {
        for s in 0..SLOTS {
            init.extend_from_slice(&slot_rec(seed, t, s, 0));
        }
    }
    fs::write(v.p("shared"), &init).expect("write shared");
    durafs_tests::fsync_file(&v.p("shared"));
    fsync_dir(&v.mnt);

    // Roughly a third of the operations are acknowledged fsyncs: cut
    // somewhere in the middle of the run.
    let total = ops * THREADS as u64 / 3;
    let cut_at = if mid_run {
        total / 4 + mix(seed, 9, 9, 9).below(total / 2 + 1)
    } else {
        u64::MAX
    };
    let stopping = AtomicBool::new(false);
    let readers_done = AtomicBool::new(false);
    let acks = AtomicU64::new(0);
    let opts = CrashOptions {
        policy,
        seed,
        ..CrashOptions::default()
    };
    let ctx = Ctx {
        root: &v.mnt,
        seed,
        ops,
        sabotage,
        stopping: &stopping,
        acks: &acks,
        cut_at,
    };
    let (acked, reads, summary) = std::thread::scope(|s| {
        let (tx, rx) = mpsc::channel();
        let workers: Vec<_> = (0..THREADS)
            .map(|t| {
                let tx = tx.clone();
                let ctx = &ctx;
                s.spawn(move || worker(ctx, t, tx))
            })
            .collect();
        drop(tx);
        let readers: Vec<_> = (0..READERS)
            .map(|r| {
                let (ctx, done) = (&ctx, &readers_done);
                s.spawn(move || {
                    let mut rng = mix(seed, 5000 + r as u64, 0, 0);
                    let mut n = 0u64;
                    while !done.load(Ordering::SeqCst) {
                        let u = rng.below(THREADS as u64) as usize;
                        if ctx.ok(verify_live(ctx.root, seed, u), "reader").is_none() {
                            break;
                        }
                        n += 1;
                    }
                    n
                })
            })
            .collect();
        // The cut_at-th acknowledgement, or every worker finished.
        let _ = rx.recv();
        stopping.store(true, Ordering::SeqCst);
        let summary = v.fs().cut(opts).expect("cut");
        readers_done.store(true, Ordering::SeqCst);
        let acked: Vec<Acked> = workers
            .into_iter()
            .map(|h| h.join().expect("worker"))
            .collect();
        let reads: u64 = readers.into_iter().map(|h| h.join().expect("reader")).sum();
        (acked, reads, summary)
    });
    v.cut_with(opts);
    fig.rounds += 1;
    fig.ops += acked.iter().map(|a| a.ops).sum::<u64>();
    fig.fsyncs += acked.iter().map(|a| a.fsyncs).sum::<u64>();
    fig.reads += reads + acked.iter().map(|a| a.reads).sum::<u64>();
    fig.pending_at_cut += summary.ops_pending as u64;
    fig.lost_at_cut += summary.ops_lost as u64;
    let exact = policy == Policy::DropAll;
    let mut bad = check(&v.backing, true, seed, &acked, exact);
    v.remount();
    bad.extend(check(&v.mnt, false, seed, &acked, exact));
    if !bad.is_empty() {
        bad.insert(
            0,
            format!(
                "seed {seed}, policy {policy}, cut after {} acknowledged fsyncs ({}): {}",
                acks.load(Ordering::SeqCst),
                summary.description,
                if sabotage == Sabotage::None {
                    "".to_string()
                } else {
                    format!("sabotage {sabotage:?}")
                }
            ),
        );
    }
    bad
}

fn run(policy: Policy, default_seed: u64) {
    let ops = env_u64("DURAFS_CONC_OPS").unwrap_or(200);
    let secs = env_u64("DURAFS_CONC_SECS").unwrap_or(0);
    let first = env_u64("DURAFS_CONC_SEED").unwrap_or(default_seed);
    let sabotage = Sabotage::from_env();
    let start = Instant::now();
    let mut fig = Figures::default();
    let mut seed = first;
    loop {
        eprintln!("concurrency: {policy} seed {seed}, {ops} ops per thread");
        let bad = round(seed, policy, ops, sabotage, true, &mut fig);
        assert!(
            bad.is_empty(),
            "reproduce: DURAFS_CONC_SEED={seed} DURAFS_CONC_OPS={ops}\n{}",
            bad.join("\n")
        );
        seed += 1;
        if start.elapsed() >= Duration::from_secs(secs) {
            break;
        }
    }
    eprintln!(
        "concurrency: {policy}: seeds {first}..{seed}: {} threads + {READERS} readers, {fig:?}, {:.1?}",
        THREADS,
        start.elapsed()
    );
}

#[test]
fn eight_threads_then_a_drop_all_cut_keep_exactly_what_fsync_acknowledged() {
    run(Policy::DropAll, 1);
}

#[test]
fn eight_threads_then_a_random_cut_keep_what_fsync_acknowledged_and_no_garbage() {
    run(Policy::Random, 1001);
}

/// The checks can fail: a workload that acknowledges without calling fsync
/// (for each kind of fsync in it) is caught on a drop-all cut.
#[test]
fn a_skipped_fsync_is_caught() {
    for sabotage in [
        Sabotage::LogFsync,
        Sabotage::DirFsync,
        Sabotage::CfgFsync,
        Sabotage::SharedFsync,
    ] {
        let mut fig = Figures::default();
        let bad = round(7, Policy::DropAll, 60, sabotage, false, &mut fig);
        assert!(!bad.is_empty(), "{sabotage:?} went unnoticed: {fig:?}");
        eprintln!(
            "{sabotage:?}: {} violations, e.g. {}",
            bad.len() - 1,
            bad[1]
        );
    }
}
