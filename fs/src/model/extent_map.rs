//! The overlay's map from offset to extent: a sorted vector while it holds
//! few extents, a `BTreeMap` beyond.
//!
//! Most pending files have one or two extents; a `BTreeMap` allocates a
//! whole node (eleven slots) for the first. A vector of [`FEW`] or fewer
//! costs at most `FEW` moves per insertion; past that the map keeps the
//! overlay's `O(log n + k)` bound.
//!
//! Invariant: `Few` holds at most [`FEW`] entries, ascending by key, keys
//! unique (a `Many` stays `Many` until cleared).

use std::collections::BTreeMap;
use std::ops::Bound;

/// Entries a vector holds before the map becomes a `BTreeMap`.
pub(crate) const FEW: usize = 8;

#[derive(Clone, Debug)]
pub(crate) enum ExtentMap<V> {
    Few(Vec<(u64, V)>),
    Many(BTreeMap<u64, V>),
}

impl<V> Default for ExtentMap<V> {
    fn default() -> Self {
        ExtentMap::Few(Vec::new())
    }
}

/// Entries of an [`ExtentMap`] in key order.
pub(crate) enum Iter<'a, V> {
    Few(std::slice::Iter<'a, (u64, V)>),
    Many(std::collections::btree_map::Range<'a, u64, V>),
}

impl<'a, V> Iterator for Iter<'a, V> {
    type Item = (&'a u64, &'a V);
    fn next(&mut self) -> Option<Self::Item> {
        match self {
            Iter::Few(i) => i.next().map(|(k, v)| (k, v)),
            Iter::Many(i) => i.next(),
        }
    }
}

impl<V> DoubleEndedIterator for Iter<'_, V> {
    fn next_back(&mut self) -> Option<Self::Item> {
        match self {
            Iter::Few(i) => i.next_back().map(|(k, v)| (k, v)),
            Iter::Many(i) => i.next_back(),
        }
    }
}

impl<V> ExtentMap<V> {
    pub fn is_empty(&self) -> bool {
        match self {
            ExtentMap::Few(v) => v.is_empty(),
            ExtentMap::Many(m) => m.is_empty(),
        }
    }

    pub fn clear(&mut self) {
        *self = ExtentMap::default();
    }

    /// Every entry, ascending.
    pub fn iter(&self) -> Iter<'_, V> {
        self.range((Bound::Unbounded, Bound::Unbounded))
    }

    /// The entries whose keys lie within `bounds`, ascending.
    pub fn range(&self, bounds: (Bound<u64>, Bound<u64>)) -> Iter<'_, V> {
        match self {
            ExtentMap::Few(v) => {
                let lo = match bounds.0 {
                    Bound::Included(a) => v.partition_point(|e| e.0 < a),
                    Bound::Excluded(a) => v.partition_point(|e| e.0 <= a),
                    Bound::Unbounded => 0,
                };
                let hi = match bounds.1 {
                    Bound::Included(b) => v.partition_point(|e| e.0 <= b),
                    Bound::Excluded(b) => v.partition_point(|e| e.0 < b),
                    Bound::Unbounded => v.len(),
                };
                Iter::Few(v[lo..hi.max(lo)].iter())
            }
            ExtentMap::Many(m) => Iter::Many(m.range(bounds)),
        }
    }

    /// Sets `key` to `value`.
    pub fn insert(&mut self, key: u64, value: V) {
        match self {
            ExtentMap::Few(v) => match v.binary_search_by_key(&key, |e| e.0) {
                Ok(i) => v[i].1 = value,
                Err(i) if v.len() < FEW => {
                    if v.capacity() == 0 {
                        v.reserve_exact(1);
                    }
                    v.insert(i, (key, value));
                }
                Err(_) => {
                    let mut m: BTreeMap<u64, V> = std::mem::take(v).into_iter().collect();
                    m.insert(key, value);
                    *self = ExtentMap::Many(m);
                }
            },
            ExtentMap::Many(m) => {
                m.insert(key, value);
            }
        }
    }

    /// Removes `key`; returns its value.
    pub fn remove(&mut self, key: u64) -> Option<V> {
        match self {
            ExtentMap::Few(v) => {
                let i = v.binary_search_by_key(&key, |e| e.0).ok()?;
                Some(v.remove(i).1)
            }
            ExtentMap::Many(m) => m.remove(&key),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The map answers every range as a `BTreeMap` does, across the change
    /// from vector to tree.
    #[test]
    fn it_answers_as_a_btreemap() {
        let mut rng = crate::model::rng::SplitMix64::new(11);
        for _ in 0..40 {
            let (mut ours, mut theirs) = (ExtentMap::default(), BTreeMap::new());
            for _ in 0..60 {
                let k = rng.below(40);
                if rng.chance(0.3) {
                    assert_eq!(ours.remove(k), theirs.remove(&k));
                } else {
                    ours.insert(k, k * 3);
                    theirs.insert(k, k * 3);
                }
                let (a, b) = (rng.below(45), rng.below(45));
                let bounds = [
                    (Bound::Included(a), Bound::Excluded(b.max(a))),
                    (Bound::Unbounded, Bound::Excluded(a)),
                    (Bound::Unbounded, Bound::Included(a)),
                    (Bound::Included(a), Bound::Unbounded),
                ];
                for r in bounds {
                    assert!(ours.range(r).eq(theirs.range(r)), "{r:?}");
                    assert_eq!(ours.range(r).next_back(), theirs.range(r).next_back());
                }
                assert_eq!(ours.is_empty(), theirs.is_empty());
            }
        }
    }

    /// One extent costs one slot, not a tree node.
    #[test]
    fn one_extent_allocates_one_slot() {
        let mut m = ExtentMap::default();
        m.insert(0, [0u8; 40]);
        match &m {
            ExtentMap::Few(v) => assert_eq!(v.capacity(), 1),
            ExtentMap::Many(_) => panic!("a tree for one extent"),
        }
    }
}
