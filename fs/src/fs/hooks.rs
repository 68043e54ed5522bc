//! Hooks on the state-changing calls of a volume: the trace [`Recorder`],
//! the [`Tripwire`] with which `durafs run` cuts the power at a scripted
//! point, the freeze gate, and marks.
//!
//! Invariants:
//! * Without a recorder, a tripwire, an armed fault or a freeze, a call
//!   pays a check of four atomics and the count of its event, nothing
//!   else.
//! * Once the volume is frozen, no state-changing call takes effect: each
//!   blocks until the cut has stopped the model, then fails with `EIO`.
//!   The program that made it is being killed; it never sees the reply.
//! * A call that trips an `after` trigger has taken effect; its caller
//!   never sees the reply either.
//! * Lock order: the recorder's lock before the store-order lock (`order`).

use super::{DuraFs, Result};
use crate::model::{FsError, Ino, Kind, ROOT};
use crate::trace::{
    Applied, Data, Extent, Header, InitEntry, InitInode, InitXattr, Named, Recorder, TRACE_VERSION,
    Text, Trace, TraceOp,
};
use parking_lot::{Condvar, Mutex};
use std::fmt;
use std::fs::File;
use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

/// Decides where `durafs run` cuts the power. Called on the thread of the
/// call, with the recorder's lock held when recording.
pub trait Tripwire: Send + Sync {
    /// Before a state-changing call takes effect. `count` is the number of
    /// trace events so far: calls that took effect and a trace records
    /// (numbered from 1 as in a trace, marks included, failed calls not).
    /// True freezes the volume before the call.
    fn before(&self, count: u64, op: &TraceOp, paths: &[String]) -> bool;
    /// After the call took effect, before its caller learns the result;
    /// `count` includes it when a trace records it (then it is its event
    /// number). True freezes the volume.
    fn after(&self, count: u64, op: &TraceOp, paths: &[String]) -> bool;
    /// The volume froze, after `count` trace events. Called once.
    fn frozen(&self, count: u64);
}

/// Blocks state-changing calls once closed, until released by the cut.
#[derive(Debug, Default)]
pub(super) struct Gate {
    closed: AtomicBool,
    released: Mutex<bool>,
    cv: Condvar,
}

impl Gate {
    /// Closes the gate; true the first time.
    fn close(&self) -> bool {
        !self.closed.swap(true, Ordering::SeqCst)
    }

    fn is_closed(&self) -> bool {
        self.closed.load(Ordering::SeqCst)
    }

    /// Blocks while closed and not yet released.
    fn wait(&self) {
        let mut released = self.released.lock();
        while !*released {
            self.cv.wait(&mut released);
        }
    }

    /// Lets every blocked call go on (to fail: the model is cut).
    pub(super) fn release(&self) {
        *self.released.lock() = true;
        self.cv.notify_all();
    }
}

/// The hook state of a volume.
#[derive(Default)]
pub(super) struct Hooks {
    recorder: OnceLock<Recorder>,
    tripwire: OnceLock<Arc<dyn Tripwire>>,
    /// Set when traced calls record their caller's stack.
    stacks: OnceLock<crate::stacks::Stacks>,
    pub(super) gate: Gate,
    ops: AtomicU64,
    marks: Mutex<Vec<String>>,
    /// How the mount serving the volume carries requests.
    transport: OnceLock<crate::transport::Transport>,
}

impl fmt::Debug for Hooks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Hooks")
            .field("recording", &self.recorder.get().is_some())
            .field("tripwire", &self.tripwire.get().is_some())
            .field("frozen", &self.gate.is_closed())
            .field("ops", &self.ops.load(Ordering::Relaxed))
            .finish()
    }
}

/// Longest label `mark` accepts.
pub const MAX_MARK: usize = 1024;

fn rooted(p: Option<String>, fallback: impl FnOnce() -> String) -> String {
    match p {
        Some(p) => format!("/{p}"),
        None => fallback(),
    }
}

impl DuraFs {
    /// Records how the mount serving this volume carries requests (set once,
    /// by [`crate::mount::mount`]), for [`DuraFs::info`].
    pub fn set_transport(&self, transport: crate::transport::Transport) {
        if self.hooks.transport.set(transport).is_err() {
            log::debug!("durafs: the volume's transport was set already");
        }
    }

    /// How the mount serving this volume carries requests (`dev` before a
    /// mount set it).
    pub fn transport(&self) -> crate::transport::Transport {
        self.hooks.transport.get().copied().unwrap_or_default()
    }

    /// Starts recording every state-changing call (see [`crate::trace`]),
    /// keeping the trace in memory when `keep` and appending it to `file`
    /// when given. Must be called before anything changed.
    pub fn start_trace(&self, keep: bool, file: Option<File>) -> io::Result<()> {
        if !self.model.pending_ops().is_empty() {
            return Err(io::Error::other(
                "tracing must start before the volume changes",
            ));
        }
        let header = self.initial_header()?;
        let rec = Recorder::new(header, keep, file)?;
        self.hooks
            .recorder
            .set(rec)
            .map_err(|_| io::Error::other("the volume is already being traced"))
    }

    /// Records with each traced call the calling process and its stack
    /// ([`crate::stacks`]), from now on. The calling thread is blocked in
    /// the system call while durafs serves it, so its stack is read as it
    /// was at the call.
    pub fn capture_stacks(&self) {
        let _ = self.hooks.stacks.set(crate::stacks::Stacks::new());
    }

    /// The caller of the call served on this thread, with its stack, when
    /// stacks are captured and a FUSE callback named it.
    fn caller(&self) -> Option<crate::stacks::Caller> {
        let stacks = self.hooks.stacks.get()?;
        let tid = super::caller::current()?;
        match stacks.capture(tid) {
            Ok(c) => Some(c),
            Err(e) => {
                log::debug!("durafs: no stack for thread {tid}: {e}");
                None
            }
        }
    }

    /// Stops recording; the trace kept in memory, or `None` when the
    /// volume was not traced.
    pub fn finish_trace(&self) -> Option<io::Result<Trace>> {
        self.hooks.recorder.get().map(Recorder::finish)
    }

    /// Installs the tripwire (once).
    pub fn set_tripwire(&self, t: Arc<dyn Tripwire>) -> io::Result<()> {
        self.hooks
            .tripwire
            .set(t)
            .map_err(|_| io::Error::other("the volume already has a tripwire"))
    }

    /// Freezes the volume: no later state-changing call takes effect (each
    /// waits for the cut, then fails). For triggers outside the calls
    /// (`after-ms`, the program's exit).
    pub fn freeze(&self) {
        if self.hooks.gate.close() {
            let count = self.hooks.ops.load(Ordering::SeqCst);
            log::info!("durafs: frozen after {count} trace events");
            if let Some(w) = self.hooks.tripwire.get() {
                w.frozen(count);
            }
        }
    }

    /// True once frozen.
    pub fn is_frozen(&self) -> bool {
        self.hooks.gate.is_closed()
    }

    /// Trace events so far (calls that took effect, as a trace numbers
    /// them).
    pub fn op_count(&self) -> u64 {
        self.hooks.ops.load(Ordering::SeqCst)
    }

    /// Records a promise the program made (`durafs mark LABEL`): one line
    /// of at most [`MAX_MARK`] bytes.
    pub fn mark(&self, label: &str) -> Result<()> {
        if label.trim().is_empty() || label.contains('\n') || label.len() > MAX_MARK {
            return Err(FsError::Invalid.into());
        }
        if self.model.is_cut() {
            return Err(FsError::Cut.into());
        }
        let label = label.trim().to_string();
        let keep = label.clone();
        self.observed(TraceOp::Mark { label }, |_| {
            self.hooks.marks.lock().push(keep);
            Ok(Applied::Done)
        })
        .map(|_| ())
    }

    /// Records `op`, an event no call made (a fault that fired), as the
    /// next trace event. Takes the recorder's lock: the caller holds none.
    pub(super) fn record_event(&self, op: TraceOp) {
        let h = &self.hooks;
        let mut rec = h.recorder.get().map(Recorder::lock);
        if let Some(r) = rec.as_mut().filter(|r| r.recording()) {
            r.push(op, Vec::new(), None);
        }
        // Under the recorder's lock, as in `observed`.
        h.ops.fetch_add(1, Ordering::SeqCst);
    }

    /// The marks recorded so far, in order.
    pub fn marks(&self) -> Vec<String> {
        self.hooks.marks.lock().clone()
    }

    /// Runs state-changing operation `op` under the hooks: `f` applies it
    /// (`DuraFs::run`); a tripwire may freeze the volume before or after,
    /// faults may fail, hold or cut it (`faults`), and the trace records
    /// it completed by what it gave back ([`TraceOp::complete`]).
    pub(super) fn observed(
        &self,
        mut op: TraceOp,
        f: impl FnOnce(&TraceOp) -> Result<Applied>,
    ) -> Result<Applied> {
        let h = &self.hooks;
        let degraded = self.faults.degraded.get();
        let faults = self.faults.list.is_armed() || degraded.is_some();
        if h.recorder.get().is_none()
            && h.tripwire.get().is_none()
            && !h.gate.is_closed()
            && !faults
        {
            let out = f(&op)?;
            if op.complete(&out) {
                // Nothing orders against this count without hooks: relaxed.
                h.ops.fetch_add(1, Ordering::Relaxed);
            }
            return Ok(out);
        }
        if h.gate.is_closed() {
            h.gate.wait();
            return Err(FsError::Cut.into());
        }
        if let Some(d) = degraded {
            return d.refuse(&op);
        }
        let paths = self.paths(&op);
        let mut failing = false;
        if faults {
            // IMPORTANT: before any lock is taken: a delay holds no lock.
            if let Some(replaced) = self.faults_before(h.ops.load(Ordering::SeqCst), &op, &paths)? {
                op = replaced;
                failing = true;
            }
        }
        let mut rec = h.recorder.get().map(Recorder::lock);
        let wire = h.tripwire.get();
        let count = h.ops.load(Ordering::SeqCst);
        let tripped = wire.is_some_and(|w| w.before(count, &op, &paths));
        if tripped || h.gate.is_closed() {
            drop(rec);
            self.freeze();
            h.gate.wait();
            return Err(FsError::Cut.into());
        }
        let out = f(&op)?;
        // The count moves exactly where the recorder numbers an event (its
        // lock, held across the call, orders them), so `after-ops=N`
        // and event #N of the trace are the same call.
        let count = if op.complete(&out) {
            if let Some(r) = rec.as_mut().filter(|r| r.recording()) {
                r.push(op.clone(), paths.clone(), self.caller());
            }
            h.ops.fetch_add(1, Ordering::SeqCst) + 1
        } else {
            h.ops.load(Ordering::SeqCst)
        };
        let tripped = wire.is_some_and(|w| w.after(count, &op, &paths));
        drop(rec);
        if tripped {
            self.freeze();
            h.gate.wait();
            return Err(FsError::Cut.into());
        }
        if faults {
            self.faults_after(count, &op, &paths)?;
        }
        if failing {
            // The fsync failed part-way (its effects applied): the caller
            // learns the failure.
            return Err(super::Error::WritebackFailed);
        }
        Ok(out)
    }

    /// The live paths a call names, each from the root (`/a/b`).
    fn paths(&self, op: &TraceOp) -> Vec<String> {
        let m = &self.model;
        let of = |ino: Ino| rooted(m.path_of(ino), || format!("<unlinked #{ino}>"));
        let join = |dir: Ino, name: &Text| {
            let name = String::from_utf8_lossy(&name.0);
            match m.path_of(dir) {
                Some(d) if d.is_empty() => format!("/{name}"),
                Some(d) => format!("/{d}/{name}"),
                None => format!("<removed dir #{dir}>/{name}"),
            }
        };
        op.names()
            .into_iter()
            .map(|n| match n {
                Named::Inode(ino) => of(ino),
                Named::Entry(dir, name) => join(dir, name),
            })
            .collect()
    }

    /// The durable tree now (nothing may be pending), as a trace header.
    /// The non-zero 4 KiB blocks of file `ino` as extents. Nothing is
    /// unsynced when tracing starts, so the file's content is the backing
    /// file's, and only the ranges where that holds data are read.
    fn initial_extents(&self, ino: Ino, size: u64) -> io::Result<Vec<Extent>> {
        const BLOCK: usize = 4096;
        let err = |e: super::Error| io::Error::other(format!("reading the starting tree: {e}"));
        let mut out: Vec<(u64, Vec<u8>)> = Vec::new();
        for (start, len) in self.store.data_ranges(ino, size)? {
            let end = start + len;
            let mut off = start;
            while off < end {
                let want = (end - off).min(1 << 20) as u32;
                let chunk = self.read(ino, off, want).map_err(err)?;
                if chunk.is_empty() {
                    break;
                }
                for (i, block) in chunk.chunks(BLOCK).enumerate() {
                    if block.iter().all(|b| *b == 0) {
                        continue;
                    }
                    let at = off + (i * BLOCK) as u64;
                    match out.last_mut() {
                        Some((o, d)) if *o + d.len() as u64 == at => d.extend_from_slice(block),
                        _ => out.push((at, block.to_vec())),
                    }
                }
                off += chunk.len() as u64;
            }
        }
        Ok(out
            .into_iter()
            .map(|(offset, d)| Extent {
                offset,
                data: Data(d.into()),
            })
            .collect())
    }

    fn initial_header(&self) -> io::Result<Header> {
        let err = |e: super::Error| io::Error::other(format!("reading the starting tree: {e}"));
        let mut inodes = Vec::new();
        let mut entries = Vec::new();
        let mut queue = std::collections::VecDeque::from([ROOT]);
        let mut seen = std::collections::BTreeSet::from([ROOT]);
        while let Some(ino) = queue.pop_front() {
            let st = self.getattr(ino).map_err(err)?;
            let mut inode = InitInode {
                ino,
                kind: st.kind,
                attrs: st.attrs,
                size: st.size,
                target: None,
                data: None,
                extents: Vec::new(),
                xattrs: Vec::new(),
            };
            for name in self.model.listxattr(ino).map_err(|e| err(e.into()))? {
                let value = self.model.getxattr(ino, &name).map_err(|e| err(e.into()))?;
                inode.xattrs.push(InitXattr {
                    name: Text(name),
                    value: Data(value),
                });
            }
            match st.kind {
                Kind::File if st.size > 0 => inode.extents = self.initial_extents(ino, st.size)?,
                Kind::Symlink => inode.target = Some(Data(self.readlink(ino).map_err(err)?)),
                Kind::Dir => {
                    for (name, child, _) in self.model.readdir(ino).map_err(|e| err(e.into()))? {
                        entries.push(InitEntry {
                            dir: ino,
                            name: Text(name),
                            ino: child,
                        });
                        if seen.insert(child) {
                            queue.push_back(child);
                        }
                    }
                }
                _ => {}
            }
            inodes.push(inode);
        }
        Ok(Header {
            durafs_trace: TRACE_VERSION,
            model: self.opts.persistence,
            inodes,
            entries,
        })
    }
}
