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
//! # Caveats
//!
//! The fds are non-blocking: every wait happens in `poll`, under the status slot's
//! `Blocked(Recv)` or `Blocked(Send)`, including a wait in the middle of a frame.
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
            SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK,
        )
        .map_err(|errno| Error::os("socketpair", errno))?;
        Ok((
            Connection::new(a, Kind::Socket, true, true),
            Connection::new(b, Kind::Socket, true, true),
        ))
    } else {
        let (r, w) = nix::unistd::pipe2(OFlag::O_CLOEXEC | OFlag::O_NONBLOCK)
            .map_err(|errno| Error::os("pipe2", errno))?;
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
    /// How many more receives poll before their first read. A receive that tries a read
    /// first and gets `EAGAIN` sets it to [`POLL_FIRST`]: a request/reply exchange always
    /// waits, so its receives skip the read that would fail, while a stream of frames that
    /// seldom waits goes back to reading first.
    poll_first: u8,
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
        }
    }

    /// Rebuilds a connection end from its fd (for example one inherited by a re-executed
    /// child). The fd should be close-on-exec; it is made non-blocking.
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
        let flags = nix::fcntl::fcntl(&fd, nix::fcntl::FcntlArg::F_GETFL)
            .map_err(|errno| Error::os("fcntl", errno))?;
        let flags = OFlag::from_bits_truncate(flags) | OFlag::O_NONBLOCK;
        nix::fcntl::fcntl(&fd, nix::fcntl::FcntlArg::F_SETFL(flags))
            .map_err(|errno| Error::os("fcntl", errno))?;
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
        let header = (payload.len() as u64).to_le_bytes();
        let fd = self.usable(false)?;
        let kind = self.kind;
        let mut parts = [&header[..], payload];
        let mut written = 0usize;
        let total = HEADER_LEN + payload.len();
        while written < total {
            // The header is never empty while unwritten, so an empty first part means it is
            // done; an empty payload slice is harmless to the kernel.
            let both = [IoSlice::new(parts[0]), IoSlice::new(parts[1])];
            let slices = if parts[0].is_empty() {
                &both[1..]
            } else {
                &both[..]
            };
            let res = match kind {
                // Sockets: header and payload as one message, without SIGPIPE.
                Kind::Socket => nix::sys::socket::sendmsg::<()>(
                    fd.as_raw_fd(),
                    slices,
                    &[],
                    MsgFlags::MSG_NOSIGNAL,
                    None,
                ),
                Kind::Pipe => nix::sys::uio::writev(fd, slices),
            };
            match res {
                Ok(n) => {
                    written += n;
                    advance(&mut parts, n);
                }
                Err(Errno::EINTR) => continue,
                Err(Errno::EAGAIN) => {
                    let _blocked = blocked(BlockedOn::Send);
                    wait_ready(fd, PollFlags::POLLOUT, &Deadline::after(None))?;
                }
                Err(Errno::EPIPE | Errno::ECONNRESET) => {
                    // A partly written frame can never be completed: the stream is torn.
                    self.poisoned = written > 0;
                    return Err(Error::Disconnected);
                }
                Err(errno) => {
                    self.poisoned = written > 0;
                    return Err(Error::os("write", errno));
                }
            }
        }
        Ok(())
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
        let mut header = [0u8; HEADER_LEN];
        let try_first = self.poll_first == 0;
        let (got, waited) = read_full(fd, HEADER_LEN, try_first, |got| {
            nix::unistd::read(fd, &mut header[got..])
        })?;
        match got {
            0 => return Err(Error::Disconnected),
            HEADER_LEN => {}
            _ => {
                self.poisoned = true;
                return Err(Error::Malformed("end of file inside a frame header"));
            }
        }
        let announced = u64::from_le_bytes(header);
        let len = match usize::try_from(announced) {
            Ok(len) if len <= self.max_frame => len,
            _ => {
                self.poisoned = true;
                return Err(Error::FrameTooLarge {
                    len: announced,
                    max: self.max_frame as u64,
                });
            }
        };
        // Read into spare capacity: zero-filling a large frame first costs as much as
        // copying it.
        let mut payload = Vec::with_capacity(len);
        let (got, _) = read_full(fd, len, true, |got| {
            os::io::read_spare(fd, &mut payload, len - got)
        })?;
        self.poll_first = if try_first && waited {
            POLL_FIRST
        } else {
            self.poll_first.saturating_sub(1)
        };
        if got < len {
            self.poisoned = true;
            return Err(Error::Malformed("end of file inside a frame"));
        }
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

/// Reads until `want` bytes arrived or end of file, calling `read_at(got)` for each
/// `read(2)` (it reads into the destination after the `got` bytes already there); returns
/// the bytes read and whether a read found nothing there (`EAGAIN`) and had to wait.
/// Retries `EINTR`; waits in `poll`, marked `Blocked(Recv)`, while nothing is there. Unless
/// `try_first`, it polls before the first read.
fn read_full(
    fd: BorrowedFd<'_>,
    want: usize,
    try_first: bool,
    mut read_at: impl FnMut(usize) -> nix::Result<usize>,
) -> Result<(usize, bool)> {
    let mut got = 0;
    let mut waited = false;
    if !try_first && want > 0 {
        let _blocked = blocked(BlockedOn::Recv);
        wait_ready(fd, PollFlags::POLLIN, &Deadline::after(None))?;
    }
    while got < want {
        match read_at(got) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(Errno::EINTR) => continue,
            Err(Errno::EAGAIN) => {
                let _blocked = blocked(BlockedOn::Recv);
                wait_ready(fd, PollFlags::POLLIN, &Deadline::after(None))?;
                waited = true;
            }
            Err(Errno::ECONNRESET) => break,
            Err(errno) => return Err(Error::os("read", errno)),
        }
    }
    Ok((got, waited))
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
