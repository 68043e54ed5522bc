//! The process's logger: `env_logger` (`RUST_LOG`), with two additions for
//! commands that draw a progress bar (`demo`): records print above the bar
//! instead of through it, and the bundled engines' warnings (damaged
//! files found by recovery, expected in crash tests) can be counted and
//! held back, to be summarised at the end (`-v` shows them as they come).

use indicatif::ProgressBar;
use log::{Level, Log, Metadata, Record};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// Target prefix of the engines' log records (their crate).
const ENGINES: &str = "durafs_engines";
/// Target of the volume's "fault fired" records: the demo arms faults on
/// purpose (its fsync-error rows), so they are expected there too.
const FAULTS: &str = "durafs::fs::faults";

/// What the logger shares with the command running.
pub struct Shared {
    /// Count the engines' warnings.
    counting: AtomicBool,
    /// ... and print them too.
    verbose: AtomicBool,
    warnings: AtomicUsize,
    /// A bar to print above.
    bar: Mutex<Option<ProgressBar>>,
}

impl Shared {
    const fn new() -> Shared {
        Shared {
            counting: AtomicBool::new(false),
            verbose: AtomicBool::new(false),
            warnings: AtomicUsize::new(0),
            bar: Mutex::new(None),
        }
    }
}

static SHARED: Shared = Shared::new();

struct Logger {
    inner: env_logger::Logger,
    shared: &'static Shared,
}

impl Logger {
    /// Whether `record` is an engine warning held back (counted).
    fn held_back(&self, record: &Record<'_>) -> bool {
        let s = self.shared;
        if record.level() != Level::Warn
            || !(record.target().starts_with(ENGINES) || record.target() == FAULTS)
            || !s.counting.load(Ordering::Relaxed)
        {
            return false;
        }
        s.warnings.fetch_add(1, Ordering::Relaxed);
        !s.verbose.load(Ordering::Relaxed)
    }
}

impl Log for Logger {
    fn enabled(&self, m: &Metadata<'_>) -> bool {
        self.inner.enabled(m)
    }

    fn log(&self, record: &Record<'_>) {
        if !self.inner.matches(record) || self.held_back(record) {
            return;
        }
        let bar = self.shared.bar.lock().ok().and_then(|b| b.clone());
        match bar {
            Some(bar) => bar.suspend(|| self.inner.log(record)),
            None => self.inner.log(record),
        }
    }

    fn flush(&self) {
        self.inner.flush();
    }
}

/// Installs the logger: `RUST_LOG`, else `default_filter`.
pub fn init(default_filter: &str) {
    let inner =
        env_logger::Builder::from_env(env_logger::Env::default().default_filter_or(default_filter))
            // Milliseconds: a daemon's log times a cut's phases.
            .format_timestamp_millis()
            .build();
    let max = inner.filter();
    if log::set_boxed_logger(Box::new(Logger {
        inner,
        shared: &SHARED,
    }))
    .is_ok()
    {
        log::set_max_level(max);
    }
}

/// From now on, count the engines' warnings; print them only if `verbose`.
pub fn count_engine_warnings(verbose: bool) {
    SHARED.verbose.store(verbose, Ordering::Relaxed);
    SHARED.counting.store(true, Ordering::Relaxed);
}

/// The engines' warnings counted so far.
pub fn engine_warnings() -> usize {
    SHARED.warnings.load(Ordering::Relaxed)
}

/// Print records above `bar` while it is drawn (`None`: no bar).
pub fn above(bar: Option<ProgressBar>) {
    if let Ok(mut b) = SHARED.bar.lock() {
        *b = bar;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::progress::tests::Shared as Sink;

    fn logger(shared: &'static Shared) -> (Logger, Sink) {
        let sink = Sink::default();
        let inner = env_logger::Builder::new()
            .parse_filters("warn")
            .target(env_logger::Target::Pipe(Box::new(sink.clone())))
            .build();
        (Logger { inner, shared }, sink)
    }

    fn warn(l: &Logger, target: &str, msg: &str) {
        l.log(
            &Record::builder()
                .level(Level::Warn)
                .target(target)
                .args(format_args!("{msg}"))
                .build(),
        );
    }

    fn text(s: &Sink) -> String {
        s.text()
    }

    #[test]
    fn engine_warnings_are_counted_and_held_back_unless_verbose() {
        let shared: &'static Shared = Box::leak(Box::new(Shared::new()));
        let (l, sink) = logger(shared);
        warn(&l, "durafs_engines::lsm::wal", "before counting");
        assert!(text(&sink).contains("before counting"));
        shared.counting.store(true, Ordering::Relaxed);
        warn(&l, "durafs_engines::lsm::wal", "torn record");
        warn(&l, "durafs::fs", "not an engine's");
        let t = text(&sink);
        assert!(!t.contains("torn record"), "{t}");
        assert!(t.contains("not an engine's"), "{t}");
        assert_eq!(shared.warnings.load(Ordering::Relaxed), 1);
        shared.verbose.store(true, Ordering::Relaxed);
        warn(&l, "durafs_engines::segment", "sidecar mismatch");
        assert!(text(&sink).contains("sidecar mismatch"));
        assert_eq!(shared.warnings.load(Ordering::Relaxed), 2);
    }
}
