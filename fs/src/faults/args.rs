//! The grammar of faults: one clap definition for the control file's
//! `fault ...`, `durafs fault MNT ...` and the `[[fault]]` tables of a
//! plan (`durafs mount --faults FILE`, [`super::plan`]), which are turned
//! into the same words.
//!
//! ```text
//! fault add ACTION [ACTION OPTIONS] [--op OP] [--path REGEX] [--range A..B]
//!           [--when before|after] [--nth K | --every K | --after-ops N | --chance P]
//!           [--seed N] [--times N | --forever]
//! fault list
//! fault clear [ID...]
//! ```

use crate::control::args::{PolicyArgs, positive, probability};
use crate::trace::TraceOp;

/// Before the call takes effect, or after it did (before its caller
/// learns the result).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum When {
    Before,
    After,
}

/// Which calls a fault watches, and at which of them it fires.
#[derive(Clone, Debug, Default, PartialEq, clap::Args)]
#[group(skip)]
pub struct TriggerArgs {
    /// Where, written as `durafs run --cut` writes it: after-ops=N,
    /// after-fsync=N, before:OP:REGEX[:nth=K] or after:OP:REGEX[:nth=K]
    /// (instead of --op, --path, --when and the count).
    #[arg(long, value_parser = |s: &str| s.parse::<super::at::At>(),
          conflicts_with_all = ["op", "path", "when", "nth", "every", "after_ops", "chance"])]
    pub at: Option<super::at::At>,
    /// The operation watched: create, mkdir, symlink, mknod, link, unlink,
    /// rmdir, rename, truncate, setattr, write, fallocate, setxattr,
    /// removexattr, fsync, fdatasync, fsyncdir or sync (default: any call
    /// of the program; fsync-fail: fsync and fdatasync; torn: write).
    #[arg(long, value_parser = op_name)]
    pub op: Option<String>,
    /// Regular expression matched against each path the call names, from
    /// the volume's root (`^/wal/`); a call without a path (`sync`) matches
    /// a pattern that matches the empty string.
    #[arg(long, value_parser = pattern)]
    pub path: Option<String>,
    /// Only writes and fallocates overlapping the byte range A..B of the
    /// file (for an image file under a loop device: its blocks).
    #[arg(long, value_parser = byte_range)]
    pub range: Option<(u64, u64)>,
    /// Act before the call takes effect or after (defaults: cut, torn and
    /// torn-seq after; error, delay and fsync-fail before).
    #[arg(long, value_enum)]
    pub when: Option<When>,
    /// Fire at the K-th matching call (the default: K = 1).
    #[arg(long, value_parser = positive, group = "which")]
    pub nth: Option<u64>,
    /// Fire at every K-th matching call.
    #[arg(long, value_parser = positive, group = "which")]
    pub every: Option<u64>,
    /// Fire at the first matching call once the volume has seen N calls
    /// (trace events, as `durafs run`'s after-ops=N counts them).
    #[arg(long, value_parser = positive, group = "which")]
    pub after_ops: Option<u64>,
    /// Fire at each matching call with probability P (seeded by --seed).
    #[arg(long, value_parser = probability, group = "which")]
    pub chance: Option<f64>,
    /// Seed of --chance's draws and of the action's choices (cut policy,
    /// torn sectors, the pages an fsync-fail writes back). Default 0.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Fire at most N times, then disarm (default 1).
    #[arg(long, value_parser = positive, conflicts_with = "forever")]
    pub times: Option<u64>,
    /// Stay armed: fire at every call the count selects.
    #[arg(long)]
    pub forever: bool,
}

/// What a fault does when it fires.
#[derive(Clone, Debug, PartialEq, clap::Subcommand)]
pub enum ActionArgs {
    /// Cut the power there: the policy chooses what unsynced state
    /// survives, the call fails and the mount dies (as `durafs cut`).
    Cut {
        #[command(flatten)]
        crash: PolicyArgs,
        /// Mount the post-crash state at the same place afterwards (a
        /// `durafs mount` daemon only).
        #[arg(long)]
        remount: bool,
        #[command(flatten)]
        at: TriggerArgs,
    },
    /// The call fails with ERRNO (EIO, ENOSPC, EDQUOT, EROFS, EFBIG,
    /// ENOMEM, EACCES, EPERM, EINTR, EAGAIN or a number) and takes no
    /// effect.
    Error {
        #[arg(value_parser = errno)]
        errno: i32,
        #[command(flatten)]
        at: TriggerArgs,
    },
    /// Hold the call MS milliseconds (a slow disk).
    Delay {
        ms: u64,
        #[command(flatten)]
        at: TriggerArgs,
    },
    /// The write survives the next cut only in part: split into --parts
    /// equal parts of which --keep (1-based) persist (LazyFS's torn-op),
    /// or, with --sector, each sector with probability 1/2 (seeded).
    Torn {
        /// Parts the write is split into.
        #[arg(long, value_parser = positive, requires = "keep", conflicts_with = "sector")]
        parts: Option<u64>,
        /// The parts that persist, 1-based, comma-separated (`1,3`).
        #[arg(long, value_parser = index_list)]
        keep: Option<Indices>,
        /// Sector size of a seeded split, in bytes.
        #[arg(long, value_parser = positive)]
        sector: Option<u64>,
        /// Cut the power (drop-all, this write kept in part) right after
        /// the write, as LazyFS's torn-op crashes.
        #[arg(long)]
        cut: bool,
        #[command(flatten)]
        at: TriggerArgs,
    },
    /// Of --count writes to the file, from the matching one, only --keep
    /// (1-based) survive the next cut (LazyFS's torn-seq).
    TornSeq {
        /// Writes in the sequence.
        #[arg(long, value_parser = positive)]
        count: u64,
        /// The writes that persist, 1-based, comma-separated.
        #[arg(long, value_parser = index_list)]
        keep: Indices,
        /// Cut the power (drop-all, the sequence kept as chosen) after its
        /// last write.
        #[arg(long)]
        cut: bool,
        #[command(flatten)]
        at: TriggerArgs,
    },
    /// The fsync or fdatasync fails with EIO after writing back some of
    /// the file's dirty pages (seeded); what follows is the volume's
    /// --fsync-failure semantics (`docs/faults.md`).
    FsyncFail {
        /// The failed write is the journal's (metadata), not the file's
        /// data: ext4 aborts its journal and turns read-only, xfs shuts
        /// down, btrfs aborts the transaction and turns read-only; nothing
        /// becomes durable afterwards (`docs/faults.md`).
        #[arg(long)]
        journal: bool,
        #[command(flatten)]
        at: TriggerArgs,
    },
}

impl ActionArgs {
    /// The trigger of any action.
    pub fn at(&self) -> &TriggerArgs {
        match self {
            ActionArgs::Cut { at, .. }
            | ActionArgs::Error { at, .. }
            | ActionArgs::Delay { at, .. }
            | ActionArgs::Torn { at, .. }
            | ActionArgs::TornSeq { at, .. }
            | ActionArgs::FsyncFail { at, .. } => at,
        }
    }
}

/// The `fault` commands.
#[derive(Clone, Debug, PartialEq, clap::Subcommand)]
pub enum FaultVerb {
    /// Arm a fault; replies with its id.
    Add {
        #[command(subcommand)]
        action: Box<ActionArgs>,
    },
    /// Every fault: armed, fired, remaining.
    List,
    /// Disarm the faults with these ids (all of them when none is given).
    Clear { ids: Vec<u64> },
}

/// `fault add` alone, for parsing a plan's entries and `DuraFs::add_fault`.
#[derive(Debug, clap::Parser)]
#[command(name = "fault add", no_binary_name = true, disable_version_flag = true)]
pub struct AddLine {
    #[command(subcommand)]
    pub action: ActionArgs,
}

fn op_name(s: &str) -> Result<String, String> {
    let faultable = TraceOp::NAMES.iter().filter(|n| {
        !matches!(
            **n,
            "writeback" | "close" | "mark" | "fault" | "fsync-failed"
        )
    });
    if faultable.clone().any(|n| *n == s) {
        Ok(s.to_string())
    } else {
        let names: Vec<&str> = faultable.copied().collect();
        Err(format!("expected one of {}", names.join(", ")))
    }
}

fn pattern(s: &str) -> Result<String, String> {
    regex::Regex::new(s)
        .map(|_| s.to_string())
        .map_err(|e| e.to_string())
}

fn byte_range(s: &str) -> Result<(u64, u64), String> {
    let (a, b) = s
        .split_once("..")
        .ok_or_else(|| "expected START..END (bytes)".to_string())?;
    let a: u64 = a.parse().map_err(|e| format!("start: {e}"))?;
    let b: u64 = b.parse().map_err(|e| format!("end: {e}"))?;
    if a >= b {
        return Err("the range is empty (START must be below END)".into());
    }
    Ok((a, b))
}

/// 1-based indices, sorted and deduplicated (`1,3`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Indices(pub Vec<u64>);

fn index_list(s: &str) -> Result<Indices, String> {
    let mut out = Vec::new();
    for w in s.split(',') {
        out.push(positive(w.trim()).map_err(|e| format!("{w:?}: {e}"))?);
    }
    out.sort_unstable();
    out.dedup();
    Ok(Indices(out))
}

/// The errnos a fault may inject, by name.
pub const ERRNOS: &[(&str, i32)] = &[
    ("EIO", libc::EIO),
    ("ENOSPC", libc::ENOSPC),
    ("EDQUOT", libc::EDQUOT),
    ("EROFS", libc::EROFS),
    ("EFBIG", libc::EFBIG),
    ("ENOMEM", libc::ENOMEM),
    ("EACCES", libc::EACCES),
    ("EPERM", libc::EPERM),
    ("EINTR", libc::EINTR),
    ("EAGAIN", libc::EAGAIN),
];

/// The name of `errno` when [`ERRNOS`] has it, else its number.
pub fn errno_name(errno: i32) -> String {
    ERRNOS
        .iter()
        .find(|(_, n)| *n == errno)
        .map_or_else(|| errno.to_string(), |(name, _)| (*name).to_string())
}

fn errno(s: &str) -> Result<i32, String> {
    if let Some((_, n)) = ERRNOS.iter().find(|(name, _)| name.eq_ignore_ascii_case(s)) {
        return Ok(*n);
    }
    match s.parse::<i32>() {
        Ok(n) if (1..4096).contains(&n) => Ok(n),
        _ => {
            let names: Vec<&str> = ERRNOS.iter().map(|(n, _)| *n).collect();
            Err(format!(
                "expected an errno number or one of {}",
                names.join(", ")
            ))
        }
    }
}
