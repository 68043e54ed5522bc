//! The `durafs` command line, built inside this package so that its tests
//! can run it (`CARGO_BIN_EXE_durafs-cli`) as a separate daemon process.

fn main() -> std::process::ExitCode {
    durafs_tools::run()
}
