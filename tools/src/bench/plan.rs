//! The benchmark's fixed battery: each workload's name, unit, target and
//! size (full or `--quick`), the fio job it runs, how workloads group onto
//! one directory or mount, and `--only`.

use super::fio::Job;
use crate::{Result, usage};

const MIB: u64 = 1 << 20;

/// Every measurement `durafs bench` makes, in report order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Workload {
    SeqWrite,
    SeqRead,
    SeqReadCold,
    RandWrite,
    Append,
    AppendReal,
    WriteX4,
    Metadata,
    Memory,
    Pending,
    Explore,
    ExploreSqlite,
    ExploreExt4,
}

use Workload::*;

pub const ALL: [Workload; 13] = [
    SeqWrite,
    SeqRead,
    SeqReadCold,
    RandWrite,
    Append,
    AppendReal,
    WriteX4,
    Metadata,
    Memory,
    Pending,
    Explore,
    ExploreSqlite,
    ExploreExt4,
];

/// The workloads run on both sides, each group on one fresh native
/// directory and one fresh mount: the reads reuse what the write left.
pub const GROUPS: [&[Workload]; 6] = [
    &[SeqWrite, SeqRead, SeqReadCold],
    &[RandWrite],
    &[Append],
    &[AppendReal],
    &[WriteX4],
    &[Metadata],
];

impl Workload {
    pub fn name(self) -> &'static str {
        match self {
            SeqWrite => "seqwrite-128k",
            SeqRead => "seqread-128k",
            SeqReadCold => "seqread-128k-cold",
            RandWrite => "randwrite-4k",
            Append => "append-4k-fsync",
            AppendReal => "append-4k-fsync-real",
            WriteX4 => "write-4k-x4",
            Metadata => "metadata",
            Memory => "memory",
            Pending => "pending",
            Explore => "explore",
            ExploreSqlite => "explore-sqlite",
            ExploreExt4 => "explore-ext4",
        }
    }

    /// What the figure counts.
    pub fn unit(self) -> Unit {
        match self {
            SeqWrite | SeqRead | SeqReadCold | WriteX4 => Unit::MibPerSec,
            RandWrite | Append | AppendReal => Unit::Iops,
            Metadata => Unit::OpsPerSec,
            Memory => Unit::Mib,
            Pending => Unit::Seconds,
            Explore | ExploreSqlite | ExploreExt4 => Unit::StatesPerSec,
        }
    }

    /// The least acceptable durafs/native ratio (for `explore` and
    /// `explore-ext4`: states per second; `memory`, `pending` and
    /// `explore-sqlite` have limits of their own, 0 here).
    pub fn target(self) -> f64 {
        match self {
            SeqWrite => 0.7,
            SeqRead | SeqReadCold => 0.9,
            RandWrite => 0.5,
            Append => 2.0,
            AppendReal | WriteX4 => 0.6,
            Metadata => 0.25,
            Memory | Pending | ExploreSqlite => 0.0,
            Explore => 100.0,
            ExploreExt4 => 20.0,
        }
    }

    /// The least acceptable durafs/`peer` ratio: 1.2 against libfuse's
    /// `passthrough_ll` on the rows issue 21 names; other peers get ratios
    /// only.
    pub fn peer_target(self, peer: &str) -> Option<f64> {
        let targeted = matches!(self, SeqWrite | WriteX4 | RandWrite | Metadata | SeqRead);
        (peer == super::peer::PASSTHROUGH_LL && targeted).then_some(1.2)
    }

    /// The durafs mount gets `--real-fsync`.
    pub fn real_fsync(self) -> bool {
        self == AppendReal
    }

    /// The fio job, for the workloads fio runs.
    pub fn job(self, s: &Sizes) -> Option<Job> {
        let seq = Job::new("write", 128 << 10, s.seq, "seq");
        let append = Job::new("write", 4 << 10, s.append, "append").fsync_each();
        Some(match self {
            SeqWrite => seq.end_fsync(),
            SeqRead => Job {
                rw: "read",
                invalidate: Some(false),
                ..seq
            },
            SeqReadCold => Job {
                rw: "read",
                invalidate: Some(true),
                ..seq
            },
            RandWrite => Job::new("randwrite", 4 << 10, s.rand, "rand").end_fsync(),
            Append | AppendReal => append,
            WriteX4 => Job {
                files: 4,
                ..Job::new("write", 4 << 10, s.x4_each, "x4")
            },
            Memory => Job::new("write", 128 << 10, s.memory, "mem"),
            Metadata | Pending | Explore | ExploreSqlite | ExploreExt4 => return None,
        })
    }
}

/// How a figure is counted and printed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unit {
    MibPerSec,
    Iops,
    OpsPerSec,
    Mib,
    StatesPerSec,
    Seconds,
}

impl Unit {
    pub fn label(self) -> &'static str {
        match self {
            Unit::MibPerSec => "MiB/s",
            Unit::Iops => "IOPS",
            Unit::OpsPerSec => "ops/s",
            Unit::Mib => "MiB",
            Unit::StatesPerSec => "states/s",
            Unit::Seconds => "s",
        }
    }
}

/// The amount of work of each workload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sizes {
    /// seqwrite-128k and the reads after it.
    pub seq: u64,
    pub rand: u64,
    pub append: u64,
    /// Per job of write-4k-x4.
    pub x4_each: u64,
    /// Files created, renamed and unlinked by `metadata`.
    pub meta_files: usize,
    /// Written without fsync before the daemon's peak memory is read.
    pub memory: u64,
    /// 8 KiB appends of the explore workload (an fsync every 8).
    pub explore_appends: usize,
    /// Pending files of `pending`: the small and the big run.
    pub pending: [usize; 2],
    /// Transactions (of 100 rows) of the `explore-sqlite` workload.
    pub sqlite_transactions: usize,
}

impl Sizes {
    pub fn new(quick: bool) -> Sizes {
        if quick {
            Sizes {
                seq: 64 * MIB,
                rand: 16 * MIB,
                append: MIB,
                x4_each: 16 * MIB,
                meta_files: 500,
                memory: 64 * MIB,
                explore_appends: 16,
                pending: [1_000, 10_000],
                sqlite_transactions: 2,
            }
        } else {
            Sizes {
                seq: 512 * MIB,
                rand: 64 * MIB,
                append: 8 * MIB,
                x4_each: 64 * MIB,
                meta_files: 3000,
                memory: 512 * MIB,
                explore_appends: 64,
                pending: [10_000, 100_000],
                sqlite_transactions: 5,
            }
        }
    }
}

/// The workloads `--only` names (all when empty), in report order.
pub fn select(only: &[String]) -> Result<Vec<Workload>> {
    let names: Vec<&str> = only
        .iter()
        .map(|s| s.trim())
        .filter(|s| !s.is_empty())
        .collect();
    if names.is_empty() {
        return Ok(ALL.to_vec());
    }
    let mut picked = Vec::new();
    for n in names {
        match ALL.iter().find(|w| w.name() == n) {
            Some(w) => picked.push(*w),
            None => {
                let valid: Vec<&str> = ALL.iter().map(|w| w.name()).collect();
                return Err(usage(format!(
                    "--only: unknown workload {n:?}; the workloads are: {}",
                    valid.join(", ")
                )));
            }
        }
    }
    picked.sort();
    picked.dedup();
    Ok(picked)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quick_sizes_are_smaller_and_full_sizes_are_the_specified_ones() {
        let (q, f) = (Sizes::new(true), Sizes::new(false));
        assert_eq!(
            (f.seq, f.rand, f.append, f.x4_each, f.meta_files, f.memory),
            (512 * MIB, 64 * MIB, 8 * MIB, 64 * MIB, 3000, 512 * MIB)
        );
        assert_eq!(
            (q.seq, q.rand, q.append, q.x4_each, q.meta_files, q.memory),
            (64 * MIB, 16 * MIB, MIB, 16 * MIB, 500, 64 * MIB)
        );
        assert_eq!((f.explore_appends, q.explore_appends), (64, 16));
        assert_eq!((f.pending, q.pending), ([10_000, 100_000], [1_000, 10_000]));
    }

    #[test]
    fn jobs_follow_the_sizes() {
        let s = Sizes::new(false);
        let j = SeqRead.job(&s).unwrap();
        assert_eq!(
            (j.rw, j.bs, j.size, j.invalidate),
            ("read", 128 << 10, s.seq, Some(false))
        );
        assert!(!j.end_fsync);
        assert!(SeqWrite.job(&s).unwrap().end_fsync);
        assert!(AppendReal.job(&s).unwrap().fsync_each && AppendReal.real_fsync());
        assert_eq!(WriteX4.job(&s).unwrap().files, 4);
        let m = Memory.job(&Sizes::new(true)).unwrap();
        assert!(!m.end_fsync && !m.fsync_each && m.size == 64 * MIB);
        assert!(Metadata.job(&s).is_none());
    }

    #[test]
    fn only_accepts_known_names_and_lists_them_otherwise() {
        assert_eq!(select(&[]).unwrap(), ALL.to_vec());
        let picked = select(&["explore".into(), "seqwrite-128k".into(), "explore".into()]);
        assert_eq!(picked.unwrap(), vec![SeqWrite, Explore]);
        let e = select(&["nonsense".into()]).unwrap_err().to_string();
        assert!(
            e.contains("nonsense") && e.contains("append-4k-fsync-real"),
            "{e}"
        );
        assert_eq!(
            select(&["pending".into(), "explore-sqlite".into()]).unwrap(),
            vec![Pending, ExploreSqlite]
        );
        for (w, g) in ALL.iter().zip(ALL.iter().skip(1)) {
            assert!(w < g, "ALL is in report order");
        }
    }

    #[test]
    fn passthrough_ll_gets_the_issue_targets_and_other_peers_none() {
        for w in [SeqWrite, WriteX4, RandWrite, Metadata, SeqRead] {
            assert_eq!(w.peer_target("passthrough_ll"), Some(1.2), "{}", w.name());
            assert_eq!(w.peer_target("self"), None);
        }
        for w in [SeqReadCold, Append, AppendReal, Memory, Pending, Explore] {
            assert_eq!(w.peer_target("passthrough_ll"), None, "{}", w.name());
        }
    }
}
