//! The write-ahead log: every `put`/`delete` is appended here before it
//! reaches the memtable, so the memtable can be rebuilt after a restart.
//!
//! # Byte layout (`wal.log`)
//!
//! ```text
//! +--------------------+--------------------+-----+
//! | frame(record 0)    | frame(record 1)    | ... |      frame = len u32 LE | body | crc32 u32 LE
//! +--------------------+--------------------+-----+
//! record = kind u8 | key_len u32 LE | key | value part     (the SSTable entry layout)
//!          kind 1 (put):    value part = val_len u32 LE | value
//!          kind 0 (delete): value part is empty
//! ```
//!
//! A record body is never empty, which [`crate::frame::scan`] relies on to
//! tell a torn tail from damage in the middle of the log.
//!
//! # Invariants
//!
//! * The log holds exactly the writes in the memtable, oldest first; a flush
//!   truncates it to zero only after the memtable is in an SSTable named by
//!   the manifest.
//! * On open, a torn tail is cut off (and, under [`Durability::Fsync`], the
//!   cut made durable) before anything new is appended, so later records
//!   always follow a valid prefix and stay readable.

use std::fs::{self, File, OpenOptions};
use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use crate::sstable::{Decoder, Entry, check_entry, decode_entry, encode_entry};
use crate::{Durability, Result, frame};

/// File name of the log inside the LSM directory.
pub const WAL_FILE: &str = "wal.log";

/// An open write-ahead log.
#[derive(Debug)]
pub struct Wal {
    out: BufWriter<File>,
    path: PathBuf,
    durability: Durability,
    /// Test failpoint: the next append writes only this many bytes of its
    /// record and fails, as a short write before `ENOSPC` would.
    #[cfg(test)]
    pub(crate) fail_next_append_after: Option<usize>,
}

/// What [`Wal::open`] found.
#[derive(Debug)]
pub struct Replay {
    /// The valid records, oldest first.
    pub records: Vec<(Vec<u8>, Entry)>,
    /// Bytes of torn tail that were cut off.
    pub torn_bytes: u64,
}

impl Wal {
    /// Opens (creating if needed) `dir/wal.log`, cuts a torn tail and returns
    /// the valid records. Damage followed by a valid record is
    /// [`crate::Error::Corrupt`].
    pub fn open(dir: &Path, durability: Durability) -> Result<(Wal, Replay)> {
        let path = dir.join(WAL_FILE);
        let created = !path.exists();
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(&path)?;
        if created {
            // IMPORTANT: the log's name must be durable before any put is
            // acknowledged, or a power cut loses the whole file.
            durability.sync_dir(dir)?;
        }
        let mut buf = Vec::new();
        file.read_to_end(&mut buf)?;
        let scan = frame::scan(&buf, "wal")?;
        let mut records = Vec::with_capacity(scan.records.len());
        for (_, body) in &scan.records {
            let mut d = Decoder::new(body, "wal record");
            let rec = decode_entry(&mut d)?;
            d.finish()?;
            records.push(rec);
        }
        let file_len = buf.len() as u64;
        let torn_bytes = file_len - scan.valid_len;
        if scan.has_torn_tail(file_len) {
            log::warn!(
                "{}: cutting {torn_bytes}-byte torn tail at byte {}",
                path.display(),
                scan.valid_len
            );
            file.set_len(scan.valid_len)?;
            // IMPORTANT: the cut must be durable before new records are
            // appended, or a crash could leave them behind the torn bytes.
            durability.sync_all(&file)?;
        }
        let wal = Wal {
            out: BufWriter::new(file),
            path,
            durability,
            #[cfg(test)]
            fail_next_append_after: None,
        };
        Ok((
            wal,
            Replay {
                records,
                torn_bytes,
            },
        ))
    }

    /// Appends one record: `value` for a put, `None` for a delete.
    pub fn append(&mut self, key: &[u8], value: Option<&[u8]>) -> Result<()> {
        check_entry(key, value)?;
        let mut body = Vec::with_capacity(9 + key.len() + value.map_or(0, <[u8]>::len));
        encode_entry(key, value, &mut body);
        let rec = frame::encode_one(&body);
        #[cfg(test)]
        if let Some(n) = self.fail_next_append_after.take() {
            self.out.write_all(rec.get(..n).unwrap_or(&rec))?;
            self.out.flush()?;
            return Err(std::io::Error::other("simulated short write").into());
        }
        self.out.write_all(&rec)?;
        // Vulnerable under `Flush` (analysis lsm.py:26): this only moves the
        // record into the page cache.
        self.out.flush()?;
        // IMPORTANT: the record must be durable before put/delete returns;
        // returning is the acknowledgement.
        self.durability.sync_data(self.out.get_ref())?;
        Ok(())
    }

    /// Empties the log; under `durability` Fsync, durably.
    pub fn truncate(&mut self, durability: Durability) -> Result<()> {
        self.out.flush()?;
        let file = self.out.get_ref();
        file.set_len(0)?;
        // IMPORTANT: the caller has made the flushed SSTable and the manifest
        // naming it durable first; only now may the log forget.
        durability.sync_all(file)?;
        Ok(())
    }

    /// Current length of the log file.
    pub fn len(&self) -> Result<u64> {
        Ok(fs::metadata(&self.path)?.len())
    }

    /// True when the log file is empty.
    pub fn is_empty(&self) -> Result<bool> {
        Ok(self.len()? == 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Error;

    fn records(n: u8) -> Vec<(Vec<u8>, Entry)> {
        (0..n)
            .map(|i| {
                let v = (i % 3 != 2).then(|| vec![i; 5 + i as usize]);
                (vec![b'k', i], v)
            })
            .collect()
    }

    fn write_log(dir: &Path, d: Durability, recs: &[(Vec<u8>, Entry)]) -> Vec<u8> {
        let (mut wal, replay) = Wal::open(dir, d).unwrap();
        assert!(replay.records.is_empty());
        for (k, v) in recs {
            wal.append(k, v.as_deref()).unwrap();
        }
        drop(wal);
        fs::read(dir.join(WAL_FILE)).unwrap()
    }

    fn torn_tail_at_every_offset(d: Durability) {
        let src = tempfile::tempdir().unwrap();
        let recs = records(6);
        let full = write_log(src.path(), d, &recs);
        let scan = frame::scan(&full, "t").unwrap();
        let last_start = scan.records.last().unwrap().0 as usize;
        for cut in last_start..full.len() {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join(WAL_FILE);
            fs::write(&path, &full[..cut]).unwrap();
            let (mut wal, replay) = Wal::open(dir.path(), d).unwrap();
            assert_eq!(replay.records, recs[..5], "cut at {cut}");
            assert_eq!(replay.torn_bytes, (cut - last_start) as u64);
            assert_eq!(wal.len().unwrap(), last_start as u64, "tail not cut");
            wal.append(b"after", Some(b"crash")).unwrap();
            drop(wal);
            let (_, replay) = Wal::open(dir.path(), d).unwrap();
            assert_eq!(replay.records.len(), 6, "cut at {cut}");
            assert_eq!(
                replay.records.last().unwrap(),
                &(b"after".to_vec(), Some(b"crash".to_vec()))
            );
        }
    }

    #[test]
    fn torn_tail_at_every_offset_of_last_record_flush() {
        torn_tail_at_every_offset(Durability::Flush);
    }

    #[test]
    fn torn_tail_at_every_offset_of_last_record_fsync() {
        torn_tail_at_every_offset(Durability::FSYNC);
    }

    #[test]
    fn flipped_byte_in_any_earlier_record_is_corruption() {
        let src = tempfile::tempdir().unwrap();
        let full = write_log(src.path(), Durability::FSYNC, &records(4));
        let scan = frame::scan(&full, "t").unwrap();
        let last_start = scan.records.last().unwrap().0 as usize;
        for at in 0..last_start {
            let dir = tempfile::tempdir().unwrap();
            let mut bad = full.clone();
            bad[at] ^= 0x04;
            fs::write(dir.path().join(WAL_FILE), &bad).unwrap();
            match Wal::open(dir.path(), Durability::FSYNC) {
                Err(Error::Corrupt(_)) => {}
                Err(e) => panic!("flip at {at}: expected Corrupt, got {e}"),
                Ok((_, r)) => panic!("flip at {at}: replayed {:?}", r.records),
            }
            // The damaged file is left alone for inspection.
            assert_eq!(fs::read(dir.path().join(WAL_FILE)).unwrap(), bad);
        }
    }

    #[test]
    fn valid_checksum_with_bad_record_is_corruption() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(
            dir.path().join(WAL_FILE),
            frame::encode_one(&[9, 1, 0, 0, 0, b'k']),
        )
        .unwrap();
        assert!(matches!(
            Wal::open(dir.path(), Durability::Flush),
            Err(Error::Corrupt(_))
        ));
    }

    #[test]
    fn truncate_empties_the_log() {
        let dir = tempfile::tempdir().unwrap();
        let (mut wal, _) = Wal::open(dir.path(), Durability::FSYNC).unwrap();
        wal.append(b"a", Some(b"1")).unwrap();
        assert!(!wal.is_empty().unwrap());
        wal.truncate(Durability::FSYNC).unwrap();
        assert!(wal.is_empty().unwrap());
        wal.append(b"b", None).unwrap();
        drop(wal);
        let (_, replay) = Wal::open(dir.path(), Durability::FSYNC).unwrap();
        assert_eq!(replay.records, vec![(b"b".to_vec(), None)]);
    }
}
