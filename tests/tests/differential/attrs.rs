//! Owners, groups and explicit times in the differential tester.

use durafs_tests::diff::*;

fn create(path: &'static str, mode: u32) -> Op {
    Op::Create {
        path,
        mode,
        excl: true,
        trunc: false,
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
