//! The standard streams as a fork or an `_exit` must leave them.
//!
//! # Safety
//!
//! `fflush(NULL)` flushes glibc's own open streams under their own locks and takes no
//! pointer of ours.
#![allow(unsafe_code)]

use std::io::Write;

/// Flushes Rust's stdout and every C stdio stream (`fflush(NULL)`), so buffered output is
/// neither lost nor duplicated by a fork (CPython's `util._flush_std_streams`).
///
/// Rust's stderr is not buffered (the documentation of `std::io::stderr`: "This handle is
/// not buffered"), so there is nothing of it to flush; its `flush` would only take and
/// release its lock, a write to a page of the program's data that a forked child shares
/// (a copy-on-write fault per start wherever that page holds nothing else written).
pub(crate) fn flush_std_streams() {
    // Nothing useful can be done when a flush fails (a closed terminal): the bytes are lost
    // either way, and the process must go on.
    let _ = std::io::stdout().flush();
    flush_c_stdio();
}

/// `fflush(NULL)`—Writes out every C stdio output stream's buffer.
pub(crate) fn flush_c_stdio() {
    // SAFETY: `fflush(NULL)` flushes glibc's own open streams under their own locks; it
    // takes no pointer of ours. A failure (a closed descriptor) cannot be acted on.
    let _ = unsafe { libc::fflush(std::ptr::null_mut()) };
}
