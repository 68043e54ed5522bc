use super::*;
use bytes::Bytes;
use proptest::prelude::*;

fn write(seq: u64, ino: Ino, offset: u64, data: &'static [u8]) -> PendingOp {
    PendingOp {
        seq,
        op: Op::Write {
            ino,
            offset,
            data: Bytes::from_static(data),
            size_before: 0,
        },
    }
}

fn full(v: &[usize]) -> Vec<(usize, Survival)> {
    v.iter().map(|i| (*i, Survival::Full)).collect()
}

/// The reproduction: two appends in one sector, the first lost.
#[test]
fn a_later_write_is_not_kept_in_a_sector_whose_earlier_write_was_lost() {
    let pending = [
        write(1, 5, 0, b"AAAAAAAAAA"),
        write(2, 5, 10, b"BBBBBBBBBB"),
    ];
    // The second append's size may survive, its bytes may not: 20 zeros.
    let (kept, changed) = page_rule(&pending, full(&[1]), 512);
    assert_eq!(kept, vec![(1, Survival::MetaOnly)]);
    assert_eq!(changed, 1);
    let (kept, changed) = page_rule(&pending, full(&[0]), 512);
    assert_eq!((kept, changed), (full(&[0]), 0));
}

#[test]
fn writes_to_other_sectors_or_files_are_independent() {
    let pending = [
        write(1, 5, 0, b"A"),
        write(2, 5, 512, b"B"),
        write(3, 6, 0, b"C"),
    ];
    let (kept, changed) = page_rule(&pending, full(&[1, 2]), 512);
    assert_eq!((kept, changed), (full(&[1, 2]), 0));
}

#[test]
fn a_torn_writes_missing_sectors_drop_later_bytes_there_only() {
    static DATA: [u8; 1024] = [b'x'; 1024];
    let pending = [write(1, 5, 0, &DATA), write(2, 5, 0, &DATA)];
    let kept = vec![
        (
            0,
            Survival::Torn {
                persisted: vec![(0, 512)],
                garbage: None,
            },
        ),
        (1, Survival::Full),
    ];
    let (kept, _) = page_rule(&pending, kept, 512);
    assert_eq!(
        kept[1],
        (
            1,
            Survival::Torn {
                persisted: vec![(0, 512)],
                garbage: None
            }
        )
    );
}

#[test]
fn a_truncate_whose_size_survives_closes_nothing_and_one_whose_tail_is_lost_does() {
    let trunc = PendingOp {
        seq: 1,
        op: Op::Truncate { ino: 5, size: 100 },
    };
    let pending = [trunc, write(2, 5, 200, b"B")];
    let (kept, _) = page_rule(
        &pending,
        vec![(0, Survival::MetaOnly), (1, Survival::Full)],
        512,
    );
    assert_eq!(kept, vec![(0, Survival::MetaOnly), (1, Survival::Full)]);
    // The truncate lost (its zeroed tail never written): the write to the
    // same sector cannot be there either, only its size change.
    let (kept, _) = page_rule(&pending, full(&[1]), 512);
    assert_eq!(kept, vec![(1, Survival::MetaOnly)]);
    // A truncate to 0 that survives frees the page: a later write there
    // starts from nothing, whatever came before.
    let pending = [
        write(1, 5, 0, b"A"),
        PendingOp {
            seq: 2,
            op: Op::Truncate { ino: 5, size: 0 },
        },
        write(3, 5, 0, b"B"),
    ];
    let (kept, _) = page_rule(&pending, full(&[1, 2]), 512);
    assert_eq!(kept, full(&[1, 2]));
}

#[test]
fn data_kept_without_its_size_change_stays_data_only() {
    let pending = [write(1, 5, 0, b"AAAA"), write(2, 5, 4, b"BBBB")];
    let kept = vec![
        (
            0,
            Survival::DataOnly {
                persisted: vec![(0, 4)],
            },
        ),
        (1, Survival::Full),
    ];
    let (out, changed) = page_rule(&pending, kept.clone(), 512);
    assert_eq!((out, changed), (kept, 0));
}

/// Reference check: on every sector, the operations whose bytes reached
/// it are a prefix of those covering it since the last truncate whose size
/// survived past that sector.
fn sectors_hold_prefixes(pending: &[PendingOp], kept: &[(usize, Survival)], sector: u64) -> bool {
    let mut covering: std::collections::BTreeMap<(Ino, u64), Vec<bool>> = Default::default();
    let mut ok = true;
    for (i, p) in pending.iter().enumerate() {
        let how = kept.iter().find(|(j, _)| *j == i).map(|(_, h)| h);
        if let (Op::Truncate { size, ino }, Some(h)) = (&p.op, how) {
            if keeps_size(h) {
                for ((n, k), v) in covering.iter_mut() {
                    if n == ino && *k >= size.div_ceil(sector) {
                        ok &= v.iter().skip_while(|h| **h).all(|h| !*h);
                        v.clear();
                    }
                }
                continue;
            }
        }
        let (Some((s, e)), Some(ino)) = (p.op.data_range(), p.op.inode()) else {
            continue;
        };
        let got = persisted_of(how, s, e);
        for k in s / sector..e.div_ceil(sector) {
            let (a, b) = ((k * sector).max(s), ((k + 1) * sector).min(e));
            let has = got.iter().any(|&(x, y)| x <= a && b <= y);
            covering.entry((ino, k)).or_default().push(has);
        }
    }
    ok && covering
        .values()
        .all(|v| v.iter().skip_while(|h| **h).all(|h| !*h))
}

fn arb_pending() -> impl Strategy<Value = Vec<PendingOp>> {
    let op =
        (0u64..2, 0u64..2048, 1u64..1500, 0u8..3).prop_map(|(ino, off, len, kind)| match kind {
            0 | 1 => Op::Write {
                ino: 5 + ino,
                offset: off,
                data: Bytes::from(vec![b'x'; len as usize]),
                size_before: 0,
            },
            _ => Op::Truncate {
                ino: 5 + ino,
                size: off,
            },
        });
    proptest::collection::vec(op, 1..7).prop_map(|ops| {
        ops.into_iter()
            .enumerate()
            .map(|(i, op)| PendingOp {
                seq: i as u64 + 1,
                op,
            })
            .collect()
    })
}

fn arb_how() -> impl Strategy<Value = Option<Survival>> {
    prop_oneof![
        Just(None),
        Just(Some(Survival::Full)),
        Just(Some(Survival::MetaOnly)),
        (0u64..4096, 0u64..4096).prop_map(|(a, b)| Some(Survival::Torn {
            persisted: vec![(a.min(b) / 512 * 512, a.max(b) / 512 * 512 + 512)],
            garbage: None
        })),
        (0u64..4096).prop_map(|a| Some(Survival::DataOnly {
            persisted: vec![(0, a / 512 * 512 + 512)]
        })),
    ]
}

proptest! {
    #[test]
    fn every_state_it_gives_holds_a_version_of_each_sector_and_is_a_fixed_point(
        pending in arb_pending(),
        hows in proptest::collection::vec(arb_how(), 7),
        sector in prop_oneof![Just(512u64), Just(4096u64)],
    ) {
        let kept: Vec<(usize, Survival)> = hows
            .into_iter()
            .take(pending.len())
            .enumerate()
            .filter_map(|(i, h)| h.map(|h| (i, h)))
            .collect();
        let (out, _) = page_rule(&pending, kept, sector);
        prop_assert!(sectors_hold_prefixes(&pending, &out, sector), "{out:?}");
        let (again, changed) = page_rule(&pending, out.clone(), sector);
        prop_assert_eq!(again, out);
        prop_assert_eq!(changed, 0);
    }
}
