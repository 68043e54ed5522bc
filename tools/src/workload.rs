//! What `durafs run` and `durafs explore` share: a scratch volume in a
//! work directory (optionally seeded from `--init`), the program under test
//! in its own process group, and checks run through `sh -c`.

use crate::{Result, err};
use durafs::META_DIR;
use durafs::fs::{DuraFs, FsOptions};
use durafs::mount::{self, MountOptions, Mounted};
use std::fs;
use std::io;
use std::os::fd::AsFd;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Arc, Mutex};

/// Environment variable naming the mount a workload or check runs on.
pub const ENV_MOUNT: &str = "DURAFS_MOUNT";
/// Environment variable naming a materialised crash state.
pub const ENV_STATE: &str = "DURAFS_STATE";
/// Environment variable naming the file of marks recorded before a crash.
pub const ENV_MARKS: &str = "DURAFS_MARKS";

/// Process groups (programs and checks) killed when the command is
/// interrupted.
static GROUPS: Mutex<Vec<u32>> = Mutex::new(Vec::new());
/// The first stop signal received (0: none).
static SIGNAL: AtomicI32 = AtomicI32::new(0);

/// Makes SIGINT, SIGTERM and SIGHUP kill every program and check this
/// command started, so that its own code unwinds: mounts are unmounted and
/// temp dirs removed by their `Drop`s, and `explore` reports what it
/// checked. A second signal exits at once.
pub fn kill_children_on_interrupt() {
    let installed = crate::signals::on_stop(|sig| {
        if SIGNAL.swap(sig, Ordering::SeqCst) != 0 {
            eprintln!(
                "durafs: {} again: exiting now (temp dirs may be left behind)",
                crate::signals::name(sig)
            );
            std::process::exit(i32::from(crate::signals::exit_status(sig)));
        }
        eprintln!(
            "durafs: {}: stopping the program and cleaning up",
            crate::signals::name(sig)
        );
        let groups = GROUPS.lock().map(|g| g.clone()).unwrap_or_default();
        for g in groups {
            kill_group(g);
        }
    });
    if let Err(e) = installed {
        log::warn!("durafs: cannot handle signals ({e}): an interrupt kills durafs outright");
    }
}

/// The signal that interrupted the command, if one did.
pub fn interrupted_by() -> Option<i32> {
    match SIGNAL.load(Ordering::SeqCst) {
        0 => None,
        s => Some(s),
    }
}

/// True once the command was interrupted.
pub fn interrupted() -> bool {
    interrupted_by().is_some()
}

/// An error when the command was interrupted.
pub fn check_interrupted() -> Result<()> {
    if interrupted() {
        Err(err("interrupted"))
    } else {
        Ok(())
    }
}

fn register(pgid: u32) {
    if let Ok(mut g) = GROUPS.lock() {
        g.push(pgid);
    }
    // A signal that came before the group existed still stops it.
    if interrupted() {
        kill_group(pgid);
    }
}

fn unregister(pgid: u32) {
    if let Ok(mut g) = GROUPS.lock() {
        g.retain(|&p| p != pgid);
    }
}

/// A work directory: a temp dir removed on drop, or one the user named.
pub struct WorkDir {
    path: PathBuf,
    _tmp: Option<tempfile::TempDir>,
}

/// Gives `dir` mode 0755, so that other users can reach what is under it.
pub fn traversable(dir: &Path) -> Result<()> {
    fs::set_permissions(dir, fs::Permissions::from_mode(0o755))
        .map_err(|e| err(format!("chmod 755 {}: {e}", dir.display())))
}

impl WorkDir {
    /// Lets other users traverse a temp dir (for `--allow-other`); a
    /// directory the user gave is left as it is.
    pub fn open_to_all(&self) -> Result<()> {
        match self._tmp {
            Some(_) => traversable(&self.path),
            None => Ok(()),
        }
    }

    /// `dir` when given (created; must be empty or missing), else a temp dir.
    pub fn new(dir: Option<&Path>, prefix: &str) -> Result<WorkDir> {
        match dir {
            Some(d) => {
                fs::create_dir_all(d).map_err(|e| err(format!("{}: {e}", d.display())))?;
                let mut it = fs::read_dir(d).map_err(|e| err(format!("{}: {e}", d.display())))?;
                if it.next().is_some() {
                    return Err(err(format!(
                        "--dir {} is not empty (durafs puts its volumes there)",
                        d.display()
                    )));
                }
                let path = fs::canonicalize(d).map_err(|e| err(format!("{}: {e}", d.display())))?;
                Ok(WorkDir { path, _tmp: None })
            }
            None => {
                let tmp = tempfile::Builder::new()
                    .prefix(prefix)
                    .tempdir()
                    .map_err(|e| err(format!("creating a temp dir: {e}")))?;
                Ok(WorkDir {
                    path: tmp.path().to_path_buf(),
                    _tmp: Some(tmp),
                })
            }
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// True when the directory is removed on drop.
    pub fn is_temporary(&self) -> bool {
        self._tmp.is_some()
    }
}

/// Copies the tree at `from` into `to` (files, directories, symlinks,
/// permission bits). A top-level `.durafs` is skipped: that name is the
/// volume's own.
pub fn copy_tree(from: &Path, to: &Path) -> Result<()> {
    let e = |p: &Path, e: io::Error| err(format!("--init: {}: {e}", p.display()));
    let md = fs::metadata(from).map_err(|x| e(from, x))?;
    if !md.is_dir() {
        return Err(err(format!(
            "--init: {} is not a directory",
            from.display()
        )));
    }
    fs::create_dir_all(to).map_err(|x| e(to, x))?;
    copy_dir(from, to, true).map_err(|(p, x)| e(&p, x))
}

fn copy_dir(from: &Path, to: &Path, top: bool) -> std::result::Result<(), (PathBuf, io::Error)> {
    let entries = fs::read_dir(from).map_err(|e| (from.to_path_buf(), e))?;
    for entry in entries {
        let entry = entry.map_err(|e| (from.to_path_buf(), e))?;
        let src = entry.path();
        if top && entry.file_name() == META_DIR {
            log::warn!(
                "durafs: --init: skipping {} (a reserved name)",
                src.display()
            );
            continue;
        }
        let dst = to.join(entry.file_name());
        let md = fs::symlink_metadata(&src).map_err(|e| (src.clone(), e))?;
        let ft = md.file_type();
        if ft.is_dir() {
            fs::create_dir(&dst).map_err(|e| (dst.clone(), e))?;
            copy_dir(&src, &dst, false)?;
            fs::set_permissions(&dst, fs::Permissions::from_mode(md.permissions().mode()))
                .map_err(|e| (dst.clone(), e))?;
        } else if ft.is_symlink() {
            let target = fs::read_link(&src).map_err(|e| (src.clone(), e))?;
            std::os::unix::fs::symlink(target, &dst).map_err(|e| (dst.clone(), e))?;
        } else if ft.is_file() {
            fs::copy(&src, &dst).map_err(|e| (src.clone(), e))?;
        } else {
            log::warn!("durafs: --init: skipping special file {}", src.display());
        }
    }
    Ok(())
}

/// The trace of `mounted`, started when it was mounted (see [`volume`]).
pub fn take_trace(mounted: &Mounted) -> Result<durafs::trace::Trace> {
    mounted
        .fs()
        .finish_trace()
        .unwrap_or_else(|| Err(io::Error::other("the volume was not traced")))
        .map_err(|e| err(format!("tracing: {e}")))
}

/// A fresh volume: `BACKING` (seeded from `init`) mounted at `MNT`, both
/// under `dir`. With `allow_other`, every user may use the mount and `dir`
/// is made traversable (its parent must be, see [`WorkDir::open_to_all`]).
pub fn volume(
    dir: &Path,
    init: Option<&Path>,
    opts: FsOptions,
    allow_other: bool,
    prepare: impl FnOnce(&DuraFs) -> Result<()>,
) -> Result<Mounted> {
    let backing = dir.join("backing");
    let mnt = dir.join("mnt");
    fs::create_dir_all(&mnt).map_err(|e| err(format!("{}: {e}", mnt.display())))?;
    if allow_other {
        traversable(dir)?;
    }
    if let Some(init) = init {
        copy_tree(init, &backing)?;
    }
    let fs = DuraFs::open(&backing, opts).map_err(|e| err(format!("backing directory {e}")))?;
    prepare(&fs)?;
    mount::mount(
        Arc::new(fs),
        &mnt,
        &MountOptions {
            threads: 4,
            allow_other,
            ..MountOptions::default()
        },
    )
    .map_err(|e| err(format!("mounting {}: {e}", mnt.display())))
}

/// Environment variable naming the `durafs` binary that runs the workload.
pub const ENV_DURAFS: &str = "DURAFS";

/// `(directory with a `durafs` link, the binary)` put on the PATH of
/// workloads and checks ([`provide_durafs`]).
static TOOL: std::sync::OnceLock<(PathBuf, PathBuf)> = std::sync::OnceLock::new();

/// Makes `durafs` reachable from every workload and check this command
/// starts: `WORK/bin/durafs` links to this binary, `WORK/bin` goes first on
/// their PATH and `$DURAFS` names the binary (so `durafs mark` works in a
/// script whatever the PATH).
pub fn provide_durafs(work: &Path) -> Result<()> {
    let exe =
        std::env::current_exe().map_err(|e| err(format!("finding the durafs binary: {e}")))?;
    let bin = work.join("bin");
    fs::create_dir_all(&bin).map_err(|e| err(format!("{}: {e}", bin.display())))?;
    let link = bin.join("durafs");
    let _ = fs::remove_file(&link);
    std::os::unix::fs::symlink(&exe, &link).map_err(|e| err(format!("{}: {e}", link.display())))?;
    let _ = TOOL.set((bin, exe));
    Ok(())
}

/// Puts `durafs` on `cmd`'s PATH and in `$DURAFS` (see [`provide_durafs`]).
fn with_durafs(cmd: &mut Command) {
    if let Some((bin, exe)) = TOOL.get() {
        let mut path = std::ffi::OsString::from(bin.as_os_str());
        if let Some(old) = std::env::var_os("PATH") {
            path.push(":");
            path.push(old);
        }
        cmd.env("PATH", path).env(ENV_DURAFS, exe);
    }
}

/// Starts `argv` in `cwd` in a new process group, with `env`. Its stdout
/// goes to this process's stderr, so that stdout carries durafs's report
/// alone (one JSON document with `--json`).
pub fn spawn(argv: &[String], cwd: &Path, env: &[(&str, &Path)]) -> Result<Child> {
    spawn_to(argv, cwd, env, to_stderr()?)
}

/// A child's output sent to this process's stderr.
pub fn to_stderr() -> Result<Stdio> {
    let fd = io::stderr()
        .as_fd()
        .try_clone_to_owned()
        .map_err(|e| err(format!("duplicating stderr: {e}")))?;
    Ok(Stdio::from(fd))
}

/// As [`spawn`], the program's stdout going to `stdout`.
pub fn spawn_to(
    argv: &[String],
    cwd: &Path,
    env: &[(&str, &Path)],
    stdout: Stdio,
) -> Result<Child> {
    start(argv, cwd, env, stdout, None)
}

/// As [`spawn`], the program's stdout and stderr both going to the file
/// `log` (shown when the program fails).
pub fn spawn_logged(
    argv: &[String],
    cwd: &Path,
    env: &[(&str, &Path)],
    log: &Path,
) -> Result<Child> {
    let e = |x: io::Error| err(format!("{}: {x}", log.display()));
    let out = fs::File::create(log).map_err(e)?;
    let errs = out.try_clone().map_err(e)?;
    start(argv, cwd, env, out.into(), Some(errs.into()))
}

fn start(
    argv: &[String],
    cwd: &Path,
    env: &[(&str, &Path)],
    stdout: Stdio,
    stderr: Option<Stdio>,
) -> Result<Child> {
    let Some((prog, args)) = argv.split_first() else {
        return Err(err("no command given (after --)"));
    };
    let mut cmd = Command::new(prog);
    cmd.args(args)
        .current_dir(cwd)
        .process_group(0)
        .stdout(stdout);
    if let Some(e) = stderr {
        cmd.stderr(e);
    }
    with_durafs(&mut cmd);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let child = cmd
        .spawn()
        .map_err(|e| err(format!("starting {prog:?}: {e}")))?;
    register(child.id());
    Ok(child)
}

/// SIGKILL to the process group `pgid` (the program under test and every
/// process it started that stayed in its group).
pub fn kill_group(pgid: u32) {
    let Ok(pgid) = libc::pid_t::try_from(pgid) else {
        return;
    };
    // SAFETY: kill(2) with a negative pid signals a process group.
    if unsafe { libc::kill(-pgid, libc::SIGKILL) } != 0 {
        let e = io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::ESRCH) {
            log::warn!("durafs: killing process group {pgid}: {e}");
        }
    }
}

/// How a check ended.
#[derive(Clone, Debug)]
pub struct CheckRun {
    pub status: ExitStatus,
    /// stdout then stderr, lossily decoded.
    pub output: String,
    /// It ran out of time and its process group was killed.
    pub timed_out: bool,
}

impl CheckRun {
    pub fn passed(&self) -> bool {
        self.status.success() && !self.timed_out
    }

    /// The exit code, or 128 + the signal that killed it.
    pub fn code(&self) -> i32 {
        use std::os::unix::process::ExitStatusExt;
        self.status
            .code()
            .or_else(|| self.status.signal().map(|s| 128 + s))
            .unwrap_or(1)
    }
}

/// Runs `sh -c check` in `cwd` with `env`; its output is captured when
/// `capture`, else it goes to this process's stdout and stderr.
pub fn run_check(
    check: &str,
    cwd: &Path,
    env: &[(&str, &Path)],
    capture: bool,
) -> Result<CheckRun> {
    run_check_timed(check, cwd, env, capture, None)
}

/// [`run_check`], killing the check's process group after `timeout`.
pub fn run_check_timed(
    check: &str,
    cwd: &Path,
    env: &[(&str, &Path)],
    capture: bool,
    timeout: Option<std::time::Duration>,
) -> Result<CheckRun> {
    // A path, not `sh`: with PATH set for the child, std resolves a bare
    // name by fork + exec, whose copy of this process's page tables costs
    // more than a trivial check; a path lets it use posix_spawn (vfork).
    let mut cmd = Command::new("/bin/sh");
    cmd.arg("-c")
        .arg(check)
        .current_dir(cwd)
        .stdin(Stdio::null())
        .process_group(0);
    with_durafs(&mut cmd);
    for (k, v) in env {
        cmd.env(k, v);
    }
    if capture {
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    }
    let child = cmd
        .spawn()
        .map_err(|e| err(format!("starting the check: {e}")))?;
    let pgid = child.id();
    register(pgid);
    let (finished, watch) = std::sync::mpsc::channel::<()>();
    let watchdog = timeout.map(|t| {
        std::thread::spawn(move || {
            let late = watch.recv_timeout(t) == Err(std::sync::mpsc::RecvTimeoutError::Timeout);
            if late {
                kill_group(pgid);
            }
            late
        })
    });
    let out = child.wait_with_output();
    let _ = finished.send(());
    let timed_out = watchdog.is_some_and(|w| w.join().unwrap_or(false));
    unregister(pgid);
    let out = out.map_err(|e| err(format!("waiting for the check: {e}")))?;
    let mut output = String::from_utf8_lossy(&out.stdout).into_owned();
    output.push_str(&String::from_utf8_lossy(&out.stderr));
    Ok(CheckRun {
        status: out.status,
        output,
        timed_out,
    })
}

/// Writes `marks` one per line to `path`.
pub fn write_marks(path: &Path, marks: &[String]) -> Result<()> {
    let mut text = marks.join("\n");
    if !text.is_empty() {
        text.push('\n');
    }
    fs::write(path, text).map_err(|e| err(format!("{}: {e}", path.display())))
}

/// `s` quoted for a POSIX shell (unchanged when it needs no quoting), by
/// `shlex`. A NUL byte cannot be passed in a shell word (nor in an
/// argument), so it is dropped.
pub fn shell_quote(s: &str) -> String {
    match shlex::try_quote(s) {
        Ok(q) => q.into_owned(),
        Err(_) => shell_quote(&s.replace('\0', "")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shell_quoting_survives_a_round_trip_through_sh() {
        for s in [
            "plain",
            "two words",
            "it's",
            "",
            "$HOME",
            "a\"b",
            "x;y",
            "'both' \"quotes\"",
            "back\\slash `cmd`",
            "new\nline",
            "--model=ext4",
        ] {
            let out = Command::new("sh")
                .arg("-c")
                .arg(format!("printf %s {}", shell_quote(s)))
                .output()
                .unwrap();
            assert_eq!(String::from_utf8(out.stdout).unwrap(), s);
        }
        assert_eq!(shell_quote("plain/path-1.txt"), "plain/path-1.txt");
        assert_eq!(shell_quote("a\0b c"), shell_quote("ab c"));
    }

    #[test]
    fn copy_tree_keeps_files_links_and_modes_and_skips_the_reserved_name() {
        let src = tempfile::tempdir().unwrap();
        let p = src.path();
        fs::create_dir(p.join("d")).unwrap();
        fs::write(p.join("d/f"), b"x").unwrap();
        fs::set_permissions(p.join("d/f"), fs::Permissions::from_mode(0o600)).unwrap();
        std::os::unix::fs::symlink("d/f", p.join("l")).unwrap();
        fs::create_dir(p.join(META_DIR)).unwrap();
        let dst = tempfile::tempdir().unwrap();
        copy_tree(p, &dst.path().join("copy")).unwrap();
        let c = dst.path().join("copy");
        assert_eq!(fs::read(c.join("d/f")).unwrap(), b"x");
        assert_eq!(
            fs::metadata(c.join("d/f")).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(fs::read_link(c.join("l")).unwrap(), Path::new("d/f"));
        assert!(!c.join(META_DIR).exists());
        assert!(copy_tree(&p.join("d/f"), &c).is_err());
    }
}
