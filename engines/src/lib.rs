//! Storage engines that run on a durafs volume, each in a vulnerable form
//! ([`Durability::Flush`]: written and flushed to the OS, never fsynced) and a
//! crash-safe form ([`Durability::Fsync`]).
//!
//! Every engine implements [`KvStore`], so the demo and the tests drive them
//! alike. Every on-disk format is framed with [`frame`].

pub mod btree;
pub mod frame;
pub mod hash_index;
pub mod log_hash;
pub mod lsm;
#[cfg(all(test, any(target_arch = "x86_64", target_arch = "aarch64")))]
mod no_sync;
mod poison;
pub mod segment;
pub mod sstable;

use std::fmt;
use std::io;

/// How hard an engine works to make an acknowledged write survive a power cut.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Durability {
    /// Write and flush to the OS page cache only; never fsync. A power cut can
    /// lose anything written since the OS last wrote back on its own.
    Flush,
    /// fsync file data before acknowledging, fsync directories after creating,
    /// renaming or deleting files, and order multi-step operations so that a
    /// crash at any point recovers every acknowledged write.
    Fsync,
}

impl fmt::Display for Durability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Durability::Flush => "flush",
            Durability::Fsync => "fsync",
        })
    }
}

/// Errors from the engines.
#[derive(Debug)]
pub enum Error {
    /// An I/O call failed.
    Io(io::Error),
    /// Durable data is damaged: a checksum failed where a crash cannot explain
    /// it, or a structure refers to something that is not there.
    Corrupt(String),
    /// The caller passed something the engine cannot store.
    Invalid(String),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Io(e) => write!(f, "I/O error: {e}"),
            Error::Corrupt(what) => write!(f, "corruption: {what}"),
            Error::Invalid(what) => write!(f, "invalid input: {what}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io(e) => Some(e),
            _ => None,
        }
    }
}

impl From<io::Error> for Error {
    fn from(e: io::Error) -> Self {
        Error::Io(e)
    }
}

/// Result alias for the engines.
pub type Result<T> = std::result::Result<T, Error>;

/// The operations every engine offers. A `put` or `delete` that returns `Ok`
/// is *acknowledged*: under [`Durability::Fsync`] it survives any power cut.
pub trait KvStore: Send {
    /// Stores `value` under `key`.
    fn put(&mut self, key: &[u8], value: &[u8]) -> Result<()>;
    /// Returns the value stored under `key`.
    fn get(&mut self, key: &[u8]) -> Result<Option<Vec<u8>>>;
    /// Removes `key`.
    fn delete(&mut self, key: &[u8]) -> Result<()>;
    /// Returns every live key and value in key order.
    fn scan(&mut self) -> Result<Vec<(Vec<u8>, Vec<u8>)>>;
    /// Runs the engine's background step now: memtable flush and compaction
    /// (LSM), segment merge (hash stores), checkpoint (B-tree).
    fn maintain(&mut self) -> Result<()>;
    /// Closes the store cleanly.
    fn close(self: Box<Self>) -> Result<()>;
}
