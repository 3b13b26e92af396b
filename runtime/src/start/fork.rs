//! The fork start method: the only place in the runtime that calls `fork()`.
//!
//! It uses glibc's `fork()` (through nix) rather than a raw `clone3(CLONE_PIDFD)`: glibc's
//! fork updates the child's cached thread id (used by `raise`, `abort`, `pthread_kill`) and
//! runs the `pthread_atfork` handlers, which a raw `clone3` would bypass. The pidfd is
//! opened right after the fork, while the child is still unreaped and only this process can
//! reap it, so it cannot name another process.
//!
//! # Safety
//!
//! `fork()` is sound here because the parent is single-threaded (checked through
//! `/proc/self/status`) unless the caller opted in through an `unsafe` call and took over
//! that proof. The child never returns into the caller's frames: it runs the target under
//! `catch_unwind`, applies the exit policy to its own children, flushes and calls `_exit`.
#![allow(unsafe_code)]

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;

use nix::errno::Errno;
use nix::sys::signal::{Signal, kill, raise};
use nix::sys::wait::waitpid;
use nix::unistd::{ForkResult, Pid as RawPid, fork, getpid, getppid};

use super::{ChildSpec, Launcher, Threads, flush_std_streams};
use crate::child::Child;
use crate::error::{Error, Result};
use crate::process::{Pid, TargetSlot};
use crate::registry::{self, Table};
use crate::status::StatusSlot;
use crate::sys;

/// `fork()` followed at once by `pidfd_open()` in the parent.
#[derive(Debug)]
pub(super) struct ForkLauncher;

/// The number of threads in the calling process, from `/proc/self/status`.
fn thread_count() -> Result<usize> {
    let status = std::fs::read_to_string("/proc/self/status").map_err(|error| {
        let errno = error.raw_os_error().map_or(Errno::EIO, Errno::from_raw);
        Error::os("open(/proc/self/status)", errno)
    })?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("Threads:"))
        .and_then(|count| count.trim().parse().ok())
        .ok_or(Error::os("read(/proc/self/status)", Errno::EIO))
}

impl Launcher for ForkLauncher {
    fn launch(
        &self,
        spec: &ChildSpec<'_>,
        target: &mut TargetSlot,
        threads: Threads,
    ) -> Result<Arc<Child>> {
        if threads == Threads::Refuse {
            let threads = thread_count()?;
            if threads > 1 {
                return Err(Error::ThreadedFork { threads });
            }
        }
        let slot = StatusSlot::new()?;
        let parent = getpid();
        // Hold an fd slot for the child's pidfd, so that running out of fds fails here,
        // before a child exists, and not after the fork.
        let reserve = sys::pidfd_open(parent)?;
        let mut table = registry::lock();
        table.ensure_exit_hook()?;
        flush_std_streams();
        // SAFETY: see the module's `# Safety`: the parent is single-threaded or the caller
        // vouched for the fork; the child path below never returns and ends in `_exit`.
        match unsafe { fork_process() } {
            Err(errno) => Err(Error::os("fork", errno)),
            Ok(ForkResult::Child) => {
                drop(reserve);
                child_main(table, spec, target, parent, slot)
            }
            Ok(ForkResult::Parent { child }) => {
                drop(reserve);
                let pidfd = match sys::pidfd_open(child) {
                    Ok(pidfd) => pidfd,
                    Err(error) => {
                        kill_unregistered(child);
                        return Err(error);
                    }
                };
                let pid = Pid::from_nix(child).ok_or(Error::os("fork", Errno::EINVAL))?;
                let record = Arc::new(Child::new(pid, parent.as_raw(), spec.daemon, pidfd, slot));
                table.add(Arc::clone(&record));
                Ok(record)
            }
        }
    }
}

/// `fork()`, the runtime's only call of it: for the fork start method and for the fork
/// server.
///
/// # Safety
///
/// The calling process must be single-threaded (or the caller must have taken over that
/// proof, see the module's `# Safety`), and the child branch must never return into the
/// caller's frames: it ends with `_exit`.
pub(super) unsafe fn fork_process() -> nix::Result<ForkResult> {
    // SAFETY: the caller upholds this function's contract.
    unsafe { fork() }
}

/// Kills and reaps a child for which no pidfd could be opened.
///
/// Signalling by pid is safe here: the child is ours and not yet reaped, so its pid cannot
/// have been recycled (only a foreign `waitpid(-1)` could reap it, which the runtime does
/// not support in the same process).
pub(super) fn kill_unregistered(child: RawPid) {
    if child.as_raw() <= 0 {
        return;
    }
    let _ = kill(child, Signal::SIGKILL);
    while let Err(Errno::EINTR) = waitpid(child, None) {}
}

/// The child's whole life after `fork()`. Never returns.
fn child_main(
    mut table: std::sync::MutexGuard<'static, Table>,
    spec: &ChildSpec<'_>,
    target: &mut TargetSlot,
    parent: RawPid,
    slot: StatusSlot,
) -> ! {
    let code = catch_unwind(AssertUnwindSafe(|| {
        let parent_pid = Pid::from_nix(parent);
        if let Some(parent_pid) = parent_pid {
            table.become_child(
                spec.identity.to_vec(),
                spec.name.to_owned(),
                spec.daemon,
                parent_pid,
            );
        }
        drop(table);
        super::forkserver::forget_inherited();
        if spec.daemon {
            // A daemon dies with its parent, even when the parent is SIGKILLed. If the
            // parent died before the request took effect, no signal will come: check.
            if nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).is_err() || getppid() != parent {
                let _ = raise(Signal::SIGKILL);
                return 1;
            }
        }
        slot.install_current();
        let code = run_target(|| target.call(), spec.name);
        registry::shutdown_children();
        code
    }))
    .unwrap_or(1);
    flush_std_streams();
    // SAFETY: `_exit` ends the process without running atexit handlers or destructors,
    // which is exactly what the child of a fork must do; it touches no Rust state.
    unsafe { libc::_exit(code) }
}

/// Runs the target under `catch_unwind` and maps the outcome to an exit code: 0 for a
/// normal return, 1 for a returned error (printed to stderr) or a panic (printed by the
/// panic hook).
pub(super) fn run_target(target: impl FnOnce() -> crate::process::TargetResult, name: &str) -> i32 {
    let outcome = catch_unwind(AssertUnwindSafe(target));
    match outcome {
        Ok(Ok(())) => 0,
        Ok(Err(error)) => {
            eprintln!("Process {name}:\n{error}");
            1
        }
        Err(_) => 1,
    }
}
