//! The `durafs` command line: mount a volume, inspect what is unsynced,
//! sync it, cut its power, unmount it; crash-test any program with a
//! scripted cut (`run`) or by checking every crash state of one recorded
//! run (`explore`).
//!
//! Every command but `mount` talks to the running daemon through the
//! control file `MOUNTPOINT/.durafs` (see `durafs::control`), so scripts can
//! do the same without this binary.

pub mod bench;
pub mod calibrate;
mod client;
mod daemon;
pub mod demo;
pub mod exit;
pub mod explore;
mod leftovers;
mod logging;
mod progress;
mod render;
pub mod run;
mod signals;
mod size;
pub mod workload;

use clap::builder::TypedValueParser;
use clap::{Parser, Subcommand};
use durafs::model::{FsyncFailure, Persistence};
use exit::Code;
use std::path::PathBuf;
use std::process::ExitCode;

/// A FUSE filesystem for crash-testing storage software.
#[derive(Debug, Parser)]
#[command(name = "durafs", version, about, long_about = None, after_help = exit::help())]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Mount BACKING at MOUNTPOINT; returns once the mount is ready.
    Mount(MountArgs),
    /// Persist everything, then unmount cleanly (waits for the daemon).
    /// If not everything can be persisted it fails with the reason and the
    /// volume stays mounted.
    Umount {
        mountpoint: PathBuf,
        /// Detach even if files are open (they get errors afterwards); if
        /// not everything can be persisted, unmount anyway (a drop-all cut)
        /// and fail listing exactly what was lost.
        #[arg(long)]
        lazy: bool,
    },
    /// Show exactly what is not yet durable: totals, then per file its
    /// unsynced bytes, size, a bar of the file marking the unsynced parts
    /// and the byte ranges; then every pending name with its fix.
    Status {
        mountpoint: PathBuf,
        /// Print the report as JSON (the control file's reply).
        #[arg(long)]
        json: bool,
        /// No colors (also when $NO_COLOR is set, or stdout is not a
        /// terminal): the bars are plain ASCII.
        #[arg(long)]
        no_color: bool,
    },
    /// Make everything durable, as sync(2) would (FUSE never sees sync(2)
    /// or syncfs(2), so scripts call this instead).
    Sync { mountpoint: PathBuf },
    /// Cut the power: the policy chooses what unsynced state survives, the
    /// rest is discarded and the mount dies.
    Cut(CutArgs),
    /// Wait until a volume that was not cut serves MOUNTPOINT: after a
    /// fault's `cut --remount`, the daemon mounts the post-crash state
    /// again (exit 3 at the timeout).
    Wait {
        mountpoint: PathBuf,
        /// Seconds to wait.
        #[arg(long, default_value_t = 60)]
        timeout: u64,
    },
    /// Arm, list or clear faults on a mounted volume: `fault MNT add
    /// ACTION [OPTIONS]`, `fault MNT list`, `fault MNT clear [ID...]`
    /// (actions: cut, error, delay, torn, torn-seq, fsync-fail;
    /// `durafs fault MNT add --help` and docs/faults.md give the grammar).
    Fault {
        mountpoint: PathBuf,
        /// Print the control file's reply (JSON).
        #[arg(long)]
        json: bool,
        /// `add ACTION [OPTIONS]`, `list` or `clear [ID...]`.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true, required = true)]
        command: Vec<String>,
    },
    /// Run every bundled engine through durafs, cut the power at many
    /// points, and print what each setting lost.
    Demo(DemoArgs),
    /// Run a program on a fresh volume, cut the power at a trigger, remount
    /// what survived and run a check there (exit 0: the check passed, 1: it
    /// failed; the check's own exit code is in the output).
    Run(RunArgs),
    /// Record one run of a program, then check every crash state it could
    /// leave, without running it again (exit 0: none failed, 1: some
    /// failed, 2: usage or set-up error).
    Explore(ExploreArgs),
    /// Record a promise the program made (e.g. "put 7 acknowledged"), in
    /// order with its operations; `explore` gives the check the marks
    /// recorded before each crash.
    Mark {
        /// The promise, one line.
        label: String,
        /// The volume (default: $DURAFS_MOUNT, which run and explore set).
        #[arg(long)]
        mount: Option<PathBuf>,
    },
    /// Benchmark durafs against the filesystem under it: a fixed fio
    /// battery on a native directory and on fresh mounts side by side, then
    /// metadata operations, the daemon's memory, `explore` speed and
    /// block-level `explore` speed on a real ext4 image (`explore-ext4`:
    /// needs losetup and mkfs.ext4) (exit 0 when it ran, missed targets
    /// included; 3: set-up error).
    Bench(BenchArgs),
    /// Crash-test a kernel filesystem (ext4, xfs, btrfs) at the block level
    /// through a loop device on a durafs volume, and measure how exactly a
    /// durafs model predicts its crash outcomes (exit 0: no false negative,
    /// 1: some, 3: set-up error, 4: a workload that could not run).
    Calibrate(CalibrateArgs),
    /// Internal (calibrate's `wb`): write back every file's dirty pages
    /// under DIR, without a flush.
    #[command(hide = true)]
    WritebackAll { dir: PathBuf },
    /// Internal (calibrate's `wb` under --commits): wait for the next
    /// journal commit of the filesystem holding DIR.
    #[command(hide = true)]
    WaitCommit { dir: PathBuf },
}

/// `--model`'s values (listed in `--help`; `journal` is ext4).
fn model_parser() -> impl clap::builder::TypedValueParser<Value = Persistence> {
    let names = Persistence::ALL.map(Persistence::name);
    clap::builder::PossibleValuesParser::new(names.into_iter().chain(["journal"]))
        .try_map(|s| s.parse::<Persistence>())
}

/// `--fsync-failure`'s values (listed in `--help`).
fn fsync_failure_parser() -> impl clap::builder::TypedValueParser<Value = FsyncFailure> {
    clap::builder::PossibleValuesParser::new(FsyncFailure::ALL.map(FsyncFailure::name))
        .try_map(|s| s.parse::<FsyncFailure>())
}

/// The semantics of a failed fsync on a volume of `model`: `chosen`, or
/// the model's filesystem's (ext4's for `posix`: every measured
/// filesystem marks failed pages clean, and ext4's is the most common).
pub fn fsync_failure(model: Persistence, chosen: Option<FsyncFailure>) -> FsyncFailure {
    chosen.unwrap_or(match model {
        Persistence::Xfs => FsyncFailure::Xfs,
        Persistence::Btrfs => FsyncFailure::Btrfs,
        _ => FsyncFailure::Ext4,
    })
}

/// A count of at least 1 (`--jobs`).
fn at_least_one(s: &str) -> std::result::Result<usize, String> {
    match s.parse::<usize>() {
        Ok(0) => Err("must be at least 1".into()),
        Ok(n) => Ok(n),
        Err(e) => Err(e.to_string()),
    }
}

#[derive(Debug, clap::Args)]
pub struct CalibrateArgs {
    /// The real filesystem: ext4, xfs or btrfs.
    #[arg(long, required_unless_present = "summarize")]
    pub fs: Option<String>,
    /// The durafs model under test: posix, ext4, xfs or btrfs (journal is
    /// ext4).
    #[arg(long, default_value = "posix", value_parser = model_parser())]
    pub model: Persistence,
    /// Generate N workloads (seq-1..seq-3) from --seed.
    #[arg(long, conflicts_with = "workload")]
    pub generate: Option<u64>,
    /// Seed of generated workloads and of sampled and torn states.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Shell scripts run in the filesystem's root, calling
    /// `"$DURAFS" mark LABEL` at each crash point.
    #[arg(long, num_args = 1..)]
    pub workload: Vec<PathBuf>,
    /// Real crash states checked at once (at least 1).
    #[arg(long, value_parser = at_least_one)]
    pub jobs: Option<usize>,
    /// Print one JSON document instead of the table.
    #[arg(long)]
    pub json: bool,
    /// On the real side, write back every file's dirty pages before each
    /// step's mark (`sync_file_range`, no flush, no journal commit), so
    /// that crash states with data on the device but not committed are
    /// seen (the script's `wb`).
    #[arg(long)]
    pub writeback: bool,
    /// On the real side, mount with a 1-second journal commit interval
    /// (xfs: `fs.xfs.xfssyncd_centisecs=100` while calibrate runs) and wait
    /// for a commit before each step's mark (with --writeback, also after
    /// the writeback), so that states a timed commit produces between
    /// operations are seen. Adds about a second per step.
    #[arg(long)]
    pub commits: bool,
    /// Start every step durable: before each step's mark `wb` writes dirty
    /// pages back (real side) and syncs the filesystem on both sides, so
    /// each step's crash states are those of its own operations, with the
    /// states inside the writeback and the sync. Measures precision without
    /// the timing of writeback and commits carried over from earlier steps,
    /// which one recording cannot vary.
    #[arg(long)]
    pub settle: bool,
    /// Record the real side twice, as asked and with --writeback, and
    /// compare the model with the union of their outcomes: both are crash
    /// states of the workload on a real machine, with and without its
    /// dirty pages written back before each mark.
    #[arg(long)]
    pub union: bool,
    /// With --union, record the real side once more per step, writing
    /// dirty pages back only before that step's mark: a page written in
    /// one step and written back in a later one (after a later flush) is
    /// a timing the other recordings never show. N steps cost N more
    /// recordings.
    #[arg(long, requires = "union")]
    pub timings: bool,
    /// Do not search for real device states that give the predicted
    /// outcomes no enumerated real state showed (reach): faster, and
    /// precision is then only a lower bound.
    #[arg(long)]
    pub no_reach: bool,
    /// Print the workloads' scripts and exit (nothing runs).
    #[arg(long)]
    pub print: bool,
    /// Keep each workload's script and both traces here.
    #[arg(long)]
    pub keep: Option<PathBuf>,
    /// Atomic write unit of the device: torn writes keep whole sectors.
    #[arg(long, default_value_t = 512)]
    pub sector: u64,
    /// Most real crash states per workload (shared by its marks).
    #[arg(long, default_value_t = 300)]
    pub max_states: usize,
    /// Most predicted crash states per workload (shared by its marks; each
    /// is computed in memory, so many more than real ones).
    #[arg(long, default_value_t = 6000)]
    pub max_predicted: usize,
    /// Print the Markdown tables of saved `--json` runs (`.json` or
    /// `.json.gz`): totals, false negatives by family, and every false
    /// negative; nothing runs.
    #[arg(long, num_args = 1.., conflicts_with_all = ["generate", "workload", "print"])]
    pub summarize: Vec<PathBuf>,
    /// Check the model of a failed fsync instead (with --generate N): each
    /// workload's fsync fails by durafs's own fault on the device's
    /// blocks, and every fsync's result and every read, live, after
    /// drop_caches and after a remount, is compared with the model's
    /// (`docs/fsync-failures-evidence.md`).
    #[arg(long, conflicts_with_all = ["workload", "summarize"])]
    pub fsync_failures: bool,
    /// Tests only: predict just the keep-all state at each mark, a wrong
    /// model whose false negatives the report must show.
    #[arg(long, hide = true)]
    pub test_wrong_model: bool,
}

/// What survives a power cut (`cut`, `run`): one definition with the
/// control file's `cut` (`durafs::control::args`).
pub use durafs::control::args::PolicyArgs;

/// Options both `run` and `explore` take.
#[derive(Debug, clap::Args)]
pub struct VolumeArgs {
    /// Copy this directory into the volume first, as durable state.
    #[arg(long)]
    pub init: Option<PathBuf>,
    /// Durability model: posix, ext4, xfs or btrfs (journal is ext4;
    /// `docs/durability.md`, "Profiles").
    #[arg(long, default_value = "posix", value_parser = model_parser())]
    pub model: Persistence,
    /// Let every user reach the volume, as `durafs mount --allow-other`
    /// (the temp dir holding it is made traversable; a --dir must be).
    #[arg(long)]
    pub allow_other: bool,
    /// What follows an fsync a `fsync-fail` fault fails: strict, ext4, xfs
    /// or btrfs (default: the model's filesystem, ext4 for posix;
    /// docs/faults.md).
    #[arg(long, value_parser = fsync_failure_parser())]
    pub fsync_failure: Option<FsyncFailure>,
}

impl VolumeArgs {
    /// The volume settings these arguments give.
    pub fn fs_options(&self) -> durafs::fs::FsOptions {
        durafs::fs::FsOptions {
            persistence: self.model,
            fsync_failure: fsync_failure(self.model, self.fsync_failure),
            ..durafs::fs::FsOptions::default()
        }
    }
}

#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// Where the volumes go (kept afterwards; default: a temp dir, removed).
    #[arg(long)]
    pub dir: Option<PathBuf>,
    #[command(flatten)]
    pub volume: VolumeArgs,
    #[command(flatten)]
    pub crash: PolicyArgs,
    /// Seed of the policy's (and `random`'s) choices.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// When to cut: after-ops=N, after-fsync=N, before:OP:REGEX[:nth=K],
    /// after:OP:REGEX[:nth=K], after-ms=T, random or exit (default with
    /// --fault: exit, or the fault's own cut).
    #[arg(long, value_parser = |s: &str| s.parse::<crate::run::trigger::Trigger>(),
          required_unless_present = "fault")]
    pub cut: Option<crate::run::trigger::Trigger>,
    /// Arm a fault on the volume, in the control file's grammar (`error
    /// ENOSPC --op write --path '^/data'`, `fsync-fail --nth 2`, `cut --op
    /// rename`; docs/faults.md); repeatable. A fault's cut ends the run as
    /// the trigger does.
    #[arg(long)]
    pub fault: Vec<String>,
    /// Shell command run on the remounted volume after the cut (working
    /// directory and $DURAFS_MOUNT: the volume; $DURAFS_MARKS: the marks).
    #[arg(long)]
    pub check: Option<String>,
    /// Run N times with seeds SEED..SEED+N-1.
    #[arg(long, default_value_t = 1)]
    pub repeat: u64,
    /// Print one JSON document on stdout: each run's trigger, cut and
    /// check (verdict, exit code, output), and the verdict. The program's
    /// stdout then goes to stderr.
    #[arg(long)]
    pub json: bool,
    /// The program and its arguments (its working directory and
    /// $DURAFS_MOUNT: the volume).
    #[arg(last = true, required = true)]
    pub command: Vec<String>,
}

#[derive(Debug, clap::Args)]
pub struct ExploreArgs {
    #[command(flatten)]
    pub volume: VolumeArgs,
    /// Explore this recorded trace (`--trace`, `durafs mount --trace`)
    /// instead of running a program.
    #[arg(long, conflicts_with = "command")]
    pub replay: Option<PathBuf>,
    /// Also write the recorded trace here (JSON lines).
    #[arg(long)]
    pub trace: Option<PathBuf>,
    /// Crash points: every (after every operation) or fsync (just before
    /// each fsync, fdatasync, fsyncdir, sync, and at the end).
    #[arg(long, default_value = "every")]
    pub at: String,
    /// Most crash states checked; past it, each crash point gets a seeded
    /// sample.
    #[arg(long, default_value_t = 10_000)]
    pub max_states: usize,
    /// Checks run at once (default: the number of cores; at least 1).
    #[arg(long, value_parser = at_least_one)]
    pub jobs: Option<usize>,
    /// Seed of sampled and torn states.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Sector size of torn writes, in bytes.
    #[arg(long, default_value_t = 512)]
    pub sector: u64,
    /// Leave torn writes out of the enumeration.
    #[arg(long)]
    pub no_torn: bool,
    /// Check only this state (a number from a report).
    #[arg(long)]
    pub only: Option<usize>,
    /// Record, with every call, the calling process and its user-space
    /// stack, symbolised: each vulnerability then names the source lines
    /// of its calls (for programs built with debug info).
    #[arg(long)]
    pub stacks: bool,
    /// Also write the report as a self-contained web page here: the
    /// trace's timeline with each crash point coloured by outcome, and a
    /// card per vulnerability.
    #[arg(long, value_name = "FILE")]
    pub html: Option<PathBuf>,
    /// Check only shard I of N (states I, I+N, I+2N, ...; I from 1), to
    /// split the states over the jobs of a CI matrix. Every shard records
    /// and enumerates the same states, so their numbers agree.
    #[arg(long, value_name = "I/N", value_parser = shard_parser)]
    pub shard: Option<(usize, usize)>,
    /// Materialise failing states (or the --only state) under this
    /// directory and leave them there.
    #[arg(long)]
    pub keep: Option<PathBuf>,
    /// Member states of each vulnerability described in full (the rest
    /// are listed by number).
    #[arg(long, default_value_t = 1)]
    pub show: usize,
    /// Seconds a check may run; one still running then is killed (its
    /// process group) and its state fails as timed out.
    #[arg(long, default_value_t = 300.0, value_parser = positive_seconds)]
    pub check_timeout: f64,
    /// Most checks run to explain the failures (delta debugging over what
    /// each failing state lost); 0 groups failures without minimising.
    #[arg(long, default_value_t = 1000)]
    pub explain_checks: usize,
    /// For every fsync and fdatasync of the recorded run, run the program
    /// again with that call failing (`fsync-fail`, the volume's
    /// --fsync-failure semantics), and check the crash states after it:
    /// the report names each fsync and what the program did after the
    /// error (retried, carried on, exited).
    #[arg(long, conflicts_with_all = ["replay", "only", "html", "shard"])]
    pub fsync_failures: bool,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
    /// Shell command run in each crash state (working directory and
    /// $DURAFS_STATE: the state; $DURAFS_MARKS: the marks recorded before
    /// the crash, one per line); exit 0 means the state is fine.
    #[arg(long)]
    pub check: String,
    /// Where scratch directories go (default: the system temp dir).
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// The program and its arguments.
    #[arg(last = true)]
    pub command: Vec<String>,
}

#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// Directory for the temporary volumes (default: the system temp dir).
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Print the table as a JSON array.
    #[arg(long)]
    pub json: bool,
    /// Seed of every random choice; the same seed gives the same run.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Puts per workload.
    #[arg(long, default_value_t = 240)]
    pub puts: usize,
    /// Cut points per row, spread over the workload.
    #[arg(long, default_value_t = 6)]
    pub points: usize,
    /// Seeds per seeded policy (random, torn, prefix) and cut point.
    #[arg(long, default_value_t = 2)]
    pub seeds: usize,
    /// Most enumerated crash states tried per row (all when fewer).
    #[arg(long, default_value_t = 24)]
    pub enum_cap: usize,
    /// Durability model of the volumes: posix, ext4, xfs or btrfs (journal
    /// is ext4).
    #[arg(long, default_value = "posix", value_parser = model_parser())]
    pub model: Persistence,
    /// Show the engines' warnings as they come (damaged files their
    /// recovery found), instead of counting them for the end.
    #[arg(short, long)]
    pub verbose: bool,
}

#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    /// Smaller sizes and one run by default (a smoke test, not a figure).
    #[arg(long)]
    pub quick: bool,
    /// Print one JSON object instead of the table.
    #[arg(long)]
    pub json: bool,
    /// Runs per workload and side; each figure is the median (default: 3,
    /// or 1 with --quick).
    #[arg(long)]
    pub runs: Option<usize>,
    /// Only these workloads, comma-separated (default: all).
    #[arg(long, value_delimiter = ',')]
    pub only: Vec<String>,
    /// Also measure another FUSE filesystem in the same rotation
    /// (repeatable): `passthrough_ll` (libfuse's C example, built from the
    /// third-party directory, `$DURAFS_THIRD_PARTY`), `passthrough_ll=PATH`
    /// (a built one), or NAME='MOUNT-CMD {backing} {mnt}'.
    #[arg(long, value_name = "SPEC")]
    pub peer: Vec<String>,
    /// Mount with --writeback-cache.
    #[arg(long)]
    pub writeback_cache: bool,
    /// Threads serving FUSE requests in each mount.
    #[arg(long, default_value_t = 2)]
    pub threads: usize,
    /// The durafs side's transport: dev or uring (`durafs mount
    /// --transport`); add `--peer durafs-dev` or `--peer durafs-uring` to
    /// measure the other in the same run.
    #[arg(long, value_name = "dev|uring")]
    pub transport: Option<durafs::transport::Transport>,
    /// Parent of the scratch directory; native files and the backing
    /// directory both go there, so both sides use the same filesystem.
    #[arg(default_value = "/var/tmp")]
    pub dir: PathBuf,
}

#[derive(Debug, clap::Args)]
pub struct MountArgs {
    /// Durability model: posix (names need a directory fsync, the union of
    /// what POSIX filesystems may show), ext4 (any fsync also commits
    /// earlier names; `journal` is an alias), xfs or btrfs
    /// (`docs/durability.md`, "Profiles").
    #[arg(long, default_value = "posix", value_parser = model_parser())]
    pub model: Persistence,
    /// Unsynced bytes past which the oldest dirty data is written back
    /// (e.g. 64M, 1.5G, 4096; K, M, G, T are powers of 1024).
    #[arg(long, default_value = "1G", value_parser = size::parse)]
    pub dirty_limit: u64,
    /// Also fsync BACKING whenever durafs makes something durable.
    #[arg(long)]
    pub real_fsync: bool,
    /// What follows an fsync a `fsync-fail` fault fails: strict, ext4, xfs
    /// or btrfs (default: the model's filesystem, ext4 for posix;
    /// docs/faults.md).
    #[arg(long, value_parser = fsync_failure_parser())]
    pub fsync_failure: Option<FsyncFailure>,
    /// Stay attached and log to stderr.
    #[arg(long)]
    pub foreground: bool,
    /// Record every state-changing operation to this file (JSON lines),
    /// for `durafs explore --replay`.
    #[arg(long)]
    pub trace: Option<PathBuf>,
    /// Arm the faults of this plan (TOML, `docs/faults.md`) at mount; a
    /// malformed plan refuses the mount, naming the line and column.
    #[arg(long)]
    pub faults: Option<PathBuf>,
    /// Threads serving FUSE requests.
    #[arg(long, default_value_t = 2)]
    pub threads: usize,
    /// Let the kernel cache and coalesce writes (faster small writes).
    /// Writes the kernel still holds are missing from `status`, from traces
    /// and from a cut's survivors until fsync, close or kernel writeback
    /// sends them: see docs/performance.md.
    #[arg(long)]
    pub writeback_cache: bool,
    /// Let every user of the machine use the mount, the kernel checking
    /// modes and owners (`allow_other`). The control file stays the
    /// mounting user's. Default: only the mounting user.
    #[arg(long)]
    pub allow_other: bool,
    /// How FUSE requests travel: dev (read and writev on /dev/fuse) or
    /// uring (FUSE over io_uring, Linux 6.14+; durafs turns the kernel's
    /// enable_uring switch on). Default: $DURAFS_TRANSPORT, else dev.
    #[arg(long, value_name = "dev|uring")]
    pub transport: Option<durafs::transport::Transport>,
    /// Internal: this process is the background daemon; report readiness
    /// on stdout.
    #[arg(long, hide = true)]
    pub daemonized: bool,
    /// The directory holding the durable state (created if missing).
    pub backing: PathBuf,
    /// An empty directory to mount on.
    pub mountpoint: PathBuf,
}

#[derive(Debug, clap::Args)]
pub struct CutArgs {
    pub mountpoint: PathBuf,
    /// The policy and the seed, as the control file's `cut` takes them.
    #[command(flatten)]
    pub cut: durafs::control::args::CutArgs,
    /// Mount the post-crash state at the same place afterwards.
    #[arg(long)]
    pub remount: bool,
    /// Print the cut's summary as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Runs the command line of this process.
pub fn run() -> ExitCode {
    let cli = Cli::parse();
    if !matches!(cli.command, Command::Mount(_)) {
        default_sigpipe();
    }
    let foreground = matches!(&cli.command, Command::Mount(m) if m.foreground || m.daemonized);
    // fuser logs an error for every reply the kernel no longer wants; after
    // a power cut that is expected, so only the daemon's log keeps them.
    let default_level = if foreground { "info" } else { "warn,fuser=off" };
    logging::init(default_level);
    let result = match cli.command {
        Command::Mount(args) => daemon::mount(args).map(|()| Code::Success),
        Command::Umount { mountpoint, lazy } => {
            client::umount(&mountpoint, lazy).map(|()| Code::Success)
        }
        Command::Status {
            mountpoint,
            json,
            no_color,
        } => client::status(&mountpoint, json, no_color).map(|()| Code::Success),
        Command::Sync { mountpoint } => client::sync(&mountpoint).map(|()| Code::Success),
        Command::Cut(args) => client::cut(args).map(|()| Code::Success),
        Command::Wait {
            mountpoint,
            timeout,
        } => client::wait_mounted(&mountpoint, std::time::Duration::from_secs(timeout))
            .map(|()| Code::Success),
        Command::Fault {
            mountpoint,
            json,
            command,
        } => client::fault(&mountpoint, &command, json).map(|()| Code::Success),
        Command::Demo(args) => demo::cli::demo(args),
        Command::Mark { label, mount } => client::mark(mount, &label).map(|()| Code::Success),
        Command::Run(args) => run::run(&args),
        Command::Explore(args) => explore::explore(&args),
        Command::Bench(args) => bench::bench(&args).map(|()| Code::Success),
        Command::WritebackAll { dir } => {
            calibrate::device::writeback_all(&dir).map(|()| Code::Success)
        }
        Command::WaitCommit { dir } => calibrate::commit::wait_commit(&dir).map(|()| Code::Success),
        Command::Calibrate(args) => calibrate::calibrate(&args),
    };
    exit_code(result).into()
}

/// The code a command's result ends the process with (its error printed):
/// an error after SIGINT, SIGTERM or SIGHUP is the interruption's.
fn exit_code(r: Result<Code>) -> Code {
    match r {
        Ok(code) => code,
        Err(e) => {
            eprintln!("durafs: {e}");
            match workload::interrupted_by() {
                Some(sig) => Code::from_signal(sig),
                None => e.code,
            }
        }
    }
}

/// Restores SIGPIPE's default action (Rust ignores it), so a printing
/// command whose reader went away (`durafs status MNT | head`) ends quietly
/// by that signal, as CLI tools do, instead of panicking in `println!`.
/// Not for `mount`: the daemon must outlive whoever reads its ready pipe.
fn default_sigpipe() {
    // SAFETY: setting a signal's disposition to its default.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

/// An error for the user: one line, no backtrace, and the exit code it
/// ends the command with.
#[derive(Debug)]
pub struct CliError {
    pub code: Code,
    pub msg: String,
}

impl std::fmt::Display for CliError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.msg)
    }
}

impl std::error::Error for CliError {}

/// `I/N` with 1 <= I <= N.
fn shard_parser(s: &str) -> std::result::Result<(usize, usize), String> {
    let bad = || format!("{s:?} is not a shard I/N with 1 <= I <= N (e.g. 2/4)");
    let (i, n) = s.split_once('/').ok_or_else(bad)?;
    let (i, n) = (
        i.trim().parse::<usize>().map_err(|_| bad())?,
        n.trim().parse::<usize>().map_err(|_| bad())?,
    );
    if i == 0 || i > n {
        return Err(bad());
    }
    Ok((i, n))
}

/// A positive, finite number of seconds.
fn positive_seconds(s: &str) -> std::result::Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v > 0.0 && v.is_finite() => Ok(v),
        _ => Err(format!("{s:?} is not a positive number of seconds")),
    }
}

/// durafs itself failed (exit 3).
pub(crate) fn err(msg: impl Into<String>) -> CliError {
    CliError {
        code: Code::Failed,
        msg: msg.into(),
    }
}

/// Bad arguments found after parsing (exit 2, as clap's own).
pub(crate) fn usage(msg: impl Into<String>) -> CliError {
    CliError {
        code: Code::Usage,
        msg: msg.into(),
    }
}

pub(crate) type Result<T> = std::result::Result<T, CliError>;

#[cfg(test)]
mod tests {
    /// clap's own consistency checks over every command (a flattened
    /// group of the durafs crate's included).
    #[test]
    fn the_cli_is_consistent() {
        use clap::CommandFactory;
        super::Cli::command().debug_assert();
    }
}
