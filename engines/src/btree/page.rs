//! Page codec of the B-tree: header pages and node pages (layouts in the
//! parent module's documentation).

use crate::{Error, Result, frame};

/// Size of every page of `btree.db`.
pub const PAGE_SIZE: usize = 4096;
/// Longest key the B-tree accepts.
pub const MAX_KEY_LEN: usize = 256;
/// Longest value the B-tree accepts.
pub const MAX_VALUE_LEN: usize = 1024;

/// Largest node body: a page minus its frame.
pub(crate) const BODY_CAP: usize = PAGE_SIZE - frame::OVERHEAD;
/// Index of a page in `btree.db`.
pub(crate) type PageId = u32;
/// Pages 0 and 1 are the two header slots; nodes start here.
pub(crate) const FIRST_NODE_PAGE: PageId = 2;

const MAGIC: [u8; 8] = *b"DFBTREE1";
const HEADER_BODY_LEN: usize = 24;
const KIND_LEAF: u8 = 1;
const KIND_INTERNAL: u8 = 2;
const NODE_HEADER: usize = 3;
const LEAF_ENTRY_OVERHEAD: usize = 4;
const INTERNAL_ENTRY_OVERHEAD: usize = 6;
const CHILD_LEN: usize = 4;

// The split argument in `Node::split` needs the largest entry to fit three
// times in a page body.
const _: () =
    assert!(3 * (LEAF_ENTRY_OVERHEAD + MAX_KEY_LEN + MAX_VALUE_LEN) <= BODY_CAP - NODE_HEADER);

/// A committed tree: what a header slot names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Header {
    /// Checkpoint number; the valid slot with the highest one is current.
    pub generation: u64,
    /// Root page, or 0 for an empty tree.
    pub root: PageId,
    /// Pages `[0, page_count)` belong to the file; the rest is garbage.
    pub page_count: PageId,
}

impl Header {
    /// Encodes the header into a whole page.
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut body = Vec::with_capacity(HEADER_BODY_LEN);
        body.extend_from_slice(&MAGIC);
        body.extend_from_slice(&self.generation.to_le_bytes());
        body.extend_from_slice(&self.root.to_le_bytes());
        body.extend_from_slice(&self.page_count.to_le_bytes());
        let mut page = frame::encode_one(&body);
        page.resize(PAGE_SIZE, 0);
        page
    }

    /// Decodes a header page; `None` when it is torn, damaged or not a header.
    pub(crate) fn decode(page: &[u8]) -> Option<Header> {
        let (body, _) = frame::decode_at(page)?;
        let (magic, rest) = body.split_first_chunk::<8>()?;
        let (generation, rest) = rest.split_first_chunk::<8>()?;
        let (root, rest) = rest.split_first_chunk::<4>()?;
        let (page_count, rest) = rest.split_first_chunk::<4>()?;
        if *magic != MAGIC || !rest.is_empty() {
            return None;
        }
        Some(Header {
            generation: u64::from_le_bytes(*generation),
            root: PageId::from_le_bytes(*root),
            page_count: PageId::from_le_bytes(*page_count),
        })
    }
}

/// A decoded node page.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Node {
    /// Keys in strictly increasing order, each with its value.
    Leaf(Vec<(Vec<u8>, Vec<u8>)>),
    /// `children.len() == keys.len() + 1`; every key in `children[i]` is
    /// `< keys[i]`, every key in `children[i + 1]` is `>= keys[i]`.
    Internal {
        keys: Vec<Vec<u8>>,
        children: Vec<PageId>,
    },
}

impl Node {
    /// Length of the encoded body.
    pub(crate) fn encoded_len(&self) -> usize {
        match self {
            Node::Leaf(entries) => {
                NODE_HEADER
                    + entries
                        .iter()
                        .map(|(k, v)| LEAF_ENTRY_OVERHEAD + k.len() + v.len())
                        .sum::<usize>()
            }
            Node::Internal { keys, .. } => {
                NODE_HEADER
                    + CHILD_LEN
                    + keys
                        .iter()
                        .map(|k| INTERNAL_ENTRY_OVERHEAD + k.len())
                        .sum::<usize>()
            }
        }
    }

    /// Encodes the node into a whole page. A node that does not fit is a bug
    /// in the tree code, reported rather than written.
    pub(crate) fn encode_page(&self, id: PageId) -> Result<Vec<u8>> {
        let len = self.encoded_len();
        if len > BODY_CAP {
            return Err(Error::Corrupt(format!(
                "node for page {id} overflows: {len} bytes"
            )));
        }
        let mut body = Vec::with_capacity(len);
        match self {
            Node::Leaf(entries) => {
                body.push(KIND_LEAF);
                body.extend_from_slice(&u16_len(entries.len()).to_le_bytes());
                for (k, v) in entries {
                    body.extend_from_slice(&u16_len(k.len()).to_le_bytes());
                    body.extend_from_slice(k);
                    body.extend_from_slice(&u16_len(v.len()).to_le_bytes());
                    body.extend_from_slice(v);
                }
            }
            Node::Internal { keys, children } => {
                body.push(KIND_INTERNAL);
                body.extend_from_slice(&u16_len(keys.len()).to_le_bytes());
                let (first, rest) = children.split_first().ok_or_else(|| {
                    Error::Corrupt(format!("internal node for page {id} has no child"))
                })?;
                body.extend_from_slice(&first.to_le_bytes());
                for (k, c) in keys.iter().zip(rest) {
                    body.extend_from_slice(&u16_len(k.len()).to_le_bytes());
                    body.extend_from_slice(k);
                    body.extend_from_slice(&c.to_le_bytes());
                }
            }
        }
        let mut page = frame::encode_one(&body);
        page.resize(PAGE_SIZE, 0);
        Ok(page)
    }

    /// Decodes node page `id`, checking its checksum and structure.
    pub(crate) fn decode_page(page: &[u8], id: PageId) -> Result<Node> {
        let bad = |what: &str| Error::Corrupt(format!("page {id}: {what}"));
        let (body, _) =
            frame::decode_at(page).ok_or_else(|| bad("checksum mismatch or torn page"))?;
        let mut r = Reader(body);
        let kind = r.u8().ok_or_else(|| bad("empty node"))?;
        let count = r.u16().ok_or_else(|| bad("short node header"))? as usize;
        let node = match kind {
            KIND_LEAF => {
                let mut entries: Vec<(Vec<u8>, Vec<u8>)> = Vec::with_capacity(count);
                for _ in 0..count {
                    let k = r.bytes16().ok_or_else(|| bad("short leaf entry"))?;
                    let v = r.bytes16().ok_or_else(|| bad("short leaf entry"))?;
                    if k.len() > MAX_KEY_LEN || v.len() > MAX_VALUE_LEN {
                        return Err(bad("leaf entry over the size limits"));
                    }
                    if entries.last().is_some_and(|(prev, _)| prev.as_slice() >= k) {
                        return Err(bad("leaf keys out of order"));
                    }
                    entries.push((k.to_vec(), v.to_vec()));
                }
                Node::Leaf(entries)
            }
            KIND_INTERNAL => {
                let mut keys: Vec<Vec<u8>> = Vec::with_capacity(count);
                let mut children = Vec::with_capacity(count + 1);
                children.push(r.u32().ok_or_else(|| bad("short internal node"))?);
                for _ in 0..count {
                    let k = r.bytes16().ok_or_else(|| bad("short internal entry"))?;
                    if k.len() > MAX_KEY_LEN {
                        return Err(bad("separator key over the size limit"));
                    }
                    if keys.last().is_some_and(|prev| prev.as_slice() >= k) {
                        return Err(bad("separator keys out of order"));
                    }
                    keys.push(k.to_vec());
                    children.push(r.u32().ok_or_else(|| bad("short internal entry"))?);
                }
                if children.iter().any(|&c| c < FIRST_NODE_PAGE) {
                    return Err(bad("child points at a header page"));
                }
                Node::Internal { keys, children }
            }
            _ => return Err(bad("unknown node kind")),
        };
        if !r.0.is_empty() {
            return Err(bad("trailing bytes"));
        }
        Ok(node)
    }

    /// Splits an overflowing node in two. Returns the separator (the least
    /// key of the right half) and the right half; `self` keeps the left.
    ///
    /// With entry sizes `e`, total `T <= BODY_CAP - NODE_HEADER + E` (the node
    /// fit before one entry of size `<= E` was added) and `k` the first index
    /// whose prefix reaches `T / 2`, both halves fit whenever
    /// `3E <= BODY_CAP - NODE_HEADER`, which the constants guarantee.
    pub(crate) fn split(&mut self) -> Result<(Vec<u8>, Node)> {
        match self {
            Node::Leaf(entries) => {
                let sizes: Vec<usize> = entries
                    .iter()
                    .map(|(k, v)| LEAF_ENTRY_OVERHEAD + k.len() + v.len())
                    .collect();
                let k = split_point(&sizes)?;
                let right = entries.split_off(k);
                let sep = right.first().map(|(k, _)| k.clone()).unwrap_or_default();
                Ok((sep, Node::Leaf(right)))
            }
            Node::Internal { keys, children } => {
                let sizes: Vec<usize> = keys
                    .iter()
                    .map(|k| INTERNAL_ENTRY_OVERHEAD + k.len())
                    .collect();
                let k = split_point(&sizes)?;
                if children.len() != keys.len() + 1 {
                    return Err(Error::Corrupt("internal node shape".into()));
                }
                let mut right_keys = keys.split_off(k);
                if right_keys.is_empty() {
                    return Err(Error::Corrupt("internal split point out of range".into()));
                }
                let right_children = children.split_off(k + 1);
                let sep = right_keys.remove(0);
                Ok((
                    sep,
                    Node::Internal {
                        keys: right_keys,
                        children: right_children,
                    },
                ))
            }
        }
    }

    /// Appends `right` (the next sibling) to `self`; `sep` is the parent's
    /// separator between them.
    pub(crate) fn absorb(&mut self, sep: Vec<u8>, right: Node) -> Result<()> {
        match (self, right) {
            (Node::Leaf(entries), Node::Leaf(more)) => entries.extend(more),
            (
                Node::Internal { keys, children },
                Node::Internal {
                    keys: k2,
                    children: c2,
                },
            ) => {
                keys.push(sep);
                keys.extend(k2);
                children.extend(c2);
            }
            _ => return Err(Error::Corrupt("siblings at different levels".into())),
        }
        Ok(())
    }
}

/// First index whose prefix sum reaches half the total, kept within
/// `[1, len - 1]` so both halves are non-empty.
fn split_point(sizes: &[usize]) -> Result<usize> {
    if sizes.len() < 2 {
        return Err(Error::Corrupt("cannot split a node of one entry".into()));
    }
    let total: usize = sizes.iter().sum();
    let mut prefix = 0;
    let mut k = sizes.len() - 1;
    for (i, s) in sizes.iter().enumerate() {
        prefix += s;
        if 2 * prefix >= total {
            k = i + 1;
            break;
        }
    }
    Ok(k.clamp(1, sizes.len() - 1))
}

fn u16_len(n: usize) -> u16 {
    u16::try_from(n).unwrap_or(u16::MAX)
}

/// A cursor that returns `None` instead of reading past the end.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if n > self.0.len() {
            return None;
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Some(head)
    }
    fn u8(&mut self) -> Option<u8> {
        self.take(1)?.first().copied()
    }
    fn u16(&mut self) -> Option<u16> {
        Some(u16::from_le_bytes(self.take(2)?.try_into().ok()?))
    }
    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }
    fn bytes16(&mut self) -> Option<&'a [u8]> {
        let n = self.u16()? as usize;
        self.take(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nodes_roundtrip_and_damage_is_corrupt() {
        let leaf = Node::Leaf(vec![
            (b"a".to_vec(), b"1".to_vec()),
            (b"b".to_vec(), vec![7; 300]),
        ]);
        let internal = Node::Internal {
            keys: vec![b"m".to_vec(), b"t".to_vec()],
            children: vec![2, 9, 4],
        };
        for node in [leaf, internal] {
            let page = node.encode_page(5).unwrap();
            assert_eq!(page.len(), PAGE_SIZE);
            assert_eq!(Node::decode_page(&page, 5).unwrap(), node);
            for at in 0..node.encoded_len() + frame::OVERHEAD {
                let mut p = page.clone();
                p[at] ^= 0x08;
                assert!(
                    matches!(Node::decode_page(&p, 5), Err(Error::Corrupt(_))),
                    "byte {at}"
                );
            }
        }
    }

    /// A checksummed page holding an entry larger than `put` accepts would
    /// break the split guarantee; it is corruption, not data.
    #[test]
    fn checksummed_entries_over_the_size_limits_are_corrupt() {
        let long_key = Node::Leaf(vec![(vec![1; MAX_KEY_LEN + 1], b"v".to_vec())]);
        let long_value = Node::Leaf(vec![(b"k".to_vec(), vec![2; MAX_VALUE_LEN + 1])]);
        let long_separator = Node::Internal {
            keys: vec![vec![3; MAX_KEY_LEN + 1]],
            children: vec![2, 3],
        };
        for node in [long_key, long_value, long_separator] {
            let page = node.encode_page(5).unwrap();
            assert!(
                matches!(Node::decode_page(&page, 5), Err(Error::Corrupt(_))),
                "{node:?}"
            );
        }
    }

    #[test]
    fn headers_roundtrip_and_damage_is_rejected() {
        let h = Header {
            generation: 7,
            root: 12,
            page_count: 40,
        };
        let page = h.encode();
        assert_eq!(Header::decode(&page), Some(h));
        for at in 0..frame::OVERHEAD + HEADER_BODY_LEN {
            let mut p = page.clone();
            p[at] ^= 1;
            assert_eq!(Header::decode(&p), None, "byte {at}");
        }
        assert_eq!(Header::decode(&[0; PAGE_SIZE]), None);
    }

    #[test]
    fn split_halves_of_worst_case_leaves_fit() {
        let big = |b: u8| (vec![b; MAX_KEY_LEN], vec![b; MAX_VALUE_LEN]);
        let small = |b: u8| (vec![b], vec![]);
        for entries in [
            vec![big(1), big(2), big(3), big(4)],
            vec![small(1), big(2), big(3), big(4)],
            vec![big(1), big(2), big(3), small(4)],
            // One 44-byte entry past a full page.
            (0..93u8).map(|b| (vec![b; 20], vec![b; 20])).collect(),
        ] {
            let mut left = Node::Leaf(entries);
            let (sep, right) = left.split().unwrap();
            assert!(left.encoded_len() <= BODY_CAP && right.encoded_len() <= BODY_CAP);
            let Node::Leaf(r) = &right else {
                panic!("leaf split made {right:?}")
            };
            assert_eq!(sep, r[0].0);
        }
    }
}
