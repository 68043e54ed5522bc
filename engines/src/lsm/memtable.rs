//! The memtable: the newest writes, sorted, in memory. It lives only in RAM;
//! the write-ahead log is its durable copy until a flush moves it into an
//! SSTable.

use std::collections::BTreeMap;

use crate::sstable::Entry;

/// Bytes charged per entry on top of key and value, for map overhead.
const ENTRY_OVERHEAD: usize = 32;

/// Sorted in-memory writes; a `None` entry is a tombstone that shadows the
/// key in every SSTable.
#[derive(Debug, Default)]
pub struct MemTable {
    map: BTreeMap<Vec<u8>, Entry>,
    /// Sum of [`charge`] over the current entries.
    bytes: usize,
}

fn charge(key: &[u8], entry: &Entry) -> usize {
    key.len() + entry.as_ref().map_or(0, Vec::len) + ENTRY_OVERHEAD
}

impl MemTable {
    /// An empty memtable.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records `entry` for `key`, replacing any older entry.
    pub fn insert(&mut self, key: Vec<u8>, entry: Entry) {
        let add = charge(&key, &entry);
        if let Some(old) = self.map.get(&key) {
            self.bytes -= charge(&key, old);
        }
        self.bytes += add;
        self.map.insert(key, entry);
    }

    /// `None` when the memtable does not mention `key`, `Some(None)` for a
    /// tombstone.
    pub fn get(&self, key: &[u8]) -> Option<&Entry> {
        self.map.get(key)
    }

    /// Approximate memory used by the entries.
    pub fn approx_bytes(&self) -> usize {
        self.bytes
    }

    /// Number of entries (values and tombstones).
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// True when there is nothing to flush.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Entries in key order.
    pub fn iter(&self) -> impl Iterator<Item = (&Vec<u8>, &Entry)> {
        self.map.iter()
    }

    /// Drops every entry (after a flush made them durable elsewhere).
    pub fn clear(&mut self) {
        self.map.clear();
        self.bytes = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn size_tracks_replacements_and_tombstones() {
        let mut m = MemTable::new();
        m.insert(b"a".to_vec(), Some(vec![0; 10]));
        assert_eq!(m.approx_bytes(), 11 + ENTRY_OVERHEAD);
        m.insert(b"a".to_vec(), Some(vec![0; 3]));
        assert_eq!(m.approx_bytes(), 4 + ENTRY_OVERHEAD);
        m.insert(b"a".to_vec(), None);
        assert_eq!(m.approx_bytes(), 1 + ENTRY_OVERHEAD);
        assert_eq!(m.get(b"a"), Some(&None));
        assert_eq!(m.get(b"b"), None);
        m.insert(b"b".to_vec(), Some(b"x".to_vec()));
        assert_eq!(m.len(), 2);
        let keys: Vec<&Vec<u8>> = m.iter().map(|(k, _)| k).collect();
        assert_eq!(keys, [b"a", b"b"]);
        m.clear();
        assert!(m.is_empty());
        assert_eq!(m.approx_bytes(), 0);
    }
}
