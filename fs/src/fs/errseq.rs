//! Which open file descriptions an fsync failure is reported to: Linux's
//! errseq rule, kept per inode and per open (FUSE handle).
//!
//! Evidence: `lib/errseq.c` and `mm/filemap.c`
//! (`file_check_and_advance_wb_err`) since Linux 4.13, with the change of
//! 4.16 ("errseq: Always report a writeback error once"): a mapping keeps an
//! error counter with a SEEN flag; each open file description samples it at
//! open (`errseq_sample`: the current value if the error was seen, else 0,
//! so a new opener still learns an error nobody has seen); an fsync reports
//! `EIO` when the counter moved since its description's sample, then
//! advances the sample and marks the error seen. So every description open
//! at a failure learns it once, at its next fsync, and a retried fsync on
//! the same description returns 0. FUSE's own `fuse_fsync` checks only the
//! kernel's page cache of the file, so the daemon's reply decides.
//!
//! Invariant: a handle's sample never exceeds its inode's counter.

use super::{DuraFs, Error, Result};
use crate::model::Ino;
use dashmap::DashMap;
use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Clone, Copy, Debug, Default)]
struct Inode {
    /// Failures recorded (a new one counts only once the last was seen).
    errors: u64,
    seen: bool,
}

#[derive(Clone, Copy, Debug)]
struct Handle {
    ino: Ino,
    sample: u64,
}

/// The errseq state of a volume.
#[derive(Debug, Default)]
pub(super) struct ErrSeq {
    next: AtomicU64,
    inodes: DashMap<Ino, Inode>,
    handles: DashMap<u64, Handle>,
}

impl ErrSeq {
    /// A new open of `ino`: its handle (never 0).
    pub(super) fn open(&self, ino: Ino) -> u64 {
        let fh = self.next.fetch_add(1, Ordering::Relaxed) + 1;
        let sample = match self.inodes.get(&ino) {
            Some(i) if i.seen => i.errors,
            _ => 0,
        };
        self.handles.insert(fh, Handle { ino, sample });
        fh
    }

    /// The handle was released.
    pub(super) fn close(&self, fh: u64) {
        self.handles.remove(&fh);
    }

    /// A writeback of `ino` failed.
    pub(super) fn record(&self, ino: Ino) {
        let mut i = self.inodes.entry(ino).or_default();
        if i.seen || i.errors == 0 {
            i.errors += 1;
        }
        i.seen = false;
    }

    /// At the end of an fsync through handle `fh` of `ino`: true when an
    /// error it has not seen must be reported (the sample advances).
    pub(super) fn check_and_advance(&self, ino: Ino, fh: u64) -> bool {
        let Some(mut inode) = self.inodes.get_mut(&ino) else {
            return false;
        };
        let Some(mut h) = self.handles.get_mut(&fh) else {
            // Without a handle (fsync from the API, handle 0) only the
            // failing call itself reports.
            return false;
        };
        if h.ino != ino || h.sample == inode.errors {
            return false;
        }
        h.sample = inode.errors;
        inode.seen = true;
        true
    }

    /// Forgets `ino` (removed for good).
    pub(super) fn forget(&self, ino: Ino) {
        self.inodes.remove(&ino);
    }
}

impl DuraFs {
    /// A new open of file `ino`: its handle, for [`DuraFs::fsync_handle`]
    /// and [`DuraFs::close_handle`].
    pub fn open_handle(&self, ino: Ino) -> Result<u64> {
        self.model.getattr(ino)?;
        Ok(self.errseq.open(ino))
    }

    /// Handle `fh` was released (after the close).
    pub fn close_handle(&self, fh: u64) {
        self.errseq.close(fh);
    }

    /// fsync / fdatasync through open handle `fh`: as [`DuraFs::fsync`],
    /// and a writeback failure of the file this handle has not learned yet
    /// is reported once (`EIO`), as Linux's errseq rule does (`errseq`).
    pub fn fsync_handle(&self, ino: Ino, fh: u64, datasync: bool) -> Result<()> {
        let res = self.fsync(ino, datasync);
        if matches!(res, Err(Error::WritebackFailed)) {
            self.errseq.record(ino);
        }
        let unseen = self.errseq.check_and_advance(ino, fh);
        match res {
            Ok(()) if unseen => {
                log::info!("durafs: fsync of #{ino} reports an earlier writeback failure");
                Err(Error::WritebackFailed)
            }
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_open_description_learns_a_failure_once() {
        let e = ErrSeq::default();
        let (a, b) = (e.open(7), e.open(7));
        e.record(7);
        assert!(e.check_and_advance(7, a), "the failing fsync's description");
        assert!(!e.check_and_advance(7, a), "a retry on it returns 0");
        assert!(
            e.check_and_advance(7, b),
            "another open description learns it once"
        );
        assert!(!e.check_and_advance(7, b));
        let c = e.open(7);
        assert!(!e.check_and_advance(7, c), "seen before it opened");
        assert!(!e.check_and_advance(8, a), "another file");
    }

    #[test]
    fn an_error_nobody_saw_reaches_a_later_opener() {
        let e = ErrSeq::default();
        let a = e.open(7);
        e.record(7);
        let late = e.open(7);
        assert!(e.check_and_advance(7, late));
        assert!(e.check_and_advance(7, a), "the earlier one too");
        e.record(7);
        e.record(7);
        assert!(e.check_and_advance(7, a), "two unseen failures report once");
        assert!(!e.check_and_advance(7, a));
        e.close(a);
        assert!(
            !e.check_and_advance(7, a),
            "a released handle reports nothing"
        );
    }
}
