//! The standard streams as a fork or an `_exit` must leave them.

use std::io::Write;

/// Flushes Rust's stdout and stderr, so buffered output is neither lost nor duplicated by
/// a fork (CPython's `util._flush_std_streams`).
pub(crate) fn flush_std_streams() {
    // Nothing useful can be done when a flush fails (a closed terminal): the bytes are lost
    // either way, and the process must go on.
    let _ = std::io::stdout().flush();
    let _ = std::io::stderr().flush();
}
