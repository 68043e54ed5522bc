//! Compaction: merge every SSTable into one.
//!
//! Because every table takes part, no older version of a key survives the
//! merge, so tombstones are dropped (the memtable, which is newer, is not
//! touched).
//!
//! # Order of steps
//!
//! Crash-safe (`flush_order: Fsync`):
//! 1. write the merged table (durable when `sstable: Fsync`);
//! 2. replace the manifest atomically: the single commit point;
//! 3. delete the old tables, then fsync the directory.
//!
//! A crash before 2 leaves an unnamed new table, a crash after 2 leaves
//! unnamed old tables; recovery deletes unnamed tables either way.
//!
//! Vulnerable (`flush_order: Flush`): the manifest is rewritten in place and
//! the old tables are deleted with nothing made durable in between, so a
//! power cut can persist the deletions while losing the new manifest (or the
//! merged table's bytes): the manifest then names missing or damaged tables.

use std::fs;
use std::io;

use super::Lsm;
use super::manifest::Manifest;
use super::merge::{EntryIter, MergeIter};
use crate::Result;
use crate::sstable::{SSTable, SSTableWriter};

impl Lsm {
    /// Merges all tables into one; does nothing with fewer than two.
    pub(super) fn compact(&mut self) -> Result<()> {
        if self.tables.len() < 2 {
            return Ok(());
        }
        let mut next = Manifest {
            next_id: self.manifest.next_id,
            tables: Vec::new(),
        };
        let id = next.allocate_id()?;
        let path = self.table_path(id);
        let sources: Vec<EntryIter<'_>> = self
            .tables
            .iter()
            .map(|t| Box::new(t.iter()) as EntryIter<'_>)
            .collect();
        let mut writer: Option<SSTableWriter> = None;
        for item in MergeIter::new(sources) {
            let (key, entry) = item?;
            // Every table is merged: a tombstone has nothing left to shadow.
            let Some(value) = entry else { continue };
            if writer.is_none() {
                writer = Some(SSTableWriter::create(&path, self.opts.sstable)?);
            }
            if let Some(w) = writer.as_mut() {
                w.add(&key, Some(&value))?;
            }
        }
        let merged = match writer {
            Some(w) => {
                w.finish()?;
                next.tables.push(id);
                Some(SSTable::open(&path)?)
            }
            None => None,
        };

        // Under `Fsync`: IMPORTANT: the merged table was made durable by
        // `finish` (when `sstable: Fsync`) before this commit names it, and the
        // old tables are deleted only after it.
        next.store(&self.dir, self.opts.flush_order)?;
        self.manifest = next;
        let old = std::mem::replace(&mut self.tables, merged.into_iter().collect());
        for table in old {
            let path = table.path().to_path_buf();
            drop(table);
            match fs::remove_file(&path) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e.into()),
                _ => {}
            }
        }
        // IMPORTANT: makes the deletions durable; until then a crash only
        // brings back unnamed tables, which recovery deletes.
        self.opts.flush_order.sync_dir(&self.dir)?;
        Ok(())
    }
}
