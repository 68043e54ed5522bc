//! Sorted string tables: immutable files of sorted keys, each mapped to a
//! value or to a tombstone (a delete that shadows older tables).
//!
//! # Byte layout
//!
//! ```text
//! offset 0
//! +-----------------------------------------------+
//! | data block 0  = frame(entry entry ...)        |  entries in strictly increasing
//! | data block 1  = frame(entry entry ...)        |  key order across the whole file;
//! | ...                                           |  a block is cut at ~BLOCK_SIZE bytes
//! +-----------------------------------------------+ <- index_offset
//! | index entry 0 = frame(handle of data block 0) |  one frame per data block
//! | ...                                           |
//! +-----------------------------------------------+ <- index_offset + index_len
//! | footer        = frame(footer body)            |  fixed FOOTER_LEN = 40 bytes
//! +-----------------------------------------------+ <- file length
//!
//! frame       = len u32 LE | body | crc32 u32 LE                (crate::frame)
//! entry       = kind u8 | key_len u32 LE | key | value part
//!               kind 1 (value):     value part = val_len u32 LE | value
//!               kind 0 (tombstone): value part is empty
//! handle      = offset u64 LE | len u32 LE                      (the block's whole frame)
//!               | first_len u32 LE | first key | last_len u32 LE | last key
//! footer body = magic "DFSSST01" (8) | index_offset u64 LE | index_len u64 LE
//!               | entry_count u64 LE                            (32 bytes)
//! ```
//!
//! # Invariants
//!
//! * [`SSTable::open`] accepts a table only if every byte of it lies inside a
//!   frame whose checksum holds: the data blocks tile `[0, index_offset)`,
//!   the index frames tile `[index_offset, index_offset + index_len)`, and the
//!   footer ends the file. A table cut short, zero-filled or with any byte
//!   flipped is rejected with [`Error::Corrupt`]; it is never read as data.
//! * Each index handle's first and last key equal the first and last key of
//!   its block, and the footer's entry count equals the number of entries.
//!
//! # Durability
//!
//! [`SSTableWriter::finish`] under [`Durability::Flush`] writes, flushes and
//! closes the file without fsync (the analysis' `sstable.py:91-95`): until the
//! OS writes it back on its own, a power cut can leave the table missing,
//! short or zero-filled. Under [`Durability::Fsync`] it fsyncs the file, then
//! its directory, so the table's bytes and its name survive a power cut.

use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::{Durability, Error, Result, frame};

/// Target size of a data block's body; a block is cut once it reaches this.
pub const BLOCK_SIZE: usize = 4096;
/// Size of the footer frame that ends every table.
pub const FOOTER_LEN: usize = frame::OVERHEAD + FOOTER_BODY_LEN;
/// Magic number opening the footer body.
pub const MAGIC: [u8; 8] = *b"DFSSST01";
/// Longest key a table (or the LSM tree) accepts.
pub const MAX_KEY_LEN: usize = 64 << 10;
/// Longest value a table (or the LSM tree) accepts.
pub const MAX_VALUE_LEN: usize = 16 << 20;

const FOOTER_BODY_LEN: usize = 32;
const KIND_TOMBSTONE: u8 = 0;
const KIND_VALUE: u8 = 1;

/// A stored entry: `Some(value)`, or `None` for a tombstone.
pub type Entry = Option<Vec<u8>>;

/// Rejects keys and values longer than [`MAX_KEY_LEN`] / [`MAX_VALUE_LEN`],
/// which keeps every block, index entry and log record below
/// [`frame::MAX_BODY`].
pub fn check_entry(key: &[u8], value: Option<&[u8]>) -> Result<()> {
    let too_long =
        |what: &str, len: usize| Error::Invalid(format!("{what} of {len} bytes is too long"));
    if key.len() > MAX_KEY_LEN {
        return Err(too_long("key", key.len()));
    }
    match value {
        Some(v) if v.len() > MAX_VALUE_LEN => Err(too_long("value", v.len())),
        _ => Ok(()),
    }
}

/// Appends `kind | key_len | key | value part` (the entry layout above).
/// The caller has passed the pair through [`check_entry`], so lengths fit u32.
pub(crate) fn encode_entry(key: &[u8], value: Option<&[u8]>, out: &mut Vec<u8>) {
    out.push(value.map_or(KIND_TOMBSTONE, |_| KIND_VALUE));
    put_bytes(key, out);
    if let Some(v) = value {
        put_bytes(v, out);
    }
}

/// Decodes one entry written by [`encode_entry`].
pub(crate) fn decode_entry(d: &mut Decoder<'_>) -> Result<(Vec<u8>, Entry)> {
    let kind = d.u8()?;
    let key = d.len_prefixed()?.to_vec();
    match kind {
        KIND_VALUE => Ok((key, Some(d.len_prefixed()?.to_vec()))),
        KIND_TOMBSTONE => Ok((key, None)),
        other => Err(corrupt(format!("{}: unknown entry kind {other}", d.what))),
    }
}

fn put_bytes(b: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(&u32::try_from(b.len()).unwrap_or(u32::MAX).to_le_bytes());
    out.extend_from_slice(b);
}

/// Bounds-checked little-endian reader over bytes that came from disk. Every
/// short read is [`Error::Corrupt`], never a panic.
pub(crate) struct Decoder<'a> {
    buf: &'a [u8],
    what: &'static str,
}

impl<'a> Decoder<'a> {
    pub(crate) fn new(buf: &'a [u8], what: &'static str) -> Self {
        Decoder { buf, what }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    pub(crate) fn bytes(&mut self, n: usize) -> Result<&'a [u8]> {
        if n > self.buf.len() {
            return Err(Error::Corrupt(format!(
                "{}: field of {n} bytes runs past the end of the record",
                self.what
            )));
        }
        let (head, rest) = self.buf.split_at(n);
        self.buf = rest;
        Ok(head)
    }

    pub(crate) fn array<const N: usize>(&mut self) -> Result<[u8; N]> {
        let b = self.bytes(N)?;
        b.try_into()
            .map_err(|_| Error::Corrupt(format!("{}: short field", self.what)))
    }

    pub(crate) fn u8(&mut self) -> Result<u8> {
        let [b] = self.array::<1>()?;
        Ok(b)
    }

    pub(crate) fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_le_bytes(self.array()?))
    }

    pub(crate) fn u64(&mut self) -> Result<u64> {
        Ok(u64::from_le_bytes(self.array()?))
    }

    pub(crate) fn len_prefixed(&mut self) -> Result<&'a [u8]> {
        let n = self.u32()?;
        self.bytes(usize::try_from(n).unwrap_or(usize::MAX))
    }

    /// Fails unless every byte has been consumed.
    pub(crate) fn finish(&self) -> Result<()> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            Err(Error::Corrupt(format!(
                "{}: {} unexpected trailing bytes",
                self.what,
                self.buf.len()
            )))
        }
    }
}

/// Writes one table. Keys must be added in strictly increasing order.
pub struct SSTableWriter {
    out: BufWriter<File>,
    path: PathBuf,
    durability: Durability,
    block_size: usize,
    /// Encoded entries of the block being built; never holds more than one
    /// entry beyond `block_size`.
    block: Vec<u8>,
    block_first: Vec<u8>,
    last_key: Option<Vec<u8>>,
    /// Bytes written so far = offset of the next data block.
    offset: u64,
    /// Framed handles of the finished blocks, written after the last block.
    index: Vec<u8>,
    entries: u64,
}

impl SSTableWriter {
    /// Creates (or truncates) the table file at `path`. `durability` governs
    /// [`SSTableWriter::finish`].
    pub fn create(path: &Path, durability: Durability) -> Result<Self> {
        let file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)?;
        Ok(SSTableWriter {
            out: BufWriter::new(file),
            path: path.to_path_buf(),
            durability,
            block_size: BLOCK_SIZE,
            block: Vec::new(),
            block_first: Vec::new(),
            last_key: None,
            offset: 0,
            index: Vec::new(),
            entries: 0,
        })
    }

    /// Sets the target block size (tests use small blocks to get many).
    pub fn with_block_size(mut self, block_size: usize) -> Self {
        self.block_size = block_size.max(1);
        self
    }

    /// Adds `key` with `value`, or a tombstone when `value` is `None`.
    pub fn add(&mut self, key: &[u8], value: Option<&[u8]>) -> Result<()> {
        check_entry(key, value)?;
        if let Some(last) = &self.last_key {
            if key <= last.as_slice() {
                return Err(Error::Invalid(
                    "sstable keys must be added in strictly increasing order".into(),
                ));
            }
        }
        if self.block.is_empty() {
            self.block_first = key.to_vec();
        }
        encode_entry(key, value, &mut self.block);
        self.last_key = Some(key.to_vec());
        self.entries += 1;
        if self.block.len() >= self.block_size {
            self.finish_block()?;
        }
        Ok(())
    }

    fn finish_block(&mut self) -> Result<()> {
        let Some(last) = &self.last_key else {
            return Ok(());
        };
        if self.block.is_empty() {
            return Ok(());
        }
        let framed = frame::encode_one(&self.block);
        let len = u32::try_from(framed.len())
            .map_err(|_| Error::Invalid("sstable block exceeds 4 GiB".into()))?;
        self.out.write_all(&framed)?;
        let mut handle = Vec::with_capacity(20 + self.block_first.len() + last.len());
        handle.extend_from_slice(&self.offset.to_le_bytes());
        handle.extend_from_slice(&len.to_le_bytes());
        put_bytes(&self.block_first, &mut handle);
        put_bytes(last, &mut handle);
        frame::encode(&handle, &mut self.index);
        self.offset += u64::from(len);
        self.block.clear();
        Ok(())
    }

    /// Writes the last block, the index and the footer, then closes the file
    /// (see the module's Durability section). Returns the entry count.
    pub fn finish(mut self) -> Result<u64> {
        self.finish_block()?;
        let index_offset = self.offset;
        let index_len = self.index.len() as u64;
        self.out.write_all(&self.index)?;
        let mut footer = Vec::with_capacity(FOOTER_BODY_LEN);
        footer.extend_from_slice(&MAGIC);
        footer.extend_from_slice(&index_offset.to_le_bytes());
        footer.extend_from_slice(&index_len.to_le_bytes());
        footer.extend_from_slice(&self.entries.to_le_bytes());
        self.out.write_all(&frame::encode_one(&footer))?;
        self.out.flush()?;
        let file = self
            .out
            .into_inner()
            .map_err(|e| Error::Io(e.into_error()))?;
        // Vulnerable under Flush: the bytes sit in the page cache only.
        // IMPORTANT: the table's bytes must be durable before anything (the
        // LSM manifest) names the table.
        self.durability.sync_all(&file)?;
        drop(file);
        // IMPORTANT: the table's directory entry must be durable too, or a
        // power cut can drop the name of a table whose bytes were synced.
        self.durability.sync_entry(&self.path)?;
        Ok(self.entries)
    }
}

/// Where one data block lives and which keys it spans.
#[derive(Debug)]
struct BlockHandle {
    offset: u64,
    len: u32,
    first: Vec<u8>,
    last: Vec<u8>,
}

/// An open, fully verified table. Keeps the index in memory and reads data
/// blocks on demand; every block read is checksummed again.
#[derive(Debug)]
pub struct SSTable {
    path: PathBuf,
    file: File,
    blocks: Vec<BlockHandle>,
    entries: u64,
}

fn corrupt(msg: impl Into<String>) -> Error {
    Error::Corrupt(msg.into())
}

/// Prefixes a corruption message with the table's path.
fn in_table(path: &Path, e: Error) -> Error {
    match e {
        Error::Corrupt(m) => Error::Corrupt(format!("sstable {}: {m}", path.display())),
        other => other,
    }
}

impl SSTable {
    /// Opens and verifies the table at `path` (see the module invariants).
    /// A missing file is [`Error::Io`] with [`io::ErrorKind::NotFound`]; any
    /// incomplete or damaged table is [`Error::Corrupt`].
    pub fn open(path: &Path) -> Result<Self> {
        let mut file = File::open(path)?;
        let mut buf = Vec::new();
        file.read_to_end(&mut buf)?;
        let (blocks, entries) = verify(&buf).map_err(|e| in_table(path, e))?;
        Ok(SSTable {
            path: path.to_path_buf(),
            file,
            blocks,
            entries,
        })
    }

    /// Path of the table file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Number of entries (values and tombstones).
    pub fn len(&self) -> u64 {
        self.entries
    }

    /// True when the table holds no entries.
    pub fn is_empty(&self) -> bool {
        self.entries == 0
    }

    /// Number of data blocks.
    pub fn block_count(&self) -> usize {
        self.blocks.len()
    }

    /// Looks `key` up: `None` when the table does not mention it,
    /// `Some(None)` for a tombstone, `Some(Some(v))` for a value.
    pub fn get(&self, key: &[u8]) -> Result<Option<Entry>> {
        // Blocks are sorted and disjoint: the only candidate is the first
        // block whose last key is >= key.
        let i = self.blocks.partition_point(|h| h.last.as_slice() < key);
        let Some(h) = self.blocks.get(i) else {
            return Ok(None);
        };
        if key < h.first.as_slice() {
            return Ok(None);
        }
        let entries = self.read_block(h)?;
        Ok(entries
            .binary_search_by(|(k, _)| k.as_slice().cmp(key))
            .ok()
            .and_then(|j| entries.into_iter().nth(j))
            .map(|(_, e)| e))
    }

    /// Iterates over every entry in key order, one block in memory at a time.
    pub fn iter(&self) -> SSTableIter<'_> {
        SSTableIter {
            table: self,
            next_block: 0,
            current: Vec::new().into_iter(),
            failed: false,
        }
    }

    fn read_block(&self, h: &BlockHandle) -> Result<Vec<(Vec<u8>, Entry)>> {
        let mut buf = vec![0u8; h.len as usize];
        match self.file.read_exact_at(&mut buf, h.offset) {
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Err(corrupt(format!(
                "file shrank below block at byte {}",
                h.offset
            ))),
            Err(e) => Err(Error::Io(e)),
            Ok(()) => decode_block(&buf, h),
        }
        .map_err(|e| in_table(&self.path, e))
    }
}

/// Iterator over a table's entries; see [`SSTable::iter`]. Stops after the
/// first error.
pub struct SSTableIter<'a> {
    table: &'a SSTable,
    next_block: usize,
    current: std::vec::IntoIter<(Vec<u8>, Entry)>,
    failed: bool,
}

impl Iterator for SSTableIter<'_> {
    type Item = Result<(Vec<u8>, Entry)>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(e) = self.current.next() {
                return Some(Ok(e));
            }
            if self.failed {
                return None;
            }
            let h = self.table.blocks.get(self.next_block)?;
            self.next_block += 1;
            match self.table.read_block(h) {
                Ok(entries) => self.current = entries.into_iter(),
                Err(e) => {
                    self.failed = true;
                    return Some(Err(e));
                }
            }
        }
    }
}

/// Checks the whole table image and returns its block index and entry count.
fn verify(buf: &[u8]) -> Result<(Vec<BlockHandle>, u64)> {
    let footer_at = buf
        .len()
        .checked_sub(FOOTER_LEN)
        .ok_or_else(|| corrupt(format!("{} bytes is shorter than the footer", buf.len())))?;
    let footer = buf.get(footer_at..).unwrap_or_default();
    let (body, n) =
        frame::decode_at(footer).ok_or_else(|| corrupt("footer is torn or fails its checksum"))?;
    if n != FOOTER_LEN {
        return Err(corrupt("footer has the wrong length"));
    }
    let mut d = Decoder::new(body, "sstable footer");
    if d.array::<8>()? != MAGIC {
        return Err(corrupt("bad magic number"));
    }
    let index_offset = d.u64()?;
    let index_len = d.u64()?;
    let entry_count = d.u64()?;
    d.finish()?;
    if index_offset.checked_add(index_len) != Some(footer_at as u64) {
        return Err(corrupt(format!(
            "index at {index_offset}+{index_len} does not end at the footer (byte {footer_at})"
        )));
    }
    let index_start = usize::try_from(index_offset).map_err(|_| corrupt("index offset"))?;
    let mut index = buf
        .get(index_start..footer_at)
        .ok_or_else(|| corrupt("index points past the end of the file"))?;

    let mut blocks: Vec<BlockHandle> = Vec::new();
    let mut expected_offset = 0u64;
    let mut counted = 0u64;
    while !index.is_empty() {
        let i = blocks.len();
        let bad = |what: &str| corrupt(format!("index entry {i}: {what}"));
        let (body, n) = frame::decode_at(index).ok_or_else(|| bad("torn or fails its checksum"))?;
        index = index.get(n..).unwrap_or_default();
        let mut d = Decoder::new(body, "sstable index entry");
        let h = BlockHandle {
            offset: d.u64()?,
            len: d.u32()?,
            first: d.len_prefixed()?.to_vec(),
            last: d.len_prefixed()?.to_vec(),
        };
        d.finish()?;
        if h.offset != expected_offset {
            return Err(bad("block does not start where the previous one ended"));
        }
        if blocks.last().is_some_and(|p| p.last >= h.first) {
            return Err(bad("block keys out of order"));
        }
        let end = h.offset.saturating_add(u64::from(h.len));
        if end > index_offset {
            return Err(bad("block runs into the index"));
        }
        let framed = usize::try_from(h.offset)
            .ok()
            .zip(usize::try_from(end).ok())
            .and_then(|(start, stop)| buf.get(start..stop))
            .ok_or_else(|| bad("block points past the end of the file"))?;
        counted += decode_block(framed, &h)?.len() as u64;
        expected_offset = end;
        blocks.push(h);
    }
    if expected_offset != index_offset {
        return Err(corrupt(format!(
            "data blocks end at {expected_offset}, index starts at {index_offset}"
        )));
    }
    if counted != entry_count {
        return Err(corrupt(format!(
            "footer counts {entry_count} entries, blocks hold {counted}"
        )));
    }
    Ok((blocks, entry_count))
}

/// Decodes one framed data block and checks it against its handle.
fn decode_block(framed: &[u8], h: &BlockHandle) -> Result<Vec<(Vec<u8>, Entry)>> {
    let bad = |what: &str| corrupt(format!("block at byte {}: {what}", h.offset));
    let (body, n) = frame::decode_at(framed).ok_or_else(|| bad("torn or fails its checksum"))?;
    if n != framed.len() {
        return Err(bad("wrong length"));
    }
    let mut d = Decoder::new(body, "sstable block");
    let mut entries: Vec<(Vec<u8>, Entry)> = Vec::new();
    while !d.is_empty() {
        let (key, entry) = decode_entry(&mut d)?;
        if entries.last().is_some_and(|(prev, _)| *prev >= key) {
            return Err(bad("keys out of order"));
        }
        entries.push((key, entry));
    }
    let first_ok = entries.first().is_some_and(|(k, _)| *k == h.first);
    let last_ok = entries.last().is_some_and(|(k, _)| *k == h.last);
    if !first_ok || !last_ok {
        return Err(bad("does not match its index entry"));
    }
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::collection::{btree_map, vec};
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    fn write(path: &Path, d: Durability, block: usize, entries: &BTreeMap<Vec<u8>, Entry>) {
        let mut w = SSTableWriter::create(path, d)
            .unwrap()
            .with_block_size(block);
        for (k, v) in entries {
            w.add(k, v.as_deref()).unwrap();
        }
        assert_eq!(w.finish().unwrap(), entries.len() as u64);
    }

    fn sample() -> BTreeMap<Vec<u8>, Entry> {
        (0..60u32)
            .map(|i| {
                let k = format!("key-{i:03}").into_bytes();
                let v = (i % 7 != 3).then(|| format!("value-{i}").repeat(1 + i as usize % 4));
                (k, v.map(String::into_bytes))
            })
            .collect()
    }

    fn assert_corrupt(r: Result<SSTable>, what: &str) {
        match r {
            Err(Error::Corrupt(_)) => {}
            Err(e) => panic!("{what}: expected Corrupt, got {e}"),
            Ok(t) => panic!("{what}: accepted a damaged table with {} entries", t.len()),
        }
    }

    fn roundtrip(d: Durability) {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t.sst");
        let m = sample();
        write(&p, d, 128, &m);
        let t = SSTable::open(&p).unwrap();
        assert!(t.block_count() > 5, "want several blocks");
        assert_eq!(t.len(), 60);
        for (k, v) in &m {
            assert_eq!(t.get(k).unwrap(), Some(v.clone()), "key {k:?}");
        }
        for absent in [&b""[..], b"key-", b"key-0005", b"key-999", b"zzz"] {
            assert_eq!(t.get(absent).unwrap(), None, "absent {absent:?}");
        }
        let all: BTreeMap<_, _> = t.iter().map(|r| r.unwrap()).collect();
        assert_eq!(all, m);
    }

    #[test]
    fn empty_table_is_valid() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("e.sst");
        write(&p, Durability::FSYNC, BLOCK_SIZE, &BTreeMap::new());
        let t = SSTable::open(&p).unwrap();
        assert!(t.is_empty());
        assert_eq!(std::fs::metadata(&p).unwrap().len(), FOOTER_LEN as u64);
        assert_eq!(t.get(b"a").unwrap(), None);
        assert_eq!(t.iter().count(), 0);
    }

    #[test]
    fn writer_rejects_unsorted_and_oversized_keys() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = SSTableWriter::create(&dir.path().join("t.sst"), Durability::Flush).unwrap();
        w.add(b"b", Some(b"1")).unwrap();
        assert!(matches!(w.add(b"b", None), Err(Error::Invalid(_))));
        assert!(matches!(w.add(b"a", Some(b"1")), Err(Error::Invalid(_))));
        let big = vec![b'z'; MAX_KEY_LEN + 1];
        assert!(matches!(w.add(&big, None), Err(Error::Invalid(_))));
        w.add(b"c", None).unwrap();
    }

    /// Every proper prefix of a table is what a crash during (or, under
    /// `Flush`, after) `finish` can leave; none may open.
    fn incomplete_table_is_rejected_at_every_length(d: Durability) {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t.sst");
        write(&p, d, 256, &sample());
        let full = std::fs::read(&p).unwrap();
        let cut_path = dir.path().join("cut.sst");
        for cut in 0..full.len() {
            std::fs::write(&cut_path, &full[..cut]).unwrap();
            assert_corrupt(SSTable::open(&cut_path), &format!("cut at {cut}"));
        }
        // What a power cut leaves when the size reached disk but data did not.
        let mut zeroed = full.clone();
        zeroed[..full.len() / 2].fill(0);
        std::fs::write(&cut_path, &zeroed).unwrap();
        assert_corrupt(SSTable::open(&cut_path), "zero-filled head");
    }

    fn flipped_byte_anywhere_is_corruption(d: Durability) {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t.sst");
        write(&p, d, 256, &sample());
        let full = std::fs::read(&p).unwrap();
        let bad_path = dir.path().join("bad.sst");
        for at in 0..full.len() {
            let mut bad = full.clone();
            bad[at] ^= 0x10;
            std::fs::write(&bad_path, &bad).unwrap();
            assert_corrupt(SSTable::open(&bad_path), &format!("flip at {at}"));
        }
    }

    /// Replaces the footer with a correctly checksummed one holding `body`.
    fn with_footer(table: &[u8], body: &[u8]) -> Vec<u8> {
        let mut v = table[..table.len() - FOOTER_LEN].to_vec();
        frame::encode(body, &mut v);
        v
    }

    #[test]
    fn footer_with_valid_checksum_but_bad_fields_is_corruption() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t.sst");
        write(&p, Durability::Flush, 256, &sample());
        let full = std::fs::read(&p).unwrap();
        let at = full.len() - FOOTER_LEN + 4;
        let good: Vec<u8> = full[at..at + FOOTER_BODY_LEN].to_vec();
        let field = |at: usize| u64::from_le_bytes(good[at..at + 8].try_into().unwrap());
        let past_eof = (field(8) + 1_000_000).to_le_bytes();
        let long_index = (field(16) + 8).to_le_bytes();

        let patched = |at: usize, bytes: &[u8]| {
            let mut b = good.clone();
            b[at..at + bytes.len()].copy_from_slice(bytes);
            b
        };
        let cases = [
            ("bad magic", patched(0, b"X")),
            ("index past EOF", patched(8, &past_eof)),
            ("index length past footer", patched(16, &long_index)),
            ("entry count", patched(24, &[good[24] ^ 1])),
            ("short footer body", good[..24].to_vec()),
        ];

        let bad_path = dir.path().join("bad.sst");
        for (what, body) in cases {
            std::fs::write(&bad_path, with_footer(&full, &body)).unwrap();
            assert_corrupt(SSTable::open(&bad_path), what);
        }
        // Control: the unchanged footer still opens.
        std::fs::write(&bad_path, with_footer(&full, &good)).unwrap();
        assert_eq!(SSTable::open(&bad_path).unwrap().len(), 60);
    }

    #[test]
    fn block_damaged_after_open_is_reported_on_read() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t.sst");
        write(&p, Durability::Flush, 256, &sample());
        let t = SSTable::open(&p).unwrap();
        let mut bytes = std::fs::read(&p).unwrap();
        bytes[10] ^= 0xff;
        OpenOptions::new()
            .write(true)
            .open(&p)
            .unwrap()
            .write_all_at(&bytes, 0)
            .unwrap();
        assert!(matches!(t.get(b"key-000"), Err(Error::Corrupt(_))));
        assert!(matches!(t.iter().next(), Some(Err(Error::Corrupt(_)))));
        // Blocks other than the damaged one still read.
        assert_eq!(
            t.get(b"key-058").unwrap(),
            Some(Some(b"value-58".repeat(3)))
        );
    }

    /// Runs `check(Durability)` as the tests `check::flush` and `check::fsync`.
    macro_rules! per_setting {
        ($($check:ident),* $(,)?) => {$(
            mod $check {
                #[test]
                fn flush() { super::$check(crate::Durability::Flush) }
                #[test]
                fn fsync() { super::$check(crate::Durability::FSYNC) }
            }
        )*};
    }

    per_setting!(
        roundtrip,
        incomplete_table_is_rejected_at_every_length,
        flipped_byte_anywhere_is_corruption,
    );

    /// Entries (20% tombstones), a block size, and keys to probe.
    type Case = (BTreeMap<Vec<u8>, Entry>, usize, Vec<Vec<u8>>);

    fn case() -> impl Strategy<Value = Case> {
        let key = || vec(any::<u8>(), 0..12);
        let entries = btree_map(
            key(),
            proptest::option::weighted(0.8, vec(any::<u8>(), 0..64)),
            0..120,
        );
        (entries, 1usize..600, vec(key(), 0..20))
    }

    fn model(d: Durability, m: BTreeMap<Vec<u8>, Entry>, block: usize, probes: Vec<Vec<u8>>) {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t.sst");
        write(&p, d, block, &m);
        let t = SSTable::open(&p).unwrap();
        assert_eq!(t.len(), m.len() as u64);
        for k in m.keys().chain(probes.iter()) {
            assert_eq!(t.get(k).unwrap(), m.get(k).cloned(), "key {k:?}");
        }
        let all: Vec<(Vec<u8>, Entry)> = t.iter().map(|r| r.unwrap()).collect();
        let want: Vec<(Vec<u8>, Entry)> = m.into_iter().collect();
        assert_eq!(all, want);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(32))]

        #[test]
        fn model_flush((m, block, probes) in case()) {
            model(Durability::Flush, m, block, probes);
        }

        #[test]
        fn model_fsync((m, block, probes) in case()) {
            model(Durability::FSYNC, m, block, probes);
        }
    }
}
