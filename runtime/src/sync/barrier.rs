//! `Barrier`: a process-shared, liveness-aware barrier.
//!
//! Its segment is a [`BarrierHeader`] (a robust [`RawMutex`], then parties, count,
//! generation, broken flag, wake sequence, aborted generation, default timeout) followed by
//! two banks of one [`BarrierSlot`] per party, used by the even and the odd generations.
//! A waiting party records its pid and start time in its slot and holds the slot's robust
//! mutex (`alive`) while it waits, so the kernel marks that mutex owner-died if the party
//! dies. Waiters sleep on the wake sequence (a futex) in slices of [`LIVENESS_SLICE`]; after
//! each slice, and on arrival, they check that every recorded party is still alive and break
//! the barrier if one died (T21): a `pthread_mutex_trylock` of its `alive` that finds it
//! held says alive, one that reports `EOWNERDEAD` says dead, without a system call. A party
//! that could not take its slot's mutex (the slot's party of two generations before has not
//! left it yet) is checked through `/proc/<pid>/stat` instead: gone, zombie, or a different
//! start time means dead. Waking never waits for a waiter.
#![forbid(unsafe_code)]

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::children::status::{BlockedOn, blocked};
use crate::error::{Error, Result};
use crate::os::futex;
use crate::os::layout::{BarrierHeader, BarrierSlot};
use crate::os::procfs;
use crate::os::pthread_mutex::{Acquire, RawMutex};
use crate::os::shm::{Fresh, Segment};
use crate::os::time::Deadline;
use crate::pid::Pid;

/// How often a waiting party re-checks that the others are alive.
pub const LIVENESS_SLICE: Duration = Duration::from_millis(20);

/// The most parties a barrier accepts.
pub const MAX_PARTIES: usize = 1 << 16;

const NO_TIMEOUT: u64 = u64::MAX;
const NO_GENERATION: u32 = u32::MAX;

/// The start time (clock ticks since boot) of `pid`, or `None` if it is gone or a zombie.
fn start_time(pid: Pid) -> Option<u64> {
    procfs::stat_of(pid)
        .filter(|stat| !stat.exited())
        .map(|stat| stat.start_time)
}

/// Bits of [`OWN_START`] that hold the start time; the pid is above them (pids are below
/// 2^22, the kernel's `PID_MAX_LIMIT`; 2^42 clock ticks are a billion years at 100 Hz).
const START_BITS: u32 = 42;

/// The calling process's pid and start time, packed as `pid << START_BITS | start`; 0 until
/// first read. One word, so that a reader never pairs one process's pid with another's start
/// time; a forked child has another pid, so it reads its own.
static OWN_START: AtomicU64 = AtomicU64::new(0);

/// The start time of the calling process, whose pid is `me`: read from `/proc` once per
/// process (a process's start time never changes), then from [`OWN_START`]. Every wait needs
/// it, and reading `/proc/self/stat` costs three system calls (about 10 us).
fn own_start_time(me: Pid) -> Option<u64> {
    let pid = u64::try_from(me.as_raw()).ok()?;
    let packed = OWN_START.load(Ordering::Relaxed);
    if packed != 0 && packed >> START_BITS == pid {
        return Some(packed & ((1 << START_BITS) - 1));
    }
    let start = start_time(me)?;
    if pid < 1 << (64 - START_BITS) && start < 1 << START_BITS {
        OWN_START.store(pid << START_BITS | start, Ordering::Relaxed);
    }
    Some(start)
}

/// A process-shared barrier for a fixed number of parties (`multiprocessing.Barrier`).
///
/// Parties are processes (or threads). A party that dies while others wait breaks the barrier
/// within about [`LIVENESS_SLICE`]; a wait that times out breaks it too, as in CPython.
/// CPython's `action` callable is not supported.
#[derive(Debug)]
pub struct Barrier {
    seg: Segment<BarrierHeader>,
}

impl Barrier {
    /// Creates a barrier for `parties` parties; `timeout` is the default for
    /// [`Barrier::wait`] (`None`: forever).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] for `parties == 0` (CPython 3.11–3.13 accept it; a
    /// deviation, decision 0005) or above [`MAX_PARTIES`]; [`Error::NoSpace`] or [`Error::Os`]
    /// when the segment cannot be made.
    pub fn new(parties: usize, timeout: Option<Duration>) -> Result<Barrier> {
        if parties == 0 {
            return Err(Error::InvalidArgument("a barrier needs at least one party"));
        }
        if parties > MAX_PARTIES {
            return Err(Error::InvalidArgument("too many barrier parties"));
        }
        let nanos = timeout.map_or(NO_TIMEOUT, |t| {
            u64::try_from(t.as_nanos()).map_or(NO_TIMEOUT - 1, |n| n.min(NO_TIMEOUT - 1))
        });
        // Two banks of slots: `parties <= MAX_PARTIES`, so this cannot overflow.
        let slots = std::mem::size_of::<BarrierSlot>() * BANKS * parties;
        let seg = Segment::new_with(slots, |seg: &Segment<BarrierHeader>, fresh| {
            let header = seg.header();
            header.mutex.init(false, fresh)?;
            // `parties <= MAX_PARTIES` fits in u32.
            header.parties.store(parties as u32, Ordering::SeqCst);
            header
                .aborted_generation
                .store(NO_GENERATION, Ordering::SeqCst);
            header.default_timeout.store(nanos, Ordering::SeqCst);
            init_slots(seg, BANKS * parties, fresh)
        })?;
        Ok(Barrier { seg })
    }

    /// Rebuilds a barrier from the fd of its segment.
    ///
    /// # Errors
    ///
    /// [`Error::Malformed`] when the segment is not a barrier's.
    pub fn from_fd(fd: OwnedFd) -> Result<Barrier> {
        let barrier = Barrier {
            seg: Segment::from_fd(fd)?,
        };
        let parties = barrier.parties();
        if parties == 0 || !barrier.seg.fits::<BarrierSlot>(BANKS * parties) {
            return Err(Error::Malformed("barrier segment does not fit its parties"));
        }
        Ok(barrier)
    }

    fn header(&self) -> &BarrierHeader {
        self.seg.header()
    }

    fn mutex(&self) -> &RawMutex {
        &self.header().mutex
    }

    /// The slot of arrival index `i` in `generation`'s bank; panics when `i` is not below the
    /// parties the segment holds.
    fn slot(&self, generation: u32, i: usize) -> &BarrierSlot {
        let bank = (generation as usize) % BANKS;
        self.seg.element(bank * self.parties() + i)
    }

    /// The number of parties.
    pub fn parties(&self) -> usize {
        self.header().parties.load(Ordering::SeqCst) as usize
    }

    /// How many parties are waiting now (0 when broken).
    pub fn n_waiting(&self) -> usize {
        if self.broken() {
            0
        } else {
            self.header().count.load(Ordering::SeqCst) as usize
        }
    }

    /// Whether the barrier is broken.
    pub fn broken(&self) -> bool {
        self.header().broken.load(Ordering::SeqCst) != 0
    }

    /// Locks the internal mutex. A party that died inside the critical section breaks the
    /// barrier; the mutex is then repaired.
    fn enter(&self) -> Result<()> {
        match self.mutex().lock(None, || blocked(BlockedOn::Barrier))? {
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
        self.header().broken.store(1, Ordering::SeqCst);
        self.header().wake_seq.fetch_add(1, Ordering::SeqCst);
        futex::wake_all(&self.header().wake_seq);
    }

    /// Whether a party recorded as waiting has died; the caller holds the mutex.
    fn party_died(&self) -> bool {
        let count = (self.header().count.load(Ordering::SeqCst) as usize).min(self.parties());
        let generation = self.header().generation.load(Ordering::SeqCst);
        (0..count).any(|i| slot_party_died(self.slot(generation, i)))
    }

    /// Waits with the barrier's default timeout; see [`Barrier::wait_timeout`].
    ///
    /// # Errors
    ///
    /// As [`Barrier::wait_timeout`].
    pub fn wait(&self) -> Result<usize> {
        let nanos = self.header().default_timeout.load(Ordering::SeqCst);
        let timeout = (nanos != NO_TIMEOUT).then(|| Duration::from_nanos(nanos));
        self.wait_timeout(timeout)
    }

    /// Waits until all parties have arrived; returns this party's arrival index
    /// (`0..parties`, the last to arrive gets `parties - 1`).
    ///
    /// # Errors
    ///
    /// [`Error::BrokenBarrier`] when the barrier is or becomes broken: aborted, reset while
    /// waiting, timed out (the timeout breaks it, as in CPython), or a party died. CPython:
    /// `threading.BrokenBarrierError`, except for a dead party, where CPython waits forever
    /// (decision 0005).
    pub fn wait_timeout(&self, timeout: Option<Duration>) -> Result<usize> {
        let deadline = Deadline::after(timeout);
        let pid = crate::os::process::getpid();
        let me = own_start_time(pid).ok_or(Error::Malformed("cannot read /proc/self/stat"))?;
        self.enter()?;
        if self.broken() {
            self.leave()?;
            return Err(Error::BrokenBarrier);
        }
        let parties = self.parties();
        let index = self.header().count.load(Ordering::SeqCst) as usize;
        if self.party_died() {
            // A dead party must not be counted towards the release.
            self.break_locked();
            self.leave()?;
            return Err(Error::BrokenBarrier);
        }
        if index + 1 >= parties {
            // The last party: release everyone. The wake comes after the unlock, so that a
            // woken party does not find the mutex still held and sleep on it again.
            self.header().count.store(0, Ordering::SeqCst);
            self.header().generation.fetch_add(1, Ordering::SeqCst);
            self.header().wake_seq.fetch_add(1, Ordering::SeqCst);
            let left = self.leave();
            futex::wake_all(&self.header().wake_seq);
            left?;
            if crate::planted::active("barrier-last-index-zero") {
                // Planted: the last party gets index 0, which another party already has.
                return Ok(0);
            }
            return Ok(index.min(parties - 1));
        }
        let generation = self.header().generation.load(Ordering::SeqCst);
        let slot = self.slot(generation, index);
        // Held until this wait returns (the guard's drop unlocks it).
        let alive = AliveHold::take(&slot.alive);
        slot.held
            .store(u32::from(alive.is_some()), Ordering::SeqCst);
        slot.pid.store(Some(pid), Ordering::SeqCst);
        slot.start_time.store(me, Ordering::SeqCst);
        self.header()
            .count
            .store(index as u32 + 1, Ordering::SeqCst);
        let mut seq = self.header().wake_seq.load(Ordering::SeqCst);
        self.leave()?;
        let _blocked = blocked(BlockedOn::Barrier);
        loop {
            futex::wait(
                &self.header().wake_seq,
                seq,
                &deadline.capped(LIVENESS_SLICE),
            )?;
            self.enter()?;
            let outcome = if self.header().generation.load(Ordering::SeqCst) != generation {
                if self.header().aborted_generation.load(Ordering::SeqCst) == generation {
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
                seq = self.header().wake_seq.load(Ordering::SeqCst);
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
        let generation = self.header().generation.load(Ordering::SeqCst);
        self.header()
            .aborted_generation
            .store(generation, Ordering::SeqCst);
        self.header().count.store(0, Ordering::SeqCst);
        self.header().broken.store(0, Ordering::SeqCst);
        self.header().generation.fetch_add(1, Ordering::SeqCst);
        self.header().wake_seq.fetch_add(1, Ordering::SeqCst);
        let left = self.leave();
        futex::wake_all(&self.header().wake_seq);
        left
    }
}

/// The slot banks: a slot's party of generation `g` may not have left it (unlocked its
/// `alive`) when generation `g + 1` fills, but has when `g + 2` does, unless more processes
/// than parties take turns at the barrier; then the new party is checked through `/proc`.
const BANKS: usize = 2;

/// Initialises the `alive` mutex of each of the `slots` slots of a fresh segment.
fn init_slots(seg: &Segment<BarrierHeader>, slots: usize, fresh: &Fresh) -> Result<()> {
    (0..slots).try_for_each(|i| seg.element::<BarrierSlot>(i).alive.init(false, fresh))
}

/// Whether the party recorded in `slot` has died: its `alive` found owner-died (then
/// repaired and released, for the slot's next party), or, when the party does not hold it,
/// its pid gone, a zombie, or another process (another start time).
fn slot_party_died(slot: &BarrierSlot) -> bool {
    if slot.held.load(Ordering::SeqCst) != 0 {
        match slot.alive.lock(Some(Duration::ZERO), || ()) {
            // Held by the waiting party: alive.
            Ok(Acquire::TimedOut) => return false,
            Ok(Acquire::OwnerDied) => {
                let _ = slot.alive.make_consistent();
                let _ = slot.alive.unlock();
                return true;
            }
            // Free (the party is leaving) or unusable: ask `/proc`.
            Ok(Acquire::Acquired) => {
                let _ = slot.alive.unlock();
            }
            Err(_) => {}
        }
    }
    slot.pid
        .load(Ordering::SeqCst)
        .is_some_and(|pid| start_time(pid) != Some(slot.start_time.load(Ordering::SeqCst)))
}

/// A waiting party's hold on its slot's `alive` mutex, released on drop.
struct AliveHold<'a>(&'a RawMutex);

impl<'a> AliveHold<'a> {
    /// Takes `alive` without waiting; `None` when another party still holds it (or it is
    /// unusable). A previous holder that died holding it is taken over.
    fn take(alive: &'a RawMutex) -> Option<AliveHold<'a>> {
        match alive.lock(Some(Duration::ZERO), || ()) {
            Ok(Acquire::Acquired) => Some(AliveHold(alive)),
            Ok(Acquire::OwnerDied) => match alive.make_consistent() {
                Ok(()) => Some(AliveHold(alive)),
                Err(_) => {
                    let _ = alive.unlock();
                    None
                }
            },
            Ok(Acquire::TimedOut) | Err(_) => None,
        }
    }
}

impl Drop for AliveHold<'_> {
    fn drop(&mut self) {
        // The caller took it and nothing else unlocks it, so this cannot fail.
        let _ = self.0.unlock();
    }
}

impl AsFd for Barrier {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.seg.as_fd()
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

    /// Locks `alive` on a thread of its own that then ends without unlocking it, so that the
    /// robust-list walk at its exit marks it owner-died. The explicit `join` waits for the
    /// thread's end (`pthread_join`), after that walk; the scope's own wait would only wait
    /// for the closure to return.
    fn held_by_a_dead_thread(alive: &RawMutex) {
        let taken = std::thread::scope(|scope| {
            scope
                .spawn(|| alive.lock(Some(Duration::ZERO), || ()).ok())
                .join()
        });
        assert_eq!(
            taken.expect("locking thread"),
            Some(Acquire::Acquired),
            "a free slot mutex"
        );
    }

    #[test]
    fn a_slot_party_is_judged_by_its_mutex_or_else_by_proc() -> Result<()> {
        let barrier = Barrier::new(2, None)?;
        let me = crate::os::process::getpid();
        let start = own_start_time(me).expect("own start time");
        let slot = barrier.slot(0, 0);
        slot.pid.store(Some(me), Ordering::SeqCst);
        slot.start_time.store(start, Ordering::SeqCst);

        // Not holding its mutex: `/proc` decides, by pid and start time.
        assert!(!slot_party_died(slot), "this process, by /proc");
        slot.start_time.store(start + 1, Ordering::SeqCst);
        assert!(
            slot_party_died(slot),
            "another start time is another process"
        );
        slot.start_time.store(start, Ordering::SeqCst);

        // Holding it: the mutex decides, whatever `/proc` would say.
        slot.held.store(1, Ordering::SeqCst);
        let far = Pid::from_raw(i32::MAX).expect("positive");
        slot.pid.store(Some(far), Ordering::SeqCst);
        let hold = AliveHold::take(&slot.alive).expect("a free slot mutex is taken");
        assert!(
            !std::thread::scope(|scope| scope.spawn(|| slot_party_died(slot)).join())
                .expect("checker thread"),
            "a party holding its slot mutex is alive"
        );
        drop(hold);

        // A holder that died: dead, and the mutex is repaired and free for the next party.
        held_by_a_dead_thread(&slot.alive);
        assert!(slot_party_died(slot), "an owner-died slot mutex");
        assert_eq!(
            slot.alive.lock(Some(Duration::ZERO), || ()).ok(),
            Some(Acquire::Acquired),
            "the checker left the slot mutex consistent and free"
        );
        slot.alive.unlock()?;

        // A slot mutex found free while marked held (its party is leaving): `/proc` decides.
        assert!(
            slot_party_died(slot),
            "a pid above the kernel's limit, by /proc"
        );
        slot.pid.store(Some(me), Ordering::SeqCst);
        assert!(!slot_party_died(slot), "this process, by /proc");
        Ok(())
    }

    #[test]
    fn a_new_party_takes_over_a_slot_mutex_whose_holder_died() -> Result<()> {
        let barrier = Barrier::new(2, None)?;
        let slot = barrier.slot(1, 0);
        held_by_a_dead_thread(&slot.alive);
        let hold = AliveHold::take(&slot.alive).expect("taken over from the dead holder");
        assert!(slot.alive.held_by_caller());
        drop(hold);
        assert_eq!(slot.alive.depth(), 0, "released on drop");
        // Held by someone else: not taken, and no wait.
        let hold = AliveHold::take(&slot.alive).expect("free again");
        let taken_elsewhere = std::thread::scope(|scope| {
            scope
                .spawn(|| AliveHold::take(&slot.alive).is_some())
                .join()
        })
        .expect("other thread");
        assert!(!taken_elsewhere, "a held slot mutex is not taken");
        drop(hold);
        Ok(())
    }

    #[test]
    fn generations_alternate_between_the_banks() -> Result<()> {
        let barrier = Barrier::new(3, None)?;
        let even: *const BarrierSlot = barrier.slot(0, 2);
        let odd: *const BarrierSlot = barrier.slot(1, 2);
        assert_ne!(even, odd, "the odd generations' slot is another one");
        assert_eq!(even, barrier.slot(2, 2) as *const BarrierSlot);
        assert_eq!(odd, barrier.slot(u32::MAX, 2) as *const BarrierSlot);
        Ok(())
    }

    #[test]
    fn own_start_time_is_readable() {
        let me = crate::os::process::getpid();
        let start = start_time(me);
        assert!(start.is_some());
        assert_eq!(own_start_time(me), start, "first read, from /proc");
        assert_eq!(own_start_time(me), start, "then from the packed word");
        // Another process's pid in the word (as in a forked child) is not taken for ours.
        OWN_START.store(1 << START_BITS | 12345, Ordering::Relaxed);
        assert_eq!(
            own_start_time(me),
            start,
            "a stale pid in the word is read again"
        );
        let far = Pid::from_raw(i32::MAX).expect("positive");
        assert_eq!(start_time(far), None, "a pid above the kernel's limit");
    }
}
