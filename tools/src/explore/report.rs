//! The exploration report: a summary, then each vulnerability with its fix
//! and its smallest member states (the crash point, the fate of every
//! unsynced operation, the check's output and a command that reproduces
//! it), then the failures nothing lost explains.

use super::{Checked, Exploration, Found, NoLoss};
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
    if args.check_timeout != 300.0 {
        opt("--check-timeout", args.check_timeout.to_string());
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

/// Where a crash came: `after EVENT`, or before the first operation.
fn when(after: Option<&str>) -> String {
    after.map_or_else(
        || "before the first operation".to_string(),
        |a| format!("after {a}"),
    )
}

fn failure(out: &mut String, args: &ExploreArgs, f: &Checked) {
    let at = format!("crash {}", when(f.after.as_deref()));
    let _ = writeln!(out, "\n  state {} FAILED: {at}", f.state);
    let marks = if f.marks.is_empty() {
        "none".to_string()
    } else {
        f.marks
            .iter()
            .map(|m| format!("{m:?}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let _ = writeln!(out, "    marks recorded before the crash: {marks}");
    let _ = writeln!(out, "    crash state: {} (seed {})", f.description, f.seed);
    let lost: Vec<_> = f.ops.iter().filter(|o| o.fate != "kept").collect();
    let kept = f.ops.len() - lost.len();
    if f.ops.is_empty() {
        let _ = writeln!(out, "    nothing was unsynced");
    } else if lost.is_empty() {
        let _ = writeln!(
            out,
            "    {}, all kept",
            count(kept, "unsynced operation", "unsynced operations")
        );
    } else {
        let _ = writeln!(out, "    unsynced operations not kept whole:");
        for o in lost {
            let at =
                o.at.as_ref()
                    .map_or_else(String::new, |a| format!(" (at {a})"));
            let _ = writeln!(out, "      {:<14} {}{at}", o.fate, o.op);
        }
        if kept > 0 {
            let _ = writeln!(out, "      and {} kept", count(kept, "other", "others"));
        }
    }
    if f.timed_out {
        let _ = writeln!(
            out,
            "    check timed out after {} s (--check-timeout) and was killed:",
            args.check_timeout
        );
    } else {
        let _ = writeln!(out, "    check exited {}:", f.exit);
    }
    let lines: Vec<&str> = f.output.lines().collect();
    for l in lines.iter().take(OUTPUT_LINES) {
        let _ = writeln!(out, "      | {l}");
    }
    if lines.len() > OUTPUT_LINES {
        let _ = writeln!(
            out,
            "      | ... ({} more lines)",
            lines.len() - OUTPUT_LINES
        );
    }
    let _ = writeln!(out, "    reproduce: {}", reproduce(args, f.state));
}

/// `N things` with the plural when N is not 1.
fn count(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// The members after the first `show`, by number.
fn others(out: &mut String, show: usize, members: &[Checked]) {
    if members.len() > show {
        let ids: Vec<String> = members[show..]
            .iter()
            .map(|c| c.state.to_string())
            .collect();
        let _ = writeln!(out, "\n  other states: {}", ids.join(", "));
    }
}

fn vulnerability(out: &mut String, args: &ExploreArgs, i: usize, of: usize, f: &Found) {
    let v = &f.vulnerability;
    let _ = writeln!(
        out,
        "\nvulnerability {i} of {of} ({}): {}",
        v.kind, v.summary
    );
    let _ = writeln!(out, "  fix: {}", v.fix);
    let own: Vec<u64> = v.lost.iter().filter_map(|f| f.event).collect();
    let repeats: Vec<String> = v
        .events
        .iter()
        .filter(|e| !own.contains(e))
        .map(|e| format!("#{e}"))
        .collect();
    let located: Vec<String> = v
        .lost
        .iter()
        .chain(&v.kept)
        .filter_map(|f| f.at.as_ref().map(|at| format!("{} at {at}", f.op)))
        .collect();
    for l in &located {
        let _ = writeln!(out, "  where: {l}");
    }
    if !repeats.is_empty() {
        let _ = writeln!(out, "  the same call repeated: also {}", repeats.join(", "));
    }
    let first = when(v.first_after.as_deref());
    let _ = writeln!(
        out,
        "  {} at {}, the first {first}{}",
        count(v.states.len(), "failing state", "failing states"),
        count(v.points.len(), "crash point", "crash points"),
        if v.minimal {
            ""
        } else {
            " (not minimised: raise --explain-checks)"
        }
    );
    for c in f.members.iter().take(args.show) {
        failure(out, args, c);
        if !v.points.contains(&c.point) {
            let _ = writeln!(
                out,
                "    (the same files as a crash {first} leaves, the one this vulnerability explains)"
            );
        }
    }
    others(out, args.show, &f.members);
}

fn no_loss(out: &mut String, args: &ExploreArgs, n: &NoLoss) {
    let Some(last) = n.members.iter().max_by_key(|c| c.point) else {
        return;
    };
    let upto = when(last.after.as_deref());
    let _ = writeln!(
        out,
        "\n{} with nothing lost: every unsynced operation kept (crash points up to {upto}).",
        count(n.states.len(), "state fails", "states fail"),
    );
    let _ = writeln!(
        out,
        "  The program's own intermediate state fails the check, whatever the disk keeps: either its update is not atomic (a crash between these steps always leaves such a state), or the check expects more than the program had done at that point (check only what it promised before the crash: its marks, in $DURAFS_MARKS)."
    );
    for c in n.members.iter().take(args.show) {
        failure(out, args, c);
    }
    others(out, args.show, &n.members);
}

/// The report as text: how it was made, what was checked, then the
/// vulnerabilities, then the failures nothing lost explains.
pub fn text(args: &ExploreArgs, r: &Exploration) -> String {
    let mut out = String::new();
    let c = &r.settings;
    let _ = writeln!(
        out,
        "durafs explore {}: model {}, crash points {}, at most {} states, seed {}, {}-byte sectors{}, {} jobs{}",
        c.version,
        c.model,
        c.at,
        c.max_states,
        c.seed,
        c.sector,
        if c.torn { "" } else { ", no torn writes" },
        c.jobs,
        c.shard
            .as_ref()
            .map_or_else(String::new, |s| format!(", shard {s}"))
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
    let _ = write!(
        out,
        "durafs explore: {} states checked in {:.2} s ({:.0} states/s): {} failed",
        r.states_tried, r.seconds, r.states_per_second, r.states_failed
    );
    if r.states_failed > 0 && r.interrupted.is_none() {
        let _ = write!(
            out,
            ": {}, {} with nothing lost; {} more checks to explain them",
            count(r.vulnerabilities.len(), "vulnerability", "vulnerabilities"),
            r.no_loss.states.len(),
            r.explain_checks
        );
    }
    out.push('\n');
    if r.states_tried > 0 {
        let b = &r.durafs_breakdown_ms_per_state;
        let _ = writeln!(
            out,
            "durafs explore: per state, durafs {:.3} ms (enumerate {:.3}, materialise {:.3}, schedule {:.3}) and the check {:.3} ms; {} trees patched, {} written afresh",
            r.durafs_ms_per_state,
            b.enumerate,
            b.materialise,
            b.schedule,
            r.check_ms_per_state,
            r.timings.trees_patched,
            r.timings.trees_fresh
        );
    }
    if let Some(sig) = &r.interrupted {
        let _ = writeln!(
            out,
            "durafs explore: interrupted by {sig}: this covers the states checked until then; failures are listed unexplained"
        );
        for f in r.failures.iter().take(args.show.max(5)) {
            failure(&mut out, args, f);
        }
        others(&mut out, args.show.max(5), &r.failures);
    }
    let of = r.vulnerabilities.len();
    for (i, f) in r.vulnerabilities.iter().enumerate() {
        vulnerability(&mut out, args, i + 1, of, f);
    }
    no_loss(&mut out, args, &r.no_loss);
    out
}
