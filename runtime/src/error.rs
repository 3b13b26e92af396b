//! The runtime's one error type, and the CPython exception each variant stands for.
#![forbid(unsafe_code)]

use nix::errno::Errno;

use crate::pid::Pid;
use crate::site::{Object, Operation, Site};

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
    /// A timeout given as a float was NaN (`Process::join_timeout_secs`,
    /// `sync::timeout_from_secs`).
    ///
    /// CPython: `ValueError: cannot convert float NaN to integer` (`Process.join`,
    /// `Queue.get`, `Connection.poll`), `OSError: [Errno 22] Invalid argument` (the waits of
    /// `Semaphore`, `Event`, `Condition`, `Barrier`); see [`Error::python_for`].
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
         creating threads; in a test, write #[proclife::test] instead of #[test] (the body \
         then runs on the main thread of its own process); or use the spawn or forkserver \
         start method (re-exec, safe with threads), or opt in with the unsafe \
         Process::start_in_threaded_parent"
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
    /// A start method's name that is none of `fork`, `forkserver` and `spawn`.
    ///
    /// CPython: `ValueError: cannot find context for 'name'` (`get_context`,
    /// `set_start_method`).
    #[error("cannot find context for '{name}'")]
    UnknownStartMethod {
        /// The name that was given.
        name: String,
    },
    /// A closure or [`Target`](crate::Target) implementor under a start method that
    /// re-executes the program: only a registered function can be named in another process.
    /// The handle stays new.
    ///
    /// CPython: `AttributeError: Can't pickle local object '...'` for a local function or
    /// lambda under spawn or forkserver (3.13: `Can't get local object`); proclife names the
    /// same class with its own message, since a closure has no qualified name (decision 0008).
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
    /// CPython starts the child, which fails to unpickle the target (`AttributeError: Can't
    /// get attribute ...`) and exits with 1; proclife refuses in the parent, before anything
    /// is started (decision 0008).
    #[error("no entry point {key} is registered: add proclife::entry!(..) next to the function")]
    UnregisteredEntry {
        /// The entry's key: the function's and the argument type's names.
        key: String,
    },
    /// The fork server died; the start was not made. The next start launches a new
    /// server.
    #[error("the fork server died")]
    ForkServerDied,
    /// A wait without a timeout (`Event::wait`, `Semaphore::acquire`, `Condition::wait`, a
    /// queue's `put` or `get`, a connection's `send` or `recv`) in a process started by
    /// proclife ended because its parent died first (decision 0018). CPython has no
    /// equivalent: its wait goes on forever.
    #[error("the parent process died while this process waited without a timeout")]
    ParentDied,
    /// The running kernel lacks a feature a start method needs.
    #[error("the kernel does not support {0}")]
    Unsupported(&'static str),

    // ---- IPC and process-shared synchronisation (shm, sync, ipc) ----
    /// The handle was closed by `close()` in this process; the operation never touches the
    /// old descriptor number.
    ///
    /// CPython: `OSError: handle is closed` (connections, `SimpleQueue`),
    /// `ValueError: Queue <...> is closed` (`Queue`, `JoinableQueue`); see
    /// [`Error::python_for`].
    #[error("handle is closed")]
    HandleClosed,
    /// The peer end is gone: end of file on receive, a broken pipe on send.
    ///
    /// CPython: `EOFError` on receive, `BrokenPipeError: [Errno 32] Broken pipe` on send; see
    /// [`Error::python_for`].
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
    ///
    /// CPython: `OSError: bad message length` on receive (`recv_bytes(maxlength)`); CPython
    /// sends and queues items of any length (decisions 0004 and 0013).
    #[error("frame of {len} bytes exceeds the maximum of {max} bytes")]
    FrameTooLarge {
        /// The length that was announced or requested.
        len: u64,
        /// The maximum in force.
        max: u64,
    },
    /// A frame or a shared structure failed its integrity check (torn header, a header that
    /// fails its check word, impossible length). A connection that reports this is poisoned.
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
    /// CPython: `queue.Empty` (its qualified name is `_queue.Empty`).
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
    /// CPython ([`Error::python_for`]): `ValueError: semaphore or lock released too many times`
    /// (`Lock.release`; CPython accepts a release by another process, decision 0003),
    /// `AssertionError: attempt to release recursive lock not owned by thread` (`RLock.release`),
    /// `AssertionError: must acquire() condition before using wait()` (`Condition.wait`),
    /// `AssertionError: lock is not owned` (`Condition.notify`).
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
    /// overflows, ...), or an operation the object cannot do (receiving on a write-only end).
    ///
    /// CPython ([`Error::python_for`]): `OSError: connection is read-only` /
    /// `connection is write-only`, `IndexError: invalid index` (`Array`), `OverflowError`
    /// (a semaphore value above `SEM_VALUE_MAX`); none where CPython accepts the argument.
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

    /// Wraps the errno of a failed system call that the standard library made (`EIO` if
    /// the error carries none) with the name of the call.
    pub(crate) fn io(call: &'static str, error: &std::io::Error) -> Self {
        let errno = error.raw_os_error().map_or(Errno::EIO, Errno::from_raw);
        Error::Os { call, errno }
    }

    /// The CPython exception type name and exact message this error stands for, where that
    /// does not depend on the object and operation that refused.
    ///
    /// `None` for errors CPython has no counterpart for (the refusal to fork a threaded
    /// parent, a status stolen by a foreign reaper, a failed target run in the caller, a dead
    /// lock holder, ...), and for the errors whose CPython name depends on where they
    /// happened ([`Error::HandleClosed`], [`Error::Disconnected`], [`Error::NotOwner`],
    /// [`Error::InvalidArgument`], [`Error::FrameTooLarge`]): name those with
    /// [`Error::python_for`].
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
            Error::UnknownStartMethod { .. } => return Some(("ValueError", self.to_string())),
            Error::UnregisteredEntry { key } => {
                return Some((
                    "AttributeError",
                    format!(
                        "Can't get attribute '{key}': it is not registered with proclife::entry!"
                    ),
                ));
            }
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
            Error::Full => ("queue.Full", ""),
            Error::Empty => ("_queue.Empty", ""),
            Error::BrokenBarrier => ("threading.BrokenBarrierError", ""),
            Error::TooManyReleases(message) => ("ValueError", *message),
            Error::StartMethodAlreadySet => ("RuntimeError", "context has already been set"),
            Error::NotPassable { .. } => (
                "AttributeError",
                "Can't pickle local object: a closure cannot be sent to a re-executed child",
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
            | Error::ParentDied
            | Error::Unsupported(_)
            | Error::HandleClosed
            | Error::Disconnected
            | Error::NotOwner
            | Error::InvalidArgument(_)
            | Error::FrameTooLarge { .. } => {
                return None;
            }
        };
        Some((kind, message.to_owned()))
    }

    /// The CPython exception type name and exact message this error stands for when `site`
    /// returned it: CPython names the same refusal differently on different objects and
    /// operations.
    ///
    /// Every refusal of the refusal table (`model/src/refusals.rs`, measured on CPython by
    /// `verify/python/refusals.py`) is named here as the table says; `verify/tests/refusals.rs`
    /// drives each row on real objects and checks it. `None` where CPython has no counterpart
    /// (it accepts the call, hangs, or cannot get there). For errors whose name does not depend
    /// on the site this is [`Error::python`].
    ///
    /// # Examples
    ///
    /// ```
    /// use proclife::{Error, Object, Operation, Site};
    ///
    /// let lock = Site::new(Object::Lock, Operation::Release);
    /// let (kind, message) = Error::NotOwner.python_for(lock).unwrap();
    /// assert_eq!(kind, "ValueError");
    /// assert_eq!(message, "semaphore or lock released too many times");
    ///
    /// let rlock = Site::new(Object::RLock, Operation::Release);
    /// let (kind, _) = Error::NotOwner.python_for(rlock).unwrap();
    /// assert_eq!(kind, "AssertionError");
    ///
    /// let send = Site::new(Object::Connection, Operation::Send);
    /// let recv = Site::new(Object::Connection, Operation::Recv);
    /// let (kind, message) = Error::Disconnected.python_for(send).unwrap();
    /// assert_eq!((kind, message.as_str()), ("BrokenPipeError", "[Errno 32] Broken pipe"));
    /// assert_eq!(Error::Disconnected.python_for(recv).unwrap().0, "EOFError");
    /// ```
    pub fn python_for(&self, site: Site) -> Option<(&'static str, String)> {
        use Object as O;
        use Operation as Op;
        let Site { object, operation } = site;
        let named = |kind: &'static str, message: &str| Some((kind, message.to_owned()));
        match self {
            Error::HandleClosed => match object {
                O::Queue | O::JoinableQueue => Some((
                    "ValueError",
                    format!(
                        "Queue <multiprocessing.queues.{object} object at 0x\u{2026}> is closed"
                    ),
                )),
                O::Connection | O::SimpleQueue => named("OSError", "handle is closed"),
                _ => None,
            },
            Error::Disconnected => match (object, operation) {
                (O::Connection, Op::Send | Op::SendBytes) => Some(os_error(Errno::EPIPE)),
                (O::Connection, Op::Recv | Op::RecvBytes) => named("EOFError", ""),
                _ => None,
            },
            Error::NotOwner => match (object, operation) {
                (O::Lock | O::ConditionWithLock, Op::Release) => {
                    named("ValueError", "semaphore or lock released too many times")
                }
                (O::RLock | O::Condition | O::Value | O::Array, Op::Release) => named(
                    "AssertionError",
                    "attempt to release recursive lock not owned by thread",
                ),
                (O::Condition | O::ConditionWithLock, Op::Wait | Op::WaitFor) => named(
                    "AssertionError",
                    "must acquire() condition before using wait()",
                ),
                (O::Condition | O::ConditionWithLock, Op::Notify | Op::NotifyAll) => {
                    named("AssertionError", "lock is not owned")
                }
                _ => None,
            },
            Error::InvalidArgument(_) => match (object, operation) {
                (O::Connection, Op::Send | Op::SendBytes) => {
                    named("OSError", "connection is read-only")
                }
                (O::Connection, Op::Recv | Op::RecvBytes | Op::Poll) => {
                    named("OSError", "connection is write-only")
                }
                (O::Array, Op::GetItem | Op::SetItem) => named("IndexError", "invalid index"),
                (O::Semaphore | O::BoundedSemaphore, Op::New) => {
                    named("OverflowError", "Python int too large to convert to C int")
                }
                _ => None,
            },
            Error::NanTimeout => match (object, operation) {
                (O::Semaphore | O::BoundedSemaphore, Op::Acquire)
                | (O::Event | O::Barrier, Op::Wait)
                | (O::Condition | O::ConditionWithLock, Op::Wait | Op::WaitFor) => {
                    Some(os_error(Errno::EINVAL))
                }
                // CPython acquires, or puts without looking at the timeout (decision 0013).
                (O::Lock | O::RLock | O::Condition | O::ConditionWithLock, Op::Acquire)
                | (O::Queue | O::JoinableQueue | O::SimpleQueue, Op::Put) => None,
                _ => self.python(),
            },
            Error::FrameTooLarge { .. } => match (object, operation) {
                (O::Connection, Op::Recv | Op::RecvBytes) => named("OSError", "bad message length"),
                _ => None,
            },
            _ => self.python(),
        }
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
