//! The raw futex calls and the monotonic deadlines every wait in the runtime is measured by.
//!
//! This is the only module that issues `SYS_futex` and reads `CLOCK_MONOTONIC` directly.
//! All futexes are shared (no `FUTEX_PRIVATE_FLAG`): the words live in `MAP_SHARED` memory
//! that several processes map, possibly at different addresses.
//!
//! # Safety
//!
//! `futex(2)` only reads the word it is given; the word is borrowed as `&AtomicU32` for the
//! whole call, so it stays mapped and aligned while the kernel looks at it.
#![allow(unsafe_code)]

use std::cell::Cell;
use std::sync::Once;
use std::sync::atomic::AtomicU32;
use std::time::Duration;

use crate::error::{Error, Result};

/// `FUTEX_WAKE` from `linux/futex.h`.
const FUTEX_WAKE: libc::c_int = 1;
/// `FUTEX_WAIT_BITSET` from `linux/futex.h`: like `FUTEX_WAIT` but with an absolute
/// `CLOCK_MONOTONIC` timeout, so a retry after `EINTR` keeps the original deadline.
const FUTEX_WAIT_BITSET: libc::c_int = 9;
/// `FUTEX_BITSET_MATCH_ANY` from `linux/futex.h`.
const FUTEX_BITSET_MATCH_ANY: u32 = u32::MAX;

const NANOS_PER_SEC: i64 = 1_000_000_000;

/// A point on `CLOCK_MONOTONIC`, or "never".
///
/// Built once per blocking call from the caller's timeout; every retry (after `EINTR`, a
/// spurious wake-up or a liveness check) waits only for what is left.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Deadline {
    /// Seconds and nanoseconds on `CLOCK_MONOTONIC`; `None` waits forever.
    at: Option<(i64, i64)>,
}

/// The current `CLOCK_MONOTONIC` time as seconds and nanoseconds.
fn now() -> (i64, i64) {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec. `CLOCK_MONOTONIC` always exists on Linux,
    // so the call cannot fail; if it did, `ts` would stay at zero, which only makes every
    // deadline look later (never a panic, never an early return past a real deadline).
    unsafe {
        libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts);
    }
    (ts.tv_sec, ts.tv_nsec)
}

fn add(base: (i64, i64), d: Duration) -> Option<(i64, i64)> {
    let secs = i64::try_from(d.as_secs()).ok()?;
    let mut sec = base.0.checked_add(secs)?;
    let mut nsec = base.1 + i64::from(d.subsec_nanos());
    if nsec >= NANOS_PER_SEC {
        nsec -= NANOS_PER_SEC;
        sec = sec.checked_add(1)?;
    }
    Some((sec, nsec))
}

impl Deadline {
    /// A deadline `timeout` from now; `None`, or a timeout too large to represent, is
    /// "never" (no overflow panic, T34).
    pub(crate) fn after(timeout: Option<Duration>) -> Deadline {
        Deadline {
            at: timeout.and_then(|d| add(now(), d)),
        }
    }

    /// Whether the deadline has passed (never true for "never").
    pub(crate) fn expired(&self) -> bool {
        match self.at {
            None => false,
            Some(at) => now() >= at,
        }
    }

    /// What is left, `Duration::ZERO` once expired, `None` for "never".
    pub(crate) fn remaining(&self) -> Option<Duration> {
        let at = self.at?;
        let (sec, nsec) = now();
        if (sec, nsec) >= at {
            return Some(Duration::ZERO);
        }
        let mut ds = at.0 - sec;
        let mut dn = at.1 - nsec;
        if dn < 0 {
            dn += NANOS_PER_SEC;
            ds -= 1;
        }
        // Both are non-negative here because `at > now`.
        Some(Duration::new(
            u64::try_from(ds).unwrap_or(0),
            u32::try_from(dn).unwrap_or(0),
        ))
    }

    /// The earlier of this deadline and `slice` from now: used by waits that must wake up
    /// now and then to re-check something (a party's liveness).
    pub(crate) fn capped(&self, slice: Duration) -> Deadline {
        let cap = Deadline::after(Some(slice));
        match (self.at, cap.at) {
            (Some(a), Some(b)) => Deadline { at: Some(a.min(b)) },
            (None, _) => cap,
            (Some(_), None) => *self,
        }
    }

    /// The absolute time as a `timespec` for calls that take `CLOCK_MONOTONIC` deadlines.
    pub(crate) fn timespec(&self) -> Option<libc::timespec> {
        self.at.map(|(sec, nsec)| libc::timespec {
            tv_sec: sec,
            tv_nsec: nsec,
        })
    }
}

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

thread_local! {
    /// This thread's kernel id, 0 until first asked for (and again in a forked child).
    static TID: Cell<i32> = const { Cell::new(0) };
}

static ATFORK: Once = Once::new();

/// Runs in the child after `fork(3)`: the forking thread has a new id there.
extern "C" fn forget_tid_in_child() {
    forget_cached_tid();
}

/// Forgets the cached thread id of the calling thread.
///
/// `fork(3)` does this through a `pthread_atfork` handler; a start method that creates a
/// child without glibc's `fork` (a raw `clone`/`clone3`) must call it first thing in the
/// child, before the child touches any lock.
pub(crate) fn forget_cached_tid() {
    TID.with(|tid| tid.set(0));
}

/// The calling thread's kernel id, which robust mutexes and our owner fields use.
///
/// Cached per thread: `gettid(2)` is a real system call and would dominate the cost of an
/// uncontended lock.
pub(crate) fn gettid() -> i32 {
    ATFORK.call_once(|| {
        // SAFETY: registers a handler that only resets a const-initialised thread-local
        // `Cell` (no allocation, no locks), which is safe in a freshly forked child.
        // Registration fails only with ENOMEM; the cache is then never reset on fork, so
        // fall back to not caching at all.
        let rc = unsafe { libc::pthread_atfork(None, None, Some(forget_tid_in_child)) };
        if rc != 0 {
            NO_CACHE.store(true, std::sync::atomic::Ordering::Relaxed);
        }
    });
    if NO_CACHE.load(std::sync::atomic::Ordering::Relaxed) {
        return nix::unistd::gettid().as_raw();
    }
    TID.with(|tid| match tid.get() {
        0 => {
            let real = nix::unistd::gettid().as_raw();
            tid.set(real);
            real
        }
        cached => cached,
    })
}

static NO_CACHE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn huge_timeouts_are_forever() {
        assert_eq!(
            Deadline::after(Some(Duration::MAX))
                .timespec()
                .map(|t| t.tv_sec),
            None
        );
        assert_eq!(Deadline::after(None).remaining(), None);
        assert!(!Deadline::after(None).expired());
    }

    #[test]
    fn zero_timeout_is_expired() {
        let d = Deadline::after(Some(Duration::ZERO));
        assert!(d.expired());
        assert_eq!(d.remaining(), Some(Duration::ZERO));
    }

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
    fn capped_is_never_later() {
        let d = Deadline::after(None).capped(Duration::from_millis(5));
        assert!(d.remaining().is_some_and(|r| r <= Duration::from_millis(5)));
    }
}
