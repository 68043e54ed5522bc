//! The daemon's own crash: the real `durafs mount` daemon under write and
//! fsync load from several threads, killed with SIGKILL at a seeded moment,
//! round after round on the same `BACKING`.
//!
//! Each round mounts `BACKING` with the CLI (model, `--real-fsync`,
//! `--threads` and `--writeback-cache` vary by round), checks that the
//! mount shows exactly what `BACKING` held after the previous kill, creates
//! its own directory `r<N>/` (fsynced), and starts four load threads that,
//! in a seeded mix, append 64-byte records to their log files in bursts and
//! fsync them, start new log files (create + fsync of the directory), and
//! replace `cfg/t<T>` (temp file in `cfg/` or `stage/`, fsync, rename, fsync
//! of `cfg`). When the K-th fsync is acknowledged (K seeded), the test
//! SIGKILLs the daemon at once, so the other threads' fsyncs are in flight,
//! some of them being applied to `BACKING`. The load threads must then see
//! errors (`ENOTCONN`/`ECONNABORTED`/`EIO`, `ECANCELED` over io_uring) and stop. `durafs umount` clears
//! the dead mount; `BACKING` is checked directly, then through the next
//! round's mount:
//!
//! * every acknowledged log byte and name is there, and every record is
//!   intact; past the acknowledged prefix a record may be missing or all
//!   zeros (a batch the kill interrupted), never garbage;
//! * `cfg/t<T>` is one complete version, at least the acknowledged one;
//! * no name that was never created; `.durafs` not listed in the mount;
//!   every earlier round's directory unchanged.
//!
//! ```text
//! DURAFS_KILL_ROUNDS=100   kills (default 10)
//! DURAFS_KILL_SEED=5       seed of the first round (default 1)
//! CARGO_TARGET_DIR=/work/target-h3 cargo test -p durafs-tests --test daemon_kill -- --nocapture
//! ```
//!
//! `DURAFS_KILL_SABOTAGE=1` acknowledges log appends without fsyncing them
//! (to watch the check fail); `a_skipped_fsync_is_caught_after_a_kill`
//! does that once.

use durafs::model::rng::SplitMix64;
use durafs_tests::{dir_sync, env_u64, mix};
use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;

const EXE: &str = env!("CARGO_BIN_EXE_durafs-cli");
const LOADERS: usize = 4;
const REC: usize = 64;
/// Operations per load thread at most (the kill normally comes first).
const MAX_OPS: u64 = 600;

fn cli(args: &[&str]) -> String {
    let out = Command::new(EXE)
        .args(args)
        .output()
        .expect("running durafs-cli");
    assert!(
        out.status.success(),
        "durafs {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf8 path")
}

fn is_mount(p: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (fs::metadata(p), p.parent().map(fs::metadata)) {
        (Ok(a), Some(Ok(b))) => a.dev() != b.dev(),
        _ => false,
    }
}

/// A backing directory and a mountpoint, served by a daemon at times.
/// `Drop` kills a live daemon and detaches the mount (also on panic).
struct Daemon {
    tmp: tempfile::TempDir,
    pid: Option<i32>,
}

impl Daemon {
    fn new() -> Daemon {
        let tmp = tempfile::tempdir().expect("tempdir");
        fs::create_dir(tmp.path().join("mnt")).expect("mkdir mnt");
        Daemon { tmp, pid: None }
    }

    fn backing(&self) -> PathBuf {
        self.tmp.path().join("backing")
    }

    fn mnt(&self) -> PathBuf {
        self.tmp.path().join("mnt")
    }

    /// Mounts with the CLI; `failpoint` arms `DURAFS_FAILPOINT` in the
    /// daemon.
    fn mount(&mut self, extra: &[&str], failpoint: Option<&str>) {
        let (b, m) = (self.backing(), self.mnt());
        let mut args = vec!["mount"];
        args.extend_from_slice(extra);
        args.extend_from_slice(&[s(&b), s(&m)]);
        let mut c = Command::new(EXE);
        c.args(&args);
        if let Some(f) = failpoint {
            c.env("DURAFS_FAILPOINT", f);
        }
        let out = c.output().expect("running durafs-cli");
        assert!(
            out.status.success(),
            "durafs {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let st: serde_json::Value =
            serde_json::from_str(&cli(&["status", "--json", s(&m)])).expect("status JSON");
        self.pid = Some(st["volume"]["pid"].as_i64().expect("volume.pid") as i32);
    }

    /// SIGKILLs the daemon (unless a failpoint killed it already).
    fn kill(&mut self) {
        let pid = self.pid.take().expect("a daemon");
        durafs_tests::ensure_dead(pid);
    }

    /// `durafs umount`: clears a dead mount, or unmounts a live one.
    fn umount(&mut self) {
        cli(&["umount", s(&self.mnt())]);
        if let Some(pid) = self.pid.take() {
            durafs_tests::wait_exit(pid);
        }
        assert!(!is_mount(&self.mnt()), "umount left a mount behind");
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(pid) = self.pid.take() {
            // SAFETY: signalling a process.
            if unsafe { libc::kill(pid, libc::SIGKILL) } == 0 {
                durafs_tests::wait_exit(pid);
            }
        }
        let mnt = self.mnt();
        if durafs::mount::is_dead_mount(&mnt) || is_mount(&mnt) {
            durafs::mount::detach(&mnt);
        }
    }
}

// ---------------------------------------------------------------- content

/// Record `i` of log `g` of thread `t` in round `seed`: 64 bytes.
fn log_rec(seed: u64, t: usize, g: u64, i: u64) -> [u8; REC] {
    let mut r = [0u8; REC];
    r[0..4].copy_from_slice(b"KREC");
    r[4..8].copy_from_slice(&(t as u32).to_le_bytes());
    r[8..16].copy_from_slice(&g.to_le_bytes());
    r[16..24].copy_from_slice(&i.to_le_bytes());
    let mut x = mix(seed, t as u64, g, i);
    for c in r[24..].chunks_mut(8) {
        c.copy_from_slice(&x.next_u64().to_le_bytes());
    }
    r
}

/// Version `v` of `cfg/t<T>`: 48..3048 bytes.
fn cfg_content(seed: u64, t: usize, v: u64) -> Vec<u8> {
    let mut g = mix(seed, 77 + t as u64, v, 3);
    let len = 48 + g.below(3000) as usize;
    let mut out = Vec::with_capacity(len);
    out.extend_from_slice(b"KCFG");
    out.extend_from_slice(&(t as u32).to_le_bytes());
    out.extend_from_slice(&v.to_le_bytes());
    while out.len() < len {
        out.push(g.next_u64() as u8);
    }
    out
}

// ---------------------------------------------------------------- load

#[derive(Clone, Debug, Default)]
struct LogFile {
    name_acked: bool,
    acked: u64,
    written: u64,
}

#[derive(Clone, Debug, Default)]
struct Acked {
    logs: Vec<LogFile>,
    cfg_acked: u64,
    cfg_started: u64,
    fsyncs: u64,
    /// The error that stopped the thread after the kill.
    stopped_by: Option<i32>,
}

struct Load<'a> {
    dir: &'a Path,
    seed: u64,
    sabotage: bool,
    killing: &'a AtomicBool,
    acks: &'a AtomicU64,
    kill_at: u64,
}

impl Load<'_> {
    fn ok<T>(&self, r: io::Result<T>, st: &mut Acked, what: &str) -> Option<T> {
        match r {
            Ok(v) => Some(v),
            Err(e) if self.killing.load(Ordering::SeqCst) => {
                let code = e.raw_os_error();
                assert!(
                    // ECANCELED: over FUSE io_uring, a call whose
                    // request was on its way to the killed daemon's ring
                    // (seen on Linux 6.18; durafs::sys::is_disconnected).
                    matches!(
                        code,
                        Some(libc::ENOTCONN)
                            | Some(libc::ECONNABORTED)
                            | Some(libc::EIO)
                            | Some(libc::ECANCELED)
                    ),
                    "seed {}: {what} after the kill: {e}",
                    self.seed
                );
                st.stopped_by = code;
                None
            }
            Err(e) => panic!("seed {}: {what} before the kill: {e}", self.seed),
        }
    }

    fn acked(&self, st: &mut Acked, tx: &mpsc::Sender<()>) {
        st.fsyncs += 1;
        if self.acks.fetch_add(1, Ordering::SeqCst) + 1 == self.kill_at {
            let _ = tx.send(());
        }
    }
}

fn new_log(l: &Load, t: usize, st: &mut Acked, tx: &mpsc::Sender<()>) -> Option<File> {
    let g = st.logs.len();
    st.logs.push(LogFile::default());
    let r = OpenOptions::new()
        .create_new(true)
        .append(true)
        .open(l.dir.join(format!("logs/t{t}.{g}")));
    let f = l.ok(r, st, "create log")?;
    l.ok(dir_sync(&l.dir.join("logs")), st, "fsync logs")?;
    st.logs[g].name_acked = true;
    l.acked(st, tx);
    Some(f)
}

fn load(l: &Load, t: usize, tx: mpsc::Sender<()>) -> Acked {
    let mut st = Acked::default();
    let mut rng = mix(l.seed, 1000 + t as u64, 0, 0);
    let _ = load_ops(l, t, &mut rng, &mut st, &tx);
    st
}

fn load_ops(
    l: &Load,
    t: usize,
    rng: &mut SplitMix64,
    st: &mut Acked,
    tx: &mpsc::Sender<()>,
) -> Option<()> {
    let mut log = new_log(l, t, st, tx)?;
    for _ in 0..MAX_OPS {
        let g = st.logs.len() - 1;
        match rng.below(10) {
            // A burst of appends, then fsync: large batches to apply.
            0..=5 => {
                for _ in 0..1 + rng.below(32) {
                    let f = &mut st.logs[g];
                    let rec = log_rec(l.seed, t, g as u64, f.written / REC as u64);
                    f.written += REC as u64;
                    let r = log.write_all(&rec);
                    l.ok(r, st, "append")?;
                }
                let len = st.logs[g].written;
                if !l.sabotage {
                    let r = if rng.chance(0.5) {
                        log.sync_data()
                    } else {
                        log.sync_all()
                    };
                    l.ok(r, st, "fsync log")?;
                }
                st.logs[g].acked = len;
                l.acked(st, tx);
            }
            6..=8 => {
                st.cfg_started += 1;
                let v = st.cfg_started;
                let stage = if rng.chance(0.5) { "stage" } else { "cfg" };
                let tmp = l.dir.join(format!("{stage}/.t{t}.{v}"));
                let r = OpenOptions::new().create_new(true).write(true).open(&tmp);
                let mut f = l.ok(r, st, "create tmp")?;
                let r = f.write_all(&cfg_content(l.seed, t, v));
                l.ok(r, st, "write tmp")?;
                l.ok(f.sync_all(), st, "fsync tmp")?;
                drop(f);
                let r = fs::rename(&tmp, l.dir.join(format!("cfg/t{t}")));
                l.ok(r, st, "rename")?;
                l.ok(dir_sync(&l.dir.join("cfg")), st, "fsync cfg")?;
                st.cfg_acked = v;
                l.acked(st, tx);
            }
            _ => log = new_log(l, t, st, tx)?,
        }
    }
    Some(())
}

// ---------------------------------------------------------------- checks

/// Path (relative) -> file content, `None` for a directory.
type Tree = BTreeMap<PathBuf, Option<Vec<u8>>>;

/// The tree under `root`, without the top-level `.durafs`.
fn snapshot(root: &Path) -> Tree {
    fn walk(root: &Path, rel: &Path, out: &mut Tree) {
        for e in fs::read_dir(root.join(rel)).expect("readdir") {
            let e = e.expect("entry");
            let name = e.file_name();
            if rel.as_os_str().is_empty() && name == ".durafs" {
                continue;
            }
            let r = rel.join(&name);
            let md = fs::symlink_metadata(root.join(&r)).expect("lstat");
            if md.is_dir() {
                out.insert(r.clone(), None);
                walk(root, &r, out);
            } else {
                assert!(md.is_file(), "{}: not a file", r.display());
                out.insert(r.clone(), Some(fs::read(root.join(&r)).expect("read")));
            }
        }
    }
    let mut out = Tree::new();
    walk(root, Path::new(""), &mut out);
    out
}

#[derive(Debug, Default)]
struct Seen {
    /// Logs holding more than was acknowledged, or holes past it.
    unacked_log_data: u64,
    /// cfg files newer than acknowledged.
    unacked_cfg: u64,
    holes: u64,
}

/// Checks round `seed`'s directory `dir` of a snapshot against what the
/// load acknowledged.
fn check_round(tree: &Tree, dir: &str, seed: u64, acked: &[Acked], seen: &mut Seen) -> Vec<String> {
    let mut bad = Vec::new();
    let base = PathBuf::from(dir);
    let mut logs_seen = vec![Vec::new(); LOADERS];
    let mut cfg_seen = [false; LOADERS];
    for (path, data) in tree.range(base.clone()..) {
        let Ok(rel) = path.strip_prefix(&base) else {
            break;
        };
        let parts: Vec<&str> = rel.iter().map(|c| c.to_str().expect("utf8")).collect();
        match (parts.as_slice(), data) {
            ([], None) | (["logs" | "cfg" | "stage"], None) => {}
            (["logs", name], Some(data)) => {
                let parsed = name
                    .strip_prefix('t')
                    .and_then(|n| n.split_once('.'))
                    .and_then(|(t, g)| Some((t.parse::<usize>().ok()?, g.parse::<u64>().ok()?)))
                    .filter(|(t, g)| *t < LOADERS && (*g as usize) < acked[*t].logs.len());
                let Some((t, g)) = parsed else {
                    bad.push(format!("{}: a name never created", path.display()));
                    continue;
                };
                logs_seen[t].push(g);
                let l = &acked[t].logs[g as usize];
                let len = data.len() as u64;
                if len % REC as u64 != 0 || len < l.acked || len > l.written {
                    bad.push(format!(
                        "{}: {len} bytes, acknowledged {}, written {}",
                        path.display(),
                        l.acked,
                        l.written
                    ));
                }
                if len > l.acked {
                    seen.unacked_log_data += 1;
                }
                for (i, rec) in data.chunks(REC).enumerate() {
                    let zero = rec.iter().all(|b| *b == 0);
                    let past = (i * REC) as u64 >= l.acked;
                    if past && zero {
                        seen.holes += 1;
                    } else if rec != log_rec(seed, t, g, i as u64) {
                        bad.push(format!(
                            "{}: record {i} is {} (acknowledged up to record {})",
                            path.display(),
                            if zero { "zeros" } else { "garbage" },
                            l.acked / REC as u64
                        ));
                        break;
                    }
                }
            }
            ([d @ ("cfg" | "stage"), name], Some(data)) => {
                let tmp = name
                    .strip_prefix(".t")
                    .and_then(|n| n.split_once('.'))
                    .and_then(|(t, v)| Some((t.parse::<usize>().ok()?, v.parse::<u64>().ok()?)))
                    .filter(|(t, v)| *t < LOADERS && *v >= 1 && *v <= acked[*t].cfg_started);
                if let Some((t, v)) = tmp {
                    // A temp name whose data fsync may have been cut short:
                    // each byte is the version's or zero.
                    let want = cfg_content(seed, t, v);
                    let fits = data.len() <= want.len()
                        && data.iter().zip(&want).all(|(a, b)| a == b || *a == 0);
                    if !fits {
                        bad.push(format!(
                            "{}: not (part of) version {v} ({} bytes)",
                            path.display(),
                            data.len()
                        ));
                    }
                    continue;
                }
                let t = name
                    .strip_prefix('t')
                    .and_then(|t| t.parse::<usize>().ok())
                    .filter(|t| *d == "cfg" && *t < LOADERS);
                let Some(t) = t else {
                    bad.push(format!("{}: a name never created", path.display()));
                    continue;
                };
                cfg_seen[t] = true;
                let a = &acked[t];
                let v = if data.len() >= 16 {
                    u64::from_le_bytes(data[8..16].try_into().expect("8"))
                } else {
                    0
                };
                if v == 0 || *data != cfg_content(seed, t, v) {
                    bad.push(format!(
                        "{}: not a complete version ({} bytes), acknowledged {}",
                        path.display(),
                        data.len(),
                        a.cfg_acked
                    ));
                } else if v < a.cfg_acked || v > a.cfg_started {
                    bad.push(format!(
                        "{}: version {v}, acknowledged {}, last started {}",
                        path.display(),
                        a.cfg_acked,
                        a.cfg_started
                    ));
                } else if v > a.cfg_acked {
                    seen.unacked_cfg += 1;
                }
            }
            _ => bad.push(format!("{}: never created", path.display())),
        }
    }
    for (t, a) in acked.iter().enumerate() {
        for (g, l) in a.logs.iter().enumerate() {
            if l.name_acked && !logs_seen[t].contains(&(g as u64)) {
                bad.push(format!(
                    "{dir}/logs/t{t}.{g}: missing; its name was acknowledged"
                ));
            }
        }
        if a.cfg_acked > 0 && !cfg_seen[t] {
            bad.push(format!(
                "{dir}/cfg/t{t}: missing; version {} was acknowledged",
                a.cfg_acked
            ));
        }
    }
    bad
}

// ---------------------------------------------------------------- rounds

#[derive(Debug, Default)]
struct Figures {
    kills: u64,
    fsyncs_acked: u64,
    stopped_by: BTreeMap<i32, u64>,
    seen: Seen,
}

/// Mount options of round `r`.
fn flags(r: u64) -> Vec<&'static str> {
    let mut f = vec!["--model", if r % 2 == 0 { "posix" } else { "journal" }];
    if r % 3 == 2 {
        f.push("--real-fsync");
    }
    if r % 4 == 1 {
        f.extend(["--threads", "4"]);
    }
    if r % 5 == 3 {
        f.push("--writeback-cache");
    }
    f
}

/// Runs `rounds` kills on one BACKING; returns the violations of the first
/// bad round (empty: all good).
/// How a round's daemon dies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Death {
    /// SIGKILL from the test after the K-th acknowledged fsync.
    Signal,
    /// SIGKILL from the daemon itself at its K-th pass through the `apply`
    /// failpoint (between two effects of a batch, or between the two
    /// renames of an atomic replace): exactly inside an fsync's application
    /// to BACKING.
    Failpoint,
}

fn kill_rounds(
    first_seed: u64,
    rounds: u64,
    sabotage: bool,
    death: Death,
    fig: &mut Figures,
) -> Vec<String> {
    let mut d = Daemon::new();
    let mut before: Option<Tree> = None;
    for r in 0..=rounds {
        let seed = first_seed + r;
        // Past the round's own setup (a dozen passes), well before the load
        // ends.
        let fp = format!("apply:{}", 30 + mix(seed, 7, 7, 7).below(400));
        let armed = death == Death::Failpoint && r < rounds;
        d.mount(&flags(r), armed.then_some(fp.as_str()));
        let mnt = d.mnt();
        // The mount shows what BACKING held after the last kill, and not
        // the store's bookkeeping.
        let now = snapshot(&mnt);
        let listed: Vec<_> = fs::read_dir(&mnt)
            .expect("readdir")
            .map(|e| e.expect("entry").file_name())
            .collect();
        if listed.iter().any(|n| n == ".durafs") {
            return vec![format!("round {r}: the mount lists .durafs")];
        }
        if let Some(b) = &before {
            if *b != now {
                let diff: Vec<_> = b
                    .keys()
                    .chain(now.keys())
                    .filter(|k| b.get(*k) != now.get(*k))
                    .take(5)
                    .collect();
                return vec![format!(
                    "round {r} (seed {seed}): the mount differs from BACKING after the kill: {diff:?}"
                )];
            }
        }
        if r == rounds {
            d.umount();
            break;
        }
        let dir = format!("r{r}");
        let root = mnt.join(&dir);
        for sub in ["", "logs", "cfg", "stage"] {
            fs::create_dir(root.join(sub)).expect("mkdir");
        }
        for sub in ["logs", "cfg", "stage"] {
            durafs_tests::fsync_dir(&root.join(sub));
        }
        durafs_tests::fsync_dir(&root);
        durafs_tests::fsync_dir(&mnt);

        let kill_at = match death {
            Death::Signal => 5 + mix(seed, 9, 9, 9).below(150),
            Death::Failpoint => u64::MAX,
        };
        // With a failpoint the daemon may die at any moment.
        let killing = AtomicBool::new(death == Death::Failpoint);
        let acks = AtomicU64::new(0);
        let l = Load {
            dir: &root,
            seed,
            sabotage,
            killing: &killing,
            acks: &acks,
            kill_at,
        };
        let acked: Vec<Acked> = std::thread::scope(|sc| {
            let (tx, rx) = mpsc::channel();
            let hs: Vec<_> = (0..LOADERS)
                .map(|t| {
                    let (l, tx) = (&l, tx.clone());
                    sc.spawn(move || load(l, t, tx))
                })
                .collect();
            drop(tx);
            // The kill_at-th acknowledged fsync (or every thread done).
            let _ = rx.recv();
            killing.store(true, Ordering::SeqCst);
            d.kill();
            hs.into_iter()
                .map(|h| h.join().expect("load thread"))
                .collect()
        });
        fig.kills += 1;
        if death == Death::Failpoint && acked.iter().all(|a| a.stopped_by.is_none()) {
            return vec![format!(
                "round {r}, seed {seed}: the failpoint {fp} never fired (the load ended first)"
            )];
        }
        for a in &acked {
            fig.fsyncs_acked += a.fsyncs;
            if let Some(e) = a.stopped_by {
                *fig.stopped_by.entry(e).or_default() += 1;
            }
        }
        d.umount();
        let tree = snapshot(&d.backing());
        let mut bad = check_round(&tree, &dir, seed, &acked, &mut fig.seen);
        // Earlier rounds' directories are untouched.
        if let Some(b) = &before {
            for (k, v) in b {
                if tree.get(k) != Some(v) {
                    bad.push(format!("{}: changed after a later round", k.display()));
                }
            }
        }
        let extra: Vec<_> = tree
            .keys()
            .filter(|k| {
                let top = k.iter().next().and_then(|c| c.to_str()).unwrap_or("");
                top.strip_prefix('r')
                    .and_then(|n| n.parse::<u64>().ok())
                    .is_none_or(|n| n > r)
            })
            .collect();
        if !extra.is_empty() {
            bad.push(format!("BACKING: names never created: {extra:?}"));
        }
        if !bad.is_empty() {
            bad.insert(
                0,
                format!(
                    "round {r}, seed {seed}, flags {:?}, killed after {} acknowledged fsyncs; \
                     reproduce: DURAFS_KILL_SEED={first_seed} DURAFS_KILL_ROUNDS={rounds}",
                    flags(r),
                    acks.load(Ordering::SeqCst)
                ),
            );
            return bad;
        }
        before = Some(tree);
    }
    Vec::new()
}

#[test]
fn sigkill_under_fsync_load_keeps_every_acknowledged_fsync() {
    let rounds = env_u64("DURAFS_KILL_ROUNDS").unwrap_or(10);
    let seed = env_u64("DURAFS_KILL_SEED").unwrap_or(1);
    let sabotage = std::env::var("DURAFS_KILL_SABOTAGE").is_ok_and(|v| v == "1");
    let mut fig = Figures::default();
    let bad = kill_rounds(seed, rounds, sabotage, Death::Signal, &mut fig);
    assert!(bad.is_empty(), "{}", bad.join("\n"));
    eprintln!("daemon_kill: seeds {seed}..{}: {fig:?}", seed + rounds);
}

/// As above, but the daemon kills itself at a seeded pass through the
/// `apply` failpoint, so every kill lands inside the application of a
/// batch to BACKING. `DURAFS_KILL_ROUNDS` / `DURAFS_KILL_SEED` as above.
#[test]
fn a_kill_inside_apply_keeps_every_acknowledged_fsync() {
    let rounds = env_u64("DURAFS_KILL_ROUNDS").unwrap_or(6);
    let seed = env_u64("DURAFS_KILL_SEED").unwrap_or(101);
    let mut fig = Figures::default();
    let bad = kill_rounds(seed, rounds, false, Death::Failpoint, &mut fig);
    assert!(bad.is_empty(), "{}", bad.join("\n"));
    eprintln!(
        "daemon_kill (failpoint): seeds {seed}..{}: {fig:?}",
        seed + rounds
    );
}

/// The check can fail: acknowledging appends without fsyncing them is
/// caught after a kill.
#[test]
fn a_skipped_fsync_is_caught_after_a_kill() {
    let mut fig = Figures::default();
    let bad = kill_rounds(1, 1, true, Death::Signal, &mut fig);
    assert!(!bad.is_empty(), "went unnoticed: {fig:?}");
    eprintln!("sabotage caught: {}", bad.join("\n"));
}
