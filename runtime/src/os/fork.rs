//! Process creation: the runtime's only call of `fork()`, and the calls a child makes
//! between `fork` and `exec` or `_exit`.
//!
//! It uses glibc's `fork()` (through nix) rather than a raw `clone3(CLONE_PIDFD)`: glibc's
//! fork updates the child's cached thread id (used by `raise`, `abort`, `pthread_kill`) and
//! runs the `pthread_atfork` handlers, which a raw `clone3` would bypass.
//!
//! # Safety
//!
//! [`fork_with`] is sound for any caller: it takes a [`ForkPermit`] (the process has one
//! thread, read from `/proc/self/stat`, or the caller of an `unsafe` entry point vouched for
//! the fork), and the child never returns into the caller's frames: it runs the given
//! closure under `catch_unwind`, flushes the standard streams and calls `_exit`. The calls
//! between a fork and an exec ([`keep_only`]) are async-signal-safe system calls on
//! integers.
#![allow(unsafe_code)]

use std::os::fd::BorrowedFd;
use std::panic::{AssertUnwindSafe, catch_unwind};

use nix::errno::Errno;
use nix::sys::signal::{Signal, kill};
use nix::sys::wait::waitpid;
use nix::unistd::{ForkResult, Pid as RawPid, fork};

use super::procfs;
use super::stdio::flush_std_streams;
use crate::error::Result;
use crate::pid::Pid;

/// Proof that forking the calling process is sound now.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ForkPermit {
    _private: (),
}

impl ForkPermit {
    /// A permit when the process has one thread (`num_threads` of `/proc/self/stat`, read
    /// through `stat`); otherwise `Ok(Err(threads))`.
    ///
    /// # Errors
    ///
    /// As [`procfs::read_stat`].
    pub(crate) fn if_single_threaded(
        stat: BorrowedFd<'_>,
    ) -> Result<std::result::Result<ForkPermit, usize>> {
        let threads = procfs::read_stat(stat)?.num_threads;
        Ok(if threads == 1 {
            Ok(ForkPermit { _private: () })
        } else {
            Err(threads)
        })
    }

    /// A permit for a process that may have other threads.
    ///
    /// # Safety
    ///
    /// The caller guarantees that the child can run without what the other threads hold at
    /// the moment of the fork (locks, half-updated state): the contract of
    /// [`Process::start_in_threaded_parent`](crate::Process::start_in_threaded_parent).
    pub(crate) unsafe fn vouched() -> ForkPermit {
        ForkPermit { _private: () }
    }
}

/// `fork()`: the child gets `state` and runs `child(state)`, then ends with `_exit` and the
/// code it returned (1 if it panicked), having flushed the standard streams; the parent gets
/// `state` back with the child's pid.
///
/// The state is how values of the caller reach the child: the child owns them (and drops
/// what it does not need, which closes their fds), the parent keeps them.
///
/// # Errors
///
/// The `errno` of `fork` (`EAGAIN`, `ENOMEM`), with `state` back.
pub(crate) fn fork_with<S>(
    _permit: ForkPermit,
    state: S,
    child: impl FnOnce(S) -> i32,
) -> (S, nix::Result<RawPid>) {
    flush_std_streams();
    // SAFETY: `_permit` proves that forking is sound now (see `ForkPermit`); the child branch
    // below never returns: it ends in `_exit`.
    match unsafe { fork() } {
        Err(errno) => (state, Err(errno)),
        Ok(ForkResult::Parent { child }) => (state, Ok(child)),
        Ok(ForkResult::Child) => {
            let code = catch_unwind(AssertUnwindSafe(|| child(state))).unwrap_or(1);
            exit_now(code)
        }
    }
}

/// Ends the process at once with `code`, after flushing the standard streams: `_exit`, no
/// atexit handlers, no destructors, which is what the child of a fork (or a re-executed
/// process past its bootstrap) must do.
pub(crate) fn exit_now(code: i32) -> ! {
    flush_std_streams();
    // SAFETY: `_exit` touches no Rust state; nothing after it runs.
    unsafe { libc::_exit(code) }
}

/// Kills and reaps a child for which no pidfd could be opened.
///
/// Signalling by pid is safe here: the child is ours and not yet reaped, so its pid cannot
/// have been recycled (only a foreign `waitpid(-1)` could reap it, which the runtime does
/// not support in the same process).
pub(crate) fn kill_unregistered(child: Pid) {
    let child = RawPid::from_raw(child.as_raw());
    let _ = kill(child, Signal::SIGKILL);
    while let Err(Errno::EINTR) = waitpid(child, None) {}
}

/// Arranges for `command`'s child to run [`keep_only`]`(keep)` between fork and exec.
pub(crate) fn keep_only_on_exec(command: &mut std::process::Command, keep: i32) {
    use std::os::unix::process::CommandExt;
    // SAFETY: the closure only makes the async-signal-safe calls of `keep_only`
    // (`close_range` and `fcntl`), allocates nothing and touches no lock.
    unsafe {
        command.pre_exec(move || keep_only(keep));
    }
}

/// Makes `keep` the only descriptor above 2 that survives the next `execve`: marks every
/// fd from 3 up close-on-exec (`close_range(CLOSE_RANGE_CLOEXEC)`), then clears the flag
/// on `keep`. Runs in a child between fork and exec, so it only makes raw system calls
/// (async-signal-safe, no allocation).
///
/// # Errors
///
/// The `errno` of `fcntl`; a kernel without `close_range` (before 5.11) is tolerated, as
/// the runtime creates every fd close-on-exec anyway.
pub(crate) fn keep_only(keep: i32) -> std::io::Result<()> {
    // SAFETY: `close_range` takes integers only; with CLOSE_RANGE_CLOEXEC it closes nothing.
    let _ = unsafe {
        libc::syscall(
            libc::SYS_close_range,
            3 as libc::c_uint,
            libc::c_uint::MAX,
            libc::CLOSE_RANGE_CLOEXEC as libc::c_uint,
        )
    };
    // SAFETY: `fcntl(F_SETFD)` on an integer fd touches no memory.
    if unsafe { libc::fcntl(keep, libc::F_SETFD, 0) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}
