//! The bootstrap of a re-executed process: the message its parent sends over an inherited
//! socket, and the hook that receives it before `main`.
//!
//! A process started by [`StartMethod::Spawn`](crate::StartMethod::Spawn), and the fork
//! server of [`StartMethod::ForkServer`](crate::StartMethod::ForkServer), is a fresh
//! `execve` of `/proc/self/exe`. Its environment holds [`ENV`] = the number of one
//! inherited socket (the only fd besides 0, 1 and 2 that survives the exec, T45); the
//! number is useless without the socket, and the variable is removed before any user code
//! runs (T50). Everything else comes over the socket: a fixed header (magic, version,
//! kind, payload length, fd count) carrying the fds as `SCM_RIGHTS`, then a postcard
//! payload. The receiver checks the magic, the version, the fd count (received with
//! `MSG_CMSG_CLOEXEC`, `MSG_CTRUNC` refused), a payload bound, that the sender runs the
//! very same executable file (device, inode, size, modification time of `/proc/self/exe`),
//! and that the entry key is registered. Anything else is refused: the process prints the
//! reason and exits with [`BOOTSTRAP_EXIT_CODE`] without running user code (T40).
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

use std::io::{IoSlice, IoSliceMut};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::MetadataExt;
use std::panic::catch_unwind;
use std::sync::OnceLock;

use nix::errno::Errno;
use nix::sys::signal::{SigHandler, Signal, raise, signal};
use nix::sys::socket::{ControlMessage, ControlMessageOwned, MsgFlags, recv, recvmsg, sendmsg};
use serde::{Deserialize, Serialize};

use super::entry;
use super::pass::MAX_FDS;
use crate::error::{Error, Result};
use crate::process::Pid;
use crate::registry;
use crate::status::StatusSlot;

/// The environment variable that marks a re-executed process: the number of its bootstrap
/// socket.
pub const ENV: &str = "PROCLIFE_BOOTSTRAP";

/// The argument a re-executed process gets, so that a program whose bootstrap hook was
/// not linked in stops at its argument parser instead of running as itself.
pub(crate) const ARG: &str = "--proclife-bootstrap";

/// The exit code of a re-executed process that refused its bootstrap message.
pub const BOOTSTRAP_EXIT_CODE: i32 = 125;

const MAGIC: [u8; 8] = *b"PROCLIFE";
/// The protocol version; bumped on any change of the header or the payload.
const VERSION: u32 = 1;
const HEADER_LEN: usize = 24;
/// The largest payload accepted (the target's arguments included).
const MAX_PAYLOAD: u32 = 64 << 20;

/// What a bootstrap message asks the process to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub(crate) enum Kind {
    /// A child that runs an entry point.
    Child = 1,
    /// A fork server.
    Server = 2,
    /// A fork server's answer to a start request.
    Reply = 3,
}

/// The identity of the running executable: sender and receiver must match.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Build {
    dev: u64,
    ino: u64,
    size: u64,
    mtime: i64,
    mtime_nsec: i64,
}

/// The running executable's identity, taken once: a running executable cannot be written
/// to (`ETXTBSY`), and replacing its path gives a new inode that `/proc/self/exe` does not
/// follow, so the identity is constant for the life of the process. A forked child inherits
/// the cache, and it is right there too: the child runs the same executable.
static BUILD: OnceLock<Build> = OnceLock::new();

impl Build {
    /// `stat("/proc/self/exe")`, once per process (see [`BUILD`]).
    pub(crate) fn current() -> Result<Build> {
        if let Some(build) = BUILD.get() {
            return Ok(*build);
        }
        let build = Self::read()?;
        Ok(*BUILD.get_or_init(|| build))
    }

    fn read() -> Result<Build> {
        let meta = std::fs::metadata("/proc/self/exe")
            .map_err(|e| Error::os("stat(/proc/self/exe)", io_errno(&e)))?;
        Ok(Build {
            dev: meta.dev(),
            ino: meta.ino(),
            size: meta.size(),
            mtime: meta.mtime(),
            mtime_nsec: meta.mtime_nsec(),
        })
    }
}

pub(crate) fn io_errno(error: &std::io::Error) -> Errno {
    error.raw_os_error().map_or(Errno::EIO, Errno::from_raw)
}

/// How a daemon child makes sure it dies with its parent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Death {
    /// `PR_SET_PDEATHSIG` towards the real parent (a process's main thread, or the
    /// single-threaded fork server), re-checked with `getppid()`.
    ParentDeathSignal,
    /// A thread that waits on the parent's pidfd: the parent started the child from a
    /// thread that may exit before the process does, and `PR_SET_PDEATHSIG` follows the
    /// thread (T09).
    WatchParent,
}

/// Everything a re-executed child needs besides its fds.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct ChildBoot {
    pub(crate) build: Build,
    /// The process that started the child (for a fork server's child: the server's client).
    pub(crate) parent: i32,
    pub(crate) parent_name: String,
    /// The real parent: the starting process under spawn, the server under forkserver.
    pub(crate) real_parent: i32,
    pub(crate) name: String,
    pub(crate) identity: Vec<u64>,
    pub(crate) daemon: bool,
    pub(crate) death: Death,
    pub(crate) key: String,
    pub(crate) args: Vec<u8>,
    /// Whether the child waits for its other threads when its target is done.
    pub(crate) join_threads: bool,
    /// The parent's global start-method setting (0: unset), which the child takes over.
    pub(crate) method: u8,
}

/// The fds of a child's bootstrap, in this order: the status slot, the parent's pidfd, then
/// the arguments' fds. A fork server's request leaves out the parent's pidfd: the server
/// holds one from its own bootstrap, and its forked child takes that.
pub(crate) const CHILD_FIXED_FDS: usize = 2;

/// Sends one message: the header with `fds` attached, then the payload.
pub(crate) fn send(
    sock: BorrowedFd<'_>,
    kind: Kind,
    payload: &[u8],
    fds: &[BorrowedFd<'_>],
) -> Result<()> {
    if fds.len() > MAX_FDS + CHILD_FIXED_FDS {
        return Err(Error::InvalidArgument(
            "too many fds for one bootstrap message",
        ));
    }
    let len = u32::try_from(payload.len())
        .ok()
        .filter(|&len| len <= MAX_PAYLOAD)
        .ok_or(Error::FrameTooLarge {
            len: payload.len() as u64,
            max: u64::from(MAX_PAYLOAD),
        })?;
    let mut header = [0u8; HEADER_LEN];
    header[..8].copy_from_slice(&MAGIC);
    header[8..12].copy_from_slice(&VERSION.to_le_bytes());
    header[12..16].copy_from_slice(&(kind as u32).to_le_bytes());
    header[16..20].copy_from_slice(&len.to_le_bytes());
    header[20..24].copy_from_slice(&(fds.len() as u32).to_le_bytes());
    let raw: Vec<RawFd> = fds.iter().map(AsRawFd::as_raw_fd).collect();
    let cmsg = [ControlMessage::ScmRights(&raw)];
    let cmsgs: &[ControlMessage<'_>] = if raw.is_empty() { &[] } else { &cmsg };
    // Header and payload in one call; the fds go with the header's first byte.
    let iov = [IoSlice::new(&header), IoSlice::new(payload)];
    let sent = loop {
        match sendmsg::<()>(sock.as_raw_fd(), &iov, cmsgs, MsgFlags::MSG_NOSIGNAL, None) {
            Ok(0) => return Err(Error::Disconnected),
            Ok(n) => break n,
            Err(Errno::EINTR) => continue,
            Err(errno) => return Err(Error::os("sendmsg", errno)),
        }
    };
    // A blocking stream socket sends less only when a signal interrupts a long payload.
    let mut rest = (sent.min(HEADER_LEN), sent.saturating_sub(HEADER_LEN));
    while rest.0 < HEADER_LEN || rest.1 < payload.len() {
        let buf = if rest.0 < HEADER_LEN {
            &header[rest.0..]
        } else {
            &payload[rest.1..]
        };
        match nix::sys::socket::send(sock.as_raw_fd(), buf, MsgFlags::MSG_NOSIGNAL) {
            Ok(0) => return Err(Error::Disconnected),
            Ok(n) if rest.0 < HEADER_LEN => rest.0 += n,
            Ok(n) => rest.1 += n,
            Err(Errno::EINTR) => continue,
            Err(Errno::EPIPE | Errno::ECONNRESET) => return Err(Error::Disconnected),
            Err(errno) => return Err(Error::os("write", errno)),
        }
    }
    Ok(())
}

/// Receives one message of kind `want`: its payload and its fds (close-on-exec).
///
/// # Errors
///
/// [`Error::Disconnected`] at end of file before a header; [`Error::Malformed`] for a bad
/// magic, version, kind, length or fd count, or truncated fds.
pub(crate) fn receive(sock: BorrowedFd<'_>, want: Kind) -> Result<(Vec<u8>, Vec<OwnedFd>)> {
    let mut header = [0u8; HEADER_LEN];
    let mut space = nix::cmsg_space!([RawFd; MAX_FDS + CHILD_FIXED_FDS]);
    let (got, fds, truncated) = loop {
        let mut iov = [IoSliceMut::new(&mut header)];
        match recvmsg::<()>(
            sock.as_raw_fd(),
            &mut iov,
            Some(&mut space),
            MsgFlags::MSG_CMSG_CLOEXEC | MsgFlags::MSG_WAITALL,
        ) {
            Ok(msg) => {
                let mut fds = Vec::new();
                for cmsg in msg.cmsgs().map_err(|e| Error::os("recvmsg", e))? {
                    if let ControlMessageOwned::ScmRights(raw) = cmsg {
                        for fd in raw {
                            // SAFETY: the kernel installed this descriptor for us just now
                            // (SCM_RIGHTS); nothing else owns it.
                            fds.push(unsafe { OwnedFd::from_raw_fd(fd) });
                        }
                    }
                }
                break (msg.bytes, fds, msg.flags.contains(MsgFlags::MSG_CTRUNC));
            }
            Err(Errno::EINTR) => continue,
            Err(errno) => return Err(Error::os("recvmsg", errno)),
        }
    };
    if got == 0 {
        return Err(Error::Disconnected);
    }
    if got != HEADER_LEN {
        return Err(Error::Malformed("truncated bootstrap header"));
    }
    if truncated {
        return Err(Error::Malformed("bootstrap fds were truncated"));
    }
    let word = |at: usize| {
        u32::from_le_bytes([header[at], header[at + 1], header[at + 2], header[at + 3]])
    };
    if header[..8] != MAGIC {
        return Err(Error::Malformed("bootstrap message has a bad magic"));
    }
    if word(8) != VERSION {
        return Err(Error::Malformed("bootstrap message has an unknown version"));
    }
    if word(12) != want as u32 {
        return Err(Error::Malformed("bootstrap message is of the wrong kind"));
    }
    let len = word(16);
    if len > MAX_PAYLOAD {
        return Err(Error::Malformed("bootstrap payload too long"));
    }
    if word(20) as usize != fds.len() {
        return Err(Error::Malformed("bootstrap fd count does not match"));
    }
    let mut payload = vec![0u8; len as usize];
    let mut got = 0;
    while got < payload.len() {
        match recv(sock.as_raw_fd(), &mut payload[got..], MsgFlags::MSG_WAITALL) {
            Ok(0) => return Err(Error::Malformed("truncated bootstrap payload")),
            Ok(n) => got += n,
            Err(Errno::EINTR) => continue,
            Err(errno) => return Err(Error::os("read", errno)),
        }
    }
    Ok((payload, fds))
}

/// The hook in `.init_array`; see the module's `# Safety`.
extern "C" fn hook() {
    let Some(value) = std::env::var_os(ENV) else {
        return;
    };
    scrub_marker();
    let code = catch_unwind(|| match claim(&value) {
        Ok(sock) => match peek_kind(&sock) {
            Some(Kind::Server) => super::forkserver::serve(sock),
            _ => boot_child(sock),
        },
        Err(error) => refuse(&error),
    })
    .unwrap_or(BOOTSTRAP_EXIT_CODE);
    super::flush_std_streams();
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

/// Prints why a bootstrap was refused and returns [`BOOTSTRAP_EXIT_CODE`].
pub(crate) fn refuse(error: &Error) -> i32 {
    eprintln!("proclife: bootstrap refused: {error}");
    BOOTSTRAP_EXIT_CODE
}

/// Takes ownership of the socket named by the environment variable.
fn claim(value: &std::ffi::OsStr) -> Result<OwnedFd> {
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

/// A child whose bootstrap was accepted, ready to run.
pub(crate) struct Ready {
    boot: ChildBoot,
    slot: StatusSlot,
    parent_pidfd: OwnedFd,
    call: entry::Prepared,
}

/// Receives and checks a child's bootstrap message, and decodes its arguments.
pub(crate) fn accept_child(sock: BorrowedFd<'_>) -> Result<Ready> {
    let (payload, fds) = receive(sock, Kind::Child)?;
    accept_parts(&payload, fds, None)
}

/// Checks a child's received bootstrap payload and fds, and decodes its arguments.
///
/// `parent_pidfd` is the parent's pidfd when the child already holds one (a fork server's
/// child); with `None` it is the second of `fds`, after the status slot.
pub(crate) fn accept_parts(
    payload: &[u8],
    fds: Vec<OwnedFd>,
    parent_pidfd: Option<OwnedFd>,
) -> Result<Ready> {
    let boot: ChildBoot = postcard::from_bytes(payload)
        .map_err(|_| Error::Malformed("undecodable bootstrap payload"))?;
    if boot.build != Build::current()? {
        return Err(Error::Malformed(
            "bootstrap comes from another build of the program",
        ));
    }
    let entry = entry::find(&boot.key).ok_or(Error::UnregisteredEntry {
        key: boot.key.clone(),
    })?;
    let mut fds = fds.into_iter();
    let slot = fds.next();
    let parent_pidfd = parent_pidfd.or_else(|| fds.next());
    let (Some(slot), Some(parent_pidfd)) = (slot, parent_pidfd) else {
        return Err(Error::Malformed("bootstrap lacks its fixed fds"));
    };
    let slot = StatusSlot::from_fd(slot)?;
    let call = entry.prepare(&boot.args, fds.collect())?;
    Ok(Ready {
        boot,
        slot,
        parent_pidfd,
        call,
    })
}

/// Becomes the child the bootstrap describes and runs its target; returns the exit code.
pub(crate) fn run_child(ready: Ready) -> i32 {
    let Ready {
        boot,
        slot,
        parent_pidfd,
        call,
    } = ready;
    // Rust's start-up ignores SIGPIPE, so a write to a closed pipe is an error, not a death.
    // SAFETY: installs the `SIG_IGN` disposition, no handler code.
    let _ = unsafe { signal(Signal::SIGPIPE, SigHandler::SigIgn) };
    // Before any user code: the child's own exit handlers run before it, and nothing
    // registered earlier (the fork server's, constructors') runs after it.
    if let Err(error) = super::exit::arm() {
        eprintln!("proclife: {error}");
    }
    super::inherit_global(boot.method);
    let parent = Pid::from_raw(boot.parent).unwrap_or(Pid::INIT);
    registry::lock().become_child_of(
        boot.identity.clone(),
        boot.name.clone(),
        boot.daemon,
        parent,
        boot.parent_name.clone(),
    );
    if boot.daemon && !die_with_parent(&boot, &parent_pidfd) {
        let _ = raise(Signal::SIGKILL);
        return 1;
    }
    crate::current::set_parent_pidfd(parent_pidfd);
    slot.install_current();
    let code = super::fork::run_target(call, &boot.name);
    if boot.join_threads
        && let Err(error) = super::exit::join_threads()
    {
        eprintln!(
            "Process {}: cannot wait for its threads: {error}",
            boot.name
        );
    }
    // The slot must outlive every blocking call of the target; the process ends next,
    // through `exit()`: the child's own handlers, then the exit policy and `_exit`.
    std::mem::forget(slot);
    super::exit::end(code)
}

/// Arranges for a daemon child to die with its parent; `false` when the parent is dead.
fn die_with_parent(boot: &ChildBoot, parent_pidfd: &OwnedFd) -> bool {
    match boot.death {
        Death::ParentDeathSignal => {
            nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).is_ok()
                && nix::unistd::getppid().as_raw() == boot.real_parent
        }
        Death::WatchParent => {
            let Ok(watch) = parent_pidfd.try_clone() else {
                return false;
            };
            if parent_exited(watch.as_fd(), Some(0)) {
                return false;
            }
            // The watcher is the runtime's own: a child that joins its threads does not wait
            // for it, and knows so before the target runs.
            let (known, exempt) = std::sync::mpsc::channel();
            std::thread::Builder::new()
                .name("proclife-parent-watch".into())
                .spawn(move || {
                    super::exit::exempt_current_thread();
                    let _ = known.send(());
                    parent_exited(watch.as_fd(), None);
                    let _ = raise(Signal::SIGKILL);
                })
                .is_ok_and(|_| exempt.recv().is_ok())
        }
    }
}

/// Polls a pidfd; `true` once the process exited (or the poll fails).
fn parent_exited(pidfd: BorrowedFd<'_>, timeout_ms: Option<u16>) -> bool {
    use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
    let timeout = timeout_ms.map_or(PollTimeout::NONE, PollTimeout::from);
    loop {
        let mut fds = [PollFd::new(pidfd, PollFlags::POLLIN)];
        match poll(&mut fds, timeout) {
            Ok(0) => return false,
            Ok(_) => return true,
            Err(Errno::EINTR) => continue,
            Err(_) => return true,
        }
    }
}
