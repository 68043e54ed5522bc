//! Failpoints for crash tests of durafs itself.
//!
//! `DURAFS_FAILPOINT=<name>:<n>` in the daemon's environment makes the
//! process SIGKILL itself at the `n`-th (1-based) time it passes the
//! failpoint `<name>`: a kill -9 at an exact place instead of a random
//! moment. Names:
//!
//! * `apply`: inside [`crate::backing::Backing::apply`], before each effect
//!   of a batch, between the two renames of an atomic replace, and before
//!   each deferred removal at the end of the batch.
//!
//! Unset (the normal case) it costs one atomic load per pass. A malformed
//! value is logged once and ignored.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

static ARMED: OnceLock<Option<(String, u64)>> = OnceLock::new();
static PASSES: AtomicU64 = AtomicU64::new(0);

fn armed() -> Option<&'static (String, u64)> {
    ARMED
        .get_or_init(|| {
            let v = std::env::var("DURAFS_FAILPOINT").ok()?;
            let parsed = v
                .split_once(':')
                .and_then(|(name, n)| Some((name.to_string(), n.parse::<u64>().ok()?)))
                .filter(|(_, n)| *n > 0);
            if parsed.is_none() {
                log::warn!("durafs: ignoring DURAFS_FAILPOINT={v:?} (expected <name>:<n>, n >= 1)");
            }
            parsed
        })
        .as_ref()
}

/// Passes failpoint `name`; the armed pass kills the process.
pub(crate) fn pass(name: &str) {
    let Some((armed, n)) = armed() else {
        return;
    };
    if armed != name || PASSES.fetch_add(1, Ordering::SeqCst) + 1 != *n {
        return;
    }
    log::warn!("durafs: failpoint {name}:{n} reached: killing the process");
    // SAFETY: signalling our own process; SIGKILL cannot be caught, so
    // nothing after this line runs.
    unsafe {
        libc::kill(libc::getpid(), libc::SIGKILL);
    }
}
