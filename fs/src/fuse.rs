//! The thin fuser adapter: each callback converts its arguments, calls
//! [`DuraFs`], and maps errors to an errno in one place ([`errno`]).
//! fuser calls these from several threads; all state is in [`DuraFs`].

use crate::fs::{self as core, DuraFs, Error};
use crate::model::{Attrs, Fallocate, FsError, Kind, RenameFlags as ModelRename, SetAttrs, Stat};
use bytes::Bytes;
use fuser::{
    AccessFlags, BackgroundSession, BsdFileFlags, Config, Errno, FileAttr, FileHandle, FileType,
    Filesystem, FopenFlags, Generation, INodeNo, KernelConfig, LockOwner, MountOption, OpenFlags,
    RenameFlags, ReplyAttr, ReplyCreate, ReplyData, ReplyDirectory, ReplyEmpty, ReplyEntry,
    ReplyLseek, ReplyOpen, ReplyStatfs, ReplyWrite, ReplyXattr, Request, SessionACL, TimeOrNow,
    WriteFlags,
};
use std::ffi::OsStr;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// How long the kernel may cache entries and attributes.
const TTL: Duration = Duration::from_secs(1);
/// Largest write the kernel sends in one request.
const MAX_WRITE: u32 = 1 << 20;

/// The one errno mapping of the adapter (model errors go through
/// [`FsError::errno`]; backing failures were logged and become `EIO`).
fn errno(op: &str, e: &Error) -> Errno {
    match e {
        Error::Fs(FsError::Cut) => log::debug!("durafs: {op}: refused after the cut"),
        Error::Fs(err) => log::debug!("durafs: {op}: {err}"),
        Error::Backing(err) => log::warn!("durafs: {op}: EIO ({err})"),
    }
    Errno::from_i32(e.errno())
}

fn file_type(k: Kind) -> FileType {
    match k {
        Kind::File => FileType::RegularFile,
        Kind::Dir => FileType::Directory,
        Kind::Symlink => FileType::Symlink,
        Kind::Fifo => FileType::NamedPipe,
        Kind::Socket => FileType::Socket,
        Kind::CharDev => FileType::CharDevice,
        Kind::BlockDev => FileType::BlockDevice,
    }
}

fn attr(st: &Stat) -> FileAttr {
    FileAttr {
        ino: INodeNo(st.ino),
        size: st.size,
        blocks: st.size.div_ceil(512),
        atime: core::to_system_time(st.attrs.atime),
        mtime: core::to_system_time(st.attrs.mtime),
        ctime: core::to_system_time(st.attrs.ctime),
        crtime: core::to_system_time(st.attrs.ctime),
        kind: file_type(st.kind),
        perm: (st.attrs.mode & 0o7777) as u16,
        nlink: st.nlink,
        uid: st.attrs.uid,
        gid: st.attrs.gid,
        rdev: st.attrs.rdev,
        blksize: 4096,
        flags: 0,
    }
}

fn time_of(t: TimeOrNow) -> crate::model::Timestamp {
    match t {
        TimeOrNow::SpecificTime(t) => core::to_timestamp(t),
        TimeOrNow::Now => core::now(),
    }
}

/// The fuser filesystem over a shared [`DuraFs`].
struct Adapter {
    fs: Arc<DuraFs>,
}

impl Adapter {
    fn new_attrs(req: &Request, mode: u32, umask: u32, rdev: u32) -> Attrs {
        Attrs {
            mode: mode & !umask & 0o7777,
            uid: req.uid(),
            gid: req.gid(),
            rdev,
            ..Attrs::default()
        }
    }

    fn entry(&self, op: &str, r: core::Result<Stat>, reply: ReplyEntry) {
        match r {
            Ok(st) => reply.entry(&TTL, &attr(&st), Generation(0)),
            Err(e) => reply.error(errno(op, &e)),
        }
    }

    fn empty(op: &str, r: core::Result<()>, reply: ReplyEmpty) {
        match r {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(errno(op, &e)),
        }
    }
}

impl Filesystem for Adapter {
    fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> io::Result<()> {
        if let Err(nearest) = config.set_max_write(MAX_WRITE) {
            log::info!("durafs: kernel max_write limited to {nearest}");
        }
        Ok(())
    }

    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        self.entry("lookup", self.fs.lookup(parent.0, name.as_bytes()), reply);
    }

    fn forget(&self, _req: &Request, ino: INodeNo, _nlookup: u64) {
        self.fs.forget(ino.0);
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        match self.fs.getattr(ino.0) {
            Ok(st) => reply.attr(&TTL, &attr(&st)),
            Err(e) => reply.error(errno("getattr", &e)),
        }
    }

    fn setattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        _fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        let set = SetAttrs {
            mode,
            uid,
            gid,
            size,
            atime: atime.map(time_of),
            mtime: mtime.map(time_of),
        };
        match self.fs.setattr(ino.0, set) {
            Ok(st) => reply.attr(&TTL, &attr(&st)),
            Err(e) => reply.error(errno("setattr", &e)),
        }
    }

    fn readlink(&self, _req: &Request, ino: INodeNo, reply: ReplyData) {
        match self.fs.readlink(ino.0) {
            Ok(t) => reply.data(&t),
            Err(e) => reply.error(errno("readlink", &e)),
        }
    }

    fn mknod(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        rdev: u32,
        reply: ReplyEntry,
    ) {
        let kind = match mode & libc::S_IFMT {
            libc::S_IFREG | 0 => Kind::File,
            libc::S_IFIFO => Kind::Fifo,
            libc::S_IFSOCK => Kind::Socket,
            libc::S_IFCHR => Kind::CharDev,
            libc::S_IFBLK => Kind::BlockDev,
            other => {
                log::warn!("durafs: mknod: unsupported file type {other:#o}");
                return reply.error(Errno::EINVAL);
            }
        };
        let attrs = Self::new_attrs(req, mode, umask, rdev);
        self.entry(
            "mknod",
            self.fs.create(parent.0, name.as_bytes(), kind, attrs, None),
            reply,
        );
    }

    fn mkdir(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        reply: ReplyEntry,
    ) {
        let attrs = Self::new_attrs(req, mode, umask, 0);
        self.entry(
            "mkdir",
            self.fs
                .create(parent.0, name.as_bytes(), Kind::Dir, attrs, None),
            reply,
        );
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        Self::empty("unlink", self.fs.unlink(parent.0, name.as_bytes()), reply);
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        Self::empty("rmdir", self.fs.rmdir(parent.0, name.as_bytes()), reply);
    }

    fn symlink(
        &self,
        req: &Request,
        parent: INodeNo,
        link_name: &OsStr,
        target: &Path,
        reply: ReplyEntry,
    ) {
        let attrs = Self::new_attrs(req, 0o777, 0, 0);
        let target = Some(Bytes::copy_from_slice(target.as_os_str().as_bytes()));
        self.entry(
            "symlink",
            self.fs
                .create(parent.0, link_name.as_bytes(), Kind::Symlink, attrs, target),
            reply,
        );
    }

    fn rename(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        if flags.contains(RenameFlags::RENAME_WHITEOUT) {
            return reply.error(Errno::EINVAL);
        }
        let f = ModelRename {
            noreplace: flags.contains(RenameFlags::RENAME_NOREPLACE),
            exchange: flags.contains(RenameFlags::RENAME_EXCHANGE),
        };
        let r = self.fs.rename(
            parent.0,
            name.as_bytes(),
            newparent.0,
            newname.as_bytes(),
            f,
        );
        Self::empty("rename", r, reply);
    }

    fn link(
        &self,
        _req: &Request,
        ino: INodeNo,
        newparent: INodeNo,
        newname: &OsStr,
        reply: ReplyEntry,
    ) {
        self.entry(
            "link",
            self.fs.link(ino.0, newparent.0, newname.as_bytes()),
            reply,
        );
    }

    fn open(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        match self.fs.getattr(ino.0) {
            Ok(_) => reply.opened(FileHandle(0), FopenFlags::empty()),
            Err(e) => reply.error(errno("open", &e)),
        }
    }

    fn read(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        match self.fs.read(ino.0, offset, size) {
            Ok(d) => reply.data(&d),
            Err(e) => reply.error(errno("read", &e)),
        }
    }

    fn write(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        match self.fs.write(ino.0, offset, data) {
            Ok(n) => reply.written(n),
            Err(e) => reply.error(errno("write", &e)),
        }
    }

    fn flush(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        _lock_owner: LockOwner,
        reply: ReplyEmpty,
    ) {
        Self::empty("flush", self.fs.getattr(ino.0).map(|_| ()), reply);
    }

    fn fsync(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        datasync: bool,
        reply: ReplyEmpty,
    ) {
        Self::empty("fsync", self.fs.fsync(ino.0, datasync), reply);
    }

    fn opendir(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        match self.fs.getattr(ino.0) {
            Ok(st) if st.kind == Kind::Dir => reply.opened(FileHandle(0), FopenFlags::empty()),
            Ok(_) => reply.error(Errno::ENOTDIR),
            Err(e) => reply.error(errno("opendir", &e)),
        }
    }

    fn readdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        let entries = match self.fs.readdir(ino.0) {
            Ok(e) => e,
            Err(e) => return reply.error(errno("readdir", &e)),
        };
        // Offsets are positions in the name-ordered listing, so a listing
        // resumed after a change may skip or repeat an entry (as on many
        // real filesystems), never loop.
        let skip = usize::try_from(offset).unwrap_or(usize::MAX);
        for (i, (name, child, kind)) in entries.iter().enumerate().skip(skip) {
            if reply.add(
                INodeNo(*child),
                i as u64 + 1,
                file_type(*kind),
                OsStr::from_bytes(name),
            ) {
                break;
            }
        }
        reply.ok();
    }

    fn fsyncdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        Self::empty("fsyncdir", self.fs.fsyncdir(ino.0), reply);
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        match self.fs.statfs() {
            Ok(s) => reply.statfs(
                s.blocks, s.bfree, s.bavail, s.files, s.ffree, s.bsize, s.namelen, s.frsize,
            ),
            Err(e) => reply.error(errno("statfs", &e)),
        }
    }

    fn setxattr(
        &self,
        _: &Request,
        _: INodeNo,
        _: &OsStr,
        _: &[u8],
        _: i32,
        _: u32,
        reply: ReplyEmpty,
    ) {
        reply.error(Errno::ENOTSUP);
    }

    fn getxattr(&self, _: &Request, _: INodeNo, _: &OsStr, _: u32, reply: ReplyXattr) {
        reply.error(Errno::ENOTSUP);
    }

    fn listxattr(&self, _: &Request, _: INodeNo, _: u32, reply: ReplyXattr) {
        reply.error(Errno::ENOTSUP);
    }

    fn removexattr(&self, _: &Request, _: INodeNo, _: &OsStr, reply: ReplyEmpty) {
        reply.error(Errno::ENOTSUP);
    }

    fn access(&self, _req: &Request, ino: INodeNo, _mask: AccessFlags, reply: ReplyEmpty) {
        // Permissions are checked by the kernel (default_permissions).
        Self::empty("access", self.fs.getattr(ino.0).map(|_| ()), reply);
    }

    fn create(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        _flags: i32,
        reply: ReplyCreate,
    ) {
        let attrs = Self::new_attrs(req, mode, umask, 0);
        match self
            .fs
            .create(parent.0, name.as_bytes(), Kind::File, attrs, None)
        {
            Ok(st) => reply.created(
                &TTL,
                &attr(&st),
                Generation(0),
                FileHandle(0),
                FopenFlags::empty(),
            ),
            Err(e) => reply.error(errno("create", &e)),
        }
    }

    fn fallocate(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        length: u64,
        mode: i32,
        reply: ReplyEmpty,
    ) {
        let m = match mode {
            0 => Fallocate::Default,
            libc::FALLOC_FL_KEEP_SIZE => Fallocate::KeepSize,
            m if m == libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE => {
                Fallocate::PunchHole
            }
            _ => return reply.error(Errno::EOPNOTSUPP),
        };
        Self::empty(
            "fallocate",
            self.fs.fallocate(ino.0, offset, length, m),
            reply,
        );
    }

    fn lseek(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: i64,
        whence: i32,
        reply: ReplyLseek,
    ) {
        // The whole file counts as data: one hole, at the end.
        let size = match self.fs.getattr(ino.0) {
            Ok(st) => i64::try_from(st.size).unwrap_or(i64::MAX),
            Err(e) => return reply.error(errno("lseek", &e)),
        };
        match whence {
            libc::SEEK_DATA if (0..size).contains(&offset) => reply.offset(offset),
            libc::SEEK_HOLE if (0..size).contains(&offset) => reply.offset(size),
            libc::SEEK_DATA | libc::SEEK_HOLE => reply.error(Errno::ENXIO),
            _ => reply.error(Errno::EINVAL),
        }
    }
}

/// Mount settings.
#[derive(Clone, Debug)]
pub struct MountOptions {
    /// Threads serving requests.
    pub threads: usize,
}

impl Default for MountOptions {
    fn default() -> Self {
        MountOptions { threads: 2 }
    }
}

/// A mounted volume. Dropping it unmounts (also while unwinding a panic).
#[derive(Debug)]
pub struct Mounted {
    fs: Arc<DuraFs>,
    mountpoint: PathBuf,
    session: Option<BackgroundSession>,
}

/// Mounts `fs` at `mountpoint` (options: `default_permissions`,
/// `fsname=durafs`; no `allow_other`). Fails with a clear error when
/// `/dev/fuse` is missing.
pub fn mount(fs: Arc<DuraFs>, mountpoint: &Path, opts: &MountOptions) -> io::Result<Mounted> {
    if !Path::new("/dev/fuse").exists() {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            "/dev/fuse is missing: load the fuse module or run the container with --device /dev/fuse",
        ));
    }
    let mut cfg = Config::default();
    cfg.mount_options = vec![
        MountOption::FSName("durafs".into()),
        MountOption::Subtype("durafs".into()),
        MountOption::DefaultPermissions,
    ];
    cfg.acl = SessionACL::Owner;
    cfg.n_threads = Some(opts.threads.max(1));
    let adapter = Adapter {
        fs: Arc::clone(&fs),
    };
    let session = fuser::spawn_mount(adapter, mountpoint, &cfg)?;
    Ok(Mounted {
        fs,
        mountpoint: mountpoint.to_path_buf(),
        session: Some(session),
    })
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

    /// Unmounts and waits for the serving threads.
    pub fn unmount(mut self) -> io::Result<()> {
        match self.session.take() {
            Some(s) => s.umount_and_join(),
            None => Ok(()),
        }
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        let Some(s) = self.session.take() else { return };
        if let Err(e) = s.umount_and_join() {
            log::error!(
                "durafs: unmounting {}: {e}; detaching lazily",
                self.mountpoint.display()
            );
            if let Ok(c) = std::ffi::CString::new(self.mountpoint.as_os_str().as_bytes()) {
                // SAFETY: a valid NUL-terminated path.
                unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
            }
        }
    }
}
