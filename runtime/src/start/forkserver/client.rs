//! The parent's side of the fork server: start it, send it start requests, stop it.
#![forbid(unsafe_code)]

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags};
use nix::sys::signal::Signal;
use nix::sys::wait::{Id, WaitPidFlag, waitid};

use super::protocol::{Reply, ServerBoot, call_name};
use crate::children::child::Child;
use crate::children::registry;
use crate::children::status::{self, ServerRegion, StatusSlot};
use crate::error::{Error, Result};
use crate::os;
use crate::os::time::Deadline;
use crate::pid::Pid;
use crate::start::bootstrap::wire::{self, Build, ChildBoot, Death, Kind};
use crate::start::launch::TargetSlot;
use crate::start::launch::{ChildSpec, Launcher, export_target};
use crate::start::method::StartMethod;

/// Asks the fork server to fork each child.
#[derive(Debug)]
pub(crate) struct ForkServerLauncher;

/// The parent's handle on its server.
#[derive(Debug)]
struct Server {
    /// The process that started the server; a forked child of it must not use it.
    owner: Pid,
    pid: Pid,
    /// The server's pidfd, shared with the record of every child it forked (which reads
    /// whether the server still lives to report a lost exit).
    pidfd: Arc<OwnedFd>,
    sock: OwnedFd,
    /// The region of status cells the server mapped at its start.
    cells: ServerRegion,
}

/// Why a start request failed, and whether a child may have been forked for it (its status
/// cell may then be in use, and stays taken).
#[derive(Debug)]
struct Refused {
    error: Error,
    /// The server surely forked no child for the request: the request was never sent (or
    /// nothing of it was), or the server refused it with a well-formed [`Reply::Failed`].
    /// Unless the error is [`Error::ForkServerDied`], the request socket is then in step
    /// (the next reply read is the next request's). Otherwise the server may have forked a
    /// child, and part of its reply may still be queued (or still to come) on the socket:
    /// the server is of no further use.
    no_child: bool,
}

impl Refused {
    fn maybe_forked(error: Error) -> Refused {
        Refused {
            error,
            no_child: false,
        }
    }
}

static SERVER: Mutex<Option<Server>> = Mutex::new(None);

/// Whether this process (or an ancestor it was forked from) ever started a fork server.
static EVER_STARTED: AtomicBool = AtomicBool::new(false);

fn server() -> MutexGuard<'static, Option<Server>> {
    // The slot holds an `Option` that every path replaces in one assignment.
    SERVER.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Server {
    /// Re-executes the program as a fork server.
    fn start() -> Result<Server> {
        EVER_STARTED.store(true, Ordering::Release);
        registry::at_fork_child(forget_inherited);
        let parent = os::process::getpid();
        let me = os::pidfd::pidfd_open(parent)?;
        // Probe the kernel before anything depends on it.
        os::pidfd::pidfd_exit_status(me.as_fd())?;
        // The server maps the cells; the parent closes its fd once it is sent.
        let (cells, cells_fd) = status::fork_server_cells(parent)?;
        let payload = postcard::to_allocvec(&ServerBoot {
            build: Build::current()?,
            parent,
        })
        .map_err(Error::Encode)?;
        let spawned = crate::start::spawn::reexecute()?;
        let server = Server {
            owner: parent,
            pid: spawned.pid,
            pidfd: Arc::new(spawned.pidfd),
            sock: spawned.sock,
            cells,
        };
        let fds = [me.as_fd(), cells_fd.as_fd()];
        if let Err(error) = wire::send(server.sock.as_fd(), Kind::Server, &payload, &fds) {
            server.reap_dead();
            return Err(error);
        }
        Ok(server)
    }

    /// Whether the server has exited.
    fn dead(&self) -> Result<bool> {
        os::poll::ready(
            self.pidfd.as_fd(),
            PollFlags::POLLIN,
            &Deadline::after(Some(Duration::ZERO)),
        )
    }

    /// Kills the server (if it still runs) and reaps it.
    fn reap_dead(self) {
        let _ = os::pidfd::pidfd_send_signal(self.pidfd.as_fd(), Signal::SIGKILL as i32);
        while let Err(Errno::EINTR) = waitid(Id::PIDFd(self.pidfd.as_fd()), WaitPidFlag::WEXITED) {}
    }

    /// Sends one start request and returns the child's pid and pidfd.
    fn request(
        &self,
        payload: &[u8],
        fds: &[BorrowedFd<'_>],
    ) -> std::result::Result<(Pid, OwnedFd), Refused> {
        match wire::send_or_nothing(self.sock.as_fd(), Kind::Child, payload, fds) {
            Ok(()) => {}
            Err(wire::SendFailed {
                error:
                    Error::Disconnected
                    | Error::Os {
                        errno: Errno::EPIPE | Errno::ECONNRESET,
                        ..
                    },
                nothing_sent,
            }) => {
                // The server is gone; if nothing of the request reached it, no child.
                return Err(Refused {
                    error: Error::ForkServerDied,
                    no_child: nothing_sent,
                });
            }
            // Nothing of the request reached the server (refused before it was sent, or
            // the first `sendmsg` failed: `ENOBUFS`, `ENOMEM`, `ETOOMANYREFS`): no child,
            // and the socket is still in step.
            Err(wire::SendFailed {
                error,
                nothing_sent: true,
            }) => {
                return Err(Refused {
                    error,
                    no_child: true,
                });
            }
            Err(wire::SendFailed { error, .. }) => return Err(Refused::maybe_forked(error)),
        }
        self.reply()
            .map_err(Refused::maybe_forked)?
            .map_err(|error| Refused {
                error,
                no_child: true,
            })
    }

    /// Waits for the reply to a start request: the child's pid and pidfd, or (inner error)
    /// the server's refusal, for which it forked no child (or killed and reaped it).
    fn reply(&self) -> Result<Result<(Pid, OwnedFd)>> {
        // Wait for the answer or for the server's death, whichever comes first.
        loop {
            let mut fds = [
                PollFd::new(self.sock.as_fd(), PollFlags::POLLIN),
                PollFd::new(self.pidfd.as_fd(), PollFlags::POLLIN),
            ];
            os::poll::wait(&mut fds, &Deadline::after(None))?;
            if fds[0].any().unwrap_or(false) {
                break;
            }
            if fds[1].any().unwrap_or(false) {
                return Err(Error::ForkServerDied);
            }
        }
        let (payload, fds) = match wire::receive(self.sock.as_fd(), Kind::Reply) {
            Ok(reply) => reply,
            Err(Error::Disconnected) => return Err(Error::ForkServerDied),
            Err(error) => return Err(error),
        };
        let reply: Reply = postcard::from_bytes(&payload).map_err(|error| match error {
            // The one custom check of a reply: a started child's pid is positive.
            postcard::Error::SerdeDeCustom => Error::Malformed("fork server sent a bad pid"),
            _ => Error::Malformed("undecodable fork server reply"),
        })?;
        match reply {
            Reply::Started { pid } => {
                let pidfd = fds
                    .into_iter()
                    .next()
                    .ok_or(Error::Malformed("fork server sent no pidfd"))?;
                Ok(Ok((pid, pidfd)))
            }
            Reply::Failed { call, errno } => {
                Ok(Err(Error::os(call_name(&call), Errno::from_raw(errno))))
            }
        }
    }
}

impl Launcher for ForkServerLauncher {
    fn launch(&self, spec: &ChildSpec<'_>, target: &mut TargetSlot) -> Result<Arc<Child>> {
        let (key, args, arg_fds) = export_target(target, StartMethod::ForkServer)?;
        let parent = spec.parent;
        let mut guard = server();
        let running = ready_server(&mut guard, parent)?;
        // Under the server's lock, so that the cell is of the region this server maps.
        let slot = match StatusSlot::for_fork_server(parent) {
            Ok(slot) => slot,
            Err(error) => {
                *guard = Some(running);
                return Err(error);
            }
        };
        // Until the request reaches the server, no child can use the slot's cell: a start
        // that fails before gives it back.
        let payload = slot
            .cell_number(running.cells)
            .ok_or(Error::InvalidArgument("status slot without cell"))
            .and_then(|cell| {
                let boot = ChildBoot {
                    build: Build::current()?,
                    parent,
                    parent_name: registry::my_name(),
                    real_parent: running.pid,
                    name: spec.name.to_owned(),
                    identity: spec.identity.to_vec(),
                    daemon: spec.daemon,
                    death: Death::ParentDeathSignal,
                    key,
                    args,
                    join_threads: spec.join_threads,
                    method: crate::start::method::global_code(),
                    cell: Some(cell),
                };
                postcard::to_allocvec(&boot).map_err(Error::Encode)
            });
        let payload = match payload {
            Ok(payload) => payload,
            Err(error) => {
                *guard = Some(running);
                slot.recycle_on_drop();
                return Err(error);
            }
        };
        // Neither the parent's pidfd nor the slot is sent: the server has the one from its
        // bootstrap (the child takes the server's copy) and the cells mapped.
        let fds: Vec<BorrowedFd<'_>> = arg_fds.iter().map(AsFd::as_fd).collect();
        let (pid, pidfd) = match running.request(&payload, &fds) {
            Ok(started) => started,
            Err(refused) => {
                if refused.no_child {
                    slot.recycle_on_drop();
                }
                // Otherwise the cell stays taken: a child the server forked before it died
                // (or before its reply went wrong) may still write to it. And the server is
                // killed and forgotten as a dead one: a reply not read whole (a `poll` or
                // `recvmsg` error, fds truncated at `RLIMIT_NOFILE`, a malformed one) would
                // leave bytes on the socket that the next request would read as its reply,
                // and name another request's child with its pid.
                if refused.no_child && !matches!(refused.error, Error::ForkServerDied) {
                    *guard = Some(running);
                } else {
                    running.reap_dead();
                }
                return Err(refused.error);
            }
        };
        let server_pidfd = Arc::clone(&running.pidfd);
        *guard = Some(running);
        drop(guard);
        let record = Arc::new(Child::foreign(
            pid,
            parent,
            spec.daemon,
            pidfd,
            slot,
            server_pidfd,
        ));
        registry::lock().add(Arc::clone(&record));
        Ok(record)
    }
}

/// The calling process's running server, taken out of `guard` (the caller puts it back),
/// started now if there is none.
///
/// # Errors
///
/// [`Error::ForkServerDied`] when the server it had is dead (it is reaped and forgotten);
/// as `Server::start`.
fn ready_server(guard: &mut Option<Server>, parent: Pid) -> Result<Server> {
    if guard.as_ref().is_some_and(|s| s.owner != parent) {
        // Inherited through fork from the process that started it: not ours to use. The
        // fds are this process's copies; dropping them leaves the owner's server alone.
        *guard = None;
    }
    if let Some(running) = guard.take() {
        match running.dead() {
            Ok(false) => return Ok(running),
            Ok(true) => {
                running.reap_dead();
                return Err(Error::ForkServerDied);
            }
            Err(error) => {
                *guard = Some(running);
                return Err(error);
            }
        }
    }
    Server::start()
}

/// Stops this process's fork server, if it started one: closes the request socket, and
/// waits until the server has exited, which it does once every child it forked has
/// exited. Join the children first.
///
/// The server also ends by itself when this process exits; this is for programs (and
/// tests) that want it gone earlier. The next start under
/// [`StartMethod::ForkServer`] launches a new one.
///
/// # Errors
///
/// `Error::Os` when the wait fails.
pub fn stop_fork_server() -> Result<()> {
    let mut guard = server();
    let Some(running) = guard.take() else {
        return Ok(());
    };
    if running.owner != os::process::getpid() {
        return Ok(());
    }
    let Server {
        pidfd, sock, owner, ..
    } = running;
    drop(sock);
    loop {
        match waitid(Id::PIDFd(pidfd.as_fd()), WaitPidFlag::WEXITED) {
            Ok(_) | Err(Errno::ECHILD) => {
                status::retire_fork_server_cells(owner);
                return Ok(());
            }
            Err(Errno::EINTR) => continue,
            Err(errno) => return Err(Error::os("waitid", errno)),
        }
    }
}

/// Drops, in a freshly forked child, the parent's fork server handle: the child's copy of
/// the request socket would otherwise keep the server from seeing the parent close it.
///
/// Uses `try_lock`: only a parent that forked while another thread was starting a child
/// through the server (the `unsafe` threaded-fork opt-in) leaves the lock held, and then the
/// copy is left alone rather than deadlocking the child.
fn forget_inherited() {
    // Read-only when no server was ever started: locking the mutex writes to its page, a
    // copy-on-write fault in every forked child.
    if !EVER_STARTED.load(Ordering::Acquire) {
        return;
    }
    let mut guard = match SERVER.try_lock() {
        Ok(guard) => guard,
        Err(std::sync::TryLockError::Poisoned(poisoned)) => poisoned.into_inner(),
        Err(std::sync::TryLockError::WouldBlock) => return,
    };
    if guard
        .as_ref()
        .is_some_and(|s| s.owner != os::process::getpid())
    {
        *guard = None;
    }
}

/// The pid of this process's fork server, if one runs.
pub fn fork_server_pid() -> Option<Pid> {
    let guard = server();
    guard
        .as_ref()
        .filter(|s| s.owner == os::process::getpid())
        .map(|s| s.pid)
}
