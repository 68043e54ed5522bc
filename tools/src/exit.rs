//! durafs's exit codes: one table, in one place, for every command.
//!
//! The codes a command can end with are chosen so that durafs's own
//! failures never read as a verdict: `run` exits 0 or 1 by its check's
//! verdict and reports the check's own exit code in its output, so a check
//! that exits 2 does not look like a usage error. The table is printed in
//! `durafs --help` (after the commands) and in the README ("Exit status");
//! a test keeps the README's copy equal to [`TABLE`].

use std::process::ExitCode;

/// How a durafs command ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Code {
    /// Success: no findings.
    Success,
    /// Findings: a check failed (`run`, `explore`), a demo row gave an
    /// unexpected result, `calibrate` found false negatives.
    Findings,
    /// Usage error: bad arguments (clap's, or found after parsing).
    Usage,
    /// durafs itself failed: set-up, mount, I/O, the daemon.
    Failed,
    /// The program under test failed where it had to succeed (e.g. a
    /// recording run or a calibration workload).
    Program,
    /// Interrupted by SIGINT (Ctrl-C).
    Interrupted,
    /// Stopped by SIGTERM.
    Terminated,
}

/// Every code, its number and its meaning, in order.
pub const TABLE: [(Code, &str); 7] = [
    (Code::Success, "success: no findings"),
    (Code::Findings, "findings: a check failed"),
    (Code::Usage, "usage error (bad arguments)"),
    (
        Code::Failed,
        "durafs failed: set-up, mount, I/O or the daemon",
    ),
    (
        Code::Program,
        "the program under test failed where it had to succeed",
    ),
    (Code::Interrupted, "interrupted by SIGINT (Ctrl-C)"),
    (Code::Terminated, "stopped by SIGTERM"),
];

impl Code {
    /// The process exit status.
    pub fn number(self) -> u8 {
        match self {
            Code::Success => 0,
            Code::Findings => 1,
            Code::Usage => 2,
            Code::Failed => 3,
            Code::Program => 4,
            Code::Interrupted => 130,
            Code::Terminated => 143,
        }
    }

    /// The code of a command stopped by signal `sig` (128 + the signal, as
    /// shells report it): SIGINT and SIGTERM have their own entries; any
    /// other signal reads as SIGTERM's.
    pub fn from_signal(sig: i32) -> Code {
        if sig == libc::SIGINT {
            Code::Interrupted
        } else {
            Code::Terminated
        }
    }
}

impl From<Code> for ExitCode {
    fn from(c: Code) -> ExitCode {
        ExitCode::from(c.number())
    }
}

/// The table as text for `durafs --help`.
pub fn help() -> String {
    let mut out = String::from("Exit status:\n");
    for (code, what) in TABLE {
        out.push_str(&format!("  {:>3}  {what}\n", code.number()));
    }
    out.push_str(
        "`run` exits 0 or 1 by its check's verdict; its output gives the check's own code.",
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_distinct_and_in_the_help() {
        let mut numbers: Vec<u8> = TABLE.iter().map(|(c, _)| c.number()).collect();
        numbers.dedup();
        assert_eq!(numbers, [0, 1, 2, 3, 4, 130, 143]);
        let h = help();
        for (c, what) in TABLE {
            assert!(h.contains(&format!("{:>3}  {what}", c.number())), "{h}");
        }
        assert_eq!(Code::from_signal(libc::SIGINT).number(), 130);
        assert_eq!(Code::from_signal(libc::SIGTERM).number(), 143);
    }

    /// The README's table is this one.
    #[test]
    fn the_readme_lists_the_same_table() {
        let readme = include_str!("../../README.md");
        for (c, what) in TABLE {
            let row = format!("| {} | {what} |", c.number());
            assert!(readme.contains(&row), "README lacks the row {row:?}");
        }
    }
}
