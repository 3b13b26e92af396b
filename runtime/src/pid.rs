//! `Pid`: a positive process id, never the `0`/`-1` wildcards of `kill(2)`.
#![forbid(unsafe_code)]

use std::fmt;
use std::num::NonZeroI32;

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
