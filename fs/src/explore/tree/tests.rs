use super::*;
use crate::model::FileData;
use crate::model::store::CHUNK;
use std::collections::BTreeMap;
use std::sync::Arc;

/// `bytes` as sparse content (all-zero chunks left out).
fn data(bytes: &[u8]) -> FileData {
    let chunks = bytes
        .chunks(CHUNK as usize)
        .enumerate()
        .filter(|(_, c)| c.iter().any(|b| *b != 0))
        .map(|(i, c)| {
            let mut chunk = [0u8; CHUNK as usize];
            chunk[..c.len()].copy_from_slice(c);
            (i as u64 * CHUNK, Arc::new(chunk))
        })
        .collect();
    FileData {
        size: bytes.len() as u64,
        chunks,
    }
}

fn entry(path: &str, node: SnapNode<FileData>, mode: u32, xattrs: &[(&str, &str)]) -> SparseEntry {
    SparseEntry {
        path: path.as_bytes().to_vec(),
        node,
        mode,
        xattrs: xattrs
            .iter()
            .map(|(n, v)| {
                (
                    n.as_bytes().to_vec(),
                    bytes::Bytes::from(v.as_bytes().to_vec()),
                )
            })
            .collect(),
    }
}

fn file(path: &str, bytes: &[u8], mode: u32, xattrs: &[(&str, &str)]) -> SparseEntry {
    entry(path, SnapNode::File(data(bytes)), mode, xattrs)
}

fn big() -> Vec<u8> {
    let mut v = vec![0u8; 3 * CHUNK as usize + 10];
    v[5] = 1;
    v[2 * CHUNK as usize + 7] = 2;
    v
}

/// A sequence of states that changes every kind of entry.
fn states() -> Vec<SparseSnapshot> {
    let s1 = vec![
        entry("d", SnapNode::Dir, 0o755, &[]),
        file("d/a", b"hello", 0o644, &[]),
        file("b", &big(), 0o644, &[("user.k", "v")]),
        entry("c", SnapNode::Symlink(b"b".to_vec()), 0o777, &[]),
    ];
    let s2 = vec![
        entry("d", SnapNode::Dir, 0o700, &[("user.d", "1")]),
        file("d/a", b"hellO world", 0o644, &[]),
        file("b", &big()[..100], 0o600, &[("user.j", "w")]),
        file("e", b"", 0o644, &[]),
    ];
    let s3 = vec![
        file("d", b"now a file", 0o640, &[]),
        entry("f", SnapNode::Dir, 0o755, &[]),
        file("f/g", &big(), 0o644, &[]),
        entry("p", SnapNode::Special(Kind::Fifo), 0o644, &[]),
        entry("c", SnapNode::Symlink(b"f/g".to_vec()), 0o777, &[]),
    ];
    [s1.clone(), s2, s3, s1]
        .into_iter()
        .map(|entries| SparseSnapshot { entries })
        .collect()
}

/// Per path: the kind and permission bits, the bytes (or target) and the
/// xattrs.
type Contents = BTreeMap<Vec<u8>, (u32, Vec<u8>, BTreeMap<Vec<u8>, Vec<u8>>)>;

/// Everything a state defines of the tree under `dir`.
fn contents(dir: &Path) -> Contents {
    let mut out = BTreeMap::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let path = e.unwrap().path();
            let m = fs::symlink_metadata(&path).unwrap();
            let bytes = if m.is_dir() {
                todo.push(path.clone());
                Vec::new()
            } else if m.file_type().is_symlink() {
                fs::read_link(&path)
                    .unwrap()
                    .as_os_str()
                    .as_bytes()
                    .to_vec()
            } else if m.is_file() {
                fs::read(&path).unwrap()
            } else {
                Vec::new()
            };
            let rel = path
                .strip_prefix(dir)
                .unwrap()
                .as_os_str()
                .as_bytes()
                .to_vec();
            out.insert(rel, (m.mode(), bytes, xattrs(&path)));
        }
    }
    out
}

/// The user xattrs of `path` itself.
fn xattrs(path: &Path) -> BTreeMap<Vec<u8>, Vec<u8>> {
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).unwrap();
    let mut names = vec![0u8; 4096];
    // SAFETY: a valid path and a buffer of the length passed.
    let n = unsafe { libc::llistxattr(c.as_ptr(), names.as_mut_ptr().cast(), names.len()) };
    assert!(n >= 0, "llistxattr {}", path.display());
    names.truncate(n as usize);
    let mut out = BTreeMap::new();
    for name in names.split(|b| *b == 0).filter(|n| n.starts_with(b"user.")) {
        let cn = std::ffi::CString::new(name).unwrap();
        let mut v = vec![0u8; 4096];
        // SAFETY: valid NUL-terminated strings and a buffer of the length passed.
        let m = unsafe { libc::lgetxattr(c.as_ptr(), cn.as_ptr(), v.as_mut_ptr().cast(), v.len()) };
        assert!(m >= 0);
        v.truncate(m as usize);
        out.insert(name.to_vec(), v);
    }
    out
}

/// Asserts that `dir` holds exactly what a fresh write of `s` holds.
fn assert_holds(dir: &Path, s: &SparseSnapshot, scratch: &Path) {
    let fresh = scratch.join("fresh");
    let _ = fs::remove_dir_all(&fresh);
    fs::create_dir(&fresh).unwrap();
    s.materialise(&fresh).unwrap();
    assert_eq!(contents(dir), contents(&fresh), "{}", dir.display());
    assert_eq!(
        fs::symlink_metadata(dir).unwrap().mode(),
        fs::symlink_metadata(&fresh).unwrap().mode()
    );
    fs::remove_dir_all(&fresh).unwrap();
}

fn scratch() -> tempfile::TempDir {
    let t = tempfile::tempdir().unwrap();
    assert!(
        reliable_ctime(t.path()),
        "these tests need a filesystem with POSIX ctime for their scratch"
    );
    t
}

#[test]
fn an_untouched_tree_is_patched_into_each_next_state_exactly() {
    let t = scratch();
    let mut tree = Tree::new(t.path().join("probe"));
    for (i, s) in states().iter().enumerate() {
        let dir = t.path().join(format!("s{i}"));
        tree.prepare(&dir, s).unwrap();
        assert_holds(&dir, s, t.path());
        assert!(!t.path().join(format!("s{}", i.wrapping_sub(1))).exists());
    }
    assert_eq!(tree.counts.fresh, 1);
    assert_eq!(tree.counts.patched, 3);
    tree.clear();
    assert_eq!(fs::read_dir(t.path()).unwrap().count(), 0, "nothing left");
}

#[test]
fn patching_writes_only_the_entries_that_differ() {
    let t = scratch();
    let mut tree = Tree::new(t.path().join("probe"));
    let many = |changed: &[u8]| SparseSnapshot {
        entries: (0..50)
            .map(|i| {
                let bytes: &[u8] = if i == 7 { changed } else { b"same" };
                file(&format!("f{i}"), bytes, 0o644, &[])
            })
            .collect(),
    };
    tree.prepare(&t.path().join("a"), &many(b"one")).unwrap();
    let before = tree.counts.entries_written;
    tree.prepare(&t.path().join("b"), &many(b"two")).unwrap();
    assert_eq!(tree.counts.entries_written - before, 1);
    assert_holds(&t.path().join("b"), &many(b"two"), t.path());
}

/// Changes a check could make to the first state's tree in `dir`.
type Tamper = (&'static str, fn(&Path));

fn tampers() -> Vec<Tamper> {
    vec![
        ("same-size overwrite, mtime restored", |d| {
            let p = d.join("d/a");
            let m = fs::metadata(&p).unwrap().modified().unwrap();
            fs::write(&p, b"jello").unwrap();
            fs::File::options()
                .write(true)
                .open(&p)
                .unwrap()
                .set_modified(m)
                .unwrap();
        }),
        ("truncate", |d| {
            fs::File::options()
                .write(true)
                .open(d.join("b"))
                .unwrap()
                .set_len(3)
                .unwrap()
        }),
        ("write into a hole", |d| {
            use std::os::unix::fs::FileExt;
            let f = fs::File::options().write(true).open(d.join("b")).unwrap();
            f.write_all_at(b"z", CHUNK + 1).unwrap();
        }),
        ("chmod", |d| {
            fs::set_permissions(d.join("b"), fs::Permissions::from_mode(0o700)).unwrap()
        }),
        ("set an xattr", |d| {
            crate::backing::xattrs::lset(&d.join("b"), b"user.k", Some(b"x")).unwrap()
        }),
        ("remove an xattr", |d| {
            crate::backing::xattrs::lset(&d.join("b"), b"user.k", None).unwrap()
        }),
        ("delete", |d| fs::remove_file(d.join("d/a")).unwrap()),
        ("create", |d| fs::write(d.join("d/z"), b"").unwrap()),
        ("mkdir", |d| fs::create_dir(d.join("new")).unwrap()),
        ("replace by rename", |d| {
            fs::write(d.join("tmp"), b"jello").unwrap();
            fs::rename(d.join("tmp"), d.join("d/a")).unwrap();
        }),
        ("retarget a symlink", |d| {
            fs::remove_file(d.join("c")).unwrap();
            std::os::unix::fs::symlink("d", d.join("c")).unwrap();
        }),
        ("chmod the root", |d| {
            fs::set_permissions(d, fs::Permissions::from_mode(0o711)).unwrap()
        }),
        ("chmod a directory", |d| {
            fs::set_permissions(d.join("d"), fs::Permissions::from_mode(0o711)).unwrap()
        }),
    ]
}

#[test]
fn a_tree_the_check_changed_is_written_afresh_for_the_same_and_the_next_state() {
    let all = states();
    for next in [&all[0], &all[1]] {
        for (what, tamper) in tampers() {
            let t = scratch();
            let mut tree = Tree::new(t.path().join("probe"));
            tree.prepare(&t.path().join("s1"), &all[0]).unwrap();
            tamper(&t.path().join("s1"));
            let dir = t.path().join("s2");
            tree.prepare(&dir, next).unwrap();
            assert_holds(&dir, next, t.path());
            assert_eq!(tree.counts.fresh, 2, "{what}: the change went unseen");
            assert!(!t.path().join("s1").exists(), "{what}");
        }
    }
}

#[test]
fn an_entry_written_in_the_probes_clock_tick_is_not_trusted() {
    let t = scratch();
    let mut tree = Tree::new(t.path().join("probe"));
    let s = &states()[0];
    tree.prepare(&t.path().join("s1"), s).unwrap();
    // As if the probe's chmod fell in the tick that wrote the entries.
    if let Some(h) = tree.held.as_mut() {
        h.probe = h.stamps.values().map(|s| s.ctime).max().unwrap();
    }
    tree.prepare(&t.path().join("s2"), s).unwrap();
    assert_eq!((tree.counts.fresh, tree.counts.patched), (2, 0));
    tree.prepare(&t.path().join("s3"), s).unwrap();
    assert_eq!((tree.counts.fresh, tree.counts.patched), (2, 1));
}

#[test]
fn trees_with_hard_links_or_read_only_directories_are_written_afresh() {
    let t = scratch();
    let mut tree = Tree::new(t.path().join("probe"));
    let linked = SparseSnapshot {
        entries: vec![
            file("a", b"x", 0o644, &[]),
            entry("b", SnapNode::HardLink(b"a".to_vec()), 0o644, &[]),
        ],
    };
    let read_only = SparseSnapshot {
        entries: vec![
            entry("d", SnapNode::Dir, 0o555, &[]),
            file("d/f", b"x", 0o644, &[]),
        ],
    };
    for (i, s) in [&linked, &linked, &read_only, &read_only]
        .into_iter()
        .enumerate()
    {
        let dir = t.path().join(format!("s{i}"));
        tree.prepare(&dir, s).unwrap();
        assert_holds(&dir, s, t.path());
    }
    assert_eq!((tree.counts.fresh, tree.counts.patched), (4, 0));
    let _ = fs::set_permissions(t.path().join("s3/d"), fs::Permissions::from_mode(0o755));
}
