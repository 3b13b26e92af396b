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
//! # Safety
//!
//! The `unsafe` calls are glibc's `on_exit` (with a C-ABI function that lives as long as
//! the program and a null argument), `fflush(NULL)` (which touches only glibc's own
//! streams), `_exit` (which ends the process), and `pidfd_open` (integers only), whose new
//! descriptor is owned once.
#![allow(unsafe_code)]

use std::ffi::{c_int, c_void};
use std::os::fd::{AsFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicI32, Ordering};

use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};

use crate::error::{Error, Result};
use crate::registry;

unsafe extern "C" {
    /// glibc's `on_exit(3)`: registers `function(status, arg)` to run at `exit(status)`.
    fn on_exit(function: extern "C" fn(c_int, *mut c_void), arg: *mut c_void) -> c_int;
}

/// The pid of the process that armed the handler; another pid (a process forked from it
/// without the runtime) ends without running the policy through [`end`].
static ARMED: AtomicI32 = AtomicI32::new(0);

/// A runtime thread that [`join_threads`] does not wait for (the daemon's parent watcher).
static EXEMPT: AtomicI32 = AtomicI32::new(0);

/// `fflush(NULL)`—Writes out every C stdio output stream's buffer.
pub(crate) fn flush_c_stdio() {
    // SAFETY: `fflush(NULL)` flushes glibc's own open streams under their own locks; it
    // takes no pointer of ours. A failure (a closed descriptor) cannot be acted on.
    let _ = unsafe { libc::fflush(std::ptr::null_mut()) };
}

/// Registers the child's exit handler; see the module's documentation. Call once, in the
/// child, before the target runs.
///
/// # Errors
///
/// `Error::Os { call: "on_exit", errno: ENOMEM }` when glibc cannot grow its list of
/// handlers; the child then ends through [`end`] without the handler, as before a target.
pub(crate) fn arm() -> Result<()> {
    // SAFETY: `child_exit` is a C-ABI function with `on_exit`'s signature that lives for the
    // whole program; the argument is null and never dereferenced.
    let ret = unsafe { on_exit(child_exit, std::ptr::null_mut()) };
    if ret != 0 {
        return Err(Error::os("on_exit", Errno::ENOMEM));
    }
    ARMED.store(crate::sys::getpid(), Ordering::Release);
    Ok(())
}

/// The exit handler of a child: the exit policy, the flush, `_exit(status)`.
extern "C" fn child_exit(status: c_int, _arg: *mut c_void) {
    finish(status)
}

/// Applies the exit policy to this process's children, flushes every stream and ends the
/// process with `_exit(status)`.
fn finish(status: c_int) -> ! {
    // A panic must not unwind into glibc's `exit`.
    let _ = std::panic::catch_unwind(registry::shutdown_children);
    super::flush_std_streams();
    // SAFETY: ends the process at once; nothing registered before the handler may run.
    unsafe { libc::_exit(status) }
}

/// Ends a child whose target is done with exit code `code`, through `exit()` (so the
/// child's own handlers run, then [`child_exit`]); without an armed handler, directly as
/// the handler would.
pub(crate) fn end(code: i32) -> ! {
    if ARMED.load(Ordering::Acquire) == crate::sys::getpid() {
        std::process::exit(code)
    }
    finish(code)
}

/// Marks the calling thread as the runtime's own: [`join_threads`] does not wait for it.
pub(crate) fn exempt_current_thread() {
    EXEMPT.store(nix::unistd::gettid().as_raw(), Ordering::Release);
}

/// `PIDFD_THREAD` (Linux 6.9): a pidfd of one thread, readable once that thread exited.
const PIDFD_THREAD: libc::c_uint = libc::O_EXCL as libc::c_uint;

/// `pidfd_open(tid, PIDFD_THREAD)`; `None` once the thread is gone.
fn thread_pidfd(tid: i32) -> Result<Option<OwnedFd>> {
    // SAFETY: `pidfd_open` takes integers only and returns -1 or a new descriptor.
    let ret = unsafe { libc::syscall(libc::SYS_pidfd_open, tid, PIDFD_THREAD) };
    if ret < 0 {
        return match Errno::last() {
            Errno::ESRCH | Errno::ENOENT => Ok(None),
            Errno::EINVAL => Err(Error::Unsupported("pidfd_open(PIDFD_THREAD) (Linux 6.9)")),
            errno => Err(Error::os("pidfd_open", errno)),
        };
    }
    let fd = i32::try_from(ret).map_err(|_| Error::os("pidfd_open", Errno::EOVERFLOW))?;
    // SAFETY: a descriptor the kernel just returned, owned by nothing else.
    Ok(Some(unsafe { OwnedFd::from_raw_fd(fd) }))
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
            .map_err(|e| Error::os("open(/proc/self/task)", super::bootstrap::io_errno(&e)))?;
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
            let Some(pidfd) = thread_pidfd(tid)? else {
                continue;
            };
            // A thread that has already ended (it may linger in the list for a moment)
            // does not count; one that had to be waited for may have started others.
            let mut timeout = PollTimeout::ZERO;
            loop {
                let mut fds = [PollFd::new(pidfd.as_fd(), PollFlags::POLLIN)];
                match poll(&mut fds, timeout) {
                    Ok(0) => {
                        others += 1;
                        timeout = PollTimeout::NONE;
                    }
                    Ok(_) => break,
                    Err(Errno::EINTR) => continue,
                    Err(errno) => return Err(Error::os("poll", errno)),
                }
            }
        }
        if others == 0 {
            return Ok(());
        }
    }
}
