//! The runtime's one error type.

use nix::errno::Errno;

/// Everything that can go wrong in the runtime.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A system call failed; `call` names it.
    #[error("{call} failed: {errno}")]
    Os {
        /// The system call or libc function that failed.
        call: &'static str,
        /// The error number it returned.
        errno: Errno,
    },
}

/// The runtime's result type.
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// Wraps an errno with the name of the call that produced it.
    pub(crate) fn os(call: &'static str, errno: Errno) -> Self {
        Error::Os { call, errno }
    }
}
