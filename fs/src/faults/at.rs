//! Triggers written as `durafs run --cut` writes them, the one grammar of
//! "where" shared by `run` and faults (`fault add cut --at
//! 'after:fsync:^/wal:nth=3'` is `fault add cut --when after --op fsync
//! --path '^/wal' --nth 3`).
//!
//! ```text
//! after-ops=N                  after trace event #N
//! after-fsync=N                once the N-th fsync, fdatasync, fsyncdir or sync took effect
//! before:OP:REGEX[:nth=K]      before the K-th OP on a path matching REGEX (OP: a name or any)
//! after:OP:REGEX[:nth=K]       after it took effect
//! ```

use super::args::When;
use crate::trace::TraceOp;
use std::fmt;

/// A call-based trigger.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum At {
    AfterOps(u64),
    AfterFsync(u64),
    Op {
        when: When,
        /// `None`: any call of a program.
        op: Option<String>,
        pattern: String,
        nth: u64,
    },
}

/// The operations `after-fsync=N` counts.
pub const PERSISTENCE_POINTS: &[&str] = &["fsync", "fdatasync", "fsyncdir", "sync"];

fn positive(what: &str, v: &str) -> Result<u64, String> {
    match v.parse::<u64>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(format!("{what}: {v:?} is not a positive number")),
    }
}

impl std::str::FromStr for At {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if let Some(n) = s.strip_prefix("after-ops=") {
            return positive("after-ops", n).map(At::AfterOps);
        }
        if let Some(n) = s.strip_prefix("after-fsync=") {
            return positive("after-fsync", n).map(At::AfterFsync);
        }
        let (when, rest) = if let Some(r) = s.strip_prefix("before:") {
            (When::Before, r)
        } else if let Some(r) = s.strip_prefix("after:") {
            (When::After, r)
        } else {
            return Err(format!(
                "unknown trigger {s:?} (expected after-ops=N, after-fsync=N, \
                 before:OP:REGEX[:nth=K] or after:OP:REGEX[:nth=K])"
            ));
        };
        let (op, rest) = rest.split_once(':').unwrap_or((rest, ""));
        let op = match op {
            "any" | "*" => None,
            o if TraceOp::NAMES.contains(&o) => Some(o.to_string()),
            o => {
                return Err(format!(
                    "unknown operation {o:?} (expected any or one of {})",
                    TraceOp::NAMES.join(", ")
                ));
            }
        };
        let (pattern, nth) = match rest.rsplit_once(":nth=") {
            Some((p, k)) => (p, positive("nth", k)?),
            None => (rest, 1),
        };
        regex::Regex::new(pattern).map_err(|e| format!("path pattern {pattern:?}: {e}"))?;
        Ok(At::Op {
            when,
            op,
            pattern: pattern.to_string(),
            nth,
        })
    }
}

impl fmt::Display for At {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            At::AfterOps(n) => write!(f, "after-ops={n}"),
            At::AfterFsync(n) => write!(f, "after-fsync={n}"),
            At::Op {
                when,
                op,
                pattern,
                nth,
            } => write!(
                f,
                "{}:{}:{pattern}:nth={nth}",
                if *when == When::Before {
                    "before"
                } else {
                    "after"
                },
                op.as_deref().unwrap_or("any"),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_triggers_parse_and_print() {
        for s in [
            "after-ops=3",
            "after-fsync=2",
            "before:rename:^/data$:nth=1",
            "after:write:/log:nth=2",
            "after:any:a:b:nth=3",
        ] {
            assert_eq!(s.parse::<At>().map(|a| a.to_string()), Ok(s.to_string()));
        }
        for (bad, why) in [
            ("after-ops=0", "positive"),
            ("before:frob:x", "unknown operation"),
            ("after:write:(", "path pattern"),
            ("sometime", "unknown trigger"),
        ] {
            let e = bad.parse::<At>().unwrap_err();
            assert!(e.contains(why), "{bad}: {e}");
        }
    }
}
