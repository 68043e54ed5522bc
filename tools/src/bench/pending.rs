//! `pending`: what many pending files cost. On a fresh mount, N files of
//! [`FILE_BYTES`] bytes are created in one directory (nothing fsynced,
//! from this process: one create and one write each); then `durafs status
//! --json` and `durafs cut --policy random` run as a user runs them (this
//! executable), each timed from start to exit. The daemon's resident set
//! (`VmRSS`) is read before and after the files, so that the memory each
//! pending file takes beyond its data is `(after - before) / N - 200`.
//! Done at a small and a big N: the big/small time ratio shows how the
//! cost grows.
//!
//! A cut writes the files that survive it into the backing directory, so
//! its time has a floor that is the backing filesystem's own: after each
//! cut, as many files of the same size are created natively in the
//! directory where the cut created them (`BACKING/.durafs/orphans/`, from
//! which each was renamed into place), timed, and removed. The same
//! directory matters: a journal-less ext4 allocates a new inode by scanning
//! its directory's block group past every inode deleted in the last 60
//! seconds, 360 while its inode table block is dirty (`find_inode_bit` ->
//! `recently_deleted`), so a fresh directory elsewhere can be ten times
//! faster than the one the cut used.

use super::Ctx;
use super::volume;
use crate::workload::check_interrupted;
use crate::{Result, err};
use std::fs;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

/// Bytes written to each file.
pub const FILE_BYTES: usize = 200;

/// One N of one run.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PendingFigures {
    pub files: usize,
    pub status_seconds: f64,
    pub cut_seconds: f64,
    pub rss_before: u64,
    pub rss_after: u64,
    /// Files the cut left in the backing directory.
    pub kept_files: usize,
    /// Seconds to create `kept_files` files natively in the directory the
    /// cut created them in.
    pub native_seconds: f64,
}

impl PendingFigures {
    /// The daemon's memory per pending file beyond the file's bytes
    /// (negative when the resident set shrank).
    pub fn bytes_per_file(&self) -> f64 {
        let grown = self.rss_after as f64 - self.rss_before as f64;
        grown / self.files.max(1) as f64 - FILE_BYTES as f64
    }
}

/// One run: the small N, then the big one.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PendingSample {
    pub runs: [PendingFigures; 2],
}

/// Measures both sizes, each on its own fresh mount.
pub fn pending(ctx: &Ctx, files: [usize; 2]) -> Result<PendingSample> {
    Ok(PendingSample {
        runs: [once(ctx, files[0])?, once(ctx, files[1])?],
    })
}

fn once(ctx: &Ctx, files: usize) -> Result<PendingFigures> {
    let vol = ctx.mount(false)?;
    let (pid, _) = volume::pid_and_unsynced(&vol.status()?)?;
    let rss_before = volume::rss(pid)?;
    create(&vol.path().join("pending"), files)?;
    let rss_after = volume::rss(pid)?;
    let status_seconds = timed(ctx, &["status", "--json"], vol.path())?;
    let cut_seconds = timed(
        ctx,
        &["cut", "--policy", "random", "--seed", "1"],
        vol.path(),
    )?;
    let kept = vol.backing().join("pending");
    let kept_files = fs::read_dir(&kept)
        .map_err(|e| err(format!("pending: listing {}: {e}", kept.display())))?
        .count();
    let orphans = vol.backing().join(durafs::META_DIR).join("orphans");
    let native_seconds = native_floor(&orphans, kept_files)?;
    vol.unmount()?;
    Ok(PendingFigures {
        files,
        status_seconds,
        cut_seconds,
        rss_before,
        rss_after,
        kept_files,
        native_seconds,
    })
}

/// Seconds to create `n` files of [`FILE_BYTES`] natively in the existing
/// directory `dir`; they are removed after.
fn native_floor(dir: &Path, n: usize) -> Result<f64> {
    let started = Instant::now();
    let made = fill(dir, "native-floor-", n);
    let seconds = started.elapsed().as_secs_f64();
    for i in 0..n {
        let _ = fs::remove_file(dir.join(format!("native-floor-{i}")));
    }
    made.map(|()| seconds)
}

/// Creates `dir` and `n` files of [`FILE_BYTES`] bytes in it.
fn create(dir: &Path, n: usize) -> Result<()> {
    fs::create_dir(dir).map_err(|x| err(format!("pending: creating {}: {x}", dir.display())))?;
    fill(dir, "f", n)
}

/// Creates `n` new files of [`FILE_BYTES`] bytes, `PREFIX0`..., in `dir`.
fn fill(dir: &Path, prefix: &str, n: usize) -> Result<()> {
    let e =
        |op: &str, p: &Path, x: std::io::Error| err(format!("pending: {op} {}: {x}", p.display()));
    let data = [b'p'; FILE_BYTES];
    for i in 0..n {
        if i % 1000 == 0 {
            check_interrupted()?;
        }
        let p = dir.join(format!("{prefix}{i}"));
        let mut f = fs::File::create_new(&p).map_err(|x| e("creating", &p, x))?;
        f.write_all(&data).map_err(|x| e("writing", &p, x))?;
    }
    Ok(())
}

/// Seconds `durafs ARGS MNT` took, start to exit; an error when it fails.
fn timed(ctx: &Ctx, args: &[&str], mnt: &Path) -> Result<f64> {
    let started = Instant::now();
    let out = Command::new(&ctx.exe)
        .args(args)
        .arg(mnt)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| err(format!("pending: running {}: {e}", ctx.exe.display())))?;
    let seconds = started.elapsed().as_secs_f64();
    check_interrupted()?;
    if !out.status.success() {
        return Err(err(format!(
            "pending: durafs {} failed ({}): {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(seconds)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_per_file_is_the_growth_per_file_less_its_data() {
        let f = PendingFigures {
            files: 1000,
            status_seconds: 0.0,
            cut_seconds: 0.0,
            rss_before: 10_000_000,
            rss_after: 11_000_000,
            kept_files: 0,
            native_seconds: 0.0,
        };
        assert_eq!(f.bytes_per_file(), 800.0);
        let shrank = PendingFigures {
            rss_after: 9_000_000,
            ..f
        };
        assert_eq!(shrank.bytes_per_file(), -1200.0);
    }

    #[test]
    fn files_are_created_with_their_bytes() {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().join("p");
        create(&dir, 3).unwrap();
        assert_eq!(fs::read(dir.join("f2")).unwrap().len(), FILE_BYTES);
        assert_eq!(fs::read_dir(&dir).unwrap().count(), 3);
        assert!(create(&dir, 1).is_err(), "the directory must be fresh");
    }

    #[test]
    fn the_native_floor_creates_its_files_in_the_directory_and_removes_them() {
        let d = tempfile::tempdir().unwrap();
        fs::write(d.path().join("kept"), b"").unwrap();
        assert!(native_floor(d.path(), 50).unwrap() > 0.0);
        let left: Vec<_> = fs::read_dir(d.path()).unwrap().collect();
        assert_eq!(left.len(), 1, "only what was there is left");
        assert!(native_floor(&d.path().join("missing"), 1).is_err());
    }
}
