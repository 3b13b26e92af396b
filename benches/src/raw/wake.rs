//! Raw wake-up baseline: two processes handing a turn back and forth through one futex word in
//! shared memory, and the [`Turn`] page that the proclife wake-up benchmarks (`Event`,
//! `Condition`, `Barrier`) use beside it.
//!
//! One *round* is a ping and its answer: the parent gives the turn to the child and waits
//! until the child has given it back, so a round is two wake-ups of a sleeping process. The
//! child counts the rounds it answered; [`check_rounds`] compares that with the parent's count
//! after every sample.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::sync::{Atomics, SharedPage};
use super::{CHILD_EXIT_BOUND, Child, code, fork_helper};
use crate::{Error, Result};

/// How long one sleep of the parent on the futex lasts before it looks whether the child is
/// still there; a round that takes longer than [`CHILD_EXIT_BOUND`] fails.
const POLL: Duration = Duration::from_millis(100);

/// The words of a [`Turn`] page.
#[repr(C)]
struct TurnWords {
    /// 1 while the child has the turn, 0 while the parent has it.
    turn: AtomicU32,
    /// Set by the parent before its last ping: the child exits instead of answering.
    stop: AtomicBool,
    /// Rounds the child answered.
    answered: AtomicU64,
    /// How many rounds the parent announced (the barrier rounds).
    announced: AtomicU32,
}

// SAFETY: every field is an atomic.
unsafe impl Atomics for TurnWords {}

/// A shared page with a turn word, a stop flag and the child's count of answered rounds,
/// inherited by children forked after [`Turn::new`].
#[derive(Debug)]
pub struct Turn {
    page: SharedPage<TurnWords>,
}

impl Turn {
    /// Maps a fresh page: the parent's turn, no stop request, no rounds answered.
    ///
    /// # Errors
    ///
    /// [`Error::Os`] when `mmap` fails.
    pub fn new() -> Result<Self> {
        // Zero-filled: turn 0 (the parent's), stop false, 0 answered.
        Ok(Turn {
            page: SharedPage::new()?,
        })
    }

    /// Whether the child has the turn.
    pub fn childs(&self) -> bool {
        self.page.words().turn.load(Ordering::Acquire) == 1
    }

    /// Gives the turn to the child (1) or back to the parent (0), without waking anyone.
    pub fn give(&self, to_child: bool) {
        self.page
            .words()
            .turn
            .store(u32::from(to_child), Ordering::Release);
    }

    /// Asks the child to exit at its next ping instead of answering it.
    pub fn stop(&self) {
        self.page.words().stop.store(true, Ordering::Release);
    }

    /// Whether the parent asked the child to exit.
    pub fn stopped(&self) -> bool {
        self.page.words().stop.load(Ordering::Acquire)
    }

    /// Counts one answered round (the child calls it).
    pub fn answered(&self) {
        self.page.words().answered.fetch_add(1, Ordering::AcqRel);
    }

    /// Announces how many rounds follow (the barrier rounds; 0: none, exit).
    pub fn announce(&self, rounds: u32) {
        self.page.words().announced.store(rounds, Ordering::Release);
    }

    /// The rounds the parent announced last.
    pub fn announced(&self) -> u32 {
        self.page.words().announced.load(Ordering::Acquire)
    }

    /// The rounds the child answered so far.
    pub fn rounds(&self) -> u64 {
        self.page.words().answered.load(Ordering::Acquire)
    }

    /// Re-arms the page for a new child: the parent's turn, no stop request, no rounds.
    pub fn reset(&self) {
        let words = self.page.words();
        words.turn.store(0, Ordering::Release);
        words.stop.store(false, Ordering::Release);
        words.answered.store(0, Ordering::Release);
        words.announced.store(0, Ordering::Release);
    }
}

/// Checks that the child answered exactly the rounds the parent timed.
///
/// # Errors
///
/// [`Error::Corrupt`] when the counts differ.
pub fn check_rounds(parent: u64, child: u64) -> Result<()> {
    if parent == child {
        Ok(())
    } else {
        Err(Error::Corrupt {
            what: format!("the parent timed {parent} rounds, the child answered {child}"),
        })
    }
}

/// `futex(FUTEX_WAIT)` on `word` while it holds `expected`, for at most `timeout`; returns
/// when woken, on a spurious wake-up, when the value differs, or when the time is up.
fn futex_wait(word: &AtomicU32, expected: u32, timeout: Duration) {
    let ts = libc::timespec {
        tv_sec: libc::time_t::try_from(timeout.as_secs()).unwrap_or(libc::time_t::MAX),
        tv_nsec: libc::c_long::from(timeout.subsec_nanos()),
    };
    // SAFETY: `word` is a live, aligned 32-bit atomic in shared memory and `ts` a valid
    // relative timeout; FUTEX_WAIT (not _PRIVATE, the word is shared between processes) only
    // reads the word. Every outcome (woken, EAGAIN, ETIMEDOUT, EINTR) is handled by the
    // caller re-reading the word.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAIT,
            expected,
            &raw const ts,
        )
    };
}

/// `futex(FUTEX_WAKE)` of one waiter on `word`.
fn futex_wake(word: &AtomicU32) {
    // SAFETY: `word` is a live, aligned 32-bit atomic; FUTEX_WAKE does not access memory.
    unsafe { libc::syscall(libc::SYS_futex, word.as_ptr(), libc::FUTEX_WAKE, 1) };
}

/// A child that answers every ping on a raw futex word: the baseline of the wake-up rows.
#[derive(Debug)]
pub struct FutexPingPong<'t> {
    turn: &'t Turn,
    child: Child,
}

impl<'t> FutexPingPong<'t> {
    /// Forks the answering child.
    ///
    /// # Errors
    ///
    /// As [`fork_helper`].
    pub fn start(turn: &'t Turn) -> Result<Self> {
        turn.reset();
        let child = fork_helper(|| {
            let word = &turn.page.words().turn;
            loop {
                // The parent is alive as long as this child is (PR_SET_PDEATHSIG), so the
                // child may sleep as long as the parent does not ping.
                while word.load(Ordering::Acquire) != 1 {
                    futex_wait(word, 0, Duration::from_secs(3600));
                }
                if turn.stopped() {
                    return code::OK;
                }
                turn.answered();
                word.store(0, Ordering::Release);
                futex_wake(word);
            }
        })?;
        Ok(FutexPingPong { turn, child })
    }

    /// One round: gives the turn to the child, wakes it, and sleeps until it gives it back.
    ///
    /// # Errors
    ///
    /// [`Error::ChildFailed`] or [`Error::ChildHung`] when the child dies or does not answer
    /// within [`CHILD_EXIT_BOUND`].
    pub fn round(&mut self) -> Result<()> {
        let word = &self.turn.page.words().turn;
        word.store(1, Ordering::Release);
        futex_wake(word);
        let deadline = Instant::now() + CHILD_EXIT_BOUND;
        while word.load(Ordering::Acquire) == 1 {
            futex_wait(word, 1, POLL);
            if word.load(Ordering::Acquire) == 1 {
                self.check_alive(deadline)?;
            }
        }
        Ok(())
    }

    fn check_alive(&mut self, deadline: Instant) -> Result<()> {
        if self.child.try_wait()? {
            return Err(Error::ChildFailed {
                pid: self.child.pid(),
                status: "exited without answering".into(),
            });
        }
        if Instant::now() >= deadline {
            return Err(Error::ChildHung {
                pid: self.child.pid(),
                secs: CHILD_EXIT_BOUND.as_secs(),
            });
        }
        Ok(())
    }

    /// Stops and reaps the child; returns the rounds it answered.
    ///
    /// # Errors
    ///
    /// As [`Child::wait`].
    pub fn finish(mut self) -> Result<u64> {
        self.turn.stop();
        let word = &self.turn.page.words().turn;
        word.store(1, Ordering::Release);
        futex_wake(word);
        self.child.wait(CHILD_EXIT_BOUND)?;
        Ok(self.turn.rounds())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounds_must_match() {
        assert!(check_rounds(7, 7).is_ok());
        assert!(matches!(check_rounds(7, 6), Err(Error::Corrupt { .. })));
    }
}
