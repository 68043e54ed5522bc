//! Processes a workload leaves running: a server it started keeps files
//! open on the recording volume, and unmounting under it would leave it
//! stuck on a dead mount. They are found in `/proc` (members of the
//! workload's process group, and any process whose working directory,
//! root or open files are under the mount), killed, and reported.

use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

/// One process left running.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Leftover {
    pub pid: u32,
    /// Its command name (`/proc/PID/comm`).
    pub command: String,
}

impl std::fmt::Display for Leftover {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.pid, self.command)
    }
}

/// The process group of `/proc/PID/stat` (the field after state and
/// ppid, counted after the command's closing parenthesis).
fn pgrp(stat: &str) -> Option<u32> {
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(2)?.parse().ok()
}

fn under(link: &Path, mnt: &Path) -> bool {
    fs::read_link(link).is_ok_and(|t| t.starts_with(mnt))
}

/// True when process `pid` uses something under `mnt`.
fn uses(pid: u32, mnt: &Path) -> bool {
    let proc = Path::new("/proc").join(pid.to_string());
    if under(&proc.join("cwd"), mnt) || under(&proc.join("root"), mnt) {
        return true;
    }
    fs::read_dir(proc.join("fd"))
        .into_iter()
        .flatten()
        .flatten()
        .any(|e| under(&e.path(), mnt))
}

/// Live processes in group `pgid` or using `mnt`, this one excepted.
pub fn find(pgid: u32, mnt: &Path) -> Vec<Leftover> {
    let me = std::process::id();
    let mut out = Vec::new();
    for e in fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        if pid == me {
            continue;
        }
        let Ok(stat) = fs::read_to_string(e.path().join("stat")) else {
            continue;
        };
        // Zombies hold nothing and are reaped by their parent.
        let zombie = stat
            .rfind(')')
            .and_then(|i| stat[i + 1..].split_whitespace().next())
            == Some("Z");
        if zombie || (pgrp(&stat) != Some(pgid) && !uses(pid, mnt)) {
            continue;
        }
        let command = fs::read_to_string(e.path().join("comm"))
            .map(|c| c.trim().to_string())
            .unwrap_or_default();
        out.push(Leftover { pid, command });
    }
    out
}

/// Kills the processes a workload left (see [`find`]) and waits, at most
/// `wait`, until they are gone; the ones it found.
pub fn kill(pgid: u32, mnt: &Path, wait: Duration) -> Vec<Leftover> {
    let found = find(pgid, mnt);
    if found.is_empty() {
        return found;
    }
    crate::workload::kill_group(pgid);
    for l in &found {
        if let Ok(pid) = libc::pid_t::try_from(l.pid) {
            // SAFETY: kill(2) on a pid; an exited one gives ESRCH.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
    }
    let deadline = Instant::now() + wait;
    while Instant::now() < deadline && !find(pgid, mnt).is_empty() {
        std::thread::yield_now();
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_process_group_is_read_after_the_command_whatever_it_holds() {
        assert_eq!(pgrp("42 (a b) c) S 1 77 77 0"), Some(77));
        assert_eq!(pgrp("42 (sh) S 1 9 9"), Some(9));
        assert_eq!(pgrp("garbage"), None);
    }
}
