//! The grammar of the control commands, one definition for the control
//! file and the `durafs` command line: clap derives, parsed here from the
//! command's shell-split (`shlex`) words and flattened into the CLI's
//! `cut` and `run`. So `--policy=torn` and `--policy torn` mean the same
//! everywhere, and a bad value gets clap's message in both.

use crate::model::crash::{CrashOptions, Policy};
use clap::builder::TypedValueParser;

/// `--policy`'s values (listed in `--help`).
pub fn policy_parser() -> impl TypedValueParser<Value = Policy> {
    clap::builder::PossibleValuesParser::new(Policy::ALL.map(Policy::name))
        .try_map(|s| s.parse::<Policy>())
}

/// A positive count (also the faults' grammar's).
pub(crate) fn positive(s: &str) -> Result<u64, String> {
    match s.parse::<u64>() {
        Ok(0) => Err("must be positive".into()),
        Ok(n) => Ok(n),
        Err(e) => Err(e.to_string()),
    }
}

/// A probability within 0..=1 (also the faults' grammar's).
pub(crate) fn probability(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(p) if (0.0..=1.0).contains(&p) => Ok(p),
        Ok(_) => Err("must be within 0..=1".into()),
        Err(e) => Err(e.to_string()),
    }
}

/// What survives a power cut: the options of the control file's `cut`,
/// `durafs cut` and `durafs run`.
#[derive(Clone, Debug, PartialEq, clap::Args)]
#[group(skip)]
pub struct PolicyArgs {
    /// What survives: drop-all, keep-all, prefix, random, torn or
    /// meta-first (`docs/durability.md`, "Policies").
    #[arg(long, default_value = "drop-all", value_parser = policy_parser())]
    pub policy: Policy,
    /// Sector size of torn writes, in bytes (at least 1).
    #[arg(long, default_value_t = 512, value_parser = positive)]
    pub sector: u64,
    /// Survival probability of each operation (random, torn) and sector,
    /// within 0..=1 (default 0.5).
    #[arg(long, value_parser = probability)]
    pub probability: Option<f64>,
    /// Fill torn sectors with garbage instead of the old bytes.
    #[arg(long)]
    pub garbage: bool,
}

impl PolicyArgs {
    /// The crash options these arguments give, with `seed`.
    pub fn options(&self, seed: u64) -> CrashOptions {
        let d = CrashOptions::default();
        CrashOptions {
            policy: self.policy,
            seed,
            sector: self.sector,
            probability: self.probability.unwrap_or(d.probability),
            garbage: self.garbage,
            rules: d.rules,
        }
    }
}

/// The control file's `cut` and `durafs cut`: the policy and the seed.
#[derive(Clone, Debug, PartialEq, clap::Args)]
#[group(skip)]
pub struct CutArgs {
    #[command(flatten)]
    pub crash: PolicyArgs,
    /// Seed of the random choices (drawn and reported when absent).
    #[arg(long)]
    pub seed: Option<u64>,
}

impl CutArgs {
    /// The control-file command these arguments stand for, e.g.
    /// `cut --policy torn --sector 512 --seed 7`.
    pub fn command_line(&self) -> String {
        let c = &self.crash;
        let mut words = vec![
            "cut".to_string(),
            format!("--policy={}", c.policy.name()),
            format!("--sector={}", c.sector),
        ];
        if let Some(seed) = self.seed {
            words.push(format!("--seed={seed}"));
        }
        if let Some(p) = c.probability {
            words.push(format!("--probability={p}"));
        }
        if c.garbage {
            words.push("--garbage".into());
        }
        // Every word is made of flag names and numbers: nothing to quote.
        words.join(" ")
    }
}

/// A control command but `mark`, whose label is the rest of the line as
/// written (free text, never shell-split).
#[derive(Debug, clap::Parser)]
#[command(
    name = ".durafs",
    no_binary_name = true,
    disable_version_flag = true,
    about = "A durafs volume's control file: write one command, read the reply."
)]
pub struct Line {
    #[command(subcommand)]
    pub command: Verb,
}

/// The commands clap parses.
#[derive(Debug, clap::Subcommand)]
pub enum Verb {
    /// The unsynced report and the volume's counters.
    Status,
    /// The volume's settings and counters alone (no report: cheap with
    /// any number of pending files).
    Volume,
    /// Make everything durable.
    Sync,
    /// Cut the power now.
    Cut(CutArgs),
    /// Arm, list or clear faults (`docs/faults.md`).
    Fault {
        #[command(subcommand)]
        verb: crate::faults::args::FaultVerb,
    },
    /// Record a promise the program made: the rest of the line, trimmed.
    Mark {
        /// The label (free text; not shell-split).
        #[arg(trailing_var_arg = true, allow_hyphen_values = true, required = true)]
        label: Vec<String>,
    },
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[test]
    fn the_grammar_is_consistent() {
        use clap::CommandFactory;
        Line::command().debug_assert();
    }

    fn parse(words: &[&str]) -> Result<Verb, clap::Error> {
        Line::try_parse_from(words).map(|l| l.command)
    }

    #[test]
    fn the_command_line_of_a_cut_parses_back_to_it() {
        for a in [
            CutArgs {
                crash: PolicyArgs {
                    policy: Policy::Torn,
                    sector: 4096,
                    probability: Some(0.25),
                    garbage: true,
                },
                seed: Some(7),
            },
            CutArgs {
                crash: PolicyArgs {
                    policy: Policy::DropAll,
                    sector: 512,
                    probability: None,
                    garbage: false,
                },
                seed: None,
            },
        ] {
            let line = a.command_line();
            let words = shlex::split(&line).expect("balanced");
            let words: Vec<&str> = words.iter().map(String::as_str).collect();
            match parse(&words) {
                Ok(Verb::Cut(b)) => assert_eq!(a, b, "{line}"),
                other => panic!("{line}: {other:?}"),
            }
        }
    }

    #[test]
    fn bad_values_get_clear_messages() {
        for (words, want) in [
            (&["cut", "--sector", "0"][..], "must be positive"),
            (&["cut", "--probability", "2"], "0..=1"),
            (&["cut", "--policy", "nope"], "meta-first"),
        ] {
            let e = parse(words).expect_err("refused").to_string();
            assert!(e.contains(want), "{words:?}: {e}");
        }
    }
}
