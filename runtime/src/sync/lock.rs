//! `Lock` and `RLock`: process-shared, robust, with timeouts.
//!
//! Both wrap one [`RawMutex`], the header of a shared [`Segment`] of its own. Create them
//! before starting the processes that use them; a forked child shares the same mutex.
#![forbid(unsafe_code)]

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::time::Duration;

use crate::children::status::{BlockedOn, blocked};
use crate::error::{Error, Result};
use crate::os::pthread_mutex::{Acquire, RawMutex};
use crate::os::shm::Segment;

/// A segment holding one initialised mutex.
#[derive(Debug)]
struct MutexSegment {
    seg: Segment<RawMutex>,
}

impl MutexSegment {
    fn new(recursive: bool) -> Result<MutexSegment> {
        Ok(MutexSegment {
            seg: Segment::new(0, |mutex: &RawMutex, fresh| mutex.init(recursive, fresh))?,
        })
    }

    fn from_fd(fd: OwnedFd) -> Result<MutexSegment> {
        Ok(MutexSegment {
            seg: Segment::from_fd(fd)?,
        })
    }

    #[inline]
    fn mutex(&self) -> &RawMutex {
        self.seg.header()
    }

    #[inline]
    fn acquire(&self, timeout: Option<Duration>, on: BlockedOn) -> Result<bool> {
        match self.mutex().lock(timeout, || blocked(on))? {
            Acquire::Acquired => Ok(true),
            Acquire::OwnerDied => Err(Error::OwnerDied),
            Acquire::TimedOut => Ok(false),
        }
    }
}

impl Drop for MutexSegment {
    /// Releases the mutex if the calling thread still holds it: glibc links a held robust
    /// mutex into the thread's robust list through the mutex's own memory, so unmapping it
    /// while held would leave a dangling entry that the next lock operation (or thread
    /// exit) would follow. Other processes see an ordinary release.
    fn drop(&mut self) {
        let mutex = self.mutex();
        while mutex.depth() > 0 && mutex.held_by_caller() {
            if mutex.unlock().is_err() {
                break;
            }
        }
    }
}

/// A non-recursive, process-shared lock (`multiprocessing.Lock`).
///
/// Robust: when a process dies holding it, the next `acquire` gets [`Error::OwnerDied`]
/// and holds the lock.
///
/// Only the holder may release it: unlike CPython's `multiprocessing.Lock` (a semaphore that
/// any process may release), releasing a lock the caller does not hold is
/// [`Error::NotOwner`] (see `docs/decisions/0003-owner-only-release.md`).
///
/// Dropping the handle while the calling thread holds the lock releases it (unmarked after
/// [`Error::OwnerDied`], which makes it [`Error::NotRecoverable`] for the others).
/// Use one handle per process: a lock must be released through the handle it was
/// acquired through.
///
/// ```
/// # fn main() -> proclife::Result<()> {
/// let lock = proclife::sync::Lock::new()?;
/// assert!(lock.acquire(None)?);
/// assert!(!lock.acquire(Some(std::time::Duration::ZERO)).unwrap_or(true));
/// lock.release()?;
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct Lock {
    seg: MutexSegment,
}

impl Lock {
    /// Creates an unlocked lock in a fresh shared segment.
    ///
    /// # Errors
    ///
    /// [`Error::NoSpace`] or [`Error::Os`] when the segment cannot be made.
    pub fn new() -> Result<Lock> {
        Ok(Lock {
            seg: MutexSegment::new(false)?,
        })
    }

    /// Rebuilds a lock from the fd of its segment (see [`AsFd`]), in another process.
    ///
    /// # Errors
    ///
    /// [`Error::Malformed`] when the fd is not a sealed segment large enough for a lock.
    pub fn from_fd(fd: OwnedFd) -> Result<Lock> {
        Ok(Lock {
            seg: MutexSegment::from_fd(fd)?,
        })
    }

    /// Acquires the lock, waiting at most `timeout` (`None`: forever; zero: try once).
    ///
    /// Returns `Ok(true)` when acquired, `Ok(false)` when the timeout passed.
    ///
    /// # Errors
    ///
    /// - [`Error::OwnerDied`]: acquired, but the previous holder died holding it; call
    ///   [`Lock::mark_consistent`] before [`Lock::release`];
    /// - [`Error::NotRecoverable`]: a previous owner-died acquisition was released unmarked;
    /// - [`Error::WouldDeadlock`]: the calling thread already holds it and `timeout` is not
    ///   zero (CPython would sleep for the whole timeout and return `False`; a zero timeout
    ///   returns `Ok(false)` here too).
    ///
    /// CPython raises none of these: it waits for a dead holder forever (or returns `False`
    /// at the timeout). Both are deviations of decision 0003, rows `lock.acquire.*` of the
    /// refusal table.
    #[inline]
    pub fn acquire(&self, timeout: Option<Duration>) -> Result<bool> {
        self.seg.acquire(timeout, BlockedOn::Lock)
    }

    /// Releases the lock.
    ///
    /// # Errors
    ///
    /// [`Error::NotOwner`] when the caller does not hold it. CPython: `ValueError: semaphore
    /// or lock released too many times` when nobody holds it (a second release); when another
    /// process holds it CPython releases it, proclife refuses (decision 0003).
    #[inline]
    pub fn release(&self) -> Result<()> {
        let mutex = self.seg.mutex();
        if crate::planted::active("lock-release-by-non-owner")
            && !(mutex.held_by_caller() && mutex.depth() > 0)
        {
            // Planted: a release by a process that does not hold the lock is accepted.
            return Ok(());
        }
        mutex.unlock()
    }

    /// Declares the protected state repaired after [`Error::OwnerDied`]; the caller must hold
    /// the lock.
    ///
    /// # Errors
    ///
    /// [`Error::NotOwner`], or [`Error::InvalidArgument`] when there was no dead owner.
    pub fn mark_consistent(&self) -> Result<()> {
        self.seg.mutex().make_consistent()
    }

    /// Whether the calling thread holds the lock.
    pub fn is_held(&self) -> bool {
        self.seg.mutex().held_by_caller() && self.seg.mutex().depth() > 0
    }

    pub(crate) fn raw(&self) -> &RawMutex {
        self.seg.mutex()
    }
}

impl AsFd for Lock {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.seg.seg.as_fd()
    }
}

/// A recursive, process-shared lock (`multiprocessing.RLock`): the holder may acquire it
/// again, and must release it as often.
///
/// Robust like [`Lock`]: a holder that dies at any depth hands it to the next acquirer with
/// [`Error::OwnerDied`] at depth 1.
#[derive(Debug)]
pub struct RLock {
    seg: MutexSegment,
}

impl RLock {
    /// Creates an unlocked recursive lock in a fresh shared segment.
    ///
    /// # Errors
    ///
    /// [`Error::NoSpace`] or [`Error::Os`] when the segment cannot be made.
    pub fn new() -> Result<RLock> {
        Ok(RLock {
            seg: MutexSegment::new(true)?,
        })
    }

    /// Rebuilds a recursive lock from the fd of its segment.
    ///
    /// # Errors
    ///
    /// [`Error::Malformed`] when the fd is not a sealed segment large enough for a lock.
    pub fn from_fd(fd: OwnedFd) -> Result<RLock> {
        Ok(RLock {
            seg: MutexSegment::from_fd(fd)?,
        })
    }

    /// Acquires one level, waiting at most `timeout`; see [`Lock::acquire`].
    ///
    /// # Errors
    ///
    /// As [`Lock::acquire`], except that re-acquiring is allowed (never
    /// [`Error::WouldDeadlock`]). [`Error::OwnerDied`] is a deviation (decision 0003): CPython
    /// waits for a dead holder forever.
    #[inline]
    pub fn acquire(&self, timeout: Option<Duration>) -> Result<bool> {
        self.seg.acquire(timeout, BlockedOn::RLock)
    }

    /// Releases one level.
    ///
    /// # Errors
    ///
    /// [`Error::NotOwner`] when the caller does not hold it (nobody does, or another process
    /// does). CPython: `AssertionError: attempt to release recursive lock not owned by
    /// thread`.
    #[inline]
    pub fn release(&self) -> Result<()> {
        self.seg.mutex().unlock()
    }

    /// See [`Lock::mark_consistent`].
    ///
    /// # Errors
    ///
    /// As [`Lock::mark_consistent`].
    pub fn mark_consistent(&self) -> Result<()> {
        self.seg.mutex().make_consistent()
    }

    /// How many times the calling thread holds the lock (0 if it does not).
    pub fn depth(&self) -> u32 {
        if self.seg.mutex().held_by_caller() {
            self.seg.mutex().depth()
        } else {
            0
        }
    }

    pub(crate) fn raw(&self) -> &RawMutex {
        self.seg.mutex()
    }
}

impl AsFd for RLock {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.seg.seg.as_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_basics() -> Result<()> {
        let lock = Lock::new()?;
        assert!(matches!(lock.release(), Err(Error::NotOwner)));
        assert!(lock.acquire(None)?);
        assert!(lock.is_held());
        assert!(!lock.acquire(Some(Duration::ZERO))?);
        assert!(matches!(
            lock.acquire(Some(Duration::from_millis(10))),
            Err(Error::WouldDeadlock)
        ));
        assert!(matches!(lock.acquire(None), Err(Error::WouldDeadlock)));
        assert!(matches!(
            lock.mark_consistent(),
            Err(Error::InvalidArgument(_))
        ));
        lock.release()?;
        assert!(!lock.is_held());
        assert!(matches!(lock.release(), Err(Error::NotOwner)));
        Ok(())
    }

    #[test]
    fn rlock_nests() -> Result<()> {
        let lock = RLock::new()?;
        for depth in 1..=3 {
            assert!(lock.acquire(Some(Duration::ZERO))?);
            assert_eq!(lock.depth(), depth);
        }
        for depth in (0..3).rev() {
            lock.release()?;
            assert_eq!(lock.depth(), depth);
        }
        assert!(matches!(lock.release(), Err(Error::NotOwner)));
        Ok(())
    }
}
