//! The exact unsynced report: per inode, the merged byte ranges whose live
//! bytes are not durable, pending size and attribute changes; every pending
//! namespace operation with the fsync that would make it durable.

use super::op::{NsKind, Op};
use super::types::*;
use super::{Model, Namespace};

/// Unsynced state of one inode.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FileReport {
    pub ino: Ino,
    /// A live path, or `<unlinked #ino>`.
    pub path: String,
    /// Merged, sorted `[start, end)` ranges of live bytes not yet durable.
    pub ranges: Vec<(u64, u64)>,
    /// Total of `ranges`.
    pub unsynced_bytes: u64,
    /// The live size (what `stat` shows now).
    #[serde(default)]
    pub size: u64,
    /// `(durable, live)` size when they differ.
    pub size_change: Option<(u64, u64)>,
    /// Attributes (mode, owner, times) differ from the durable ones. For a
    /// directory, times count only when set explicitly: those its entry
    /// changes set go with the entries, reported as names.
    pub attrs_pending: bool,
    /// Extended attributes set or removed since the inode's attributes
    /// were last durable, in the order first changed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub xattrs_pending: Vec<String>,
    /// Nothing of this inode is durable yet.
    pub new_inode: bool,
}

/// One pending namespace operation.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct NameReport {
    pub seq: u64,
    /// What happened, e.g. `create a/b`.
    pub op: String,
    /// What makes it durable, e.g. `fsync directory a`.
    pub fix: String,
}

/// The whole unsynced state.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Report {
    pub model: String,
    pub files: Vec<FileReport>,
    pub names: Vec<NameReport>,
    pub unsynced_bytes: u64,
    pub pending_ops: usize,
}

impl Model {
    /// The exact unsynced report.
    pub fn report(&self) -> Report {
        let ns = self.ns.lock();
        let mut rep = Report {
            model: self.cfg.persistence.to_string(),
            ..Report::default()
        };
        for (seq, op) in &ns.pending {
            if let Op::Names {
                dir,
                what,
                changes,
                peer,
                ..
            } = op
            {
                let dpath = dir_path(&ns, *dir);
                let text = names_text(&ns, *dir, *what, changes, peer.as_ref());
                let own = self.cfg.persistence.fsync_commits_own_names()
                    && changes.iter().any(|c| c.target.is_some());
                let fix = if self.cfg.persistence.fsync_commits_names() {
                    "fsync any file or directory".to_string()
                } else if own {
                    format!(
                        "fsync the file it names, or directory {}",
                        if dpath.is_empty() { "/" } else { &dpath }
                    )
                } else {
                    format!(
                        "fsync directory {}",
                        if dpath.is_empty() { "/" } else { &dpath }
                    )
                };
                rep.names.push(NameReport {
                    seq: *seq,
                    op: text,
                    fix,
                });
            }
        }
        rep.pending_ops = ns.pending.len();
        let mut inos: Vec<Ino> = self.nodes.iter().map(|e| *e.key()).collect();
        inos.sort_unstable();
        for ino in inos {
            let node = self
                .nodes
                .get(&ino)
                .map(|n| std::sync::Arc::clone(n.value()));
            let Some(node) = node else { continue };
            let n = node.lock();
            rep.pending_ops += n.pending.len();
            let dsize = n.durable().map_or(0, |d| d.size);
            let mut ranges = n.overlay.ranges();
            // Durable bytes cut by a shrink and not rewritten read as zeros
            // now: they changed. Past the durable size, unwritten bytes are a
            // hole reported as the size change.
            let cut_end = dsize.min(n.size);
            if n.kind == Kind::File && n.base_end < cut_end {
                ranges.push((n.base_end, cut_end));
            }
            let ranges = merge(ranges);
            let size_change = match n.durable() {
                Some(d) if d.size != n.size => Some((d.size, n.size)),
                None if n.kind == Kind::File && n.size > 0 => Some((0, n.size)),
                _ => None,
            };
            let attrs_pending = n.durable().is_some_and(|d| {
                if n.kind == Kind::Dir {
                    (d.attrs.mode, d.attrs.uid, d.attrs.gid)
                        != (n.attrs.mode, n.attrs.uid, n.attrs.gid)
                        || n.pending
                            .values()
                            .any(|op| matches!(op, Op::SetAttrs { .. } | Op::SetXattr { .. }))
                } else {
                    d.attrs != n.attrs
                }
            });
            let mut xattrs_pending: Vec<String> = Vec::new();
            for op in n.pending.values() {
                if let Op::SetXattr { name, .. } = op {
                    let name = String::from_utf8_lossy(name).into_owned();
                    if !xattrs_pending.contains(&name) {
                        xattrs_pending.push(name);
                    }
                }
            }
            if ranges.is_empty() && size_change.is_none() && !attrs_pending && n.pending.is_empty()
            {
                continue;
            }
            let unsynced_bytes = ranges.iter().map(|(s, e)| e - s).sum();
            rep.unsynced_bytes += unsynced_bytes;
            rep.files.push(FileReport {
                ino,
                path: path_in(&ns, ino).unwrap_or_else(|| format!("<unlinked #{ino}>")),
                ranges,
                unsynced_bytes,
                size: n.size,
                size_change,
                attrs_pending,
                xattrs_pending,
                new_inode: n.durable().is_none(),
            });
        }
        rep
    }
}

impl Model {
    /// A one-line description of a pending operation naming live paths,
    /// e.g. `write log [0, 4096)` or `rename tmp -> data`.
    pub fn describe(&self, op: &Op) -> String {
        let ns = self.ns.lock();
        let path = |ino: Ino| path_in(&ns, ino).unwrap_or_else(|| format!("<unlinked #{ino}>"));
        match op {
            Op::Names {
                dir,
                what,
                changes,
                peer,
                ..
            } => names_text(&ns, *dir, *what, changes, peer.as_ref()),
            Op::Write {
                ino, offset, data, ..
            } => format!(
                "write {} [{offset}, {})",
                path(*ino),
                offset + data.len() as u64
            ),
            Op::Truncate { ino, size } => format!("truncate {} to {size}", path(*ino)),
            Op::Allocate { ino, offset, len } => {
                format!("fallocate {} [{offset}, {})", path(*ino), offset + len)
            }
            Op::Punch { ino, offset, len } => {
                format!("punch hole {} [{offset}, {})", path(*ino), offset + len)
            }
            Op::SetAttrs { ino, .. } => format!("setattr {}", path(*ino)),
            Op::SetXattr { ino, name, value } => format!(
                "{} {} {}",
                if value.is_some() {
                    "setxattr"
                } else {
                    "removexattr"
                },
                path(*ino),
                String::from_utf8_lossy(name)
            ),
            Op::CloseFlush { ino } => format!("close {} (auto_da_alloc writeback)", path(*ino)),
        }
    }
}

/// `create a/b`, `rename a -> b`, ... for a namespace operation.
fn names_text(
    ns: &Namespace,
    dir: Ino,
    what: NsKind,
    changes: &[super::op::EntryChange],
    peer: Option<&(Ino, Name)>,
) -> String {
    let dpath = dir_path(ns, dir);
    let first = changes
        .first()
        .map(|c| join(&dpath, &c.name))
        .unwrap_or_default();
    let other = peer
        .map(|(d, n)| join(&dir_path(ns, *d), n))
        .unwrap_or_default();
    match what {
        NsKind::Create => format!("create {first}"),
        NsKind::Mkdir => format!("mkdir {first}"),
        NsKind::Symlink => format!("symlink {first}"),
        NsKind::Mknod => format!("mknod {first}"),
        NsKind::Link => format!("link {first}"),
        NsKind::Unlink => format!("unlink {first}"),
        NsKind::Rmdir => format!("rmdir {first}"),
        NsKind::Rename | NsKind::RenameFrom => format!("rename {first} -> {other}"),
        NsKind::RenameTo => format!("rename {other} -> {first}"),
        NsKind::Exchange => format!("exchange {first} <-> {other}"),
    }
}

fn merge(mut r: Vec<(u64, u64)>) -> Vec<(u64, u64)> {
    r.sort_unstable();
    let mut out: Vec<(u64, u64)> = Vec::new();
    for (s, e) in r {
        match out.last_mut() {
            Some(last) if s <= last.1 => last.1 = last.1.max(e),
            _ => out.push((s, e)),
        }
    }
    out
}

fn join(dir: &str, name: &[u8]) -> String {
    let name = String::from_utf8_lossy(name);
    if dir.is_empty() {
        name.into_owned()
    } else {
        format!("{dir}/{name}")
    }
}

/// The live path of directory `dir` relative to the root ("" for the root).
fn dir_path(ns: &Namespace, dir: Ino) -> String {
    if dir == ROOT {
        return String::new();
    }
    path_in(ns, dir).unwrap_or_else(|| format!("<removed dir #{dir}>"))
}

/// A live path of `ino` relative to the root: a directory's through its
/// parent links, another inode's through its first link
/// ([`Namespace::first_link`]); O(depth).
pub(crate) fn path_in(ns: &Namespace, ino: Ino) -> Option<String> {
    if ino == ROOT {
        return Some(String::new());
    }
    if let Some((p, name)) = ns.parent(ino) {
        let mut parts = vec![name.clone()];
        let mut cur = *p;
        let mut guard = 0;
        while cur != ROOT {
            let (pp, n) = ns.parent(cur)?;
            parts.push(n.clone());
            cur = *pp;
            guard += 1;
            if guard > 4096 {
                return None;
            }
        }
        parts.reverse();
        let strs: Vec<String> = parts
            .iter()
            .map(|p| String::from_utf8_lossy(p).into_owned())
            .collect();
        return Some(strs.join("/"));
    }
    let (d, name) = ns.first_link(ino)?;
    Some(join(&dir_path(ns, d), name))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Config, Model};

    /// Regression (issue 21): the report looked every file's path up by
    /// scanning every directory, so `status` grew with files × entries.
    /// The one-pass index must name each file as the scan did, hard links
    /// and subdirectories included.
    #[test]
    fn the_report_names_each_file_as_a_lookup_does() {
        let m = Model::new(Config::default(), Attrs::default());
        let t = Timestamp::default();
        let a = Attrs {
            mode: 0o644,
            ..Attrs::default()
        };
        let d = m.create(ROOT, b"d", Kind::Dir, a, None).unwrap().ino;
        let e = m.create(d, b"e", Kind::Dir, a, None).unwrap().ino;
        let mut files = Vec::new();
        for (dir, name) in [(ROOT, &b"z"[..]), (d, b"y"), (e, b"x"), (e, b"w")] {
            let f = m.create(dir, name, Kind::File, a, None).unwrap().ino;
            m.write(f, 0, bytes::Bytes::from_static(b"data"), t)
                .unwrap();
            files.push(f);
        }
        m.link(files[2], ROOT, b"hard", t).unwrap();
        let rep = m.report();
        assert_eq!(rep.files.len(), files.len());
        for f in &rep.files {
            assert_eq!(Some(f.path.clone()), m.path_of(f.ino), "#{}", f.ino);
        }
        let paths: Vec<&str> = rep.files.iter().map(|f| f.path.as_str()).collect();
        assert!(
            paths.contains(&"d/e/w") && paths.contains(&"d/y"),
            "{paths:?}"
        );
    }
}
