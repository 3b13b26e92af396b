//! The fork start method: `fork()` (through [`os::fork::fork_with`]) followed at once by
//! `pidfd_open()` in the parent.
//!
//! The pidfd is opened right after the fork, while the child is still unreaped and only
//! this process can reap it, so it cannot name another process. The parent must be
//! single-threaded (glibc's `__libc_single_threaded`, or else an `fstat` of
//! `/proc/self/task`: [`os::procfs::TaskDir`]; decision 0032) unless the caller opted in
//! through an `unsafe` call and took over that proof. The child
//! arms its exit handler ([`super::exit`]), runs the target under `catch_unwind` and ends
//! through `exit()`, whose handler applies the exit policy to its own children, flushes and
//! calls `_exit`.
#![forbid(unsafe_code)]

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;

use nix::errno::Errno;
use nix::sys::signal::{Signal, raise};

use super::launch::{ChildSpec, Launcher, Threads};
use crate::children::child::Child;
use crate::children::registry::{self, Table};
use crate::children::status::StatusSlot;
use crate::error::{Error, Result};
use crate::os;
use crate::os::fork::{ForkPermit, check_fd_available, fork_with, kill_unregistered};
use crate::pid::Pid;
use crate::start::launch::TargetSlot;

/// `fork()` followed at once by `pidfd_open()` in the parent.
#[derive(Debug)]
pub(crate) struct ForkLauncher {
    /// Whether a multi-threaded parent is refused.
    pub(crate) threads: Threads,
}

impl Launcher for ForkLauncher {
    fn launch(&self, spec: &ChildSpec<'_>, target: &mut TargetSlot) -> Result<Arc<Child>> {
        // The child's pidfd needs a free fd after the fork: running out of fds must fail
        // here, before a child exists (T30). With no other thread (glibc says so), a check
        // now is enough and the child inherits nothing more; otherwise the open task
        // directory holds a slot until the fork, and the child closes its copy.
        let (reserve, permit) = match (self.threads, ForkPermit::if_never_threaded()) {
            (Threads::Refuse, Some(permit)) => {
                check_fd_available()?;
                (None, permit)
            }
            (threads, _) => {
                let reserve = os::procfs::TaskDir::open()?;
                let permit = match threads {
                    Threads::Refuse => ForkPermit::if_single_threaded(&reserve)?
                        .map_err(|threads| Error::ThreadedFork { threads })?,
                    Threads::Allow(permit) => permit,
                };
                (Some(reserve), permit)
            }
        };
        let parent = spec.parent;
        // The slot is taken under the registry's lock, which `fork` also holds: no other
        // thread can be inside the pool (its adoption lock) at the moment of the fork.
        let mut table = registry::lock();
        let slot = StatusSlot::new(parent)?;
        // Until a child uses the slot's cell, a failed start gives the cell back.
        if let Err(error) = table.ensure_exit_hook() {
            slot.recycle_on_drop();
            return Err(error);
        }
        // The child's own identity and name, allocated here before the fork: the child
        // moves them into its table instead of allocating copies, which would write
        // malloc's state and fresh heap pages that it shares with the parent (three
        // copy-on-write faults per start, `perf record -e page-faults`).
        // Boxed slices rather than a `Vec` and a `String` (32 bytes instead of 48): the
        // state that `fork_with` moves into the child's closure stays within 128 bytes, which
        // the compiler copies inline; a `memcpy` call would be one more window of glibc's
        // code for the child to fault in.
        let me: (Box<[u64]>, Box<str>) = (spec.identity.into(), spec.name.into());
        let state = copied_inline((table, reserve, slot, me));
        let ((mut table, reserve, slot, me), forked) =
            fork_with(permit, state, |(table, reserve, slot, me)| {
                drop(reserve);
                child_main(table, spec, target, parent, slot, me)
            });
        drop(reserve);
        drop(me);
        let child = match forked {
            Ok(child) => child,
            Err(errno) => {
                slot.recycle_on_drop();
                return Err(Error::os("fork", errno));
            }
        };
        // `fork` gives the parent a positive pid.
        let pid = Pid::from_nix(child).ok_or(Error::os("fork", Errno::EINVAL))?;
        let pidfd = match os::pidfd::pidfd_open(pid) {
            Ok(pidfd) => pidfd,
            Err(error) => {
                // Killed and reaped: the cell is free again.
                kill_unregistered(pid);
                slot.recycle_on_drop();
                return Err(error);
            }
        };
        // The child may end now: its exit waits for this if it comes first.
        slot.pidfd_held();
        let record = Arc::new(Child::new(pid, parent, spec.daemon, pidfd, slot));
        table.add(Arc::clone(&record));
        Ok(record)
    }
}

/// `value`, which must be small enough for the compiler to copy inline (128 bytes on
/// x86-64) rather than with a `memcpy` call; a larger type fails to compile.
fn copied_inline<T>(value: T) -> T {
    const {
        assert!(
            std::mem::size_of::<T>() <= 128,
            "fork state above 128 bytes"
        )
    };
    value
}

/// The child's whole life after `fork()`; returns its exit code (`fork_with` ends the
/// process with it).
fn child_main(
    mut table: std::sync::MutexGuard<'static, Table>,
    spec: &ChildSpec<'_>,
    target: &mut TargetSlot,
    parent: Pid,
    slot: StatusSlot,
    (identity, name): (Box<[u64]>, Box<str>),
) -> i32 {
    // First of all, so that it runs after every handler the child registers and before
    // every inherited one. Without it (ENOMEM) the child still ends as the handler would.
    // Its own pid, asked once: for the exit handler, the status slot and `end`.
    let me = os::process::getpid();
    if let Err(error) = super::exit::arm(me) {
        eprintln!("proclife: {error}");
    }
    let code = catch_unwind(AssertUnwindSafe(|| {
        table.become_child(identity.into_vec(), name.into_string(), spec.daemon, parent);
        drop(table);
        registry::after_fork_in_child();
        crate::children::current::forget_inherited_parent();
        if spec.daemon {
            // A daemon dies with its parent, even when the parent is SIGKILLed. If the
            // parent died before the request took effect, no signal will come: check.
            if nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).is_err()
                || os::process::getppid() != Some(parent)
            {
                let _ = raise(Signal::SIGKILL);
                return 1;
            }
        }
        slot.install_current_as(me, parent);
        let code = run_target(|| target.call(), spec.name);
        if spec.join_threads
            && let Err(error) = super::exit::join_threads()
        {
            eprintln!(
                "Process {}: cannot wait for its threads: {error}",
                spec.name
            );
        }
        code
    }))
    .unwrap_or(1);
    // The exit policy, the flush and `_exit` run in the handler, after the child's own.
    super::exit::end(code, me)
}

/// Runs the target under `catch_unwind` and maps the outcome to an exit code: 0 for a
/// normal return, 1 for a returned error (printed to stderr) or a panic (printed by the
/// panic hook).
pub(crate) fn run_target(
    target: impl FnOnce() -> crate::start::target::TargetResult,
    name: &str,
) -> i32 {
    let outcome = catch_unwind(AssertUnwindSafe(target));
    match outcome {
        Ok(Ok(())) => 0,
        Ok(Err(error)) => {
            eprintln!("Process {name}:\n{error}");
            1
        }
        Err(_) if crate::planted::active("panic-exit-code") => 101,
        Err(_) => 1,
    }
}
