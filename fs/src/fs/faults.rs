//! What a volume does when a fault fires ([`crate::faults`]): fail the
//! call, hold it, cut the power, or mark a write torn for the next cut.
//!
//! Invariants:
//! * A call failed by an `error` fault took no effect: it never reached
//!   the model.
//! * A fault's cut is the volume's one cut ([`DuraFs::cut`]); the mount's
//!   owner is told through the hook [`DuraFs::on_fault_cut`] set, and tears
//!   the mount down as after the control file's `cut`.
//! * A write marked torn survives the next cut as the fault chose whatever
//!   the policy chose for it (`forced`), as long as it is still pending
//!   then; a later fsync of its file makes it durable whole, as on a disk.
//!   No lock is held while a `delay` fault holds a call.

use super::degraded::Degraded;
use super::{DuraFs, Error, Result};
use crate::faults::{Act, FaultError, Faults, Fired, Split, When};
use crate::model::crash::{CrashOptions, CrashState};
use crate::model::rng::SplitMix64;
use crate::model::{FsError, PendingOp, Survival};
use crate::trace::TraceOp;
use parking_lot::Mutex;
use std::collections::BTreeMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};

thread_local! {
    /// Set while the control file's command runs on this thread.
    static EXEMPT: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Runs `f` with no fault watching the calls it makes on this thread: the
/// control file's commands (`sync`) are the harness's, not the program's.
pub(crate) fn exempt<T>(f: impl FnOnce() -> T) -> T {
    struct Reset(bool);
    impl Drop for Reset {
        fn drop(&mut self) {
            EXEMPT.with(|e| e.set(self.0));
        }
    }
    let _reset = Reset(EXEMPT.with(|e| e.replace(true)));
    f()
}

fn exempted() -> bool {
    EXEMPT.with(std::cell::Cell::get)
}

/// How a fault forces a pending write to survive the next cut.
#[derive(Clone, Debug)]
enum Forced {
    Keep(Survival),
    Drop,
}

/// The faults of a volume and what they left for the next cut.
#[derive(Default)]
pub(super) struct FaultState {
    pub(super) list: Faults,
    /// Writes the next cut keeps as a fault chose, by sequence number, with
    /// the id of the fault.
    forced: Mutex<BTreeMap<u64, (u64, Forced)>>,
    on_cut: Mutex<Vec<Box<dyn Fn() + Send + Sync>>>,
    /// Set once a journal failure degraded the volume.
    pub(super) degraded: std::sync::OnceLock<Degraded>,
    remount: AtomicBool,
}

impl fmt::Debug for FaultState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FaultState")
            .field("faults", &self.list)
            .field("forced", &self.forced.lock().len())
            .field("remount", &self.remount.load(Ordering::Relaxed))
            .finish()
    }
}

/// The byte ranges of a write at `offset` of `len` bytes that a torn
/// split keeps.
fn torn_ranges(split: &Split, seed: u64, offset: u64, len: u64) -> Vec<(u64, u64)> {
    let end = offset + len;
    match split {
        Split::Parts { parts, keep } => {
            let part = len.div_ceil(*parts).max(1);
            keep.iter()
                .map(|k| (offset + (k - 1) * part, (offset + k * part).min(end)))
                .filter(|(a, b)| a < b)
                .collect()
        }
        Split::Sectors { sector } => {
            let mut rng = SplitMix64::new(seed);
            let mut out: Vec<(u64, u64)> = Vec::new();
            let mut at = offset;
            while at < end {
                let next = ((at / sector) + 1) * sector;
                let piece = (at, next.min(end));
                if rng.next_u64() & 1 == 1 {
                    match out.last_mut() {
                        Some(last) if last.1 == piece.0 => last.1 = piece.1,
                        _ => out.push(piece),
                    }
                }
                at = piece.1;
            }
            out
        }
    }
}

impl DuraFs {
    /// Arms the fault `spec` describes: the words of the control file's
    /// `fault add` (e.g. `cut --op fsync --path '^/wal' --nth 3`). Returns
    /// its id.
    pub fn add_fault(&self, spec: &str) -> std::result::Result<u64, FaultError> {
        let id = self.faults.list.add_line(spec)?;
        log::info!("durafs: fault #{id} armed: {spec}");
        Ok(id)
    }

    /// As [`DuraFs::add_fault`], from words already split.
    pub fn add_fault_words(&self, words: &[String]) -> std::result::Result<u64, FaultError> {
        let id = self.faults.list.add_words(words)?;
        log::info!(
            "durafs: fault #{id} armed: {}",
            crate::faults::spec_text(words)
        );
        Ok(id)
    }

    /// The volume's faults (list, clear).
    pub fn faults(&self) -> &Faults {
        &self.faults.list
    }

    /// Adds what runs once a fault has cut the power: the mount tears
    /// itself down, `durafs run` ends the run.
    pub fn on_fault_cut(&self, f: Box<dyn Fn() + Send + Sync>) {
        self.faults.on_cut.lock().push(f);
    }

    /// A fault's cut asked for the post-crash state to be mounted again.
    pub fn remount_requested(&self) -> bool {
        self.faults.remount.load(Ordering::SeqCst)
    }

    fn fault_cut(&self, fired: &Fired, opts: CrashOptions, remount: bool) {
        match self.cut(opts) {
            Ok(s) => log::warn!(
                "durafs: fault #{} ({}) cut the power ({}, seed {}): lost {} operations, {} bytes",
                fired.id,
                fired.spec,
                s.policy,
                s.seed,
                s.ops_lost,
                s.bytes_lost
            ),
            Err(e) => log::error!("durafs: fault #{} cut the power: {e}", fired.id),
        }
        if remount {
            self.faults.remount.store(true, Ordering::SeqCst);
        }
        for notify in self.faults.on_cut.lock().iter() {
            notify();
        }
    }

    /// Logs a firing and records it in the trace (a failed fsync is
    /// recorded as its own event, [`TraceOp::FsyncFailed`]).
    fn fired(&self, fired: &Fired, op: &TraceOp, paths: &[String]) {
        let call = op.summary(paths);
        let act = fired.act.label();
        log::warn!(
            "durafs: fault #{} ({}) fired: {act} on {call}",
            fired.id,
            fired.spec,
        );
        if !matches!(fired.act, Act::FsyncFail { journal: false, .. }) {
            self.record_event(TraceOp::Fault {
                id: fired.id,
                act,
                call,
            });
        }
    }

    /// Acts on the faults that fire before call `op`: `Err` fails it (it
    /// takes no effect); `Some` replaces it (an fsync that fails part-way,
    /// whose caller gets [`Error::WritebackFailed`]).
    pub(super) fn faults_before(
        &self,
        count: u64,
        op: &TraceOp,
        paths: &[String],
    ) -> Result<Option<TraceOp>> {
        if exempted() {
            return Ok(None);
        }
        for fired in self.faults.list.check(When::Before, count, op, paths) {
            self.fired(&fired, op, paths);
            match &fired.act {
                Act::Delay(d) => std::thread::sleep(*d),
                Act::Error(errno) => return Err(Error::Fault(*errno)),
                Act::Cut { opts, remount } => {
                    self.fault_cut(&fired, *opts, *remount);
                    return Err(FsError::Cut.into());
                }
                // Strict and nothing written back: the dirty pages stay
                // pending, and a retried fsync persists them.
                Act::FsyncFail { journal: true, .. } => {
                    self.degrade();
                    return Err(Error::WritebackFailed);
                }
                Act::FsyncFail { seed, .. } => {
                    if let TraceOp::Fsync { ino, datasync } = op {
                        return Ok(Some(TraceOp::FsyncFailed {
                            ino: *ino,
                            datasync: *datasync,
                            sem: self.opts.fsync_failure,
                            seed: *seed,
                        }));
                    }
                }
                Act::Torn { .. } | Act::Sequence { .. } => {}
            }
        }
        Ok(None)
    }

    /// Acts on the faults that fire after call `op` took effect (`count`
    /// trace events so far): `Err` when one cut the power.
    pub(super) fn faults_after(&self, count: u64, op: &TraceOp, paths: &[String]) -> Result<()> {
        if exempted() {
            return Ok(());
        }
        let mut cut = None;
        for fired in self.faults.list.check(When::After, count, op, paths) {
            self.fired(&fired, op, paths);
            match &fired.act {
                Act::Delay(d) => std::thread::sleep(*d),
                Act::Cut { opts, remount } => cut = Some((fired.clone(), *opts, *remount)),
                Act::Torn {
                    split,
                    seed,
                    cut: now,
                } => {
                    if let TraceOp::Write {
                        ino, offset, data, ..
                    } = op
                    {
                        let len = data.0.len() as u64;
                        let persisted = torn_ranges(split, *seed, *offset, len);
                        self.force(
                            fired.id,
                            *ino,
                            *offset,
                            len,
                            Forced::Keep(Survival::Torn {
                                persisted,
                                garbage: None,
                            }),
                        );
                    }
                    if *now {
                        cut = Some((fired.clone(), CrashOptions::default(), false));
                    }
                }
                Act::Sequence { keep, cut: now } => {
                    if let TraceOp::Write {
                        ino, offset, data, ..
                    } = op
                    {
                        let how = if *keep {
                            Forced::Keep(Survival::Full)
                        } else {
                            Forced::Drop
                        };
                        self.force(fired.id, *ino, *offset, data.0.len() as u64, how);
                    }
                    if *now {
                        cut = Some((fired.clone(), CrashOptions::default(), false));
                    }
                }
                Act::Error(_) | Act::FsyncFail { .. } => {}
            }
        }
        match cut {
            Some((fired, opts, remount)) => {
                self.fault_cut(&fired, opts, remount);
                Err(FsError::Cut.into())
            }
            None => Ok(()),
        }
    }

    /// The journal's write failed: the volume degrades as its
    /// filesystem does (`degraded`).
    fn degrade(&self) {
        use crate::model::FsyncFailure;
        let how = match self.opts.fsync_failure {
            FsyncFailure::Xfs | FsyncFailure::Strict => Degraded::Shutdown,
            FsyncFailure::Btrfs => Degraded::TransactionAborted,
            FsyncFailure::Ext4 => Degraded::JournalAborted,
        };
        if self.faults.degraded.set(how).is_ok() {
            log::error!("durafs: the journal's write failed: {}", how.describe());
        }
    }

    /// How the volume degraded, if it did.
    pub fn degraded(&self) -> Option<Degraded> {
        self.faults.degraded.get().copied()
    }

    /// Fails a read of a shut-down volume.
    pub(super) fn check_reads(&self) -> Result<()> {
        match self.faults.degraded.get() {
            Some(d) if d.refuses_reads() => Err(super::degraded::shut_down()),
            _ => Ok(()),
        }
    }

    fn force(&self, id: u64, ino: crate::model::Ino, offset: u64, len: u64, how: Forced) {
        match self.model.pending_write_seq(ino, offset, len) {
            Some(seq) => {
                self.faults.forced.lock().insert(seq, (id, how));
            }
            None => log::warn!("durafs: fault #{id}: the write is no longer pending"),
        }
    }

    /// `state` with the writes faults forced kept or dropped as they chose
    /// (those still pending).
    pub(super) fn forced(&self, pending: &[PendingOp], mut state: CrashState) -> CrashState {
        let forced = self.faults.forced.lock();
        if forced.is_empty() {
            return state;
        }
        let mut kept: BTreeMap<usize, Survival> = state.kept.drain(..).collect();
        let mut ids = Vec::new();
        for (i, p) in pending.iter().enumerate() {
            let Some((id, how)) = forced.get(&p.seq) else {
                continue;
            };
            match how {
                Forced::Keep(s) => kept.insert(i, s.clone()),
                Forced::Drop => kept.remove(&i),
            };
            ids.push(format!("#{id}"));
        }
        state.kept = kept.into_iter().collect();
        if !ids.is_empty() {
            ids.dedup();
            state.description = format!(
                "{}; writes torn by fault {}",
                state.description,
                ids.join(", ")
            );
        }
        state
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn torn_parts_and_sectors_cover_the_chosen_bytes() {
        let parts = Split::Parts {
            parts: 3,
            keep: vec![1, 3],
        };
        assert_eq!(torn_ranges(&parts, 0, 100, 30), [(100, 110), (120, 130)]);
        assert_eq!(torn_ranges(&parts, 0, 0, 7), [(0, 3), (6, 7)]);
        let sectors = Split::Sectors { sector: 512 };
        let a = torn_ranges(&sectors, 5, 100, 2000);
        assert_eq!(a, torn_ranges(&sectors, 5, 100, 2000), "seeded");
        for (s, e) in &a {
            assert!(*s >= 100 && *e <= 2100 && s < e);
            assert!(*s == 100 || s % 512 == 0, "sector aligned: {a:?}");
        }
    }

    #[test]
    fn a_fault_that_fires_is_a_trace_event_and_a_failed_fsync_its_own() {
        use crate::fs::FsOptions;
        use crate::model::{Attrs, Kind, ROOT};
        let dir = tempfile::tempdir().unwrap();
        let fs = DuraFs::open(dir.path(), FsOptions::default()).unwrap();
        fs.start_trace(true, None).unwrap();
        let attrs = Attrs {
            mode: 0o644,
            ..Attrs::default()
        };
        let f = fs.create(ROOT, b"f", Kind::File, attrs, None).unwrap().ino;
        fs.add_fault("error ENOSPC --op write").unwrap();
        fs.add_fault("fsync-fail").unwrap();
        assert_eq!(fs.write(f, 0, b"x").unwrap_err().errno(), libc::ENOSPC);
        fs.write(f, 0, b"y").unwrap();
        assert!(matches!(fs.fsync(f, false), Err(Error::WritebackFailed)));
        let trace = fs.finish_trace().unwrap().unwrap();
        let names: Vec<&str> = trace.events.iter().map(|e| e.op.name()).collect();
        assert_eq!(names, ["create", "fault", "write", "fsync-failed"]);
        let e = &trace.events[1];
        assert_eq!(
            e.op.summary(&e.paths),
            "fault #1: error ENOSPC on write /f [0, 1)"
        );
        assert_eq!(
            fs.op_count(),
            4,
            "fault events are numbered as the trace numbers them"
        );
    }
}
