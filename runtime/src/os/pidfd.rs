//! The pidfd calls nix 0.32 lacks, each wrapped once, safely: open, signal, exit status.
//!
//! # Safety
//!
//! Each wrapper passes the kernel integers, or one pointer to a struct of the exact size the
//! call expects on the caller's stack; it checks the result and takes ownership of a
//! returned file descriptor exactly once.
#![allow(unsafe_code)]

use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

use crate::error::{Error, Result};
use crate::pid::Pid;
use nix::errno::Errno;

/// `pidfd_open(pid, 0)`—Opens a pidfd for `pid`; the kernel always sets close-on-exec.
///
/// # Errors
///
/// `Error::Os { call: "pidfd_open", .. }`: `EMFILE`/`ENFILE` when fds run out, `ESRCH`
/// when no such process exists, `ENOSYS` before Linux 5.3.
///
/// # References
///
/// <https://man7.org/linux/man-pages/man2/pidfd_open.2.html>
pub(crate) fn pidfd_open(pid: Pid) -> Result<OwnedFd> {
    // SAFETY: `pidfd_open` takes a pid and a flags word, touches no memory of ours, and
    // returns either -1 or a new file descriptor that nothing else owns.
    let ret = unsafe { libc::syscall(libc::SYS_pidfd_open, pid.as_raw(), 0 as libc::c_uint) };
    if ret < 0 {
        return Err(Error::os("pidfd_open", Errno::last()));
    }
    let fd = i32::try_from(ret).map_err(|_| Error::os("pidfd_open", Errno::EOVERFLOW))?;
    // SAFETY: `fd` was just returned by the kernel as a new descriptor owned by no one else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `PIDFD_THREAD` (Linux 6.9): a pidfd of one thread, readable once that thread exited.
const PIDFD_THREAD: libc::c_uint = libc::O_EXCL as libc::c_uint;

/// `pidfd_open(tid, PIDFD_THREAD)`—A pidfd of one thread of this process; `None` once the
/// thread is gone.
///
/// # Errors
///
/// [`Error::Unsupported`] before Linux 6.9 (`EINVAL`); `Error::Os { call: "pidfd_open", .. }`
/// otherwise.
///
/// # References
///
/// <https://man7.org/linux/man-pages/man2/pidfd_open.2.html>
pub(crate) fn pidfd_open_thread(tid: i32) -> Result<Option<OwnedFd>> {
    // SAFETY: `pidfd_open` takes integers only and returns -1 or a new descriptor.
    let ret = unsafe { libc::syscall(libc::SYS_pidfd_open, tid, PIDFD_THREAD) };
    if ret < 0 {
        return match Errno::last() {
            Errno::ESRCH | Errno::ENOENT => Ok(None),
            Errno::EINVAL => Err(Error::Unsupported("pidfd_open(PIDFD_THREAD) (Linux 6.9)")),
            errno => Err(Error::os("pidfd_open", errno)),
        };
    }
    let fd = i32::try_from(ret).map_err(|_| Error::os("pidfd_open", Errno::EOVERFLOW))?;
    // SAFETY: a descriptor the kernel just returned, owned by nothing else.
    Ok(Some(unsafe { OwnedFd::from_raw_fd(fd) }))
}

/// `pidfd_send_signal(pidfd, signal, NULL, 0)`—Signals the process the pidfd names.
///
/// `signal` is a raw number so that real-time signals can be sent too.
/// A pidfd names one process for ever, so a recycled pid is never signalled.
///
/// # Errors
///
/// `Error::Os { call: "pidfd_send_signal", .. }`: `ESRCH` once the process was reaped,
/// `EPERM`, `EINVAL`.
///
/// # References
///
/// <https://man7.org/linux/man-pages/man2/pidfd_send_signal.2.html>
pub(crate) fn pidfd_send_signal(pidfd: BorrowedFd<'_>, signal: i32) -> Result<()> {
    // SAFETY: the descriptor is borrowed, so it stays open for the call; the info pointer is
    // null, which the kernel accepts and which makes it fill in the info itself. A bad
    // signal number is refused by the kernel with EINVAL.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd.as_raw_fd(),
            signal,
            std::ptr::null::<libc::siginfo_t>(),
            0 as libc::c_uint,
        )
    };
    if ret < 0 {
        return Err(Error::os("pidfd_send_signal", Errno::last()));
    }
    Ok(())
}

/// `struct pidfd_info` of Linux 6.15 (`PIDFD_INFO_SIZE_VER0`, 64 bytes).
#[repr(C)]
#[derive(Debug, Default)]
struct PidfdInfo {
    mask: u64,
    cgroupid: u64,
    pid: u32,
    tgid: u32,
    ppid: u32,
    ruid: u32,
    rgid: u32,
    euid: u32,
    egid: u32,
    suid: u32,
    sgid: u32,
    fsuid: u32,
    fsgid: u32,
    exit_code: i32,
}

const PIDFD_INFO_EXIT: u64 = 1 << 3;

nix::ioctl_readwrite!(pidfd_get_info, 0xFF, 11, PidfdInfo);

/// `ioctl(PIDFD_GET_INFO, PIDFD_INFO_EXIT)`—The raw wait status of the process the pidfd
/// names, once it has exited and been reaped (by anyone); `None` before.
///
/// # Errors
///
/// [`Error::Unsupported`] on kernels before 6.15 (`ENOTTY`, `EINVAL`); `Error::Os` else.
///
/// # References
///
/// <https://man7.org/linux/man-pages/man2/PIDFD_GET_INFO.2const.html>
pub(crate) fn pidfd_exit_status(pidfd: BorrowedFd<'_>) -> Result<Option<i32>> {
    let mut info = PidfdInfo {
        mask: PIDFD_INFO_EXIT,
        ..PidfdInfo::default()
    };
    // SAFETY: `info` is a valid, writable `struct pidfd_info` of the size encoded in the
    // request number; the descriptor is borrowed, so it stays open for the call.
    match unsafe { pidfd_get_info(pidfd.as_raw_fd(), &mut info) } {
        Ok(_) => Ok((info.mask & PIDFD_INFO_EXIT != 0).then_some(info.exit_code)),
        // A reaped process whose exit was not recorded (it cannot happen with the EXIT
        // flag set on 6.15+, but older pidfs answers ESRCH).
        Err(Errno::ESRCH) => Ok(None),
        Err(Errno::ENOTTY | Errno::EINVAL) => Err(Error::Unsupported(
            "PIDFD_GET_INFO with PIDFD_INFO_EXIT (Linux 6.15)",
        )),
        Err(errno) => Err(Error::os("ioctl(PIDFD_GET_INFO)", errno)),
    }
}

/// Maps a raw wait status (`WIFEXITED`/`WIFSIGNALED` encoding) to CPython's exit code.
pub(crate) fn exitcode_from_raw(status: i32) -> i32 {
    if crate::planted::active("forkserver-exitcode-sign") {
        return libc::WTERMSIG(status) + libc::WEXITSTATUS(status);
    }
    if libc::WIFSIGNALED(status) {
        -libc::WTERMSIG(status)
    } else {
        libc::WEXITSTATUS(status)
    }
}
