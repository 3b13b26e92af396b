//! One started child: its pidfd, its cached exit code, and the only code that reaps it.
//!
//! Every wait here is targeted at one pidfd (`waitid(P_PIDFD, ..)`), never `waitpid(-1)`.
//! The exit code lives in one mutex-protected cell: the thread that reaps the child stores
//! the code before it releases the lock, so no thread ever sees "exited" without a code.
//! Waiting threads sleep in `poll` on the pidfd without holding the lock, so any number of
//! threads can join the same child at once.
#![forbid(unsafe_code)]

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags};
use nix::sys::wait::{Id, WaitPidFlag, WaitStatus, waitid};

use crate::children::status::{self, BlockedOn, StatusSlot};
use crate::error::{Error, Result};
use crate::os;
use crate::os::time::Deadline;
use crate::pid::Pid;

/// The runtime's record of one child it started.
#[derive(Debug)]
pub(crate) struct Child {
    pid: Pid,
    /// The pid of the process that forked the child, the only one allowed to reap it.
    creator: Pid,
    daemon: bool,
    pidfd: OwnedFd,
    exitcode: Mutex<Option<i32>>,
    slot: StatusSlot,
    /// For a child of the fork server: the server's pidfd (one open fd shared by the records
    /// of all its children). Such a child is reaped by the server, and its status read with
    /// `PIDFD_GET_INFO` instead of `waitid`.
    server: Option<Arc<OwnedFd>>,
}

/// The exit code reported for a fork-server child that exited after the server died and
/// that nobody reaped (CPython's forkserver reports 255 too).
pub(crate) const LOST_WITH_SERVER: i32 = 255;

/// Maps a wait status to CPython's exit code: the exit status, or `-N` for signal `N`.
///
/// `None` for statuses that do not end the process.
pub(crate) fn exitcode_from(status: WaitStatus) -> Option<i32> {
    match status {
        WaitStatus::Exited(_, code) => Some(code),
        WaitStatus::Signaled(_, signal, _) if crate::planted::active("exitcode-sign-lost") => {
            Some(signal as i32)
        }
        WaitStatus::Signaled(_, signal, _) => Some(-(signal as i32)),
        _ => None,
    }
}

impl Child {
    /// Records a child that was just forked.
    pub(crate) fn new(
        pid: Pid,
        creator: Pid,
        daemon: bool,
        pidfd: OwnedFd,
        slot: StatusSlot,
    ) -> Child {
        Child {
            pid,
            creator,
            daemon,
            pidfd,
            exitcode: Mutex::new(None),
            slot,
            server: None,
        }
    }

    /// Records a child that the fork server forked and reaps; `server` is the server's
    /// pidfd.
    pub(crate) fn foreign(
        pid: Pid,
        creator: Pid,
        daemon: bool,
        pidfd: OwnedFd,
        slot: StatusSlot,
        server: Arc<OwnedFd>,
    ) -> Child {
        Child {
            server: Some(server),
            ..Child::new(pid, creator, daemon, pidfd, slot)
        }
    }

    /// The child's pid.
    pub(crate) fn pid(&self) -> Pid {
        self.pid
    }

    /// Whether the child was started as a daemon.
    pub(crate) fn daemon(&self) -> bool {
        self.daemon
    }

    /// The pidfd, readable once the child has exited.
    pub(crate) fn pidfd(&self) -> BorrowedFd<'_> {
        self.pidfd.as_fd()
    }

    /// What the child reports it is blocked on.
    pub(crate) fn blocked_on(&self) -> Option<BlockedOn> {
        self.slot.blocked_on()
    }

    /// Whether the calling process is the one that started the child (and may reap it).
    pub(crate) fn is_reaper(&self) -> bool {
        os::process::getpid() == self.creator
    }

    fn cell(&self) -> MutexGuard<'_, Option<i32>> {
        // The cell holds a plain `Option<i32>`, which a panic cannot leave half-written.
        self.exitcode.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The exit code if it has been collected, without any system call.
    pub(crate) fn cached(&self) -> Option<i32> {
        *self.cell()
    }

    /// `waitid(P_PIDFD, pidfd, WEXITED | WNOHANG)`—Collects the exit code if the child has
    /// exited, without blocking. Only the creating process reaps; others see the cache.
    ///
    /// # Errors
    ///
    /// `Error::StatusLost` when something outside the runtime reaped the child (`ECHILD`);
    /// `Error::Os { call: "waitid", .. }` otherwise.
    pub(crate) fn poll(&self) -> Result<Option<i32>> {
        if !self.is_reaper() {
            return Ok(self.cached());
        }
        self.poll_as_reaper()
    }

    /// [`Child::poll`] in a caller that checked [`Child::is_reaper`] (one `getpid` less).
    ///
    /// # Errors
    ///
    /// As [`Child::poll`].
    pub(crate) fn poll_as_reaper(&self) -> Result<Option<i32>> {
        let mut cell = self.cell();
        if cell.is_some() {
            return Ok(*cell);
        }
        if let Some(server) = &self.server {
            let code = foreign_exitcode(self.pidfd.as_fd(), server.as_fd())?;
            if code.is_some() {
                // A code comes only once the pidfd said the child exited: nothing writes to
                // its cell any more.
                self.slot.recycle_on_drop();
            }
            // The cache was empty (checked above, under the same lock): written at most once.
            assert!(cell.is_none(), "a cached exit code never changes");
            *cell = code;
            return Ok(code);
        }
        loop {
            let mut flags = WaitPidFlag::WEXITED | WaitPidFlag::WNOHANG;
            if crate::planted::active("poll-leaves-zombie") {
                flags |= WaitPidFlag::WNOWAIT;
            }
            match waitid(Id::PIDFd(self.pidfd.as_fd()), flags) {
                Ok(status) => {
                    let code = exitcode_from(status);
                    if code.is_some() {
                        // Reaped: nothing writes to the status slot any more.
                        self.slot.recycle_on_drop();
                    }
                    assert!(cell.is_none(), "a cached exit code never changes");
                    *cell = code;
                    return Ok(code);
                }
                Err(Errno::EINTR) => continue,
                Err(Errno::ECHILD) => {
                    // Reaped by someone else: the child is gone too.
                    self.slot.recycle_on_drop();
                    return Err(Error::StatusLost { pid: self.pid });
                }
                Err(errno) => return Err(Error::os("waitid", errno)),
            }
        }
    }

    /// Waits until the child has exited or `deadline` passes.
    ///
    /// Sleeps in `poll(2)` on the pidfd ([`os::poll::wait`]) and marks the current process
    /// as blocked on `Join` meanwhile.
    ///
    /// # Errors
    ///
    /// As [`Child::poll`], plus `Error::Os { call: "poll", .. }`.
    pub(crate) fn wait(&self, deadline: &Deadline) -> Result<Option<i32>> {
        // No `waitid(WNOHANG)` first: the `poll` below returns at once for a child that has
        // already exited, and a join usually waits for a running one.
        if let Some(code) = self.cached() {
            return Ok(Some(code));
        }
        if !self.is_reaper() {
            return Ok(None);
        }
        self.wait_as_reaper(deadline)
    }

    /// [`Child::wait`] in a caller that checked [`Child::is_reaper`] (one `getpid` less).
    ///
    /// # Errors
    ///
    /// As [`Child::wait`].
    pub(crate) fn wait_as_reaper(&self, deadline: &Deadline) -> Result<Option<i32>> {
        if let Some(code) = self.cached() {
            return Ok(Some(code));
        }
        let _blocked = status::blocked(BlockedOn::Join);
        loop {
            let mut fds = [PollFd::new(self.pidfd.as_fd(), PollFlags::POLLIN)];
            os::poll::wait(&mut fds, deadline)?;
            if let Some(code) = self.poll_as_reaper()? {
                return Ok(Some(code));
            }
            if deadline.expired() {
                return Ok(None);
            }
        }
    }

    /// Sends `signal` unless the child is known to have exited.
    ///
    /// A zombie ignores signals and a reaped child's pidfd answers `ESRCH`, so a signal
    /// sent after the child exited never changes its exit code and never reaches another
    /// process.
    ///
    /// # Errors
    ///
    /// `Error::Os { call: "pidfd_send_signal", .. }` for errors other than `ESRCH`.
    pub(crate) fn signal(&self, signal: i32) -> Result<()> {
        if crate::planted::active("signal-overwrites-exitcode")
            && signal == nix::sys::signal::Signal::SIGTERM as i32
            && exited_now(self.pidfd())
        {
            self.cell().get_or_insert(-signal);
        }
        if self.cached().is_some() {
            return Ok(());
        }
        match os::pidfd::pidfd_send_signal(self.pidfd.as_fd(), signal) {
            Ok(()) => Ok(()),
            Err(Error::Os {
                errno: Errno::ESRCH,
                ..
            }) => Ok(()),
            Err(error) => Err(error),
        }
    }
}

/// Whether a pidfd is readable now (its process exited); a failed poll counts as not.
fn exited_now(pidfd: BorrowedFd<'_>) -> bool {
    let mut fds = [PollFd::new(pidfd, PollFlags::POLLIN)];
    matches!(os::poll::now(&mut fds), Ok(n) if n > 0)
}

/// How long a status query waits for the server to reap an exited child before it looks
/// whether the server is stopped; the server reaps within microseconds when it gets a CPU.
const SERVER_REAP_SLICE: std::time::Duration = std::time::Duration::from_millis(100);

/// The exit code of a fork-server child: `None` while it runs. Once its pidfd is readable
/// (it exited) the code comes as soon as the server has reaped it, so that a readable
/// sentinel means a known exit code, as for the other methods. The wait is bounded by the
/// server's progress, not by a time: it goes on while the server lives and is not stopped
/// (a busy machine may take long to schedule it), and gives `None` (the next query tries
/// again) once the server is seen stopped by a signal, or when its state cannot be read;
/// [`LOST_WITH_SERVER`] for a zombie the dead server can no longer reap.
fn foreign_exitcode(pidfd: BorrowedFd<'_>, server: BorrowedFd<'_>) -> Result<Option<i32>> {
    if !exited_now(pidfd) {
        return Ok(None);
    }
    let mut limit = Deadline::after(Some(SERVER_REAP_SLICE));
    loop {
        if let Some(status) = os::pidfd::pidfd_exit_status(pidfd)? {
            return Ok(Some(os::pidfd::exitcode_from_raw(status)));
        }
        if exited_now(server) {
            // Check again: the server may have reaped the child just before it died.
            return Ok(Some(
                os::pidfd::pidfd_exit_status(pidfd)?
                    .map_or(LOST_WITH_SERVER, os::pidfd::exitcode_from_raw),
            ));
        }
        if limit.expired() {
            let running = os::procfs::pidfd_pid(server)
                .and_then(os::procfs::stat_of)
                .is_some_and(|stat| !stat.stopped() && !stat.exited());
            if !running {
                return Ok(None);
            }
            limit = Deadline::after(Some(SERVER_REAP_SLICE));
        }
        // Sleep until the server reaps the child or dies: a pidfd polled for no event
        // reports `POLLHUP` once its process is reaped, and the server's pidfd is readable
        // once the server exits.
        let mut fds = [
            PollFd::new(pidfd, PollFlags::empty()),
            PollFd::new(server, PollFlags::POLLIN),
        ];
        os::poll::wait(&mut fds, &limit)?;
    }
}

#[cfg(test)]
mod tests {
    use nix::sys::signal::Signal;
    use nix::unistd::Pid as RawPid;

    use super::*;

    #[test]
    fn exit_statuses_map_like_cpython() {
        let pid = RawPid::from_raw(42);
        let table = [
            (WaitStatus::Exited(pid, 0), Some(0)),
            (WaitStatus::Exited(pid, 7), Some(7)),
            (WaitStatus::Exited(pid, 255), Some(255)),
            (WaitStatus::Signaled(pid, Signal::SIGTERM, false), Some(-15)),
            (WaitStatus::Signaled(pid, Signal::SIGKILL, false), Some(-9)),
            (WaitStatus::Signaled(pid, Signal::SIGSEGV, true), Some(-11)),
            (WaitStatus::StillAlive, None),
            (WaitStatus::Stopped(pid, Signal::SIGSTOP), None),
            (WaitStatus::Continued(pid), None),
        ];
        for (status, code) in table {
            assert_eq!(exitcode_from(status), code, "{status:?}");
        }
    }

    #[test]
    fn raw_wait_statuses_map_like_cpython() {
        // `PIDFD_INFO_EXIT` reports the raw wait status: `code << 8`, or the signal number.
        for (raw, code) in [
            (0, 0),
            (3 << 8, 3),
            (255 << 8, 255),
            (15, -15),
            (9, -9),
            (11 | 0x80, -11),
        ] {
            assert_eq!(os::pidfd::exitcode_from_raw(raw), code, "{raw:#x}");
        }
    }
}
