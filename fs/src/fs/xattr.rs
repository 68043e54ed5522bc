//! Extended attributes, and the clearing of set-ID bits that the kernel
//! leaves to the filesystem under `FUSE_HANDLE_KILLPRIV_V2` (negotiated so
//! that supporting extended attributes does not cost a `getxattr` of
//! `security.capability` per write; see `docs/performance.md`).

use super::{DuraFs, Result, now};
use crate::model::{FsError, Ino, Kind, SetAttrs, Stat, XattrMode, check_xattr_name};
use crate::trace::{Data, Text, TraceOp};
use bytes::Bytes;

/// `mode` without the set-ID bits a write, truncate or chown clears: the
/// set-user-ID bit always, the set-group-ID bit only with group execute
/// (without it the bit marks mandatory locking, which Linux keeps).
pub(crate) fn drop_setid(mode: u32) -> u32 {
    let mut m = mode & !0o4000;
    if m & 0o010 != 0 {
        m &= !0o2000;
    }
    m
}

impl DuraFs {
    /// The value of extended attribute `name` of `ino`.
    pub fn getxattr(&self, ino: Ino, name: &[u8]) -> Result<Bytes> {
        Ok(self.model.getxattr(ino, name)?)
    }

    /// The names of the extended attributes of `ino`, each followed by a
    /// NUL, as `listxattr(2)` returns them. `trusted.` names are listed only
    /// to a `privileged` caller, as ext4 and tmpfs list them only to
    /// `CAP_SYS_ADMIN`.
    pub fn listxattr(&self, ino: Ino, privileged: bool) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        for name in self.model.listxattr(ino)? {
            if privileged || !name.starts_with(b"trusted.") {
                out.extend_from_slice(&name);
                out.push(0);
            }
        }
        Ok(out)
    }

    /// Sets extended attribute `name` of `ino` (live at once; durable with
    /// fsync, not fdatasync). Names in namespaces `BACKING` cannot hold are
    /// refused with `EOPNOTSUPP`, an attribute larger than it holds with
    /// `ENOSPC`.
    pub fn setxattr(&self, ino: Ino, name: &[u8], value: &[u8], mode: XattrMode) -> Result<()> {
        check_xattr_name(name)?;
        if !self.xattr_support.allows(name) {
            return Err(FsError::NotSupported.into());
        }
        // IMPORTANT: as the backing filesystem itself answers, rather than
        // accept an attribute no fsync could store. (The probe knows one
        // attribute alone; several that together pass the inode's capacity
        // still fail at fsync: docs/durability.md, Limits.)
        if name.len() + value.len() > self.xattr_support.max_entry {
            return Err(FsError::NoSpace.into());
        }
        self.run_done(TraceOp::Setxattr {
            ino,
            name: Text(name.to_vec()),
            value: Data(Bytes::copy_from_slice(value)),
            mode,
            t: now(),
        })
    }

    /// Removes extended attribute `name` of `ino`.
    pub fn removexattr(&self, ino: Ino, name: &[u8]) -> Result<()> {
        self.run_done(TraceOp::Removexattr {
            ino,
            name: Text(name.to_vec()),
            t: now(),
        })
    }

    /// Clears the set-ID bits of regular file `ino` before a write by a
    /// caller without `CAP_FSETID` (`FUSE_WRITE_KILL_SUIDGID`), as the chmod
    /// the kernel itself sends without `KILLPRIV_V2`: a separate setattr,
    /// recorded and traced as one.
    ///
    /// Invariant: no setattr of `ino` falls between the read and the set:
    /// the kernel holds the inode's lock (`i_rwsem`) across a write and
    /// across every setattr, so the two calls see the same mode.
    pub fn kill_setid(&self, ino: Ino) -> Result<()> {
        let st = self.getattr(ino)?;
        let mode = drop_setid(st.attrs.mode);
        if st.kind != Kind::File || mode == st.attrs.mode {
            return Ok(());
        }
        let set = SetAttrs {
            mode: Some(mode),
            ..SetAttrs::default()
        };
        self.setattr(ino, set).map(|_| ())
    }

    /// A setattr from the kernel under `KILLPRIV_V2`: a chown of a
    /// non-directory, or a truncate by an unprivileged caller, also clears
    /// the set-ID bits in the same call (the kernel's `FATTR_KILL_SUIDGID`,
    /// which fuser 0.18 does not pass on, so it is rebuilt from the request:
    /// the kernel sets it for every such chown, and for a truncate by a
    /// caller without `CAP_FSETID`, approximated as "not root").
    pub fn setattr_killpriv(&self, ino: Ino, mut set: SetAttrs, privileged: bool) -> Result<Stat> {
        let chown = set.uid.is_some() || set.gid.is_some();
        let truncate = set.size.is_some() && !privileged;
        if set.mode.is_none() && (chown || truncate) {
            let st = self.getattr(ino)?;
            let mode = drop_setid(st.attrs.mode);
            let applies = if chown {
                st.kind != Kind::Dir
            } else {
                st.kind == Kind::File
            };
            if applies && mode != st.attrs.mode {
                set.mode = Some(mode);
            }
        }
        self.setattr(ino, set)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fs::FsOptions;
    use crate::model::{Attrs, ROOT};

    fn mode_of(fs: &DuraFs, ino: Ino) -> u32 {
        fs.getattr(ino).unwrap().attrs.mode
    }

    #[test]
    fn drop_setid_keeps_set_group_id_without_group_execute() {
        assert_eq!(drop_setid(0o6755), 0o755);
        assert_eq!(drop_setid(0o6745), 0o2745);
        assert_eq!(drop_setid(0o1777), 0o1777);
    }

    #[test]
    fn setattr_killpriv_clears_on_chown_and_unprivileged_truncate_only() {
        let dir = tempfile::tempdir().unwrap();
        let fs = DuraFs::open(dir.path(), FsOptions::default()).unwrap();
        let a = |mode| Attrs {
            mode,
            ..Attrs::default()
        };
        let f = fs
            .create(ROOT, b"f", Kind::File, a(0o6755), None)
            .unwrap()
            .ino;
        let d = fs
            .create(ROOT, b"d", Kind::Dir, a(0o2755), None)
            .unwrap()
            .ino;
        let size = SetAttrs {
            size: Some(0),
            ..SetAttrs::default()
        };
        fs.setattr_killpriv(f, size, true).unwrap();
        assert_eq!(mode_of(&fs, f), 0o6755, "root keeps them on truncate");
        fs.setattr_killpriv(f, size, false).unwrap();
        assert_eq!(mode_of(&fs, f), 0o755);
        let chown = SetAttrs {
            uid: Some(1),
            ..SetAttrs::default()
        };
        fs.setattr(
            f,
            SetAttrs {
                mode: Some(0o4755),
                ..SetAttrs::default()
            },
        )
        .unwrap();
        fs.setattr_killpriv(f, chown, true).unwrap();
        assert_eq!(mode_of(&fs, f), 0o755, "a chown clears them even for root");
        fs.setattr_killpriv(d, chown, true).unwrap();
        assert_eq!(mode_of(&fs, d), 0o2755, "not on a directory");
        let explicit = SetAttrs {
            mode: Some(0o4700),
            uid: Some(2),
            ..SetAttrs::default()
        };
        fs.setattr_killpriv(f, explicit, false).unwrap();
        assert_eq!(mode_of(&fs, f), 0o4700, "an explicit mode wins");
    }
}
