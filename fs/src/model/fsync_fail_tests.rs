//! Failed fsyncs, without a mount: each rule of [`FailRules`], and a
//! property test against a page-by-page reference.

use super::*;
use crate::model::crash::{CrashOptions, Policy, crash_state};
use crate::model::enumerate::{EnumOptions, enumerate};
use crate::model::store::{MemStore, TreeNode, live_tree, read_all};
use crate::model::{Attrs, Config, Persistence, ROOT, SetAttrs, Timestamp};
use bytes::Bytes;
use proptest::prelude::*;

const P: usize = PAGE as usize;

fn t() -> Timestamp {
    Timestamp { secs: 1, nanos: 0 }
}

/// A model with one durably named file `f` and its durable store.
struct Vol {
    m: Model,
    store: MemStore,
    f: Ino,
    p: Persistence,
}

impl Vol {
    /// `f` holds `content`, durable (name and data).
    fn new(p: Persistence, content: &[u8]) -> Vol {
        let cfg = Config {
            persistence: p,
            ..Config::default()
        };
        let m = Model::new(cfg, Attrs::default());
        let f = m
            .create(ROOT, b"f", Kind::File, Attrs::default(), None)
            .expect("create")
            .ino;
        let mut v = Vol {
            m,
            store: MemStore::new(Attrs::default()),
            f,
            p,
        };
        let e = v.m.fsyncdir(ROOT).expect("fsyncdir");
        v.store.apply_all(&e);
        if !content.is_empty() {
            v.write(0, content);
        }
        v.fsync();
        v
    }

    fn write(&self, off: u64, data: &[u8]) {
        let n = self
            .m
            .write(self.f, off, Bytes::copy_from_slice(data), t())
            .expect("write");
        assert_eq!(n as usize, data.len());
    }

    fn fill(&self, off: usize, len: usize, byte: u8) {
        self.write(off as u64, &vec![byte; len]);
    }

    fn fsync(&mut self) -> Vec<Effect> {
        let e = self.m.fsync(self.f, false).expect("fsync");
        self.store.apply_all(&e);
        e
    }

    fn fail(&mut self, sem: FsyncFailure, seed: u64) -> FailedFsync {
        let (e, r) = self
            .m
            .fsync_failed(self.f, false, sem, seed)
            .expect("failed fsync");
        self.store.apply_all(&e);
        r
    }

    fn live(&self) -> Vec<u8> {
        read_all(&self.m, &self.store, self.f).expect("read")
    }

    /// The file after a power cut under `policy`.
    fn cut(&self, policy: Policy) -> Vec<u8> {
        let pending = self.m.pending_ops();
        let opts = CrashOptions {
            policy,
            ..CrashOptions::default()
        }
        .under(self.p);
        let mut s = self.store.clone();
        s.apply_all(&crash_state(&pending, &opts).effects(&pending));
        file_of(&s)
    }

    /// Bytes of the pending operations: what the dirty count must be.
    fn pending_bytes(&self) -> u64 {
        self.m.pending_ops().iter().map(|p| p.op.data_len()).sum()
    }

    /// Pending data operations on `f` touching `[from, to)`.
    fn pending_on(&self, from: u64, to: u64) -> usize {
        self.m
            .pending_ops()
            .iter()
            .filter(|p| p.op.inode() == Some(self.f))
            .filter(|p| p.op.data_range().is_some_and(|(s, e)| s < to && from < e))
            .count()
    }
}

fn file_of(s: &MemStore) -> Vec<u8> {
    match s.tree().shapes().get(b"f".as_slice()) {
        Some(TreeNode::File(d)) => d.clone(),
        other => panic!("no file f: {other:?}"),
    }
}

/// A seed under which [`written_pages`] gives `want` for that many pages.
fn seed_for(want: &[bool]) -> u64 {
    let pages: Vec<u64> = (0..want.len() as u64).collect();
    (0..10_000)
        .find(|s| written_pages(&pages, *s) == want)
        .expect("a seed with that pattern")
}

fn pages(spec: &[u8]) -> Vec<u8> {
    spec.iter().flat_map(|b| vec![*b; P]).collect()
}

#[test]
fn names_parse_and_print_and_serialize() {
    for s in FsyncFailure::ALL {
        assert_eq!(s.name().parse::<FsyncFailure>(), Ok(s));
        assert_eq!(s.to_string(), s.name());
        let json = serde_json::to_string(&s).expect("json");
        assert_eq!(json, format!("\"{}\"", s.name()));
    }
    assert!("zfs".parse::<FsyncFailure>().is_err());
    assert_eq!(FsyncFailure::Btrfs.rules(), RULES[3]);
}

#[test]
fn marks_clean_reads_per_read_new_and_a_later_fsync_persists_nothing_of_it() {
    let seed = seed_for(&[true, false, true]);
    for sem in [FsyncFailure::Ext4, FsyncFailure::Xfs] {
        let mut v = Vol::new(Persistence::Posix, &pages(b"ooo"));
        v.fill(0, 3 * P, b'n');
        let r = v.fail(sem, seed);
        assert_eq!(r.written, vec![(0, PAGE), (2 * PAGE, 3 * PAGE)], "{sem}");
        assert_eq!(r.failed, vec![(PAGE, 2 * PAGE)], "{sem}");
        let shown = if sem.rules().read_new { b"nnn" } else { b"non" };
        assert_eq!(v.live(), pages(shown), "{sem}: reads after the failure");
        assert_eq!(v.pending_on(0, 3 * PAGE), 0, "{sem}: nothing pending");
        let clean = v.m.clean_ranges(v.f).expect("clean ranges");
        let want = if sem.rules().read_new {
            vec![(PAGE, 2 * PAGE)]
        } else {
            vec![]
        };
        assert_eq!(clean, want, "{sem}");
        assert_eq!(v.m.dirty_bytes(), 0, "{sem}");
        let again = v.fsync();
        assert!(
            !again.iter().any(|e| matches!(e, Effect::Write { .. })),
            "{sem}: the second fsync wrote {again:?}"
        );
        assert_eq!(v.live(), pages(shown), "{sem}: reads after the fsync");
        for policy in [Policy::DropAll, Policy::KeepAll] {
            assert_eq!(v.cut(policy), pages(b"non"), "{sem} {policy}");
        }
    }
}

#[test]
fn a_write_to_a_failed_page_makes_the_whole_page_pending_again() {
    let seed = seed_for(&[true, false, true]);
    let mut v = Vol::new(Persistence::Posix, &pages(b"ooo"));
    v.fill(0, 3 * P, b'n');
    v.fail(FsyncFailure::Ext4, seed);
    // A write elsewhere leaves the failed page clean.
    v.fill(100, 10, b'a');
    assert_eq!(v.pending_on(PAGE, 2 * PAGE), 0);
    assert_eq!(v.m.dirty_bytes(), 10);
    assert_eq!(&v.cut(Policy::KeepAll)[P..2 * P], &pages(b"o")[..]);
    // A write into it makes all of it pending, the failed bytes first.
    v.fill(P + 904, 10, b'x');
    assert_eq!(v.m.clean_ranges(v.f), Ok(Vec::new()));
    assert_eq!(v.m.dirty_bytes(), 10 + PAGE + 10);
    assert_eq!(v.m.dirty_bytes(), v.pending_bytes());
    let mut want = pages(b"nnn");
    want[100..110].fill(b'a');
    want[P + 904..P + 914].fill(b'x');
    assert_eq!(v.live(), want);
    assert_eq!(v.cut(Policy::KeepAll), want);
    assert_eq!(&v.cut(Policy::DropAll)[P..2 * P], &pages(b"o")[..]);
    v.fsync();
    assert_eq!(file_of(&v.store), want, "fsync persists the whole page");
    assert_eq!(v.m.dirty_bytes(), 0);
}

#[test]
fn a_punch_into_a_failed_page_makes_it_pending_again() {
    let seed = seed_for(&[false]);
    let mut v = Vol::new(Persistence::Posix, &pages(b"o"));
    v.fill(0, P, b'n');
    v.fail(FsyncFailure::Xfs, seed);
    v.m.fallocate(v.f, 10, 10, Fallocate::PunchHole, t())
        .expect("punch");
    let mut want = pages(b"n");
    want[10..20].fill(0);
    assert_eq!(v.cut(Policy::KeepAll), want);
    v.fsync();
    assert_eq!(file_of(&v.store), want);
}

#[test]
fn a_truncate_below_a_failed_page_drops_it() {
    let seed = seed_for(&[true, false]);
    let mut v = Vol::new(Persistence::Posix, &pages(b"oo"));
    v.fill(0, 2 * P, b'n');
    v.fail(FsyncFailure::Ext4, seed);
    let size = |s| SetAttrs {
        size: Some(s),
        ..SetAttrs::default()
    };
    v.m.setattr(v.f, size(PAGE), t()).expect("shrink");
    v.m.setattr(v.f, size(2 * PAGE), t()).expect("grow");
    let want = [pages(b"n"), vec![0; P]].concat();
    assert_eq!(
        v.live(),
        want,
        "the failed bytes are gone with the truncate"
    );
    v.fsync();
    assert_eq!(file_of(&v.store), want);
    assert_eq!(v.m.dirty_bytes(), 0);
    let rep = v.m.report();
    assert_eq!((rep.unsynced_bytes, rep.pending_ops), (0, 0), "{rep:#?}");
}

#[test]
fn strict_keeps_failed_pages_pending_and_a_retry_persists_them() {
    let seed = seed_for(&[true, false, true]);
    let mut v = Vol::new(Persistence::Posix, &pages(b"ooo"));
    v.fill(0, 3 * P, b'n');
    let r = v.fail(FsyncFailure::Strict, seed);
    assert_eq!(r.failed, vec![(PAGE, 2 * PAGE)]);
    assert_eq!(v.live(), pages(b"nnn"));
    assert_eq!(v.pending_on(0, PAGE) + v.pending_on(2 * PAGE, 3 * PAGE), 0);
    assert!(v.pending_on(PAGE, 2 * PAGE) > 0);
    assert_eq!(v.m.dirty_bytes(), PAGE);
    assert_eq!(v.cut(Policy::DropAll), pages(b"non"));
    assert_eq!(v.cut(Policy::KeepAll), pages(b"nnn"));
    v.fsync();
    assert_eq!(file_of(&v.store), pages(b"nnn"));
    assert_eq!(v.m.dirty_bytes(), 0);
    assert!(v.m.pending_ops().is_empty());
}

#[test]
fn the_pages_chosen_depend_only_on_the_seed() {
    let run = |seed| {
        let mut v = Vol::new(Persistence::Posix, &[]);
        v.fill(0, 8 * P, b'n');
        let effects = v.m.fsync_failed(v.f, true, FsyncFailure::Ext4, seed);
        let effects = effects.expect("failed fsync");
        v.store.apply_all(&effects.0);
        (effects, v.cut(Policy::DropAll))
    };
    let mut seen = std::collections::BTreeSet::new();
    for seed in 0..32 {
        let (a, b) = (run(seed), run(seed));
        assert_eq!(a, b, "seed {seed}");
        assert!(!a.0.1.failed.is_empty(), "seed {seed}: one page fails");
        seen.insert(a.0.1.written.clone());
    }
    assert!(seen.len() > 8, "only {} patterns", seen.len());
    let all: Vec<u64> = (0..3).collect();
    for seed in 0..64 {
        assert!(written_pages(&all, seed).contains(&false));
    }
}

#[test]
fn a_failed_appends_size_follows_size_commits() {
    // Page 1 is written, page 2 (the new last page) fails.
    let seed = seed_for(&[true, false]);
    for sem in FsyncFailure::ALL.into_iter().filter(|s| !s.rules().whole) {
        let mut v = Vol::new(Persistence::Posix, &pages(b"o"));
        v.fill(P, 2 * P, b'n');
        v.fail(sem, seed);
        let rules = sem.rules();
        let live = if rules.read_new { b"onn" } else { b"on\0" };
        assert_eq!(v.live(), pages(live), "{sem}: reads");
        let drop = v.cut(Policy::DropAll);
        let keep = v.cut(Policy::KeepAll);
        if rules.size_commits {
            assert_eq!(drop, pages(b"on\0"), "{sem}: size committed");
        } else {
            assert_eq!(drop, pages(b"on"), "{sem}: the written page's end");
        }
        let kept: &[u8] = match (rules.marks_clean, rules.size_commits) {
            (false, _) => b"onn",
            (true, true) => b"on\0",
            (true, false) => b"on",
        };
        assert_eq!(keep, pages(kept), "{sem}: keep-all");
    }
    // All of an append failing leaves the old size where it does not commit.
    let mut v = Vol::new(Persistence::Posix, &pages(b"o"));
    v.fill(P, P, b'n');
    v.fail(FsyncFailure::Xfs, seed_for(&[false]));
    assert_eq!(v.cut(Policy::DropAll), pages(b"o"));
    assert_eq!(v.live(), pages(b"on"));
}

/// Everything observable of a model: pending operations, report, live tree.
fn state(v: &Vol) -> String {
    format!(
        "{:?}\n{:?}\n{:?}\n{}",
        v.m.pending_ops(),
        v.m.report(),
        live_tree(&v.m, &v.store),
        v.m.dirty_bytes()
    )
}

#[test]
fn a_store_failure_puts_the_file_back() {
    let seed = seed_for(&[true, false, true]);
    for sem in FsyncFailure::ALL {
        let mut v = Vol::new(Persistence::Ext4, &pages(b"ooo"));
        v.fill(0, 3 * P, b'n');
        v.fill(3 * P, 100, b'z');
        let before = state(&v);
        let r =
            v.m.fsync_failed_applied(v.f, false, sem, seed, |_| Err("EIO"));
        assert_eq!(r, Ok(Err("EIO")));
        assert_eq!(state(&v), before, "{sem}");
        v.fsync();
        assert_eq!(file_of(&v.store), v.live(), "{sem}");
    }
}

#[test]
fn a_failed_fsync_commits_no_name_nor_attribute() {
    for p in [Persistence::Ext4, Persistence::Btrfs] {
        let m = Model::new(
            Config {
                persistence: p,
                ..Config::default()
            },
            Attrs::default(),
        );
        let f = m
            .create(ROOT, b"f", Kind::File, Attrs::default(), None)
            .expect("create")
            .ino;
        m.write(f, 0, Bytes::from(vec![1u8; 3 * P]), t())
            .expect("write");
        let set = SetAttrs {
            mode: Some(0o600),
            ..SetAttrs::default()
        };
        m.setattr(f, set, t()).expect("chmod");
        m.fsync_failed(f, false, FsyncFailure::Ext4, 1)
            .expect("failed fsync");
        let pending = m.pending_ops();
        assert!(
            pending.iter().any(|p| matches!(p.op, Op::Names { .. })),
            "{p}: {pending:?}"
        );
        assert!(
            pending.iter().any(|p| matches!(p.op, Op::SetAttrs { .. })),
            "{p}: {pending:?}"
        );
    }
}

#[test]
fn nothing_dirty_or_not_a_file_changes_nothing() {
    let mut v = Vol::new(Persistence::Posix, &pages(b"o"));
    let before = state(&v);
    assert_eq!(v.fail(FsyncFailure::Ext4, 3), FailedFsync::default());
    assert_eq!(state(&v), before);
    let (e, r) =
        v.m.fsync_failed(ROOT, false, FsyncFailure::Strict, 3)
            .expect("a directory");
    assert!(e.is_empty());
    assert_eq!(r, FailedFsync::default());
}

// The property test: a file of `NP` pages, written, punched, fsynced and
// failed at random, against a page-by-page reference.

const NP: usize = 4;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Page {
    /// Live bytes are durable.
    Clean,
    /// Written since last durable: pending.
    Dirty,
    /// A failed fsync marked it clean: live bytes not durable, not pending.
    Failed,
}

#[derive(Clone, Debug)]
enum Step {
    Write(usize, usize, u8),
    Punch(usize, usize),
    Fsync(bool),
    Fail(usize, u64),
}

struct Ref {
    live: Vec<u8>,
    durable: Vec<u8>,
    state: [Page; NP],
}

impl Ref {
    fn change(&mut self, off: usize, len: usize, byte: u8) {
        let end = (off + len).min(NP * P);
        for p in off / P..end.div_ceil(P) {
            self.state[p] = Page::Dirty;
        }
        self.live[off..end].fill(byte);
    }

    fn fsync(&mut self) {
        for p in 0..NP {
            if self.state[p] == Page::Dirty {
                self.durable[p * P..(p + 1) * P].copy_from_slice(&self.live[p * P..(p + 1) * P]);
                self.state[p] = Page::Clean;
            }
        }
    }

    fn fail(&mut self, sem: FsyncFailure, seed: u64) {
        let dirty: Vec<u64> = (0..NP as u64)
            .filter(|p| self.state[*p as usize] == Page::Dirty)
            .collect();
        let rules = sem.rules();
        for (p, w) in dirty.iter().zip(sem.rules().written(&dirty, seed)) {
            let (p, r) = (*p as usize, *p as usize * P..(*p as usize + 1) * P);
            if w {
                self.durable[r.clone()].copy_from_slice(&self.live[r]);
                self.state[p] = Page::Clean;
            } else if !rules.read_new {
                self.live[r.clone()].copy_from_slice(&self.durable[r]);
                self.state[p] = Page::Clean;
            } else if rules.marks_clean {
                self.state[p] = Page::Failed;
            }
        }
    }

    fn keep_all(&self) -> Vec<u8> {
        let mut out = self.durable.clone();
        for p in (0..NP).filter(|p| self.state[*p] == Page::Dirty) {
            out[p * P..(p + 1) * P].copy_from_slice(&self.live[p * P..(p + 1) * P]);
        }
        out
    }
}

fn step() -> impl Strategy<Value = Step> {
    let at = 0..NP * P;
    prop_oneof![
        5 => (at.clone(), 1usize..6000, any::<u8>()).prop_map(|(o, l, b)| Step::Write(o, l, b)),
        1 => (at, 1usize..3000).prop_map(|(o, l)| Step::Punch(o, l)),
        2 => any::<bool>().prop_map(Step::Fsync),
        3 => (0usize..4, any::<u64>()).prop_map(|(s, seed)| Step::Fail(s, seed)),
    ]
}

fn run_case(p: Persistence, steps: &[Step]) {
    let start: Vec<u8> = (0..NP * P).map(|i| (i % 251) as u8).collect();
    let mut v = Vol::new(p, &start);
    let mut r = Ref {
        live: start.clone(),
        durable: start,
        state: [Page::Clean; NP],
    };
    for s in steps {
        match *s {
            Step::Write(off, len, byte) => {
                let len = len.min(NP * P - off);
                v.fill(off, len, byte);
                r.change(off, len, byte);
            }
            Step::Punch(off, len) => {
                v.m.fallocate(v.f, off as u64, len as u64, Fallocate::PunchHole, t())
                    .expect("punch");
                r.change(off, len, 0);
            }
            Step::Fsync(datasync) => {
                let e = v.m.fsync(v.f, datasync).expect("fsync");
                v.store.apply_all(&e);
                r.fsync();
            }
            Step::Fail(sem, seed) => {
                let sem = FsyncFailure::ALL[sem];
                v.fail(sem, seed);
                r.fail(sem, seed);
            }
        }
        assert_eq!(v.live(), r.live, "live view after {s:?}");
        assert_eq!(file_of(&v.store), r.durable, "durable view after {s:?}");
        assert_eq!(v.cut(Policy::DropAll), r.durable, "drop-all after {s:?}");
        assert_eq!(v.cut(Policy::KeepAll), r.keep_all(), "keep-all after {s:?}");
        assert_eq!(
            v.m.dirty_bytes(),
            v.pending_bytes(),
            "dirty count after {s:?}"
        );
    }
    // No crash state shows a byte of a page that is clean or marked clean
    // other than its durable bytes.
    let pending = v.m.pending_ops();
    let opts = EnumOptions {
        cap: 60,
        ..EnumOptions::default()
    }
    .under(p);
    for st in enumerate(&pending, &opts) {
        let mut s = v.store.clone();
        s.apply_all(&st.effects(&pending));
        let got = file_of(&s);
        for pg in (0..NP).filter(|pg| r.state[*pg] != Page::Dirty) {
            assert_eq!(
                got[pg * P..(pg + 1) * P],
                r.durable[pg * P..(pg + 1) * P],
                "page {pg} ({:?}) in {st}",
                r.state[pg]
            );
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn failed_fsyncs_match_the_page_reference(
        p in 0usize..4,
        steps in proptest::collection::vec(step(), 1..30),
    ) {
        let p = [Persistence::Posix, Persistence::Ext4, Persistence::Xfs, Persistence::Btrfs][p];
        run_case(p, &steps);
    }
}

/// Measured on btrfs (docs/fsync-failures-evidence.md, rows b–d): with one
/// page of the call failing, none is durable; the new bytes stay readable;
/// a failed append leaves the old size.
#[test]
fn btrfs_fails_every_page_of_the_call() {
    let seed = seed_for(&[true, false, true]);
    let mut v = Vol::new(Persistence::Posix, &pages(b"oo"));
    v.fill(0, 3 * P, b'n');
    let r = v.fail(FsyncFailure::Btrfs, seed);
    assert_eq!(r.written, vec![]);
    assert_eq!(v.live(), pages(b"nnn"), "readable until evicted");
    assert_eq!(
        v.cut(Policy::KeepAll),
        pages(b"oo"),
        "nothing durable, old size"
    );
}

/// Regression (`durafs calibrate --fsync-failures`, xfs): after a failed
/// append, a later fsync that wrote no page past the old size left the
/// live size durable, the failed page as zeros; xfs keeps the old size.
#[test]
fn regression_xfs_a_later_fsync_keeps_a_failed_appends_old_size() {
    let seed = seed_for(&[false]);
    let mut v = Vol::new(Persistence::Posix, &pages(b"o"));
    v.fill(P, P, b'n');
    v.fail(FsyncFailure::Xfs, seed);
    v.fill(0, 100, b'r');
    v.fsync();
    let mut want = pages(b"o");
    want[..100].fill(b'r');
    assert_eq!(
        v.cut(Policy::KeepAll),
        want,
        "the old size, the rewrite durable"
    );
}

/// Regression (`durafs calibrate --fsync-failures`, btrfs): the size moves
/// to the live size only with a later fsync that writes data.
#[test]
fn regression_btrfs_a_retry_that_writes_nothing_keeps_the_old_size() {
    let seed = seed_for(&[false]);
    let mut v = Vol::new(Persistence::Posix, &pages(b"o"));
    v.fill(P, P, b'n');
    v.fail(FsyncFailure::Btrfs, seed);
    v.fsync();
    assert_eq!(
        v.cut(Policy::KeepAll),
        pages(b"o"),
        "the retry wrote nothing"
    );
    v.fill(0, 100, b'r');
    v.fsync();
    let mut want = pages(b"o\0");
    want[..100].fill(b'r');
    assert_eq!(
        v.cut(Policy::KeepAll),
        want,
        "a write moves it to the live size"
    );
}

/// Regression (`durafs calibrate --fsync-failures`, ext4): a failed
/// appended page rewritten and fsynced (0) reads back as zeros: its extent
/// stays unwritten. A failed page inside the old size is rewritten durably.
#[test]
fn regression_ext4_a_rewrite_of_a_failed_appended_page_never_reads_back() {
    let seed = seed_for(&[false, false]);
    let mut v = Vol::new(Persistence::Posix, &pages(b"o"));
    v.fill(0, 2 * P, b'n');
    v.fail(FsyncFailure::Ext4, seed);
    v.fill(0, 2 * P, b'r');
    v.fsync();
    assert_eq!(
        v.live(),
        pages(b"rr"),
        "reads see the rewrite until evicted"
    );
    assert_eq!(v.cut(Policy::KeepAll), pages(b"r\0"));
}
