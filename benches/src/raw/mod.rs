//! The raw baselines: what the kernel and libc do with no library in between.
//!
//! Every function checks its own result and reaps every child it starts; a failed check is an
//! [`Error`], never a silently wrong time. The children of the spawn/join baselines call
//! nothing but `_exit`; the helper children of the IPC and lock baselines run short loops of
//! raw `read`/`write`/`pthread_mutex_*` calls and end in `_exit`, never returning into the
//! benchmark harness.
//!
//! This module also holds the small process and file-descriptor helpers the baselines share
//! (targeted, bounded waits; close-on-exec pipes and socket pairs; exact reads and writes).

pub mod ipc;
pub mod spawn;
pub mod sync;
pub mod wake;

use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::{Duration, Instant};

use crate::{Error, Result, cpu};

/// How long a helper child may take to exit once told to, before it is killed.
pub const CHILD_EXIT_BOUND: Duration = Duration::from_secs(10);

/// Exit codes of the helper children, decoded by [`describe_status`].
pub mod code {
    /// Finished as told.
    pub const OK: i32 = 0;
    /// The child's body panicked.
    pub const PANIC: i32 = 1;
    /// A `read` failed.
    pub const READ: i32 = 2;
    /// A `write` failed.
    pub const WRITE: i32 = 3;
    /// A message arrived with the wrong stamps.
    pub const CORRUPT: i32 = 4;
    /// The stream ended in the middle of a message.
    pub const TRUNCATED: i32 = 5;
    /// `pthread_mutex_lock` or `pthread_mutex_unlock` failed.
    pub const LOCK: i32 = 6;
    /// `sched_setaffinity` failed.
    pub const PIN: i32 = 7;
    /// `execve` failed.
    pub const EXEC: i32 = 127;
}

/// Says in words how a child ended, from a `waitpid` status.
pub fn describe_status(status: libc::c_int) -> String {
    if libc::WIFEXITED(status) {
        let exit = libc::WEXITSTATUS(status);
        let meaning = match exit {
            code::OK => "success",
            code::PANIC => "the child's body panicked",
            code::READ => "read failed in the child",
            code::WRITE => "write failed in the child",
            code::CORRUPT => "the child received a corrupted message",
            code::TRUNCATED => "the stream ended inside a message",
            code::LOCK => "a mutex call failed in the child",
            code::PIN => "sched_setaffinity failed in the child",
            code::EXEC => "execve failed in the child",
            _ => "unexpected exit code",
        };
        format!("exited with status {exit} ({meaning})")
    } else if libc::WIFSIGNALED(status) {
        format!("was killed by signal {}", libc::WTERMSIG(status))
    } else {
        format!("changed state with raw wait status {status:#x}")
    }
}

/// Maps a `waitpid` status to `Ok` for exit status 0 and [`Error::ChildFailed`] otherwise.
///
/// # Errors
///
/// [`Error::ChildFailed`] for anything but a normal exit with status 0.
pub fn check_status(pid: libc::pid_t, status: libc::c_int) -> Result<()> {
    if libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0 {
        Ok(())
    } else {
        Err(Error::ChildFailed {
            pid,
            status: describe_status(status),
        })
    }
}

/// `waitpid(pid, 0)`—Blocks until `pid` (one of our children) exits, reaps it and checks
/// that it exited with status 0. `EINTR` is retried.
///
/// This is the unbounded wait of the timed paths, used only for children that call nothing
/// but `_exit` (or `execve` of a program that exits at once); helper children are waited
/// for with [`Child::wait`], which has a bound.
///
/// # Errors
///
/// [`Error::Os`] when `waitpid` fails, [`Error::ChildFailed`] for a non-zero exit.
pub fn wait_exit_zero(pid: libc::pid_t) -> Result<()> {
    let mut status = 0;
    loop {
        // SAFETY: `status` is a valid out-pointer; the wait targets our own child only.
        let rc = unsafe { libc::waitpid(pid, &mut status, 0) };
        if rc == pid {
            return check_status(pid, status);
        }
        let err = std::io::Error::last_os_error();
        if err.raw_os_error() != Some(libc::EINTR) {
            return Err(Error::Os {
                call: "waitpid",
                source: err,
            });
        }
    }
}

/// An unreaped helper child. Dropping it without [`Child::wait`] kills and reaps it.
#[derive(Debug)]
pub struct Child {
    pid: libc::pid_t,
    reaped: bool,
}

impl Child {
    /// The child's process id.
    pub fn pid(&self) -> libc::pid_t {
        self.pid
    }

    /// `waitpid(pid, WNOHANG)`—Reaps the child if it has exited: `Ok(true)` when it exited
    /// with status 0, `Ok(false)` while it runs.
    ///
    /// # Errors
    ///
    /// [`Error::Os`] when `waitpid` fails, [`Error::ChildFailed`] for a non-zero exit.
    pub fn try_wait(&mut self) -> Result<bool> {
        if self.reaped {
            return Ok(true);
        }
        let mut status = 0;
        // SAFETY: `status` is a valid out-pointer; the wait targets our own child only.
        let rc = unsafe { libc::waitpid(self.pid, &mut status, libc::WNOHANG) };
        match rc {
            0 => Ok(false),
            rc if rc == self.pid => {
                self.reaped = true;
                check_status(self.pid, status).map(|()| true)
            }
            _ => {
                let err = std::io::Error::last_os_error();
                if err.raw_os_error() == Some(libc::EINTR) {
                    Ok(false)
                } else {
                    Err(Error::Os {
                        call: "waitpid",
                        source: err,
                    })
                }
            }
        }
    }

    /// Waits at most `bound` for the child to exit, reaps it and checks its status; a child
    /// still running after `bound` is killed, reaped and reported as [`Error::ChildHung`].
    ///
    /// # Errors
    ///
    /// As [`Child::try_wait`], and [`Error::ChildHung`].
    pub fn wait(&mut self, bound: Duration) -> Result<()> {
        let deadline = Instant::now() + bound;
        let mut pause = Duration::from_micros(20);
        while !self.try_wait()? {
            if Instant::now() >= deadline {
                self.kill_and_reap();
                return Err(Error::ChildHung {
                    pid: self.pid,
                    secs: bound.as_secs(),
                });
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(10));
        }
        Ok(())
    }

    /// Turns a transfer error into the child's own failure when the child has died: a
    /// helper that finds a bad message exits with a code that says so, and that is the
    /// better explanation than the broken link the parent saw.
    pub fn blame(&mut self, err: Error) -> Error {
        match self.wait(Duration::from_secs(1)) {
            Err(child_err) => child_err,
            Ok(()) => err,
        }
    }

    fn kill_and_reap(&mut self) {
        if self.reaped {
            return;
        }
        // SAFETY: the pid is our unreaped child, so it cannot have been recycled.
        let _ = unsafe { libc::kill(self.pid, libc::SIGKILL) };
        let mut status = 0;
        loop {
            // SAFETY: `status` is a valid out-pointer; the wait targets our own child only.
            let rc = unsafe { libc::waitpid(self.pid, &mut status, 0) };
            if rc == self.pid || std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR)
            {
                break;
            }
        }
        self.reaped = true;
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        // A child still running here belongs to a benchmark that failed; it must not outlive
        // it as a zombie or as a stray process.
        self.kill_and_reap();
    }
}

/// Forks a helper child that runs `body` and exits with the code `body` returns.
///
/// The child asks for `SIGKILL` when its parent dies (`PR_SET_PDEATHSIG`), runs `body` under
/// `catch_unwind` (a panic exits with [`code::PANIC`]) and always ends in `_exit`: it never
/// returns into the caller's frames.
///
/// # Errors
///
/// [`Error::Threaded`] when the process has more than one thread (the body is arbitrary
/// code, which is sound after fork only in a single-threaded process), [`Error::Os`] when
/// `fork` fails.
pub fn fork_helper<F: FnOnce() -> i32>(body: F) -> Result<Child> {
    cpu::ensure_single_threaded()?;
    // SAFETY: the process was just checked to be single-threaded, so the child may run any
    // code; it ends in `_exit` below and never returns from this function.
    let pid = unsafe { libc::fork() };
    match pid {
        -1 => Err(Error::last_os("fork")),
        0 => {
            // SAFETY: prctl(PR_SET_PDEATHSIG) takes a signal number and touches no memory.
            unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) };
            let exit = catch_unwind(AssertUnwindSafe(body)).unwrap_or(code::PANIC);
            // SAFETY: `_exit` ends the child without running the parent's atexit handlers or
            // destructors, which belong to the parent.
            unsafe { libc::_exit(exit) }
        }
        pid => Ok(Child { pid, reaped: false }),
    }
}

/// `pipe2(O_CLOEXEC)`—A pipe as `(read end, write end)`.
///
/// # Errors
///
/// [`Error::Os`] when `pipe2` fails.
pub fn pipe() -> Result<(OwnedFd, OwnedFd)> {
    let mut fds = [-1; 2];
    // SAFETY: `fds` has room for the two descriptors pipe2 writes.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(Error::last_os("pipe2"));
    }
    // SAFETY: pipe2 succeeded, so both descriptors are open and owned by nobody else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// `socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC)`—Two connected stream sockets.
///
/// # Errors
///
/// [`Error::Os`] when `socketpair` fails.
pub fn socketpair() -> Result<(OwnedFd, OwnedFd)> {
    let mut fds = [-1; 2];
    // SAFETY: `fds` has room for the two descriptors socketpair writes.
    let rc = unsafe {
        libc::socketpair(
            libc::AF_UNIX,
            libc::SOCK_STREAM | libc::SOCK_CLOEXEC,
            0,
            fds.as_mut_ptr(),
        )
    };
    if rc != 0 {
        return Err(Error::last_os("socketpair"));
    }
    // SAFETY: socketpair succeeded, so both descriptors are open and owned by nobody else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// `write(2)` until all of `buf` is written; `EINTR` is retried.
///
/// It allocates nothing, so a freshly forked child may call it.
///
/// # Errors
///
/// [`Error::Os`] when `write` fails, [`Error::Disconnected`] when it writes nothing.
pub fn write_all(fd: BorrowedFd<'_>, mut buf: &[u8]) -> Result<()> {
    while !buf.is_empty() {
        // SAFETY: `buf` is valid for reads of `buf.len()` bytes.
        let n = unsafe { libc::write(fd.as_raw_fd(), buf.as_ptr().cast(), buf.len()) };
        match usize::try_from(n) {
            Ok(0) => return Err(Error::Disconnected),
            Ok(n) => buf = buf.get(n..).unwrap_or_default(),
            Err(_) => {
                let err = std::io::Error::last_os_error();
                if err.raw_os_error() != Some(libc::EINTR) {
                    return Err(Error::Os {
                        call: "write",
                        source: err,
                    });
                }
            }
        }
    }
    Ok(())
}

/// `read(2)` until `buf` is full: `Ok(true)` when it is, `Ok(false)` at end of file before
/// the first byte. `EINTR` is retried.
///
/// It allocates nothing, so a freshly forked child may call it.
///
/// # Errors
///
/// [`Error::Os`] when `read` fails, [`Error::Disconnected`] at end of file inside `buf`.
pub fn read_exact(fd: BorrowedFd<'_>, buf: &mut [u8]) -> Result<bool> {
    let mut filled = 0;
    while filled < buf.len() {
        let rest = buf.get_mut(filled..).unwrap_or_default();
        // SAFETY: `rest` is valid for writes of `rest.len()` bytes.
        let n = unsafe { libc::read(fd.as_raw_fd(), rest.as_mut_ptr().cast(), rest.len()) };
        match usize::try_from(n) {
            Ok(0) if filled == 0 => return Ok(false),
            Ok(0) => return Err(Error::Disconnected),
            Ok(n) => filled += n,
            Err(_) => {
                let err = std::io::Error::last_os_error();
                if err.raw_os_error() != Some(libc::EINTR) {
                    return Err(Error::Os {
                        call: "read",
                        source: err,
                    });
                }
            }
        }
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    // Wait statuses as the kernel encodes them: exit code in bits 8..16, signal in bits 0..7.
    const EXITED_4: libc::c_int = 4 << 8;
    const KILLED_9: libc::c_int = 9;

    #[test]
    fn statuses_are_described_and_checked() {
        assert_eq!(
            describe_status(EXITED_4),
            "exited with status 4 (the child received a corrupted message)"
        );
        assert_eq!(describe_status(KILLED_9), "was killed by signal 9");
        assert!(check_status(1, 0).is_ok());
        assert!(matches!(
            check_status(1, EXITED_4),
            Err(Error::ChildFailed { pid: 1, .. })
        ));
        assert!(matches!(
            check_status(1, KILLED_9),
            Err(Error::ChildFailed { pid: 1, .. })
        ));
    }
}
