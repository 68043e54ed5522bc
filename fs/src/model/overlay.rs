//! The merged overlay of a file's unsynced bytes.
//!
//! Invariant: extents never overlap, and each maps `[start, start + len)` to
//! the live bytes there: a slice of a write's buffer, or zeros (a punched
//! hole, or a shrink that was extended again). Lookups and inserts are
//! `O(log n + k)` for `k` extents touched. A slice shares the buffer of the
//! write it came from, so the overlay and the pending-operation list together
//! hold each written byte once.

use super::extent_map::ExtentMap;
use super::op::PAGE;
use bytes::Bytes;
use std::collections::BTreeSet;
use std::ops::Bound::{Excluded, Included, Unbounded};

/// What an extent reads as.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fill {
    /// These bytes (length = extent length).
    Data(Bytes),
    /// Zeros.
    Zero,
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Extent {
    len: u64,
    fill: Fill,
}

impl Extent {
    fn slice(&self, from: u64, to: u64) -> Extent {
        let fill = match &self.fill {
            Fill::Data(b) => Fill::Data(b.slice(from as usize..to as usize)),
            Fill::Zero => Fill::Zero,
        };
        Extent {
            len: to - from,
            fill,
        }
    }
}

/// One piece of a read: where the bytes of `[offset, offset + len)` come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Segment {
    /// Bytes held in memory.
    Data(Bytes),
    /// `len` zero bytes.
    Zero(u64),
    /// `len` bytes of the durable content starting at `offset`.
    Base { offset: u64, len: u64 },
}

impl Segment {
    /// Number of bytes this segment covers.
    pub fn len(&self) -> u64 {
        match self {
            Segment::Data(b) => b.len() as u64,
            Segment::Zero(n) => *n,
            Segment::Base { len, .. } => *len,
        }
    }

    /// True when the segment covers no bytes.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A file's unsynced extents.
#[derive(Clone, Debug, Default)]
pub struct Overlay {
    map: ExtentMap<Extent>,
    bytes: u64,
    /// What a failed fsync left ([`super::fsync_fail`]); `None` (one word
    /// per file) until an fsync of this file fails, which few ever do.
    fail: Option<Box<FailMarks>>,
}

/// The marks a failed fsync leaves on a file's overlay.
#[derive(Clone, Debug, Default)]
struct FailMarks {
    /// Pages (indices of [`PAGE`]-byte pages) a failed fsync marked clean
    /// without making them durable: their bytes in the overlay are live but
    /// not pending, and no durability point writes them until a write
    /// dirties the page again.
    clean: BTreeSet<u64>,
    /// How a later flush moves the durable size while a failed append's
    /// pages are clean past it (`FailRules::later_size`).
    cap: Option<super::fsync_fail::LaterSize>,
    /// Pages of a failed append whose extent stays unwritten (ext4): a
    /// later write to them reaches the disk but never reads back, so every
    /// flush marks them clean again (`FailRules::appended_unwritten`).
    unwritten: BTreeSet<u64>,
}

/// The clean pages of an overlay without [`FailMarks`].
static NO_PAGES: BTreeSet<u64> = BTreeSet::new();

impl Overlay {
    /// Bytes of written data held (zero extents count nothing).
    pub fn data_bytes(&self) -> u64 {
        self.bytes
    }

    /// True when no extent is held.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Removes every extent and clean mark.
    pub fn clear(&mut self) {
        self.map.clear();
        self.bytes = 0;
        self.fail = None;
    }

    /// Sets how later flushes move the durable size (a failed append).
    pub fn set_cap(&mut self, cap: super::fsync_fail::LaterSize) {
        self.marks().cap = Some(cap);
    }

    /// How later flushes move the durable size, if a failed append set it.
    pub fn cap(&self) -> Option<super::fsync_fail::LaterSize> {
        self.fail.as_ref().and_then(|f| f.cap)
    }

    /// The failure marks, made on first use.
    fn marks(&mut self) -> &mut FailMarks {
        self.fail.get_or_insert_with(Box::default)
    }

    /// The pages marked clean, ascending.
    fn clean(&self) -> &BTreeSet<u64> {
        self.fail.as_ref().map_or(&NO_PAGES, |f| &f.clean)
    }

    /// Marks `pages` as never to be written back (ext4's unwritten extent
    /// of a failed append).
    pub fn stick(&mut self, pages: &[u64]) {
        self.marks().unwritten.extend(pages.iter().copied());
    }

    /// Marks clean again the unwritten pages a write dirtied since: what a
    /// flush must not make durable.
    pub fn restick(&mut self) {
        let Some(f) = self.fail.as_ref() else {
            return;
        };
        let again: Vec<u64> = f
            .unwritten
            .iter()
            .copied()
            .filter(|p| {
                !f.clean.contains(p) && !self.extents_in(p * PAGE, (p + 1) * PAGE).is_empty()
            })
            .collect();
        if !again.is_empty() {
            self.marks().clean.extend(again);
        }
    }

    /// Records `data` at `offset`, replacing what overlapped.
    pub fn write(&mut self, offset: u64, data: Bytes) {
        let len = data.len() as u64;
        if len == 0 {
            return;
        }
        self.insert(
            offset,
            Extent {
                len,
                fill: Fill::Data(data),
            },
        );
    }

    /// Records `[offset, offset + len)` as zeros.
    pub fn zero(&mut self, offset: u64, len: u64) {
        if len == 0 {
            return;
        }
        self.insert(
            offset,
            Extent {
                len,
                fill: Fill::Zero,
            },
        );
    }

    /// Drops everything at or past `size`, and the clean marks of the pages
    /// wholly past it.
    pub fn truncate(&mut self, size: u64) {
        self.remove_range(size, u64::MAX);
        if let Some(f) = self.fail.as_mut() {
            f.clean.retain(|p| p * PAGE < size);
            f.unwritten.retain(|p| p * PAGE < size);
        }
    }

    /// The pages marked clean, ascending.
    pub fn clean_pages(&self) -> &BTreeSet<u64> {
        self.clean()
    }

    /// Marks `pages` clean: their bytes stay live, no durability point
    /// writes them.
    pub fn mark_clean(&mut self, pages: &[u64]) {
        self.marks().clean.extend(pages.iter().copied());
    }

    /// Unmarks and returns the clean pages that `[from, to)` touches.
    pub fn take_clean(&mut self, from: u64, to: u64) -> Vec<u64> {
        let Some(f) = self.fail.as_mut() else {
            return Vec::new();
        };
        if f.clean.is_empty() || from >= to {
            return Vec::new();
        }
        let pages: Vec<u64> = f
            .clean
            .range(from / PAGE..to.div_ceil(PAGE))
            .copied()
            .collect();
        for p in &pages {
            f.clean.remove(p);
        }
        pages
    }

    /// The extents not on a clean page, clipped at the clean pages, as
    /// `(offset, len, fill)`: the bytes a durability point writes.
    pub fn dirty_extents(&self) -> Vec<(u64, u64, Fill)> {
        if self.clean().is_empty() {
            return self
                .map
                .iter()
                .map(|(s, e)| (*s, e.len, e.fill.clone()))
                .collect();
        }
        let mut out = Vec::new();
        let mut from = 0;
        for p in self
            .clean()
            .iter()
            .copied()
            .chain(std::iter::once(u64::MAX / PAGE))
        {
            out.extend(self.extents_in(from, p * PAGE));
            from = (p + 1).saturating_mul(PAGE);
        }
        out
    }

    /// Drops every byte not on a clean page (a durability point made them
    /// durable); the clean pages' bytes stay.
    pub fn clear_dirty(&mut self) {
        if self.clean().is_empty() {
            self.clear();
            return;
        }
        let mut from = 0;
        let clean: Vec<u64> = self.clean().iter().copied().collect();
        for p in clean {
            self.remove_range(from, p * PAGE);
            from = (p + 1) * PAGE;
        }
        self.remove_range(from, u64::MAX);
    }

    /// Drops everything in `[from, to)`: those bytes read from the base
    /// (or as zeros above it) again.
    pub fn remove(&mut self, from: u64, to: u64) {
        self.remove_range(from, to);
    }

    /// The extents inside `[from, to)`, clipped to it, as `(offset, len,
    /// fill)` in offset order (owned: slices share the writes' buffers).
    pub fn extents_in(&self, from: u64, to: u64) -> Vec<(u64, u64, Fill)> {
        if from >= to {
            return Vec::new();
        }
        let first = self
            .map
            .range((Unbounded, Excluded(from)))
            .next_back()
            .filter(|(s, e)| **s + e.len > from)
            .map(|(s, _)| *s)
            .unwrap_or(from);
        self.map
            .range((Included(first), Excluded(to)))
            .map(|(s, e)| {
                let (a, b) = ((*s).max(from), (*s + e.len).min(to));
                (a, b - a, e.slice(a - s, b - s).fill)
            })
            .collect()
    }

    /// Puts back an extent [`Overlay::extents_in`] gave, replacing what
    /// overlaps it.
    pub fn put(&mut self, offset: u64, len: u64, fill: Fill) {
        if len > 0 {
            self.insert(offset, Extent { len, fill });
        }
    }

    /// The extents as `(offset, len, fill)`, in offset order.
    pub fn extents(&self) -> impl Iterator<Item = (u64, u64, &Fill)> + '_ {
        self.map.iter().map(|(s, e)| (*s, e.len, &e.fill))
    }

    /// The merged ranges covered by extents.
    pub fn ranges(&self) -> Vec<(u64, u64)> {
        let mut out: Vec<(u64, u64)> = Vec::new();
        for (s, e) in self.map.iter() {
            let end = s + e.len;
            match out.last_mut() {
                Some(last) if last.1 == *s => last.1 = end,
                _ => out.push((*s, end)),
            }
        }
        out
    }

    /// Plans a read of `[offset, end)`. Gaps read from the base below
    /// `base_end` and as zeros above it.
    pub fn plan(&self, offset: u64, end: u64, base_end: u64) -> Vec<Segment> {
        let mut out = Vec::new();
        let mut pos = offset;
        let first = self
            .map
            .range((Unbounded, Included(offset)))
            .next_back()
            .filter(|(s, e)| **s + e.len > offset)
            .map(|(s, _)| *s)
            .unwrap_or(offset);
        for (s, e) in self.map.range((Included(first), Excluded(end))) {
            let (s, e_end) = (*s, *s + e.len);
            if s > pos {
                gap(&mut out, pos, s, base_end);
                pos = s;
            }
            let to = e_end.min(end);
            match &e.fill {
                Fill::Data(b) => {
                    let from = (pos - s) as usize;
                    push(&mut out, Segment::Data(b.slice(from..(to - s) as usize)));
                }
                Fill::Zero => push(&mut out, Segment::Zero(to - pos)),
            }
            pos = to;
        }
        if pos < end {
            gap(&mut out, pos, end, base_end);
        }
        out
    }

    fn insert(&mut self, offset: u64, ext: Extent) {
        let end = offset.saturating_add(ext.len);
        self.remove_range(offset, end);
        if let Fill::Data(_) = ext.fill {
            self.bytes += ext.len;
        }
        self.map.insert(offset, ext);
    }

    /// Removes `[from, to)` from every extent, splitting those that straddle.
    fn remove_range(&mut self, from: u64, to: u64) {
        if from >= to {
            return;
        }
        let start_key = self
            .map
            .range((Unbounded, Excluded(from)))
            .next_back()
            .filter(|(s, e)| **s + e.len > from)
            .map(|(s, _)| *s)
            .unwrap_or(from);
        let keys: Vec<u64> = self
            .map
            .range((Included(start_key), Excluded(to)))
            .map(|(s, _)| *s)
            .collect();
        for s in keys {
            let Some(e) = self.map.remove(s) else {
                continue;
            };
            if let Fill::Data(_) = e.fill {
                self.bytes -= e.len;
            }
            let e_end = s + e.len;
            if s < from {
                let head = e.slice(0, from - s);
                if let Fill::Data(_) = head.fill {
                    self.bytes += head.len;
                }
                self.map.insert(s, head);
            }
            if e_end > to {
                let tail = e.slice(to - s, e.len);
                if let Fill::Data(_) = tail.fill {
                    self.bytes += tail.len;
                }
                self.map.insert(to, tail);
            }
        }
    }
}

fn push(out: &mut Vec<Segment>, seg: Segment) {
    if seg.is_empty() {
        return;
    }
    match (out.last_mut(), &seg) {
        (Some(Segment::Zero(n)), Segment::Zero(m)) => *n += m,
        _ => out.push(seg),
    }
}

fn gap(out: &mut Vec<Segment>, from: u64, to: u64, base_end: u64) {
    if from < base_end {
        let b_to = to.min(base_end);
        push(
            out,
            Segment::Base {
                offset: from,
                len: b_to - from,
            },
        );
        if b_to < to {
            push(out, Segment::Zero(to - b_to));
        }
    } else {
        push(out, Segment::Zero(to - from));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn render(o: &Overlay, end: u64, base: &[u8], base_end: u64) -> Vec<u8> {
        let mut v = Vec::new();
        for seg in o.plan(0, end, base_end) {
            match seg {
                Segment::Data(b) => v.extend_from_slice(&b),
                Segment::Zero(n) => v.extend(std::iter::repeat_n(0u8, n as usize)),
                Segment::Base { offset, len } => {
                    v.extend_from_slice(&base[offset as usize..(offset + len) as usize])
                }
            }
        }
        v
    }

    #[test]
    fn overwrite_splits_extents() {
        let mut o = Overlay::default();
        o.write(0, Bytes::from_static(b"aaaaaaaa"));
        o.write(2, Bytes::from_static(b"bb"));
        o.zero(6, 1);
        assert_eq!(render(&o, 8, &[], 0), b"aabbaa\0a");
        assert_eq!(o.ranges(), vec![(0, 8)]);
        assert_eq!(o.data_bytes(), 7);
    }

    #[test]
    fn extents_in_clips_and_put_restores() {
        let mut o = Overlay::default();
        o.write(0, Bytes::from_static(b"aaaaaaaa"));
        o.zero(8, 4);
        let mid = o.extents_in(6, 10);
        assert_eq!(
            mid,
            vec![
                (6, 2, Fill::Data(Bytes::from_static(b"aa"))),
                (8, 2, Fill::Zero)
            ]
        );
        o.remove(6, 10);
        assert_eq!(o.ranges(), vec![(0, 6), (10, 12)]);
        assert_eq!(o.data_bytes(), 6);
        for (off, len, fill) in mid {
            o.put(off, len, fill);
        }
        assert_eq!(render(&o, 12, &[9; 12], 0), b"aaaaaaaa\0\0\0\0");
        assert_eq!(o.data_bytes(), 8);
    }

    #[test]
    fn gaps_read_base_then_zeros() {
        let mut o = Overlay::default();
        o.write(4, Bytes::from_static(b"XY"));
        assert_eq!(render(&o, 10, b"0123456789", 8), b"0123XY67\0\0");
    }

    proptest! {
        #[test]
        fn matches_a_flat_buffer(ops in proptest::collection::vec(
            (0u64..64, 1usize..24, any::<u8>(), 0u8..4), 1..40)) {
            let mut o = Overlay::default();
            let mut flat: Vec<Option<u8>> = vec![None; 96];
            for (off, len, byte, kind) in ops {
                match kind {
                    0 => {
                        o.zero(off, len as u64);
                        flat[off as usize..off as usize + len].fill(Some(0));
                    }
                    1 => {
                        o.truncate(off);
                        for x in flat.iter_mut().skip(off as usize) { *x = None; }
                    }
                    _ => {
                        o.write(off, Bytes::from(vec![byte; len]));
                        flat[off as usize..off as usize + len].fill(Some(byte));
                    }
                }
            }
            let base: Vec<u8> = (0..96).map(|i| 100 + i as u8).collect();
            let got = render(&o, 96, &base, 96);
            let want: Vec<u8> = flat.iter().enumerate().map(|(i, x)| x.unwrap_or(base[i])).collect();
            prop_assert_eq!(got, want);
            let held: u64 = o.extents().map(|(_, l, f)| if matches!(f, Fill::Data(_)) { l } else { 0 }).sum();
            prop_assert_eq!(held, o.data_bytes());
        }
    }
}
