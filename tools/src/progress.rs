//! Progress of a long command with a known total (`demo`): an `indicatif`
//! bar with the total, the rate and the ETA on a terminal; elsewhere (CI
//! logs, files) no bar and no escape or carriage return, only a plain line
//! now and then, so that a slow run is seen to move.

use indicatif::{HumanDuration, ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::{IsTerminal, Write};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How often the plain line is written when stderr is not a terminal
/// (`$DURAFS_PROGRESS_EVERY` seconds overrides it).
pub const PLAIN_EVERY: Duration = Duration::from_secs(10);

fn plain_every() -> Duration {
    std::env::var("DURAFS_PROGRESS_EVERY")
        .ok()
        .and_then(|v| v.parse::<f64>().ok())
        .filter(|v| v.is_finite() && *v >= 0.0)
        .map_or(PLAIN_EVERY, Duration::from_secs_f64)
}

/// Plain lines: where to, how often, and when the last one went.
struct Plain {
    out: Box<dyn Write + Send>,
    every: Duration,
    last: Instant,
}

/// A progress report over `len` steps.
pub struct Progress {
    /// Counts the steps and estimates the rate and ETA; drawn only on a
    /// terminal.
    bar: ProgressBar,
    label: String,
    unit: String,
    plain: Option<Mutex<Plain>>,
}

impl Progress {
    /// On stderr: a bar when it is a terminal, else a plain line every
    /// [`PLAIN_EVERY`]. `label` starts each line (`durafs demo`), `unit`
    /// names the steps (`crash states`).
    pub fn stderr(label: &str, unit: &str, len: u64) -> Progress {
        if std::io::stderr().is_terminal() {
            let bar = ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr());
            let template = format!(
                "{{prefix}}: [{{bar:30}}] {{pos}}/{{len}} {unit} ({{elapsed}}, ETA {{eta}}) {{wide_msg}}"
            );
            if let Ok(style) = ProgressStyle::with_template(&template) {
                bar.set_style(style.progress_chars("=> "));
            }
            bar.set_prefix(label.to_string());
            Progress {
                bar,
                label: label.into(),
                unit: unit.into(),
                plain: None,
            }
        } else {
            Progress::plain(label, unit, len, Box::new(std::io::stderr()), plain_every())
        }
    }

    /// Plain lines to `out` at most every `every` (and no bar).
    pub fn plain(
        label: &str,
        unit: &str,
        len: u64,
        out: Box<dyn Write + Send>,
        every: Duration,
    ) -> Progress {
        Progress {
            bar: ProgressBar::hidden().with_finish(indicatif::ProgressFinish::AndLeave),
            label: label.into(),
            unit: unit.into(),
            plain: Some(Mutex::new(Plain {
                out,
                every,
                last: Instant::now(),
            })),
        }
        .with_len(len)
    }

    fn with_len(self, len: u64) -> Progress {
        self.bar.set_length(len);
        self
    }

    /// One more step done; `msg` says what (e.g. the row).
    pub fn inc(&self, msg: &str) {
        self.bar.inc(1);
        self.bar.set_message(msg.to_string());
        if let Some(p) = &self.plain {
            if let Ok(mut p) = p.lock() {
                if p.last.elapsed() >= p.every {
                    p.last = Instant::now();
                    let line = self.line(msg);
                    let _ = writeln!(p.out, "{line}");
                }
            }
        }
    }

    /// The total is `len` steps (known only once work started).
    pub fn set_len(&self, len: u64) {
        if self.bar.length() != Some(len) {
            self.bar.set_length(len);
        }
    }

    /// The total turned out `by` steps larger (or smaller, when negative).
    pub fn resize(&self, by: i64) {
        if by >= 0 {
            self.bar.inc_length(by.unsigned_abs());
        } else {
            self.bar.dec_length(by.unsigned_abs());
        }
    }

    /// The plain progress line: `durafs demo: 120/700 crash states (17%),
    /// 9.8/s, ETA 59 seconds: lsm / fsync`.
    pub fn line(&self, msg: &str) -> String {
        let pos = self.bar.position();
        let len = self.bar.length().unwrap_or(pos).max(1);
        format!(
            "{}: {pos}/{len} {} ({}%), {:.1}/s, ETA {}: {msg}",
            self.label,
            self.unit,
            pos * 100 / len,
            self.bar.per_sec(),
            HumanDuration(self.bar.eta()),
        )
    }

    /// The bar, for a logger that prints above it.
    pub fn bar(&self) -> ProgressBar {
        self.bar.clone()
    }

    /// Removes the bar (nothing to remove on the plain path).
    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::sync::Arc;

    /// A writer whose bytes a test can read.
    #[derive(Clone, Default)]
    pub(crate) struct Shared(Arc<Mutex<Vec<u8>>>);

    impl Write for Shared {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            if let Ok(mut v) = self.0.lock() {
                v.extend_from_slice(b);
            }
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Shared {
        pub(crate) fn text(&self) -> String {
            String::from_utf8_lossy(&self.0.lock().map(|v| v.clone()).unwrap_or_default())
                .into_owned()
        }
    }

    #[test]
    fn plain_lines_carry_totals_and_eta_and_no_escapes() {
        let out = Shared::default();
        let p = Progress::plain(
            "durafs demo",
            "crash states",
            10,
            Box::new(out.clone()),
            Duration::ZERO,
        );
        p.inc("lsm / fsync");
        p.resize(-3);
        p.resize(1);
        p.inc("btree / flush");
        p.finish();
        let text = out.text();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2, "{text}");
        assert!(
            lines[0].starts_with("durafs demo: 1/10 crash states (10%), "),
            "{text}"
        );
        assert!(
            lines[0].contains("ETA ") && lines[0].ends_with(": lsm / fsync"),
            "{text}"
        );
        assert!(
            lines[1].starts_with("durafs demo: 2/8 crash states (25%)"),
            "{text}"
        );
        assert!(!text.contains('\r') && !text.contains('\x1b'), "{text:?}");
    }

    #[test]
    fn plain_lines_are_rate_limited() {
        let out = Shared::default();
        let p = Progress::plain(
            "x",
            "steps",
            100,
            Box::new(out.clone()),
            Duration::from_secs(3600),
        );
        for _ in 0..50 {
            p.inc("row");
        }
        assert_eq!(out.text(), "", "nothing before the interval");
        assert!(p.line("row").starts_with("x: 50/100 steps (50%)"));
    }
}
