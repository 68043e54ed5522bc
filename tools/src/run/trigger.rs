//! Where `durafs run` cuts the power, and the tripwire that watches for it.

use durafs::fs::Tripwire;
use durafs::trace::TraceOp;
use regex::Regex;
use std::fmt;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::Sender;

/// Before or after the operation takes effect.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum When {
    Before,
    After,
}

/// A cut point.
#[derive(Clone, Debug)]
pub enum Trigger {
    /// After trace event N (numbered as in a trace and in `explore`'s
    /// report: calls that took effect, marks included).
    AfterOps(u64),
    /// When the N-th fsync, fdatasync, fsyncdir or sync has taken effect.
    AfterFsync(u64),
    /// Before or after the `nth` operation named `op` (any, when `None`)
    /// on a path matching `re`.
    Op {
        when: When,
        op: Option<String>,
        re: Regex,
        nth: u64,
    },
    /// T milliseconds after the program started.
    AfterMs(u64),
    /// A uniformly chosen operation (seeded).
    Random,
    /// When the program exits on its own.
    Exit,
}

impl fmt::Display for Trigger {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Trigger::AfterOps(n) => write!(f, "after-ops={n}"),
            Trigger::AfterFsync(n) => write!(f, "after-fsync={n}"),
            Trigger::Op { when, op, re, nth } => write!(
                f,
                "{}:{}:{}:nth={nth}",
                if *when == When::Before {
                    "before"
                } else {
                    "after"
                },
                op.as_deref().unwrap_or("any"),
                re.as_str()
            ),
            Trigger::AfterMs(t) => write!(f, "after-ms={t}"),
            Trigger::Random => f.write_str("random"),
            Trigger::Exit => f.write_str("exit"),
        }
    }
}

/// One grammar with faults: the call-based triggers are
/// [`durafs::faults::at::At`] (`fault add cut --at TRIGGER`); `after-ms`,
/// `random` and `exit` are `run`'s own.
impl std::str::FromStr for Trigger {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        use durafs::faults::at::At;
        if let Some(n) = s.strip_prefix("after-ms=") {
            return n
                .parse()
                .map(Trigger::AfterMs)
                .map_err(|_| format!("after-ms: {n:?} is not a number of milliseconds"));
        }
        match s {
            "random" => return Ok(Trigger::Random),
            "exit" => return Ok(Trigger::Exit),
            _ => {}
        }
        let at: At = s.parse().map_err(|e: String| {
            if e.starts_with("unknown trigger") {
                format!(
                    "unknown trigger {s:?} (expected after-ops=N, after-fsync=N, \
                     before:OP:REGEX[:nth=K], after:OP:REGEX[:nth=K], after-ms=T, random or exit)"
                )
            } else {
                e
            }
        })?;
        Ok(match at {
            At::AfterOps(n) => Trigger::AfterOps(n),
            At::AfterFsync(n) => Trigger::AfterFsync(n),
            At::Op {
                when,
                op,
                pattern,
                nth,
            } => Trigger::Op {
                when: match when {
                    durafs::faults::When::Before => When::Before,
                    durafs::faults::When::After => When::After,
                },
                op,
                re: Regex::new(&pattern).map_err(|e| format!("path pattern {pattern:?}: {e}"))?,
                nth,
            },
        })
    }
}

/// What the tripwire saw when it fired.
#[derive(Clone, Debug)]
pub struct Hit {
    /// Program operations so far.
    pub count: u64,
    /// The operation, e.g. `fsync /log` (`None` for a timer or the exit).
    pub op: Option<String>,
    pub when: When,
}

/// What the run's main thread waits for.
#[derive(Debug)]
pub enum Event {
    Hit(Hit),
    /// The program (the process `durafs run` started) exited.
    Exited(std::io::Result<std::process::ExitStatus>),
    /// A `--fault` cut the power.
    FaultCut,
}

/// Watches a volume's calls for a trigger; sends one [`Event::Hit`].
pub struct Wire {
    trigger: Trigger,
    fired: AtomicBool,
    matched: AtomicU64,
    fsyncs: AtomicU64,
    tx: Mutex<Sender<Event>>,
}

impl Wire {
    /// A tripwire for `trigger`; triggers outside the calls (`after-ms`,
    /// `exit`, `random` before it is resolved) never fire from it.
    pub fn new(trigger: Trigger, tx: Sender<Event>) -> Wire {
        Wire {
            trigger,
            fired: AtomicBool::new(false),
            matched: AtomicU64::new(0),
            fsyncs: AtomicU64::new(0),
            tx: Mutex::new(tx),
        }
    }

    fn fire(&self, count: u64, op: &TraceOp, paths: &[String], when: When) -> bool {
        if self.fired.swap(true, Ordering::SeqCst) {
            return false;
        }
        let hit = Hit {
            count,
            op: Some(op.summary(paths)),
            when,
        };
        if let Ok(tx) = self.tx.lock() {
            let _ = tx.send(Event::Hit(hit));
        }
        true
    }

    /// A mark matches its label; other calls any of their paths (a call
    /// without paths, `sync`, a pattern matching the empty string). `any`
    /// matches program operations only (not marks or writebacks).
    fn matches(&self, want: &Option<String>, re: &Regex, op: &TraceOp, paths: &[String]) -> bool {
        let on_paths =
            paths.iter().any(|p| re.is_match(p)) || (paths.is_empty() && re.is_match(""));
        match (want.as_deref(), op) {
            (Some("mark"), TraceOp::Mark { label }) => re.is_match(label),
            (Some(w), _) => w == op.name() && on_paths,
            (None, _) => op.is_user_op() && on_paths,
        }
    }
}

impl Wire {
    /// For an OP trigger at `at`: counts a matching call; true at the nth.
    fn nth_match(&self, at: When, op: &TraceOp, paths: &[String]) -> bool {
        match &self.trigger {
            Trigger::Op {
                when,
                op: want,
                re,
                nth,
            } if *when == at => {
                self.matches(want, re, op, paths)
                    && self.matched.fetch_add(1, Ordering::SeqCst) + 1 == *nth
            }
            _ => false,
        }
    }
}

impl Tripwire for Wire {
    fn before(&self, count: u64, op: &TraceOp, paths: &[String]) -> bool {
        let hit = match &self.trigger {
            // Event N took effect but its `after` did not fire (another
            // thread's event came first): cut before the next call.
            Trigger::AfterOps(n) => count >= *n,
            _ => self.nth_match(When::Before, op, paths),
        };
        hit && self.fire(count, op, paths, When::Before)
    }

    fn after(&self, count: u64, op: &TraceOp, paths: &[String]) -> bool {
        let hit = match &self.trigger {
            Trigger::AfterOps(n) => count >= *n,
            Trigger::AfterFsync(n) => {
                op.is_persistence_point() && self.fsyncs.fetch_add(1, Ordering::SeqCst) + 1 == *n
            }
            _ => self.nth_match(When::After, op, paths),
        };
        hit && self.fire(count, op, paths, When::After)
    }

    fn frozen(&self, _count: u64) {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    fn parse(s: &str) -> Trigger {
        s.parse().unwrap()
    }

    #[test]
    fn every_trigger_kind_parses_and_prints() {
        for s in [
            "after-ops=3",
            "after-fsync=2",
            "before:rename:^/data$:nth=1",
            "before:close:^/data$:nth=1",
            "after:write:/log:nth=2",
            "after:any:a:b:nth=3",
            "after-ms=250",
            "random",
            "exit",
        ] {
            assert_eq!(parse(s).to_string(), s);
        }
        assert_eq!(
            parse("before:fsync:log").to_string(),
            "before:fsync:log:nth=1"
        );
        for (bad, why) in [
            ("after-ops=0", "positive"),
            ("after-fsync=x", "positive"),
            ("before:frob:x", "unknown operation"),
            ("after:write:(", "path pattern"),
            ("after:write:x:nth=0", "positive"),
            ("sometime", "unknown trigger"),
        ] {
            let e = bad.parse::<Trigger>().unwrap_err();
            assert!(e.contains(why), "{bad}: {e}");
        }
    }

    fn write(path: &str) -> (TraceOp, Vec<String>) {
        (
            TraceOp::Write {
                ino: 2,
                offset: 0,
                data: durafs::trace::Data(b"x".to_vec().into()),
                t: Default::default(),
            },
            vec![path.to_string()],
        )
    }

    #[test]
    fn a_path_trigger_fires_once_at_the_nth_match() {
        let (tx, rx) = mpsc::channel();
        let w = Wire::new(parse("after:write:^/log$:nth=2"), tx);
        let (op, log) = write("/log");
        let (_, other) = write("/other");
        assert!(!w.after(1, &op, &log));
        assert!(!w.after(2, &op, &other));
        assert!(
            !w.before(3, &op, &log),
            "before does not count for an after trigger"
        );
        assert!(w.after(3, &op, &log));
        assert!(!w.after(4, &op, &log), "fires once");
        let Ok(Event::Hit(hit)) = rx.try_recv() else {
            panic!("no hit sent");
        };
        assert_eq!(
            (hit.count, hit.op.as_deref()),
            (3, Some("write /log [0, 1)"))
        );
    }

    #[test]
    fn a_mark_trigger_matches_the_label() {
        let (tx, rx) = mpsc::channel();
        let w = Wire::new(parse("after:mark:^rec2$"), tx);
        let mark = |l: &str| TraceOp::Mark {
            label: l.to_string(),
        };
        assert!(!w.after(3, &mark("rec1"), &[]));
        assert!(w.after(5, &mark("rec2"), &[]));
        let Ok(Event::Hit(hit)) = rx.try_recv() else {
            panic!("no hit sent");
        };
        assert_eq!(hit.op.as_deref(), Some("mark \"rec2\""));
        let (tx, _rx) = mpsc::channel();
        let any = Wire::new(parse("after:any:."), tx);
        assert!(
            !any.after(1, &mark("x"), &[]),
            "any means program operations"
        );
    }

    #[test]
    fn after_ops_counts_events_and_cuts_before_a_call_that_finds_it_passed() {
        let (tx, _rx) = mpsc::channel();
        let w = Wire::new(parse("after-ops=2"), tx);
        let (op, p) = write("/f");
        assert!(!w.before(0, &op, &p));
        assert!(!w.after(1, &op, &p));
        // A failed call is no event: the count stays at 1.
        assert!(!w.before(1, &op, &p));
        assert!(!w.after(1, &op, &p));
        // Event 2 took effect on another thread; this call sees it passed.
        assert!(w.before(2, &op, &p));
    }

    #[test]
    fn after_fsync_counts_every_persistence_call() {
        let (tx, _rx) = mpsc::channel();
        let w = Wire::new(parse("after-fsync=2"), tx);
        let dir = TraceOp::Fsyncdir { dir: 1 };
        let (op, p) = write("/f");
        assert!(!w.after(1, &dir, &p));
        assert!(!w.after(2, &op, &p));
        assert!(w.after(3, &TraceOp::Sync, &[]));
    }
}
