use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use proptest::prelude::*;

use super::*;
use crate::frame;
use crate::segment::testkit::{self, check_all, copy_dir, key};

const BOTH: [Durability; 2] = [Durability::Flush, Durability::FSYNC];

type Model = BTreeMap<Vec<u8>, Vec<u8>>;

fn opts(durability: Durability, checkpoint_bytes: u64) -> BTreeOptions {
    BTreeOptions {
        durability,
        checkpoint_bytes,
    }
}

fn value(k: u16, round: u8) -> Vec<u8> {
    let mut v = format!("value {k} round {round} ").into_bytes();
    v.resize(60 + usize::from(k % 50), round);
    v
}

fn close(s: BTree) {
    Box::new(s).close().unwrap();
}

fn model_test(durability: Durability, ops: &[testkit::Op]) {
    let dir = tempfile::tempdir().unwrap();
    testkit::run_model(
        || BTree::open(dir.path(), opts(durability, 6000)).unwrap(),
        ops,
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    #[test]
    fn model_flush(ops in testkit::ops(300, 200, 150)) {
        model_test(Durability::Flush, &ops);
    }

    #[test]
    fn model_fsync(ops in testkit::ops(300, 200, 150)) {
        model_test(Durability::FSYNC, &ops);
    }
}

#[test]
fn many_keys_split_and_merge_nodes_and_reuse_pages() {
    for d in BOTH {
        let dir = tempfile::tempdir().unwrap();
        let mut s = BTree::open(dir.path(), opts(d, 64 << 10)).unwrap();
        let mut model = Model::new();
        let n = 2500u16;
        // A stride coprime with n visits the keys in a scrambled order.
        let order: Vec<u16> = (0..n).map(|i| (i * 7 + 3) % n).collect();
        for &k in &order {
            let long_key = [key(k), vec![b'x'; 150]].concat();
            s.put(&long_key, &value(k, 1)).unwrap();
            model.insert(long_key, value(k, 1));
        }
        let pages = s.tree.check_invariants().unwrap();
        assert!(pages > 100, "{pages} pages");
        check_all(&mut s, &model);
        close(s);
        let mut s = BTree::open(dir.path(), opts(d, 64 << 10)).unwrap();
        check_all(&mut s, &model);
        let size_full = fs::metadata(dir.path().join(DB_FILE)).unwrap().len();
        for round in 0..3u8 {
            for &k in order.iter().filter(|&&k| k % 3 != 0) {
                let long_key = [key(k), vec![b'x'; 150]].concat();
                s.delete(&long_key).unwrap();
                model.remove(&long_key);
            }
            s.tree.check_invariants().unwrap();
            check_all(&mut s, &model);
            for &k in order.iter().filter(|&&k| k % 3 != 0) {
                let long_key = [key(k), vec![b'x'; 150]].concat();
                s.put(&long_key, &value(k, round + 2)).unwrap();
                model.insert(long_key, value(k, round + 2));
            }
            s.tree.check_invariants().unwrap();
            s.maintain().unwrap();
        }
        check_all(&mut s, &model);
        let size_after = fs::metadata(dir.path().join(DB_FILE)).unwrap().len();
        assert!(
            size_after < 3 * size_full,
            "file grew from {size_full} to {size_after}"
        );
        for k in 0..n {
            let long_key = [key(k), vec![b'x'; 150]].concat();
            s.delete(&long_key).unwrap();
        }
        assert_eq!(s.tree.root, 0);
        assert_eq!(s.scan().unwrap(), vec![]);
        close(s);
        let mut s = BTree::open(dir.path(), opts(d, 64 << 10)).unwrap();
        assert_eq!(s.scan().unwrap(), vec![]);
    }
}

#[test]
fn oversized_entries_are_invalid_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = BTree::open(dir.path(), BTreeOptions::default()).unwrap();
    s.put(b"k", b"v").unwrap();
    let long_key = vec![1u8; MAX_KEY_LEN + 1];
    assert!(matches!(s.put(&long_key, b"v"), Err(Error::Invalid(_))));
    assert!(matches!(
        s.put(b"k", &vec![0; MAX_VALUE_LEN + 1]),
        Err(Error::Invalid(_))
    ));
    s.put(&vec![2u8; MAX_KEY_LEN], &vec![3u8; MAX_VALUE_LEN])
        .unwrap();
    s.delete(&long_key).unwrap();
    assert_eq!(s.get(b"k").unwrap().as_deref(), Some(&b"v"[..]));
    assert_eq!(s.scan().unwrap().len(), 2);
}

/// A store with a checkpoint of 50 keys and a WAL holding `k1 = old`,
/// `k2 = two`, a delete of key 7, then `k1 =` a value holding encoded frames
/// (see [`testkit::value_holding_a_frame`]); returns the WAL offset
/// where the last record starts and the expected contents without it.
fn wal_store(dir: &Path, d: Durability) -> (u64, Model) {
    let mut s = BTree::open(dir, opts(d, 1 << 20)).unwrap();
    let mut model = Model::new();
    for k in 0..50 {
        s.put(&key(k), &value(k, 0)).unwrap();
        model.insert(key(k), value(k, 0));
    }
    s.checkpoint().unwrap();
    s.put(b"k1", b"old").unwrap();
    s.put(b"k2", b"two").unwrap();
    s.delete(&key(7)).unwrap();
    let before_last = s.wal.len();
    s.put(b"k1", &testkit::value_holding_a_frame()).unwrap();
    drop(s);
    model.insert(b"k1".to_vec(), b"old".to_vec());
    model.insert(b"k2".to_vec(), b"two".to_vec());
    model.remove(&key(7));
    (before_last, model)
}

#[test]
fn wal_truncated_at_every_offset_of_its_last_record_drops_only_it() {
    for d in BOTH {
        let template = tempfile::tempdir().unwrap();
        let (last, model) = wal_store(template.path(), d);
        let full = fs::metadata(template.path().join(WAL_FILE)).unwrap().len();
        for cut in last..full {
            let dir = copy_dir(template.path());
            let wal = dir.path().join(WAL_FILE);
            fs::OpenOptions::new()
                .write(true)
                .open(&wal)
                .unwrap()
                .set_len(cut)
                .unwrap();
            let mut s = BTree::open(dir.path(), opts(d, 1 << 20)).unwrap();
            assert_eq!(fs::metadata(&wal).unwrap().len(), last, "{d} cut {cut}");
            check_all(&mut s, &model);
            s.put(b"k3", b"after").unwrap();
            drop(s);
            let mut s = BTree::open(dir.path(), opts(d, 1 << 20)).unwrap();
            let mut want = model.clone();
            want.insert(b"k3".to_vec(), b"after".to_vec());
            check_all(&mut s, &want);
        }
    }
}

#[test]
fn flipped_byte_in_a_wal_record_followed_by_a_valid_one_is_corruption() {
    for d in BOTH {
        let template = tempfile::tempdir().unwrap();
        let (last, _) = wal_store(template.path(), d);
        let bytes = fs::read(template.path().join(WAL_FILE)).unwrap();
        // The record before the last one: the delete of key 7.
        let (body, n) = frame::decode_at(&bytes[last as usize - 8 - 1 - 9..]).unwrap();
        assert_eq!(body, [&[2u8][..], &key(7)].concat());
        let start = last as usize - n;
        for at in start..last as usize {
            let dir = copy_dir(template.path());
            let mut b = bytes.clone();
            b[at] ^= 0x21;
            fs::write(dir.path().join(WAL_FILE), &b).unwrap();
            match BTree::open(dir.path(), opts(d, 1 << 20)) {
                Err(Error::Corrupt(_)) => {}
                Err(e) => panic!("{d} byte {at}: {e}"),
                Ok(_) => panic!("{d} byte {at}: damaged WAL record accepted"),
            }
        }
    }
}

/// A checksummed WAL record larger than `put` accepts cannot have been
/// written by the store; replaying it would break the page-split guarantee.
#[test]
fn wal_record_over_the_size_limits_is_corruption() {
    let mut long_put = vec![1u8];
    long_put.extend_from_slice(&1u16.to_le_bytes());
    long_put.push(b'k');
    long_put.extend_from_slice(&vec![0; MAX_VALUE_LEN + 1]);
    let mut long_key = vec![1u8];
    long_key.extend_from_slice(&((MAX_KEY_LEN + 1) as u16).to_le_bytes());
    long_key.extend_from_slice(&vec![b'k'; MAX_KEY_LEN + 1]);
    let mut long_delete = vec![2u8];
    long_delete.extend_from_slice(&vec![b'k'; MAX_KEY_LEN + 1]);
    for body in [long_put, long_key, long_delete] {
        let dir = tempfile::tempdir().unwrap();
        drop(BTree::open(dir.path(), BTreeOptions::default()).unwrap());
        let mut wal = fs::read(dir.path().join(WAL_FILE)).unwrap();
        frame::encode(&body, &mut wal);
        fs::write(dir.path().join(WAL_FILE), &wal).unwrap();
        assert!(matches!(
            BTree::open(dir.path(), BTreeOptions::default()),
            Err(Error::Corrupt(_))
        ));
    }
}

/// Flips a byte in every node page in turn: the store must refuse to open or
/// to read, or (for a free page) still hold exactly the data; never return
/// something else.
#[test]
fn flipped_byte_in_a_page_is_corruption_never_data() {
    for d in BOTH {
        let template = tempfile::tempdir().unwrap();
        let mut s = BTree::open(template.path(), opts(d, 1 << 20)).unwrap();
        let mut model = Model::new();
        for k in 0..300 {
            s.put(&key(k), &value(k, 0)).unwrap();
            model.insert(key(k), value(k, 0));
        }
        s.checkpoint().unwrap();
        for k in (0..300).step_by(4) {
            s.delete(&key(k)).unwrap();
            model.remove(&key(k));
        }
        close(s);
        let live = BTree::open(template.path(), opts(d, 1 << 20))
            .unwrap()
            .tree
            .check_invariants()
            .unwrap();
        let bytes = fs::read(template.path().join(DB_FILE)).unwrap();
        let pages = bytes.len() / PAGE_SIZE;
        let mut corrupt = 0;
        for p in FIRST_NODE_PAGE as usize..pages {
            for at in [0, 5, 100, 1000] {
                let dir = copy_dir(template.path());
                let mut b = bytes.clone();
                b[p * PAGE_SIZE + at] ^= 0x04;
                fs::write(dir.path().join(DB_FILE), &b).unwrap();
                let r = BTree::open(dir.path(), opts(d, 1 << 20)).and_then(|mut s| s.scan());
                match r {
                    Err(Error::Corrupt(_)) => corrupt += 1,
                    Err(e) => panic!("page {p} byte {at}: {e}"),
                    Ok(all) => assert_eq!(all, model.clone().into_iter().collect::<Vec<_>>()),
                }
            }
        }
        // Bytes 0 and 5 always lie inside a live page's frame.
        assert!(
            live > 5 && corrupt >= 2 * live,
            "{d}: {corrupt} detected, {live} live pages"
        );
    }
}

/// Builds a store with a checkpoint and a WAL, snapshots it, runs one more
/// checkpoint; returns (before, after, model).
fn checkpoint_pair(d: Durability) -> (tempfile::TempDir, tempfile::TempDir, Model) {
    let after = tempfile::tempdir().unwrap();
    let mut s = BTree::open(after.path(), opts(d, 1 << 20)).unwrap();
    let mut model = Model::new();
    for k in 0..400 {
        s.put(&key(k), &value(k, 0)).unwrap();
        model.insert(key(k), value(k, 0));
    }
    s.checkpoint().unwrap();
    for k in (0..400).step_by(5) {
        s.put(&key(k), &value(k, 2)).unwrap();
        model.insert(key(k), value(k, 2));
    }
    s.checkpoint().unwrap();
    s.checkpoint().unwrap(); // nothing logged since: a no-op
    assert_eq!(s.generation(), 2);
    for k in (0..400).step_by(3) {
        s.delete(&key(k)).unwrap();
        model.remove(&key(k));
    }
    for k in 400..500 {
        s.put(&key(k), &value(k, 1)).unwrap();
        model.insert(key(k), value(k, 1));
    }
    let before = copy_dir(after.path());
    s.checkpoint().unwrap();
    assert_eq!(s.generation(), 3);
    drop(s);
    (before, after, model)
}

fn expect_model(dir: &Path, model: &Model, what: &str) {
    let mut s = BTree::open(dir, opts(Durability::FSYNC, 1 << 20))
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    check_all(&mut s, model);
    s.tree.check_invariants().unwrap();
}

/// Power-cut states of a checkpoint, built from the files before and after
/// it: new pages written (some torn) without the header; the header torn at
/// every byte; the header durable but the WAL not yet emptied.
#[test]
fn every_power_cut_state_of_a_checkpoint_recovers_the_same_data() {
    let (before, after, model) = checkpoint_pair(Durability::FSYNC);
    let old_db = fs::read(before.path().join(DB_FILE)).unwrap();
    let new_db = fs::read(after.path().join(DB_FILE)).unwrap();
    let old_wal = fs::read(before.path().join(WAL_FILE)).unwrap();
    let slot = PAGE_SIZE; // generation 3 goes to slot 1
    let changed: Vec<usize> = (FIRST_NODE_PAGE as usize..new_db.len() / PAGE_SIZE)
        .filter(|&p| {
            old_db.get(p * PAGE_SIZE..(p + 1) * PAGE_SIZE)
                != new_db.get(p * PAGE_SIZE..(p + 1) * PAGE_SIZE)
        })
        .collect();
    assert!(changed.len() > 3);
    let write = |db: &[u8], wal: &[u8]| {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(DB_FILE), db).unwrap();
        fs::write(dir.path().join(WAL_FILE), wal).unwrap();
        dir
    };
    // Step 1 interrupted: a prefix of the changed pages written, the next
    // one torn half-way; the old header still in slot 1.
    for written in 0..=changed.len() {
        let mut db = old_db.clone();
        db.resize(db.len().max(new_db.len()), 0);
        for (i, &p) in changed.iter().enumerate().take(written + 1) {
            let end = if i == written {
                p * PAGE_SIZE + PAGE_SIZE / 2
            } else {
                (p + 1) * PAGE_SIZE
            };
            db[p * PAGE_SIZE..end].copy_from_slice(&new_db[p * PAGE_SIZE..end]);
        }
        db[slot..slot + PAGE_SIZE].copy_from_slice(&old_db[slot..slot + PAGE_SIZE]);
        expect_model(
            write(&db, &old_wal).path(),
            &model,
            &format!("{written} pages written"),
        );
    }
    // Step 2 interrupted: the new header torn at every byte.
    for cut in 0..64 {
        let mut db = new_db.clone();
        db[slot + cut..slot + PAGE_SIZE].copy_from_slice(&old_db[slot + cut..slot + PAGE_SIZE]);
        expect_model(
            write(&db, &old_wal).path(),
            &model,
            &format!("header cut at {cut}"),
        );
    }
    // Step 3 not done: new header, old WAL (whole, or with the new base
    // frame written over its first frame).
    expect_model(write(&new_db, &old_wal).path(), &model, "old WAL");
    let new_wal = fs::read(after.path().join(WAL_FILE)).unwrap();
    let mut mixed = old_wal.clone();
    mixed[..new_wal.len()].copy_from_slice(&new_wal);
    expect_model(
        write(&new_db, &mixed).path(),
        &model,
        "new base over old WAL",
    );
    expect_model(write(&new_db, b"").path(), &model, "empty WAL");
    expect_model(write(&new_db, &new_wal).path(), &model, "complete");
}

#[test]
fn a_checkpoint_stopped_after_any_step_recovers_the_same_data() {
    for d in BOTH {
        let (before, _, model) = checkpoint_pair(d);
        for n in 0..4 {
            let dir = copy_dir(before.path());
            let mut s = BTree::open(dir.path(), opts(d, 1 << 20)).unwrap();
            s.crash_after = Some(n);
            let r = s.checkpoint();
            assert_eq!(r.is_ok(), n == 3, "step {n}");
            if r.is_err() {
                assert!(
                    s.put(b"x", b"y").is_err(),
                    "a failed checkpoint must poison the store"
                );
            }
            drop(s);
            let mut s = BTree::open(dir.path(), opts(d, 1 << 20)).unwrap();
            check_all(&mut s, &model);
        }
    }
}

#[test]
fn lost_checkpoint_is_corruption() {
    let (before, after, _) = checkpoint_pair(Durability::FSYNC);
    // The WAL was emptied on top of checkpoint 3, but the page file is the
    // one from before it: the header of checkpoint 3 never reached the disk.
    let dir = copy_dir(before.path());
    fs::copy(after.path().join(WAL_FILE), dir.path().join(WAL_FILE)).unwrap();
    assert!(matches!(
        BTree::open(dir.path(), BTreeOptions::default()),
        Err(Error::Corrupt(_))
    ));
    // Both header slots damaged.
    let dir = copy_dir(after.path());
    let mut db = fs::read(dir.path().join(DB_FILE)).unwrap();
    db[3] ^= 1;
    db[PAGE_SIZE + 3] ^= 1;
    fs::write(dir.path().join(DB_FILE), &db).unwrap();
    assert!(matches!(
        BTree::open(dir.path(), BTreeOptions::default()),
        Err(Error::Corrupt(_))
    ));
    // The file cut short of the pages its header names.
    let dir = copy_dir(after.path());
    let f = fs::OpenOptions::new()
        .write(true)
        .open(dir.path().join(DB_FILE))
        .unwrap();
    f.set_len((db.len() - PAGE_SIZE) as u64).unwrap();
    assert!(matches!(
        BTree::open(dir.path(), BTreeOptions::default()),
        Err(Error::Corrupt(_))
    ));
}

#[test]
fn wal_threshold_triggers_checkpoints() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = BTree::open(dir.path(), opts(Durability::FSYNC, 2000)).unwrap();
    let mut model = Model::new();
    for k in 0..200 {
        s.put(&key(k), &value(k, 0)).unwrap();
        model.insert(key(k), value(k, 0));
        assert!(s.wal.len() < 2000 + 200);
    }
    assert!(s.generation() > 5, "generation {}", s.generation());
    drop(s);
    let mut s = BTree::open(dir.path(), opts(Durability::FSYNC, 2000)).unwrap();
    check_all(&mut s, &model);
}

/// Regression (found by `model_fsync` in CI): a page appended to the file in
/// an epoch and freed again in the same epoch was never written, so the
/// header named more pages than the file held and reopening reported
/// corruption.
#[test]
fn page_appended_and_freed_in_one_epoch_still_counts_in_the_file() {
    for d in BOTH {
        let dir = tempfile::tempdir().unwrap();
        let mut s = BTree::open(dir.path(), opts(d, u64::MAX)).unwrap();
        let mut model = Model::new();
        for k in 0..200 {
            s.put(&key(k), &value(k, 1)).unwrap();
            model.insert(key(k), value(k, 1));
        }
        for k in 0..200 {
            if k % 50 != 0 {
                s.delete(&key(k)).unwrap();
                model.remove(&key(k));
            }
        }
        let freed_tail = s.tree.page_count;
        close(s);
        let mut s = BTree::open(dir.path(), opts(d, u64::MAX)).unwrap();
        assert_eq!(s.tree.page_count, freed_tail);
        check_all(&mut s, &model);
    }
}
