//! The demo's claims, checked with the demo's own code: each vulnerable
//! setting loses acknowledged puts in some crash state, each crash-safe
//! setting loses none in every state tried (including every enumerated
//! state at the end of the workload).

use durafs::model::crash::{CrashOptions, Policy};
use durafs::model::{FsyncFailure, Persistence};
use durafs_engines::KvStore;
use durafs_engines::log_hash::{LogHash, LogHashOptions};
use durafs_tools::demo::rows::{self, Row};
use durafs_tools::demo::trial::{self, Choice, Workload};
use durafs_tools::demo::{Plan, RowResult, run_row};

fn plan() -> Plan {
    Plan {
        work: Workload {
            puts: 120,
            maintain_every: 30,
            value_len: 100,
            model: Persistence::Posix,
            fsync_failure: FsyncFailure::Ext4,
        },
        points: 3,
        seeds: 1,
        enum_cap: 16,
        threads: 1,
        ..Plan::default()
    }
}

fn row(engine: &str, setting: &str) -> (usize, Row) {
    rows::all()
        .into_iter()
        .enumerate()
        .find(|(_, r)| r.engine == engine && r.setting == setting)
        .unwrap_or_else(|| panic!("no row {engine} / {setting}"))
}

fn measure(engine: &str, setting: &str) -> RowResult {
    let (i, r) = row(engine, setting);
    run_row(i, &r, &plan(), &|_| {}).unwrap_or_else(|e| panic!("{engine} / {setting}: {}", e.0))
}

/// Acknowledged puts lost by one cut with `policy` after the whole workload.
fn lost_after(engine: &str, setting: &str, policy: Policy) -> usize {
    let (_, r) = row(engine, setting);
    let work = plan().work;
    let choice = Choice::Policy(CrashOptions {
        policy,
        ..CrashOptions::default()
    });
    let o = trial::run(&r, None, &work, work.puts, &choice).unwrap_or_else(|e| panic!("{}", e.0));
    assert_eq!(o.acked, work.puts);
    o.lost
}

#[test]
fn lsm_with_the_vulnerable_wal_loses_acknowledged_puts_under_drop_all() {
    assert!(lost_after("lsm", "wal flush only", Policy::DropAll) > 0);
    assert!(lost_after("lsm", "flush (analysis)", Policy::DropAll) > 0);
}

#[test]
fn sstable_unsynced_with_a_safe_wal_loses_data_when_the_wal_truncate_survives() {
    // meta-first keeps the WAL's truncation (a size change) and drops the
    // SSTable's unsynced bytes.
    assert!(lost_after("lsm", "sstable flush only", Policy::MetaFirst) > 0);
}

#[test]
fn lsm_flush_without_an_atomic_commit_loses_data_or_cannot_recover() {
    let r = measure("lsm", "flush order only");
    assert!(r.states_lost + r.recovery_errors > 0, "{r:?}");
}

#[test]
fn log_hash_vulnerable_loses_a_put_whose_offset_was_returned() {
    let mut v = durafs_tests::Vol::new(durafs::model::Persistence::Posix);
    let dir = v.p("store");
    let opts = LogHashOptions {
        durability: durafs_engines::Durability::Flush,
        ..LogHashOptions::default()
    };
    let mut s = LogHash::open(&dir, opts).expect("open");
    s.put(b"before", b"x").expect("put");
    // Everything so far durable: what follows is the window alone.
    v.fs().sync().expect("sync");
    let pos = s.put_at(b"acked", b"acknowledged value").expect("put_at");
    assert_eq!(
        s.get(b"acked").expect("get").as_deref(),
        Some(&b"acknowledged value"[..])
    );
    v.cut(Policy::DropAll);
    drop(s);
    v.remount();
    let mut s = LogHash::open(&dir, opts).expect("recover");
    assert_eq!(s.get(b"before").expect("get").as_deref(), Some(&b"x"[..]));
    assert_eq!(
        s.get(b"acked").expect("get"),
        None,
        "acked at {pos:?}, gone"
    );
}

#[test]
fn hash_index_loses_acknowledged_writes_only_without_sync_writes() {
    let unsafe_row = measure("hash_index", "sync_writes=false");
    assert!(unsafe_row.states_lost > 0, "{unsafe_row:?}");
    let safe_row = measure("hash_index", "sync_writes=true");
    assert_eq!(
        (safe_row.states_lost, safe_row.recovery_errors),
        (0, 0),
        "{safe_row:?}"
    );
}

#[test]
fn btree_loses_nothing_with_its_wal_fsync_and_loses_without() {
    let flush = measure("btree", "flush");
    assert!(flush.states_lost > 0, "{flush:?}");
    let fsync = measure("btree", "fsync (analysis)");
    assert_eq!(
        (fsync.states_lost, fsync.recovery_errors),
        (0, 0),
        "{fsync:?}"
    );
}

/// The demo's rows, the fsync-error rows among them.
fn every_row() -> Vec<Row> {
    let rows = rows::all();
    assert!(
        rows.iter().any(|r| r.setting == rows::RETRY_SETTING),
        "the demo shows the fsync-error rows"
    );
    rows
}

/// Every row under `model`: vulnerable settings lose acknowledged puts,
/// crash-safe ones lose nothing.
fn every_row_as_expected_under(model: Persistence) {
    let mut plan = plan();
    plan.work.model = model;
    for (i, r) in every_row().into_iter().enumerate() {
        let res = run_row(i, &r, &plan, &|_| {})
            .unwrap_or_else(|e| panic!("{} / {}: {}", r.engine, r.setting, e.0));
        assert!(res.states_tried > 0);
        if r.safe {
            assert_eq!(
                (res.states_lost, res.recovery_errors),
                (0, 0),
                "{model}: crash-safe {} / {}: {res:?}",
                r.engine,
                r.setting
            );
        } else {
            assert!(
                res.states_lost > 0,
                "{model}: vulnerable {} / {} lost nothing: {res:?}",
                r.engine,
                r.setting
            );
        }
        assert!(res.as_expected());
    }
}

#[test]
fn every_vulnerable_setting_loses_and_every_crash_safe_setting_loses_nothing() {
    every_row_as_expected_under(Persistence::Posix);
}

#[test]
fn under_the_ext4_model_too() {
    every_row_as_expected_under(Persistence::Ext4);
}

#[test]
fn under_the_xfs_model_too() {
    every_row_as_expected_under(Persistence::Xfs);
}

/// btrfs keeps data in whole pages and a write's size only with its data:
/// the vulnerable rows must still lose (a lost fsync is still lost).
#[test]
fn under_the_btrfs_model_too() {
    every_row_as_expected_under(Persistence::Btrfs);
}

/// One trial of fsync-error row `setting` (its fault armed): `cut_after`
/// puts of workload `work`, then a cut with `policy`.
fn fsync_error_trial(
    setting: &str,
    work: &Workload,
    cut_after: usize,
    policy: Policy,
) -> trial::Outcome {
    let r = rows::fsync_errors()
        .into_iter()
        .find(|r| r.setting == setting)
        .unwrap_or_else(|| panic!("no fsync-error row {setting}"));
    assert!(r.fault.is_some());
    let choice = Choice::Policy(CrashOptions {
        policy,
        ..CrashOptions::default()
    });
    let o = trial::run(&r, None, work, cut_after, &choice).unwrap_or_else(|e| panic!("{}", e.0));
    assert_eq!(o.acked + o.refused, cut_after, "{setting}: {o:?}");
    o
}

#[test]
fn a_failed_fsync_poisons_the_crash_safe_lsm_which_loses_nothing() {
    for policy in [Policy::DropAll, Policy::MetaFirst, Policy::Random] {
        let work = plan().work;
        let o = fsync_error_trial("fsync + poison on error", &work, work.puts, policy);
        // The first memtable flush's table fsync failed: the flush failed,
        // and every put after it was refused (the store refuses writes
        // until reopened); the WAL still held the memtable's puts.
        assert!(o.acked > 0 && o.refused > 0, "{o:?}");
        assert_eq!((o.lost, &o.recovery_error), (0, &None), "{o:?}");
    }
}

/// The workload but its last 10 puts under `fsync_failure`, then a cut:
/// tables' fsyncs failed, yet the flushes truncated the WAL and the
/// compactions deleted the tables merged.
fn after_failed_flushes(setting: &str, fsync_failure: FsyncFailure) -> trial::Outcome {
    let work = Workload {
        fsync_failure,
        ..plan().work
    };
    let o = fsync_error_trial(setting, &work, work.puts - 10, Policy::DropAll);
    assert_eq!(o.refused, 0, "{setting}: every put acknowledged: {o:?}");
    o
}

/// Ignoring the error: nothing ever makes the tables' pages durable, yet
/// the manifest names them and the WAL is truncated.
#[test]
fn ignoring_a_failed_fsync_loses_acknowledged_puts() {
    let o = after_failed_flushes("fsync + ignore error", FsyncFailure::Ext4);
    assert!(o.lost > 0, "{o:?}");
}

/// Under ext4's semantics for a failed fsync (pages marked clean, a retry
/// returns 0, the data lost at the cut), retrying acknowledges puts that a
/// cut then loses, as PostgreSQL's did before 2018.
#[test]
fn retrying_a_failed_fsync_loses_acknowledged_puts_under_ext4_semantics() {
    let o = after_failed_flushes(rows::RETRY_SETTING, FsyncFailure::Ext4);
    assert!(o.lost > 0, "{o:?}");
}

/// The same retry loses nothing where a failed fsync keeps its pages dirty
/// (`strict`, what the retrying program assumed): the loss is ext4's
/// marking the failed pages clean.
#[test]
fn retrying_a_failed_fsync_loses_nothing_under_strict_semantics() {
    let o = after_failed_flushes(rows::RETRY_SETTING, FsyncFailure::Strict);
    assert_eq!((o.lost, &o.recovery_error), (0, &None), "{o:?}");
}
