//! The thin fuser adapter: each callback converts its arguments, calls
//! [`DuraFs`] (or, for the control file's inode, [`ControlFile`]), and
//! maps errors to an errno in one place (`ToErrno`). fuser calls these
//! from several threads; all state is in [`DuraFs`] and [`ControlFile`].

use crate::control::{ControlFile, Refused};
use crate::model::{Kind, SetAttrs};
use bytes::Bytes;
use fuser::{
    AccessFlags, BsdFileFlags, FileHandle, Filesystem, FopenFlags, Generation, INodeNo,
    KernelConfig, LockOwner, OpenFlags, RenameFlags, ReplyAttr, ReplyCreate, ReplyData,
    ReplyDirectory, ReplyDirectoryPlus, ReplyEmpty, ReplyEntry, ReplyLseek, ReplyOpen, ReplyStatfs,
    ReplyWrite, ReplyXattr, Request, TimeOrNow, WriteFlags,
};
use std::ffi::OsStr;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::time::SystemTime;

mod adapter;
mod convert;
mod errno;
pub(crate) use adapter::{Adapter, Notify};
use adapter::{FILE_OPEN_FLAGS, TTL};
use convert::{
    Bad, attr, fallocate_mode, file_type, mknod_kind, rename_flags, seek, time_of, xattr_mode,
    xattr_reply,
};
use errno::ToErrno;

impl Filesystem for Adapter {
    fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> io::Result<()> {
        self.negotiate(config);
        Ok(())
    }

    fn destroy(&mut self) {
        // A real unmount writes everything back.
        self.fs.sync_at_unmount();
        (self.notify.unmounted)();
    }

    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        if ControlFile::is_entry(parent.0, name.as_bytes()) {
            return reply.entry(&TTL, &attr(&self.control.stat()), Generation(0));
        }
        self.entry("lookup", self.fs.lookup(parent.0, name.as_bytes()), reply);
    }

    fn forget(&self, _req: &Request, ino: INodeNo, _nlookup: u64) {
        if ino.0 != ControlFile::INO {
            self.fs.forget(ino.0);
        }
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        if ino.0 == ControlFile::INO {
            return reply.attr(&TTL, &attr(&self.control.stat()));
        }
        Self::attr("getattr", self.fs.getattr(ino.0), reply);
    }

    fn setattr(
        &self,
        req: &Request,
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
        let _caller = crate::fs::caller::serving(req.pid());
        if ino.0 == ControlFile::INO {
            let other = mode.is_some()
                || uid.is_some()
                || gid.is_some()
                || atime.is_some()
                || mtime.is_some();
            return Self::attr("setattr", self.control.setattr(size, other), reply);
        }
        let set = SetAttrs {
            mode,
            uid,
            gid,
            size,
            atime: atime.map(time_of),
            mtime: mtime.map(time_of),
        };
        let r = if self.killpriv {
            self.fs.setattr_killpriv(ino.0, set, req.uid() == 0)
        } else {
            self.fs.setattr(ino.0, set)
        };
        Self::attr("setattr", r, reply);
    }

    fn readlink(&self, _req: &Request, ino: INodeNo, reply: ReplyData) {
        match self.fs.readlink(ino.0) {
            Ok(t) => reply.data(&t),
            Err(e) => reply.error(e.to_errno("readlink")),
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
        let _caller = crate::fs::caller::serving(req.pid());
        let kind = match mknod_kind(mode) {
            Ok(k) => k,
            Err(b) => return reply.error(b.to_errno("mknod")),
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
        let _caller = crate::fs::caller::serving(req.pid());
        let attrs = Self::new_attrs(req, mode, umask, 0);
        self.entry(
            "mkdir",
            self.fs
                .create(parent.0, name.as_bytes(), Kind::Dir, attrs, None),
            reply,
        );
    }

    fn unlink(&self, req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let _caller = crate::fs::caller::serving(req.pid());
        Self::empty("unlink", self.fs.unlink(parent.0, name.as_bytes()), reply);
    }

    fn rmdir(&self, req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let _caller = crate::fs::caller::serving(req.pid());
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
        let _caller = crate::fs::caller::serving(req.pid());
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
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        let _caller = crate::fs::caller::serving(req.pid());
        let f = match rename_flags(flags) {
            Ok(f) => f,
            Err(b) => return reply.error(b.to_errno("rename")),
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
        req: &Request,
        ino: INodeNo,
        newparent: INodeNo,
        newname: &OsStr,
        reply: ReplyEntry,
    ) {
        let _caller = crate::fs::caller::serving(req.pid());
        if ino.0 == ControlFile::INO {
            return reply.error(Refused::Fixed.to_errno("link"));
        }
        self.entry(
            "link",
            self.fs.link(ino.0, newparent.0, newname.as_bytes()),
            reply,
        );
    }

    fn open(&self, req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        if ino.0 == ControlFile::INO {
            // Direct I/O: reads reach durafs whatever the file's size says.
            return match self.control.open(req.uid()) {
                Ok(fh) => reply.opened(FileHandle(fh), FopenFlags::FOPEN_DIRECT_IO),
                Err(r) => reply.error(r.to_errno("open")),
            };
        }
        match self.fs.open_handle(ino.0) {
            Ok(fh) => reply.opened(FileHandle(fh), FILE_OPEN_FLAGS),
            Err(e) => reply.error(e.to_errno("open")),
        }
    }

    fn read(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        if ino.0 == ControlFile::INO {
            return match self.control.read(fh.0, size) {
                Ok(d) => reply.data(&d),
                Err(r) => reply.error(r.to_errno("read")),
            };
        }
        match self.fs.read(ino.0, offset, size) {
            Ok(d) => reply.data(&d),
            Err(e) => reply.error(e.to_errno("read")),
        }
    }

    fn write(
        &self,
        req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        data: &[u8],
        write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        let _caller = crate::fs::caller::serving(req.pid());
        if ino.0 == ControlFile::INO {
            return match self.control.write(fh.0, data) {
                Ok(n) => reply.written(n),
                Err(r) => reply.error(r.to_errno("write")),
            };
        }
        if write_flags.contains(WriteFlags::FUSE_WRITE_KILL_SUIDGID)
            && let Err(e) = self.fs.kill_setid(ino.0)
        {
            return reply.error(e.to_errno("write"));
        }
        match self.fs.write(ino.0, offset, data) {
            Ok(n) => reply.written(n),
            Err(e) => reply.error(e.to_errno("write")),
        }
    }

    fn flush(
        &self,
        req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        _lock_owner: LockOwner,
        reply: ReplyEmpty,
    ) {
        let _caller = crate::fs::caller::serving(req.pid());
        if ino.0 == ControlFile::INO {
            return reply.ok();
        }
        Self::empty("flush", self.fs.getattr(ino.0).map(|_| ()), reply);
    }

    fn release(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        // FUSE sends release after close(2) returned: its caller is not
        // held, so no stack is taken for it.
        if ino.0 == ControlFile::INO {
            if self.control.release(fh.0) {
                (self.notify.cut)();
            }
        } else {
            self.fs.close_handle(fh.0);
            self.fs.release(ino.0);
        }
        reply.ok();
    }

    fn fsync(
        &self,
        req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        datasync: bool,
        reply: ReplyEmpty,
    ) {
        let _caller = crate::fs::caller::serving(req.pid());
        if ino.0 == ControlFile::INO {
            return reply.ok();
        }
        Self::empty("fsync", self.fs.fsync_handle(ino.0, fh.0, datasync), reply);
    }

    fn opendir(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        match self.fs.getattr(ino.0) {
            Ok(st) if st.kind == Kind::Dir => reply.opened(FileHandle(0), FopenFlags::empty()),
            Ok(_) => reply.error(Bad::NotDir.to_errno("opendir")),
            Err(e) => reply.error(e.to_errno("opendir")),
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
            Err(e) => return reply.error(e.to_errno("readdir")),
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

    fn readdirplus(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectoryPlus,
    ) {
        let entries = match self.fs.readdir_plus(ino.0) {
            Ok(e) => e,
            Err(e) => return reply.error(e.to_errno("readdirplus")),
        };
        // Offsets as in `readdir`. Each entry but `.` and `..` counts as a
        // lookup for the kernel, as its attributes come with it.
        let skip = usize::try_from(offset).unwrap_or(usize::MAX);
        for (i, (name, st)) in entries.iter().enumerate().skip(skip) {
            if reply.add(
                INodeNo(st.ino),
                i as u64 + 1,
                OsStr::from_bytes(name),
                &TTL,
                &attr(st),
                Generation(0),
            ) {
                break;
            }
        }
        reply.ok();
    }

    fn fsyncdir(
        &self,
        req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        let _caller = crate::fs::caller::serving(req.pid());
        Self::empty("fsyncdir", self.fs.fsyncdir(ino.0), reply);
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        match self.fs.statfs() {
            Ok(s) => reply.statfs(
                s.blocks, s.bfree, s.bavail, s.files, s.ffree, s.bsize, s.namelen, s.frsize,
            ),
            Err(e) => reply.error(e.to_errno("statfs")),
        }
    }

    fn setxattr(
        &self,
        req: &Request,
        ino: INodeNo,
        name: &OsStr,
        value: &[u8],
        flags: i32,
        _position: u32,
        reply: ReplyEmpty,
    ) {
        let _caller = crate::fs::caller::serving(req.pid());
        if ino.0 == ControlFile::INO {
            return reply.error(Refused::XattrUnsupported.to_errno("setxattr"));
        }
        let mode = match xattr_mode(flags) {
            Ok(m) => m,
            Err(b) => return reply.error(b.to_errno("setxattr")),
        };
        let r = self.fs.setxattr(ino.0, name.as_bytes(), value, mode);
        Self::empty("setxattr", r, reply);
    }

    fn getxattr(&self, _req: &Request, ino: INodeNo, name: &OsStr, size: u32, reply: ReplyXattr) {
        if ino.0 == ControlFile::INO {
            return reply.error(Refused::NoXattr.to_errno("getxattr"));
        }
        match self.fs.getxattr(ino.0, name.as_bytes()) {
            Ok(v) => xattr_reply(&v, size, reply),
            Err(e) => reply.error(e.to_errno("getxattr")),
        }
    }

    fn listxattr(&self, req: &Request, ino: INodeNo, size: u32, reply: ReplyXattr) {
        if ino.0 == ControlFile::INO {
            return xattr_reply(&[], size, reply);
        }
        match self.fs.listxattr(ino.0, req.uid() == 0) {
            Ok(v) => xattr_reply(&v, size, reply),
            Err(e) => reply.error(e.to_errno("listxattr")),
        }
    }

    fn removexattr(&self, req: &Request, ino: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let _caller = crate::fs::caller::serving(req.pid());
        if ino.0 == ControlFile::INO {
            return reply.error(Refused::NoXattr.to_errno("removexattr"));
        }
        Self::empty(
            "removexattr",
            self.fs.removexattr(ino.0, name.as_bytes()),
            reply,
        );
    }

    fn access(&self, _req: &Request, ino: INodeNo, _mask: AccessFlags, reply: ReplyEmpty) {
        // Permissions are checked by the kernel (default_permissions).
        if ino.0 == ControlFile::INO {
            return reply.ok();
        }
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
        let _caller = crate::fs::caller::serving(req.pid());
        let attrs = Self::new_attrs(req, mode, umask, 0);
        match self
            .fs
            .create(parent.0, name.as_bytes(), Kind::File, attrs, None)
        {
            Ok(st) => match self.fs.open_handle(st.ino) {
                Ok(fh) => reply.created(
                    &TTL,
                    &attr(&st),
                    Generation(0),
                    FileHandle(fh),
                    FILE_OPEN_FLAGS,
                ),
                Err(e) => reply.error(e.to_errno("create")),
            },
            Err(e) => reply.error(e.to_errno("create")),
        }
    }

    fn fallocate(
        &self,
        req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        length: u64,
        mode: i32,
        reply: ReplyEmpty,
    ) {
        let _caller = crate::fs::caller::serving(req.pid());
        let m = match fallocate_mode(mode) {
            Ok(m) => m,
            Err(b) => return reply.error(b.to_errno("fallocate")),
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
        match self.fs.getattr(ino.0) {
            Ok(st) => match seek(st.size, offset, whence) {
                Ok(at) => reply.offset(at),
                Err(b) => reply.error(b.to_errno("lseek")),
            },
            Err(e) => reply.error(e.to_errno("lseek")),
        }
    }
}
