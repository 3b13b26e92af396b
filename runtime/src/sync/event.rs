//! `Event`: a process-shared flag that processes can wait for.
//!
//! One futex word in its own segment: 0 clear, 1 set. `set` stores 1 and wakes every
//! waiter; it never waits for a waiter to acknowledge, so a waiter that died cannot make it
//! hang (T20, where CPython's `Event.set()` deadlocks).
//!
//! # Safety
//!
//! The segment holds at least one `AtomicU32` at offset 0 (page-aligned), zero-initialised.
#![allow(unsafe_code)]

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use crate::children::status::{BlockedOn, blocked};
use crate::error::{Error, Result};
use crate::os::futex::{self, Wake};
use crate::os::shm::SharedMemory;
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
    shm: SharedMemory,
}

impl Event {
    /// Creates a clear event.
    ///
    /// # Errors
    ///
    /// [`Error::NoSpace`] or [`Error::Os`] when the segment cannot be made.
    pub fn new() -> Result<Event> {
        Ok(Event {
            shm: SharedMemory::new(std::mem::size_of::<AtomicU32>())?,
        })
    }

    /// Rebuilds an event from the fd of its segment.
    ///
    /// # Errors
    ///
    /// [`Error::Malformed`] when the fd is not a sealed segment.
    pub fn from_fd(fd: OwnedFd) -> Result<Event> {
        let shm = SharedMemory::from_fd(fd)?;
        if shm.len() < std::mem::size_of::<AtomicU32>() {
            return Err(Error::Malformed("segment too small for an event"));
        }
        Ok(Event { shm })
    }

    fn flag(&self) -> &AtomicU32 {
        // SAFETY: see the module's `# Safety`.
        unsafe { self.shm.at::<AtomicU32>(0) }
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
    /// [`Error::Os`] for an unexpected futex failure.
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
            let wake = futex::wait(self.flag(), 0, &deadline)?;
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
        self.shm.as_fd()
    }
}
