//! `durafs bench`: durafs against the filesystem under it and against
//! other FUSE filesystems (peers, `peer`), in one run.
//!
//! A scratch directory (`DIR/durafs-bench*`, removed at the end, also on
//! error) holds `native/`, `backing/` and `mnt/`, so every side uses the
//! same filesystem. Each workload group (see `plan::GROUPS`) runs on a
//! fresh native directory (removed afterwards), on a fresh durafs mount and
//! on a fresh mount of each peer (mounted, run, unmounted, backing
//! emptied), `--runs` times, the order of the sides rotated by one each run
//! (`rotation`) to cancel warm-up bias. Every side runs the same `run_in`:
//! one definition of each figure. The report gives each side's median,
//! durafs/native with its target, durafs/PEER for each peer (with targets
//! for `passthrough_ll`), then the durafs-only `memory` (the run with the
//! highest peak: a bound must hold every time), `pending`, and the explore
//! rows next to the check alone (medians; see `explore` and `block`).
//! Figures of fio jobs that fsync include the fsyncs (see `fio`).
//!
//! Ctrl-C: fio runs in its own process group, killed on a signal
//! (`workload::kill_children_on_interrupt`); the harness then unwinds and
//! every `Volume` and `PeerMount` unmounts itself. Missed targets are
//! results, not errors.

mod block;
mod explore;
mod fio;
mod host;
mod meta;
mod peer;
mod pending;
mod plan;
mod report;
mod solo;
mod text;
mod volume;

use crate::workload::{self, check_interrupted};
use crate::{BenchArgs, Result, err, usage};
use peer::{Peer, PeerMount};
use plan::{Sizes, Workload};
use report::{Header, Report, Row};
use solo::{ExploreRun, MemorySample};
use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use volume::{MountOpts, Volume};

/// What every run needs: where, with what, how big.
pub(crate) struct Ctx {
    exe: PathBuf,
    /// The scratch directory (canonical).
    root: PathBuf,
    opts: MountOpts,
    sizes: Sizes,
    cores: usize,
    /// The `--peer`s, ready to mount.
    peers: Vec<Peer>,
}

impl Ctx {
    /// A fresh mount over `root/backing` at `root/mnt`.
    fn mount(&self, real_fsync: bool) -> Result<Volume> {
        let opts = MountOpts {
            real_fsync,
            ..self.opts
        };
        Volume::mount(
            &self.exe,
            &self.root.join("backing"),
            &self.root.join("mnt"),
            opts,
        )
    }

    /// Where fio's JSON for one run goes (outside the measured dirs).
    fn output(&self, what: &str, side: &str, run: usize) -> PathBuf {
        self.root
            .join("out")
            .join(format!("{what}-{side}-{run}.json"))
    }
}

/// The scratch directory; on drop, anything still mounted under it is
/// detached before it is removed.
struct Scratch {
    root: PathBuf,
    _tmp: tempfile::TempDir,
}

impl Scratch {
    /// A fresh `durafs-bench*` directory in `parent`, with `native/`,
    /// `backing/`, `mnt/` and `out/` (fio's reports).
    fn new(parent: &Path) -> Result<Scratch> {
        fs::create_dir_all(parent).map_err(|e| err(format!("{}: {e}", parent.display())))?;
        let tmp = tempfile::Builder::new()
            .prefix("durafs-bench")
            .tempdir_in(parent)
            .map_err(|e| {
                err(format!(
                    "creating a scratch directory in {}: {e}",
                    parent.display()
                ))
            })?;
        let root = fs::canonicalize(tmp.path())
            .map_err(|e| err(format!("{}: {e}", tmp.path().display())))?;
        for d in ["native", "backing", "mnt", "out"] {
            let p = root.join(d);
            fs::create_dir(&p).map_err(|e| err(format!("{}: {e}", p.display())))?;
        }
        Ok(Scratch { root, _tmp: tmp })
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        for m in host::mounts_under(&host::mounts(), &self.root) {
            log::warn!("durafs bench: detaching {}, left mounted", m.display());
            durafs::mount::detach(&m);
        }
    }
}

/// A native directory for one group and run, removed on drop.
struct NativeDir(PathBuf);

impl Drop for NativeDir {
    fn drop(&mut self) {
        if let Err(e) = fs::remove_dir_all(&self.0) {
            log::warn!("durafs bench: removing {}: {e}", self.0.display());
        }
    }
}

/// Where a workload group runs: a native directory, a durafs mount or a
/// peer's mount (an index into `Ctx::peers`).
#[derive(Clone, Copy, Debug, PartialEq)]
enum Side {
    Native,
    Durafs,
    Peer(usize),
}

impl Side {
    fn name(self, ctx: &Ctx) -> &str {
        match self {
            Side::Native => "native",
            Side::Durafs => "durafs",
            Side::Peer(i) => ctx.peers.get(i).map_or("peer", |p| p.name.as_str()),
        }
    }

    /// The sides of a benchmark with `peers` peers, in the order of run 1.
    fn all(peers: usize) -> Vec<Side> {
        let mut v = vec![Side::Durafs, Side::Native];
        v.extend((0..peers).map(Side::Peer));
        v
    }

    /// Index into `Samples::figures`: native, durafs, then the peers.
    fn index(self) -> usize {
        match self {
            Side::Native => 0,
            Side::Durafs => 1,
            Side::Peer(i) => 2 + i,
        }
    }
}

/// The order of `sides` in run `run` (from 1): the list rotated left by
/// `run - 1`, so that each side goes first equally often over
/// `sides.len()` runs (two sides: durafs first in odd runs, native in even
/// ones), cancelling warm-up bias.
fn rotation<T: Copy>(sides: &[T], run: usize) -> Vec<T> {
    let mut v = sides.to_vec();
    if !v.is_empty() {
        let n = v.len();
        v.rotate_left(run.saturating_sub(1) % n);
    }
    v
}

/// Everything measured, per side (`Side::index`) and workload, in run
/// order.
#[derive(Default)]
struct Samples {
    figures: Vec<BTreeMap<Workload, Vec<f64>>>,
    memory: Vec<MemorySample>,
    pending: Vec<pending::PendingSample>,
    explore: Vec<ExploreRun>,
    explore_sqlite: Vec<ExploreRun>,
    explore_ext4: Vec<ExploreRun>,
}

impl Samples {
    fn push(&mut self, side: Side, w: Workload, x: f64) {
        let i = side.index();
        if self.figures.len() <= i {
            self.figures.resize_with(i + 1, BTreeMap::new);
        }
        self.figures[i].entry(w).or_default().push(x);
    }

    fn runs(&self, side: Side, w: Workload) -> Option<Vec<f64>> {
        self.figures.get(side.index())?.get(&w).cloned()
    }
}

pub fn bench(args: &BenchArgs) -> Result<()> {
    workload::kill_children_on_interrupt();
    let mut selected = plan::select(&args.only)?;
    let peer_args = peer::parse_all(&args.peer)?;
    let runs = args.runs.unwrap_or(if args.quick { 1 } else { 3 });
    if runs == 0 {
        return Err(usage("--runs must be at least 1"));
    }
    if args.threads == 0 {
        return Err(usage("--threads must be at least 1"));
    }
    if selected.iter().any(|w| w.job(&Sizes::new(true)).is_some()) {
        fio::check_installed()?;
    }
    if selected.contains(&Workload::ExploreExt4) {
        block::check_installed()?;
    }
    let exe = std::env::current_exe()
        .map_err(|e| err(format!("cannot find the durafs executable: {e}")))?;
    // Before any run: a peer that cannot be built fails now.
    let opts = MountOpts {
        writeback_cache: args.writeback_cache,
        real_fsync: false,
        threads: args.threads,
        transport: args.transport,
    };
    // A durafs peer mounts with the bench's options but its own transport.
    let peer_opts = MountOpts {
        transport: None,
        ..opts
    };
    let cache = peer::cache_dir(&exe, &args.dir);
    let peers = peer::resolve(&peer_args, &cache, &exe, peer_opts)?;
    let mut notes = Vec::new();
    if selected.contains(&Workload::SeqReadCold) {
        if let Err(why) = can_drop_caches() {
            notes.push(format!("{} skipped: {why}", Workload::SeqReadCold.name()));
            selected.retain(|w| *w != Workload::SeqReadCold);
        }
    }
    if selected.contains(&Workload::ExploreSqlite) {
        if let Err(why) = explore::sqlite_installed() {
            notes.push(format!("{} not run: {why}", Workload::ExploreSqlite.name()));
            selected.retain(|w| *w != Workload::ExploreSqlite);
        }
    }
    let scratch = Scratch::new(&args.dir)?;
    let ctx = Ctx {
        exe,
        root: scratch.root.clone(),
        opts,
        sizes: Sizes::new(args.quick),
        cores: host::cores(),
        peers,
    };
    let header = Header {
        date: host::now_utc(),
        kernel: host::kernel(),
        cores: ctx.cores,
        fs: host::fs_type(&host::mounts(), &ctx.root),
        dir: args.dir.display().to_string(),
        runs,
        quick: args.quick,
        mount_options: ctx.opts.args().join(" "),
        peers: ctx
            .peers
            .iter()
            .map(|p| report::PeerInfo {
                name: p.name.clone(),
                command: p.command(),
            })
            .collect(),
    };
    let samples = run_all(&ctx, &selected, runs)?;
    drop(scratch);

    let workloads = selected
        .iter()
        .filter_map(|&w| {
            let n = samples.runs(Side::Native, w)?;
            let d = samples.runs(Side::Durafs, w)?;
            let peers = (0..ctx.peers.len())
                .filter_map(|i| Some((ctx.peers[i].name.clone(), samples.runs(Side::Peer(i), w)?)))
                .collect();
            Some(Row::new(w, n, d, peers))
        })
        .collect();
    let report = Report {
        header,
        workloads,
        memory: report::Memory::worst(&samples.memory),
        pending: report::Pending::median(&samples.pending),
        explore: report::Explore::median(Workload::Explore, &samples.explore),
        explore_sqlite: report::Explore::median(Workload::ExploreSqlite, &samples.explore_sqlite),
        explore_ext4: report::Explore::median(Workload::ExploreExt4, &samples.explore_ext4),
        notes,
    };
    if args.json {
        let v = serde_json::to_string(&report).map_err(|e| err(e.to_string()))?;
        println!("{v}");
    } else {
        print!("{}", report::text(&report));
    }
    Ok(())
}

/// Dropping the page cache needs root and a writable `/proc/sys`.
fn can_drop_caches() -> std::result::Result<(), String> {
    if !durafs::sys::is_root() {
        return Err("dropping the page cache needs root".into());
    }
    fs::OpenOptions::new()
        .write(true)
        .open(DROP_CACHES)
        .map(drop)
        .map_err(|e| format!("{DROP_CACHES}: {e}"))
}

const DROP_CACHES: &str = "/proc/sys/vm/drop_caches";

/// `sync; echo 3 > /proc/sys/vm/drop_caches`.
fn drop_caches() -> Result<()> {
    // SAFETY: sync(2) takes no arguments and cannot fail.
    unsafe { libc::sync() };
    fs::write(DROP_CACHES, "3").map_err(|e| err(format!("{DROP_CACHES}: {e}")))
}

fn progress(run: usize, runs: usize, what: &str) {
    eprintln!("durafs bench [{run}/{runs}] {what}");
}

fn run_all(ctx: &Ctx, selected: &[Workload], runs: usize) -> Result<Samples> {
    let mut s = Samples::default();
    let sides = Side::all(ctx.peers.len());
    for run in 1..=runs {
        for group in plan::GROUPS {
            if !group.iter().any(|w| selected.contains(w)) {
                continue;
            }
            for side in rotation(&sides, run) {
                for (w, x) in run_group(ctx, group, selected, side, run)? {
                    let fig = report::progress_figure(w.unit(), x);
                    progress(
                        run,
                        runs,
                        &format!("{} {}: {fig}", w.name(), side.name(ctx)),
                    );
                    s.push(side, w, x);
                }
            }
        }
        run_solo(ctx, selected, run, runs, &mut s)?;
    }
    Ok(s)
}

/// The durafs-only rows of one run.
fn run_solo(
    ctx: &Ctx,
    selected: &[Workload],
    run: usize,
    runs: usize,
    s: &mut Samples,
) -> Result<()> {
    if selected.contains(&Workload::Memory) {
        let m = solo::memory(ctx, run)?;
        progress(
            run,
            runs,
            &format!(
                "memory durafs: peak {} MiB, {} MiB unsynced",
                m.peak_rss_bytes >> 20,
                m.unsynced_bytes >> 20
            ),
        );
        s.memory.push(m);
    }
    if selected.contains(&Workload::Pending) {
        let p = pending::pending(ctx, ctx.sizes.pending)?;
        for f in &p.runs {
            progress(
                run,
                runs,
                &format!(
                    "pending durafs: {} files: status {:.2} s, cut {:.2} s \
                     (native floor {:.2} s for its {} files)",
                    f.files, f.status_seconds, f.cut_seconds, f.native_seconds, f.kept_files
                ),
            );
        }
        s.pending.push(p);
    }
    let explores = [
        (Workload::Explore, &mut s.explore),
        (Workload::ExploreSqlite, &mut s.explore_sqlite),
        (Workload::ExploreExt4, &mut s.explore_ext4),
    ];
    for (w, samples) in explores {
        if !selected.contains(&w) {
            continue;
        }
        let e = match w {
            Workload::ExploreExt4 => block::explore_ext4(ctx)?,
            _ => explore::explore(ctx, w)?,
        };
        progress(
            run,
            runs,
            &format!(
                "{} durafs: {} states in {:.2} s, the check alone {:.1}/s",
                w.name(),
                e.explore.states,
                e.explore.seconds,
                e.check_per_second
            ),
        );
        samples.push(e);
    }
    Ok(())
}

/// Runs one group on one side, in a fresh directory or mount; the figure
/// of each selected workload (a group's first workload always runs: the
/// reads need what it wrote). Every side runs the same [`run_in`]: one
/// definition of each figure.
fn run_group(
    ctx: &Ctx,
    group: &[Workload],
    selected: &[Workload],
    side: Side,
    run: usize,
) -> Result<Vec<(Workload, f64)>> {
    let name = side.name(ctx).to_string();
    match side {
        Side::Native => {
            let dir = ctx
                .root
                .join("native")
                .join(format!("{}-{run}", group[0].name()));
            fs::create_dir(&dir).map_err(|e| err(format!("{}: {e}", dir.display())))?;
            let guard = NativeDir(dir);
            run_in(ctx, group, selected, &name, run, &guard.0)
        }
        Side::Durafs => {
            let vol = ctx.mount(group.iter().any(|w| w.real_fsync()))?;
            let figures = run_in(ctx, group, selected, &name, run, vol.path())?;
            vol.unmount()?;
            Ok(figures)
        }
        Side::Peer(i) => {
            let peer = ctx
                .peers
                .get(i)
                .ok_or_else(|| err(format!("no peer number {i}")))?;
            let log =
                ctx.root
                    .join("out")
                    .join(format!("{}-{}-{run}.log", group[0].name(), peer.name));
            let peer = peer.for_group(group.iter().any(|w| w.real_fsync()));
            let vol = PeerMount::mount(
                &peer,
                &ctx.root.join("backing"),
                &ctx.root.join("mnt"),
                &log,
            )?;
            let figures = run_in(ctx, group, selected, &name, run, vol.path())?;
            vol.unmount()?;
            Ok(figures)
        }
    }
}

fn run_in(
    ctx: &Ctx,
    group: &[Workload],
    selected: &[Workload],
    side: &str,
    run: usize,
    dir: &Path,
) -> Result<Vec<(Workload, f64)>> {
    let mut figures = Vec::new();
    for (i, &w) in group.iter().enumerate() {
        if i > 0 && !selected.contains(&w) {
            continue;
        }
        check_interrupted()?;
        let x = match w.job(&ctx.sizes) {
            _ if w == Workload::Metadata => meta::run(dir, ctx.sizes.meta_files)?,
            Some(job) => {
                if w == Workload::SeqReadCold {
                    drop_caches()?;
                }
                let m = fio::run(&job, dir, &ctx.output(w.name(), side, run), w.name())?;
                match w.unit() {
                    plan::Unit::Iops => m.iops(),
                    _ => m.mib_per_sec(),
                }
            }
            None => return Err(err(format!("{}: not a fio workload", w.name()))),
        };
        if selected.contains(&w) {
            figures.push((w, x));
        }
    }
    Ok(figures)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_side_goes_first_equally_often() {
        let two = Side::all(0);
        assert_eq!(rotation(&two, 1), [Side::Durafs, Side::Native]);
        assert_eq!(rotation(&two, 2), [Side::Native, Side::Durafs]);
        assert_eq!(rotation(&two, 3), [Side::Durafs, Side::Native]);
        let four = Side::all(2);
        let firsts: Vec<Side> = (1..=4).map(|r| rotation(&four, r)[0]).collect();
        assert_eq!(
            firsts,
            [Side::Durafs, Side::Native, Side::Peer(0), Side::Peer(1)]
        );
        for run in 1..=4 {
            let mut order = rotation(&four, run);
            assert_eq!(order.len(), 4);
            order.sort_by_key(|s| s.index());
            assert_eq!(
                order,
                [Side::Native, Side::Durafs, Side::Peer(0), Side::Peer(1)]
            );
        }
        assert!(rotation::<Side>(&[], 3).is_empty());
    }
}
