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
    /// For the calling thread: on when `wanted` and the thread runs under
    /// `SCHED_OTHER` (a real-time or batch policy chosen by the user is
    /// left alone).
    pub(crate) fn new(wanted: bool) -> HandOff {
        // SAFETY: sched_getscheduler(0) reads the calling thread's policy.
        let policy = unsafe { libc::sched_getscheduler(0) };
        HandOff {
            enabled: wanted && policy == libc::SCHED_OTHER,
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
            // Staying SCHED_IDLE would starve the queue under load.
            warn!("io_uring: back to SCHED_OTHER refused ({e}); hand-off off");
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
        assert!(h.enabled, "test threads run SCHED_OTHER");
        assert_eq!(h.submit(|| Ok(3), &n).unwrap(), 3);
        assert_eq!(n.load(Ordering::Relaxed), 1);
        // SAFETY: reads the calling thread's policy.
        assert_eq!(unsafe { libc::sched_getscheduler(0) }, libc::SCHED_OTHER);
        let e = h.submit(|| Err(io::Error::from_raw_os_error(libc::EBUSY)), &n);
        assert_eq!(e.unwrap_err().raw_os_error(), Some(libc::EBUSY));
        assert_eq!(unsafe { libc::sched_getscheduler(0) }, libc::SCHED_OTHER);
    }

    #[test]
    fn a_slow_submit_turns_the_hand_off_off_for_a_while() {
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
