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

use durafs::fsio;
use std::fmt;
use std::fs::File;
use std::io;
use std::path::Path;

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

/// The engines' persistence calls, each a no-op under
/// [`Durability::Flush`] (the vulnerable form skips exactly these) and the
/// [`durafs::fsio`] helper under [`Durability::Fsync`]. Every engine makes
/// things durable through these, never through a conditional of its own.
impl Durability {
    /// [`Durability::Fsync`] when `sync` holds (an engine's `sync_writes`
    /// option), else [`Durability::Flush`].
    pub fn fsync_if(sync: bool) -> Durability {
        if sync {
            Durability::Fsync
        } else {
            Durability::Flush
        }
    }

    /// True for [`Durability::Fsync`]: for decisions that are not a
    /// persistence call (how recovery treats a torn tail).
    pub fn syncs(self) -> bool {
        self == Durability::Fsync
    }

    /// `fdatasync(2)`: `file`'s data and size are durable.
    pub fn sync_data(self, file: &File) -> io::Result<()> {
        match self {
            Durability::Flush => Ok(()),
            Durability::Fsync => fsio::fdatasync_file(file),
        }
    }

    /// `fsync(2)`: `file`'s data and metadata are durable.
    pub fn sync_all(self, file: &File) -> io::Result<()> {
        match self {
            Durability::Flush => Ok(()),
            Durability::Fsync => fsio::fsync_file(file),
        }
    }

    /// The entries of directory `dir` (a create, rename or unlink in it)
    /// are durable.
    pub fn sync_dir(self, dir: &Path) -> io::Result<()> {
        match self {
            Durability::Flush => Ok(()),
            Durability::Fsync => fsio::fsync_dir(dir),
        }
    }

    /// `path`'s entry in its directory (its create or rename) is durable.
    pub fn sync_entry(self, path: &Path) -> io::Result<()> {
        match self {
            Durability::Flush => Ok(()),
            Durability::Fsync => fsio::fsync_parent(path),
        }
    }

    /// Replaces `path` with `bytes`. Fsync: atomically and durably
    /// ([`fsio::rewrite_atomic`]: a crash leaves the old or the new content).
    /// Flush: truncated and written in place, so a crash can leave it
    /// empty or partly written.
    pub fn rewrite(self, path: &Path, bytes: &[u8]) -> io::Result<()> {
        match self {
            Durability::Flush => std::fs::write(path, bytes),
            Durability::Fsync => fsio::rewrite_atomic(path, bytes),
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fsync_if_chooses_the_form_and_both_forms_rewrite_the_whole_file() {
        assert_eq!(Durability::fsync_if(true), Durability::Fsync);
        assert_eq!(Durability::fsync_if(false), Durability::Flush);
        assert!(Durability::Fsync.syncs() && !Durability::Flush.syncs());
        let dir = tempfile::tempdir().unwrap();
        for d in [Durability::Flush, Durability::Fsync] {
            let path = dir.path().join(format!("{d}"));
            std::fs::write(&path, b"old and longer").unwrap();
            d.rewrite(&path, b"new").unwrap();
            assert_eq!(std::fs::read(&path).unwrap(), b"new", "{d}");
            d.sync_entry(&path).unwrap();
            d.sync_dir(dir.path()).unwrap();
        }
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 2, "no temporary left: {names:?}");
    }
}
