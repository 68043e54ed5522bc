//! The daemon's peak memory while it holds unsynced data (`memory`), and
//! what every explore row reads from `durafs explore --json`.

use super::plan::Workload;
use super::volume::{self, Volume};
use super::{Ctx, fio};
use crate::{Result, err};
use serde_json::Value;

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

/// What one `durafs explore --json` reports.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ExploreSample {
    pub states: u64,
    pub seconds: f64,
    pub states_per_second: f64,
    /// durafs's own time per state (enumeration, materialisation,
    /// scheduling), when explore reports it.
    pub durafs_ms_per_state: Option<f64>,
    /// The check's time per state, when explore reports it.
    pub check_ms_per_state: Option<f64>,
}

/// One run of an explore row: explore, then the check alone on a fixed
/// state with the same jobs (runs per second on all jobs).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ExploreRun {
    pub explore: ExploreSample,
    pub check_per_second: f64,
}

/// Reads the states tried, seconds and states per second of `explore
/// --json`, and its time split per state when present.
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
        durafs_ms_per_state: v["durafs_ms_per_state"].as_f64(),
        check_ms_per_state: v["check_ms_per_state"].as_f64(),
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
    fn explore_json_with_and_without_the_time_split() {
        let s = parse_explore(
            r#"{"states_tried": 300, "states_failed": 0, "seconds": 1.5, "states_per_second": 200.0}"#,
        )
        .unwrap();
        assert_eq!(
            (s.states, s.seconds, s.states_per_second),
            (300, 1.5, 200.0)
        );
        assert_eq!((s.durafs_ms_per_state, s.check_ms_per_state), (None, None));
        let s = parse_explore(
            r#"{"states_tried": 3, "seconds": 1.0, "states_per_second": 3.0,
                "durafs_ms_per_state": 0.4, "check_ms_per_state": 300.5}"#,
        )
        .unwrap();
        assert_eq!(
            (s.durafs_ms_per_state, s.check_ms_per_state),
            (Some(0.4), Some(300.5))
        );
        assert!(parse_explore("").is_err());
        assert!(parse_explore(r#"{"states_tried": 3}"#).is_err());
    }
}
