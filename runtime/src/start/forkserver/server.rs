//! The fork server's own process: it receives start requests, forks each child, sends back
//! the child's pidfd and reaps its children; see [`super`] for the protocol.
#![forbid(unsafe_code)]

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::time::Duration;

use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags};
use nix::sys::wait::{Id, WaitPidFlag, waitid};

use super::protocol::{Reply, ServerBoot};
use crate::children::status;
use crate::error::{Error, Result};
use crate::os;
use crate::os::fork::{ForkPermit, fork_with, kill_unregistered};
use crate::os::time::Deadline;
use crate::pid::Pid;
use crate::start::bootstrap::child as boot_child;
use crate::start::bootstrap::wire::Build;
use crate::start::bootstrap::wire::{self, Kind};

/// One child of the server.
struct Forked {
    pidfd: OwnedFd,
}

/// What the server owns: each fork hands it to the child, which drops what it must not keep
/// (T45) and takes the parent's pidfd, and gives it back to the server.
struct ServerFds {
    /// The request socket.
    sock: OwnedFd,
    /// The parent's pidfd.
    parent: OwnedFd,
    /// `/proc/self/task`, whose link count is checked before each fork: the server must be
    /// single-threaded.
    task: os::procfs::TaskDir,
    spare: Spare,
    children: Vec<Forked>,
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
    let mut fds = fds.into_iter();
    let (Some(parent), Some(cells)) = (fds.next(), fds.next()) else {
        return Err(Error::Malformed(
            "fork server bootstrap lacks the parent's pidfd or the status cells",
        ));
    };
    // Mapped once for every child to come; the mapping holds the memfd.
    status::serve_cells(&cells)?;
    drop(cells);
    // What every child would otherwise do for itself, once per child: look up its entry
    // point among the registered keys, and set up the argument decoder's thread-locals.
    crate::start::entry::index_entries();
    crate::start::pass::warm_thread_tables();
    if os::poll::ready(
        parent.as_fd(),
        PollFlags::POLLIN,
        &Deadline::after(Some(Duration::ZERO)),
    )? {
        return Ok(());
    }
    let mut server = ServerFds {
        sock,
        parent,
        task: os::procfs::TaskDir::open()?,
        spare: Spare::default(),
        children: Vec::new(),
    };
    let mut open = true;
    loop {
        if !open && server.children.is_empty() {
            return Ok(());
        }
        let (sock_ready, parent_ready, exited) = {
            let mut fds = Vec::with_capacity(server.children.len() + 2);
            fds.push(PollFd::new(
                server.sock.as_fd(),
                if open {
                    PollFlags::POLLIN
                } else {
                    PollFlags::empty()
                },
            ));
            fds.push(PollFd::new(server.parent.as_fd(), PollFlags::POLLIN));
            fds.extend(
                server
                    .children
                    .iter()
                    .map(|c| PollFd::new(c.pidfd.as_fd(), PollFlags::POLLIN)),
            );
            os::poll::wait(&mut fds, &Deadline::after(None))?;
            let ready = |fd: &PollFd<'_>| fd.any().unwrap_or(false);
            let exited: Vec<bool> = fds[2..].iter().map(ready).collect();
            (open && ready(&fds[0]), ready(&fds[1]), exited)
        };
        if parent_ready {
            // The parent died: daemon server.children die with this process (their death signal),
            // the others go on as orphans, as under fork.
            return Ok(());
        }
        os::poll::retain_by_ready(&mut server.children, &exited, false, |child, gone| {
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
            match wire::receive(server.sock.as_fd(), Kind::Child) {
                Ok((payload, fds)) => {
                    let reply;
                    (server, reply) = fork_child(server, payload, fds);
                    let (reply, pidfd) = match reply {
                        // The server's own pidfd of the child goes out: the parent receives
                        // a new fd for the same open file.
                        Ok(pid) => (
                            Reply::Started { pid },
                            server.children.last().map(|c| &c.pidfd),
                        ),
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
                    if let Err(error) = wire::send(server.sock.as_fd(), Kind::Reply, &bytes, &fds) {
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
            self.0 = Some(os::pidfd::pidfd_open(os::process::getpid())?);
        }
        Ok(())
    }

    /// `pidfd_open(child)`, giving up the spare when the fd table is full.
    fn pidfd_open(&mut self, child: Pid) -> Result<OwnedFd> {
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

/// Forks one child for a request and returns its pid; its pidfd is the last of
/// `server.children`, where the server keeps it to reap the child.
fn fork_child(
    mut server: ServerFds,
    payload: Vec<u8>,
    fds: Vec<OwnedFd>,
) -> (ServerFds, Result<Pid>) {
    if let Err(error) = server.spare.ensure() {
        return (server, Err(error));
    }
    let permit = match ForkPermit::if_never_threaded().map_or_else(
        || ForkPermit::if_single_threaded(&server.task),
        |p| Ok(Ok(p)),
    ) {
        Ok(Ok(permit)) => permit,
        Ok(Err(threads)) => return (server, Err(Error::ThreadedFork { threads })),
        Err(error) => return (server, Err(error)),
    };
    // Decoded here, where the decoder's code is mapped and the heap is the server's own; a
    // payload that does not decode is refused by the child, as any bad bootstrap is.
    let boot = boot_child::decode_boot(&payload);
    drop(payload);
    let ((mut server, fds), forked) = fork_with(permit, (server, fds), |(server, fds)| {
        // The child must not hold the server's fds (T45), except the parent's pidfd, which
        // becomes its own: the child owns them all here, and closes the others before it
        // runs anything.
        let ServerFds {
            sock,
            parent,
            task,
            spare,
            children,
        } = server;
        drop((sock, task, spare, children));
        match boot_child::accept_boot(boot, fds, Some(parent)) {
            Ok(ready) => boot_child::run_child(ready),
            Err(error) => wire::refuse(&error),
        }
    });
    drop(fds);
    let child = match forked {
        Ok(child) => child,
        Err(errno) => return (server, Err(Error::os("fork", errno))),
    };
    // `fork` gives the parent a positive pid.
    let Some(child) = Pid::from_nix(child) else {
        return (server, Err(Error::os("fork", Errno::EINVAL)));
    };
    match server.spare.pidfd_open(child) {
        Ok(pidfd) => {
            server.children.push(Forked { pidfd });
            (server, Ok(child))
        }
        Err(error) => {
            kill_unregistered(child);
            (server, Err(error))
        }
    }
}
