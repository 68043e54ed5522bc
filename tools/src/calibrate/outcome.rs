//! An outcome: the file tree a program finds after recovery, reduced to
//! what both sides can state exactly: per path its kind, size, link count,
//! symlink target, content digest and permission bits. Times are left out
//! (a model does not predict them), and so are a directory's size and link
//! count (filesystem-specific: btrfs counts a directory's links as 1): a
//! directory's `nlink` is `2 + subdirectories` on both sides, computed from
//! the tree. A file's link count on the real side is the inode's own, so a
//! file whose count disagrees with its names shows up as a distinct outcome.
//!
//! Invariant: the same tree gives the same [`Outcome`] through
//! [`read_tree`] (a directory) and [`of_snapshot`] (a predicted state).

use durafs::explore::{SnapNode, Snapshot};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

/// Names a real filesystem keeps in its root for itself.
const FS_OWN: [&[u8]; 1] = [b"lost+found"];

#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum EntryKind {
    File,
    Dir,
    Symlink,
    Other,
}

/// One path of an outcome.
#[derive(
    Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub struct Entry {
    pub kind: EntryKind,
    pub size: u64,
    pub nlink: u64,
    pub mode: u32,
    /// Symlink target, lossily decoded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// 64-bit digest of a file's bytes (two CRC-32s).
    pub digest: u64,
}

/// A post-recovery tree: relative paths (lossily decoded) to entries.
#[derive(
    Clone,
    Debug,
    Default,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    serde::Serialize,
    serde::Deserialize,
)]
pub struct Outcome(pub BTreeMap<String, Entry>);

/// Digest of `data`: its CRC-32 and the CRC-32 from another initial value.
pub fn digest(data: &[u8]) -> u64 {
    let mut a = crc32fast::Hasher::new();
    a.update(data);
    let mut b = crc32fast::Hasher::new_with_initial(0x5bd1_e995);
    b.update(data);
    (u64::from(a.finalize()) << 32) | u64::from(b.finalize())
}

fn lossy(p: &[u8]) -> String {
    String::from_utf8_lossy(p).into_owned()
}

impl Outcome {
    /// Sets every directory's link count to 2 + its subdirectories.
    fn count_dir_links(&mut self) {
        let dirs: Vec<String> = self
            .0
            .iter()
            .filter(|(_, e)| e.kind == EntryKind::Dir)
            .map(|(p, _)| p.clone())
            .collect();
        for d in &dirs {
            let prefix = format!("{d}/");
            let subs = dirs
                .iter()
                .filter(|s| s.strip_prefix(&prefix).is_some_and(|r| !r.contains('/')))
                .count() as u64;
            if let Some(e) = self.0.get_mut(d) {
                e.nlink = 2 + subs;
            }
        }
    }

    /// One line per path: `path kind size nlink mode [-> target] digest`.
    pub fn describe(&self) -> String {
        let mut s = String::new();
        if self.0.is_empty() {
            s.push_str("  (empty)\n");
        }
        for (p, e) in &self.0 {
            let _ = write!(
                s,
                "  {p} {:?} size={} nlink={} mode={:o}",
                e.kind, e.size, e.nlink, e.mode
            );
            if let Some(t) = &e.target {
                let _ = write!(s, " -> {t}");
            }
            if e.kind == EntryKind::File {
                let _ = write!(s, " digest={:016x}", e.digest);
            }
            s.push('\n');
        }
        s
    }

    /// The paths where `self` and `other` differ, one line each.
    pub fn diff(&self, other: &Outcome) -> String {
        let mut s = String::new();
        let keys: std::collections::BTreeSet<&String> =
            self.0.keys().chain(other.0.keys()).collect();
        for k in keys {
            match (self.0.get(k), other.0.get(k)) {
                (Some(a), Some(b)) if a == b => {}
                (a, b) => {
                    let _ = writeln!(s, "  {k}: {} vs {}", show(a), show(b));
                }
            }
        }
        s
    }
}

fn show(e: Option<&Entry>) -> String {
    match e {
        None => "absent".into(),
        Some(e) => {
            let mut s = format!("{:?} size={} nlink={}", e.kind, e.size, e.nlink);
            if let Some(t) = &e.target {
                let _ = write!(s, " -> {t}");
            }
            if e.kind == EntryKind::File {
                let _ = write!(s, " digest={:016x}", e.digest);
            }
            s
        }
    }
}

/// File contents by digest ([`digest`]).
pub type Contents = std::collections::HashMap<u64, Vec<u8>>;

/// The outcome of the tree under `dir` (not following symlinks; the
/// filesystem's own `lost+found` in the root left out).
pub fn read_tree(dir: &Path) -> io::Result<Outcome> {
    read_tree_keeping(dir, &mut Contents::new())
}

/// As [`read_tree`], adding every file's bytes to `keep`.
pub fn read_tree_keeping(dir: &Path, keep: &mut Contents) -> io::Result<Outcome> {
    let mut out = Outcome::default();
    walk(dir, "", &mut out, keep)?;
    out.count_dir_links();
    Ok(out)
}

fn walk(dir: &Path, prefix: &str, out: &mut Outcome, keep: &mut Contents) -> io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        if prefix.is_empty() && FS_OWN.contains(&name.as_bytes()) {
            continue;
        }
        let rel = format!("{prefix}{}", lossy(name.as_bytes()));
        let path = entry.path();
        let md = std::fs::symlink_metadata(&path)?;
        let ft = md.file_type();
        let mode = md.permissions().mode() & 0o7777;
        let e = if ft.is_file() {
            let bytes = std::fs::read(&path)?;
            let d = digest(&bytes);
            keep.entry(d).or_insert(bytes);
            Entry {
                kind: EntryKind::File,
                size: md.len(),
                nlink: md.nlink(),
                mode,
                target: None,
                digest: d,
            }
        } else if ft.is_dir() {
            walk(&path, &format!("{rel}/"), out, keep)?;
            Entry {
                kind: EntryKind::Dir,
                size: 0,
                nlink: 0,
                mode,
                target: None,
                digest: 0,
            }
        } else if ft.is_symlink() {
            let t = std::fs::read_link(&path)?;
            Entry {
                kind: EntryKind::Symlink,
                size: 0,
                nlink: 1,
                mode: 0,
                target: Some(lossy(t.as_os_str().as_bytes())),
                digest: 0,
            }
        } else {
            Entry {
                kind: EntryKind::Other,
                size: 0,
                nlink: md.nlink(),
                mode,
                target: None,
                digest: 0,
            }
        };
        out.0.insert(rel, e);
    }
    Ok(())
}

/// The outcome of a predicted state, computed without materialising it:
/// a file's link count is the number of its names.
pub fn of_snapshot(s: &Snapshot) -> Outcome {
    of_snapshot_keeping(s, None)
}

/// As [`of_snapshot`], adding every file's bytes to `keep` if given.
pub fn of_snapshot_keeping(s: &Snapshot, mut keep: Option<&mut Contents>) -> Outcome {
    let mut out = Outcome::default();
    let mut links: BTreeMap<Vec<u8>, u64> = BTreeMap::new();
    for e in &s.entries {
        if let SnapNode::HardLink(first) = &e.node {
            *links.entry(first.clone()).or_insert(1) += 1;
        }
    }
    let mut files: BTreeMap<Vec<u8>, Entry> = BTreeMap::new();
    for e in &s.entries {
        let entry = match &e.node {
            SnapNode::File(data) => {
                let d = digest(data);
                if let Some(k) = keep.as_deref_mut() {
                    k.entry(d).or_insert_with(|| data.to_vec());
                }
                Entry {
                    kind: EntryKind::File,
                    size: data.len() as u64,
                    nlink: links.get(&e.path).copied().unwrap_or(1),
                    mode: e.mode & 0o7777,
                    target: None,
                    digest: d,
                }
            }
            SnapNode::HardLink(first) => match files.get(first) {
                Some(f) => f.clone(),
                None => continue,
            },
            SnapNode::Dir => Entry {
                kind: EntryKind::Dir,
                size: 0,
                nlink: 0,
                mode: e.mode & 0o7777,
                target: None,
                digest: 0,
            },
            SnapNode::Symlink(t) => Entry {
                kind: EntryKind::Symlink,
                size: 0,
                nlink: 1,
                mode: 0,
                target: Some(lossy(t)),
                digest: 0,
            },
            SnapNode::Special(_) => Entry {
                kind: EntryKind::Other,
                size: 0,
                nlink: 1,
                mode: e.mode & 0o7777,
                target: None,
                digest: 0,
            },
        };
        if entry.kind == EntryKind::File {
            files.insert(e.path.clone(), entry.clone());
        }
        out.0.insert(lossy(&e.path), entry);
    }
    out.count_dir_links();
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use durafs::explore::SnapEntry;

    fn entry(path: &str, node: SnapNode, mode: u32) -> SnapEntry {
        SnapEntry {
            path: path.as_bytes().to_vec(),
            node,
            mode,
            xattrs: Vec::new(),
        }
    }

    fn sample() -> Snapshot {
        Snapshot {
            entries: vec![
                entry("A", SnapNode::File(b"hello".to_vec()), 0o644),
                entry("dir", SnapNode::Dir, 0o755),
                entry("dir/C", SnapNode::File(vec![0; 5000]), 0o600),
                entry("dir/L", SnapNode::HardLink(b"A".to_vec()), 0o644),
                entry("dir/sub", SnapNode::Dir, 0o700),
                entry("S", SnapNode::Symlink(b"A".to_vec()), 0o777),
            ],
        }
    }

    #[test]
    fn a_snapshot_and_the_same_tree_on_disk_give_identical_outcomes() {
        let s = sample();
        let dir = tempfile::tempdir().unwrap();
        s.materialise(dir.path()).unwrap();
        std::fs::create_dir(dir.path().join("lost+found")).unwrap();
        let predicted = of_snapshot(&s);
        let real = read_tree(dir.path()).unwrap();
        assert_eq!(real, predicted, "{}", real.diff(&predicted));
        assert_eq!(predicted.0["A"].nlink, 2);
        assert_eq!(predicted.0["dir"].nlink, 3);
        assert_eq!(predicted.0["dir/L"], predicted.0["A"]);
    }

    #[test]
    fn content_size_mode_and_target_each_make_a_different_outcome() {
        let base = of_snapshot(&sample());
        let mut changes = Vec::new();
        let mut s = sample();
        s.entries[0].node = SnapNode::File(b"hellp".to_vec());
        changes.push(s);
        let mut s = sample();
        s.entries[2].node = SnapNode::File(vec![0; 4999]);
        changes.push(s);
        let mut s = sample();
        s.entries[2].mode = 0o644;
        changes.push(s);
        let mut s = sample();
        s.entries[5].node = SnapNode::Symlink(b"B".to_vec());
        changes.push(s);
        for c in changes {
            let o = of_snapshot(&c);
            assert_ne!(o, base);
            assert_eq!(
                o.diff(&base).lines().count(),
                1 + usize::from(o.0["A"] != base.0["A"])
            );
        }
    }
}
