//! A volume whose journal write failed (`fsync-fail --journal`): what the
//! real filesystems do afterwards, until the volume is unmounted.
//!
//! Evidence: `docs/fsync-failures-evidence.md`, row (f′), measured on Linux
//! 6.18 with the journal (ext4), the log (xfs) or the metadata chunks
//! (btrfs) failing under a loop device:
//!
//! * ext4 aborts its journal ("Remounting filesystem read-only"): creates
//!   fail with `EROFS`, reads and stat work, and a second fsync returns 0
//!   though nothing it covers is durable.
//! * xfs shuts down ("Filesystem has been shut down due to log error"):
//!   every call fails with `EIO`, reads and stat included.
//! * btrfs aborts the transaction and turns the superblock read-only: a
//!   second fsync fails with `EROFS`, creates with `EIO`, reads and stat
//!   work.
//!
//! Not measured, and taken from the read-only superblock: the other
//! changes (write, rename, unlink, setattr) fail with `EROFS` on ext4 and
//! btrfs.
//!
//! Invariant: once degraded, nothing becomes durable: the failing fsync
//! and every later one commit nothing, so a remount (after a cut or the
//! drop-all of `durafs umount --lazy`) shows the durable state of the
//! moment of the failure.

use super::{Error, Result};
use crate::trace::{Applied, TraceOp};

/// How a volume degraded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Degraded {
    /// ext4's aborted journal: read-only, fsyncs return 0.
    JournalAborted,
    /// btrfs's aborted transaction: read-only, fsyncs fail.
    TransactionAborted,
    /// xfs's shutdown: every call fails.
    Shutdown,
}

impl Degraded {
    /// For the status and logs.
    pub fn describe(self) -> &'static str {
        match self {
            Degraded::JournalAborted => {
                "journal aborted (ext4): read-only, fsync returns 0 but persists nothing"
            }
            Degraded::TransactionAborted => {
                "transaction aborted (btrfs): read-only, fsync fails with EROFS"
            }
            Degraded::Shutdown => "shut down (xfs): every call fails with EIO",
        }
    }

    /// What the degraded volume answers to `op` instead of applying it:
    /// `Ok` answers without applying (nothing becomes durable).
    pub(super) fn refuse(self, op: &TraceOp) -> Result<Applied> {
        let rofs = Err(Error::Fault(libc::EROFS));
        let eio = Err(Error::Fault(libc::EIO));
        match op {
            // The kernel's close and writeback change nothing now.
            TraceOp::Close { .. } => Ok(Applied::Closed(false)),
            TraceOp::Writeback { .. } => Ok(Applied::WroteBack(None)),
            TraceOp::Mark { .. } => Ok(Applied::Done),
            _ if self == Degraded::Shutdown => eio,
            TraceOp::Fsync { .. } | TraceOp::Fsyncdir { .. } | TraceOp::Sync => match self {
                Degraded::JournalAborted => Ok(Applied::Done),
                _ => rofs,
            },
            TraceOp::Create { .. } if self == Degraded::TransactionAborted => eio,
            _ => rofs,
        }
    }

    /// Reads, lookups and stat fail too.
    pub(super) fn refuses_reads(self) -> bool {
        self == Degraded::Shutdown
    }
}

/// The error of a read on a shut-down volume.
pub(super) fn shut_down() -> Error {
    Error::Fault(libc::EIO)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_filesystem_refuses_as_measured() {
        let fsync = TraceOp::Fsync {
            ino: 2,
            datasync: false,
        };
        let create = TraceOp::Sync;
        let errno = |r: Result<Applied>| r.err().map(|e| e.errno());
        assert_eq!(errno(Degraded::JournalAborted.refuse(&fsync)), None);
        assert_eq!(
            errno(Degraded::TransactionAborted.refuse(&fsync)),
            Some(libc::EROFS)
        );
        assert_eq!(errno(Degraded::Shutdown.refuse(&fsync)), Some(libc::EIO));
        assert_eq!(errno(Degraded::Shutdown.refuse(&create)), Some(libc::EIO));
        assert!(Degraded::Shutdown.refuses_reads());
        assert!(!Degraded::JournalAborted.refuses_reads());
    }
}
