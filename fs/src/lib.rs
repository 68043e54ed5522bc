//! durafs: a filesystem for crash-testing storage software.
//!
//! The heart is [`model`], a pure state machine that tracks, for every file,
//! the exact byte ranges not yet made durable and, for every directory, the
//! entries not yet made durable, and that computes what a power cut leaves.

// The `shuttle` feature swaps the model's locks for shuttle's, which work
// only inside a shuttle test: a daemon built with it would fail at once.
#[cfg(all(feature = "shuttle", not(test)))]
compile_error!(
    "the `shuttle` feature is for durafs's own unit tests only: \
     cargo test -p durafs --features shuttle --lib shuttle"
);

pub mod backing;
pub mod control;
pub mod explore;
mod failpoint;
pub mod fs;
pub mod fsio;
pub mod fuse;
pub mod model;
pub mod mount;
pub mod testing;
pub mod trace;
