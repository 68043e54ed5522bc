//! Descriptors held open across operations and writeback-cache mounts in
//! the differential tester: what the generator makes, fixed sequences with
//! explicit expectations (not only the model's), and checks that each new
//! comparison can fail.

use super::{base, tmp_tree};
use durafs::model::crash::{CrashOptions, Policy, crash_state};
use durafs::model::{Op as ModelOp, PendingOp};
use durafs::trace::replay::Replayer;
use durafs::trace::{Trace, TraceOp};
use durafs_tests::diff::tree::{NodeKind, Tree};
use durafs_tests::diff::*;
use durafs_tests::{Vol, fsync_dir};
use std::fs;
use std::os::unix::fs::FileExt;

/// Runs `ops` on a fresh runner, panicking on a discrepancy.
fn run(setup: Setup, ops: &[Op]) -> Runner {
    let mut r = Runner::new(setup);
    for op in ops {
        r.step(op).unwrap_or_else(|f| panic!("{setup}: {}", f.what));
    }
    r
}

/// The file at `path` of `t`: its size and first compared piece.
fn file(t: &Tree, path: &str) -> (u64, Vec<u8>) {
    match t.0.get(path).map(|n| &n.kind) {
        Some(NodeKind::File { size, data }) => (*size, data[0].1.clone()),
        _ => panic!("{path}: not a file in {t:?}"),
    }
}

fn create(path: &'static str) -> Op {
    Op::Create {
        path,
        mode: 0o644,
        excl: true,
        trunc: false,
    }
}

fn cut(policy: CutPolicy) -> Op {
    Op::Cut { policy, seed: 7 }
}

#[test]
fn full_generation_covers_descriptors_owners_and_times() {
    let (_d, tree) = tmp_tree(base);
    let opened: Opened = [Some("a/f"), None, Some("g")];
    let generate = |seed| {
        let mut g = Gen::with_mix(seed, Mix::Full);
        (0..3000)
            .map(|_| g.next_with(&tree, opened))
            .collect::<Vec<Op>>()
    };
    let a = generate(9);
    assert_eq!(a, generate(9));
    assert_ne!(a, generate(10));
    let names: std::collections::BTreeSet<&str> = a.iter().map(Op::name).collect();
    for n in [
        "open",
        "fd-write",
        "fd-read",
        "fd-truncate",
        "fd-fsync",
        "fd-fdatasync",
        "fd-close",
        "chown",
        "utimens",
        "write",
        "rename",
        "cut",
    ] {
        assert!(names.contains(n), "no {n} in 3000 generated ops");
    }
    let has = |f: &dyn Fn(&Op) -> bool| a.iter().any(f);
    // Aimed at the open files: unlinked, renamed over, their directory
    // moved.
    assert!(has(&|o| matches!(o, Op::Unlink { path: "a/f" })));
    assert!(has(&|o| matches!(o, Op::Rename { to: "g", .. })));
    assert!(has(&|o| matches!(o, Op::Rename { from: "a", .. })));
    for how in [
        OpenMode::ReadWrite,
        OpenMode::Append,
        OpenMode::Create,
        OpenMode::ReadOnly,
    ] {
        assert!(has(&|o| matches!(o, Op::Open { how: h, .. } if *h == how)));
    }
    assert!(has(
        &|o| matches!(o, Op::Utimens { mtime: Time::At { secs, .. }, .. } if *secs < 0)
    ));
    assert!(has(&|o| matches!(
        o,
        Op::Utimens {
            atime: Time::Omit,
            ..
        }
    )));
    assert!(has(&|o| matches!(
        o,
        Op::Utimens {
            mtime: Time::Now,
            ..
        }
    )));
    assert!(has(&|o| matches!(o, Op::Chown { uid: None, .. })));
    assert!(has(&|o| matches!(
        o,
        Op::Chown {
            gid: Some(1001),
            ..
        }
    )));
}

/// The classic generator still makes the sequences it made before the
/// descriptor operations existed (seeds quoted in docs/reliability.md).
#[test]
fn classic_generation_is_unchanged() {
    let (_d, tree) = tmp_tree(base);
    let mut g = Gen::new(9);
    let text: String = (0..3000).map(|_| format!("{}\n", g.next(&tree))).collect();
    let fnv = text.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    });
    assert_eq!(fnv, CLASSIC_FINGERPRINT, "{}", &text[..300]);
}

/// FNV-1a of the 3,000 printed ops, as computed at commit a367fef (before
/// the descriptor operations).
const CLASSIC_FINGERPRINT: u64 = 1_927_229_615_194_969_226;

/// The printed form of every new operation and of a setup is Rust that
/// compiles, runs and passes (on a writeback-cache mount).
#[test]
fn a_printed_full_sequence_is_a_runnable_regression_test() {
    let ops = [
        Op::Mkdir {
            path: "a",
            mode: 0o755,
        },
        Op::Open {
            slot: 0,
            path: "a/b",
            how: OpenMode::Create,
        },
        Op::FdWrite {
            slot: 0,
            off: 100,
            len: 2000,
            fill: 3,
        },
        Op::Open {
            slot: 2,
            path: "a/b",
            how: OpenMode::Append,
        },
        Op::FdWrite {
            slot: 2,
            off: 0,
            len: 10,
            fill: 4,
        },
        Op::Rename {
            from: "a",
            to: "c",
            flags: Ren::Plain,
        },
        Op::FdRead {
            slot: 0,
            off: 0,
            len: 4000,
        },
        Op::FdTruncate {
            slot: 0,
            size: 1500,
        },
        Op::Chown {
            path: "c/b",
            uid: Some(1000),
            gid: None,
        },
        Op::Utimens {
            path: "c/b",
            atime: Time::Omit,
            mtime: Time::At {
                secs: 1234567890,
                nanos: 5,
            },
        },
        Op::FdFsync {
            slot: 0,
            datasync: false,
        },
        Op::FdClose { slot: 2 },
        Op::Cut {
            policy: CutPolicy::DropAll,
            seed: 0,
        },
    ];
    assert_eq!(
        ops[1].to_string(),
        r#"Op::Open { slot: 0, path: "a/b", how: OpenMode::Create }"#
    );
    assert_eq!(
        ops[9].to_string(),
        r#"Op::Utimens { path: "c/b", atime: Time::Omit, mtime: Time::At { secs: 1234567890, nanos: 5 } }"#
    );
    assert_eq!(
        ops[8].to_string(),
        r#"Op::Chown { path: "c/b", uid: Some(1000), gid: None }"#
    );
    let setup = Setup {
        persistence: Persistence::Posix,
        writeback_cache: true,
        mix: Mix::Full,
    };
    assert_eq!(setup, Setup::writeback(Persistence::Posix));
    assert_eq!(
        setup.to_string(),
        "Setup { persistence: Persistence::Posix, writeback_cache: true, mix: Mix::Full }"
    );
    assert_eq!(
        Setup::from(Persistence::Ext4).to_string(),
        "Persistence::Ext4"
    );
    let s = check(setup, &ops).unwrap_or_else(|f| panic!("{}", f.what));
    assert_eq!((s.ops, s.cuts, s.errors), (13, 1, 0));
    assert_eq!(s.cases.get("fsync-moved"), Some(&1), "{s:?}");
}

/// Data written through a descriptor after its file's last name was
/// durably removed never comes back: under every policy the remount holds
/// no name, and BACKING none of its bytes.
#[test]
fn data_written_to_an_unlinked_file_is_gone_after_every_cut() {
    for setup in [
        Setup::full(Persistence::Posix),
        Setup::writeback(Persistence::Ext4),
    ] {
        for policy in CutPolicy::ALL {
            let ops = [
                create("f"),
                Op::Write {
                    path: "f",
                    off: 0,
                    len: 1000,
                    fill: 1,
                    append: false,
                },
                Op::Fsync { path: "f" },
                Op::FsyncDir { path: "." },
                Op::Open {
                    slot: 0,
                    path: "f",
                    how: OpenMode::ReadWrite,
                },
                Op::Unlink { path: "f" },
                Op::FsyncDir { path: "." },
                Op::FdWrite {
                    slot: 0,
                    off: 0,
                    len: 3000,
                    fill: 2,
                },
                Op::FdFsync {
                    slot: 0,
                    datasync: false,
                },
                Op::FdWrite {
                    slot: 0,
                    off: 5000,
                    len: 100,
                    fill: 3,
                },
                Op::FdTruncate {
                    slot: 0,
                    size: 4000,
                },
                cut(policy),
            ];
            let r = run(setup, &ops);
            assert!(r.tree().0.is_empty(), "{setup} {policy:?}: {:?}", r.tree());
            let marker = &pattern(2, 64);
            for e in walk(&r.volume().backing) {
                let data = fs::read(&e).expect("read backing file");
                assert!(
                    !data.windows(64).any(|w| w == marker),
                    "{setup} {policy:?}: {} holds the unlinked file's data",
                    e.display()
                );
            }
        }
    }
}

/// Every regular file under `dir`, bookkeeping included.
fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in fs::read_dir(dir).expect("read_dir") {
        let e = e.expect("entry");
        let t = e.file_type().expect("file type");
        if t.is_dir() {
            out.extend(walk(&e.path()));
        } else if t.is_file() {
            out.push(e.path());
        }
    }
    out
}

/// An fsync through a descriptor of a file whose unlink is not durable:
/// a cut that loses the unlink brings the name back with the fsynced data.
#[test]
fn an_unlinked_file_fsynced_through_a_descriptor_returns_with_its_data_when_the_unlink_is_lost() {
    let ops = [
        create("f"),
        Op::SyncAll,
        Op::Open {
            slot: 1,
            path: "f",
            how: OpenMode::ReadWrite,
        },
        Op::Unlink { path: "f" },
        Op::FdWrite {
            slot: 1,
            off: 0,
            len: 3000,
            fill: 2,
        },
        Op::FdFsync {
            slot: 1,
            datasync: true,
        },
        cut(CutPolicy::DropAll),
    ];
    for setup in [
        Setup::full(Persistence::Posix),
        Setup::writeback(Persistence::Posix),
    ] {
        let r = run(setup, &ops);
        assert_eq!(file(r.tree(), "f"), (3000, pattern(2, 3000)), "{setup}");
    }
}

/// An fsync through a descriptor after the file was renamed and its
/// directory was renamed makes the data durable; with the two directories
/// fsynced too, under the new names, otherwise under the old ones.
#[test]
fn fsync_through_a_descriptor_after_renames_is_durable_under_the_durable_name() {
    let ops = |fsync_dirs: bool| {
        let mut v = vec![
            Op::Mkdir {
                path: "d",
                mode: 0o755,
            },
            create("d/f"),
            Op::SyncAll,
            Op::Open {
                slot: 2,
                path: "d/f",
                how: OpenMode::ReadWrite,
            },
            Op::Rename {
                from: "d/f",
                to: "d/g",
                flags: Ren::Plain,
            },
            Op::Rename {
                from: "d",
                to: "b",
                flags: Ren::Plain,
            },
            Op::FdWrite {
                slot: 2,
                off: 0,
                len: 2000,
                fill: 5,
            },
            Op::FdFsync {
                slot: 2,
                datasync: false,
            },
        ];
        if fsync_dirs {
            v.push(Op::FsyncDir { path: "." });
            v.push(Op::FsyncDir { path: "b" });
        }
        v.push(cut(CutPolicy::DropAll));
        v
    };
    for setup in [
        Setup::full(Persistence::Posix),
        Setup::writeback(Persistence::Posix),
    ] {
        let r = run(setup, &ops(true));
        assert_eq!(file(r.tree(), "b/g"), (2000, pattern(5, 2000)), "{setup}");
        assert_eq!(r.tree().0.len(), 2, "{setup}: {:?}", r.tree());
        let r = run(setup, &ops(false));
        assert_eq!(file(r.tree(), "d/f"), (2000, pattern(5, 2000)), "{setup}");
        assert_eq!(r.tree().0.len(), 2, "{setup}: {:?}", r.tree());
    }
}

/// An fsync through a descriptor after a rename replaced the file's name:
/// the fsync keeps the file's data; which file the name reaches after a
/// cut is up to the directory's fsync.
#[test]
fn fsync_through_a_descriptor_after_a_rename_over_its_name() {
    let ops = |fsync_dir: bool| {
        let mut v = vec![
            create("f"),
            create("g"),
            Op::SyncAll,
            Op::Open {
                slot: 0,
                path: "f",
                how: OpenMode::ReadWrite,
            },
            Op::Rename {
                from: "g",
                to: "f",
                flags: Ren::Plain,
            },
            Op::FdWrite {
                slot: 0,
                off: 0,
                len: 1000,
                fill: 6,
            },
            Op::FdFsync {
                slot: 0,
                datasync: false,
            },
        ];
        if fsync_dir {
            v.push(Op::FsyncDir { path: "." });
        }
        v.push(cut(CutPolicy::DropAll));
        v
    };
    let setup = Setup::full(Persistence::Posix);
    let r = run(setup, &ops(false));
    assert_eq!(file(r.tree(), "f"), (1000, pattern(6, 1000)));
    assert_eq!(file(r.tree(), "g"), (0, Vec::new()));
    let r = run(setup, &ops(true));
    assert_eq!(file(r.tree(), "f"), (0, Vec::new()));
    assert_eq!(r.tree().0.len(), 1, "{:?}", r.tree());
}

/// Descriptors do not survive a cut: both sides' are closed.
#[test]
fn descriptors_are_closed_at_a_cut() {
    let ops = [
        create("f"),
        Op::Open {
            slot: 0,
            path: "f",
            how: OpenMode::ReadWrite,
        },
        cut(CutPolicy::KeepAll),
        Op::FdWrite {
            slot: 0,
            off: 0,
            len: 10,
            fill: 1,
        },
        Op::FdClose { slot: 0 },
    ];
    let s = check(Setup::full(Persistence::Posix), &ops).unwrap_or_else(|f| panic!("{}", f.what));
    assert_eq!(s.per_op["fd-write"], [0, 1]);
    assert_eq!(s.per_op["fd-close"], [0, 1]);
    assert_eq!(s.cases["fds-open-at-cut"], 1);
}

/// The descriptor checks have teeth: bytes written behind the runner's
/// back into the durafs side of an unlinked file (which no tree shows) are
/// seen through the slot, by `fstat` after any step and by a read.
#[test]
fn a_change_to_an_unlinked_file_behind_a_descriptor_is_detected() {
    for (next, class) in [
        (
            Op::FdRead {
                slot: 0,
                off: 0,
                len: 200,
            },
            "result after fd-read",
        ),
        (
            Op::Mkdir {
                path: "x",
                mode: 0o755,
            },
            "fd-stat after mkdir",
        ),
    ] {
        let mut r = Runner::new(Setup::full(Persistence::Posix));
        for op in [
            create("f"),
            Op::Open {
                slot: 0,
                path: "f",
                how: OpenMode::ReadWrite,
            },
        ] {
            r.step(&op).unwrap_or_else(|f| panic!("{}", f.what));
        }
        let mine = fs::File::options()
            .write(true)
            .open(r.volume().p("f"))
            .expect("open on durafs");
        r.step(&Op::Unlink { path: "f" })
            .unwrap_or_else(|f| panic!("{}", f.what));
        mine.write_all_at(b"behind", 100).expect("write");
        let f = r.step(&next).expect_err("the change is not detected");
        assert_eq!(f.class, class, "{}", f.what);
    }
}

/// The prediction of a cut after an fsync through a descriptor of a
/// renamed file depends on that fsync: the remount matches the replay of
/// the whole trace, and not the replay without the fsync.
#[test]
fn a_prediction_without_the_descriptor_fsync_is_detected() {
    let mut v = Vol::new(Persistence::Posix);
    v.fs().start_trace(true, None).expect("trace");
    fs::create_dir(v.p("d")).expect("mkdir");
    fs::write(v.p("d/f"), b"").expect("create");
    v.fs().sync().expect("sync");
    let f = fs::File::options()
        .read(true)
        .write(true)
        .open(v.p("d/f"))
        .expect("open");
    fs::rename(v.p("d/f"), v.p("d/g")).expect("rename file");
    fs::rename(v.p("d"), v.p("b")).expect("rename dir");
    f.write_all_at(&pattern(5, 2000), 0).expect("write");
    f.sync_all().expect("fsync through the descriptor");
    fsync_dir(&v.mnt);
    fsync_dir(&v.p("b"));
    let trace = v.fs().finish_trace().expect("traced").expect("trace");
    let fsyncs = |t: &Trace| {
        t.events
            .iter()
            .filter(|e| matches!(e.op, TraceOp::Fsync { .. }))
            .count()
    };
    assert_eq!(fsyncs(&trace), 1);
    let predict = |skip_fsync: bool| {
        let mut r = Replayer::new(&trace.header).expect("header");
        for ev in &trace.events {
            if !(skip_fsync && matches!(ev.op, TraceOp::Fsync { .. })) {
                r.apply(ev).expect("replay");
            }
        }
        let pending: Vec<PendingOp> = r.pending();
        let opts = CrashOptions {
            policy: Policy::DropAll,
            ..CrashOptions::default()
        };
        let mut store = r.durable().clone();
        store.apply_all(&crash_state(&pending, &opts).effects(&pending));
        Tree::of_store(&store)
    };
    let (with, without) = (predict(false), predict(true));
    v.cut(Policy::DropAll);
    drop(f);
    v.remount();
    let got = Tree::read(&v.mnt).expect("read");
    assert_eq!(
        with.diff(&got, "model", "remounted", 10),
        Vec::<String>::new()
    );
    assert!(!without.diff(&got, "model", "remounted", 10).is_empty());
    assert_eq!(file(&got, "b/g"), (2000, pattern(5, 2000)));
}

/// Writes to an unlinked file, per mount: with the writeback cache the
/// kernel holds them (no step reads the file, so no close sends them)
/// until the fsync through the descriptor; without it durafs has them at
/// once. This fails if the writeback-cache setup does not really mount
/// with the cache.
#[test]
fn the_writeback_cache_setup_leaves_writes_in_the_kernel_until_an_fsync() {
    let pending_writes = |r: &Runner| {
        r.volume()
            .fs()
            .pending()
            .iter()
            .filter(|p| matches!(p.op, ModelOp::Write { .. }))
            .count()
    };
    for (setup, cached) in [
        (Setup::full(Persistence::Posix), false),
        (Setup::writeback(Persistence::Posix), true),
    ] {
        let mut r = run(
            setup,
            &[
                create("f"),
                Op::SyncAll,
                Op::Open {
                    slot: 0,
                    path: "f",
                    how: OpenMode::ReadWrite,
                },
                Op::Unlink { path: "f" },
                Op::FdWrite {
                    slot: 0,
                    off: 0,
                    len: 100,
                    fill: 1,
                },
            ],
        );
        assert_eq!(pending_writes(&r), usize::from(!cached), "{setup}");
        r.step(&Op::FdFsync {
            slot: 0,
            datasync: true,
        })
        .unwrap_or_else(|f| panic!("{}", f.what));
        assert_eq!(pending_writes(&r), 0, "{setup}");
    }
}
