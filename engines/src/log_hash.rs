//! A Bitcask-style log-structured hash table: the data lives in append-only
//! segment files, and an in-memory hash index maps each key to the position
//! of its newest record. There is no separate WAL: the log is the data.
//!
//! # Byte layout
//!
//! ```text
//! <dir>/seg-000001.log, seg-000002.log, ...     replayed in id order
//!
//! segment = frame(record) frame(record) ...      append-only
//! frame   = len u32 LE | body | crc32 u32 LE     (crate::frame)
//! record  = kind u8 | key_len u32 LE | key | value
//!           kind 1 = put (value = rest of body), kind 0 = tombstone
//! ```
//!
//! The codec, recovery scan and merge live in [`crate::segment`], whose
//! invariants (replay order, where a torn tail is legal, the crash cases of a
//! merge) this engine relies on.
//!
//! # Durability
//!
//! * [`Durability::Flush`] reproduces the analysis' `bitcask.py:155-157`:
//!   every record is written to the OS and never fsynced, so a power cut
//!   loses acknowledged puts, and a merge's unlinks of old segments can reach
//!   the disk before the merged segment's data does, losing everything.
//! * [`Durability::Fsync`]: each record is fdatasynced before `put` returns;
//!   the directory is fsynced after a segment is created or removed; a merge
//!   makes its outputs durable before it unlinks any input.
//!
//! Recovery scans the segments in order up to the last complete record,
//! truncates a torn tail, and reports a damaged record followed by a valid one
//! as [`crate::Error::Corrupt`].

use std::path::Path;

use crate::segment::{NoSidecar, RecordPos, SegmentConfig, Segments};
use crate::{Durability, KvStore, Result};

/// Extension of this engine's segment files.
pub const SEGMENT_EXT: &str = "log";

/// Options for [`LogHash`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LogHashOptions {
    /// Whether writes are fsynced before they are acknowledged.
    pub durability: Durability,
    /// A segment is rotated before an append would take it past this size.
    pub segment_bytes: u64,
}

impl Default for LogHashOptions {
    fn default() -> Self {
        LogHashOptions {
            durability: Durability::Fsync,
            segment_bytes: 4 << 20,
        }
    }
}

/// A log-structured hash table (see the module documentation).
pub struct LogHash {
    segments: Segments,
}

impl LogHash {
    /// Opens the store in `dir`, creating the directory if needed, and
    /// rebuilds the index by scanning every segment.
    pub fn open(dir: &Path, opts: LogHashOptions) -> Result<Self> {
        let cfg = SegmentConfig {
            ext: SEGMENT_EXT,
            sync: opts.durability == Durability::Fsync,
            segment_bytes: opts.segment_bytes,
        };
        Ok(LogHash {
            segments: Segments::open(dir, cfg, &mut NoSidecar)?,
        })
    }

    /// Stores `value` under `key` and returns where the record was written.
    pub fn put_at(&mut self, key: &[u8], value: &[u8]) -> Result<RecordPos> {
        self.segments.append(key, Some(value))
    }

    /// Rewrites the live records into new segments and removes the old ones.
    pub fn merge(&mut self) -> Result<()> {
        self.segments.merge(&mut NoSidecar)
    }

    /// Ids of the segment files, oldest first.
    pub fn segment_ids(&self) -> Vec<u64> {
        self.segments.segment_ids()
    }
}

impl KvStore for LogHash {
    fn put(&mut self, key: &[u8], value: &[u8]) -> Result<()> {
        self.put_at(key, value).map(|_| ())
    }

    fn get(&mut self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.segments.get(key)
    }

    fn delete(&mut self, key: &[u8]) -> Result<()> {
        // An absent key needs no tombstone: replay already leaves it absent.
        if !self.segments.contains(key) {
            return Ok(());
        }
        self.segments.append(key, None).map(|_| ())
    }

    fn scan(&mut self) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        self.segments.scan()
    }

    fn maintain(&mut self) -> Result<()> {
        self.merge()
    }

    fn close(self: Box<Self>) -> Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::fs;
    use std::path::PathBuf;

    use proptest::prelude::*;

    use super::*;
    use crate::Error;
    use crate::segment::segment_name;
    use crate::segment::testkit::{self, check_all, key};

    const BOTH: [Durability; 2] = [Durability::Flush, Durability::Fsync];

    fn opts(durability: Durability, segment_bytes: u64) -> LogHashOptions {
        LogHashOptions {
            durability,
            segment_bytes,
        }
    }

    fn seg_path(dir: &Path, id: u64) -> PathBuf {
        dir.join(segment_name(id, SEGMENT_EXT))
    }

    fn copy_dir(from: &Path) -> tempfile::TempDir {
        let to = tempfile::tempdir().unwrap();
        for e in fs::read_dir(from).unwrap() {
            let e = e.unwrap();
            fs::copy(e.path(), to.path().join(e.file_name())).unwrap();
        }
        to
    }

    fn model_test(durability: Durability, ops: &[testkit::Op]) {
        let dir = tempfile::tempdir().unwrap();
        testkit::run_model(
            || LogHash::open(dir.path(), opts(durability, 200)).unwrap(),
            ops,
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(32))]

        #[test]
        fn model_flush(ops in testkit::ops(16, 40, 120)) {
            model_test(Durability::Flush, &ops);
        }

        #[test]
        fn model_fsync(ops in testkit::ops(16, 40, 120)) {
            model_test(Durability::Fsync, &ops);
        }
    }

    #[test]
    fn put_at_reports_offsets_and_rotates_segments() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = LogHash::open(dir.path(), opts(Durability::Fsync, 64)).unwrap();
        let a = s.put_at(b"a", b"0123456789").unwrap();
        let b = s.put_at(b"b", b"0123456789").unwrap();
        assert_eq!(
            a,
            RecordPos {
                segment: 1,
                offset: 0
            }
        );
        assert_eq!(
            b,
            RecordPos {
                segment: 1,
                offset: 24
            }
        );
        let c = s
            .put_at(b"c", b"0123456789012345678901234567890123456789")
            .unwrap();
        assert_eq!(
            c,
            RecordPos {
                segment: 2,
                offset: 0
            }
        );
        assert_eq!(s.segment_ids(), vec![1, 2]);
        assert_eq!(fs::metadata(seg_path(dir.path(), 1)).unwrap().len(), 48);
    }

    #[test]
    fn merge_keeps_live_values_and_removes_old_segments() {
        for d in BOTH {
            let dir = tempfile::tempdir().unwrap();
            let mut s = LogHash::open(dir.path(), opts(d, 100)).unwrap();
            for round in 0..5u8 {
                for k in 0..10 {
                    s.put(&key(k), &[round; 20]).unwrap();
                }
            }
            s.delete(&key(3)).unwrap();
            let before = s.segment_ids();
            assert!(before.len() > 10, "{before:?}");
            s.maintain().unwrap();
            let after = s.segment_ids();
            assert!(after.iter().all(|id| id > before.last().unwrap()));
            assert!(after.len() < 6, "{after:?}");
            let mut files: Vec<u64> = crate::segment::list_ids(dir.path(), SEGMENT_EXT).unwrap();
            files.sort_unstable();
            assert_eq!(files, after);
            let mut model = BTreeMap::new();
            for k in (0..10).filter(|&k| k != 3) {
                model.insert(key(k), vec![4u8; 20]);
            }
            check_all(&mut s, &model);
            s.put(b"new", b"after merge").unwrap();
            drop(s);
            let mut s = LogHash::open(dir.path(), opts(d, 100)).unwrap();
            model.insert(b"new".to_vec(), b"after merge".to_vec());
            check_all(&mut s, &model);
        }
    }

    #[test]
    fn truncation_at_every_offset_of_the_last_record_drops_only_it() {
        for d in BOTH {
            let template = tempfile::tempdir().unwrap();
            let mut s = LogHash::open(template.path(), opts(d, 1 << 20)).unwrap();
            s.put(b"k1", b"old").unwrap();
            s.put(b"k2", b"two").unwrap();
            let last = s.put_at(b"k1", b"new value for k1").unwrap();
            drop(s);
            let path = seg_path(template.path(), last.segment);
            let full = fs::metadata(&path).unwrap().len();
            for cut in last.offset..full {
                let dir = copy_dir(template.path());
                let seg = seg_path(dir.path(), last.segment);
                fs::OpenOptions::new()
                    .write(true)
                    .open(&seg)
                    .unwrap()
                    .set_len(cut)
                    .unwrap();
                let mut s = LogHash::open(dir.path(), opts(d, 1 << 20)).unwrap();
                assert_eq!(
                    fs::metadata(&seg).unwrap().len(),
                    last.offset,
                    "{d} cut {cut}"
                );
                let want: BTreeMap<Vec<u8>, Vec<u8>> = [
                    (b"k1".to_vec(), b"old".to_vec()),
                    (b"k2".to_vec(), b"two".to_vec()),
                ]
                .into();
                check_all(&mut s, &want);
                s.put(b"k3", b"after").unwrap();
                drop(s);
                let mut s = LogHash::open(dir.path(), opts(d, 1 << 20)).unwrap();
                assert_eq!(
                    s.get(b"k3").unwrap().as_deref(),
                    Some(&b"after"[..]),
                    "{d} cut {cut}"
                );
                assert_eq!(s.get(b"k1").unwrap().as_deref(), Some(&b"old"[..]));
            }
        }
    }

    #[test]
    fn flipped_byte_in_a_record_followed_by_a_valid_one_is_corruption() {
        for d in BOTH {
            let template = tempfile::tempdir().unwrap();
            let mut s = LogHash::open(template.path(), opts(d, 1 << 20)).unwrap();
            s.put(b"first", b"1").unwrap();
            let mid = s.put_at(b"middle", b"the damaged one").unwrap();
            let last = s.put_at(b"last", b"3").unwrap();
            drop(s);
            for at in mid.offset..last.offset {
                let dir = copy_dir(template.path());
                let seg = seg_path(dir.path(), mid.segment);
                let mut bytes = fs::read(&seg).unwrap();
                bytes[at as usize] ^= 0x55;
                fs::write(&seg, &bytes).unwrap();
                match LogHash::open(dir.path(), opts(d, 1 << 20)) {
                    Err(Error::Corrupt(_)) => {}
                    Err(e) => panic!("{d} byte {at}: unexpected error {e}"),
                    Ok(_) => panic!("{d} byte {at}: damaged record accepted"),
                }
            }
        }
    }

    #[test]
    fn torn_tail_of_an_older_segment_is_corruption_only_when_fsynced() {
        for d in BOTH {
            let dir = tempfile::tempdir().unwrap();
            let mut s = LogHash::open(dir.path(), opts(d, 40)).unwrap();
            s.put(b"a", b"0123456789").unwrap();
            s.put(b"b", b"0123456789").unwrap();
            s.put(b"c", b"0123456789").unwrap();
            assert_eq!(s.segment_ids(), vec![1, 2, 3]);
            drop(s);
            let seg1 = seg_path(dir.path(), 1);
            let len = fs::metadata(&seg1).unwrap().len();
            fs::OpenOptions::new()
                .write(true)
                .open(&seg1)
                .unwrap()
                .set_len(len - 3)
                .unwrap();
            let r = LogHash::open(dir.path(), opts(d, 40));
            match d {
                Durability::Fsync => assert!(matches!(r, Err(Error::Corrupt(_)))),
                Durability::Flush => {
                    let mut s = r.unwrap();
                    assert_eq!(s.get(b"a").unwrap(), None);
                    assert_eq!(s.get(b"c").unwrap().as_deref(), Some(&b"0123456789"[..]));
                }
            }
        }
    }

    /// Fills a store in `dir` with several segments of overwrites and with
    /// tombstones whose keys have older values in older segments; returns the
    /// expected contents.
    fn fill_for_merge(dir: &Path, o: LogHashOptions) -> BTreeMap<Vec<u8>, Vec<u8>> {
        let mut s = LogHash::open(dir, o).unwrap();
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
    /// process crash would, and recovers.
    #[test]
    fn a_merge_stopped_after_any_step_recovers_the_same_data() {
        for d in BOTH {
            let template = tempfile::tempdir().unwrap();
            let o = opts(d, 120);
            let model = fill_for_merge(template.path(), o);
            let mut finished = false;
            for n in 0..500 {
                let dir = copy_dir(template.path());
                let mut s = LogHash::open(dir.path(), o).unwrap();
                s.segments.crash_after = Some(n);
                let r = s.merge();
                if r.is_err() {
                    assert!(
                        s.put(b"x", b"y").is_err(),
                        "a failed merge must poison the store"
                    );
                }
                drop(s);
                let mut s =
                    LogHash::open(dir.path(), o).unwrap_or_else(|e| panic!("step {n}: {e}"));
                check_all(&mut s, &model);
                if r.is_ok() {
                    finished = true;
                    break;
                }
            }
            assert!(finished);
        }
    }

    /// Recreates every state a crash can leave during a crash-safe merge:
    /// outputs partly written or complete beside all inputs, then an
    /// oldest-first prefix of the inputs unlinked.
    #[test]
    fn every_crash_state_of_a_merge_recovers_the_same_data() {
        let template = tempfile::tempdir().unwrap();
        let o = opts(Durability::Fsync, 120);
        let model = fill_for_merge(template.path(), o);
        let mut s = LogHash::open(template.path(), o).unwrap();
        let inputs = s.segment_ids();
        let before = copy_dir(template.path());
        s.merge().unwrap();
        let outputs = s.segment_ids();
        assert!(outputs.len() >= 2, "{outputs:?}");
        drop(s);
        let check = |dir: &Path, what: &str| {
            let mut s = LogHash::open(dir, o).unwrap_or_else(|e| panic!("{what}: {e}"));
            check_all(&mut s, &model);
        };
        for (j, &out) in outputs.iter().enumerate() {
            let full = fs::read(seg_path(template.path(), out)).unwrap();
            for cut in (0..=full.len()).step_by(7).chain([full.len()]) {
                let dir = copy_dir(before.path());
                for &done in &outputs[..j] {
                    fs::copy(seg_path(template.path(), done), seg_path(dir.path(), done)).unwrap();
                }
                fs::write(seg_path(dir.path(), out), &full[..cut]).unwrap();
                check(dir.path(), &format!("output {out} cut at {cut}"));
            }
        }
        for removed in 0..=inputs.len() {
            let dir = copy_dir(template.path());
            for &id in &inputs[removed..] {
                fs::copy(seg_path(before.path(), id), seg_path(dir.path(), id)).unwrap();
            }
            check(dir.path(), &format!("{removed} inputs unlinked"));
        }
    }
}
