//! The one clock of the runtime: [`Deadline`], a point on `CLOCK_MONOTONIC` or "never".
//!
//! Every wait in the runtime (futex, pthread mutex, `poll`) is bounded by a `Deadline`; this
//! is the only module that reads `CLOCK_MONOTONIC` directly.
//!
//! # Safety
//!
//! `clock_gettime` writes one `timespec` that lives on the caller's stack.
#![allow(unsafe_code)]

use std::time::Duration;

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

/// Converts a Python-style timeout in seconds: negative (and `-0.0`) means "check once"
/// (`Some(Duration::ZERO)`), `+inf` and values too large for a `Duration` mean no timeout
/// (`None`); `Err(())` for NaN, which each caller reports with its own error (CPython
/// refuses NaN differently in `Process.join` and in the synchronisation primitives).
pub(crate) fn timeout_from_secs(secs: f64) -> std::result::Result<Option<Duration>, ()> {
    if secs.is_nan() {
        return Err(());
    }
    if secs <= 0.0 {
        return Ok(Some(Duration::ZERO));
    }
    Ok(Duration::try_from_secs_f64(secs).ok())
}

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
    fn capped_is_never_later() {
        let d = Deadline::after(None).capped(Duration::from_millis(5));
        assert!(d.remaining().is_some_and(|r| r <= Duration::from_millis(5)));
    }
}
