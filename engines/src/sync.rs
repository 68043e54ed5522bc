//! The engines' fsync calls and what a failed one leads to
//! ([`OnSyncError`]), and, in tests, the failpoint that fails them.
//!
//! Invariants:
//! * Every fsync/fdatasync an engine makes goes through [`call`], so every
//!   engine handles a failed one alike, as its [`crate::Durability`] says.
//! * Under [`OnSyncError::Poison`] (and after a failed retry) the error is
//!   returned: the engine's operation fails and poisons the store.

use crate::OnSyncError;
use std::io;
use std::path::Path;

/// Runs the fsync `f` (`what` names it in the log); when it fails, does what
/// `on` says.
pub(crate) fn call(on: OnSyncError, what: &str, f: impl Fn() -> io::Result<()>) -> io::Result<()> {
    let attempt = || {
        #[cfg(test)]
        failpoint::check()?;
        f()
    };
    let Err(e) = attempt() else { return Ok(()) };
    match on {
        OnSyncError::Poison => Err(e),
        OnSyncError::Retry => {
            log::warn!("{what} failed ({e}); retrying it, as configured (on_sync_error=retry)");
            attempt()
        }
        OnSyncError::Ignore => {
            log::warn!("{what} failed ({e}); ignoring it, as configured (on_sync_error=ignore)");
            Ok(())
        }
    }
}

/// [`durafs::fsio::rewrite_atomic`] with its fsyncs made by `d`: write
/// `path.tmp`, fsync it, rename it over `path`, fsync the directory.
pub(crate) fn rewrite_atomic(d: crate::Durability, path: &Path, bytes: &[u8]) -> io::Result<()> {
    durafs::fsio::rewrite_atomic_with(path, bytes, |f| d.sync_all(f), |dir| d.sync_dir(dir))
}

/// Test failpoint: fails this thread's fsync attempts with `EIO`, as a disk
/// that could not write the pages would; the real fsync is then not made.
/// A retried attempt counts as one more attempt, so failing one attempt
/// lets a retry succeed (as Linux reports a retry of a failed fsync).
#[cfg(test)]
pub(crate) mod failpoint {
    use std::cell::Cell;
    use std::io;

    thread_local! {
        /// Attempts still allowed before failing, and failures left.
        static PLAN: Cell<(usize, usize)> = const { Cell::new((0, 0)) };
        /// Attempts made and attempts failed since [`fail_after`].
        static SEEN: Cell<(usize, usize)> = const { Cell::new((0, 0)) };
    }

    /// Lets `ok` attempts succeed, then fails the next `fail`.
    pub(crate) fn fail_after(ok: usize, fail: usize) {
        PLAN.set((ok, fail));
        SEEN.set((0, 0));
    }

    /// Attempts made and attempts failed since [`fail_after`].
    pub(crate) fn seen() -> (usize, usize) {
        SEEN.get()
    }

    pub(super) fn check() -> io::Result<()> {
        let (ok, fail) = PLAN.get();
        let (made, failed) = SEEN.get();
        if ok > 0 {
            PLAN.set((ok - 1, fail));
        } else if fail > 0 {
            PLAN.set((0, fail - 1));
            SEEN.set((made + 1, failed + 1));
            return Err(io::Error::from_raw_os_error(5));
        }
        SEEN.set((made + 1, failed));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Durability;
    use std::fs::File;

    fn sync_once(on: OnSyncError, failures: usize) -> (io::Result<()>, (usize, usize)) {
        let dir = tempfile::tempdir().unwrap();
        let f = File::create(dir.path().join("f")).unwrap();
        failpoint::fail_after(0, failures);
        let r = Durability::Fsync(on).sync_data(&f);
        let seen = failpoint::seen();
        failpoint::fail_after(0, 0);
        (r, seen)
    }

    #[test]
    fn poison_returns_the_first_failure() {
        let (r, seen) = sync_once(OnSyncError::Poison, 1);
        assert_eq!(r.unwrap_err().raw_os_error(), Some(5));
        assert_eq!(seen, (1, 1));
    }

    #[test]
    fn retry_retries_once_and_reports_a_second_failure() {
        let (r, seen) = sync_once(OnSyncError::Retry, 1);
        r.unwrap();
        assert_eq!(seen, (2, 1), "one failure, one retry that succeeded");
        let (r, seen) = sync_once(OnSyncError::Retry, 2);
        assert_eq!(r.unwrap_err().raw_os_error(), Some(5));
        assert_eq!(seen, (2, 2), "retried once only");
    }

    #[test]
    fn ignore_acknowledges_without_retrying() {
        let (r, seen) = sync_once(OnSyncError::Ignore, 5);
        r.unwrap();
        assert_eq!(seen, (1, 1));
    }

    #[test]
    fn flush_makes_no_attempt() {
        let dir = tempfile::tempdir().unwrap();
        let f = File::create(dir.path().join("f")).unwrap();
        failpoint::fail_after(0, 1);
        Durability::Flush.sync_data(&f).unwrap();
        assert_eq!(failpoint::seen(), (0, 0));
        failpoint::fail_after(0, 0);
    }

    #[test]
    fn a_directory_that_cannot_be_opened_is_not_an_fsync_error() {
        let dir = tempfile::tempdir().unwrap();
        let d = Durability::Fsync(OnSyncError::Ignore);
        let err = d.sync_dir(&dir.path().join("missing")).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
    }

    #[test]
    fn rewrite_under_each_policy_replaces_the_file_and_handles_a_failed_fsync() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("meta");
        for on in [OnSyncError::Poison, OnSyncError::Retry, OnSyncError::Ignore] {
            std::fs::write(&p, b"old").unwrap();
            failpoint::fail_after(0, 1);
            let r = Durability::Fsync(on).rewrite(&p, b"new");
            failpoint::fail_after(0, 0);
            match on {
                OnSyncError::Poison => {
                    assert!(r.is_err());
                    assert_eq!(std::fs::read(&p).unwrap(), b"old", "not renamed");
                }
                _ => {
                    r.unwrap();
                    assert_eq!(std::fs::read(&p).unwrap(), b"new", "{on}");
                }
            }
        }
    }
}
