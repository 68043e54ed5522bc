//! The kernel side of calibration: which filesystem, its tools, loop
//! devices and mounts. Every loop device and mount is a guard that undoes
//! itself on drop (also when unwinding), so a run leaves none behind.

use crate::{Result, err};
use std::ffi::CString;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// A filesystem under calibration.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FsKind {
    Ext4,
    Xfs,
    Btrfs,
}

impl std::str::FromStr for FsKind {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "ext4" => Ok(FsKind::Ext4),
            "xfs" => Ok(FsKind::Xfs),
            "btrfs" => Ok(FsKind::Btrfs),
            other => Err(format!(
                "unknown filesystem {other:?} (expected ext4, xfs or btrfs)"
            )),
        }
    }
}

impl FsKind {
    pub fn name(self) -> &'static str {
        match self {
            FsKind::Ext4 => "ext4",
            FsKind::Xfs => "xfs",
            FsKind::Btrfs => "btrfs",
        }
    }

    /// The image size: the smallest each mkfs accepts, rounded up.
    pub fn image_size(self) -> u64 {
        match self {
            FsKind::Ext4 => 64 << 20,
            FsKind::Xfs => 300 << 20,
            FsKind::Btrfs => 128 << 20,
        }
    }

    /// mkfs's command line, the image's path to be appended. ext4 gets its
    /// inode tables and journal zeroed now, so that no background thread
    /// writes them while a workload runs, and 4 KiB blocks, as on any
    /// filesystem of real size (mke2fs picks 1 KiB for an image this small,
    /// and the profiles' page rules assume a block is a page).
    pub fn mkfs(self) -> Vec<&'static str> {
        match self {
            FsKind::Ext4 => vec![
                "mkfs.ext4",
                "-q",
                "-F",
                "-b",
                "4096",
                "-E",
                "lazy_itable_init=0,lazy_journal_init=0,nodiscard",
            ],
            FsKind::Xfs => vec!["mkfs.xfs", "-q", "-f", "-K"],
            FsKind::Btrfs => vec!["mkfs.btrfs", "-q", "-f", "--mixed", "-K"],
        }
    }

    /// The read-only consistency check, the device's path to be appended.
    pub fn fsck(self) -> Vec<&'static str> {
        match self {
            FsKind::Ext4 => vec!["e2fsck", "-f", "-n"],
            FsKind::Xfs => vec!["xfs_repair", "-n"],
            FsKind::Btrfs => vec!["btrfs", "check", "--readonly"],
        }
    }

    /// Commands needed, with the package each comes from.
    pub fn tools(self) -> Vec<(&'static str, &'static str)> {
        let mut v = vec![("losetup", "util-linux"), ("fallocate", "util-linux")];
        v.extend(match self {
            FsKind::Ext4 => [("mkfs.ext4", "e2fsprogs"), ("e2fsck", "e2fsprogs")],
            FsKind::Xfs => [("mkfs.xfs", "xfsprogs"), ("xfs_repair", "xfsprogs")],
            FsKind::Btrfs => [("mkfs.btrfs", "btrfs-progs"), ("btrfs", "btrfs-progs")],
        });
        v
    }
}

/// Whether `tool` is an executable on `PATH`.
pub fn have(tool: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|paths| {
        std::env::split_paths(&paths).any(|d| {
            use std::os::unix::fs::PermissionsExt;
            std::fs::metadata(d.join(tool))
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
    })
}

/// An error naming the package of the first missing tool.
pub fn require_tools(kind: FsKind) -> Result<()> {
    for (tool, package) in kind.tools() {
        if !have(tool) {
            return Err(err(format!(
                "`{tool}` is missing: calibrating {} needs it (install the package {package})",
                kind.name()
            )));
        }
    }
    Ok(())
}

/// Runs `argv` with `extra` appended; `Err(output)` when it fails.
pub fn run(argv: &[&str], extra: &Path) -> std::result::Result<(), String> {
    let out = Command::new(argv[0])
        .args(&argv[1..])
        .arg(extra)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("{}: {e}", argv[0]))?;
    if out.status.success() {
        return Ok(());
    }
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stderr));
    let last: Vec<&str> = text.lines().rev().take(3).collect();
    Err(format!(
        "{} {}: {} ({})",
        argv[0],
        extra.display(),
        out.status,
        last.into_iter().rev().collect::<Vec<_>>().join(" / ")
    ))
}

/// A loop device attached to an image file (buffered I/O: the loop driver
/// writes through the page cache of the file and turns flushes into fsync);
/// detached on drop.
pub struct LoopDev {
    dev: PathBuf,
}

impl LoopDev {
    pub fn attach(image: &Path) -> std::result::Result<LoopDev, String> {
        let out = Command::new("losetup")
            .args(["--find", "--show"])
            .arg(image)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("losetup: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "losetup --find --show {}: {}",
                image.display(),
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        let dev = String::from_utf8_lossy(&out.stdout).trim().to_string();
        if !dev.starts_with("/dev/") {
            return Err(format!("losetup printed {dev:?}, not a device"));
        }
        Ok(LoopDev { dev: dev.into() })
    }

    pub fn path(&self) -> &Path {
        &self.dev
    }
}

impl Drop for LoopDev {
    fn drop(&mut self) {
        let r = Command::new("losetup")
            .arg("-d")
            .arg(&self.dev)
            .stdin(Stdio::null())
            .output();
        match r {
            Ok(o) if o.status.success() => {}
            Ok(o) => log::warn!(
                "durafs calibrate: losetup -d {}: {}",
                self.dev.display(),
                String::from_utf8_lossy(&o.stderr).trim()
            ),
            Err(e) => log::warn!("durafs calibrate: losetup -d {}: {e}", self.dev.display()),
        }
        self.wait_released();
    }
}

impl LoopDev {
    /// Waits (at most 5 s) until the kernel has let the device go.
    ///
    /// IMPORTANT: `losetup -d` of a device that is still open (udev's probe
    /// of a new device, a child forked by another thread holding a copy of
    /// a descriptor until its exec) only sets autoclear: the device keeps
    /// the image open until its last close, which would keep the volume
    /// holding the image busy and leave `losetup -a` listing it. The kernel
    /// sends no event for it, so its sysfs entry is polled.
    fn wait_released(&self) {
        let Some(name) = self.dev.file_name() else {
            return;
        };
        let backing = Path::new("/sys/block").join(name).join("loop/backing_file");
        for _ in 0..500 {
            if !backing.exists() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        log::warn!(
            "durafs calibrate: {} still attached 5 s after losetup -d",
            self.dev.display()
        );
    }
}

fn cstr(p: &Path) -> std::result::Result<CString, String> {
    durafs::sys::cstring(p).map_err(|e| e.to_string())
}

/// A mounted filesystem, unmounted on drop (lazily if it is busy).
pub struct MountGuard {
    target: PathBuf,
}

impl MountGuard {
    /// mount(2) of `dev` (type `fstype`, read-write, with the filesystem's
    /// `options`) on `target`.
    pub fn mount(
        dev: &Path,
        target: &Path,
        fstype: &str,
        options: Option<&str>,
    ) -> std::result::Result<MountGuard, String> {
        let (src, tgt) = (cstr(dev)?, cstr(target)?);
        let fstype = CString::new(fstype).map_err(|e| e.to_string())?;
        let options = options
            .map(CString::new)
            .transpose()
            .map_err(|e| e.to_string())?;
        let data = options
            .as_ref()
            .map_or(std::ptr::null(), |o| o.as_ptr().cast::<libc::c_void>());
        // SAFETY: valid NUL-terminated strings; `data` is null or one.
        let rc = unsafe { libc::mount(src.as_ptr(), tgt.as_ptr(), fstype.as_ptr(), 0, data) };
        if rc != 0 {
            return Err(format!("mount failed: {}", std::io::Error::last_os_error()));
        }
        Ok(MountGuard {
            target: target.to_path_buf(),
        })
    }

    /// Unmounts now; the error says why not (the guard then detaches it).
    /// EBUSY is retried for up to a second: a child that another thread
    /// forks holds copies of this thread's descriptors (files just read on
    /// this mount) until its exec closes them.
    pub fn unmount(mut self) -> std::result::Result<(), String> {
        let mut r = umount(&self.target, false);
        for _ in 0..100 {
            match &r {
                Err(e) if e.contains("busy") => {
                    std::thread::sleep(std::time::Duration::from_millis(10));
                    r = umount(&self.target, false);
                }
                _ => break,
            }
        }
        if r.is_ok() {
            self.target = PathBuf::new();
        }
        r
    }
}

fn umount(target: &Path, detach: bool) -> std::result::Result<(), String> {
    durafs::sys::umount(target, detach).map_err(|e| format!("umount {}: {e}", target.display()))
}

impl Drop for MountGuard {
    fn drop(&mut self) {
        if self.target.as_os_str().is_empty() {
            return;
        }
        if umount(&self.target, false).is_err() {
            if let Err(e) = umount(&self.target, true) {
                log::warn!("durafs calibrate: {e}");
            }
        }
    }
}

/// `durafs writeback-all DIR`: starts writeback of every regular file's
/// dirty pages under `dir` and waits for it (`sync_file_range`, which
/// neither flushes the device's cache nor commits metadata), so the block
/// writes it causes come before whatever the caller does next.
pub fn writeback_all(dir: &Path) -> Result<()> {
    let e = |p: &Path, x: std::io::Error| err(format!("writeback of {}: {x}", p.display()));
    for entry in std::fs::read_dir(dir).map_err(|x| e(dir, x))? {
        let path = entry.map_err(|x| e(dir, x))?.path();
        let ft = std::fs::symlink_metadata(&path)
            .map_err(|x| e(&path, x))?
            .file_type();
        if ft.is_dir() {
            writeback_all(&path)?;
        } else if ft.is_file() {
            let f = std::fs::File::open(&path).map_err(|x| e(&path, x))?;
            let flags = libc::SYNC_FILE_RANGE_WAIT_BEFORE
                | libc::SYNC_FILE_RANGE_WRITE
                | libc::SYNC_FILE_RANGE_WAIT_AFTER;
            use std::os::fd::AsRawFd;
            // SAFETY: a valid descriptor; offset 0 and length 0 mean the
            // whole file.
            if unsafe { libc::sync_file_range(f.as_raw_fd(), 0, 0, flags) } != 0 {
                return Err(e(&path, std::io::Error::last_os_error()));
            }
        }
    }
    Ok(())
}
