//! A B+tree of fixed-size pages in `btree.db`, updated copy-on-write, with a
//! write-ahead log of logical operations in `btree.wal`.
//!
//! # Byte layout
//!
//! ```text
//! btree.db = page 0 | page 1 | page 2 | ... | page n-1        PAGE_SIZE = 4096
//!            header  header   node pages (or free pages)
//!            slot 0  slot 1
//!
//! every page = frame(body) | zero padding to PAGE_SIZE
//! frame      = len u32 LE | body | crc32 u32 LE               (crate::frame)
//!
//! header body   = magic "DFBTREE1" | generation u64 LE | root u32 LE
//!                 | page_count u32 LE                (root 0 = empty tree)
//! leaf body     = 1 u8 | count u16 LE
//!                 | count x (key_len u16 LE | key | val_len u16 LE | value)
//! internal body = 2 u8 | count u16 LE | child_0 u32 LE
//!                 | count x (key_len u16 LE | key_i | child_i+1 u32 LE)
//!                 keys of child_i < key_i+1 <= keys of child_i+1
//!
//! btree.wal = frame(base) | frame(op) | frame(op) | ...
//! base      = 0 u8 | generation u64 LE   the checkpoint the ops apply to
//! op        = 1 u8 | key_len u16 LE | key | value             put
//!           | 2 u8 | key                                      delete
//! ```
//!
//! Keys are at most [`MAX_KEY_LEN`] bytes and values [`MAX_VALUE_LEN`], so
//! any three entries fit in a page and a split always yields two nodes that
//! fit. Larger ones are rejected with [`Error::Invalid`].
//!
//! # Writes, checkpoint, recovery
//!
//! A write appends its operation to the WAL (fdatasynced under
//! [`Durability::Fsync`]) and then applies it to the in-memory tree. Pages
//! named by the durable header (*committed* pages) are never overwritten: the
//! first change to a node in an epoch copies it, and its ancestors, to fresh
//! pages (see `btree/tree.rs`). A checkpoint (`maintain`, `close`, or the WAL
//! passing `checkpoint_bytes`) of generation `g + 1`:
//!
//! 1. writes every fresh page; fdatasync `btree.db`;
//! 2. writes header `g + 1` into slot `(g + 1) % 2`, the slot of the older
//!    header; fdatasync `btree.db`;
//! 3. empties the WAL and writes `base = g + 1`; fdatasync `btree.wal`.
//!
//! Recovery picks the valid header slot with the highest generation, checks
//! the file holds its `page_count` pages, reads every page reachable from its
//! root (each must pass its checksum), drops a torn WAL tail, and replays the
//! WAL's operations onto that tree. Replaying an operation twice is harmless:
//! each sets or removes one key.
//!
//! # Crash cases (Fsync), as in redb's design notes
//!
//! * **During a write, before its fdatasync returns:** the operation was not
//!   acknowledged; the WAL may end torn, and the tail is truncated.
//! * **During step 1:** some fresh pages are torn or missing. They are not
//!   reachable from header `g`, which recovery still picks (slot `g % 2` was
//!   not touched), and the WAL (base `g`) holds every operation since `g`.
//! * **During step 2:** slot `(g + 1) % 2` is torn, so it fails its checksum
//!   and header `g` wins, as above. A torn page is therefore never read:
//!   the only pages a valid header names were durable before it was written.
//! * **During step 3 (or after step 2):** header `g + 1` wins. The WAL holds
//!   base `g` and the operations already in `g + 1`, or is empty, or (the
//!   truncation not being durable yet) holds the new base frame over the old
//!   one, which has the same length, followed by old operations. Replaying
//!   old operations onto `g + 1` changes nothing.
//! * **Pages reused:** a page is reused only once the header that stopped
//!   naming it is durable, so header `g` never names a page that epoch
//!   `g + 1` overwrites; header `g - 1` can, but it is only chosen when
//!   header `g`'s slot is damaged, and then the WAL's base (`g` or later)
//!   exceeds its generation, which recovery reports as corruption.
//! * **Database creation:** a directory `open` creates is made durable
//!   (its parent fsynced) first; `btree.db` then appears whole, with header
//!   0, via [`durafs::fsio::rewrite_atomic`], before the WAL exists; the WAL's name is
//!   made durable (directory fsync) and its base record fdatasynced before
//!   any write is acknowledged.
//! * **Torn WAL tail at open:** the cut is fdatasynced before anything is
//!   appended after it.
//!
//! A WAL whose base is newer than the chosen header means a checkpoint was
//! lost; that, a header-less file, and any reachable page that fails its
//! checksum are reported as [`Error::Corrupt`].
//!
//! # Durability::Flush
//!
//! Nothing is ever fsynced (the `no_sync` tests run this form with every
//! durability call refused): not the directory or `btree.db` when they are
//! created (`btree.db` is written in place, not atomically), not the WAL
//! before a write is acknowledged, not the cut of a torn WAL tail, and not
//! the pages before the header or the header before the WAL is emptied. A
//! power cut can therefore:
//!
//! * lose acknowledged writes: WAL records the OS had not written back;
//! * leave `btree.db` empty or short after its creation: no valid header,
//!   reported as corruption;
//! * during or after a checkpoint, leave a header naming pages that never
//!   reached the disk. A page never written before reads as zeros and fails
//!   its checksum (corruption), but a *reused* page still holding the older
//!   node it had passes it, so recovery can silently return stale values or
//!   miss keys;
//! * leave an emptied WAL over a lost checkpoint (its base is newer than the
//!   header: corruption), or the old WAL behind a new header (harmless).

mod page;
mod tree;
mod wal;

#[cfg(test)]
mod tests;

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;

pub use page::{MAX_KEY_LEN, MAX_VALUE_LEN, PAGE_SIZE};

use crate::segment::{Poison, ensure_dir};
use crate::{Durability, Error, KvStore, Result};
use page::{FIRST_NODE_PAGE, Header, PageId};
use tree::{Tree, page_offset};
use wal::{Op, Wal};

/// Name of the page file inside the store's directory.
pub const DB_FILE: &str = "btree.db";
/// Name of the WAL inside the store's directory.
pub const WAL_FILE: &str = "btree.wal";

/// Options for [`BTree`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BTreeOptions {
    /// Whether the WAL (and checkpoints) are fsynced.
    pub durability: Durability,
    /// A checkpoint runs after a write leaves the WAL at least this long.
    pub checkpoint_bytes: u64,
}

impl Default for BTreeOptions {
    fn default() -> Self {
        BTreeOptions {
            durability: Durability::FSYNC,
            checkpoint_bytes: 1 << 20,
        }
    }
}

/// A B+tree store (see the module documentation).
pub struct BTree {
    tree: Tree,
    wal: Wal,
    generation: u64,
    durability: Durability,
    checkpoint_bytes: u64,
    failed: Poison,
    /// Test failpoint: checkpoint steps allowed before a simulated crash.
    #[cfg(test)]
    crash_after: Option<usize>,
}

impl BTree {
    /// Opens the store in `dir`, creating it if needed, and recovers: loads
    /// the newest durable checkpoint and replays the WAL onto it.
    pub fn open(dir: &Path, opts: BTreeOptions) -> Result<Self> {
        if opts.checkpoint_bytes == 0 {
            return Err(Error::Invalid("checkpoint_bytes must be positive".into()));
        }
        let durability = opts.durability;
        ensure_dir(dir, durability)?;
        let db_path = dir.join(DB_FILE);
        if !db_path.exists() {
            create_db(&db_path, durability)?;
        }
        let db = OpenOptions::new().read(true).write(true).open(&db_path)?;
        let header = read_header(&db)?;
        if header.page_count < FIRST_NODE_PAGE
            || db.metadata()?.len() < page_offset(header.page_count)
        {
            return Err(Error::Corrupt(format!(
                "{DB_FILE}: header {} names {} pages but the file is shorter",
                header.generation, header.page_count
            )));
        }
        let tree = Tree::load(db, header)?;
        let (wal, recovered) = Wal::open(&dir.join(WAL_FILE), dir, durability)?;
        let mut bt = BTree {
            tree,
            wal,
            generation: header.generation,
            durability,
            checkpoint_bytes: opts.checkpoint_bytes,
            failed: Poison::default(),
            #[cfg(test)]
            crash_after: None,
        };
        match recovered.base {
            None => bt.wal.reset(header.generation)?,
            Some(base) if base > header.generation => {
                return Err(Error::Corrupt(format!(
                    "{WAL_FILE} continues checkpoint {base} but {DB_FILE} holds only checkpoint {}",
                    header.generation
                )));
            }
            Some(_) => {
                for op in &recovered.ops {
                    bt.apply(op)?;
                }
            }
        }
        Ok(bt)
    }

    /// Writes the in-memory tree to the page file and empties the WAL (see
    /// the module documentation for the steps and their crash cases).
    pub fn checkpoint(&mut self) -> Result<()> {
        self.guard(Self::checkpoint_inner)
    }

    /// Generation of the last checkpoint.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Runs a mutating step; a failure part-way leaves memory and files out
    /// of step, so it poisons the store until it is reopened.
    fn guard<T>(&mut self, f: impl FnOnce(&mut Self) -> Result<T>) -> Result<T> {
        self.failed.check()?;
        let r = f(self);
        self.failed.record(r)
    }

    fn apply(&mut self, op: &Op) -> Result<()> {
        match op {
            Op::Put(k, v) => self.tree.insert(k, v),
            Op::Delete(k) => self.tree.remove(k).map(|_| ()),
        }
    }

    fn write(&mut self, op: &Op) -> Result<()> {
        self.wal.append(op)?;
        self.apply(op)?;
        if self.wal.len() >= self.checkpoint_bytes {
            self.checkpoint_inner()?;
        }
        Ok(())
    }

    fn checkpoint_inner(&mut self) -> Result<()> {
        if self.wal.op_count() == 0 {
            return Ok(());
        }
        let next = self
            .generation
            .checked_add(1)
            .ok_or_else(|| Error::Invalid("checkpoint generations exhausted".into()))?;
        self.step()?;
        self.tree.write_fresh_pages()?;
        // IMPORTANT: (step 1) every page the new header names is durable
        // before the header is written.
        self.durability.sync_data(self.tree.db())?;
        self.step()?;
        let slot = PageId::from(next % 2 == 1);
        self.tree
            .db()
            .write_all_at(&self.tree.header(next).encode(), page_offset(slot))?;
        // IMPORTANT: (step 2) the new header is durable before the WAL
        // forgets the operations it covers.
        self.durability.sync_data(self.tree.db())?;
        self.tree.commit();
        self.generation = next;
        self.step()?;
        self.wal.reset(next)
    }

    /// Marks a checkpoint step; tests make it fail there to stop the
    /// checkpoint as a crash would.
    fn step(&mut self) -> Result<()> {
        #[cfg(test)]
        crate::segment::failpoint(&mut self.crash_after)?;
        Ok(())
    }
}

/// Creates an empty database: header 0 in slot 0, slot 1 zeroed.
fn create_db(path: &Path, durability: Durability) -> Result<()> {
    let mut content = Header {
        generation: 0,
        root: 0,
        page_count: FIRST_NODE_PAGE,
    }
    .encode();
    content.resize(2 * PAGE_SIZE, 0);
    // IMPORTANT: under Fsync the database appears whole, with a valid
    // header, or not at all, and before the WAL that builds on it.
    Ok(durability.rewrite(path, &content)?)
}

/// Reads both header slots and returns the valid one with the highest
/// generation.
fn read_header(db: &File) -> Result<Header> {
    let mut best: Option<Header> = None;
    for slot in [0, 1] {
        let mut page = vec![0u8; PAGE_SIZE];
        match db.read_exact_at(&mut page, page_offset(slot)) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => continue,
            Err(e) => return Err(e.into()),
        }
        let Some(h) = Header::decode(&page) else {
            continue;
        };
        if h.generation % 2 != u64::from(slot) {
            return Err(Error::Corrupt(format!(
                "{DB_FILE}: header {} found in slot {slot}",
                h.generation
            )));
        }
        if best.is_none_or(|b| h.generation > b.generation) {
            best = Some(h);
        }
    }
    best.ok_or_else(|| Error::Corrupt(format!("{DB_FILE}: neither header slot is valid")))
}

impl KvStore for BTree {
    fn put(&mut self, key: &[u8], value: &[u8]) -> Result<()> {
        if key.len() > MAX_KEY_LEN || value.len() > MAX_VALUE_LEN {
            return Err(Error::Invalid(format!(
                "B-tree entries are limited to {MAX_KEY_LEN}-byte keys and \
                 {MAX_VALUE_LEN}-byte values; got {} and {}",
                key.len(),
                value.len()
            )));
        }
        let op = Op::Put(key.to_vec(), value.to_vec());
        self.guard(|s| s.write(&op))
    }

    fn get(&mut self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.tree.get(key)
    }

    fn delete(&mut self, key: &[u8]) -> Result<()> {
        // An absent key needs no log record: replay already leaves it absent.
        if key.len() > MAX_KEY_LEN || self.tree.get(key)?.is_none() {
            return Ok(());
        }
        let op = Op::Delete(key.to_vec());
        self.guard(|s| s.write(&op))
    }

    fn scan(&mut self) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        self.tree.scan()
    }

    fn maintain(&mut self) -> Result<()> {
        self.checkpoint()
    }

    fn close(mut self: Box<Self>) -> Result<()> {
        self.checkpoint()
    }
}
