//! Targets and fd hygiene for forked children.

use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::time::Duration;

/// A pipe whose read end children block on until the parent opens the gate (drops the
/// write end), so any number of children can be released at once.
#[derive(Debug)]
pub struct Gate {
    read: OwnedFd,
    write: Option<OwnedFd>,
}

impl Default for Gate {
    fn default() -> Gate {
        Gate::new()
    }
}

impl Gate {
    /// A closed gate.
    ///
    /// # Panics
    ///
    /// When `pipe2` fails (the test cannot go on without its gate).
    pub fn new() -> Gate {
        let (read, write) =
            nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).expect("pipe2 for a test gate");
        Gate {
            read,
            write: Some(write),
        }
    }

    /// The child side: close every inherited fd but stdio and the read end, then wait for
    /// EOF (the gate opens, or the parent dies).
    pub fn waiter(&self) -> impl FnOnce() + Send + 'static {
        let read = self.read.as_raw_fd();
        move || wait_gate(read)
    }

    /// The raw read end, for targets that wait on the gate after other work.
    pub fn read_fd(&self) -> RawFd {
        self.read.as_raw_fd()
    }

    /// Opens the gate: every waiter returns.
    pub fn open(&mut self) {
        self.write = None;
    }
}

/// In a child: closes all inherited fds except stdio and `read`, then reads `read` to EOF.
pub fn wait_gate(read: RawFd) {
    close_all_but(read);
    let mut byte = [0u8; 1];
    loop {
        // SAFETY: `read` is open in this process (kept by `close_all_but`); the buffer is
        // one valid byte.
        let n = unsafe { libc::read(read, byte.as_mut_ptr().cast(), 1) };
        if n == 0 || (n < 0 && std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR))
        {
            return;
        }
    }
}

/// In a child: closes every fd from 3 up except `keep`, so that pipes and pidfds inherited
/// from the test process do not keep other tests' gates open.
pub fn close_all_but(keep: RawFd) {
    // SAFETY: `close_range` takes integers only; the fds closed belong to this freshly
    // forked child, whose copies of the parent's handles are never used again.
    unsafe {
        if keep > 3 {
            libc::syscall(libc::SYS_close_range, 3u32, (keep - 1) as u32, 0u32);
        }
        libc::syscall(libc::SYS_close_range, (keep + 1) as u32, u32::MAX, 0u32);
    }
}

/// A target that sleeps until it is signalled (at most 60 s, so a leak ends by itself).
pub fn sleeper() -> impl FnOnce() + Send + 'static {
    || {
        close_all_but(2);
        std::thread::sleep(Duration::from_secs(60));
    }
}

/// Writes all of `bytes` to `fd`, retrying on `EINTR`; false when the write failed.
pub fn write_all(fd: RawFd, mut bytes: &[u8]) -> bool {
    while !bytes.is_empty() {
        // SAFETY: `bytes` is a valid buffer of the given length; `fd` is an integer the
        // kernel checks.
        let n = unsafe { libc::write(fd, bytes.as_ptr().cast(), bytes.len()) };
        if n < 0 {
            if std::io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) {
                continue;
            }
            return false;
        }
        bytes = &bytes[n as usize..];
    }
    true
}

/// Runs `f` with this process as a child subreaper (`PR_SET_CHILD_SUBREAPER`), so that the
/// orphans of a child it kills are re-parented here and can be reaped by
/// [`reap_adopted`]; the flag is cleared afterwards whatever `f` returns.
///
/// # Errors
///
/// `f`'s error, or the `prctl` error.
pub fn as_subreaper(f: impl FnOnce() -> crate::TestResult) -> crate::TestResult {
    nix::sys::prctl::set_child_subreaper(true)?;
    let result = f();
    nix::sys::prctl::set_child_subreaper(false)?;
    result
}

/// Reaps an orphan adopted by this subreaper, SIGKILLing it first if asked: its exit code
/// (negative: killed by that signal). It must end within
/// [`AT_ONCE`](crate::wait::AT_ONCE) (its parent is dead); if it does not, it is killed and
/// reaped, and the error says so.
///
/// # Errors
///
/// `pidfd_open` or `waitid` errors, or the orphan still running.
pub fn reap_adopted(pid: i32, kill_first: bool) -> Result<i32, Box<dyn std::error::Error>> {
    use nix::sys::wait::{Id, WaitPidFlag, WaitStatus, waitid};
    use std::os::fd::{AsFd, FromRawFd};
    let fd: OwnedFd = {
        // SAFETY: pidfd_open takes integers only and returns a new fd or -1.
        let ret = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
        if ret < 0 {
            return Err(format!("pidfd_open({pid}) failed: {}", nix::errno::Errno::last()).into());
        }
        // SAFETY: a fresh fd owned by no one else.
        unsafe { OwnedFd::from_raw_fd(ret as i32) }
    };
    let kill = || {
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        )
    };
    if kill_first {
        kill()?;
    }
    let at_once = crate::wait::AT_ONCE;
    let ended = crate::wait::readable(fd.as_raw_fd(), at_once.as_millis() as i32);
    if !ended {
        let _ = kill();
    }
    let status = waitid(Id::PIDFd(fd.as_fd()), WaitPidFlag::WEXITED)?;
    if !ended {
        return Err(format!(
            "orphan {pid}: expected it to end within {at_once:?}; it still ran (killed now)"
        )
        .into());
    }
    match status {
        WaitStatus::Signaled(_, signal, _) => Ok(-(signal as i32)),
        WaitStatus::Exited(_, code) => Ok(code),
        other => Err(format!("orphan {pid}: unexpected status {other:?}").into()),
    }
}
