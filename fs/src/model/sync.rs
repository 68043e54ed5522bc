//! The model's locks and atomics, in one place.
//!
//! The daemon uses `parking_lot::Mutex`, `dashmap::DashMap` and std atomics.
//! Under the `shuttle` feature (durafs's own unit tests only) the same names
//! are thin wrappers over [shuttle]'s primitives, so its randomized
//! scheduler can interleave the model's threads at every lock and atomic
//! and report a deadlock when all of them wait (`shuttle_tests.rs`).
//!
//! The wrapper of `DashMap` is one `RwLock` around an ordered map: a shard
//! guard of the real map becomes a guard of the whole map, held as long as
//! the real one would be (a `get` result, an iterator, `remove_if`'s
//! predicate). Real keys may share a shard, so a wait the wrapper finds is
//! one the daemon can hit.
//!
//! [shuttle]: https://docs.rs/shuttle

#[cfg(not(feature = "shuttle"))]
pub(crate) use dashmap::DashMap;
#[cfg(not(feature = "shuttle"))]
pub(crate) use parking_lot::{Mutex, MutexGuard};
#[cfg(not(feature = "shuttle"))]
pub(crate) use std::sync::atomic::{AtomicBool, AtomicU64};

#[cfg(feature = "shuttle")]
pub(crate) use shim::{AtomicBool, AtomicU64, DashMap, Mutex, MutexGuard};

#[cfg(feature = "shuttle")]
mod shim {
    use shuttle::sync::{RwLock, RwLockReadGuard};
    use std::collections::BTreeMap;
    use std::fmt;

    pub(crate) use shuttle::sync::MutexGuard;
    pub(crate) use shuttle::sync::atomic::{AtomicBool, AtomicU64};

    /// `parking_lot::Mutex`'s API over shuttle's: no poisoning.
    pub(crate) struct Mutex<T>(shuttle::sync::Mutex<T>);

    impl<T> Mutex<T> {
        pub(crate) fn new(t: T) -> Mutex<T> {
            Mutex(shuttle::sync::Mutex::new(t))
        }

        pub(crate) fn lock(&self) -> MutexGuard<'_, T> {
            self.0.lock().unwrap_or_else(|p| p.into_inner())
        }
    }

    impl<T> fmt::Debug for Mutex<T> {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("Mutex")
        }
    }

    /// The part of `DashMap`'s API the model uses.
    pub(crate) struct DashMap<K, V>(RwLock<BTreeMap<K, V>>);

    /// An entry, read while the map's guard is held.
    pub(crate) struct Ref<'a, K, V> {
        _guard: Option<RwLockReadGuard<'a, BTreeMap<K, V>>>,
        key: K,
        value: V,
    }

    impl<K, V> Ref<'_, K, V> {
        pub(crate) fn key(&self) -> &K {
            &self.key
        }

        pub(crate) fn value(&self) -> &V {
            &self.value
        }
    }

    /// Entries, yielded while the map's guard is held.
    pub(crate) struct Iter<'a, K, V> {
        _guard: RwLockReadGuard<'a, BTreeMap<K, V>>,
        entries: std::vec::IntoIter<(K, V)>,
    }

    impl<'a, K, V> Iterator for Iter<'a, K, V> {
        type Item = Ref<'a, K, V>;

        fn next(&mut self) -> Option<Self::Item> {
            self.entries.next().map(|(key, value)| Ref {
                _guard: None,
                key,
                value,
            })
        }
    }

    impl<K: Ord + Clone, V: Clone> DashMap<K, V> {
        pub(crate) fn new() -> DashMap<K, V> {
            DashMap(RwLock::new(BTreeMap::new()))
        }

        fn read(&self) -> RwLockReadGuard<'_, BTreeMap<K, V>> {
            self.0.read().unwrap_or_else(|p| p.into_inner())
        }

        fn write(&self) -> shuttle::sync::RwLockWriteGuard<'_, BTreeMap<K, V>> {
            self.0.write().unwrap_or_else(|p| p.into_inner())
        }

        pub(crate) fn insert(&self, k: K, v: V) -> Option<V> {
            self.write().insert(k, v)
        }

        pub(crate) fn get(&self, k: &K) -> Option<Ref<'_, K, V>> {
            let guard = self.read();
            let value = guard.get(k)?.clone();
            Some(Ref {
                _guard: Some(guard),
                key: k.clone(),
                value,
            })
        }

        pub(crate) fn contains_key(&self, k: &K) -> bool {
            self.read().contains_key(k)
        }

        pub(crate) fn remove_if(&self, k: &K, f: impl FnOnce(&K, &V) -> bool) -> Option<(K, V)> {
            let mut guard = self.write();
            let keep = match guard.get(k) {
                Some(v) => !f(k, v),
                None => true,
            };
            if keep {
                return None;
            }
            guard.remove_entry(k)
        }

        pub(crate) fn iter(&self) -> Iter<'_, K, V> {
            let guard = self.read();
            let entries: Vec<(K, V)> = guard.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
            Iter {
                _guard: guard,
                entries: entries.into_iter(),
            }
        }
    }

    impl<K, V> fmt::Debug for DashMap<K, V> {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("DashMap")
        }
    }
}
