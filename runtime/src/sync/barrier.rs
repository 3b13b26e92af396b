//! `Barrier`: a process-shared, liveness-aware barrier.
//!
//! Layout of its segment: a robust [`RawMutex`] at 0, a header of atomics at 64 (parties,
//! count, generation, broken flag, wake sequence, aborted generation, default timeout), and
//! one slot per party at 128 recording each waiting party's pid and start time.
//! Waiters sleep on the wake sequence (a futex) in slices of [`LIVENESS_SLICE`]; after each
//! slice, and on arrival, they check that every recorded party is still alive (from
//! `/proc/<pid>/stat`: gone, zombie, or a different start time means dead), and break the
//! barrier if one died (T21). Waking never waits for a waiter.
//!
//! # Safety
//!
//! The segment is `SLOTS + 16 * parties` bytes, initialised by `new` before it is shared;
//! every field is an atomic or the initialised robust mutex.
#![allow(unsafe_code)]

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicI32, AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use crate::error::{Error, Result};
use crate::shm::SharedMemory;
use crate::status::{BlockedOn, blocked};
use crate::sync::futex::{self, Deadline};
use crate::sync::mutex::{Acquire, RawMutex};

/// How often a waiting party re-checks that the others are alive.
pub const LIVENESS_SLICE: Duration = Duration::from_millis(20);

/// The most parties a barrier accepts.
pub const MAX_PARTIES: usize = 1 << 16;

const HEADER: usize = 64;
const SLOTS: usize = 128;
const SLOT_LEN: usize = 16;
const NO_TIMEOUT: u64 = u64::MAX;
const NO_GENERATION: u32 = u32::MAX;

/// The start time (clock ticks since boot) of `pid`, or `None` if it is gone or a zombie.
fn start_time(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may contain spaces and parentheses: fields start after the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_ascii_whitespace();
    let state = fields.next()?;
    if matches!(state, "Z" | "X" | "x") {
        return None;
    }
    // `starttime` is field 22; `state` was field 3.
    fields.nth(22 - 4)?.parse().ok()
}

/// A process-shared barrier for a fixed number of parties (`multiprocessing.Barrier`).
///
/// Parties are processes (or threads). A party that dies while others wait breaks the barrier
/// within about [`LIVENESS_SLICE`]; a wait that times out breaks it too, as in CPython.
/// CPython's `action` callable is not supported.
#[derive(Debug)]
pub struct Barrier {
    shm: SharedMemory,
}

impl Barrier {
    /// Creates a barrier for `parties` parties; `timeout` is the default for
    /// [`Barrier::wait`] (`None`: forever).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] for `parties == 0` (CPython accepts it) or above
    /// [`MAX_PARTIES`]; [`Error::NoSpace`] or [`Error::Os`] when the segment cannot be made.
    pub fn new(parties: usize, timeout: Option<Duration>) -> Result<Barrier> {
        if parties == 0 {
            return Err(Error::InvalidArgument("a barrier needs at least one party"));
        }
        if parties > MAX_PARTIES {
            return Err(Error::InvalidArgument("too many barrier parties"));
        }
        let shm = SharedMemory::new(SLOTS + SLOT_LEN * parties)?;
        let barrier = Barrier { shm };
        // SAFETY: the segment is fresh, zeroed and not yet shared.
        unsafe { barrier.mutex().init(false)? };
        // `parties <= MAX_PARTIES` fits in u32.
        barrier.word(0).store(parties as u32, Ordering::SeqCst);
        barrier.word(5).store(NO_GENERATION, Ordering::SeqCst);
        let nanos = timeout.map_or(NO_TIMEOUT, |t| {
            u64::try_from(t.as_nanos()).map_or(NO_TIMEOUT - 1, |n| n.min(NO_TIMEOUT - 1))
        });
        barrier.default_timeout().store(nanos, Ordering::SeqCst);
        Ok(barrier)
    }

    /// Rebuilds a barrier from the fd of its segment.
    ///
    /// # Errors
    ///
    /// [`Error::Malformed`] when the segment is not a barrier's.
    pub fn from_fd(fd: OwnedFd) -> Result<Barrier> {
        let shm = SharedMemory::from_fd(fd)?;
        if shm.len() < SLOTS {
            return Err(Error::Malformed("segment too small for a barrier"));
        }
        let barrier = Barrier { shm };
        let parties = barrier.parties();
        if parties == 0 || barrier.shm.len() < SLOTS + SLOT_LEN * parties {
            return Err(Error::Malformed("barrier segment does not fit its parties"));
        }
        Ok(barrier)
    }

    fn mutex(&self) -> &RawMutex {
        // SAFETY: see the module's `# Safety`.
        unsafe { self.shm.at::<RawMutex>(0) }
    }

    /// Header words: 0 parties, 1 count, 2 generation, 3 broken, 4 wake sequence,
    /// 5 aborted generation.
    fn word(&self, i: usize) -> &AtomicU32 {
        debug_assert!(i < 6);
        // SAFETY: see the module's `# Safety`; `i < 6` keeps it inside the header.
        unsafe { self.shm.at::<AtomicU32>(HEADER + 4 * i) }
    }

    fn default_timeout(&self) -> &AtomicU64 {
        // SAFETY: see the module's `# Safety`; offset 88 is 8-aligned and inside the header.
        unsafe { self.shm.at::<AtomicU64>(HEADER + 24) }
    }

    fn slot(&self, i: usize) -> (&AtomicI32, &AtomicU64) {
        let base = SLOTS + SLOT_LEN * i;
        // SAFETY: see the module's `# Safety`; callers keep `i < parties`.
        unsafe {
            (
                self.shm.at::<AtomicI32>(base),
                self.shm.at::<AtomicU64>(base + 8),
            )
        }
    }

    /// The number of parties.
    pub fn parties(&self) -> usize {
        self.word(0).load(Ordering::SeqCst) as usize
    }

    /// How many parties are waiting now (0 when broken).
    pub fn n_waiting(&self) -> usize {
        if self.broken() {
            0
        } else {
            self.word(1).load(Ordering::SeqCst) as usize
        }
    }

    /// Whether the barrier is broken.
    pub fn broken(&self) -> bool {
        self.word(3).load(Ordering::SeqCst) != 0
    }

    /// Locks the internal mutex. A party that died inside the critical section breaks the
    /// barrier; the mutex is then repaired.
    fn enter(&self) -> Result<()> {
        match self.mutex().lock(None, BlockedOn::Barrier)? {
            Acquire::Acquired => Ok(()),
            Acquire::OwnerDied => {
                self.mutex().make_consistent()?;
                self.break_locked();
                Ok(())
            }
            Acquire::TimedOut => Err(Error::Malformed("untimed lock timed out")),
        }
    }

    fn leave(&self) -> Result<()> {
        self.mutex().unlock()
    }

    /// Breaks the barrier; the caller holds the mutex. Wakes everyone.
    fn break_locked(&self) {
        self.word(3).store(1, Ordering::SeqCst);
        self.word(4).fetch_add(1, Ordering::SeqCst);
        futex::wake_all(self.word(4));
    }

    /// Whether a party recorded as waiting has died; the caller holds the mutex.
    fn party_died(&self) -> bool {
        let count = (self.word(1).load(Ordering::SeqCst) as usize).min(self.parties());
        (0..count).any(|i| {
            let (pid, start) = self.slot(i);
            let pid = pid.load(Ordering::SeqCst);
            pid != 0 && start_time(pid) != Some(start.load(Ordering::SeqCst))
        })
    }

    /// Waits with the barrier's default timeout; see [`Barrier::wait_timeout`].
    ///
    /// # Errors
    ///
    /// As [`Barrier::wait_timeout`].
    pub fn wait(&self) -> Result<usize> {
        let nanos = self.default_timeout().load(Ordering::SeqCst);
        let timeout = (nanos != NO_TIMEOUT).then(|| Duration::from_nanos(nanos));
        self.wait_timeout(timeout)
    }

    /// Waits until all parties have arrived; returns this party's arrival index
    /// (`0..parties`, the last to arrive gets `parties - 1`).
    ///
    /// # Errors
    ///
    /// [`Error::BrokenBarrier`] when the barrier is or becomes broken: aborted, reset while
    /// waiting, timed out (the timeout breaks it, as in CPython), or a party died.
    pub fn wait_timeout(&self, timeout: Option<Duration>) -> Result<usize> {
        let deadline = Deadline::after(timeout);
        let pid = nix::unistd::getpid().as_raw();
        let me = start_time(pid).ok_or(Error::Malformed("cannot read /proc/self/stat"))?;
        self.enter()?;
        if self.broken() {
            self.leave()?;
            return Err(Error::BrokenBarrier);
        }
        let parties = self.parties();
        let index = self.word(1).load(Ordering::SeqCst) as usize;
        if self.party_died() {
            // A dead party must not be counted towards the release.
            self.break_locked();
            self.leave()?;
            return Err(Error::BrokenBarrier);
        }
        if index + 1 >= parties {
            // The last party: release everyone.
            self.word(1).store(0, Ordering::SeqCst);
            self.word(2).fetch_add(1, Ordering::SeqCst);
            self.word(4).fetch_add(1, Ordering::SeqCst);
            futex::wake_all(self.word(4));
            self.leave()?;
            if crate::planted::active("barrier-last-index-zero") {
                // Planted: the last party gets index 0, which another party already has.
                return Ok(0);
            }
            return Ok(index.min(parties - 1));
        }
        let (slot_pid, slot_start) = self.slot(index);
        slot_pid.store(pid, Ordering::SeqCst);
        slot_start.store(me, Ordering::SeqCst);
        self.word(1).store(index as u32 + 1, Ordering::SeqCst);
        let generation = self.word(2).load(Ordering::SeqCst);
        let mut seq = self.word(4).load(Ordering::SeqCst);
        self.leave()?;
        let _blocked = blocked(BlockedOn::Barrier);
        loop {
            futex::wait(self.word(4), seq, &deadline.capped(LIVENESS_SLICE))?;
            self.enter()?;
            let outcome = if self.word(2).load(Ordering::SeqCst) != generation {
                if self.word(5).load(Ordering::SeqCst) == generation {
                    Some(Err(Error::BrokenBarrier))
                } else {
                    Some(Ok(index))
                }
            } else if self.broken() {
                Some(Err(Error::BrokenBarrier))
            } else if deadline.expired() || self.party_died() {
                self.break_locked();
                Some(Err(Error::BrokenBarrier))
            } else {
                seq = self.word(4).load(Ordering::SeqCst);
                None
            };
            self.leave()?;
            if let Some(outcome) = outcome {
                return outcome;
            }
        }
    }

    /// Breaks the barrier: current and future waiters get [`Error::BrokenBarrier`] until
    /// [`Barrier::reset`].
    ///
    /// # Errors
    ///
    /// [`Error::Os`] if the internal lock fails.
    pub fn abort(&self) -> Result<()> {
        self.enter()?;
        self.break_locked();
        self.leave()
    }

    /// Returns the barrier to its initial state; parties waiting now get
    /// [`Error::BrokenBarrier`].
    ///
    /// # Errors
    ///
    /// [`Error::Os`] if the internal lock fails.
    pub fn reset(&self) -> Result<()> {
        self.enter()?;
        let generation = self.word(2).load(Ordering::SeqCst);
        self.word(5).store(generation, Ordering::SeqCst);
        self.word(1).store(0, Ordering::SeqCst);
        self.word(3).store(0, Ordering::SeqCst);
        self.word(2).fetch_add(1, Ordering::SeqCst);
        self.word(4).fetch_add(1, Ordering::SeqCst);
        futex::wake_all(self.word(4));
        self.leave()
    }
}

impl AsFd for Barrier {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.shm.as_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_and_single_party() -> Result<()> {
        assert!(matches!(
            Barrier::new(0, None),
            Err(Error::InvalidArgument(_))
        ));
        let one = Barrier::new(1, None)?;
        assert_eq!(one.wait()?, 0);
        assert_eq!(one.wait()?, 0);
        let two = Barrier::new(2, Some(Duration::from_millis(10)))?;
        assert!(matches!(two.wait(), Err(Error::BrokenBarrier)));
        assert!(two.broken());
        assert!(matches!(two.wait(), Err(Error::BrokenBarrier)));
        two.reset()?;
        assert!(!two.broken());
        two.abort()?;
        assert!(matches!(two.wait_timeout(None), Err(Error::BrokenBarrier)));
        Ok(())
    }

    #[test]
    fn own_start_time_is_readable() {
        let pid = nix::unistd::getpid().as_raw();
        assert!(start_time(pid).is_some());
        assert_eq!(start_time(i32::MAX), None);
    }
}
