//! Extended attributes: live at once, pending as [`Op::SetXattr`] until
//! fsync (not fdatasync), fsyncdir of a directory, or sync-all makes them
//! durable, the way [`Op::SetAttrs`] is. Every call takes only the inode's
//! own lock.

use super::op::Op;
use super::types::*;
use super::{Model, Node};
use bytes::Bytes;

impl Model {
    /// The value of extended attribute `name` of `ino`. A name in a
    /// namespace durafs does not store is never there (`ENODATA`, as ext4
    /// answers for `security.capability` on a file without capabilities).
    pub fn getxattr(&self, ino: Ino, name: &[u8]) -> FsResult<Bytes> {
        check_readable_name(name)?;
        let node = self.node(ino)?;
        let n = node.lock();
        self.usable(&n)?;
        n.xattrs
            .as_ref()
            .and_then(|m| m.get(name))
            .cloned()
            .ok_or(FsError::NoData)
    }

    /// The names of the extended attributes of `ino`, in byte order.
    pub fn listxattr(&self, ino: Ino) -> FsResult<Vec<Name>> {
        let node = self.node(ino)?;
        let n = node.lock();
        self.usable(&n)?;
        Ok(n.xattrs.iter().flat_map(|m| m.keys()).cloned().collect())
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
        let exists = n.xattrs.as_ref().is_some_and(|m| m.contains_key(name));
        match (mode, exists) {
            (XattrMode::Create, true) => return Err(FsError::Exists),
            (XattrMode::Replace, false) => return Err(FsError::NoData),
            _ => {}
        }
        n.xattrs
            .get_or_insert_with(Box::default)
            .insert(name.to_vec(), value.clone());
        self.record_xattr(ino, &mut n, name, Some(value), now);
        Ok(())
    }

    /// Removes extended attribute `name` of `ino`.
    pub fn removexattr(&self, ino: Ino, name: &[u8], now: Timestamp) -> FsResult<()> {
        check_readable_name(name)?;
        let node = self.node(ino)?;
        let mut n = node.lock();
        self.usable(&n)?;
        let Some(m) = n.xattrs.as_mut() else {
            return Err(FsError::NoData);
        };
        if m.remove(name).is_none() {
            return Err(FsError::NoData);
        }
        if m.is_empty() {
            n.xattrs = None;
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

/// As [`check_xattr_name`] for reads and removals, where a namespace durafs
/// does not store holds nothing (`NoData`).
fn check_readable_name(name: &[u8]) -> FsResult<()> {
    match check_xattr_name(name) {
        Err(FsError::NotSupported) => Err(FsError::NoData),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Config, Effect, MemStore, Model};
    use super::*;
    use crate::model::crash::{CrashOptions, Policy, crash_state};

    fn t(secs: i64) -> Timestamp {
        Timestamp { secs, nanos: 0 }
    }

    /// A model with one durable file `f`, and its store.
    fn with_file() -> (Model, MemStore, Ino) {
        let m = Model::new(Config::default(), Attrs::default());
        let mut store = MemStore::new(Attrs::default());
        let st = m
            .create(ROOT, b"f", Kind::File, Attrs::default(), None)
            .expect("create");
        store.apply_all(&m.fsync(st.ino, false).expect("fsync"));
        store.apply_all(&m.fsyncdir(ROOT).expect("fsyncdir"));
        (m, store, st.ino)
    }

    fn durable(store: &MemStore, name: &[u8]) -> Option<Bytes> {
        store
            .xattrs()
            .get(&b"f"[..])
            .and_then(|x| x.get(name).cloned())
    }

    #[test]
    fn an_xattr_is_durable_with_fsync_and_not_with_fdatasync() {
        let (m, mut store, f) = with_file();
        m.setxattr(f, b"user.k", Bytes::from_static(b"v"), XattrMode::Any, t(2))
            .expect("set");
        assert_eq!(m.getxattr(f, b"user.k"), Ok(Bytes::from_static(b"v")));
        store.apply_all(&m.fsync(f, true).expect("fdatasync"));
        assert_eq!(durable(&store, b"user.k"), None, "fdatasync kept it");
        assert_eq!(m.report().files[0].xattrs_pending, ["user.k"]);
        store.apply_all(&m.fsync(f, false).expect("fsync"));
        assert_eq!(durable(&store, b"user.k"), Some(Bytes::from_static(b"v")));
        assert!(m.pending_ops().is_empty());
    }

    #[test]
    fn an_unsynced_set_and_removal_are_lost_at_a_drop_all_cut_and_kept_by_keep_all() {
        let (m, mut store, f) = with_file();
        m.setxattr(
            f,
            b"user.k",
            Bytes::from_static(b"old"),
            XattrMode::Any,
            t(2),
        )
        .expect("set");
        store.apply_all(&m.fsync(f, false).expect("fsync"));
        m.removexattr(f, b"user.k", t(3)).expect("remove");
        m.setxattr(
            f,
            b"user.n",
            Bytes::from_static(b"new"),
            XattrMode::Create,
            t(4),
        )
        .expect("set new");
        let pending = m.pending_ops();
        let cut = |policy| {
            let st = crash_state(
                &pending,
                &CrashOptions {
                    policy,
                    ..CrashOptions::default()
                },
            );
            let mut s = store.clone();
            s.apply_all(&st.effects(&pending));
            (durable(&s, b"user.k"), durable(&s, b"user.n"))
        };
        assert_eq!(
            cut(Policy::DropAll),
            (Some(Bytes::from_static(b"old")), None)
        );
        assert_eq!(
            cut(Policy::KeepAll),
            (None, Some(Bytes::from_static(b"new")))
        );
        assert_eq!(
            cut(Policy::MetaFirst),
            (None, Some(Bytes::from_static(b"new")))
        );
    }

    #[test]
    fn flags_and_limits_are_linux_s() {
        let (m, _, f) = with_file();
        let v = || Bytes::from_static(b"v");
        assert_eq!(
            m.setxattr(f, b"user.k", v(), XattrMode::Replace, t(2)),
            Err(FsError::NoData)
        );
        m.setxattr(f, b"user.k", v(), XattrMode::Create, t(2))
            .expect("create");
        assert_eq!(
            m.setxattr(f, b"user.k", v(), XattrMode::Create, t(2)),
            Err(FsError::Exists)
        );
        assert_eq!(m.getxattr(f, b"user.none"), Err(FsError::NoData));
        assert_eq!(m.removexattr(f, b"user.none", t(2)), Err(FsError::NoData));
        let big = Bytes::from(vec![0u8; XATTR_SIZE_MAX + 1]);
        assert_eq!(
            m.setxattr(f, b"user.big", big, XattrMode::Any, t(2)),
            Err(FsError::ValueTooBig)
        );
        let long = [b"user.".as_slice(), &[b'n'; 251]].concat();
        assert_eq!(
            m.setxattr(f, &long, v(), XattrMode::Any, t(2)),
            Err(FsError::Range)
        );
        for ns in [
            &b"security.selinux"[..],
            b"system.posix_acl_access",
            b"other.x",
        ] {
            assert_eq!(
                m.setxattr(f, ns, v(), XattrMode::Any, t(2)),
                Err(FsError::NotSupported)
            );
            assert_eq!(m.getxattr(f, ns), Err(FsError::NoData));
            assert_eq!(m.removexattr(f, ns, t(2)), Err(FsError::NoData));
        }
        assert_eq!(m.listxattr(f), Ok(vec![b"user.k".to_vec()]));
    }

    #[test]
    fn a_directory_xattr_is_durable_with_fsyncdir() {
        let m = Model::new(Config::default(), Attrs::default());
        m.setxattr(
            ROOT,
            b"user.d",
            Bytes::from_static(b"v"),
            XattrMode::Any,
            t(2),
        )
        .expect("set");
        let effects = m.fsyncdir(ROOT).expect("fsyncdir");
        assert!(
            effects
                .iter()
                .any(|e| matches!(e, Effect::SetXattr { ino: ROOT, .. })),
            "{effects:?}"
        );
        assert!(m.pending_ops().is_empty());
    }

    #[test]
    fn zero_range_is_a_punch_then_an_allocate_lost_at_a_drop_all_cut() {
        let (m, mut store, f) = with_file();
        m.write(f, 0, Bytes::from(vec![b'a'; 100]), t(2))
            .expect("write");
        store.apply_all(&m.fsync(f, true).expect("fdatasync"));
        m.fallocate(f, 50, 100, Fallocate::ZeroRange, t(3))
            .expect("zero range");
        assert_eq!(m.getattr(f).expect("stat").size, 150);
        let ops: Vec<String> = m.pending_ops().iter().map(|p| p.op.summary()).collect();
        assert_eq!(
            ops,
            [
                format!("punch hole #{f} [50, 100)"),
                format!("fallocate #{f} [50, 150)")
            ]
        );
        m.fallocate(f, 0, 1000, Fallocate::ZeroRangeKeepSize, t(4))
            .expect("keep size");
        assert_eq!(m.getattr(f).expect("stat").size, 150);
        let pending = m.pending_ops();
        let st = crash_state(
            &pending,
            &CrashOptions {
                policy: Policy::DropAll,
                ..CrashOptions::default()
            },
        );
        store.apply_all(&st.effects(&pending));
        let mut out = Vec::new();
        store.read(f, 0, 100, &mut out);
        assert_eq!(out, vec![b'a'; 100]);
    }
}
