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
mod sync;

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
    /// crash at any point recovers every acknowledged write; when an fsync
    /// fails, do what the [`OnSyncError`] says. Only
    /// [`Durability::FSYNC`] (poisoning) is crash-safe.
    Fsync(OnSyncError),
}

/// What an engine does when an `fsync`/`fdatasync` it makes fails.
///
/// After a failed fsync the kernel may already have dropped the dirty pages
/// it could not write, or marked them clean (Linux): a second fsync then
/// returns 0 with the data never written ("fsyncgate", PostgreSQL 2018;
/// Rebello et al., "Can Applications Recover from fsync Failures?", USENIX
/// ATC 2020). Only [`OnSyncError::Poison`] is crash-safe.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum OnSyncError {
    /// Fail the operation, poison the store and refuse writes until it is
    /// reopened (recovery then reads what really reached the disk). The
    /// crash-safe choice.
    #[default]
    Poison,
    /// Retry the fsync once; if it then succeeds, acknowledge and carry on
    /// (PostgreSQL before 2018). On Linux the retry returns 0 for pages the
    /// failed call marked clean, so acknowledged data can be lost. A failed
    /// retry is then handled as [`OnSyncError::Poison`].
    Retry,
    /// Ignore the error and acknowledge, as many programs do.
    Ignore,
}

impl fmt::Display for OnSyncError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            OnSyncError::Poison => "poison",
            OnSyncError::Retry => "retry",
            OnSyncError::Ignore => "ignore",
        })
    }
}

/// The engines' persistence calls, each a no-op under
/// [`Durability::Flush`] (the vulnerable form skips exactly these) and the
/// [`durafs::fsio`] helper under [`Durability::Fsync`], whose failure is
/// handled as its [`OnSyncError`] says. Every engine makes
/// things durable through these, never through a conditional of its own.
impl Durability {
    /// The crash-safe form: fsync, and poison the store when an fsync fails.
    pub const FSYNC: Durability = Durability::Fsync(OnSyncError::Poison);

    /// [`Durability::FSYNC`] when `sync` holds (an engine's `sync_writes`
    /// option), else [`Durability::Flush`].
    pub fn fsync_if(sync: bool) -> Durability {
        if sync {
            Durability::FSYNC
        } else {
            Durability::Flush
        }
    }

    /// True for [`Durability::Fsync`]: for decisions that are not a
    /// persistence call (how recovery treats a torn tail).
    pub fn syncs(self) -> bool {
        matches!(self, Durability::Fsync(_))
    }

    /// What a failed fsync leads to; `None` under [`Durability::Flush`].
    pub fn on_sync_error(self) -> Option<OnSyncError> {
        match self {
            Durability::Flush => None,
            Durability::Fsync(on) => Some(on),
        }
    }

    /// `fdatasync(2)`: `file`'s data and size are durable.
    pub fn sync_data(self, file: &File) -> io::Result<()> {
        match self {
            Durability::Flush => Ok(()),
            Durability::Fsync(on) => sync::call(on, "fdatasync", || fsio::fdatasync_file(file)),
        }
    }

    /// `fsync(2)`: `file`'s data and metadata are durable.
    pub fn sync_all(self, file: &File) -> io::Result<()> {
        match self {
            Durability::Flush => Ok(()),
            Durability::Fsync(on) => sync::call(on, "fsync", || fsio::fsync_file(file)),
        }
    }

    /// The entries of directory `dir` (a create, rename or unlink in it)
    /// are durable.
    pub fn sync_dir(self, dir: &Path) -> io::Result<()> {
        match self {
            Durability::Flush => Ok(()),
            Durability::Fsync(on) => {
                // Opening is not the fsync: its failure is no fsync error.
                let d = File::open(dir)?;
                sync::call(on, "fsync of a directory", || fsio::fsync_dir_handle(&d))
            }
        }
    }

    /// `path`'s entry in its directory (its create or rename) is durable.
    pub fn sync_entry(self, path: &Path) -> io::Result<()> {
        self.sync_dir(durafs::fsio::parent_dir(path)?)
    }

    /// Replaces `path` with `bytes`. Fsync: atomically and durably, as
    /// [`fsio::rewrite_atomic`] does (a crash leaves the old or the new
    /// content), with its fsyncs made by [`Durability::sync_all`] and
    /// [`Durability::sync_dir`]. Flush: truncated and written in place, so a
    /// crash can leave it empty or partly written.
    pub fn rewrite(self, path: &Path, bytes: &[u8]) -> io::Result<()> {
        match self {
            Durability::Flush => std::fs::write(path, bytes),
            Durability::Fsync(_) => sync::rewrite_atomic(self, path, bytes),
        }
    }
}

impl fmt::Display for Durability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Durability::Flush => f.write_str("flush"),
            Durability::Fsync(OnSyncError::Poison) => f.write_str("fsync"),
            Durability::Fsync(on) => write!(f, "fsync+{on}"),
        }
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
    fn fsync_if_chooses_the_form_and_every_form_rewrites_the_whole_file() {
        assert_eq!(Durability::fsync_if(true), Durability::FSYNC);
        assert_eq!(Durability::fsync_if(false), Durability::Flush);
        assert!(Durability::FSYNC.syncs() && !Durability::Flush.syncs());
        assert_eq!(Durability::FSYNC.on_sync_error(), Some(OnSyncError::Poison));
        assert_eq!(Durability::Flush.on_sync_error(), None);
        let dir = tempfile::tempdir().unwrap();
        for d in [
            Durability::Flush,
            Durability::FSYNC,
            Durability::Fsync(OnSyncError::Retry),
            Durability::Fsync(OnSyncError::Ignore),
        ] {
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
        assert_eq!(names.len(), 4, "no temporary left: {names:?}");
        let shown: Vec<String> = names.iter().map(|n| n.to_string_lossy().into()).collect();
        for name in ["flush", "fsync", "fsync+retry", "fsync+ignore"] {
            assert!(shown.iter().any(|n| n == name), "{name} in {shown:?}");
        }
    }
}
