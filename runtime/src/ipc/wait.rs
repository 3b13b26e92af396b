//! [`wait`]: the first of several processes, connections and queues to become ready;
//! mirrors `multiprocessing.connection.wait(object_list, timeout)`.
//!
//! Processes (their sentinels), connections and raw fds are polled together in one
//! `poll(2)`. Queues live in shared memory and have no fd that becomes readable, so while a
//! queue is among the objects the poll wakes up every [`QUEUE_SLICE`] to look at them.
#![forbid(unsafe_code)]

use std::os::fd::{AsFd, BorrowedFd};
use std::time::Duration;

use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};

use super::{Connection, JoinableQueue, Queue, SimpleQueue};
use crate::error::{Error, Result};
use crate::os::time::Deadline;

/// How often [`wait`] looks at the queues among its objects.
pub const QUEUE_SLICE: Duration = Duration::from_millis(2);

/// How an object tells [`wait`] whether it is ready.
#[doc(hidden)]
pub enum Readiness<'a> {
    /// Ready when the fd is readable (or at end of file, or on an error condition).
    Fd(BorrowedFd<'a>),
    /// No fd: ready when the queue holds an item; looked at every [`QUEUE_SLICE`].
    Queue(&'a dyn QueueReady),
}

impl std::fmt::Debug for Readiness<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Readiness::Fd(fd) => f.debug_tuple("Fd").field(fd).finish(),
            Readiness::Queue(_) => f.write_str("Queue(..)"),
        }
    }
}

/// A queue's readiness, for [`Readiness::Queue`].
#[doc(hidden)]
pub trait QueueReady {
    /// Whether an item is there to get; the error `get` gives on a closed handle.
    fn ready(&self) -> Result<bool>;
}

impl<T> QueueReady for Queue<T> {
    fn ready(&self) -> Result<bool> {
        self.poll_ready()
    }
}

/// An object [`wait`] can wait for (CPython's "waitable object").
///
/// Implemented by [`Process`](crate::Process) and [`JoinHandle`](crate::result::JoinHandle) (ready once the child exited, like its
/// sentinel), [`Connection`] (something to receive, or end of file), [`Queue`],
/// [`SimpleQueue`] and [`JoinableQueue`] (an item to get), and [`BorrowedFd`] (readable).
pub trait Waitable {
    /// What to wait on, or the error the object's own methods give (a closed object).
    #[doc(hidden)]
    fn readiness(&self) -> Result<Readiness<'_>>;
}

impl Waitable for Connection {
    /// The fd; errors as [`Connection::poll`] ([`Error::HandleClosed`], a write-only end,
    /// a poisoned connection).
    fn readiness(&self) -> Result<Readiness<'_>> {
        self.poll(Some(Duration::ZERO))?;
        self.fd().map(Readiness::Fd)
    }
}

impl Waitable for BorrowedFd<'_> {
    fn readiness(&self) -> Result<Readiness<'_>> {
        Ok(Readiness::Fd(self.as_fd()))
    }
}

macro_rules! queue_waitable {
    ($($ty:ident),*) => {$(
        impl<T> Waitable for $ty<T> {
            /// An item to get; errors as `get` ([`Error::HandleClosed`] after `close`).
            fn readiness(&self) -> Result<Readiness<'_>> {
                let queue: &Queue<T> = self.as_queue();
                queue.poll_ready()?;
                Ok(Readiness::Queue(queue))
            }
        }
    )*};
}

queue_waitable!(Queue, SimpleQueue, JoinableQueue);

impl<T> Queue<T> {
    fn as_queue(&self) -> &Queue<T> {
        self
    }
}

impl<T> SimpleQueue<T> {
    fn as_queue(&self) -> &Queue<T> {
        self.ring_queue()
    }
}

impl<T> JoinableQueue<T> {
    fn as_queue(&self) -> &Queue<T> {
        self.ring_queue()
    }
}

/// Waits until at least one of `objects` is ready, or `timeout` (`None`: forever, zero:
/// check once) has passed; returns the positions in `objects` of those ready, in order
/// (empty after a timeout). Mirrors `multiprocessing.connection.wait(object_list, timeout)`,
/// which returns the ready objects themselves.
///
/// A [`Process`] is ready once its child has exited (its sentinel is readable); a
/// [`Connection`] when [`Connection::recv`] would not block (a frame or the start of one,
/// or end of file: the peer closed or died, as in CPython); a queue when it holds an item;
/// a [`BorrowedFd`] when it is readable. Readiness is a snapshot: another reader may take
/// the item first.
///
/// ```no_run
/// use std::time::Duration;
/// use proclife::ipc::{Waitable, pipe, wait};
/// use proclife::Process;
///
/// # fn main() -> proclife::Result<()> {
/// let (mut rx, mut tx) = pipe(false)?;
/// let mut p = Process::new(move || tx.send(&7u32).unwrap_or(()));
/// p.start()?;
/// let ready = wait(&[&p as &dyn Waitable, &rx], Some(Duration::from_secs(10)))?;
/// if ready.contains(&1) {
///     assert_eq!(rx.recv::<u32>()?, 7);
/// }
/// p.join()?;
/// # Ok(())
/// # }
/// ```
///
/// # Errors
///
/// The error the object's own methods give for the first object that is not usable: a
/// closed [`Process`] is [`Error::Closed`], an unstarted one
/// [`Error::SentinelNotStarted`]; a closed [`Connection`] [`Error::HandleClosed`] (a
/// write-only end [`Error::InvalidArgument`]); a closed queue handle
/// [`Error::HandleClosed`]. [`Error::InvalidArgument`] for an fd `poll(2)` reports as
/// invalid (`POLLNVAL`); [`Error::Os`] when `poll` fails.
pub fn wait(objects: &[&dyn Waitable], timeout: Option<Duration>) -> Result<Vec<usize>> {
    let mut fds = Vec::with_capacity(objects.len());
    let mut fd_index = Vec::with_capacity(objects.len());
    let mut queues = Vec::new();
    for (i, object) in objects.iter().enumerate() {
        match object.readiness()? {
            Readiness::Fd(fd) => {
                fds.push(PollFd::new(fd, PollFlags::POLLIN));
                fd_index.push(i);
            }
            Readiness::Queue(queue) => queues.push((i, queue)),
        }
    }
    let deadline = Deadline::after(timeout);
    // With queues, the first poll only looks (a queue may be ready already); the later ones
    // wait a slice at most. Queues are looked at after each poll, so that what became
    // ready during it is reported together.
    let mut first = true;
    loop {
        let slice = if queues.is_empty() {
            deadline.remaining()
        } else if first {
            Some(Duration::ZERO)
        } else {
            deadline.capped(QUEUE_SLICE).remaining()
        };
        first = false;
        let poll_timeout = match slice {
            None => PollTimeout::NONE,
            // Rounded up, so that a short wait does not become a busy loop of zero polls.
            Some(left) => PollTimeout::try_from(
                left.as_millis()
                    .saturating_add(u128::from(left.subsec_nanos() % 1_000_000 != 0)),
            )
            .unwrap_or(PollTimeout::MAX),
        };
        match poll(&mut fds, poll_timeout) {
            Ok(_) => {}
            Err(Errno::EINTR) => continue,
            Err(errno) => return Err(Error::os("poll", errno)),
        }
        let mut ready = Vec::new();
        for (fd, &i) in fds.iter().zip(&fd_index) {
            let revents = fd.revents().unwrap_or(PollFlags::empty());
            if revents.contains(PollFlags::POLLNVAL) {
                return Err(Error::InvalidArgument("wait: an fd is not open"));
            }
            if !revents.is_empty() {
                ready.push(i);
            }
        }
        for &(i, queue) in &queues {
            if queue.ready()? {
                ready.push(i);
            }
        }
        if !ready.is_empty() {
            ready.sort_unstable();
            return Ok(ready);
        }
        if deadline.expired() {
            return Ok(ready);
        }
    }
}
