//! `Semaphore` and `BoundedSemaphore`: process-shared counters on a futex.
//!
//! The segment holds the count (the futex word), the number of sleepers and the bound.
//! `release` increments the count and wakes the sleepers; it never waits for them.
//! Permits are not owned: when a process dies holding some, they are lost, and `acquire`
//! still honours its timeout (T22, as in CPython).
//! The segment's header is a [`SemaphoreHeader`].
#![forbid(unsafe_code)]

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use crate::children::parent_watch;
use crate::children::status::{BlockedOn, blocked};
use crate::error::{Error, Result};
use crate::os::futex::{self, Wake};
use crate::os::layout::SemaphoreHeader;
use crate::os::shm::Segment;
use crate::os::time::Deadline;

/// The largest count, as glibc's `SEM_VALUE_MAX`.
pub const SEM_VALUE_MAX: u32 = i32::MAX as u32;

/// No bound: the `bound` word of an unbounded semaphore.
const UNBOUNDED: u32 = u32::MAX;

#[derive(Debug)]
struct SemCore {
    seg: Segment<SemaphoreHeader>,
}

impl SemCore {
    fn new(value: u32, bound: u32) -> Result<SemCore> {
        if value > SEM_VALUE_MAX {
            return Err(Error::InvalidArgument(
                "semaphore value exceeds SEM_VALUE_MAX",
            ));
        }
        let seg = Segment::new(0, |header: &SemaphoreHeader, _| {
            header.value.store(value, Ordering::SeqCst);
            header.bound.store(bound, Ordering::SeqCst);
            Ok(())
        })?;
        Ok(SemCore { seg })
    }

    fn from_fd(fd: OwnedFd) -> Result<SemCore> {
        Ok(SemCore {
            seg: Segment::from_fd(fd)?,
        })
    }

    fn value(&self) -> &AtomicU32 {
        &self.seg.header().value
    }

    fn sleepers(&self) -> &AtomicU32 {
        &self.seg.header().sleepers
    }

    fn bound(&self) -> &AtomicU32 {
        &self.seg.header().bound
    }

    fn try_take(&self) -> bool {
        self.value()
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |v| v.checked_sub(1))
            .is_ok()
    }

    fn acquire(&self, timeout: Option<Duration>) -> Result<bool> {
        if self.try_take() {
            return Ok(true);
        }
        let deadline = Deadline::after(timeout);
        if deadline.expired() {
            return Ok(false);
        }
        let _blocked = blocked(BlockedOn::Semaphore);
        loop {
            self.sleepers().fetch_add(1, Ordering::SeqCst);
            let wake = parent_watch::futex_wait(self.value(), 0, &deadline);
            self.sleepers().fetch_sub(1, Ordering::SeqCst);
            let wake = wake?;
            if self.try_take() {
                return Ok(true);
            }
            if wake == Wake::TimedOut || deadline.expired() {
                return Ok(false);
            }
        }
    }

    fn release(&self) -> Result<()> {
        let bound = self.bound().load(Ordering::SeqCst);
        let limit = bound.min(SEM_VALUE_MAX);
        self.value()
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |v| {
                (v < limit).then_some(v + 1)
            })
            // CPython words both (a bounded semaphore's bound, SEM_VALUE_MAX) the same way.
            .map_err(|_| Error::TooManyReleases("semaphore or lock released too many times"))?;
        // Wake every sleeper, not one: a woken sleeper may die before it takes the permit,
        // and the others must not sleep on with a permit available.
        if self.sleepers().load(Ordering::SeqCst) > 0 {
            futex::wake_all(self.value());
        }
        Ok(())
    }
}

/// A process-shared counting semaphore (`multiprocessing.Semaphore`).
///
/// A negative initial value cannot be written (`u32`); one above [`SEM_VALUE_MAX`] is
/// [`Error::InvalidArgument`].
#[derive(Debug)]
pub struct Semaphore {
    core: SemCore,
}

impl Semaphore {
    /// Creates a semaphore holding `value` permits.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] above [`SEM_VALUE_MAX`] (CPython: `OverflowError: Python
    /// int too large to convert to C int`); [`Error::NoSpace`]/[`Error::Os`].
    pub fn new(value: u32) -> Result<Semaphore> {
        Ok(Semaphore {
            core: SemCore::new(value, UNBOUNDED)?,
        })
    }

    /// Rebuilds a semaphore from the fd of its segment.
    ///
    /// # Errors
    ///
    /// [`Error::Malformed`] when the fd is not a sealed segment large enough.
    pub fn from_fd(fd: OwnedFd) -> Result<Semaphore> {
        Ok(Semaphore {
            core: SemCore::from_fd(fd)?,
        })
    }

    /// Takes a permit, waiting at most `timeout`; `Ok(false)` when it passed.
    ///
    /// # Errors
    ///
    /// [`Error::Os`] for an unexpected futex failure; [`Error::ParentDied`] when this wait has
    /// no timeout, runs in a child and outlives the parent (decision 0018; CPython waits
    /// forever).
    pub fn acquire(&self, timeout: Option<Duration>) -> Result<bool> {
        self.core.acquire(timeout)
    }

    /// Returns a permit and wakes the waiters; never blocks.
    ///
    /// # Errors
    ///
    /// [`Error::TooManyReleases`] when the count is already [`SEM_VALUE_MAX`] (CPython:
    /// `ValueError: semaphore or lock released too many times`).
    pub fn release(&self) -> Result<()> {
        self.core.release()
    }

    /// The current count (`sem_getvalue`); a snapshot that may change at once.
    pub fn get_value(&self) -> u32 {
        self.core.value().load(Ordering::SeqCst)
    }
}

impl AsFd for Semaphore {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.core.seg.as_fd()
    }
}

/// A semaphore whose count may never exceed its initial value
/// (`multiprocessing.BoundedSemaphore`).
#[derive(Debug)]
pub struct BoundedSemaphore {
    core: SemCore,
}

impl BoundedSemaphore {
    /// Creates a bounded semaphore holding (and bounded by) `value` permits.
    ///
    /// # Errors
    ///
    /// As [`Semaphore::new`].
    pub fn new(value: u32) -> Result<BoundedSemaphore> {
        Ok(BoundedSemaphore {
            core: SemCore::new(value, value)?,
        })
    }

    /// Rebuilds a bounded semaphore from the fd of its segment.
    ///
    /// # Errors
    ///
    /// [`Error::Malformed`] when the fd is not a sealed segment large enough.
    pub fn from_fd(fd: OwnedFd) -> Result<BoundedSemaphore> {
        Ok(BoundedSemaphore {
            core: SemCore::from_fd(fd)?,
        })
    }

    /// See [`Semaphore::acquire`].
    ///
    /// # Errors
    ///
    /// As [`Semaphore::acquire`].
    pub fn acquire(&self, timeout: Option<Duration>) -> Result<bool> {
        self.core.acquire(timeout)
    }

    /// Returns a permit.
    ///
    /// # Errors
    ///
    /// [`Error::TooManyReleases`] when the count is already at its bound
    /// (CPython: `ValueError: semaphore or lock released too many times`).
    pub fn release(&self) -> Result<()> {
        self.core.release()
    }

    /// The current count.
    pub fn get_value(&self) -> u32 {
        self.core.value().load(Ordering::SeqCst)
    }
}

impl AsFd for BoundedSemaphore {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.core.seg.as_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_bounds() -> Result<()> {
        assert!(matches!(
            Semaphore::new(SEM_VALUE_MAX + 1),
            Err(Error::InvalidArgument(_))
        ));
        let sem = BoundedSemaphore::new(2)?;
        assert!(matches!(sem.release(), Err(Error::TooManyReleases(_))));
        assert!(sem.acquire(None)?);
        assert!(sem.acquire(Some(Duration::ZERO))?);
        assert!(!sem.acquire(Some(Duration::from_millis(10)))?);
        sem.release()?;
        assert_eq!(sem.get_value(), 1);
        let top = Semaphore::new(SEM_VALUE_MAX)?;
        assert!(matches!(top.release(), Err(Error::TooManyReleases(_))));
        Ok(())
    }
}
