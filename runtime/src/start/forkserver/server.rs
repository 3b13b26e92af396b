//! The fork server's own process: it receives start requests, forks each child, sends back
//! the child's pidfd and reaps its children; see [`super`] for the protocol.
#![allow(unsafe_code)]

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::wait::{Id, WaitPidFlag, waitid};
use nix::unistd::{ForkResult, getpid};

use super::protocol::{Reply, ServerBoot, readable};
use crate::error::{Error, Result};
use crate::os;
use crate::os::stdio::flush_std_streams;
use crate::start::bootstrap::child as boot_child;
use crate::start::bootstrap::wire::Build;
use crate::start::bootstrap::wire::{self, Kind};

/// One child of the server.
struct Forked {
    pidfd: OwnedFd,
}

/// The fork server's life; runs in the re-executed process, returns its exit code.
pub(crate) fn serve(sock: OwnedFd) -> i32 {
    match serve_loop(sock) {
        Ok(()) => 0,
        Err(error) => wire::refuse(&error),
    }
}

fn serve_loop(sock: OwnedFd) -> Result<()> {
    let (payload, fds) = wire::receive(sock.as_fd(), Kind::Server)?;
    let boot: ServerBoot = postcard::from_bytes(&payload)
        .map_err(|_| Error::Malformed("undecodable fork server bootstrap"))?;
    if boot.build != Build::current()? {
        return Err(Error::Malformed(
            "bootstrap comes from another build of the program",
        ));
    }
    let parent = fds.into_iter().next().ok_or(Error::Malformed(
        "fork server bootstrap lacks the parent's pidfd",
    ))?;
    if readable(parent.as_fd(), PollTimeout::ZERO)? {
        return Ok(());
    }
    let mut children: Vec<Forked> = Vec::new();
    let mut spare = Spare::default();
    let mut open = true;
    loop {
        if !open && children.is_empty() {
            return Ok(());
        }
        let (sock_ready, parent_ready, exited) = {
            let mut fds = Vec::with_capacity(children.len() + 2);
            fds.push(PollFd::new(
                sock.as_fd(),
                if open {
                    PollFlags::POLLIN
                } else {
                    PollFlags::empty()
                },
            ));
            fds.push(PollFd::new(parent.as_fd(), PollFlags::POLLIN));
            fds.extend(
                children
                    .iter()
                    .map(|c| PollFd::new(c.pidfd.as_fd(), PollFlags::POLLIN)),
            );
            match poll(&mut fds, PollTimeout::NONE) {
                Ok(_) | Err(Errno::EINTR) => {}
                Err(errno) => return Err(Error::os("poll", errno)),
            }
            let ready = |fd: &PollFd<'_>| fd.any().unwrap_or(false);
            let exited: Vec<bool> = fds[2..].iter().map(ready).collect();
            (open && ready(&fds[0]), ready(&fds[1]), exited)
        };
        if parent_ready {
            // The parent died: daemon children die with this process (their death signal),
            // the others go on as orphans, as under fork.
            return Ok(());
        }
        let mut index = 0;
        children.retain(|child| {
            let gone = exited.get(index).copied().unwrap_or(false);
            index += 1;
            if !gone {
                return true;
            }
            // Reap by pidfd: the exit status then reaches the parent through its pidfd.
            loop {
                match waitid(
                    Id::PIDFd(child.pidfd.as_fd()),
                    WaitPidFlag::WEXITED | WaitPidFlag::WNOHANG,
                ) {
                    Err(Errno::EINTR) => continue,
                    Ok(nix::sys::wait::WaitStatus::StillAlive) => return true,
                    _ => return false,
                }
            }
        });
        if sock_ready {
            match wire::receive(sock.as_fd(), Kind::Child) {
                Ok((payload, fds)) => {
                    let reply = fork_child(&sock, &parent, &mut spare, &mut children, payload, fds);
                    let (reply, pidfd) = match reply {
                        // The server's own pidfd of the child goes out: the parent receives
                        // a new fd for the same open file.
                        Ok(pid) => (Reply::Started { pid }, children.last().map(|c| &c.pidfd)),
                        Err(Error::Os { call, errno }) => (
                            Reply::Failed {
                                call: call.to_owned(),
                                errno: errno as i32,
                            },
                            None,
                        ),
                        Err(error) => return Err(error),
                    };
                    let bytes = postcard::to_allocvec(&reply).map_err(Error::Encode)?;
                    let fds: Vec<BorrowedFd<'_>> = pidfd.iter().map(AsFd::as_fd).collect();
                    if let Err(error) = wire::send(sock.as_fd(), Kind::Reply, &bytes, &fds) {
                        if !matches!(error, Error::Disconnected | Error::Os { .. }) {
                            return Err(error);
                        }
                        open = false;
                    }
                }
                Err(Error::Disconnected) => open = false,
                Err(error) => return Err(error),
            }
        }
    }
}

/// One fd the server holds in reserve, so that the pidfd of a child it just forked can
/// always be opened (a fork is not undone): when `pidfd_open` finds the fd table full, the
/// spare is closed and the call retried. The spare is taken again before the next fork, so
/// a fork that cannot be given a pidfd fails before it happens; while it is held, a fork
/// costs no system call for it.
#[derive(Debug, Default)]
struct Spare(Option<OwnedFd>);

impl Spare {
    /// Holds a spare fd if none is held.
    fn ensure(&mut self) -> Result<()> {
        if self.0.is_none() {
            self.0 = Some(os::pidfd::pidfd_open(getpid())?);
        }
        Ok(())
    }

    /// `pidfd_open(child)`, giving up the spare when the fd table is full.
    fn pidfd_open(&mut self, child: nix::unistd::Pid) -> Result<OwnedFd> {
        match os::pidfd::pidfd_open(child) {
            Err(Error::Os {
                errno: Errno::EMFILE | Errno::ENFILE,
                ..
            }) if self.0.is_some() => {
                self.0 = None;
                os::pidfd::pidfd_open(child)
            }
            other => other,
        }
    }
}

/// Forks one child for a request and returns its pid; its pidfd is the last of `children`,
/// where the server keeps it to reap the child.
fn fork_child(
    sock: &OwnedFd,
    parent: &OwnedFd,
    spare: &mut Spare,
    children: &mut Vec<Forked>,
    payload: Vec<u8>,
    fds: Vec<OwnedFd>,
) -> Result<i32> {
    spare.ensure()?;
    flush_std_streams();
    // SAFETY: the fork server is single-threaded (it never starts a thread), and the child
    // branch below ends in `_exit` without returning.
    match unsafe { crate::start::fork::fork_process() } {
        Err(errno) => Err(Error::os("fork", errno)),
        Ok(ForkResult::Child) => {
            // The child must not hold the server's fds (T45), except the parent's pidfd, which
            // becomes its own. They belong to the server's frames, which this branch never
            // returns to, so they are closed (or taken over) by number.
            let inherited = [sock.as_raw_fd()]
                .into_iter()
                .chain(spare.0.as_ref().map(AsRawFd::as_raw_fd))
                .chain(children.iter().map(|c| c.pidfd.as_raw_fd()));
            for fd in inherited {
                // SAFETY: each fd is open and owned by a value that is never used or dropped
                // in this process again: the branch ends in `_exit`.
                unsafe { libc::close(fd) };
            }
            // SAFETY: `parent` is open, and the server's value that owns it is never used or
            // dropped in this process again (the branch ends in `_exit`), so this is its only
            // owner from here on.
            let parent_pidfd = unsafe { OwnedFd::from_raw_fd(parent.as_raw_fd()) };
            let code = match boot_child::accept_parts(&payload, fds, Some(parent_pidfd)) {
                Ok(ready) => boot_child::run_child(ready),
                Err(error) => wire::refuse(&error),
            };
            flush_std_streams();
            // SAFETY: ends the forked child without returning into the server's loop.
            unsafe { libc::_exit(code) }
        }
        Ok(ForkResult::Parent { child }) => {
            drop(fds);
            let pidfd = match spare.pidfd_open(child) {
                Ok(pidfd) => pidfd,
                Err(error) => {
                    crate::start::fork::kill_unregistered(child);
                    return Err(error);
                }
            };
            children.push(Forked { pidfd });
            Ok(child.as_raw())
        }
    }
}
