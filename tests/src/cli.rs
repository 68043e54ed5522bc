//! Running the `durafs` binary from a mounted test.

use std::process::{Command, Output};

/// `EXE ARGS` (`EXE`: the test's `env!("CARGO_BIN_EXE_durafs-cli")`).
pub fn run(exe: &str, args: &[&str]) -> Output {
    Command::new(exe)
        .args(args)
        .output()
        .expect("running the durafs binary")
}

/// [`run`], which must succeed; its stdout.
pub fn ok(exe: &str, args: &[&str]) -> String {
    let out = run(exe, args);
    assert!(
        out.status.success(),
        "durafs {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}
