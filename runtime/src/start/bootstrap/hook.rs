//! The pre-`main` hook of a re-executed process: it finds the bootstrap socket named by
//! [`ENV`], and runs either the fork server or a child, then ends the process.
//!
//! # Safety
//!
//! The hook is a function pointer in `.init_array`, so the dynamic loader calls it before
//! `main` in every program that links proclife. In a process without [`ENV`] it returns at
//! once having only read the environment. In a re-executed process it never returns: it
//! runs the bootstrap and the target, then ends the process with `_exit`, so `main` (and a
//! test harness's `main`) never runs there. Before `main` the process is single-threaded,
//! which makes removing the variable sound; the standard library needs no initialisation
//! for what the child does (allocation, I/O, threads, panics with their default hook). What
//! `main`'s runtime start-up would have done and the target may notice: SIGPIPE is set to
//! ignored here as Rust's start-up does, and the main thread has no stack-overflow message.
#![allow(unsafe_code)]

use std::ffi::OsStr;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::panic::catch_unwind;

use nix::errno::Errno;
use nix::sys::socket::MsgFlags;

use super::child::{accept_child, run_child};
use super::wire::{BOOTSTRAP_EXIT_CODE, ENV, Kind, refuse};
use crate::error::{Error, Result};
use crate::os::stdio::flush_std_streams;
use crate::start::forkserver::server;

/// The hook in `.init_array`; see the module's `# Safety`.
extern "C" fn hook() {
    let Some(value) = std::env::var_os(ENV) else {
        return;
    };
    scrub_marker();
    let code = catch_unwind(|| match claim(&value) {
        Ok(sock) => match peek_kind(&sock) {
            Some(Kind::Server) => server::serve(sock),
            _ => boot_child(sock),
        },
        Err(error) => refuse(&error),
    })
    .unwrap_or(BOOTSTRAP_EXIT_CODE);
    flush_std_streams();
    // SAFETY: ends the process at once; nothing after this point may run in a re-executed
    // process (see the module's `# Safety`).
    unsafe { libc::_exit(code) }
}

#[used]
#[unsafe(link_section = ".init_array")]
static HOOK: extern "C" fn() = hook;

/// Removes [`ENV`] from the environment and wipes its bytes from the initial environment
/// block, which `/proc/<pid>/environ` shows even after `unsetenv` (T50).
fn scrub_marker() {
    let name = c"PROCLIFE_BOOTSTRAP";
    // SAFETY: constructors run before `main`, while the process has a single thread, so no
    // other thread reads or changes the environment meanwhile. `getenv` returns a pointer
    // to the value inside the `NAME=value` string that the kernel placed in the initial
    // environment block; after `unsetenv` nothing refers to that string any more, so its
    // bytes (from the name's start to the value's terminating NUL) may be overwritten.
    unsafe {
        let value = libc::getenv(name.as_ptr());
        libc::unsetenv(name.as_ptr());
        if !value.is_null() {
            let start = value.sub(name.to_bytes().len() + 1);
            let len = name.to_bytes().len() + 1 + libc::strlen(value);
            std::ptr::write_bytes(start, 0, len);
        }
    }
}

/// Takes ownership of the socket named by the environment variable.
fn claim(value: &OsStr) -> Result<OwnedFd> {
    let fd: RawFd = value
        .to_str()
        .and_then(|s| s.parse().ok())
        .filter(|&fd| fd > 2)
        .ok_or(Error::Malformed("bootstrap variable does not name an fd"))?;
    // SAFETY: `fstat` on any integer is harmless; it only tells whether the fd is open.
    let mut stat = unsafe { std::mem::zeroed::<libc::stat>() };
    // SAFETY: `stat` is a valid, writable `struct stat`.
    if unsafe { libc::fstat(fd, &mut stat) } != 0 || stat.st_mode & libc::S_IFMT != libc::S_IFSOCK {
        return Err(Error::Malformed("bootstrap fd is not a socket"));
    }
    // SAFETY: before `main` nothing in the process owns descriptors above 2; the parent
    // made exactly this one survive the exec, and it is claimed once.
    let sock = unsafe { OwnedFd::from_raw_fd(fd) };
    nix::fcntl::fcntl(
        &sock,
        nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
    )
    .map_err(|errno| Error::os("fcntl", errno))?;
    Ok(sock)
}

/// The kind of the first message, without consuming it.
fn peek_kind(sock: &OwnedFd) -> Option<Kind> {
    let mut header = [0u8; 16];
    let got = loop {
        match nix::sys::socket::recv(
            sock.as_raw_fd(),
            &mut header,
            MsgFlags::MSG_PEEK | MsgFlags::MSG_WAITALL,
        ) {
            Err(Errno::EINTR) => continue,
            other => break other.ok()?,
        }
    };
    (got == 16
        && u32::from_le_bytes([header[12], header[13], header[14], header[15]])
            == Kind::Server as u32)
        .then_some(Kind::Server)
}

/// A re-executed child's life: receive, check, become the child, run, exit code.
fn boot_child(sock: OwnedFd) -> i32 {
    let ready = match accept_child(sock.as_fd()) {
        Ok(ready) => ready,
        Err(error) => return refuse(&error),
    };
    drop(sock);
    run_child(ready)
}
