//! `Pipe` and `Connection`: length-prefixed frames over a socketpair or a pipe.
//!
//! A frame is an 8-byte little-endian length followed by that many payload bytes.
//! The length is checked against the connection's `max_frame` before anything is
//! allocated, so a hostile or corrupt peer can never make the receiver allocate more than
//! `max_frame` bytes (T35, T48). A torn frame (end of file inside it) or an oversized one
//! poisons the connection: the stream can no longer be parsed, so every later call fails
//! with [`Error::Malformed`] instead of misreading (T35, T36). A payload that fails to decode
//! as the requested type is [`Error::Decode`] and does not poison, since the framing is
//! intact. The peer's death is [`Error::Disconnected`], never a hang, as long as no other
//! process still holds the peer's end.
//!
//! # Waiting
//!
//! The fds block, as CPython's do; the connection decides per call where a wait sleeps
//! (decision 0028). A call first tries without sleeping (`RWF_NOWAIT`, `MSG_DONTWAIT`); when
//! it has to wait it is marked `Blocked(Recv)` or `Blocked(Send)` in the status slot and
//! then, if nothing needs to end the wait early (the main process, a daemon child that dies
//! with its parent), sleeps in the `read` or `write` itself (a duplex end's receive sleeps in
//! `poll`, measured faster there), else (a child whose untimed waits watch their parent,
//! decision 0018) in `poll` slices, followed by a call that does not sleep. After a receive
//! that had to wait, the next 16 receives go straight to their sleep. An fd handed to
//! [`Connection::from_fd`] keeps its own `O_NONBLOCK`; on such an fd a sleeping call that
//! answers `EAGAIN` waits in `poll`. Where the kernel refuses `RWF_NOWAIT` (a pipe before
//! Linux 6.4, a named FIFO), every call polls first and then reads what is there or writes
//! at most `PIPE_BUF` bytes, so a watched child still never sleeps in the kernel.
//!
//! One-way pipes are `pipe2(O_CLOEXEC)`; writing to a pipe whose reader is gone raises
//! `SIGPIPE`, which Rust programs ignore by default (the write then fails with `EPIPE`,
//! reported as [`Error::Disconnected`]). Duplex connections are sockets and send with
//! `MSG_NOSIGNAL`, so they never raise it.
//!
//! Frames are read straight into the payload `Vec`'s spare capacity
//! ([`os::io::read_spare`]), so that a large frame is not zero-filled before the kernel
//! overwrites it.
#![forbid(unsafe_code)]

use std::io::IoSlice;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::time::Duration;

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::poll::PollFlags;
use nix::sys::socket::{AddressFamily, MsgFlags, SockFlag, SockType};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::children::parent_watch;
use crate::children::status::{BlockedOn, blocked};
use crate::error::{Error, Result};
use crate::os;
use crate::os::io::Sleep;
use crate::os::time::Deadline;

/// The default largest payload a connection accepts: 64 MiB.
pub const DEFAULT_MAX_FRAME: usize = 64 << 20;

/// Bytes in a frame header.
pub const HEADER_LEN: usize = 8;

/// Receives that poll first after a receive found nothing to read (see `Connection`).
const POLL_FIRST: u8 = 16;

/// Creates a connected pair (`multiprocessing.Pipe`).
///
/// With `duplex`, both ends send and receive (`socketpair(AF_UNIX, SOCK_STREAM)`).
/// Without, the first end only receives and the second only sends (`pipe2`), as in CPython.
/// Both fds are close-on-exec.
///
/// ```
/// # fn main() -> proclife::Result<()> {
/// let (mut a, mut b) = proclife::ipc::pipe(true)?;
/// a.send(&(1u32, "one".to_string()))?;
/// let got: (u32, String) = b.recv()?;
/// assert_eq!(got, (1, "one".to_string()));
/// # Ok(())
/// # }
/// ```
///
/// # Errors
///
/// [`Error::Os`] from `socketpair` or `pipe2` (`EMFILE`, `ENFILE`).
pub fn pipe(duplex: bool) -> Result<(Connection, Connection)> {
    if duplex {
        let (a, b) = nix::sys::socket::socketpair(
            AddressFamily::Unix,
            SockType::Stream,
            None,
            SockFlag::SOCK_CLOEXEC,
        )
        .map_err(|errno| Error::os("socketpair", errno))?;
        Ok((
            Connection::new(a, Kind::Socket, true, true),
            Connection::new(b, Kind::Socket, true, true),
        ))
    } else {
        let (r, w) =
            nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(|errno| Error::os("pipe2", errno))?;
        Ok((
            Connection::new(r, Kind::Pipe, true, false),
            Connection::new(w, Kind::Pipe, false, true),
        ))
    }
}

/// Whether the fd is a socket (send with `MSG_NOSIGNAL`) or a pipe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Socket,
    Pipe,
}

/// One end of a [`pipe`] (`multiprocessing.connection.Connection`).
///
/// Methods that move data take `&mut self`: a connection end is used by one thread at a time.
/// After [`Connection::close`] every operation is [`Error::HandleClosed`] and the old fd number is
/// never touched again.
#[derive(Debug)]
pub struct Connection {
    fd: Option<OwnedFd>,
    kind: Kind,
    readable: bool,
    writable: bool,
    max_frame: usize,
    poisoned: bool,
    /// How many more receives go straight to their sleep, without a first read that does
    /// not sleep. A receive whose first read gets `EAGAIN` sets it to [`POLL_FIRST`]: a
    /// request/reply exchange always waits, so its receives skip the read that would fail,
    /// while a stream of frames that seldom waits goes back to reading first.
    poll_first: u8,
    /// Whether reads and writes that must not sleep can say so to the kernel (`RWF_NOWAIT`
    /// on a pipe, which kernels before 6.4 and named FIFOs refuse; a socket always can, with
    /// `MSG_DONTWAIT`); cleared at the first `EOPNOTSUPP`, after which every call polls first
    /// and then reads what is there or writes at most `PIPE_BUF` bytes.
    nowait: bool,
}

impl Connection {
    fn new(fd: OwnedFd, kind: Kind, readable: bool, writable: bool) -> Connection {
        Connection {
            fd: Some(fd),
            kind,
            readable,
            writable,
            max_frame: DEFAULT_MAX_FRAME,
            poisoned: false,
            poll_first: 0,
            nowait: true,
        }
    }

    /// Rebuilds a connection end from its fd (for example one inherited by a re-executed
    /// child). The fd should be close-on-exec; its file flags are left as they are (a
    /// [`pipe`] end blocks; an fd that does not block works too, see *Waiting* in the module's
    /// documentation).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] when it is neither readable nor writable;
    /// [`Error::Os`] when the fd cannot be inspected.
    pub fn from_fd(fd: OwnedFd, readable: bool, writable: bool) -> Result<Connection> {
        if !readable && !writable {
            return Err(Error::InvalidArgument(
                "a connection must be readable or writable",
            ));
        }
        let stat = nix::sys::stat::fstat(&fd).map_err(|errno| Error::os("fstat", errno))?;
        let file_type =
            nix::sys::stat::SFlag::from_bits_truncate(stat.st_mode) & nix::sys::stat::SFlag::S_IFMT;
        let kind = if file_type == nix::sys::stat::SFlag::S_IFSOCK {
            Kind::Socket
        } else {
            Kind::Pipe
        };
        Ok(Connection::new(fd, kind, readable, writable))
    }

    /// Whether this end can receive.
    pub fn readable(&self) -> bool {
        self.readable
    }

    /// Whether this end can send.
    pub fn writable(&self) -> bool {
        self.writable
    }

    /// Whether [`Connection::close`] was called.
    pub fn closed(&self) -> bool {
        self.fd.is_none()
    }

    /// The largest payload this end sends or accepts.
    pub fn max_frame(&self) -> usize {
        self.max_frame
    }

    /// Sets the largest payload this end sends or accepts.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] above `isize::MAX - 8`.
    pub fn set_max_frame(&mut self, max_frame: usize) -> Result<()> {
        if max_frame > isize::MAX as usize - HEADER_LEN {
            return Err(Error::InvalidArgument("max_frame too large"));
        }
        self.max_frame = max_frame;
        Ok(())
    }

    /// The fd, while open.
    ///
    /// # Errors
    ///
    /// [`Error::HandleClosed`] after [`Connection::close`] (CPython's `fileno()`:
    /// `OSError: handle is closed`).
    pub fn fd(&self) -> Result<BorrowedFd<'_>> {
        self.fd.as_ref().map(AsFd::as_fd).ok_or(Error::HandleClosed)
    }

    fn usable(&self, reading: bool) -> Result<BorrowedFd<'_>> {
        let fd = self.fd()?;
        if self.poisoned {
            return Err(Error::Malformed(
                "connection poisoned by an earlier torn or invalid frame",
            ));
        }
        if reading && !self.readable {
            return Err(Error::InvalidArgument("connection is write-only"));
        }
        if !reading && !self.writable {
            return Err(Error::InvalidArgument("connection is read-only"));
        }
        Ok(fd)
    }

    /// Closes this end; later operations are [`Error::HandleClosed`]. Closing twice is allowed.
    ///
    /// # Errors
    ///
    /// None today; the `Result` keeps room for reporting a failed `close`.
    pub fn close(&mut self) -> Result<()> {
        self.fd = None;
        Ok(())
    }

    /// Sends `value` encoded with postcard as one frame.
    ///
    /// # Errors
    ///
    /// - [`Error::HandleClosed`] after [`Connection::close`] (CPython: `OSError: handle is
    ///   closed`);
    /// - [`Error::InvalidArgument`] on the receiving end of a one-way pipe (CPython:
    ///   `OSError: connection is read-only`);
    /// - [`Error::Disconnected`] when the peer is gone, closed or killed (CPython:
    ///   `BrokenPipeError: [Errno 32] Broken pipe`);
    /// - [`Error::FrameTooLarge`] above [`Connection::max_frame`], before writing a byte
    ///   (CPython sends any length; decision 0013);
    /// - [`Error::Encode`]; [`Error::Malformed`] when poisoned (no CPython counterpart);
    /// - [`Error::ParentDied`] when it waits in a child and the parent dies meanwhile
    ///   (decision 0018; CPython waits forever).
    pub fn send<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<()> {
        self.usable(false)?;
        let payload = postcard::to_stdvec(value).map_err(Error::Encode)?;
        self.write_frame(&payload)
    }

    /// Sends `bytes` as one frame.
    ///
    /// # Errors
    ///
    /// As [`Connection::send`], without `Encode` (the same CPython exceptions).
    pub fn send_bytes(&mut self, bytes: &[u8]) -> Result<()> {
        self.write_frame(bytes)
    }

    /// Writes the header and `payload`, retrying partial writes and `EINTR`.
    fn write_frame(&mut self, payload: &[u8]) -> Result<()> {
        self.usable(false)?;
        if payload.len() > self.max_frame {
            return Err(Error::FrameTooLarge {
                len: payload.len() as u64,
                max: self.max_frame as u64,
            });
        }
        let fd = self.usable(false)?;
        let mut nowait = self.nowait;
        let result = send_frame(fd, self.kind, payload, &mut nowait);
        self.nowait = nowait;
        result.map_err(|(written, error)| {
            // A partly written frame can never be completed: the stream is torn.
            self.poisoned = written > 0;
            error
        })
    }

    /// Receives one frame and decodes it as `T` with postcard.
    ///
    /// # Errors
    ///
    /// [`Error::Decode`] for a complete frame that is not a `T` (the connection stays
    /// usable; postcard is not pickle, so no CPython exception stands for it, decision 0013);
    /// otherwise as [`Connection::recv_bytes`].
    pub fn recv<T: DeserializeOwned>(&mut self) -> Result<T> {
        let bytes = self.recv_bytes()?;
        postcard::from_bytes(&bytes).map_err(Error::Decode)
    }

    /// Receives one frame's payload, blocking until it arrives.
    ///
    /// # Errors
    ///
    /// - [`Error::Disconnected`]: end of file at a frame boundary (the peer closed or died;
    ///   CPython: `EOFError`);
    /// - [`Error::FrameTooLarge`]: the announced length exceeds `max_frame` (poisons; CPython's
    ///   `recv_bytes(maxlength)`: `OSError: bad message length`);
    /// - [`Error::HandleClosed`] (CPython: `OSError: handle is closed`);
    /// - [`Error::InvalidArgument`] on the sending end of a one-way pipe (CPython:
    ///   `OSError: connection is write-only`);
    /// - [`Error::Malformed`]: end of file inside a frame (poisons), or already poisoned;
    ///   [`Error::Os`];
    /// - [`Error::ParentDied`] when it waits in a child and the parent dies meanwhile
    ///   (decision 0018; CPython waits forever).
    pub fn recv_bytes(&mut self) -> Result<Vec<u8>> {
        let fd = self.usable(true)?;
        if crate::planted::active("pipe-eof-early") && !ready(fd, PollFlags::POLLIN)? {
            // Planted: nothing to read at this moment is taken for end of file, though a
            // process may still hold the sending end.
            return Err(Error::Disconnected);
        }
        let mut state = RecvState {
            poll_first: self.poll_first,
            nowait: self.nowait,
            poisoned: false,
        };
        let received = recv_frame(fd, self.kind, self.max_frame, &mut state);
        self.poll_first = state.poll_first;
        self.nowait = state.nowait;
        self.poisoned |= state.poisoned;
        let payload = received?;
        if crate::planted::active("duplex-recv-skips-item")
            && self.kind == Kind::Socket
            && ready(self.fd()?, PollFlags::POLLIN)?
        {
            // Planted: on a duplex connection, a frame already waiting behind this one is
            // returned instead, and this one is lost.
            if let Ok(next) = self.recv_bytes() {
                return Ok(next);
            }
        }
        Ok(payload)
    }

    /// Waits at most `timeout` (`None`: forever, zero: check once) for something to
    /// receive; end of file counts, as in CPython.
    ///
    /// # Errors
    ///
    /// [`Error::HandleClosed`] (CPython: `OSError: handle is closed`),
    /// [`Error::InvalidArgument`] on the sending end of a one-way pipe (CPython: `OSError:
    /// connection is write-only`), [`Error::Malformed`] when poisoned, [`Error::Os`];
    /// [`Error::ParentDied`] when it waits without a timeout in a child and the parent dies
    /// meanwhile (decision 0018; CPython waits forever).
    pub fn poll(&self, timeout: Option<Duration>) -> Result<bool> {
        let fd = self.usable(true)?;
        if ready(fd, PollFlags::POLLIN)? {
            return Ok(true);
        }
        let deadline = Deadline::after(timeout);
        if deadline.expired() {
            return Ok(false);
        }
        let _blocked = blocked(BlockedOn::Recv);
        wait_ready(fd, PollFlags::POLLIN, &deadline)
    }
}

/// Drops the first `n` bytes from the two-part frame being written.
fn advance(parts: &mut [&[u8]; 2], mut n: usize) {
    for part in parts.iter_mut() {
        let take = n.min(part.len());
        *part = &part[take..];
        n -= take;
    }
}

/// What a receive carries from one call to the next, and whether it poisoned the end.
struct RecvState {
    /// As [`Connection::poll_first`].
    poll_first: u8,
    /// As [`Connection::nowait`].
    nowait: bool,
    /// Set when the stream can no longer be parsed.
    poisoned: bool,
}

/// Reads one frame's payload from `fd` (see [`Connection::recv_bytes`]).
fn recv_frame(
    fd: BorrowedFd<'_>,
    kind: Kind,
    max_frame: usize,
    state: &mut RecvState,
) -> Result<Vec<u8>> {
    // A pipe's receive may sleep in its `read`; a socket's sleeps in `poll`, which measured
    // faster for a request/reply exchange over a socket pair (decision 0028).
    let in_call = kind == Kind::Pipe;
    let socket = kind == Kind::Socket;
    let mut header = [0u8; HEADER_LEN];
    let try_first = state.poll_first == 0;
    let (got, waited) = read_full(
        fd,
        HEADER_LEN,
        try_first,
        in_call,
        &mut state.nowait,
        |got, sleep| os::io::read_into(fd, &mut header[got..], sleep, socket),
    )?;
    match got {
        0 => return Err(Error::Disconnected),
        HEADER_LEN => {}
        _ => {
            state.poisoned = true;
            return Err(Error::Malformed("end of file inside a frame header"));
        }
    }
    let announced = u64::from_le_bytes(header);
    let len = match usize::try_from(announced) {
        Ok(len) if len <= max_frame => len,
        _ => {
            state.poisoned = true;
            return Err(Error::FrameTooLarge {
                len: announced,
                max: max_frame as u64,
            });
        }
    };
    // Read into spare capacity: zero-filling a large frame first costs as much as copying it.
    let mut payload = Vec::with_capacity(len);
    let (got, _) = read_full(fd, len, true, in_call, &mut state.nowait, |got, sleep| {
        os::io::read_spare(fd, &mut payload, len - got, sleep, socket)
    })?;
    state.poll_first = if try_first && waited {
        POLL_FIRST
    } else {
        state.poll_first.saturating_sub(1)
    };
    if got < len {
        state.poisoned = true;
        return Err(Error::Malformed("end of file inside a frame"));
    }
    Ok(payload)
}

/// Writes the header and `payload` to `fd`, retrying partial writes and `EINTR`; on error,
/// also the bytes of the frame already written.
fn send_frame(
    fd: BorrowedFd<'_>,
    kind: Kind,
    payload: &[u8],
    nowait: &mut bool,
) -> std::result::Result<(), (usize, Error)> {
    let header = (payload.len() as u64).to_le_bytes();
    let mut parts = [&header[..], payload];
    let mut written = 0usize;
    let total = HEADER_LEN + payload.len();
    while written < total {
        let sent = transfer(fd, PollFlags::POLLOUT, true, false, nowait, |sleep| {
            // The header is never empty while unwritten, so an empty first part means it is
            // done; an empty payload slice is harmless to the kernel.
            let both = [IoSlice::new(parts[0]), IoSlice::new(parts[1])];
            let slices = if parts[0].is_empty() {
                &both[1..]
            } else {
                &both[..]
            };
            match kind {
                // Sockets: header and payload as one message, without SIGPIPE.
                Kind::Socket => {
                    // Every kernel takes `MSG_DONTWAIT`, so a socket never needs `Bounded`.
                    let flags = match sleep {
                        Sleep::May => MsgFlags::MSG_NOSIGNAL,
                        Sleep::Never | Sleep::Bounded => {
                            MsgFlags::MSG_NOSIGNAL | MsgFlags::MSG_DONTWAIT
                        }
                    };
                    nix::sys::socket::sendmsg::<()>(fd.as_raw_fd(), slices, &[], flags, None)
                }
                Kind::Pipe => os::io::write_vectored(fd, slices, sleep),
            }
        });
        match sent {
            // A write that takes nothing of a non-empty remainder would be retried forever.
            Ok((Ok(0), _)) => return Err((written, Error::os("write", Errno::EIO))),
            Ok((Ok(n), _)) => {
                written += n;
                advance(&mut parts, n);
            }
            Ok((Err(Errno::EPIPE | Errno::ECONNRESET), _)) => {
                return Err((written, Error::Disconnected));
            }
            Ok((Err(errno), _)) => return Err((written, Error::os("write", errno))),
            Err(error) => return Err((written, error)),
        }
    }
    Ok(())
}

/// Reads until `want` bytes arrived or end of file, calling `read_at(got, sleep)` for each
/// read (it reads into the destination after the `got` bytes already there); returns the
/// bytes read and whether a read found nothing there (`EAGAIN`) and had to wait. Each read
/// goes through [`transfer`]: unless `try_first`, the first one goes straight to its sleep;
/// `in_call` lets the sleep happen in the read itself.
fn read_full(
    fd: BorrowedFd<'_>,
    want: usize,
    try_first: bool,
    in_call: bool,
    nowait: &mut bool,
    mut read_at: impl FnMut(usize, Sleep) -> nix::Result<usize>,
) -> Result<(usize, bool)> {
    let mut got = 0;
    let mut waited = false;
    while got < want {
        let expect_wait = !try_first && got == 0 && !waited;
        let (read, w) = transfer(
            fd,
            PollFlags::POLLIN,
            in_call,
            expect_wait,
            nowait,
            |sleep| read_at(got, sleep),
        )?;
        waited |= w;
        match read {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(Errno::ECONNRESET) => break,
            Err(errno) => return Err(Error::os("read", errno)),
        }
    }
    Ok((got, waited))
}

/// How the next call of a [`transfer`] goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Next {
    /// Without sleeping (`Sleep::Never`).
    Try,
    /// Marked blocked, sleeping where this process may: in the call, or in `poll` first.
    Wait,
    /// Marked blocked, in `poll` first, then a call that cannot sleep long: the fd does not
    /// block, or the kernel cannot be asked not to sleep (`EOPNOTSUPP`; the call is then
    /// [`Sleep::Bounded`]).
    PollThenCall,
}

/// One read or write (`call`, given whether it may sleep in the kernel) that moves bytes,
/// retried through `EINTR` and waits; returns its first other outcome (bytes moved, end of
/// file, an errno for the caller) and whether it found `fd` not ready (`EAGAIN`).
///
/// The first call does not sleep (unless `expect_wait`). When it has to wait, the process is
/// marked blocked (`POLLIN`: `Blocked(Recv)`, else `Blocked(Send)`) until this returns, and
/// then, if `in_call` and nothing needs to end an untimed wait early (the main process, a
/// daemon that dies with its parent: [`parent_watch::untimed_waits_watch`]), the next call
/// sleeps in the kernel; otherwise it sleeps in `poll` (with the parent watch, decision
/// 0018) and calls again without sleeping. `nowait` says whether the kernel can be asked not
/// to sleep; it is cleared at the first `EOPNOTSUPP` (only `RWF_NOWAIT` gives it: a pipe on an
/// older kernel, a named FIFO), after which every call polls first and is
/// [`Sleep::Bounded`], so that a watched child never sleeps in the kernel.
///
/// # Errors
///
/// As [`parent_watch::poll_ready`] ([`Error::ParentDied`] included).
fn transfer(
    fd: BorrowedFd<'_>,
    events: PollFlags,
    in_call: bool,
    expect_wait: bool,
    nowait: &mut bool,
    mut call: impl FnMut(Sleep) -> nix::Result<usize>,
) -> Result<(nix::Result<usize>, bool)> {
    let on = if events.contains(PollFlags::POLLIN) {
        BlockedOn::Recv
    } else {
        BlockedOn::Send
    };
    let mut marked = None;
    let mut sleeps_in_call = None;
    let mut waited = false;
    let mut next = match (*nowait, expect_wait) {
        (false, _) => Next::PollThenCall,
        (true, false) => Next::Try,
        (true, true) => Next::Wait,
    };
    loop {
        let sleep = match next {
            Next::Try => Sleep::Never,
            Next::Wait | Next::PollThenCall => {
                marked.get_or_insert_with(|| blocked(on));
                let in_call = in_call
                    && next == Next::Wait
                    && *sleeps_in_call.get_or_insert_with(|| !parent_watch::untimed_waits_watch());
                if in_call {
                    Sleep::May
                } else {
                    wait_ready(fd, events, &Deadline::after(None))?;
                    // Ready now: a call that does not sleep, or, where the kernel cannot be
                    // asked that, one bounded to what a ready fd takes at once.
                    if *nowait {
                        Sleep::Never
                    } else {
                        Sleep::Bounded
                    }
                }
            }
        };
        match call(sleep) {
            Err(Errno::EINTR) => {}
            Err(Errno::EAGAIN) => {
                waited = true;
                // A call that was allowed to sleep answered EAGAIN: the fd does not block.
                next = if sleep == Sleep::Never {
                    Next::Wait
                } else {
                    Next::PollThenCall
                };
            }
            Err(Errno::EOPNOTSUPP) if sleep == Sleep::Never => {
                *nowait = false;
                next = Next::PollThenCall;
            }
            outcome => return Ok((outcome, waited)),
        }
    }
}

/// Sets `O_NONBLOCK` on `fd`'s open file, for an end that only its creator reads, a piece at
/// a time between its own polls (a process's result pipe, a test's output pipe).
///
/// # Errors
///
/// `Error::Os { call: "fcntl", .. }`.
pub(crate) fn set_nonblocking(fd: BorrowedFd<'_>) -> Result<()> {
    let flags =
        nix::fcntl::fcntl(fd, nix::fcntl::FcntlArg::F_GETFL).map_err(|e| Error::os("fcntl", e))?;
    let flags = OFlag::from_bits_truncate(flags) | OFlag::O_NONBLOCK;
    nix::fcntl::fcntl(fd, nix::fcntl::FcntlArg::F_SETFL(flags))
        .map_err(|e| Error::os("fcntl", e))?;
    Ok(())
}

/// Whether `fd` is ready for `events` right now (errors and hang-ups count as ready).
fn ready(fd: BorrowedFd<'_>, events: PollFlags) -> Result<bool> {
    os::poll::ready(fd, events, &Deadline::after(Some(Duration::ZERO)))
}

/// Polls `fd` until ready or `deadline` ([`os::poll::ready`]); without a deadline in a
/// child, until the parent dies ([`parent_watch::poll_ready`]).
fn wait_ready(fd: BorrowedFd<'_>, events: PollFlags, deadline: &Deadline) -> Result<bool> {
    parent_watch::poll_ready(fd, events, deadline)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A small deterministic generator for the random-bytes decoder test.
    struct XorShift(u64);

    impl XorShift {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
    }

    #[test]
    fn round_trip_and_close() -> Result<()> {
        let (mut a, mut b) = pipe(true)?;
        a.send(&vec![1u16, 2, 3])?;
        b.send_bytes(b"")?;
        assert_eq!(b.recv::<Vec<u16>>()?, vec![1, 2, 3]);
        assert_eq!(a.recv_bytes()?, b"");
        assert!(!a.poll(Some(Duration::ZERO))?);
        a.close()?;
        a.close()?;
        assert!(matches!(a.send_bytes(b"x"), Err(Error::HandleClosed)));
        assert!(matches!(a.poll(None), Err(Error::HandleClosed)));
        assert!(b.poll(Some(Duration::from_secs(5)))?);
        assert!(matches!(b.recv_bytes(), Err(Error::Disconnected)));
        assert!(matches!(b.send_bytes(b"x"), Err(Error::Disconnected)));
        Ok(())
    }

    /// Whether `fd`'s open file has `O_NONBLOCK`.
    fn nonblocking(fd: BorrowedFd<'_>) -> bool {
        let flags = nix::fcntl::fcntl(fd, nix::fcntl::FcntlArg::F_GETFL).expect("F_GETFL");
        OFlag::from_bits_truncate(flags).contains(OFlag::O_NONBLOCK)
    }

    /// Sends 4 frames of 1 MiB (far above a pipe's or a socket pair's buffer) from another
    /// thread, after a pause long enough that the receiver usually has to wait (it is
    /// correct either way), receives them through `rx` and checks each one.
    fn exchange(rx: &mut Connection, mut tx: Connection) -> Result<()> {
        const FRAMES: u8 = 4;
        const LEN: usize = 1 << 20;
        let sender = std::thread::spawn(move || -> Result<()> {
            std::thread::sleep(Duration::from_millis(20));
            for i in 0..FRAMES {
                tx.send_bytes(&vec![i; LEN])?;
            }
            Ok(())
        });
        for i in 0..FRAMES {
            let got = rx.recv_bytes()?;
            assert_eq!(got.len(), LEN, "frame {i}: length");
            assert!(got.iter().all(|&b| b == i), "frame {i}: contents");
        }
        sender.join().expect("sender thread")
    }

    /// Ends block, as CPython's; a receive that has to wait and a send into a full buffer
    /// sleep and deliver every byte, through both kinds of end.
    #[test]
    fn ends_block_and_waiting_calls_deliver_everything() -> Result<()> {
        for duplex in [false, true] {
            let (mut rx, tx) = pipe(duplex)?;
            assert!(
                !nonblocking(rx.fd()?),
                "duplex {duplex}: the receiving end blocks"
            );
            assert!(
                !nonblocking(tx.fd()?),
                "duplex {duplex}: the sending end blocks"
            );
            exchange(&mut rx, tx)?;
            assert!(matches!(rx.recv_bytes(), Err(Error::Disconnected)));
        }
        Ok(())
    }

    /// An fd given to `from_fd` keeps its `O_NONBLOCK`, and waits on it still wait (in
    /// `poll`) instead of failing with `EAGAIN`.
    #[test]
    fn a_non_blocking_fd_from_from_fd_still_waits() -> Result<()> {
        for duplex in [false, true] {
            let (rx, tx) = pipe(duplex)?;
            let rx_fd = rx
                .fd()?
                .try_clone_to_owned()
                .map_err(|_| Error::HandleClosed)?;
            let tx_fd = tx
                .fd()?
                .try_clone_to_owned()
                .map_err(|_| Error::HandleClosed)?;
            drop((rx, tx));
            set_nonblocking(rx_fd.as_fd())?;
            set_nonblocking(tx_fd.as_fd())?;
            let mut rx = Connection::from_fd(rx_fd, true, duplex)?;
            let tx = Connection::from_fd(tx_fd, duplex, true)?;
            assert!(nonblocking(rx.fd()?), "from_fd leaves the flag as it was");
            exchange(&mut rx, tx)?;
        }
        Ok(())
    }

    /// Without `RWF_NOWAIT` (a kernel before 6.4 answers `EOPNOTSUPP` for a pipe, as every
    /// kernel does for a named FIFO; forced here), calls poll first and then read what is
    /// there or write at most `PIPE_BUF` bytes, and deliver everything.
    #[test]
    fn without_nowait_calls_poll_then_read_or_write() -> Result<()> {
        for duplex in [false, true] {
            let (mut rx, mut tx) = pipe(duplex)?;
            rx.nowait = false;
            tx.nowait = false;
            exchange(&mut rx, tx)?;
            assert!(matches!(rx.recv_bytes(), Err(Error::Disconnected)));
        }
        Ok(())
    }

    #[test]
    fn one_way_ends_are_one_way() -> Result<()> {
        let (mut r, mut w) = pipe(false)?;
        assert!(matches!(r.send_bytes(b"x"), Err(Error::InvalidArgument(_))));
        assert!(matches!(w.recv_bytes(), Err(Error::InvalidArgument(_))));
        w.send(&7u8)?;
        assert_eq!(r.recv::<u8>()?, 7);
        Ok(())
    }

    /// Random bytes, random frames with random (often lying) lengths, truncations and bit
    /// flips, fed to the decoder: every call returns `Ok` or `Err`, never panics, never
    /// allocates beyond `max_frame`, and once poisoned stays poisoned.
    #[test]
    fn random_bytes_never_panic() -> Result<()> {
        let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
        for case in 0..3000 {
            let (mut tx, mut rx) = pipe(true)?;
            rx.set_max_frame(256)?;
            let mut stream = Vec::new();
            for _ in 0..(rng.next() % 4) {
                let len = match rng.next() % 4 {
                    0 => rng.next(),
                    1 => rng.next() % 300,
                    _ => rng.next() % 40,
                };
                stream.extend_from_slice(&len.to_le_bytes());
                let body = (rng.next() % 64) as usize;
                stream.extend((0..body).map(|_| rng.next() as u8));
            }
            if case % 3 == 0 && !stream.is_empty() {
                let i = (rng.next() as usize) % stream.len();
                stream[i] ^= 1 << (rng.next() % 8);
            }
            if case % 5 == 0 {
                let cut = (rng.next() as usize) % (stream.len() + 1);
                stream.truncate(cut);
            }
            nix::unistd::write(tx.fd()?, &stream).map_err(|errno| Error::os("write", errno))?;
            tx.close()?;
            let mut poisoned = false;
            for _ in 0..8 {
                let out = if case % 2 == 0 {
                    rx.recv::<(u8, String)>().map(|_| ())
                } else {
                    rx.recv_bytes().map(|b| assert!(b.len() <= 256))
                };
                match out {
                    Ok(()) => assert!(!poisoned),
                    Err(Error::Disconnected) => break,
                    Err(Error::FrameTooLarge { .. }) | Err(Error::Malformed(_)) => poisoned = true,
                    Err(Error::Decode(_)) => assert!(!poisoned),
                    Err(other) => panic!("unexpected error {other:?}"),
                }
            }
        }
        Ok(())
    }
}
