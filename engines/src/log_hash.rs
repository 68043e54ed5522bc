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
//! * A failed fsync is handled as [`Durability::Fsync`]'s
//!   [`crate::OnSyncError`] says: poison (the put fails, the store refuses
//!   writes until reopened), retry once, or ignore; the last two can
//!   acknowledge a record the kernel dropped.
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
    /// Whether writes are fsynced before they are acknowledged, and what a
    /// failed fsync leads to ([`crate::OnSyncError`]: only the default,
    /// [`Durability::FSYNC`], poisons the store and is crash-safe).
    pub durability: Durability,
    /// A segment is rotated before an append would take it past this size.
    pub segment_bytes: u64,
}

impl Default for LogHashOptions {
    fn default() -> Self {
        LogHashOptions {
            durability: Durability::FSYNC,
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
            durability: opts.durability,
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
    use crate::segment::segment_name;
    use crate::segment::testkit::{self, SegmentEngine, check_all, key};
    use crate::sync::failpoint;
    use crate::{Error, OnSyncError};

    const BOTH: [Durability; 2] = [Durability::Flush, Durability::FSYNC];

    fn opts(durability: Durability, segment_bytes: u64) -> LogHashOptions {
        LogHashOptions {
            durability,
            segment_bytes,
        }
    }

    fn seg_path(dir: &Path, id: u64) -> PathBuf {
        dir.join(segment_name(id, SEGMENT_EXT))
    }

    impl SegmentEngine for LogHash {
        type Options = LogHashOptions;
        const EXT: &'static str = SEGMENT_EXT;

        fn options(sync: bool, segment_bytes: u64) -> LogHashOptions {
            opts(Durability::fsync_if(sync), segment_bytes)
        }

        fn open_store(dir: &Path, o: LogHashOptions) -> Result<Self> {
            LogHash::open(dir, o)
        }

        fn put_pos(&mut self, key: &[u8], value: &[u8]) -> Result<RecordPos> {
            self.put_at(key, value)
        }

        fn merge_stopping_after(&mut self, steps: Option<usize>) -> Result<()> {
            self.segments.crash_after = steps;
            self.merge()
        }

        fn ids(&self) -> Vec<u64> {
            self.segment_ids()
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(32))]

        #[test]
        fn model_flush(ops in testkit::ops(16, 40, 120)) {
            testkit::segment_model::<LogHash>(false, &ops);
        }

        #[test]
        fn model_fsync(ops in testkit::ops(16, 40, 120)) {
            testkit::segment_model::<LogHash>(true, &ops);
        }
    }

    #[test]
    fn put_at_reports_offsets_and_rotates_segments() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = LogHash::open(dir.path(), opts(Durability::FSYNC, 64)).unwrap();
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
                Durability::Fsync(_) => assert!(matches!(r, Err(Error::Corrupt(_)))),
                Durability::Flush => {
                    let mut s = r.unwrap();
                    assert_eq!(s.get(b"a").unwrap(), None);
                    assert_eq!(s.get(b"c").unwrap().as_deref(), Some(&b"0123456789"[..]));
                }
            }
        }
    }

    #[test]
    fn truncation_at_every_offset_of_the_last_record_drops_only_it() {
        for sync in [false, true] {
            testkit::truncation_at_every_offset_of_the_last_record::<LogHash>(sync);
        }
    }

    #[test]
    fn flipped_byte_in_a_record_followed_by_a_valid_one_is_corruption() {
        for sync in [false, true] {
            testkit::flipped_byte_in_a_record_followed_by_a_valid_one::<LogHash>(sync);
        }
    }

    #[test]
    fn a_merge_stopped_after_any_step_recovers_the_same_data() {
        for sync in [false, true] {
            testkit::merge_stopped_after_any_step::<LogHash>(sync);
        }
    }

    /// A store whose fsync failures are handled as `on`, holding `a`, whose
    /// next put meets one failed fsync attempt (the failpoint).
    fn put_meeting_a_failed_fsync(
        dir: &Path,
        on: OnSyncError,
    ) -> (LogHash, Result<RecordPos>, (usize, usize)) {
        let mut s = LogHash::open(dir, opts(Durability::Fsync(on), 1 << 20)).unwrap();
        s.put(b"a", b"1").unwrap();
        failpoint::fail_after(0, 1);
        let r = s.put_at(b"b", b"2");
        (s, r, failpoint::seen())
    }

    #[test]
    fn the_default_poisons_on_a_failed_fsync() {
        let d = LogHashOptions::default().durability;
        assert_eq!(d.on_sync_error(), Some(OnSyncError::Poison));
    }

    #[test]
    fn a_failed_fsync_under_poison_fails_the_put_and_refuses_writes_until_reopened() {
        let dir = tempfile::tempdir().unwrap();
        let (mut s, r, seen) = put_meeting_a_failed_fsync(dir.path(), OnSyncError::Poison);
        assert!(
            r.is_err(),
            "no offset returned for the put whose fsync failed"
        );
        assert_eq!(seen, (1, 1), "no retry");
        assert!(s.put(b"c", b"3").is_err(), "poisoned: refuses the next put");
        assert!(s.delete(b"a").is_err());
        assert!(s.maintain().is_err());
        assert_eq!(failpoint::seen(), (1, 1), "refused before any fsync");
        assert_eq!(s.get(b"a").unwrap().as_deref(), Some(&b"1"[..]));
        drop(s);
        let o = opts(Durability::FSYNC, 1 << 20);
        let mut s = LogHash::open(dir.path(), o).unwrap();
        s.put(b"c", b"3").unwrap();
        assert_eq!(s.get(b"c").unwrap().as_deref(), Some(&b"3"[..]));
    }

    #[test]
    fn a_failed_fsync_under_retry_is_retried_once_and_the_put_acknowledged() {
        let dir = tempfile::tempdir().unwrap();
        let (mut s, r, seen) = put_meeting_a_failed_fsync(dir.path(), OnSyncError::Retry);
        assert_eq!(r.unwrap().segment, 1);
        assert_eq!(seen, (2, 1), "the failed fsync and its retry");
        s.put(b"c", b"3").unwrap();
        failpoint::fail_after(0, 2);
        assert!(s.put(b"d", b"4").is_err(), "a failed retry fails the put");
        assert!(s.put(b"e", b"5").is_err(), "... and poisons the store");
        drop(s);
        let mut s = LogHash::open(dir.path(), opts(Durability::FSYNC, 1 << 20)).unwrap();
        assert_eq!(s.get(b"b").unwrap().as_deref(), Some(&b"2"[..]));
        assert_eq!(s.get(b"c").unwrap().as_deref(), Some(&b"3"[..]));
    }

    #[test]
    fn a_failed_fsync_under_ignore_is_acknowledged_without_a_retry() {
        let dir = tempfile::tempdir().unwrap();
        let (mut s, r, seen) = put_meeting_a_failed_fsync(dir.path(), OnSyncError::Ignore);
        assert!(r.is_ok());
        assert_eq!(seen, (1, 1), "no retry");
        s.put(b"c", b"3").unwrap();
        assert_eq!(s.get(b"b").unwrap().as_deref(), Some(&b"2"[..]));
    }

    #[test]
    fn every_crash_state_of_a_merge_recovers_the_same_data() {
        testkit::every_crash_state_of_a_merge::<LogHash>(None);
    }
}
