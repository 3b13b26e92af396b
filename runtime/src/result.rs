//! Typed results: a child whose return value, or panic message, comes back to the parent
//! through [`JoinHandle::join`]; mirrors `concurrent.futures.Future.result()` of a
//! `ProcessPoolExecutor` and procspawn's `JoinHandle::join`.
//!
//! The child sends one frame over a one-way [`pipe`] the runtime creates
//! for it: the value encoded with postcard, or the panic's message. The parent reads the
//! frame while the child runs (a value larger than the pipe's buffer does not deadlock),
//! checks its announced length against [`JoinHandle::max_size`] before allocating
//! anything, then waits for the child's exit. A child that exits without a frame (a signal,
//! `std::process::exit`, a crash mid-frame) is a typed [`ResultError`], never a hang: the
//! parent holds no copy of the pipe's write end, so the child's end of file is seen.
//!
//! Under [`StartMethod::Fork`](crate::StartMethod::Fork) the target is any closure
//! ([`Builder::target_returning`]); under every method it can be a function registered with
//! [`entry_returning!`](crate::entry_returning) ([`Builder::entry_returning`]).
#![forbid(unsafe_code)]

use std::any::type_name;
use std::ops::{Deref, DerefMut};
use std::os::fd::OwnedFd;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::error::Error;
use crate::ipc::{Connection, Waitable, pipe, wait};
use crate::os::time::Deadline;
use crate::process::Builder;
use crate::process::Process;
use crate::start::entry::{EntryTarget, Prepared};
use crate::start::launch::TargetSlot;
use crate::start::pass;
use crate::start::target::TargetResult;
use crate::testing::panic_message;

/// The largest encoded result a [`JoinHandle`] accepts unless told otherwise: 64 MiB.
pub const DEFAULT_MAX_SIZE: usize = crate::ipc::DEFAULT_MAX_FRAME;

/// Why a typed result did not come back.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ResultError {
    /// The target panicked in the child; the panic's message (CPython: the exception
    /// `Future.result()` re-raises).
    #[error("the child panicked: {message}")]
    Panicked {
        /// The panic message, or `Box<dyn Any>` for a payload that is not a string.
        message: String,
    },
    /// The child was killed by `signal` before it sent a result (its exit code is
    /// `-signal`).
    #[error("the child was killed by signal {signal} before it sent a result")]
    Killed {
        /// The signal number.
        signal: i32,
    },
    /// The child exited with `exitcode` without sending a result (`std::process::exit` in
    /// the target, or a crash in the middle of sending).
    #[error("the child exited with code {exitcode} without sending a result")]
    NoResult {
        /// The child's exit code.
        exitcode: i32,
    },
    /// The value arrived but does not decode as the handle's type.
    #[error("the child's result does not decode: {0}")]
    Decode(postcard::Error),
    /// The child could not encode its value (a serializer error, or an IPC object in the
    /// value, which only travels as a process argument).
    #[error("the child could not encode its result: {message}")]
    Unencodable {
        /// The encoder's message.
        message: String,
    },
    /// The encoded value is larger than the handle's [`JoinHandle::max_size`]; nothing of
    /// that size was allocated.
    #[error("the child's result is {len} bytes, more than the maximum of {max}")]
    TooLarge {
        /// The size the child announced, in bytes.
        len: u64,
        /// The maximum, in bytes.
        max: u64,
    },
    /// [`JoinHandle::result`] timed out; the handle stays usable (CPython:
    /// `TimeoutError`).
    #[error("timed out waiting for the child's result")]
    Timeout,
    /// The result was already returned by an earlier call.
    #[error("the result was already taken")]
    Taken,
    /// A life-cycle error of the process itself (not started, closed, ...).
    #[error(transparent)]
    Process(#[from] Error),
}

/// What the child sends: one frame.
#[derive(Debug, Serialize, Deserialize)]
enum Wire<T> {
    Value(T),
    Panic(String),
    Unencodable(String),
    TooLarge(u64),
}

/// The child's end: where the target's value goes. Not part of the public API.
#[doc(hidden)]
#[derive(Debug, Serialize, Deserialize)]
pub struct ResultSender {
    conn: Connection,
    max: u64,
}

impl ResultSender {
    /// Runs `f`, sends its value or its panic's message, and ends like the target would
    /// have: a panic goes on unwinding (exit code 1) after it was reported.
    fn run<T: Serialize>(mut self, f: impl FnOnce() -> T) -> TargetResult {
        match catch_unwind(AssertUnwindSafe(f)) {
            Ok(value) => {
                let frame = match postcard::to_stdvec(&Wire::Value(&value)) {
                    Ok(bytes) if bytes.len() as u64 <= self.max => bytes,
                    Ok(bytes) => postcard::to_stdvec(&Wire::<()>::TooLarge(bytes.len() as u64))?,
                    Err(error) => postcard::to_stdvec(&Wire::<()>::Unencodable(error.to_string()))?,
                };
                self.conn
                    .set_max_frame(frame.len().max(self.conn.max_frame()))?;
                self.conn.send_bytes(&frame)?;
                Ok(())
            }
            Err(payload) => {
                let message = panic_message(payload.as_ref());
                // The parent learns of the panic from the message or, if even this fails,
                // from the exit code; the panic goes on either way.
                let _ = self.conn.send(&Wire::<()>::Panic(message));
                drop(self);
                resume_unwind(payload)
            }
        }
    }
}

/// A process whose target returns a value; mirrors procspawn's `JoinHandle` and, with
/// [`JoinHandle::result`], `concurrent.futures.Future.result(timeout)`.
///
/// It dereferences to its [`Process`]: `start`, `pid`, `is_alive`, `terminate`, `kill`,
/// `sentinel` and the rest work as there. Dropping it closes the result pipe; a child still
/// sending then gets `EPIPE` and ends.
///
/// ```no_run
/// use proclife::Process;
/// use proclife::result::ResultError;
///
/// # fn main() -> Result<(), ResultError> {
/// let mut h = Process::builder().target_returning(|| vec![1u32, 2, 3]);
/// h.start()?;
/// assert_eq!(h.join()?, vec![1, 2, 3]);
///
/// let mut h = Process::builder().target_returning(|| -> u32 { panic!("no value") });
/// h.start()?;
/// assert!(matches!(h.join(), Err(ResultError::Panicked { message }) if message == "no value"));
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
#[must_use = "a process does nothing until it is started"]
pub struct JoinHandle<T> {
    process: Process,
    results: Option<Connection>,
    max_size: usize,
    /// The frame, once read; `None` after end of file without one.
    frame: Option<std::result::Result<Vec<u8>, ResultError>>,
    reader: FrameReader,
    taken: bool,
    _t: std::marker::PhantomData<fn() -> T>,
}

impl<T> Deref for JoinHandle<T> {
    type Target = Process;

    fn deref(&self) -> &Process {
        &self.process
    }
}

impl<T> DerefMut for JoinHandle<T> {
    fn deref_mut(&mut self) -> &mut Process {
        &mut self.process
    }
}

impl<T> JoinHandle<T> {
    /// The process.
    pub fn process(&self) -> &Process {
        &self.process
    }

    /// The largest encoded result accepted, in bytes ([`DEFAULT_MAX_SIZE`] unless set).
    pub fn max_size(&self) -> usize {
        self.max_size
    }
}

impl<T: DeserializeOwned> JoinHandle<T> {
    fn new(process: Process, results: Connection, max_size: usize) -> JoinHandle<T> {
        JoinHandle {
            process,
            results: Some(results),
            max_size,
            frame: None,
            reader: FrameReader::default(),
            taken: false,
            _t: std::marker::PhantomData,
        }
    }

    /// Waits for the child to exit and returns the target's value; mirrors procspawn's
    /// `JoinHandle::join` and CPython's `Future.result()`.
    ///
    /// # Errors
    ///
    /// [`ResultError::Panicked`], [`ResultError::Killed`], [`ResultError::NoResult`],
    /// [`ResultError::Decode`], [`ResultError::Unencodable`], [`ResultError::TooLarge`];
    /// [`ResultError::Process`] with the error [`Process::join`] gives (not started,
    /// closed).
    pub fn join(mut self) -> std::result::Result<T, ResultError> {
        self.result(None)
    }

    /// Waits at most `timeout` (`None`: forever) for the child to exit and returns the
    /// target's value; mirrors `concurrent.futures.Future.result(timeout)`.
    ///
    /// # Errors
    ///
    /// [`ResultError::Timeout`] when the child has not exited in time (the handle stays
    /// usable; a frame already read is kept); [`ResultError::Taken`] after a call that
    /// returned the value or a final error; otherwise as [`JoinHandle::join`].
    pub fn result(&mut self, timeout: Option<Duration>) -> std::result::Result<T, ResultError> {
        if self.taken {
            return Err(ResultError::Taken);
        }
        let deadline = Deadline::after(timeout);
        // A not-yet-started process is the join's own error.
        self.process.sentinel().map_err(|e| match e {
            Error::SentinelNotStarted => Error::JoinNotStarted,
            other => other,
        })?;
        while self.frame.is_none() {
            let Some(results) = self.results.as_ref() else {
                break;
            };
            let objects: [&dyn Waitable; 2] = [&self.process, results];
            let ready = wait(&objects, deadline.remaining())?;
            if ready.is_empty() {
                return Err(ResultError::Timeout);
            }
            let exited = ready.contains(&0);
            match self.reader.read(results.fd()?, self.max_size)? {
                Progress::Frame(bytes) => self.frame = Some(Ok(bytes)),
                Progress::TooLarge(len) => {
                    self.frame = Some(Err(ResultError::TooLarge {
                        len,
                        max: self.max_size as u64,
                    }));
                }
                // End of file, or the child exited and the pipe holds nothing more: no
                // (complete) frame will come. A copy of the write end held by another
                // process (forked while this handle was new) cannot delay this.
                Progress::Eof => {}
                Progress::Partial if exited => {}
                Progress::Partial => continue,
            }
            // One frame per child; closing also unblocks a child still writing an
            // oversized one (its write fails with EPIPE).
            self.results = None;
        }
        match deadline.remaining() {
            None => self.process.join()?,
            Some(left) => self.process.join_timeout(left)?,
        }
        let Some(exitcode) = self.process.exitcode()? else {
            return Err(ResultError::Timeout);
        };
        self.taken = true;
        match self.frame.take() {
            Some(Ok(bytes)) => match postcard::from_bytes::<Wire<T>>(&bytes) {
                Ok(Wire::Value(value)) => Ok(value),
                Ok(Wire::Panic(message)) => Err(ResultError::Panicked { message }),
                Ok(Wire::Unencodable(message)) => Err(ResultError::Unencodable { message }),
                Ok(Wire::TooLarge(len)) => Err(ResultError::TooLarge {
                    len,
                    max: self.max_size as u64,
                }),
                Err(error) => Err(ResultError::Decode(error)),
            },
            Some(Err(error)) => Err(error),
            None if exitcode < 0 => Err(ResultError::Killed { signal: -exitcode }),
            None => Err(ResultError::NoResult { exitcode }),
        }
    }

    /// Sets the largest encoded result accepted, in bytes, before the start. The parent
    /// compares the length the child announces with it before allocating anything and
    /// closes the pipe on a larger one ([`ResultError::TooLarge`]; the child's send then
    /// fails with `EPIPE`). The child itself refuses to send more than [`DEFAULT_MAX_SIZE`]
    /// and reports [`ResultError::TooLarge`] instead.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] above `isize::MAX - 8`, or after the start.
    pub fn set_max_size(&mut self, max_size: usize) -> crate::error::Result<()> {
        if self.process.pid()?.is_some() {
            return Err(Error::InvalidArgument(
                "the result size limit is fixed once the process started",
            ));
        }
        if max_size > isize::MAX as usize - crate::ipc::HEADER_LEN {
            return Err(Error::InvalidArgument("max_size too large"));
        }
        self.max_size = max_size;
        Ok(())
    }
}

/// How far [`FrameReader::read`] got.
#[derive(Debug)]
enum Progress {
    /// A whole frame's payload.
    Frame(Vec<u8>),
    /// The header announces a payload above the maximum; nothing of it was allocated.
    TooLarge(u64),
    /// End of file before a whole frame.
    Eof,
    /// Nothing more to read for now.
    Partial,
}

/// Reads one frame (the [`Connection`] format: an 8-byte little-endian length, then the
/// payload) from a non-blocking pipe, a piece at a time, so that the caller can watch the
/// child's sentinel between pieces and never blocks inside a torn frame.
#[derive(Debug, Default)]
struct FrameReader {
    header: [u8; crate::ipc::HEADER_LEN],
    header_got: usize,
    /// The payload so far, once the header is complete.
    payload: Option<(usize, Vec<u8>)>,
}

impl FrameReader {
    fn read(
        &mut self,
        fd: std::os::fd::BorrowedFd<'_>,
        max: usize,
    ) -> crate::error::Result<Progress> {
        loop {
            let n = match &mut self.payload {
                None => nix::unistd::read(fd, &mut self.header[self.header_got..]),
                Some((len, payload)) => {
                    if payload.len() == *len {
                        return Ok(Progress::Frame(std::mem::take(payload)));
                    }
                    // Grows with what arrives, a chunk at a time, up to the announced length.
                    let chunk = (*len - payload.len()).min(64 << 10);
                    let at = payload.len();
                    payload.resize(at + chunk, 0);
                    let got = nix::unistd::read(fd, &mut payload[at..]);
                    payload.truncate(at + got.as_ref().map_or(0, |&n| n));
                    got
                }
            };
            match n {
                Ok(0) => return Ok(Progress::Eof),
                Ok(n) if self.payload.is_none() => {
                    self.header_got += n;
                    if self.header_got == self.header.len() {
                        let announced = u64::from_le_bytes(self.header);
                        match usize::try_from(announced) {
                            Ok(len) if len <= max => {
                                self.payload = Some((len, Vec::with_capacity(len.min(64 << 10))));
                            }
                            _ => return Ok(Progress::TooLarge(announced)),
                        }
                    }
                }
                Ok(_) => {}
                Err(nix::errno::Errno::EAGAIN) => return Ok(Progress::Partial),
                Err(nix::errno::Errno::EINTR) => {}
                Err(errno) => return Err(Error::os("read", errno)),
            }
        }
    }
}

/// The result pipe and the child's sender.
fn channel(max: usize) -> crate::error::Result<(Connection, ResultSender)> {
    let (rx, tx) = pipe(false)?;
    // Only the parent reads this end, a piece at a time between its polls (`FrameReader`):
    // it must not block, whatever the kernel supports.
    crate::ipc::set_nonblocking(rx.fd()?)?;
    Ok((
        rx,
        ResultSender {
            conn: tx,
            max: max as u64,
        },
    ))
}

impl Builder {
    /// Builds a process whose target is the closure `f`, whose value (any serde type) or
    /// panic message comes back through [`JoinHandle::join`]; the closure-target start
    /// method is [`StartMethod::Fork`](crate::StartMethod::Fork) (the re-executing methods
    /// refuse a closure at `start` with [`Error::NotPassable`], as for
    /// [`Builder::target`]; use [`Builder::entry_returning`] there).
    pub fn target_returning<T, F>(self, f: F) -> JoinHandle<T>
    where
        T: Serialize + DeserializeOwned + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        let (rx, sender) = match channel(DEFAULT_MAX_SIZE) {
            Ok(pair) => pair,
            Err(error) => return self.failed(error),
        };
        let process = self.fallible_target(move || sender.run(f));
        JoinHandle::new(process, rx, DEFAULT_MAX_SIZE)
    }

    /// Builds a process whose target is the function `f` called with `args`, whose value
    /// (any serde type) or panic message comes back through [`JoinHandle::join`], under
    /// every start method; `f` must be registered with
    /// [`entry_returning!`](crate::entry_returning) for the re-executing ones. Arguments
    /// travel as for [`Builder::entry`].
    pub fn entry_returning<F, A, T>(self, f: F, args: A) -> JoinHandle<T>
    where
        F: FnOnce(A) -> T + Copy + Send + 'static,
        A: Serialize + DeserializeOwned + Send + 'static,
        T: Serialize + DeserializeOwned + 'static,
    {
        let (rx, sender) = match channel(DEFAULT_MAX_SIZE) {
            Ok(pair) => pair,
            Err(error) => return self.failed(error),
        };
        let target = ReturningTarget {
            f,
            args,
            sender,
            _t: std::marker::PhantomData::<fn() -> T>,
        };
        let process = self.build_slot(TargetSlot::Entry(Box::new(target)));
        JoinHandle::new(process, rx, DEFAULT_MAX_SIZE)
    }

    /// A handle whose result pipe could not be made (out of fds): its child runs nothing
    /// and [`JoinHandle::result`] reports `error`.
    fn failed<T: DeserializeOwned>(self, error: Error) -> JoinHandle<T> {
        JoinHandle {
            process: self.no_target(),
            results: None,
            max_size: DEFAULT_MAX_SIZE,
            frame: Some(Err(ResultError::Process(error))),
            reader: FrameReader::default(),
            taken: false,
            _t: std::marker::PhantomData,
        }
    }
}

/// A function target whose value goes back through a [`ResultSender`].
struct ReturningTarget<F, A, T> {
    f: F,
    args: A,
    sender: ResultSender,
    _t: std::marker::PhantomData<fn() -> T>,
}

impl<F, A, T> EntryTarget for ReturningTarget<F, A, T>
where
    F: FnOnce(A) -> T + Copy + Send + 'static,
    A: Serialize + DeserializeOwned + Send + 'static,
    T: Serialize + 'static,
{
    fn key(&self) -> String {
        key_of(&self.f)
    }

    fn encode(&self) -> crate::error::Result<(Vec<u8>, Vec<OwnedFd>)> {
        pass::encode(&(&self.args, &self.sender))
    }

    fn call(self: Box<Self>) -> TargetResult {
        let ReturningTarget {
            f, args, sender, ..
        } = *self;
        sender.run(move || f(args))
    }

    fn call_on_copy(&self) -> TargetResult {
        let (bytes, fds) = self.encode()?;
        let (args, sender): (A, ResultSender) = pass::decode(&bytes, fds)?;
        sender.run(move || (self.f)(args))
    }
}

/// The key of a returning entry point: distinct from [`entry!`](crate::entry)'s.
#[doc(hidden)]
pub fn key_of<F, A, T>(_f: &F) -> String
where
    F: FnOnce(A) -> T,
{
    format!(
        "returning {}({}) -> {}",
        type_name::<F>(),
        type_name::<A>(),
        type_name::<T>()
    )
}

/// Decodes the arguments and the sender of `f`; used by
/// [`entry_returning!`](crate::entry_returning).
#[doc(hidden)]
pub fn prepare<F, A, T>(bytes: &[u8], fds: Vec<OwnedFd>, f: F) -> crate::error::Result<Prepared>
where
    F: FnOnce(A) -> T + 'static,
    A: DeserializeOwned + 'static,
    T: Serialize + 'static,
{
    let (args, sender): (A, ResultSender) = pass::decode(bytes, fds)?;
    Ok(Box::new(move || sender.run(move || f(args))))
}

impl<T> Waitable for JoinHandle<T> {
    fn readiness(&self) -> crate::error::Result<crate::ipc::Readiness<'_>> {
        self.process().readiness()
    }
}

#[cfg(test)]
mod tests {
    use std::os::fd::AsFd;

    use super::*;

    #[test]
    fn a_forged_length_is_refused_before_any_allocation() -> crate::error::Result<()> {
        let (rx, mut tx) = pipe(false)?;
        crate::ipc::set_nonblocking(rx.fd()?)?;
        let tx_fd = tx
            .fd()?
            .try_clone_to_owned()
            .map_err(|_| Error::HandleClosed)?;
        tx.close()?;
        let claimed = u64::MAX / 2;
        nix::unistd::write(tx_fd.as_fd(), &claimed.to_le_bytes()[..3])
            .map_err(|e| Error::os("write", e))?;
        let mut reader = FrameReader::default();
        // Three bytes of the header: nothing more to read yet.
        assert!(matches!(reader.read(rx.fd()?, 1024)?, Progress::Partial));
        nix::unistd::write(tx_fd.as_fd(), &claimed.to_le_bytes()[3..])
            .map_err(|e| Error::os("write", e))?;
        match reader.read(rx.fd()?, 1024)? {
            Progress::TooLarge(len) => assert_eq!(len, claimed),
            other => panic!("expected TooLarge, got {other:?}"),
        }
        Ok(())
    }

    #[test]
    fn frames_arrive_in_pieces_and_a_torn_one_is_end_of_file() -> crate::error::Result<()> {
        let (rx, mut tx) = pipe(false)?;
        crate::ipc::set_nonblocking(rx.fd()?)?;
        let tx_fd = tx
            .fd()?
            .try_clone_to_owned()
            .map_err(|_| Error::HandleClosed)?;
        tx.close()?;
        let write = |bytes: &[u8]| {
            nix::unistd::write(tx_fd.as_fd(), bytes).map_err(|e| Error::os("write", e))
        };
        let mut reader = FrameReader::default();
        write(&5u64.to_le_bytes())?;
        write(b"ab")?;
        assert!(matches!(reader.read(rx.fd()?, 5)?, Progress::Partial));
        write(b"cde")?;
        match reader.read(rx.fd()?, 5)? {
            Progress::Frame(bytes) => assert_eq!(bytes, b"abcde"),
            other => panic!("expected the frame, got {other:?}"),
        }
        let mut reader = FrameReader::default();
        write(&9u64.to_le_bytes())?;
        write(b"abc")?;
        drop(tx_fd);
        assert!(matches!(reader.read(rx.fd()?, 9)?, Progress::Eof));
        Ok(())
    }
}
