//! The thread whose system call durafs is serving: the FUSE layer names
//! it (the request's pid is the caller's thread id) for the duration of
//! the callback, so that the core can capture its stack
//! ([`crate::stacks`]) while it is blocked, without the core knowing
//! FUSE.

use std::cell::Cell;

thread_local! {
    static CALLER: Cell<Option<u32>> = const { Cell::new(None) };
}

/// Names the caller of the request served on this thread until dropped.
pub(crate) struct Serving(Option<u32>);

/// The request served on this thread comes from thread `tid` (0: from
/// the kernel itself, named as none).
pub(crate) fn serving(tid: u32) -> Serving {
    let tid = (tid != 0).then_some(tid);
    Serving(CALLER.with(|c| c.replace(tid)))
}

impl Drop for Serving {
    fn drop(&mut self) {
        CALLER.with(|c| c.set(self.0));
    }
}

/// The thread whose call this thread is serving, if a FUSE callback named
/// one.
pub(crate) fn current() -> Option<u32> {
    CALLER.with(Cell::get)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_caller_is_named_while_served_and_forgotten_after() {
        assert_eq!(current(), None);
        {
            let _outer = serving(42);
            assert_eq!(current(), Some(42));
            {
                let _inner = serving(0);
                assert_eq!(current(), None);
            }
            assert_eq!(current(), Some(42));
        }
        assert_eq!(current(), None);
    }
}
