//! `explore` and `explore-sqlite`: crash states checked per second by
//! `durafs explore --jobs CORES`, next to the check alone.
//!
//! `explore` runs the workload of `tools/bench/explore.sh` with the check
//! `true`; `explore-sqlite` builds a small SQLite database with the
//! `sqlite3` CLI (a table, then five transactions of 100 rows, about
//! 110 KiB; two with `--quick`) and
//! checks each state with `PRAGMA integrity_check`.
//!
//! The check alone: the workload runs once in a plain directory (its final
//! state, fixed), one copy per job; the check then runs as many times as
//! explore checked states, spread over the same number of jobs, each run
//! as explore runs it (`sh -c CHECK` in the state, `DURAFS_STATE` and
//! `DURAFS_MARKS` set). States per second of the two give how much of
//! explore's time is its own.

use super::Ctx;
use super::plan::Workload;
use super::solo::{ExploreRun, parse_explore};
use crate::workload::{ENV_MARKS, ENV_STATE, check_interrupted, copy_tree, run_check_timed};
use crate::{Result, err};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

/// What `explore-sqlite` needs.
pub const SQLITE_HINT: &str =
    "sqlite3 is not installed (Debian/Ubuntu: apt-get install -y sqlite3)";

/// The least acceptable explore / check-alone rate.
pub const CHECK_RATIO_TARGET: f64 = 0.9;

/// The check of `explore-sqlite`: the database is whole.
pub const SQLITE_CHECK: &str = "test \"$(sqlite3 db 'PRAGMA integrity_check' 2>&1)\" = ok";

/// Fails with [`SQLITE_HINT`] when `sqlite3` cannot run.
pub fn sqlite_installed() -> std::result::Result<(), String> {
    match Command::new("sqlite3")
        .arg("-version")
        .stdin(Stdio::null())
        .output()
    {
        Ok(o) if o.status.success() => Ok(()),
        Ok(o) => Err(format!("sqlite3 -version failed ({})", o.status)),
        Err(_) => Err(SQLITE_HINT.to_string()),
    }
}

/// The workload of `tools/bench/explore.sh` with `appends` appends of
/// 8 KiB (an fsync every 8), then a file replaced by fsync + rename +
/// directory fsync.
pub fn explore_workload(appends: usize) -> String {
    format!(
        "i=0; while [ $i -lt {appends} ]; do head -c 8192 /dev/zero | tr \"\\0\" x >> log; \
         i=$((i+1)); [ $((i % 8)) -eq 0 ] && sync log; done; \
         printf new > tmp && sync tmp && mv tmp data && sync ."
    )
}

/// A table, then `transactions` transactions of 100 rows of 200
/// characters, each its own `sqlite3` process (rollback journal, the
/// default).
pub fn sqlite_workload(transactions: usize) -> String {
    format!(
        "set -e; sqlite3 db 'CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT NOT NULL)'; \
         i=0; while [ $i -lt {transactions} ]; do \
         sqlite3 db 'WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c WHERE x<100) \
         INSERT INTO t(v) SELECT hex(randomblob(100)) FROM c'; i=$((i+1)); done"
    )
}

/// The workload and check of an explore row.
fn spec(ctx: &Ctx, w: Workload) -> Result<(String, &'static str)> {
    match w {
        Workload::Explore => Ok((explore_workload(ctx.sizes.explore_appends), "true")),
        Workload::ExploreSqlite => {
            Ok((sqlite_workload(ctx.sizes.sqlite_transactions), SQLITE_CHECK))
        }
        _ => Err(err(format!("{}: not an explore row", w.name()))),
    }
}

/// Explores `w`'s workload, then measures its check alone. Explore shares
/// this process group, so a Ctrl-C reaches it and it cleans up after
/// itself.
pub fn explore(ctx: &Ctx, w: Workload) -> Result<ExploreRun> {
    let (workload, check) = spec(ctx, w)?;
    let name = w.name();
    let scratch = ctx.root.join(name);
    let out = Command::new(&ctx.exe)
        .arg("explore")
        .args(["--jobs", &ctx.cores.to_string(), "--json", "--check", check])
        .arg("--dir")
        .arg(&scratch)
        .args(["--", "sh", "-c", &workload])
        .current_dir(&ctx.root)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| err(format!("{name}: running {}: {e}", ctx.exe.display())))?;
    check_interrupted()?;
    // Exit 1 is states that failed the check: results, not errors.
    if !matches!(out.status.code(), Some(0 | 1)) {
        let stderr = String::from_utf8_lossy(&out.stderr);
        return Err(err(format!(
            "{name}: durafs explore failed ({}): {}",
            out.status,
            stderr.trim()
        )));
    }
    let _ = std::fs::remove_dir_all(&scratch);
    let explore = parse_explore(&String::from_utf8_lossy(&out.stdout))?;
    let check_per_second = check_alone(ctx, name, &workload, check, explore.states)?;
    Ok(ExploreRun {
        explore,
        check_per_second,
    })
}

/// How `states` checks spread over `jobs` jobs: as evenly as possible,
/// the first jobs taking one more.
pub fn spread(states: u64, jobs: usize) -> Vec<u64> {
    let jobs = jobs.max(1);
    let n = jobs as u64;
    (0..n)
        .map(|j| states / n + u64::from(j < states % n))
        .collect()
}

/// The check's rate on the workload's final state: `states` runs over
/// `ctx.cores` jobs, each on its own copy.
fn check_alone(ctx: &Ctx, name: &str, workload: &str, check: &str, states: u64) -> Result<f64> {
    let fixed = ctx.root.join(format!("{name}-fixed"));
    let tree = fixed.join("tree");
    let io = |p: &Path, e: std::io::Error| err(format!("{name}: {}: {e}", p.display()));
    std::fs::create_dir_all(&tree).map_err(|e| io(&tree, e))?;
    let made = run_check_timed(workload, &tree, &[], true, None)?;
    if !made.passed() {
        return Err(err(format!(
            "{name}: the workload failed in a plain directory (exit {}): {}",
            made.code(),
            made.output.trim()
        )));
    }
    let copies: Vec<PathBuf> = (0..ctx.cores.max(1))
        .map(|j| {
            let d = fixed.join(format!("job-{j}"));
            copy_tree(&tree, &d)?;
            Ok(d)
        })
        .collect::<Result<_>>()?;
    let counts = spread(states, copies.len());
    let jobs: Vec<(&PathBuf, u64)> = copies.iter().zip(counts).collect();
    let seconds = timed_in_parallel(&jobs, |&(d, n)| checks(name, check, d, n));
    let _ = std::fs::remove_dir_all(&fixed);
    Ok(states as f64 / seconds?.max(1e-9))
}

/// Runs `check` `n` times on the state in `dir`, as explore runs it.
/// Runs `job` on each of `jobs` at once, one thread each; the seconds
/// they took together, or the first error.
pub fn timed_in_parallel<T: Sync>(
    jobs: &[T],
    job: impl Fn(&T) -> Result<()> + Sync,
) -> Result<f64> {
    let started = Instant::now();
    let results: Vec<Result<()>> = std::thread::scope(|s| {
        let job = &job;
        let handles: Vec<_> = jobs.iter().map(|j| s.spawn(move || job(j))).collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(err("a check thread panicked")))
            })
            .collect()
    });
    let seconds = started.elapsed().as_secs_f64();
    results.into_iter().collect::<Result<Vec<()>>>()?;
    Ok(seconds)
}

fn checks(name: &str, check: &str, dir: &Path, n: u64) -> Result<()> {
    let marks = dir.with_extension("marks");
    std::fs::write(&marks, "").map_err(|e| err(format!("{}: {e}", marks.display())))?;
    for _ in 0..n {
        let run = run_check_timed(
            check,
            dir,
            &[(ENV_STATE, dir), (ENV_MARKS, &marks)],
            true,
            None,
        )?;
        check_interrupted()?;
        if !run.passed() {
            return Err(err(format!(
                "{name}: the check fails on the workload's final state (exit {}): {}",
                run.code(),
                run.output.trim()
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checks_spread_evenly_over_the_jobs() {
        assert_eq!(spread(10, 3), [4, 3, 3]);
        assert_eq!(spread(2, 4), [1, 1, 0, 0]);
        assert_eq!(spread(7, 1), [7]);
        assert_eq!(spread(5, 0), [5]);
        assert_eq!(spread(300, 2).iter().sum::<u64>(), 300);
    }

    #[test]
    fn the_workloads_parse_as_shell() {
        assert!(explore_workload(16).contains("-lt 16 "));
        for w in [explore_workload(64), sqlite_workload(5)] {
            let ok = Command::new("sh").arg("-n").arg("-c").arg(&w).status();
            assert!(ok.unwrap().success(), "{w}");
        }
        let ok = Command::new("sh")
            .arg("-n")
            .arg("-c")
            .arg(SQLITE_CHECK)
            .status();
        assert!(ok.unwrap().success());
    }
}
