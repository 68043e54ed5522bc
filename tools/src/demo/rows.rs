//! The engines and settings the demo measures: one row each, from the
//! loss-window analysis.

use durafs_engines::btree::{BTree, BTreeOptions};
use durafs_engines::hash_index::{HashIndex, HashIndexOptions};
use durafs_engines::log_hash::{LogHash, LogHashOptions};
use durafs_engines::lsm::{Lsm, LsmOptions};
use durafs_engines::{Durability, KvStore, OnSyncError, Result};
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
    /// A fault armed on the trial's volume once the store is open, in the
    /// control file's grammar (`fsync-fail --path ^/store/wal ...`).
    pub fault: Option<&'static str>,
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

/// Every row, vulnerable forms first within each engine, then the
/// fsync-error rows ([`fsync_errors`]).
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
            fault: None,
        },
        Row {
            engine: "lsm",
            setting: "wal flush only",
            wal: true,
            fsync: "sstable+order",
            safe: false,
            mechanism: "WAL record acknowledged after flush, lost when unsynced data dropped",
            open: |d| boxed(Lsm::open(d, lsm(Flush, FSYNC, FSYNC))),
            fault: None,
        },
        Row {
            engine: "lsm",
            setting: "sstable flush only",
            wal: true,
            fsync: "wal+order",
            safe: false,
            mechanism: "WAL truncate survived, SSTable data did not",
            open: |d| boxed(Lsm::open(d, lsm(FSYNC, Flush, FSYNC))),
            fault: None,
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
            fault: None,
        },
        Row {
            engine: "lsm",
            setting: "fsync",
            wal: true,
            fsync: "yes",
            safe: true,
            mechanism: "",
            open: |d| boxed(Lsm::open(d, lsm(FSYNC, FSYNC, FSYNC))),
            fault: None,
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
            fault: None,
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
            fault: None,
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
            fault: None,
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
            fault: None,
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
            fault: None,
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
            fault: None,
        },
    ]
    .into_iter()
    .chain(fsync_errors())
    .collect()
}

/// The fault of the fsync-error rows: every fsync of an SSTable
/// (`/store/000001.sst`, ...) fails with EIO, as on a failing device or a
/// full thin-provisioned volume under the table files, the way PostgreSQL's
/// checkpoints met failed fsyncs of their data files.
pub const TABLE_FSYNC_FAILS: &str = "fsync-fail --path '^/store/[0-9]+\\.sst$' --every 1 --forever";

/// The retry row's fault: every second fsync of an SSTable fails. From the
/// second table on, each table's fsync fails and its retry (the next
/// call) goes through: on ext4 it returns 0, the failed pages having been
/// marked clean, as Linux answers a retry. (A fault on every call would
/// fail the retry too, which a disk that has nothing left to write cannot.)
pub const TABLE_FSYNC_FAILS_ONCE_EACH: &str =
    "fsync-fail --path '^/store/[0-9]+\\.sst$' --every 2 --forever";

/// The setting of the row that retries a failed fsync.
pub const RETRY_SETTING: &str = "fsync + retry on error (PostgreSQL < 2018)";

fn lsm_on_sync_error(on: OnSyncError) -> LsmOptions {
    let d = Durability::Fsync(on);
    lsm(d, d, d)
}

/// The LSM in its crash-safe setting with each [`OnSyncError`], the
/// fsyncs of its SSTables failing ([`TABLE_FSYNC_FAILS`],
/// [`TABLE_FSYNC_FAILS_ONCE_EACH`] for the retry row) on a volume with
/// ext4's semantics for a failed fsync: the failed pages are marked clean,
/// a retried fsync returns 0, and their data is lost at the next cut. A
/// flush that carries on names the table in the manifest and truncates the
/// WAL; a compaction deletes the tables it merged: from the first flush on,
/// a cut loses the puts in tables.
pub fn fsync_errors() -> Vec<Row> {
    let fault = Some(TABLE_FSYNC_FAILS);
    let retried = Some(TABLE_FSYNC_FAILS_ONCE_EACH);
    vec![
        Row {
            engine: "lsm",
            setting: RETRY_SETTING,
            wal: true,
            fsync: "yes, some fail",
            safe: false,
            mechanism: "an SSTable's fsync failed and was retried; the retry returned 0 (the \
                        failed pages marked clean, never written), the manifest named the table \
                        and the WAL was truncated: its puts lost at the cut",
            open: |d| boxed(Lsm::open(d, lsm_on_sync_error(OnSyncError::Retry))),
            fault: retried,
        },
        Row {
            engine: "lsm",
            setting: "fsync + ignore error",
            wal: true,
            fsync: "yes, some fail",
            safe: false,
            mechanism: "an SSTable's fsync failed and the error was ignored: the manifest named \
                        the table and the WAL was truncated, its puts lost at the cut",
            open: |d| boxed(Lsm::open(d, lsm_on_sync_error(OnSyncError::Ignore))),
            fault,
        },
        Row {
            engine: "lsm",
            setting: "fsync + poison on error",
            wal: true,
            fsync: "yes, some fail",
            safe: true,
            mechanism: "",
            open: |d| boxed(Lsm::open(d, lsm_on_sync_error(OnSyncError::Poison))),
            fault,
        },
    ]
}
