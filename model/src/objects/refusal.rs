//! Every refusal of the shared primitives, in one table: the situation, and the CPython
//! exception and message that stand for it.
//!
//! Where proclife deliberately refuses what CPython allows or hangs on (releasing a lock
//! another process holds, decision 0003; the death of a lock holder, decision 0005), the
//! table says so and gives the exception proclife raises instead.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A refusal of a primitive's operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Refusal {
    /// `release()` of a `Lock`, `RLock` or `Condition` the caller does not hold.
    NotOwner,
    /// `BoundedSemaphore.release()` above its initial value.
    TooManyReleases,
    /// `JoinableQueue.task_done()` more often than `put()`.
    TaskDoneTooMany,
    /// `acquire()` of a lock whose holder died holding it: the caller holds it now.
    OwnerDied,
    /// `Barrier.wait()` on a broken barrier, or one that broke while waiting (reset, abort,
    /// timeout, a party's death).
    BrokenBarrier,
    /// `Queue.get()` that found no item within its timeout.
    Empty,
    /// `Queue.put()` that found no room within its timeout.
    Full,
    /// `acquire()` with a nonzero timeout of a `Lock` the caller already holds (proclife
    /// refuses; CPython sleeps for the whole timeout, or forever).
    WouldDeadlock,
    /// Use of a handle after `close()`.
    Closed,
    /// `recv()` after every writer of the pipe is gone.
    Eof,
}

impl Refusal {
    /// Every refusal, in table order.
    pub const ALL: [Refusal; 10] = [
        Refusal::NotOwner,
        Refusal::WouldDeadlock,
        Refusal::TooManyReleases,
        Refusal::TaskDoneTooMany,
        Refusal::OwnerDied,
        Refusal::BrokenBarrier,
        Refusal::Empty,
        Refusal::Full,
        Refusal::Closed,
        Refusal::Eof,
    ];

    /// The exception class and message (CPython's, or proclife's where it deliberately
    /// differs, see [`Refusal::cpython_differs`]).
    pub fn python(self) -> (&'static str, &'static str) {
        match self {
            Refusal::NotOwner => ("RuntimeError", "cannot release un-acquired lock"),
            Refusal::TooManyReleases => ("ValueError", "semaphore or lock released too many times"),
            Refusal::TaskDoneTooMany => ("ValueError", "task_done() called too many times"),
            Refusal::OwnerDied => (
                "OwnerDied",
                "the previous holder of the lock died while holding it",
            ),
            Refusal::WouldDeadlock => (
                "WouldDeadlock",
                "the caller already holds this non-recursive lock",
            ),
            Refusal::BrokenBarrier => ("threading.BrokenBarrierError", ""),
            Refusal::Empty => ("queue.Empty", ""),
            Refusal::Full => ("queue.Full", ""),
            Refusal::Closed => ("OSError", "handle is closed"),
            Refusal::Eof => ("EOFError", ""),
        }
    }

    /// Where CPython behaves otherwise, what it does and the decision record that says why.
    pub fn cpython_differs(self) -> Option<&'static str> {
        match self {
            Refusal::NotOwner => {
                Some("CPython lets any process release a multiprocessing.Lock (decision 0003)")
            }
            Refusal::WouldDeadlock => Some(
                "CPython's Lock.acquire by its holder sleeps for the whole timeout and returns False",
            ),
            Refusal::OwnerDied => {
                Some("CPython's acquire hangs forever after a holder's death (decision 0005)")
            }
            _ => None,
        }
    }

    /// The refusal's name in coverage tables.
    pub fn name(self) -> &'static str {
        match self {
            Refusal::NotOwner => "NotOwner",
            Refusal::WouldDeadlock => "WouldDeadlock",
            Refusal::TooManyReleases => "TooManyReleases",
            Refusal::TaskDoneTooMany => "TaskDoneTooMany",
            Refusal::OwnerDied => "OwnerDied",
            Refusal::BrokenBarrier => "BrokenBarrier",
            Refusal::Empty => "Empty",
            Refusal::Full => "Full",
            Refusal::Closed => "Closed",
            Refusal::Eof => "EOF",
        }
    }

    /// The refusal with this exception class and message, if the table has it.
    pub fn from_python(exception: &str, message: &str) -> Option<Refusal> {
        Refusal::ALL
            .into_iter()
            .find(|r| r.python() == (exception, message))
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.python() {
            (exception, "") => write!(f, "raised {exception}"),
            (exception, message) => write!(f, "raised {exception}: {message}"),
        }
    }
}
