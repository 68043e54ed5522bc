//! One inode's pending operations, by sequence number: a sorted vector.
//!
//! A `BTreeMap<u64, Op>` allocates a whole node (eleven slots, about 1 KB
//! with [`Op`]) for a file's first operation, and most pending files have
//! one or two. Here the slots hold exactly what is pending, the first one
//! allocated alone.
//!
//! Invariant: sequence numbers strictly increase along the vector. An inode
//! takes its operations' numbers under its lock, so an insertion is nearly
//! always a push at the end (O(1)); one that is not is placed by binary
//! search, as the map placed it.

use super::op::Op;

/// Pending operations of one inode, ascending by sequence number.
#[derive(Clone, Debug, Default)]
pub(crate) struct OpLog(Vec<(u64, Op)>);

impl OpLog {
    /// Adds `op` numbered `seq`, replacing an operation with that number.
    pub fn insert(&mut self, seq: u64, op: Op) {
        if self.0.capacity() == 0 {
            self.0.reserve_exact(1);
        }
        match self.0.last() {
            Some((last, _)) if *last >= seq => match self.0.binary_search_by_key(&seq, |e| e.0) {
                Ok(i) => self.0[i].1 = op,
                Err(i) => self.0.insert(i, (seq, op)),
            },
            _ => self.0.push((seq, op)),
        }
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// `(seq, op)` in ascending order.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = (&u64, &Op)> + '_ {
        self.0.iter().map(|(s, op)| (s, op))
    }

    /// The operations in ascending order.
    pub fn values(&self) -> impl DoubleEndedIterator<Item = &Op> + '_ {
        self.0.iter().map(|(_, op)| op)
    }

    /// `(seq, op)` for every operation numbered below `end`, ascending.
    pub fn below(&self, end: u64) -> impl DoubleEndedIterator<Item = (&u64, &Op)> + '_ {
        let n = self.0.partition_point(|e| e.0 < end);
        self.0[..n].iter().map(|(s, op)| (s, op))
    }

    /// Keeps the operations `keep` accepts, in order; frees the vector
    /// when none stays.
    pub fn retain(&mut self, mut keep: impl FnMut(&u64, &mut Op) -> bool) {
        self.0.retain_mut(|(s, op)| keep(s, op));
        if self.0.is_empty() {
            self.0 = Vec::new();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn op(i: u64) -> Op {
        Op::Truncate { ino: 2, size: i }
    }

    /// The log behaves as the map it replaced, whatever the order of the
    /// insertions, and holds one slot for one operation.
    #[test]
    fn the_log_keeps_the_order_of_a_map() {
        let mut rng = super::super::rng::SplitMix64::new(7);
        for _ in 0..50 {
            let (mut log, mut map) = (OpLog::default(), BTreeMap::new());
            for _ in 0..40 {
                let s = rng.below(30);
                if rng.chance(0.2) {
                    log.retain(|k, _| *k != s);
                    map.retain(|k, _| *k != s);
                } else {
                    log.insert(s, op(s + 100));
                    map.insert(s, op(s + 100));
                }
                let a: Vec<(u64, Op)> = log.iter().map(|(s, o)| (*s, o.clone())).collect();
                let b: Vec<(u64, Op)> = map.iter().map(|(s, o)| (*s, o.clone())).collect();
                assert_eq!(a, b);
                let cut = rng.below(30);
                assert!(
                    log.below(cut)
                        .map(|(s, _)| *s)
                        .eq(map.range(..cut).map(|(s, _)| *s))
                );
            }
        }
        let mut one = OpLog::default();
        one.insert(1, op(1));
        assert_eq!(one.0.capacity(), 1, "a first operation allocates one slot");
    }
}
