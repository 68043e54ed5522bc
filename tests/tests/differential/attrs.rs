//! Owners, groups and explicit times in the differential tester: the
//! comparator sees them, fixed sequences with explicit expectations, the
//! cut check has teeth, and the durafs bugs they found.

use super::{base, tmp_tree};
use durafs_tests::diff::tree::Tree;
use durafs_tests::diff::*;
use durafs_tests::{Vol, cpath};
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

fn run(setup: Setup, ops: &[Op]) -> Runner {
    let mut r = Runner::new(setup);
    for op in ops {
        r.step(op).unwrap_or_else(|f| panic!("{setup}: {}", f.what));
    }
    r
}

fn create(path: &'static str, mode: u32) -> Op {
    Op::Create {
        path,
        mode,
        excl: true,
        trunc: false,
    }
}

const X: Time = Time::At {
    secs: 1_234_567_890,
    nanos: 123_456_789,
};

fn utimens(path: &'static str) -> Op {
    Op::Utimens {
        path,
        atime: Time::Omit,
        mtime: X,
    }
}

/// `utimensat` of `p` (not following a symlink) to `secs` for both times.
fn set_times(p: &Path, secs: i64) {
    let t = libc::timespec {
        tv_sec: secs,
        tv_nsec: 0,
    };
    let c = cpath(p);
    // SAFETY: a valid path and a two-element timespec array.
    let rc = unsafe {
        libc::utimensat(
            libc::AT_FDCWD,
            c.as_ptr(),
            [t, t].as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    };
    assert_eq!(rc, 0, "utimensat {}", p.display());
}

#[test]
fn the_tree_comparator_detects_owner_group_and_a_kept_mtime() {
    let (_a, t) = tmp_tree(base);
    for (what, m) in [("owner", (Some(1000), None)), ("group", (None, Some(1001)))] {
        let (_c, other) = tmp_tree(|p| {
            base(p);
            std::os::unix::fs::lchown(p.join("s"), m.0, m.1).expect("lchown");
        });
        assert!(
            !t.diff(&other, "x", "y", 10).is_empty(),
            "{what}: not detected"
        );
    }
    // mtimes: compared where kept, ignored elsewhere.
    let timed = |secs| {
        tmp_tree(|p| {
            base(p);
            set_times(&p.join("a/f"), secs);
        })
    };
    let ((c, _), (d, _)) = (timed(1), timed(2));
    let (mut x, _) = Tree::read_ids(c.path()).expect("read");
    let (mut y, _) = Tree::read_ids(d.path()).expect("read");
    x.retain_mtimes(|p| p == "a/f" || p == "g");
    y.retain_mtimes(|p| p == "a/f" || p == "g");
    assert_eq!(x.diff(&y, "x", "y", 10).len(), 2, "a/f and its link g");
    x.retain_mtimes(|_| false);
    y.retain_mtimes(|_| false);
    assert_eq!(x.diff(&y, "x", "y", 10), Vec::<String>::new());
}

/// chown clears set-user-ID on a file (also for root); an fsync makes the
/// new owner durable, without one a drop-all cut keeps the old.
#[test]
fn chown_clears_set_user_id_and_an_fsync_makes_the_owner_durable() {
    let chown = Op::Chown {
        path: "f",
        uid: Some(1000),
        gid: Some(1001),
    };
    let mut ops = vec![create("f", 0o4755), Op::SyncAll, chown];
    let r = run(Setup::full(Persistence::Posix), &ops);
    let f = &r.tree().0["f"];
    assert_eq!((f.mode, f.uid, f.gid), (0o755, 1000, 1001));
    drop(r);
    for (sync, want) in [(false, (0o4755, 0, 0)), (true, (0o755, 1000, 1001))] {
        let mut ops = ops.clone();
        if sync {
            ops.push(Op::Fsync { path: "f" });
        }
        ops.push(Op::Cut {
            policy: CutPolicy::DropAll,
            seed: 0,
        });
        let r = run(Setup::full(Persistence::Posix), &ops);
        let f = &r.tree().0["f"];
        assert_eq!((f.mode, f.uid, f.gid), want, "fsync {sync}");
    }
    // Symlinks and directories keep their owner too (lchown).
    ops = vec![
        Op::Symlink {
            target: "zz",
            path: "l",
        },
        Op::Mkdir {
            path: "d",
            mode: 0o755,
        },
        Op::Chown {
            path: "l",
            uid: Some(1001),
            gid: None,
        },
        Op::Chown {
            path: "d",
            uid: None,
            gid: Some(1000),
        },
        Op::SyncAll,
        Op::Cut {
            policy: CutPolicy::DropAll,
            seed: 0,
        },
    ];
    let r = run(Setup::full(Persistence::Ext4), &ops);
    let (l, d) = (&r.tree().0["l"], &r.tree().0["d"]);
    assert_eq!((l.uid, l.gid, d.uid, d.gid), (1001, 0, 0, 1000));
}

/// An explicit mtime made durable (fsync of the file, sync-all for the
/// symlink) is what every policy's cut recovers, and the check compares
/// it (a later chmod carries it in its pending attributes).
#[test]
fn an_explicit_mtime_made_durable_survives_every_cut_policy() {
    for setup in [
        Setup::full(Persistence::Posix),
        Setup::writeback(Persistence::Ext4),
    ] {
        for policy in CutPolicy::ALL {
            let ops = [
                create("f", 0o644),
                Op::Write {
                    path: "f",
                    off: 0,
                    len: 3000,
                    fill: 1,
                    append: false,
                },
                Op::Symlink {
                    target: "f",
                    path: "l",
                },
                utimens("l"),
                Op::SyncAll,
                utimens("f"),
                Op::Fsync { path: "f" },
                Op::Chmod {
                    path: "f",
                    mode: 0o600,
                },
                Op::Cut { policy, seed: 3 },
            ];
            let s = check(setup, &ops).unwrap_or_else(|f| panic!("{setup} {policy:?}: {}", f.what));
            assert_eq!(s.cases["mtime-checked-at-cut"], 2, "{setup} {policy:?}");
        }
    }
}

/// The cut check compares owners and stamped mtimes: either changed in
/// BACKING behind durafs's back (after everything was durable) is caught
/// at the remount. The mtime is caught only where the harness knows it
/// (stamped and durable), not on the unstamped file beside it.
#[test]
fn an_owner_or_mtime_changed_in_backing_is_detected_at_the_cut() {
    type Sabotage = fn(&Path);
    let sabotage: [(&str, Sabotage, bool); 3] = [
        (
            "owner",
            |b| std::os::unix::fs::lchown(b.join("f"), Some(1000), None).expect("lchown"),
            true,
        ),
        ("stamped mtime", |b| set_times(&b.join("f"), 7), true),
        ("unstamped mtime", |b| set_times(&b.join("g"), 7), false),
    ];
    for (what, spoil, caught) in sabotage {
        let mut r = run(
            Setup::full(Persistence::Posix),
            &[
                create("f", 0o644),
                create("g", 0o644),
                utimens("f"),
                Op::SyncAll,
            ],
        );
        spoil(&r.volume().backing);
        let got = r.step(&Op::Cut {
            policy: CutPolicy::DropAll,
            seed: 0,
        });
        match got {
            Err(f) if caught => assert_eq!(f.class, "cut-model after cut", "{what}: {}", f.what),
            Ok(()) if !caught => {}
            other => panic!("{what}: {other:?}"),
        }
    }
}

/// Bug (fixed): a time before 1970 with a fraction of a second, set by
/// `utimensat`, was stored a second and a fraction off: fuser 0.18 turns
/// the kernel's `(secs, nanos)` with `secs < 0` into `secs - nanos`
/// instead of `secs + nanos` (`-1000000 s + 0.25 s` became
/// `-1000000.25 s`); durafs undoes that (`fuse.rs`, `kernel_time`). Found
/// by `journal_full_seed_6`.
#[test]
fn a_time_before_1970_with_nanoseconds_is_set_exactly() {
    let ops = [
        create("f", 0o644),
        Op::Utimens {
            path: "f",
            atime: Time::At {
                secs: -1_000_000,
                nanos: 250_000_000,
            },
            mtime: Time::At { secs: -1, nanos: 1 },
        },
        Op::Fsync { path: "f" },
        Op::FsyncDir { path: "." },
        Op::Cut {
            policy: CutPolicy::DropAll,
            seed: 0,
        },
    ];
    let s = check(Setup::full(Persistence::Posix), &ops).unwrap_or_else(|f| panic!("{}", f.what));
    assert_eq!(s.cases.get("mtime-checked-at-cut"), Some(&1), "{s:?}");
}

/// Bug (fixed): the first fsync of a new file with data left BACKING's
/// file with the host's time of the write as its mtime, not the durable one
/// the model (and `durafs explore`) predicts: the file was created with its
/// attributes (`Effect::Alloc`) and the writes after it changed the mtime.
/// Now every flush that writes data ends with the durable attributes
/// (`Model::flush_node`). Found by `posix_writeback_cache_seed_7` with
/// `DURAFS_DIFF_SEED=500` (10,000 ops), shrunk; no writeback cache needed.
#[test]
fn an_explicit_mtime_survives_the_first_fsync_of_a_new_file() {
    for setup in [
        Setup::full(Persistence::Posix),
        Setup::writeback(Persistence::Posix),
    ] {
        for policy in [CutPolicy::KeepAll, CutPolicy::DropAll] {
            let ops = [
                create("c", 0o4755),
                Op::Write {
                    path: "c",
                    off: 4096,
                    len: 883,
                    fill: 223,
                    append: false,
                },
                Op::Utimens {
                    path: "c",
                    atime: Time::At {
                        secs: 1_000_000_000,
                        nanos: 0,
                    },
                    mtime: Time::At {
                        secs: 1_500_000_000,
                        nanos: 999_999_999,
                    },
                },
                Op::Fsync { path: "c" },
                Op::FsyncDir { path: "." },
                Op::Cut { policy, seed: 1 },
            ];
            let s = check(setup, &ops).unwrap_or_else(|f| panic!("{setup} {policy:?}: {}", f.what));
            assert_eq!(s.cases["mtime-checked-at-cut"], 1);
        }
    }
}

/// Bug (fixed): a set-user-ID bit set again after a chown was lost in
/// BACKING: storing the attributes chowned the backing file, which clears
/// the bit on the host, and then compared the mode read before the chown,
/// so it did not chmod (`backing::set_attrs`). The remount showed `0o755`.
/// Found while fixing the bug above.
#[test]
fn a_set_user_id_bit_set_after_a_chown_survives_a_cut() {
    let ops = [
        create("f", 0o4755),
        Op::SyncAll,
        Op::Chown {
            path: "f",
            uid: Some(1000),
            gid: None,
        },
        Op::Chmod {
            path: "f",
            mode: 0o4755,
        },
        Op::SyncAll,
        Op::Cut {
            policy: CutPolicy::DropAll,
            seed: 0,
        },
    ];
    let r = run(Setup::full(Persistence::Posix), &ops);
    let f = &r.tree().0["f"];
    assert_eq!((f.mode, f.uid), (0o4755, 1000));
}

/// Regression: the model never changed a directory's mtime (or ctime) when
/// its entries changed; Linux filesystems set both to the time of the
/// change. Each entry change here, on the host and through durafs, must
/// move the stamped mtime of the directories it changes (both of a rename).
#[test]
fn changing_entries_changes_the_directory_mtime() {
    let v = Vol::new(Persistence::Posix);
    let host = tempfile::tempdir().expect("tempdir");
    type Change = fn(&Path);
    let changes: [(&str, &[&str], Change); 6] = [
        ("create", &["d"], |r| {
            fs::write(r.join("d/f"), b"x").expect("create")
        }),
        ("mkdir", &["d"], |r| {
            fs::create_dir(r.join("d/s")).expect("mkdir")
        }),
        ("link", &["e"], |r| {
            fs::hard_link(r.join("d/f"), r.join("e/l")).expect("link")
        }),
        ("rename", &["d", "e"], |r| {
            fs::rename(r.join("d/f"), r.join("e/f")).expect("rename")
        }),
        ("unlink", &["e"], |r| {
            fs::remove_file(r.join("e/l")).expect("unlink")
        }),
        ("rmdir", &["d"], |r| {
            fs::remove_dir(r.join("d/s")).expect("rmdir")
        }),
    ];
    for root in [host.path(), v.mnt.as_path()] {
        fs::create_dir(root.join("d")).expect("mkdir");
        fs::create_dir(root.join("e")).expect("mkdir");
        for (what, dirs, change) in changes {
            for d in dirs {
                set_times(&root.join(d), 1_000_000_000);
            }
            change(root);
            for d in dirs {
                let m = fs::metadata(root.join(d)).expect("stat");
                assert_ne!(
                    m.mtime(),
                    1_000_000_000,
                    "{what}: {d} in {}",
                    root.display()
                );
            }
        }
    }
}

/// An fsync of a directory makes its own attributes durable, as on Linux:
/// its mode and the mtime `utimensat` gave it survive a drop-all cut.
#[test]
fn an_fsync_of_a_directory_makes_its_attributes_durable() {
    let mut v = Vol::new(Persistence::Posix);
    fs::create_dir(v.p("d")).expect("mkdir");
    durafs_tests::fsync_dir(&v.mnt);
    fs::set_permissions(v.p("d"), fs::Permissions::from_mode(0o700)).expect("chmod");
    set_times(&v.p("d"), 1 << 33);
    durafs_tests::fsync_dir(&v.p("d"));
    v.cut(durafs::model::crash::Policy::DropAll);
    v.remount();
    let m = fs::metadata(v.p("d")).expect("stat after the cut");
    assert_eq!((m.mode() & 0o7777, m.mtime()), (0o700, 1 << 33));
}

/// Regression: a directory's mtime set by `utimensat` was not what a
/// keep-all cut recovered, though it was the last change to the directory
/// (the model predicts it): BACKING renamed the last entry of a removed
/// file into its orphans at the end of the batch, after the batch set the
/// directory's times, so the remount showed the host's time of the cut.
/// Found by `posix_writeback_cache_seed_7` with `DURAFS_DIFF_SEED=202`
/// (2,000 ops), shrunk (it needs no writeback cache). The store now gives
/// back the times it recorded to every inode the host changed
/// (`backing::times`).
#[test]
fn a_directory_mtime_set_by_utimensat_survives_a_keep_all_cut() {
    let mut v = Vol::new(Persistence::Posix);
    fs::create_dir(v.p("c")).expect("mkdir");
    fs::write(v.p("c/a"), b"").expect("create");
    fs::rename(v.p("c"), v.p("b")).expect("rename");
    fs::remove_file(v.p("b/a")).expect("unlink");
    set_times(&v.p("b"), 1 << 33);
    assert_eq!(fs::metadata(v.p("b")).expect("stat").mtime(), 1 << 33);
    v.cut(durafs::model::crash::Policy::KeepAll);
    v.remount();
    let m = fs::metadata(v.p("b")).expect("stat after the cut");
    assert_eq!(m.mtime(), 1 << 33);
    assert_eq!(m.permissions().mode() & 0o7777, 0o755);
}

/// Regression (soak seed 2203 of `posix_writeback_cache_seed_7`, shrunk):
/// an fsync of a directory whose own name was not durable yet left its
/// attributes pending, so a cut that kept its creation showed the creation
/// time, not the mtime `utimensat` gave it before the fsync.
#[test]
fn an_fsync_of_a_new_directory_makes_its_stamp_durable() {
    let ops = [
        Op::Mkdir {
            path: "d",
            mode: 0o500,
        },
        Op::Rename {
            from: "d",
            to: "b",
            flags: Ren::NoReplace,
        },
        Op::Open {
            slot: 0,
            path: "a",
            how: OpenMode::Create,
        },
        Op::Write {
            path: "a",
            off: 11776,
            len: 1410,
            fill: 84,
            append: false,
        },
        Op::FdWrite {
            slot: 0,
            off: 0,
            len: 5989,
            fill: 111,
        },
        Op::Mkdir {
            path: "b/c",
            mode: 0o1777,
        },
        Op::Utimens {
            path: "b/c",
            atime: Time::At {
                secs: -86400,
                nanos: 0,
            },
            mtime: Time::At {
                secs: -1000000,
                nanos: 250000000,
            },
        },
        Op::Fsync { path: "b/c" },
        Op::Cut {
            policy: CutPolicy::Torn,
            seed: 894397,
        },
    ];
    // Cuts that keep the directory's creation but not every later change.
    for policy in [CutPolicy::Torn, CutPolicy::Random, CutPolicy::Prefix] {
        for seed in 0..24 {
            let mut ops = ops;
            ops[8] = Op::Cut { policy, seed };
            if let Err(f) = check(Setup::full(Persistence::Posix), &ops) {
                panic!("{policy:?} seed {seed}: {}", f.what);
            }
        }
    }
}
