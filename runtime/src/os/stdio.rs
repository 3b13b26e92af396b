//! The standard streams as a fork or an `_exit` must leave them.
//!
//! # Safety
//!
//! `fflush(NULL)` flushes glibc's own open streams under their own locks and takes no
//! pointer of ours.
#![allow(unsafe_code)]

use std::io::Write;

/// Flushes Rust's stdout and stderr and every C stdio stream (`fflush(NULL)`), so buffered
/// output is neither lost nor duplicated by a fork (CPython's `util._flush_std_streams`).
pub(crate) fn flush_std_streams() {
    // Nothing useful can be done when a flush fails (a closed terminal): the bytes are lost
    // either way, and the process must go on.
    let _ = std::io::stdout().flush();
    let _ = std::io::stderr().flush();
    flush_c_stdio();
}

/// `fflush(NULL)`—Writes out every C stdio output stream's buffer.
pub(crate) fn flush_c_stdio() {
    // SAFETY: `fflush(NULL)` flushes glibc's own open streams under their own locks; it
    // takes no pointer of ours. A failure (a closed descriptor) cannot be acted on.
    let _ = unsafe { libc::fflush(std::ptr::null_mut()) };
}
