//! The conversions between fuser's types and the model's: pure
//! functions, no state.

use crate::fs as core;
use crate::model::{Kind, Stat};
use fuser::{Errno, FileAttr, FileType, INodeNo, ReplyXattr, TimeOrNow};
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
        reply.error(Errno::ERANGE);
    } else {
        reply.data(value);
    }
}
