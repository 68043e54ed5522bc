//! Differential tests: seeded random operation sequences run on a durafs
//! mount and on a plain directory, compared after every step and checked
//! against the model at every power cut (see `durafs_tests::diff`).
//!
//! Soak: `DURAFS_DIFF_OPS=N DURAFS_DIFF_SEED=S cargo test -p durafs-tests
//! --test differential -- --nocapture posix_seed_1` runs N ops from seed S
//! (the same for `posix_full_seed_5`, `posix_writeback_cache_seed_7`, ...).

use durafs::model::crash::{CrashOptions, Policy, crash_state};
use durafs::trace::replay::Replayer;
use durafs_tests::Vol;
use durafs_tests::diff::tree::{NodeKind, Tree};
use durafs_tests::diff::*;
use std::fs;
use std::os::unix::fs::{FileExt, PermissionsExt};

// Descriptors held open and writeback-cache mounts; owners, groups and
// times. In subdirectories so that Cargo does not build them as tests of
// their own.
#[path = "differential/attrs.rs"]
mod attrs;
#[path = "differential/fds.rs"]
mod fds;

#[test]
fn posix_seed_1() {
    let s = fuzz_from_env(Persistence::Posix, 1, 500);
    assert!(s.cuts >= 1, "{s:?}");
}

#[test]
fn posix_seed_2() {
    fuzz_from_env(Persistence::Posix, 2, 500);
}

#[test]
fn posix_seed_3() {
    fuzz_from_env(Persistence::Posix, 3, 400);
}

#[test]
fn journal_seed_4() {
    fuzz_from_env(Persistence::Ext4, 4, 400);
}

/// The xfs and btrfs profiles (size only with data; btrfs in whole pages):
/// the volume's cut and the prediction apply the same rules.
#[test]
fn xfs_seed_9() {
    fuzz_from_env(Persistence::Xfs, 9, 300);
}

#[test]
fn btrfs_seed_10() {
    fuzz_from_env(Persistence::Btrfs, 10, 300);
}

#[test]
fn posix_full_seed_5() {
    fuzz_from_env(Setup::full(Persistence::Posix), 5, 300);
}

#[test]
fn journal_full_seed_6() {
    fuzz_from_env(Setup::full(Persistence::Ext4), 6, 300);
}

#[test]
fn posix_writeback_cache_seed_7() {
    fuzz_from_env(Setup::writeback(Persistence::Posix), 7, 300);
}

#[test]
fn journal_writeback_cache_seed_8() {
    fuzz_from_env(Setup::writeback(Persistence::Ext4), 8, 300);
}

#[test]
fn generation_is_seeded_and_covers_every_operation() {
    // Against a fixed tree, without running anything.
    let (_d, tree) = tmp_tree(base);
    let generate = |seed| {
        let mut g = Gen::new(seed);
        (0..3000).map(|_| g.next(&tree)).collect::<Vec<Op>>()
    };
    let a = generate(9);
    assert_eq!(a, generate(9));
    assert_ne!(a, generate(10));
    let names: std::collections::BTreeSet<&str> = a.iter().map(Op::name).collect();
    for n in [
        "create",
        "write",
        "read",
        "truncate",
        "fallocate",
        "rename",
        "link",
        "unlink",
        "mkdir",
        "rmdir",
        "symlink",
        "chmod",
        "fsync",
        "fdatasync",
        "fsyncdir",
        "sync-all",
        "cut",
    ] {
        assert!(names.contains(n), "no {n} in 3000 generated ops");
    }
    // Far sparse writes are generated too.
    assert!(
        a.iter()
            .any(|o| matches!(o, Op::Write { off, .. } if *off > 1 << 29))
    );
}

/// The printed form of a sequence is what a regression test contains: this
/// compiles, runs and passes.
#[test]
fn a_printed_sequence_is_a_runnable_regression_test() {
    let ops = [
        Op::Mkdir {
            path: "a",
            mode: 0o755,
        },
        Op::Create {
            path: "a/b",
            mode: 0o644,
            excl: true,
            trunc: false,
        },
        Op::Write {
            path: "a/b",
            off: 1073725440,
            len: 100,
            fill: 3,
            append: false,
        },
        Op::Fallocate {
            path: "a/b",
            mode: Falloc::Punch,
            off: 1073725450,
            len: 10,
        },
        Op::Rename {
            from: "a/b",
            to: "c",
            flags: Ren::NoReplace,
        },
        Op::Link { from: "c", to: "d" },
        Op::Fsync { path: "c" },
        Op::FsyncDir { path: "." },
        Op::Cut {
            policy: CutPolicy::DropAll,
            seed: 0,
        },
        Op::Read {
            path: "c",
            off: 0,
            len: 10,
        },
    ];
    let printed = ops[4].to_string();
    assert_eq!(
        printed,
        r#"Op::Rename { from: "a/b", to: "c", flags: Ren::NoReplace }"#
    );
    let s = check(Persistence::Posix, &ops).unwrap_or_else(|f| panic!("{}", f.what));
    assert_eq!((s.ops, s.cuts), (10, 1));
}

fn tmp_tree(build: impl FnOnce(&std::path::Path)) -> (tempfile::TempDir, Tree) {
    let d = tempfile::tempdir().expect("tempdir");
    build(d.path());
    let t = Tree::read(d.path()).expect("read tree");
    (d, t)
}

fn base(p: &std::path::Path) {
    fs::create_dir(p.join("a")).expect("mkdir");
    let f = fs::File::create(p.join("a/f")).expect("create");
    f.set_len(1 << 30).expect("grow");
    f.write_all_at(b"far", (1 << 30) - 5000).expect("write far");
    fs::hard_link(p.join("a/f"), p.join("g")).expect("link");
    std::os::unix::fs::symlink("a/f", p.join("s")).expect("symlink");
}

/// The comparator must see every kind of difference it claims to compare.
#[test]
fn the_tree_comparator_detects_each_kind_of_difference() {
    let (_a, t) = tmp_tree(base);
    let (_b, same) = tmp_tree(base);
    assert_eq!(t.diff(&same, "x", "y", 10), Vec::<String>::new());
    type Mutation = (&'static str, Box<dyn Fn(&std::path::Path)>);
    let mutations: Vec<Mutation> = vec![
        (
            "one byte in a far window",
            Box::new(|p| {
                fs::File::options()
                    .write(true)
                    .open(p.join("a/f"))
                    .expect("open")
                    .write_all_at(b"X", (1 << 30) - 4999)
                    .expect("write")
            }),
        ),
        (
            "size",
            Box::new(|p| {
                fs::File::options()
                    .write(true)
                    .open(p.join("a/f"))
                    .expect("open")
                    .set_len((1 << 30) + 1)
                    .expect("grow")
            }),
        ),
        (
            "mode",
            Box::new(|p| {
                fs::set_permissions(p.join("a"), fs::Permissions::from_mode(0o700)).expect("chmod")
            }),
        ),
        (
            "symlink target",
            Box::new(|p| {
                fs::remove_file(p.join("s")).expect("rm");
                std::os::unix::fs::symlink("a/g", p.join("s")).expect("symlink");
            }),
        ),
        (
            "hard link turned copy",
            Box::new(|p| {
                fs::remove_file(p.join("g")).expect("rm");
                let f = fs::File::create(p.join("g")).expect("create");
                f.set_len(1 << 30).expect("grow");
                f.write_all_at(b"far", (1 << 30) - 5000).expect("write far");
            }),
        ),
        (
            "an extra empty directory",
            Box::new(|p| fs::create_dir(p.join("a/e")).expect("mkdir")),
        ),
    ];
    for (what, m) in mutations {
        let (_c, other) = tmp_tree(|p| {
            base(p);
            m(p);
        });
        let d = t.diff(&other, "x", "y", 10);
        assert!(!d.is_empty(), "{what}: not detected");
    }
}

/// A materialised tree reads back equal, sparse files included.
#[test]
fn materialise_round_trips() {
    let (_a, t) = tmp_tree(base);
    let d = tempfile::tempdir().expect("tempdir");
    t.materialise(d.path()).expect("materialise");
    let back = Tree::read(d.path()).expect("read back");
    assert_eq!(t.diff(&back, "orig", "copy", 10), Vec::<String>::new());
    let NodeKind::File { size, .. } = &back.0["g"].kind else {
        panic!("g is not a file: {:?}", back.0["g"]);
    };
    assert_eq!(*size, 1 << 30);
    assert_eq!(back.0["g"].link_of.as_deref(), Some("a/f"));
}

/// The cut check has teeth: the prediction of one policy does not match
/// what a cut under another leaves, and matches its own.
#[test]
fn a_cut_prediction_for_the_wrong_policy_is_detected() {
    let mut v = Vol::new(Persistence::Posix);
    v.fs().start_trace(true, None).expect("trace");
    fs::write(v.p("kept"), b"durable").expect("write");
    durafs_tests::fsync_file(&v.p("kept"));
    durafs_tests::fsync_dir(&v.mnt);
    fs::write(v.p("lost"), b"unsynced").expect("write");
    let trace = v.fs().finish_trace().expect("traced").expect("trace");
    let mut r = Replayer::new(&trace.header).expect("header");
    for ev in &trace.events {
        r.apply(ev).expect("replay");
    }
    let predict = |policy| {
        let opts = CrashOptions {
            policy,
            ..CrashOptions::default()
        };
        let pending = r.pending();
        let mut store = r.durable().clone();
        store.apply_all(&crash_state(&pending, &opts).effects(&pending));
        Tree::of_store(&store)
    };
    let (drop_all, keep_all) = (predict(Policy::DropAll), predict(Policy::KeepAll));
    v.cut(Policy::DropAll);
    v.remount();
    let got = Tree::read(&v.mnt).expect("read");
    assert_eq!(
        drop_all.diff(&got, "model", "remounted", 10),
        Vec::<String>::new()
    );
    assert!(!keep_all.diff(&got, "model", "remounted", 10).is_empty());
    assert_eq!(got.0.keys().collect::<Vec<_>>(), ["kept"]);
}

/// Bug: on Linux a directory made inside a set-group-ID directory inherits
/// the set-group-ID bit (and the parent's group); durafs gives it the mode
/// requested and the caller's gid (fs/src/fuse.rs, `Adapter::new_attrs`).
#[test]
fn setgid_directory_is_inherited_by_mkdir() {
    let ops = [
        Op::Mkdir {
            path: "a",
            mode: 0o755,
        },
        Op::Chmod {
            path: "a",
            mode: 0o2755,
        },
        Op::Mkdir {
            path: "a/b",
            mode: 0o755,
        },
    ];
    if let Err(f) = check(Persistence::Posix, &ops) {
        panic!("{}", f.what);
    }
}

/// Bug (fixed): a directory with two durable entries after a cut (the new
/// name of a cross-directory rename made durable, the removal of the old
/// one not) is predicted by the model (`MemStore::after_crash`, and so
/// `durafs explore`) at its first entry in a breadth-first walk, `c`; a
/// real cut left it at its oldest entry `d/d`. The cut now settles each
/// such directory where the model does (`Backing::after_crash`). Found by
/// seeds 102, 105 (posix) and 204 (journal).
#[test]
fn directory_reached_twice_after_a_cut_survives_where_the_model_says() {
    let ops = [
        Op::Mkdir {
            path: "d",
            mode: 0o755,
        },
        Op::Mkdir {
            path: "d/d",
            mode: 0o755,
        },
        Op::FsyncDir { path: "." },
        Op::FsyncDir { path: "d" },
        Op::Rename {
            from: "d/d",
            to: "c",
            flags: Ren::Plain,
        },
        Op::FsyncDir { path: "." },
        Op::Cut {
            policy: CutPolicy::DropAll,
            seed: 0,
        },
    ];
    if let Err(f) = check(Persistence::Posix, &ops) {
        panic!("{}", f.what);
    }
}

/// Bug: `d/d` renamed to `c`, then `d` to `c/b`, fsync `.` then `c`: the
/// durable entries form a cycle until `d`'s pending removal of its entry
/// `d` applies. A keep-all cut (which applies it) remounts `c` without `b`:
/// the backing orphaned `d` at the fsync of `.` (see the next test) and
/// does not place it at `c/b` once the cycle is gone. (A drop-all cut loses
/// `c` as well.) The model predicts `c` and `c/b`. Found by seed 111.
fn cycle_ops(policy: CutPolicy) -> [Op; 8] {
    [
        Op::Mkdir {
            path: "d",
            mode: 0o755,
        },
        Op::Mkdir {
            path: "d/d",
            mode: 0o755,
        },
        Op::SyncAll,
        Op::Rename {
            from: "d/d",
            to: "c",
            flags: Ren::Plain,
        },
        Op::Rename {
            from: "d",
            to: "c/b",
            flags: Ren::Plain,
        },
        Op::FsyncDir { path: "." },
        Op::FsyncDir { path: "c" },
        Op::Cut { policy, seed: 0 },
    ]
}

#[test]
fn directory_moved_under_its_former_child_survives_a_keep_all_cut() {
    if let Err(f) = check(Persistence::Posix, &cycle_ops(CutPolicy::KeepAll)) {
        panic!("{}", f.what);
    }
}

/// Bug (the root cause of the one above): `d/d` renamed to `c`, then the
/// now empty `d` removed, then `.` fsynced: `c` is durable, but after a
/// drop-all cut it is gone. The backing moves the removed `d` (whose durable
/// entry `d` -> the renamed directory is still pending removal) into the
/// orphans with the renamed directory physically inside it, and deletes both.
#[test]
fn renamed_directory_survives_removing_its_old_parent() {
    let ops = [
        Op::Mkdir {
            path: "d",
            mode: 0o755,
        },
        Op::Mkdir {
            path: "d/d",
            mode: 0o755,
        },
        Op::SyncAll,
        Op::Rename {
            from: "d/d",
            to: "c",
            flags: Ren::Plain,
        },
        Op::Rmdir { path: "d" },
        Op::FsyncDir { path: "." },
        Op::Cut {
            policy: CutPolicy::DropAll,
            seed: 0,
        },
    ];
    if let Err(f) = check(Persistence::Posix, &ops) {
        panic!("{}", f.what);
    }
}

/// Found by the soak (`DURAFS_DIFF_SEED=506`, 2,000 ops), shrunk. A
/// directory made and exchanged with a file before any sync is reached by two
/// entries in the random crash state; the model keeps it at `a/b`, the cut
/// left it at `c/a`. The twice-reached divergence above; fixed with it.
#[test]
fn exchanged_new_directory_survives_where_the_model_says() {
    let ops = [
        Op::Mkdir {
            path: "c",
            mode: 0o755,
        },
        Op::Mkdir {
            path: "a",
            mode: 0o755,
        },
        Op::Create {
            path: "a/b",
            mode: 0o644,
            excl: true,
            trunc: false,
        },
        Op::Mkdir {
            path: "c/a",
            mode: 0o1777,
        },
        Op::Truncate {
            path: "a/b",
            size: 1045576,
        },
        Op::Create {
            path: "c/b",
            mode: 0o644,
            excl: false,
            trunc: false,
        },
        Op::Rename {
            from: "a/b",
            to: "c/a",
            flags: Ren::Exchange,
        },
        Op::Cut {
            policy: CutPolicy::Random,
            seed: 604921,
        },
    ];
    if let Err(f) = check(Persistence::Posix, &ops) {
        panic!("{}", f.what);
    }
}

/// Found by the soak (`DURAFS_DIFF_SEED=514`, 2,000 ops), shrunk. After
/// exchanges that move directory `c` from inside `X` (whose entries are not
/// durable) to the durable entry `d/d`, a drop-all cut left no `d/d` at
/// all: `X` was replaced at `d/a` and went to the orphans with `c` inside,
/// and the link of `d/d` then kept `c` at its old (still logical) entry
/// inside the orphaned `X`, which the cut deleted.
#[test]
fn directory_exchanged_into_a_durable_entry_survives_a_drop_all_cut() {
    let ops = [
        Op::Mkdir {
            path: "d",
            mode: 0o755,
        },
        Op::Mkdir {
            path: "d/d",
            mode: 0o500,
        },
        Op::Rename {
            from: "d/d",
            to: "a",
            flags: Ren::Plain,
        },
        Op::SyncAll,
        Op::Cut {
            policy: CutPolicy::DropAll,
            seed: 385000,
        },
        Op::Mkdir {
            path: "a/c",
            mode: 0o700,
        },
        Op::Create {
            path: "d/d",
            mode: 0o644,
            excl: true,
            trunc: false,
        },
        Op::Rename {
            from: "a",
            to: "b",
            flags: Ren::Plain,
        },
        Op::Create {
            path: "d/a",
            mode: 0o644,
            excl: false,
            trunc: true,
        },
        Op::Rename {
            from: "d/a",
            to: "b",
            flags: Ren::Exchange,
        },
        Op::SyncAll,
        Op::Rename {
            from: "b",
            to: "d/a",
            flags: Ren::Exchange,
        },
        Op::Rename {
            from: "d/d",
            to: "b/c",
            flags: Ren::Exchange,
        },
        Op::FsyncDir { path: "d" },
        Op::Cut {
            policy: CutPolicy::DropAll,
            seed: 324648,
        },
    ];
    if let Err(f) = check(Persistence::Posix, &ops) {
        panic!("{}", f.what);
    }
}

/// Every policy of `durafs cut` is checked against the model's prediction
/// at least once in CI (the generated runs pick policies at random): data
/// written over durable bytes and appended, unsynced names, a rename, with
/// several seeds each so torn writes tear differently.
#[test]
fn every_cut_policy_recovers_what_the_model_predicts() {
    let mut cuts = 0;
    for policy in CutPolicy::ALL {
        for seed in 0..3 {
            let ops = [
                Op::Mkdir {
                    path: "d",
                    mode: 0o755,
                },
                Op::Create {
                    path: "d/f",
                    mode: 0o644,
                    excl: true,
                    trunc: false,
                },
                Op::Write {
                    path: "d/f",
                    off: 0,
                    len: 4000,
                    fill: 1,
                    append: false,
                },
                Op::SyncAll,
                Op::Write {
                    path: "d/f",
                    off: 700,
                    len: 3000,
                    fill: 2,
                    append: false,
                },
                Op::Write {
                    path: "d/f",
                    off: 0,
                    len: 2500,
                    fill: 3,
                    append: true,
                },
                Op::Create {
                    path: "d/g",
                    mode: 0o600,
                    excl: true,
                    trunc: false,
                },
                Op::Write {
                    path: "d/g",
                    off: 100,
                    len: 1500,
                    fill: 4,
                    append: false,
                },
                Op::Fdatasync { path: "d/g" },
                Op::Rename {
                    from: "d/f",
                    to: "c",
                    flags: Ren::Plain,
                },
                Op::Chmod {
                    path: "c",
                    mode: 0o640,
                },
                Op::Cut { policy, seed },
            ];
            let s = check(Persistence::Posix, &ops)
                .unwrap_or_else(|f| panic!("{policy:?} seed {seed}: {}", f.what));
            cuts += s.cuts;
        }
    }
    assert_eq!(cuts, 18);
}

/// Regression: the volume's cut applies the journal rule under `journal`
/// (a later name never survives without an earlier one) and the predictor
/// did not, so a random cut that kept the second create alone was predicted
/// with it and recovered without it. One decision now serves both
/// (`CrashOptions::under`).
#[test]
fn a_journal_volumes_random_cut_is_predicted_under_the_journal_rule() {
    let create = |path| Op::Create {
        path,
        mode: 0o644,
        excl: false,
        trunc: false,
    };
    for seed in 0..24 {
        let ops = [
            create("a"),
            create("b"),
            create("c"),
            Op::Cut {
                policy: CutPolicy::Random,
                seed,
            },
        ];
        if let Err(f) = check(Persistence::Ext4, &ops) {
            panic!("seed {seed}: {}", f.what);
        }
    }
}
