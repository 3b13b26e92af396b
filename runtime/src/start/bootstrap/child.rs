//! The run-time of a re-executed child: accept its bootstrap message, become the child it
//! describes, run its target, return its exit code.

#![forbid(unsafe_code)]

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::time::Duration;

use nix::poll::PollFlags;
use nix::sys::signal::{Signal, raise};

use super::wire::{Build, ChildBoot, Death, Kind, receive};
use crate::children::registry;
use crate::children::status::StatusSlot;
use crate::error::{Error, Result};
use crate::os;
use crate::os::time::Deadline;
use crate::start::entry;

/// A child whose bootstrap was accepted, ready to run.
pub(crate) struct Ready {
    boot: ChildBoot,
    slot: StatusSlot,
    parent_pidfd: OwnedFd,
    call: entry::Prepared,
}

/// Receives and checks a child's bootstrap message, and decodes its arguments.
pub(crate) fn accept_child(sock: BorrowedFd<'_>) -> Result<Ready> {
    let (payload, fds) = receive(sock, Kind::Child)?;
    accept_boot(decode_boot(&payload), fds, None)
}

/// Decodes a child's bootstrap payload. A fork server does it before it forks the child and
/// hands the result to [`accept_boot`] in the child, so that the child does not run the
/// decoder (`fork` copies no page-table entries of program text: each 64 KiB window of code
/// a forked child runs is a page fault).
///
/// # Errors
///
/// [`Error::Malformed`] when the payload does not decode.
pub(crate) fn decode_boot(payload: &[u8]) -> Result<ChildBoot> {
    postcard::from_bytes(payload).map_err(|_| Error::Malformed("undecodable bootstrap payload"))
}

/// Checks a child's decoded bootstrap (an undecodable one is refused here, in the child, as
/// every other bootstrap error is) and its received fds, and decodes its arguments.
///
/// `parent_pidfd` is the parent's pidfd when the child already holds one (a fork server's
/// child, whose status slot is the cell its bootstrap names); with `None` it is the second
/// of `fds`, after the status slot.
pub(crate) fn accept_boot(
    boot: Result<ChildBoot>,
    fds: Vec<OwnedFd>,
    parent_pidfd: Option<OwnedFd>,
) -> Result<Ready> {
    let boot = boot?;
    if boot.build != Build::current()? {
        return Err(Error::Malformed(
            "bootstrap comes from another build of the program",
        ));
    }
    let entry = entry::find(&boot.key).ok_or(Error::UnregisteredEntry {
        key: boot.key.clone(),
    })?;
    let mut fds = fds.into_iter();
    let (slot, parent_pidfd) = match parent_pidfd {
        Some(parent_pidfd) => {
            let cell = boot.cell.ok_or(Error::Malformed(
                "fork server request lacks its status cell",
            ))?;
            (StatusSlot::served(cell)?, parent_pidfd)
        }
        None => {
            let (Some(slot), Some(parent_pidfd)) = (fds.next(), fds.next()) else {
                return Err(Error::Malformed("bootstrap lacks its fixed fds"));
            };
            (StatusSlot::from_fd(slot)?, parent_pidfd)
        }
    };
    let call = entry.prepare(&boot.args, fds.collect())?;
    Ok(Ready {
        boot,
        slot,
        parent_pidfd,
        call,
    })
}

/// Becomes the child the bootstrap describes and runs its target; returns the exit code.
pub(crate) fn run_child(ready: Ready) -> i32 {
    let Ready {
        boot,
        slot,
        parent_pidfd,
        call,
    } = ready;
    // Rust's start-up ignores SIGPIPE, so a write to a closed pipe is an error, not a death.
    os::process::ignore_sigpipe();
    // Before any user code: the child's own exit handlers run before it, and nothing
    // registered earlier (the fork server's, constructors') runs after it.
    let me = os::process::getpid();
    if let Err(error) = crate::start::exit::arm(me) {
        eprintln!("proclife: {error}");
    }
    crate::start::method::inherit_global(boot.method);
    let parent = boot.parent;
    registry::lock().become_child_of(
        boot.identity.clone(),
        boot.name.clone(),
        boot.daemon,
        parent,
        boot.parent_name.clone(),
    );
    if boot.daemon && !die_with_parent(&boot, &parent_pidfd) {
        let _ = raise(Signal::SIGKILL);
        return 1;
    }
    crate::children::current::set_parent_pidfd(parent_pidfd);
    slot.install_current_as(me, parent);
    let code = crate::start::fork::run_target(call, &boot.name);
    if boot.join_threads
        && let Err(error) = crate::start::exit::join_threads()
    {
        eprintln!(
            "Process {}: cannot wait for its threads: {error}",
            boot.name
        );
    }
    // The process ends next, through `exit()`: the child's own handlers, then the exit
    // policy (the installed slot no longer current) and `_exit`.
    crate::start::exit::end(code, me)
}

/// Arranges for a daemon child to die with its parent; `false` when the parent is dead.
fn die_with_parent(boot: &ChildBoot, parent_pidfd: &OwnedFd) -> bool {
    match boot.death {
        Death::ParentDeathSignal => {
            nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).is_ok()
                && os::process::getppid() == Some(boot.real_parent)
        }
        Death::WatchParent => {
            let Ok(watch) = parent_pidfd.try_clone() else {
                return false;
            };
            if parent_exited(watch.as_fd(), Some(Duration::ZERO)) {
                return false;
            }
            // The watcher is the runtime's own: a child that joins its threads does not wait
            // for it, and knows so before the target runs.
            let (known, exempt) = std::sync::mpsc::channel();
            std::thread::Builder::new()
                .name("proclife-parent-watch".into())
                .spawn(move || {
                    crate::start::exit::exempt_current_thread();
                    let _ = known.send(());
                    parent_exited(watch.as_fd(), None);
                    let _ = raise(Signal::SIGKILL);
                })
                .is_ok_and(|_| exempt.recv().is_ok())
        }
    }
}

/// Polls a pidfd for at most `timeout` (`None`: forever); `true` once the process exited
/// (or the poll fails).
fn parent_exited(pidfd: BorrowedFd<'_>, timeout: Option<Duration>) -> bool {
    os::poll::ready(pidfd, PollFlags::POLLIN, &Deadline::after(timeout)).unwrap_or(true)
}
