//! The runtime's one error type, and the CPython exception each variant stands for.
#![forbid(unsafe_code)]

use nix::errno::Errno;

use crate::pid::Pid;

/// Everything that can go wrong in the runtime.
///
/// Every refusal that CPython's `multiprocessing` makes has its own variant, and
/// [`Error::python`] names the exception type and the exact message CPython raises for it.
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
    /// The handle was closed by [`Process::close`](crate::Process::close).
    #[error("process object is closed")]
    Closed,
    /// `start()` on a handle that was started before, even if it was joined since.
    #[error("cannot start a process twice")]
    AlreadyStarted,
    /// `start()` in a process other than the one that constructed the handle.
    #[error("can only start a process object created by current process")]
    NotCreator,
    /// `start()` inside a daemonic process.
    #[error("daemonic processes are not allowed to have children")]
    DaemonicParent,
    /// `join()` on a handle that was never started.
    #[error("can only join a started process")]
    JoinNotStarted,
    /// `terminate()` on a handle that was never started.
    #[error("can only terminate a started process")]
    TerminateNotStarted,
    /// `kill()` (or `send_signal()`) on a handle that was never started.
    #[error("can only kill a started process")]
    KillNotStarted,
    /// `sentinel()` on a handle that was never started.
    #[error("process not started")]
    SentinelNotStarted,
    /// `close()` while the child still runs.
    #[error(
        "Cannot close a process while it is still running. You should first call join() or terminate()."
    )]
    StillRunning,
    /// `set_daemon()` after `start()`.
    #[error("process has already started")]
    DaemonAfterStart,
    /// `join()` from a process other than the one that created the handle.
    #[error("can only join a child process")]
    JoinNotChild,
    /// `is_alive()` or `state()` from a process other than the one that created the handle.
    #[error("can only test a child process")]
    TestNotChild,
    /// `run()` after `start()`: the target was handed to the child.
    #[error("'Process' object has no attribute '_target'")]
    RunAfterStart,
    /// A timeout given as a float was NaN.
    #[error("timeout is NaN")]
    NanTimeout,
    /// A signal number that is not a deliverable signal, or a job-control signal.
    #[error("signal {signal} cannot be sent to a child process")]
    InvalidSignal {
        /// The number that was passed.
        signal: i32,
    },
    /// The fork start method was asked to fork a multi-threaded parent.
    #[error(
        "the fork start method refuses to fork a parent with {threads} threads: the child \
         could inherit locks held by other threads and deadlock; start processes before \
         creating threads, use the spawn or forkserver start method (re-exec, safe with \
         threads), or opt in with the unsafe Process::start_in_threaded_parent"
    )]
    ThreadedFork {
        /// How many threads the parent had.
        threads: usize,
    },
    /// Someone outside the runtime reaped the child, so its exit status is lost.
    #[error("the exit status of child {pid} was collected outside proclife")]
    StatusLost {
        /// The child whose status was taken.
        pid: Pid,
    },
    /// `run()` called the target in the caller and the target returned an error.
    #[error("the target failed: {message}")]
    Target {
        /// The error the target returned, formatted.
        message: String,
    },

    // ---- start methods (spawn, forkserver) ----
    /// `set_start_method` when the global method was already fixed.
    ///
    /// CPython: `RuntimeError: context has already been set`.
    #[error("context has already been set")]
    StartMethodAlreadySet,
    /// A closure or [`Target`](crate::Target) implementor under a start method that
    /// re-executes the program: only a registered function can be named in another process.
    /// The handle stays new.
    ///
    /// CPython: `pickle.PicklingError` (a lambda or local function under spawn).
    #[error(
        "the {method} start method can only run a function target registered with \
         proclife::entry! (Builder::entry), not a closure"
    )]
    NotPassable {
        /// The start method's name.
        method: &'static str,
    },
    /// A function target that was not registered with [`entry!`](crate::entry), or a
    /// bootstrap message naming an unknown entry point.
    ///
    /// CPython: `AttributeError: Can't get attribute ...` when unpickling the target.
    #[error("no entry point {key} is registered: add proclife::entry!(..) next to the function")]
    UnregisteredEntry {
        /// The entry's key: the function's and the argument type's names.
        key: String,
    },
    /// The fork server died; the start was not made (T32). The next start launches a new
    /// server.
    #[error("the fork server died")]
    ForkServerDied,
    /// The running kernel lacks a feature a start method needs.
    #[error("the kernel does not support {0}")]
    Unsupported(&'static str),

    // ---- IPC and process-shared synchronisation (shm, sync, ipc) ----
    /// The handle was closed by `close()` in this process; the operation never touches the
    /// old descriptor number.
    ///
    /// CPython: `OSError: handle is closed` (connections), `ValueError: Queue ... is closed`.
    #[error("handle is closed")]
    HandleClosed,
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

    /// The CPython exception type name and exact message this error stands for.
    ///
    /// `None` for errors CPython has no counterpart for (the refusal to fork a threaded
    /// parent, a status stolen by a foreign reaper, a failed target run in the caller).
    ///
    /// # Examples
    ///
    /// ```
    /// use proclife::Error;
    ///
    /// let (kind, message) = Error::AlreadyStarted.python().unwrap();
    /// assert_eq!(kind, "AssertionError");
    /// assert_eq!(message, "cannot start a process twice");
    /// ```
    pub fn python(&self) -> Option<(&'static str, String)> {
        let (kind, message) = match self {
            Error::Os { errno, .. } => return Some(os_error(*errno)),
            Error::Closed => ("ValueError", "process object is closed"),
            Error::AlreadyStarted => ("AssertionError", "cannot start a process twice"),
            Error::NotCreator => (
                "AssertionError",
                "can only start a process object created by current process",
            ),
            Error::DaemonicParent => (
                "AssertionError",
                "daemonic processes are not allowed to have children",
            ),
            Error::JoinNotStarted => ("AssertionError", "can only join a started process"),
            Error::TerminateNotStarted => {
                ("AssertionError", "can only terminate a started process")
            }
            Error::KillNotStarted => ("AssertionError", "can only kill a started process"),
            Error::SentinelNotStarted => ("ValueError", "process not started"),
            Error::StillRunning => (
                "ValueError",
                "Cannot close a process while it is still running. You should first call join() or terminate().",
            ),
            Error::DaemonAfterStart => ("AssertionError", "process has already started"),
            Error::JoinNotChild => ("AssertionError", "can only join a child process"),
            Error::TestNotChild => ("AssertionError", "can only test a child process"),
            Error::RunAfterStart => (
                "AttributeError",
                "'Process' object has no attribute '_target'",
            ),
            Error::NanTimeout => ("ValueError", "cannot convert float NaN to integer"),
            Error::InvalidSignal { .. } => ("ValueError", "signal number out of range"),
            Error::HandleClosed => ("OSError", "handle is closed"),
            Error::Disconnected => ("EOFError", ""),
            Error::Full => ("queue.Full", ""),
            Error::Empty => ("queue.Empty", ""),
            Error::BrokenBarrier => ("threading.BrokenBarrierError", ""),
            Error::TooManyReleases(message) | Error::InvalidArgument(message) => {
                ("ValueError", *message)
            }
            Error::NotOwner => ("RuntimeError", "cannot release un-acquired lock"),
            Error::FrameTooLarge { .. } => ("OSError", "bad message length"),
            Error::StartMethodAlreadySet => ("RuntimeError", "context has already been set"),
            Error::NotPassable { .. } => (
                "_pickle.PicklingError",
                "Can't pickle local object: a closure cannot be sent to a re-executed child",
            ),
            Error::UnregisteredEntry { .. } => (
                "AttributeError",
                "Can't get attribute of the target function",
            ),
            Error::ThreadedFork { .. }
            | Error::StatusLost { .. }
            | Error::Target { .. }
            | Error::OwnerDied
            | Error::NotRecoverable
            | Error::Malformed(_)
            | Error::Decode(_)
            | Error::Encode(_)
            | Error::WouldDeadlock
            | Error::NoSpace { .. }
            | Error::ForkServerDied
            | Error::Unsupported(_) => {
                return None;
            }
        };
        Some((kind, message.to_owned()))
    }
}

/// The `OSError` subclass and message Python raises for `errno`.
fn os_error(errno: Errno) -> (&'static str, String) {
    let kind = match errno {
        Errno::EAGAIN | Errno::EALREADY | Errno::EINPROGRESS => "BlockingIOError",
        Errno::ECHILD => "ChildProcessError",
        Errno::EPIPE | Errno::ESHUTDOWN => "BrokenPipeError",
        Errno::ECONNABORTED => "ConnectionAbortedError",
        Errno::ECONNREFUSED => "ConnectionRefusedError",
        Errno::ECONNRESET => "ConnectionResetError",
        Errno::EEXIST => "FileExistsError",
        Errno::ENOENT => "FileNotFoundError",
        Errno::EINTR => "InterruptedError",
        Errno::EISDIR => "IsADirectoryError",
        Errno::ENOTDIR => "NotADirectoryError",
        Errno::EACCES | Errno::EPERM => "PermissionError",
        Errno::ESRCH => "ProcessLookupError",
        Errno::ETIMEDOUT => "TimeoutError",
        _ => "OSError",
    };
    let code = errno as i32;
    let text = std::io::Error::from_raw_os_error(code).to_string();
    // `io::Error` appends " (os error N)" to strerror's text; Python does not.
    let suffix = format!(" (os error {code})");
    let text = text.strip_suffix(&suffix).unwrap_or(&text);
    (kind, format!("[Errno {code}] {text}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn os_errors_read_like_python() {
        let (kind, message) = Error::os("fork", Errno::EAGAIN).python().unwrap();
        assert_eq!(kind, "BlockingIOError");
        assert_eq!(message, "[Errno 11] Resource temporarily unavailable");
        let (kind, message) = Error::os("pidfd_open", Errno::EMFILE).python().unwrap();
        assert_eq!(kind, "OSError");
        assert_eq!(message, "[Errno 24] Too many open files");
    }

    #[test]
    fn refusals_carry_cpython_messages() {
        let table: [(Error, &str, &str); 6] = [
            (Error::Closed, "ValueError", "process object is closed"),
            (
                Error::AlreadyStarted,
                "AssertionError",
                "cannot start a process twice",
            ),
            (
                Error::SentinelNotStarted,
                "ValueError",
                "process not started",
            ),
            (
                Error::JoinNotChild,
                "AssertionError",
                "can only join a child process",
            ),
            (
                Error::TestNotChild,
                "AssertionError",
                "can only test a child process",
            ),
            (
                Error::RunAfterStart,
                "AttributeError",
                "'Process' object has no attribute '_target'",
            ),
        ];
        for (error, kind, message) in table {
            assert_eq!(error.python(), Some((kind, message.to_owned())));
            assert_eq!(error.to_string(), message);
        }
        assert_eq!(Error::ThreadedFork { threads: 2 }.python(), None);
    }
}
