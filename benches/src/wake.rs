//! proclife's wake-up fixtures, beside the raw futex pair of [`crate::raw::wake`]: a forked
//! child that answers every ping through an `Event` pair, a `Condition`, or a two-party
//! `Barrier`, so that one round is two wake-ups of a sleeping process in each case.
//!
//! The helper child is forked with the raw helper (as for the lock benchmarks), so the rows
//! differ from the baseline only in the primitive. The [`Turn`] page carries the stop request
//! and the child's count of answered rounds, which the parent checks after every sample.

use std::time::Duration;

use proclife::sync::{Barrier, Condition, Event};

use crate::raw::wake::Turn;
use crate::raw::{CHILD_EXIT_BOUND, Child, code, fork_helper};
use crate::{Error, Result};

/// The parent's bound on one round.
const ROUND_BOUND: Option<Duration> = Some(CHILD_EXIT_BOUND);

fn hung(child: &mut Child, what: &str) -> Error {
    child.blame(Error::Corrupt {
        what: format!("{what} did not happen within {CHILD_EXIT_BOUND:?}"),
    })
}

/// A child that waits on `ping`, clears it, and sets `pong`, until told to stop.
#[derive(Debug)]
pub struct EventPingPong<'t> {
    turn: &'t Turn,
    ping: Event,
    pong: Event,
    child: Child,
}

impl<'t> EventPingPong<'t> {
    /// Creates the two events and forks the answering child.
    ///
    /// # Errors
    ///
    /// [`Error::Runtime`] from `Event::new`; as [`fork_helper`].
    pub fn start(turn: &'t Turn) -> Result<Self> {
        turn.reset();
        let ping = Event::new().map_err(Error::runtime("Event::new"))?;
        let pong = Event::new().map_err(Error::runtime("Event::new"))?;
        let child = fork_helper(|| {
            loop {
                if !matches!(ping.wait(None), Ok(true)) {
                    return code::READ;
                }
                ping.clear();
                if turn.stopped() {
                    return code::OK;
                }
                turn.answered();
                pong.set();
            }
        })?;
        Ok(EventPingPong {
            turn,
            ping,
            pong,
            child,
        })
    }

    /// One round: `ping.set()`, then `pong.wait()` and `pong.clear()`.
    ///
    /// # Errors
    ///
    /// When the child does not answer within [`CHILD_EXIT_BOUND`] (its own failure if it
    /// died), or [`Error::Runtime`] from `wait`.
    pub fn round(&mut self) -> Result<()> {
        self.ping.set();
        match self.pong.wait(ROUND_BOUND) {
            Ok(true) => {
                self.pong.clear();
                Ok(())
            }
            Ok(false) => Err(hung(&mut self.child, "the answer of an Event ping")),
            Err(source) => Err(Error::Runtime {
                call: "Event::wait",
                source,
            }),
        }
    }

    /// Stops and reaps the child; returns the rounds it answered.
    ///
    /// # Errors
    ///
    /// As [`Child::wait`].
    pub fn finish(mut self) -> Result<u64> {
        self.turn.stop();
        self.ping.set();
        self.child.wait(CHILD_EXIT_BOUND)?;
        Ok(self.turn.rounds())
    }
}

/// A child that holds a `Condition`'s lock and answers each ping: waits until the turn word
/// is its own, gives it back and notifies.
#[derive(Debug)]
pub struct ConditionPingPong<'t> {
    turn: &'t Turn,
    condition: Condition,
    child: Child,
}

impl<'t> ConditionPingPong<'t> {
    /// Creates the condition (over its default `RLock`) and forks the answering child.
    ///
    /// # Errors
    ///
    /// [`Error::Runtime`] from `Condition::new`; as [`fork_helper`].
    pub fn start(turn: &'t Turn) -> Result<Self> {
        turn.reset();
        let condition = Condition::new().map_err(Error::runtime("Condition::new"))?;
        let child = fork_helper(|| {
            if !matches!(condition.acquire(None), Ok(true)) {
                return code::LOCK;
            }
            loop {
                while !turn.childs() {
                    if condition.wait(None).is_err() {
                        return code::LOCK;
                    }
                }
                if turn.stopped() {
                    return if condition.release().is_ok() {
                        code::OK
                    } else {
                        code::LOCK
                    };
                }
                turn.answered();
                turn.give(false);
                if condition.notify(1).is_err() {
                    return code::LOCK;
                }
            }
        })?;
        Ok(ConditionPingPong {
            turn,
            condition,
            child,
        })
    }

    /// One round: under the lock, gives the turn to the child, `notify(1)`, and waits until
    /// the turn is back.
    ///
    /// # Errors
    ///
    /// When the child does not answer within [`CHILD_EXIT_BOUND`], or [`Error::Runtime`] from
    /// the condition.
    pub fn round(&mut self) -> Result<()> {
        let runtime = |call| move |source| Error::Runtime { call, source };
        if !self
            .condition
            .acquire(ROUND_BOUND)
            .map_err(runtime("Condition::acquire"))?
        {
            return Err(hung(&mut self.child, "acquiring the condition's lock"));
        }
        self.turn.give(true);
        let mut result = self
            .condition
            .notify(1)
            .map_err(runtime("Condition::notify"));
        while result.is_ok() && self.turn.childs() {
            result = match self.condition.wait(ROUND_BOUND) {
                Ok(true) => Ok(()),
                Ok(false) => Err(hung(&mut self.child, "the answer of a Condition ping")),
                Err(source) => Err(Error::Runtime {
                    call: "Condition::wait",
                    source,
                }),
            };
        }
        let released = self
            .condition
            .release()
            .map_err(runtime("Condition::release"));
        result.and(released)
    }

    /// Stops and reaps the child; returns the rounds it answered.
    ///
    /// # Errors
    ///
    /// As [`Child::wait`], and [`Error::Runtime`] from the condition.
    pub fn finish(mut self) -> Result<u64> {
        let runtime = |call| move |source| Error::Runtime { call, source };
        if self
            .condition
            .acquire(ROUND_BOUND)
            .map_err(runtime("Condition::acquire"))?
        {
            self.turn.stop();
            self.turn.give(true);
            let notified = self
                .condition
                .notify(1)
                .map_err(runtime("Condition::notify"));
            self.condition
                .release()
                .map_err(runtime("Condition::release"))?;
            notified?;
        }
        self.child.wait(CHILD_EXIT_BOUND)?;
        Ok(self.turn.rounds())
    }
}

/// A child that meets the parent at a two-party `Barrier`, round after round; the parent
/// announces how many rounds follow in an opening round, 0 for "exit".
#[derive(Debug)]
pub struct BarrierRounds<'t> {
    turn: &'t Turn,
    barrier: Barrier,
    child: Child,
}

impl<'t> BarrierRounds<'t> {
    /// Creates the barrier and forks the child.
    ///
    /// # Errors
    ///
    /// [`Error::Runtime`] from `Barrier::new`; as [`fork_helper`].
    pub fn start(turn: &'t Turn) -> Result<Self> {
        turn.reset();
        let barrier = Barrier::new(2, None).map_err(Error::runtime("Barrier::new"))?;
        let child = fork_helper(|| {
            loop {
                if barrier.wait().is_err() {
                    return code::LOCK;
                }
                let n = turn.announced();
                if n == 0 {
                    return code::OK;
                }
                for _ in 0..n {
                    if barrier.wait().is_err() {
                        return code::LOCK;
                    }
                    turn.answered();
                }
            }
        })?;
        Ok(BarrierRounds {
            turn,
            barrier,
            child,
        })
    }

    fn meet(&mut self) -> Result<usize> {
        self.barrier
            .wait_timeout(ROUND_BOUND)
            .map_err(|source| match source {
                proclife::Error::BrokenBarrier => hung(&mut self.child, "a barrier round"),
                source => Error::Runtime {
                    call: "Barrier::wait",
                    source,
                },
            })
    }

    /// Announces `n` rounds in an opening round (not part of the `n`), then runs them and
    /// returns the time the `n` rounds took.
    ///
    /// # Errors
    ///
    /// When a round does not complete within [`CHILD_EXIT_BOUND`], or a round's indices are
    /// not 0 and 1.
    pub fn rounds(&mut self, n: u32) -> Result<Duration> {
        self.turn.announce(n);
        self.meet()?;
        let start = std::time::Instant::now();
        for _ in 0..n {
            if self.meet()? > 1 {
                return Err(Error::Corrupt {
                    what: "a two-party barrier returned an index above 1".into(),
                });
            }
        }
        Ok(start.elapsed())
    }

    /// Tells the child to exit (an opening round announcing 0) and reaps it; returns the
    /// rounds it met.
    ///
    /// # Errors
    ///
    /// As [`Child::wait`].
    pub fn finish(mut self) -> Result<u64> {
        self.turn.announce(0);
        self.meet()?;
        self.child.wait(CHILD_EXIT_BOUND)?;
        Ok(self.turn.rounds())
    }
}
