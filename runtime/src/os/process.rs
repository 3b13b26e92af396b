//! Facts about the calling process: its pid, its `atexit` list, the real-time signal range,
//! its `SIGPIPE` disposition, and the two things a re-executed process does before `main`
//! (scrub its bootstrap variable, claim its bootstrap socket).
//!
//! # Safety
//!
//! `exit` is called directly only while the process has a single thread
//! ([`single_threaded`]). `atexit` and glibc's `on_exit` are handed a plain `extern "C"` function that lives as
//! long as the program (and, for `on_exit`, a null argument that is never dereferenced);
//! `signal` installs `SIG_IGN`, no handler code.
#![allow(unsafe_code)]

use nix::errno::Errno;

use crate::error::{Error, Result};
use crate::pid::Pid;

/// `atexit(hook)`—Registers `hook` to run when the process calls `exit`.
///
/// # Errors
///
/// `Error::Os { call: "atexit", errno: ENOMEM }` when the list of handlers cannot grow.
pub(crate) fn atexit(hook: extern "C" fn()) -> Result<()> {
    // SAFETY: `hook` is a plain function with the C ABI and no arguments, as `atexit`
    // requires; it stays valid for the life of the program.
    let ret = unsafe { libc::atexit(hook) };
    if ret != 0 {
        return Err(Error::os("atexit", Errno::ENOMEM));
    }
    Ok(())
}

unsafe extern "C" {
    /// glibc's `on_exit(3)`: registers `function(status, arg)` to run at `exit(status)`.
    #[link_name = "on_exit"]
    fn glibc_on_exit(
        function: extern "C" fn(std::ffi::c_int, *mut std::ffi::c_void),
        arg: *mut std::ffi::c_void,
    ) -> std::ffi::c_int;
}

/// glibc's `on_exit(handler, NULL)`—Registers `handler` to run at `exit(status)` with the
/// status, after every handler registered later and before every one registered earlier.
///
/// # Errors
///
/// `Error::Os { call: "on_exit", errno: ENOMEM }` when the list of handlers cannot grow.
///
/// # References
///
/// <https://man7.org/linux/man-pages/man3/on_exit.3.html>
pub(crate) fn on_exit(
    handler: extern "C" fn(std::ffi::c_int, *mut std::ffi::c_void),
) -> Result<()> {
    // SAFETY: `handler` is a C-ABI function with `on_exit`'s signature that lives for the
    // whole program; the argument is null and never dereferenced.
    let ret = unsafe { glibc_on_exit(handler, std::ptr::null_mut()) };
    if ret != 0 {
        return Err(Error::os("on_exit", Errno::ENOMEM));
    }
    Ok(())
}

unsafe extern "C" {
    /// glibc's `__libc_single_threaded` (`<sys/single_threaded.h>`, glibc 2.32): non-zero
    /// while the process has never had a second thread. `mut`: glibc writes it (at the
    /// first `pthread_create`, and in a fork child).
    static mut __libc_single_threaded: std::ffi::c_char;
}

/// Whether the process has only ever had the calling thread, by glibc's
/// `__libc_single_threaded`: `true` means no other thread exists and none can appear but by
/// this thread's own doing; `false` is conservative (glibc 2.36 never sets it back after the
/// other threads ended).
///
/// # References
///
/// <https://man7.org/linux/man-pages/man3/__libc_single_threaded.3.html>
pub(crate) fn single_threaded() -> bool {
    // SAFETY: the variable is a `char` glibc exports for exactly this reading (declared `mut`
    // since glibc writes it: at the first `pthread_create` and in a fork child). glibc writes
    // it only on the thread that creates the first other thread, so a thread that reads it
    // non-zero is the only thread there is and no write can race with the read.
    unsafe { std::ptr::read_volatile(&raw const __libc_single_threaded) != 0 }
}

/// `exit(status)` without Rust's run-time teardown: glibc runs the thread-local destructors
/// of the calling thread, then the handlers registered with `atexit`/`on_exit` (newest
/// first), and ends the process.
///
/// `std::process::exit` first tears down the main thread's alternate signal stack (a
/// `sigaltstack` and a `munmap`) and replaces the standard output's buffer, then calls
/// `exit` behind a guard that makes a second thread calling it wait for ever (glibc's
/// `exit` is not safe to run on two threads at once). The teardown is skipped only when it
/// can be without losing the guard: in a process that has only ever had this thread, where
/// no other thread can call `exit` meanwhile; otherwise this is `std::process::exit`. Flushing
/// Rust's standard output is left to a handler (the child's, [`super::stdio`]).
pub(crate) fn exit(status: i32) -> ! {
    if single_threaded() {
        // SAFETY: no other thread exists (see `single_threaded`), so no other thread runs
        // `exit` at the same time; Rust's standard streams stay valid until `_exit`, and
        // the handlers that run are plain C-ABI functions registered for this purpose.
        unsafe { libc::exit(status) }
    }
    std::process::exit(status)
}

/// `getpid()`. Not cached: a cache would have to be cleared in the child of every `fork()`
/// (a `pthread_atfork` handler), and running such a handler costs each forked child more
/// copy-on-write page faults than the system calls it saves.
///
/// `getpid()` is positive in every process; init's pid stands in for a broken kernel.
pub(crate) fn getpid() -> Pid {
    Pid::from_nix(nix::unistd::getpid()).unwrap_or(Pid::INIT)
}

/// `getppid()`; `None` when the parent is outside this process's pid namespace (`0`).
pub(crate) fn getppid() -> Option<Pid> {
    Pid::from_nix(nix::unistd::getppid())
}

/// The highest real-time signal number, `SIGRTMAX`.
pub(crate) fn sigrtmax() -> i32 {
    libc::SIGRTMAX()
}

/// The lowest real-time signal number glibc leaves to applications, `SIGRTMIN`.
pub(crate) fn sigrtmin() -> i32 {
    libc::SIGRTMIN()
}

/// Sets `SIGPIPE` to ignored, as Rust's start-up does before `main`, so a write to a closed
/// pipe is an `EPIPE` error, not a death.
pub(crate) fn ignore_sigpipe() {
    use nix::sys::signal::{SigHandler, Signal, signal};
    // SAFETY: installs the `SIG_IGN` disposition, no handler code.
    let _ = unsafe { signal(Signal::SIGPIPE, SigHandler::SigIgn) };
}

/// Removes the variable `name` from the environment and wipes its bytes from the initial
/// environment block, which `/proc/<pid>/environ` shows even after `unsetenv`.
///
/// Sound only before `main`, while the process has a single thread: only the pre-`main`
/// hook of a re-executed process calls it.
pub(crate) fn scrub_env_before_main(name: &std::ffi::CStr) {
    // SAFETY: constructors run before `main`, while the process has a single thread, so no
    // other thread reads or changes the environment meanwhile. `getenv` returns a pointer
    // to the value inside the `NAME=value` string that the kernel placed in the initial
    // environment block; after `unsetenv` nothing refers to that string any more, so its
    // bytes (from the name's start to the value's terminating NUL) may be overwritten.
    unsafe {
        let value = libc::getenv(name.as_ptr());
        libc::unsetenv(name.as_ptr());
        if !value.is_null() {
            let start = value.sub(name.to_bytes().len() + 1);
            let len = name.to_bytes().len() + 1 + libc::strlen(value);
            std::ptr::write_bytes(start, 0, len);
        }
    }
}

/// Takes ownership of `fd`, inherited through `execve` and named by the bootstrap
/// variable, if it is an open socket; sets close-on-exec on it.
///
/// Called once, before `main`, while nothing in the process owns descriptors above 2.
///
/// # Errors
///
/// [`Error::Malformed`] when `fd` is not an open socket; `Error::Os` from `fcntl`.
pub(crate) fn claim_inherited_socket(fd: std::os::fd::RawFd) -> Result<std::os::fd::OwnedFd> {
    use std::os::fd::{FromRawFd, OwnedFd};
    // SAFETY: `fstat` on any integer is harmless; it only tells whether the fd is open.
    let mut stat = unsafe { std::mem::zeroed::<libc::stat>() };
    // SAFETY: `stat` is a valid, writable `struct stat`.
    if unsafe { libc::fstat(fd, &mut stat) } != 0 || stat.st_mode & libc::S_IFMT != libc::S_IFSOCK {
        return Err(Error::Malformed("bootstrap fd is not a socket"));
    }
    // SAFETY: before `main` nothing in the process owns descriptors above 2; the parent
    // made exactly this one survive the exec, and it is claimed once.
    let sock = unsafe { OwnedFd::from_raw_fd(fd) };
    nix::fcntl::fcntl(
        &sock,
        nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
    )
    .map_err(|errno| Error::os("fcntl", errno))?;
    Ok(sock)
}
