//! Trees whose paths in BACKING exceed PATH_MAX although every path inside
//! the mount is usable (issue 15, point 3). Regression: the backing store
//! joined absolute paths, so after 16 nested directories of 255-byte names
//! `sync`, `umount` and `cut --policy keep-all` failed with `File name too
//! long`, and a second `umount` then lost the deepest directory.
//!
//! The tests reach deep names as applications do, relative to open
//! directories (`/proc/self/fd/N/name`), and compare what a remount shows
//! with the model's prediction (a trace replayed, as in `differential`).

use durafs::model::Persistence;
use durafs::model::crash::{CrashOptions, Policy, crash_state};
use durafs::trace::replay::Replayer;
use durafs_tests::Vol;
use durafs_tests::diff::tree::{NodeKind, Tree};
use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::Write;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

/// `name` in open directory `dir`: a path never longer than one name.
fn at(dir: &File, name: &str) -> PathBuf {
    PathBuf::from(format!("/proc/self/fd/{}/{name}", dir.as_raw_fd()))
}

/// 16 names of 255 bytes: 4096 bytes of path below the mount.
fn long_names() -> Vec<String> {
    (0..16)
        .map(|i| char::from(b'A' + i as u8).to_string().repeat(255))
        .collect()
}

/// Makes `names` nested under `top`; returns every directory, open, from
/// `top` down.
fn mkdirs(top: &Path, names: &[String]) -> Vec<File> {
    let mut dirs = vec![File::open(top).expect("open top")];
    for n in names {
        let d = dirs.last().expect("parent");
        fs::create_dir(at(d, n)).unwrap_or_else(|e| panic!("mkdir at depth {}: {e}", dirs.len()));
        let sub = File::open(at(d, n)).expect("open new directory");
        dirs.push(sub);
    }
    dirs
}

/// Writes `data` to new file `name` in `dir`; fsyncs it when asked.
fn write_file(dir: &File, name: &str, data: &[u8], fsync: bool) {
    let mut f = File::create(at(dir, name)).expect("create");
    f.write_all(data).expect("write");
    if fsync {
        f.sync_all().expect("fsync file");
    }
}

/// fsyncs every directory of `dirs`, deepest first.
fn fsync_dirs(dirs: &[File]) {
    for d in dirs.iter().rev() {
        d.sync_all().expect("fsync dir");
    }
}

/// Every path under `dir` ("a/b/c") and what it is, read through
/// descriptors.
fn read_tree(dir: &File, prefix: &str, out: &mut BTreeMap<String, String>) {
    for ent in fs::read_dir(at(dir, ".")).expect("readdir") {
        let name = ent.expect("entry").file_name();
        let name = name.to_str().expect("utf8 name").to_string();
        let path = format!("{prefix}{name}");
        let md = fs::symlink_metadata(at(dir, &name)).expect("stat");
        let what = if md.is_dir() {
            let sub = File::open(at(dir, &name)).expect("open dir");
            read_tree(&sub, &format!("{path}/"), out);
            "dir".to_string()
        } else if md.is_symlink() {
            let t = fs::read_link(at(dir, &name)).expect("readlink");
            format!("symlink {}", t.display())
        } else {
            let data = fs::read(at(dir, &name)).expect("read");
            format!("file {:?}", String::from_utf8_lossy(&data))
        };
        out.insert(path, what);
    }
}

/// The tree a remount of `v` shows.
fn mounted_tree(v: &Vol) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    read_tree(&File::open(&v.mnt).expect("open mount"), "", &mut out);
    out
}

/// The tree the model predicts after a cut with `opts`, from the trace of
/// `v` (started with `start_trace(true, None)`).
fn predicted(v: &Vol, opts: &CrashOptions) -> BTreeMap<String, String> {
    let trace = v.fs().finish_trace().expect("trace").expect("tracing");
    let mut r = Replayer::new(&trace.header).expect("header");
    for ev in &trace.events {
        r.apply(ev).expect("replay");
    }
    let pending = r.pending();
    let mut store = r.durable().clone();
    store.apply_all(&crash_state(&pending, opts).effects(&pending));
    Tree::of_store(&store)
        .0
        .into_iter()
        .map(|(p, n)| {
            let what = match n.kind {
                NodeKind::Dir => "dir".to_string(),
                NodeKind::Symlink(t) => format!("symlink {}", String::from_utf8_lossy(&t)),
                NodeKind::File { data, .. } => {
                    let bytes: Vec<u8> = data.into_iter().flat_map(|(_, d)| d).collect();
                    format!("file {:?}", String::from_utf8_lossy(&bytes))
                }
                NodeKind::Other(m) => format!("special {m:o}"),
            };
            (p, what)
        })
        .collect()
}

/// Cuts `v` with `opts`, remounts, and checks the model's prediction.
fn cut_and_check(v: &mut Vol, opts: CrashOptions, ctx: &str) -> BTreeMap<String, String> {
    let want = predicted(v, &opts);
    v.cut_with(opts);
    v.remount();
    let got = mounted_tree(v);
    let show = |m: &BTreeMap<String, String>| -> Vec<String> {
        m.iter()
            .map(|(p, w)| format!("depth {} {w}", p.matches('/').count()))
            .collect()
    };
    assert!(
        want == got,
        "{ctx}: the remount differs from the model\n want {:?}\n  got {:?}",
        show(&want),
        show(&got)
    );
    got
}

/// The 16 x 255-byte tree with a file at the bottom: `durafs sync` stores
/// it, a clean unmount and a remount show all of it.
#[test]
fn a_tree_deeper_than_path_max_in_backing_survives_sync_and_remount() {
    let mut v = Vol::new(Persistence::Posix);
    let names = long_names();
    let dirs = mkdirs(&v.mnt, &names);
    let bottom_dir = dirs.last().expect("bottom");
    write_file(bottom_dir, "f", b"at the bottom", false);
    set_xattr(&at(bottom_dir, "f"), "user.deep", b"file");
    set_xattr(&at(bottom_dir, "."), "trusted.deep", b"dir");
    drop(dirs);
    v.fs().sync().expect("durafs sync of a deep tree");
    assert_eq!(v.fs().status().pending_ops, 0, "nothing left unsynced");
    v.remount();
    let got = mounted_tree(&v);
    assert_eq!(got.len(), 17, "16 directories and the file");
    let bottom = format!("{}/f", names.join("/"));
    assert_eq!(
        got.get(&bottom).map(String::as_str),
        Some("file \"at the bottom\"")
    );
    let dirs = mkdirs_open(&v.mnt, &names);
    let bottom_dir = dirs.last().expect("bottom");
    assert_eq!(get_xattr(&at(bottom_dir, "f"), "user.deep"), b"file");
    assert_eq!(get_xattr(&at(bottom_dir, "."), "trusted.deep"), b"dir");
}

/// Opens the existing `names` nested under `top`, from `top` down.
fn mkdirs_open(top: &Path, names: &[String]) -> Vec<File> {
    let mut dirs = vec![File::open(top).expect("open top")];
    for n in names {
        let sub = File::open(at(dirs.last().expect("parent"), n)).expect("open directory");
        dirs.push(sub);
    }
    dirs
}

fn cstr(p: &Path) -> std::ffi::CString {
    std::ffi::CString::new(p.as_os_str().as_encoded_bytes()).expect("no NUL")
}

/// Sets extended attribute `name` of `p` (following the `/proc` link).
fn set_xattr(p: &Path, name: &str, value: &[u8]) {
    let (cp, cn) = (cstr(p), std::ffi::CString::new(name).expect("name"));
    // SAFETY: NUL-terminated strings and a buffer of the length passed.
    let r = unsafe {
        libc::setxattr(
            cp.as_ptr(),
            cn.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        )
    };
    assert_eq!(r, 0, "setxattr {name}: {}", std::io::Error::last_os_error());
}

/// Extended attribute `name` of `p` (at most 256 bytes).
fn get_xattr(p: &Path, name: &str) -> Vec<u8> {
    let (cp, cn) = (cstr(p), std::ffi::CString::new(name).expect("name"));
    let mut buf = vec![0u8; 256];
    // SAFETY: NUL-terminated strings and a buffer of the length passed.
    let r = unsafe { libc::getxattr(cp.as_ptr(), cn.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    let n = usize::try_from(r)
        .unwrap_or_else(|_| panic!("getxattr {name}: {}", std::io::Error::last_os_error()));
    buf.truncate(n);
    buf
}

/// Every cut policy, with the tree fsynced by the application or left
/// partly unsynced, recovers what the model predicts.
#[test]
fn every_cut_policy_recovers_a_deep_tree_as_the_model_predicts() {
    for fsynced in [true, false] {
        for policy in Policy::ALL {
            let ctx = format!("{policy:?}, fsynced {fsynced}");
            let mut v = Vol::new(Persistence::Posix);
            v.fs().start_trace(true, None).expect("trace");
            let names = long_names();
            let (top, bottom) = names.split_at(8);
            let mut dirs = mkdirs(&v.mnt, top);
            if !fsynced {
                v.fs().sync().expect("sync the top half");
            }
            let deep = mkdirs(&at(dirs.last().expect("middle"), "."), bottom);
            let last = deep.last().expect("bottom");
            write_file(last, "f", b"durable or not", fsynced);
            write_file(last, "g", &[7u8; 5000], false);
            dirs.extend(deep.into_iter().skip(1));
            if fsynced {
                fsync_dirs(&dirs);
            }
            drop(dirs);
            let opts = CrashOptions {
                policy,
                seed: 3,
                ..CrashOptions::default()
            };
            let got = cut_and_check(&mut v, opts, &ctx);
            if fsynced {
                assert!(got.len() >= 17, "{ctx}: the fsynced tree is whole");
            }
        }
    }
}

/// A tree 200 levels deep (names of 20 bytes: 4200 bytes of path).
#[test]
fn a_tree_200_levels_deep_survives_a_keep_all_cut_and_a_remount() {
    let mut v = Vol::new(Persistence::Ext4);
    v.fs().start_trace(true, None).expect("trace");
    let names: Vec<String> = (0..200).map(|i| format!("{i:020}")).collect();
    let dirs = mkdirs(&v.mnt, &names);
    let bottom = dirs.last().expect("bottom");
    write_file(bottom, "f", b"200 down", true);
    std::os::unix::fs::symlink("f", at(bottom, "l")).expect("symlink");
    drop(dirs);
    let opts = CrashOptions {
        policy: Policy::KeepAll,
        ..CrashOptions::default()
    };
    let got = cut_and_check(&mut v, opts, "200 levels");
    assert_eq!(got.len(), 202);
    v.remount();
    assert_eq!(mounted_tree(&v), got, "a clean unmount and remount");
}

/// A deep directory renamed, a deep file hard-linked at the top and
/// unlinked down below, a deep file removed; then a cross-directory rename
/// of a deep directory of which only the new entry is made durable, so the
/// cut must move it from its deep old place to where the model keeps it
/// (`settle_dirs`).
#[test]
fn renames_links_and_a_settling_cut_deep_in_backing() {
    let mut v = Vol::new(Persistence::Posix);
    v.fs().start_trace(true, None).expect("trace");
    let names = long_names();
    let dirs = mkdirs(&v.mnt, &names);
    let bottom = dirs.last().expect("bottom");
    write_file(bottom, "f", b"linked", false);
    write_file(bottom, "gone", b"removed", false);
    v.fs().sync().expect("sync");
    fs::rename(at(&dirs[11], &names[11]), at(&dirs[4], "renamed")).expect("rename deep dir");
    fs::hard_link(at(bottom, "f"), at(&dirs[0], "hl")).expect("hard link");
    fs::remove_file(at(bottom, "f")).expect("unlink deep name");
    fs::remove_file(at(bottom, "gone")).expect("unlink deep file");
    v.fs().sync().expect("sync after the renames");
    // dirs[15] moves from depth 15 to depth 2; only its new parent is
    // fsynced: both entries are durable.
    fs::rename(at(&dirs[14], &names[14]), at(&dirs[1], "up")).expect("rename up");
    dirs[1].sync_all().expect("fsync the new parent only");
    drop(dirs);
    let opts = CrashOptions {
        policy: Policy::DropAll,
        ..CrashOptions::default()
    };
    let got = cut_and_check(&mut v, opts, "settling cut");
    assert_eq!(got.get("hl").map(String::as_str), Some("file \"linked\""));
    let up = format!("{}/up", names[0]);
    assert_eq!(
        got.get(&up).map(String::as_str),
        Some("dir"),
        "{:?}",
        got.keys().map(|k| k.len()).collect::<Vec<_>>()
    );
}
