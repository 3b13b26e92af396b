//! Waits without a timeout in a child whose parent died (catalogue item T28, decision 0018).
//!
//! In a process started by proclife, a futex or `poll` wait with no deadline sleeps in
//! slices of [`PARENT_SLICE`] and, after each slice that ended with nothing to report, asks
//! whether the parent still runs ([`parent_is_alive`]: the parent's pidfd in a
//! re-executed child, `getppid()` in a forked one, so neither is fooled by a reused pid). Once
//! the parent is gone the wait returns [`Error::ParentDied`] instead of sleeping on: nothing
//! is left that the runtime knows will end it. A wait with a timeout, every wait of the
//! main process (which has no parent to watch) and every wait of a daemon child whose
//! parent-death signal is still set (it dies with its parent, T27; decision 0025) is the
//! plain wait. CPython has no such rule: there the child waits forever.
#![forbid(unsafe_code)]

use std::os::fd::BorrowedFd;
use std::sync::atomic::AtomicU32;
use std::time::Duration;

use nix::poll::PollFlags;

use crate::children::current::{is_daemon_child, parent_is_alive, watched_parent};
use crate::error::{Error, Result};
use crate::os;
use crate::os::futex::Wake;
use crate::os::time::Deadline;
use crate::pid::Pid;

/// How often an untimed wait in a child checks that its parent still runs: a parent's death
/// ends such a wait within this much (and the time `/proc` takes to show it).
pub(crate) const PARENT_SLICE: Duration = Duration::from_millis(250);

/// The pid of the parent an untimed wait of a child watches; `None` for a wait with a
/// deadline, in the main process, and in a daemon child that still dies with its parent.
/// One atomic load, and in a daemon one `prctl`: no lock, no allocation.
///
/// A daemon's start arranges its death with its parent (`PR_SET_PDEATHSIG` towards the
/// parent, or towards the fork server, which exits when the parent dies; a daemon whose
/// start could not arrange it kills itself before its target runs), so while the calling
/// thread's parent-death signal is still `SIGKILL` its untimed waits sleep without slices:
/// watching would wake every live daemon four times a second for nothing (decision 0025).
/// The kernel clears that signal when the process changes its user or group ids, and any
/// code may clear it with `prctl`; the setting is the calling thread's (a daemon spawned from
/// a parent's other thread has a watcher thread instead). In each of those cases this reads
/// no signal, and the wait watches its parent as a non-daemon's does.
fn watched(deadline: &Deadline) -> Option<Pid> {
    if deadline.timespec().is_some() {
        return None;
    }
    let parent = watched_parent()?;
    let dies_with_parent = is_daemon_child()
        && matches!(
            nix::sys::prctl::get_pdeathsig(),
            Ok(Some(nix::sys::signal::Signal::SIGKILL))
        );
    (!dies_with_parent).then_some(parent)
}

/// [`os::futex::wait`], which in a child without a deadline returns
/// [`Error::ParentDied`] once the parent is gone.
///
/// # Errors
///
/// [`Error::ParentDied`]; otherwise as [`os::futex::wait`].
pub(crate) fn futex_wait(word: &AtomicU32, expected: u32, deadline: &Deadline) -> Result<Wake> {
    let Some(parent) = watched(deadline) else {
        return os::futex::wait(word, expected, deadline);
    };
    loop {
        match os::futex::wait_slice(word, expected, PARENT_SLICE)? {
            Wake::TimedOut if !parent_is_alive(parent) => return Err(Error::ParentDied),
            Wake::TimedOut => {}
            // A wake-up or a changed word: the caller re-checks its condition.
            Wake::Retry => return Ok(Wake::Retry),
        }
    }
}

/// Whether an untimed wait of this process watches its parent (so it must sleep where it can
/// wake up to check: in `poll` or a futex slice, not inside a blocking `read` or `write`).
/// One atomic load in the main process.
pub(crate) fn untimed_waits_watch() -> bool {
    watched(&Deadline::after(None)).is_some()
}

/// Whether a wait with `deadline` in this process watches a parent that is gone: for waits
/// that sleep in their own slices and must end as [`futex_wait`] would.
pub(crate) fn parent_died(deadline: &Deadline) -> bool {
    watched(deadline).is_some_and(|parent| !parent_is_alive(parent))
}

/// [`os::poll::ready`] on one fd, which in a child without a deadline returns
/// [`Error::ParentDied`] once the parent is gone and `fd` is still not ready.
///
/// # Errors
///
/// [`Error::ParentDied`]; otherwise as [`os::poll::ready`].
pub(crate) fn poll_ready(
    fd: BorrowedFd<'_>,
    events: PollFlags,
    deadline: &Deadline,
) -> Result<bool> {
    let Some(parent) = watched(deadline) else {
        return os::poll::ready(fd, events, deadline);
    };
    loop {
        if os::poll::ready(fd, events, &Deadline::after(Some(PARENT_SLICE)))? {
            return Ok(true);
        }
        if !parent_is_alive(parent) {
            return Err(Error::ParentDied);
        }
    }
}
