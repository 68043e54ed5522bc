//! The exploration report: a summary, each failure smallest first with the
//! crash point, the fate of every unsynced operation, the check's output
//! and a command that reproduces it.

use super::{Checked, Exploration};
use crate::ExploreArgs;
use crate::workload::shell_quote;
use std::fmt::Write;

/// Lines of a check's output shown per failure.
const OUTPUT_LINES: usize = 12;

/// A command that checks state `id` again and leaves it in a directory.
pub fn reproduce(args: &ExploreArgs, id: usize) -> String {
    let mut c = vec!["durafs".to_string(), "explore".to_string()];
    let mut opt = |k: &str, v: String| {
        c.push(k.to_string());
        c.push(shell_quote(&v));
    };
    if let Some(i) = &args.volume.init {
        opt("--init", i.display().to_string());
    }
    if args.volume.model != durafs::model::Persistence::Posix {
        opt("--model", args.volume.model.to_string());
    }
    if args.at != "every" {
        opt("--at", args.at.clone());
    }
    if args.max_states != 10_000 {
        opt("--max-states", args.max_states.to_string());
    }
    if args.seed != 0 {
        opt("--seed", args.seed.to_string());
    }
    if args.sector != 512 {
        opt("--sector", args.sector.to_string());
    }
    opt("--only", id.to_string());
    opt(
        "--keep",
        args.keep
            .as_ref()
            .map_or_else(|| "durafs-states".to_string(), |k| k.display().to_string()),
    );
    opt("--check", args.check.clone());
    if let Some(t) = &args.replay {
        opt("--replay", t.display().to_string());
    }
    if args.no_torn {
        c.push("--no-torn".to_string());
    }
    if args.replay.is_none() {
        c.push("--".to_string());
        c.extend(args.command.iter().map(|a| shell_quote(a)));
    }
    c.join(" ")
}

fn failure(out: &mut String, args: &ExploreArgs, f: &Checked) {
    let at = match &f.after {
        Some(ev) => format!("crash after {ev}"),
        None => "crash before the first operation".to_string(),
    };
    let _ = writeln!(out, "\nstate {} FAILED: {at}", f.state);
    let marks = if f.marks.is_empty() {
        "none".to_string()
    } else {
        f.marks
            .iter()
            .map(|m| format!("{m:?}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let _ = writeln!(out, "  marks recorded before the crash: {marks}");
    let _ = writeln!(out, "  crash state: {} (seed {})", f.description, f.seed);
    if f.ops.is_empty() {
        let _ = writeln!(out, "  nothing was unsynced");
    } else {
        let _ = writeln!(out, "  unsynced operations:");
        for o in &f.ops {
            let _ = writeln!(out, "    {:<14} {}", o.fate, o.op);
        }
    }
    let _ = writeln!(out, "  check exited {}:", f.exit);
    let lines: Vec<&str> = f.output.lines().collect();
    for l in lines.iter().take(OUTPUT_LINES) {
        let _ = writeln!(out, "    | {l}");
    }
    if lines.len() > OUTPUT_LINES {
        let _ = writeln!(out, "    | ... ({} more lines)", lines.len() - OUTPUT_LINES);
    }
    let _ = writeln!(out, "  reproduce: {}", reproduce(args, f.state));
}

/// The report as text.
pub fn text(args: &ExploreArgs, r: &Exploration) -> String {
    let mut out = String::new();
    let c = &r.settings;
    let _ = writeln!(
        out,
        "durafs explore {}: model {}, crash points {}, at most {} states, seed {}, {}-byte sectors{}, {} jobs",
        c.version,
        c.model,
        c.at,
        c.max_states,
        c.seed,
        c.sector,
        if c.torn { "" } else { ", no torn writes" },
        c.jobs
    );
    let s = &r.stats;
    let _ = writeln!(
        out,
        "durafs explore: {} operations recorded, {} crash points, {} crash states enumerated{}, {} distinct{}",
        s.events,
        s.points,
        s.enumerated,
        if s.enumerated == s.total {
            String::new()
        } else {
            format!(" of {}", s.total)
        },
        s.distinct,
        if s.sampled {
            " (sampled: raise --max-states to check more)"
        } else {
            ""
        }
    );
    let _ = writeln!(
        out,
        "durafs explore: {} states checked in {:.2} s ({:.0} states/s): {} failed",
        r.states_tried, r.seconds, r.states_per_second, r.states_failed
    );
    for f in r.failures.iter().take(args.show) {
        failure(&mut out, args, f);
    }
    if r.failures.len() > args.show {
        let _ = writeln!(out, "\nand {} more failures:", r.failures.len() - args.show);
        for f in &r.failures[args.show..] {
            let at = f.after.as_deref().unwrap_or("(before the first operation)");
            let _ = writeln!(
                out,
                "  state {}: after {at}: {} (exit {})",
                f.state, f.description, f.exit
            );
        }
    }
    out
}
