//! The durafs-only measurements: the daemon's peak memory while it holds
//! unsynced data (`memory`), and crash states checked per second by
//! `durafs explore` on the workload of `tools/bench/explore.sh`.

use super::plan::{Sizes, Workload};
use super::volume::{self, Volume};
use super::{Ctx, fio};
use crate::workload::check_interrupted;
use crate::{Result, err};
use serde_json::Value;
use std::process::{Command, Stdio};

const MIB: u64 = 1 << 20;

/// One run of `memory`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MemorySample {
    pub peak_rss_bytes: u64,
    pub unsynced_bytes: u64,
}

impl MemorySample {
    /// The most the daemon may hold: 1.15 x the unsynced bytes + 64 MiB.
    pub fn limit_bytes(&self) -> u64 {
        let scaled = u128::from(self.unsynced_bytes) * 115 / 100;
        u64::try_from(scaled)
            .unwrap_or(u64::MAX)
            .saturating_add(64 * MIB)
    }

    pub fn met(&self) -> bool {
        self.peak_rss_bytes <= self.limit_bytes()
    }
}

/// Writes without fsync on a fresh mount (default dirty limit), then reads
/// the daemon's peak resident set and what it holds unsynced.
pub fn memory(ctx: &Ctx, run: usize) -> Result<MemorySample> {
    let vol: Volume = ctx.mount(false)?;
    let job = Workload::Memory
        .job(&ctx.sizes)
        .ok_or_else(|| err("memory: no fio job"))?;
    fio::run(
        &job,
        vol.path(),
        &ctx.output("memory", "durafs", run),
        "memory",
    )?;
    let (pid, unsynced) = volume::pid_and_unsynced(&vol.status()?)?;
    let peak = volume::peak_rss(pid)?;
    vol.unmount()?;
    Ok(MemorySample {
        peak_rss_bytes: peak,
        unsynced_bytes: unsynced,
    })
}

/// One run of `explore`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ExploreSample {
    pub states: u64,
    pub seconds: f64,
    pub states_per_second: f64,
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

/// Runs `durafs explore --jobs CORES --json --check true` on the workload.
/// It shares this process group, so a Ctrl-C reaches it and it cleans up
/// after itself.
pub fn explore(ctx: &Ctx, sizes: &Sizes) -> Result<ExploreSample> {
    let scratch = ctx.root.join("explore");
    let out = Command::new(&ctx.exe)
        .arg("explore")
        .args([
            "--jobs",
            &ctx.cores.to_string(),
            "--json",
            "--check",
            "true",
        ])
        .arg("--dir")
        .arg(&scratch)
        .args(["--", "sh", "-c", &explore_workload(sizes.explore_appends)])
        .current_dir(&ctx.root)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| err(format!("explore: running {}: {e}", ctx.exe.display())))?;
    check_interrupted()?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        return Err(err(format!(
            "explore: durafs explore failed ({}): {}",
            out.status,
            stderr.trim()
        )));
    }
    let _ = std::fs::remove_dir(&scratch);
    parse_explore(&String::from_utf8_lossy(&out.stdout))
}

/// Reads the states tried, seconds and states per second of `explore
/// --json`.
pub fn parse_explore(text: &str) -> Result<ExploreSample> {
    let bad = |why: &str| err(format!("explore: malformed output: {why}"));
    let v: Value = serde_json::from_str(text.trim()).map_err(|e| bad(&e.to_string()))?;
    let states = v["states_tried"]
        .as_u64()
        .ok_or_else(|| bad("no states_tried"))?;
    let seconds = v["seconds"].as_f64().ok_or_else(|| bad("no seconds"))?;
    let states_per_second = v["states_per_second"]
        .as_f64()
        .ok_or_else(|| bad("no states_per_second"))?;
    if states == 0 || states_per_second <= 0.0 {
        return Err(bad("no states checked"));
    }
    Ok(ExploreSample {
        states,
        seconds,
        states_per_second,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_limit_is_115_percent_plus_64_mib() {
        let s = MemorySample {
            peak_rss_bytes: 0,
            unsynced_bytes: 100 * MIB,
        };
        assert_eq!(s.limit_bytes(), 115 * MIB + 64 * MIB);
        assert!(s.met());
        let over = MemorySample {
            peak_rss_bytes: 179 * MIB + 1,
            ..s
        };
        assert!(!over.met());
        let at = MemorySample {
            peak_rss_bytes: 179 * MIB,
            ..s
        };
        assert!(at.met());
    }

    #[test]
    fn explore_json_and_workload() {
        let s = parse_explore(
            r#"{"states_tried": 300, "states_failed": 0, "seconds": 1.5, "states_per_second": 200.0}"#,
        )
        .unwrap();
        assert_eq!(
            (s.states, s.seconds, s.states_per_second),
            (300, 1.5, 200.0)
        );
        assert!(parse_explore("").is_err());
        assert!(parse_explore(r#"{"states_tried": 3}"#).is_err());
        assert!(explore_workload(16).contains("-lt 16 "));
        let out = Command::new("sh")
            .arg("-n")
            .arg("-c")
            .arg(explore_workload(64))
            .status()
            .unwrap();
        assert!(out.success(), "the workload parses as shell");
    }
}
