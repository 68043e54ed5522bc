//! `durafs demo` on the command line: the plan from the arguments, an
//! `indicatif` progress bar over every planned trial (plain lines now and
//! then when stderr is not a terminal), the engines' warnings counted and
//! summarised at the end (`-v` shows them above the bar), the table.

use super::{Plan, Step, planned, rows, run_all, table, trial};
use crate::exit::Code;
use crate::progress::Progress;
use crate::{DemoArgs, Result, err, logging};

pub fn demo(args: DemoArgs) -> Result<Code> {
    let model = args.model;
    let plan = Plan {
        work: trial::Workload {
            puts: args.puts.max(1),
            model,
            ..Default::default()
        },
        dir: args.dir,
        points: args.points.max(1),
        seeds: args.seeds,
        enum_cap: args.enum_cap,
        seed: args.seed,
        ..Default::default()
    };
    let rows = rows::all();
    let started = std::time::Instant::now();
    let total: usize = (0..rows.len()).map(|i| planned(i, &plan)).sum();
    let progress = Progress::stderr("durafs demo", "crash states", total as u64);
    logging::count_engine_warnings(args.verbose);
    logging::above(Some(progress.bar()));
    let step = |s: Step<'_>| match s {
        Step::Trial(row) => progress.inc(row),
        Step::Enumerated(n) => progress.resize(n as i64 - plan.enum_cap as i64),
    };
    let results = run_all(&rows, &plan, &step);
    logging::above(None);
    progress.finish();
    let results = results.map_err(|e| err(e.0))?;
    eprintln!(
        "durafs demo: done: {} rows, {} crash states in {:.1}s (seed {})",
        results.len(),
        results.iter().map(|r| r.states_tried).sum::<usize>(),
        started.elapsed().as_secs_f64(),
        args.seed
    );
    let warnings = logging::engine_warnings();
    if warnings > 0 && !args.verbose {
        eprintln!(
            "durafs demo: {warnings} warnings: recovery found damaged files and armed faults \
             fired, as crash tests expect (durafs demo -v shows them)"
        );
    }
    if args.json {
        let v = serde_json::to_string_pretty(&results).map_err(|e| err(e.to_string()))?;
        println!("{v}");
    } else {
        println!("model: {model} (crash states as durafs predicts them under it)");
        print!("{}", table(&results));
    }
    let odd: Vec<String> = results
        .iter()
        .filter(|r| !r.as_expected())
        .map(|r| format!("{} / {}", r.engine, r.setting))
        .collect();
    if odd.is_empty() {
        Ok(Code::Success)
    } else {
        eprintln!(
            "durafs: unexpected results (a bug to find): {}",
            odd.join(", ")
        );
        Ok(Code::Findings)
    }
}
