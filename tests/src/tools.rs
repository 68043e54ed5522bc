//! Tools the tests run (fio, pjdfstest's tool chain, setpriv; setfattr
//! and getfattr: `require("setfattr", "attr")`): installed with apt-get
//! when missing, never skipped. One `apt-get` at a time in
//! this process, `apt-get update` at most once; another process holding
//! dpkg's lock is waited for by apt itself (`DPkg::Lock::Timeout`).

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Mutex;

/// Serialises installs within this process; `true` once `apt-get update`
/// succeeded.
static APT: Mutex<bool> = Mutex::new(false);

/// Seconds apt waits for another process's dpkg lock.
const LOCK_TIMEOUT: &str = "600";

/// Whether `tool` is a command on `PATH` (or a path that exists).
pub fn have(tool: &str) -> bool {
    if tool.contains('/') {
        return Path::new(tool).exists();
    }
    std::env::var_os("PATH").is_some_and(|paths| {
        std::env::split_paths(&paths).any(|d| {
            std::fs::metadata(d.join(tool)).is_ok_and(|m| {
                use std::os::unix::fs::PermissionsExt;
                m.is_file() && m.permissions().mode() & 0o111 != 0
            })
        })
    })
}

/// Makes sure the command `tool` exists, installing `package` with
/// apt-get if it does not. Panics, saying what to install by hand, where
/// that is impossible (not root, no apt-get) or fails.
pub fn require(tool: &str, package: &str) {
    if have(tool) {
        return;
    }
    let mut updated = APT.lock().unwrap_or_else(|p| p.into_inner());
    // Another test may have installed it while this one waited.
    if have(tool) {
        return;
    }
    if !durafs::sys::is_root() {
        panic!("`{tool}` is missing and only root can install it: apt-get install {package}");
    }
    if !have("apt-get") {
        panic!("`{tool}` is missing and there is no apt-get here: install {package} by hand");
    }
    if !*updated {
        apt(&["update"]);
        *updated = true;
    }
    apt(&["install", "-y", "--no-install-recommends", package]);
    assert!(
        have(tool),
        "`apt-get install {package}` succeeded but `{tool}` is still missing"
    );
}

/// Runs `apt-get ARGS` non-interactively, waiting for dpkg's lock;
/// panics with its output when it fails.
fn apt(args: &[&str]) {
    let out = Command::new("apt-get")
        .args(["-q", "-o", &format!("DPkg::Lock::Timeout={LOCK_TIMEOUT}")])
        .args(args)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("running apt-get: {e}"));
    assert!(
        out.status.success(),
        "apt-get {} failed ({}):\n{}{}",
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_present_tool_needs_nothing() {
        require("sh", "dash");
        assert!(have("sh"));
        assert!(!have("durafs-no-such-tool"));
    }
}
