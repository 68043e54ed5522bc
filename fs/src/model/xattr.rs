//! Extended attributes: live at once, pending as [`Op::SetXattr`] until
//! fsync (not fdatasync), fsyncdir of a directory, or sync-all makes them
//! durable, the way [`Op::SetAttrs`] is. Every call takes only the inode's
//! own lock.

use super::op::Op;
use super::types::*;
use super::{Model, Node};
use bytes::Bytes;

impl Model {
    /// The value of extended attribute `name` of `ino`.
    pub fn getxattr(&self, ino: Ino, name: &[u8]) -> FsResult<Bytes> {
        check_xattr_name(name)?;
        let node = self.node(ino)?;
        let n = node.lock();
        self.usable(&n)?;
        n.xattrs.get(name).cloned().ok_or(FsError::NoData)
    }

    /// The names of the extended attributes of `ino`, in byte order.
    pub fn listxattr(&self, ino: Ino) -> FsResult<Vec<Name>> {
        let node = self.node(ino)?;
        let n = node.lock();
        self.usable(&n)?;
        Ok(n.xattrs.keys().cloned().collect())
    }

    /// Sets extended attribute `name` of `ino` to `value` (live at once,
    /// durable with the inode's attributes).
    pub fn setxattr(
        &self,
        ino: Ino,
        name: &[u8],
        value: Bytes,
        mode: XattrMode,
        now: Timestamp,
    ) -> FsResult<()> {
        check_xattr_name(name)?;
        if value.len() > XATTR_SIZE_MAX {
            return Err(FsError::ValueTooBig);
        }
        let node = self.node(ino)?;
        let mut n = node.lock();
        self.usable(&n)?;
        match (mode, n.xattrs.contains_key(name)) {
            (XattrMode::Create, true) => return Err(FsError::Exists),
            (XattrMode::Replace, false) => return Err(FsError::NoData),
            _ => {}
        }
        n.xattrs.insert(name.to_vec(), value.clone());
        self.record_xattr(ino, &mut n, name, Some(value), now);
        Ok(())
    }

    /// Removes extended attribute `name` of `ino`.
    pub fn removexattr(&self, ino: Ino, name: &[u8], now: Timestamp) -> FsResult<()> {
        check_xattr_name(name)?;
        let node = self.node(ino)?;
        let mut n = node.lock();
        self.usable(&n)?;
        if n.xattrs.remove(name).is_none() {
            return Err(FsError::NoData);
        }
        self.record_xattr(ino, &mut n, name, None, now);
        Ok(())
    }

    fn record_xattr(
        &self,
        ino: Ino,
        n: &mut Node,
        name: &[u8],
        value: Option<Bytes>,
        now: Timestamp,
    ) {
        n.attrs.ctime = now;
        let op = Op::SetXattr {
            ino,
            name: name.to_vec(),
            value,
        };
        n.pending.insert(self.next_seq(), op);
    }
}
