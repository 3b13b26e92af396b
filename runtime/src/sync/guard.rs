//! RAII guards for [`Lock`], [`RLock`], [`Semaphore`] and [`BoundedSemaphore`]: Python's
//! `with lock:`.
//!
//! A guard is returned by a successful acquisition and releases exactly once when it drops,
//! also while the thread unwinds from a panic, so an early return or a `?` cannot leave the
//! object held. [`Guard::release`] releases early and reports the error a drop has to
//! swallow. The `acquire`/`release` pair stays available for code that releases from another
//! place than it acquired (a semaphore handed to another process, CPython's `release()` from
//! a different thread).
#![forbid(unsafe_code)]

use std::time::Duration;

use super::{BoundedSemaphore, Lock, RLock, Semaphore};
use crate::error::Result;

/// The primitives a [`Guard`] can hold; sealed (only this crate's types).
pub trait Guarded: private::Sealed {
    /// Releases one acquisition: `release()` of the primitive.
    ///
    /// # Errors
    ///
    /// As the primitive's `release()`.
    fn release_one(&self) -> Result<()>;
}

mod private {
    pub trait Sealed {}
}

/// One acquisition of `L`, released when the guard drops.
#[must_use = "the primitive is released as soon as the guard drops"]
#[derive(Debug)]
pub struct Guard<'a, L: Guarded> {
    held: &'a L,
}

/// A held [`Lock`].
pub type LockGuard<'a> = Guard<'a, Lock>;
/// One level of a held [`RLock`].
pub type RLockGuard<'a> = Guard<'a, RLock>;
/// One permit of a [`Semaphore`].
pub type SemaphoreGuard<'a> = Guard<'a, Semaphore>;
/// One permit of a [`BoundedSemaphore`].
pub type BoundedSemaphoreGuard<'a> = Guard<'a, BoundedSemaphore>;

impl<L: Guarded> Guard<'_, L> {
    /// Releases now, reporting what the primitive's `release()` reports.
    ///
    /// # Errors
    ///
    /// As the primitive's `release()` ([`Error::NotOwner`](crate::Error::NotOwner) for a
    /// lock whose owner-died state was left unmarked and then lost, for example).
    pub fn release(self) -> Result<()> {
        let held = self.held;
        std::mem::forget(self);
        held.release_one()
    }
}

impl<L: Guarded> Drop for Guard<'_, L> {
    fn drop(&mut self) {
        // A drop cannot report an error; `Guard::release` is there for callers who want it.
        let _ = self.held.release_one();
    }
}

/// Wraps an acquisition's outcome: `Some(guard)` when acquired, `None` when timed out.
fn guard_if<L: Guarded>(held: &L, acquired: bool) -> Option<Guard<'_, L>> {
    // `then`, not `then_some`: an eagerly built guard would be dropped, releasing what the
    // caller holds, when the acquisition timed out.
    acquired.then(|| Guard { held })
}

macro_rules! guarded {
    ($ty:ty, $what:literal) => {
        impl private::Sealed for $ty {}

        impl Guarded for $ty {
            fn release_one(&self) -> Result<()> {
                self.release()
            }
        }

        impl $ty {
            #[doc = concat!("Acquires ", $what, " as [`acquire`](Self::acquire) does and returns a guard")]
            /// that releases it on drop: `Ok(None)` when `timeout` passed first.
            ///
            /// # Errors
            ///
            /// As [`acquire`](Self::acquire); after an
            /// [`Error::OwnerDied`](crate::Error::OwnerDied) the primitive is held but no guard
            /// is returned, so the caller repairs, marks and releases it by hand.
            pub fn acquire_guard(&self, timeout: Option<Duration>) -> Result<Option<Guard<'_, $ty>>> {
                Ok(guard_if(self, self.acquire(timeout)?))
            }
        }
    };
}

guarded!(Lock, "the lock");
guarded!(RLock, "one level of the lock");
guarded!(Semaphore, "one permit");
guarded!(BoundedSemaphore, "one permit");

impl Lock {
    /// Acquires the lock, waiting as long as it takes, and returns a guard that releases it
    /// on drop: `let _held = lock.lock()?;` is Python's `with lock:`.
    ///
    /// # Errors
    ///
    /// As [`Lock::acquire`].
    pub fn lock(&self) -> Result<LockGuard<'_>> {
        let acquired = self.acquire(None)?;
        assert!(
            acquired,
            "an acquisition without a deadline cannot time out"
        );
        Ok(Guard { held: self })
    }
}

impl RLock {
    /// Acquires one level of the lock, waiting as long as it takes, and returns a guard that
    /// releases that level on drop (Python's `with rlock:`).
    ///
    /// # Errors
    ///
    /// As [`RLock::acquire`].
    pub fn lock(&self) -> Result<RLockGuard<'_>> {
        let acquired = self.acquire(None)?;
        assert!(
            acquired,
            "an acquisition without a deadline cannot time out"
        );
        Ok(Guard { held: self })
    }
}
