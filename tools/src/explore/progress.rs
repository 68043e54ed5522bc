//! Progress of the checks on stderr: an `indicatif` bar with the total and
//! an estimate of the time left on a terminal; elsewhere (CI logs, files)
//! a plain line at most every [`PLAIN_EVERY`], so a slow run is seen
//! moving without filling the log or writing terminal escapes into it.

use indicatif::{HumanDuration, ProgressBar, ProgressStyle};
use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The least time between two plain progress lines (`$DURAFS_PROGRESS_EVERY`
/// seconds overrides it).
pub const PLAIN_EVERY: Duration = Duration::from_secs(10);

fn plain_every() -> Duration {
    std::env::var("DURAFS_PROGRESS_EVERY")
        .ok()
        .and_then(|v| v.parse::<f64>().ok())
        .filter(|v| v.is_finite() && *v >= 0.0)
        .map_or(PLAIN_EVERY, Duration::from_secs_f64)
}

pub struct Progress {
    bar: Option<ProgressBar>,
    started: Instant,
    /// When the last plain line was printed.
    last: Mutex<Instant>,
    every: Duration,
    total: std::sync::atomic::AtomicUsize,
}

impl Progress {
    pub fn new() -> Progress {
        let bar = std::io::stderr().is_terminal().then(|| {
            let b = ProgressBar::new(0);
            let style = ProgressStyle::with_template(
                "durafs explore: {bar:30} {pos}/{len} states checked, {msg} ({per_sec}, {eta} left)",
            );
            if let Ok(s) = style {
                b.set_style(s);
            }
            b
        });
        let now = Instant::now();
        Progress {
            bar,
            started: now,
            last: Mutex::new(now),
            every: plain_every(),
            total: 0.into(),
        }
    }

    /// Sets the planned number of states (an upper bound).
    pub fn total(&self, n: usize) {
        use std::sync::atomic::Ordering;
        if self.total.swap(n, Ordering::Relaxed) != n {
            if let Some(b) = &self.bar {
                b.set_length(n as u64);
            }
        }
    }

    /// `done` states checked, `failed` of them failed.
    pub fn tick(&self, done: usize, failed: usize) {
        if let Some(b) = &self.bar {
            b.set_position(done as u64);
            b.set_message(format!("{failed} failed"));
            return;
        }
        let Ok(mut last) = self.last.lock() else {
            return;
        };
        if last.elapsed() < self.every {
            return;
        }
        *last = Instant::now();
        eprintln!("{}", self.line(done, failed));
    }

    /// A plain progress line.
    fn line(&self, done: usize, failed: usize) -> String {
        let total = self.total.load(std::sync::atomic::Ordering::Relaxed);
        let secs = self.started.elapsed().as_secs_f64();
        let rate = if secs > 0.0 { done as f64 / secs } else { 0.0 };
        let left = if rate > 0.0 && total > done {
            format!(
                ", about {} left",
                HumanDuration(Duration::from_secs_f64((total - done) as f64 / rate))
            )
        } else {
            String::new()
        };
        format!(
            "durafs explore: {done} of at most {total} states checked, {failed} failed, {rate:.2} states/s{left}"
        )
    }

    pub fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plain_line_has_the_counts_and_a_rate_with_decimals() {
        let p = Progress {
            bar: None,
            started: Instant::now() - Duration::from_secs(20),
            last: Mutex::new(Instant::now()),
            every: PLAIN_EVERY,
            total: 100.into(),
        };
        let l = p.line(10, 3);
        assert!(
            l.starts_with(
                "durafs explore: 10 of at most 100 states checked, 3 failed, 0.50 states/s, about "
            ),
            "{l}"
        );
    }
}
