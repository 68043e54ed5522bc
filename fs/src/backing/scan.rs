//! Opening a backing directory: the exclusive lock, and the scan that
//! turns the existing tree into the durable [`Image`] a model starts from.

use super::{BackingError, META_DIR, NodeInfo, State, at, io_at};
use crate::model::{Attrs, Image, ImageInode, Ino, Kind, ROOT, Timestamp};
use std::collections::{BTreeMap, HashMap};
use std::ffi::OsStr;
use std::fs::{self, File};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

/// The store's exclusive `flock` on `.durafs/lock`.
///
/// Invariant: dropping it releases the lock at once. Closing the descriptor
/// would not: a child forked by any thread of this process shares the open
/// file description (and its lock) from its fork until its exec or exit,
/// and a remount in that window would find the directory "in use"
/// (regression test `a_child_forked_while_mounted_does_not_keep_the_store_locked`).
#[derive(Debug)]
pub(super) struct StoreLock(File);

impl Drop for StoreLock {
    fn drop(&mut self) {
        if let Err(e) = at::unlock(&self.0) {
            log::warn!("durafs backing: releasing .durafs/lock: {e}");
        }
    }
}

/// Takes the store's exclusive lock; the kernel drops it when the process
/// dies, so a killed daemon never leaves the directory locked.
pub(super) fn lock_store(
    root: &Path,
    meta: BorrowedFd<'_>,
    meta_path: &Path,
) -> Result<StoreLock, BackingError> {
    let path = meta_path.join("lock");
    let f = at::open_or_create(meta, c"lock", 0o644).map_err(io_at(&path))?;
    if let Err(e) = at::lock_exclusive(&f) {
        return Err(match e.raw_os_error() {
            Some(libc::EWOULDBLOCK) => BackingError::InUse {
                path: root.to_path_buf(),
            },
            _ => io_at(&path)(e),
        });
    }
    Ok(StoreLock(f))
}

/// Reads the tree under the root into `st` and the image, numbering inodes
/// from [`ROOT`]. Every directory is read through its location (module
/// `loc`), so depth is no limit; `root` names things in errors only.
pub(super) fn scan(root: &Path, st: &mut State) -> Result<Image, BackingError> {
    let mut image = Image::default();
    let md = at::lstat(st.root_fd.as_fd(), at::DOT).map_err(io_at(root))?;
    let mut root_inode = image_inode(Kind::Dir, &md, None);
    root_inode.xattrs = super::xattrs::list_at(st.root_fd.as_fd(), at::DOT).map_err(io_at(root))?;
    image.inodes.insert(ROOT, root_inode);
    st.nodes.insert(
        ROOT,
        NodeInfo {
            kind: Kind::Dir,
            phys: Vec::new(),
            orphan: false,
            times: Some(times_of(&md)),
        },
    );
    let mut next = ROOT + 1;
    let mut seen: HashMap<(u64, u64), Ino> = HashMap::new();
    // Directories to read, with their path for error messages only.
    let mut stack = vec![(ROOT, root.to_path_buf())];
    while let Some((dir, path)) = stack.pop() {
        let fd = st.dir_fd(dir).map_err(io_at(&path))?;
        let mut names = at::list(fd.as_fd()).map_err(io_at(&path))?;
        names.sort();
        let mut entries = BTreeMap::new();
        for name in names {
            if dir == ROOT && name == META_DIR.as_bytes() {
                continue;
            }
            let p = path.join(OsStr::from_bytes(&name));
            let c = at::cname(&name).map_err(io_at(&p))?;
            let md = at::lstat(fd.as_fd(), &c).map_err(io_at(&p))?;
            let kind = kind_of(&md.file_type()).ok_or_else(|| BackingError::Unsupported {
                path: p.clone(),
                what: "unknown file type".into(),
            })?;
            let key = (md.dev(), md.ino());
            let ino = match (kind != Kind::Dir).then(|| seen.get(&key)).flatten() {
                Some(ino) => *ino,
                None => {
                    let ino = next;
                    next += 1;
                    seen.insert(key, ino);
                    let target = match kind {
                        Kind::Symlink => Some(bytes::Bytes::from(
                            at::readlink(fd.as_fd(), &c).map_err(io_at(&p))?,
                        )),
                        _ => None,
                    };
                    let mut inode = image_inode(kind, &md, target);
                    inode.xattrs = super::xattrs::list_at(fd.as_fd(), &c).map_err(io_at(&p))?;
                    image.inodes.insert(ino, inode);
                    st.nodes.insert(
                        ino,
                        NodeInfo {
                            kind,
                            phys: Vec::new(),
                            orphan: false,
                            times: Some(times_of(&md)),
                        },
                    );
                    if kind == Kind::Dir {
                        stack.push((ino, p));
                    }
                    ino
                }
            };
            if let Some(n) = st.nodes.get_mut(&ino) {
                n.phys.push((dir, name.clone()));
            }
            st.links.entry(ino).or_default().push((dir, name.clone()));
            entries.insert(name, ino);
        }
        st.logical.insert(dir, entries.clone());
        st.phys_dirs.insert(dir, entries.clone());
        image.entries.insert(dir, entries);
    }
    Ok(image)
}

fn image_inode(kind: Kind, md: &fs::Metadata, target: Option<bytes::Bytes>) -> ImageInode {
    ImageInode {
        kind,
        attrs: attrs_of(md),
        size: if kind == Kind::File { md.len() } else { 0 },
        target,
        xattrs: BTreeMap::new(),
    }
}

/// `(atime, mtime)` of a host file.
fn times_of(md: &fs::Metadata) -> (Timestamp, Timestamp) {
    let a = attrs_of(md);
    (a.atime, a.mtime)
}

/// The durafs attributes of a host file.
pub fn attrs_of(md: &fs::Metadata) -> Attrs {
    let ts = |secs: i64, nanos: i64| Timestamp {
        secs,
        nanos: u32::try_from(nanos).unwrap_or(0),
    };
    Attrs {
        mode: md.mode() & 0o7777,
        uid: md.uid(),
        gid: md.gid(),
        rdev: u32::try_from(md.rdev()).unwrap_or(0),
        atime: ts(md.atime(), md.atime_nsec()),
        mtime: ts(md.mtime(), md.mtime_nsec()),
        ctime: ts(md.ctime(), md.ctime_nsec()),
    }
}

fn kind_of(ft: &fs::FileType) -> Option<Kind> {
    Some(if ft.is_file() {
        Kind::File
    } else if ft.is_dir() {
        Kind::Dir
    } else if ft.is_symlink() {
        Kind::Symlink
    } else if ft.is_fifo() {
        Kind::Fifo
    } else if ft.is_socket() {
        Kind::Socket
    } else if ft.is_char_device() {
        Kind::CharDev
    } else if ft.is_block_device() {
        Kind::BlockDev
    } else {
        return None;
    })
}
