//! `Condition`: a process-shared condition variable over a [`Lock`] or [`RLock`].
//!
//! A sequence word (a futex) and a ledger word in their own segment. A waiter registers in
//! the ledger while holding the lock, releases the lock, and sleeps on the sequence word
//! until the ledger holds a wake-up it may take; `notify(n)` (also under the lock) grants
//! at most `n` wake-ups to the waiters registered before it, bumps the sequence word and
//! wakes. A wait returns `True` exactly when it took a granted wake-up, so `notify(n)` wakes
//! at most `n` waits and `notify(0)` none, as CPython's. The waker never waits for a waiter
//! to acknowledge (unlike CPython's `_woken_count` handshake and glibc's process-shared
//! condvar), so a dead waiter can never make `notify` hang (T20); a waiter killed while
//! registered may keep a wake-up that is then lost.
//!
//! The segment's header ([`ConditionHeader`]) holds the sequence word and the ledger (see
//! [`Ledger`]), both zero-initialised.
#![forbid(unsafe_code)]

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use crate::children::parent_watch;
use crate::children::status::{BlockedOn, blocked};
use crate::error::{Error, Result};
use crate::os::futex;
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

    fn ledger(&self) -> &AtomicU64 {
        &self.seq.header().ledger
    }

    /// Applies `f` to the ledger atomically; returns what `f` returned with the new ledger.
    fn update<R>(&self, f: impl Fn(Ledger) -> (Ledger, R)) -> R {
        let mut current = self.ledger().load(Ordering::SeqCst);
        loop {
            let (next, out) = f(Ledger::unpack(current));
            match self.ledger().compare_exchange(
                current,
                next.pack(),
                Ordering::SeqCst,
                Ordering::SeqCst,
            ) {
                Ok(_) => return out,
                Err(actual) => current = actual,
            }
        }
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
    /// [`Error::NotOwner`] when the caller does not hold it.
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
    /// `RuntimeError: cannot wait on un-acquired lock`); [`Error::OwnerDied`] when a holder
    /// died while the caller slept (the caller holds the lock again); [`Error::ParentDied`]
    /// when the wait has no timeout, runs in a child and outlives the parent (decision 0018;
    /// CPython waits forever), the lock held again too.
    pub fn wait(&self, timeout: Option<Duration>) -> Result<bool> {
        let raw = self.raw();
        if !raw.held_by_caller() || raw.depth() == 0 {
            return Err(Error::NotOwner);
        }
        let depth = raw.depth();
        // Registered under the lock, so every later notification sees this waiter.
        let epoch = self.update(|l| l.register());
        let epoch = epoch.ok_or(Error::InvalidArgument("too many waiters on one condition"))?;
        for _ in 0..depth {
            if let Err(e) = raw.unlock() {
                self.update(|l| l.leave(epoch));
                return Err(e);
            }
        }
        let deadline = Deadline::after(timeout);
        let woken = self.sleep(epoch, &deadline);
        let relock = self.relock(depth);
        let woken = woken?;
        relock?;
        Ok(woken)
    }

    /// Sleeps until this waiter (registered at `epoch`) takes a granted wake-up (`true`) or
    /// the deadline passes and it leaves the ledger (`false`, unless a wake-up was granted
    /// meanwhile).
    fn sleep(&self, epoch: u32, deadline: &Deadline) -> Result<bool> {
        let _blocked = (!deadline.expired()).then(|| blocked(BlockedOn::Condition));
        loop {
            // Sampled before the ledger is read: a grant made after the read bumps the word,
            // so the futex wait below returns at once instead of missing it.
            let seq = self.word().load(Ordering::SeqCst);
            if self.update(|l| l.take(epoch)) {
                return Ok(true);
            }
            if deadline.expired() {
                let woken = self.update(|l| l.leave(epoch));
                // Planted: a wait that timed out un-woken says it was woken.
                return Ok(woken || crate::planted::active("condition-timeout-reports-woken"));
            }
            if let Err(e) = parent_watch::futex_wait(self.word(), seq, deadline) {
                self.update(|l| l.leave(epoch));
                return Err(e);
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

    /// Wakes at most `n` of the waits in progress (none for 0); never blocks.
    ///
    /// # Errors
    ///
    /// [`Error::NotOwner`] when the caller does not hold the lock (CPython:
    /// `RuntimeError: cannot notify on un-acquired lock`).
    pub fn notify(&self, n: u32) -> Result<()> {
        if !self.raw().held_by_caller() || self.raw().depth() == 0 {
            return Err(Error::NotOwner);
        }
        let n = if n == 0 && crate::planted::active("condition-notify-zero-wakes-one") {
            // The fault this replaced: `FUTEX_WAKE` with a count of 0 wakes one waiter.
            1
        } else if crate::planted::active("condition-notify-wakes-one-more") {
            n.saturating_add(1)
        } else {
            n
        };
        let granted = self.update(|l| l.notify(n));
        if granted > 0 {
            self.word().fetch_add(1, Ordering::SeqCst);
            futex::wake(self.word(), granted);
        }
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

/// Most waiters one condition tracks at once (13-bit counters).
const MAX_WAITERS: u32 = (1 << 13) - 1;

/// The ledger of waiters and wake-ups, packed in one `u64` so it changes in one CAS.
///
/// `epoch` counts notifications (mod 2^24); `old` are the waiters registered before the
/// latest notification and still waiting, `new` those registered since, `grants` the wake-ups
/// granted to `old` waiters and not yet taken (`grants <= old`). A waiter remembers the epoch
/// it registered in: while that is still the epoch, it is `new` and cannot take a wake-up, so
/// a notification never wakes a wait that began after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Ledger {
    epoch: u32,
    old: u32,
    new: u32,
    grants: u32,
}

impl Ledger {
    const MASK13: u64 = (1 << 13) - 1;
    const MASK24: u32 = (1 << 24) - 1;

    fn unpack(word: u64) -> Ledger {
        Ledger {
            epoch: (word >> 39) as u32 & Self::MASK24,
            old: ((word >> 26) & Self::MASK13) as u32,
            new: ((word >> 13) & Self::MASK13) as u32,
            grants: (word & Self::MASK13) as u32,
        }
    }

    fn pack(self) -> u64 {
        (u64::from(self.epoch & Self::MASK24) << 39)
            | (u64::from(self.old) << 26)
            | (u64::from(self.new) << 13)
            | u64::from(self.grants)
    }

    /// A new waiter: its epoch, or `None` when the counters are full.
    fn register(self) -> (Ledger, Option<u32>) {
        if self.old + self.new >= MAX_WAITERS {
            return (self, None);
        }
        (
            Ledger {
                new: self.new + 1,
                ..self
            },
            Some(self.epoch),
        )
    }

    /// Takes a granted wake-up for a waiter of `epoch`, if it is old and one is left.
    fn take(self, epoch: u32) -> (Ledger, bool) {
        if epoch != self.epoch && self.grants > 0 {
            let next = Ledger {
                old: self.old - 1,
                grants: self.grants - 1,
                ..self
            };
            (next, true)
        } else {
            (self, false)
        }
    }

    /// A waiter of `epoch` leaves at its deadline: it takes a wake-up granted meanwhile
    /// (`true`), or leaves un-woken (`false`).
    fn leave(self, epoch: u32) -> (Ledger, bool) {
        match self.take(epoch) {
            (next, true) => (next, true),
            _ if epoch == self.epoch => (
                Ledger {
                    new: self.new.saturating_sub(1),
                    ..self
                },
                false,
            ),
            _ => (
                Ledger {
                    old: self.old.saturating_sub(1),
                    ..self
                },
                false,
            ),
        }
    }

    /// `notify(n)`: every waiter so far becomes old, and up to `n` of those not yet granted a
    /// wake-up get one. Returns how many were granted.
    fn notify(self, n: u32) -> (Ledger, u32) {
        let old = self.old + self.new;
        let granted = n.min(old - self.grants);
        (
            Ledger {
                epoch: self.epoch.wrapping_add(1) & Self::MASK24,
                old,
                new: 0,
                grants: self.grants + granted,
            },
            granted,
        )
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

    #[test]
    fn the_ledger_grants_at_most_n_to_earlier_waiters() {
        let l = Ledger::unpack(0);
        let (l, a) = l.register();
        let (l, b) = l.register();
        let (a, b) = (a.unwrap_or(u32::MAX), b.unwrap_or(u32::MAX));
        let (l, granted) = l.notify(0);
        assert_eq!(granted, 0);
        assert_eq!(l.take(a), (l, false));
        let (l, granted) = l.notify(1);
        assert_eq!(granted, 1);
        // A waiter registered after the notification cannot take its wake-up.
        let (l, c) = l.register();
        let c = c.unwrap_or(u32::MAX);
        assert!(!l.take(c).1);
        let (l, took) = l.take(a);
        assert!(took);
        let (l, left_woken) = l.leave(b);
        assert!(!left_woken);
        let (l, left_woken) = l.leave(c);
        assert!(!left_woken);
        assert_eq!(l, Ledger::unpack(l.pack()));
        assert_eq!((l.old, l.new, l.grants), (0, 0, 0));
    }
}
