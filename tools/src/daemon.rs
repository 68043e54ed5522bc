//! `durafs mount`: checks the mountpoint, mounts, and serves until the
//! volume is unmounted, cut, or the daemon is told to stop.
//!
//! Without `--foreground` the command starts itself again as a detached
//! daemon (new session, stdin and stdout on `/dev/null`, log in
//! `BACKING/.durafs/daemon.log`) and returns once that daemon reports, on a
//! pipe, that the mount is ready, or fails with the daemon's error.

use crate::{MountArgs, Result, err};
use durafs::META_DIR;
use durafs::fs::{DuraFs, FsOptions};
use durafs::model::Persistence;
use durafs::mount::{self, MountEvent, MountOptions, Mounted};
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, BufReader, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;

/// Name of the daemon's log inside `BACKING/.durafs/`.
pub const LOG_FILE: &str = "daemon.log";
/// Inside `BACKING/.durafs/`: empty while serving; when the sync at unmount
/// failed, JSON with `error` and `status` (the report of what was not
/// persisted). Read and removed by `durafs umount`; emptied by the next
/// daemon at start.
pub const UNMOUNT_FAILED: &str = "unmount-failed";
const READY: &str = "ready";

pub fn mount(args: MountArgs) -> Result<()> {
    let persistence = args.model;
    if args.foreground || args.daemonized {
        return serve(&args, persistence);
    }
    spawn_daemon(&args)
}

/// Starts the background daemon and waits for its first line.
fn spawn_daemon(args: &MountArgs) -> Result<()> {
    let meta = args.backing.join(META_DIR);
    fs::create_dir_all(&meta)
        .map_err(|e| err(format!("creating {}: {e}", args.backing.display())))?;
    let log_path = meta.join(LOG_FILE);
    let log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .map_err(|e| err(format!("{}: {e}", log_path.display())))?;
    let exe = std::env::current_exe()
        .map_err(|e| err(format!("cannot find the durafs executable: {e}")))?;
    let mut cmd = Command::new(exe);
    cmd.arg("mount")
        .arg("--daemonized")
        .arg("--model")
        .arg(args.model.name())
        .arg("--dirty-limit")
        .arg(args.dirty_limit.to_string())
        .arg("--threads")
        .arg(args.threads.to_string());
    if args.real_fsync {
        cmd.arg("--real-fsync");
    }
    if let Some(f) = args.fsync_failure {
        cmd.arg("--fsync-failure").arg(f.name());
    }
    if args.writeback_cache {
        cmd.arg("--writeback-cache");
    }
    if args.allow_other {
        cmd.arg("--allow-other");
    }
    if let Some(t) = args.transport {
        cmd.arg("--transport").arg(t.to_string());
    }
    if let Some(f) = &args.faults {
        let f =
            std::path::absolute(f).map_err(|e| err(format!("--faults {}: {e}", f.display())))?;
        cmd.arg("--faults").arg(f);
    }
    if let Some(t) = &args.trace {
        // The daemon's working directory may differ: pass it absolute.
        let t = std::path::absolute(t).map_err(|e| err(format!("--trace {}: {e}", t.display())))?;
        cmd.arg("--trace").arg(t);
    }
    cmd.arg(&args.backing)
        .arg(&args.mountpoint)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::from(log));
    // SAFETY: setsid is async-signal-safe; it detaches the daemon from the
    // caller's session and terminal.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(&mut cmd, || {
            libc::setsid();
            Ok(())
        });
    }
    let mut child = cmd
        .spawn()
        .map_err(|e| err(format!("starting the daemon: {e}")))?;
    let Some(out) = child.stdout.take() else {
        return Err(err("starting the daemon: no pipe"));
    };
    let mut line = String::new();
    let read = BufReader::new(out).read_line(&mut line);
    match (read, line.trim_end()) {
        (Ok(_), READY) => Ok(()),
        (Ok(_), msg) if !msg.is_empty() => {
            let _ = child.wait();
            Err(err(msg.to_string()))
        }
        _ => {
            let status = child.wait().map(|s| s.to_string()).unwrap_or_default();
            Err(err(format!(
                "the daemon exited ({status}) before the mount was ready; see {}",
                log_path.display()
            )))
        }
    }
}

fn serve(args: &MountArgs, persistence: Persistence) -> Result<()> {
    // IMPORTANT: before any thread starts: a thread that allocated before
    // keeps an arena of its own, which serving threads may then share.
    let _ = mount::tune_allocator();
    let ready = |r: &Result<()>| {
        if args.daemonized {
            let line = match r {
                Ok(()) => READY.to_string(),
                Err(e) => e.to_string(),
            };
            let mut out = io::stdout();
            let _ = writeln!(out, "{line}").and_then(|()| out.flush());
            redirect_stdout_to_null();
        }
    };
    // Handled from before the mount exists, so that a signal never finds
    // the default action (death with the mount left behind).
    let (signalled, signals) = std::sync::mpsc::channel();
    if let Err(e) = crate::signals::on_stop(move |sig| {
        let _ = signalled.send(sig);
    }) {
        log::warn!("durafs: cannot handle signals ({e}): a signal kills the daemon outright");
    }
    let started =
        plan(args).and_then(|faults| Ok((start(args, persistence, &faults, true)?, faults)));
    let (mut mounted, _) = match started {
        Ok(m) => m,
        Err(e) => {
            ready(&Err(err(e.to_string())));
            return Err(e);
        }
    };
    ready(&Ok(()));
    // The signal goes to whichever mount is serving.
    let stop = Arc::new(std::sync::Mutex::new(mounted.stopper()));
    let current = Arc::clone(&stop);
    std::thread::spawn(move || {
        if let Ok(sig) = signals.recv() {
            log::info!("durafs: {}: unmounting", crate::signals::name(sig));
            if let Ok(s) = current.lock() {
                let _ = s.send(MountEvent::Stop);
            }
        }
    });
    loop {
        log::info!(
            "durafs: serving {} at {} (model {}, pid {})",
            mounted.fs().info().backing,
            mounted.mountpoint().display(),
            persistence,
            std::process::id()
        );
        let Some(faults) = serve_until_end(mounted) else {
            return Ok(());
        };
        log::info!("durafs: a fault's cut asked for a remount: mounting the post-crash state");
        mounted = start(args, persistence, &faults, false)?;
        if let Ok(mut s) = stop.lock() {
            *s = mounted.stopper();
        }
    }
}

/// Serves `mounted` until it ends; the faults still armed when a fault's
/// cut asked for a remount.
fn serve_until_end(mounted: Mounted) -> Option<Vec<Vec<String>>> {
    match mounted.wait() {
        MountEvent::CutRequested => {
            log::info!("durafs: power cut: tearing the mount down");
            let fs = Arc::clone(mounted.fs());
            mounted.die();
            log::debug!("durafs: cut mount torn down");
            let remount = fs.remount_requested().then(|| {
                fs.faults()
                    .armed_specs()
                    .iter()
                    .filter_map(|s| shlex::split(s))
                    .collect()
            });
            if remount.is_none() {
                // IMPORTANT: the process exits next and the kernel takes
                // the model's memory back at once; dropping it would walk
                // every pending inode first (a cut's client waits for it).
                std::mem::forget(fs);
            }
            remount
        }
        MountEvent::Unmounted => {
            log::info!("durafs: unmounted");
            let fs = Arc::clone(mounted.fs());
            mounted.join();
            if let Some(why) = fs.unmount_failure() {
                record_unmount_failure(&fs, &why);
            }
            None
        }
        MountEvent::Stop => {
            let fs = Arc::clone(mounted.fs());
            if let Err(e) = mounted.unmount() {
                log::warn!("durafs: clean unmount failed ({e}); detached lazily");
                record_unmount_failure(&fs, &e.to_string());
            }
            None
        }
    }
}

/// The faults of `--faults FILE`, checked: a malformed plan refuses the
/// mount with the line and column.
fn plan(args: &MountArgs) -> Result<Vec<Vec<String>>> {
    let Some(path) = &args.faults else {
        return Ok(Vec::new());
    };
    let text =
        fs::read_to_string(path).map_err(|e| err(format!("--faults {}: {e}", path.display())))?;
    let plan = durafs::faults::plan::parse(&text)
        .map_err(|e| err(format!("--faults {}: {e}", path.display())))?;
    Ok(plan.into_iter().map(|p| p.words).collect())
}

/// Leaves `BACKING/.durafs/unmount-failed` for `durafs umount`: written
/// in place into the file [`reserve_unmount_record`] made, so that a backing
/// out of inodes (often the cause) can still take it.
fn record_unmount_failure(fs: &DuraFs, why: &str) {
    let Some(root) = fs.backing_root() else {
        return;
    };
    let path = root.join(META_DIR).join(UNMOUNT_FAILED);
    let status: serde_json::Value =
        serde_json::from_slice(&durafs::control::status_reply(fs)).unwrap_or_default();
    let v = serde_json::json!({ "error": why, "status": status });
    let written = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&path)
        .and_then(|mut f| {
            f.write_all(v.to_string().as_bytes())?;
            durafs::fsio::fsync_file(&f)
        });
    if let Err(e) = written {
        log::error!(
            "durafs: recording the failed unmount in {}: {e}; not persisted: {v}",
            path.display()
        );
    }
}

/// Creates `BACKING/.durafs/unmount-failed` empty (no failure yet): a
/// record left by an earlier daemon is no news of this one.
fn reserve_unmount_record(backing: &Path) {
    let path = backing.join(META_DIR).join(UNMOUNT_FAILED);
    if let Err(e) = File::create(&path) {
        log::warn!("durafs: {}: {e}", path.display());
    }
}

fn redirect_stdout_to_null() {
    if let Ok(null) = File::options().write(true).open("/dev/null") {
        use std::os::fd::AsRawFd;
        // SAFETY: both descriptors are valid.
        unsafe { libc::dup2(null.as_raw_fd(), libc::STDOUT_FILENO) };
    }
}

/// Opens the volume, arms `faults`, and mounts it; `first`: the first
/// mount of this daemon (a remount neither traces nor checks the
/// mountpoint's emptiness against files the dead mount hid).
fn start(
    args: &MountArgs,
    persistence: Persistence,
    faults: &[Vec<String>],
    first: bool,
) -> Result<Mounted> {
    let mnt = check_mountpoint(&args.mountpoint)?;
    fs::create_dir_all(&args.backing)
        .map_err(|e| err(format!("creating {}: {e}", args.backing.display())))?;
    let backing = fs::canonicalize(&args.backing)
        .map_err(|e| err(format!("{}: {e}", args.backing.display())))?;
    if mnt.starts_with(&backing) || backing.starts_with(&mnt) {
        return Err(err(format!(
            "the mountpoint {} and the backing directory {} must not contain each other",
            mnt.display(),
            backing.display()
        )));
    }
    let opts = FsOptions {
        persistence,
        real_fsync: args.real_fsync,
        dirty_limit: args.dirty_limit,
        fsync_failure: crate::fsync_failure(persistence, args.fsync_failure),
    };
    let fs = DuraFs::open(&backing, opts).map_err(|e| err(format!("backing directory {e}")))?;
    reserve_unmount_record(&backing);
    for words in faults {
        fs.add_fault_words(words)
            .map_err(|e| err(format!("fault {}: {e}", durafs::faults::spec_text(words))))?;
    }
    if let Some(t) = args.trace.as_ref().filter(|_| first) {
        let file = File::create(t).map_err(|e| err(format!("--trace {}: {e}", t.display())))?;
        fs.start_trace(false, Some(file))
            .map_err(|e| err(format!("--trace {}: {e}", t.display())))?;
    }
    mount::mount(
        Arc::new(fs),
        &mnt,
        &MountOptions {
            threads: args.threads.max(1),
            writeback_cache: args.writeback_cache,
            allow_other: args.allow_other,
            transport: args.transport,
        },
    )
    .map_err(|e| err(e.to_string()))
}

/// Checks that `mnt` is an empty directory nothing is mounted on, after
/// clearing a dead durafs mount (a killed daemon) there. Returns the
/// canonical path.
fn check_mountpoint(mnt: &Path) -> Result<PathBuf> {
    if mount::is_dead_mount(mnt) {
        log::info!(
            "durafs: {}: clearing the dead mount of a daemon that was killed",
            mnt.display()
        );
        mount::detach(mnt);
    }
    let md = fs::metadata(mnt).map_err(|e| match e.kind() {
        io::ErrorKind::NotFound => err(format!("mountpoint {} does not exist", mnt.display())),
        _ => err(format!("mountpoint {}: {e}", mnt.display())),
    })?;
    if !md.is_dir() {
        return Err(err(format!(
            "mountpoint {} is not a directory",
            mnt.display()
        )));
    }
    let mnt = fs::canonicalize(mnt).map_err(|e| err(format!("{}: {e}", mnt.display())))?;
    let parent = mnt.parent().unwrap_or(Path::new("/"));
    let pmd = fs::metadata(parent).map_err(|e| err(format!("{}: {e}", parent.display())))?;
    if pmd.dev() != md.dev() || pmd.ino() == md.ino() {
        return Err(err(format!(
            "mountpoint {} is busy: something is already mounted there (durafs umount {0})",
            mnt.display()
        )));
    }
    let mut entries =
        fs::read_dir(&mnt).map_err(|e| err(format!("mountpoint {}: {e}", mnt.display())))?;
    if entries.next().is_some() {
        return Err(err(format!("mountpoint {} is not empty", mnt.display())));
    }
    Ok(mnt)
}
