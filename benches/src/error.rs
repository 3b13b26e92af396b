//! The benches crate's one error type.

use std::io;

/// Everything that can go wrong while setting up or checking a benchmark.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A system call failed; `call` names it.
    #[error("{call} failed: {source}")]
    Os {
        /// The system call or libc function that failed.
        call: &'static str,
        /// The error it returned.
        #[source]
        source: io::Error,
    },
    /// The process has more than one thread, so forking it would be unsound.
    #[error(
        "the benchmark process has {threads} threads; fork benchmarks need exactly one \
         (is criterion's `rayon` feature enabled, or did something start a helper thread?)"
    )]
    Threaded {
        /// The thread count read from `/proc/self/status`.
        threads: usize,
    },
    /// A child did not exit with status 0.
    #[error("child {pid} {status}")]
    ChildFailed {
        /// The child's process id.
        pid: i32,
        /// How it ended, in words.
        status: String,
    },
    /// A child did not exit within its bound and was killed.
    #[error("child {pid} did not exit within {secs} s and was killed")]
    ChildHung {
        /// The child's process id.
        pid: i32,
        /// The bound, in seconds.
        secs: u64,
    },
    /// Bytes came back different from what was sent.
    #[error("message corrupted: {what}")]
    Corrupt {
        /// What differed.
        what: String,
    },
    /// The peer closed its end before the exchange was complete.
    #[error("the peer closed its end early")]
    Disconnected,
    /// A robust mutex reported that its previous owner died while holding it.
    #[error("the mutex owner died while holding it ({call} returned EOWNERDEAD)")]
    OwnerDied {
        /// The call that reported it.
        call: &'static str,
    },
    /// Lock counts do not add up: mutual exclusion was broken or an iteration was lost.
    #[error("lock count mismatch: counter advanced by {counted}, iterations were {expected}")]
    LockCount {
        /// How far the shared counter advanced.
        counted: u64,
        /// Parent plus child iterations.
        expected: u64,
    },
    /// A call into the proclife runtime failed.
    #[error("{call} failed: {source}")]
    Runtime {
        /// The runtime function that failed.
        call: &'static str,
        /// The runtime's error.
        #[source]
        source: proclife::Error,
    },
    /// A value read from the system or the environment could not be understood.
    #[error("{what}")]
    Invalid {
        /// What was wrong.
        what: String,
    },
}

/// The benches crate's result type.
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// Builds [`Error::Os`] from `errno` as it is right after a failed call.
    pub fn last_os(call: &'static str) -> Self {
        Error::Os {
            call,
            source: io::Error::last_os_error(),
        }
    }

    /// Builds [`Error::Os`] from an error number returned directly (pthread style).
    pub fn from_errno(call: &'static str, errno: i32) -> Self {
        Error::Os {
            call,
            source: io::Error::from_raw_os_error(errno),
        }
    }

    /// A function that wraps a runtime error as [`Error::Runtime`] for `call`, for
    /// `map_err`.
    pub fn runtime(call: &'static str) -> impl FnOnce(proclife::Error) -> Error {
        move |source| Error::Runtime { call, source }
    }
}
