//! A log-structured merge tree: write-ahead log + memtable + SSTables +
//! manifest + compaction.
//!
//! # On-disk layout
//!
//! ```text
//! dir/
//!   wal.log        frame(record)*        record = kind u8 | key_len u32 LE | key
//!                                                 | [val_len u32 LE | value]   (kind 1 put, 0 delete)
//!   MANIFEST       frame(body)           body = "DFSLSMM1" | next_id u64 LE | count u32 LE
//!                                               | table id u64 LE x count (oldest first)
//!   MANIFEST.tmp   crash leftover of an atomic manifest replace (deleted on open)
//!   000042.sst     SSTable: frame(data block)* | frame(index entry)* | frame(footer)
//!
//! frame = len u32 LE | body | crc32 u32 LE
//! ```
//!
//! The byte-level details live with each part: [`wal`], [`manifest`] and
//! [`crate::sstable`].
//!
//! # Invariants
//!
//! * A key's newest version is in the memtable, else in the newest table that
//!   mentions it (tables are ordered by id); a tombstone ends the search.
//! * The WAL holds exactly the memtable's writes; a flush truncates it only
//!   after the memtable is in a table the manifest names.
//! * Only tables named by the manifest are live. Recovery deletes other
//!   `NNNNNN.sst` files and `MANIFEST.tmp`: no durable state points at them.
//! * A manifest naming a missing or damaged table is [`Error::Corrupt`].
//! * A write, flush or compaction that fails part-way poisons the tree:
//!   later writes fail until it is reopened (reads still work).
//!
//! # Durability settings and their loss windows
//!
//! [`LsmOptions`] opens each window of the analysis separately:
//!
//! * `wal: Flush` (analysis 1, `lsm.py:26`): a put writes and flushes its WAL
//!   record but never fsyncs it, so an acknowledged put lives only in the page
//!   cache; a power cut loses every write the OS had not yet written back.
//!   `wal: Fsync` fdatasyncs each record before the put returns, fsyncs the
//!   directory when it creates the log (and the parent of every directory
//!   `open` creates), and makes the cut of a torn tail durable before
//!   appending after it.
//! * `sstable: Flush` (analysis 3, `sstable.py:91-95`): a flushed or compacted
//!   table is closed without fsync. The WAL is then truncated (durably, under
//!   `flush_order: Fsync`) while the table's bytes may still be only in the
//!   page cache: a power cut leaves "WAL truncated, SSTable not on disk", and
//!   recovery finds the manifest naming an empty, short or zero-filled table
//!   (the manifest's directory fsync made its name durable, not its bytes),
//!   which it reports as [`Error::Corrupt`]: the memtable's writes are lost.
//!   After a compaction, likewise, the old tables are deleted durably while
//!   the merged one may not be on disk.
//! * `flush_order: Flush` (analysis 4, multi-step without atomic commit): a
//!   flush rewrites the manifest in place and truncates the WAL with nothing
//!   made durable in between, and a compaction deletes the old tables before
//!   the merged table or new manifest are durable. A power cut can persist
//!   any subset of these steps: an empty or torn manifest, a truncated WAL
//!   whose records are in no durable table, a manifest naming deleted tables.
//!   `flush_order: Fsync` orders them: table durable (file + directory), then
//!   manifest replaced atomically, then the WAL truncated and fsynced (or the
//!   old tables deleted and the directory fsynced).
//!
//! * A failed fsync: each setting's `Fsync` carries an [`crate::OnSyncError`].
//!   `Poison` fails the operation and poisons the tree; `Retry` and `Ignore`
//!   acknowledge a put whose WAL record the kernel may have dropped (on
//!   Linux a retried fsync returns 0 for pages the failed one marked clean).
//!
//! With [`LsmOptions::all`]`(`[`Durability::FSYNC`]`)` every acknowledged
//! write survives any power cut; with any `Flush` setting its window above
//! is open.

pub mod compact;
pub mod manifest;
pub mod memtable;
pub mod merge;
pub mod wal;

#[cfg(test)]
mod tests;

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use crate::segment::{Poison, ensure_dir};
use crate::sstable::{SSTable, SSTableWriter, check_entry};
use crate::{Durability, Error, KvStore, Result};
use manifest::{MANIFEST_TMP_FILE, Manifest, parse_table_file_name, table_file_name};
use memtable::MemTable;
use merge::{EntryIter, MergeIter};
use wal::Wal;

/// Durability and size settings; see the module documentation for what each
/// `Flush` setting leaves open.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LsmOptions {
    /// WAL appends: `Flush` = write + flush, `Fsync` = fdatasync per write.
    /// `Fsync`'s [`crate::OnSyncError`] says what a failed fsync leads to:
    /// [`Durability::FSYNC`] (poison: the put fails and the tree refuses
    /// writes until reopened) is the crash-safe one; `Retry` (PostgreSQL
    /// before 2018) and `Ignore` acknowledge puts whose record may be lost.
    pub wal: Durability,
    /// Finishing an SSTable: `Flush` = close, `Fsync` = fsync file + dir.
    pub sstable: Durability,
    /// Flush and compaction steps: `Flush` = in place with nothing durable in
    /// between, `Fsync` = ordered around an atomic manifest replace.
    pub flush_order: Durability,
    /// The memtable is flushed once it holds about this many bytes.
    pub memtable_bytes: usize,
    /// All tables are compacted into one once there are more than this many.
    pub compact_after: usize,
}

impl LsmOptions {
    /// Every setting at `d`, with a 64 KiB memtable and compaction after four
    /// tables.
    pub fn all(d: Durability) -> Self {
        LsmOptions {
            wal: d,
            sstable: d,
            flush_order: d,
            memtable_bytes: 64 << 10,
            compact_after: 4,
        }
    }
}

impl Default for LsmOptions {
    fn default() -> Self {
        Self::all(Durability::FSYNC)
    }
}

/// An open LSM tree in one directory.
#[derive(Debug)]
pub struct Lsm {
    dir: PathBuf,
    opts: LsmOptions,
    wal: Wal,
    mem: MemTable,
    manifest: Manifest,
    /// Open tables, parallel to `manifest.tables` (oldest first).
    tables: Vec<SSTable>,
    /// A write, flush or compaction failed part-way; see [`Lsm::guard`].
    failed: Poison,
}

impl Lsm {
    /// Opens (creating if needed) the tree in `dir` and recovers it: deletes
    /// crash leftovers, opens the tables the manifest names and replays the
    /// WAL, cutting a torn tail.
    pub fn open(dir: impl AsRef<Path>, opts: LsmOptions) -> Result<Lsm> {
        let dir = dir.as_ref().to_path_buf();
        // With `wal: Fsync`, the directory holding the WAL (and any directory
        // above it that this creates) is durable before any put is
        // acknowledged.
        ensure_dir(&dir, opts.wal)?;
        let manifest = Manifest::load(&dir)?;
        remove_leftovers(&dir, &manifest, opts.flush_order)?;
        let mut tables = Vec::with_capacity(manifest.tables.len());
        for &id in &manifest.tables {
            tables.push(open_table(&dir, id)?);
        }
        let (wal, replay) = Wal::open(&dir, opts.wal)?;
        let mut mem = MemTable::new();
        for (key, entry) in replay.records {
            mem.insert(key, entry);
        }
        Ok(Lsm {
            dir,
            opts,
            wal,
            mem,
            manifest,
            tables,
            failed: Poison::default(),
        })
    }

    /// The settings the tree was opened with.
    pub fn options(&self) -> LsmOptions {
        self.opts
    }

    /// Ids of the live tables, oldest first.
    pub fn table_ids(&self) -> &[u64] {
        &self.manifest.tables
    }

    /// Entries (values and tombstones) in the memtable.
    pub fn memtable_len(&self) -> usize {
        self.mem.len()
    }

    fn table_path(&self, id: u64) -> PathBuf {
        self.dir.join(table_file_name(id))
    }

    /// Runs a mutating step. A failure part-way can leave a partial record at
    /// the end of the WAL (a record appended after it would be cut off with
    /// it as a torn tail at recovery) or follow a failed fsync whose data the
    /// kernel may have dropped, so it poisons the tree until it is reopened,
    /// as the other engines do.
    fn guard<T>(&mut self, f: impl FnOnce(&mut Self) -> Result<T>) -> Result<T> {
        self.failed.check()?;
        let r = f(self);
        self.failed.record(r)
    }

    fn write(&mut self, key: &[u8], value: Option<&[u8]>) -> Result<()> {
        check_entry(key, value)?;
        self.guard(|s| {
            s.wal.append(key, value)?;
            s.mem.insert(key.to_vec(), value.map(<[u8]>::to_vec));
            if s.mem.approx_bytes() >= s.opts.memtable_bytes {
                s.flush_inner()?;
            }
            if s.tables.len() > s.opts.compact_after {
                s.compact()?;
            }
            Ok(())
        })
    }

    /// Writes the memtable to a new table, adds it to the manifest and
    /// empties the WAL (the steps are described in the module docs).
    pub fn flush(&mut self) -> Result<()> {
        self.guard(Self::flush_inner)
    }

    fn flush_inner(&mut self) -> Result<()> {
        if self.mem.is_empty() {
            return Ok(());
        }
        let mut next = self.manifest.clone();
        let id = next.allocate_id()?;
        let path = self.table_path(id);
        let mut w = SSTableWriter::create(&path, self.opts.sstable)?;
        // Tombstones are kept: older tables may still hold the key.
        for (key, entry) in self.mem.iter() {
            w.add(key, entry.as_deref())?;
        }
        w.finish()?;
        let table = SSTable::open(&path)?;
        next.tables.push(id);
        // Under `Fsync`: IMPORTANT: the table was made durable by `finish`
        // (when `sstable: Fsync`) before this commit names it.
        next.store(&self.dir, self.opts.flush_order)?;
        self.manifest = next;
        self.tables.push(table);
        // IMPORTANT: the WAL is emptied only after the manifest naming the new
        // table is committed (durably, under `flush_order: Fsync`).
        self.wal.truncate(self.opts.flush_order)?;
        self.mem.clear();
        Ok(())
    }
}

/// Opens table `id`; a missing file is corruption of the manifest.
fn open_table(dir: &Path, id: u64) -> Result<SSTable> {
    let path = dir.join(table_file_name(id));
    match SSTable::open(&path) {
        Err(Error::Io(e)) if e.kind() == io::ErrorKind::NotFound => Err(Error::Corrupt(format!(
            "manifest names table {}, which is missing",
            path.display()
        ))),
        other => other,
    }
}

/// Deletes `MANIFEST.tmp` and every table file the manifest does not name.
fn remove_leftovers(dir: &Path, manifest: &Manifest, order: Durability) -> Result<()> {
    let mut removed = false;
    for dirent in fs::read_dir(dir)? {
        let dirent = dirent?;
        let name = dirent.file_name();
        let Some(name) = name.to_str() else { continue };
        let unnamed_table =
            parse_table_file_name(name).is_some_and(|id| !manifest.tables.contains(&id));
        if name == MANIFEST_TMP_FILE || unnamed_table {
            log::info!("{}: removing crash leftover {name}", dir.display());
            fs::remove_file(dirent.path())?;
            removed = true;
        }
    }
    if removed {
        // IMPORTANT: the leftovers must be gone durably before their ids are
        // reused, so an old file can never reappear under a live name.
        order.sync_dir(dir)?;
    }
    Ok(())
}

impl KvStore for Lsm {
    fn put(&mut self, key: &[u8], value: &[u8]) -> Result<()> {
        self.write(key, Some(value))
    }

    fn get(&mut self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        if let Some(entry) = self.mem.get(key) {
            return Ok(entry.clone());
        }
        for table in self.tables.iter().rev() {
            if let Some(entry) = table.get(key)? {
                return Ok(entry);
            }
        }
        Ok(None)
    }

    fn delete(&mut self, key: &[u8]) -> Result<()> {
        self.write(key, None)
    }

    fn scan(&mut self) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let mut sources: Vec<EntryIter<'_>> = self
            .tables
            .iter()
            .map(|t| Box::new(t.iter()) as EntryIter<'_>)
            .collect();
        sources.push(Box::new(
            self.mem.iter().map(|(k, e)| Ok((k.clone(), e.clone()))),
        ));
        let mut out = Vec::new();
        for item in MergeIter::new(sources) {
            if let (key, Some(value)) = item? {
                out.push((key, value));
            }
        }
        Ok(out)
    }

    fn maintain(&mut self) -> Result<()> {
        self.guard(|s| {
            s.flush_inner()?;
            s.compact()
        })
    }

    fn close(self: Box<Self>) -> Result<()> {
        // Every acknowledged write is already in the WAL or a table.
        Ok(())
    }
}
