//! Helpers for the mounted integration tests: a volume over fresh temp
//! directories that unmounts in `Drop`, also while a test panics.
//!
//! Without `/dev/fuse` or root the tests fail with a message saying so.

pub mod cli;
pub mod diff;
pub mod explore;
pub mod tools;
use durafs::fs::{CutSummary, DuraFs, FsOptions};
use durafs::model::Persistence;
use durafs::model::crash::{CrashOptions, Policy};
use durafs::model::rng::SplitMix64;
use durafs::mount::{MountOptions, Mounted, mount};
use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A volume mounted in this process: a backing directory and a mount point.
pub struct Vol {
    // Declared first: unmounts before the directories are removed.
    mounted: Option<Mounted>,
    pub opts: FsOptions,
    pub mount_opts: MountOptions,
    pub backing: PathBuf,
    pub mnt: PathBuf,
    _tmp: tempfile::TempDir,
}

/// Mounts a volume over `backing` at `mnt`, panicking with the reason.
pub fn mount_at(backing: &Path, mnt: &Path, opts: FsOptions) -> Mounted {
    mount_with(backing, mnt, opts, &MountOptions::default())
}

/// As [`mount_at`], with mount settings.
pub fn mount_with(backing: &Path, mnt: &Path, opts: FsOptions, mo: &MountOptions) -> Mounted {
    let fs = DuraFs::open(backing, opts)
        .unwrap_or_else(|e| panic!("opening backing {}: {e}", backing.display()));
    mount(Arc::new(fs), mnt, mo).unwrap_or_else(|e| {
        panic!(
            "cannot mount durafs at {} ({e}); these tests need /dev/fuse and root",
            mnt.display()
        )
    })
}

impl Vol {
    /// A fresh volume under `persistence` with default settings.
    pub fn new(persistence: Persistence) -> Vol {
        Vol::with(FsOptions {
            persistence,
            ..FsOptions::default()
        })
    }

    /// A fresh volume with `opts`.
    pub fn with(opts: FsOptions) -> Vol {
        Vol::with_mount(opts, MountOptions::default())
    }

    /// A fresh volume every user may use (`allow_other`), in a temp dir
    /// of mode 0755.
    pub fn allow_other(persistence: Persistence) -> Vol {
        let opts = FsOptions {
            persistence,
            ..FsOptions::default()
        };
        Vol::with_mount(
            opts,
            MountOptions {
                allow_other: true,
                ..MountOptions::default()
            },
        )
    }

    /// A fresh volume with `opts`, mounted with `mount_opts`.
    pub fn with_mount(opts: FsOptions, mount_opts: MountOptions) -> Vol {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::tempdir().expect("tempdir");
        if mount_opts.allow_other {
            fs::set_permissions(tmp.path(), fs::Permissions::from_mode(0o755))
                .expect("chmod 755 the temp dir");
        }
        let backing = tmp.path().join("backing");
        let mnt = tmp.path().join("mnt");
        fs::create_dir(&mnt).expect("mkdir mnt");
        let mounted = mount_with(&backing, &mnt, opts, &mount_opts);
        Vol {
            mounted: Some(mounted),
            opts,
            mount_opts,
            backing,
            mnt,
            _tmp: tmp,
        }
    }

    /// A path inside the mount.
    pub fn p(&self, rel: &str) -> PathBuf {
        self.mnt.join(rel)
    }

    /// The mount (panics after a cut, until [`Vol::remount`]).
    pub fn mounted(&self) -> &Mounted {
        self.mounted.as_ref().expect("mounted")
    }

    /// The volume behind the mount.
    pub fn fs(&self) -> &Arc<DuraFs> {
        self.mounted.as_ref().expect("mounted").fs()
    }

    /// Cuts the power with `policy` (seed 0); the mount dies.
    pub fn cut(&mut self, policy: Policy) -> CutSummary {
        self.cut_with(CrashOptions {
            policy,
            ..CrashOptions::default()
        })
    }

    /// Cuts the power with `opts`; the mount dies.
    pub fn cut_with(&mut self, opts: CrashOptions) -> CutSummary {
        let m = self.mounted.take().expect("mounted");
        m.cut(opts).expect("cut")
    }

    /// Mounts a fresh volume over what the backing holds (unmounting the
    /// current one cleanly first, if any).
    pub fn remount(&mut self) {
        if let Some(m) = self.mounted.take() {
            if m.fs().is_cut() {
                // A fault cut the power: the mount dies as after any cut.
                m.die();
            } else {
                m.unmount().expect("unmount");
            }
        }
        self.mounted = Some(mount_with(
            &self.backing,
            &self.mnt,
            self.opts,
            &self.mount_opts,
        ));
    }
}

/// fsyncs the directory `p`.
pub fn fsync_dir(p: &Path) {
    File::open(p)
        .expect("open dir")
        .sync_all()
        .expect("fsync dir");
}

/// fsyncs the file `p`.
pub fn fsync_file(p: &Path) {
    File::options()
        .write(true)
        .open(p)
        .expect("open file")
        .sync_all()
        .expect("fsync file");
}

/// Sends SIGKILL to `pid` and waits until it has exited.
pub fn kill_and_wait(pid: i32) {
    let fd = pidfd(pid);
    // SAFETY: signalling a process.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGKILL) }, 0, "kill {pid}");
    wait_fd(fd, pid);
}

/// Waits until `pid` has exited (on a pidfd, not by sleeping).
pub fn wait_exit(pid: i32) {
    wait_fd(pidfd(pid), pid);
}

/// SIGKILLs `pid` unless it has exited already (it may have killed
/// itself), and waits until it has.
pub fn ensure_dead(pid: i32) {
    // SAFETY: a plain syscall; a failure means the process is gone.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) } as libc::c_int;
    if fd < 0 {
        return;
    }
    // SAFETY: signalling a process (a zombie ignores it).
    unsafe {
        libc::kill(pid, libc::SIGKILL);
    }
    wait_fd(fd, pid);
}

fn pidfd(pid: i32) -> libc::c_int {
    // SAFETY: a plain syscall; the result is checked.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) } as libc::c_int;
    assert!(
        fd >= 0,
        "pidfd_open({pid}): {}",
        std::io::Error::last_os_error()
    );
    fd
}

fn wait_fd(fd: libc::c_int, pid: i32) {
    let mut p = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd; `fd` is ours to close.
    unsafe {
        assert_eq!(libc::poll(&mut p, 1, 60_000), 1, "{pid} did not exit");
        libc::close(fd);
    }
}

/// A number from the environment (a soak setting), if set; panics on a
/// value that is not a number.
pub fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().map(|v| {
        v.parse()
            .unwrap_or_else(|_| panic!("{name}={v}: expected a number"))
    })
}

/// A generator for the stream `(a, b, c)` of `seed`: independent streams
/// for, say, thread `a`, file `b`, record `c`.
pub fn mix(seed: u64, a: u64, b: u64, c: u64) -> SplitMix64 {
    let mut r = SplitMix64::new(seed ^ a.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    let x = r.next_u64() ^ b.wrapping_mul(0xC2B2_AE3D_27D4_EB4F);
    let mut r = SplitMix64::new(x ^ c.wrapping_mul(0x1656_67B1_9E37_79F9));
    r.next_u64();
    r
}

/// fsyncs the directory `p`, returning the error (for loads that expect
/// failures after a cut or a kill).
pub fn dir_sync(p: &Path) -> std::io::Result<()> {
    File::open(p)?.sync_all()
}

/// `p` as a C string (test paths never hold a NUL byte).
pub fn cpath(p: &Path) -> std::ffi::CString {
    use std::os::unix::ffi::OsStrExt;
    std::ffi::CString::new(p.as_os_str().as_bytes()).expect("no NUL in a test path")
}

/// `renameat2(2)` with `flags` (`RENAME_NOREPLACE`, `RENAME_EXCHANGE`).
pub fn renameat2(from: &Path, to: &Path, flags: u32) -> std::io::Result<()> {
    let (a, b) = (cpath(from), cpath(to));
    // SAFETY: two valid NUL-terminated paths; the result is checked.
    let rc = unsafe {
        libc::renameat2(
            libc::AT_FDCWD,
            a.as_ptr(),
            libc::AT_FDCWD,
            b.as_ptr(),
            flags,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}
