//! Poisoning a store after a failed write, and the test failpoint that
//! stops a multi-step operation as a crash would.

use crate::{Error, Result};
use std::io;

/// The error returned after an operation failed half-way.
pub(crate) fn failed_error() -> Error {
    Error::Io(io::Error::other(
        "an earlier write failed; the store must be reopened",
    ))
}

/// Set once a mutating step failed part-way: memory and files may be out of
/// step, so the store refuses writes until it is reopened. Every engine
/// keeps one.
#[derive(Debug, Default)]
pub(crate) struct Poison(bool);

impl Poison {
    /// Fails with [`failed_error`] once poisoned.
    pub(crate) fn check(&self) -> Result<()> {
        if self.0 { Err(failed_error()) } else { Ok(()) }
    }

    /// Passes `r` on, poisoning the store when it is an error.
    pub(crate) fn record<T>(&mut self, r: Result<T>) -> Result<T> {
        if r.is_err() {
            self.0 = true;
        }
        r
    }
}

/// Test failpoint: `crash_after` counts the steps still allowed; at zero a
/// step fails as a crash there would.
#[cfg(test)]
pub(crate) fn failpoint(crash_after: &mut Option<usize>) -> Result<()> {
    if let Some(n) = crash_after.as_mut() {
        if *n == 0 {
            return Err(Error::Io(io::Error::other("simulated crash")));
        }
        *n -= 1;
    }
    Ok(())
}
