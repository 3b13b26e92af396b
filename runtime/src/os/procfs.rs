//! The one parser of `/proc/<pid>/stat`, and the reads of it the runtime makes; also the
//! reads of `/proc/<pid>/syscall` and `/proc/<pid>/fd/<n>` through which `Process::state()`
//! names what a child sleeps on in the kernel, and the system call numbers' names.
//!
//! The command name (field 2) is in parentheses and may itself contain spaces and
//! parentheses, so fields are counted after the last `)`: field 3 (the state) is the first
//! one there. See proc_pid_stat(5):
//! <https://man7.org/linux/man-pages/man5/proc_pid_stat.5.html>
#![forbid(unsafe_code)]

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sys::stat::Mode;

use crate::error::{Error, Result};
use crate::pid::Pid;

/// The fields of a `/proc/<pid>/stat` line the runtime reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Stat {
    /// Field 3, `state`: `R`, `S`, `D`, `Z` (zombie), `X`/`x` (dead), ...
    pub(crate) state: char,
    /// Field 20, `num_threads`.
    pub(crate) num_threads: usize,
    /// Field 22, `starttime`: clock ticks since boot.
    pub(crate) start_time: u64,
}

impl Stat {
    /// Parses one `/proc/<pid>/stat` line; `None` when it is not one.
    pub(crate) fn parse(line: &[u8]) -> Option<Stat> {
        let close = line.iter().rposition(|&b| b == b')')?;
        let rest = std::str::from_utf8(line.get(close + 1..)?).ok()?;
        let mut fields = rest.split_ascii_whitespace();
        // `nth` counts from the field after the last one taken: field 3 is index 0.
        let state = fields.next()?;
        let num_threads = fields.nth(20 - 4)?.parse().ok()?;
        let start_time = fields.nth(22 - 21)?.parse().ok()?;
        let mut chars = state.chars();
        let state = chars.next().filter(|_| chars.next().is_none())?;
        Some(Stat {
            state,
            num_threads,
            start_time,
        })
    }

    /// Whether the process is stopped by a signal (`T`) or in a tracing stop (`t`).
    pub(crate) fn stopped(&self) -> bool {
        matches!(self.state, 'T' | 't')
    }

    /// Whether the process sleeps in the kernel: interruptibly (`S`) or not (`D`).
    pub(crate) fn sleeping(&self) -> bool {
        matches!(self.state, 'S' | 'D')
    }

    /// Whether the process has exited (a zombie, or dead).
    pub(crate) fn exited(&self) -> bool {
        matches!(self.state, 'Z' | 'X' | 'x')
    }
}

/// Opens `/proc/self/stat`, close-on-exec.
///
/// # Errors
///
/// `Error::Os { call: "open(/proc/self/stat)", .. }` (`EMFILE` when fds run out).
pub(crate) fn open_self_stat() -> Result<OwnedFd> {
    nix::fcntl::open(
        c"/proc/self/stat",
        OFlag::O_RDONLY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|errno| Error::os("open(/proc/self/stat)", errno))
}

/// Reads and parses an open stat file with one `pread` at offset 0 into a stack buffer (no
/// allocation), so one open file can be read again and again.
///
/// # Errors
///
/// `Error::Os { call: "read(/proc/self/stat)", .. }`; `EIO` when the line does not parse.
pub(crate) fn read_stat(stat: BorrowedFd<'_>) -> Result<Stat> {
    let mut buf = [0u8; 1024];
    let n = loop {
        match nix::sys::uio::pread(stat, &mut buf, 0) {
            Ok(n) => break n,
            Err(Errno::EINTR) => continue,
            Err(errno) => return Err(Error::os("read(/proc/self/stat)", errno)),
        }
    };
    Stat::parse(buf.get(..n).unwrap_or_default())
        .ok_or(Error::os("read(/proc/self/stat)", Errno::EIO))
}

/// The `/proc/self/task` directory of the process that opened it: that process's thread
/// count for one `fstat`, where `/proc/self/stat` costs a `pread` that formats some fifty
/// fields and a parse (an `open`, the check and a `close`: about 2.2 us against 5.1 us,
/// loops of 20 000 on an Intel Xeon).
///
/// procfs gives `/proc/<pid>/task` the link count of a directory, 2 plus one per
/// subdirectory, and it has one subdirectory per thread (`proc_task_getattr` in the
/// kernel's `fs/proc/base.c`: `stat->nlink += get_nr_threads(p)`), so the thread count is
/// the link count less 2. A procfs that answers less than 3 (one thread at least) is not
/// taken at its word: the count then comes from `num_threads` of `/proc/self/stat`
/// (decision 0030).
///
/// The fd names the opener's task directory for its whole life, also in a child that
/// inherits it through `fork()`.
#[derive(Debug)]
pub(crate) struct TaskDir(OwnedFd);

impl TaskDir {
    /// Opens `/proc/self/task` (`O_DIRECTORY`, close-on-exec).
    ///
    /// # Errors
    ///
    /// `Error::Os { call: "open(/proc/self/task)", .. }` (`EMFILE` when fds run out,
    /// `ENOENT` without procfs).
    pub(crate) fn open() -> Result<TaskDir> {
        nix::fcntl::open(
            c"/proc/self/task",
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map(TaskDir)
        .map_err(|errno| Error::os("open(/proc/self/task)", errno))
    }

    /// How many threads the process that opened it has now: the directory's link count
    /// less 2.
    ///
    /// # Errors
    ///
    /// `Error::Os { call: "fstat(/proc/self/task)", .. }`; with a link count below 3, as
    /// [`open_self_stat`] and [`read_stat`].
    pub(crate) fn threads(&self) -> Result<usize> {
        let stat = nix::sys::stat::fstat(&self.0)
            .map_err(|errno| Error::os("fstat(/proc/self/task)", errno))?;
        match threads_of_link_count(stat.st_nlink) {
            Some(threads) => Ok(threads),
            None => Ok(read_stat(open_self_stat()?.as_fd())?.num_threads),
        }
    }
}

/// The thread count a link count of `/proc/<pid>/task` stands for, `None` below 3 (a
/// process has one thread at least, so such a count does not follow the convention).
fn threads_of_link_count(links: nix::libc::nlink_t) -> Option<usize> {
    usize::try_from(links)
        .ok()?
        .checked_sub(2)
        .filter(|&threads| threads >= 1)
}

/// The pid a pidfd of this process names, from `/proc/self/fdinfo/<fd>` (its `Pid:` line);
/// `None` when it cannot be read, or once the process was reaped (`-1`).
///
/// See proc_pid_fdinfo(5): <https://man7.org/linux/man-pages/man5/proc_pid_fdinfo.5.html>
pub(crate) fn pidfd_pid(pidfd: BorrowedFd<'_>) -> Option<Pid> {
    use std::os::fd::AsRawFd;
    let text = std::fs::read_to_string(format!("/proc/self/fdinfo/{}", pidfd.as_raw_fd())).ok()?;
    let pid: i32 = text
        .lines()
        .find_map(|line| line.strip_prefix("Pid:"))?
        .trim()
        .parse()
        .ok()?;
    Pid::from_raw(pid)
}

/// The stat line of `pid`; `None` when there is no such process (or it cannot be read).
///
/// Three system calls: `openat`, one `pread` into a stack buffer ([`read_stat`]) and `close`.
/// (`std::fs::read` also made a `statx` for a size that procfs reports as 0, then grew its
/// buffer over several `read`s: eight calls, twice the time of a barrier's round.)
pub(crate) fn stat_of(pid: Pid) -> Option<Stat> {
    let stat = nix::fcntl::open(
        format!("/proc/{pid}/stat").as_str(),
        OFlag::O_RDONLY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .ok()?;
    read_stat(stat.as_fd()).ok()
}

/// What `/proc/<pid>/syscall` says about a process (see proc_pid_syscall(5):
/// <https://man7.org/linux/man-pages/man5/proc_pid_syscall.5.html>).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SyscallLine {
    /// `running`: on a CPU, or runnable.
    Running,
    /// `-1 sp pc`: blocked in the kernel, but not in a system call (a page fault, say).
    Outside,
    /// `nr arg1 ... arg6 sp pc`: blocked in system call `nr` with these arguments.
    In {
        /// The system call number (architecture-specific, as `libc::SYS_*`).
        number: i64,
        /// Its six argument registers.
        args: [u64; 6],
    },
}

impl SyscallLine {
    /// Parses the text of `/proc/<pid>/syscall`; `None` when it is not one.
    pub(crate) fn parse(text: &str) -> Option<SyscallLine> {
        let text = text.trim();
        if text == "running" {
            return Some(SyscallLine::Running);
        }
        let mut fields = text.split_ascii_whitespace();
        let number: i64 = fields.next()?.parse().ok()?;
        if number < 0 {
            return Some(SyscallLine::Outside);
        }
        let mut args = [0u64; 6];
        for arg in &mut args {
            let field = fields.next()?;
            *arg = u64::from_str_radix(field.strip_prefix("0x")?, 16).ok()?;
        }
        Some(SyscallLine::In { number, args })
    }
}

/// `/proc/<pid>/syscall`; `None` when it cannot be read: the process is gone, or the caller
/// lacks ptrace access to it (`EACCES`: another user, or a non-dumpable process), or /proc
/// hides it (`hidepid`, another pid namespace).
pub(crate) fn syscall_of(pid: Pid) -> Option<SyscallLine> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/syscall")).ok()?;
    SyscallLine::parse(&text)
}

/// What an fd of another process is, as `/proc/<pid>/fd/<fd>` shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FdTarget {
    /// `pipe:[inode]`, or a path to a FIFO.
    Pipe,
    /// `socket:[inode]`, or a path to a socket.
    Socket,
    /// A path to a regular file.
    File,
    /// A terminal: `/dev/tty*`, `/dev/pts/*`, `/dev/console`.
    Terminal,
    /// Anything else: an `anon_inode:` (eventfd, epoll, pidfd, ...), a device, a directory.
    Other,
}

/// Reads the link `/proc/<pid>/fd/<fd>` (and, for a path, the file type of its target);
/// `None` when it cannot be read (the fd was closed meanwhile, or no access).
///
/// See proc_pid_fd(5): <https://man7.org/linux/man-pages/man5/proc_pid_fd.5.html>
pub(crate) fn fd_target(pid: Pid, fd: i32) -> Option<FdTarget> {
    use std::os::unix::fs::FileTypeExt;
    let link = format!("/proc/{pid}/fd/{fd}");
    let target = std::fs::read_link(&link).ok()?;
    let target = target.to_string_lossy();
    if target.starts_with("pipe:") {
        return Some(FdTarget::Pipe);
    }
    if target.starts_with("socket:") {
        return Some(FdTarget::Socket);
    }
    if !target.starts_with('/') {
        return Some(FdTarget::Other);
    }
    if target.starts_with("/dev/pts/") || target.starts_with("/dev/tty") || target == "/dev/console"
    {
        return Some(FdTarget::Terminal);
    }
    // A path: what it is, through the link (which opens the very file the fd names).
    let kind = std::fs::metadata(&link).ok()?.file_type();
    Some(if kind.is_file() {
        FdTarget::File
    } else if kind.is_fifo() {
        FdTarget::Pipe
    } else if kind.is_socket() {
        FdTarget::Socket
    } else {
        FdTarget::Other
    })
}

/// One row of [`SYSCALLS`]: a number, its name, and whether its first argument is an fd.
type SyscallRow = (libc::c_long, &'static str, bool);

/// The system calls a process commonly sleeps in, by this architecture's numbers (from the
/// `libc::SYS_*` constants, so that they are right on every architecture; the calls that
/// only some architectures have are marked so). `true`: the first argument is the fd
/// waited on.
const SYSCALLS: &[SyscallRow] = &[
    (libc::SYS_read, "read", true),
    (libc::SYS_write, "write", true),
    (libc::SYS_readv, "readv", true),
    (libc::SYS_writev, "writev", true),
    (libc::SYS_pread64, "pread64", true),
    (libc::SYS_pwrite64, "pwrite64", true),
    (libc::SYS_preadv, "preadv", true),
    (libc::SYS_pwritev, "pwritev", true),
    (libc::SYS_preadv2, "preadv2", true),
    (libc::SYS_pwritev2, "pwritev2", true),
    (libc::SYS_recvfrom, "recvfrom", true),
    (libc::SYS_recvmsg, "recvmsg", true),
    (libc::SYS_recvmmsg, "recvmmsg", true),
    (libc::SYS_sendto, "sendto", true),
    (libc::SYS_sendmsg, "sendmsg", true),
    (libc::SYS_sendmmsg, "sendmmsg", true),
    (libc::SYS_accept, "accept", true),
    (libc::SYS_accept4, "accept4", true),
    (libc::SYS_connect, "connect", true),
    (libc::SYS_splice, "splice", true),
    (libc::SYS_sendfile, "sendfile", true),
    (libc::SYS_flock, "flock", true),
    (libc::SYS_fcntl, "fcntl", true),
    (libc::SYS_ioctl, "ioctl", true),
    (libc::SYS_fsync, "fsync", true),
    (libc::SYS_fdatasync, "fdatasync", true),
    (libc::SYS_epoll_pwait, "epoll_pwait", true),
    #[cfg(target_arch = "x86_64")]
    (libc::SYS_epoll_wait, "epoll_wait", true),
    #[cfg(target_arch = "x86_64")]
    (libc::SYS_poll, "poll", false),
    #[cfg(target_arch = "x86_64")]
    (libc::SYS_select, "select", false),
    #[cfg(target_arch = "x86_64")]
    (libc::SYS_pause, "pause", false),
    (libc::SYS_ppoll, "ppoll", false),
    (libc::SYS_pselect6, "pselect6", false),
    (libc::SYS_nanosleep, "nanosleep", false),
    (libc::SYS_clock_nanosleep, "clock_nanosleep", false),
    (libc::SYS_futex, "futex", false),
    (libc::SYS_wait4, "wait4", false),
    (libc::SYS_waitid, "waitid", false),
    (libc::SYS_rt_sigsuspend, "rt_sigsuspend", false),
    (libc::SYS_rt_sigtimedwait, "rt_sigtimedwait", false),
    (libc::SYS_openat, "openat", false),
    (libc::SYS_msgrcv, "msgrcv", false),
    (libc::SYS_msgsnd, "msgsnd", false),
    (libc::SYS_semtimedop, "semtimedop", false),
    (libc::SYS_io_getevents, "io_getevents", false),
    (libc::SYS_io_uring_enter, "io_uring_enter", true),
    // A sleep interrupted by a stop and continued by `SIGCONT` is resumed through this call.
    (libc::SYS_restart_syscall, "restart_syscall", false),
];

/// The name of system call `number` on this architecture, if it is one a process commonly
/// sleeps in.
#[allow(
    clippy::useless_conversion,
    reason = "c_long is i64 here, i32 on 32-bit targets"
)]
pub(crate) fn syscall_name(number: i64) -> Option<&'static str> {
    SYSCALLS
        .iter()
        .find(|row| i64::from(row.0) == number)
        .map(|row| row.1)
}

/// Whether the first argument of system call `number` is the fd it waits on.
#[allow(
    clippy::useless_conversion,
    reason = "c_long is i64 here, i32 on 32-bit targets"
)]
pub(crate) fn syscall_waits_on_fd(number: i64) -> bool {
    SYSCALLS
        .iter()
        .any(|row| i64::from(row.0) == number && row.2)
}

#[cfg(test)]
mod tests {
    use std::os::fd::AsFd;

    use super::*;

    /// A pid above the kernel's `PID_MAX_LIMIT` (2^22): no process has it.
    fn far_pid() -> Pid {
        Pid::from_raw(i32::MAX).expect("positive")
    }

    #[test]
    fn a_pidfd_names_its_pid_in_fdinfo() {
        let me = crate::os::process::getpid();
        let pidfd = crate::os::pidfd::pidfd_open(me).expect("pidfd");
        assert_eq!(pidfd_pid(pidfd.as_fd()), Some(me));
        let stat = stat_of(me).expect("own stat");
        assert!(!stat.stopped() && !stat.exited(), "{stat:?}");
    }

    #[test]
    fn fields_are_counted_after_the_last_parenthesis() {
        let line =
            b"4242 (a) b (c)) S 1 4242 4242 0 -1 4194560 98 0 0 0 1 2 0 0 20 0 7 0 123 4096 \
                     200 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0\n";
        assert_eq!(
            Stat::parse(line),
            Some(Stat {
                state: 'S',
                num_threads: 7,
                start_time: 123
            })
        );
        assert_eq!(Stat::parse(b"4242 (x) S 1 2"), None);
        assert_eq!(Stat::parse(b"no parenthesis at all"), None);
    }

    #[test]
    fn syscall_lines_parse() {
        assert_eq!(SyscallLine::parse("running\n"), Some(SyscallLine::Running));
        assert_eq!(
            SyscallLine::parse("-1 0x7ffd5a0 0x401000\n"),
            Some(SyscallLine::Outside)
        );
        let line = "0 0x3 0x7ffc 0x1 0x0 0x0 0x0 0x7ffd 0x7f12\n";
        assert_eq!(
            SyscallLine::parse(line),
            Some(SyscallLine::In {
                number: 0,
                args: [3, 0x7ffc, 1, 0, 0, 0]
            })
        );
        assert_eq!(SyscallLine::parse("0 0x3"), None);
        assert_eq!(SyscallLine::parse("read 0x3 0 0 0 0 0"), None);
        assert_eq!(SyscallLine::parse(""), None);
    }

    #[test]
    #[allow(
        clippy::useless_conversion,
        reason = "c_long is i64 here, i32 on 32-bit targets"
    )]
    fn syscall_names_follow_this_architecture() {
        assert_eq!(syscall_name(libc::SYS_read.into()), Some("read"));
        assert_eq!(syscall_name(libc::SYS_futex.into()), Some("futex"));
        assert_eq!(
            syscall_name(libc::SYS_clock_nanosleep.into()),
            Some("clock_nanosleep")
        );
        assert!(syscall_waits_on_fd(libc::SYS_recvfrom.into()));
        assert!(!syscall_waits_on_fd(libc::SYS_wait4.into()));
        assert_eq!(syscall_name(-1), None);
        assert_eq!(syscall_name(1 << 40), None);
        let mut numbers: Vec<_> = SYSCALLS.iter().map(|row| row.0).collect();
        numbers.sort_unstable();
        numbers.dedup();
        assert_eq!(numbers.len(), SYSCALLS.len(), "a number listed twice");
    }

    #[test]
    fn own_fds_are_named() {
        let me = crate::os::process::getpid();
        let (read, _write) = nix::unistd::pipe().expect("pipe");
        use std::os::fd::AsRawFd;
        assert_eq!(fd_target(me, read.as_raw_fd()), Some(FdTarget::Pipe));
        let file = std::fs::File::open("/proc/self/stat").expect("open");
        assert_eq!(fd_target(me, file.as_raw_fd()), Some(FdTarget::File));
        assert_eq!(fd_target(me, -1), None);
        assert!(syscall_of(far_pid()).is_none());
    }

    #[test]
    fn the_task_directory_counts_threads_as_stat_does() {
        let task = TaskDir::open().expect("open /proc/self/task");
        let stat = open_self_stat().expect("open /proc/self/stat");
        let extra = 3;
        let gate = std::sync::Barrier::new(extra + 1);
        std::thread::scope(|scope| {
            for _ in 0..extra {
                scope.spawn(|| gate.wait());
            }
            // Other tests of this binary start and end threads meanwhile: the counts must
            // agree in one of the reads where `num_threads` read before and after the
            // `fstat` is the same. Nothing here panics before the gate opens, so a failed
            // read cannot leave the extra threads waiting and the scope hanging.
            let read = || -> Result<(usize, usize, usize)> {
                let before = read_stat(stat.as_fd())?.num_threads;
                let threads = task.threads()?;
                let after = read_stat(stat.as_fd())?.num_threads;
                Ok((before, threads, after))
            };
            let mut seen = Vec::new();
            let mut failed = None;
            for _ in 0..1000 {
                match read() {
                    Ok((before, threads, after)) => {
                        seen.push((before, threads, after));
                        if before == threads && threads == after {
                            break;
                        }
                    }
                    Err(error) => {
                        failed = Some(error);
                        break;
                    }
                }
            }
            gate.wait();
            if let Some(error) = failed {
                panic!("reading the thread counts failed: {error}");
            }
            let Some(&(_, threads, _)) = seen.last().filter(|(b, t, a)| b == t && t == a) else {
                panic!(
                    "link count of /proc/self/task less 2 never matched num_threads of \
                     /proc/self/stat read before and after it (before, link count, after), \
                     last of {} reads: {:?}",
                    seen.len(),
                    seen.last()
                );
            };
            assert!(
                threads > extra,
                "{threads} threads counted while this test alone runs {} of them",
                extra + 1
            );
        });
    }

    #[test]
    fn a_link_count_below_three_is_not_a_thread_count() {
        assert_eq!(threads_of_link_count(3), Some(1), "one thread");
        assert_eq!(threads_of_link_count(6), Some(4), "four threads");
        for links in 0..3 {
            assert_eq!(
                threads_of_link_count(links),
                None,
                "link count {links} read as a thread count"
            );
        }
    }

    #[test]
    fn the_live_files_parse() {
        // This test binary runs tests on threads of its own: only a lower bound is stable.
        let stat = open_self_stat().expect("open /proc/self/stat");
        let me = read_stat(stat.as_fd()).expect("read /proc/self/stat");
        assert!(me.num_threads >= 1 && !me.exited());
        let again = read_stat(stat.as_fd()).expect("read it again");
        assert_eq!(
            again.start_time, me.start_time,
            "a second read sees the same line"
        );
        let pid = crate::os::process::getpid();
        assert_eq!(stat_of(pid).map(|s| s.start_time), Some(me.start_time));
        assert_eq!(stat_of(far_pid()), None);
    }
}
