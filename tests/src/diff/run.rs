//! The differential harness: runs a sequence on a durafs volume and a
//! native directory side by side ([`check`]), predicts and checks each cut,
//! shrinks a failing sequence ([`shrink`]) and reports it ([`fuzz`]).

use super::tree::Tree;
use super::{CutPolicy, Gen, Op, Outcome, apply};
use crate::Vol;
use durafs::fs::FsOptions;
use durafs::model::Persistence;
use durafs::model::crash::{CrashOptions, Policy, crash_state};
use durafs::trace::replay::Replayer;
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
    pub per_op: std::collections::BTreeMap<&'static str, [usize; 2]>,
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

fn read_tree(root: &Path, side: &str) -> Tree {
    Tree::read(root)
        .unwrap_or_else(|e| panic!("reading the {side} tree at {}: {e}", root.display()))
}

/// The durafs tree, a failure of kind `read-tree` when it cannot be read.
fn read_volume(v: &Vol, step: usize, op: &Op) -> Result<Tree, Failure> {
    Tree::read(&v.mnt).map_err(|e| fail(step, op, "read-tree", format!("after {op}: {e}")))
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

/// A durafs volume and a native directory run side by side.
pub struct Runner {
    v: Vol,
    native: Native,
    /// The tree both showed after the last step.
    tree: Tree,
    step: usize,
    pub stats: Stats,
    verbose: bool,
}

impl Runner {
    /// A fresh volume under `persistence` and a fresh native directory.
    pub fn new(persistence: Persistence) -> Runner {
        let v = Vol::with(FsOptions {
            persistence,
            ..FsOptions::default()
        });
        start_trace(&v);
        Runner {
            v,
            native: Native::new(),
            tree: Tree::default(),
            step: 0,
            stats: Stats::default(),
            verbose: std::env::var_os("DURAFS_DIFF_VERBOSE").is_some(),
        }
    }

    /// The tree both sides showed after the last step.
    pub fn tree(&self) -> &Tree {
        &self.tree
    }

    /// Runs `op` on both sides and compares.
    pub fn step(&mut self, op: &Op) -> Result<(), Failure> {
        let step = self.step;
        let t0 = Instant::now();
        self.step += 1;
        self.stats.ops += 1;
        let (v, stats) = (&mut self.v, &mut self.stats);
        match *op {
            Op::Cut { policy, seed } => {
                self.native.assert_contained();
                let recovered = cut(v, policy, seed, step, op, stats)?;
                self.native = Native::from_tree(&recovered);
                let back = read_tree(&self.native.root, "native");
                if let Some(d) = diff_lines(&recovered, &back, "recovered", "native copy") {
                    panic!("harness: rebuilding the native tree lost something:\n  {d}");
                }
                start_trace(v);
                self.tree = recovered;
                return Ok(());
            }
            Op::SyncAll => {
                if let Err(e) = v.fs().sync() {
                    return Err(fail(step, op, "result", format!("durafs sync-all: {e}")));
                }
            }
            _ => {
                let got = apply(&v.mnt, op);
                let want = apply(&self.native.root, op);
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
                stats.errors += usize::from(failed);
                stats.per_op.entry(op.name()).or_default()[usize::from(failed)] += 1;
            }
        }
        let d = read_volume(v, step, op)?;
        let n = read_tree(&self.native.root, "native");
        if let Some(diff) = diff_lines(&d, &n, "durafs", "native") {
            return Err(fail(step, op, "tree", format!("after {op}:\n  {diff}")));
        }
        self.tree = n;
        if self.verbose {
            eprintln!("   ({:.2?})", t0.elapsed());
        }
        Ok(())
    }

    /// Ends the run: checks nothing escaped the native root.
    pub fn finish(self) -> Stats {
        self.native.assert_contained();
        self.stats
    }
}

/// Runs `ops` on a fresh durafs volume under `persistence` and on a fresh
/// native directory; the first discrepancy is returned.
pub fn check(persistence: Persistence, ops: &[Op]) -> Result<Stats, Failure> {
    let mut r = Runner::new(persistence);
    for op in ops {
        r.step(op)?;
    }
    Ok(r.finish())
}

/// Generates and runs `n` operations from `seed`, each chosen knowing the
/// tree the previous ones left; returns the sequence and how it ended.
/// The same seed gives the same sequence as long as no discrepancy shows.
pub fn run_generated(
    persistence: Persistence,
    seed: u64,
    n: usize,
) -> (Vec<Op>, Result<Stats, Failure>) {
    let mut r = Runner::new(persistence);
    let mut g = Gen::new(seed);
    let mut ops = Vec::with_capacity(n);
    for _ in 0..n {
        let op = g.next(r.tree());
        ops.push(op);
        if let Err(f) = r.step(&op) {
            return (ops, Err(f));
        }
    }
    (ops, Ok(r.finish()))
}

/// Cuts `v` under `policy` and remounts it; checks the recovered tree
/// against the model's prediction (and, for keep-all, the live tree).
fn cut(
    v: &mut Vol,
    policy: CutPolicy,
    seed: u64,
    step: usize,
    op: &Op,
    stats: &mut Stats,
) -> Result<Tree, Failure> {
    let live = read_volume(v, step, op)?;
    let trace = v
        .fs()
        .finish_trace()
        .expect("the volume is traced")
        .expect("the trace is kept in memory");
    let mut r = Replayer::new(&trace.header)
        .map_err(|e| fail(step, op, "replay", format!("trace header: {e}")))?;
    for ev in &trace.events {
        r.apply(ev)
            .map_err(|e| fail(step, op, "replay", format!("{e} ({ev})")))?;
    }
    let pending = r.pending();
    let on_volume = v.fs().pending();
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
    let state = crash_state(&pending, &opts);
    let mut store = r.durable().clone();
    store.apply_all(&state.effects(&pending));
    let predicted = Tree::of_store(&store);
    stats.cuts += 1;
    stats.pending_at_cuts += pending.len();
    v.cut_with(opts);
    v.remount();
    let recovered = read_volume(v, step, op)?;
    if let Some(d) = diff_lines(&predicted, &recovered, "model", "remounted") {
        return Err(fail(
            step,
            op,
            "cut-model",
            format!("{op} ({}): {d}", state.description),
        ));
    }
    if policy == CutPolicy::KeepAll {
        if let Some(d) = diff_lines(&live, &recovered, "before the cut", "remounted") {
            return Err(fail(step, op, "cut-live", format!("{op}: {d}")));
        }
    }
    Ok(recovered)
}

/// Shrinks `ops`, which fail with `class`: greedily removes chunks (halves,
/// quarters, ... single ops) while a fresh run still fails with the same
/// class, until nothing more can go or `budget` is spent.
pub fn shrink(
    persistence: Persistence,
    ops: &[Op],
    class: &str,
    budget: Duration,
) -> (Vec<Op>, Failure) {
    let start = Instant::now();
    let still = |c: &[Op]| match check(persistence, c) {
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
fn as_test(persistence: Persistence, seed: u64, ops: &[Op], f: &Failure) -> String {
    let mut s = format!(
        "// {} (seed {seed}, shrunk to {} ops)\n#[test]\nfn diff_regression_seed_{seed}() {{\n    use durafs_tests::diff::*;\n    let ops = [\n",
        f.class,
        ops.len()
    );
    for op in ops {
        s.push_str(&format!("        {op},\n"));
    }
    s.push_str(&format!(
        "    ];\n    if let Err(f) = check(Persistence::{persistence:?}, &ops) {{\n        panic!(\"{{}}\", f.what);\n    }}\n}}\n"
    ));
    s
}

/// Runs `n` generated ops from `seed`; on a discrepancy, shrinks it and
/// panics with the seed, the failure and a regression test.
pub fn fuzz(persistence: Persistence, seed: u64, n: usize) -> Stats {
    let (ops, result) = run_generated(persistence, seed, n);
    match result {
        Ok(s) => s,
        Err(f) => {
            let secs = std::env::var("DURAFS_DIFF_SHRINK_SECS")
                .ok()
                .and_then(|s| s.parse().ok())
                .unwrap_or(120);
            let (small, sf) = shrink(persistence, &ops, &f.class, Duration::from_secs(secs));
            panic!(
                "differential run failed: seed {seed}, {n} ops, {persistence:?}\n\
                 first failure at op {} ({}):\n  {}\n\n\
                 shrunk to {} ops, failing at op {}:\n  {}\n\n\
                 regression test:\n\n{}",
                f.step,
                f.class,
                f.what,
                small.len(),
                sf.step,
                sf.what,
                as_test(persistence, seed, &small, &sf)
            )
        }
    }
}

/// [`fuzz`] with `n` ops from `seed`, unless `DURAFS_DIFF_OPS` and
/// `DURAFS_DIFF_SEED` say otherwise (see the module docs).
pub fn fuzz_from_env(persistence: Persistence, seed: u64, n: usize) -> Stats {
    let env = |k: &str| {
        std::env::var(k).ok().map(|s| {
            s.parse::<u64>()
                .unwrap_or_else(|e| panic!("{k}={s:?}: not a number: {e}"))
        })
    };
    let n = env("DURAFS_DIFF_OPS").map_or(n, |v| v as usize);
    let seed = env("DURAFS_DIFF_SEED").unwrap_or(seed);
    let t = Instant::now();
    let s = fuzz(persistence, seed, n);
    eprintln!(
        "differential {persistence:?} seed {seed}: {} ops ({} errors), {} cuts ({} pending ops), {:.2?}\n  [ok, failed] per op: {:?}",
        s.ops,
        s.errors,
        s.cuts,
        s.pending_at_cuts,
        t.elapsed(),
        s.per_op
    );
    s
}
