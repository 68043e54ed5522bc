//! Soak mode of the differential tester (`tests/src/diff/`):
//!
//! ```text
//! cargo run -p durafs-tests --bin diff-soak -- --ops 20000 --seed 7 --seeds 4 --setup posix-wb
//! ```
//!
//! runs `--seeds` consecutive seeds from `--seed`, `--ops` generated
//! operations each, on a fresh durafs volume and a plain directory side by
//! side (root and `/dev/fuse` needed). A discrepancy is shrunk and reported
//! with the seed and a ready-made regression test; the exit status is then
//! 101. Setups: a model (`posix`, `ext4`, `xfs`, `btrfs`; `journal` is
//! `ext4`) for the classic operations, `MODEL-full` (also descriptors,
//! owners and times), `MODEL-wb` (those on a writeback-cache mount).

use durafs_tests::diff::{Persistence, Setup, fuzz};
use std::process::ExitCode;
use std::time::Instant;

const USAGE: &str = "usage: diff-soak [--ops N] [--seed S] [--seeds K] \
     [--setup MODEL[-full|-wb]] (MODEL: posix, ext4, xfs, btrfs; journal is ext4)";

#[derive(Debug)]
struct Args {
    ops: usize,
    seed: u64,
    seeds: u64,
    setup: Setup,
}

fn setup(name: &str) -> Option<Setup> {
    let (p, rest) = match name.split_once('-') {
        Some((p, rest)) => (p, Some(rest)),
        None => (name, None),
    };
    let p: Persistence = p.parse().ok()?;
    match rest {
        None => Some(p.into()),
        Some("full") => Some(Setup::full(p)),
        Some("wb") => Some(Setup::writeback(p)),
        Some(_) => None,
    }
}

fn parse(mut it: impl Iterator<Item = String>) -> Result<Args, String> {
    let mut a = Args {
        ops: 10_000,
        seed: 1,
        seeds: 1,
        setup: Setup::full(Persistence::Posix),
    };
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or(format!("{flag} needs a value"));
        let num = |v: String| v.parse::<u64>().map_err(|e| format!("{flag} {v:?}: {e}"));
        match flag.as_str() {
            "--ops" => a.ops = num(value()?)? as usize,
            "--seed" => a.seed = num(value()?)?,
            "--seeds" => a.seeds = num(value()?)?,
            "--setup" => {
                let v = value()?;
                a.setup = setup(&v).ok_or(format!("unknown setup {v:?}"))?;
            }
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(a)
}

fn main() -> ExitCode {
    let a = match parse(std::env::args().skip(1)) {
        Ok(a) => a,
        Err(e) => {
            if !e.is_empty() {
                eprintln!("diff-soak: {e}");
            }
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    let t = Instant::now();
    let (mut ops, mut cuts) = (0, 0);
    for seed in a.seed..a.seed.saturating_add(a.seeds) {
        let s = fuzz(a.setup, seed, a.ops);
        println!(
            "{} seed {seed}: {} ops ({} errors), {} cuts ({} pending ops)",
            a.setup, s.ops, s.errors, s.cuts, s.pending_at_cuts
        );
        ops += s.ops;
        cuts += s.cuts;
    }
    println!(
        "all {} seeds passed: {ops} ops, {cuts} cuts, {:.1?}",
        a.seeds,
        t.elapsed()
    );
    ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Result<Args, String> {
        parse(s.split_whitespace().map(String::from))
    }

    #[test]
    fn flags_parse_and_bad_ones_are_refused() {
        let a = args("--ops 500 --seed 9 --seeds 3 --setup journal-wb").unwrap();
        assert_eq!((a.ops, a.seed, a.seeds), (500, 9, 3));
        assert_eq!(a.setup, Setup::writeback(Persistence::Ext4));
        assert_eq!(
            args("--setup posix").unwrap().setup,
            Persistence::Posix.into()
        );
        assert!(args("--ops").unwrap_err().contains("needs a value"));
        assert!(args("--ops many").unwrap_err().contains("many"));
        assert_eq!(
            args("--setup btrfs-full").unwrap().setup,
            Setup::full(Persistence::Btrfs)
        );
        assert!(args("--setup zfs").unwrap_err().contains("unknown setup"));
        assert!(args("--setup xfs-x").unwrap_err().contains("unknown setup"));
        assert!(args("--frob").unwrap_err().contains("unknown argument"));
    }
}
