//! What every start method implements ([`Launcher`]) and is given: a [`ChildSpec`] and the
//! [`TargetSlot`] of the handle.
#![forbid(unsafe_code)]

use std::fmt;
use std::os::fd::OwnedFd;
use std::sync::Arc;

use super::entry::{self, EntryTarget};
use super::method::StartMethod;
use super::target::{Target, TargetResult};
use crate::children::child::Child;
use crate::error::{Error, Result};
use crate::os::fork::ForkPermit;
use crate::pid::Pid;

type OnceTarget = Box<dyn FnOnce() -> TargetResult + Send>;

/// The target a handle holds.
pub(crate) enum TargetSlot {
    /// No target (consumed by `run`, handed to the child, or never given): does nothing.
    Empty,
    /// A closure, callable once.
    Once(OnceTarget),
    /// A [`Target`] implementor, callable any number of times.
    Reusable(Box<dyn Target>),
    /// A registered function and its arguments, callable once; the only kind a re-executed
    /// child can run.
    Entry(Box<dyn EntryTarget>),
}

impl fmt::Debug for TargetSlot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TargetSlot::Empty => "Empty",
            TargetSlot::Once(_) => "Once(..)",
            TargetSlot::Reusable(_) => "Reusable(..)",
            TargetSlot::Entry(_) => "Entry(..)",
        })
    }
}

impl TargetSlot {
    /// Calls the target in the caller (`Process::run`): a closure is consumed, a
    /// [`Target`] and a function target stay (the function runs on a copy of its arguments).
    pub(crate) fn run_in_caller(&mut self) -> TargetResult {
        match self {
            TargetSlot::Entry(target) => target.call_on_copy(),
            _ => self.call(),
        }
    }

    /// Calls the target; a closure is consumed.
    // Inlined into a forked child's path: a frame less on the stack it writes after the fork
    // (`start_probe fork 2000`, six runs with ASLR: about 2 page faults fewer per start).
    #[inline(always)]
    pub(crate) fn call(&mut self) -> TargetResult {
        match std::mem::replace(self, TargetSlot::Empty) {
            TargetSlot::Empty => Ok(()),
            TargetSlot::Once(f) => f(),
            TargetSlot::Entry(target) => target.call(),
            TargetSlot::Reusable(mut target) => {
                let result = target.run();
                *self = TargetSlot::Reusable(target);
                result
            }
        }
    }
}

/// Whether the fork start method may fork a multi-threaded parent.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Threads {
    /// Refuse a parent with more than one thread.
    Refuse,
    /// The caller promised, through an `unsafe` call, that forking is sound anyway.
    Allow(ForkPermit),
}

/// What the child needs to know about itself.
#[derive(Debug)]
pub(crate) struct ChildSpec<'a> {
    /// The child's name.
    pub(crate) name: &'a str,
    /// The child's identity (for its own children's default names).
    pub(crate) identity: &'a [u64],
    /// Whether the child is a daemon.
    pub(crate) daemon: bool,
    /// Whether the child waits for its other threads when its target is done.
    pub(crate) join_threads: bool,
    /// The pid of the calling process, the child's parent (asked once per start, by
    /// `Process::start`, and handed down rather than asked again).
    pub(crate) parent: Pid,
}

/// One start method.
pub(crate) trait Launcher {
    /// Creates a running child that runs `target` and exits with its exit code.
    ///
    /// On error no child exists, no fd was leaked and `target` is untouched, so the caller
    /// can try again.
    fn launch(&self, spec: &ChildSpec<'_>, target: &mut TargetSlot) -> Result<Arc<Child>>;
}

/// Encodes the target for a re-executed child: entry key, argument bytes, argument fds.
///
/// # Errors
///
/// [`Error::NotPassable`] for a closure or a [`Target`](crate::Target) implementor (they
/// cannot be named in another process); as [`entry::export`] for a function target.
pub(crate) fn export_target(
    target: &TargetSlot,
    method: StartMethod,
) -> Result<(String, Vec<u8>, Vec<OwnedFd>)> {
    match target {
        TargetSlot::Entry(target) => entry::export(target.as_ref()),
        TargetSlot::Empty => entry::export(&entry::FnTarget {
            f: entry::no_target,
            args: (),
        }),
        TargetSlot::Once(_) | TargetSlot::Reusable(_) => Err(Error::NotPassable {
            method: method.name(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn closures_cannot_be_exported() {
        let target = TargetSlot::Once(Box::new(|| Ok(())));
        assert!(matches!(
            export_target(&target, StartMethod::Spawn),
            Err(Error::NotPassable { method: "spawn" })
        ));
        let (key, bytes, fds) =
            export_target(&TargetSlot::Empty, StartMethod::ForkServer).unwrap_or_default();
        assert!(key.contains("no_target"));
        assert!(bytes.is_empty() && fds.is_empty());
    }
}
