//! The raw futex calls: wait on a shared word until a [`Deadline`], wake its waiters.
//!
//! This is the only module that issues `SYS_futex`.
//! All futexes are shared (no `FUTEX_PRIVATE_FLAG`): the words live in `MAP_SHARED` memory
//! that several processes map, possibly at different addresses.
//!
//! # Safety
//!
//! `futex(2)` only reads the word it is given; the word is borrowed as `&AtomicU32` for the
//! whole call, so it stays mapped and aligned while the kernel looks at it.
#![allow(unsafe_code)]

use std::sync::atomic::AtomicU32;
use std::time::Duration;

use super::time::Deadline;
use crate::error::{Error, Result};

/// `FUTEX_WAIT` from `linux/futex.h`: the timeout is relative, on `CLOCK_MONOTONIC`.
const FUTEX_WAIT: libc::c_int = 0;
/// `FUTEX_WAKE` from `linux/futex.h`.
const FUTEX_WAKE: libc::c_int = 1;
/// `FUTEX_WAIT_BITSET` from `linux/futex.h`: like `FUTEX_WAIT` but with an absolute
/// `CLOCK_MONOTONIC` timeout, so a retry after `EINTR` keeps the original deadline.
const FUTEX_WAIT_BITSET: libc::c_int = 9;
/// `FUTEX_BITSET_MATCH_ANY` from `linux/futex.h`.
const FUTEX_BITSET_MATCH_ANY: u32 = u32::MAX;

/// How a [`wait`] ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Wake {
    /// Woken, interrupted, or the word no longer held the expected value: re-check.
    Retry,
    /// The deadline passed.
    TimedOut,
}

/// Sleeps while `word == expected`, until woken or until `deadline`.
///
/// Returns [`Wake::Retry`] on a wake-up, on `EINTR` and when the word had already changed
/// (`EAGAIN`): the caller re-checks its condition and calls again with the same deadline.
///
/// # Errors
///
/// `Error::Os { call: "futex", .. }` for an unexpected errno (`EFAULT`, `EINVAL`, `ENOSYS`).
pub(crate) fn wait(word: &AtomicU32, expected: u32, deadline: &Deadline) -> Result<Wake> {
    let ts = deadline.timespec();
    let ts_ptr = ts
        .as_ref()
        .map_or(std::ptr::null(), |t| t as *const libc::timespec);
    // SAFETY: `word` is a live, aligned 32-bit atomic (see the module's `# Safety`); `ts_ptr`
    // is null or points at `ts`, which outlives the call. FUTEX_WAIT_BITSET reads the word
    // and the timespec and writes nothing.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            FUTEX_WAIT_BITSET,
            expected,
            ts_ptr,
            std::ptr::null::<u32>(),
            FUTEX_BITSET_MATCH_ANY,
        )
    };
    outcome(rc)
}

/// Sleeps while `word == expected`, until woken or for at most `slice` (`FUTEX_WAIT`, a
/// relative timeout: no clock read before the call, which waits that wake up now and then
/// to re-check something, with no deadline of their own, do not need).
///
/// Returns as [`wait`]: [`Wake::TimedOut`] once `slice` passed; a retry after
/// [`Wake::Retry`] sleeps a whole `slice` again.
///
/// # Errors
///
/// As [`wait`].
pub(crate) fn wait_slice(word: &AtomicU32, expected: u32, slice: Duration) -> Result<Wake> {
    let ts = libc::timespec {
        tv_sec: libc::time_t::try_from(slice.as_secs()).unwrap_or(libc::time_t::MAX),
        tv_nsec: libc::c_long::from(slice.subsec_nanos()),
    };
    // SAFETY: as in `wait`; `ts` outlives the call. FUTEX_WAIT reads the word and the
    // timespec and writes nothing.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            FUTEX_WAIT,
            expected,
            &ts as *const libc::timespec,
            std::ptr::null::<u32>(),
            0u32,
        )
    };
    outcome(rc)
}

/// What a `FUTEX_WAIT*` call's return value and `errno` mean.
fn outcome(rc: libc::c_long) -> Result<Wake> {
    if rc == 0 {
        return Ok(Wake::Retry);
    }
    match nix::errno::Errno::last() {
        nix::errno::Errno::EAGAIN | nix::errno::Errno::EINTR => Ok(Wake::Retry),
        nix::errno::Errno::ETIMEDOUT => Ok(Wake::TimedOut),
        errno => Err(Error::os("futex", errno)),
    }
}

/// Wakes up to `n` processes sleeping in [`wait`] on `word`; returns how many woke.
///
/// Never blocks, whatever the waiters do or whether they are still alive.
pub(crate) fn wake(word: &AtomicU32, n: u32) -> usize {
    let n = i32::try_from(n).unwrap_or(i32::MAX);
    // SAFETY: as in `wait`; FUTEX_WAKE only looks the word's address up in the kernel's
    // wait queues.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            FUTEX_WAKE,
            n,
            std::ptr::null::<libc::timespec>(),
            std::ptr::null::<u32>(),
            0u32,
        )
    };
    // FUTEX_WAKE fails only for a bad address or operation, which the types rule out.
    usize::try_from(rc).unwrap_or(0)
}

/// Wakes every waiter on `word`.
pub(crate) fn wake_all(word: &AtomicU32) -> usize {
    wake(word, u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wait_on_changed_word_returns_at_once() {
        let word = AtomicU32::new(1);
        let d = Deadline::after(Some(Duration::from_secs(5)));
        assert_eq!(wait(&word, 0, &d).ok(), Some(Wake::Retry));
    }

    #[test]
    fn wait_times_out() {
        let word = AtomicU32::new(0);
        let d = Deadline::after(Some(Duration::from_millis(20)));
        let mut outcome = Wake::Retry;
        while outcome == Wake::Retry && !d.expired() {
            outcome = wait(&word, 0, &d).unwrap_or(Wake::TimedOut);
        }
        assert!(d.expired());
        assert_eq!(wake(&word, 1), 0);
    }

    #[test]
    fn wait_slice_returns_at_once_or_times_out() {
        let word = AtomicU32::new(1);
        assert_eq!(
            wait_slice(&word, 0, Duration::from_secs(5)).ok(),
            Some(Wake::Retry),
            "the word already differs"
        );
        let word = AtomicU32::new(0);
        let mut outcome = Wake::Retry;
        // A spurious wake-up returns Retry; the slice is short, so this ends soon.
        for _ in 0..1000 {
            outcome = wait_slice(&word, 0, Duration::from_millis(5)).unwrap_or(Wake::Retry);
            if outcome == Wake::TimedOut {
                break;
            }
        }
        assert_eq!(
            outcome,
            Wake::TimedOut,
            "a 5 ms slice with no wake-up times out"
        );
    }
}
