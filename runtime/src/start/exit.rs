//! How a child process ends; CPython 3.13's rules (`popen_fork`, `forkserver`,
//! `process._bootstrap`), whatever way the target ends.
//!
//! Right after a process becomes a child (after `fork()`, or once a re-executed child has
//! accepted its bootstrap) it registers one handler with glibc's `on_exit` ([`arm`]). glibc
//! runs exit handlers in the reverse order of their registration, so this handler runs
//! after every handler the child registers itself and before every handler registered
//! earlier: the ones it inherited through `fork()` (its parent's, or the fork server's) and
//! those a re-executed program's constructors registered before the bootstrap. The handler
//! applies the exit policy to the child's own children, flushes Rust's standard streams and
//! every C stdio stream, and ends the process with `_exit(status)`, so nothing registered
//! before it ever runs in the child.
//!
//! Every way out of the target then goes through `exit()`: a return, a returned error and a
//! panic through [`end`], `std::process::exit(n)` and `libc::exit(n)` directly. So the
//! child's own handlers run exactly once, the exit code is `exit`'s status (CPython's
//! mapping: 0, 1, `n & 0xFF`), and a signal runs nothing. Before a fork the parent flushes
//! every C stdio stream too ([`flush_c_stdio`], as CPython flushes its streams), so no
//! buffered byte is written twice.
//!
//! What `exit()` also does before the handlers: glibc runs the thread-local destructors of
//! the calling thread, as at the end of any Rust program.
//!
//! With [`Builder::join_threads`](crate::Builder::join_threads) a child whose target returns
//! (or fails, or panics) first waits for every other thread of the process to end
//! ([`join_threads`]), as CPython's child waits for its non-daemon threads; `exit(n)` called
//! by the target does not wait (decision 0010).
//!
//! The system calls (glibc's `on_exit`, `fflush(NULL)`, `_exit`, thread pidfds) are in
//! [`crate::os`].
#![forbid(unsafe_code)]

use std::ffi::{c_int, c_void};
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicI32, Ordering};

use nix::poll::{PollFd, PollFlags};

use crate::children::registry;
use crate::error::{Error, Result};
use crate::os;
use crate::os::time::Deadline;
use crate::pid::{AtomicPid, Pid};

/// The pid of the process that armed the handler (none: none armed); [`end`] goes through
/// `exit()` only when its caller armed it.
static ARMED: &AtomicPid = &crate::children::registry::STATICS.exit_armed;

/// A runtime thread that [`join_threads`] does not wait for (the daemon's parent watcher).
static EXEMPT: AtomicI32 = AtomicI32::new(0);

/// Registers the child's exit handler; see the module's documentation. Call once, in the
/// child, before the target runs.
///
/// # Errors
///
/// `Error::Os { call: "on_exit", errno: ENOMEM }` when glibc cannot grow its list of
/// handlers; the child then ends through [`end`] without the handler, as before a target.
pub(crate) fn arm(me: Pid) -> Result<()> {
    os::process::on_exit(child_exit)?;
    ARMED.store(Some(me), Ordering::Release);
    Ok(())
}

/// The exit handler of a child: the exit policy, the flush, `_exit(status)`.
extern "C" fn child_exit(status: c_int, _arg: *mut c_void) {
    finish(status)
}

/// Applies the exit policy to this process's children, flushes every stream and ends the
/// process with `_exit(status)`.
fn finish(status: c_int) -> ! {
    // The process is ending, whichever way it got here (its target returned, or called
    // `exit`): the exit policy's waits are not the target's, so they are not reported.
    crate::children::status::uninstall_current();
    // A panic must not unwind into glibc's `exit`.
    let _ = std::panic::catch_unwind(registry::shutdown_children);
    // A forked child is not reaped before its parent holds its pidfd (T12).
    crate::children::status::wait_for_pidfd_handoff();
    // Flushes Rust's streams and C stdio, then `_exit`: nothing registered before the
    // handler may run.
    os::fork::exit_now(status)
}

/// Ends a child whose target is done with exit code `code`, through `exit()` (so the
/// child's own handlers run, then [`child_exit`]); without an armed handler, directly as
/// the handler would. `me` is the pid the child passed to [`arm`].
///
/// `exit()` is glibc's without Rust's run-time teardown while the child has a single thread
/// ([`os::process::exit`]): the teardown (the main thread's alternate signal stack, the
/// standard output's buffer) costs a forked child two system calls and several
/// copy-on-write page faults, and the handler flushes Rust's streams anyway.
pub(crate) fn end(code: i32, me: Pid) -> ! {
    if ARMED.load(Ordering::Acquire) == Some(me) {
        os::process::exit(code)
    }
    finish(code)
}

/// Marks the calling thread as the runtime's own: [`join_threads`] does not wait for it.
pub(crate) fn exempt_current_thread() {
    EXEMPT.store(nix::unistd::gettid().as_raw(), Ordering::Release);
}

/// Waits until every thread of this process but the caller (and the runtime's own) has
/// ended, as CPython's `threading._shutdown` waits for non-daemon threads. Threads started
/// meanwhile are waited for too: the task list is read again until no other thread is left.
///
/// Each wait sleeps in `poll(2)` on a thread pidfd (`PIDFD_THREAD`, Linux 6.9).
///
/// # Errors
///
/// [`Error::Unsupported`] before Linux 6.9; `Error::Os` when `/proc/self/task` cannot be
/// read or a poll fails.
pub(crate) fn join_threads() -> Result<()> {
    let me = nix::unistd::gettid().as_raw();
    loop {
        let tasks = std::fs::read_dir("/proc/self/task")
            .map_err(|e| Error::io("open(/proc/self/task)", &e))?;
        let mut others = 0;
        for task in tasks.flatten() {
            let Some(tid) = task
                .file_name()
                .to_str()
                .and_then(|t| t.parse::<i32>().ok())
            else {
                continue;
            };
            if tid == me || tid == EXEMPT.load(Ordering::Acquire) {
                continue;
            }
            let Some(pidfd) = os::pidfd::pidfd_open_thread(tid)? else {
                continue;
            };
            // A thread that has already ended (it may linger in the list for a moment)
            // does not count; one that had to be waited for may have started others.
            let mut fds = [PollFd::new(pidfd.as_fd(), PollFlags::POLLIN)];
            if os::poll::now(&mut fds)? == 0 {
                others += 1;
                os::poll::wait(&mut fds, &Deadline::after(None))?;
            }
        }
        if others == 0 {
            return Ok(());
        }
    }
}
