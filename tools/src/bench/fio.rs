//! Running fio and reading its JSON.
//!
//! Every job runs with `--ioengine=psync --fallocate=none` and explicit
//! file names (one job per file for several files), its JSON going to a
//! file (`--output`) so nothing fio prints can corrupt it.
//!
//! The final fsync is part of the figure. fio's per-job `runtime` (the
//! `read`/`write` section, in ms) spans the whole I/O stage including the
//! `end_fsync` (and the `fsync=1` syncs) before it stops the clock: with
//! fio 3.33 a 512 MiB write took `runtime` 138 ms without end_fsync and
//! 1281 ms with it on the same ext4, and fio's own `bw` follows `runtime`.
//! So the harness computes the figure itself from fio's numbers, as
//! `io_bytes / runtime` (MiB/s) or `total_ios / runtime` (IOPS); for
//! several jobs, the bytes and I/Os summed over the longest job's runtime.
//! Timing fio from outside would add its start-up (and the file layout of
//! random writes) to the figure. fio counts `runtime` in whole
//! milliseconds, so jobs of a few ms (hot reads at `--quick` sizes) are
//! coarse; the full sizes run long enough for it not to matter.

use crate::workload::{run_check, shell_quote};
use crate::{Result, err};
use serde_json::Value;
use std::io;
use std::path::Path;
use std::process::Command;

/// One fio job (or `files` identical jobs, each on its own file).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Job {
    pub rw: &'static str,
    pub bs: u64,
    /// Bytes per file.
    pub size: u64,
    /// File name (with a number per job when several).
    pub stem: &'static str,
    pub files: usize,
    pub end_fsync: bool,
    /// fsync after every write.
    pub fsync_each: bool,
    /// fio's `invalidate` (drop the file's cached pages first); fio's
    /// default when unset.
    pub invalidate: Option<bool>,
}

impl Job {
    pub fn new(rw: &'static str, bs: u64, size: u64, stem: &'static str) -> Job {
        Job {
            rw,
            bs,
            size,
            stem,
            files: 1,
            end_fsync: false,
            fsync_each: false,
            invalidate: None,
        }
    }

    pub fn end_fsync(self) -> Job {
        Job {
            end_fsync: true,
            ..self
        }
    }

    pub fn fsync_each(self) -> Job {
        Job {
            fsync_each: true,
            ..self
        }
    }

    /// The direction fio reports the job's I/O under.
    fn ddir(&self) -> &'static str {
        if self.rw.contains("read") {
            "read"
        } else {
            "write"
        }
    }

    /// fio's arguments: global options first, then one `--name` per file.
    pub fn args(&self, dir: &Path, output: &Path) -> Vec<String> {
        let mut a = vec![
            "--output-format=json".to_string(),
            format!("--output={}", output.display()),
            "--eta=never".to_string(),
            "--ioengine=psync".to_string(),
            "--fallocate=none".to_string(),
            format!("--directory={}", dir.display()),
            format!("--rw={}", self.rw),
            format!("--bs={}", self.bs),
            format!("--size={}", self.size),
        ];
        if self.end_fsync {
            a.push("--end_fsync=1".into());
        }
        if self.fsync_each {
            a.push("--fsync=1".into());
        }
        if let Some(inv) = self.invalidate {
            a.push(format!("--invalidate={}", u8::from(inv)));
        }
        for i in 0..self.files {
            let name = if self.files == 1 {
                self.stem.to_string()
            } else {
                format!("{}{i}", self.stem)
            };
            a.push(format!("--name={name}"));
            a.push(format!("--filename={name}"));
        }
        a
    }
}

/// What fio measured, over all the jobs of one run.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Measured {
    pub bytes: u64,
    pub ios: u64,
    /// The longest job's runtime, including its fsyncs.
    pub runtime_ms: u64,
}

impl Measured {
    pub fn mib_per_sec(&self) -> f64 {
        self.bytes as f64 / f64::from(1u32 << 20) / self.seconds()
    }

    pub fn iops(&self) -> f64 {
        self.ios as f64 / self.seconds()
    }

    fn seconds(&self) -> f64 {
        self.runtime_ms as f64 / 1000.0
    }
}

/// Fails with an installation hint when fio is not on `PATH`.
pub fn check_installed() -> Result<()> {
    match Command::new("fio").arg("--version").output() {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Err(err(
            "fio is not installed; install it (Debian/Ubuntu: apt-get install fio)",
        )),
        Err(e) => Err(err(format!("running fio: {e}"))),
    }
}

/// Runs `job` in `dir` (its own process group, killed on Ctrl-C), the JSON
/// going to `output`; `what` names the workload in errors.
pub fn run(job: &Job, dir: &Path, output: &Path, what: &str) -> Result<Measured> {
    let mut cmd = String::from("exec fio");
    for a in job.args(dir, output) {
        cmd.push(' ');
        cmd.push_str(&shell_quote(&a));
    }
    let ran = run_check(&cmd, dir, &[], true)?;
    crate::workload::check_interrupted()?;
    let text = std::fs::read_to_string(output).unwrap_or_default();
    if !ran.passed() {
        let said = if ran.output.trim().is_empty() {
            &text
        } else {
            &ran.output
        };
        return Err(err(format!(
            "{what}: fio failed (exit {}): {}",
            ran.code(),
            tail(said)
        )));
    }
    parse(&text, job.ddir(), what)
}

/// The last lines of `s`, on one line.
fn tail(s: &str) -> String {
    let lines: Vec<&str> = s.lines().filter(|l| !l.trim().is_empty()).collect();
    lines[lines.len().saturating_sub(3)..].join(" / ")
}

/// Reads fio's JSON: the `ddir` ("read" or "write") figures of every job.
pub fn parse(text: &str, ddir: &str, what: &str) -> Result<Measured> {
    let bad = |why: String| err(format!("{what}: malformed fio output: {why}"));
    let v: Value = serde_json::from_str(text).map_err(|e| bad(e.to_string()))?;
    let jobs = v["jobs"]
        .as_array()
        .filter(|j| !j.is_empty())
        .ok_or_else(|| bad("no jobs".into()))?;
    let mut m = Measured {
        bytes: 0,
        ios: 0,
        runtime_ms: 0,
    };
    for job in jobs {
        let name = job["jobname"].as_str().unwrap_or("?");
        let num = |key: &str| {
            job[ddir][key]
                .as_u64()
                .ok_or_else(|| bad(format!("job {name}: no {ddir}.{key}")))
        };
        match job["error"].as_i64() {
            Some(0) => {}
            Some(e) => return Err(err(format!("{what}: fio job {name} failed: error {e}"))),
            None => return Err(bad(format!("job {name}: no error field"))),
        }
        m.bytes += num("io_bytes")?;
        m.ios += num("total_ios")?;
        m.runtime_ms = m.runtime_ms.max(num("runtime")?);
    }
    if m.bytes == 0 || m.runtime_ms == 0 {
        return Err(bad(format!(
            "{} bytes in {} ms: nothing measured",
            m.bytes, m.runtime_ms
        )));
    }
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Trimmed from real fio 3.33 output (two jobs, end_fsync=1).
    const SAMPLE: &str = r#"{
  "fio version" : "fio-3.33",
  "global options" : { "ioengine" : "psync", "rw" : "write", "bs" : "4096" },
  "jobs" : [
    { "jobname" : "x40", "groupid" : 0, "error" : 0, "job_runtime" : 484,
      "read" : { "io_bytes" : 0, "bw" : 0, "total_ios" : 0, "runtime" : 0 },
      "write" : { "io_bytes" : 67108864, "io_kbytes" : 65536, "bw_bytes" : 138368791,
                  "bw" : 135125, "iops" : 33781.4, "runtime" : 485, "total_ios" : 16384 },
      "sync" : { "total_ios" : 0 } },
    { "jobname" : "x41", "groupid" : 0, "error" : 0, "job_runtime" : 486,
      "read" : { "io_bytes" : 0, "bw" : 0, "total_ios" : 0, "runtime" : 0 },
      "write" : { "io_bytes" : 67108864, "io_kbytes" : 65536, "bw_bytes" : 137800542,
                  "bw" : 134570, "iops" : 33642.7, "runtime" : 500, "total_ios" : 16384 },
      "sync" : { "total_ios" : 0 } }
  ]
}"#;

    #[test]
    fn sums_the_jobs_over_the_longest_runtime() {
        let m = parse(SAMPLE, "write", "w").unwrap();
        assert_eq!(
            m,
            Measured {
                bytes: 128 << 20,
                ios: 32768,
                runtime_ms: 500
            }
        );
        assert!((m.mib_per_sec() - 256.0).abs() < 1e-9);
        assert!((m.iops() - 65536.0).abs() < 1e-9);
    }

    #[test]
    fn malformed_or_failed_output_is_an_error_naming_the_workload() {
        for bad in [
            "",
            "fio: some warning\n{",
            "{\"jobs\": []}",
            "{\"jobs\": [{\"jobname\": \"a\", \"error\": 0, \"write\": {}}]}",
        ] {
            let e = parse(bad, "write", "seqwrite-128k")
                .unwrap_err()
                .to_string();
            assert!(e.contains("seqwrite-128k: malformed fio output"), "{e}");
        }
        let e = parse(SAMPLE, "read", "r").unwrap_err().to_string();
        assert!(e.contains("nothing measured"), "{e}");
        let failed = SAMPLE.replacen("\"error\" : 0", "\"error\" : 5", 1);
        let e = parse(&failed, "write", "w").unwrap_err().to_string();
        assert!(e.contains("job x40 failed"), "{e}");
    }

    #[test]
    fn arguments_name_every_file_after_the_global_options() {
        let j = Job {
            files: 2,
            invalidate: Some(true),
            ..Job::new("write", 4096, 1 << 20, "x").end_fsync()
        };
        let a = j.args(Path::new("/d"), Path::new("/o.json")).join(" ");
        assert!(
            a.starts_with("--output-format=json --output=/o.json"),
            "{a}"
        );
        assert!(
            a.contains("--ioengine=psync") && a.contains("--directory=/d"),
            "{a}"
        );
        assert!(a.contains("--end_fsync=1 --invalidate=1"), "{a}");
        assert!(!a.contains("--fsync=1"), "{a}");
        assert!(
            a.ends_with("--name=x0 --filename=x0 --name=x1 --filename=x1"),
            "{a}"
        );
        let one = Job::new("read", 4096, 1, "seq").args(Path::new("/d"), Path::new("/o"));
        assert_eq!(one[one.len() - 2..], ["--name=seq", "--filename=seq"]);
    }
}
