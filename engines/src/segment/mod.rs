//! Segment files shared by the two Bitcask-style engines, [`crate::log_hash`]
//! and [`crate::hash_index`]: the record codec, segment naming, the recovery
//! scan, append with rotation, point reads through the in-memory index, and
//! merge.
//!
//! # Byte layout
//!
//! ```text
//! segment file  seg-NNNNNN.<ext>     (NNNNNN = id in decimal, >= 6 digits)
//! +-----------------+-----------------+-----+-----------------+
//! | frame(record 0) | frame(record 1) | ... | frame(record n) |  append-only
//! +-----------------+-----------------+-----+-----------------+
//!
//! frame  = len u32 LE | body | crc32 u32 LE                   (crate::frame)
//! record = kind u8 | key_len u32 LE | key | value
//!          kind 1 (put):       value = the rest of the body
//!          kind 0 (tombstone): no value
//! ```
//!
//! # Invariants
//!
//! * **Replay order.** The store's state is what replaying every segment in
//!   increasing id order, each in file order, gives: a later record for a key
//!   wins, a tombstone removes the key. Ids only grow; a new segment (active
//!   or merge output) always gets an id above every existing one.
//! * **Torn tails.** With `sync`, every record is fdatasynced before the write
//!   is acknowledged and a segment is never appended to once a newer segment
//!   exists, so only the newest segment can end in a torn record; a torn tail
//!   anywhere else is reported as [`Error::Corrupt`]. Without `sync` a power
//!   cut can tear any segment the OS had not written back, so recovery drops
//!   the torn tail of every segment (silently losing acknowledged writes: the
//!   vulnerability on show).
//! * **Merge.** Merge copies the newest record of every live key, as is, into
//!   new segments with ids above all inputs, then unlinks the inputs oldest
//!   first. Case by case, a crash (with `sync`) leaves:
//!   1. outputs partly written, every input present: the outputs repeat the
//!      inputs' newest values and replay after them, so replay gives the same
//!      state; the torn output is the newest segment, whose tail is dropped.
//!   2. outputs complete, every input present: same argument.
//!   3. outputs complete (fsynced, with their names, before the first unlink)
//!      and only a newest-first *suffix* of the inputs left (each unlink is
//!      made durable before the next): a key whose newest input record is a
//!      tombstone either keeps that tombstone in the suffix (it replays after
//!      any older value) or has no record left in the suffix at all, so no
//!      deleted key comes back; every live key's newest value replays last,
//!      from the outputs.
//!
//!   Without `sync`, nothing orders the outputs' data before the unlinks, so a
//!   power cut after a merge can lose everything the inputs held.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

#[cfg(test)]
pub(crate) use crate::poison::failpoint;
pub(crate) use crate::poison::{Poison, failed_error};
use crate::{Durability, Error, Result, frame};

/// Longest key the hash stores accept.
pub const MAX_KEY_LEN: usize = 64 << 10;
/// Longest value the hash stores accept.
pub const MAX_VALUE_LEN: usize = 16 << 20;

const KIND_TOMBSTONE: u8 = 0;
const KIND_PUT: u8 = 1;
const RECORD_HEADER: usize = 5;

/// Where a record was written: the segment id and the byte offset of its
/// frame inside that segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RecordPos {
    /// Id of the segment holding the record.
    pub segment: u64,
    /// Offset of the record's frame in the segment file.
    pub offset: u64,
}

/// Location of a record's whole frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Loc {
    pub segment: u64,
    pub offset: u64,
    pub len: u32,
}

/// One index entry as a sidecar (hint file) stores it: `None` is a tombstone.
pub(crate) type IndexEntry = (Vec<u8>, Option<Loc>);

/// Rejects keys and values the record format or the frame cannot carry.
pub(crate) fn check_entry(key: &[u8], value: Option<&[u8]>) -> Result<()> {
    if key.len() > MAX_KEY_LEN {
        return Err(Error::Invalid(format!(
            "key of {} bytes exceeds {MAX_KEY_LEN}",
            key.len()
        )));
    }
    match value {
        Some(v) if v.len() > MAX_VALUE_LEN => Err(Error::Invalid(format!(
            "value of {} bytes exceeds {MAX_VALUE_LEN}",
            v.len()
        ))),
        _ => Ok(()),
    }
}

/// Encodes one framed record; `value` `None` is a tombstone.
pub(crate) fn encode_record(key: &[u8], value: Option<&[u8]>) -> Vec<u8> {
    let vlen = value.map_or(0, <[u8]>::len);
    let mut body = Vec::with_capacity(RECORD_HEADER + key.len() + vlen);
    body.push(if value.is_some() {
        KIND_PUT
    } else {
        KIND_TOMBSTONE
    });
    body.extend_from_slice(&u32::try_from(key.len()).unwrap_or(u32::MAX).to_le_bytes());
    body.extend_from_slice(key);
    if let Some(v) = value {
        body.extend_from_slice(v);
    }
    frame::encode_one(&body)
}

/// Decodes a record body into its key and value (`None` for a tombstone).
pub(crate) fn decode_record(body: &[u8]) -> Result<(&[u8], Option<&[u8]>)> {
    let bad = || Error::Corrupt("malformed segment record".into());
    let (&kind, rest) = body.split_first().ok_or_else(bad)?;
    let (len_bytes, rest) = rest.split_first_chunk::<4>().ok_or_else(bad)?;
    let klen = u32::from_le_bytes(*len_bytes) as usize;
    if klen > rest.len() {
        return Err(bad());
    }
    let (key, value) = rest.split_at(klen);
    match kind {
        KIND_PUT => Ok((key, Some(value))),
        KIND_TOMBSTONE if value.is_empty() => Ok((key, None)),
        _ => Err(bad()),
    }
}

/// File name of segment `id` with extension `ext`.
pub(crate) fn segment_name(id: u64, ext: &str) -> String {
    format!("seg-{id:06}.{ext}")
}

/// Parses a name made by [`segment_name`].
pub(crate) fn parse_segment_name(name: &str, ext: &str) -> Option<u64> {
    let digits = name.strip_prefix("seg-")?.strip_suffix(ext)?;
    let digits = digits.strip_suffix('.')?;
    if digits.len() < 6 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// Ids of the files in `dir` named like segment files with extension `ext`,
/// in increasing order.
pub(crate) fn list_ids(dir: &Path, ext: &str) -> Result<Vec<u64>> {
    let mut ids = Vec::new();
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        if let Some(id) = entry
            .file_name()
            .to_str()
            .and_then(|n| parse_segment_name(n, ext))
        {
            ids.push(id);
        }
    }
    ids.sort_unstable();
    Ok(ids)
}

/// Creates `dir` and any missing ancestors; under [`Durability::Fsync`],
/// makes each new directory's name durable by fsyncing its parent after
/// creating it.
pub(crate) fn ensure_dir(dir: &Path, durability: Durability) -> Result<()> {
    ensure_dir_with(dir, &mut |parent| {
        // IMPORTANT: the store's directory, and every directory above it
        // that open created, must exist after a power cut before anything
        // inside is acknowledged.
        Ok(durability.sync_dir(parent)?)
    })
}

/// [`ensure_dir`] with the fsync of each new directory's parent made by
/// `sync_parent`, outermost first.
fn ensure_dir_with(dir: &Path, sync_parent: &mut dyn FnMut(&Path) -> Result<()>) -> Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    let parent = dir.parent().filter(|p| !p.as_os_str().is_empty());
    if let Some(p) = parent {
        ensure_dir_with(p, sync_parent)?;
    }
    match fs::create_dir(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists && dir.is_dir() => return Ok(()),
        Err(e) => return Err(e.into()),
    }
    sync_parent(parent.unwrap_or(Path::new(".")))
}

/// What an engine stores beside its segments (the hint files of
/// [`crate::hash_index`]). Every method has a do-nothing default.
pub(crate) trait Sidecar {
    /// Index entries for segment `id`, whose file is `seg_len` bytes long, in
    /// the order to apply them; `None` makes recovery scan the segment.
    fn load(&mut self, _id: u64, _seg_len: u64) -> Option<Vec<IndexEntry>> {
        None
    }
    /// Segment `id` is complete and will never be appended to; `entries`
    /// describe it. With `sync`, the segment is durable when this is called.
    fn sealed(&mut self, _id: u64, _seg_len: u64, _entries: &[IndexEntry]) -> Result<()> {
        Ok(())
    }
    /// Segment `id` is about to be unlinked.
    fn removing(&mut self, _id: u64) -> Result<()> {
        Ok(())
    }
}

/// A sidecar that stores nothing.
pub(crate) struct NoSidecar;

impl Sidecar for NoSidecar {}

/// How a [`Segments`] set behaves.
#[derive(Clone, Copy, Debug)]
pub(crate) struct SegmentConfig {
    /// Extension of segment files.
    pub ext: &'static str,
    /// Fsync: fdatasync every append and fsync the directory on create and
    /// unlink.
    pub durability: Durability,
    /// A segment is rotated before an append would take it past this size.
    pub segment_bytes: u64,
}

struct Active {
    id: u64,
    len: u64,
}

/// The segment files of one store and the in-memory index over them.
pub(crate) struct Segments {
    dir: PathBuf,
    cfg: SegmentConfig,
    /// Every live segment, opened read-write.
    files: BTreeMap<u64, File>,
    /// Segments whose sidecar describes them; they are never appended to.
    described: BTreeSet<u64>,
    /// The segment appends go to; `None` until the next append creates one.
    active: Option<Active>,
    next_id: u64,
    index: HashMap<Vec<u8>, Loc>,
    failed: Poison,
    /// Test failpoint: the number of merge steps allowed before a simulated
    /// crash.
    #[cfg(test)]
    pub(crate) crash_after: Option<usize>,
}

impl Segments {
    /// Opens (creating if needed) the segments in `dir` and rebuilds the
    /// index, truncating torn tails (see the module invariants).
    pub(crate) fn open(dir: &Path, cfg: SegmentConfig, sidecar: &mut dyn Sidecar) -> Result<Self> {
        if cfg.segment_bytes == 0 {
            return Err(Error::Invalid("segment_bytes must be positive".into()));
        }
        ensure_dir(dir, cfg.durability)?;
        let ids = list_ids(dir, cfg.ext)?;
        let next_id = match ids.last() {
            Some(&last) => last
                .checked_add(1)
                .ok_or_else(|| Error::Corrupt("segment ids exhausted".into()))?,
            None => 1,
        };
        let mut s = Segments {
            dir: dir.to_path_buf(),
            cfg,
            files: BTreeMap::new(),
            described: BTreeSet::new(),
            active: None,
            next_id,
            index: HashMap::new(),
            failed: Poison::default(),
            #[cfg(test)]
            crash_after: None,
        };
        let newest = ids.last().copied();
        for id in ids {
            s.recover_segment(id, Some(id) == newest, sidecar)?;
        }
        Ok(s)
    }

    fn recover_segment(&mut self, id: u64, newest: bool, sidecar: &mut dyn Sidecar) -> Result<()> {
        let path = self.path(id);
        let file = OpenOptions::new().read(true).write(true).open(&path)?;
        let len = file.metadata()?.len();
        if let Some(entries) = sidecar.load(id, len) {
            if entries_fit(&entries, id, len) {
                for (key, loc) in entries {
                    self.apply(key, loc);
                }
                self.described.insert(id);
                self.files.insert(id, file);
                return Ok(());
            }
            log::warn!("sidecar of {} does not match it; scanning", path.display());
        }
        let buf = fs::read(&path)?;
        let scan = frame::scan(&buf, &path.display().to_string())?;
        for &(offset, body) in &scan.records {
            let (key, value) = decode_record(body)?;
            let loc = value.map(|_| Loc {
                segment: id,
                offset,
                len: frame_len(body),
            });
            self.apply(key.to_vec(), loc);
        }
        let scanned = buf.len() as u64;
        if scan.has_torn_tail(scanned) {
            if self.cfg.durability.syncs() && !newest {
                return Err(Error::Corrupt(format!(
                    "{}: torn record at byte {} of a segment that is not the newest",
                    path.display(),
                    scan.valid_len
                )));
            }
            log::warn!(
                "{}: dropping {} bytes of torn tail",
                path.display(),
                scanned - scan.valid_len
            );
            file.set_len(scan.valid_len)?;
            // IMPORTANT: the truncation is durable before anything is
            // appended after it, so the torn bytes can never reappear behind
            // an acknowledged record.
            self.cfg.durability.sync_data(&file)?;
        }
        if newest {
            self.active = Some(Active {
                id,
                len: scan.valid_len,
            });
        }
        self.files.insert(id, file);
        Ok(())
    }

    fn apply(&mut self, key: Vec<u8>, loc: Option<Loc>) {
        match loc {
            Some(loc) => {
                self.index.insert(key, loc);
            }
            None => {
                self.index.remove(&key);
            }
        }
    }

    fn path(&self, id: u64) -> PathBuf {
        self.dir.join(segment_name(id, self.cfg.ext))
    }

    /// Marks a point where a merge changes the directory; tests make it fail
    /// there to stop the merge as a crash would.
    fn step(&mut self) -> Result<()> {
        #[cfg(test)]
        failpoint(&mut self.crash_after)?;
        Ok(())
    }

    /// Ids of the live segments, in increasing order.
    pub(crate) fn segment_ids(&self) -> Vec<u64> {
        self.files.keys().copied().collect()
    }

    /// True when `key` is live.
    pub(crate) fn contains(&self, key: &[u8]) -> bool {
        self.index.contains_key(key)
    }

    /// Appends a put (`Some`) or tombstone (`None`) for `key` and updates the
    /// index. With `sync` the record is durable when this returns.
    pub(crate) fn append(&mut self, key: &[u8], value: Option<&[u8]>) -> Result<RecordPos> {
        self.failed.check()?;
        check_entry(key, value)?;
        let rec = encode_record(key, value);
        let r = self.append_frame(&rec);
        match r {
            Ok(loc) => {
                self.apply(key.to_vec(), value.map(|_| loc));
                Ok(RecordPos {
                    segment: loc.segment,
                    offset: loc.offset,
                })
            }
            Err(e) => {
                // A partial record may sit at the end of the active segment;
                // appending after it would turn a torn tail into corruption.
                self.failed.record(Err(e))
            }
        }
    }

    fn append_frame(&mut self, rec: &[u8]) -> Result<Loc> {
        let rec_len = rec.len() as u64;
        let rotate = match &self.active {
            None => true,
            Some(a) => a.len > 0 && a.len.saturating_add(rec_len) > self.cfg.segment_bytes,
        };
        if rotate {
            let id = self.create_segment()?;
            self.active = Some(Active { id, len: 0 });
        }
        let Some(active) = self.active.as_mut() else {
            return Err(failed_error());
        };
        let file = self.files.get(&active.id).ok_or_else(failed_error)?;
        file.write_all_at(rec, active.len)?;
        // IMPORTANT: the record is durable before the write is acknowledged
        // (fdatasync also persists the new file size).
        self.cfg.durability.sync_data(file)?;
        let loc = Loc {
            segment: active.id,
            offset: active.len,
            len: u32::try_from(rec.len()).map_err(|_| Error::Invalid("record too long".into()))?,
        };
        active.len += rec_len;
        Ok(loc)
    }

    /// Creates the next segment file, durably named with `sync`.
    fn create_segment(&mut self) -> Result<u64> {
        let id = self.next_id;
        self.next_id = id
            .checked_add(1)
            .ok_or_else(|| Error::Invalid("segment ids exhausted".into()))?;
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(self.path(id))?;
        // IMPORTANT: the new segment's name is durable before any record in
        // it is acknowledged.
        self.cfg.durability.sync_dir(&self.dir)?;
        self.files.insert(id, file);
        Ok(id)
    }

    /// Reads the whole frame at `loc` and returns its verified body.
    fn read_body(&self, loc: &Loc) -> Result<Vec<u8>> {
        let file = self.files.get(&loc.segment).ok_or_else(|| {
            Error::Corrupt(format!("index refers to missing segment {}", loc.segment))
        })?;
        let mut buf = vec![0u8; loc.len as usize];
        file.read_exact_at(&mut buf, loc.offset).map_err(|e| {
            if e.kind() == io::ErrorKind::UnexpectedEof {
                Error::Corrupt(format!(
                    "segment {}: record at byte {} runs past the end",
                    loc.segment, loc.offset
                ))
            } else {
                Error::Io(e)
            }
        })?;
        match frame::decode_at(&buf) {
            Some((body, n)) if n == buf.len() => Ok(body.to_vec()),
            _ => Err(Error::Corrupt(format!(
                "segment {}: record at byte {} fails its checksum",
                loc.segment, loc.offset
            ))),
        }
    }

    /// Reads the record body at `loc`, checking it is a put of `key`.
    fn read_put(&self, key: &[u8], loc: &Loc) -> Result<Vec<u8>> {
        let body = self.read_body(loc)?;
        match decode_record(&body)? {
            (k, Some(_)) if k == key => Ok(body),
            _ => Err(Error::Corrupt(format!(
                "segment {}: record at byte {} is not the indexed key's value",
                loc.segment, loc.offset
            ))),
        }
    }

    /// Reads the value `loc` holds for `key`.
    fn read_value(&self, key: &[u8], loc: &Loc) -> Result<Vec<u8>> {
        let body = self.read_put(key, loc)?;
        let value = body.get(RECORD_HEADER + key.len()..).unwrap_or_default();
        Ok(value.to_vec())
    }

    /// Returns the value stored under `key`.
    pub(crate) fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        match self.index.get(key) {
            Some(loc) => self.read_value(key, loc).map(Some),
            None => Ok(None),
        }
    }

    /// Returns every live key and value in key order.
    pub(crate) fn scan(&self) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let mut live: Vec<(&Vec<u8>, &Loc)> = self.index.iter().collect();
        live.sort_unstable();
        live.into_iter()
            .map(|(k, loc)| Ok((k.clone(), self.read_value(k, loc)?)))
            .collect()
    }

    /// Rewrites the live records into new segments and unlinks the old ones
    /// (see the module invariants for the crash cases).
    pub(crate) fn merge(&mut self, sidecar: &mut dyn Sidecar) -> Result<()> {
        self.failed.check()?;
        let r = self.merge_inner(sidecar);
        self.failed.record(r)
    }

    fn merge_inner(&mut self, sidecar: &mut dyn Sidecar) -> Result<()> {
        let inputs = self.segment_ids();
        if inputs.is_empty() {
            return Ok(());
        }
        self.active = None;
        let mut live: Vec<(Vec<u8>, Loc)> =
            self.index.iter().map(|(k, l)| (k.clone(), *l)).collect();
        live.sort_unstable();
        let mut new_index = HashMap::with_capacity(live.len());
        let mut buf = Vec::new();
        let mut entries: Vec<IndexEntry> = Vec::new();
        let mut out_id = None;
        for (key, loc) in live {
            // Verified before copying: merge must not launder a damaged record.
            let body = self.read_put(&key, &loc)?;
            let rec_len = frame::OVERHEAD + body.len();
            if !buf.is_empty() && (buf.len() + rec_len) as u64 > self.cfg.segment_bytes {
                if let Some(id) = out_id.take() {
                    self.write_output(id, &buf, &entries, sidecar)?;
                }
                buf.clear();
                entries.clear();
            }
            let id = match out_id {
                Some(id) => id,
                None => {
                    let id = self.next_id;
                    self.next_id = id
                        .checked_add(1)
                        .ok_or_else(|| Error::Invalid("segment ids exhausted".into()))?;
                    out_id = Some(id);
                    id
                }
            };
            let new_loc = Loc {
                segment: id,
                offset: buf.len() as u64,
                len: loc.len,
            };
            frame::encode(&body, &mut buf);
            entries.push((key.clone(), Some(new_loc)));
            new_index.insert(key, new_loc);
        }
        if let Some(id) = out_id {
            self.write_output(id, &buf, &entries, sidecar)?;
        }
        for id in inputs {
            self.step()?;
            sidecar.removing(id)?;
            self.files.remove(&id);
            self.described.remove(&id);
            self.step()?;
            fs::remove_file(self.path(id))?;
            // IMPORTANT: inputs are unlinked oldest first, each durably
            // before the next, so a crash leaves a newest-first suffix of
            // them (merge crash case 3).
            self.cfg.durability.sync_dir(&self.dir)?;
        }
        self.index = new_index;
        Ok(())
    }

    fn write_output(
        &mut self,
        id: u64,
        buf: &[u8],
        entries: &[IndexEntry],
        sidecar: &mut dyn Sidecar,
    ) -> Result<()> {
        self.step()?;
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(self.path(id))?;
        self.step()?;
        file.write_all_at(buf, 0)?;
        // IMPORTANT: a merge output's bytes, then its name, are durable
        // before the next segment is created and before any input is
        // unlinked (merge crash cases 1-3).
        self.cfg.durability.sync_data(&file)?;
        self.cfg.durability.sync_dir(&self.dir)?;
        self.files.insert(id, file);
        self.step()?;
        sidecar.sealed(id, buf.len() as u64, entries)?;
        self.described.insert(id);
        Ok(())
    }

    /// Stops appending to the active segment and hands every segment the
    /// sidecar does not yet describe to [`Sidecar::sealed`].
    pub(crate) fn seal_all(&mut self, sidecar: &mut dyn Sidecar) -> Result<()> {
        self.failed.check()?;
        self.active = None;
        for id in self.segment_ids() {
            if self.described.contains(&id) {
                continue;
            }
            let path = self.path(id);
            let buf = fs::read(&path)?;
            let what = path.display().to_string();
            let scan = frame::scan(&buf, &what)?;
            if scan.has_torn_tail(buf.len() as u64) {
                return Err(Error::Corrupt(format!(
                    "{what}: torn record in a live segment"
                )));
            }
            let mut last: BTreeMap<&[u8], Option<Loc>> = BTreeMap::new();
            for &(offset, body) in &scan.records {
                let (key, value) = decode_record(body)?;
                let loc = value.map(|_| Loc {
                    segment: id,
                    offset,
                    len: frame_len(body),
                });
                last.insert(key, loc);
            }
            let entries: Vec<IndexEntry> = last.into_iter().map(|(k, l)| (k.to_vec(), l)).collect();
            sidecar.sealed(id, buf.len() as u64, &entries)?;
            self.described.insert(id);
        }
        Ok(())
    }
}

/// Length of the frame around `body` (bodies come from a scan, so they fit).
fn frame_len(body: &[u8]) -> u32 {
    u32::try_from(frame::OVERHEAD + body.len()).unwrap_or(u32::MAX)
}

/// True when every location in `entries` lies inside segment `id` of
/// `seg_len` bytes.
fn entries_fit(entries: &[IndexEntry], id: u64, seg_len: u64) -> bool {
    entries.iter().all(|(_, loc)| match loc {
        None => true,
        Some(l) => {
            l.segment == id
                && (l.len as usize) >= frame::OVERHEAD
                && l.offset
                    .checked_add(u64::from(l.len))
                    .is_some_and(|end| end <= seg_len)
        }
    })
}

#[cfg(test)]
pub(crate) mod testkit;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_roundtrip_and_tombstone() {
        let rec = encode_record(b"key", Some(b"value"));
        let (body, n) = frame::decode_at(&rec).unwrap();
        assert_eq!(n, rec.len());
        assert_eq!(
            decode_record(body).unwrap(),
            (&b"key"[..], Some(&b"value"[..]))
        );
        let rec = encode_record(b"gone", None);
        let (body, _) = frame::decode_at(&rec).unwrap();
        assert_eq!(decode_record(body).unwrap(), (&b"gone"[..], None));
    }

    #[test]
    fn malformed_record_bodies_are_corrupt() {
        for body in [
            &b""[..],
            b"\x01\x05\x00\x00",
            b"\x01\x09\x00\x00\x00abc",
            b"\x07\x00\x00\x00\x00",
            b"\x00\x01\x00\x00\x00kv",
        ] {
            assert!(
                matches!(decode_record(body), Err(Error::Corrupt(_))),
                "{body:?}"
            );
        }
    }

    #[test]
    fn segment_names_roundtrip_and_reject_strangers() {
        assert_eq!(segment_name(7, "log"), "seg-000007.log");
        assert_eq!(parse_segment_name("seg-000007.log", "log"), Some(7));
        assert_eq!(
            parse_segment_name("seg-1234567.log", "log"),
            Some(1_234_567)
        );
        for bad in [
            "seg-000007.hint",
            "seg-7.log",
            "seg-00000x.log",
            "seg-000007.log.tmp",
            "xseg-000007.log",
        ] {
            assert_eq!(parse_segment_name(bad, "log"), None, "{bad}");
        }
    }

    /// Regression (found by review of issue 4): `open` created a missing
    /// directory with all its missing ancestors but fsynced only the
    /// innermost one's parent, so a power cut could lose an outer directory,
    /// and with it every acknowledged write inside.
    #[test]
    fn ensure_dir_syncs_the_parent_of_every_directory_it_creates() {
        let root = tempfile::tempdir().unwrap();
        fs::create_dir(root.path().join("a")).unwrap();
        let dir = root.path().join("a/b/c/d");
        let synced = |dir: &Path| {
            let mut synced = Vec::new();
            let mut record = |p: &Path| {
                synced.push(p.to_path_buf());
                Ok(())
            };
            ensure_dir_with(dir, &mut record).unwrap();
            synced
        };
        let want: Vec<PathBuf> = ["a", "a/b", "a/b/c"].map(|p| root.path().join(p)).into();
        assert_eq!(synced(&dir), want);
        assert!(dir.is_dir());
        assert_eq!(synced(&dir), Vec::<PathBuf>::new(), "it exists now");
    }

    #[test]
    fn oversized_entries_are_invalid() {
        assert!(matches!(
            check_entry(&vec![0; MAX_KEY_LEN + 1], None),
            Err(Error::Invalid(_))
        ));
        assert!(matches!(
            check_entry(b"k", Some(&vec![0; MAX_VALUE_LEN + 1])),
            Err(Error::Invalid(_))
        ));
        assert!(check_entry(&vec![0; MAX_KEY_LEN], Some(&[])).is_ok());
    }
}
