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
//! `/proc/self/stat`) unless the caller opted in through an `unsafe` call and took over
//! that proof. The child never returns into the caller's frames: it runs the target under
//! `catch_unwind`, applies the exit policy to its own children, flushes and calls `_exit`.
#![allow(unsafe_code)]

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sys::signal::{Signal, kill, raise};
use nix::sys::stat::Mode;
use nix::sys::wait::waitpid;
use nix::unistd::{ForkResult, Pid as RawPid, fork, getppid};

use super::launch::{ChildSpec, Launcher, Threads};
use crate::children::child::Child;
use crate::children::registry::{self, Table};
use crate::children::status::StatusSlot;
use crate::error::{Error, Result};
use crate::os;
use crate::os::stdio::flush_std_streams;
use crate::pid::Pid;
use crate::start::launch::TargetSlot;

/// `fork()` followed at once by `pidfd_open()` in the parent.
#[derive(Debug)]
pub(crate) struct ForkLauncher {
    /// Whether a multi-threaded parent is refused.
    pub(crate) threads: Threads,
}

/// Opens `/proc/self/stat`, close-on-exec. The fd is read for the thread count and also
/// holds an fd slot for the child's pidfd until just after the fork.
fn open_stat() -> Result<OwnedFd> {
    nix::fcntl::open(
        c"/proc/self/stat",
        OFlag::O_RDONLY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|errno| Error::os("open(/proc/self/stat)", errno))
}

/// The number of threads in the calling process: field 20 (`num_threads`) of
/// `/proc/self/stat`, read with one `read` into a stack buffer.
fn thread_count(stat: BorrowedFd<'_>) -> Result<usize> {
    let mut buf = [0u8; 1024];
    let n = loop {
        match nix::unistd::read(stat, &mut buf) {
            Ok(n) => break n,
            Err(Errno::EINTR) => continue,
            Err(errno) => return Err(Error::os("read(/proc/self/stat)", errno)),
        }
    };
    parse_threads(buf.get(..n).unwrap_or_default())
        .ok_or(Error::os("read(/proc/self/stat)", Errno::EIO))
}

/// Field 20 of a `/proc/<pid>/stat` line. The command name (field 2) is in parentheses and
/// may itself contain spaces and parentheses, so fields are counted after the last `)`:
/// field 3 (the state) is the first one there.
fn parse_threads(line: &[u8]) -> Option<usize> {
    let close = line.iter().rposition(|&b| b == b')')?;
    let rest = std::str::from_utf8(line.get(close + 1..)?).ok()?;
    rest.split_ascii_whitespace().nth(20 - 3)?.parse().ok()
}

impl Launcher for ForkLauncher {
    fn launch(&self, spec: &ChildSpec<'_>, target: &mut TargetSlot) -> Result<Arc<Child>> {
        // The open fd also holds an fd slot for the child's pidfd, so that running out of
        // fds fails here, before a child exists, and not after the fork.
        let reserve = open_stat()?;
        if self.threads == Threads::Refuse {
            let threads = thread_count(reserve.as_fd())?;
            if threads > 1 {
                return Err(Error::ThreadedFork { threads });
            }
        }
        let slot = StatusSlot::new()?;
        let parent = RawPid::from_raw(os::process::getpid());
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
                let pidfd = match os::pidfd::pidfd_open(child) {
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
pub(crate) unsafe fn fork_process() -> nix::Result<ForkResult> {
    // SAFETY: the caller upholds this function's contract.
    unsafe { fork() }
}

/// Kills and reaps a child for which no pidfd could be opened.
///
/// Signalling by pid is safe here: the child is ours and not yet reaped, so its pid cannot
/// have been recycled (only a foreign `waitpid(-1)` could reap it, which the runtime does
/// not support in the same process).
pub(crate) fn kill_unregistered(child: RawPid) {
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
        registry::after_fork_in_child();
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
        Err(_) => 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thread_count_is_field_20() {
        let line =
            b"4242 (a) b (c)) S 1 4242 4242 0 -1 4194560 98 0 0 0 1 2 0 0 20 0 7 0 123 4096 \
                     200 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0\n";
        assert_eq!(parse_threads(line), Some(7));
        assert_eq!(parse_threads(b"4242 (x) S 1 2"), None);
        assert_eq!(parse_threads(b"no parenthesis at all"), None);
        // The live file parses (this test binary runs tests on threads of its own, so only
        // a lower bound is stable).
        let stat = open_stat().expect("open /proc/self/stat");
        let count = thread_count(stat.as_fd()).expect("read /proc/self/stat");
        assert!(count >= 1);
    }
}
