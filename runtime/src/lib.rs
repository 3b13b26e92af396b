//! proclife: the life-cycle of Python's `multiprocessing.Process`, its IPC and its
//! process-shared synchronisation, on real Linux processes.
//!
//! A [`Process`] is new until [`start`](Process::start), then running (or blocked in one
//! of the runtime's waits), then terminated for good, and finally closed. Names mirror
//! CPython; every refusal CPython makes is an [`Error`] that also names, through
//! [`Error::python`], the CPython exception it stands for.
//!
//! ```no_run
//! use std::time::Duration;
//! use proclife::{Process, ProcessState};
//!
//! let mut p = Process::builder().name("worker").target(|| std::process::exit(3));
//! p.start()?;
//! p.join_timeout(Duration::from_secs(5))?;
//! assert_eq!(p.exitcode()?, Some(3));
//! assert_eq!(p.state()?, ProcessState::Terminated(3));
//! p.close()?;
//! # Ok::<(), proclife::Error>(())
//! ```
//!
//! Every child has a pidfd, opened right after `fork()` before anyone can reap the child:
//! it is the [sentinel](Process::sentinel), joins sleep in `poll(2)` on it, signals go
//! through `pidfd_send_signal`, and reaping is `waitid(P_PIDFD)`, never `waitpid(-1)`.
//!
//! # Use it
//!
//! - **Linux only** (5.4 or newer, 6.15 for the fork server); other systems get a compile
//!   error.
//! - **The threads rule.** The default start method, [`StartMethod::Fork`], refuses a
//!   parent with more than one thread ([`Error::ThreadedFork`]): start processes before
//!   threads, or use [`StartMethod::Spawn`] or [`StartMethod::ForkServer`] with a function
//!   registered by [`entry!`] ([`Builder::entry`]).
//! - **Tests.** Write [`#[proclife::test]`](macro@test) instead of `#[test]`: the body runs
//!   on the main thread of its own process, so every start method works there, closures
//!   under fork included, with the default harness and no other setting.
//! - **Values back.** [`Builder::target_returning`] and [`Builder::entry_returning`] give a
//!   [`result::JoinHandle`] whose `join()` returns the child's value or a typed
//!   [`result::ResultError`]; [`connection::wait`] waits for the first of several processes,
//!   connections and queues.
//! - **Examples** in `examples/`: `lifecycle`, `terminate_kill`, `custom_target`,
//!   `pipe_result`, `worker_queue`, `shared_counter`, `event_shutdown`, `lock_section`,
//!   `semaphore_limit`, `barrier_phases`, `condition_handoff`.
#![deny(unsafe_code)]

#[cfg(not(target_os = "linux"))]
compile_error!(
    "proclife supports Linux only: it is built on pidfds, futexes, memfds and \
     /proc/self/exe (Linux 5.4 or newer; 6.15 for the fork server)"
);

mod children;
pub mod error;
pub mod ipc;
mod os;
mod pid;
#[doc(hidden)]
pub mod planted;
mod process;
pub mod result;
mod site;

/// CPython's `multiprocessing.connection`: [`Connection`](ipc::Connection),
/// [`Pipe`](ipc::pipe) and [`wait`](ipc::wait) under the names Python programs use.
pub mod connection {
    pub use crate::ipc::{Connection, Waitable, pipe, wait};
}
mod start;
pub mod sync;
pub mod testing;

/// Makes a function a test whose body runs on the main thread of a fresh, single-threaded
/// process, so that it may start processes under every start method, including
/// [`StartMethod::Fork`] with closure targets, from the default test harness.
///
/// A plain `#[test]` runs on a thread libtest starts, so the fork start method refuses it
/// with [`Error::ThreadedFork`] (even with `--test-threads=1`). Write `#[proclife::test]`
/// instead of `#[test]`; nothing else changes: the function returns `()` or
/// `Result<(), E: Debug>`, and the `should_panic` (with or without `expected`) and `ignore`
/// attributes work as usual. The test binary is re-executed (the spawn start method) and
/// runs the body before `main`, on its main thread; the test passes when the body returns
/// (or returns `Ok`) and fails with the body's panic message otherwise, or when its process
/// dies first. The body's stdout and stderr reach libtest's capture, shown for a failing
/// test or with `--nocapture`. See [`testing`] for the details.
///
/// ```no_run
/// #[proclife::test]
/// fn child_exits_with_its_code() -> proclife::Result<()> {
///     let mut p = proclife::Process::new(|| std::process::exit(3));
///     p.start()?;
///     p.join()?;
///     assert_eq!(p.exitcode()?, Some(3));
///     Ok(())
/// }
/// ```
pub use proclife_macros::test;

pub use os::shm;

pub use children::current::{
    CurrentProcess, ParentProcess, active_children, current_process, parent_process,
};
pub use error::{Error, Result};
pub use pid::Pid;
pub use process::{Builder, Process, ProcessState};
pub use site::{Object, Operation, Site};
pub use start::bootstrap::{BOOTSTRAP_EXIT_CODE, ENV as BOOTSTRAP_ENV};
pub use start::target::{Target, TargetResult};
pub use start::{
    StartMethod, fork_server_pid, get_start_method, set_start_method, set_start_method_force,
    stop_fork_server,
};

/// What [`entry!`] expands to; not part of the public API.
#[doc(hidden)]
pub mod __private {
    pub use crate::start::entry::{ENTRIES, EntryPoint, Prepared, key_of, prepare};
    pub use linkme;
}
pub use children::status::BlockedOn;
pub use children::wait::{FdKind, KernelWait, SystemCall, WaitFd};
