//! The forkserver start method: one server process per parent, started by re-execution
//! while nothing of the parent's threads can leak into it, forks every child on request.
//!
//! The parent talks to its server over a socket pair. A start request is a child bootstrap
//! message (as for spawn), fds included; the server forks, and the child checks the message
//! and runs the entry point exactly as a spawned child does, except that the parent's pidfd
//! is not in the request: it travels once, with the server's bootstrap, and every forked
//! child takes the server's copy (one open file, shared by server and children; nobody
//! changes its flags). The server opens the child's pidfd and sends it back with
//! `SCM_RIGHTS`, so the parent polls and signals the child by pidfd like any other; the
//! server reaps the child, and the parent reads the exit status with
//! `ioctl(PIDFD_GET_INFO, PIDFD_INFO_EXIT)` (Linux 6.15, checked when the server starts:
//! [`Error::Unsupported`] before).
//!
//! The server is single-threaded, so its forks are sound. It dies with its parent: it
//! watches the parent's pidfd (not `PR_SET_PDEATHSIG`, which follows the parent *thread*
//! that happened to start it), and its daemon children carry `PR_SET_PDEATHSIG` towards the
//! server, so they die with it (T27). When the parent closes the socket (at
//! [`stop_fork_server`]) the server waits for its remaining children, then exits.
//!
//! Server death (T32): a start that finds the server dead, or sees it die during the
//! request, fails with [`Error::ForkServerDied`] and forgets it; the next start launches a
//! new server. Children that outlive a dead server are orphans that the server can no
//! longer reap: their daemon ones are killed by their death signal, and a child whose exit
//! nobody reaped is reported with exit code 255, as CPython does.
#![allow(unsafe_code)]

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::Signal;
use nix::sys::wait::{Id, WaitPidFlag, waitid};
use nix::unistd::{ForkResult, getpid};
use serde::{Deserialize, Serialize};

use super::bootstrap::{self, Build, ChildBoot, Death, Kind};
use super::{ChildSpec, Launcher, StartMethod, Threads, flush_std_streams};
use crate::child::Child;
use crate::error::{Error, Result};
use crate::process::{Pid, TargetSlot};
use crate::registry;
use crate::status::StatusSlot;
use crate::sys;

/// Asks the fork server to fork each child.
#[derive(Debug)]
pub(super) struct ForkServerLauncher;

/// What a fork server needs besides its parent's pidfd.
#[derive(Debug, Serialize, Deserialize)]
struct ServerBoot {
    build: Build,
    parent: i32,
}

/// The parent's handle on its server.
#[derive(Debug)]
struct Server {
    /// The process that started the server; a forked child of it must not use it.
    owner: i32,
    pid: Pid,
    pidfd: OwnedFd,
    sock: OwnedFd,
}

static SERVER: Mutex<Option<Server>> = Mutex::new(None);

/// Whether this process (or an ancestor it was forked from) ever started a fork server.
static EVER_STARTED: AtomicBool = AtomicBool::new(false);

fn server() -> MutexGuard<'static, Option<Server>> {
    // The slot holds an `Option` that every path replaces in one assignment.
    SERVER.lock().unwrap_or_else(PoisonError::into_inner)
}

fn readable(fd: BorrowedFd<'_>, timeout: PollTimeout) -> Result<bool> {
    loop {
        let mut fds = [PollFd::new(fd, PollFlags::POLLIN)];
        match poll(&mut fds, timeout) {
            Ok(n) => return Ok(n > 0),
            Err(Errno::EINTR) => continue,
            Err(errno) => return Err(Error::os("poll", errno)),
        }
    }
}

impl Server {
    /// Re-executes the program as a fork server.
    fn start() -> Result<Server> {
        EVER_STARTED.store(true, Ordering::Release);
        let parent = getpid();
        let me = sys::pidfd_open(parent)?;
        // Probe the kernel before anything depends on it.
        sys::pidfd_exit_status(me.as_fd())?;
        let payload = postcard::to_allocvec(&ServerBoot {
            build: Build::current()?,
            parent: parent.as_raw(),
        })
        .map_err(Error::Encode)?;
        let spawned = super::spawn::reexecute()?;
        let server = Server {
            owner: parent.as_raw(),
            pid: spawned.pid,
            pidfd: spawned.pidfd,
            sock: spawned.sock,
        };
        if let Err(error) =
            bootstrap::send(server.sock.as_fd(), Kind::Server, &payload, &[me.as_fd()])
        {
            server.reap_dead();
            return Err(error);
        }
        Ok(server)
    }

    /// Whether the server has exited.
    fn dead(&self) -> Result<bool> {
        readable(self.pidfd.as_fd(), PollTimeout::ZERO)
    }

    /// Kills the server (if it still runs) and reaps it.
    fn reap_dead(self) {
        let _ = sys::pidfd_send_signal(self.pidfd.as_fd(), Signal::SIGKILL as i32);
        while let Err(Errno::EINTR) = waitid(Id::PIDFd(self.pidfd.as_fd()), WaitPidFlag::WEXITED) {}
    }

    /// Sends one start request and returns the child's pid and pidfd.
    fn request(&self, payload: &[u8], fds: &[BorrowedFd<'_>]) -> Result<(Pid, OwnedFd)> {
        match bootstrap::send(self.sock.as_fd(), Kind::Child, payload, fds) {
            Ok(()) => {}
            Err(Error::Disconnected) => return Err(Error::ForkServerDied),
            Err(Error::Os {
                errno: Errno::EPIPE | Errno::ECONNRESET,
                ..
            }) => return Err(Error::ForkServerDied),
            Err(error) => return Err(error),
        }
        // Wait for the answer or for the server's death, whichever comes first.
        loop {
            let mut fds = [
                PollFd::new(self.sock.as_fd(), PollFlags::POLLIN),
                PollFd::new(self.pidfd.as_fd(), PollFlags::POLLIN),
            ];
            match poll(&mut fds, PollTimeout::NONE) {
                Ok(_) | Err(Errno::EINTR) => {}
                Err(errno) => return Err(Error::os("poll", errno)),
            }
            if fds[0].any().unwrap_or(false) {
                break;
            }
            if fds[1].any().unwrap_or(false) {
                return Err(Error::ForkServerDied);
            }
        }
        let (payload, fds) = match bootstrap::receive(self.sock.as_fd(), Kind::Reply) {
            Ok(reply) => reply,
            Err(Error::Disconnected) => return Err(Error::ForkServerDied),
            Err(error) => return Err(error),
        };
        let reply: Reply = postcard::from_bytes(&payload)
            .map_err(|_| Error::Malformed("undecodable fork server reply"))?;
        match reply {
            Reply::Started { pid } => {
                let pid =
                    Pid::from_raw(pid).ok_or(Error::Malformed("fork server sent a bad pid"))?;
                let pidfd = fds
                    .into_iter()
                    .next()
                    .ok_or(Error::Malformed("fork server sent no pidfd"))?;
                Ok((pid, pidfd))
            }
            Reply::Failed { call, errno } => {
                Err(Error::os(call_name(&call), Errno::from_raw(errno)))
            }
        }
    }
}

/// The server's answer to a start request.
#[derive(Debug, Serialize, Deserialize)]
enum Reply {
    /// The child runs; its pidfd comes with the message.
    Started { pid: i32 },
    /// The fork (or the pidfd) failed with this errno.
    Failed { call: String, errno: i32 },
}

fn call_name(call: &str) -> &'static str {
    match call {
        "fork" => "fork",
        "pidfd_open" => "pidfd_open",
        _ => "fork server",
    }
}

impl Launcher for ForkServerLauncher {
    fn launch(
        &self,
        spec: &ChildSpec<'_>,
        target: &mut TargetSlot,
        _threads: Threads,
    ) -> Result<Arc<Child>> {
        let (key, args, arg_fds) = super::export_target(target, StartMethod::ForkServer)?;
        let slot = StatusSlot::new_shared()?;
        let parent = getpid();
        let mut guard = server();
        if guard.as_ref().is_some_and(|s| s.owner != parent.as_raw()) {
            // Inherited through fork from the process that started it: not ours to use. The
            // fds are this process's copies; dropping them leaves the owner's server alone.
            *guard = None;
        }
        if let Some(running) = guard.take() {
            if running.dead()? {
                running.reap_dead();
                return Err(Error::ForkServerDied);
            }
            *guard = Some(running);
        }
        let running = match guard.take() {
            Some(running) => running,
            None => Server::start()?,
        };
        let boot = ChildBoot {
            build: Build::current()?,
            parent: parent.as_raw(),
            parent_name: registry::me().0,
            real_parent: running.pid.as_raw(),
            name: spec.name.to_owned(),
            identity: spec.identity.to_vec(),
            daemon: spec.daemon,
            death: Death::ParentDeathSignal,
            key,
            args,
            join_threads: spec.join_threads,
            method: super::global_code(),
        };
        let payload = postcard::to_allocvec(&boot).map_err(Error::Encode)?;
        let slot_fd = slot
            .fd()
            .ok_or(Error::InvalidArgument("status slot without fd"))?;
        // The parent's pidfd is not sent: the server has one from its bootstrap, and the
        // child takes the server's copy.
        let mut fds: Vec<BorrowedFd<'_>> = Vec::with_capacity(arg_fds.len() + 1);
        fds.push(slot_fd);
        fds.extend(arg_fds.iter().map(AsFd::as_fd));
        let (pid, pidfd) = match running.request(&payload, &fds) {
            Ok(started) => started,
            Err(Error::ForkServerDied) => {
                running.reap_dead();
                return Err(Error::ForkServerDied);
            }
            Err(error) => {
                *guard = Some(running);
                return Err(error);
            }
        };
        let server_pidfd = running
            .pidfd
            .try_clone()
            .map_err(|e| Error::os("fcntl(F_DUPFD_CLOEXEC)", bootstrap::io_errno(&e)));
        *guard = Some(running);
        drop(guard);
        let server_pidfd = match server_pidfd {
            Ok(fd) => fd,
            Err(error) => {
                let _ = sys::pidfd_send_signal(pidfd.as_fd(), Signal::SIGKILL as i32);
                return Err(error);
            }
        };
        let record = Arc::new(Child::foreign(
            pid,
            parent.as_raw(),
            spec.daemon,
            pidfd,
            slot,
            server_pidfd,
        ));
        registry::lock().add(Arc::clone(&record));
        Ok(record)
    }
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
    if running.owner != getpid().as_raw() {
        return Ok(());
    }
    let Server { pidfd, sock, .. } = running;
    drop(sock);
    loop {
        match waitid(Id::PIDFd(pidfd.as_fd()), WaitPidFlag::WEXITED) {
            Ok(_) | Err(Errno::ECHILD) => return Ok(()),
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
pub(super) fn forget_inherited() {
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
    if guard.as_ref().is_some_and(|s| s.owner != getpid().as_raw()) {
        *guard = None;
    }
}

/// The pid of this process's fork server, if one runs.
pub fn fork_server_pid() -> Option<Pid> {
    let guard = server();
    guard
        .as_ref()
        .filter(|s| s.owner == getpid().as_raw())
        .map(|s| s.pid)
}

/// One child of the server.
struct Forked {
    pidfd: OwnedFd,
}

/// The fork server's life; runs in the re-executed process, returns its exit code.
pub(super) fn serve(sock: OwnedFd) -> i32 {
    match serve_loop(sock) {
        Ok(()) => 0,
        Err(error) => bootstrap::refuse(&error),
    }
}

fn serve_loop(sock: OwnedFd) -> Result<()> {
    let (payload, fds) = bootstrap::receive(sock.as_fd(), Kind::Server)?;
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
            match bootstrap::receive(sock.as_fd(), Kind::Child) {
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
                    if let Err(error) = bootstrap::send(sock.as_fd(), Kind::Reply, &bytes, &fds) {
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
            self.0 = Some(sys::pidfd_open(getpid())?);
        }
        Ok(())
    }

    /// `pidfd_open(child)`, giving up the spare when the fd table is full.
    fn pidfd_open(&mut self, child: nix::unistd::Pid) -> Result<OwnedFd> {
        match sys::pidfd_open(child) {
            Err(Error::Os {
                errno: Errno::EMFILE | Errno::ENFILE,
                ..
            }) if self.0.is_some() => {
                self.0 = None;
                sys::pidfd_open(child)
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
    match unsafe { super::fork::fork_process() } {
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
            let code = match bootstrap::accept_parts(&payload, fds, Some(parent_pidfd)) {
                Ok(ready) => bootstrap::run_child(ready),
                Err(error) => bootstrap::refuse(&error),
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
                    super::fork::kill_unregistered(child);
                    return Err(error);
                }
            };
            children.push(Forked { pidfd });
            Ok(child.as_raw())
        }
    }
}
