//! Bytes a crash state put on disk past a file's end (`Effect::WriteKeepSize`:
//! a written-back page whose size change was never committed). They show
//! when a later effect grows the file over them, and a truncate drops them.
//! Both stores keep them here: `MemStore` per file, BACKING per batch (a
//! backing file cannot hold bytes past its end).

use bytes::Bytes;

/// One file's hidden bytes, in the order written.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Hidden(Vec<(u64, Bytes)>);

impl Hidden {
    /// Keeps the part of `data` at `offset` that lies at or past `size`.
    pub fn keep(&mut self, offset: u64, data: &Bytes, size: u64) {
        let end = offset + data.len() as u64;
        if end > size {
            let s = offset.max(size);
            self.0.push((s, data.slice((s - offset) as usize..)));
        }
    }

    /// The pieces inside `[from, to)`, to write when the size grows from
    /// `from` to `to`, in the order they were written.
    pub fn revealed(&self, from: u64, to: u64) -> Vec<(u64, Bytes)> {
        let mut out = Vec::new();
        for (off, d) in &self.0 {
            let (s, e) = ((*off).max(from), (off + d.len() as u64).min(to));
            if s < e {
                out.push((s, d.slice((s - off) as usize..(e - off) as usize)));
            }
        }
        out
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
        h.keep(90, &Bytes::from_static(b"0123456789"), 95);
        h.keep(100, &Bytes::from_static(b"ab"), 95);
        assert_eq!(
            h.revealed(95, 101),
            vec![
                (95, Bytes::from_static(b"56789")),
                (100, Bytes::from_static(b"a"))
            ]
        );
        h.clear();
        assert!(h.revealed(0, 200).is_empty());
    }
}
