use super::*;
use crate::model::enumerate::{EnumOptions, enumerate};
use bytes::Bytes;

fn write(ino: u64, offset: u64, len: usize, byte: u8) -> PendingOp {
    write_after(ino, offset, len, byte, 0)
}

/// A write made while the file was `size_before` bytes long.
fn write_after(ino: u64, offset: u64, len: usize, byte: u8, size_before: u64) -> PendingOp {
    PendingOp {
        seq: 0,
        op: Op::Write {
            ino,
            offset,
            data: Bytes::from(vec![byte; len]),
            size_before,
        },
    }
}

fn keeps(v: &[(usize, Survival)]) -> Vec<(usize, Survival)> {
    v.to_vec()
}

#[test]
fn under_size_after_data_a_write_never_keeps_its_size_without_all_its_data() {
    let pending = [write(2, 0, 1024, b'a'), write(2, 1024, 1024, b'b')];
    let kept = keeps(&[
        (0, Survival::MetaOnly),
        (
            1,
            Survival::Torn {
                persisted: vec![(1024, 1536)],
                garbage: None,
            },
        ),
    ]);
    let (out, cuts) = apply(&pending, kept, Persistence::Xfs.rules(), 512);
    // The first write's size alone is gone; the second keeps its sector as
    // data past the durable end, hidden until a size covers it.
    assert_eq!(
        out,
        vec![(
            1,
            Survival::DataOnly {
                persisted: vec![(1024, 1536)]
            }
        )]
    );
    assert_eq!(cuts.sizes, 2);
}

/// ext4 (4 KiB blocks, `dioread_nolock`): past the page of the old end a
/// write's blocks are unwritten extents until its I/O completed, so its
/// size survives over zeros, or with its data in whole pages, never with a
/// page torn; inside the old last page (a mapped block) anything goes.
#[test]
fn ext4_keeps_new_pages_of_a_sized_write_whole() {
    let rules = Persistence::Ext4.rules();
    let torn = |persisted: Vec<(u64, u64)>| Survival::Torn {
        persisted,
        garbage: None,
    };
    // Inside the old last page: torn at a sector, size kept.
    let inside = [write_after(2, 3000, 1000, b'a', 3000)];
    let kept = keeps(&[(0, torn(vec![(3000, 3072)]))]);
    let (out, cuts) = apply(&inside, kept.clone(), rules, 512);
    assert_eq!((out, cuts.sizes), (kept, 0));
    // Past it: the size alone survives.
    let past = [write_after(2, 4096, 6000, b'a', 4096)];
    let kept = keeps(&[(0, Survival::MetaOnly)]);
    let (out, cuts) = apply(&past, kept.clone(), rules, 512);
    assert_eq!((out, cuts.sizes), (kept, 0));
    // A page kept in part is rolled back; a whole page stays.
    let kept = keeps(&[(0, torn(vec![(4096, 8192), (8192, 8704)]))]);
    let (out, cuts) = apply(&past, kept, rules, 512);
    assert_eq!(
        (out, cuts.sizes),
        (keeps(&[(0, torn(vec![(4096, 8192)]))]), 1)
    );
    let kept = keeps(&[(0, torn(vec![(4608, 5120)]))]);
    let (out, _) = apply(&past, kept, rules, 512);
    assert_eq!(out, keeps(&[(0, Survival::MetaOnly)]));
    // The write's last, partial page is whole when all of its part is.
    let kept = keeps(&[(0, torn(vec![(8192, 10096)]))]);
    let (out, _) = apply(&past, kept.clone(), rules, 512);
    assert_eq!(out, kept);
    // posix tears anywhere.
    let kept = keeps(&[(0, torn(vec![(4608, 5120)]))]);
    let (out, _) = apply(&past, kept.clone(), Persistence::Posix.rules(), 512);
    assert_eq!(out, kept);
}

#[test]
fn btrfs_never_tears_a_page() {
    let pending = [write(2, 0, 8192, b'a')];
    let opts = EnumOptions::default().under(Persistence::Btrfs);
    let mut states = 0;
    for cs in enumerate(&pending, &opts) {
        states += 1;
        for (_, how) in &cs.kept {
            if let Survival::Torn { persisted, .. } | Survival::DataOnly { persisted } = how {
                for (a, b) in persisted {
                    assert!(
                        a % PAGE == 0 && b % PAGE == 0,
                        "{}: {persisted:?}",
                        cs.description
                    );
                }
            }
        }
    }
    // Drop-all, keep-all, and the first page alone (its size without the
    // second page's data is not a btrfs state).
    assert!(states >= 3, "{states} states");
    let posix = enumerate(&pending, &EnumOptions::default()).count();
    assert!(posix > states, "posix {posix}, btrfs {states}");
}

#[test]
fn every_profile_keeps_the_state_it_made() {
    let pending = [
        write(2, 0, 3000, b'a'),
        write(2, 1000, 5000, b'b'),
        write(3, 0, 700, b'c'),
    ];
    for p in Persistence::ALL {
        let opts = EnumOptions::default().under(p);
        for cs in enumerate(&pending, &opts) {
            let (again, cuts) = apply(&pending, cs.kept.clone(), opts.rules, opts.sector);
            assert_eq!(again, cs.kept, "{p}: {}", cs.description);
            assert_eq!(cuts, Cuts::default(), "{p}: {}", cs.description);
        }
    }
}

#[test]
fn journal_is_the_ext4_profile_and_unknown_models_name_the_profiles() {
    assert_eq!("journal".parse::<Persistence>(), Ok(Persistence::Ext4));
    for p in Persistence::ALL {
        assert_eq!(p.name().parse::<Persistence>(), Ok(p));
    }
    let e = "zfs".parse::<Persistence>().unwrap_err();
    assert!(e.contains("posix, ext4, xfs or btrfs"), "{e}");
    // Traces written before the profiles name the model `journal`.
    let p: Persistence = serde_json::from_str("\"journal\"").unwrap();
    assert_eq!(p, Persistence::Ext4);
    assert_eq!(serde_json::to_string(&Persistence::Xfs).unwrap(), "\"xfs\"");
}

/// ext4 (`dioread_nolock`): a new block is an unwritten extent until its
/// page's I/O completed, so data past the old last page shows in whole
/// pages also when its own size is not kept and a later size (a rename
/// over another file, `auto_da_alloc`) covers it.
#[test]
fn ext4_keeps_new_pages_whole_also_without_their_size() {
    let past = [write_after(2, 4096, 6000, b'a', 4096)];
    let data_only = |persisted: Vec<(u64, u64)>| Survival::DataOnly { persisted };
    let rules = Persistence::Ext4.rules();
    let kept = keeps(&[(0, data_only(vec![(4096, 8192), (8192, 8704)]))]);
    let (out, cuts) = apply(&past, kept, rules, 512);
    assert_eq!(
        (out, cuts.sizes),
        (keeps(&[(0, data_only(vec![(4096, 8192)]))]), 1)
    );
    let kept = keeps(&[(0, data_only(vec![(4608, 5120)]))]);
    let (out, _) = apply(&past, kept, rules, 512);
    assert_eq!(out, vec![]);
    let kept = keeps(&[(0, data_only(vec![(4608, 5120)]))]);
    let (out, _) = apply(&past, kept.clone(), Persistence::Posix.rules(), 512);
    assert_eq!(out, kept);
}

/// Regression (calibrate, ext4, seed-1-300 and seed-1-461: `pw A 3796
/// 4682 0` onto 8192 bytes, then `sync A`): the part of an extending write
/// inside the old size overwrites mapped blocks in place, so it survives
/// at any sector, with or without the write's size; only its pages past
/// the old last page are whole.
#[test]
fn ext4_tears_the_in_place_part_of_an_extending_write_at_any_sector() {
    let rules = Persistence::Ext4.rules();
    let w = [write_after(2, 3796, 4682, b'0', 8192)];
    for how in [
        Survival::DataOnly {
            persisted: vec![(4608, 8192)],
        },
        Survival::Torn {
            persisted: vec![(4608, 8192)],
            garbage: None,
        },
    ] {
        let kept = keeps(&[(0, how)]);
        let (out, _) = apply(&w, kept.clone(), rules, 512);
        assert_eq!(out, kept);
    }
    // Past the old end, the new page is whole or absent.
    let kept = keeps(&[(
        0,
        Survival::DataOnly {
            persisted: vec![(4608, 8192), (8192, 8300)],
        },
    )]);
    let (out, _) = apply(&w, kept, rules, 512);
    assert_eq!(
        out,
        keeps(&[(
            0,
            Survival::DataOnly {
                persisted: vec![(4608, 8192)]
            }
        )])
    );
}
