//! The `durafs` command line: mount a volume, inspect what is unsynced,
//! sync it, cut its power, unmount it.
//!
//! Every command but `mount` talks to the running daemon through the
//! control file `MOUNTPOINT/.durafs` (see `durafs::control`), so scripts can
//! do the same without this binary.

mod client;
mod daemon;
pub mod demo;
mod render;
mod size;

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

/// A FUSE filesystem for crash-testing storage software.
#[derive(Debug, Parser)]
#[command(name = "durafs", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Mount BACKING at MOUNTPOINT; returns once the mount is ready.
    Mount(MountArgs),
    /// Persist everything, then unmount cleanly (waits for the daemon).
    Umount {
        mountpoint: PathBuf,
        /// Detach even if files are open (they get errors afterwards).
        #[arg(long)]
        lazy: bool,
    },
    /// Show exactly what is not yet durable.
    Status {
        mountpoint: PathBuf,
        /// Print the report as JSON (the control file's reply).
        #[arg(long)]
        json: bool,
    },
    /// Make everything durable, as sync(2) would (FUSE never sees sync(2)
    /// or syncfs(2), so scripts call this instead).
    Sync { mountpoint: PathBuf },
    /// Cut the power: the policy chooses what unsynced state survives, the
    /// rest is discarded and the mount dies.
    Cut(CutArgs),
    /// Run every bundled engine through durafs, cut the power at many
    /// points, and print what each setting lost.
    Demo(DemoArgs),
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
}

#[derive(Debug, clap::Args)]
pub struct MountArgs {
    /// Durability model: posix (names need a directory fsync) or journal
    /// (any fsync also commits earlier names, like ext4 data=ordered).
    #[arg(long, default_value = "posix")]
    pub model: String,
    /// Unsynced bytes past which the oldest dirty data is written back
    /// (e.g. 64M, 1G).
    #[arg(long, default_value = "1G", value_parser = size::parse)]
    pub dirty_limit: u64,
    /// Also fsync BACKING whenever durafs makes something durable.
    #[arg(long)]
    pub real_fsync: bool,
    /// Stay attached and log to stderr.
    #[arg(long)]
    pub foreground: bool,
    /// Threads serving FUSE requests.
    #[arg(long, default_value_t = 2)]
    pub threads: usize,
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
    /// drop-all, keep-all, prefix, random, torn or meta-first.
    #[arg(long, default_value = "drop-all")]
    pub policy: String,
    /// Seed of the random choices (drawn and printed when absent).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Sector size of torn writes, in bytes.
    #[arg(long, default_value_t = 512)]
    pub sector: u64,
    /// Survival probability of each operation (random, torn) and sector.
    #[arg(long)]
    pub probability: Option<f64>,
    /// Fill torn sectors with garbage instead of the old bytes.
    #[arg(long)]
    pub garbage: bool,
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
    let foreground = matches!(&cli.command, Command::Mount(m) if m.foreground || m.daemonized);
    // fuser logs an error for every reply the kernel no longer wants; after
    // a power cut that is expected, so only the daemon's log keeps them.
    let default_level = if foreground { "info" } else { "warn,fuser=off" };
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or(default_level))
        .init();
    let result = match cli.command {
        Command::Mount(args) => daemon::mount(args),
        Command::Umount { mountpoint, lazy } => client::umount(&mountpoint, lazy),
        Command::Status { mountpoint, json } => client::status(&mountpoint, json),
        Command::Sync { mountpoint } => client::sync(&mountpoint),
        Command::Cut(args) => client::cut(args),
        Command::Demo(args) => demo_cmd(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("durafs: {e}");
            ExitCode::FAILURE
        }
    }
}

fn demo_cmd(args: DemoArgs) -> Result<()> {
    let plan = demo::Plan {
        work: demo::trial::Workload {
            puts: args.puts.max(1),
            ..Default::default()
        },
        dir: args.dir,
        points: args.points.max(1),
        seeds: args.seeds,
        enum_cap: args.enum_cap,
        seed: args.seed,
        ..Default::default()
    };
    let rows = demo::rows::all();
    let started = std::time::Instant::now();
    let progress = |msg: &str| eprint!("\r\x1b[2K{msg}");
    let results = demo::run_all(&rows, &plan, &progress).map_err(|e| err(e.0))?;
    eprintln!(
        "\r\x1b[2Kdone: {} rows in {:.1}s (seed {})",
        results.len(),
        started.elapsed().as_secs_f64(),
        args.seed
    );
    if args.json {
        let v = serde_json::to_string_pretty(&results).map_err(|e| err(e.to_string()))?;
        println!("{v}");
    } else {
        print!("{}", demo::table(&results));
    }
    let odd: Vec<String> = results
        .iter()
        .filter(|r| !r.as_expected())
        .map(|r| format!("{} / {}", r.engine, r.setting))
        .collect();
    if odd.is_empty() {
        Ok(())
    } else {
        Err(err(format!(
            "unexpected results (a bug to find): {}",
            odd.join(", ")
        )))
    }
}

/// An error for the user: one line, no backtrace.
#[derive(Debug)]
pub struct CliError(pub String);

impl std::fmt::Display for CliError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for CliError {}

pub(crate) fn err(msg: impl Into<String>) -> CliError {
    CliError(msg.into())
}

pub(crate) type Result<T> = std::result::Result<T, CliError>;
