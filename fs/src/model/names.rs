//! The namespace: create, link, unlink, rmdir, rename, and the durability
//! points that commit names (fsyncdir, sync-all, the journal).
//!
//! Lock order: the namespace lock, then inode locks in ascending number.
//! A call holds the locks of every inode it changes ([`Held`]) from its
//! first change to the moment it takes its sequence numbers, so a data or
//! attribute call on those inodes falls wholly before or wholly after it,
//! in the live view and in the order of the pending operations alike.

use super::op::{EntryChange, NewInode, NsKind, Op};
use super::sync::{Mutex, MutexGuard};
use super::types::*;
use super::{Model, Namespace, Node};
use bytes::Bytes;
use std::sync::Arc;

impl Model {
    /// Creates a regular file, directory, symlink (`target`), fifo, socket
    /// or device in `parent`.
    pub fn create(
        &self,
        parent: Ino,
        name: &[u8],
        kind: Kind,
        attrs: Attrs,
        target: Option<Bytes>,
    ) -> FsResult<Stat> {
        check_name(name)?;
        if (kind == Kind::Symlink) != target.is_some() {
            return Err(FsError::Invalid);
        }
        let mut ns = self.ns.lock();
        self.check_cut()?;
        let dir = self.entries(&ns, parent)?;
        if dir.contains_key(name) {
            return Err(FsError::Exists);
        }
        let ino = self.alloc_ino();
        let size = target.as_ref().map_or(0, |t| t.len() as u64);
        let node = Node {
            kind,
            attrs: Attrs {
                mode: attrs.mode & 0o7777,
                ..attrs
            },
            nlink: if kind == Kind::Dir { 2 } else { 1 },
            size,
            target: target.clone().map(Box::new),
            durable: None,
            base_end: 0,
            overlay: Default::default(),
            pending: super::oplog::OpLog::default(),
            xattrs: None,
            gone: false,
            truncated_to_zero: false,
            index_mark: 0,
        };
        let init = node.init();
        let stat = node.stat(ino);
        self.nodes.insert(ino, Arc::new(Mutex::new(node)));
        let nodes = self.nodes_of(&[parent]);
        let mut held = Held::lock(&nodes);
        // The call's time: the caller stamps a new inode's times with it.
        held.touch(parent, attrs.ctime);
        if kind == Kind::Dir {
            ns.add_dir(ino);
            held.adjust_nlink(parent, 1);
        }
        ns.insert(parent, name, ino, kind);
        let what = match kind {
            Kind::File => NsKind::Create,
            Kind::Dir => NsKind::Mkdir,
            Kind::Symlink => NsKind::Symlink,
            _ => NsKind::Mknod,
        };
        ns.pending.insert(
            self.next_seq(),
            Op::Names {
                dir: parent,
                what,
                changes: vec![EntryChange {
                    name: name.to_vec(),
                    target: Some((ino, init)),
                }],
                peer: None,
                over: false,
            },
        );
        Ok(stat)
    }

    /// Adds the hard link `newparent/newname` to `ino`.
    pub fn link(&self, ino: Ino, newparent: Ino, newname: &[u8], now: Timestamp) -> FsResult<Stat> {
        check_name(newname)?;
        let mut ns = self.ns.lock();
        self.check_cut()?;
        let nodes = self.nodes_of(&[ino, newparent]);
        let mut held = Held::lock(&nodes);
        let n = held.get(ino).ok_or(FsError::NotFound)?;
        self.usable(n)?;
        if n.kind == Kind::Dir {
            return Err(FsError::NotPermitted);
        }
        if n.nlink == 0 {
            return Err(FsError::NotFound);
        }
        if n.nlink >= u32::from(u16::MAX) {
            return Err(FsError::TooManyLinks);
        }
        let dir = ns.dir(newparent).ok_or(FsError::NotFound)?;
        if dir.contains_key(newname) {
            return Err(FsError::Exists);
        }
        ns.insert(newparent, newname, ino, n.kind);
        n.nlink += 1;
        n.attrs.ctime = now;
        let init = n.init();
        let stat = n.stat(ino);
        held.touch(newparent, now);
        ns.pending.insert(
            self.next_seq(),
            Op::Names {
                dir: newparent,
                what: NsKind::Link,
                changes: vec![EntryChange {
                    name: newname.to_vec(),
                    target: Some((ino, init)),
                }],
                peer: None,
                over: false,
            },
        );
        Ok(stat)
    }

    /// Removes a non-directory entry (`unlink(2)`).
    pub fn unlink(&self, parent: Ino, name: &[u8], now: Timestamp) -> FsResult<()> {
        self.remove(parent, name, false, now)
    }

    /// Removes an empty directory (`rmdir(2)`).
    pub fn rmdir(&self, parent: Ino, name: &[u8], now: Timestamp) -> FsResult<()> {
        self.remove(parent, name, true, now)
    }

    fn remove(&self, parent: Ino, name: &[u8], want_dir: bool, now: Timestamp) -> FsResult<()> {
        let mut ns = self.ns.lock();
        self.check_cut()?;
        let dir = self.entries(&ns, parent)?;
        let (ino, kind) = *dir.get(name).ok_or(FsError::NotFound)?;
        match (want_dir, kind == Kind::Dir) {
            (false, true) => return Err(FsError::IsDir),
            (true, false) => return Err(FsError::NotDir),
            (true, true) if ns.dir(ino).is_some_and(|d| !d.is_empty()) => {
                return Err(FsError::NotEmpty);
            }
            _ => {}
        }
        let nodes = self.nodes_of(&[parent, ino]);
        let mut held = Held::lock(&nodes);
        drop_entry(&mut ns, &mut held, parent, name, ino, kind, now);
        held.touch(parent, now);
        let what = if want_dir {
            NsKind::Rmdir
        } else {
            NsKind::Unlink
        };
        ns.pending.insert(
            self.next_seq(),
            Op::Names {
                dir: parent,
                what,
                changes: vec![EntryChange {
                    name: name.to_vec(),
                    target: None,
                }],
                peer: None,
                over: false,
            },
        );
        Ok(())
    }

    /// `renameat2(2)` with `RENAME_NOREPLACE` / `RENAME_EXCHANGE`: checked
    /// (`plan_rename`), then the live namespace changed (`relink`), then the
    /// pending operations recorded (`record_rename`).
    pub fn rename(
        &self,
        parent: Ino,
        name: &[u8],
        newparent: Ino,
        newname: &[u8],
        flags: RenameFlags,
        now: Timestamp,
    ) -> FsResult<()> {
        check_name(newname)?;
        if flags.noreplace && flags.exchange {
            return Err(FsError::Invalid);
        }
        let mut ns = self.ns.lock();
        self.check_cut()?;
        let from = (parent, name);
        let to = (newparent, newname);
        let Some(mv) = self.plan_rename(&ns, from, to, flags)? else {
            return Ok(());
        };
        // IMPORTANT: the initial states go into the pending operations, so
        // they and the operations' sequence numbers are taken under the
        // inodes' locks: a concurrent setattr is either in them and
        // numbered before, or numbered after.
        let mut inos = vec![mv.src, parent, newparent];
        inos.extend(mv.dst.map(|d| d.0));
        let nodes = self.nodes_of(&inos);
        let mut held = Held::lock(&nodes);
        let src_init = held.init(mv.src)?;
        let dst_init = match (mv.exchange, mv.dst) {
            (true, Some((d, _))) => Some(held.init(d)?),
            _ => None,
        };
        let seq = self.next_seqs(if parent == newparent { 1 } else { 2 });
        let src_change = relink(&mut ns, &mut held, &mv, dst_init, now);
        record_rename(&mut ns, &mv, seq, src_change, src_init);
        Ok(())
    }

    /// Checks a rename of `from` (directory, name) to `to`: the error it
    /// fails with, `None` when it changes nothing (both names are one
    /// inode), or what it moves.
    fn plan_rename<'a>(
        &self,
        ns: &Namespace,
        from: (Ino, &'a [u8]),
        to: (Ino, &'a [u8]),
        flags: RenameFlags,
    ) -> FsResult<Option<Move<'a>>> {
        let (parent, name) = from;
        let (newparent, newname) = to;
        let (src, src_kind) = *self
            .entries(ns, parent)?
            .get(name)
            .ok_or(FsError::NotFound)?;
        let dst = self.entries(ns, newparent)?.get(newname).copied();
        if flags.noreplace && dst.is_some() {
            return Err(FsError::Exists);
        }
        if flags.exchange && dst.is_none() {
            return Err(FsError::NotFound);
        }
        if src_kind == Kind::Dir && is_within(ns, newparent, src) {
            return Err(FsError::Invalid);
        }
        if let (true, Some((d, Kind::Dir))) = (flags.exchange, dst) {
            if is_within(ns, parent, d) {
                return Err(FsError::Invalid);
            }
        }
        if dst.is_some_and(|(d, _)| d == src) {
            return Ok(None);
        }
        if !flags.exchange {
            if let Some((d, dkind)) = dst {
                match (src_kind == Kind::Dir, dkind == Kind::Dir) {
                    (true, false) => return Err(FsError::NotDir),
                    (false, true) => return Err(FsError::IsDir),
                    (true, true) if ns.dir(d).is_some_and(|e| !e.is_empty()) => {
                        return Err(FsError::NotEmpty);
                    }
                    _ => {}
                }
            }
        }
        Ok(Some(Move {
            from,
            to,
            src,
            src_kind,
            dst,
            exchange: flags.exchange,
        }))
    }
}

/// A checked rename ([`Model::plan_rename`]).
struct Move<'a> {
    /// Source directory and name.
    from: (Ino, &'a [u8]),
    /// Destination directory and name.
    to: (Ino, &'a [u8]),
    src: Ino,
    src_kind: Kind,
    /// What the destination name held.
    dst: Option<(Ino, Kind)>,
    exchange: bool,
}

impl Move<'_> {
    /// A plain rename of a file onto another file's name (ext4's
    /// `auto_da_alloc`, [`super::profile`]).
    fn over(&self) -> bool {
        !self.exchange
            && self.src_kind == Kind::File
            && self.dst.is_some_and(|(_, k)| k == Kind::File)
    }
}

/// Changes the live namespace for `mv` (entries, parents, link counts,
/// times); returns the source name's change for the pending operation.
fn relink(
    ns: &mut Namespace,
    held: &mut Held<'_>,
    mv: &Move<'_>,
    dst_init: Option<NewInode>,
    now: Timestamp,
) -> EntryChange {
    let ((parent, name), (newparent, newname)) = (mv.from, mv.to);
    ns.remove(parent, name);
    let mut src_change = EntryChange {
        name: name.to_vec(),
        target: None,
    };
    match (mv.exchange, mv.dst) {
        (true, Some((d, dkind))) => {
            ns.insert(parent, name, d, dkind);
            if dkind == Kind::Dir && parent != newparent {
                held.adjust_nlink(parent, 1);
                held.adjust_nlink(newparent, -1);
            }
            src_change.target = dst_init.map(|i| (d, i));
        }
        (false, Some((d, dkind))) => {
            drop_entry(ns, held, newparent, newname, d, dkind, now);
        }
        _ => {}
    }
    ns.insert(newparent, newname, mv.src, mv.src_kind);
    if mv.src_kind == Kind::Dir && parent != newparent {
        held.adjust_nlink(parent, -1);
        held.adjust_nlink(newparent, 1);
    }
    held.set_nlink(mv.src, |l| l, now);
    held.touch(parent, now);
    held.touch(newparent, now);
    src_change
}

/// Records `mv`'s pending operations from sequence `seq`: one per directory
/// touched.
fn record_rename(
    ns: &mut Namespace,
    mv: &Move<'_>,
    seq: u64,
    src_change: EntryChange,
    src_init: NewInode,
) {
    let ((parent, name), (newparent, newname)) = (mv.from, mv.to);
    let over = mv.over();
    let dst_change = EntryChange {
        name: newname.to_vec(),
        target: Some((mv.src, src_init)),
    };
    if parent == newparent {
        let what = if mv.exchange {
            NsKind::Exchange
        } else {
            NsKind::Rename
        };
        ns.pending.insert(
            seq,
            Op::Names {
                dir: parent,
                what,
                changes: vec![src_change, dst_change],
                peer: Some((newparent, newname.to_vec())),
                over,
            },
        );
        return;
    }
    // The new name is recorded first: a prefix that keeps only one half
    // shows the file under both names, never under neither.
    let (to_what, from_what) = if mv.exchange {
        (NsKind::Exchange, NsKind::Exchange)
    } else {
        (NsKind::RenameTo, NsKind::RenameFrom)
    };
    ns.pending.insert(
        seq,
        Op::Names {
            dir: newparent,
            what: to_what,
            changes: vec![dst_change],
            peer: Some((parent, name.to_vec())),
            over,
        },
    );
    ns.pending.insert(
        seq + 1,
        Op::Names {
            dir: parent,
            what: from_what,
            changes: vec![src_change],
            peer: Some((newparent, newname.to_vec())),
            over: false,
        },
    );
}

impl Model {
    /// The nodes of those of `inos` that exist, ascending, without repeats.
    fn nodes_of(&self, inos: &[Ino]) -> Vec<(Ino, Arc<Mutex<Node>>)> {
        let mut inos = inos.to_vec();
        inos.sort_unstable();
        inos.dedup();
        inos.into_iter()
            .filter_map(|i| self.nodes.get(&i).map(|n| (i, Arc::clone(n.value()))))
            .collect()
    }
}

/// The locks of the inodes one namespace call changes, taken together in
/// ascending order (see the module doc). The inode map is never read while
/// they are held: `forget` locks an inode while it holds the map.
struct Held<'a>(Vec<(Ino, MutexGuard<'a, Node>)>);

impl<'a> Held<'a> {
    fn lock(nodes: &'a [(Ino, Arc<Mutex<Node>>)]) -> Held<'a> {
        Held(nodes.iter().map(|(i, n)| (*i, n.lock())).collect())
    }

    fn get(&mut self, ino: Ino) -> Option<&mut Node> {
        self.0
            .iter_mut()
            .find(|(i, _)| *i == ino)
            .map(|(_, g)| &mut **g)
    }

    /// The initial state of `ino`, for a pending operation that links it.
    fn init(&mut self, ino: Ino) -> FsResult<NewInode> {
        match self.get(ino) {
            Some(n) if !n.gone => Ok(n.init()),
            _ => Err(FsError::NotFound),
        }
    }

    /// Directory `dir`'s entries changed at `now`: its mtime and ctime.
    fn touch(&mut self, dir: Ino, now: Timestamp) {
        if let Some(n) = self.get(dir) {
            n.attrs.mtime = now;
            n.attrs.ctime = now;
        }
    }

    fn adjust_nlink(&mut self, dir: Ino, delta: i32) {
        if let Some(n) = self.get(dir) {
            n.nlink = n.nlink.saturating_add_signed(delta);
        }
    }

    fn set_nlink(&mut self, ino: Ino, f: impl Fn(u32) -> u32, now: Timestamp) {
        if let Some(n) = self.get(ino) {
            n.nlink = f(n.nlink);
            n.attrs.ctime = now;
        }
    }
}

/// Removes `parent/name -> ino` from the live namespace and fixes link
/// counts. The caller records the operation.
fn drop_entry(
    ns: &mut Namespace,
    held: &mut Held<'_>,
    parent: Ino,
    name: &[u8],
    ino: Ino,
    kind: Kind,
    now: Timestamp,
) {
    ns.remove(parent, name);
    if kind == Kind::Dir {
        ns.remove_dir(ino);
        held.adjust_nlink(parent, -1);
        held.set_nlink(ino, |_| 0, now);
    } else {
        held.set_nlink(ino, |l| l.saturating_sub(1), now);
    }
}

/// True when `dir` is `ancestor` or lies beneath it in the live tree.
fn is_within(ns: &Namespace, mut dir: Ino, ancestor: Ino) -> bool {
    loop {
        if dir == ancestor {
            return true;
        }
        match ns.parent(dir) {
            Some((p, _)) => dir = *p,
            None => return false,
        }
    }
}
