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
#![deny(unsafe_code)]

mod children;
pub mod error;
pub mod ipc;
mod os;
mod pid;
#[doc(hidden)]
pub mod planted;
mod process;
mod start;
pub mod sync;

pub use os::shm;

pub use children::current::{
    CurrentProcess, ParentProcess, active_children, current_process, parent_process,
};
pub use error::{Error, Result};
pub use pid::Pid;
pub use process::{Builder, Process, ProcessState};
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
