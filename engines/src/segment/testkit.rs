//! Helpers shared by the engines' tests: a model test against a `BTreeMap`.

use std::collections::BTreeMap;

use proptest::prelude::*;

use crate::KvStore;

/// One step of a model test.
#[derive(Clone, Debug)]
pub(crate) enum Op {
    Put(u16, Vec<u8>),
    Delete(u16),
    Maintain,
    /// Reopen the store: `clean` closes it first, otherwise it is dropped.
    Reopen {
        clean: bool,
    },
}

/// The key numbered `n`.
pub(crate) fn key(n: u16) -> Vec<u8> {
    format!("key-{n:05}").into_bytes()
}

/// Sequences of up to `max_ops` operations over `keys` keys with values up
/// to `max_value` bytes.
pub(crate) fn ops(keys: u16, max_value: usize, max_ops: usize) -> impl Strategy<Value = Vec<Op>> {
    let op = prop_oneof![
        10 => (0..keys, proptest::collection::vec(any::<u8>(), 0..=max_value))
            .prop_map(|(k, v)| Op::Put(k, v)),
        4 => (0..keys).prop_map(Op::Delete),
        1 => Just(Op::Maintain),
        1 => any::<bool>().prop_map(|clean| Op::Reopen { clean }),
    ];
    proptest::collection::vec(op, 1..=max_ops)
}

/// Runs `ops` against the store `open` returns and against a `BTreeMap`,
/// checking every read and a full scan after each maintain and reopen.
pub(crate) fn run_model<S, F>(open: F, ops: &[Op])
where
    S: KvStore + 'static,
    F: Fn() -> S,
{
    let mut model: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
    let mut store = Some(open());
    for op in ops {
        let s = store.as_mut().unwrap();
        match op {
            Op::Put(k, v) => {
                s.put(&key(*k), v).unwrap();
                model.insert(key(*k), v.clone());
                assert_eq!(s.get(&key(*k)).unwrap().as_ref(), Some(v));
            }
            Op::Delete(k) => {
                s.delete(&key(*k)).unwrap();
                model.remove(&key(*k));
                assert_eq!(s.get(&key(*k)).unwrap(), None);
            }
            Op::Maintain => {
                s.maintain().unwrap();
                check_all(s, &model);
            }
            Op::Reopen { clean } => {
                if let Some(old) = store.take() {
                    if *clean {
                        Box::new(old).close().unwrap();
                    } else {
                        drop(old);
                    }
                }
                let mut s = open();
                check_all(&mut s, &model);
                store = Some(s);
            }
        }
    }
    if let Some(mut s) = store.take() {
        check_all(&mut s, &model);
        Box::new(s).close().unwrap();
    }
    let mut s = open();
    check_all(&mut s, &model);
}

/// Asserts the store holds exactly `model`.
pub(crate) fn check_all<S: KvStore>(s: &mut S, model: &BTreeMap<Vec<u8>, Vec<u8>>) {
    let want: Vec<(Vec<u8>, Vec<u8>)> = model.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    assert_eq!(s.scan().unwrap(), want);
    for (k, v) in model {
        assert_eq!(s.get(k).unwrap().as_ref(), Some(v));
    }
}
