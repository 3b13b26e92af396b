//! Process creation and the calls a child makes between `fork` and `exec` or `_exit`.
//!
//! # Safety
//!
//! The calls between a fork and an exec are async-signal-safe system calls on integers.
#![allow(unsafe_code)]

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
