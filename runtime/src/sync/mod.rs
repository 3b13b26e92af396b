//! Process-shared synchronisation: `Lock`, `RLock`, `Semaphore`, `BoundedSemaphore`,
//! `Event`, `Condition`, `Barrier`, as in Python's `multiprocessing`.
//!
//! Every primitive lives in its own sealed memfd segment ([`crate::os::shm::SharedMemory`]), is
//! created before the processes that share it are started, and survives the death of any
//! of them: locks are robust, wakers never wait for waiters, a barrier breaks when a party
//! dies. Timeouts are `Option<Duration>` (`None` waits forever, zero tries once); use
//! [`timeout_from_secs`] for Python-style seconds.

mod barrier;
mod condition;
mod event;
mod guard;
mod lock;
mod semaphore;

pub use barrier::{Barrier, LIVENESS_SLICE, MAX_PARTIES};
pub use condition::Condition;
pub use event::Event;
pub use guard::{BoundedSemaphoreGuard, Guard, Guarded, LockGuard, RLockGuard, SemaphoreGuard};
pub use lock::{Lock, RLock};
pub use semaphore::{BoundedSemaphore, SEM_VALUE_MAX, Semaphore};

use std::time::Duration;

use crate::error::{Error, Result};

/// Converts Python-style timeout seconds into the `Option<Duration>` the primitives take.
///
/// Negative (and `-0.0`) means "try once" (`Some(Duration::ZERO)`), `+inf` or a value too
/// large for a `Duration` means "forever" (`None`), NaN is an error.
///
/// # Errors
///
/// [`Error::NanTimeout`] for NaN, as `Process::join_timeout_secs`. CPython names a NaN
/// timeout by the call it reaches ([`Error::python_for`](crate::Error::python_for)):
/// `OSError: [Errno 22] Invalid argument` from `Semaphore.acquire`, `Event.wait`,
/// `Condition.wait` and `Barrier.wait`, `ValueError: cannot convert float NaN to integer` from
/// `Queue.get` and `Connection.poll`; `Lock.acquire` and `RLock.acquire` accept it and acquire,
/// and `Queue.put` with room ignores it (deviations, decision 0013).
///
/// ```
/// use std::time::Duration;
/// use proclife::sync::timeout_from_secs;
/// assert_eq!(timeout_from_secs(-1.0).ok(), Some(Some(Duration::ZERO)));
/// assert_eq!(timeout_from_secs(f64::INFINITY).ok(), Some(None));
/// assert_eq!(timeout_from_secs(1e300).ok(), Some(None));
/// assert!(timeout_from_secs(f64::NAN).is_err());
/// ```
pub fn timeout_from_secs(secs: f64) -> Result<Option<Duration>> {
    crate::os::time::timeout_from_secs(secs).map_err(|()| Error::NanTimeout)
}
