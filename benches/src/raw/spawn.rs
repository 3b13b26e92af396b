//! Raw spawn+join baselines: `fork`/`_exit`/`waitpid`, `clone3(CLONE_PIDFD)` with
//! `waitid(P_PIDFD)`, a batch of forks joined together, and a bare re-exec of this binary.

use std::ffi::{CString, OsString};
use std::mem;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;

use super::wait_exit_zero;
use crate::{Error, Result};

/// The hidden argument that makes a benchmark binary `_exit(0)` at the top of `main`; see
/// [`Reexec`] and [`crate::harness::exit_if_reexec_child`].
pub const REEXEC_ARG: &str = "--proclife-bench-reexec-child";

/// glibc `fork()`, the child `_exit(0)`s at once, the parent `waitpid`s it and checks status 0.
///
/// # Errors
///
/// [`Error::Os`] when `fork` or `waitpid` fails, [`Error::ChildFailed`] when the child did
/// not exit with status 0.
pub fn fork_exit_wait() -> Result<()> {
    // SAFETY: the child calls only `_exit`, which is async-signal-safe, so this is sound even
    // in a multi-threaded process.
    let pid = unsafe { libc::fork() };
    match pid {
        -1 => Err(Error::last_os("fork")),
        // SAFETY: `_exit` is async-signal-safe and ends the child.
        0 => unsafe { libc::_exit(0) },
        pid => wait_exit_zero(pid),
    }
}

/// Raw `clone3(CLONE_PIDFD)`; the child does nothing but `_exit(0)`; the parent reaps it with
/// `waitid(P_PIDFD, WEXITED)` and checks `CLD_EXITED` with status 0.
///
/// glibc is bypassed (no atfork handlers, no cached-pid update), which is why the child must
/// not do anything but `_exit`.
///
/// # Errors
///
/// [`Error::Os`] when `clone3` or `waitid` fails (`ENOSYS` on kernels before 5.3),
/// [`Error::ChildFailed`] when the child did not exit with status 0.
pub fn clone3_pidfd_wait() -> Result<()> {
    let mut pidfd: libc::c_int = -1;
    // SAFETY: clone_args is plain integers; all zeroes is the valid "no options" value.
    let mut args: libc::clone_args = unsafe { mem::zeroed() };
    args.flags = libc::CLONE_PIDFD as u64;
    args.pidfd = std::ptr::from_mut(&mut pidfd) as u64;
    args.exit_signal = libc::SIGCHLD as u64;
    // SAFETY: `args` is a valid clone_args of the size passed and `pidfd` outlives the call.
    // Without CLONE_VM the child gets a copy of this address space and stack, like fork; it
    // calls only `_exit`, which needs no glibc state that the raw clone left stale.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_clone3,
            std::ptr::from_mut(&mut args),
            mem::size_of::<libc::clone_args>(),
        )
    };
    match ret {
        -1 => return Err(Error::last_os("clone3")),
        // SAFETY: `_exit` is async-signal-safe and ends the child.
        0 => unsafe { libc::_exit(0) },
        _ => {}
    }
    // SAFETY: clone3 succeeded with CLONE_PIDFD, so `pidfd` is an open descriptor (the kernel
    // creates pidfds close-on-exec) that nothing else owns.
    let pidfd = unsafe { OwnedFd::from_raw_fd(pidfd) };
    let pid = libc::pid_t::try_from(ret).unwrap_or(-1);
    loop {
        // SAFETY: siginfo_t is plain data; all zeroes is a valid value to be overwritten.
        let mut info: libc::siginfo_t = unsafe { mem::zeroed() };
        let id = libc::id_t::try_from(pidfd.as_raw_fd()).unwrap_or(libc::id_t::MAX);
        // SAFETY: `info` is a valid out-pointer; the wait targets our own child's pidfd.
        let rc = unsafe { libc::waitid(libc::P_PIDFD, id, &mut info, libc::WEXITED) };
        if rc == 0 {
            // SAFETY: waitid filled `info` for an exited child, so si_status is valid.
            let status = unsafe { info.si_status() };
            if info.si_code == libc::CLD_EXITED && status == 0 {
                return Ok(());
            }
            let what = if info.si_code == libc::CLD_EXITED {
                "exited with status"
            } else {
                "died of signal"
            };
            return Err(Error::ChildFailed {
                pid,
                status: format!("{what} {status}"),
            });
        }
        let err = std::io::Error::last_os_error();
        if err.raw_os_error() != Some(libc::EINTR) {
            return Err(Error::Os {
                call: "waitid(P_PIDFD)",
                source: err,
            });
        }
    }
}

/// Forks `pids.len()` children that `_exit(0)` at once, then `waitpid`s each one, in order.
///
/// `pids` is caller-provided scratch space so that the timed path allocates nothing. Every
/// child that was started is reaped, even when a later fork or an earlier wait fails.
///
/// # Errors
///
/// The first [`Error::Os`] from `fork` or `waitpid`, or the first [`Error::ChildFailed`].
pub fn fork_batch_wait(pids: &mut [libc::pid_t]) -> Result<()> {
    let mut started = 0;
    let mut first_error = None;
    for slot in pids.iter_mut() {
        // SAFETY: the child calls only `_exit`, which is async-signal-safe.
        let pid = unsafe { libc::fork() };
        match pid {
            -1 => {
                first_error = Some(Error::last_os("fork"));
                break;
            }
            // SAFETY: `_exit` is async-signal-safe and ends the child.
            0 => unsafe { libc::_exit(0) },
            pid => {
                *slot = pid;
                started += 1;
            }
        }
    }
    for &pid in pids.iter().take(started) {
        if let Err(err) = wait_exit_zero(pid) {
            first_error.get_or_insert(err);
        }
    }
    first_error.map_or(Ok(()), Err)
}

/// A prepared re-exec of the running binary: `fork`, then `execve("/proc/self/exe",
/// [argv0, REEXEC_ARG], environ)` in the child, then `waitpid` for status 0.
///
/// The path, arguments and environment are built once, before any fork, so the child only
/// calls `execve` (and `_exit(127)` if that fails). The binary must call
/// [`crate::harness::exit_if_reexec_child`] first thing in `main`.
#[derive(Debug)]
pub struct Reexec {
    path: CString,
    _strings: Vec<CString>,
    argv: Vec<*const libc::c_char>,
    envp: Vec<*const libc::c_char>,
}

impl Reexec {
    /// Prepares the re-exec of `/proc/self/exe` with this process's `argv[0]` and environment.
    ///
    /// # Errors
    ///
    /// [`Error::Invalid`] when an argument or environment entry holds a NUL byte.
    pub fn current() -> Result<Self> {
        let nul = |what: &str| Error::Invalid {
            what: format!("{what} contains a NUL byte"),
        };
        let path = CString::new("/proc/self/exe").map_err(|_| nul("path"))?;
        let argv0 = std::env::args_os()
            .next()
            .unwrap_or_else(|| OsString::from("proclife-bench"));
        let mut strings = vec![
            CString::new(argv0.as_bytes()).map_err(|_| nul("argv[0]"))?,
            CString::new(REEXEC_ARG).map_err(|_| nul("the re-exec argument"))?,
        ];
        for (key, value) in std::env::vars_os() {
            let mut entry = key.as_bytes().to_vec();
            entry.push(b'=');
            entry.extend_from_slice(value.as_bytes());
            strings.push(CString::new(entry).map_err(|_| nul("an environment entry"))?);
        }
        // The pointers point into the CStrings' heap buffers, which do not move when the
        // vector holding the CStrings moves.
        let mut argv: Vec<*const libc::c_char> =
            strings.iter().take(2).map(|s| s.as_ptr()).collect();
        argv.push(std::ptr::null());
        let mut envp: Vec<*const libc::c_char> =
            strings.iter().skip(2).map(|s| s.as_ptr()).collect();
        envp.push(std::ptr::null());
        Ok(Reexec {
            path,
            _strings: strings,
            argv,
            envp,
        })
    }

    /// Forks, re-executes the binary in the child and waits for it to exit with status 0.
    ///
    /// # Errors
    ///
    /// [`Error::Os`] when `fork` or `waitpid` fails, [`Error::ChildFailed`] when the child
    /// did not exit with status 0 (127: `execve` failed).
    pub fn run(&self) -> Result<()> {
        // SAFETY: the child calls only `execve` and `_exit`, both async-signal-safe, with
        // arguments prepared before the fork.
        let pid = unsafe { libc::fork() };
        match pid {
            -1 => Err(Error::last_os("fork")),
            0 => {
                // SAFETY: path, argv and envp are NUL-terminated strings in NULL-terminated
                // arrays, alive as long as `self`, which outlives the call.
                unsafe { libc::execve(self.path.as_ptr(), self.argv.as_ptr(), self.envp.as_ptr()) };
                // SAFETY: `_exit` is async-signal-safe and ends the child.
                unsafe { libc::_exit(super::code::EXEC) }
            }
            pid => wait_exit_zero(pid),
        }
    }

    /// The same re-exec through glibc's `posix_spawn` (the child shares the parent's memory
    /// until its `execve`, so no page table is copied), then `waitpid`; no file actions or
    /// attributes.
    ///
    /// # Errors
    ///
    /// [`Error::Os`] when `posix_spawn` (including the `execve`) or `waitpid` fails,
    /// [`Error::ChildFailed`] when the child did not exit with status 0.
    pub fn run_posix_spawn(&self) -> Result<()> {
        let mut pid: libc::pid_t = 0;
        // SAFETY: `pid` is a valid out-pointer; path, argv and envp are NUL-terminated
        // strings in NULL-terminated arrays alive as long as `self`; null file actions and
        // attributes mean none. posix_spawn does not write through the array pointers.
        let ret = unsafe {
            libc::posix_spawn(
                &raw mut pid,
                self.path.as_ptr(),
                std::ptr::null(),
                std::ptr::null(),
                self.argv.as_ptr().cast(),
                self.envp.as_ptr().cast(),
            )
        };
        if ret != 0 {
            return Err(Error::from_errno("posix_spawn", ret));
        }
        wait_exit_zero(pid)
    }
}
