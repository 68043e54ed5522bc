//! Bitcask with hint files: the log-structured hash table of
//! [`crate::log_hash`], plus a *hint file* beside each sealed segment that
//! lists its keys and record positions, so recovery rebuilds the index
//! without reading any value.
//!
//! # Byte layout
//!
//! ```text
//! <dir>/seg-000001.data   segment, as in crate::segment:
//!                         frame(kind u8 | key_len u32 LE | key | value) ...
//! <dir>/seg-000001.hint   hint for that segment (optional):
//! +----------------+----------------+-----+-----------------+
//! | frame(entry 0) | frame(entry 1) | ... | frame(footer)   |
//! +----------------+----------------+-----+-----------------+
//! entry  = kind u8 | key_len u32 LE | key | offset u64 LE | len u32 LE
//!          kind 1: the key's put is the frame at [offset, offset + len)
//!          kind 0: tombstone (offset = len = 0)
//! footer = kind u8 = 2 | entry_count u64 LE | segment_len u64 LE
//! frame  = len u32 LE | body | crc32 u32 LE      (crate::frame)
//! ```
//!
//! # Invariants
//!
//! * A hint is written only for a *sealed* segment (a merge output, or every
//!   segment at close), and a segment with a hint is never appended to again:
//!   after reopening, new records go to a new segment.
//! * A hint is used only if every frame is valid, nothing is torn, the footer
//!   ends it, its count matches, its `segment_len` equals the segment file's
//!   length and every position lies inside the segment. Otherwise (missing,
//!   torn, damaged or stale) recovery scans the segment instead.
//! * Values behind a hint are checked when read: a damaged record is reported
//!   as [`crate::Error::Corrupt`] by `get`, `scan` and `maintain`.
//! * Merge crash safety is [`crate::segment`]'s; a merge output's hint is
//!   written after the output is durable and before any input is unlinked,
//!   and an input's hint is unlinked before its segment. A hint whose segment
//!   is gone is deleted at open.
//!
//! # Durability (`sync_writes`, as in the analysis' `hash-index-storage`)
//!
//! * `false`: records and hints are written and flushed to the OS, never
//!   fsynced; a hint is overwritten in place. A power cut loses acknowledged
//!   writes, and a merge can lose the old segments before the merged one is
//!   on disk.
//! * `true`: every record is fdatasynced before the write is acknowledged, the
//!   directory is fsynced when a segment or hint is created or removed, and a
//!   hint is replaced atomically with [`durafs::fsio::rewrite_atomic`].

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use crate::segment::{self, IndexEntry, Loc, RecordPos, SegmentConfig, Segments, Sidecar};
use crate::{Durability, Error, KvStore, Result, frame};

/// Extension of segment files.
pub const SEGMENT_EXT: &str = "data";
/// Extension of hint files.
pub const HINT_EXT: &str = "hint";

const HINT_TOMBSTONE: u8 = 0;
const HINT_PUT: u8 = 1;
const HINT_FOOTER: u8 = 2;

/// Options for [`HashIndex`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HashIndexOptions {
    /// fsync every write, and the directory on every create and unlink.
    pub sync_writes: bool,
    /// A segment is rotated before an append would take it past this size.
    pub segment_bytes: u64,
}

impl Default for HashIndexOptions {
    fn default() -> Self {
        HashIndexOptions {
            sync_writes: true,
            segment_bytes: 4 << 20,
        }
    }
}

/// A Bitcask store with hint files (see the module documentation).
pub struct HashIndex {
    segments: Segments,
    hints: Hints,
}

impl HashIndex {
    /// Opens the store in `dir`, creating the directory if needed. Segments
    /// with a usable hint are indexed from it; the rest are scanned.
    pub fn open(dir: &Path, opts: HashIndexOptions) -> Result<Self> {
        let cfg = SegmentConfig {
            ext: SEGMENT_EXT,
            durability: Durability::fsync_if(opts.sync_writes),
            segment_bytes: opts.segment_bytes,
        };
        let mut hints = Hints {
            dir: dir.to_path_buf(),
            durability: Durability::fsync_if(opts.sync_writes),
        };
        let segments = Segments::open(dir, cfg, &mut hints)?;
        hints.remove_orphans(&segments.segment_ids())?;
        Ok(HashIndex { segments, hints })
    }

    /// Stores `value` under `key` and returns where the record was written.
    pub fn put_at(&mut self, key: &[u8], value: &[u8]) -> Result<RecordPos> {
        self.segments.append(key, Some(value))
    }

    /// Rewrites the live records into new segments, each with a hint, and
    /// removes the old segments and their hints.
    pub fn merge(&mut self) -> Result<()> {
        self.segments.merge(&mut self.hints)
    }

    /// Seals every segment and writes a hint for each that lacks one; later
    /// writes go to a new segment.
    pub fn write_hints(&mut self) -> Result<()> {
        self.segments.seal_all(&mut self.hints)
    }

    /// Ids of the segment files, oldest first.
    pub fn segment_ids(&self) -> Vec<u64> {
        self.segments.segment_ids()
    }
}

impl KvStore for HashIndex {
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

    fn close(mut self: Box<Self>) -> Result<()> {
        self.write_hints()
    }
}

/// The hint files of one store.
struct Hints {
    dir: PathBuf,
    durability: Durability,
}

impl Hints {
    fn path(&self, id: u64) -> PathBuf {
        self.dir.join(segment::segment_name(id, HINT_EXT))
    }

    /// Deletes hints (and leftover temporary hints) whose segment is gone.
    fn remove_orphans(&self, live: &[u64]) -> Result<()> {
        let mut removed = false;
        for entry in fs::read_dir(&self.dir)? {
            let entry = entry?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            let (base, tmp) = match name.strip_suffix(".tmp") {
                Some(base) => (base, true),
                None => (name, false),
            };
            let Some(id) = segment::parse_segment_name(base, HINT_EXT) else {
                continue;
            };
            if tmp || live.binary_search(&id).is_err() {
                fs::remove_file(entry.path())?;
                removed = true;
            }
        }
        if removed {
            self.durability.sync_dir(&self.dir)?;
        }
        Ok(())
    }
}

impl Sidecar for Hints {
    fn load(&mut self, id: u64, seg_len: u64) -> Option<Vec<IndexEntry>> {
        let path = self.path(id);
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return None,
            Err(e) => {
                log::warn!("{}: {e}; scanning the segment instead", path.display());
                return None;
            }
        };
        match decode_hint(&bytes, id, seg_len) {
            Ok(entries) => Some(entries),
            Err(e) => {
                log::warn!("{}: {e}; scanning the segment instead", path.display());
                None
            }
        }
    }

    fn sealed(&mut self, id: u64, seg_len: u64, entries: &[IndexEntry]) -> Result<()> {
        let bytes = encode_hint(entries, seg_len);
        let path = self.path(id);
        // IMPORTANT: the segment is durable already (Segments syncs it
        // before sealing); under Fsync the hint then appears whole or not at
        // all, and its name is durable before any input of a merge is
        // unlinked.
        self.durability.rewrite(&path, &bytes)?;
        Ok(())
    }

    fn removing(&mut self, id: u64) -> Result<()> {
        // The directory fsync that follows the segment's unlink covers this
        // one; a hint left behind without its segment is deleted at open.
        match fs::remove_file(self.path(id)) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}

fn encode_hint(entries: &[IndexEntry], seg_len: u64) -> Vec<u8> {
    let mut out = Vec::new();
    let mut body = Vec::new();
    for (key, loc) in entries {
        body.clear();
        body.push(if loc.is_some() {
            HINT_PUT
        } else {
            HINT_TOMBSTONE
        });
        body.extend_from_slice(&u32::try_from(key.len()).unwrap_or(u32::MAX).to_le_bytes());
        body.extend_from_slice(key);
        let (offset, len) = loc.map_or((0, 0), |l| (l.offset, l.len));
        body.extend_from_slice(&offset.to_le_bytes());
        body.extend_from_slice(&len.to_le_bytes());
        frame::encode(&body, &mut out);
    }
    body.clear();
    body.push(HINT_FOOTER);
    body.extend_from_slice(&(entries.len() as u64).to_le_bytes());
    body.extend_from_slice(&seg_len.to_le_bytes());
    frame::encode(&body, &mut out);
    out
}

/// Decodes a hint for segment `id`, which is `seg_len` bytes long. Any flaw
/// (including a torn tail, which for a hint means "incomplete") is an error.
fn decode_hint(bytes: &[u8], id: u64, seg_len: u64) -> Result<Vec<IndexEntry>> {
    let bad = |what: &str| Error::Corrupt(format!("hint for segment {id}: {what}"));
    let scan = frame::scan(bytes, "hint")?;
    if scan.has_torn_tail(bytes.len() as u64) {
        return Err(bad("incomplete"));
    }
    let Some(((_, footer), records)) = scan.records.split_last() else {
        return Err(bad("empty"));
    };
    let (&kind, rest) = footer.split_first().ok_or_else(|| bad("empty footer"))?;
    let (count, rest) = rest
        .split_first_chunk::<8>()
        .ok_or_else(|| bad("short footer"))?;
    let (len, rest) = rest
        .split_first_chunk::<8>()
        .ok_or_else(|| bad("short footer"))?;
    if kind != HINT_FOOTER || !rest.is_empty() {
        return Err(bad("no footer"));
    }
    if u64::from_le_bytes(*count) != records.len() as u64 {
        return Err(bad("entry count mismatch"));
    }
    if u64::from_le_bytes(*len) != seg_len {
        return Err(bad("segment length mismatch (stale hint)"));
    }
    records
        .iter()
        .map(|&(_, body)| decode_entry(body, id).ok_or_else(|| bad("malformed entry")))
        .collect()
}

fn decode_entry(body: &[u8], id: u64) -> Option<IndexEntry> {
    let (&kind, rest) = body.split_first()?;
    let (klen, rest) = rest.split_first_chunk::<4>()?;
    let klen = u32::from_le_bytes(*klen) as usize;
    if rest.len() != klen.checked_add(12)? {
        return None;
    }
    let (key, rest) = rest.split_at(klen);
    let (offset, len) = rest.split_first_chunk::<8>()?;
    let len = u32::from_le_bytes(len.try_into().ok()?);
    let offset = u64::from_le_bytes(*offset);
    match kind {
        HINT_PUT => Some((
            key.to_vec(),
            Some(Loc {
                segment: id,
                offset,
                len,
            }),
        )),
        HINT_TOMBSTONE if offset == 0 && len == 0 => Some((key.to_vec(), None)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use proptest::prelude::*;

    use super::*;
    use crate::segment::testkit::{self, SegmentEngine, check_all, copy_dir};

    fn opts(sync_writes: bool, segment_bytes: u64) -> HashIndexOptions {
        HashIndexOptions {
            sync_writes,
            segment_bytes,
        }
    }

    fn seg_path(dir: &Path, id: u64) -> PathBuf {
        dir.join(segment::segment_name(id, SEGMENT_EXT))
    }

    fn hint_path(dir: &Path, id: u64) -> PathBuf {
        dir.join(segment::segment_name(id, HINT_EXT))
    }

    fn close(s: HashIndex) {
        Box::new(s).close().unwrap();
    }

    impl SegmentEngine for HashIndex {
        type Options = HashIndexOptions;
        const EXT: &'static str = SEGMENT_EXT;

        fn options(sync: bool, segment_bytes: u64) -> HashIndexOptions {
            opts(sync, segment_bytes)
        }

        fn open_store(dir: &Path, o: HashIndexOptions) -> Result<Self> {
            HashIndex::open(dir, o)
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
        fn model_without_sync(ops in testkit::ops(16, 40, 120)) {
            testkit::segment_model::<HashIndex>(false, &ops);
        }

        #[test]
        fn model_with_sync(ops in testkit::ops(16, 40, 120)) {
            testkit::segment_model::<HashIndex>(true, &ops);
        }
    }

    /// A store of three keys, closed so every segment has a hint; returns the
    /// position of `"middle"`'s record.
    fn hinted_store(dir: &Path, sync: bool) -> (RecordPos, RecordPos) {
        let mut s = HashIndex::open(dir, opts(sync, 1 << 20)).unwrap();
        s.put(b"first", b"1").unwrap();
        let mid = s.put_at(b"middle", b"the damaged one").unwrap();
        let last = s.put_at(b"last", b"3").unwrap();
        s.delete(b"first").unwrap();
        close(s);
        (mid, last)
    }

    #[test]
    fn close_writes_hints_and_reopen_uses_them() {
        for sync in [false, true] {
            let dir = tempfile::tempdir().unwrap();
            let (mid, _) = hinted_store(dir.path(), sync);
            assert!(hint_path(dir.path(), mid.segment).exists());
            // With a usable hint the damaged value is not read at open...
            let seg = seg_path(dir.path(), mid.segment);
            let mut bytes = fs::read(&seg).unwrap();
            bytes[mid.offset as usize + 20] ^= 0x55;
            fs::write(&seg, &bytes).unwrap();
            let mut s = HashIndex::open(dir.path(), opts(sync, 1 << 20)).unwrap();
            // ...but reading it reports corruption instead of returning it.
            assert!(matches!(s.get(b"middle"), Err(Error::Corrupt(_))));
            assert!(matches!(s.scan(), Err(Error::Corrupt(_))));
            assert!(matches!(s.maintain(), Err(Error::Corrupt(_))));
            assert_eq!(s.get(b"last").unwrap().as_deref(), Some(&b"3"[..]));
            assert_eq!(s.get(b"first").unwrap(), None);
        }
    }

    #[test]
    fn writes_after_reopen_go_to_a_new_segment() {
        let dir = tempfile::tempdir().unwrap();
        let (mid, _) = hinted_store(dir.path(), true);
        let mut s = HashIndex::open(dir.path(), opts(true, 1 << 20)).unwrap();
        let pos = s.put_at(b"next", b"4").unwrap();
        assert_eq!(
            pos,
            RecordPos {
                segment: mid.segment + 1,
                offset: 0
            }
        );
        drop(s);
        let mut s = HashIndex::open(dir.path(), opts(true, 1 << 20)).unwrap();
        assert_eq!(s.get(b"next").unwrap().as_deref(), Some(&b"4"[..]));
        assert_eq!(
            s.get(b"middle").unwrap().as_deref(),
            Some(&b"the damaged one"[..])
        );
    }

    #[test]
    fn missing_torn_damaged_or_stale_hints_fall_back_to_scanning() {
        for sync in [false, true] {
            let template = tempfile::tempdir().unwrap();
            let (mid, _) = hinted_store(template.path(), sync);
            let want: BTreeMap<Vec<u8>, Vec<u8>> = [
                (b"last".to_vec(), b"3".to_vec()),
                (b"middle".to_vec(), b"the damaged one".to_vec()),
            ]
            .into();
            let hint = fs::read(hint_path(template.path(), mid.segment)).unwrap();
            let mut variants: Vec<Option<Vec<u8>>> = vec![None];
            for cut in 0..hint.len() {
                variants.push(Some(hint[..cut].to_vec()));
            }
            for at in 0..hint.len() {
                let mut h = hint.clone();
                h[at] ^= 0x10;
                variants.push(Some(h));
            }
            for v in variants {
                let dir = copy_dir(template.path());
                let hp = hint_path(dir.path(), mid.segment);
                match &v {
                    None => fs::remove_file(&hp).unwrap(),
                    Some(bytes) => fs::write(&hp, bytes).unwrap(),
                }
                let mut s = HashIndex::open(dir.path(), opts(sync, 1 << 20)).unwrap();
                check_all(&mut s, &want);
            }
            // Stale: the segment grew after the hint was written.
            let dir = copy_dir(template.path());
            let seg = seg_path(dir.path(), mid.segment);
            let mut bytes = fs::read(&seg).unwrap();
            bytes.extend_from_slice(&segment::encode_record(b"extra", Some(b"seen")));
            fs::write(&seg, &bytes).unwrap();
            let mut s = HashIndex::open(dir.path(), opts(sync, 1 << 20)).unwrap();
            assert_eq!(s.get(b"extra").unwrap().as_deref(), Some(&b"seen"[..]));
        }
    }

    #[test]
    fn truncation_at_every_offset_of_the_last_record_drops_only_it() {
        for sync in [false, true] {
            testkit::truncation_at_every_offset_of_the_last_record::<HashIndex>(sync);
        }
    }

    #[test]
    fn flipped_byte_in_an_unhinted_record_followed_by_a_valid_one_is_corruption() {
        for sync in [false, true] {
            testkit::flipped_byte_in_a_record_followed_by_a_valid_one::<HashIndex>(sync);
        }
    }

    #[test]
    fn a_merge_stopped_after_any_step_recovers_the_same_data() {
        for sync in [false, true] {
            testkit::merge_stopped_after_any_step::<HashIndex>(sync);
        }
    }

    #[test]
    fn every_crash_state_of_a_merge_recovers_the_same_data() {
        testkit::every_crash_state_of_a_merge::<HashIndex>(Some(HINT_EXT));
    }

    #[test]
    fn orphan_and_temporary_hints_are_removed_at_open() {
        let dir = tempfile::tempdir().unwrap();
        hinted_store(dir.path(), true);
        fs::write(hint_path(dir.path(), 99), b"orphan").unwrap();
        fs::write(dir.path().join("seg-000001.hint.tmp"), b"tmp").unwrap();
        let mut s = HashIndex::open(dir.path(), opts(true, 1 << 20)).unwrap();
        assert!(!hint_path(dir.path(), 99).exists());
        assert!(!dir.path().join("seg-000001.hint.tmp").exists());
        assert!(hint_path(dir.path(), 1).exists());
        assert_eq!(s.get(b"last").unwrap().as_deref(), Some(&b"3"[..]));
    }
}
