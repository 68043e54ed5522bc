//! The benchmark's result: medians, ratios and targets from the samples of
//! every run (rendered by `text`, or serialised as one JSON object).

use super::explore::CHECK_RATIO_TARGET;
use super::pending::PendingSample;
use super::plan::Workload;
use super::solo::{ExploreRun, MemorySample};
use serde::Serialize;

pub use super::text::{progress_figure, text};

/// The machine and settings a report was made with.
#[derive(Clone, Debug, Serialize)]
pub struct Header {
    pub date: String,
    pub kernel: String,
    pub cores: usize,
    pub fs: String,
    /// The directory the scratch directory went in.
    pub dir: String,
    pub runs: usize,
    pub quick: bool,
    pub mount_options: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub peers: Vec<PeerInfo>,
}

/// A peer and the command that mounts it.
#[derive(Clone, Debug, Serialize)]
pub struct PeerInfo {
    pub name: String,
    pub command: String,
}

/// One workload measured on every side.
#[derive(Clone, Debug, Serialize)]
pub struct Row {
    pub name: &'static str,
    pub unit: &'static str,
    pub native: f64,
    pub durafs: f64,
    /// durafs / native.
    pub ratio: f64,
    pub target: f64,
    pub met: bool,
    pub runs_native: Vec<f64>,
    pub runs_durafs: Vec<f64>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub peers: Vec<PeerFigure>,
}

/// One peer's figure in a row.
#[derive(Clone, Debug, Serialize)]
pub struct PeerFigure {
    pub name: String,
    /// The peer's median.
    pub median: f64,
    /// durafs / the peer.
    pub ratio: f64,
    /// The least acceptable ratio, for the peers and rows that have one.
    pub target: Option<f64>,
    pub met: Option<bool>,
    pub runs: Vec<f64>,
}

impl Row {
    /// The row of `w` from each side's runs; `peers` as (name, runs).
    pub fn new(
        w: Workload,
        runs_native: Vec<f64>,
        runs_durafs: Vec<f64>,
        peers: Vec<(String, Vec<f64>)>,
    ) -> Row {
        let (native, durafs) = (median(&runs_native), median(&runs_durafs));
        let r = ratio(durafs, native);
        let peers = peers
            .into_iter()
            .map(|(name, runs)| {
                let m = median(&runs);
                let pr = ratio(durafs, m);
                let target = w.peer_target(&name);
                PeerFigure {
                    met: target.map(|t| pr >= t),
                    name,
                    median: m,
                    ratio: pr,
                    target,
                    runs,
                }
            })
            .collect();
        Row {
            name: w.name(),
            unit: w.unit().label(),
            native,
            durafs,
            ratio: r,
            target: w.target(),
            met: r >= w.target(),
            runs_native,
            runs_durafs,
            peers,
        }
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct Memory {
    pub peak_rss_bytes: u64,
    pub unsynced_bytes: u64,
    pub limit_bytes: u64,
    pub met: bool,
}

impl Memory {
    /// The run with the highest peak: a bound must hold in every run.
    pub fn worst(samples: &[MemorySample]) -> Option<Memory> {
        let s = samples.iter().max_by_key(|s| s.peak_rss_bytes)?;
        Some(Memory {
            peak_rss_bytes: s.peak_rss_bytes,
            unsynced_bytes: s.unsynced_bytes,
            limit_bytes: s.limit_bytes(),
            met: s.met(),
        })
    }
}

/// `pending` at one N: medians over the runs.
#[derive(Clone, Debug, Serialize)]
pub struct PendingSize {
    pub files: usize,
    pub status_seconds: f64,
    pub cut_seconds: f64,
    /// Files the cut left (median).
    pub kept_files: f64,
    /// The cut's floor: creating its kept files natively on the backing's
    /// filesystem.
    pub native_seconds: f64,
    /// The daemon's memory per pending file beyond its bytes.
    pub bytes_per_file: f64,
}

/// `pending`: the small and the big N, how time grew between them, and
/// the memory per file at the big N.
#[derive(Clone, Debug, Serialize)]
pub struct Pending {
    pub small: PendingSize,
    pub big: PendingSize,
    /// big / small, in time.
    pub status_ratio: f64,
    pub cut_ratio: f64,
    /// Each ratio must be below this.
    pub ratio_limit: f64,
    /// At the big N.
    pub status_limit_seconds: f64,
    pub cut_limit_seconds: f64,
    /// Bytes per pending file beyond its data, at the big N.
    pub bytes_per_file_limit: f64,
    pub ratio_met: bool,
    pub seconds_met: bool,
    pub memory_met: bool,
    pub met: bool,
}

/// The limits of `pending` (issue 21, point 4).
pub const PENDING_RATIO_LIMIT: f64 = 12.0;
pub const PENDING_STATUS_SECONDS: f64 = 1.0;
pub const PENDING_CUT_SECONDS: f64 = 2.0;
pub const PENDING_BYTES_PER_FILE: f64 = 1024.0;

impl Pending {
    pub fn median(samples: &[PendingSample]) -> Option<Pending> {
        let first = samples.first()?;
        let size = |i: usize| {
            let of = |f: &dyn Fn(&PendingSample) -> f64| {
                median(&samples.iter().map(f).collect::<Vec<f64>>())
            };
            PendingSize {
                files: first.runs[i].files,
                status_seconds: of(&|s| s.runs[i].status_seconds),
                cut_seconds: of(&|s| s.runs[i].cut_seconds),
                kept_files: of(&|s| s.runs[i].kept_files as f64),
                native_seconds: of(&|s| s.runs[i].native_seconds),
                bytes_per_file: of(&|s| s.runs[i].bytes_per_file()),
            }
        };
        let (small, big) = (size(0), size(1));
        let status_ratio = ratio(big.status_seconds, small.status_seconds);
        let cut_ratio = ratio(big.cut_seconds, small.cut_seconds);
        let ratio_met = status_ratio < PENDING_RATIO_LIMIT && cut_ratio < PENDING_RATIO_LIMIT;
        let seconds_met =
            big.status_seconds < PENDING_STATUS_SECONDS && big.cut_seconds < PENDING_CUT_SECONDS;
        let memory_met = big.bytes_per_file < PENDING_BYTES_PER_FILE;
        Some(Pending {
            small,
            big,
            status_ratio,
            cut_ratio,
            ratio_limit: PENDING_RATIO_LIMIT,
            status_limit_seconds: PENDING_STATUS_SECONDS,
            cut_limit_seconds: PENDING_CUT_SECONDS,
            bytes_per_file_limit: PENDING_BYTES_PER_FILE,
            ratio_met,
            seconds_met,
            memory_met,
            met: ratio_met && seconds_met && memory_met,
        })
    }
}

/// An explore row (`explore`, `explore-sqlite`, `explore-ext4`): medians
/// over the runs.
#[derive(Clone, Debug, Serialize)]
pub struct Explore {
    pub states: u64,
    pub seconds: f64,
    pub states_per_second: f64,
    /// The least acceptable states per second, for the rows that have one.
    pub target: Option<f64>,
    /// The check alone on a fixed state, same jobs, runs per second.
    pub check_per_second: f64,
    /// states_per_second / check_per_second.
    pub check_ratio: f64,
    pub check_ratio_target: Option<f64>,
    /// durafs's own time and the check's, per state, when explore gives
    /// them (in every run).
    pub durafs_ms_per_state: Option<f64>,
    pub check_ms_per_state: Option<f64>,
    /// Every target of the row met.
    pub met: bool,
}

impl Explore {
    pub fn median(w: Workload, samples: &[ExploreRun]) -> Option<Explore> {
        if samples.is_empty() {
            return None;
        }
        let of =
            |f: &dyn Fn(&ExploreRun) -> f64| median(&samples.iter().map(f).collect::<Vec<f64>>());
        let some = |f: &dyn Fn(&ExploreRun) -> Option<f64>| {
            let v: Option<Vec<f64>> = samples.iter().map(f).collect();
            v.map(|v| median(&v))
        };
        let states_per_second = of(&|s| s.explore.states_per_second);
        let check_per_second = of(&|s| s.check_per_second);
        let check_ratio = ratio(states_per_second, check_per_second);
        let target = match w {
            Workload::Explore | Workload::ExploreExt4 => Some(w.target()),
            _ => None,
        };
        // Issue 21's bound is for workloads under 1 MiB: not the 64 MiB
        // ext4 image.
        let check_ratio_target = match w {
            Workload::Explore | Workload::ExploreSqlite => Some(CHECK_RATIO_TARGET),
            _ => None,
        };
        Some(Explore {
            states: of(&|s| s.explore.states as f64).round() as u64,
            seconds: of(&|s| s.explore.seconds),
            states_per_second,
            target,
            check_per_second,
            check_ratio,
            check_ratio_target,
            durafs_ms_per_state: some(&|s| s.explore.durafs_ms_per_state),
            check_ms_per_state: some(&|s| s.explore.check_ms_per_state),
            met: target.is_none_or(|t| states_per_second >= t)
                && check_ratio_target.is_none_or(|t| check_ratio >= t),
        })
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct Report {
    #[serde(flatten)]
    pub header: Header,
    pub workloads: Vec<Row>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory: Option<Memory>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pending: Option<Pending>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub explore: Option<Explore>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub explore_sqlite: Option<Explore>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub explore_ext4: Option<Explore>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

/// The median (the mean of the middle two for an even count); NaN when
/// empty.
pub fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    match s.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => s[n / 2],
        n => (s[n / 2 - 1] + s[n / 2]) / 2.0,
    }
}

/// a / b; 0 when b measured nothing (never met).
pub fn ratio(a: f64, b: f64) -> f64 {
    if b > 0.0 && a.is_finite() { a / b } else { 0.0 }
}

#[cfg(test)]
mod tests {
    use super::super::pending::PendingFigures;
    use super::super::solo::ExploreSample;
    use super::*;

    #[test]
    fn medians() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), 2.5);
        assert_eq!(median(&[7.0]), 7.0);
        assert!(median(&[]).is_nan());
    }

    #[test]
    fn ratios_and_targets_against_native_and_each_peer() {
        let r = Row::new(
            Workload::SeqWrite,
            vec![100.0, 300.0, 200.0],
            vec![140.0, 150.0, 10.0],
            vec![
                ("passthrough_ll".into(), vec![100.0, 120.0, 110.0]),
                ("other".into(), vec![280.0]),
            ],
        );
        assert_eq!((r.native, r.durafs), (200.0, 140.0));
        assert!((r.ratio - 0.7).abs() < 1e-12 && r.met, "0.7 meets >= 0.7");
        let p = &r.peers[0];
        assert_eq!((p.median, p.target), (110.0, Some(1.2)));
        assert!((p.ratio - 140.0 / 110.0).abs() < 1e-12 && p.met == Some(true));
        let o = &r.peers[1];
        assert_eq!((o.ratio, o.target, o.met), (0.5, None, None));
        let r = Row::new(
            Workload::SeqWrite,
            vec![200.0],
            vec![139.0],
            vec![("passthrough_ll".into(), vec![116.0])],
        );
        assert!(
            !r.met && r.peers[0].met == Some(false),
            "1.198 misses >= 1.2"
        );
        let r = Row::new(Workload::Append, vec![100.0], vec![250.0], Vec::new());
        assert!(r.met && r.target == 2.0 && r.unit == "IOPS" && r.peers.is_empty());
        let r = Row::new(
            Workload::Metadata,
            vec![0.0],
            vec![5.0],
            vec![("passthrough_ll".into(), vec![0.0])],
        );
        assert!(r.ratio == 0.0 && !r.met && r.peers[0].met == Some(false));
    }

    fn figures(files: usize, status: f64, cut: f64, grown: u64) -> PendingFigures {
        PendingFigures {
            files,
            status_seconds: status,
            cut_seconds: cut,
            rss_before: 1 << 20,
            rss_after: (1 << 20) + grown,
            kept_files: files / 2,
            native_seconds: cut / 4.0,
        }
    }

    #[test]
    fn pending_ratios_limits_and_memory_per_file() {
        let run = |small_status: f64, big_cut: f64, grown: u64| PendingSample {
            runs: [
                figures(10_000, small_status, 0.1, 0),
                figures(100_000, 0.5, big_cut, grown),
            ],
        };
        // Per file: 1,100 bytes grown = 900 beyond its 200 bytes.
        let p = Pending::median(&[run(0.05, 1.0, 110_000_000)]).expect("a sample");
        assert_eq!((p.small.files, p.big.files), (10_000, 100_000));
        assert!((p.status_ratio - 10.0).abs() < 1e-9 && (p.cut_ratio - 10.0).abs() < 1e-9);
        assert!((p.big.bytes_per_file - 900.0).abs() < 1e-9);
        assert!(p.ratio_met && p.seconds_met && p.memory_met && p.met);
        // status x12.5, cut 2.5 s and 1,300 bytes per file: each missed.
        let p = Pending::median(&[run(0.04, 2.5, 150_000_000)]).expect("a sample");
        assert!(!p.ratio_met && !p.seconds_met && !p.memory_met && !p.met);
        // Medians over runs, per field.
        let p = Pending::median(&[run(0.05, 1.0, 0), run(0.10, 9.0, 0), run(0.20, 1.5, 0)]);
        let p = p.expect("samples");
        assert_eq!((p.small.status_seconds, p.big.cut_seconds), (0.10, 1.5));
        assert!(Pending::median(&[]).is_none());
    }

    fn explore_run(sps: f64, check: f64, split: Option<(f64, f64)>) -> ExploreRun {
        ExploreRun {
            explore: ExploreSample {
                states: 77,
                seconds: 77.0 / sps,
                states_per_second: sps,
                durafs_ms_per_state: split.map(|s| s.0),
                check_ms_per_state: split.map(|s| s.1),
            },
            check_per_second: check,
        }
    }

    #[test]
    fn explore_rows_are_medians_next_to_the_check_alone() {
        let runs = [
            explore_run(50.0, 60.0, None),
            explore_run(200.0, 210.0, None),
            explore_run(100.0, 105.0, None),
        ];
        let e = Explore::median(Workload::Explore, &runs).expect("samples");
        assert_eq!((e.states_per_second, e.check_per_second), (100.0, 105.0));
        assert!((e.check_ratio - 100.0 / 105.0).abs() < 1e-12);
        assert_eq!((e.target, e.check_ratio_target), (Some(100.0), Some(0.9)));
        assert!(e.met && e.durafs_ms_per_state.is_none());
        // 0.89 of the check alone misses the 0.9.
        let e = Explore::median(Workload::Explore, &[explore_run(178.0, 200.0, None)]);
        assert!(e.is_some_and(|e| !e.met));
        // explore-sqlite: the ratio only; the split when every run has it.
        let s = Explore::median(
            Workload::ExploreSqlite,
            &[
                explore_run(10.0, 10.5, Some((0.5, 190.0))),
                explore_run(12.0, 12.5, Some((0.7, 170.0))),
            ],
        );
        let s = s.expect("samples");
        assert!(s.target.is_none() && s.met);
        assert_eq!(
            (s.durafs_ms_per_state, s.check_ms_per_state),
            (Some(0.6), Some(180.0))
        );
        let mixed = [
            explore_run(10.0, 10.0, Some((0.5, 1.0))),
            explore_run(10.0, 10.0, None),
        ];
        let m = Explore::median(Workload::ExploreSqlite, &mixed).expect("samples");
        assert!(m.durafs_ms_per_state.is_none());
        // explore-ext4: states/s only (a 64 MiB image).
        let b = Explore::median(Workload::ExploreExt4, &[explore_run(25.0, 80.0, None)]);
        assert!(b.is_some_and(|b| b.met && b.check_ratio_target.is_none()));
        let b = Explore::median(Workload::ExploreExt4, &[explore_run(19.9, 20.0, None)]);
        assert!(b.is_some_and(|b| !b.met), "19.9 misses >= 20");
        assert!(Explore::median(Workload::Explore, &[]).is_none());
    }
}
