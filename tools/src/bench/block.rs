//! `explore-ext4`: block-level crash states checked per second. A real
//! ext4 on a 64 MiB image file on a traced durafs volume (the fixture
//! `tools/fixtures/ext4-image-trace.sh`), explored with a check that
//! mounts each state's image through a loop device and reads every file
//! (`tools/fixtures/ext4-read-check.sh`); next to it the rate of that check
//! alone on a fixed image, with the same number of jobs, which bounds what
//! exploration can reach.

use super::Ctx;
use super::solo::{ExploreRun, parse_explore};
use crate::workload::{ENV_STATE, check_interrupted};
use crate::{Result, err};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

const TRACE_SCRIPT: &str = include_str!("../../fixtures/ext4-image-trace.sh");
const CHECK_SCRIPT: &str = include_str!("../../fixtures/ext4-read-check.sh");
/// The image's size, MiB.
const IMAGE_MIB: u32 = 64;
/// Files the fixture writes (each gives crash points).
const FILES: u32 = 8;
/// Checks per job when measuring the check alone.
const CHECKS_PER_JOB: usize = 10;

/// The tools the fixture needs, or an error naming the missing one.
pub fn check_installed() -> Result<()> {
    for (tool, package) in [("losetup", "mount"), ("mkfs.ext4", "e2fsprogs")] {
        let found = ["/usr/sbin", "/sbin", "/usr/bin", "/bin"]
            .iter()
            .any(|d| Path::new(d).join(tool).exists());
        if !found {
            return Err(err(format!(
                "explore-ext4 needs {tool}; install it (Debian/Ubuntu: apt-get install {package}) \
                 or leave the workload out with --only"
            )));
        }
    }
    if !Path::new("/dev/loop-control").exists() {
        return Err(err("explore-ext4 needs loop devices (/dev/loop-control)"));
    }
    Ok(())
}

fn run(ctx: &Ctx, what: &str, cmd: &mut Command) -> Result<Output> {
    let out = cmd
        .current_dir(&ctx.root)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| err(format!("explore-ext4: {what}: {e}")))?;
    check_interrupted()?;
    Ok(out)
}

fn failed(what: &str, out: &Output) -> crate::CliError {
    err(format!(
        "explore-ext4: {what} failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr).trim()
    ))
}

/// Records the fixture's trace, explores it, then times the check alone;
/// every scratch file and mount point is under `ROOT/explore-ext4`
/// (`TMPDIR`), so the bench's scratch directory covers them.
pub fn explore_ext4(ctx: &Ctx) -> Result<ExploreRun> {
    let dir = ctx.root.join("explore-ext4");
    std::fs::create_dir_all(&dir).map_err(|e| err(format!("{}: {e}", dir.display())))?;
    let trace = dir.join("trace.jsonl");
    let out = run(
        ctx,
        "recording",
        Command::new("sh")
            .args(["-c", TRACE_SCRIPT, "ext4-image-trace"])
            .arg(&trace)
            .arg(IMAGE_MIB.to_string())
            .env("DURAFS", &ctx.exe)
            .env("TMPDIR", &dir)
            .env("FILES", FILES.to_string()),
    )?;
    if !out.status.success() {
        return Err(failed("recording the ext4 trace", &out));
    }
    let jobs = ctx.cores.to_string();
    let out = run(
        ctx,
        "exploring",
        Command::new(&ctx.exe)
            .arg("explore")
            .arg("--replay")
            .arg(&trace)
            .args(["--jobs", &jobs, "--json", "--check", CHECK_SCRIPT])
            .arg("--dir")
            .arg(&dir)
            .env("TMPDIR", &dir),
    )?;
    // Exit 1 is states that failed the check (torn superblocks): results.
    if !matches!(out.status.code(), Some(0 | 1)) {
        return Err(failed("durafs explore", &out));
    }
    let explore = parse_explore(&String::from_utf8_lossy(&out.stdout))?;
    let check_per_second = check_alone(ctx, &trace, &dir)?;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(ExploreRun {
        explore,
        check_per_second,
    })
}

/// The check's rate on the trace's first state (its starting image), one
/// copy of the image per job, all jobs at once.
fn check_alone(ctx: &Ctx, trace: &Path, dir: &Path) -> Result<f64> {
    let keep = dir.join("fixed");
    let out = run(
        ctx,
        "materialising a fixed image",
        Command::new(&ctx.exe)
            .arg("explore")
            .arg("--replay")
            .arg(trace)
            .args(["--only", "1", "--check", "true", "--keep"])
            .arg(&keep),
    )?;
    if !out.status.success() {
        return Err(failed("materialising a fixed image", &out));
    }
    let image = keep.join("state-1").join("image");
    let copies: Vec<PathBuf> = (0..ctx.cores)
        .map(|j| {
            let d = keep.join(format!("job-{j}"));
            std::fs::create_dir_all(&d)
                .and_then(|()| std::fs::copy(&image, d.join("image")))
                .map(|_| d)
                .map_err(|e| err(format!("explore-ext4: copying the image: {e}")))
        })
        .collect::<Result<_>>()?;
    let seconds = super::explore::timed_in_parallel(&copies, |d| checks(d))?;
    Ok((CHECKS_PER_JOB * ctx.cores) as f64 / seconds.max(1e-9))
}

/// Runs the check [`CHECKS_PER_JOB`] times on the state in `dir`.
fn checks(dir: &Path) -> Result<()> {
    for _ in 0..CHECKS_PER_JOB {
        let out = Command::new("sh")
            .args(["-c", CHECK_SCRIPT])
            .env(ENV_STATE, dir)
            .env("TMPDIR", dir)
            .current_dir(dir)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| err(format!("explore-ext4: running the check: {e}")))?;
        check_interrupted()?;
        if !out.status.success() {
            return Err(failed("the check on the fixed image", &out));
        }
    }
    Ok(())
}
