//! Opening a backing directory: the exclusive lock, and the scan that
//! turns the existing tree into the durable [`Image`] a model starts from.

use super::{BackingError, META_DIR, NodeInfo, State, io_at};
use crate::model::{Attrs, Image, ImageInode, Ino, Kind, ROOT, Timestamp};
use std::collections::{BTreeMap, HashMap};
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

/// Takes the store's exclusive lock; the kernel drops it when the process
/// dies, so a killed daemon never leaves the directory locked.
pub(super) fn lock_store(root: &Path, meta: &Path) -> Result<File, BackingError> {
    use std::os::fd::AsRawFd;
    let path = meta.join("lock");
    let f = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(io_at(&path))?;
    // SAFETY: a valid open descriptor.
    if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        let e = io::Error::last_os_error();
        return Err(match e.raw_os_error() {
            Some(libc::EWOULDBLOCK) => BackingError::InUse {
                path: root.to_path_buf(),
            },
            _ => io_at(&path)(e),
        });
    }
    Ok(f)
}

pub(super) fn scan(root: &Path, st: &mut State) -> Result<Image, BackingError> {
    let mut image = Image::default();
    let md = fs::symlink_metadata(root).map_err(io_at(root))?;
    let mut root_inode = image_inode(Kind::Dir, &md, None);
    root_inode.xattrs = super::xattrs::list(root).map_err(io_at(root))?;
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
    let mut stack = vec![(ROOT, root.to_path_buf())];
    while let Some((dir, path)) = stack.pop() {
        let mut entries = BTreeMap::new();
        for ent in fs::read_dir(&path).map_err(io_at(&path))? {
            let ent = ent.map_err(io_at(&path))?;
            let name = ent.file_name().as_bytes().to_vec();
            if dir == ROOT && name == META_DIR.as_bytes() {
                continue;
            }
            let p = ent.path();
            let md = fs::symlink_metadata(&p).map_err(io_at(&p))?;
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
                            fs::read_link(&p)
                                .map_err(io_at(&p))?
                                .as_os_str()
                                .as_bytes()
                                .to_vec(),
                        )),
                        _ => None,
                    };
                    let mut inode = image_inode(kind, &md, target);
                    inode.xattrs = super::xattrs::list(&p).map_err(io_at(&p))?;
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
                        stack.push((ino, p.clone()));
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
