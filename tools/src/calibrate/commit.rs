//! Timed journal commits on the real side (`calibrate --commits`). A real
//! machine commits its journal every few seconds (ext4 `commit=5`, btrfs
//! `commit=30`, xfs's log worker every `fs.xfs.xfssyncd_centisecs`), so a
//! crash between two operations may find metadata committed whose data is
//! not (the "size before data"). A workload runs in milliseconds
//! and would never see one; with `--commits` the recording mount commits
//! every second ([`mount_options`], [`XfsSyncd`]) and the script's `wb`
//! waits for the next commit before each mark ([`wait_commit`]), so the
//! states on both sides of that commit are crash states of the step.
//!
//! A commit is observed, not assumed: each filesystem counts them
//! (ext4: `/proc/fs/jbd2/DEV-8/info`, "N transactions"; xfs:
//! `/sys/fs/xfs/DEV/stats/stats`, the `log` line's first field, log
//! writes; btrfs: `/sys/fs/btrfs/FSID/commit_stats`, `commits N`). With
//! nothing to commit none comes: the wait gives up after [`PATIENCE`].

use super::device::FsKind;
use crate::{Result, err};
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// How long `wait-commit` waits for a commit: twice the 1-second interval,
/// and a margin.
pub const PATIENCE: Duration = Duration::from_millis(2500);
const POLL: Duration = Duration::from_millis(10);

/// The recording mount's options under `--commits`.
pub fn mount_options(kind: FsKind) -> Option<&'static str> {
    match kind {
        FsKind::Ext4 | FsKind::Btrfs => Some("commit=1"),
        // xfs has no mount option for it: see [`XfsSyncd`].
        FsKind::Xfs => None,
    }
}

const XFSSYNCD: &str = "/proc/sys/fs/xfs/xfssyncd_centisecs";

/// `fs.xfs.xfssyncd_centisecs` set to 100 (1 s) while it lives, then put
/// back. The setting is the host's, for every xfs mounted after it is
/// changed: calibrate sets it for its own run only.
pub struct XfsSyncd {
    old: String,
}

impl XfsSyncd {
    pub fn set() -> Result<XfsSyncd> {
        let e = |x: std::io::Error| err(format!("{XFSSYNCD}: {x}"));
        let old = fs::read_to_string(XFSSYNCD).map_err(e)?;
        fs::write(XFSSYNCD, "100").map_err(e)?;
        Ok(XfsSyncd {
            old: old.trim().to_string(),
        })
    }
}

impl Drop for XfsSyncd {
    fn drop(&mut self) {
        if let Err(e) = fs::write(XFSSYNCD, &self.old) {
            log::warn!(
                "durafs calibrate: could not put {XFSSYNCD} back to {}: {e}",
                self.old
            );
        }
    }
}

/// The block device (e.g. `loop3`) and type of the filesystem holding `dir`:
/// the `/proc/self/mountinfo` entry with the longest mount point that
/// contains it. (Not by device number: a btrfs subvolume's `st_dev` is an
/// anonymous one that mountinfo does not show.)
fn device_of(dir: &Path) -> Result<(String, FsKind)> {
    let path = fs::canonicalize(dir).map_err(|e| err(format!("{}: {e}", dir.display())))?;
    let info = fs::read_to_string("/proc/self/mountinfo")
        .map_err(|e| err(format!("/proc/self/mountinfo: {e}")))?;
    let (fstype, source) = mount_of(&info, &path).ok_or_else(|| {
        err(format!(
            "{}: not found in /proc/self/mountinfo",
            dir.display()
        ))
    })?;
    let kind: FsKind = fstype
        .parse()
        .map_err(|e: String| err(format!("{}: {e}", dir.display())))?;
    let name = Path::new(source)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .ok_or_else(|| err(format!("{}: no device for {source:?}", dir.display())))?;
    Ok((name, kind))
}

/// The (type, source) of the mount in `mountinfo` whose mount point is the
/// longest prefix of `path`. Mount points are octal-escaped there (`\\040`
/// for a space); calibrate's have no such characters.
fn mount_of<'a>(mountinfo: &'a str, path: &Path) -> Option<(&'a str, &'a str)> {
    let mut best: Option<(usize, &str, &str)> = None;
    for line in mountinfo.lines() {
        let Some(point) = line.split(' ').nth(4) else {
            continue;
        };
        if !path.starts_with(point) {
            continue;
        }
        // After the optional fields: " - TYPE SOURCE OPTIONS".
        let Some((_, tail)) = line.split_once(" - ") else {
            continue;
        };
        let mut t = tail.split(' ');
        let (Some(fstype), Some(source)) = (t.next(), t.next()) else {
            continue;
        };
        if best.is_none_or(|(n, ..)| point.len() >= n) {
            best = Some((point.len(), fstype, source));
        }
    }
    best.map(|(_, t, s)| (t, s))
}

/// Where the commit count of `dev` is, and how to read it.
fn counter_file(dev: &str, kind: FsKind) -> Result<PathBuf> {
    Ok(match kind {
        FsKind::Ext4 => PathBuf::from(format!("/proc/fs/jbd2/{dev}-8/info")),
        FsKind::Xfs => PathBuf::from(format!("/sys/fs/xfs/{dev}/stats/stats")),
        FsKind::Btrfs => {
            let root = Path::new("/sys/fs/btrfs");
            let entries =
                fs::read_dir(root).map_err(|e| err(format!("{}: {e}", root.display())))?;
            entries
                .flatten()
                .map(|e| e.path())
                .find(|p| p.join("devices").join(dev).exists())
                .map(|p| p.join("commit_stats"))
                .ok_or_else(|| err(format!("no btrfs in /sys/fs/btrfs has device {dev}")))?
        }
    })
}

/// The count in `text`, a counter file of `kind`.
fn parse_count(kind: FsKind, text: &str) -> Option<u64> {
    let first = |l: &str| l.split_whitespace().next()?.parse().ok();
    match kind {
        FsKind::Ext4 => first(text.lines().next()?),
        FsKind::Xfs => first(text.lines().find_map(|l| l.strip_prefix("log "))?),
        FsKind::Btrfs => first(text.lines().find_map(|l| l.strip_prefix("commits "))?),
    }
}

fn count(path: &Path, kind: FsKind) -> Result<u64> {
    let text = fs::read_to_string(path).map_err(|e| err(format!("{}: {e}", path.display())))?;
    parse_count(kind, &text).ok_or_else(|| err(format!("{}: no commit count", path.display())))
}

/// `durafs wait-commit DIR`: waits until the filesystem holding `dir`
/// commits its journal once more, or [`PATIENCE`] passed (nothing to
/// commit). Says on stderr which it was.
pub fn wait_commit(dir: &Path) -> Result<()> {
    let (dev, kind) = device_of(dir)?;
    let path = counter_file(&dev, kind)?;
    let start = count(&path, kind)?;
    let began = Instant::now();
    while began.elapsed() < PATIENCE {
        std::thread::sleep(POLL);
        if count(&path, kind)? > start {
            log::info!(
                "durafs wait-commit: {dev} committed after {:?}",
                began.elapsed()
            );
            return Ok(());
        }
    }
    log::info!("durafs wait-commit: {dev}: no commit in {PATIENCE:?} (nothing to commit)");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mount_holding_a_path_is_the_longest_mount_point_over_it() {
        let info = "22 1 8:1 / / rw - ext4 /dev/vda rw\n\
                    90 22 0:51 / /tmp/x/inner rw - btrfs /dev/loop3 rw\n\
                    91 22 0:52 / /tmp/x/innerother rw - xfs /dev/loop4 rw\n";
        assert_eq!(
            mount_of(info, Path::new("/tmp/x/inner/dir")),
            Some(("btrfs", "/dev/loop3"))
        );
        assert_eq!(
            mount_of(info, Path::new("/tmp/x/inner")),
            Some(("btrfs", "/dev/loop3"))
        );
        assert_eq!(
            mount_of(info, Path::new("/tmp/y")),
            Some(("ext4", "/dev/vda"))
        );
    }

    #[test]
    fn each_filesystems_counter_is_read() {
        let ext4 = "12 transactions (3 requested), each up to 1365 blocks\naverage:\n";
        assert_eq!(parse_count(FsKind::Ext4, ext4), Some(12));
        let xfs = "extent_alloc 0 0 0 0\nlog 7 30 0 2 1\npush_ail 0 0\n";
        assert_eq!(parse_count(FsKind::Xfs, xfs), Some(7));
        let btrfs = "commits 4\ncur_commit_ms 0\nlast_commit_ms 1\n";
        assert_eq!(parse_count(FsKind::Btrfs, btrfs), Some(4));
        assert_eq!(parse_count(FsKind::Btrfs, "cur_commit_ms 0\n"), None);
        assert_eq!(parse_count(FsKind::Ext4, ""), None);
    }
}
