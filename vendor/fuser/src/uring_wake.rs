//! Keeping the caller on its CPU when a ring thread answers it.
//!
//! The kernel routes a request to the queue of the CPU its caller runs on,
//! and the ring thread of that queue is pinned there. The commit that
//! answers the request wakes the caller (`fuse_request_end`) while the ring
//! thread is running on that CPU, so the scheduler places the caller on
//! another CPU if one is idle (`select_idle_sibling`). On an otherwise idle
//! machine the caller then changes CPU at almost every request, its next
//! request goes to the other queue, and every answer is a cross-CPU
//! wake-up of an idle CPU. Measured on the 2-vCPU VM of
//! `docs/fuse-over-io-uring.md` (fio, 16,384 random 4 KiB writes): the
//! caller migrated 8,625 times and reached 22k IOPS; pinned to one CPU it
//! reached 40k to 44k.
//!
//! A CPU whose runnable threads are all `SCHED_IDLE` counts as idle when
//! the woken task is placed (`sched_idle_cpu`, kernel/sched/fair.c), and a
//! `SCHED_OTHER` task waking there preempts a `SCHED_IDLE` one at once. So
//! the ring thread submits its commits as `SCHED_IDLE`, without waiting,
//! and returns to its own policy before it waits for the next request: the
//! caller wakes on this CPU (measured: 50 migrations, 37k to 42k IOPS).
//!
//! Only a pass that served one request hands off. When several callers
//! wait on one CPU (fio's four writers on two CPUs) they cannot all run
//! there, and the two extra system calls per pass cost more than they
//! save: handing off every pass made `write-4k-x4` 10 to 15% slower (323 to
//! 460 MiB/s against 362 to 537 without), one-request passes only left it
//! unchanged (370 to 549).
//!
//! // IMPORTANT: a `SCHED_IDLE` thread yields to every other thread of its
//! // CPU. Between the submit and the return to its policy the ring thread
//! // can be held off by a busy thread there, and that CPU's requests wait
//! // meanwhile. A submit that takes longer than [`SLOW_SUBMIT`] (the
//! // thread was held off, or the caller it woke ran that long) turns the
//! // hand-off off for [`BACKOFF_MIN`], doubling with each further slow
//! // submit up to [`BACKOFF_MAX`], back to the minimum after a fast one.
//! // Measured (fio randwrite-4k, the same VM): with `yes` on both CPUs,
//! // 37.9k IOPS with the hand-off, 37.6k and 51.8k without (noise); with
//! // `yes` and fio both pinned to CPU 0, the worst case, 24k to 25k
//! // against 28k to 30k without it and 11k to 13k over `/dev/fuse`.

use std::io;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering;
use std::time::Duration;
use std::time::Instant;

use log::error;
use log::warn;

/// A submit slower than this turns the hand-off off for a while.
pub(crate) const SLOW_SUBMIT: Duration = Duration::from_millis(1);
/// How long the hand-off stays off after a slow submit that followed a
/// fast one; each further slow submit doubles it, up to [`BACKOFF_MAX`].
pub(crate) const BACKOFF_MIN: Duration = Duration::from_millis(10);
/// The longest the hand-off stays off.
pub(crate) const BACKOFF_MAX: Duration = Duration::from_secs(1);

/// One ring thread's hand-off state.
pub(crate) struct HandOff {
    /// The thread's own policy (`SCHED_OTHER`, else the hand-off is off).
    enabled: bool,
    /// Off until then after a slow submit.
    off_until: Option<Instant>,
    /// The next back-off.
    backoff: Duration,
}

impl HandOff {
    /// For the calling thread: on when `wanted`, the thread runs under
    /// `SCHED_OTHER` (a real-time or batch policy chosen by the user is
    /// left alone) and may leave `SCHED_IDLE` again ([`can_leave_idle`]).
    pub(crate) fn new(wanted: bool) -> HandOff {
        // SAFETY: sched_getscheduler(0) reads the calling thread's policy.
        let policy = unsafe { libc::sched_getscheduler(0) };
        HandOff {
            enabled: wanted && policy == libc::SCHED_OTHER && can_leave_idle(),
            off_until: None,
            backoff: BACKOFF_MIN,
        }
    }

    /// Runs `submit` (which must not wait) with the hand-off when it is on
    /// (counted in `count`), else plainly.
    pub(crate) fn submit(
        &mut self,
        submit: impl FnOnce() -> io::Result<usize>,
        count: &AtomicU64,
    ) -> io::Result<usize> {
        if !self.active() {
            return submit();
        }
        if let Err(e) = set_policy(libc::SCHED_IDLE) {
            warn!("io_uring: SCHED_IDLE for the commit refused ({e}); hand-off off");
            self.enabled = false;
            return submit();
        }
        count.fetch_add(1, Ordering::Relaxed);
        let start = Instant::now();
        let result = submit();
        if let Err(e) = set_policy(libc::SCHED_OTHER) {
            // can_leave_idle() said it would not be refused: the thread
            // now stays SCHED_IDLE, and its queue can wait under load.
            error!("io_uring: back to SCHED_OTHER refused ({e}); this ring thread stays SCHED_IDLE");
            self.enabled = false;
        }
        if start.elapsed() > SLOW_SUBMIT {
            self.off_until = Some(Instant::now() + self.backoff);
            self.backoff = (self.backoff * 2).min(BACKOFF_MAX);
        } else {
            self.backoff = BACKOFF_MIN;
        }
        result
    }

    fn active(&mut self) -> bool {
        if !self.enabled {
            return false;
        }
        match self.off_until {
            Some(t) if Instant::now() < t => false,
            Some(_) => {
                self.off_until = None;
                true
            }
            None => true,
        }
    }
}

/// Whether the kernel lets the calling thread leave `SCHED_IDLE`
/// (`__sched_setscheduler`: `can_nice` at its nice value, that is
/// `CAP_SYS_NICE`, or an `RLIMIT_NICE` of at least 20 - nice). Without it
/// (a non-root daemon, or root in a container without `CAP_SYS_NICE`) a
/// thread that went `SCHED_IDLE` could not come back.
pub(crate) fn can_leave_idle() -> bool {
    has_cap_sys_nice() || nice_limit_allows()
}

/// The capability bit that lets a thread raise its scheduling priority.
const CAP_SYS_NICE: u32 = 23;

fn has_cap_sys_nice() -> bool {
    let Ok(status) = std::fs::read_to_string("/proc/thread-self/status") else {
        return false;
    };
    status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        .is_some_and(|caps| caps & (1 << CAP_SYS_NICE) != 0)
}

fn nice_limit_allows() -> bool {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into lim.
    if unsafe { libc::getrlimit(libc::RLIMIT_NICE, &mut lim) } != 0 {
        return false;
    }
    // SAFETY: gettid has no arguments; getpriority reads this thread's nice
    // value (-1 is also a valid nice value, so errno decides).
    let nice = unsafe {
        *libc::__errno_location() = 0;
        libc::getpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t)
    };
    // SAFETY: reads errno.
    if nice == -1 && unsafe { *libc::__errno_location() } != 0 {
        return false;
    }
    lim.rlim_cur >= (20 - i64::from(nice)) as libc::rlim_t
}

fn set_policy(policy: libc::c_int) -> io::Result<()> {
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: pid 0 is the calling thread; param is a valid sched_param.
    if unsafe { libc::sched_setscheduler(0, policy, &param) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_thread_is_back_to_its_policy_after_a_submit() {
        let mut h = HandOff::new(true);
        let n = AtomicU64::new(0);
        if !can_leave_idle() {
            assert!(!h.enabled, "a thread that could not come back stays");
            return;
        }
        assert!(h.enabled, "test threads run SCHED_OTHER");
        assert_eq!(h.submit(|| Ok(3), &n).unwrap(), 3);
        assert_eq!(n.load(Ordering::Relaxed), 1);
        // SAFETY: reads the calling thread's policy.
        assert_eq!(unsafe { libc::sched_getscheduler(0) }, libc::SCHED_OTHER);
        let e = h.submit(|| Err(io::Error::from_raw_os_error(libc::EBUSY)), &n);
        assert_eq!(e.unwrap_err().raw_os_error(), Some(libc::EBUSY));
        assert_eq!(unsafe { libc::sched_getscheduler(0) }, libc::SCHED_OTHER);
    }

    /// In a throwaway thread: what `can_leave_idle` says, and whether the
    /// thread could leave `SCHED_IDLE` again.
    fn guard_and_kernel(drop_sys_nice: bool) -> (bool, bool) {
        std::thread::spawn(move || {
            if drop_sys_nice {
                drop_cap_sys_nice();
            }
            let said = can_leave_idle();
            set_policy(libc::SCHED_IDLE).expect("any thread may go SCHED_IDLE");
            (said, set_policy(libc::SCHED_OTHER).is_ok())
        })
        .join()
        .unwrap()
    }

    /// Drops `CAP_SYS_NICE` from the calling thread (capabilities are per
    /// thread), as a daemon without it (non-root, or root in a container)
    /// runs.
    fn drop_cap_sys_nice() {
        #[repr(C)]
        struct Header {
            version: u32,
            pid: i32,
        }
        #[repr(C)]
        #[derive(Clone, Copy)]
        struct Data {
            effective: u32,
            permitted: u32,
            inheritable: u32,
        }
        let mut h = Header {
            version: 0x2008_0522,
            pid: 0,
        };
        let mut d = [Data {
            effective: 0,
            permitted: 0,
            inheritable: 0,
        }; 2];
        // SAFETY: capget/capset with a v3 header and two data words.
        unsafe {
            assert_eq!(libc::syscall(libc::SYS_capget, &mut h, d.as_mut_ptr()), 0);
            d[0].effective &= !(1 << CAP_SYS_NICE);
            d[0].permitted &= !(1 << CAP_SYS_NICE);
            assert_eq!(libc::syscall(libc::SYS_capset, &h, d.as_ptr()), 0);
        }
    }

    /// Regression: a thread without `CAP_SYS_NICE` cannot leave
    /// `SCHED_IDLE` (`can_nice` with the default `RLIMIT_NICE` of 0), so a
    /// hand-off there would have left the ring thread `SCHED_IDLE` for
    /// good. The guard agrees with the kernel with and without the
    /// capability.
    #[test]
    fn can_leave_idle_agrees_with_the_kernel() {
        let (said, came_back) = guard_and_kernel(false);
        assert_eq!(said, came_back);
        let (said, came_back) = guard_and_kernel(true);
        assert_eq!(said, came_back);
        if !nice_limit_allows() {
            assert!(!came_back, "without CAP_SYS_NICE the thread stays SCHED_IDLE");
        }
    }

    #[test]
    fn a_slow_submit_turns_the_hand_off_off_for_a_while() {
        if !can_leave_idle() {
            return;
        }
        let mut h = HandOff::new(true);
        let n = AtomicU64::new(0);
        let slow = || {
            // SAFETY: reads the calling thread's policy.
            let p = unsafe { libc::sched_getscheduler(0) };
            std::thread::sleep(SLOW_SUBMIT * 2);
            Ok(p as usize)
        };
        let mut policy_inside = h.submit(slow, &n).unwrap() as i32;
        assert_eq!(policy_inside, libc::SCHED_IDLE);
        h.submit(
            || {
                // SAFETY: reads the calling thread's policy.
                policy_inside = unsafe { libc::sched_getscheduler(0) };
                Ok(0)
            },
            &n,
        )
        .unwrap();
        assert_eq!(n.load(Ordering::Relaxed), 1, "the second went plainly");
        assert_eq!(policy_inside, libc::SCHED_OTHER, "off after a slow submit");
        assert_eq!(h.backoff, BACKOFF_MIN * 2, "doubled for the next one");
        assert!(!HandOff::new(false).active());
    }
}
