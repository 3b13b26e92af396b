//! Process creation: the runtime's only call of `fork()` and of `posix_spawn()`, and how a
//! forked child ends (`_exit`).
//!
//! It uses glibc's `fork()` (through nix) rather than a raw `clone3(CLONE_PIDFD)`: glibc's
//! fork updates the child's cached thread id (used by `raise`, `abort`, `pthread_kill`) and
//! runs the `pthread_atfork` handlers, which a raw `clone3` would bypass.
//!
//! # Safety
//!
//! [`fork_with`] is sound for any caller: it takes a [`ForkPermit`] (the process has one
//! thread, per glibc's `__libc_single_threaded` or the link count of `/proc/self/task`,
//! [`procfs::TaskDir`], or the caller of an `unsafe` entry point vouched for the fork), and the child never returns into the caller's
//! frames: it runs the given closure under `catch_unwind`, flushes the standard streams and
//! calls `_exit`.
//! [`spawn_keeping`] is sound for any caller: between its clone and the `execve` only
//! glibc's `posix_spawn` code runs in the child.
#![allow(unsafe_code)]

use std::cell::UnsafeCell;
use std::ffi::{CStr, CString};
use std::mem::MaybeUninit;
use std::os::fd::{AsRawFd, BorrowedFd, RawFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::panic::{AssertUnwindSafe, catch_unwind};

use nix::errno::Errno;
use nix::sys::signal::{SigSet, Signal, kill};
use nix::sys::wait::waitpid;
use nix::unistd::{ForkResult, Pid as RawPid, fork};

use super::procfs;
use super::stdio::flush_std_streams;
use crate::error::{Error, Result};
use crate::pid::Pid;

/// Proof that forking the calling process is sound now.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ForkPermit {
    _private: (),
}

impl ForkPermit {
    /// A permit when the process that opened `task` (the caller) has one thread; otherwise
    /// `Ok(Err(threads))`.
    ///
    /// # Errors
    ///
    /// As [`procfs::TaskDir::threads`].
    pub(crate) fn if_single_threaded(
        task: &procfs::TaskDir,
    ) -> Result<std::result::Result<ForkPermit, usize>> {
        let threads = task.threads()?;
        Ok(if threads == 1 {
            Ok(ForkPermit { _private: () })
        } else {
            Err(threads)
        })
    }

    /// A permit when glibc knows that the process has only ever had the calling thread
    /// ([`process::single_threaded`](super::process::single_threaded), glibc's
    /// `__libc_single_threaded`), with no system call; `None` when glibc cannot say so
    /// (a thread was created once, even if it has ended), for which
    /// [`ForkPermit::if_single_threaded`] counts the threads there are now (decision 0032).
    pub(crate) fn if_never_threaded() -> Option<ForkPermit> {
        super::process::single_threaded().then_some(ForkPermit { _private: () })
    }

    /// A permit for a process that may have other threads.
    ///
    /// # Safety
    ///
    /// The caller guarantees that the child can run without what the other threads hold at
    /// the moment of the fork (locks, half-updated state): the contract of
    /// [`Process::start_in_threaded_parent`](crate::Process::start_in_threaded_parent).
    pub(crate) unsafe fn vouched() -> ForkPermit {
        ForkPermit { _private: () }
    }
}

/// `fork()`: the child gets `state` and runs `child(state)`, then ends with `_exit` and the
/// code it returned (1 if it panicked), having flushed the standard streams; the parent gets
/// `state` back with the child's pid.
///
/// The state is how values of the caller reach the child: the child owns them (and drops
/// what it does not need, which closes their fds), the parent keeps them.
///
/// # Errors
///
/// The `errno` of `fork` (`EAGAIN`, `ENOMEM`), with `state` back.
pub(crate) fn fork_with<S>(
    _permit: ForkPermit,
    state: S,
    child: impl FnOnce(S) -> i32,
) -> (S, nix::Result<RawPid>) {
    flush_std_streams();
    // SAFETY: `_permit` proves that forking is sound now (see `ForkPermit`); the child branch
    // below never returns: it ends in `_exit`.
    match unsafe { fork() } {
        Err(errno) => (state, Err(errno)),
        Ok(ForkResult::Parent { child }) => (state, Ok(child)),
        Ok(ForkResult::Child) => {
            // The closure that `catch_unwind` moves holds references only: holding the state
            // and `child`, it would be moved with a `memcpy` call, one more window of glibc's
            // code for the child to fault in (`fork` copies no page-table entries of program
            // text); moved out one by one, values of up to 128 bytes are copied inline.
            let (mut state, mut child) = (Some(state), Some(child));
            let code = catch_unwind(AssertUnwindSafe(|| match (state.take(), child.take()) {
                (Some(state), Some(child)) => child(state),
                _ => 1,
            }))
            .unwrap_or(1);
            exit_now(code)
        }
    }
}

/// Ends the process at once with `code`, after flushing the standard streams: `_exit`, no
/// atexit handlers, no destructors, which is what the child of a fork (or a re-executed
/// process past its bootstrap) must do.
pub(crate) fn exit_now(code: i32) -> ! {
    flush_std_streams();
    // SAFETY: `_exit` touches no Rust state; nothing after it runs.
    unsafe { libc::_exit(code) }
}

/// Checks that an fd can be opened now (`EMFILE` or `ENFILE` otherwise): an `O_PATH` open of
/// `/`, closed at once. A single-threaded parent calls it before the fork, so that running out
/// of fds fails before a child exists and not at the `pidfd_open` after the fork; with no
/// other thread, nothing can take the free slot in between.
///
/// # Errors
///
/// `Error::Os { call: "open(/)", .. }` with the errno of `open(2)`.
pub(crate) fn check_fd_available() -> Result<()> {
    nix::fcntl::open(
        c"/",
        nix::fcntl::OFlag::O_PATH | nix::fcntl::OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .map(drop)
    .map_err(|errno| Error::os("open(/)", errno))
}

/// Kills and reaps a child for which no pidfd could be opened.
///
/// Signalling by pid is safe here: the child is ours and not yet reaped, so its pid cannot
/// have been recycled (only a foreign `waitpid(-1)` could reap it, which the runtime does
/// not support in the same process).
pub(crate) fn kill_unregistered(child: Pid) {
    let child = RawPid::from_raw(child.as_raw());
    let _ = kill(child, Signal::SIGKILL);
    while let Err(Errno::EINTR) = waitpid(child, None) {}
}

/// The descriptor at which a child started by [`spawn_keeping`] finds the fd it was given.
pub(crate) const KEPT_FD: RawFd = 3;

/// Starts the program at `path` with the arguments `argv` (`argv[0]` first) and the calling
/// process's environment plus `env` (`NAME=value`; an inherited entry of that name is left
/// out), through glibc's `posix_spawn(3)`. In the child, before the `execve`, `keep` is
/// duplicated onto fd [`KEPT_FD`] without close-on-exec
/// (`posix_spawn_file_actions_adddup2`; with `keep` already 3 it only clears the flag) and
/// every other fd from 3 up is closed (`posix_spawn_file_actions_addclosefrom_np`, glibc
/// 2.34), so only the standard streams and `keep` reach the new program; the signal mask is
/// emptied and `SIGPIPE` gets its default action back, as `std::process::Command` does.
///
/// glibc's child shares the parent's memory until the `execve` (`clone(CLONE_VM |
/// CLONE_VFORK)`), so no page table is copied, whatever the parent's size, and a failed
/// `execve` is reported here, with the child already reaped. Sound in a multi-threaded
/// process: between the clone and the exec the child runs only glibc's own code, with
/// signals blocked.
///
/// # Errors
///
/// `Error::Os { call: "posix_spawn", errno }`: the errno of the clone (`EAGAIN`, `ENOMEM`),
/// of a file action (`EBADF`, `EMFILE`) or of the `execve` (`ENOENT`, `EACCES`, `E2BIG`,
/// `ENOMEM`); [`Error::InvalidArgument`] when `env` has no `=` or an inherited environment
/// entry cannot be passed as a C string.
pub(crate) fn spawn_keeping(
    path: &CStr,
    argv: &[&CStr],
    env: &CStr,
    keep: BorrowedFd<'_>,
) -> Result<Pid> {
    let name_len = env
        .to_bytes()
        .iter()
        .position(|&b| b == b'=')
        .ok_or(Error::InvalidArgument(
            "spawn environment entry without '='",
        ))?;
    let name = &env.to_bytes()[..name_len];
    let mut inherited = Vec::new();
    for (key, value) in std::env::vars_os() {
        if key.as_bytes() == name {
            continue;
        }
        let mut entry = key.into_vec();
        entry.push(b'=');
        entry.extend_from_slice(value.as_bytes());
        inherited.push(
            CString::new(entry)
                .map_err(|_| Error::InvalidArgument("environment entry holds a NUL byte"))?,
        );
    }
    let mut envp: Vec<*mut libc::c_char> = inherited
        .iter()
        .map(|entry| entry.as_ptr().cast_mut())
        .chain([env.as_ptr().cast_mut(), std::ptr::null_mut()])
        .collect();
    let mut args: Vec<*mut libc::c_char> = argv
        .iter()
        .map(|arg| arg.as_ptr().cast_mut())
        .chain([std::ptr::null_mut()])
        .collect();
    let actions = SpawnFileActions::new()?;
    actions.dup2(keep.as_raw_fd(), KEPT_FD)?;
    actions.closefrom(KEPT_FD + 1)?;
    if keep.as_raw_fd() < KEPT_FD {
        // A standard stream's number: the copy on 3 is the one the child is told of.
        actions.close(keep.as_raw_fd())?;
    }
    let attr = SpawnAttr::new()?;
    attr.reset_signals()?;
    let mut pid: libc::pid_t = 0;
    // SAFETY: `pid` is a valid out-pointer; `path` is a C string; `actions` and `attr` were
    // initialised above and live until after the call; `args` and `envp` are null-terminated
    // arrays of pointers to C strings (`argv`, `inherited`, `env`) that outlive the call.
    // posix_spawn does not write through the array pointers despite their `*mut` type.
    let ret = unsafe {
        libc::posix_spawn(
            &raw mut pid,
            path.as_ptr(),
            actions.as_ptr(),
            attr.as_ptr(),
            args.as_mut_ptr(),
            envp.as_mut_ptr(),
        )
    };
    spawn_result(ret)?;
    Pid::from_raw(pid).ok_or(Error::os("posix_spawn", Errno::EINVAL))
}

/// The return value of a `posix_spawn*` call (0 or an errno) as a result.
fn spawn_result(ret: libc::c_int) -> Result<()> {
    if ret == 0 {
        Ok(())
    } else {
        Err(Error::os("posix_spawn", Errno::from_raw(ret)))
    }
}

/// A `posix_spawn_file_actions_t`, destroyed on drop.
struct SpawnFileActions(UnsafeCell<libc::posix_spawn_file_actions_t>);

impl SpawnFileActions {
    fn new() -> Result<SpawnFileActions> {
        let mut actions = MaybeUninit::<libc::posix_spawn_file_actions_t>::uninit();
        // SAFETY: `actions` is valid writable storage for the object being initialised.
        spawn_result(unsafe { libc::posix_spawn_file_actions_init(actions.as_mut_ptr()) })?;
        // SAFETY: `posix_spawn_file_actions_init` succeeded, so the object is initialised.
        Ok(SpawnFileActions(UnsafeCell::new(unsafe {
            actions.assume_init()
        })))
    }

    fn as_ptr(&self) -> *mut libc::posix_spawn_file_actions_t {
        self.0.get()
    }

    fn dup2(&self, fd: RawFd, to: RawFd) -> Result<()> {
        // SAFETY: the object is initialised and only this thread uses it.
        spawn_result(unsafe { libc::posix_spawn_file_actions_adddup2(self.as_ptr(), fd, to) })
    }

    fn close(&self, fd: RawFd) -> Result<()> {
        // SAFETY: as in `dup2`.
        spawn_result(unsafe { libc::posix_spawn_file_actions_addclose(self.as_ptr(), fd) })
    }

    fn closefrom(&self, from: RawFd) -> Result<()> {
        // SAFETY: as in `dup2`.
        spawn_result(unsafe { libc::posix_spawn_file_actions_addclosefrom_np(self.as_ptr(), from) })
    }
}

impl Drop for SpawnFileActions {
    fn drop(&mut self) {
        // SAFETY: the object was initialised by `new` and is destroyed once.
        unsafe { libc::posix_spawn_file_actions_destroy(self.as_ptr()) };
    }
}

/// A `posix_spawnattr_t`, destroyed on drop.
struct SpawnAttr(UnsafeCell<libc::posix_spawnattr_t>);

impl SpawnAttr {
    fn new() -> Result<SpawnAttr> {
        let mut attr = MaybeUninit::<libc::posix_spawnattr_t>::uninit();
        // SAFETY: `attr` is valid writable storage for the object being initialised.
        spawn_result(unsafe { libc::posix_spawnattr_init(attr.as_mut_ptr()) })?;
        // SAFETY: `posix_spawnattr_init` succeeded, so the object is initialised.
        Ok(SpawnAttr(UnsafeCell::new(unsafe { attr.assume_init() })))
    }

    fn as_ptr(&self) -> *mut libc::posix_spawnattr_t {
        self.0.get()
    }

    /// An empty signal mask and `SIGPIPE`'s default action in the child.
    fn reset_signals(&self) -> Result<()> {
        let empty = SigSet::empty();
        let mut sigpipe = SigSet::empty();
        sigpipe.add(Signal::SIGPIPE);
        let flags = libc::POSIX_SPAWN_SETSIGMASK | libc::POSIX_SPAWN_SETSIGDEF;
        // SAFETY: the object is initialised and only this thread uses it; the sets are
        // valid `sigset_t` values that glibc copies.
        unsafe {
            spawn_result(libc::posix_spawnattr_setsigmask(
                self.as_ptr(),
                empty.as_ref(),
            ))?;
            spawn_result(libc::posix_spawnattr_setsigdefault(
                self.as_ptr(),
                sigpipe.as_ref(),
            ))?;
            // The flags are `c_int`s that fit a `c_short`.
            spawn_result(libc::posix_spawnattr_setflags(
                self.as_ptr(),
                flags as libc::c_short,
            ))
        }
    }
}

impl Drop for SpawnAttr {
    fn drop(&mut self) {
        // SAFETY: the object was initialised by `new` and is destroyed once.
        unsafe { libc::posix_spawnattr_destroy(self.as_ptr()) };
    }
}
