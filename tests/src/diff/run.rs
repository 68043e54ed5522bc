//! The differential harness: runs a sequence on a durafs volume and a
//! native directory side by side ([`check`]), predicts and checks each cut,
//! shrinks a failing sequence ([`shrink`]) and reports it ([`fuzz`]).

use super::exec::{lstat, stat};
use super::fds::Fds;
use super::generate::Opened;
use super::times::{SlotTimes, Stamps};
use super::tree::{Ids, Tree};
use super::{CutPolicy, Gen, Op, Outcome, SLOTS, Setup, Time, apply};
use crate::Vol;
use durafs::fs::FsOptions;
use durafs::model::crash::{CrashOptions, Policy, crash_state};
use durafs::mount::MountOptions;
use durafs::trace::replay::Replayer;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

/// What a passing run did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    pub ops: usize,
    /// Operations that failed (the same errno on both sides).
    pub errors: usize,
    pub cuts: usize,
    /// Pending operations at the cuts, in all.
    pub pending_at_cuts: usize,
    /// Per operation name: `[succeeded, failed]` (cuts and sync-all not
    /// counted).
    pub per_op: BTreeMap<&'static str, [usize; 2]>,
    /// How often the cases the descriptor and time operations are for
    /// came up: `write-unlinked`, `truncate-unlinked`, `fsync-unlinked`
    /// (succeeded on a file with no name left), `fsync-moved` (succeeded
    /// on a file no longer at the path it was opened at),
    /// `fds-open-at-cut`, `mtime-checked` (paths whose mtime a step
    /// compared), `mtime-checked-at-cut`.
    pub cases: BTreeMap<&'static str, usize>,
}

/// A discrepancy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    /// Index of the op at which it showed.
    pub step: usize,
    /// What kind of discrepancy (`result`, `tree`, `cut-model`, ...) at
    /// which op: shrinking keeps failures of the same class.
    pub class: String,
    pub what: String,
}

fn fail(step: usize, op: &Op, kind: &str, what: String) -> Failure {
    Failure {
        step,
        class: format!("{kind} after {}", op.name()),
        what,
    }
}

/// A run's native side: a plain temp directory on the same filesystem the
/// durafs backing lives on.
struct Native {
    _tmp: tempfile::TempDir,
    root: std::path::PathBuf,
}

impl Native {
    /// Panics when an operation created something next to the root: the
    /// name space must keep every path inside the tree.
    fn assert_contained(&self) {
        let n = std::fs::read_dir(self._tmp.path())
            .expect("native tempdir")
            .count();
        assert_eq!(n, 1, "harness: an operation escaped the native root");
    }

    fn new() -> Native {
        let tmp = tempfile::tempdir().expect("native tempdir");
        let root = tmp.path().join("root");
        std::fs::create_dir(&root).expect("native root");
        Native { _tmp: tmp, root }
    }

    /// A fresh native directory holding `tree`.
    fn from_tree(tree: &Tree) -> Native {
        let n = Native::new();
        tree.materialise(&n.root)
            .expect("materialising the native tree");
        n
    }
}

fn read_tree(root: &Path, side: &str) -> (Tree, Ids) {
    Tree::read_ids(root)
        .unwrap_or_else(|e| panic!("reading the {side} tree at {}: {e}", root.display()))
}

/// The durafs tree (with every mtime) and its identities, a failure of
/// kind `read-tree` when it cannot be read.
fn read_volume(v: &Vol, step: usize, op: &Op) -> Result<(Tree, Ids), Failure> {
    Tree::read_ids(&v.mnt).map_err(|e| fail(step, op, "read-tree", format!("after {op}: {e}")))
}

/// `t` without mtimes.
fn untimed(mut t: Tree) -> Tree {
    t.retain_mtimes(|_| false);
    t
}

fn diff_lines(a: &Tree, b: &Tree, an: &str, bn: &str) -> Option<String> {
    let d = a.diff(b, an, bn, 8);
    (!d.is_empty()).then(|| d.join("\n  "))
}

fn start_trace(v: &Vol) {
    v.fs()
        .start_trace(true, None)
        .expect("starting the trace on a fresh mount");
}

/// A durafs volume and a native directory run side by side, each with its
/// own descriptor slots.
pub struct Runner {
    // The descriptors are declared first: closed before the volume
    // unmounts.
    fds: Fds,
    native_fds: Fds,
    v: Vol,
    native: Native,
    setup: Setup,
    /// The tree both showed after the last step.
    tree: Tree,
    /// The path each slot was opened at.
    opened: Opened,
    stamps: Stamps,
    step: usize,
    pub stats: Stats,
    verbose: bool,
}

fn is_file(st: &libc::stat) -> bool {
    st.st_mode & libc::S_IFMT == libc::S_IFREG
}

fn is_dir(st: &libc::stat) -> bool {
    st.st_mode & libc::S_IFMT == libc::S_IFDIR
}

fn mtime(st: &libc::stat) -> (i64, i64) {
    (st.st_mtime, st.st_mtime_nsec)
}

impl Runner {
    /// A fresh volume (mounted as `setup` says) and a fresh native
    /// directory.
    pub fn new(setup: impl Into<Setup>) -> Runner {
        let setup = setup.into();
        let v = Vol::with_mount(
            FsOptions {
                persistence: setup.persistence,
                ..FsOptions::default()
            },
            MountOptions {
                writeback_cache: setup.writeback_cache,
                ..MountOptions::default()
            },
        );
        start_trace(&v);
        Runner {
            fds: Fds::new(),
            native_fds: Fds::new(),
            v,
            native: Native::new(),
            setup,
            tree: Tree::default(),
            opened: [None; SLOTS as usize],
            stamps: Stamps::default(),
            step: 0,
            stats: Stats::default(),
            verbose: std::env::var_os("DURAFS_DIFF_VERBOSE").is_some(),
        }
    }

    /// The tree both sides showed after the last step.
    pub fn tree(&self) -> &Tree {
        &self.tree
    }

    /// The path each descriptor slot was opened at (`None`: empty).
    pub fn opened(&self) -> Opened {
        self.opened
    }

    pub fn setup(&self) -> Setup {
        self.setup
    }

    /// The volume (for tests of the harness).
    pub fn volume(&self) -> &Vol {
        &self.v
    }

    fn case(&mut self, name: &'static str) {
        self.cases(name, 1);
    }

    fn cases(&mut self, name: &'static str, n: usize) {
        if n > 0 {
            *self.stats.cases.entry(name).or_default() += n;
        }
    }

    /// Runs `op` on both sides and compares.
    pub fn step(&mut self, op: &Op) -> Result<(), Failure> {
        let step = self.step;
        let t0 = Instant::now();
        self.step += 1;
        self.stats.ops += 1;
        match *op {
            Op::Cut { policy, seed } => {
                self.native.assert_contained();
                let recovered = self.cut(policy, seed, step, op)?;
                self.native = Native::from_tree(&recovered);
                let back = untimed(read_tree(&self.native.root, "native").0);
                if let Some(d) = diff_lines(&recovered, &back, "recovered", "native copy") {
                    panic!("harness: rebuilding the native tree lost something:\n  {d}");
                }
                start_trace(&self.v);
                self.tree = recovered;
                return Ok(());
            }
            Op::SyncAll => {
                if let Err(e) = self.v.fs().sync() {
                    return Err(fail(step, op, "result", format!("durafs sync-all: {e}")));
                }
                self.stamps.synced_all();
            }
            _ => {
                let (got, want) = match self.fds.apply(&self.v.mnt, op) {
                    Some(got) => {
                        let want = self.native_fds.apply(&self.native.root, op);
                        (got, want.expect("a descriptor op on both sides"))
                    }
                    None => (apply(&self.v.mnt, op), apply(&self.native.root, op)),
                };
                if self.verbose {
                    eprintln!("#{step} {op} -> {want:?}");
                }
                if got != want {
                    return Err(fail(
                        step,
                        op,
                        "result",
                        format!("{op}: durafs {got:?}, native {want:?}"),
                    ));
                }
                let failed = matches!(got, Outcome::Err(_));
                self.stats.errors += usize::from(failed);
                self.stats.per_op.entry(op.name()).or_default()[usize::from(failed)] += 1;
                self.after(op, failed, &want);
            }
        }
        self.compare(step, op)?;
        if self.verbose {
            eprintln!("   ({:.2?})", t0.elapsed());
        }
        Ok(())
    }

    /// Bookkeeping after an operation that both sides ran alike: the
    /// slots' paths, stamps, and the cases it made.
    fn after(&mut self, op: &Op, failed: bool, want: &Outcome) {
        match *op {
            Op::Open { slot, path, .. } => {
                self.opened[slot as usize] = (!failed).then_some(path);
            }
            Op::FdClose { slot } => self.opened[slot as usize] = None,
            _ => {}
        }
        if failed {
            return;
        }
        let mnt = &self.v.mnt;
        match *op {
            Op::Utimens { path, mtime, .. } if mtime != Time::Omit => {
                if let (Ok(st), Outcome::Times { mtime: set, .. }) = (lstat(mnt, path), want) {
                    self.stamps.set(st.st_ino, *set);
                }
            }
            // fsync of a file or a directory makes its attributes durable.
            Op::Fsync { path } | Op::FsyncDir { path } => {
                if let Some(st) = stat(mnt, path).ok().filter(|st| is_file(st) || is_dir(st)) {
                    self.stamps.synced(st.st_ino);
                }
            }
            Op::FdWrite { slot, .. } | Op::FdTruncate { slot, .. } | Op::FdFsync { slot, .. } => {
                let Some(st) = self.native_fds.stat(slot) else {
                    return;
                };
                let unlinked = st.st_nlink == 0;
                match *op {
                    Op::FdWrite { .. } if unlinked => self.case("write-unlinked"),
                    Op::FdTruncate { .. } if unlinked => self.case("truncate-unlinked"),
                    Op::FdFsync { datasync, .. } => {
                        if unlinked {
                            self.case("fsync-unlinked");
                        } else if let Some(p) = self.opened[slot as usize] {
                            let here = lstat(&self.native.root, p)
                                .is_ok_and(|h| (h.st_dev, h.st_ino) == (st.st_dev, st.st_ino));
                            if !here {
                                self.case("fsync-moved");
                            }
                        }
                        if !datasync {
                            if let Some(d) = self.fds.stat(slot).filter(is_file) {
                                self.stamps.synced(d.st_ino);
                            }
                        }
                    }
                    _ => {}
                }
            }
            _ => {}
        }
    }

    /// Compares the two sides after a step: the trees (mtimes where
    /// stamped) and what each descriptor slot shows.
    fn compare(&mut self, step: usize, op: &Op) -> Result<(), Failure> {
        let (mut d, ids) = read_volume(&self.v, step, op)?;
        let (mut n, _) = read_tree(&self.native.root, "native");
        let mut slots: Vec<(u8, SlotTimes)> = Vec::new();
        for s in 0..SLOTS {
            if let (Some(a), Some(b)) = (self.fds.stat(s), self.native_fds.stat(s)) {
                slots.push((s, (a.st_ino, mtime(&a), mtime(&b))));
            }
        }
        let keep = self
            .stamps
            .settle(&ids, &n, &slots)
            .map_err(|e| fail(step, op, "fd-stat", format!("after {op}: {e}")))?;
        self.cases("mtime-checked", keep.len());
        d.retain_mtimes(|p| keep.contains(p));
        n.retain_mtimes(|p| keep.contains(p));
        if let Some(diff) = diff_lines(&d, &n, "durafs", "native") {
            return Err(fail(step, op, "tree", format!("after {op}:\n  {diff}")));
        }
        let (a, b) = (self.fds.stats(), self.native_fds.stats());
        if a != b {
            return Err(fail(
                step,
                op,
                "fd-stat",
                format!("after {op}: through the slots durafs shows {a:?}, native {b:?}"),
            ));
        }
        self.tree = untimed(n);
        Ok(())
    }

    /// Ends the run: closes the descriptors, checks nothing escaped the
    /// native root.
    pub fn finish(mut self) -> Stats {
        self.fds.close_all();
        self.native_fds.close_all();
        self.native.assert_contained();
        self.stats
    }
}

/// Runs `ops` on a fresh durafs volume mounted as `setup` says (a
/// [`durafs::model::Persistence`] for a plain mount) and on a fresh native
/// directory; the first discrepancy is returned.
pub fn check(setup: impl Into<Setup>, ops: &[Op]) -> Result<Stats, Failure> {
    let mut r = Runner::new(setup);
    for op in ops {
        r.step(op)?;
    }
    Ok(r.finish())
}

/// Generates and runs `n` operations from `seed`, each chosen knowing the
/// tree and the descriptor slots the previous ones left; returns the
/// sequence and how it ended. The same seed gives the same sequence as
/// long as no discrepancy shows.
pub fn run_generated(
    setup: impl Into<Setup>,
    seed: u64,
    n: usize,
) -> (Vec<Op>, Result<Stats, Failure>) {
    let setup = setup.into();
    let mut r = Runner::new(setup);
    let mut g = Gen::with_mix(seed, setup.mix);
    let mut ops = Vec::with_capacity(n);
    for _ in 0..n {
        let op = g.next_with(r.tree(), r.opened());
        ops.push(op);
        if let Err(f) = r.step(&op) {
            return (ops, Err(f));
        }
    }
    (ops, Ok(r.finish()))
}

impl Runner {
    /// Cuts the volume under `policy` and remounts it; checks the recovered
    /// tree against the model's prediction, made after the remount from the
    /// trace and pending list taken just before the cut (and, for keep-all,
    /// against the live tree). The descriptors of both sides are closed:
    /// durafs's once the mount is cut (what the kernel still cached for
    /// them is lost with it), the native ones with them.
    fn cut(&mut self, policy: CutPolicy, seed: u64, step: usize, op: &Op) -> Result<Tree, Failure> {
        let opts = CrashOptions {
            policy: match policy {
                CutPolicy::KeepAll => Policy::KeepAll,
                CutPolicy::DropAll => Policy::DropAll,
                CutPolicy::Random => Policy::Random,
                CutPolicy::Prefix => Policy::Prefix,
                CutPolicy::Torn => Policy::Torn,
                CutPolicy::MetaFirst => Policy::MetaFirst,
            },
            seed,
            sector: 512,
            garbage: policy == CutPolicy::Torn && seed % 2 == 0,
            ..CrashOptions::default()
        };
        let live = untimed(read_volume(&self.v, step, op)?.0);
        let open = self.fds.open_slots().iter().filter(|o| **o).count();
        // IMPORTANT: frozen, no call takes effect (a writeback the kernel
        // starts now waits for the cut and fails), so the trace holds all
        // the cut sees. Nothing here may fail before the cut: a frozen
        // volume cannot unmount.
        let fs = self.v.fs();
        fs.freeze();
        let trace = fs.finish_trace();
        let on_volume = fs.pending();
        self.v.cut_with(opts);
        self.fds.close_all();
        self.native_fds.close_all();
        self.opened = [None; SLOTS as usize];
        self.v.remount();
        let trace = trace
            .expect("the volume is traced")
            .expect("the trace is kept in memory");
        let mut r = Replayer::new(&trace.header)
            .map_err(|e| fail(step, op, "replay", format!("trace header: {e}")))?;
        for ev in &trace.events {
            r.apply(ev)
                .map_err(|e| fail(step, op, "replay", format!("{e} ({ev})")))?;
        }
        let pending = r.pending();
        if pending != on_volume {
            return Err(fail(
                step,
                op,
                "replay",
                format!(
                    "the replayed model has {} pending operations, the volume {}",
                    pending.len(),
                    on_volume.len()
                ),
            ));
        }
        // Predicted under the trace's model, as the volume cut under its own.
        let state = crash_state(&pending, &opts.under(trace.header.model));
        let mut store = r.durable().clone();
        store.apply_all(&state.effects(&pending));
        let (mut predicted, inos) = Tree::of_store_ids(&store);
        let stamped = self
            .stamps
            .at_cut(&predicted, &inos, policy == CutPolicy::KeepAll);
        self.stats.cuts += 1;
        self.stats.pending_at_cuts += pending.len();
        self.cases("fds-open-at-cut", open);
        self.cases("mtime-checked-at-cut", stamped.len());
        let mut recovered = read_volume(&self.v, step, op)?.0;
        predicted.retain_mtimes(|p| stamped.contains_key(p));
        recovered.retain_mtimes(|p| stamped.contains_key(p));
        self.stamps.clear();
        if let Some(d) = diff_lines(&predicted, &recovered, "model", "remounted") {
            return Err(fail(
                step,
                op,
                "cut-model",
                format!("{op} ({}): {d}", state.description),
            ));
        }
        for (p, want) in &stamped {
            let got = recovered.0.get(p).and_then(|n| n.mtime);
            if got != Some(*want) {
                return Err(fail(
                    step,
                    op,
                    "cut-mtime",
                    format!(
                        "{op}: {p} was given mtime {want:?} and it is durable; remounted: {got:?}"
                    ),
                ));
            }
        }
        let recovered = untimed(recovered);
        if policy == CutPolicy::KeepAll {
            if let Some(d) = diff_lines(&live, &recovered, "before the cut", "remounted") {
                return Err(fail(step, op, "cut-live", format!("{op}: {d}")));
            }
        }
        Ok(recovered)
    }
}

/// Shrinks `ops`, which fail with `class`: greedily removes chunks (halves,
/// quarters, ... single ops) while a fresh run still fails with the same
/// class, until nothing more can go or `budget` is spent.
pub fn shrink(
    setup: impl Into<Setup>,
    ops: &[Op],
    class: &str,
    budget: Duration,
) -> (Vec<Op>, Failure) {
    let setup = setup.into();
    let start = Instant::now();
    let still = |c: &[Op]| match check(setup, c) {
        Err(f) if f.class == class => Some(f),
        _ => None,
    };
    let mut cur = ops.to_vec();
    let mut last = still(&cur).unwrap_or_else(|| Failure {
        step: cur.len(),
        class: class.to_string(),
        what: "the failure did not reproduce on a fresh run (flaky?)".into(),
    });
    cur.truncate(last.step + 1);
    let mut chunk = cur.len().div_ceil(2).max(1);
    loop {
        let mut removed = false;
        let mut i = 0;
        while i < cur.len() && start.elapsed() < budget {
            let end = (i + chunk).min(cur.len());
            let mut cand = cur[..i].to_vec();
            cand.extend_from_slice(&cur[end..]);
            match still(&cand) {
                Some(f) => {
                    cand.truncate(f.step + 1);
                    cur = cand;
                    last = f;
                    removed = true;
                }
                None => i += chunk,
            }
        }
        if start.elapsed() >= budget {
            break;
        }
        if chunk == 1 {
            if !removed {
                break;
            }
        } else {
            chunk = chunk.div_ceil(2);
        }
    }
    (cur, last)
}

/// The regression test a shrunk sequence makes, as Rust source.
fn as_test(setup: Setup, seed: u64, ops: &[Op], f: &Failure) -> String {
    let mut s = format!(
        "// {} (seed {seed}, shrunk to {} ops)\n#[test]\nfn diff_regression_seed_{seed}() {{\n    use durafs_tests::diff::*;\n    let ops = [\n",
        f.class,
        ops.len()
    );
    for op in ops {
        s.push_str(&format!("        {op},\n"));
    }
    s.push_str(&format!(
        "    ];\n    if let Err(f) = check({setup}, &ops) {{\n        panic!(\"{{}}\", f.what);\n    }}\n}}\n"
    ));
    s
}

/// Runs `n` generated ops from `seed`; on a discrepancy, shrinks it and
/// panics with the seed, the failure and a regression test.
pub fn fuzz(setup: impl Into<Setup>, seed: u64, n: usize) -> Stats {
    let setup = setup.into();
    let (ops, result) = run_generated(setup, seed, n);
    match result {
        Ok(s) => s,
        Err(f) => {
            let secs = std::env::var("DURAFS_DIFF_SHRINK_SECS")
                .ok()
                .and_then(|s| s.parse().ok())
                .unwrap_or(120);
            let (small, sf) = shrink(setup, &ops, &f.class, Duration::from_secs(secs));
            panic!(
                "differential run failed: seed {seed}, {n} ops, {setup}\n\
                 first failure at op {} ({}):\n  {}\n\n\
                 shrunk to {} ops, failing at op {}:\n  {}\n\n\
                 regression test:\n\n{}",
                f.step,
                f.class,
                f.what,
                small.len(),
                sf.step,
                sf.what,
                as_test(setup, seed, &small, &sf)
            )
        }
    }
}

/// [`fuzz`] with `n` ops from `seed`, unless `DURAFS_DIFF_OPS` and
/// `DURAFS_DIFF_SEED` say otherwise (see the module docs).
pub fn fuzz_from_env(setup: impl Into<Setup>, seed: u64, n: usize) -> Stats {
    let setup = setup.into();
    let env = |k: &str| {
        std::env::var(k).ok().map(|s| {
            s.parse::<u64>()
                .unwrap_or_else(|e| panic!("{k}={s:?}: not a number: {e}"))
        })
    };
    let n = env("DURAFS_DIFF_OPS").map_or(n, |v| v as usize);
    let seed = env("DURAFS_DIFF_SEED").unwrap_or(seed);
    let t = Instant::now();
    let s = fuzz(setup, seed, n);
    eprintln!(
        "differential {setup} seed {seed}: {} ops ({} errors), {} cuts ({} pending ops), {:.2?}\n  [ok, failed] per op: {:?}\n  cases: {:?}",
        s.ops,
        s.errors,
        s.cuts,
        s.pending_at_cuts,
        t.elapsed(),
        s.per_op,
        s.cases
    );
    s
}
