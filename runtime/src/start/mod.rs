//! Start methods: how a `Process` becomes a running child.
//!
//! Each method is one implementation of [`Launcher`], as CPython has `popen_fork`,
//! `popen_spawn_posix` and `popen_forkserver`. Only `Fork` exists so far.

use std::io::Write;
use std::sync::Arc;

use crate::child::Child;
use crate::error::Result;
use crate::process::TargetSlot;

mod fork;

/// How a child process is created.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum StartMethod {
    /// `fork()`: the child is a copy of the parent and runs the target at once.
    ///
    /// Any closure can be a target. The parent must be single-threaded, see
    /// [`Process::start`](crate::Process::start).
    #[default]
    Fork,
}

/// Whether the fork start method may fork a multi-threaded parent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Threads {
    /// Refuse a parent with more than one thread.
    Refuse,
    /// The caller promised, through an `unsafe` call, that forking is sound anyway.
    Allow,
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
}

/// One start method.
pub(crate) trait Launcher {
    /// Creates a running child that runs `target` and exits with its exit code.
    ///
    /// On error no child exists, no fd was leaked and `target` is untouched, so the caller
    /// can try again.
    fn launch(
        &self,
        spec: &ChildSpec<'_>,
        target: &mut TargetSlot,
        threads: Threads,
    ) -> Result<Arc<Child>>;
}

impl StartMethod {
    /// The implementation of this method.
    pub(crate) fn launcher(self) -> &'static dyn Launcher {
        match self {
            StartMethod::Fork => &fork::ForkLauncher,
        }
    }
}

/// Flushes Rust's stdout and stderr, so buffered output is neither lost nor duplicated by
/// a fork (CPython's `util._flush_std_streams`).
pub(crate) fn flush_std_streams() {
    // Nothing useful can be done when a flush fails (a closed terminal): the bytes are lost
    // either way, and the process must go on.
    let _ = std::io::stdout().flush();
    let _ = std::io::stderr().flush();
}
