//! The pre-`main` hook of a re-executed process: it finds the bootstrap socket named by
//! [`ENV`], and runs either the fork server or a child, then ends the process.
//!
//! # Safety
//!
//! The only `unsafe` here is the `link_section` attribute that puts the hook in
//! `.init_array` (the calls it makes before `main` are in `os::process`). The hook is a
//! function pointer in `.init_array`, so the dynamic loader calls it before
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
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::panic::catch_unwind;

use nix::errno::Errno;
use nix::sys::socket::MsgFlags;

use super::child::{accept_child, run_child};
use super::wire::{BOOTSTRAP_EXIT_CODE, ENV, Kind, refuse};
use crate::error::{Error, Result};
use crate::os;
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
    // Nothing after this point may run in a re-executed process (see `# Safety`).
    os::fork::exit_now(code)
}

#[used]
#[unsafe(link_section = ".init_array")]
static HOOK: extern "C" fn() = hook;

/// Removes [`ENV`] from the environment and wipes its bytes from the initial environment
/// block, which `/proc/<pid>/environ` shows even after `unsetenv` (T50).
fn scrub_marker() {
    os::process::scrub_env_before_main(c"PROCLIFE_BOOTSTRAP");
}

/// Takes ownership of the socket named by the environment variable.
fn claim(value: &OsStr) -> Result<OwnedFd> {
    let fd: RawFd = value
        .to_str()
        .and_then(|s| s.parse().ok())
        .filter(|&fd| fd > 2)
        .ok_or(Error::Malformed("bootstrap variable does not name an fd"))?;
    os::process::claim_inherited_socket(fd)
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
