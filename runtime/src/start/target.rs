//! What a child runs: [`Target`], [`TargetResult`] and the slot a handle keeps its target in.

use std::fmt;

use super::entry::EntryTarget;

/// What a target returns: `Ok(())` exits with 0, an error exits with 1 and is printed on the
/// child's stderr.
pub type TargetResult = std::result::Result<(), Box<dyn std::error::Error + Send + Sync>>;

/// The Rust form of subclassing `multiprocessing.Process` and overriding `run()`.
///
/// A `Target` can run any number of times: [`Process::run`] calls it in the caller and
/// leaves it in the handle, so a later [`Process::start`] runs it again, in the child.
///
/// # Examples
///
/// ```
/// use proclife::{Process, Target, TargetResult};
///
/// struct Countdown(u32);
///
/// impl Target for Countdown {
///     fn run(&mut self) -> TargetResult {
///         while self.0 > 0 {
///             self.0 -= 1;
///         }
///         Ok(())
///     }
/// }
///
/// let mut p = Process::from_target(Countdown(3));
/// p.run().unwrap(); // in the caller, like Python's `p.run()`
/// ```
pub trait Target: Send + 'static {
    /// The process's activity; mirrors `multiprocessing.Process.run`.
    ///
    /// # Errors
    ///
    /// An error ends a child with exit code 1 after printing it on the child's stderr.
    fn run(&mut self) -> TargetResult;
}

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
    /// Calls the target; a closure is consumed.
    /// Calls the target in the caller (`Process::run`): a closure is consumed, a
    /// [`Target`] and a function target stay (the function runs on a copy of its arguments).
    pub(crate) fn run_in_caller(&mut self) -> TargetResult {
        match self {
            TargetSlot::Entry(target) => target.call_on_copy(),
            _ => self.call(),
        }
    }

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
