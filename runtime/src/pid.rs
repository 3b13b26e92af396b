//! `Pid`: a positive process id, never the `0`/`-1` wildcards of `kill(2)`; and
//! `AtomicPid`, a word that holds a pid or none.
//!
//! The runtime passes process ids as [`Pid`] everywhere; a raw `i32` appears only where a
//! system call takes or returns one (`os/`) and in the bootstrap and fork-server wire
//! formats, which encode [`Pid::as_raw`] and refuse a non-positive pid with a typed error.
#![forbid(unsafe_code)]

use std::fmt;
use std::num::NonZeroI32;
use std::sync::atomic::{AtomicI32, Ordering};

/// A process id: always positive, never the `0`/`-1` wildcards of `kill(2)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Pid(NonZeroI32);

impl Pid {
    /// Pid 1.
    pub(crate) const INIT: Pid = match NonZeroI32::new(1) {
        Some(one) => Pid(one),
        None => panic!("1 is not zero"),
    };

    /// Wraps a raw pid; `None` unless it is positive.
    pub fn from_raw(raw: i32) -> Option<Pid> {
        if raw > 0 {
            NonZeroI32::new(raw).map(Pid)
        } else {
            None
        }
    }

    /// The raw pid.
    pub fn as_raw(self) -> i32 {
        self.0.get()
    }

    pub(crate) fn from_nix(pid: nix::unistd::Pid) -> Option<Pid> {
        Pid::from_raw(pid.as_raw())
    }
}

impl fmt::Display for Pid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A pid or none in one atomic word: the raw pid, `0` for none.
///
/// `#[repr(transparent)]` over [`AtomicI32`], so it may sit in a `#[repr(C)]` layout in
/// shared memory, where all-zero bytes read as none. A word another process left holding a
/// non-positive value also reads as none.
#[repr(transparent)]
#[derive(Debug, Default)]
pub(crate) struct AtomicPid(AtomicI32);

impl AtomicPid {
    /// A word holding no pid.
    pub(crate) const fn none() -> AtomicPid {
        AtomicPid(AtomicI32::new(0))
    }

    /// The pid held, if any.
    pub(crate) fn load(&self, order: Ordering) -> Option<Pid> {
        Pid::from_raw(self.0.load(order))
    }

    /// Holds `pid` (`None`: no pid).
    pub(crate) fn store(&self, pid: Option<Pid>, order: Ordering) {
        self.0.store(pid.map_or(0, Pid::as_raw), order);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_atomic_pid_holds_a_pid_or_none() {
        let word = AtomicPid::none();
        assert_eq!(word.load(Ordering::Acquire), None);
        let pid = Pid::from_raw(42);
        word.store(pid, Ordering::Release);
        assert_eq!(word.load(Ordering::Acquire), pid);
        word.store(None, Ordering::Release);
        assert_eq!(word.load(Ordering::Acquire), None);
        assert_eq!(
            std::mem::size_of::<AtomicPid>(),
            std::mem::size_of::<AtomicI32>()
        );
    }
}
