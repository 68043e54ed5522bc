//! Tests of the whole tree: a model check per setting, torn and damaged
//! files, and every leftover a crash of the crash-safe form can produce.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::Path;

use proptest::collection::vec;
use proptest::prelude::*;

use super::manifest::{MANIFEST_FILE, MANIFEST_TMP_FILE, table_file_name};
use super::wal::WAL_FILE;
use super::*;
use crate::OnSyncError;
use crate::frame;
use crate::sstable::{MAX_KEY_LEN, MAX_VALUE_LEN};
use Durability::Flush;
const FSYNC: Durability = Durability::FSYNC;

fn key(k: u8) -> Vec<u8> {
    format!("key{k:02}").into_bytes()
}

/// `opts` with a small memtable and early compaction, so that short runs
/// flush and compact on their own.
fn small(opts: LsmOptions) -> LsmOptions {
    LsmOptions {
        memtable_bytes: 400,
        compact_after: 3,
        ..opts
    }
}

/// `opts` with a memtable that never fills during a test.
fn big(opts: LsmOptions) -> LsmOptions {
    LsmOptions {
        memtable_bytes: 1 << 30,
        compact_after: 1 << 20,
        ..opts
    }
}

fn mixed(wal: Durability, sstable: Durability, flush_order: Durability) -> LsmOptions {
    LsmOptions {
        wal,
        sstable,
        flush_order,
        ..LsmOptions::all(FSYNC)
    }
}

fn sst_files(dir: &Path) -> BTreeSet<String> {
    fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".sst"))
        .collect()
}

fn assert_only_live_tables(db: &Lsm, dir: &Path) {
    let live: BTreeSet<String> = db
        .table_ids()
        .iter()
        .map(|&id| table_file_name(id))
        .collect();
    assert_eq!(sst_files(dir), live);
}

fn assert_corrupt<T: std::fmt::Debug>(r: Result<T>, what: &str) {
    match r {
        Err(Error::Corrupt(_)) => {}
        other => panic!("{what}: expected Corrupt, got {other:?}"),
    }
}

/// File name -> content.
type Snapshot = BTreeMap<String, Vec<u8>>;
/// Key -> value of the live entries.
type Model = BTreeMap<Vec<u8>, Vec<u8>>;

fn snapshot(dir: &Path) -> Snapshot {
    fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (
                e.file_name().into_string().unwrap(),
                fs::read(e.path()).unwrap(),
            )
        })
        .collect()
}

/// Puts back the named files as they were in `snap`.
fn restore(dir: &Path, snap: &Snapshot, names: &[&str]) {
    for n in names {
        fs::write(dir.join(n), &snap[*n]).unwrap();
    }
}

fn copy_dir(from: &Path, to: &Path) {
    for (name, bytes) in snapshot(from) {
        fs::write(to.join(name), bytes).unwrap();
    }
}

// ---------------------------------------------------------------- model --

#[derive(Clone, Debug)]
enum Op {
    Put(u8, Vec<u8>),
    Delete(u8),
    Maintain,
    Reopen,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => (0u8..32, vec(any::<u8>(), 0..48)).prop_map(|(k, v)| Op::Put(k, v)),
        3 => (0u8..32).prop_map(Op::Delete),
        1 => Just(Op::Maintain),
        1 => Just(Op::Reopen),
    ]
}

fn check_all(db: &mut Lsm, model: &Model) -> std::result::Result<(), TestCaseError> {
    for k in 0..32 {
        prop_assert_eq!(db.get(&key(k)).unwrap(), model.get(&key(k)).cloned());
    }
    let want: Vec<(Vec<u8>, Vec<u8>)> = model.clone().into_iter().collect();
    prop_assert_eq!(db.scan().unwrap(), want);
    Ok(())
}

/// Drives the tree and a `BTreeMap` with the same operations; they must agree
/// after every step, and the directory must hold only the live tables.
fn run_model(opts: LsmOptions, ops: &[Op]) -> std::result::Result<(), TestCaseError> {
    let dir = tempfile::tempdir().unwrap();
    let mut db = Box::new(Lsm::open(dir.path(), opts).unwrap());
    let mut model = BTreeMap::new();
    for op in ops {
        match op {
            Op::Put(k, v) => {
                db.put(&key(*k), v).unwrap();
                model.insert(key(*k), v.clone());
                prop_assert_eq!(db.get(&key(*k)).unwrap(), Some(v.clone()));
            }
            Op::Delete(k) => {
                db.delete(&key(*k)).unwrap();
                model.remove(&key(*k));
                prop_assert_eq!(db.get(&key(*k)).unwrap(), None);
            }
            Op::Maintain => {
                db.maintain().unwrap();
                prop_assert_eq!(db.memtable_len(), 0);
                prop_assert!(db.table_ids().len() <= 1);
                prop_assert_eq!(fs::metadata(dir.path().join(WAL_FILE)).unwrap().len(), 0);
                check_all(&mut db, &model)?;
            }
            Op::Reopen => {
                db.close().unwrap();
                db = Box::new(Lsm::open(dir.path(), opts).unwrap());
                check_all(&mut db, &model)?;
            }
        }
        prop_assert!(db.table_ids().len() <= opts.compact_after);
        assert_only_live_tables(&db, dir.path());
    }
    check_all(&mut db, &model)?;
    db.close().unwrap();
    let mut db = Lsm::open(dir.path(), opts).unwrap();
    check_all(&mut db, &model)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    #[test]
    fn model_all_flush(ops in vec(op(), 1..80)) {
        run_model(small(LsmOptions::all(Flush)), &ops)?;
    }

    #[test]
    fn model_all_fsync(ops in vec(op(), 1..80)) {
        run_model(small(LsmOptions::all(FSYNC)), &ops)?;
    }

    #[test]
    fn model_wal_fsync_sstable_flush(ops in vec(op(), 1..80)) {
        run_model(small(mixed(FSYNC, Flush, FSYNC)), &ops)?;
    }

    #[test]
    fn model_wal_flush_only(ops in vec(op(), 1..80)) {
        run_model(small(mixed(Flush, FSYNC, FSYNC)), &ops)?;
    }

    #[test]
    fn model_flush_order_flush_only(ops in vec(op(), 1..80)) {
        run_model(small(mixed(FSYNC, FSYNC, Flush)), &ops)?;
    }
}

// ------------------------------------------------------ torn / damaged --

/// A tree with one table and a WAL of three records, the last of which
/// overwrites `a` with [`last_a`]. Returns the WAL bytes and where its last
/// record starts.
/// The value of the WAL's last record: it holds encoded frames, so a cut
/// record's partial body looks like valid records.
fn last_a() -> Vec<u8> {
    crate::segment::testkit::value_holding_a_frame()
}

fn tree_with_overwrite_last(dir: &Path, opts: LsmOptions) -> (Vec<u8>, usize) {
    let mut db = Lsm::open(dir, opts).unwrap();
    db.put(b"in-table", b"t").unwrap();
    db.put(b"a", b"from-table").unwrap();
    db.maintain().unwrap();
    db.put(b"a", b"old").unwrap();
    db.put(b"b", b"1").unwrap();
    db.put(b"a", &last_a()).unwrap();
    drop(db);
    let wal = fs::read(dir.join(WAL_FILE)).unwrap();
    let last = frame::scan(&wal, "t").unwrap().records.last().unwrap().0 as usize;
    (wal, last)
}

fn torn_wal_tail(opts: LsmOptions) {
    let src = tempfile::tempdir().unwrap();
    let (wal, last) = tree_with_overwrite_last(src.path(), opts);
    for cut in last..=wal.len() {
        let dir = tempfile::tempdir().unwrap();
        copy_dir(src.path(), dir.path());
        fs::write(dir.path().join(WAL_FILE), &wal[..cut]).unwrap();
        let complete = cut == wal.len();
        let mut db = Box::new(Lsm::open(dir.path(), opts).unwrap());
        let want_a: Vec<u8> = if complete { last_a() } else { b"old".to_vec() };
        assert_eq!(db.get(b"a").unwrap(), Some(want_a.clone()), "cut at {cut}");
        assert_eq!(db.get(b"b").unwrap().as_deref(), Some(&b"1"[..]));
        assert_eq!(db.get(b"in-table").unwrap().as_deref(), Some(&b"t"[..]));
        let wal_len = fs::metadata(dir.path().join(WAL_FILE)).unwrap().len();
        assert_eq!(wal_len as usize, if complete { cut } else { last });
        db.put(b"c", b"after").unwrap();
        db.close().unwrap();
        let mut db = Lsm::open(dir.path(), opts).unwrap();
        assert_eq!(
            db.get(b"c").unwrap().as_deref(),
            Some(&b"after"[..]),
            "cut at {cut}"
        );
        assert_eq!(db.get(b"a").unwrap(), Some(want_a));
    }
}

#[test]
fn torn_wal_tail_at_every_offset_all_flush() {
    torn_wal_tail(big(LsmOptions::all(Flush)));
}

#[test]
fn torn_wal_tail_at_every_offset_all_fsync() {
    torn_wal_tail(big(LsmOptions::all(FSYNC)));
}

#[test]
fn torn_wal_tail_at_every_offset_mixed() {
    torn_wal_tail(big(mixed(FSYNC, Flush, Flush)));
}

#[test]
fn flipped_byte_in_an_earlier_wal_record_is_corruption() {
    let src = tempfile::tempdir().unwrap();
    let opts = big(LsmOptions::all(FSYNC));
    let (wal, last) = tree_with_overwrite_last(src.path(), opts);
    for at in 0..last {
        let dir = tempfile::tempdir().unwrap();
        copy_dir(src.path(), dir.path());
        let mut bad = wal.clone();
        bad[at] ^= 0x01;
        fs::write(dir.path().join(WAL_FILE), &bad).unwrap();
        assert_corrupt(Lsm::open(dir.path(), opts), &format!("flip at {at}"));
    }
}

#[test]
fn flipped_byte_in_a_table_is_corruption() {
    let src = tempfile::tempdir().unwrap();
    let opts = big(LsmOptions::all(FSYNC));
    tree_with_overwrite_last(src.path(), opts);
    let name = table_file_name(1);
    let table = fs::read(src.path().join(&name)).unwrap();
    for at in 0..table.len() {
        let dir = tempfile::tempdir().unwrap();
        copy_dir(src.path(), dir.path());
        let mut bad = table.clone();
        bad[at] ^= 0x20;
        fs::write(dir.path().join(&name), &bad).unwrap();
        assert_corrupt(Lsm::open(dir.path(), opts), &format!("flip at {at}"));
    }
}

// ------------------------------------------------ crash-safe leftovers --

fn filled(dir: &Path, opts: LsmOptions) -> (Lsm, Model) {
    let mut db = Lsm::open(dir, opts).unwrap();
    let mut model = BTreeMap::new();
    for i in 0..20u8 {
        db.put(&key(i), &[i; 10]).unwrap();
        model.insert(key(i), vec![i; 10]);
    }
    (db, model)
}

fn assert_contents(db: &mut Lsm, model: &Model) {
    let want: Vec<(Vec<u8>, Vec<u8>)> = model.clone().into_iter().collect();
    assert_eq!(db.scan().unwrap(), want);
    for (k, v) in model {
        assert_eq!(db.get(k).unwrap().as_ref(), Some(v));
    }
}

#[test]
fn recovery_removes_manifest_tmp_and_unnamed_tables() {
    let dir = tempfile::tempdir().unwrap();
    let opts = big(LsmOptions::all(FSYNC));
    let (mut db, model) = filled(dir.path(), opts);
    db.maintain().unwrap();
    drop(db);
    fs::write(dir.path().join(MANIFEST_TMP_FILE), b"half a manifest").unwrap();
    let mut ghost = SSTableWriter::create(&dir.path().join(table_file_name(7)), FSYNC).unwrap();
    ghost.add(b"ghost", Some(b"boo")).unwrap();
    ghost.finish().unwrap();
    fs::write(dir.path().join(table_file_name(8)), b"torn table").unwrap();
    fs::write(dir.path().join("notes.txt"), b"not ours").unwrap();

    let mut db = Lsm::open(dir.path(), opts).unwrap();
    assert_eq!(db.get(b"ghost").unwrap(), None);
    assert_contents(&mut db, &model);
    assert!(!dir.path().join(MANIFEST_TMP_FILE).exists());
    assert_only_live_tables(&db, dir.path());
    assert!(dir.path().join("notes.txt").exists());
}

#[test]
fn crash_before_flush_commit_leaves_an_unnamed_table() {
    let dir = tempfile::tempdir().unwrap();
    let opts = big(LsmOptions::all(FSYNC));
    let (mut db, model) = filled(dir.path(), opts);
    let before = snapshot(dir.path());
    db.flush().unwrap();
    drop(db);
    // Table written, manifest not yet replaced: old manifest (none), full WAL.
    fs::remove_file(dir.path().join(MANIFEST_FILE)).unwrap();
    restore(dir.path(), &before, &[WAL_FILE]);
    let mut db = Lsm::open(dir.path(), opts).unwrap();
    assert!(db.table_ids().is_empty());
    assert_eq!(sst_files(dir.path()).len(), 0);
    assert_contents(&mut db, &model);
}

#[test]
fn crash_between_flush_commit_and_wal_truncate_replays_harmlessly() {
    let dir = tempfile::tempdir().unwrap();
    let opts = big(LsmOptions::all(FSYNC));
    let (mut db, mut model) = filled(dir.path(), opts);
    db.flush().unwrap();
    db.delete(&key(3)).unwrap();
    db.put(&key(4), b"newer").unwrap();
    model.remove(&key(3));
    model.insert(key(4), b"newer".to_vec());
    let before = snapshot(dir.path());
    db.flush().unwrap();
    drop(db);
    restore(dir.path(), &before, &[WAL_FILE]);
    let mut db = Lsm::open(dir.path(), opts).unwrap();
    assert_eq!(db.table_ids().len(), 2);
    assert_eq!(db.memtable_len(), 2);
    assert_contents(&mut db, &model);
    db.maintain().unwrap();
    drop(db);
    let mut db = Lsm::open(dir.path(), opts).unwrap();
    assert_contents(&mut db, &model);
}

/// Two tables, a snapshot taken, then a compaction.
fn compacted(dir: &Path, opts: LsmOptions) -> (Snapshot, Model) {
    let (mut db, mut model) = filled(dir, opts);
    db.flush().unwrap();
    for i in 0..10u8 {
        db.delete(&key(i)).unwrap();
        model.remove(&key(i));
    }
    db.put(&key(15), b"second").unwrap();
    model.insert(key(15), b"second".to_vec());
    db.flush().unwrap();
    assert_eq!(db.table_ids(), [1, 2]);
    let before = snapshot(dir);
    db.maintain().unwrap();
    assert_eq!(db.table_ids(), [3]);
    assert_contents(&mut db, &model);
    (before, model)
}

#[test]
fn crash_before_compaction_commit_leaves_an_unnamed_table() {
    let dir = tempfile::tempdir().unwrap();
    let opts = big(LsmOptions::all(FSYNC));
    let (before, model) = compacted(dir.path(), opts);
    let names = [MANIFEST_FILE, "000001.sst", "000002.sst"];
    restore(dir.path(), &before, &names);
    let mut db = Lsm::open(dir.path(), opts).unwrap();
    assert_eq!(db.table_ids(), [1, 2]);
    assert_only_live_tables(&db, dir.path());
    assert_contents(&mut db, &model);
}

#[test]
fn crash_after_compaction_commit_before_deletes_removes_old_tables() {
    let dir = tempfile::tempdir().unwrap();
    let opts = big(LsmOptions::all(FSYNC));
    let (before, model) = compacted(dir.path(), opts);
    restore(dir.path(), &before, &["000001.sst", "000002.sst"]);
    let mut db = Lsm::open(dir.path(), opts).unwrap();
    assert_eq!(db.table_ids(), [3]);
    assert_only_live_tables(&db, dir.path());
    assert_contents(&mut db, &model);
}

// ------------------------------------- what the vulnerable forms leave --

#[test]
fn manifest_naming_a_missing_table_is_corruption() {
    let dir = tempfile::tempdir().unwrap();
    let opts = big(LsmOptions::all(Flush));
    let (mut db, _) = filled(dir.path(), opts);
    db.maintain().unwrap();
    drop(db);
    fs::remove_file(dir.path().join(table_file_name(1))).unwrap();
    assert_corrupt(Lsm::open(dir.path(), opts), "missing table");
}

/// `sstable: Flush` with an ordered flush: the WAL is durably empty while the
/// table may still be in the page cache (analysis point 3). A power cut then
/// leaves a short table, which recovery must report, not read.
#[test]
fn wal_truncated_table_incomplete_is_corruption() {
    let dir = tempfile::tempdir().unwrap();
    let opts = big(mixed(FSYNC, Flush, FSYNC));
    let (mut db, _) = filled(dir.path(), opts);
    db.maintain().unwrap();
    drop(db);
    assert_eq!(fs::metadata(dir.path().join(WAL_FILE)).unwrap().len(), 0);
    let path = dir.path().join(table_file_name(1));
    let len = fs::metadata(&path).unwrap().len();
    for cut in [0, len / 2, len - 1] {
        fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(cut)
            .unwrap();
        assert_corrupt(Lsm::open(dir.path(), opts), &format!("table cut at {cut}"));
    }
}

#[test]
fn torn_or_empty_manifest_is_corruption() {
    let dir = tempfile::tempdir().unwrap();
    let opts = big(LsmOptions::all(Flush));
    let (mut db, _) = filled(dir.path(), opts);
    db.maintain().unwrap();
    drop(db);
    let full = fs::read(dir.path().join(MANIFEST_FILE)).unwrap();
    for cut in 0..full.len() {
        fs::write(dir.path().join(MANIFEST_FILE), &full[..cut]).unwrap();
        assert_corrupt(
            Lsm::open(dir.path(), opts),
            &format!("manifest cut at {cut}"),
        );
    }
}

// ------------------------------------------------------------ behaviour --

/// Regression (found by review of issue 4): a WAL append that failed after
/// writing part of its record left the tree usable, so the next put was
/// acknowledged behind the partial record, inside the extent that record's
/// length field claims; recovery cut it off with the torn tail and the
/// acknowledged put was lost.
#[test]
fn a_failed_wal_append_poisons_the_tree_until_reopened() {
    for opts in [big(LsmOptions::all(Flush)), big(LsmOptions::all(FSYNC))] {
        let dir = tempfile::tempdir().unwrap();
        let mut db = Lsm::open(dir.path(), opts).unwrap();
        db.put(b"a", b"1").unwrap();
        db.wal.fail_next_append_after = Some(7);
        assert!(db.put(b"b", b"2").is_err());
        assert!(
            db.put(b"c", b"3").is_err(),
            "a put after a failed append must fail"
        );
        assert!(db.delete(b"a").is_err());
        assert!(db.flush().is_err());
        assert!(db.maintain().is_err());
        assert_eq!(db.get(b"a").unwrap(), Some(b"1".to_vec()));
        drop(db);
        let mut db = Lsm::open(dir.path(), opts).unwrap();
        assert_contents(&mut db, &[(b"a".to_vec(), b"1".to_vec())].into());
        db.put(b"d", b"4").unwrap();
        assert_eq!(db.get(b"d").unwrap(), Some(b"4".to_vec()));
    }
}

#[test]
fn thresholds_trigger_flush_and_compaction() {
    let dir = tempfile::tempdir().unwrap();
    let opts = LsmOptions {
        memtable_bytes: 300,
        compact_after: 2,
        ..LsmOptions::all(FSYNC)
    };
    let mut db = Lsm::open(dir.path(), opts).unwrap();
    let mut seen_tables = BTreeSet::new();
    for i in 0..200u8 {
        db.put(&key(i % 40), &[i; 20]).unwrap();
        assert!(db.table_ids().len() <= 2);
        seen_tables.extend(db.table_ids().iter().copied());
        assert_only_live_tables(&db, dir.path());
    }
    assert!(seen_tables.len() > 5, "flushes happened: {seen_tables:?}");
    assert!(db.memtable_len() < 40);
    for i in 160..200u8 {
        assert_eq!(db.get(&key(i % 40)).unwrap(), Some(vec![i; 20]));
    }
}

#[test]
fn compaction_drops_tombstones() {
    let dir = tempfile::tempdir().unwrap();
    let opts = big(LsmOptions::all(FSYNC));
    let mut db = Lsm::open(dir.path(), opts).unwrap();
    db.put(b"a", b"1").unwrap();
    db.flush().unwrap();
    db.delete(b"a").unwrap();
    db.flush().unwrap();
    assert_eq!(db.table_ids().len(), 2);
    assert_eq!(db.get(b"a").unwrap(), None);
    db.maintain().unwrap();
    assert!(
        db.table_ids().is_empty(),
        "all-tombstone merge writes no table"
    );
    assert_only_live_tables(&db, dir.path());
    drop(db);
    let mut db = Lsm::open(dir.path(), opts).unwrap();
    assert_eq!(db.get(b"a").unwrap(), None);
    assert!(db.scan().unwrap().is_empty());
}

#[test]
fn oversized_entries_are_rejected_before_logging() {
    let dir = tempfile::tempdir().unwrap();
    let mut db = Lsm::open(dir.path(), LsmOptions::all(FSYNC)).unwrap();
    let r = db.put(&vec![0; MAX_KEY_LEN + 1], b"v");
    assert!(matches!(r, Err(Error::Invalid(_))));
    let r = db.put(b"k", &vec![0; MAX_VALUE_LEN + 1]);
    assert!(matches!(r, Err(Error::Invalid(_))));
    assert_eq!(fs::metadata(dir.path().join(WAL_FILE)).unwrap().len(), 0);
}

#[test]
fn open_creates_a_missing_directory() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("a/b");
    let mut db = Lsm::open(&dir, LsmOptions::all(FSYNC)).unwrap();
    db.put(b"k", b"v").unwrap();
    drop(db);
    let mut db = Lsm::open(&dir, LsmOptions::all(FSYNC)).unwrap();
    assert_eq!(db.get(b"k").unwrap(), Some(b"v".to_vec()));
}

/// A tree whose WAL fsync failures are handled as `on`, holding `a`, whose
/// next put meets one failed fsync attempt (the failpoint): the put's
/// result and the (attempts, failures) it saw.
fn put_meeting_a_failed_fsync(dir: &Path, on: OnSyncError) -> (Lsm, Result<()>, (usize, usize)) {
    let opts = LsmOptions {
        wal: Durability::Fsync(on),
        ..big(LsmOptions::all(FSYNC))
    };
    let mut db = Lsm::open(dir, opts).unwrap();
    db.put(b"a", b"1").unwrap();
    crate::sync::failpoint::fail_after(0, 1);
    let r = db.put(b"b", b"2");
    let seen = crate::sync::failpoint::seen();
    (db, r, seen)
}

#[test]
fn the_crash_safe_settings_poison_on_a_failed_fsync() {
    assert_eq!(
        LsmOptions::default().wal.on_sync_error(),
        Some(OnSyncError::Poison)
    );
    assert_eq!(LsmOptions::all(FSYNC), LsmOptions::default());
}

#[test]
fn a_failed_wal_fsync_under_poison_fails_the_put_and_refuses_writes_until_reopened() {
    let dir = tempfile::tempdir().unwrap();
    let (mut db, r, seen) = put_meeting_a_failed_fsync(dir.path(), OnSyncError::Poison);
    assert!(r.is_err(), "the put whose fsync failed is not acknowledged");
    assert_eq!(seen, (1, 1), "no retry");
    assert!(
        db.put(b"c", b"3").is_err(),
        "poisoned: refuses the next put"
    );
    assert!(db.delete(b"a").is_err());
    assert!(db.maintain().is_err());
    assert_eq!(
        crate::sync::failpoint::seen(),
        (1, 1),
        "refused before any fsync"
    );
    assert_eq!(
        db.get(b"a").unwrap(),
        Some(b"1".to_vec()),
        "reads still work"
    );
    let opts = db.options();
    drop(db);
    let mut db = Lsm::open(dir.path(), opts).unwrap();
    db.put(b"c", b"3").unwrap();
    assert_eq!(db.get(b"a").unwrap(), Some(b"1".to_vec()));
    assert_eq!(db.get(b"c").unwrap(), Some(b"3".to_vec()));
}

#[test]
fn a_failed_wal_fsync_under_retry_is_retried_once_and_the_put_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let (mut db, r, seen) = put_meeting_a_failed_fsync(dir.path(), OnSyncError::Retry);
    r.unwrap();
    assert_eq!(seen, (2, 1), "the failed fsync and its retry");
    db.put(b"c", b"3").unwrap();
    let opts = db.options();
    drop(db);
    // On this test's disk the retry really made the record durable; on
    // Linux after a real write error it need not have (see OnSyncError).
    let mut db = Lsm::open(dir.path(), opts).unwrap();
    assert_eq!(db.get(b"b").unwrap(), Some(b"2".to_vec()));
    assert_eq!(db.get(b"c").unwrap(), Some(b"3".to_vec()));
}

#[test]
fn a_failed_retry_poisons_the_tree() {
    let dir = tempfile::tempdir().unwrap();
    let opts = LsmOptions {
        wal: Durability::Fsync(OnSyncError::Retry),
        ..big(LsmOptions::all(FSYNC))
    };
    let mut db = Lsm::open(dir.path(), opts).unwrap();
    crate::sync::failpoint::fail_after(0, 2);
    assert!(db.put(b"a", b"1").is_err());
    assert_eq!(crate::sync::failpoint::seen(), (2, 2));
    assert!(db.put(b"b", b"2").is_err(), "poisoned");
}

#[test]
fn a_failed_wal_fsync_under_ignore_is_acknowledged_without_a_retry() {
    let dir = tempfile::tempdir().unwrap();
    let (mut db, r, seen) = put_meeting_a_failed_fsync(dir.path(), OnSyncError::Ignore);
    r.unwrap();
    assert_eq!(seen, (1, 1), "no retry");
    db.put(b"c", b"3").unwrap();
    assert_eq!(db.get(b"b").unwrap(), Some(b"2".to_vec()));
}
