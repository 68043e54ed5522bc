//! The control file: `MOUNTPOINT/.durafs`, through which the `durafs` tool
//! and scripts in any language drive a mounted volume.
//!
//! # Protocol
//!
//! * The file is hidden from `readdir`, cannot be created, removed, renamed
//!   or linked, and only the mounting user (and root) may open it (mode
//!   `0600`, owned by the mounting user).
//! * Each open handle carries its own exchanges: write one command (a
//!   single line of at most [`MAX_COMMAND`] bytes, trailing newline
//!   optional) in one `write`, then read the reply to end of file. Reads
//!   ignore the file offset: each returns the next unread bytes of the last
//!   reply, so `exec 3<>.durafs; echo sync >&3; cat <&3` works. A read
//!   before any write returns the reply to `status`, so
//!   `cat MOUNTPOINT/.durafs` prints the status, and
//!   `echo sync > MOUNTPOINT/.durafs` syncs (the write fails if it did not).
//! * The reply is one JSON object and a newline: `{"ok":true,...}`, or
//!   `{"ok":false,"error":"..."}`. The write itself fails with `EINVAL` for
//!   a malformed command and `EIO` when the command failed; the reply (read
//!   on the same handle) says why. A malformed command changes nothing.
//!
//! # Commands
//!
//! A command is split into words as a shell would (quotes and backslashes
//! work), then parsed by the grammar the `durafs` CLI uses ([`args`]):
//! options take their value as `--policy torn` or `--policy=torn`, and an
//! unknown option or a bad value is refused with clap's message. `mark`
//! alone takes the rest of the line as written (its label is free text).
//! `help` (or `cut --help`) replies `{"ok":true,"help":"..."}`.
//!
//! ```text
//! status                       {"ok":true,"status":<report>,"volume":<info>}
//! volume                       {"ok":true,"volume":<info>}  the settings and
//!                              counters alone: no report, cheap at any size
//! sync                         {"ok":true}         everything made durable
//! cut [--policy P] [--seed N] [--sector BYTES] [--probability F] [--garbage]
//!                              {"ok":true,"cut":<summary>}
//! fault add ACTION [OPTIONS]   {"ok":true,"id":N}  arm a fault (`crate::faults`)
//! fault list                   {"ok":true,"faults":[<fault status>...]}
//! fault clear [ID...]          {"ok":true,"cleared":N}  all when no id
//! mark LABEL                   {"ok":true,"marks":N}   a promise the program
//!                              made (the rest of the line, trimmed; at most
//!                              1024 bytes), recorded in order with the
//!                              volume's operations
//! ```
//!
//! `cut` simulates the power cut at once: every later request on the volume
//! fails with `EIO`. When the handle that sent it is closed, the mount is
//! torn down (kernel caches invalidated, unmounted), as if the machine lost
//! power. Without `--seed`, a seed is drawn and reported.

use crate::faults::FaultStatus;
use crate::faults::args::FaultVerb;
use crate::fs::{CutSummary, DuraFs, VolumeInfo};
use crate::model::Report;
use crate::model::crash::CrashOptions;
use clap::Parser;
use std::fmt;

pub mod args;
mod file;
pub use file::{ControlFile, Refused};

/// Name of the control file in the root of the mount (the same name as the
/// bookkeeping directory in `BACKING`, which the mount never shows).
pub const CONTROL_NAME: &str = crate::backing::META_DIR;

/// Longest command accepted.
pub const MAX_COMMAND: usize = 4096;

/// A parsed control command.
#[derive(Clone, Debug, PartialEq)]
pub enum Command {
    /// `status`: the unsynced report and the volume's counters.
    Status,
    /// `volume`: the volume's settings and counters alone.
    Volume,
    /// `sync`: everything made durable.
    Sync,
    /// The options, and whether the seed was given.
    Cut(CrashOptions, bool),
    /// A promise the program made, for `durafs explore`'s checks.
    Mark(String),
    /// `fault add WORDS...`: the words after `add`, checked.
    FaultAdd(Vec<String>),
    /// `fault list`.
    FaultList,
    /// `fault clear [ID...]`.
    FaultClear(Vec<u64>),
    /// `help`, `--help` or `cut --help`: the grammar, as text.
    Help(String),
}

/// A command that could not be parsed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseError(pub String);

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ParseError {}

fn bad(msg: impl Into<String>) -> ParseError {
    ParseError(msg.into())
}

impl Command {
    /// Parses one command line: `mark LABEL` takes the rest of the line
    /// as written; every other command is split into words as a shell
    /// would (`shlex`) and parsed by clap with [`args::Line`], the grammar
    /// the `durafs` CLI shares (`--policy=torn` and `--policy torn` alike).
    pub fn parse(input: &[u8]) -> Result<Command, ParseError> {
        if input.len() > MAX_COMMAND {
            return Err(bad(format!("command longer than {MAX_COMMAND} bytes")));
        }
        let text = std::str::from_utf8(input).map_err(|_| bad("command is not UTF-8"))?;
        let text = text.strip_suffix('\n').unwrap_or(text);
        if text.contains('\n') {
            return Err(bad("one command per write"));
        }
        match text.split_whitespace().next() {
            None => {
                return Err(bad(
                    "empty command (expected status, volume, sync, cut, fault or mark)",
                ));
            }
            Some("mark") => return mark(text.trim_start()["mark".len()..].trim()),
            Some(_) => {}
        }
        let words =
            shlex::split(text).ok_or_else(|| bad("unbalanced quotes or a trailing backslash"))?;
        let line = match args::Line::try_parse_from(&words) {
            Ok(line) => line,
            Err(e) if e.kind() == clap::error::ErrorKind::DisplayHelp => {
                return Ok(Command::Help(e.to_string()));
            }
            Err(e) => {
                let msg = e.to_string();
                return Err(bad(msg.trim_start_matches("error: ").trim_end()));
            }
        };
        Ok(match line.command {
            args::Verb::Status => Command::Status,
            args::Verb::Volume => Command::Volume,
            args::Verb::Sync => Command::Sync,
            args::Verb::Cut(c) => {
                Command::Cut(c.crash.options(c.seed.unwrap_or(0)), c.seed.is_some())
            }
            args::Verb::Mark { label } => return mark(&label.join(" ")),
            args::Verb::Fault { verb } => match verb {
                FaultVerb::Add { action } => {
                    // Checked as arming it will check it (counts, paths).
                    let spec = words[2..].to_vec();
                    crate::faults::Faults::default()
                        .add(*action, String::new())
                        .map_err(|e| bad(e.0))?;
                    Command::FaultAdd(spec)
                }
                FaultVerb::List => Command::FaultList,
                FaultVerb::Clear { ids } => Command::FaultClear(ids),
            },
        })
    }
}

/// `mark LABEL`: the label as written, trimmed.
fn mark(label: &str) -> Result<Command, ParseError> {
    if label.is_empty() {
        return Err(bad("mark needs a label"));
    }
    if label.len() > crate::fs::MAX_MARK {
        return Err(bad(format!(
            "mark label longer than {} bytes",
            crate::fs::MAX_MARK
        )));
    }
    Ok(Command::Mark(label.to_string()))
}

/// What running a command produced.
#[derive(Debug)]
pub struct Outcome {
    /// The reply, one JSON line.
    pub reply: Vec<u8>,
    /// The errno the write returns, if the command failed.
    pub errno: Option<i32>,
    /// The command cut the power.
    pub cut: bool,
}

fn reply(v: serde_json::Value) -> Vec<u8> {
    let mut out = v.to_string().into_bytes();
    out.push(b'\n');
    out
}

fn failure(errno: i32, msg: &str) -> Outcome {
    Outcome {
        reply: reply(serde_json::json!({"ok": false, "error": msg})),
        errno: Some(errno),
        cut: false,
    }
}

fn ok(v: serde_json::Value) -> Outcome {
    Outcome {
        reply: reply(v),
        errno: None,
        cut: false,
    }
}

/// A seed for a cut that was given none.
fn fresh_seed() -> u64 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    crate::model::rng::SplitMix64::new(t ^ u64::from(std::process::id())).next_u64()
}

/// Parses and runs `input` on `fs`; no fault watches what it does
/// (they watch the programs on the volume).
pub fn run(fs: &DuraFs, input: &[u8]) -> Outcome {
    crate::fs::faults::exempt(|| run_exempt(fs, input))
}

fn run_exempt(fs: &DuraFs, input: &[u8]) -> Outcome {
    let cmd = match Command::parse(input) {
        Ok(c) => c,
        Err(e) => {
            log::warn!("durafs: control: {e}");
            return failure(libc::EINVAL, &e.0);
        }
    };
    match cmd {
        Command::Status => Outcome {
            reply: status_reply(fs),
            errno: None,
            cut: false,
        },
        Command::Volume => ok(serde_json::json!({"ok": true, "volume": fs.info()})),
        Command::Help(text) => Outcome {
            reply: reply(serde_json::json!({"ok": true, "help": text})),
            errno: None,
            cut: false,
        },
        Command::Sync if fs.degraded().is_some() => failure(
            libc::EIO,
            &format!(
                "sync failed: the volume degraded ({}): nothing more can be made durable",
                fs.degraded().map_or("", |d| d.describe())
            ),
        ),
        Command::Sync => match fs.sync() {
            Ok(()) => Outcome {
                reply: reply(serde_json::json!({"ok": true})),
                errno: None,
                cut: false,
            },
            Err(e) => failure(e.errno(), &format!("sync failed: {e}")),
        },
        Command::Mark(label) => match fs.mark(&label) {
            Ok(()) => Outcome {
                reply: reply(serde_json::json!({"ok": true, "marks": fs.marks().len()})),
                errno: None,
                cut: false,
            },
            Err(e) => failure(e.errno(), &format!("mark failed: {e}")),
        },
        Command::FaultAdd(words) => match fs.add_fault_words(&words) {
            Ok(id) => ok(serde_json::json!({"ok": true, "id": id})),
            Err(e) => {
                log::warn!("durafs: control: fault add: {e}");
                failure(libc::EINVAL, &e.0)
            }
        },
        Command::FaultList => ok(serde_json::json!({"ok": true, "faults": fs.faults().list()})),
        Command::FaultClear(ids) => match fs.faults().clear(&ids) {
            Ok(n) => {
                log::info!("durafs: {n} fault(s) cleared");
                ok(serde_json::json!({"ok": true, "cleared": n}))
            }
            Err(e) => failure(libc::EINVAL, &e.0),
        },
        Command::Cut(mut opts, seeded) => {
            if !seeded {
                opts.seed = fresh_seed();
            }
            match fs.cut(opts) {
                Ok(summary) => {
                    log::info!(
                        "durafs: power cut ({}, seed {}): lost {} operations, {} bytes",
                        summary.policy,
                        summary.seed,
                        summary.ops_lost,
                        summary.bytes_lost
                    );
                    Outcome {
                        reply: reply(serde_json::json!({"ok": true, "cut": summary})),
                        errno: None,
                        cut: true,
                    }
                }
                Err(e) => failure(e.errno(), &format!("cut failed: {e}")),
            }
        }
    }
}

/// The reply to `status`, typed: `{"ok":true,"status":...,"volume":...}`.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct StatusReply {
    pub ok: bool,
    /// Exactly what is not durable.
    pub status: Report,
    /// The volume's settings and counters.
    pub volume: VolumeInfo,
    /// The faults armed on the volume, and those that fired.
    #[serde(default)]
    pub faults: Vec<FaultStatus>,
}

/// The reply to `volume`, typed: `{"ok":true,"volume":...}`.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct VolumeReply {
    pub ok: bool,
    /// The volume's settings and counters.
    pub volume: VolumeInfo,
}

/// The reply to `cut`, typed: `{"ok":true,"cut":...}`.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CutReply {
    pub ok: bool,
    /// What the cut lost.
    pub cut: CutSummary,
}

/// The reply to `status`.
pub fn status_reply(fs: &DuraFs) -> Vec<u8> {
    let r = StatusReply {
        ok: true,
        status: fs.status(),
        volume: fs.info(),
        faults: fs.faults().list(),
    };
    // Serialised straight from the report: a `Value` tree first cost as
    // much again, one map per file (issue 21).
    match serde_json::to_vec(&r) {
        Ok(mut out) => {
            out.push(b'\n');
            out
        }
        Err(e) => failure(libc::EIO, &format!("status: {e}")).reply,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fs::FsOptions;
    use crate::model::crash::Policy;
    use crate::model::{Attrs, Kind, ROOT};

    #[test]
    fn parses_every_command_and_option() {
        assert_eq!(Command::parse(b"status\n"), Ok(Command::Status));
        assert_eq!(Command::parse(b"volume"), Ok(Command::Volume));
        assert_eq!(Command::parse(b"  sync "), Ok(Command::Sync));
        let Ok(Command::Cut(o, seeded)) = Command::parse(
            b"cut --policy torn --seed 7 --sector 4096 --probability 0.25 --garbage\n",
        ) else {
            panic!("cut did not parse");
        };
        assert!(seeded);
        assert_eq!(
            o,
            CrashOptions {
                policy: Policy::Torn,
                seed: 7,
                sector: 4096,
                probability: 0.25,
                garbage: true,
                rules: Default::default(),
            }
        );
        assert_eq!(
            Command::parse(b"cut"),
            Ok(Command::Cut(CrashOptions::default(), false))
        );
        assert_eq!(
            Command::parse(b"mark  put 7 acked \n"),
            Ok(Command::Mark("put 7 acked".into()))
        );
        // A label is free text: quotes and runs of spaces are kept.
        assert_eq!(
            Command::parse(b"mark it's  \"done\""),
            Ok(Command::Mark("it's  \"done\"".into()))
        );
    }

    /// Regression (issue 19): the control file refused `--policy=torn`,
    /// which the CLI accepts. One grammar (clap, from shell-split words)
    /// takes both forms, and quotes.
    #[test]
    fn options_take_their_value_after_a_space_or_an_equals_sign() {
        let torn = |seed| {
            Ok(Command::Cut(
                CrashOptions {
                    policy: Policy::Torn,
                    seed,
                    ..CrashOptions::default()
                },
                true,
            ))
        };
        assert_eq!(Command::parse(b"cut --policy torn --seed 3"), torn(3));
        assert_eq!(Command::parse(b"cut --policy=torn --seed=3"), torn(3));
        assert_eq!(Command::parse(b"cut '--policy=torn' --seed \"3\""), torn(3));
        assert_eq!(Command::parse(b"  cut --seed=3 --policy torn\n"), torn(3));
    }

    #[test]
    fn help_shows_the_grammar() {
        for input in [&b"help"[..], b"--help", b"cut --help"] {
            let Ok(Command::Help(text)) = Command::parse(input) else {
                panic!("{input:?}: no help");
            };
            assert!(text.contains("--policy") || text.contains("cut"), "{text}");
        }
    }

    #[test]
    fn malformed_commands_are_refused_with_a_reason() {
        for (input, want) in [
            (&b""[..], "empty command"),
            (b"stat", "unrecognized subcommand 'stat'"),
            (b"sync now", "unexpected argument 'now'"),
            (b"cut --policy nope", "invalid value 'nope' for '--policy"),
            (b"cut --policy=nope", "[possible values: drop-all,"),
            (b"cut --seed", "a value is required for '--seed"),
            (b"cut --seed x", "invalid value 'x' for '--seed"),
            (b"cut --sector 0", "must be positive"),
            (b"cut --probability 2", "0..=1"),
            (b"cut --force", "unexpected argument '--force'"),
            (b"cut --policy 'torn", "unbalanced quotes"),
            (b"status\nsync", "one command"),
            (b"\xff", "UTF-8"),
            (b"mark", "needs a label"),
            (b"mark   ", "needs a label"),
        ] {
            let e = Command::parse(input).unwrap_err();
            assert!(e.0.contains(want), "{input:?}: {e}");
            assert!(!e.0.contains('\x1b'), "{input:?}: colors in {e:?}");
        }
        assert!(Command::parse(&vec![b' '; MAX_COMMAND + 1]).is_err());
    }

    fn json(out: &Outcome) -> serde_json::Value {
        serde_json::from_slice(&out.reply).unwrap()
    }

    #[test]
    fn run_reports_status_syncs_and_cuts_and_survives_bad_input() {
        let dir = tempfile::tempdir().unwrap();
        let fs = DuraFs::open(dir.path(), FsOptions::default()).unwrap();
        let attrs = Attrs {
            mode: 0o644,
            ..Attrs::default()
        };
        let f = fs.create(ROOT, b"f", Kind::File, attrs, None).unwrap().ino;
        fs.write(f, 0, b"hello").unwrap();

        let bad = run(&fs, b"frobnicate");
        assert_eq!(bad.errno, Some(libc::EINVAL));
        assert_eq!(json(&bad)["ok"], false);

        let st = json(&run(&fs, b"status"));
        assert_eq!(st["status"]["unsynced_bytes"], 5);
        assert_eq!(st["status"]["files"][0]["path"], "f");
        assert_eq!(st["volume"]["model"], "posix");
        let v: VolumeReply = serde_json::from_slice(&run(&fs, b"volume").reply).unwrap();
        assert_eq!(v.volume, fs.info(), "volume: the same info as status's");
        assert!(json(&run(&fs, b"volume")).get("status").is_none());

        let s = run(&fs, b"sync\n");
        assert_eq!((s.errno, s.cut), (None, false));
        assert_eq!(json(&run(&fs, b"status"))["status"]["pending_ops"], 0);

        fs.write(f, 5, b" world").unwrap();
        let m = run(&fs, b"mark first promise");
        assert_eq!((m.errno, json(&m)["marks"].clone()), (None, 1.into()));
        assert_eq!(fs.marks(), vec!["first promise".to_string()]);
        let too_long = format!("mark {}", "x".repeat(crate::fs::MAX_MARK + 1));
        assert_eq!(run(&fs, too_long.as_bytes()).errno, Some(libc::EINVAL));

        let c = run(&fs, b"cut --policy drop-all");
        assert!(c.cut);
        let c = json(&c);
        assert_eq!(c["cut"]["bytes_lost"], 6);
        assert_eq!(c["cut"]["files_lost"], 1);
        assert_eq!(c["cut"]["lost"].as_array().unwrap().len(), 1);
        let again = run(&fs, b"sync");
        assert_eq!(again.errno, Some(libc::EIO));
        assert_eq!(run(&fs, b"mark late").errno, Some(libc::EIO));
    }
    #[test]
    fn faults_are_armed_listed_and_cleared_and_bad_ones_change_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let fs = DuraFs::open(dir.path(), FsOptions::default()).unwrap();
        let attrs = Attrs {
            mode: 0o644,
            ..Attrs::default()
        };
        let f = fs.create(ROOT, b"f", Kind::File, attrs, None).unwrap().ino;
        for (line, want) in [
            (&b"fault add error EWHAT"[..], "one of EIO"),
            (b"fault add", "Usage: fault add <COMMAND>"),
            (
                b"fault add cut --after fsync:/wal",
                "unexpected argument '--after'",
            ),
            (b"fault add error EIO --when after", "acts before the call"),
            (b"fault frob", "unrecognized subcommand"),
        ] {
            let out = run(&fs, line);
            assert_eq!(out.errno, Some(libc::EINVAL), "{line:?}");
            let msg = json(&out)["error"].as_str().unwrap().to_string();
            assert!(msg.contains(want), "{line:?}: {msg}");
        }
        assert!(
            fs.faults().list().is_empty(),
            "a refused fault is not armed"
        );

        let out = run(
            &fs,
            b"fault add error ENOSPC --op write --path '^/f$' --nth 2",
        );
        assert_eq!((out.errno, json(&out)["id"].clone()), (None, 1.into()));
        fs.write(f, 0, b"one").unwrap();
        let e = fs.write(f, 3, b"two").unwrap_err();
        assert_eq!(e.errno(), libc::ENOSPC);
        assert_eq!(
            fs.read(f, 0, 10).unwrap(),
            b"one",
            "the failed write took no effect"
        );
        fs.write(f, 3, b"two").unwrap();

        let list = json(&run(&fs, b"fault list"));
        let fault = &list["faults"][0];
        assert_eq!(
            fault["spec"],
            "error ENOSPC --op write --path '^/f$' --nth 2"
        );
        assert_eq!(
            (fault["fired"].clone(), fault["armed"].clone()),
            (1.into(), false.into())
        );
        assert_eq!(json(&run(&fs, b"status"))["faults"][0]["fired"], 1);

        let out = run(&fs, b"fault clear 9");
        assert_eq!(out.errno, Some(libc::EINVAL));
        assert_eq!(json(&run(&fs, b"fault clear"))["cleared"], 1);
        assert_eq!(
            json(&run(&fs, b"fault list"))["faults"],
            serde_json::json!([])
        );
    }
}
