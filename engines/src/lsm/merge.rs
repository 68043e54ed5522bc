//! Merging sorted sources (SSTables, the memtable) into one sorted stream.

use std::iter::Peekable;

use crate::Result;
use crate::sstable::Entry;

/// A sorted source of entries with strictly increasing keys.
pub type EntryIter<'a> = Box<dyn Iterator<Item = Result<(Vec<u8>, Entry)>> + 'a>;

/// Yields each key once, in increasing order, with the entry of the newest
/// source that holds it. Sources are given oldest first, so a higher index
/// wins. Tombstones are passed through; the caller decides whether to drop
/// them. After an error it yields nothing more.
pub struct MergeIter<'a> {
    sources: Vec<Peekable<EntryIter<'a>>>,
    failed: bool,
}

impl<'a> MergeIter<'a> {
    /// Merges `sources`, oldest first.
    pub fn new(sources: Vec<EntryIter<'a>>) -> Self {
        MergeIter {
            sources: sources.into_iter().map(Iterator::peekable).collect(),
            failed: false,
        }
    }
}

impl Iterator for MergeIter<'_> {
    type Item = Result<(Vec<u8>, Entry)>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        let mut min: Option<Vec<u8>> = None;
        for s in &mut self.sources {
            match s.peek() {
                Some(Err(_)) => {
                    self.failed = true;
                    return s.next();
                }
                Some(Ok((k, _))) if min.as_ref().is_none_or(|m| k < m) => {
                    min = Some(k.clone());
                }
                _ => {}
            }
        }
        let min = min?;
        // Advance every source past `min`; the last one visited is the newest.
        let mut winner = None;
        for s in &mut self.sources {
            if matches!(s.peek(), Some(Ok((k, _))) if *k == min) {
                winner = s.next();
            }
        }
        winner
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Error;

    fn src(items: &[(&str, Option<&str>)]) -> EntryIter<'static> {
        let v: Vec<Result<(Vec<u8>, Entry)>> = items
            .iter()
            .map(|(k, v)| Ok((k.as_bytes().to_vec(), v.map(|s| s.as_bytes().to_vec()))))
            .collect();
        Box::new(v.into_iter())
    }

    #[test]
    fn newest_source_wins_and_keys_come_out_sorted_once() {
        let old = src(&[("a", Some("1")), ("c", Some("1")), ("e", Some("1"))]);
        let mid = src(&[("b", Some("2")), ("c", None)]);
        let new = src(&[("a", Some("3")), ("d", Some("3")), ("e", Some("3"))]);
        let got: Vec<(Vec<u8>, Entry)> = MergeIter::new(vec![old, mid, new])
            .map(|r| r.unwrap())
            .collect();
        let want: Vec<(Vec<u8>, Entry)> = [
            ("a", Some("3")),
            ("b", Some("2")),
            ("c", None),
            ("d", Some("3")),
            ("e", Some("3")),
        ]
        .iter()
        .map(|(k, v)| (k.as_bytes().to_vec(), v.map(|s| s.as_bytes().to_vec())))
        .collect();
        assert_eq!(got, want);
    }

    #[test]
    fn an_error_ends_the_stream() {
        let bad: EntryIter<'static> = Box::new(
            vec![
                Ok((b"a".to_vec(), Some(b"1".to_vec()))),
                Err(Error::Corrupt("x".into())),
            ]
            .into_iter(),
        );
        let good = src(&[("b", Some("2")), ("c", Some("2"))]);
        let mut m = MergeIter::new(vec![bad, good]);
        assert!(matches!(m.next(), Some(Ok(_))));
        assert!(matches!(m.next(), Some(Err(Error::Corrupt(_)))));
        assert!(m.next().is_none());
    }
}
