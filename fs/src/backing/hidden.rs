//! Bytes a crash state put on disk past a file's end (`WriteKeepSize`:
//! a written-back page whose size change was never committed). A backing
//! file cannot hold bytes past its end, so the batch keeps them here and
//! writes them when a later effect of the same batch grows the file over
//! them; a truncate drops them. Nothing survives the batch: what is still
//! hidden at its end is past the final size, invisible.

use bytes::Bytes;
use std::collections::HashMap;

use crate::model::Ino;

/// The hidden bytes of one batch, per inode, in the order written.
#[derive(Debug, Default)]
pub(crate) struct Hidden(HashMap<Ino, Vec<(u64, Bytes)>>);

impl Hidden {
    /// Keeps the part of `data` at `offset` that lies at or past `size`.
    pub fn keep(&mut self, ino: Ino, offset: u64, data: &Bytes, size: u64) {
        let end = offset + data.len() as u64;
        if end > size {
            let s = offset.max(size);
            self.0
                .entry(ino)
                .or_default()
                .push((s, data.slice((s - offset) as usize..)));
        }
    }

    /// The hidden pieces inside `[from, to)`, to write when the size grows
    /// from `from` to `to`, in the order they were written.
    pub fn revealed(&self, ino: Ino, from: u64, to: u64) -> Vec<(u64, Bytes)> {
        let mut out = Vec::new();
        for (off, d) in self.0.get(&ino).into_iter().flatten() {
            let (s, e) = ((*off).max(from), (off + d.len() as u64).min(to));
            if s < e {
                out.push((s, d.slice((s - off) as usize..(e - off) as usize)));
            }
        }
        out
    }

    pub fn drop_inode(&mut self, ino: Ino) {
        self.0.remove(&ino);
    }

    pub fn clear(&mut self) {
        self.0.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_past_the_end_show_only_where_the_size_grows_over_them() {
        let mut h = Hidden::default();
        h.keep(7, 90, &Bytes::from_static(b"0123456789"), 95);
        h.keep(7, 100, &Bytes::from_static(b"ab"), 95);
        assert_eq!(
            h.revealed(7, 95, 101),
            vec![
                (95, Bytes::from_static(b"56789")),
                (100, Bytes::from_static(b"a"))
            ]
        );
        assert!(h.revealed(8, 0, 200).is_empty());
        h.drop_inode(7);
        assert!(h.revealed(7, 0, 200).is_empty());
    }
}
