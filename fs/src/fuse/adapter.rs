//! The adapter's state (the volume, the control file, what the kernel
//! agreed to), its settings for the kernel, and the reply helpers the
//! callbacks of [`super`] share.

use super::convert::attr;
use super::errno::ToErrno;
use crate::control::ControlFile;
use crate::fs::{self as core, DuraFs};
use crate::model::{Attrs, Stat};
use fuser::{FopenFlags, Generation, KernelConfig, ReplyAttr, ReplyEmpty, ReplyEntry, Request};
use std::sync::Arc;
use std::time::Duration;

/// How long the kernel may cache entries and attributes. Every change to
/// names and attributes passes through this kernel, which invalidates what
/// it changed; the daemon changes nothing behind its back (a cut invalidates
/// every inode and ends the mount). So the caches never go stale and the
/// only cost of a short TTL is a revalidating round trip.
pub(super) const TTL: Duration = Duration::from_secs(24 * 3600);
/// Largest write the kernel sends in one request.
const MAX_WRITE: u32 = 1 << 20;
// The largest write buffer stays in the heap (`mount::tune_allocator`):
// below the size that gets a mapping of its own (an mmap and a munmap per
// write).
const _: () = assert!((MAX_WRITE as i64) < crate::mount::OWN_MAPPING as i64);

/// Open flags of regular files. `KEEP_CACHE`: the kernel keeps a file's
/// page cache across opens. Sound because every change to a file's bytes
/// passes through this kernel (write, truncate, fallocate), and a cut
/// invalidates every inode and ends the mount. `NOFLUSH`: close sends no
/// `FLUSH` (a round trip per close): writes are never buffered here, so a
/// flush has nothing to report. With the writeback cache the kernel still
/// flushes, to send its cached writes.
pub(super) const FILE_OPEN_FLAGS: FopenFlags =
    FopenFlags::FOPEN_KEEP_CACHE.union(FopenFlags::FOPEN_NOFLUSH);

/// What the adapter tells the mount's owner.
pub(crate) struct Notify {
    /// The handle of a `cut` was closed: the mount must end now.
    pub cut: Box<dyn Fn() + Send + Sync>,
    /// The kernel ended the session.
    pub unmounted: Box<dyn Fn() + Send + Sync>,
}

/// The fuser filesystem over a shared [`DuraFs`].
pub(crate) struct Adapter {
    pub(super) fs: Arc<DuraFs>,
    pub(super) control: ControlFile,
    pub(super) notify: Notify,
    writeback_cache: bool,
    /// The kernel agreed to `FUSE_HANDLE_KILLPRIV_V2`.
    pub(super) killpriv: bool,
}

impl Adapter {
    pub(crate) fn new(
        fs: Arc<DuraFs>,
        notify: Notify,
        uid: u32,
        gid: u32,
        writeback_cache: bool,
    ) -> Self {
        Adapter {
            control: ControlFile::new(Arc::clone(&fs), uid, gid),
            fs,
            notify,
            writeback_cache,
            killpriv: false,
        }
    }

    pub(super) fn new_attrs(req: &Request, mode: u32, umask: u32, rdev: u32) -> Attrs {
        Attrs {
            mode: mode & !umask & 0o7777,
            uid: req.uid(),
            gid: req.gid(),
            rdev,
            ..Attrs::default()
        }
    }

    pub(super) fn entry(&self, op: &str, r: core::Result<Stat>, reply: ReplyEntry) {
        match r {
            Ok(st) => reply.entry(&TTL, &attr(&st), Generation(0)),
            Err(e) => reply.error(e.to_errno(op)),
        }
    }

    pub(super) fn empty(op: &str, r: Result<(), impl ToErrno>, reply: ReplyEmpty) {
        match r {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e.to_errno(op)),
        }
    }

    /// [`DuraFs`]'s attributes, or why not, as a reply.
    pub(super) fn attr(op: &str, r: Result<Stat, impl ToErrno>, reply: ReplyAttr) {
        match r {
            Ok(st) => reply.attr(&TTL, &attr(&st)),
            Err(e) => reply.error(e.to_errno(op)),
        }
    }

    /// What durafs asks of the kernel at `init`.
    pub(super) fn negotiate(&mut self, config: &mut KernelConfig) {
        if let Err(nearest) = config.set_max_write(MAX_WRITE) {
            log::info!("durafs: kernel max_write limited to {nearest}");
        }
        let plus = fuser::InitFlags::FUSE_DO_READDIRPLUS | fuser::InitFlags::FUSE_READDIRPLUS_AUTO;
        if let Err(missing) = config.add_capabilities(plus) {
            log::info!("durafs: kernel lacks {missing:?}; plain readdir only");
        }
        // IMPORTANT: KILLPRIV_V2 makes the kernel mark the superblock
        // SB_NOSEC, so after one `getxattr("security.capability")` per inode
        // a write no longer asks (one round trip per write otherwise); in
        // exchange durafs clears set-ID bits itself (`kill_setid`,
        // `setattr_killpriv`).
        self.killpriv = config
            .add_capabilities(fuser::InitFlags::FUSE_HANDLE_KILLPRIV_V2)
            .is_ok();
        if !self.killpriv {
            log::info!("durafs: kernel lacks HANDLE_KILLPRIV_V2; it clears set-ID bits itself");
        }
        if self.writeback_cache
            && let Err(missing) = config.add_capabilities(fuser::InitFlags::FUSE_WRITEBACK_CACHE)
        {
            log::warn!("durafs: kernel lacks {missing:?}; writes are not cached");
        }
    }
}
