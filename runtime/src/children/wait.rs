//! What a child waits on in the kernel, as `/proc` shows it: [`KernelWait`], and [`observe`],
//! which combines it with the child's status slot into the state `Process::state()` reports.
//!
//! The kernel's view: `/proc/<pid>/stat` gives the scheduler state of the child's main
//! thread (`R` running, `S`/`D` asleep, `T`/`t` stopped), `/proc/<pid>/syscall` the system
//! call it sleeps in with its arguments, and `/proc/<pid>/fd/<n>` what an fd argument is.
//! Everything read is a snapshot: the child may leave its wait a moment later.
#![forbid(unsafe_code)]

use crate::children::status::BlockedOn;
use crate::os::procfs::{self, FdTarget, SyscallLine};
use crate::pid::Pid;

/// A wait in the kernel outside the runtime's own primitives: a child asleep in a system
/// call (`read` of a pipe, `clock_nanosleep`, `futex` of a `std::sync::Mutex`, `wait4`, ...).
///
/// Reported as [`BlockedOn::Kernel`] by `Process::state()`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KernelWait {
    /// The system call the child sleeps in; `None` when it sleeps outside one (a page fault)
    /// or `/proc/<pid>/syscall` could not be read (no ptrace access to the child).
    pub call: Option<SystemCall>,
    /// For a call on one fd (`read`, `write`, `recvfrom`, `accept`, `epoll_wait`, ...): the
    /// fd and what it is. `None` for other calls, for `poll`/`select` (whose fds are in the
    /// child's memory), and when the fd could not be read.
    pub fd: Option<WaitFd>,
}

/// A system call, by this architecture's number (as the C library's `SYS_*` constants
/// number it). Its `Debug` shows the number and the name (`SystemCall(0 read)`).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SystemCall {
    number: i64,
}

impl SystemCall {
    /// The system call with this number.
    pub fn from_number(number: i64) -> SystemCall {
        SystemCall { number }
    }

    /// Its number on this architecture.
    pub fn number(self) -> i64 {
        self.number
    }

    /// Its name (`"read"`, `"clock_nanosleep"`, `"futex"`, ...) when it is one of the calls a
    /// process commonly sleeps in; `None` for others (the number still says which).
    pub fn name(self) -> Option<&'static str> {
        procfs::syscall_name(self.number)
    }
}

impl std::fmt::Debug for SystemCall {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.name() {
            Some(name) => write!(f, "SystemCall({} {name})", self.number),
            None => write!(f, "SystemCall({})", self.number),
        }
    }
}

impl std::fmt::Display for SystemCall {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.name() {
            Some(name) => f.write_str(name),
            None => write!(f, "syscall {}", self.number),
        }
    }
}

/// The fd a system call waits on, and what it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct WaitFd {
    /// The fd number in the child.
    pub fd: i32,
    /// What the fd is.
    pub kind: FdKind,
}

/// What an fd is, from the link `/proc/<pid>/fd/<n>` (proc_pid_fd(5)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum FdKind {
    /// A pipe or a FIFO.
    Pipe,
    /// A socket.
    Socket,
    /// A regular file.
    File,
    /// A terminal (`/dev/tty*`, `/dev/pts/*`, `/dev/console`).
    Terminal,
    /// Anything else: an eventfd, epoll or pidfd, a device, a directory.
    Other,
}

impl std::fmt::Display for KernelWait {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.call {
            Some(call) => write!(f, "{call}")?,
            None => f.write_str("kernel")?,
        }
        if let Some(WaitFd { fd, kind }) = self.fd {
            write!(f, " on fd {fd} ({kind:?})")?;
        }
        Ok(())
    }
}

/// What [`observe`] saw of a live child.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Seen {
    /// On a CPU or runnable (or exiting).
    Running,
    /// In a wait: one of the runtime's primitives (from the slot) or the kernel.
    Blocked(BlockedOn),
    /// Stopped by a signal (`SIGSTOP`, `SIGTSTP`, ...) or in a tracing stop.
    Stopped,
}

/// What a live, unreaped child `pid` is doing, from its status slot (`slot`) and `/proc`.
///
/// A stop wins over everything (a stopped child does not run on even if its wait ends);
/// then the slot (the runtime's primitives say which one, which the kernel cannot tell);
/// then the kernel's sleep. Where `/proc/<pid>/stat` cannot be read (the process hidden by
/// `hidepid`, in another pid namespace, or gone meanwhile) only the slot speaks.
pub(crate) fn observe(pid: Pid, slot: Option<BlockedOn>) -> Seen {
    let Some(stat) = procfs::stat_of(pid) else {
        return slot.map_or(Seen::Running, Seen::Blocked);
    };
    if stat.stopped() {
        return Seen::Stopped;
    }
    if let Some(on) = slot {
        return Seen::Blocked(on);
    }
    if !stat.sleeping() {
        return Seen::Running;
    }
    let wait = match procfs::syscall_of(pid) {
        // Woken between the two reads.
        Some(SyscallLine::Running) => return Seen::Running,
        Some(SyscallLine::Outside) | None => KernelWait {
            call: None,
            fd: None,
        },
        Some(SyscallLine::In { number, args }) => KernelWait {
            call: Some(SystemCall::from_number(number)),
            fd: fd_waited(pid, number, args[0]),
        },
    };
    Seen::Blocked(BlockedOn::Kernel(wait))
}

/// The fd a call `number` with first argument `arg0` waits on, if it waits on one.
fn fd_waited(pid: Pid, number: i64, arg0: u64) -> Option<WaitFd> {
    if !procfs::syscall_waits_on_fd(number) {
        return None;
    }
    // An fd argument is a C int in a 64-bit register: its low 32 bits.
    let fd = i32::try_from(arg0 & 0xffff_ffff).ok()?;
    let kind = match procfs::fd_target(pid, fd)? {
        FdTarget::Pipe => FdKind::Pipe,
        FdTarget::Socket => FdKind::Socket,
        FdTarget::File => FdKind::File,
        FdTarget::Terminal => FdKind::Terminal,
        FdTarget::Other => FdKind::Other,
    };
    Some(WaitFd { fd, kind })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_display() {
        let read = (0..1024)
            .map(SystemCall::from_number)
            .find(|call| call.name() == Some("read"))
            .expect("read has a number");
        assert_eq!(SystemCall::from_number(read.number()), read);
        let wait = KernelWait {
            call: Some(read),
            fd: Some(WaitFd {
                fd: 0,
                kind: FdKind::Pipe,
            }),
        };
        assert_eq!(wait.to_string(), "read on fd 0 (Pipe)");
        assert_eq!(SystemCall::from_number(-7).to_string(), "syscall -7");
        assert_eq!(
            format!("{read:?}"),
            format!("SystemCall({} read)", read.number())
        );
        assert_eq!(
            format!("{:?}", SystemCall::from_number(-7)),
            "SystemCall(-7)"
        );
    }

    #[test]
    fn an_unreadable_process_falls_back_to_the_slot() {
        // Above the kernel's pid limit: no process has it.
        let far = Pid::from_raw(i32::MAX).expect("positive");
        assert_eq!(observe(far, None), Seen::Running);
        assert_eq!(
            observe(far, Some(BlockedOn::Lock)),
            Seen::Blocked(BlockedOn::Lock)
        );
    }
}
