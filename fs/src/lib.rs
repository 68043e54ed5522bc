//! durafs: a filesystem for crash-testing storage software.
//!
//! **To crash-test code from Rust, start with [`testing`]**: a
//! [`testing::TestVolume`] mounts a durafs volume in a temporary directory,
//! runs your code on it, cuts the power under a policy and remounts what a
//! real machine could show.
//!
//! The rest, for tools built on durafs (the `durafs` binary is one):
//!
//! * [`model`]: the heart, a pure state machine that tracks, for every file,
//!   the exact byte ranges not yet made durable and, for every directory,
//!   the entries not yet made durable, and computes what a power cut leaves
//!   ([`model::crash`], [`model::enumerate`], the profiles of
//!   [`model::profile`]);
//! * [`fs`]: one volume ([`fs::DuraFs`]) over a backing directory, and
//!   [`mount`] to serve it through FUSE;
//! * [`control`]: the control file `MOUNT/.durafs` and its commands;
//! * [`trace`]: operations as values, recorded traces and their replay;
//!   [`explore`]: every crash state of a recorded run, checked;
//! * [`fsio`]: the fsync, fsync-directory and atomic-replace helpers;
//! * [`stacks`]: where in its program a blocked caller made its system
//!   call (its user-space stack, unwound and symbolised).
//!
//! `docs/design.md` draws the layers and the paths through them.

// The `shuttle` feature swaps the model's locks for shuttle's, which work
// only inside a shuttle test: a daemon built with it would fail at once.
#[cfg(all(feature = "shuttle", not(test)))]
compile_error!(
    "the `shuttle` feature is for durafs's own unit tests only: \
     cargo test -p durafs --features shuttle --lib shuttle"
);

mod backing;
pub mod control;
pub mod explore;
mod failpoint;
pub mod faults;
pub mod fs;
pub mod fsio;
mod fuse;
pub mod model;
pub mod mount;
pub mod stacks;
pub mod sys;
pub mod testing;
pub mod trace;
pub mod transport;

pub use backing::{BackingError, META_DIR};
