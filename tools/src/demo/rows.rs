//! The engines and settings the demo measures: one row each, from the
//! loss-window analysis.

use durafs_engines::btree::{BTree, BTreeOptions};
use durafs_engines::hash_index::{HashIndex, HashIndexOptions};
use durafs_engines::log_hash::{LogHash, LogHashOptions};
use durafs_engines::lsm::{Lsm, LsmOptions};
use durafs_engines::{Durability, KvStore, Result};
use std::path::Path;

/// Opens (and recovers) a store in a directory.
pub type Open = fn(&Path) -> Result<Box<dyn KvStore>>;

/// One engine in one setting.
#[derive(Clone, Copy, Debug)]
pub struct Row {
    pub engine: &'static str,
    pub setting: &'static str,
    /// Does the engine log writes ahead of its main structure?
    pub wal: bool,
    /// Where it fsyncs: "no", "yes", or which parts.
    pub fsync: &'static str,
    /// The setting claims to be crash-safe.
    pub safe: bool,
    /// The mechanism that opens the window, when losses are observed.
    pub mechanism: &'static str,
    pub open: Open,
}

const MEMTABLE: usize = 4 << 10;
const SEGMENT: u64 = 8 << 10;
const CHECKPOINT: u64 = 8 << 10;

fn lsm(wal: Durability, sstable: Durability, flush_order: Durability) -> LsmOptions {
    LsmOptions {
        wal,
        sstable,
        flush_order,
        memtable_bytes: MEMTABLE,
        compact_after: 3,
    }
}

use Durability::Flush;
const FSYNC: Durability = Durability::FSYNC;

fn boxed<S: KvStore + 'static>(r: Result<S>) -> Result<Box<dyn KvStore>> {
    r.map(|s| Box::new(s) as Box<dyn KvStore>)
}

/// Every row, vulnerable forms first within each engine.
pub fn all() -> Vec<Row> {
    vec![
        Row {
            engine: "lsm",
            setting: "flush (analysis)",
            wal: true,
            fsync: "no",
            safe: false,
            mechanism: "WAL records acknowledged after write+flush, SSTables closed unsynced, \
                        WAL truncated with nothing durable",
            open: |d| boxed(Lsm::open(d, lsm(Flush, Flush, Flush))),
        },
        Row {
            engine: "lsm",
            setting: "wal flush only",
            wal: true,
            fsync: "sstable+order",
            safe: false,
            mechanism: "WAL record acknowledged after flush, lost when unsynced data dropped",
            open: |d| boxed(Lsm::open(d, lsm(Flush, FSYNC, FSYNC))),
        },
        Row {
            engine: "lsm",
            setting: "sstable flush only",
            wal: true,
            fsync: "wal+order",
            safe: false,
            mechanism: "WAL truncate survived, SSTable data did not",
            open: |d| boxed(Lsm::open(d, lsm(FSYNC, Flush, FSYNC))),
        },
        Row {
            engine: "lsm",
            setting: "flush order only",
            wal: true,
            fsync: "wal+sstable",
            safe: false,
            mechanism: "multi-step flush/compaction without an atomic commit: table list, \
                        WAL truncate and deletes reach the disk out of order",
            open: |d| boxed(Lsm::open(d, lsm(FSYNC, FSYNC, Flush))),
        },
        Row {
            engine: "lsm",
            setting: "fsync",
            wal: true,
            fsync: "yes",
            safe: true,
            mechanism: "",
            open: |d| boxed(Lsm::open(d, lsm(FSYNC, FSYNC, FSYNC))),
        },
        Row {
            engine: "log_hash",
            setting: "flush (analysis)",
            wal: false,
            fsync: "no",
            safe: false,
            mechanism: "append acknowledged (offset returned) after write+flush; merge deletes \
                        old segments before the merged one is durable",
            open: |d| {
                boxed(LogHash::open(
                    d,
                    LogHashOptions {
                        durability: Flush,
                        segment_bytes: SEGMENT,
                    },
                ))
            },
        },
        Row {
            engine: "log_hash",
            setting: "fsync",
            wal: false,
            fsync: "yes",
            safe: true,
            mechanism: "",
            open: |d| {
                boxed(LogHash::open(
                    d,
                    LogHashOptions {
                        durability: FSYNC,
                        segment_bytes: SEGMENT,
                    },
                ))
            },
        },
        Row {
            engine: "hash_index",
            setting: "sync_writes=false",
            wal: false,
            fsync: "no",
            safe: false,
            mechanism: "segment appends and hint files never fsynced; new segments' names \
                        never made durable",
            open: |d| {
                boxed(HashIndex::open(
                    d,
                    HashIndexOptions {
                        sync_writes: false,
                        segment_bytes: SEGMENT,
                    },
                ))
            },
        },
        Row {
            engine: "hash_index",
            setting: "sync_writes=true",
            wal: false,
            fsync: "yes",
            safe: true,
            mechanism: "",
            open: |d| {
                boxed(HashIndex::open(
                    d,
                    HashIndexOptions {
                        sync_writes: true,
                        segment_bytes: SEGMENT,
                    },
                ))
            },
        },
        Row {
            engine: "btree",
            setting: "flush",
            wal: true,
            fsync: "no",
            safe: false,
            mechanism: "WAL record acknowledged unsynced; checkpoint header can name pages that \
                        never reached the disk",
            open: |d| {
                boxed(BTree::open(
                    d,
                    BTreeOptions {
                        durability: Flush,
                        checkpoint_bytes: CHECKPOINT,
                    },
                ))
            },
        },
        Row {
            engine: "btree",
            setting: "fsync (analysis)",
            wal: true,
            fsync: "yes",
            safe: true,
            mechanism: "",
            open: |d| {
                boxed(BTree::open(
                    d,
                    BTreeOptions {
                        durability: FSYNC,
                        checkpoint_bytes: CHECKPOINT,
                    },
                ))
            },
        },
    ]
}
