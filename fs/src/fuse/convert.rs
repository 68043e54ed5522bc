//! The conversions between fuser's types and the model's: pure
//! functions, no state.

use super::errno::ToErrno;
use crate::fs as core;
use crate::model::{Fallocate, Kind, Stat, XattrMode};
use fuser::{FileAttr, FileType, INodeNo, RenameFlags, ReplyXattr, TimeOrNow};
use std::time::SystemTime;

pub(super) fn file_type(k: Kind) -> FileType {
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

pub(super) fn attr(st: &Stat) -> FileAttr {
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

pub(super) fn time_of(t: TimeOrNow) -> crate::model::Timestamp {
    match t {
        TimeOrNow::SpecificTime(t) => kernel_time(t),
        TimeOrNow::Now => core::now(),
    }
}

/// The time the kernel sent as `(secs, nanos)`, i.e. `secs + nanos / 10^9`.
/// fuser 0.18 (`time::system_time_from_time`) turns it into
/// `UNIX_EPOCH - (|secs| s + nanos ns)` when `secs < 0`, a second and a
/// fraction too early; this undoes that exactly. Checked through a mount
/// by `differential::a_time_before_1970_with_nanoseconds_is_set_exactly`.
fn kernel_time(t: SystemTime) -> crate::model::Timestamp {
    match t.duration_since(std::time::UNIX_EPOCH) {
        Ok(_) => core::to_timestamp(t),
        Err(e) => crate::model::Timestamp {
            secs: -i64::try_from(e.duration().as_secs()).unwrap_or(i64::MAX),
            nanos: e.duration().subsec_nanos(),
        },
    }
}

/// Answers a `getxattr` / `listxattr` of a caller with a `size`-byte
/// buffer: the size alone for a size query (`size == 0`), `ERANGE` when
/// `value` does not fit.
pub(super) fn xattr_reply(value: &[u8], size: u32, reply: ReplyXattr) {
    let len = u32::try_from(value.len()).unwrap_or(u32::MAX);
    if size == 0 {
        reply.size(len);
    } else if len > size {
        reply.error(Bad::TooSmall.to_errno("xattr"));
    } else {
        reply.data(value);
    }
}

/// A request the adapter refuses before it reaches [`core::DuraFs`]: an
/// argument it cannot convert, or a call that does not apply. Each is one
/// errno (`super::errno`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Bad {
    /// `mknod` of a file type durafs does not store (`EINVAL`).
    FileType(u32),
    /// A `fallocate` mode durafs does not implement (`EOPNOTSUPP`).
    FallocateMode(i32),
    /// `setxattr` flags other than `XATTR_CREATE` or `XATTR_REPLACE`
    /// (`EINVAL`).
    XattrFlags(i32),
    /// `RENAME_WHITEOUT`, which only overlay filesystems use (`EINVAL`).
    Whiteout,
    /// `opendir` of something that is not a directory (`ENOTDIR`).
    NotDir,
    /// `SEEK_DATA` or `SEEK_HOLE` at or past the end (`ENXIO`).
    PastEnd,
    /// An `lseek` whence other than `SEEK_DATA` or `SEEK_HOLE` (`EINVAL`).
    Whence(i32),
    /// An extended attribute larger than the caller's buffer (`ERANGE`).
    TooSmall,
}

/// The kind `mknod` makes from the file-type bits of `mode`.
pub(super) fn mknod_kind(mode: u32) -> Result<Kind, Bad> {
    match mode & libc::S_IFMT {
        libc::S_IFREG | 0 => Ok(Kind::File),
        libc::S_IFIFO => Ok(Kind::Fifo),
        libc::S_IFSOCK => Ok(Kind::Socket),
        libc::S_IFCHR => Ok(Kind::CharDev),
        libc::S_IFBLK => Ok(Kind::BlockDev),
        other => Err(Bad::FileType(other)),
    }
}

/// The `fallocate(2)` mode durafs implements for `mode`.
pub(super) fn fallocate_mode(mode: i32) -> Result<Fallocate, Bad> {
    const KEEP: i32 = libc::FALLOC_FL_KEEP_SIZE;
    match mode {
        0 => Ok(Fallocate::Default),
        KEEP => Ok(Fallocate::KeepSize),
        m if m == libc::FALLOC_FL_PUNCH_HOLE | KEEP => Ok(Fallocate::PunchHole),
        libc::FALLOC_FL_ZERO_RANGE => Ok(Fallocate::ZeroRange),
        m if m == libc::FALLOC_FL_ZERO_RANGE | KEEP => Ok(Fallocate::ZeroRangeKeepSize),
        m => Err(Bad::FallocateMode(m)),
    }
}

/// The `renameat2(2)` flags durafs implements (`RENAME_WHITEOUT` is for
/// overlay filesystems only).
pub(super) fn rename_flags(flags: RenameFlags) -> Result<crate::model::RenameFlags, Bad> {
    if flags.contains(RenameFlags::RENAME_WHITEOUT) {
        return Err(Bad::Whiteout);
    }
    Ok(crate::model::RenameFlags {
        noreplace: flags.contains(RenameFlags::RENAME_NOREPLACE),
        exchange: flags.contains(RenameFlags::RENAME_EXCHANGE),
    })
}

/// The `setxattr(2)` mode of `flags`.
pub(super) fn xattr_mode(flags: i32) -> Result<XattrMode, Bad> {
    match flags {
        0 => Ok(XattrMode::Any),
        libc::XATTR_CREATE => Ok(XattrMode::Create),
        libc::XATTR_REPLACE => Ok(XattrMode::Replace),
        f => Err(Bad::XattrFlags(f)),
    }
}

/// `lseek` with `SEEK_DATA` or `SEEK_HOLE` in a file of `size` bytes, all
/// of it data: one hole, at the end.
pub(super) fn seek(size: u64, offset: i64, whence: i32) -> Result<i64, Bad> {
    let size = i64::try_from(size).unwrap_or(i64::MAX);
    match whence {
        libc::SEEK_DATA if (0..size).contains(&offset) => Ok(offset),
        libc::SEEK_HOLE if (0..size).contains(&offset) => Ok(size),
        libc::SEEK_DATA | libc::SEEK_HOLE => Err(Bad::PastEnd),
        w => Err(Bad::Whence(w)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fuser::Errno;

    #[test]
    fn modes_and_flags_decode_or_are_refused_with_their_errno() {
        assert_eq!(mknod_kind(libc::S_IFIFO | 0o644), Ok(Kind::Fifo));
        assert_eq!(mknod_kind(0o644), Ok(Kind::File));
        assert_eq!(
            mknod_kind(libc::S_IFDIR).map_err(|b| b.to_errno("test")),
            Err(Errno::EINVAL)
        );
        let punch = libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE;
        assert_eq!(fallocate_mode(punch), Ok(Fallocate::PunchHole));
        let bare_punch = fallocate_mode(libc::FALLOC_FL_PUNCH_HOLE);
        assert_eq!(
            bare_punch.map_err(|b| b.to_errno("test")),
            Err(Errno::EOPNOTSUPP)
        );
        assert_eq!(xattr_mode(libc::XATTR_CREATE), Ok(XattrMode::Create));
        assert_eq!(
            xattr_mode(4).map_err(|b| b.to_errno("test")),
            Err(Errno::EINVAL)
        );
        assert_eq!(seek(10, 3, libc::SEEK_DATA), Ok(3));
        assert_eq!(seek(10, 3, libc::SEEK_HOLE), Ok(10));
        assert_eq!(seek(10, 10, libc::SEEK_DATA), Err(Bad::PastEnd));
        assert_eq!(
            seek(10, 0, libc::SEEK_SET).map_err(|b| b.to_errno("test")),
            Err(Errno::EINVAL)
        );
        let f = rename_flags(RenameFlags::RENAME_EXCHANGE).unwrap();
        assert!(f.exchange && !f.noreplace);
        let whiteout = rename_flags(RenameFlags::RENAME_WHITEOUT);
        assert_eq!(whiteout.map_err(|b| b.to_errno("test")), Err(Errno::EINVAL));
    }
}
