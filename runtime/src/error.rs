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

    // ---- IPC and process-shared synchronisation (shm, sync, ipc) ----
    /// The handle was closed by `close()` in this process; the operation never touches the
    /// old descriptor number.
    ///
    /// CPython: `OSError: handle is closed` (connections), `ValueError: Queue ... is closed`.
    #[error("handle is closed")]
    Closed,
    /// The peer end is gone: end of file on receive, a broken pipe on send.
    ///
    /// CPython: `EOFError` on receive, `BrokenPipeError` on send.
    #[error("the peer closed the connection or died")]
    Disconnected,
    /// The previous holder of a robust lock died while holding it (`EOWNERDEAD`).
    ///
    /// The caller now holds the lock; the data it protects may be inconsistent.
    /// Call `mark_consistent()` before releasing it, or the lock becomes unusable
    /// ([`Error::NotRecoverable`]). CPython has no equivalent: its acquire hangs forever.
    #[error("the previous holder of the lock died while holding it")]
    OwnerDied,
    /// A robust lock was released after [`Error::OwnerDied`] without `mark_consistent()`;
    /// it can never be acquired again (`ENOTRECOVERABLE`).
    #[error("the lock is not recoverable: its holder died and it was never marked consistent")]
    NotRecoverable,
    /// A frame or item is longer than the configured maximum; nothing was allocated
    /// (receive) or written (send).
    #[error("frame of {len} bytes exceeds the maximum of {max} bytes")]
    FrameTooLarge {
        /// The length that was announced or requested.
        len: u64,
        /// The maximum in force.
        max: u64,
    },
    /// A frame or a shared structure failed its integrity check (torn header, bad checksum,
    /// impossible length). A connection that reports this is poisoned.
    #[error("malformed data: {0}")]
    Malformed(&'static str),
    /// A complete frame did not decode as the requested type.
    ///
    /// CPython: `pickle.UnpicklingError`.
    #[error("cannot decode message: {0}")]
    Decode(postcard::Error),
    /// A value could not be encoded for sending.
    ///
    /// CPython: `pickle.PicklingError`.
    #[error("cannot encode message: {0}")]
    Encode(postcard::Error),
    /// A queue had no room within the timeout.
    ///
    /// CPython: `queue.Full`.
    #[error("queue is full")]
    Full,
    /// A queue had no item within the timeout.
    ///
    /// CPython: `queue.Empty`.
    #[error("queue is empty")]
    Empty,
    /// The barrier was broken: reset or aborted, timed out, or a party died.
    ///
    /// CPython: `threading.BrokenBarrierError`.
    #[error("the barrier is broken")]
    BrokenBarrier,
    /// The caller does not hold the lock it tried to release, or waited or notified on a
    /// condition without holding its lock.
    ///
    /// CPython: `RuntimeError: cannot release un-acquired lock`,
    /// `AssertionError: attempt to release recursive lock not owned by thread`,
    /// `RuntimeError: cannot wait on un-acquired lock`.
    #[error("the caller does not hold the lock")]
    NotOwner,
    /// The caller already holds this non-recursive lock and would wait for itself
    /// (`EDEADLK`). CPython blocks forever (or until the timeout) instead.
    #[error("the caller already holds this non-recursive lock")]
    WouldDeadlock,
    /// A bounded semaphore was released more often than acquired, or a semaphore count would
    /// exceed `SEM_VALUE_MAX`, or `task_done()` was called more often than `put()`.
    ///
    /// CPython: `ValueError: semaphore or lock released too many times`,
    /// `ValueError: task_done() called too many times`.
    #[error("released too many times: {0}")]
    TooManyReleases(&'static str),
    /// An argument is out of range (a NaN timeout, zero barrier parties, a size that
    /// overflows, ...).
    ///
    /// CPython: `ValueError`.
    #[error("invalid argument: {0}")]
    InvalidArgument(&'static str),
    /// Shared memory could not be reserved (`ENOSPC` from `posix_fallocate`): the object was
    /// not created, and no later access can raise `SIGBUS`.
    #[error("no space left for shared memory of {len} bytes")]
    NoSpace {
        /// The size that was requested.
        len: usize,
    },
    // ---- end of IPC and synchronisation errors ----
}

/// The runtime's result type.
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// Wraps an errno with the name of the call that produced it.
    pub(crate) fn os(call: &'static str, errno: Errno) -> Self {
        Error::Os { call, errno }
    }
}
