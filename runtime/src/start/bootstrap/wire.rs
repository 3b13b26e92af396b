//! The bootstrap wire format of a re-executed process: the message its parent sends over an
//! inherited socket, and its checks.
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
#![forbid(unsafe_code)]

use std::io::IoSlice;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::os::unix::fs::MetadataExt;
use std::sync::OnceLock;

use nix::errno::Errno;
use nix::sys::socket::{ControlMessage, MsgFlags, recv, sendmsg};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::os;
use crate::pid::Pid;
use crate::start::pass::MAX_FDS;

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
            .map_err(|e| Error::io("stat(/proc/self/exe)", &e))?;
        Ok(Build {
            dev: meta.dev(),
            ino: meta.ino(),
            size: meta.size(),
            mtime: meta.mtime(),
            mtime_nsec: meta.mtime_nsec(),
        })
    }
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
    #[serde(with = "raw_pid")]
    pub(crate) parent: Pid,
    pub(crate) parent_name: String,
    /// The real parent: the starting process under spawn, the server under forkserver.
    #[serde(with = "raw_pid")]
    pub(crate) real_parent: Pid,
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
    /// A fork server's child: the number of its status cell among those the server mapped
    /// at its start (`children::status::StatusSlot::served`); `None` for a spawned child,
    /// whose slot comes by fd.
    pub(crate) cell: Option<u32>,
}

/// A [`Pid`] on the wire: its raw `i32` (`#[serde(with = "raw_pid")]`), so the bytes are an
/// `i32`'s; decoding a non-positive number fails with the decoder's error (which the
/// receivers report as a malformed message).
pub(crate) mod raw_pid {
    use serde::{Deserialize, Deserializer, Serializer};

    use crate::pid::Pid;

    /// Encodes `pid` as its raw number.
    pub(crate) fn serialize<S: Serializer>(pid: &Pid, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_i32(pid.as_raw())
    }

    /// Decodes a raw number; an error unless it is positive.
    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Pid, D::Error> {
        let raw = i32::deserialize(deserializer)?;
        Pid::from_raw(raw).ok_or_else(|| serde::de::Error::custom("not a positive pid"))
    }
}

/// The fds of a child's bootstrap, in this order: the status slot, the parent's pidfd, then
/// the arguments' fds. A fork server's request leaves out both: the server holds the
/// parent's pidfd from its own bootstrap, and its forked child takes that, and the child's
/// slot is the cell that [`ChildBoot::cell`] names.
pub(crate) const CHILD_FIXED_FDS: usize = 2;

/// Sends one message: the header with `fds` attached, then the payload.
///
/// # Errors
///
/// As [`send_or_nothing`], without saying whether anything was sent.
pub(crate) fn send(
    sock: BorrowedFd<'_>,
    kind: Kind,
    payload: &[u8],
    fds: &[BorrowedFd<'_>],
) -> Result<()> {
    send_or_nothing(sock, kind, payload, fds).map_err(|unsent| unsent.error)
}

/// Why [`send_or_nothing`] failed, and whether no byte of the message was sent.
#[derive(Debug)]
pub(crate) struct SendFailed {
    pub(crate) error: Error,
    /// Nothing reached the socket: the message was refused before it was sent, or the first
    /// `sendmsg` failed (a stream socket's `sendmsg` that fails sends nothing), so the peer
    /// will read nothing of it.
    pub(crate) nothing_sent: bool,
}

/// As [`send`], saying on failure whether nothing was sent.
///
/// # Errors
///
/// [`Error::InvalidArgument`] (too many fds) and [`Error::FrameTooLarge`] before anything
/// is sent; [`Error::Disconnected`] when the peer is gone; `Error::Os { call: "sendmsg", ..
/// }` when the first call fails, `Error::Os { call: "write", .. }` when a later one does.
pub(crate) fn send_or_nothing(
    sock: BorrowedFd<'_>,
    kind: Kind,
    payload: &[u8],
    fds: &[BorrowedFd<'_>],
) -> std::result::Result<(), SendFailed> {
    let nothing = |error| SendFailed {
        error,
        nothing_sent: true,
    };
    let partly = |error| SendFailed {
        error,
        nothing_sent: false,
    };
    if fds.len() > MAX_FDS + CHILD_FIXED_FDS {
        return Err(nothing(Error::InvalidArgument(
            "too many fds for one bootstrap message",
        )));
    }
    let len = u32::try_from(payload.len())
        .ok()
        .filter(|&len| len <= MAX_PAYLOAD)
        .ok_or(Error::FrameTooLarge {
            len: payload.len() as u64,
            max: u64::from(MAX_PAYLOAD),
        })
        .map_err(nothing)?;
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
            Ok(0) => return Err(nothing(Error::Disconnected)),
            Ok(n) => break n,
            Err(Errno::EINTR) => continue,
            Err(errno) => return Err(nothing(Error::os("sendmsg", errno))),
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
            Ok(0) => return Err(partly(Error::Disconnected)),
            Ok(n) if rest.0 < HEADER_LEN => rest.0 += n,
            Ok(n) => rest.1 += n,
            Err(Errno::EINTR) => continue,
            Err(Errno::EPIPE | Errno::ECONNRESET) => return Err(partly(Error::Disconnected)),
            Err(errno) => return Err(partly(Error::os("write", errno))),
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
    let received = os::scm::recv_with_fds(
        sock,
        &mut header,
        &mut space,
        MsgFlags::MSG_CMSG_CLOEXEC | MsgFlags::MSG_WAITALL,
    )
    .map_err(|errno| Error::os("recvmsg", errno))?;
    let (got, fds, truncated) = (received.bytes, received.fds, received.truncated);
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

/// Prints why a bootstrap was refused and returns [`BOOTSTRAP_EXIT_CODE`].
pub(crate) fn refuse(error: &Error) -> i32 {
    eprintln!("proclife: bootstrap refused: {error}");
    BOOTSTRAP_EXIT_CODE
}

#[cfg(test)]
mod tests {
    use serde::{Deserialize, Serialize};

    use super::raw_pid;
    use crate::pid::Pid;

    /// A send refused before anything was sent, or whose first `sendmsg` failed, says that
    /// nothing was sent; a message that went says nothing.
    #[test]
    fn a_failed_send_says_whether_nothing_was_sent() {
        use std::os::fd::AsFd;

        use nix::sys::socket::{AddressFamily, SockFlag, SockType, socketpair};

        use super::{CHILD_FIXED_FDS, Error, Kind, MAX_FDS, send_or_nothing};

        let (ours, theirs) = socketpair(
            AddressFamily::Unix,
            SockType::Stream,
            None,
            SockFlag::SOCK_CLOEXEC,
        )
        .expect("socketpair");
        let too_many = vec![ours.as_fd(); MAX_FDS + CHILD_FIXED_FDS + 1];
        match send_or_nothing(ours.as_fd(), Kind::Child, b"x", &too_many) {
            Err(failed) => assert!(
                failed.nothing_sent && matches!(failed.error, Error::InvalidArgument(_)),
                "too many fds: expected InvalidArgument with nothing sent, got {failed:?}"
            ),
            Ok(()) => panic!("a message with too many fds was sent"),
        }
        send_or_nothing(ours.as_fd(), Kind::Child, b"x", &[]).expect("a message to a peer");
        drop(theirs);
        match send_or_nothing(ours.as_fd(), Kind::Child, b"x", &[]) {
            Err(failed) => assert!(
                failed.nothing_sent
                    && matches!(
                        failed.error,
                        Error::Os {
                            call: "sendmsg",
                            ..
                        }
                    ),
                "a closed peer: expected a sendmsg error with nothing sent, got {failed:?}"
            ),
            Ok(()) => panic!("a message was sent to a closed peer"),
        }
    }

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Typed(#[serde(with = "raw_pid")] Pid);

    #[test]
    fn a_pid_travels_as_its_raw_number() {
        for raw in [1, 2, 4242, i32::MAX] {
            let pid = Pid::from_raw(raw).expect("positive");
            let bytes = postcard::to_allocvec(&Typed(pid)).expect("encode");
            assert_eq!(
                bytes,
                postcard::to_allocvec(&raw).expect("encode"),
                "pid {raw}"
            );
            assert_eq!(postcard::from_bytes::<Typed>(&bytes).ok(), Some(Typed(pid)));
        }
    }

    #[test]
    fn a_non_positive_pid_is_refused_when_decoded() {
        for raw in [0, -1, i32::MIN] {
            let bytes = postcard::to_allocvec(&raw).expect("encode");
            let decoded = postcard::from_bytes::<Typed>(&bytes);
            assert!(
                matches!(decoded, Err(postcard::Error::SerdeDeCustom)),
                "raw {raw}: expected the pid check's error, got {decoded:?}"
            );
        }
    }
}
