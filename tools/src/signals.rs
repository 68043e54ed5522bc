//! SIGINT, SIGTERM and SIGHUP, handled in one place: `signal-hook` (the
//! Rust ecosystem's signal crate: an async-signal-safe handler that only
//! wakes a thread) delivers each to a closure on a thread of its own, so
//! what a signal does runs as ordinary code.

use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

/// The signals that stop a command.
pub const STOP: [i32; 3] = [SIGINT, SIGTERM, SIGHUP];

/// Calls `f` with each of [`STOP`] received from now on, on a thread of
/// its own.
pub fn on_stop(mut f: impl FnMut(i32) + Send + 'static) -> std::io::Result<()> {
    let mut signals = Signals::new(STOP)?;
    std::thread::Builder::new()
        .name("durafs-signals".into())
        .spawn(move || {
            for sig in signals.forever() {
                f(sig);
            }
        })?;
    Ok(())
}

/// The conventional name of signal `sig` (`SIGINT`), or its number.
pub fn name(sig: i32) -> String {
    match sig {
        SIGINT => "SIGINT".into(),
        SIGTERM => "SIGTERM".into(),
        SIGHUP => "SIGHUP".into(),
        n => format!("signal {n}"),
    }
}

/// The exit status of a command stopped by `sig`: 128 + its number (130
/// for SIGINT, 143 for SIGTERM), as shells report it.
pub fn exit_status(sig: i32) -> u8 {
    u8::try_from(128 + sig).unwrap_or(255)
}
