use super::*;
use crate::model::op::{EntryChange, NewInode, NsKind};
use crate::model::types::{Attrs, Kind};
use bytes::Bytes;
use proptest::prelude::*;

fn create(seq: u64, name: &'static [u8]) -> PendingOp {
    PendingOp {
        seq,
        op: Op::Names {
            dir: 1,
            what: NsKind::Create,
            changes: vec![EntryChange {
                name: name.to_vec(),
                target: Some((
                    seq + 10,
                    NewInode {
                        kind: Kind::File,
                        attrs: Attrs::default(),
                        target: None,
                    },
                )),
            }],
            peer: None,
            over: false,
        },
    }
}

fn write(seq: u64) -> PendingOp {
    PendingOp {
        seq,
        op: Op::Write {
            ino: 5,
            offset: 0,
            data: Bytes::from_static(b"x"),
            size_before: 0,
        },
    }
}

fn full(v: &[usize]) -> Vec<(usize, Survival)> {
    v.iter().map(|i| (*i, Survival::Full)).collect()
}

#[test]
fn a_later_name_is_not_kept_without_an_earlier_one() {
    let pending = [create(1, b"a"), create(2, b"b"), create(3, b"c")];
    let (kept, changed) = journal_order(&pending, full(&[0, 2]));
    assert_eq!((kept, changed), (full(&[0]), 1));
    let (kept, changed) = journal_order(&pending, full(&[0, 1]));
    assert_eq!((kept, changed), (full(&[0, 1]), 0));
}

#[test]
fn writes_are_not_journal_ordered() {
    // A lost write (its data never written back) does not stop a later
    // name; a kept write after a lost name stays.
    let pending = [write(1), create(2, b"a"), write(3)];
    let (kept, changed) = journal_order(&pending, full(&[1]));
    assert_eq!((kept, changed), (full(&[1]), 0));
    let (kept, changed) = journal_order(&pending, full(&[0, 2]));
    assert_eq!((kept, changed), (full(&[0, 2]), 0));
}

#[test]
fn a_truncate_past_the_break_keeps_only_its_written_back_tail() {
    let trunc = PendingOp {
        seq: 2,
        op: Op::Truncate { ino: 5, size: 100 },
    };
    let pending = [create(1, b"a"), trunc];
    let (kept, changed) = journal_order(&pending, full(&[1]));
    assert_eq!(changed, 1);
    assert_eq!(
        kept,
        vec![(
            1,
            Survival::DataOnly {
                persisted: vec![(100, 4096)]
            }
        )]
    );
}

fn arb_pending() -> impl Strategy<Value = Vec<PendingOp>> {
    proptest::collection::vec(0u8..3, 1..8).prop_map(|kinds| {
        kinds
            .into_iter()
            .enumerate()
            .map(|(i, k)| {
                let seq = i as u64 + 1;
                match k {
                    0 => create(seq, b"n"),
                    1 => write(seq),
                    _ => PendingOp {
                        seq,
                        op: Op::Truncate { ino: 5, size: 10 },
                    },
                }
            })
            .collect()
    })
}

proptest! {
    #[test]
    fn journaled_changes_survive_as_a_prefix_and_the_rule_is_a_fixed_point(
        pending in arb_pending(),
        keep in proptest::collection::vec(any::<bool>(), 8),
    ) {
        let kept: Vec<(usize, Survival)> = (0..pending.len())
            .filter(|i| keep[*i])
            .map(|i| (i, Survival::Full))
            .collect();
        let (out, _) = journal_order(&pending, kept);
        let journaled: Vec<bool> = pending
            .iter()
            .enumerate()
            .filter(|(_, p)| is_journaled(&p.op))
            .map(|(i, p)| {
                let how = out.iter().find(|(j, _)| *j == i).map(|(_, h)| h);
                keeps_journaled(&p.op, how)
            })
            .collect();
        prop_assert!(journaled.iter().skip_while(|k| **k).all(|k| !*k), "{out:?}");
        let (again, changed) = journal_order(&pending, out.clone());
        prop_assert_eq!(again, out);
        prop_assert_eq!(changed, 0);
    }
}
