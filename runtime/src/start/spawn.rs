//! The spawn start method: a fresh `execve` of `/proc/self/exe` that runs an entry point.
//!
//! The exec goes through glibc's `posix_spawn` ([`os::fork::spawn_keeping`]), which is sound
//! in a multi-threaded parent and copies none of the parent's memory (the child shares it
//! until its `execve`): the bootstrap socket is the child's fd 3, every other fd above 2 is
//! closed, and a failed `execve` is an error of `start`. The pidfd is opened right after the
//! spawn, while the child is unreaped and only this process may reap it; a foreign
//! `waitpid(-1)` can at worst cause [`Error::StatusLost`] later, as with fork.
#![forbid(unsafe_code)]

use std::ffi::{CString, OsString};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStringExt;
use std::sync::Arc;

use nix::sys::socket::{AddressFamily, SockFlag, SockType, socketpair};
use nix::unistd::gettid;

use crate::children::child::Child;
use crate::children::registry;
use crate::children::status::StatusSlot;
use crate::error::{Error, Result};
use crate::os;
use crate::os::stdio::flush_std_streams;
use crate::pid::Pid;
use crate::start::bootstrap::wire::{self, ARG, Build, ChildBoot, Death, ENV, Kind};
use crate::start::launch::TargetSlot;
use crate::start::launch::{ChildSpec, Launcher, export_target};
use crate::start::method::StartMethod;

/// Re-executes the program and sends it the bootstrap message.
#[derive(Debug)]
pub(super) struct SpawnLauncher;

/// The program's `argv[0]`, kept for the re-executed copy so that `ps` shows its name.
pub(super) fn arg0() -> OsString {
    std::env::args_os()
        .next()
        .unwrap_or_else(|| OsString::from("proclife"))
}

/// A re-executed copy of this program, not yet told what to be.
pub(crate) struct Reexecuted {
    /// This process's end of the bootstrap socket.
    pub(crate) sock: OwnedFd,
    /// Its pid.
    pub(crate) pid: Pid,
    /// Its pidfd, opened before anyone could reap it.
    pub(crate) pidfd: OwnedFd,
}

/// Re-executes `/proc/self/exe` with one end of a fresh socket pair as its bootstrap fd and
/// opens its pidfd; the child then waits for its bootstrap message on the socket.
///
/// Nothing is left behind on failure: a child whose pidfd cannot be opened is killed and
/// reaped.
pub(crate) fn reexecute() -> Result<Reexecuted> {
    let (ours, theirs) = socketpair(
        AddressFamily::Unix,
        SockType::Stream,
        None,
        SockFlag::SOCK_CLOEXEC,
    )
    .map_err(|errno| Error::os("socketpair", errno))?;
    registry::lock().ensure_exit_hook()?;
    flush_std_streams();
    let pid = reexec(theirs.as_fd())?;
    drop(theirs);
    let pidfd = match os::pidfd::pidfd_open(pid) {
        Ok(pidfd) => pidfd,
        Err(error) => {
            os::fork::kill_unregistered(pid);
            return Err(error);
        }
    };
    Ok(Reexecuted {
        sock: ours,
        pid,
        pidfd,
    })
}

/// Starts a copy of the program (`/proc/self/exe`, `argv[0]` kept, [`ARG`] as its one
/// argument) whose fd [`os::fork::KEPT_FD`] is `sock` and whose environment names that fd
/// in [`ENV`]; no other fd above 2 survives.
///
/// # Errors
///
/// As [`os::fork::spawn_keeping`]; [`Error::InvalidArgument`] when `argv[0]` holds a NUL
/// byte.
fn reexec(sock: BorrowedFd<'_>) -> Result<Pid> {
    let arg0 = CString::new(arg0().into_vec())
        .map_err(|_| Error::InvalidArgument("argv[0] holds a NUL byte"))?;
    let arg = CString::new(ARG).map_err(|_| Error::InvalidArgument("bootstrap argument"))?;
    let env = CString::new(format!("{ENV}={}", os::fork::KEPT_FD))
        .map_err(|_| Error::InvalidArgument("bootstrap variable"))?;
    os::fork::spawn_keeping(c"/proc/self/exe", &[&arg0, &arg], &env, sock)
}

impl Launcher for SpawnLauncher {
    fn launch(&self, spec: &ChildSpec<'_>, target: &mut TargetSlot) -> Result<Arc<Child>> {
        let (key, args, arg_fds) = export_target(target, StartMethod::Spawn)?;
        let slot = StatusSlot::new_shared()?;
        let parent = spec.parent;
        let me = os::pidfd::pidfd_open(parent)?;
        let on_main_thread = gettid().as_raw() == parent.as_raw();
        let boot = ChildBoot {
            build: Build::current()?,
            parent,
            parent_name: registry::my_name(),
            real_parent: parent,
            name: spec.name.to_owned(),
            identity: spec.identity.to_vec(),
            daemon: spec.daemon,
            death: if on_main_thread {
                Death::ParentDeathSignal
            } else {
                Death::WatchParent
            },
            key,
            args,
            join_threads: spec.join_threads,
            method: crate::start::method::global_code(),
            cell: None,
        };
        let payload = postcard::to_allocvec(&boot).map_err(Error::Encode)?;
        let mut fds: Vec<BorrowedFd<'_>> = Vec::with_capacity(arg_fds.len() + 2);
        let slot_fd = slot
            .fd()
            .ok_or(Error::InvalidArgument("status slot without fd"))?;
        fds.push(slot_fd);
        fds.push(me.as_fd());
        fds.extend(arg_fds.iter().map(AsFd::as_fd));
        let Reexecuted {
            sock: ours,
            pid,
            pidfd,
        } = reexecute()?;
        match wire::send(ours.as_fd(), Kind::Child, &payload, &fds) {
            // A child that died before reading its bootstrap (killed, T06) is started all
            // the same: its exit code tells what happened.
            Ok(()) | Err(Error::Disconnected) => {}
            Err(Error::Os {
                errno: nix::errno::Errno::EPIPE | nix::errno::Errno::ECONNRESET,
                ..
            }) => {}
            Err(error) => {
                os::fork::kill_unregistered(pid);
                return Err(error);
            }
        }
        let record = Arc::new(Child::new(pid, parent, spec.daemon, pidfd, slot));
        registry::lock().add(Arc::clone(&record));
        Ok(record)
    }
}
