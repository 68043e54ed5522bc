//! Helpers shared by the engines' tests: a model test against a `BTreeMap`,
//! directory copies, and the torn-tail, corruption and merge-crash tests of
//! the two segment engines ([`crate::log_hash`], [`crate::hash_index`]).

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use proptest::prelude::*;

use super::RecordPos;
use crate::{Error, KvStore, Result};

/// One step of a model test.
#[derive(Clone, Debug)]
pub(crate) enum Op {
    Put(u16, Vec<u8>),
    Delete(u16),
    Maintain,
    /// Reopen the store: `clean` closes it first, otherwise it is dropped.
    Reopen {
        clean: bool,
    },
}

/// The key numbered `n`.
pub(crate) fn key(n: u16) -> Vec<u8> {
    format!("key-{n:05}").into_bytes()
}

/// Sequences of up to `max_ops` operations over `keys` keys with values up
/// to `max_value` bytes.
pub(crate) fn ops(keys: u16, max_value: usize, max_ops: usize) -> impl Strategy<Value = Vec<Op>> {
    let op = prop_oneof![
        10 => (0..keys, proptest::collection::vec(any::<u8>(), 0..=max_value))
            .prop_map(|(k, v)| Op::Put(k, v)),
        4 => (0..keys).prop_map(Op::Delete),
        1 => Just(Op::Maintain),
        1 => any::<bool>().prop_map(|clean| Op::Reopen { clean }),
    ];
    proptest::collection::vec(op, 1..=max_ops)
}

/// Runs `ops` against the store `open` returns and against a `BTreeMap`,
/// checking every read and a full scan after each maintain and reopen.
pub(crate) fn run_model<S, F>(open: F, ops: &[Op])
where
    S: KvStore + 'static,
    F: Fn() -> S,
{
    let mut model: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
    let mut store = Some(open());
    for op in ops {
        let s = store.as_mut().unwrap();
        match op {
            Op::Put(k, v) => {
                s.put(&key(*k), v).unwrap();
                model.insert(key(*k), v.clone());
                assert_eq!(s.get(&key(*k)).unwrap().as_ref(), Some(v));
            }
            Op::Delete(k) => {
                s.delete(&key(*k)).unwrap();
                model.remove(&key(*k));
                assert_eq!(s.get(&key(*k)).unwrap(), None);
            }
            Op::Maintain => {
                s.maintain().unwrap();
                check_all(s, &model);
            }
            Op::Reopen { clean } => {
                if let Some(old) = store.take() {
                    if *clean {
                        Box::new(old).close().unwrap();
                    } else {
                        drop(old);
                    }
                }
                let mut s = open();
                check_all(&mut s, &model);
                store = Some(s);
            }
        }
    }
    if let Some(mut s) = store.take() {
        check_all(&mut s, &model);
        Box::new(s).close().unwrap();
    }
    let mut s = open();
    check_all(&mut s, &model);
}

/// Asserts the store holds exactly `model`.
pub(crate) fn check_all<S: KvStore>(s: &mut S, model: &BTreeMap<Vec<u8>, Vec<u8>>) {
    let want: Vec<(Vec<u8>, Vec<u8>)> = model.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    assert_eq!(s.scan().unwrap(), want);
    for (k, v) in model {
        assert_eq!(s.get(k).unwrap().as_ref(), Some(v));
    }
}

/// Copies every file of `from` into a fresh temporary directory.
pub(crate) fn copy_dir(from: &Path) -> tempfile::TempDir {
    let to = tempfile::tempdir().unwrap();
    for e in fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        fs::copy(e.path(), to.path().join(e.file_name())).unwrap();
    }
    to
}

/// A value holding a whole encoded record of every engine's log format (a
/// segment record, an LSM WAL record and a B-tree WAL put all start with a
/// frame): cutting a record with this value leaves valid-looking frames in
/// its partial body, which must still read as a torn tail.
pub(crate) fn value_holding_a_frame() -> Vec<u8> {
    let mut v = b"nested: ".to_vec();
    v.extend_from_slice(&super::encode_record(b"ghost", Some(b"must never appear")));
    v.extend_from_slice(&crate::frame::encode_one(b"\x01\x05\x00\x00\x00ghost"));
    v.extend_from_slice(b" :end");
    v
}

/// Reads the whole store as a map.
fn contents<S: KvStore>(s: &mut S) -> BTreeMap<Vec<u8>, Vec<u8>> {
    s.scan().unwrap().into_iter().collect()
}

/// What the shared tests below need from a Bitcask-style engine built on
/// [`super::Segments`].
pub(crate) trait SegmentEngine: KvStore + Sized + 'static {
    /// The engine's options.
    type Options: Copy;
    /// Extension of its segment files.
    const EXT: &'static str;
    /// Its options with `sync` (fsync every write) and `segment_bytes`.
    fn options(sync: bool, segment_bytes: u64) -> Self::Options;
    /// Opens the store in `dir`.
    fn open_store(dir: &Path, o: Self::Options) -> Result<Self>;
    /// Stores a value and returns where its record went.
    fn put_pos(&mut self, key: &[u8], value: &[u8]) -> Result<RecordPos>;
    /// Runs a merge that fails, as a crash would, after `steps` steps;
    /// `None` lets it finish.
    fn merge_stopping_after(&mut self, steps: Option<usize>) -> Result<()>;
    /// Ids of the live segments, oldest first.
    fn ids(&self) -> Vec<u64>;
}

fn seg_path<E: SegmentEngine>(dir: &Path, id: u64) -> PathBuf {
    dir.join(super::segment_name(id, E::EXT))
}

fn open<E: SegmentEngine>(dir: &Path, o: E::Options) -> E {
    E::open_store(dir, o).unwrap_or_else(|e| panic!("open {}: {e}", dir.display()))
}

fn close<S: KvStore + 'static>(s: S) {
    Box::new(s).close().unwrap();
}

/// The model test of a segment engine, with 200-byte segments.
pub(crate) fn segment_model<E: SegmentEngine>(sync: bool, ops: &[Op]) {
    let dir = tempfile::tempdir().unwrap();
    run_model(|| open::<E>(dir.path(), E::options(sync, 200)), ops);
}

/// Cuts the newest segment at every byte offset of its last record (whose
/// value holds encoded frames, see [`value_holding_a_frame`]): recovery must
/// drop exactly that record, and later writes must survive a reopen. Before
/// the fix of `frame::scan` (regression test
/// `frame::tests::torn_record_holding_frames_in_its_body_is_a_torn_tail_at_every_cut`)
/// the cuts past the first nested frame were reported as corruption.
pub(crate) fn truncation_at_every_offset_of_the_last_record<E: SegmentEngine>(sync: bool) {
    let o = E::options(sync, 1 << 20);
    let template = tempfile::tempdir().unwrap();
    let mut s = open::<E>(template.path(), o);
    s.put(b"k1", b"old").unwrap();
    s.put(b"k2", b"two").unwrap();
    let last = s.put_pos(b"k1", &value_holding_a_frame()).unwrap();
    drop(s);
    let full = fs::metadata(seg_path::<E>(template.path(), last.segment))
        .unwrap()
        .len();
    let want: BTreeMap<Vec<u8>, Vec<u8>> = [
        (b"k1".to_vec(), b"old".to_vec()),
        (b"k2".to_vec(), b"two".to_vec()),
    ]
    .into();
    for cut in last.offset..full {
        let dir = copy_dir(template.path());
        let seg = seg_path::<E>(dir.path(), last.segment);
        fs::OpenOptions::new()
            .write(true)
            .open(&seg)
            .unwrap()
            .set_len(cut)
            .unwrap();
        let mut s =
            E::open_store(dir.path(), o).unwrap_or_else(|e| panic!("sync {sync} cut {cut}: {e}"));
        assert_eq!(
            fs::metadata(&seg).unwrap().len(),
            last.offset,
            "sync {sync} cut {cut}"
        );
        check_all(&mut s, &want);
        s.put(b"k3", b"after").unwrap();
        close(s);
        let mut s = open::<E>(dir.path(), o);
        let mut after = want.clone();
        after.insert(b"k3".to_vec(), b"after".to_vec());
        assert_eq!(contents(&mut s), after, "sync {sync} cut {cut}");
    }
}

/// Flips every byte of a complete record followed by another record (none
/// covered by a hint): opening must report corruption.
pub(crate) fn flipped_byte_in_a_record_followed_by_a_valid_one<E: SegmentEngine>(sync: bool) {
    let o = E::options(sync, 1 << 20);
    let template = tempfile::tempdir().unwrap();
    let mut s = open::<E>(template.path(), o);
    s.put(b"first", b"1").unwrap();
    let mid = s.put_pos(b"middle", &value_holding_a_frame()).unwrap();
    let last = s.put_pos(b"last", b"3").unwrap();
    drop(s);
    for at in mid.offset..last.offset {
        let dir = copy_dir(template.path());
        let seg = seg_path::<E>(dir.path(), mid.segment);
        let mut bytes = fs::read(&seg).unwrap();
        bytes[at as usize] ^= 0x55;
        fs::write(&seg, &bytes).unwrap();
        match E::open_store(dir.path(), o) {
            Err(Error::Corrupt(_)) => {}
            Err(e) => panic!("sync {sync} byte {at}: unexpected error {e}"),
            Ok(_) => panic!("sync {sync} byte {at}: damaged record accepted"),
        }
    }
}

/// Fills a store in `dir` with several segments of overwrites and with
/// tombstones whose keys have older values in older segments; returns the
/// expected contents.
pub(crate) fn fill_for_merge<E: SegmentEngine>(
    dir: &Path,
    o: E::Options,
) -> BTreeMap<Vec<u8>, Vec<u8>> {
    let mut s = open::<E>(dir, o);
    let mut model = BTreeMap::new();
    for round in 0..4u8 {
        for k in 0..8 {
            s.put(&key(k), &[round; 25]).unwrap();
            model.insert(key(k), vec![round; 25]);
        }
    }
    for k in [1, 5] {
        s.delete(&key(k)).unwrap();
        model.remove(&key(k));
    }
    model
}

/// Stops a real merge after each of its directory-changing steps, as a
/// process crash would, and recovers the same data each time.
pub(crate) fn merge_stopped_after_any_step<E: SegmentEngine>(sync: bool) {
    let o = E::options(sync, 120);
    let template = tempfile::tempdir().unwrap();
    let model = fill_for_merge::<E>(template.path(), o);
    for n in 0..500 {
        let dir = copy_dir(template.path());
        let mut s = open::<E>(dir.path(), o);
        let r = s.merge_stopping_after(Some(n));
        if r.is_err() {
            assert!(
                s.put(b"x", b"y").is_err(),
                "a failed merge must poison the store"
            );
        }
        drop(s);
        let mut s = open::<E>(dir.path(), o);
        assert_eq!(contents(&mut s), model, "sync {sync} step {n}");
        check_all(&mut s, &model);
        if r.is_ok() {
            return;
        }
    }
    panic!("the merge never finished");
}

/// Recreates every state a power cut can leave during a crash-safe merge:
/// outputs partly written or complete beside all inputs (each with or
/// without its sidecar file of extension `sidecar`, when the engine writes
/// one), then an oldest-first prefix of the inputs unlinked.
pub(crate) fn every_crash_state_of_a_merge<E: SegmentEngine>(sidecar: Option<&str>) {
    let o = E::options(true, 120);
    let template = tempfile::tempdir().unwrap();
    let model = fill_for_merge::<E>(template.path(), o);
    let mut s = open::<E>(template.path(), o);
    let inputs = s.ids();
    let before = copy_dir(template.path());
    s.merge_stopping_after(None).unwrap();
    let outputs = s.ids();
    assert!(outputs.len() >= 2, "{outputs:?}");
    drop(s);
    let side = |dir: &Path, id: u64| sidecar.map(|ext| dir.join(super::segment_name(id, ext)));
    for &id in &outputs {
        if let Some(p) = side(template.path(), id) {
            assert!(p.exists(), "{} missing", p.display());
        }
    }
    let check = |dir: &Path, what: &str| {
        let mut s = E::open_store(dir, o).unwrap_or_else(|e| panic!("{what}: {e}"));
        assert_eq!(contents(&mut s), model, "{what}");
        check_all(&mut s, &model);
    };
    let with_side: &[bool] = if sidecar.is_some() {
        &[false, true]
    } else {
        &[false]
    };
    for (j, &out) in outputs.iter().enumerate() {
        let full = fs::read(seg_path::<E>(template.path(), out)).unwrap();
        for cut in (0..=full.len()).step_by(7).chain([full.len()]) {
            for &with in with_side {
                let dir = copy_dir(before.path());
                for &done in &outputs[..j] {
                    let from = seg_path::<E>(template.path(), done);
                    fs::copy(from, seg_path::<E>(dir.path(), done)).unwrap();
                    if let (Some(from), Some(to)) =
                        (side(template.path(), done), side(dir.path(), done))
                    {
                        fs::copy(from, to).unwrap();
                    }
                }
                fs::write(seg_path::<E>(dir.path(), out), &full[..cut]).unwrap();
                if let (true, Some(from), Some(to)) =
                    (with, side(template.path(), out), side(dir.path(), out))
                {
                    fs::copy(from, to).unwrap();
                }
                check(
                    dir.path(),
                    &format!("output {out} cut at {cut}, sidecar {with}"),
                );
            }
        }
    }
    for removed in 0..=inputs.len() {
        let dir = copy_dir(template.path());
        for &id in &inputs[removed..] {
            let from = seg_path::<E>(before.path(), id);
            fs::copy(from, seg_path::<E>(dir.path(), id)).unwrap();
        }
        check(dir.path(), &format!("{removed} inputs unlinked"));
    }
}
