//! Peers: other FUSE filesystems measured in the same rotation as native
//! and durafs (`--peer`).
//!
//! A peer is a mount command with the placeholders `{backing}` and `{mnt}`
//! (`--peer NAME='MOUNT-CMD {backing} {mnt}'`, split into words as a POSIX
//! shell would, by `shlex`, then substituted word by word: no shell runs).
//! `--peer passthrough_ll[=PATH]` is libfuse's C `passthrough_ll`, run in
//! the foreground as `PATH -f -o source={backing} {mnt}`; without a path it
//! is built from the third-party directory (see [`build_passthrough_ll`]).
//! `--peer durafs-dev` and `--peer durafs-uring` are durafs itself, mounted
//! with the bench's mount options over `/dev/fuse` or FUSE over io_uring
//! (`durafs mount --foreground --transport`), to compare the transports in
//! one run.
//!
//! [`PeerMount`] owns one mount: the command runs in its own process group
//! (a Ctrl-C meant for the benchmark does not kill it half way), the mount
//! counts as made once `{mnt}` is in `/proc/self/mountinfo` (polled, with a
//! bound), and on drop (also on error or panic) the mount is unmounted
//! (`umount`, else a lazy detach), the command reaped (killed if it
//! outlives its mount by [`EXIT_TIMEOUT`]) and the backing emptied. A
//! command that daemonises (exits 0 once mounted) works too.

use super::host;
use super::volume::MountOpts;
use crate::{Result, err, usage};
use durafs::transport::Transport;
use std::fs;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

/// The peer that gets targets (`Workload::peer_target`).
pub const PASSTHROUGH_LL: &str = "passthrough_ll";
/// The durafs peers' names: `durafs-` and a transport.
const DURAFS_PEER: &str = "durafs-";
/// The environment variable naming the third-party directory.
pub const ENV_THIRD_PARTY: &str = "DURAFS_THIRD_PARTY";
/// The passthrough_ll sources, under the third-party directory.
const PASSTHROUGH_SRC: &str = "libfuse-3.14.0-passthrough_ll";
/// How long a peer's command may take to mount.
pub const MOUNT_TIMEOUT: Duration = Duration::from_secs(20);
/// How long a peer's process may live on after its mount is gone.
pub const EXIT_TIMEOUT: Duration = Duration::from_secs(10);
/// The interval of the mount table and process polls.
const POLL: Duration = Duration::from_millis(5);

/// One `--peer` as given.
#[derive(Clone, Debug, PartialEq)]
pub enum PeerArg {
    /// `passthrough_ll` (built here) or `passthrough_ll=PATH`.
    PassthroughLl(Option<PathBuf>),
    /// `NAME=MOUNT-CMD`: the command's words, placeholders unsubstituted.
    Command { name: String, argv: Vec<String> },
    /// `durafs-dev` or `durafs-uring`: durafs over that transport.
    Durafs(Transport),
}

/// A peer ready to mount.
#[derive(Clone, Debug, PartialEq)]
pub struct Peer {
    pub name: String,
    /// The command's words with `{backing}` and `{mnt}` in them.
    pub argv: Vec<String>,
    /// The command for the groups measured with real fsyncs
    /// (`append-4k-fsync-real`) where it differs: a durafs peer's adds
    /// `--real-fsync`, as the durafs side's mount does.
    pub real_fsync_argv: Option<Vec<String>>,
}

impl Peer {
    /// This peer as it mounts for a group with (`true`) or without real
    /// fsyncs.
    pub fn for_group(&self, real_fsync: bool) -> Peer {
        match (&self.real_fsync_argv, real_fsync) {
            (Some(argv), true) => Peer {
                name: self.name.clone(),
                argv: argv.clone(),
                real_fsync_argv: None,
            },
            _ => self.clone(),
        }
    }

    /// The command for one mount: each placeholder replaced by its path.
    pub fn argv_for(&self, backing: &Path, mnt: &Path) -> Vec<String> {
        let (b, m) = (backing.display().to_string(), mnt.display().to_string());
        self.argv
            .iter()
            .map(|w| w.replace("{backing}", &b).replace("{mnt}", &m))
            .collect()
    }

    /// The command as a shell would read it (for reports and errors).
    pub fn command(&self) -> String {
        let words: Vec<String> = self
            .argv
            .iter()
            .map(|w| crate::workload::shell_quote(w))
            .collect();
        words.join(" ")
    }

    fn passthrough_ll(path: &Path) -> Peer {
        Peer {
            name: PASSTHROUGH_LL.to_string(),
            argv: vec![
                path.display().to_string(),
                "-f".into(),
                "-o".into(),
                "source={backing}".into(),
                "{mnt}".into(),
            ],
            real_fsync_argv: None,
        }
    }
}

/// Parses one `--peer` value.
pub fn parse(spec: &str) -> Result<PeerArg> {
    let (name, rest) = match spec.split_once('=') {
        Some((n, r)) => (n.trim(), Some(r.trim())),
        None => (spec.trim(), None),
    };
    check_name(name)?;
    let Some(rest) = rest else {
        if name == PASSTHROUGH_LL {
            return Ok(PeerArg::PassthroughLl(None));
        }
        if let Some(t) = name.strip_prefix(DURAFS_PEER) {
            return t
                .parse()
                .map(PeerArg::Durafs)
                .map_err(|e| usage(format!("--peer {name}: {e}")));
        }
        return Err(usage(format!(
            "--peer {name}: give its mount command, --peer {name}='MOUNT-CMD {{backing}} {{mnt}}' \
             (only {PASSTHROUGH_LL}, {DURAFS_PEER}dev and {DURAFS_PEER}uring may be named alone)"
        )));
    };
    let is_path = !rest.contains(char::is_whitespace) && !rest.contains('{');
    if name == PASSTHROUGH_LL && is_path && !rest.is_empty() {
        return Ok(PeerArg::PassthroughLl(Some(PathBuf::from(rest))));
    }
    let argv = shlex::split(rest).ok_or_else(|| {
        usage(format!(
            "--peer {name}: cannot split {rest:?} into words (unbalanced quotes?)"
        ))
    })?;
    if argv.is_empty() {
        return Err(usage(format!("--peer {name}: the mount command is empty")));
    }
    for p in ["{backing}", "{mnt}"] {
        if !argv.iter().any(|w| w.contains(p)) {
            return Err(usage(format!(
                "--peer {name}: the mount command must contain {p} (it mounts the backing \
                 directory {{backing}} at {{mnt}})"
            )));
        }
    }
    Ok(PeerArg::Command {
        name: name.to_string(),
        argv,
    })
}

/// A peer's name: letters, digits, `_`, `-`, `.`; not a side's name.
fn check_name(name: &str) -> Result<()> {
    let ok = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.');
    if name.is_empty() || !name.chars().all(ok) {
        return Err(usage(format!(
            "--peer: bad name {name:?} (letters, digits, _, - and . only), as in \
             --peer NAME='MOUNT-CMD {{backing}} {{mnt}}'"
        )));
    }
    if name == "native" || name == "durafs" {
        return Err(usage(format!(
            "--peer: {name:?} is already a side; name the peer otherwise"
        )));
    }
    Ok(())
}

/// Parses every `--peer`; a name given twice is an error.
pub fn parse_all(specs: &[String]) -> Result<Vec<PeerArg>> {
    let mut out: Vec<PeerArg> = Vec::new();
    let mut names: Vec<String> = Vec::new();
    for s in specs {
        let a = parse(s)?;
        let name = match &a {
            PeerArg::PassthroughLl(_) => PASSTHROUGH_LL.to_string(),
            PeerArg::Command { name, .. } => name.clone(),
            PeerArg::Durafs(t) => format!("{DURAFS_PEER}{t}"),
        };
        if names.contains(&name) {
            return Err(usage(format!("--peer {name} is given twice")));
        }
        names.push(name);
        out.push(a);
    }
    Ok(out)
}

/// The peers ready to mount: passthrough_ll built when no path was given
/// (failing, before any run, with how to get it); a durafs peer is `exe
/// mount` with `mount` (the bench's mount options) over its own transport.
pub fn resolve(args: &[PeerArg], cache: &Path, exe: &Path, mount: MountOpts) -> Result<Vec<Peer>> {
    args.iter()
        .map(|a| match a {
            PeerArg::PassthroughLl(Some(path)) => {
                if !path.is_file() {
                    return Err(err(format!(
                        "--peer {PASSTHROUGH_LL}={}: no such file",
                        path.display()
                    )));
                }
                Ok(Peer::passthrough_ll(path))
            }
            PeerArg::PassthroughLl(None) => {
                let path = build_passthrough_ll(&third_party_dir(), cache)?;
                Ok(Peer::passthrough_ll(&path))
            }
            PeerArg::Command { name, argv } => Ok(Peer {
                name: name.clone(),
                argv: argv.clone(),
                real_fsync_argv: None,
            }),
            PeerArg::Durafs(t) => {
                let argv = |real_fsync| {
                    let opts = MountOpts {
                        real_fsync,
                        transport: Some(*t),
                        ..mount
                    };
                    // IMPORTANT: in the foreground, so that the harness
                    // reaps the daemon, which persists its state at the
                    // unmount, before it empties the backing for the next
                    // side.
                    let mut argv = vec![
                        exe.display().to_string(),
                        "mount".into(),
                        "--foreground".into(),
                    ];
                    argv.extend(opts.args());
                    argv.extend(["{backing}".into(), "{mnt}".into()]);
                    argv
                };
                Ok(Peer {
                    name: format!("{DURAFS_PEER}{t}"),
                    argv: argv(mount.real_fsync),
                    real_fsync_argv: Some(argv(true)),
                })
            }
        })
        .collect()
}

/// `$DURAFS_THIRD_PARTY`, else `shared/third-party` beside the workspace
/// this binary was built from.
pub fn third_party_dir() -> PathBuf {
    if let Some(d) = std::env::var_os(ENV_THIRD_PARTY) {
        return PathBuf::from(d);
    }
    let tools = Path::new(env!("CARGO_MANIFEST_DIR"));
    let workspace = tools.parent().unwrap_or(tools);
    let beside = workspace.parent().unwrap_or(workspace);
    beside.join("shared").join("third-party")
}

/// Where built peers are kept: `peers/` in the target directory holding
/// this executable (`target/peers/`), else in the scratch parent.
pub fn cache_dir(exe: &Path, fallback: &Path) -> PathBuf {
    exe.parent()
        .and_then(Path::parent)
        .filter(|t| t.file_name().is_some_and(|n| n == "target"))
        .map_or_else(|| fallback.join("durafs-peers"), |t| t.join("peers"))
}

/// How to get passthrough_ll when it cannot be built here.
fn install_hint(why: &str) -> crate::CliError {
    err(format!(
        "--peer {PASSTHROUGH_LL}: cannot build it: {why}; install the compiler and libfuse's \
         headers (Debian/Ubuntu: apt-get install -y libfuse3-dev pkg-config gcc) or give a \
         built binary with --peer {PASSTHROUGH_LL}=PATH"
    ))
}

/// Builds `passthrough_ll` from `third_party` into `cache` with the
/// README's line, `cc -O2 passthrough_ll.c $(pkg-config fuse3 --cflags
/// --libs) -o passthrough_ll`, unless the binary there is newer than its
/// sources. The binary appears whole (built aside, then renamed).
pub fn build_passthrough_ll(third_party: &Path, cache: &Path) -> Result<PathBuf> {
    let src_dir = third_party.join(PASSTHROUGH_SRC);
    let src = src_dir.join("passthrough_ll.c");
    let header = src_dir.join("passthrough_helpers.h");
    let Some(src_time) = mtime(&src) else {
        return Err(err(format!(
            "--peer {PASSTHROUGH_LL}: no source at {} (set {ENV_THIRD_PARTY} to the third-party \
             directory, or give a built binary with --peer {PASSTHROUGH_LL}=PATH)",
            src.display()
        )));
    };
    let newest = mtime(&header).map_or(src_time, |h| h.max(src_time));
    let out = cache.join(PASSTHROUGH_LL);
    if is_fresh(newest, mtime(&out)) {
        return Ok(out);
    }
    let flags = Command::new("pkg-config")
        .args(["fuse3", "--cflags", "--libs"])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| install_hint(&format!("running pkg-config: {e}")))?;
    if !flags.status.success() {
        let said = String::from_utf8_lossy(&flags.stderr);
        let said: Vec<&str> = said.split_whitespace().collect();
        return Err(install_hint(&format!(
            "`pkg-config fuse3` failed: {}",
            said.join(" ")
        )));
    }
    let flags = String::from_utf8_lossy(&flags.stdout).into_owned();
    fs::create_dir_all(cache).map_err(|e| err(format!("{}: {e}", cache.display())))?;
    let part = cache.join(format!(".{PASSTHROUGH_LL}.{}", std::process::id()));
    let built = Command::new("cc")
        .arg("-O2")
        .arg(&src)
        .args(flags.split_whitespace())
        .arg("-o")
        .arg(&part)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| install_hint(&format!("running cc: {e}")))?;
    if !built.status.success() {
        let _ = fs::remove_file(&part);
        return Err(install_hint(&format!(
            "cc failed: {}",
            String::from_utf8_lossy(&built.stderr).trim()
        )));
    }
    fs::rename(&part, &out).map_err(|e| err(format!("{}: {e}", out.display())))?;
    Ok(out)
}

fn mtime(p: &Path) -> Option<SystemTime> {
    fs::metadata(p).and_then(|m| m.modified()).ok()
}

/// A built file is kept while it is at least as new as its sources.
fn is_fresh(sources: SystemTime, built: Option<SystemTime>) -> bool {
    built.is_some_and(|b| b >= sources)
}

/// One mounted peer; unmounted, reaped and its backing emptied on drop.
pub struct PeerMount {
    name: String,
    backing: PathBuf,
    mnt: PathBuf,
    log: PathBuf,
    child: Option<Child>,
    torn_down: bool,
}

impl PeerMount {
    /// Runs `peer`'s command over `backing` (created empty) at `mnt`, its
    /// output going to `log`, and waits until `mnt` is mounted.
    pub fn mount(peer: &Peer, backing: &Path, mnt: &Path, log: &Path) -> Result<PeerMount> {
        for d in [backing, mnt] {
            fs::create_dir_all(d).map_err(|e| err(format!("{}: {e}", d.display())))?;
        }
        let argv = peer.argv_for(backing, mnt);
        let out = fs::File::create(log).map_err(|e| err(format!("{}: {e}", log.display())))?;
        let errs = out
            .try_clone()
            .map_err(|e| err(format!("{}: {e}", log.display())))?;
        let mut vol = PeerMount {
            name: peer.name.clone(),
            backing: backing.to_path_buf(),
            mnt: mnt.to_path_buf(),
            log: log.to_path_buf(),
            child: None,
            torn_down: false,
        };
        let (prog, args) = argv
            .split_first()
            .ok_or_else(|| err(format!("peer {}: empty command", peer.name)))?;
        let child = Command::new(prog)
            .args(args)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(errs)
            .process_group(0)
            .spawn()
            .map_err(|e| err(format!("peer {}: starting {prog:?}: {e}", peer.name)))?;
        vol.child = Some(child);
        vol.wait_mounted(&peer.command())?;
        Ok(vol)
    }

    pub fn path(&self) -> &Path {
        &self.mnt
    }

    /// Polls the mount table until `mnt` shows, failing when the command
    /// exits non-zero first or [`MOUNT_TIMEOUT`] passes; a command that
    /// exits 0 has daemonised, and the wait goes on.
    fn wait_mounted(&mut self, command: &str) -> Result<()> {
        let started = Instant::now();
        loop {
            if self.is_mounted() {
                return Ok(());
            }
            crate::workload::check_interrupted()?;
            if let Some(c) = self.child.as_mut() {
                match c.try_wait() {
                    Ok(Some(st)) if st.success() => self.child = None,
                    Ok(Some(st)) => {
                        self.child = None;
                        return Err(
                            self.failed(&format!("`{command}` exited ({st}) before mounting"))
                        );
                    }
                    Ok(None) => {}
                    Err(e) => return Err(self.failed(&format!("waiting for `{command}`: {e}"))),
                }
            }
            if started.elapsed() > MOUNT_TIMEOUT {
                return Err(self.failed(&format!(
                    "`{command}` did not mount within {} s",
                    MOUNT_TIMEOUT.as_secs()
                )));
            }
            std::thread::sleep(POLL);
        }
    }

    /// An error about this peer's mount, quoting the end of its log.
    fn failed(&self, what: &str) -> crate::CliError {
        let said = fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = said.lines().filter(|l| !l.trim().is_empty()).collect();
        let tail = lines[lines.len().saturating_sub(3)..].join(" / ");
        let at = self.mnt.display();
        err(if tail.is_empty() {
            format!("peer {}: mounting at {at}: {what}", self.name)
        } else {
            format!(
                "peer {}: mounting at {at}: {what} (it said: {tail})",
                self.name
            )
        })
    }

    fn is_mounted(&self) -> bool {
        durafs::mount::is_dead_mount(&self.mnt)
            || host::mounts().iter().any(|m| m.mount_point == self.mnt)
    }

    /// Unmounts cleanly, reaps the command and empties the backing.
    pub fn unmount(mut self) -> Result<()> {
        self.torn_down = true;
        self.teardown()
    }

    /// `umount`, else a lazy detach; then the command's exit (killed after
    /// [`EXIT_TIMEOUT`]); then the backing emptied. The first failure is
    /// returned, after all that.
    fn teardown(&mut self) -> Result<()> {
        let at = self.mnt.display().to_string();
        let mut first_error = None;
        if self.is_mounted() {
            if let Err(e) = durafs::sys::umount(&self.mnt, false) {
                first_error = Some(err(format!("peer {}: unmounting {at}: {e}", self.name)));
                durafs::mount::detach(&self.mnt);
            }
        }
        if let Some(mut c) = self.child.take() {
            let started = Instant::now();
            loop {
                match c.try_wait() {
                    Ok(Some(_)) | Err(_) => break,
                    Ok(None) if started.elapsed() > EXIT_TIMEOUT => {
                        let _ = c.kill();
                        let _ = c.wait();
                        first_error.get_or_insert(err(format!(
                            "peer {}: still running {} s after its unmount; killed",
                            self.name,
                            EXIT_TIMEOUT.as_secs()
                        )));
                        break;
                    }
                    Ok(None) => std::thread::sleep(POLL),
                }
            }
        }
        if let Err(e) = super::volume::empty_dir(&self.backing) {
            first_error.get_or_insert(err(format!("emptying {}: {e}", self.backing.display())));
        }
        first_error.map_or(Ok(()), Err)
    }
}

impl Drop for PeerMount {
    fn drop(&mut self) {
        if !self.torn_down {
            self.torn_down = true;
            if let Err(e) = self.teardown() {
                log::warn!("durafs bench: {e}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cmd(name: &str, argv: &[&str]) -> PeerArg {
        PeerArg::Command {
            name: name.into(),
            argv: argv.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn durafs_peers_mount_durafs_over_the_named_transport() {
        let args = parse_all(&["durafs-uring".into(), "durafs-dev".into()]).unwrap();
        assert_eq!(
            args,
            [
                PeerArg::Durafs(Transport::Uring),
                PeerArg::Durafs(Transport::Dev)
            ]
        );
        let mount = MountOpts {
            writeback_cache: false,
            real_fsync: false,
            threads: 2,
            transport: None,
        };
        let peers = resolve(&args, Path::new("/nowhere"), Path::new("/x/durafs"), mount).unwrap();
        assert_eq!(peers[0].name, "durafs-uring");
        // Regression: a daemonised durafs peer persisted its state at the
        // unmount while the harness emptied its backing; the next durafs
        // mount there reported the failure (bench --runs 5, metadata).
        // `--foreground` lets the harness reap it first.
        assert_eq!(
            peers[0].argv_for(Path::new("/b"), Path::new("/m")),
            [
                "/x/durafs",
                "mount",
                "--foreground",
                "--threads",
                "2",
                "--transport",
                "uring",
                "/b",
                "/m"
            ]
        );
        assert_eq!(peers[1].name, "durafs-dev");
        // Regression: the durafs-dev peer of a --transport uring run
        // measured append-4k-fsync-real without --real-fsync (16k IOPS
        // against the durafs side's 2.9k).
        let real = peers[1].for_group(true);
        assert_eq!(
            real.argv_for(Path::new("/b"), Path::new("/m")),
            [
                "/x/durafs",
                "mount",
                "--foreground",
                "--real-fsync",
                "--threads",
                "2",
                "--transport",
                "dev",
                "/b",
                "/m"
            ]
        );
        assert_eq!(real.name, "durafs-dev");
        assert_eq!(peers[1].for_group(false), peers[1]);
        let e = parse("durafs-tcp").unwrap_err().to_string();
        assert!(e.contains("durafs-tcp") && e.contains("uring"), "{e}");
        let e = parse_all(&["durafs-uring".into(), "durafs-uring".into()]).unwrap_err();
        assert!(e.to_string().contains("twice"), "{e}");
    }

    #[test]
    fn peer_specs_parse_into_passthrough_or_a_command() {
        assert_eq!(
            parse("passthrough_ll").unwrap(),
            PeerArg::PassthroughLl(None)
        );
        assert_eq!(
            parse("passthrough_ll=/opt/pll").unwrap(),
            PeerArg::PassthroughLl(Some("/opt/pll".into()))
        );
        assert_eq!(
            parse("self='/x/durafs' mount --threads 2 {backing} '{mnt}'").unwrap(),
            cmd(
                "self",
                &["/x/durafs", "mount", "--threads", "2", "{backing}", "{mnt}"]
            )
        );
        assert_eq!(
            parse("p=bindfs \"-o a b\" {backing} {mnt}").unwrap(),
            cmd("p", &["bindfs", "-o a b", "{backing}", "{mnt}"])
        );
        // A command named passthrough_ll stays a command (and gets targets).
        assert_eq!(
            parse("passthrough_ll=/p -f -o source={backing} {mnt}").unwrap(),
            cmd(
                PASSTHROUGH_LL,
                &["/p", "-f", "-o", "source={backing}", "{mnt}"]
            )
        );
    }

    #[test]
    fn bad_peer_specs_say_what_is_wrong() {
        for (spec, says) in [
            ("other", "give its mount command"),
            ("x=mnt {backing}", "must contain {mnt}"),
            ("x=mnt {mnt}", "must contain {backing}"),
            ("x='unbalanced {backing} {mnt}", "unbalanced"),
            ("x=", "empty"),
            ("native=m {backing} {mnt}", "already a side"),
            ("durafs", "already a side"),
            ("a b=m {backing} {mnt}", "bad name"),
            ("=m {backing} {mnt}", "bad name"),
        ] {
            let e = parse(spec).unwrap_err().to_string();
            assert!(e.contains(says), "{spec}: {e}");
        }
        let twice = [
            "passthrough_ll".to_string(),
            "passthrough_ll=/p".to_string(),
        ];
        let e = parse_all(&twice).unwrap_err().to_string();
        assert!(e.contains("given twice"), "{e}");
        let two = ["passthrough_ll".into(), "b=m {backing} {mnt}".into()];
        assert_eq!(parse_all(&two).unwrap().len(), 2);
    }

    #[test]
    fn placeholders_are_substituted_in_every_word() {
        let p = Peer::passthrough_ll(Path::new("/bin/pll"));
        assert_eq!(
            p.argv_for(Path::new("/s/backing"), Path::new("/s/mnt")),
            ["/bin/pll", "-f", "-o", "source=/s/backing", "/s/mnt"]
        );
        assert_eq!(p.command(), "/bin/pll -f -o 'source={backing}' '{mnt}'");
        let p = Peer {
            name: "x".into(),
            argv: vec!["m".into(), "{mnt}/{backing}".into()],
            real_fsync_argv: None,
        };
        assert_eq!(p.for_group(true), p);
        assert_eq!(p.argv_for(Path::new("b"), Path::new("m")), ["m", "m/b"]);
    }

    #[test]
    fn a_build_is_kept_while_newer_than_its_sources() {
        let t = SystemTime::UNIX_EPOCH;
        let later = t + Duration::from_secs(5);
        assert!(is_fresh(t, Some(later)) && is_fresh(t, Some(t)));
        assert!(!is_fresh(later, Some(t)) && !is_fresh(t, None));
        let exe = Path::new("/w/target/release/durafs");
        assert_eq!(
            cache_dir(exe, Path::new("/tmp")),
            Path::new("/w/target/peers")
        );
        let elsewhere = Path::new("/usr/local/bin/durafs");
        assert_eq!(
            cache_dir(elsewhere, Path::new("/var/tmp")),
            Path::new("/var/tmp/durafs-peers")
        );
        let missing = build_passthrough_ll(Path::new("/nonexistent"), Path::new("/tmp"));
        let e = missing.unwrap_err().to_string();
        assert!(
            e.contains(ENV_THIRD_PARTY) && e.contains("passthrough_ll=PATH"),
            "{e}"
        );
    }

    #[test]
    fn a_command_that_exits_before_mounting_fails_clearly_and_leaves_nothing() {
        let d = tempfile::tempdir().unwrap();
        let (b, m, log) = (d.path().join("b"), d.path().join("m"), d.path().join("log"));
        let p = Peer {
            name: "bad".into(),
            argv: vec![
                "sh".into(),
                "-c".into(),
                "echo no such device >&2; exit 3".into(),
                "{backing}".into(),
                "{mnt}".into(),
            ],
            real_fsync_argv: None,
        };
        let e = PeerMount::mount(&p, &b, &m, &log)
            .err()
            .expect("an error")
            .to_string();
        assert!(
            e.contains("peer bad") && e.contains("before mounting"),
            "{e}"
        );
        assert!(e.contains("no such device"), "{e}");
        assert!(b.is_dir() && fs::read_dir(&b).unwrap().count() == 0);
    }
}
