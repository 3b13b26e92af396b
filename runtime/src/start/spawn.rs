//! The spawn start method: a fresh `execve` of `/proc/self/exe` that runs an entry point.
//!
//! The exec goes through `std::process::Command`, which is sound in a multi-threaded
//! parent: between its fork (or `posix_spawn`/`vfork`) and the exec the child only makes
//! async-signal-safe calls, and so does the one `pre_exec` step added here (two raw system
//! calls). The pidfd is opened right after the spawn, while the child is unreaped and only
//! this process may reap it; a foreign `waitpid(-1)` can at worst cause
//! [`Error::StatusLost`] later, as with fork.
//!
//! # Safety
//!
//! The one `unsafe` call registers the `pre_exec` step; see its `SAFETY` comment.
#![forbid(unsafe_code)]

use std::ffi::OsString;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::Command;
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
    let spawned = reexec(theirs.as_fd())
        .spawn()
        .map_err(|e| Error::os("execve", wire::io_errno(&e)))?;
    drop(theirs);
    // A child's pid is positive.
    let pid = i32::try_from(spawned.id())
        .ok()
        .and_then(Pid::from_raw)
        .ok_or(Error::os("execve", nix::errno::Errno::EINVAL))?;
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

/// A command that re-executes the program with `sock` as its bootstrap socket (the only fd
/// above 2 that survives the exec).
pub(super) fn reexec(sock: BorrowedFd<'_>) -> Command {
    let raw = sock.as_raw_fd();
    let mut command = Command::new("/proc/self/exe");
    command.arg0(arg0()).arg(ARG).env(ENV, raw.to_string());
    os::fork::keep_only_on_exec(&mut command, raw);
    command
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
