//! The B-tree's write-ahead log of logical operations (layout in the parent
//! module's documentation).

use std::fs::{File, OpenOptions};
use std::io::Read;
use std::os::unix::fs::FileExt;
use std::path::Path;

use super::page::{MAX_KEY_LEN, MAX_VALUE_LEN};
use crate::{Durability, Error, Result, frame};

const TAG_BASE: u8 = 0;
const TAG_PUT: u8 = 1;
const TAG_DELETE: u8 = 2;

/// A logged operation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Op {
    Put(Vec<u8>, Vec<u8>),
    Delete(Vec<u8>),
}

impl Op {
    fn encode(&self) -> Vec<u8> {
        let mut body = Vec::new();
        match self {
            Op::Put(k, v) => {
                body.push(TAG_PUT);
                body.extend_from_slice(&u16::try_from(k.len()).unwrap_or(u16::MAX).to_le_bytes());
                body.extend_from_slice(k);
                body.extend_from_slice(v);
            }
            Op::Delete(k) => {
                body.push(TAG_DELETE);
                body.extend_from_slice(k);
            }
        }
        frame::encode_one(&body)
    }
}

/// What recovery found in the WAL.
#[derive(Debug)]
pub(crate) struct Recovered {
    /// Generation of the checkpoint the operations apply on top of; `None`
    /// when the WAL holds no record at all.
    pub base: Option<u64>,
    /// The complete operations, in order.
    pub ops: Vec<Op>,
}

/// The open WAL.
pub(crate) struct Wal {
    file: File,
    len: u64,
    ops: u64,
    durability: Durability,
}

impl Wal {
    /// Opens (creating if needed) the WAL at `path`, in directory `dir`, and
    /// returns its complete records, truncating a torn tail.
    pub(crate) fn open(
        path: &Path,
        dir: &Path,
        durability: Durability,
    ) -> Result<(Wal, Recovered)> {
        let existed = path.exists();
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)?;
        if !existed {
            // IMPORTANT: the WAL's name is durable before any record in it
            // is acknowledged.
            durability.sync_dir(dir)?;
        }
        let mut buf = Vec::new();
        file.read_to_end(&mut buf)?;
        let scan = frame::scan(&buf, "btree.wal")?;
        if scan.has_torn_tail(buf.len() as u64) {
            log::warn!(
                "btree.wal: dropping {} bytes of torn tail",
                buf.len() as u64 - scan.valid_len
            );
            file.set_len(scan.valid_len)?;
            // IMPORTANT: the truncation is durable before anything is
            // appended after it, so torn bytes never reappear behind an
            // acknowledged record.
            durability.sync_data(&file)?;
        }
        let mut base = None;
        let mut ops = Vec::with_capacity(scan.records.len());
        for (i, &(offset, body)) in scan.records.iter().enumerate() {
            let bad = || Error::Corrupt(format!("btree.wal: malformed record at byte {offset}"));
            let (&tag, rest) = body.split_first().ok_or_else(bad)?;
            match (i, tag) {
                (0, TAG_BASE) => {
                    let gen_bytes: [u8; 8] = rest.try_into().map_err(|_| bad())?;
                    base = Some(u64::from_le_bytes(gen_bytes));
                }
                (0, _) | (_, TAG_BASE) => return Err(bad()),
                (_, TAG_PUT) => {
                    let (klen, rest) = rest.split_first_chunk::<2>().ok_or_else(bad)?;
                    let klen = u16::from_le_bytes(*klen) as usize;
                    if klen > rest.len() {
                        return Err(bad());
                    }
                    let (k, v) = rest.split_at(klen);
                    // Only entries `put` accepted are logged; a larger one
                    // would break the page-split guarantee.
                    if k.len() > MAX_KEY_LEN || v.len() > MAX_VALUE_LEN {
                        return Err(bad());
                    }
                    ops.push(Op::Put(k.to_vec(), v.to_vec()));
                }
                (_, TAG_DELETE) if rest.len() <= MAX_KEY_LEN => {
                    ops.push(Op::Delete(rest.to_vec()));
                }
                _ => return Err(bad()),
            }
        }
        let wal = Wal {
            file,
            len: scan.valid_len,
            ops: ops.len() as u64,
            durability,
        };
        Ok((wal, Recovered { base, ops }))
    }

    /// Appends `op`; with `sync` it is durable when this returns.
    pub(crate) fn append(&mut self, op: &Op) -> Result<()> {
        let rec = op.encode();
        self.file.write_all_at(&rec, self.len)?;
        // IMPORTANT: the operation is durable before the write is
        // acknowledged; recovery replays it onto the last checkpoint.
        self.durability.sync_data(&self.file)?;
        self.len += rec.len() as u64;
        self.ops += 1;
        Ok(())
    }

    /// Empties the WAL and starts it over on top of checkpoint `base`.
    pub(crate) fn reset(&mut self, base: u64) -> Result<()> {
        let mut body = vec![TAG_BASE];
        body.extend_from_slice(&base.to_le_bytes());
        let rec = frame::encode_one(&body);
        self.file.set_len(0)?;
        self.file.write_all_at(&rec, 0)?;
        // IMPORTANT: the emptied WAL is durable before new operations are
        // appended; until then a crash leaves the old records (already in the
        // checkpoint, so replaying them is harmless) or an empty log.
        self.durability.sync_data(&self.file)?;
        self.len = rec.len() as u64;
        self.ops = 0;
        Ok(())
    }

    /// Bytes in the WAL.
    pub(crate) fn len(&self) -> u64 {
        self.len
    }

    /// Operations logged since the last reset (or found at open).
    pub(crate) fn op_count(&self) -> u64 {
        self.ops
    }
}
