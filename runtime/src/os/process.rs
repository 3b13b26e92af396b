//! Facts about the calling process: its pid, its `atexit` list, the real-time signal range.
//!
//! # Safety
//!
//! `atexit` is handed a plain `extern "C"` function that lives as long as the program.
#![allow(unsafe_code)]

use nix::errno::Errno;

use crate::error::{Error, Result};

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

/// `getpid()`. Not cached: a cache would have to be cleared in the child of every `fork()`
/// (a `pthread_atfork` handler), and running such a handler costs each forked child more
/// copy-on-write page faults than the system calls it saves.
pub(crate) fn getpid() -> i32 {
    nix::unistd::getpid().as_raw()
}

/// The highest real-time signal number, `SIGRTMAX`.
pub(crate) fn sigrtmax() -> i32 {
    libc::SIGRTMAX()
}

/// The lowest real-time signal number glibc leaves to applications, `SIGRTMIN`.
pub(crate) fn sigrtmin() -> i32 {
    libc::SIGRTMIN()
}
