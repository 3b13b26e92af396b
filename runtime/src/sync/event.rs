//! `Event`: a process-shared flag that processes can wait for.
//!
//! One futex word in its own segment: 0 clear, 1 set. `set` stores 1 and wakes every
//! waiter; it never waits for a waiter to acknowledge, so a waiter that died cannot make it
//! hang (T20, where CPython's `Event.set()` deadlocks).
#![forbid(unsafe_code)]

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use crate::children::parent_watch;
use crate::children::status::{BlockedOn, blocked};
use crate::error::Result;
use crate::os::futex::{self, Wake};
use crate::os::layout::EventHeader;
use crate::os::shm::Segment;
use crate::os::time::Deadline;

/// A process-shared event flag (`multiprocessing.Event`), the seed's "process-safe boolean
/// flag".
///
/// ```
/// # fn main() -> proclife::Result<()> {
/// let ev = proclife::sync::Event::new()?;
/// assert!(!ev.wait(Some(std::time::Duration::ZERO))?);
/// ev.set();
/// assert!(ev.is_set());
/// assert!(ev.wait(None)?);
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct Event {
    seg: Segment<EventHeader>,
}

impl Event {
    /// Creates a clear event.
    ///
    /// # Errors
    ///
    /// [`Error::NoSpace`] or [`Error::Os`] when the segment cannot be made.
    pub fn new() -> Result<Event> {
        Ok(Event {
            seg: Segment::new(0, |_, _| Ok(()))?,
        })
    }

    /// Rebuilds an event from the fd of its segment.
    ///
    /// # Errors
    ///
    /// [`Error::Malformed`] when the fd is not a sealed segment.
    pub fn from_fd(fd: OwnedFd) -> Result<Event> {
        Ok(Event {
            seg: Segment::from_fd(fd)?,
        })
    }

    fn flag(&self) -> &AtomicU32 {
        &self.seg.header().flag
    }

    /// Whether the flag is set.
    pub fn is_set(&self) -> bool {
        self.flag().load(Ordering::SeqCst) != 0
    }

    /// Sets the flag and wakes every waiter; never blocks.
    pub fn set(&self) {
        self.flag().store(1, Ordering::SeqCst);
        futex::wake_all(self.flag());
    }

    /// Clears the flag.
    pub fn clear(&self) {
        self.flag().store(0, Ordering::SeqCst);
    }

    /// Waits until the flag is set or `timeout` passes; returns the flag.
    ///
    /// # Errors
    ///
    /// [`Error::Os`] for an unexpected futex failure; [`Error::ParentDied`] when this wait has
    /// no timeout, runs in a child and outlives the parent (decision 0018; CPython waits
    /// forever).
    pub fn wait(&self, timeout: Option<Duration>) -> Result<bool> {
        if self.is_set() {
            return Ok(true);
        }
        let deadline = Deadline::after(timeout);
        if deadline.expired() {
            return Ok(false);
        }
        let _blocked = blocked(BlockedOn::Event);
        loop {
            let wake = parent_watch::futex_wait(self.flag(), 0, &deadline)?;
            if self.is_set() {
                return Ok(true);
            }
            if wake == Wake::TimedOut || deadline.expired() {
                return Ok(false);
            }
        }
    }
}

impl AsFd for Event {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.seg.as_fd()
    }
}
