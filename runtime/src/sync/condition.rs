//! `Condition`: a process-shared condition variable over a [`Lock`] or [`RLock`].
//!
//! A sequence word (a futex) in its own segment. A waiter samples the word while holding the
//! lock, releases the lock, and sleeps while the word is unchanged; `notify` bumps the word
//! and wakes. The waker never waits for a waiter to acknowledge (unlike CPython's
//! `_woken_count` handshake and glibc's process-shared condvar), so a dead waiter can never
//! make `notify` hang (T20).
//!
//! Because waking is by sequence number, `notify(n)` may wake more than `n` waiters (those
//! that sampled the word but were not yet asleep): waits can return spuriously, as POSIX
//! allows. Use [`Condition::wait_for`] with a predicate.
#![forbid(unsafe_code)]

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use crate::children::status::{BlockedOn, blocked};
use crate::error::{Error, Result};
use crate::os::futex::{self, Wake};
use crate::os::layout::ConditionHeader;
use crate::os::pthread_mutex::{Acquire, RawMutex};
use crate::os::shm::Segment;
use crate::os::time::Deadline;
use crate::sync::{Lock, RLock};

#[derive(Debug)]
enum CondLock {
    Lock(Lock),
    RLock(RLock),
}

/// A process-shared condition variable (`multiprocessing.Condition`).
#[derive(Debug)]
pub struct Condition {
    lock: CondLock,
    seq: Segment<ConditionHeader>,
}

impl Condition {
    /// Creates a condition over a fresh [`RLock`], as CPython does by default.
    ///
    /// # Errors
    ///
    /// [`Error::NoSpace`] or [`Error::Os`] when a segment cannot be made.
    pub fn new() -> Result<Condition> {
        Self::with_rlock(RLock::new()?)
    }

    /// Creates a condition over `lock`.
    ///
    /// # Errors
    ///
    /// As [`Condition::new`].
    pub fn with_lock(lock: Lock) -> Result<Condition> {
        Ok(Condition {
            lock: CondLock::Lock(lock),
            seq: Segment::new(0, |_, _| Ok(()))?,
        })
    }

    /// Creates a condition over `lock`.
    ///
    /// # Errors
    ///
    /// As [`Condition::new`].
    pub fn with_rlock(lock: RLock) -> Result<Condition> {
        Ok(Condition {
            lock: CondLock::RLock(lock),
            seq: Segment::new(0, |_, _| Ok(()))?,
        })
    }

    /// Rebuilds a condition from the fd of its lock's segment (`recursive`: an [`RLock`])
    /// and the fd of its sequence segment ([`AsFd`]).
    ///
    /// # Errors
    ///
    /// [`Error::Malformed`] when either fd is not a suitable sealed segment.
    pub fn from_fds(lock: OwnedFd, recursive: bool, seq: OwnedFd) -> Result<Condition> {
        let lock = if recursive {
            CondLock::RLock(RLock::from_fd(lock)?)
        } else {
            CondLock::Lock(Lock::from_fd(lock)?)
        };
        let seq = Segment::from_fd(seq)?;
        Ok(Condition { lock, seq })
    }

    /// The fd of the lock's segment, for [`Condition::from_fds`].
    pub fn lock_fd(&self) -> BorrowedFd<'_> {
        match &self.lock {
            CondLock::Lock(l) => l.as_fd(),
            CondLock::RLock(l) => l.as_fd(),
        }
    }

    fn raw(&self) -> &RawMutex {
        match &self.lock {
            CondLock::Lock(l) => l.raw(),
            CondLock::RLock(l) => l.raw(),
        }
    }

    fn word(&self) -> &AtomicU32 {
        &self.seq.header().seq
    }

    /// Acquires the underlying lock; see [`Lock::acquire`].
    ///
    /// # Errors
    ///
    /// As [`Lock::acquire`].
    pub fn acquire(&self, timeout: Option<Duration>) -> Result<bool> {
        match &self.lock {
            CondLock::Lock(l) => l.acquire(timeout),
            CondLock::RLock(l) => l.acquire(timeout),
        }
    }

    /// Releases the underlying lock.
    ///
    /// # Errors
    ///
    /// [`Error::NotOwner`] when the caller does not hold it. CPython names it as its lock's
    /// `release` does: `AssertionError: attempt to release recursive lock not owned by thread`
    /// over an `RLock` (the default), `ValueError: semaphore or lock released too many times`
    /// over a `Lock`.
    pub fn release(&self) -> Result<()> {
        self.raw().unlock()
    }

    /// Marks the underlying lock consistent after [`Error::OwnerDied`].
    ///
    /// # Errors
    ///
    /// As [`Lock::mark_consistent`].
    pub fn mark_consistent(&self) -> Result<()> {
        self.raw().make_consistent()
    }

    /// Releases the lock (all levels of an `RLock`), waits for a notification or `timeout`,
    /// and re-acquires the lock before returning. Returns `false` when the timeout passed.
    ///
    /// # Errors
    ///
    /// [`Error::NotOwner`] when the caller does not hold the lock (CPython:
    /// `AssertionError: must acquire() condition before using wait()`); [`Error::OwnerDied`]
    /// when a holder died while the caller slept (the caller holds the lock again; CPython
    /// would wait forever, decision 0003).
    pub fn wait(&self, timeout: Option<Duration>) -> Result<bool> {
        let raw = self.raw();
        if !raw.held_by_caller() || raw.depth() == 0 {
            return Err(Error::NotOwner);
        }
        let depth = raw.depth();
        let seq = self.word().load(Ordering::SeqCst);
        for _ in 0..depth {
            raw.unlock()?;
        }
        let deadline = Deadline::after(timeout);
        let woken = self.sleep(seq, &deadline);
        let relock = self.relock(depth);
        let woken = woken?;
        relock?;
        Ok(woken)
    }

    fn sleep(&self, seq: u32, deadline: &Deadline) -> Result<bool> {
        if deadline.expired() {
            return Ok(self.word().load(Ordering::SeqCst) != seq);
        }
        let _blocked = blocked(BlockedOn::Condition);
        loop {
            let wake = futex::wait(self.word(), seq, deadline)?;
            if self.word().load(Ordering::SeqCst) != seq {
                return Ok(true);
            }
            if wake == Wake::TimedOut || deadline.expired() {
                return Ok(false);
            }
        }
    }

    fn relock(&self, depth: u32) -> Result<()> {
        let raw = self.raw();
        let mut owner_died = false;
        for _ in 0..depth {
            match raw.lock(None, || blocked(BlockedOn::Condition))? {
                Acquire::Acquired => {}
                Acquire::OwnerDied => owner_died = true,
                // A wait without deadline never times out.
                Acquire::TimedOut => return Err(Error::Malformed("untimed lock timed out")),
            }
        }
        if owner_died {
            Err(Error::OwnerDied)
        } else {
            Ok(())
        }
    }

    /// Waits until `predicate()` is true or `timeout` passes; returns the last value of the
    /// predicate. The caller must hold the lock.
    ///
    /// # Errors
    ///
    /// As [`Condition::wait`].
    pub fn wait_for(
        &self,
        mut predicate: impl FnMut() -> bool,
        timeout: Option<Duration>,
    ) -> Result<bool> {
        let deadline = Deadline::after(timeout);
        loop {
            if predicate() {
                return Ok(true);
            }
            if deadline.expired() {
                return Ok(false);
            }
            self.wait(deadline.remaining())?;
        }
    }

    /// Wakes up to `n` waiters (possibly more, see the module docs); never blocks.
    ///
    /// # Errors
    ///
    /// [`Error::NotOwner`] when the caller does not hold the lock (CPython:
    /// `AssertionError: lock is not owned`).
    pub fn notify(&self, n: u32) -> Result<()> {
        if !self.raw().held_by_caller() || self.raw().depth() == 0 {
            return Err(Error::NotOwner);
        }
        self.word().fetch_add(1, Ordering::SeqCst);
        futex::wake(self.word(), n);
        Ok(())
    }

    /// Wakes every waiter; never blocks.
    ///
    /// # Errors
    ///
    /// As [`Condition::notify`].
    pub fn notify_all(&self) -> Result<()> {
        self.notify(u32::MAX)
    }
}

impl AsFd for Condition {
    /// The fd of the sequence segment; the lock's fd comes from the lock.
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.seq.as_fd()
    }
}

impl Condition {
    /// Whether the condition's lock is an [`RLock`]: the `recursive` argument that
    /// [`Condition::from_fds`] needs to rebuild it in another process.
    pub fn recursive(&self) -> bool {
        matches!(self.lock, CondLock::RLock(_))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wait_needs_the_lock_and_times_out() -> Result<()> {
        let cond = Condition::new()?;
        assert!(matches!(
            cond.wait(Some(Duration::ZERO)),
            Err(Error::NotOwner)
        ));
        assert!(matches!(cond.notify(1), Err(Error::NotOwner)));
        assert!(cond.acquire(None)?);
        assert!(cond.acquire(None)?);
        assert!(!cond.wait(Some(Duration::from_millis(10)))?);
        assert!(!cond.wait_for(|| false, Some(Duration::from_millis(5)))?);
        cond.notify_all()?;
        cond.release()?;
        cond.release()?;
        assert!(matches!(cond.release(), Err(Error::NotOwner)));
        Ok(())
    }
}
