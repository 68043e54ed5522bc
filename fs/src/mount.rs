//! Mounting a [`DuraFs`] and tearing the mount down: cleanly (everything
//! persisted first) or as a power cut (kernel caches invalidated, the mount
//! detached even while files are open).
//!
//! durafs mounts with `mount(2)` on a `/dev/fuse` descriptor it opens itself
//! and hands fuser that descriptor, so fuser never unmounts anything: after
//! a cut with files still open the old mount is detached lazily, and a
//! mount made later at the same place must never be unmounted by the old
//! session. This needs root (`CAP_SYS_ADMIN`).

use crate::fs::{CutSummary, DuraFs};
use crate::fuse::{Adapter, Notify};
use crate::model::crash::CrashOptions;
use crate::sys::{self, cstring};
use crate::transport::{self, Transport};
use fuser::{BackgroundSession, Config, INodeNo, Notifier, SessionACL};
use std::ffi::CString;
use std::io;
use std::os::fd::{FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc::{self, Receiver, Sender};

/// Why a mount ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MountEvent {
    /// A `cut` arrived through the control file and its handle was closed,
    /// or a fault cut the power.
    CutRequested,
    /// The kernel ended the session (`umount`, or the mount was aborted).
    Unmounted,
    /// The owner asked to stop (a signal to the daemon).
    Stop,
}

/// Mount settings.
#[derive(Clone, Debug)]
pub struct MountOptions {
    /// Threads serving requests.
    pub threads: usize,
    /// Let the kernel cache writes and send them later, coalesced
    /// (`FUSE_WRITEBACK_CACHE`). Data the kernel still holds is not yet
    /// seen by durafs: a status omits it and a cut discards it, as a power
    /// cut discards a real page cache. fsync and close send it first.
    pub writeback_cache: bool,
    /// Let every user of the machine use the mount (`allow_other`), the
    /// kernel checking each access against the files' modes and owners
    /// (`default_permissions`, always on). The control file stays the
    /// mounting user's (and root's) only. Off: only the mounting user.
    pub allow_other: bool,
    /// How requests travel ([`Transport`]); `None`: the one
    /// [`transport::TRANSPORT_ENV`] names, else `/dev/fuse`. With io_uring
    /// the [`MountOptions::threads`] still serve what the rings do not
    /// carry (forgets, interrupts), beside one ring thread per CPU.
    pub transport: Option<Transport>,
}

impl Default for MountOptions {
    fn default() -> Self {
        MountOptions {
            threads: 2,
            writeback_cache: false,
            allow_other: false,
            transport: None,
        }
    }
}

/// A mounted volume. Dropping it unmounts cleanly (also while unwinding a
/// panic); after a cut it detaches instead.
#[derive(Debug)]
pub struct Mounted {
    fs: Arc<DuraFs>,
    mountpoint: PathBuf,
    session: Option<BackgroundSession>,
    events: Receiver<MountEvent>,
    sender: Sender<MountEvent>,
    transport: Transport,
}

fn open_dev_fuse() -> io::Result<OwnedFd> {
    let path = c"/dev/fuse";
    // SAFETY: a valid NUL-terminated path; the result is checked.
    let fd = unsafe { libc::open(path.as_ptr(), libc::O_RDWR | libc::O_CLOEXEC) };
    if fd < 0 {
        let e = io::Error::last_os_error();
        let hint = match e.raw_os_error() {
            Some(libc::ENOENT) => {
                "/dev/fuse is missing: load the fuse module (modprobe fuse) or run the \
                 container with --device /dev/fuse"
            }
            Some(libc::EACCES) | Some(libc::EPERM) => {
                "no permission to open /dev/fuse: run durafs as root"
            }
            _ => "cannot open /dev/fuse",
        };
        return Err(io::Error::new(e.kind(), format!("{hint} ({e})")));
    }
    // SAFETY: `fd` was just opened and is owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Mounts `fs` at `mountpoint` (options: `default_permissions`, `nosuid`,
/// `nodev`; only the mounting user may access it unless
/// [`MountOptions::allow_other`]; fsname `durafs`, type `fuse.durafs`).
/// Returns once the kernel's INIT handshake is done: the mount is usable.
pub fn mount(fs: Arc<DuraFs>, mountpoint: &Path, opts: &MountOptions) -> io::Result<Mounted> {
    use std::os::fd::AsRawFd;
    // Only speed depends on it (logged when refused).
    let _ = tune_allocator();
    let transport = Transport::resolve(opts.transport)?;
    if transport == Transport::Uring {
        // IMPORTANT: the kernel decides at INIT, sent by mount(2) below.
        transport::enable_uring()?;
    }
    let dev = open_dev_fuse()?;
    let target = cstring(mountpoint)?;
    let (uid, gid) = sys::effective_ids();
    let allow_other = if opts.allow_other { ",allow_other" } else { "" };
    let data = CString::new(format!(
        "fd={},rootmode=40000,user_id={uid},group_id={gid},default_permissions{allow_other}",
        dev.as_raw_fd()
    ))
    .map_err(|_| io::Error::other("mount options contain a NUL byte"))?;
    // SAFETY: valid NUL-terminated strings; the result is checked.
    let rc = unsafe {
        libc::mount(
            c"durafs".as_ptr(),
            target.as_ptr(),
            c"fuse.durafs".as_ptr(),
            libc::MS_NOSUID | libc::MS_NODEV,
            data.as_ptr().cast(),
        )
    };
    if rc != 0 {
        let e = io::Error::last_os_error();
        let hint = match e.raw_os_error() {
            Some(libc::EPERM) => "mounting needs root (CAP_SYS_ADMIN): run durafs as root",
            Some(libc::ENOENT) => "the mountpoint does not exist",
            Some(libc::ENOTDIR) => "the mountpoint is not a directory",
            Some(libc::ENODEV) => "the kernel has no FUSE support (modprobe fuse)",
            _ => "mount(2) failed",
        };
        return Err(io::Error::new(
            e.kind(),
            format!("mounting at {}: {hint} ({e})", mountpoint.display()),
        ));
    }
    let (sender, events) = mpsc::channel();
    // The owner may be gone already at an unmount: nothing else to tell.
    let notify = |event: MountEvent, lost: Option<&'static str>| {
        let sender = sender.clone();
        Box::new(move || {
            if let (Err(_), Some(why)) = (sender.send(event), lost) {
                log::warn!("durafs: {why} but nobody owns the mount");
            }
        }) as Box<dyn Fn() + Send + Sync>
    };
    // A fault's cut ends the mount as the control file's does.
    fs.on_fault_cut(notify(
        MountEvent::CutRequested,
        Some("a fault cut the power"),
    ));
    let notify = Notify {
        cut: notify(MountEvent::CutRequested, Some("cut requested")),
        unmounted: notify(MountEvent::Unmounted, None),
    };
    let adapter = Adapter::new(Arc::clone(&fs), notify, uid, gid, opts.writeback_cache);
    let mut cfg = Config::default();
    cfg.n_threads = Some(opts.threads.max(1));
    if transport == Transport::Uring {
        cfg.io_uring = Some(fuser::IoUringConfig::default());
    }
    // The kernel already refuses other users without `allow_other`; the
    // session's ACL repeats that choice (fuser checks each request's uid).
    let acl = if opts.allow_other {
        SessionACL::All
    } else {
        SessionACL::Owner
    };
    let started = fuser::Session::from_fd(adapter, dev, acl, cfg)
        .and_then(|s| s.spawn())
        .and_then(|s| rings_started(s, transport));
    match started {
        Ok(session) => {
            fs.set_transport(transport);
            if opts.writeback_cache {
                raise_dirty_share(mountpoint);
            }
            Ok(Mounted {
                fs,
                mountpoint: mountpoint.to_path_buf(),
                session: Some(session),
                events,
                sender,
                transport,
            })
        }
        Err(e) => {
            // The descriptor is gone with the session: the mount is dead.
            detach(mountpoint);
            Err(io::Error::new(
                e.kind(),
                format!("starting the FUSE session at {}: {e}", mountpoint.display()),
            ))
        }
    }
}

/// With io_uring, waits until every CPU's ring serves requests; a session
/// the kernel kept on `/dev/fuse` is an error, not a silent fallback.
fn rings_started(
    session: BackgroundSession,
    transport: Transport,
) -> io::Result<BackgroundSession> {
    if transport != Transport::Uring {
        return Ok(session);
    }
    match session.wait_io_uring() {
        Some(Ok(stats)) => {
            log::info!(
                "durafs: serving over FUSE io_uring: {} rings of {} entries",
                stats.queues,
                fuser::IoUringConfig::default().queue_depth
            );
            Ok(session)
        }
        Some(Err(e)) => Err(e),
        None => Err(io::Error::new(
            io::ErrorKind::Unsupported,
            format!(
                "the kernel did not offer FUSE over io_uring at INIT ({} off?)",
                transport::ENABLE_URING
            ),
        )),
    }
}

/// Bytes the heap grows by at once, and keeps when it shrinks
/// ([`tune_allocator`]).
pub const HEAP_PAD: i32 = 16 << 20;
/// Free bytes at the top of the heap past which it shrinks.
pub const HEAP_TRIM: i32 = 32 << 20;
/// Allocations at least this large get their own mapping; every write
/// buffer (at most the adapter's `max_write`, 1 MiB) stays below it.
pub const OWN_MAPPING: i32 = 4 << 20;
// The heap never shrinks below what it grows by at once.
const _: () = assert!(HEAP_TRIM >= HEAP_PAD);

/// Sets glibc's allocator for the daemon's write path, once per process.
///
/// Every write copies its bytes into one new allocation, kept until the
/// write is durable. With glibc's defaults each serving thread allocates
/// from its own arena, which grows one page at a time with an `mprotect`
/// per growth: one more system call per 4 KiB write, taking the process's
/// `mmap_lock` against the other threads' page faults (measured: 9,365
/// `mprotect` for 8,736 requests). One arena grown by `brk` in steps of
/// [`HEAP_PAD`] does without. The memory held beyond the live data stays
/// bounded by [`HEAP_TRIM`] (the heap shrinks past it) and [`HEAP_PAD`].
/// Call it before the process starts threads: a thread that allocated
/// before keeps an arena of its own, which the serving threads may then
/// be given (measured: one of the two still grew its arena by `mprotect`).
/// [`mount`] calls it too, for processes that mount in-process. Only speed
/// depends on this: a refused setting is logged. Returns whether every
/// setting was taken.
pub fn tune_allocator() -> bool {
    static TUNED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *TUNED.get_or_init(|| {
        #[cfg(all(target_os = "linux", target_env = "gnu"))]
        {
            let mut all = true;
            for (name, param, value) in [
                ("M_ARENA_MAX", libc::M_ARENA_MAX, 1),
                ("M_TOP_PAD", libc::M_TOP_PAD, HEAP_PAD),
                ("M_TRIM_THRESHOLD", libc::M_TRIM_THRESHOLD, HEAP_TRIM),
                ("M_MMAP_THRESHOLD", libc::M_MMAP_THRESHOLD, OWN_MAPPING),
            ] {
                // SAFETY: mallopt takes any values and reports a refusal as 0.
                if unsafe { libc::mallopt(param, value) } == 0 {
                    log::warn!("durafs: mallopt({name}, {value}) refused");
                    all = false;
                }
            }
            all
        }
        #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
        true
    })
}

/// Share of the system's dirty-page limit this mount's cached writes may
/// use, in percent (the kernel gives a FUSE mount 1%, about 50 MiB on a
/// machine with 24 GiB, past which writers are throttled to the daemon's
/// pace).
pub const DIRTY_SHARE_PERCENT: u32 = 20;

/// With the writeback cache, lets this mount's cached writes use
/// [`DIRTY_SHARE_PERCENT`] of the dirty-page limit, as a disk's do
/// (`/sys/class/bdi/MAJ:MIN/max_ratio`; root only). Failure only costs
/// speed: it is logged.
fn raise_dirty_share(mountpoint: &Path) {
    use std::os::unix::fs::MetadataExt;
    let dev = match std::fs::metadata(mountpoint) {
        Ok(m) => m.dev(),
        Err(e) => {
            log::warn!("durafs: stat {}: {e}", mountpoint.display());
            return;
        }
    };
    let path = format!(
        "/sys/class/bdi/{}:{}/max_ratio",
        libc::major(dev),
        libc::minor(dev)
    );
    match std::fs::write(&path, DIRTY_SHARE_PERCENT.to_string()) {
        Ok(()) => log::info!("durafs: {path} = {DIRTY_SHARE_PERCENT}"),
        Err(e) => log::warn!("durafs: raising {path}: {e}; cached writes stay throttled at 1%"),
    }
}

/// Unmounts `path`; returns false when it is busy (files open, a cwd).
fn umount(path: &Path) -> io::Result<bool> {
    match sys::umount(path, false) {
        Ok(()) => Ok(true),
        Err(e) if sys::is_busy(&e) => Ok(false),
        Err(e) => Err(e),
    }
}

/// True when `path` is a FUSE mount whose daemon is gone (`statfs` fails
/// with `ENOTCONN`, [`sys::is_disconnected`]; `stat` alone may still answer
/// from the kernel's cache).
pub fn is_dead_mount(path: &Path) -> bool {
    let Ok(c) = cstring(path) else { return false };
    // SAFETY: all-zero is a valid statfs to be overwritten.
    let mut s: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: a valid path and out-pointer.
    let rc = unsafe { libc::statfs(c.as_ptr(), &mut s) };
    rc != 0 && sys::is_disconnected(&io::Error::last_os_error())
}

/// Detaches the mount at `path` lazily (it dies once nothing uses it).
pub fn detach(path: &Path) {
    if let Err(e) = sys::umount(path, true) {
        log::warn!("durafs: detaching {}: {e}", path.display());
    }
}

impl Mounted {
    /// The volume behind the mount.
    pub fn fs(&self) -> &Arc<DuraFs> {
        &self.fs
    }

    /// Where it is mounted.
    pub fn mountpoint(&self) -> &Path {
        &self.mountpoint
    }

    /// How its requests travel.
    pub fn transport(&self) -> Transport {
        self.transport
    }

    /// Requests served through the io_uring rings so far (`None` on the
    /// `/dev/fuse` transport).
    pub fn io_uring_requests(&self) -> Option<u64> {
        self.session.as_ref()?.io_uring_stats().map(|s| s.requests)
    }

    /// Commits the rings submitted handing their CPU to the caller they
    /// woke (`SCHED_IDLE` for the submit; `vendor/fuser/src/uring_wake.rs`).
    pub fn io_uring_hand_offs(&self) -> Option<u64> {
        self.session.as_ref()?.io_uring_stats().map(|s| s.hand_offs)
    }

    /// A sender for [`MountEvent::Stop`] (e.g. from a signal thread).
    pub fn stopper(&self) -> Sender<MountEvent> {
        self.sender.clone()
    }

    /// Blocks until the mount must end, and says why.
    pub fn wait(&self) -> MountEvent {
        self.events.recv().unwrap_or(MountEvent::Unmounted)
    }

    /// Waits for the serving threads once the kernel ended the session
    /// ([`MountEvent::Unmounted`]); never unmounts anything itself, as the
    /// mountpoint may already hold another mount.
    pub fn join(mut self) {
        if let Some(s) = self.session.take() {
            if let Err(e) = join(s) {
                log::warn!("durafs: session ended with {e}");
            }
        }
    }

    /// Unmounts cleanly: everything is persisted first, as a real unmount
    /// does. Fails with `EBUSY` (still mounted) while files are open, and
    /// with the store's error (still mounted, nothing lost) when not
    /// everything could be persisted.
    pub fn unmount(mut self) -> io::Result<()> {
        self.unmount_inner()
    }

    /// As [`Mounted::unmount`], keeping the mount (and `self`) when it
    /// fails; after a success dropping `self` does nothing.
    pub fn try_unmount(&mut self) -> io::Result<()> {
        self.unmount_inner()
    }

    fn unmount_inner(&mut self) -> io::Result<()> {
        let Some(session) = self.session.take() else {
            return Ok(());
        };
        if let Err(e) = self.fs.sync() {
            // IMPORTANT: never unmount over unpersisted changes: the kernel
            // would call `destroy`, whose sync can only log its failure.
            self.session = Some(session);
            log::warn!("durafs: persisting before unmount: {e}; still mounted");
            return Err(io::Error::other(format!(
                "{} stays mounted: not everything could be persisted ({e})",
                self.mountpoint.display()
            )));
        }
        match umount(&self.mountpoint) {
            Ok(true) => {}
            Ok(false) => {
                self.session = Some(session);
                return Err(io::Error::new(
                    io::ErrorKind::ResourceBusy,
                    format!("{} is busy (files are open)", self.mountpoint.display()),
                ));
            }
            // Already unmounted from outside: the session is ending anyway.
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {}
            Err(e) => {
                self.session = Some(session);
                return Err(e);
            }
        }
        join(session)
    }

    /// Simulates a power cut (see [`DuraFs::cut`]) and tears the mount
    /// down as a dead machine would ([`Mounted::die`]).
    pub fn cut(self, opts: CrashOptions) -> crate::fs::Result<CutSummary> {
        let summary = self.fs.cut(opts)?;
        self.die();
        Ok(summary)
    }

    /// As [`Mounted::cut`], with the crash state chosen by `choose` (see
    /// [`DuraFs::cut_with`]).
    pub fn cut_with(
        self,
        label: &str,
        choose: impl FnOnce(&[crate::model::PendingOp]) -> crate::model::crash::CrashState,
    ) -> crate::fs::Result<CutSummary> {
        let summary = self.fs.cut_with(label, choose)?;
        self.die();
        Ok(summary)
    }

    /// Tears the mount down after a cut, as a dead machine: unmounts; when
    /// files are still open, first drops every page, attribute and entry
    /// the kernel caches for the mount, then detaches it (their later calls
    /// fail: `EIO` while this process lives, `ENOTCONN` after).
    pub fn die(mut self) {
        let Some(session) = self.session.take() else {
            return;
        };
        // IMPORTANT: a successful unmount frees every inode of the mount
        // and its cache at once; only a mount kept by open files needs each
        // inode invalidated (one notification each: 100,000 system calls
        // for 100,000 files), before the detach leaves those files a way in.
        let started = std::time::Instant::now();
        match umount(&self.mountpoint) {
            Ok(true) => {
                log::debug!("durafs: cut mount unmounted in {:?}", started.elapsed());
                if let Err(e) = join(session) {
                    log::warn!("durafs: session ended with {e}");
                }
            }
            Ok(false) => {
                invalidate_all(&self.fs, &session.notifier());
                detach(&self.mountpoint);
                // The session ends when the last open file is closed;
                // its thread is left to finish on its own.
                drop(session);
            }
            Err(e) => {
                log::warn!("durafs: unmounting {}: {e}", self.mountpoint.display());
                invalidate_all(&self.fs, &session.notifier());
                detach(&self.mountpoint);
                drop(session);
            }
        }
    }
}

/// Waits for the serving threads. A thread that reads from `/dev/fuse`
/// while the kernel tears the connection down may see `ECONNABORTED`
/// instead of `ENODEV`; both mean the session ended.
fn join(session: BackgroundSession) -> io::Result<()> {
    match session.join() {
        Err(e) if e.raw_os_error() == Some(libc::ECONNABORTED) => Ok(()),
        r => r,
    }
}

/// Invalidates the kernel's cached pages and attributes of every inode.
fn invalidate_all(fs: &DuraFs, notifier: &Notifier) {
    for ino in fs.inodes() {
        match notifier.inval_inode(INodeNo(ino), 0, 0) {
            Ok(()) => {}
            // The kernel does not know this inode: nothing cached.
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
            Err(e) => log::debug!("durafs: invalidating inode {ino}: {e}"),
        }
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        if self.session.is_none() {
            return;
        }
        if self.fs.is_cut() {
            let m = Mounted {
                fs: Arc::clone(&self.fs),
                mountpoint: self.mountpoint.clone(),
                session: self.session.take(),
                events: mpsc::channel().1,
                sender: self.sender.clone(),
                transport: self.transport,
            };
            m.die();
            return;
        }
        if let Err(e) = self.unmount_inner() {
            log::error!(
                "durafs: unmounting {}: {e}; detaching lazily",
                self.mountpoint.display()
            );
            detach(&self.mountpoint);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_allocator_takes_every_setting() {
        assert!(tune_allocator());
        assert!(tune_allocator(), "the second call answers the same");
    }
}
