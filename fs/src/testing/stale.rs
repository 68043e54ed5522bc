//! Dead mounts of killed tests: a test process killed by SIGKILL (a
//! nextest timeout) cannot unmount its [`super::TestVolume`], whose FUSE
//! mount then answers every call with `ENOTCONN` and stays in the mount
//! table with its temp dir. Every volume lives in
//! `TMP/durafs-test-PID-XXXX/mnt`, so the next [`super::TestVolume`]
//! finds the mounts whose owner `PID` is gone, detaches them and removes
//! their directories.

use std::path::{Path, PathBuf};

/// The temp dir prefix of a volume of process `pid`.
pub(super) fn prefix(pid: u32) -> String {
    format!("durafs-test-{pid}-")
}

/// The owner of a volume's mountpoint `mnt`, from its temp dir's name.
fn owner(mnt: &Path) -> Option<u32> {
    if mnt.file_name()? != "mnt" {
        return None;
    }
    let dir = mnt.parent()?.file_name()?.to_str()?;
    dir.strip_prefix("durafs-test-")?
        .split_once('-')?
        .0
        .parse()
        .ok()
}

/// Mountpoints of `/proc/self/mountinfo` (field 5, octal escapes undone).
fn mountpoints(mountinfo: &str) -> Vec<PathBuf> {
    mountinfo
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(|p| {
            let mut out = Vec::new();
            let b = p.as_bytes();
            let mut i = 0;
            while i < b.len() {
                let octal = b.get(i + 1..i + 4).and_then(|d| {
                    std::str::from_utf8(d)
                        .ok()
                        .and_then(|d| u8::from_str_radix(d, 8).ok())
                });
                match (b[i], octal) {
                    (b'\\', Some(c)) => {
                        out.push(c);
                        i += 4;
                    }
                    (c, _) => {
                        out.push(c);
                        i += 1;
                    }
                }
            }
            PathBuf::from(std::ffi::OsString::from(
                <std::ffi::OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(&out),
            ))
        })
        .collect()
}

fn alive(pid: u32) -> bool {
    Path::new("/proc").join(pid.to_string()).exists()
}

/// Detaches the volumes of dead test processes and removes their temp
/// dirs; the mountpoints cleared.
pub fn clear_dead() -> Vec<PathBuf> {
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return Vec::new();
    };
    let mut cleared = Vec::new();
    for mnt in mountpoints(&info) {
        let Some(pid) = owner(&mnt) else { continue };
        if alive(pid) {
            continue;
        }
        match crate::sys::umount(&mnt, true) {
            Ok(()) => {
                log::info!("durafs: cleared the dead test volume {}", mnt.display());
                if let Some(dir) = mnt.parent() {
                    let _ = std::fs::remove_dir_all(dir);
                }
                cleared.push(mnt);
            }
            Err(e) => log::warn!("durafs: dead test volume {}: {e}", mnt.display()),
        }
    }
    cleared
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_volumes_owner_is_read_from_its_temp_dir() {
        assert_eq!(
            owner(Path::new("/tmp/durafs-test-4242-AbC1/mnt")),
            Some(4242)
        );
        assert_eq!(owner(Path::new("/tmp/durafs-test-4242-AbC1/backing")), None);
        assert_eq!(owner(Path::new("/tmp/other-4242-x/mnt")), None);
    }

    #[test]
    fn mountinfo_mountpoints_are_unescaped() {
        let info = "36 35 0:31 / /tmp/a\\040b/mnt rw - fuse durafs rw\n\
                    37 35 0:32 / /sys rw - sysfs sysfs rw\n";
        assert_eq!(
            mountpoints(info),
            vec![PathBuf::from("/tmp/a b/mnt"), PathBuf::from("/sys")]
        );
    }
}
