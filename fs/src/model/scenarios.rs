//! Named scenarios: one per loss window of the project's seed analysis and
//! per classic crash-consistency bug. Each drives the model as the program
//! would, then checks what each crash policy leaves.

use super::crash::{CrashOptions, CrashState, Policy, crash_state};
use super::enumerate::{EnumOptions, enumerate};
use super::store::{MemStore, TreeNode};
use super::*;
use std::collections::BTreeMap;

const T: Timestamp = Timestamp { secs: 1, nanos: 0 };

struct Vol {
    m: Model,
    store: MemStore,
}

impl Vol {
    fn new(p: Persistence) -> Vol {
        let cfg = Config {
            persistence: p,
            ..Config::default()
        };
        Vol {
            m: Model::new(cfg, Attrs::default()),
            store: MemStore::new(Attrs::default()),
        }
    }

    fn create(&self, dir: Ino, name: &str) -> Ino {
        self.m
            .create(dir, name.as_bytes(), Kind::File, Attrs::default(), None)
            .unwrap()
            .ino
    }

    fn mkdir(&self, dir: Ino, name: &str) -> Ino {
        self.m
            .create(dir, name.as_bytes(), Kind::Dir, Attrs::default(), None)
            .unwrap()
            .ino
    }

    fn write(&self, ino: Ino, off: u64, data: &[u8]) {
        self.m
            .write(ino, off, bytes::Bytes::copy_from_slice(data), T)
            .unwrap();
    }

    fn append(&self, ino: Ino, data: &[u8]) {
        self.m
            .append(ino, bytes::Bytes::copy_from_slice(data), T)
            .unwrap();
    }

    fn truncate(&self, ino: Ino, size: u64) {
        let set = SetAttrs {
            size: Some(size),
            ..SetAttrs::default()
        };
        self.m.setattr(ino, set, T).unwrap();
    }

    fn fsync(&mut self, ino: Ino) {
        let e = self.m.fsync(ino, false).unwrap();
        self.store.apply_all(&e);
    }

    fn fsyncdir(&mut self, dir: Ino) {
        let e = self.m.fsyncdir(dir).unwrap();
        self.store.apply_all(&e);
    }

    fn crash(&self, policy: Policy) -> BTreeMap<String, TreeNode> {
        let pending = self.m.pending_ops();
        let st = crash_state(
            &pending,
            &CrashOptions {
                policy,
                ..CrashOptions::default()
            },
        );
        self.after(&pending, &st.effects(&pending))
    }

    fn after(&self, _pending: &[PendingOp], effects: &[Effect]) -> BTreeMap<String, TreeNode> {
        let mut s = self.store.clone();
        s.apply_all(effects);
        s.tree()
            .shapes()
            .into_iter()
            .map(|(k, v)| (String::from_utf8_lossy(&k).into_owned(), v))
            .collect()
    }

    /// Every enumerated crash state, as trees.
    fn all_states(&self) -> Vec<(String, BTreeMap<String, TreeNode>)> {
        let pending = self.m.pending_ops();
        enumerate(&pending, &EnumOptions::default())
            .map(|st| {
                (
                    st.description.clone(),
                    self.after(&pending, &st.effects(&pending)),
                )
            })
            .collect()
    }
}

fn file(t: &BTreeMap<String, TreeNode>, path: &str) -> Option<Vec<u8>> {
    match t.get(path) {
        Some(TreeNode::File(d)) => Some(d.clone()),
        _ => None,
    }
}

/// Seed analysis, window 1 (lsm.py:26): WAL appends flushed, never fsynced.
#[test]
fn wal_appended_and_flushed_but_not_fsynced_is_lost_under_drop_all() {
    let mut v = Vol::new(Persistence::Posix);
    let wal = v.create(ROOT, "wal");
    v.fsync(wal);
    v.fsyncdir(ROOT);
    for i in 0..50u8 {
        v.append(wal, &[i; 16]);
    }
    assert_eq!(
        file(&v.crash(Policy::DropAll), "wal"),
        Some(vec![]),
        "all 50 records lost"
    );
    assert_eq!(
        file(&v.crash(Policy::KeepAll), "wal").map(|d| d.len()),
        Some(800)
    );
    assert_eq!(v.m.report().unsynced_bytes, 800);
}

/// Seed analysis, windows 3 and 4 (sstable.py:91, lsm.py:314): the SSTable
/// is closed without fsync, then the WAL truncated. A crash state keeps the
/// truncate and drops the SSTable data: the records are in neither file.
#[test]
fn sstable_closed_without_fsync_then_wal_truncated_loses_data() {
    let mut v = Vol::new(Persistence::Posix);
    let wal = v.create(ROOT, "wal");
    v.write(wal, 0, b"record-1record-2");
    v.fsync(wal);
    v.fsyncdir(ROOT);
    let sst = v.create(ROOT, "sst-1");
    v.write(sst, 0, b"record-1record-2");
    v.truncate(wal, 0);
    v.fsync(wal);
    let lost = v.all_states().into_iter().find(|(_, t)| {
        file(t, "wal") == Some(vec![]) && file(t, "sst-1").is_none_or(|d| d != b"record-1record-2")
    });
    assert!(lost.is_some(), "some crash state must lose the records");
    // Even the strictest cut shows it: the fsynced truncate is durable.
    let t = v.crash(Policy::DropAll);
    assert_eq!(file(&t, "wal"), Some(vec![]));
    assert_eq!(file(&t, "sst-1"), None);
}

/// create + fsync(file) without fsync(dir): the name is not durable under
/// posix; ext4 and xfs commit it with the journal, btrfs logs it with the
/// file.
#[test]
fn create_and_fsync_file_without_fsync_dir() {
    for (p, survives) in [
        (Persistence::Posix, false),
        (Persistence::Ext4, true),
        (Persistence::Xfs, true),
        (Persistence::Btrfs, true),
    ] {
        let mut v = Vol::new(p);
        let f = v.create(ROOT, "data");
        v.write(f, 0, b"acknowledged");
        v.fsync(f);
        let t = v.crash(Policy::DropAll);
        assert_eq!(file(&t, "data").is_some(), survives, "{p}");
        if survives {
            assert_eq!(file(&t, "data"), Some(b"acknowledged".to_vec()));
        }
    }
}

/// write(tmp) + rename(tmp, target) with no fsync: under meta-first the
/// rename and size survive and the data does not (ext4 delayed allocation's
/// zero-length / zero-filled file).
#[test]
fn write_tmp_then_rename_without_fsync_under_meta_first() {
    let mut v = Vol::new(Persistence::Posix);
    let target = v.create(ROOT, "config");
    v.write(target, 0, b"old config");
    v.fsync(target);
    v.fsyncdir(ROOT);
    let tmp = v.create(ROOT, "config.tmp");
    v.write(tmp, 0, b"new config!");
    v.m.rename(
        ROOT,
        b"config.tmp",
        ROOT,
        b"config",
        RenameFlags::default(),
        T,
    )
    .unwrap();
    let t = v.crash(Policy::MetaFirst);
    assert_eq!(
        file(&t, "config"),
        Some(vec![0u8; 11]),
        "renamed, zero-filled"
    );
    assert_eq!(
        file(&v.crash(Policy::DropAll), "config"),
        Some(b"old config".to_vec())
    );
    // With fsync(tmp) before the rename and fsync(dir) after, every state
    // shows the old or the new content in full.
    let mut v = Vol::new(Persistence::Posix);
    let target = v.create(ROOT, "config");
    v.write(target, 0, b"old config");
    v.fsync(target);
    v.fsyncdir(ROOT);
    let tmp = v.create(ROOT, "config.tmp");
    v.write(tmp, 0, b"new config!");
    v.fsync(tmp);
    v.m.rename(
        ROOT,
        b"config.tmp",
        ROOT,
        b"config",
        RenameFlags::default(),
        T,
    )
    .unwrap();
    for (what, t) in v.all_states() {
        let c = file(&t, "config");
        assert!(
            c == Some(b"old config".to_vec()) || c == Some(b"new config!".to_vec()),
            "{what}: {c:?}"
        );
    }
    v.fsyncdir(ROOT);
    assert_eq!(
        file(&v.crash(Policy::DropAll), "config"),
        Some(b"new config!".to_vec())
    );
}

/// open(O_TRUNC) + write without fsync: a crash state shows the file
/// truncated with the new data lost.
#[test]
fn open_trunc_then_write_without_fsync() {
    let mut v = Vol::new(Persistence::Posix);
    let f = v.create(ROOT, "state");
    v.write(f, 0, b"version 1");
    v.fsync(f);
    v.fsyncdir(ROOT);
    v.truncate(f, 0);
    v.write(f, 0, b"version 2");
    let states = v.all_states();
    assert!(
        states.iter().any(|(_, t)| file(t, "state") == Some(vec![])),
        "an empty file is possible"
    );
    assert_eq!(
        file(&v.crash(Policy::MetaFirst), "state"),
        Some(vec![0u8; 9])
    );
    assert_eq!(
        file(&v.crash(Policy::DropAll), "state"),
        Some(b"version 1".to_vec())
    );
}

/// rename replacing a file, crash before the directory fsync: the old
/// content is back.
#[test]
fn rename_over_existing_file_then_crash_before_dir_fsync() {
    let mut v = Vol::new(Persistence::Posix);
    let dir = v.mkdir(ROOT, "db");
    v.fsyncdir(ROOT);
    let cur = v.create(dir, "CURRENT");
    v.write(cur, 0, b"MANIFEST-1");
    v.fsync(cur);
    v.fsyncdir(dir);
    let new = v.create(dir, "CURRENT.tmp");
    v.write(new, 0, b"MANIFEST-2");
    v.fsync(new);
    v.m.rename(
        dir,
        b"CURRENT.tmp",
        dir,
        b"CURRENT",
        RenameFlags::default(),
        T,
    )
    .unwrap();
    assert_eq!(
        file(&v.crash(Policy::DropAll), "db/CURRENT"),
        Some(b"MANIFEST-1".to_vec())
    );
    assert_eq!(
        file(&v.crash(Policy::KeepAll), "db/CURRENT"),
        Some(b"MANIFEST-2".to_vec())
    );
    let rep = v.m.report();
    assert!(rep.names.iter().any(|n| n.op == "rename db/CURRENT.tmp -> db/CURRENT" && n.fix == "fsync directory db"), "{rep:#?}");
}

/// A rename across directories whose destination directory was fsynced but
/// not the source: the file has both names (never neither).
#[test]
fn cross_directory_rename_with_only_destination_fsynced() {
    let mut v = Vol::new(Persistence::Posix);
    let a = v.mkdir(ROOT, "a");
    let b = v.mkdir(ROOT, "b");
    let f = v.create(a, "f");
    v.write(f, 0, b"x");
    v.fsync(f);
    v.fsyncdir(a);
    v.fsyncdir(ROOT);
    v.m.rename(a, b"f", b, b"f", RenameFlags::default(), T)
        .unwrap();
    v.fsyncdir(b);
    let t = v.crash(Policy::DropAll);
    assert_eq!(file(&t, "a/f"), Some(b"x".to_vec()));
    assert_eq!(file(&t, "b/f"), Some(b"x".to_vec()));
}

/// The exact report: a 12-byte fsynced prefix and a 14-byte unsynced tail
/// report as exactly bytes 12..26, not a rounded block.
#[test]
fn report_gives_exact_unsynced_byte_ranges() {
    let mut v = Vol::new(Persistence::Posix);
    let f = v.create(ROOT, "log");
    v.write(f, 0, b"fsynced-part");
    v.fsync(f);
    v.fsyncdir(ROOT);
    v.write(f, 12, b"unsynced-tail!");
    let rep = v.m.report();
    assert_eq!(rep.files.len(), 1, "{rep:#?}");
    assert_eq!(rep.files[0].path, "log");
    assert_eq!(rep.files[0].ranges, vec![(12, 26)]);
    assert_eq!(rep.files[0].size_change, Some((12, 26)));
    assert_eq!(rep.unsynced_bytes, 14);
    assert!(rep.names.is_empty());
}

/// A write at offset 2^40 holds only the written bytes, reads the hole as
/// zeros without materialising it, and reports the exact range.
#[test]
fn sparse_write_far_out_costs_only_its_bytes() {
    let v = Vol::new(Persistence::Posix);
    let f = v.create(ROOT, "sparse");
    v.write(f, 1 << 40, b"far");
    assert_eq!(v.m.dirty_bytes(), 3);
    assert_eq!(
        v.m.read(f, 0, 1 << 20).unwrap(),
        vec![Segment::Zero(1 << 20)]
    );
    let rep = v.m.report();
    assert_eq!(rep.files[0].ranges, vec![(1 << 40, (1 << 40) + 3)]);
    assert_eq!(rep.files[0].size_change, Some((0, (1 << 40) + 3)));
    let node = v.m.node(f).unwrap();
    assert_eq!(node.lock().overlay.data_bytes(), 3);
    assert_eq!(
        v.m.write(f, (1 << 44) - 1, bytes::Bytes::from_static(b"xx"), T),
        Err(FsError::TooBig)
    );
}

/// Torn writes: a crash state keeps some sectors of a write and the old
/// bytes elsewhere; the same seed gives the same state.
#[test]
fn torn_policy_is_seeded_and_keeps_old_bytes_in_lost_sectors() {
    let mut v = Vol::new(Persistence::Posix);
    let f = v.create(ROOT, "page");
    v.write(f, 0, &[1u8; 2048]);
    v.fsync(f);
    v.fsyncdir(ROOT);
    v.write(f, 0, &[2u8; 2048]);
    let pending = v.m.pending_ops();
    let mut torn_seen = false;
    for seed in 0..64 {
        let opts = CrashOptions {
            policy: Policy::Torn,
            seed,
            ..CrashOptions::default()
        };
        let st = crash_state(&pending, &opts);
        assert_eq!(st, crash_state(&pending, &opts), "seeded");
        let d = file(&v.after(&pending, &st.effects(&pending)), "page").unwrap();
        assert_eq!(d.len(), 2048);
        for sector in d.chunks(512) {
            assert!(sector.iter().all(|b| *b == sector[0]), "sectors are atomic");
        }
        torn_seen |= d.contains(&1) && d.contains(&2);
    }
    assert!(torn_seen, "some seed tears the write");
}

/// Enumeration: distinct states, in order, capped deterministically.
#[test]
fn enumeration_is_deterministic_distinct_and_capped() {
    let v = Vol::new(Persistence::Posix);
    let f = v.create(ROOT, "f");
    for i in 0..20u64 {
        v.write(f, i * 1000, &[i as u8 + 1; 1000]);
    }
    let pending = v.m.pending_ops();
    let opts = EnumOptions::default();
    let all: Vec<_> = enumerate(&pending, &opts).collect();
    let again: Vec<_> = enumerate(&pending, &opts).collect();
    assert_eq!(all, again);
    let mut sigs: Vec<_> = all.iter().map(|s| s.kept.clone()).collect();
    sigs.sort_by(|a, b| format!("{a:?}").cmp(&format!("{b:?}")));
    sigs.dedup();
    assert_eq!(sigs.len(), all.len(), "no duplicate states");
    // The create, and the 20 writes, four of which cross the end of the
    // page holding the old end and are recorded as two operations.
    assert_eq!(pending.len(), 25);
    assert!(all[0].kept.is_empty() && all[1].kept.len() == 25);
    let capped: Vec<_> = enumerate(&pending, &EnumOptions { cap: 10, ..opts }).collect();
    // Sampled to 10 first, then the page rule's duplicates dropped.
    assert!((3..=10).contains(&capped.len()), "{}", capped.len());
    assert_eq!(capped[..3], all[..3]);
}

/// Eight threads write and fsync their own files through `&Model` at once;
/// after a drop-all cut every fsync-acknowledged byte is present and nothing
/// unacknowledged is.
#[test]
fn concurrent_writers_keep_every_fsynced_byte() {
    let mut v = Vol::new(Persistence::Posix);
    let files: Vec<Ino> = (0..8).map(|i| v.create(ROOT, &format!("f{i}"))).collect();
    v.fsyncdir(ROOT);
    let store = std::sync::Mutex::new(v.store.clone());
    let acked: Vec<u64> = std::thread::scope(|s| {
        let handles: Vec<_> = files
            .iter()
            .enumerate()
            .map(|(t, &f)| {
                let (m, store) = (&v.m, &store);
                s.spawn(move || {
                    let mut acked = 0;
                    for round in 0..200u64 {
                        m.append(f, bytes::Bytes::from(vec![t as u8 + 1; 100]), T)
                            .unwrap();
                        if round % 3 == 0 {
                            let e = m.fsync(f, true).unwrap();
                            store.lock().unwrap().apply_all(&e);
                            acked = (round + 1) * 100;
                        }
                    }
                    acked
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    v.store = store.into_inner().unwrap();
    let t = v.crash(Policy::DropAll);
    for (i, want) in acked.iter().enumerate() {
        let d = file(&t, &format!("f{i}")).unwrap();
        assert_eq!(d.len() as u64, *want, "f{i}");
        assert!(d.iter().all(|b| *b == i as u8 + 1));
    }
    assert_eq!(
        v.m.report().unsynced_bytes,
        8 * 100,
        "one unsynced append per file"
    );
}

/// btrfs's fsync of a file commits the names that link it and no other:
/// a rename of another file stays pending.
#[test]
fn btrfs_fsync_commits_the_files_own_names_only() {
    let mut v = Vol::new(Persistence::Btrfs);
    let old = v.create(ROOT, "old");
    v.fsync(old);
    v.fsyncdir(ROOT);
    v.m.rename(ROOT, b"old", ROOT, b"moved", RenameFlags::default(), T)
        .unwrap();
    let f = v.create(ROOT, "new");
    v.write(f, 0, b"logged");
    v.fsync(f);
    let t = v.crash(Policy::DropAll);
    assert_eq!(file(&t, "new"), Some(b"logged".to_vec()));
    assert!(t.contains_key("old") && !t.contains_key("moved"), "{t:?}");
}

/// ext4's fdatasync forces only the transaction of the file's last data
/// change: with clean data it commits no name (calibrate seed-1-12, `ln A
/// dir/C; sync -d dir/C`); xfs's forces the log with the link's inode
/// change. A later write makes ext4's fdatasync commit the earlier link.
#[test]
fn ext4_fdatasync_of_clean_data_commits_no_name() {
    for (p, linked) in [(Persistence::Ext4, false), (Persistence::Xfs, true)] {
        let mut v = Vol::new(p);
        let a = v.create(ROOT, "a");
        v.write(a, 0, b"data");
        v.fsync(a);
        v.fsyncdir(ROOT);
        v.m.link(a, ROOT, b"b", T).unwrap();
        let e = v.m.fsync(a, true).unwrap();
        v.store.apply_all(&e);
        let t = v.crash(Policy::DropAll);
        assert_eq!(file(&t, "b").is_some(), linked, "{p}");
        v.write(a, 4, b"more");
        let e = v.m.fsync(a, true).unwrap();
        v.store.apply_all(&e);
        let t = v.crash(Policy::DropAll);
        assert_eq!(file(&t, "b"), Some(b"datamore".to_vec()), "{p}");
    }
}

/// Regression (calibrate `--settle`, ext4 with 4 KiB blocks, seed-1-19):
/// a write from inside a 5000-byte file to 9799 left ext4 at 8192 bytes
/// of old data after a commit. ext4 puts the size on disk at write time
/// for the page whose block is mapped, the old last page, and not for the
/// rest; xfs and btrfs move it only with the data.
#[test]
fn an_extending_write_may_stop_at_the_old_last_page_under_ext4_only() {
    for (p, shown) in [
        (Persistence::Posix, true),
        (Persistence::Ext4, true),
        (Persistence::Xfs, false),
        (Persistence::Btrfs, false),
    ] {
        let mut v = Vol::new(p);
        let c = v.create(ROOT, "c");
        v.write(c, 0, &[b'c'; 5000]);
        v.fsync(c);
        v.fsyncdir(ROOT);
        v.write(c, 2928, &[b'0'; 6871]);
        let pending = v.m.pending_ops();
        assert_eq!(pending.len(), 2, "{p}: split at 8192");
        // The first part's size without its data, the rest lost.
        let kept = vec![(0, Survival::MetaOnly)];
        let (legal, _) = crate::model::profile::apply(&pending, kept.clone(), p.rules(), 512);
        assert_eq!(legal == kept, shown, "{p}: {legal:?}");
        let cs = CrashState {
            seed: 0,
            kept,
            total: pending.len(),
            description: String::new(),
        };
        let t = v.after(&pending, &cs.effects(&pending));
        let mut want = vec![b'c'; 5000];
        want.resize(8192, 0);
        assert_eq!(file(&t, "c"), Some(want), "{p}");
    }
}

/// ext4's `auto_da_alloc`: a rename of a file onto another file's name
/// starts the file's writeback, which allocates its blocks and moves its
/// on-disk size before the rename is journaled. Under ext4 a crash never
/// shows the renamed file without the size its writes gave it (its data
/// may still read as zeros: unwritten extents); posix and xfs may.
#[test]
fn a_rename_over_a_file_keeps_the_renamed_files_size_under_ext4_only() {
    for (p, sized) in [
        (Persistence::Ext4, true),
        (Persistence::Posix, false),
        (Persistence::Xfs, false),
    ] {
        let mut v = Vol::new(p);
        let a = v.create(ROOT, "a");
        v.write(a, 0, &[b'a'; 100]);
        v.fsync(a);
        v.fsyncdir(ROOT);
        let b = v.create(ROOT, "b");
        v.write(b, 0, &[b'b'; 9000]);
        v.m.rename(ROOT, b"b", ROOT, b"a", RenameFlags::default(), T)
            .unwrap();
        let sizes = |v: &Vol| -> Vec<(String, usize)> {
            let pending = v.m.pending_ops();
            let opts = EnumOptions::default().under(p);
            enumerate(&pending, &opts)
                .filter_map(|st| {
                    let t = v.after(&pending, &st.effects(&pending));
                    let a = file(&t, "a")?;
                    let renamed = !t.contains_key("b") && a != [b'a'; 100];
                    (renamed && a.len() != 9000).then_some((st.description, a.len()))
                })
                .collect()
        };
        // Before and after the directory's fsync makes the rename durable.
        let before = sizes(&v);
        v.fsyncdir(ROOT);
        let after = sizes(&v);
        assert_eq!(
            before.is_empty() && after.is_empty(),
            sized,
            "{p}: {before:?} {after:?}"
        );
    }
}

/// ext4's `auto_da_alloc`, close half: the first close after a truncate
/// to size 0 starts the file's writeback (`ext4_release_file`), which
/// journals the size its new writes gave it. Under ext4 a crash that keeps
/// a later journaled change (here a `mkdir`) never shows the file empty;
/// posix and xfs may. Without the close, or when the close came between
/// the truncate and the writes (`truncate -s 0 f` then a write), ext4 may
/// show it empty too.
#[test]
fn a_close_after_a_truncate_to_zero_keeps_the_rewritten_size_under_ext4_only() {
    // (model, close after the writes, close between truncate and writes,
    // empty-with-the-mkdir states expected)
    let cases = [
        (Persistence::Ext4, true, false, false),
        (Persistence::Ext4, false, false, true),
        (Persistence::Ext4, true, true, true),
        (Persistence::Posix, true, false, true),
        (Persistence::Xfs, true, false, true),
    ];
    for (p, close, close_early, empty_shown) in cases {
        let mut v = Vol::new(p);
        let a = v.create(ROOT, "a");
        v.write(a, 0, &[b'o'; 3000]);
        v.fsync(a);
        v.fsyncdir(ROOT);
        v.truncate(a, 0);
        if close_early {
            v.m.release(a);
        }
        v.write(a, 0, &[b'n'; 100]);
        if close {
            v.m.release(a);
        }
        v.mkdir(ROOT, "d");
        let pending = v.m.pending_ops();
        let opts = EnumOptions::default().under(p);
        let empty: Vec<String> = enumerate(&pending, &opts)
            .filter_map(|st| {
                let t = v.after(&pending, &st.effects(&pending));
                let a = file(&t, "a")?;
                (t.contains_key("d") && a.is_empty()).then_some(st.description)
            })
            .collect();
        assert_eq!(
            !empty.is_empty(),
            empty_shown,
            "{p} close {close} early {close_early}: {empty:?}"
        );
    }
}
