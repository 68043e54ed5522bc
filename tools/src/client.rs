//! The commands that drive a running daemon through its control file.

use crate::render::bar::Look;
use crate::{CutArgs, MountArgs, Result, daemon, err, render};
use durafs::META_DIR;
use durafs::control::{CONTROL_NAME, CutReply, StatusReply, VolumeReply};
use durafs::fs::{CutSummary, VolumeInfo};
use std::fs::{File, OpenOptions};
use std::io::{self, IsTerminal, Read, Write};
use std::path::Path;
use std::time::Duration;

/// How long `umount` and `cut` wait for the daemon to exit.
const EXIT_WAIT: Duration = Duration::from_secs(60);

/// An open control file.
struct Control {
    file: File,
}

fn dead_mount(mnt: &Path) -> crate::CliError {
    err(format!(
        "the durafs daemon serving {} is gone (killed?): `durafs umount {0}` clears the dead mount",
        mnt.display()
    ))
}

impl Control {
    fn open(mnt: &Path) -> Result<Control> {
        let path = mnt.join(CONTROL_NAME);
        match OpenOptions::new().read(true).write(true).open(&path) {
            Ok(file) => Ok(Control { file }),
            Err(e) if durafs::sys::is_disconnected(&e) => Err(dead_mount(mnt)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Err(err(format!(
                "{} is not a durafs mount (no control file {})",
                mnt.display(),
                path.display()
            ))),
            Err(e) => Err(err(format!("{}: {e}", path.display()))),
        }
    }

    /// Sends `cmd` and returns the reply as sent (one JSON line); a reply
    /// with `"ok": false` is an error carrying the daemon's reason.
    fn request(&mut self, cmd: &str) -> Result<String> {
        let sent = self.file.write(cmd.as_bytes());
        let mut buf = Vec::new();
        self.file
            .read_to_end(&mut buf)
            .map_err(|e| err(format!("reading the reply to {cmd:?}: {e}")))?;
        let head: Head = serde_json::from_slice(&buf)
            .map_err(|e| err(format!("malformed reply to {cmd:?}: {e}")))?;
        if !head.ok {
            return Err(err(head
                .error
                .unwrap_or_else(|| "no reason given".to_string())));
        }
        sent.map_err(|e| err(format!("sending {cmd:?}: {e}")))?;
        String::from_utf8(buf).map_err(|e| err(format!("reply to {cmd:?}: {e}")))
    }

    /// As [`Control::request`], the reply read as a `T`.
    fn request_as<T: serde::de::DeserializeOwned>(&mut self, cmd: &str) -> Result<T> {
        let text = self.request(cmd)?;
        serde_json::from_str(&text).map_err(|e| err(format!("unexpected reply to {cmd:?}: {e}")))
    }
}

/// What every reply says first: whether the command worked, and if not why.
#[derive(serde::Deserialize)]
struct Head {
    ok: bool,
    error: Option<String>,
}

/// `durafs status`: the reply as JSON, or as text with a bar per file
/// (colored on a terminal, unless `no_color` or `$NO_COLOR`).
pub fn status(mnt: &Path, json: bool, no_color: bool) -> Result<()> {
    let mut ctl = Control::open(mnt)?;
    if json {
        print!("{}", ctl.request("status")?);
        return Ok(());
    }
    let reply: StatusReply = ctl.request_as("status")?;
    let look = Look::choose(
        io::stdout().is_terminal(),
        no_color,
        std::env::var("NO_COLOR").ok().as_deref(),
    );
    print!("{}", render::status(&reply, look));
    Ok(())
}

pub fn sync(mnt: &Path) -> Result<()> {
    Control::open(mnt)?.request("sync")?;
    Ok(())
}

/// `durafs mark LABEL`: on `mnt`, or on `$DURAFS_MOUNT`.
pub fn mark(mnt: Option<std::path::PathBuf>, label: &str) -> Result<()> {
    let mnt = match mnt.or_else(|| std::env::var_os(crate::workload::ENV_MOUNT).map(Into::into)) {
        Some(m) => m,
        None => {
            return Err(crate::usage(format!(
                "which volume? pass --mount MOUNTPOINT or set ${}",
                crate::workload::ENV_MOUNT
            )));
        }
    };
    if label.contains('\n') {
        return Err(crate::usage("a mark is one line"));
    }
    Control::open(&mnt)?.request(&format!("mark {label}"))?;
    Ok(())
}

/// Whether the mount at `mnt` has the super option `opt` (e.g.
/// `allow_other`), from `/proc/self/mountinfo`; false when it cannot tell.
fn has_super_option(mnt: &Path, opt: &str) -> bool {
    let (Ok(mnt), Ok(info)) = (
        std::fs::canonicalize(mnt),
        std::fs::read_to_string("/proc/self/mountinfo"),
    ) else {
        return false;
    };
    mnt.to_str().is_some_and(|m| super_option_in(&info, m, opt))
}

/// Whether, in the mountinfo text `info`, the topmost mount at `mnt` has
/// the super option `opt`.
fn super_option_in(info: &str, mnt: &str, opt: &str) -> bool {
    let want = mnt.replace(' ', "\\040");
    // The last line for a path is the mount on top.
    info.lines()
        .filter(|l| l.split(' ').nth(4) == Some(want.as_str()))
        .filter_map(|l| l.split_once(" - "))
        .filter_map(|(_, right)| right.split(' ').nth(2))
        .next_back()
        .is_some_and(|opts| opts.split(',').any(|o| o == opt))
}

fn daemon_pid(volume: &VolumeInfo) -> Result<i32> {
    i32::try_from(volume.pid)
        .map_err(|_| err(format!("the volume names no valid pid: {}", volume.pid)))
}

/// `durafs fault MNT WORDS...`: the control file's `fault WORDS...`,
/// printed for people (or as the reply, `json`).
pub fn fault(mnt: &Path, words: &[String], json: bool) -> Result<()> {
    let mut ctl = Control::open(mnt)?;
    let line = durafs::faults::spec_text(words);
    let reply = ctl.request(&format!("fault {line}"))?;
    if json {
        print!("{reply}");
        return Ok(());
    }
    let v: serde_json::Value =
        serde_json::from_str(&reply).map_err(|e| err(format!("malformed reply: {e}")))?;
    if let Some(help) = v.get("help").and_then(|h| h.as_str()) {
        print!("{help}");
    } else if let Some(id) = v.get("id") {
        println!(
            "fault #{id} armed: {}",
            durafs::faults::spec_text(&words[1..])
        );
    } else if let Some(n) = v.get("cleared") {
        println!("{n} fault(s) cleared");
    } else if let Some(list) = v.get("faults") {
        let list: Vec<durafs::faults::FaultStatus> = serde_json::from_value(list.clone())
            .map_err(|e| err(format!("malformed reply: {e}")))?;
        print!("{}", render::faults(&list));
    }
    Ok(())
}

/// True when a volume that was not cut serves `mnt`.
fn serving(mnt: &Path) -> bool {
    Control::open(mnt)
        .and_then(|mut c| c.request_as::<VolumeReply>("volume"))
        .is_ok_and(|v| !v.volume.cut)
}

/// `durafs wait MNT`: returns once a volume that was not cut serves
/// `mnt` (a daemon remounting after a fault's cut), woken by changes of the
/// mount table (`/proc/self/mountinfo` polls `POLLPRI` on each).
pub fn wait_mounted(mnt: &Path, timeout: Duration) -> Result<()> {
    use std::os::fd::AsRawFd;
    let deadline = std::time::Instant::now() + timeout;
    let mut table = File::open("/proc/self/mountinfo")
        .map_err(|e| err(format!("/proc/self/mountinfo: {e}")))?;
    loop {
        // Reading the table to its end arms the next notification.
        let mut sink = Vec::new();
        let _ = io::Seek::seek(&mut table, io::SeekFrom::Start(0));
        let _ = table.read_to_end(&mut sink);
        if serving(mnt) {
            return Ok(());
        }
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            return Err(err(format!(
                "no durafs volume served {} within {} s",
                mnt.display(),
                timeout.as_secs()
            )));
        }
        let mut p = libc::pollfd {
            fd: table.as_raw_fd(),
            events: libc::POLLPRI,
            revents: 0,
        };
        // A bounded wait: the daemon's mount may land between the check
        // and the poll.
        let ms = left.as_millis().min(500) as libc::c_int;
        // SAFETY: one valid pollfd for the duration of the call.
        unsafe { libc::poll(&mut p, 1, ms) };
    }
}

pub fn cut(args: CutArgs) -> Result<()> {
    let mnt = args.mountpoint.as_path();
    let mut ctl = Control::open(mnt)?;
    // `volume`, not `status`: no report of every pending file (issue 21).
    let st: VolumeReply = ctl.request_as("volume")?;
    let pid = daemon_pid(&st.volume)?;
    // Read before the mount dies: the remount keeps it.
    let allow_other = has_super_option(mnt, "allow_other");
    let cmd = args.cut.command_line();
    let reply: CutReply = ctl.request_as(&cmd)?;
    // Closing the handle lets the daemon tear the mount down.
    drop(ctl);
    wait_exit(pid, mnt)?;
    if !args.json {
        print!("{}", render::cut(&reply.cut));
    }
    let mut remounted = None;
    if args.remount {
        let vol = &st.volume;
        daemon::mount(MountArgs {
            model: vol
                .model
                .parse()
                .map_err(|e: String| err(format!("the status's model: {e}")))?,
            dirty_limit: vol.dirty_limit,
            real_fsync: vol.real_fsync,
            foreground: false,
            trace: None,
            faults: None,
            fsync_failure: vol.fsync_failure.parse().ok(),
            threads: 2,
            writeback_cache: false,
            allow_other,
            // The remount serves requests as the cut mount did.
            transport: vol.transport.parse().ok(),
            daemonized: false,
            backing: vol.backing.clone().into(),
            mountpoint: mnt.to_path_buf(),
        })?;
        if !args.json {
            println!("remounted {} over the post-crash state", mnt.display());
        }
        remounted = Some(mnt.display().to_string());
    }
    // One JSON document on stdout, the remount included.
    if args.json {
        let doc = CutJson {
            cut: &reply.cut,
            remounted,
        };
        let text = serde_json::to_string(&doc).map_err(|e| err(e.to_string()))?;
        println!("{text}");
    }
    Ok(())
}

/// `cut --json`: the summary's fields, and where it was remounted.
#[derive(serde::Serialize)]
struct CutJson<'a> {
    #[serde(flatten)]
    cut: &'a CutSummary,
    #[serde(skip_serializing_if = "Option::is_none")]
    remounted: Option<String>,
}

pub fn umount(mnt: &Path, lazy: bool) -> Result<()> {
    if durafs::mount::is_dead_mount(mnt) {
        durafs::mount::detach(mnt);
        eprintln!(
            "durafs: {}: cleared the dead mount of a killed daemon; what was unsynced is lost, \
             as in a drop-all cut",
            mnt.display()
        );
        return Ok(());
    }
    let mut ctl = Control::open(mnt)?;
    let st: VolumeReply = ctl.request_as("volume")?;
    let pid = daemon_pid(&st.volume)?;
    if let Err(why) = ctl.request("sync") {
        return persist_failed(ctl, pid, mnt, lazy, &why.to_string());
    }
    drop(ctl);
    if let Err(e) = durafs::sys::umount(mnt, false) {
        if durafs::sys::is_busy(&e) && lazy {
            durafs::mount::detach(mnt);
        } else if durafs::sys::is_busy(&e) {
            return Err(err(format!(
                "{} is busy (files or directories in it are open); close them, or use --lazy",
                mnt.display()
            )));
        } else {
            return Err(err(format!("unmounting {}: {e}", mnt.display())));
        }
    }
    wait_exit(pid, mnt)?;
    unmount_failure(Path::new(&st.volume.backing), mnt)
}

/// What the daemon records when its sync at unmount failed.
#[derive(serde::Deserialize)]
struct UnmountFailed {
    error: String,
    status: StatusReply,
}

/// Fails with what the daemon recorded if its own sync at unmount (of
/// changes made after ours) failed.
fn unmount_failure(backing: &Path, mnt: &Path) -> Result<()> {
    let path = backing.join(META_DIR).join(daemon::UNMOUNT_FAILED);
    let text = match std::fs::read(&path) {
        Ok(t) if !t.is_empty() => t,
        _ => return Ok(()),
    };
    let _ = std::fs::remove_file(&path);
    let what = match serde_json::from_slice::<UnmountFailed>(&text) {
        Ok(f) => format!(
            "({}); what was not durable is lost:\n{}",
            f.error,
            render::status(&f.status, Look { color: false }).trim_end()
        ),
        Err(e) => format!(
            "; its record {} does not read ({e}): {}",
            path.display(),
            String::from_utf8_lossy(&text)
        ),
    };
    Err(err(format!(
        "{} unmounted, but the daemon could not persist everything at unmount {what}",
        mnt.display(),
    )))
}

/// The sync before an unmount failed: without `--lazy` the volume stays
/// mounted and nothing is lost; with it, the unsynced operations are given
/// up by a drop-all cut (the durable state is exactly what the model says
/// is durable), the mount goes, and the error lists what was lost.
fn persist_failed(mut ctl: Control, pid: i32, mnt: &Path, lazy: bool, why: &str) -> Result<()> {
    if !lazy {
        return Err(err(format!(
            "{} stays mounted: not everything could be persisted ({why}); fix the cause and \
             run `durafs umount` again, or `durafs umount --lazy` to unmount and lose what \
             `durafs status` lists",
            mnt.display()
        )));
    }
    let reply: CutReply = ctl.request_as("cut --policy drop-all")?;
    drop(ctl);
    wait_exit(pid, mnt)?;
    Err(err(format!(
        "{} unmounted (--lazy), but not everything could be persisted ({why}); what was not \
         durable is lost:\n{}",
        mnt.display(),
        render::cut(&reply.cut).trim_end()
    )))
}

/// Waits until process `pid` has exited (without polling: a pidfd).
fn wait_exit(pid: i32, mnt: &Path) -> Result<()> {
    if pid == i32::try_from(std::process::id()).unwrap_or(0) {
        return Ok(());
    }
    // SAFETY: plain syscall; the result is checked.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        let e = io::Error::last_os_error();
        if e.raw_os_error() == Some(libc::ESRCH) {
            return Ok(());
        }
        return Err(err(format!("watching daemon {pid}: {e}")));
    }
    let fd = fd as libc::c_int;
    let mut p = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    let ms = EXIT_WAIT.as_millis() as libc::c_int;
    let r = loop {
        // SAFETY: one valid pollfd.
        let r = unsafe { libc::poll(&mut p, 1, ms) };
        if r < 0 && io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
            continue;
        }
        break r;
    };
    // SAFETY: `fd` is ours.
    unsafe { libc::close(fd) };
    match r {
        1 => Ok(()),
        0 => Err(err(format!(
            "the daemon (pid {pid}) serving {} did not exit within {}s",
            mnt.display(),
            EXIT_WAIT.as_secs()
        ))),
        _ => Err(err(format!(
            "waiting for daemon {pid}: {}",
            io::Error::last_os_error()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::super_option_in;

    const INFO: &str = "\
36 25 0:32 / /tmp/a\\040b/mnt rw,nosuid,nodev - fuse.durafs durafs rw,user_id=0,group_id=0,default_permissions,allow_other
37 25 0:33 / /tmp/c/mnt rw,nosuid,nodev - fuse.durafs durafs rw,user_id=0,group_id=0,default_permissions
38 37 0:34 / /tmp/c/mnt rw,nosuid,nodev - fuse.durafs durafs rw,user_id=0,group_id=0,default_permissions,allow_other
";

    #[test]
    fn the_topmost_mount_at_a_path_gives_the_options() {
        assert!(super_option_in(INFO, "/tmp/a b/mnt", "allow_other"));
        assert!(super_option_in(INFO, "/tmp/c/mnt", "allow_other"));
        assert!(super_option_in(INFO, "/tmp/c/mnt", "default_permissions"));
        assert!(!super_option_in(INFO, "/tmp/c/mnt", "allow"));
        assert!(!super_option_in(INFO, "/tmp/d/mnt", "allow_other"));
        assert!(!super_option_in(INFO, "/tmp/a b", "allow_other"));
    }
}
