//! The copy-on-write B+tree over the pages of `btree.db`, with its page cache
//! and page allocator.
//!
//! # Invariants
//!
//! * A page reachable from the durable header (a *committed* page) is never
//!   written. The first change to a committed node copies it to a *fresh*
//!   page, and so does every ancestor (its child pointer changes), so the
//!   changes of an epoch reach a new root.
//! * Fresh pages live only in the cache until the checkpoint writes them;
//!   they are never evicted.
//! * `free` holds pages reachable from neither the durable header nor the
//!   in-memory tree; only these are reused. A committed page dropped during
//!   the epoch waits in `pending_free` until the next header is durable.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

use super::page::{BODY_CAP, FIRST_NODE_PAGE, Header, Node, PAGE_SIZE, PageId};
use crate::{Error, Result};

/// Clean pages kept in the cache before it is emptied of them.
const CACHE_PAGES: usize = 2048;
/// A node smaller than this after a delete is merged with a sibling when the
/// two fit in one page.
const MERGE_BELOW: usize = BODY_CAP / 4;
/// Deeper than any tree `PageId` can address; deeper means a cycle.
const MAX_DEPTH: usize = 40;

/// A split below a node: the separator and the new right sibling.
type Split = Option<(Vec<u8>, PageId)>;

/// Byte offset of page `id` in the file.
pub(crate) fn page_offset(id: PageId) -> u64 {
    u64::from(id) * PAGE_SIZE as u64
}

pub(crate) struct Tree {
    db: File,
    /// Root of the in-memory tree; 0 when empty.
    pub(crate) root: PageId,
    /// Pages `[0, page_count)` are in use or free; higher ones do not exist.
    pub(crate) page_count: PageId,
    cache: HashMap<PageId, Node>,
    fresh: HashSet<PageId>,
    pending_free: Vec<PageId>,
    free: Vec<PageId>,
}

fn corrupt_child(id: PageId) -> Error {
    Error::Corrupt(format!("page {id}: child index out of range"))
}

impl Tree {
    /// Loads the tree the durable `header` names. Every reachable page is
    /// read and verified once, which also finds the free pages.
    pub(crate) fn load(db: File, header: Header) -> Result<Tree> {
        let mut t = Tree {
            db,
            root: header.root,
            page_count: header.page_count,
            cache: HashMap::new(),
            fresh: HashSet::new(),
            pending_free: Vec::new(),
            free: Vec::new(),
        };
        let mut reachable = BTreeSet::new();
        if t.root != 0 {
            let mut stack = vec![t.root];
            while let Some(id) = stack.pop() {
                if !reachable.insert(id) {
                    return Err(Error::Corrupt(format!("page {id} is reachable twice")));
                }
                if let Node::Internal { children, .. } = t.node(id)? {
                    stack.extend_from_slice(children);
                }
            }
        }
        t.free = (FIRST_NODE_PAGE..t.page_count)
            .rev()
            .filter(|id| !reachable.contains(id))
            .collect();
        t.cache.retain(|_, n| matches!(n, Node::Internal { .. }));
        Ok(t)
    }

    fn check_id(&self, id: PageId) -> Result<()> {
        if id < FIRST_NODE_PAGE || id >= self.page_count {
            return Err(Error::Corrupt(format!(
                "page {id} referenced but the file has {} pages",
                self.page_count
            )));
        }
        Ok(())
    }

    /// The node of page `id`, read and verified if not cached.
    fn node(&mut self, id: PageId) -> Result<&Node> {
        if !self.cache.contains_key(&id) {
            self.check_id(id)?;
            let mut page = vec![0u8; PAGE_SIZE];
            self.db
                .read_exact_at(&mut page, page_offset(id))
                .map_err(|e| {
                    if e.kind() == io::ErrorKind::UnexpectedEof {
                        Error::Corrupt(format!("page {id} lies past the end of btree.db"))
                    } else {
                        Error::Io(e)
                    }
                })?;
            let node = Node::decode_page(&page, id)?;
            if self.cache.len() >= CACHE_PAGES {
                let fresh = &self.fresh;
                self.cache.retain(|p, _| fresh.contains(p));
            }
            self.cache.insert(id, node);
        }
        self.cache
            .get(&id)
            .ok_or_else(|| Error::Corrupt(format!("page {id} vanished from the cache")))
    }

    /// Removes fresh node `id` from the cache for mutation; [`Tree::put_back`]
    /// returns it.
    fn take(&mut self, id: PageId) -> Result<Node> {
        self.cache
            .remove(&id)
            .ok_or_else(|| Error::Corrupt(format!("fresh page {id} missing from the cache")))
    }

    fn put_back(&mut self, id: PageId, node: Node) {
        self.cache.insert(id, node);
    }

    fn alloc(&mut self, node: Node) -> Result<PageId> {
        let id = match self.free.pop() {
            Some(id) => id,
            None => {
                let id = self.page_count;
                self.page_count = id
                    .checked_add(1)
                    .ok_or_else(|| Error::Invalid("btree.db is full".into()))?;
                id
            }
        };
        self.cache.insert(id, node);
        self.fresh.insert(id);
        Ok(id)
    }

    fn free_page(&mut self, id: PageId) {
        self.cache.remove(&id);
        if self.fresh.remove(&id) {
            self.free.push(id);
        } else {
            self.pending_free.push(id);
        }
    }

    /// Returns a fresh page holding node `id`: `id` itself if fresh, else a
    /// copy (the committed page is left untouched on disk).
    fn make_fresh(&mut self, id: PageId) -> Result<PageId> {
        if self.fresh.contains(&id) {
            return Ok(id);
        }
        let node = self.node(id)?.clone();
        self.cache.remove(&id);
        self.pending_free.push(id);
        self.alloc(node)
    }

    /// Returns the value stored under `key`.
    pub(crate) fn get(&mut self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        let mut id = self.root;
        if id == 0 {
            return Ok(None);
        }
        for _ in 0..MAX_DEPTH {
            match self.node(id)? {
                Node::Leaf(entries) => {
                    return Ok(entries
                        .binary_search_by(|(k, _)| k.as_slice().cmp(key))
                        .ok()
                        .and_then(|i| entries.get(i))
                        .map(|(_, v)| v.clone()));
                }
                Node::Internal { keys, children } => {
                    let i = keys.partition_point(|k| k.as_slice() <= key);
                    id = *children.get(i).ok_or_else(|| corrupt_child(id))?;
                }
            }
        }
        Err(Error::Corrupt(
            "B-tree deeper than possible (cycle?)".into(),
        ))
    }

    /// Returns every key and value in key order.
    pub(crate) fn scan(&mut self) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let mut out = Vec::new();
        if self.root != 0 {
            self.scan_into(self.root, 0, &mut out)?;
        }
        Ok(out)
    }

    fn scan_into(
        &mut self,
        id: PageId,
        depth: usize,
        out: &mut Vec<(Vec<u8>, Vec<u8>)>,
    ) -> Result<()> {
        if depth >= MAX_DEPTH {
            return Err(Error::Corrupt(
                "B-tree deeper than possible (cycle?)".into(),
            ));
        }
        match self.node(id)? {
            Node::Leaf(entries) => {
                if out
                    .last()
                    .zip(entries.first())
                    .is_some_and(|(a, b)| a.0 >= b.0)
                {
                    return Err(Error::Corrupt(format!(
                        "page {id}: keys out of order across leaves"
                    )));
                }
                out.extend(entries.iter().cloned());
            }
            Node::Internal { children, .. } => {
                for c in children.clone() {
                    self.scan_into(c, depth + 1, out)?;
                }
            }
        }
        Ok(())
    }

    /// Stores `value` under `key`.
    pub(crate) fn insert(&mut self, key: &[u8], value: &[u8]) -> Result<()> {
        if self.root == 0 {
            self.root = self.alloc(Node::Leaf(vec![(key.to_vec(), value.to_vec())]))?;
            return Ok(());
        }
        let (root, split) = self.insert_at(self.root, key, value, 0)?;
        self.root = root;
        if let Some((sep, right)) = split {
            self.root = self.alloc(Node::Internal {
                keys: vec![sep],
                children: vec![root, right],
            })?;
        }
        Ok(())
    }

    /// Inserts below `id`; returns the node's (possibly new) page and, if it
    /// split, the separator and the new right sibling.
    fn insert_at(
        &mut self,
        id: PageId,
        key: &[u8],
        value: &[u8],
        depth: usize,
    ) -> Result<(PageId, Split)> {
        if depth >= MAX_DEPTH {
            return Err(Error::Corrupt(
                "B-tree deeper than possible (cycle?)".into(),
            ));
        }
        let id = self.make_fresh(id)?;
        let mut node = self.take(id)?;
        let r = self.insert_into(id, &mut node, key, value, depth);
        self.put_back(id, node);
        Ok((id, r?))
    }

    fn insert_into(
        &mut self,
        id: PageId,
        node: &mut Node,
        key: &[u8],
        value: &[u8],
        depth: usize,
    ) -> Result<Split> {
        match node {
            Node::Leaf(entries) => match entries.binary_search_by(|(k, _)| k.as_slice().cmp(key)) {
                Ok(i) => {
                    if let Some(e) = entries.get_mut(i) {
                        e.1 = value.to_vec();
                    }
                }
                Err(i) => entries.insert(i, (key.to_vec(), value.to_vec())),
            },
            Node::Internal { keys, children } => {
                let i = keys.partition_point(|k| k.as_slice() <= key);
                let child = *children.get(i).ok_or_else(|| corrupt_child(id))?;
                let (new_child, split) = self.insert_at(child, key, value, depth + 1)?;
                let slot = children.get_mut(i).ok_or_else(|| corrupt_child(id))?;
                *slot = new_child;
                if let Some((sep, right)) = split {
                    keys.insert(i, sep);
                    children.insert(i + 1, right);
                }
            }
        }
        if node.encoded_len() <= BODY_CAP {
            return Ok(None);
        }
        let (sep, right) = node.split()?;
        Ok(Some((sep, self.alloc(right)?)))
    }

    /// Removes `key`; returns whether it was present.
    pub(crate) fn remove(&mut self, key: &[u8]) -> Result<bool> {
        if self.get(key)?.is_none() {
            return Ok(false);
        }
        self.root = self.remove_at(self.root, key, 0)?;
        loop {
            let root = self.root;
            match self.node(root)? {
                Node::Internal { keys, children } if keys.is_empty() => {
                    let only = *children.first().ok_or_else(|| corrupt_child(root))?;
                    self.free_page(root);
                    self.root = only;
                }
                Node::Leaf(entries) if entries.is_empty() => {
                    self.free_page(root);
                    self.root = 0;
                    return Ok(true);
                }
                _ => return Ok(true),
            }
        }
    }

    fn remove_at(&mut self, id: PageId, key: &[u8], depth: usize) -> Result<PageId> {
        if depth >= MAX_DEPTH {
            return Err(Error::Corrupt(
                "B-tree deeper than possible (cycle?)".into(),
            ));
        }
        let id = self.make_fresh(id)?;
        let mut node = self.take(id)?;
        let r = self.remove_from(id, &mut node, key, depth);
        self.put_back(id, node);
        r.map(|()| id)
    }

    fn remove_from(&mut self, id: PageId, node: &mut Node, key: &[u8], depth: usize) -> Result<()> {
        match node {
            Node::Leaf(entries) => {
                if let Ok(i) = entries.binary_search_by(|(k, _)| k.as_slice().cmp(key)) {
                    entries.remove(i);
                }
                Ok(())
            }
            Node::Internal { keys, children } => {
                let i = keys.partition_point(|k| k.as_slice() <= key);
                let child = *children.get(i).ok_or_else(|| corrupt_child(id))?;
                let new_child = self.remove_at(child, key, depth + 1)?;
                let slot = children.get_mut(i).ok_or_else(|| corrupt_child(id))?;
                *slot = new_child;
                self.merge_small_child(id, keys, children, i)
            }
        }
    }

    /// Merges child `i` of node `id` with a neighbour if it shrank below
    /// [`MERGE_BELOW`] and the two fit in one page. Otherwise the node is
    /// left underfull, which lookups and inserts tolerate.
    fn merge_small_child(
        &mut self,
        id: PageId,
        keys: &mut Vec<Vec<u8>>,
        children: &mut Vec<PageId>,
        i: usize,
    ) -> Result<()> {
        let child = *children.get(i).ok_or_else(|| corrupt_child(id))?;
        if children.len() < 2 || self.node(child)?.encoded_len() >= MERGE_BELOW {
            return Ok(());
        }
        let l = if i + 1 < children.len() { i } else { i - 1 };
        let (Some(&left), Some(&right), Some(sep)) =
            (children.get(l), children.get(l + 1), keys.get(l))
        else {
            return Err(corrupt_child(id));
        };
        let mut merged = self.node(left)?.clone();
        merged.absorb(sep.clone(), self.node(right)?.clone())?;
        if merged.encoded_len() > BODY_CAP {
            return Ok(());
        }
        let left = self.make_fresh(left)?;
        self.cache.insert(left, merged);
        self.free_page(right);
        if let Some(slot) = children.get_mut(l) {
            *slot = left;
        }
        keys.remove(l);
        children.remove(l + 1);
        Ok(())
    }

    /// Writes every fresh page to its place in the file and extends the
    /// file to `page_count` pages (not synced). The extension matters when
    /// the last pages were appended and freed again in this epoch: they are
    /// never written, yet the header counts them.
    pub(crate) fn write_fresh_pages(&mut self) -> Result<()> {
        let want = page_offset(self.page_count);
        if self.db.metadata()?.len() < want {
            self.db.set_len(want)?;
        }
        let mut ids: Vec<PageId> = self.fresh.iter().copied().collect();
        ids.sort_unstable();
        for id in ids {
            let node = self
                .cache
                .get(&id)
                .ok_or_else(|| Error::Corrupt(format!("fresh page {id} missing from the cache")))?;
            let page = node.encode_page(id)?;
            self.db.write_all_at(&page, page_offset(id))?;
        }
        Ok(())
    }

    /// The header describing the in-memory tree as checkpoint `generation`.
    pub(crate) fn header(&self, generation: u64) -> Header {
        Header {
            generation,
            root: self.root,
            page_count: self.page_count,
        }
    }

    /// Called once the header naming the written pages is durable: they
    /// become committed, and pages dropped during the epoch become free.
    pub(crate) fn commit(&mut self) {
        self.fresh.clear();
        self.free.append(&mut self.pending_free);
    }

    /// The database file.
    pub(crate) fn db(&self) -> &File {
        &self.db
    }

    /// Checks the B+tree invariants of the in-memory tree (tests only).
    #[cfg(test)]
    pub(crate) fn check_invariants(&mut self) -> Result<usize> {
        fn walk(
            t: &mut Tree,
            id: PageId,
            lo: Option<Vec<u8>>,
            hi: Option<Vec<u8>>,
            depth: usize,
            leaf_depth: &mut Option<usize>,
            seen: &mut BTreeSet<PageId>,
        ) -> usize {
            assert!(seen.insert(id), "page {id} reachable twice");
            assert!(
                !t.free.contains(&id) && !t.pending_free.contains(&id),
                "page {id} is live and free"
            );
            let node = t.node(id).unwrap().clone();
            assert!(node.encoded_len() <= BODY_CAP);
            match node {
                Node::Leaf(entries) => {
                    assert_eq!(
                        *leaf_depth.get_or_insert(depth),
                        depth,
                        "leaves at different depths"
                    );
                    for (k, _) in &entries {
                        assert!(
                            lo.as_ref().is_none_or(|lo| k >= lo)
                                && hi.as_ref().is_none_or(|hi| k < hi)
                        );
                    }
                    1
                }
                Node::Internal { keys, children } => {
                    assert_eq!(children.len(), keys.len() + 1);
                    let mut pages = 1;
                    for (j, &c) in children.iter().enumerate() {
                        let clo = if j == 0 {
                            lo.clone()
                        } else {
                            keys.get(j - 1).cloned()
                        };
                        let chi = keys.get(j).cloned().or_else(|| hi.clone());
                        pages += walk(t, c, clo, chi, depth + 1, leaf_depth, seen);
                    }
                    pages
                }
            }
        }
        if self.root == 0 {
            return Ok(0);
        }
        let mut seen = BTreeSet::new();
        let pages = walk(self, self.root, None, None, 0, &mut None, &mut seen);
        Ok(pages)
    }
}
