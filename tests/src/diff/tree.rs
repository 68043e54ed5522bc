//! The visible tree a differential run compares: every path with its kind,
//! permission bits, owner and group, nlink, the earlier path it is a hard
//! link of, size, content (whole up to [`FULL_LIMIT`], else the [`REGIONS`]
//! windows and a few probes), symlink target, and the mtime where the
//! harness kept it ([`Tree::retain_mtimes`]). Read from a directory
//! ([`Tree::read`]), predicted from a durable [`MemStore`]
//! ([`Tree::of_store`]), written into an empty directory
//! ([`Tree::materialise`]), and compared with a readable list of
//! differences ([`Tree::diff`]).

use super::{FULL_LIMIT, REGIONS};
use durafs::model::{Kind, MemStore, ROOT};
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::fs;
use std::io;
use std::os::unix::fs::{FileExt, MetadataExt, PermissionsExt};
use std::path::Path;

/// Probes read between the windows of a big file: `(offset, len)`.
const PROBES: &[(u64, u64)] = &[(512 << 10, 4096), (32 << 20, 4096), (512 << 20, 4096)];

/// What a path is.
#[derive(Clone, PartialEq, Eq)]
pub enum NodeKind {
    /// A regular file: its size and content as `(offset, bytes)` pieces.
    File {
        size: u64,
        data: Vec<(u64, Vec<u8>)>,
    },
    Dir,
    Symlink(Vec<u8>),
    /// Anything else, by its file-type bits.
    Other(u32),
}

/// One path of a tree.
#[derive(Clone, PartialEq, Eq)]
pub struct Node {
    pub kind: NodeKind,
    /// Permission bits (`0o7777`).
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    /// `(secs, nanos)`: kept only where the harness knows both sides must
    /// agree (see [`Tree::retain_mtimes`]), else `None`.
    pub mtime: Option<(i64, i64)>,
    pub nlink: u64,
    /// For a non-directory with several names, the first of them in path
    /// order.
    pub link_of: Option<String>,
}

impl fmt::Debug for Node {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            NodeKind::File { size, data } => {
                let nz: usize = data
                    .iter()
                    .map(|(_, d)| d.iter().filter(|b| **b != 0).count())
                    .sum();
                write!(f, "file size {size} ({nz} non-zero bytes compared)")?
            }
            NodeKind::Dir => write!(f, "dir")?,
            NodeKind::Symlink(t) => write!(f, "symlink -> {:?}", String::from_utf8_lossy(t))?,
            NodeKind::Other(m) => write!(f, "special {m:#o}")?,
        }
        write!(
            f,
            ", mode {:#o}, owner {}:{}, nlink {}",
            self.mode, self.uid, self.gid, self.nlink
        )?;
        if let Some((s, n)) = self.mtime {
            write!(f, ", mtime {s}.{n:09}")?;
        }
        if let Some(l) = &self.link_of {
            write!(f, ", hard link of {l}")?;
        }
        Ok(())
    }
}

/// A whole tree: relative `/`-separated paths to nodes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Tree(pub BTreeMap<String, Node>);

/// The `(offset, len)` pieces of a file of `size` that are compared.
pub fn pieces(size: u64) -> Vec<(u64, u64)> {
    if size <= FULL_LIMIT {
        return vec![(0, size)];
    }
    let mut v: Vec<(u64, u64)> = REGIONS.iter().chain(PROBES).copied().collect();
    v.sort_unstable();
    v.into_iter()
        .filter(|(o, _)| *o < size)
        .map(|(o, l)| (o, l.min(size - o)))
        .collect()
}

/// Sets `link_of` from the identity each path maps to, in path order.
fn link_groups<K: std::hash::Hash + Eq + Copy>(t: &mut Tree, ids: &BTreeMap<String, K>) {
    let mut first: HashMap<K, String> = HashMap::new();
    for (path, node) in t.0.iter_mut() {
        if node.kind == NodeKind::Dir {
            continue;
        }
        if let Some(id) = ids.get(path) {
            match first.get(id) {
                Some(p) => node.link_of = Some(p.clone()),
                None => {
                    first.insert(*id, path.clone());
                }
            }
        }
    }
}

/// `(st_dev, st_ino)` of each path of a tree read by [`Tree::read_ids`].
pub type Ids = BTreeMap<String, (u64, u64)>;

impl Tree {
    /// The tree under `root` as system calls show it (no mtimes).
    pub fn read(root: &Path) -> io::Result<Tree> {
        let (mut t, _) = Tree::read_ids(root)?;
        t.retain_mtimes(|_| false);
        Ok(t)
    }

    /// As [`Tree::read`], with every mtime and the identity of each path.
    pub fn read_ids(root: &Path) -> io::Result<(Tree, Ids)> {
        let mut t = Tree::default();
        let mut ids = BTreeMap::new();
        walk(root, "", &mut t, &mut ids)?;
        link_groups(&mut t, &ids);
        Ok((t, ids))
    }

    /// Keeps the mtime of the paths `keep` accepts; the others' are no
    /// longer compared.
    pub fn retain_mtimes(&mut self, keep: impl Fn(&str) -> bool) {
        for (p, n) in self.0.iter_mut() {
            if !keep(p) {
                n.mtime = None;
            }
        }
    }

    /// The tree a remount finds in the durable `store` after a crash:
    /// only what the root reaches ([`MemStore::after_crash`]); no mtimes.
    pub fn of_store(store: &MemStore) -> Tree {
        let (mut t, _) = Tree::of_store_ids(store);
        t.retain_mtimes(|_| false);
        t
    }

    /// As [`Tree::of_store`], with every mtime and the inode number of each
    /// path (the model's, which a mount shows as `st_ino` until it is cut).
    pub fn of_store_ids(store: &MemStore) -> (Tree, BTreeMap<String, u64>) {
        let s = store.after_crash();
        let img = s.image();
        let mut t = Tree::default();
        let mut ids = BTreeMap::new();
        let mut count: HashMap<u64, u64> = HashMap::new();
        let mut stack = vec![(ROOT, String::new())];
        while let Some((dir, prefix)) = stack.pop() {
            for (name, ino) in img.entries.get(&dir).into_iter().flatten() {
                let Some(i) = img.inodes.get(ino) else {
                    continue;
                };
                let path = format!("{prefix}{}", String::from_utf8_lossy(name));
                let kind = match i.kind {
                    Kind::File => {
                        let data = pieces(i.size)
                            .into_iter()
                            .map(|(o, l)| {
                                let mut v = Vec::new();
                                s.read(*ino, o, l, &mut v);
                                (o, v)
                            })
                            .collect();
                        NodeKind::File { size: i.size, data }
                    }
                    Kind::Dir => {
                        stack.push((*ino, format!("{path}/")));
                        NodeKind::Dir
                    }
                    Kind::Symlink => {
                        NodeKind::Symlink(i.target.as_deref().unwrap_or_default().to_vec())
                    }
                    k => NodeKind::Other(k as u32),
                };
                *count.entry(*ino).or_insert(0) += 1;
                ids.insert(path.clone(), *ino);
                let m = i.attrs.mtime;
                t.0.insert(
                    path,
                    Node {
                        kind,
                        mode: i.attrs.mode & 0o7777,
                        uid: i.attrs.uid,
                        gid: i.attrs.gid,
                        mtime: Some((m.secs, i64::from(m.nanos))),
                        nlink: 0,
                        link_of: None,
                    },
                );
            }
        }
        // nlink as a remount computes it: names for files, 2 plus
        // subdirectories for directories.
        let subdirs: HashMap<u64, u64> = img
            .entries
            .iter()
            .map(|(d, es)| {
                let n = es
                    .values()
                    .filter(|i| img.inodes.get(i).is_some_and(|x| x.kind == Kind::Dir))
                    .count() as u64;
                (*d, n)
            })
            .collect();
        for (path, node) in t.0.iter_mut() {
            let ino = ids[path];
            node.nlink = match node.kind {
                NodeKind::Dir => 2 + subdirs.get(&ino).copied().unwrap_or(0),
                _ => count[&ino],
            };
        }
        link_groups(&mut t, &ids);
        (t, ids)
    }

    /// Writes the tree into the empty directory `dir`; files are sparse
    /// outside their compared pieces. Owners are set; times are not.
    pub fn materialise(&self, dir: &Path) -> io::Result<()> {
        let mut dirs = Vec::new();
        for (path, node) in &self.0 {
            let p = dir.join(path);
            if let Some(first) = &node.link_of {
                // linkat without AT_SYMLINK_FOLLOW: a symlink is linked
                // itself.
                fs::hard_link(dir.join(first), &p)?;
                continue;
            }
            let owner = |p: &Path| std::os::unix::fs::lchown(p, Some(node.uid), Some(node.gid));
            match &node.kind {
                NodeKind::File { size, data } => {
                    let f = fs::File::create(&p)?;
                    f.set_len(*size)?;
                    for (o, d) in data {
                        if d.iter().any(|b| *b != 0) {
                            f.write_all_at(d, *o)?;
                        }
                    }
                    // chown before chmod: a chown clears set-user-ID.
                    owner(&p)?;
                    f.set_permissions(fs::Permissions::from_mode(node.mode))?;
                }
                NodeKind::Dir => {
                    fs::create_dir(&p)?;
                    owner(&p)?;
                    dirs.push((p, node.mode));
                }
                NodeKind::Symlink(t) => {
                    std::os::unix::fs::symlink(std::ffi::OsStr::from_bytes(t), &p)?;
                    owner(&p)?;
                }
                NodeKind::Other(m) => {
                    return Err(io::Error::other(format!("{path}: cannot make type {m:#o}")));
                }
            }
        }
        for (p, mode) in dirs.into_iter().rev() {
            fs::set_permissions(&p, fs::Permissions::from_mode(mode))?;
        }
        Ok(())
    }

    /// The differences between `self` (named `a`) and `other` (named `b`),
    /// one line each, at most `max`; empty when equal.
    pub fn diff(&self, other: &Tree, a: &str, b: &str, max: usize) -> Vec<String> {
        let mut out = Vec::new();
        let paths: std::collections::BTreeSet<&String> =
            self.0.keys().chain(other.0.keys()).collect();
        for p in paths {
            let line = match (self.0.get(p), other.0.get(p)) {
                (Some(x), None) => format!("{p}: only in {a}: {x:?}"),
                (None, Some(y)) => format!("{p}: only in {b}: {y:?}"),
                (Some(x), Some(y)) if x != y => {
                    let mut s = format!("{p}: {a}: {x:?}; {b}: {y:?}");
                    if let Some(at) = first_data_difference(x, y) {
                        s.push_str(&format!("; content differs at offset {at}"));
                    }
                    s
                }
                _ => continue,
            };
            out.push(line);
            if out.len() >= max {
                out.push("...".into());
                break;
            }
        }
        out
    }
}

use std::os::unix::ffi::OsStrExt;

fn first_data_difference(x: &Node, y: &Node) -> Option<u64> {
    let (NodeKind::File { data: a, .. }, NodeKind::File { data: b, .. }) = (&x.kind, &y.kind)
    else {
        return None;
    };
    for ((oa, da), (ob, db)) in a.iter().zip(b) {
        if oa != ob {
            return Some(*oa.min(ob));
        }
        if let Some(i) = da.iter().zip(db).position(|(p, q)| p != q) {
            return Some(oa + i as u64);
        }
        if da.len() != db.len() {
            return Some(oa + da.len().min(db.len()) as u64);
        }
    }
    None
}

fn walk(
    dir: &Path,
    prefix: &str,
    t: &mut Tree,
    ids: &mut BTreeMap<String, (u64, u64)>,
) -> io::Result<()> {
    let mut names: Vec<String> = fs::read_dir(dir)?
        .map(|e| e.map(|e| e.file_name().to_string_lossy().into_owned()))
        .collect::<io::Result<_>>()?;
    names.sort();
    for name in names {
        let full = dir.join(&name);
        let path = format!("{prefix}{name}");
        let md = fs::symlink_metadata(&full)?;
        let ft = md.file_type();
        let kind = if ft.is_file() {
            let f = fs::File::open(&full)?;
            let data = pieces(md.len())
                .into_iter()
                .map(|(o, l)| {
                    let mut v = vec![0u8; l as usize];
                    f.read_exact_at(&mut v, o).map(|()| (o, v))
                })
                .collect::<io::Result<_>>()?;
            NodeKind::File {
                size: md.len(),
                data,
            }
        } else if ft.is_dir() {
            NodeKind::Dir
        } else if ft.is_symlink() {
            NodeKind::Symlink(fs::read_link(&full)?.as_os_str().as_bytes().to_vec())
        } else {
            NodeKind::Other(md.mode() & libc::S_IFMT)
        };
        ids.insert(path.clone(), (md.dev(), md.ino()));
        let is_dir = kind == NodeKind::Dir;
        t.0.insert(
            path.clone(),
            Node {
                kind,
                mode: md.mode() & 0o7777,
                uid: md.uid(),
                gid: md.gid(),
                mtime: Some((md.mtime(), md.mtime_nsec())),
                nlink: md.nlink(),
                link_of: None,
            },
        );
        if is_dir {
            walk(&full, &format!("{path}/"), t, ids)?;
        }
    }
    Ok(())
}
