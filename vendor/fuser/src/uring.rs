//! FUSE over io_uring (durafs fork of fuser 0.18.0; Linux 6.14 and later).
//!
//! `FUSE_INIT` still goes over `/dev/fuse`. When the session asked for it
//! ([`IoUringConfig`]) and the kernel offers `FUSE_OVER_IO_URING` (only with
//! `/sys/module/fuse/parameters/enable_uring` set), the INIT reply takes it,
//! and [`crate::Session::run`] starts one thread per possible CPU
//! (`fuser-ring-N`). Each owns one io_uring (`IORING_SETUP_SQE128`, which the
//! kernel requires) and registers `queue_depth` entries for queue `N`. The
//! kernel hands a request to the queue of the CPU its caller runs on, and
//! switches the connection from `/dev/fuse` to the rings only once every
//! queue has an entry. A request arrives as a completion on its entry; the
//! reply is written into the same entry and submitted as
//! `COMMIT_AND_FETCH`, which also re-arms the entry: one `io_uring_enter`
//! per batch of requests instead of a `read` and a `writev` per request.
//! Forgets, interrupts and notifications stay on `/dev/fuse`, served by the
//! classic threads.
//!
//! Byte layouts (`include/uapi/linux/fuse.h`, protocol 7.42 and later):
//!
//! ```text
//! header buffer, iov[0]: struct fuse_uring_req_header (288 bytes)
//!   0    in_out[128]     request: fuse_in_header (40 B)
//!                        reply:   fuse_out_header (16 B: len, error, unique)
//!   128  op_in[128]      the opcode's first argument (e.g. fuse_write_in):
//!                        in_header.len - 40 - payload_sz bytes
//!   256  ring_ent_in_out u64 flags | u64 commit_id | u32 payload_sz
//!                        | u32 padding | u64 reserved
//!
//! entry buffer: one page-aligned allocation
//!   0 .. HEAD                  room to rebuild the request in front of
//!                              the payload
//!   HEAD .. HEAD + payload     iov[1], the payload: the request's other
//!                              arguments (names, write data), then the
//!                              reply's body; payload_sz bytes of either
//!
//! command area of the SQE: struct fuse_uring_cmd_req (24 of 80 bytes)
//!   0  u64 flags | 8  u64 commit_id | 16  u16 qid | 18  u8 padding[6]
//! ```
//!
//! A request is handed to the same parser as a `/dev/fuse` read, laid out
//! as that read would be (in_header, op_in, payload, contiguous): the 40 + n
//! header bytes are copied to just before the payload, so write data is not
//! copied. A reply is written straight into the entry when the request has
//! no payload (nothing still borrows that memory), else staged and copied
//! in once the request has been dispatched.

use std::fmt;
use std::io;
use std::io::IoSlice;
use std::os::fd::AsRawFd;
use std::os::fd::FromRawFd;
use std::os::fd::OwnedFd;
use std::os::fd::RawFd;
use std::sync::Arc;
use std::sync::Condvar;
use std::sync::Mutex;
use std::sync::atomic::AtomicU8;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::AtomicUsize;
use std::sync::atomic::Ordering;

use io_uring::IoUring;
use io_uring::cqueue;
use io_uring::opcode;
use io_uring::squeue;
use io_uring::types;
use log::debug;
use log::error;
use log::warn;

use crate::Filesystem;
use crate::channel::ChannelSender;
use crate::ll::Operation;
use crate::reply::ReplyEmpty;
use crate::request::ReplyTo;
use crate::request::RequestWithSender;
use crate::session::SessionEventLoop;
use crate::uring_wake::HandOff;

/// Serving FUSE requests over io_uring rings (Linux 6.14 and later, with
/// `/sys/module/fuse/parameters/enable_uring` set).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IoUringConfig {
    /// Entries per queue (one queue per possible CPU): requests a queue
    /// holds at once. Each entry has a payload buffer of the negotiated
    /// maximum request size.
    pub queue_depth: u16,
    /// Submit commits as `SCHED_IDLE`, so that the caller a commit wakes
    /// stays on its CPU (see `uring_wake`).
    pub hand_off: bool,
}

impl Default for IoUringConfig {
    fn default() -> Self {
        IoUringConfig {
            queue_depth: 8,
            hand_off: true,
        }
    }
}

/// What the rings of a session are doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IoUringStats {
    /// Queues (one per possible CPU, each served by its own thread).
    pub queues: usize,
    /// Requests served through the rings so far.
    pub requests: u64,
    /// Submits of commits made as `SCHED_IDLE` (`IoUringConfig::hand_off`).
    pub hand_offs: u64,
}

const HEADER_SIZE: usize = 288;
const IN_HEADER_SIZE: usize = 40;
const OUT_HEADER_SIZE: usize = 16;
const OP_IN: usize = 128;
const OP_IN_MAX: usize = 128;
const ENT_IN_OUT: usize = 256;
/// Room in front of the payload for in_header and op_in.
const HEAD: usize = 256;
const _: () = assert!(HEAD >= IN_HEADER_SIZE + OP_IN_MAX);
const CMD_REGISTER: u32 = 1;
const CMD_COMMIT_AND_FETCH: u32 = 2;
/// `user_data` of the poll on the session's stop eventfd.
const STOP: u64 = u64::MAX;
/// An entry's reply was handed over (by whichever thread replied).
const REPLIED: u8 = 1;
/// The ring thread has finished dispatching the entry's request.
const DISPATCHED: u8 = 2;

/// The state a session's ring threads share.
pub(crate) struct Shared {
    config: IoUringConfig,
    payload_size: usize,
    queues: usize,
    requests: AtomicU64,
    hand_offs: AtomicU64,
    stop: OwnedFd,
    /// Set with the stop: the connection is gone, so the kernel no longer
    /// writes into the entries.
    gone: std::sync::atomic::AtomicBool,
    ready: Mutex<Readiness>,
    ready_changed: Condvar,
}

#[derive(Default)]
struct Readiness {
    started: usize,
    error: Option<String>,
}

impl fmt::Debug for Shared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Shared")
            .field("config", &self.config)
            .field("payload_size", &self.payload_size)
            .field("queues", &self.queues)
            .finish_non_exhaustive()
    }
}

impl Shared {
    /// `payload_size`: the kernel's `max(8192, max_write, max_pages * PAGE_SIZE)`.
    pub(crate) fn new(config: IoUringConfig, payload_size: usize) -> io::Result<Self> {
        // SAFETY: eventfd takes any flags; a descriptor it returns is ours.
        let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: fd is a fresh descriptor owned by nothing else.
        let stop = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(Shared {
            config,
            payload_size: payload_size.max(8192),
            queues: possible_cpus(),
            requests: AtomicU64::new(0),
            hand_offs: AtomicU64::new(0),
            stop,
            gone: std::sync::atomic::AtomicBool::new(false),
            ready: Mutex::new(Readiness::default()),
            ready_changed: Condvar::new(),
        })
    }

    pub(crate) fn queues(&self) -> usize {
        self.queues
    }

    pub(crate) fn stats(&self) -> IoUringStats {
        IoUringStats {
            queues: self.queues,
            requests: self.requests.load(Ordering::Relaxed),
            hand_offs: self.hand_offs.load(Ordering::Relaxed),
        }
    }

    /// Wakes every ring thread out of its wait; each then returns.
    /// `gone`: the connection has ended (else the entries' memory is
    /// leaked, as the kernel may still write into it).
    pub(crate) fn stop(&self, gone: bool) {
        self.gone.store(gone, Ordering::Release);
        let one: u64 = 1;
        // SAFETY: writes 8 bytes from a live u64 to our eventfd.
        let n = unsafe { libc::write(self.stop.as_raw_fd(), (&raw const one).cast(), 8) };
        if n != 8 {
            warn!("io_uring: waking the ring threads: {}", io::Error::last_os_error());
        }
    }

    fn report(&self, qid: u16, result: &io::Result<()>) {
        let mut r = self.ready.lock().unwrap_or_else(|p| p.into_inner());
        r.started += 1;
        if let Err(e) = result {
            if r.error.is_none() {
                r.error = Some(format!("queue {qid}: {e}"));
            }
        }
        self.ready_changed.notify_all();
    }

    /// Blocks until every queue's thread has registered its entries (or
    /// failed to).
    pub(crate) fn wait_started(&self) -> io::Result<IoUringStats> {
        let mut r = self.ready.lock().unwrap_or_else(|p| p.into_inner());
        while r.started < self.queues && r.error.is_none() {
            r = self
                .ready_changed
                .wait(r)
                .unwrap_or_else(|p| p.into_inner());
        }
        match &r.error {
            Some(e) => Err(io::Error::other(format!("FUSE over io_uring: {e}"))),
            None => Ok(self.stats()),
        }
    }
}

/// Queues the kernel creates: one per possible CPU (`num_possible_cpus`).
fn possible_cpus() -> usize {
    // SAFETY: sysconf has no preconditions.
    let n = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_CONF) };
    usize::try_from(n).unwrap_or(1).max(1)
}

/// One owned anonymous mapping the kernel reads and writes: zero pages
/// until touched, so an entry's payload costs memory only up to the
/// largest request it carried.
struct Buffer {
    ptr: *mut u8,
    len: usize,
}

// SAFETY: the buffer is plain memory; who may touch it when is the entry
// protocol's business (see `Entry`).
unsafe impl Send for Buffer {}
// SAFETY: as above.
unsafe impl Sync for Buffer {}

impl Buffer {
    /// No memory (unmaps nothing).
    fn empty() -> Self {
        Buffer {
            ptr: std::ptr::null_mut(),
            len: 0,
        }
    }

    fn new(len: usize) -> io::Result<Self> {
        // SAFETY: a fresh private anonymous mapping; the result is checked.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        Ok(Buffer {
            ptr: ptr.cast(),
            len,
        })
    }

    fn read_u32(&self, at: usize) -> u32 {
        assert!(at + 4 <= self.len);
        // SAFETY: in bounds (asserted); unaligned read of plain bytes.
        unsafe { self.ptr.add(at).cast::<u32>().read_unaligned() }
    }

    fn read_u64(&self, at: usize) -> u64 {
        assert!(at + 8 <= self.len);
        // SAFETY: as in read_u32.
        unsafe { self.ptr.add(at).cast::<u64>().read_unaligned() }
    }

    fn write_u32(&self, at: usize, v: u32) {
        assert!(at + 4 <= self.len);
        // SAFETY: as in read_u32; nothing borrows these bytes (entry protocol).
        unsafe { self.ptr.add(at).cast::<u32>().write_unaligned(v) }
    }

    /// Copies `src` to `at`. The caller holds the entry, and no live
    /// reference covers `at .. at + src.len()`.
    fn copy_in(&self, at: usize, src: &[u8]) {
        assert!(at + src.len() <= self.len);
        // SAFETY: in bounds (asserted); src is ours, so no overlap.
        unsafe { std::ptr::copy_nonoverlapping(src.as_ptr(), self.ptr.add(at), src.len()) }
    }

    /// Copies `len` bytes within the buffer or from `other`.
    fn copy_from(&self, at: usize, other: &Buffer, from: usize, len: usize) {
        assert!(at + len <= self.len && from + len <= other.len);
        assert!(!std::ptr::eq(self, other));
        // SAFETY: both ranges in bounds (asserted), distinct allocations.
        unsafe { std::ptr::copy_nonoverlapping(other.ptr.add(from), self.ptr.add(at), len) }
    }
}

impl Drop for Buffer {
    fn drop(&mut self) {
        if self.ptr.is_null() {
            return;
        }
        // SAFETY: mapped in `new` with this length; nothing uses it after.
        if unsafe { libc::munmap(self.ptr.cast(), self.len) } != 0 {
            warn!("io_uring: unmapping an entry buffer: {}", io::Error::last_os_error());
        }
    }
}

/// One ring, its submission queue shared under a lock: the ring thread
/// submits commits and waits; a reply made on another thread after the
/// dispatch returned submits its own commit.
struct Queue {
    ring: IoUring<squeue::Entry128, cqueue::Entry>,
    sq_lock: Mutex<()>,
}

impl Queue {
    fn push(&self, sqe: &squeue::Entry128) -> io::Result<()> {
        let _guard = self.sq_lock.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            // SAFETY: sq_lock makes this the only submission queue handle.
            let mut sq = unsafe { self.ring.submission_shared() };
            // SAFETY: the SQE's buffers (an entry's iovecs) live as long as
            // the entry, which outlives the ring's use of them.
            if unsafe { sq.push(sqe) }.is_ok() {
                return Ok(());
            }
            drop(sq);
            self.ring.submitter().submit()?;
        }
    }
}

/// A ring entry: the buffers registered with the kernel for one request at
/// a time. Between the completion that delivers a request and the commit
/// that answers it, the entry is userspace's; then the kernel's again.
pub(crate) struct Entry {
    index: u64,
    qid: u16,
    header: Buffer,
    buf: Buffer,
    payload_size: usize,
    iov: [libc::iovec; 2],
    state: AtomicU8,
    commit_id: AtomicU64,
    /// Payload bytes of the request being served: while it is dispatched
    /// the parsed request borrows `buf[.. HEAD + payload_in]`.
    payload_in: AtomicUsize,
    staged: Mutex<Staged>,
    queue: Arc<Queue>,
    /// The entry has received a request (so it is registered).
    served: AtomicU8,
    /// The kernel no longer uses the buffers: they may be unmapped.
    released: std::sync::atomic::AtomicBool,
}

impl Drop for Entry {
    fn drop(&mut self) {
        if !self.released.load(Ordering::Acquire) {
            // IMPORTANT: a registered entry's buffers stay mapped while the
            // kernel may still copy a request into them.
            std::mem::forget(std::mem::replace(&mut self.header, Buffer::empty()));
            std::mem::forget(std::mem::replace(&mut self.buf, Buffer::empty()));
        }
    }
}

// SAFETY: the raw iovec pointers point into the entry's own buffers.
unsafe impl Send for Entry {}
// SAFETY: as above; shared access goes through atomics and locks.
unsafe impl Sync for Entry {}

#[derive(Default)]
struct Staged {
    /// The whole reply (out header and body), when it could not be
    /// written into the entry at once.
    bytes: Vec<u8>,
    /// The body is in the payload buffer already: its length.
    direct: Option<usize>,
}

impl Entry {
    fn new(index: u64, qid: u16, payload_size: usize, queue: Arc<Queue>) -> io::Result<Self> {
        let header = Buffer::new(HEADER_SIZE)?;
        let buf = Buffer::new(HEAD + payload_size)?;
        let iov = [
            libc::iovec {
                iov_base: header.ptr.cast(),
                iov_len: HEADER_SIZE,
            },
            libc::iovec {
                // SAFETY: HEAD is within the allocation.
                iov_base: unsafe { buf.ptr.add(HEAD) }.cast(),
                iov_len: payload_size,
            },
        ];
        Ok(Entry {
            index,
            qid,
            header,
            buf,
            payload_size,
            iov,
            state: AtomicU8::new(0),
            commit_id: AtomicU64::new(0),
            payload_in: AtomicUsize::new(0),
            staged: Mutex::new(Staged::default()),
            queue,
            served: AtomicU8::new(0),
            released: std::sync::atomic::AtomicBool::new(false),
        })
    }

    fn sqe(&self, cmd_op: u32, commit_id: u64) -> squeue::Entry128 {
        let mut cmd = [0u8; 80];
        cmd[8..16].copy_from_slice(&commit_id.to_ne_bytes());
        cmd[16..18].copy_from_slice(&self.qid.to_ne_bytes());
        let mut sqe = opcode::UringCmd80::new(types::Fixed(0), cmd_op)
            .cmd(cmd)
            .addr(Some(self.iov.as_ptr() as u64))
            .build()
            .user_data(self.index);
        if cmd_op == CMD_REGISTER {
            // IMPORTANT: REGISTER reads two iovecs and checks `sqe->len`,
            // which the io-uring crate has no setter for. struct
            // io_uring_sqe: u8 opcode, u8 flags, u16 ioprio, s32 fd,
            // u64 off, u64 addr, then u32 len at byte 24.
            const _: () = assert!(size_of::<squeue::Entry128>() == 128);
            // SAFETY: Entry128 is repr(C), starting with the 64-byte SQE.
            unsafe {
                (&raw mut sqe).cast::<u8>().add(24).cast::<u32>().write_unaligned(2);
            }
        }
        sqe
    }

    /// Takes a reply: into the entry at once if nothing borrows the
    /// payload buffer, else into the staging buffer.
    fn stage(&self, data: &[IoSlice<'_>]) -> io::Result<()> {
        let total: usize = data.iter().map(|s| s.len()).sum();
        if total < OUT_HEADER_SIZE || total - OUT_HEADER_SIZE > self.payload_size {
            return Err(io::Error::other(format!(
                "a reply of {total} bytes does not fit a ring entry of {} bytes",
                self.payload_size
            )));
        }
        let mut staged = self.staged.lock().unwrap_or_else(|p| p.into_inner());
        if self.payload_in.load(Ordering::Acquire) == 0 {
            let mut pos = 0;
            for s in data {
                let bytes: &[u8] = s;
                let mut rest = bytes;
                if pos < OUT_HEADER_SIZE {
                    let n = rest.len().min(OUT_HEADER_SIZE - pos);
                    self.header.copy_in(pos, &rest[..n]);
                    pos += n;
                    rest = &rest[n..];
                }
                self.buf.copy_in(HEAD + pos - OUT_HEADER_SIZE, rest);
                pos += rest.len();
            }
            staged.direct = Some(total - OUT_HEADER_SIZE);
        } else {
            staged.bytes.clear();
            for s in data {
                staged.bytes.extend_from_slice(s);
            }
            staged.direct = None;
        }
        Ok(())
    }

    /// Answers the request in the entry and hands the entry back to the
    /// kernel. `submit`: submit now (a reply from outside the ring thread,
    /// which submits its own at its next wait).
    fn commit(&self, submit: bool) -> io::Result<()> {
        let mut staged = self.staged.lock().unwrap_or_else(|p| p.into_inner());
        let body = match staged.direct.take() {
            Some(n) => n,
            None => {
                let bytes = std::mem::take(&mut staged.bytes);
                self.header.copy_in(0, &bytes[..OUT_HEADER_SIZE]);
                self.buf.copy_in(HEAD, &bytes[OUT_HEADER_SIZE..]);
                staged.bytes = bytes;
                staged.bytes.len() - OUT_HEADER_SIZE
            }
        };
        drop(staged);
        // stage() bounded the body by payload_size, a u32 from the kernel.
        self.header
            .write_u32(ENT_IN_OUT + 16, u32::try_from(body).unwrap_or(u32::MAX));
        let commit_id = self.commit_id.load(Ordering::Acquire);
        self.payload_in.store(0, Ordering::Release);
        // The entry may deliver its next request once the SQE is in.
        self.state.store(0, Ordering::Release);
        self.queue.push(&self.sqe(CMD_COMMIT_AND_FETCH, commit_id))?;
        if submit {
            self.queue.ring.submitter().submit()?;
        }
        Ok(())
    }
}

/// The reply side of a request that came in through a ring entry.
#[derive(Clone)]
pub(crate) struct UringReply {
    entry: Arc<Entry>,
    ch: ChannelSender,
}

impl fmt::Debug for UringReply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UringReply")
            .field("qid", &self.entry.qid)
            .field("entry", &self.entry.index)
            .finish()
    }
}

impl UringReply {
    /// The session's `/dev/fuse` channel (backing files for passthrough).
    pub(crate) fn channel(&self) -> &ChannelSender {
        &self.ch
    }

    pub(crate) fn send(&self, data: &[IoSlice<'_>]) -> io::Result<()> {
        self.entry.stage(data)?;
        let before = self.entry.state.fetch_or(REPLIED, Ordering::AcqRel);
        if before & REPLIED != 0 {
            return Err(io::Error::other("a second reply to one request"));
        }
        if before & DISPATCHED != 0 {
            return self.entry.commit(true);
        }
        Ok(())
    }
}

/// Pins the calling thread to `cpu`, as the kernel routes a caller on that
/// CPU to this queue. Only locality depends on it: a refusal is logged.
fn pin_to_cpu(cpu: usize) {
    // SAFETY: an all-zero cpu_set_t is an empty set; CPU_SET stays in
    // bounds for cpu < CPU_SETSIZE, checked first.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if cpu >= libc::CPU_SETSIZE as usize {
            return;
        }
        libc::CPU_SET(cpu, &mut set);
        if libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), &set) != 0 {
            debug!(
                "io_uring: pinning ring {cpu}: {}",
                io::Error::last_os_error()
            );
        }
    }
}

/// Serves queue `qid` until the connection ends or the session stops.
pub(crate) fn serve<FS: Filesystem>(
    se: &SessionEventLoop<FS>,
    dev: RawFd,
    qid: u16,
    shared: &Shared,
) -> io::Result<()> {
    /// Reports a start that never finished (a panic), so that
    /// `wait_started` does not wait for it forever.
    struct Unreported<'a>(&'a Shared, u16, bool);
    impl Drop for Unreported<'_> {
        fn drop(&mut self) {
            if !self.2 {
                let e = io::Error::other("the ring thread ended while starting");
                self.0.report(self.1, &Err(e));
            }
        }
    }
    let mut guard = Unreported(shared, qid, false);
    pin_to_cpu(usize::from(qid));
    let mut early = Vec::new();
    let started = start(dev, qid, shared, &mut early);
    shared.report(qid, &started.as_ref().map(|_| ()).map_err(clone_err));
    guard.2 = true;
    let (queue, entries) = started?;
    let ch = se.ch.sender();
    let mut live = entries.len();
    let mut done = Vec::with_capacity(entries.len() + 1);
    done.extend(early);
    let mut hand_off = HandOff::new(shared.config.hand_off);
    loop {
        let served = done.len();
        for (user_data, res) in done.drain(..) {
            if user_data == STOP {
                if shared.gone.load(Ordering::Acquire) {
                    release(&entries);
                } else {
                    warn!("io_uring: queue {qid} stopped on a live connection; its buffers stay mapped");
                }
                return Ok(());
            }
            let Some(entry) = usize::try_from(user_data).ok().and_then(|i| entries.get(i)) else {
                warn!("io_uring: completion for unknown entry {user_data}");
                continue;
            };
            if res == 0 {
                entry.served.store(1, Ordering::Relaxed);
                serve_one(se, entry, &ch, shared);
            } else if entry.served.load(Ordering::Relaxed) == 0
                && (res == -libc::EAGAIN || res == -libc::EINTR)
            {
                queue.push(&entry.sqe(CMD_REGISTER, 0))?;
            } else {
                if res != -libc::ENOTCONN && res != -libc::ECANCELED {
                    warn!(
                        "io_uring: queue {qid} entry {user_data}: {}",
                        io::Error::from_raw_os_error(-res)
                    );
                }
                live -= 1;
                if live == 0 {
                    // Every entry was torn down: the kernel holds none.
                    release(&entries);
                    return Ok(());
                }
            }
        }
        let mut waited = Ok(0);
        if served == 1 {
            // The commit wakes its caller: see uring_wake (why only one).
            waited = hand_off.submit(|| queue.ring.submitter().submit(), &shared.hand_offs);
        }
        if waited.is_ok() {
            waited = queue.ring.submitter().submit_and_wait(1);
        }
        match waited {
            Ok(_) => {}
            Err(e) if e.raw_os_error() == Some(libc::EINTR) => {}
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {}
            Err(e) => return Err(e),
        }
        // SAFETY: only this thread reads the completion queue.
        let cq = unsafe { queue.ring.completion_shared() };
        done.extend(cq.map(|c| (c.user_data(), c.result())));
    }
}

fn release(entries: &[Arc<Entry>]) {
    for e in entries {
        e.released.store(true, Ordering::Release);
    }
}

fn clone_err(e: &io::Error) -> io::Error {
    io::Error::new(e.kind(), e.to_string())
}

type Started = (Arc<Queue>, Vec<Arc<Entry>>);

/// Builds queue `qid`'s ring and registers its entries. REGISTER is issued
/// inline by `io_uring_enter`, so a refusal is in the completion queue when
/// the submit returns; requests that already arrived go to `early`.
fn start(dev: RawFd, qid: u16, shared: &Shared, early: &mut Vec<(u64, i32)>) -> io::Result<Started> {
    let depth = u32::from(shared.config.queue_depth.max(1));
    let ring = IoUring::<squeue::Entry128, cqueue::Entry>::builder()
        .setup_cqsize(2 * (depth + 1))
        .build(depth + 1)
        .map_err(|e| io::Error::new(e.kind(), format!("creating a ring: {e}")))?;
    ring.submitter()
        .register_files(&[dev])
        .map_err(|e| io::Error::new(e.kind(), format!("registering /dev/fuse: {e}")))?;
    let queue = Arc::new(Queue {
        ring,
        sq_lock: Mutex::new(()),
    });
    let entries = (0..u64::from(depth))
        .map(|i| Entry::new(i, qid, shared.payload_size, Arc::clone(&queue)).map(Arc::new))
        .collect::<io::Result<Vec<_>>>()?;
    for entry in &entries {
        queue.push(&entry.sqe(CMD_REGISTER, 0))?;
    }
    let poll = opcode::PollAdd::new(types::Fd(shared.stop.as_raw_fd()), libc::POLLIN as u32)
        .build()
        .user_data(STOP);
    queue.push(&poll.into())?;
    queue.ring.submitter().submit()?;
    // SAFETY: only this thread reads the completion queue.
    let cq = unsafe { queue.ring.completion_shared() };
    for c in cq {
        if c.user_data() != STOP && c.result() < 0 && c.result() != -libc::EAGAIN {
            let e = io::Error::from_raw_os_error(-c.result());
            return Err(io::Error::new(e.kind(), format!("registering ring entries: {e}")));
        }
        early.push((c.user_data(), c.result()));
    }
    debug!("io_uring: queue {qid}: {depth} entries registered");
    Ok((queue, entries))
}

/// Rebuilds the request in `entry` as a `/dev/fuse` read would deliver it,
/// dispatches it, and commits the reply once both are done.
fn serve_one<FS: Filesystem>(
    se: &SessionEventLoop<FS>,
    entry: &Arc<Entry>,
    ch: &ChannelSender,
    shared: &Shared,
) {
    shared.requests.fetch_add(1, Ordering::Relaxed);
    let len = entry.header.read_u32(0) as usize;
    let commit_id = entry.header.read_u64(ENT_IN_OUT + 8);
    let payload_sz = entry.header.read_u32(ENT_IN_OUT + 16) as usize;
    entry.commit_id.store(commit_id, Ordering::Release);
    let reply = UringReply {
        entry: Arc::clone(entry),
        ch: ch.clone(),
    };
    let arg0 = len
        .checked_sub(IN_HEADER_SIZE + payload_sz)
        .filter(|&n| n <= OP_IN_MAX && payload_sz <= entry.payload_size);
    match arg0 {
        Some(arg0) if arg0 % 8 == 0 => {
            let start = HEAD - IN_HEADER_SIZE - arg0;
            entry.buf.copy_from(start, &entry.header, 0, IN_HEADER_SIZE);
            entry.buf.copy_from(HEAD - arg0, &entry.header, OP_IN, arg0);
            entry.payload_in.store(payload_sz, Ordering::Release);
            // SAFETY: the entry is ours until committed, so the kernel does
            // not write it; replies write buf[HEAD..] only while
            // payload_in is 0, when this slice ends at HEAD. start is
            // 8-aligned (page-aligned buffer, HEAD and arg0 multiples of 8).
            let data = unsafe { std::slice::from_raw_parts(entry.buf.ptr.add(start), len) };
            dispatch(se, reply, data);
        }
        Some(arg0) => {
            // The parser needs 8-byte alignment: rebuild in a scratch buffer.
            let mut scratch = vec![0u64; len.div_ceil(8)];
            // SAFETY: the u64 buffer holds at least len bytes.
            let bytes = unsafe { std::slice::from_raw_parts_mut(scratch.as_mut_ptr().cast::<u8>(), len) };
            // SAFETY: in-bounds reads of the entry's buffers, which are ours.
            unsafe {
                std::ptr::copy_nonoverlapping(entry.header.ptr, bytes.as_mut_ptr(), IN_HEADER_SIZE);
                std::ptr::copy_nonoverlapping(entry.header.ptr.add(OP_IN), bytes.as_mut_ptr().add(IN_HEADER_SIZE), arg0);
                std::ptr::copy_nonoverlapping(entry.buf.ptr.add(HEAD), bytes.as_mut_ptr().add(IN_HEADER_SIZE + arg0), payload_sz);
            }
            dispatch(se, reply, bytes);
        }
        None => {
            error!(
                "io_uring: malformed request in queue {} entry {}: length {len}, payload {payload_sz}",
                entry.qid, entry.index
            );
            let header = crate::ll::fuse_abi::fuse_out_header {
                len: OUT_HEADER_SIZE as u32,
                error: -libc::EIO,
                unique: commit_id,
            };
            let bytes = zerocopy::IntoBytes::as_bytes(&header);
            if let Err(e) = reply.send(&[IoSlice::new(bytes)]) {
                error!("io_uring: answering a malformed request: {e}");
            }
        }
    }
    let before = entry.state.fetch_or(DISPATCHED, Ordering::AcqRel);
    if before & REPLIED != 0 {
        if let Err(e) = entry.commit(false) {
            error!("io_uring: committing a reply in queue {}: {e}", entry.qid);
        }
    }
}

fn dispatch<FS: Filesystem>(se: &SessionEventLoop<FS>, reply: UringReply, data: &[u8]) {
    let unique = u64::from_ne_bytes(data.get(8..16).and_then(|b| b.try_into().ok()).unwrap_or([0; 8]));
    let fallback = reply.clone();
    match RequestWithSender::new(ReplyTo::Uring(reply), data) {
        Some(req) => {
            if let Ok(Operation::Destroy(_)) = req.request.operation() {
                req.reply::<ReplyEmpty>().ok();
            } else {
                req.dispatch(se);
            }
        }
        None => {
            // The parser logged why; the kernel still waits for an answer.
            let header = crate::ll::fuse_abi::fuse_out_header {
                len: OUT_HEADER_SIZE as u32,
                error: -libc::EIO,
                unique,
            };
            let bytes = zerocopy::IntoBytes::as_bytes(&header);
            if let Err(e) = fallback.send(&[IoSlice::new(bytes)]) {
                error!("io_uring: answering an unparsable request: {e}");
            }
        }
    }
}
