//! A durafs mount for one benchmark run, made the way users make one: this
//! executable's `mount` (a daemon) and `umount`, with the daemon's pid and
//! unsynced bytes read from the control file.
//!
//! The guard never leaves a mount behind: `Drop` (also on error or panic)
//! unmounts, falls back to `umount --lazy`, then to a lazy detach, and
//! empties the backing directory for the next run.

use super::host;
use crate::{Result, err};
use durafs::META_DIR;
use durafs::control::CONTROL_NAME;
use serde_json::Value;
use std::fs::{self, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Mount options the benchmark varies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MountOpts {
    pub writeback_cache: bool,
    pub real_fsync: bool,
    pub threads: usize,
    /// `--transport`; `None`: durafs's default (`$DURAFS_TRANSPORT`, else
    /// `/dev/fuse`).
    pub transport: Option<durafs::transport::Transport>,
}

impl MountOpts {
    /// The options as `durafs mount` arguments.
    pub fn args(&self) -> Vec<String> {
        let mut a = Vec::new();
        if self.writeback_cache {
            a.push("--writeback-cache".to_string());
        }
        if self.real_fsync {
            a.push("--real-fsync".to_string());
        }
        a.push("--threads".to_string());
        a.push(self.threads.to_string());
        if let Some(t) = self.transport {
            a.push("--transport".to_string());
            a.push(t.to_string());
        }
        a
    }
}

/// A mounted volume; unmounted and its backing emptied on drop.
pub struct Volume {
    exe: PathBuf,
    backing: PathBuf,
    mnt: PathBuf,
    torn_down: bool,
}

impl Volume {
    /// Mounts a fresh volume over `backing` (created empty) at `mnt` (an
    /// empty directory).
    pub fn mount(exe: &Path, backing: &Path, mnt: &Path, opts: MountOpts) -> Result<Volume> {
        fs::create_dir_all(mnt).map_err(|e| err(format!("{}: {e}", mnt.display())))?;
        // The guard exists before the daemon does: whatever happens from
        // here on, dropping it clears the mount.
        let vol = Volume {
            exe: exe.to_path_buf(),
            backing: backing.to_path_buf(),
            mnt: mnt.to_path_buf(),
            torn_down: false,
        };
        let mut args = vec!["mount".to_string()];
        args.extend(opts.args());
        let (b, m) = (backing.display(), mnt.display());
        if let Err(e) = vol.durafs(&args, &[&b.to_string(), &m.to_string()]) {
            // The daemon's log goes with the backing directory: quote it.
            let log = backing.join(META_DIR).join(crate::daemon::LOG_FILE);
            let said = fs::read_to_string(&log).unwrap_or_default();
            let last: Vec<&str> = said.lines().rev().take(3).collect();
            let last: Vec<&str> = last.into_iter().rev().collect();
            return Err(err(if last.is_empty() {
                format!("mounting durafs at {m}: {e}")
            } else {
                format!(
                    "mounting durafs at {m}: {e} (daemon log: {})",
                    last.join(" / ")
                )
            }));
        }
        Ok(vol)
    }

    pub fn path(&self) -> &Path {
        &self.mnt
    }

    /// The backing directory (after a cut: the post-crash state).
    pub fn backing(&self) -> &Path {
        &self.backing
    }

    /// The daemon's `status` reply (see `durafs::control`).
    pub fn status(&self) -> Result<Value> {
        let path = self.mnt.join(CONTROL_NAME);
        let e = |what: &str, x: std::io::Error| err(format!("{what} {}: {x}", path.display()));
        let mut f = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .map_err(|x| e("opening", x))?;
        f.write_all(b"status").map_err(|x| e("writing", x))?;
        let mut buf = Vec::new();
        f.read_to_end(&mut buf).map_err(|x| e("reading", x))?;
        let v: Value = serde_json::from_slice(&buf)
            .map_err(|x| err(format!("malformed status from {}: {x}", path.display())))?;
        if v["ok"] != Value::Bool(true) {
            let why = v["error"].as_str().unwrap_or("no reason given");
            return Err(err(format!("status of {}: {why}", self.mnt.display())));
        }
        Ok(v)
    }

    /// Unmounts cleanly and empties the backing directory.
    pub fn unmount(mut self) -> Result<()> {
        self.torn_down = true;
        self.teardown()
    }

    /// Runs this executable with `args` then `paths`; its stderr on failure.
    fn durafs(&self, args: &[String], paths: &[&String]) -> Result<()> {
        let out = Command::new(&self.exe)
            .args(args)
            .args(paths)
            .stdin(Stdio::null())
            // Its own process group: a Ctrl-C meant for the benchmark does
            // not stop a mount or an unmount half way.
            .process_group(0)
            .output()
            .map_err(|e| err(format!("running {}: {e}", self.exe.display())))?;
        if out.status.success() {
            return Ok(());
        }
        let stderr = String::from_utf8_lossy(&out.stderr);
        let msg = stderr.trim().trim_start_matches("durafs: ");
        Err(err(if msg.is_empty() {
            format!("{}", out.status)
        } else {
            msg.to_string()
        }))
    }

    fn is_mounted(&self) -> bool {
        durafs::mount::is_dead_mount(&self.mnt)
            || host::mounts().iter().any(|m| m.mount_point == self.mnt)
    }

    /// `umount`, else `umount --lazy`, else a lazy detach; then empties the
    /// backing directory. The first failure is returned, after all that.
    fn teardown(&mut self) -> Result<()> {
        let mnt = self.mnt.display().to_string();
        let mut first_error = None;
        if self.is_mounted() {
            if let Err(e) = self.durafs(&["umount".into()], &[&mnt]) {
                first_error = Some(err(format!("unmounting {mnt}: {e}")));
                if self.is_mounted() {
                    let _ = self.durafs(&["umount".into(), "--lazy".into()], &[&mnt]);
                }
                if self.is_mounted() {
                    durafs::mount::detach(&self.mnt);
                }
            }
        }
        if let Err(e) = empty_dir(&self.backing) {
            first_error.get_or_insert(err(format!("emptying {}: {e}", self.backing.display())));
        }
        first_error.map_or(Ok(()), Err)
    }
}

impl Drop for Volume {
    fn drop(&mut self) {
        if !self.torn_down {
            self.torn_down = true;
            if let Err(e) = self.teardown() {
                log::warn!("durafs bench: {e}");
            }
        }
    }
}

/// Leaves `dir` existing and empty (a side's backing directory after a run).
pub fn empty_dir(dir: &Path) -> std::io::Result<()> {
    match fs::remove_dir_all(dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => fs::create_dir_all(dir),
    }
}

/// The daemon's pid and unsynced bytes, from a `status` reply.
pub fn pid_and_unsynced(status: &Value) -> Result<(u32, u64)> {
    let vol = &status["volume"];
    let pid = vol["pid"]
        .as_u64()
        .and_then(|p| u32::try_from(p).ok())
        .ok_or_else(|| err("the status names no daemon pid"))?;
    let dirty = vol["dirty_bytes"]
        .as_u64()
        .ok_or_else(|| err("the status gives no volume.dirty_bytes"))?;
    Ok((pid, dirty))
}

/// A `/proc/PID/status` field given in kB (`key` with its colon), in bytes.
fn vm_field(proc_status: &str, key: &str) -> Option<u64> {
    let line = proc_status.lines().find(|l| l.starts_with(key))?;
    let mut words = line[key.len()..].split_whitespace();
    let n: u64 = words.next()?.parse().ok()?;
    match words.next() {
        Some("kB") => n.checked_mul(1024),
        _ => None,
    }
}

/// The peak resident set of process `pid`, in bytes.
pub fn peak_rss(pid: u32) -> Result<u64> {
    proc_status_field(pid, "VmHWM:")
}

/// The resident set of process `pid` now, in bytes.
pub fn rss(pid: u32) -> Result<u64> {
    proc_status_field(pid, "VmRSS:")
}

fn proc_status_field(pid: u32, key: &str) -> Result<u64> {
    let path = format!("/proc/{pid}/status");
    let text = fs::read_to_string(&path).map_err(|e| err(format!("{path}: {e}")))?;
    vm_field(&text, key).ok_or_else(|| err(format!("{path}: no {key} line")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peak_rss_comes_from_vmhwm_in_kib() {
        let s = "Name:\tdurafs\nVmPeak:\t  900 kB\nVmHWM:\t   123456 kB\nVmRSS:\t 100 kB\n";
        let vm_hwm = |t: &str| vm_field(t, "VmHWM:");
        assert_eq!(vm_hwm(s), Some(123_456 * 1024));
        assert_eq!(vm_hwm("VmRSS:\t1 kB\n"), None);
        assert_eq!(vm_hwm("VmHWM:\tlots kB\n"), None);
        assert_eq!(vm_hwm("VmHWM:\t12 pages\n"), None);
        assert_eq!(vm_field(s, "VmRSS:"), Some(100 * 1024));
    }

    #[test]
    fn status_gives_pid_and_unsynced_bytes() {
        let v = serde_json::json!({"ok": true, "volume": {"pid": 42, "dirty_bytes": 7}});
        assert_eq!(pid_and_unsynced(&v).unwrap(), (42, 7));
        assert!(pid_and_unsynced(&serde_json::json!({"volume": {"pid": 42}})).is_err());
        assert!(pid_and_unsynced(&serde_json::json!({"volume": {"pid": -1}})).is_err());
    }

    #[test]
    fn mount_arguments() {
        let o = MountOpts {
            writeback_cache: true,
            real_fsync: true,
            threads: 3,
            transport: None,
        };
        assert_eq!(
            o.args(),
            ["--writeback-cache", "--real-fsync", "--threads", "3"]
        );
        let o = MountOpts {
            writeback_cache: false,
            real_fsync: false,
            threads: 2,
            transport: Some(durafs::transport::Transport::Uring),
        };
        assert_eq!(o.args(), ["--threads", "2", "--transport", "uring"]);
    }
}
