//! What a process knows about itself, its parent and its children; mirrors
//! `multiprocessing.current_process()`, `parent_process()` and `active_children()`.
#![forbid(unsafe_code)]

use std::os::fd::{AsFd, OwnedFd};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};

use nix::poll::{PollFd, PollFlags};

use crate::children::registry;
use crate::error::Result;
use crate::os;
use crate::pid::{AtomicPid, Pid};

/// The parent's pidfd, in a re-executed child.
static PARENT_PIDFD: OnceLock<OwnedFd> = OnceLock::new();

/// The pid of the process whose parent [`PARENT_PIDFD`] names: a child forked from it
/// inherits the pidfd, which names its grandparent there, and must not use it.
static PARENT_PIDFD_OWNER: &AtomicPid = &registry::STATICS.parent_pidfd_owner;

/// The parent's pid in a process started by proclife, none in the main process (no parent
/// to watch): the pid of the registry's parent entry, kept here too so that a wait can watch
/// the parent without locking the registry ([`watched_parent`]). Written only where the
/// registry's entry is, as the process becomes a child.
static WATCHED_PARENT: &AtomicPid = &registry::STATICS.watched_parent;

/// Whether this process is a daemon child, which its start arranged to die with its parent
/// (decision 0025); written with [`WATCHED_PARENT`].
static DAEMON: &AtomicBool = &registry::STATICS.daemon;

/// Records the parent's pid, and whether this process is a daemon, as the process becomes a
/// child (forked or re-executed); called by the registry where it records the parent's pid
/// and name.
pub(crate) fn set_watched_parent(parent: Pid, daemon: bool) {
    DAEMON.store(daemon, Ordering::Release);
    WATCHED_PARENT.store(Some(parent), Ordering::Release);
}

/// The parent's pid in a child, `None` in the main process: read without the registry's lock
/// and without allocating.
pub(crate) fn watched_parent() -> Option<Pid> {
    WATCHED_PARENT.load(Ordering::Acquire)
}

/// Whether this process is a daemon child.
pub(crate) fn is_daemon_child() -> bool {
    DAEMON.load(Ordering::Acquire)
}

/// Records the parent's pidfd in a re-executed child.
pub(crate) fn set_parent_pidfd(pidfd: OwnedFd) {
    if PARENT_PIDFD.set(pidfd).is_ok() {
        PARENT_PIDFD_OWNER.store(Some(crate::os::process::getpid()), Ordering::Release);
    }
}

/// In a freshly forked child: stops using an inherited parent pidfd (it names the
/// grandparent); the child's parent is the process that forked it, watched by `getppid()`.
/// Only a process whose own parent pidfd was set writes here.
pub(crate) fn forget_inherited_parent() {
    if PARENT_PIDFD_OWNER.load(Ordering::Acquire).is_some() {
        PARENT_PIDFD_OWNER.store(None, Ordering::Release);
    }
}

/// The parent pidfd of this very process, if it has one.
fn own_parent_pidfd() -> Option<&'static OwnedFd> {
    let owner = PARENT_PIDFD_OWNER.load(Ordering::Acquire);
    owner
        .is_some_and(|owner| owner == crate::os::process::getpid())
        .then(|| PARENT_PIDFD.get())
        .flatten()
}

/// The calling process, as [`current_process`] describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CurrentProcess {
    pid: Pid,
    name: String,
    daemon: bool,
    identity: Vec<u64>,
}

impl CurrentProcess {
    /// The calling process's pid.
    pub fn pid(&self) -> Pid {
        self.pid
    }

    /// Its name: `MainProcess` in the main process, the handle's name in a child.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether it is a daemon (then it may not start children).
    pub fn daemon(&self) -> bool {
        self.daemon
    }

    /// Its identity: empty in the main process, `[2, 1]` in the child named `Process-2:1`.
    pub fn identity(&self) -> &[u64] {
        &self.identity
    }

    /// Always `true`: the caller is running.
    pub fn is_alive(&self) -> bool {
        true
    }
}

/// The process that started the calling process, as [`parent_process`] describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParentProcess {
    pid: Pid,
    name: String,
}

impl ParentProcess {
    /// The parent's pid.
    pub fn pid(&self) -> Pid {
        self.pid
    }

    /// The parent's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether the parent still runs. In a re-executed child: a zero-timeout `poll` of the
    /// parent's pidfd, which the bootstrap passed (the real parent of a fork server's child
    /// is the server). In a forked child `getppid()`: once the parent dies the child is
    /// re-parented and `getppid()` no longer names it. A forked child of a re-executed
    /// child does not use the pidfd it inherited, which names its grandparent.
    pub fn is_alive(&self) -> bool {
        parent_is_alive(self.pid)
    }
}

/// Whether the calling process's parent, whose pid is `parent`, still runs; see
/// [`ParentProcess::is_alive`].
pub(crate) fn parent_is_alive(parent: Pid) -> bool {
    if let Some(pidfd) = own_parent_pidfd() {
        let mut fds = [PollFd::new(pidfd.as_fd(), PollFlags::POLLIN)];
        return matches!(os::poll::now(&mut fds), Ok(0));
    }
    os::process::getppid() == Some(parent)
}

/// The calling process; mirrors `multiprocessing.current_process()`.
pub fn current_process() -> CurrentProcess {
    registry::reap_orphans();
    let registry::Me {
        name,
        daemon,
        identity,
        ..
    } = registry::me();
    CurrentProcess {
        pid: os::process::getpid(),
        name,
        daemon,
        identity,
    }
}

/// The parent of a process started by proclife, `None` in the main process; mirrors
/// `multiprocessing.parent_process()`.
pub fn parent_process() -> Option<ParentProcess> {
    let parent = registry::me().parent;
    parent.map(|(pid, name)| ParentProcess { pid, name })
}

/// The pids of the calling process's children that still run; mirrors
/// `multiprocessing.active_children()`.
///
/// Like CPython, this first reaps every child that has exited.
///
/// # Errors
///
/// `Error::Os { call: "poll", .. }` when the children's pidfds cannot be polled.
pub fn active_children() -> Result<Vec<Pid>> {
    registry::reap_orphans();
    registry::active_children()
}
