//! The proclife side of the benchmarks: spawn+join through `proclife::Process`, echo and sink
//! children over proclife's `Connection` and `Queue`, and one critical section of its `Lock`.
//!
//! Each fixture mirrors a raw fixture of [`crate::raw`]: the same protocol, the same checks,
//! the same helper children. The helper children of the IPC and lock benchmarks are started
//! by the raw [`fork_helper`], not by `proclife::Process`: how a process is started is what
//! the `spawn_join` group measures, and a round trip or a lock figure must not depend on it.
//! So a proclife row and its baseline differ only in the code under test, at both ends.

use std::fmt;

use proclife::ipc::{Connection, Queue, pipe};
use proclife::sync::Lock;
use proclife::{Process, StartMethod};
use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};

use crate::raw::ipc::{MIN_MSG, stamp, stamped};
use crate::raw::sync::Control;
use crate::raw::{CHILD_EXIT_BOUND, Child, code, fork_helper};
use crate::{Error, Result};

/// Joins `process` (bounded), checks that its exit code is 0 and closes the handle.
///
/// A child still running after [`CHILD_EXIT_BOUND`] is killed and reported as
/// [`Error::ChildHung`].
///
/// # Errors
///
/// [`Error::Runtime`] from `join_timeout`, `exitcode` or `close`; [`Error::ChildFailed`] for
/// an exit code other than 0; [`Error::ChildHung`].
pub fn join_checked(process: &mut Process) -> Result<()> {
    process
        .join_timeout(CHILD_EXIT_BOUND)
        .map_err(Error::runtime("Process::join_timeout"))?;
    let exitcode = process
        .exitcode()
        .map_err(Error::runtime("Process::exitcode"))?;
    let pid = process
        .pid()
        .ok()
        .flatten()
        .map_or(0, proclife::Pid::as_raw);
    match exitcode {
        Some(0) => process.close().map_err(Error::runtime("Process::close")),
        Some(exitcode) => Err(Error::ChildFailed {
            pid,
            status: format!("ended with exit code {exitcode}"),
        }),
        None => {
            // Errors cannot make this worse: the benchmark fails with ChildHung either way,
            // and the runtime reaps the child at exit if the kill did not land.
            let _ = process.kill();
            let _ = process.join_timeout(CHILD_EXIT_BOUND);
            Err(Error::ChildHung {
                pid,
                secs: CHILD_EXIT_BOUND.as_secs(),
            })
        }
    }
}

/// One spawn+join with the fork start method, as a user writes it: `Process::new(|| ())`,
/// `start`, `join` (bounded), `exitcode() == Some(0)`, `close`.
///
/// # Errors
///
/// [`Error::Runtime`] from `start`; as [`join_checked`].
pub fn fork_start_join() -> Result<()> {
    let mut process = Process::new(|| ());
    process.start().map_err(Error::runtime("Process::start"))?;
    join_checked(&mut process)
}

/// The target of the re-executing start methods' spawn+join: returns at once.
fn noop((): ()) -> proclife::TargetResult {
    Ok(())
}
proclife::entry!(noop);

/// One spawn+join with a re-executing start method (`StartMethod::Spawn` or
/// `StartMethod::ForkServer`), as a user writes it: `Process::builder().start_method(method)
/// .entry(noop, ())` with a registered function that returns at once, `start`, `join`
/// (bounded), `exitcode() == Some(0)`, `close`.
///
/// # Errors
///
/// [`Error::Runtime`] from `start`; as [`join_checked`].
pub fn method_start_join(method: StartMethod) -> Result<()> {
    let mut process = Process::builder().start_method(method).entry(noop, ());
    process.start().map_err(Error::runtime("Process::start"))?;
    join_checked(&mut process)
}

/// Starts this process's fork server if none runs, with one spawn+join through it, so that
/// the server is a copy of the process as it is now (before a benchmark grows it).
///
/// # Errors
///
/// As [`method_start_join`].
pub fn ensure_fork_server() -> Result<()> {
    if proclife::fork_server_pid().is_some() {
        return Ok(());
    }
    method_start_join(StartMethod::ForkServer)
}

/// Starts `n` processes that return at once, then joins and checks each, in start order.
///
/// `processes` is scratch space kept between calls, so that the loop does not grow a vector
/// each time. Every process that was started is joined, even when a later start or an
/// earlier join fails.
///
/// # Errors
///
/// The first error of a start (as [`fork_start_join`]) or of a join (as [`join_checked`]).
pub fn fork_batch_start_join(processes: &mut Vec<Process>, n: usize) -> Result<()> {
    processes.clear();
    let mut first_error = None;
    for _ in 0..n {
        let mut process = Process::new(|| ());
        match process.start() {
            Ok(()) => processes.push(process),
            Err(source) => {
                first_error = Some(Error::Runtime {
                    call: "Process::start",
                    source,
                });
                break;
            }
        }
    }
    for process in processes.iter_mut() {
        if let Err(err) = join_checked(process) {
            first_error.get_or_insert(err);
        }
    }
    processes.clear();
    first_error.map_or(Ok(()), Err)
}

/// One side's ends of a proclife channel: one duplex connection (`pipe(true)`, a Unix
/// socket pair), or a sending and a receiving end of two one-way ones (`pipe(false)`, two
/// pipes, the layout of the raw pipe baseline).
#[derive(Debug)]
struct Link {
    send: Connection,
    /// The receiving end when it is not `send` itself.
    recv: Option<Connection>,
}

impl Link {
    /// The two sides of a new link: (parent's, child's).
    fn pair(duplex: bool) -> Result<(Link, Link)> {
        let pipe = |duplex| pipe(duplex).map_err(Error::runtime("proclife::ipc::pipe"));
        if duplex {
            let (parent, child) = pipe(true)?;
            return Ok((
                Link {
                    send: parent,
                    recv: None,
                },
                Link {
                    send: child,
                    recv: None,
                },
            ));
        }
        let (down_rx, down_tx) = pipe(false)?;
        let (up_rx, up_tx) = pipe(false)?;
        Ok((
            Link {
                send: down_tx,
                recv: Some(up_rx),
            },
            Link {
                send: up_tx,
                recv: Some(down_rx),
            },
        ))
    }

    fn send_bytes(&mut self, bytes: &[u8]) -> proclife::Result<()> {
        self.send.send_bytes(bytes)
    }

    fn recv_bytes(&mut self) -> proclife::Result<Vec<u8>> {
        match &mut self.recv {
            Some(recv) => recv.recv_bytes(),
            None => self.send.recv_bytes(),
        }
    }
}

/// Forks a helper child that runs `body` on its side of a new link and returns the parent's
/// side. Each process drops the other's ends right after the fork, so closing the parent's
/// side is an end of file ([`proclife::Error::Disconnected`]) for the child.
fn fork_with_link(duplex: bool, body: impl FnOnce(&mut Link) -> i32) -> Result<(Link, Child)> {
    let (parent, child_side) = Link::pair(duplex)?;
    let mut parent = Some(parent);
    let mut child_side = Some(child_side);
    let child = fork_helper(|| {
        drop(parent.take());
        match child_side.take() {
            Some(mut link) => body(&mut link),
            None => code::PANIC,
        }
    })?;
    drop(child_side);
    let parent = parent.ok_or_else(|| Error::Invalid {
        what: "link lost before fork".into(),
    })?;
    Ok((parent, child))
}

/// An echo child over proclife `Pipe`s: it sends back every frame it receives with
/// `recv_bytes`/`send_bytes`, and exits 0 when the parent closes its end. The counterpart of
/// [`crate::raw::ipc::Echo`].
#[derive(Debug)]
pub struct ConnectionEcho {
    link: Link,
    child: Child,
}

impl ConnectionEcho {
    /// Forks the echo child over a new `pipe(true)` (`duplex`), or over two `pipe(false)`.
    ///
    /// # Errors
    ///
    /// [`Error::Runtime`] from `pipe`; as [`fork_helper`].
    pub fn start(duplex: bool) -> Result<Self> {
        let (link, child) = fork_with_link(duplex, |link| {
            loop {
                match link.recv_bytes() {
                    Ok(message) => {
                        if link.send_bytes(&message).is_err() {
                            return code::WRITE;
                        }
                    }
                    Err(proclife::Error::Disconnected) => return code::OK,
                    Err(_) => return code::READ,
                }
            }
        })?;
        Ok(ConnectionEcho { link, child })
    }

    /// Sends `value` as one 8-byte frame, receives the echo and checks it is the same.
    ///
    /// # Errors
    ///
    /// [`Error::Runtime`] from `send_bytes`/`recv_bytes` (or the child's own failure when it
    /// died), [`Error::Corrupt`] when the echo differs.
    pub fn round_trip(&mut self, value: u64) -> Result<()> {
        let out = value.to_le_bytes();
        let exchanged = self
            .link
            .send_bytes(&out)
            .and_then(|()| self.link.recv_bytes());
        let back = match exchanged {
            Ok(back) => back,
            Err(source) => {
                return Err(self.child.blame(Error::Runtime {
                    call: "Connection::send_bytes/recv_bytes",
                    source,
                }));
            }
        };
        if back != out {
            return Err(Error::Corrupt {
                what: format!("sent {value}, echo was {back:?}"),
            });
        }
        Ok(())
    }

    /// Closes the parent's ends and waits (bounded) for the child to exit with status 0.
    ///
    /// # Errors
    ///
    /// As [`Child::wait`].
    pub fn finish(mut self) -> Result<()> {
        drop(self.link);
        self.child.wait(CHILD_EXIT_BOUND)
    }
}

/// A sink child over a proclife duplex `Pipe` (`pipe(true)`), with the protocol of
/// [`crate::raw::ipc::Sink`]: a count frame, that many stamped messages, each checked by the
/// child, and the count frame sent back as the acknowledgement.
#[derive(Debug)]
pub struct ConnectionSink {
    link: Link,
    child: Child,
    message: Vec<u8>,
}

/// The count frame's payload.
fn count_header(count: u64) -> [u8; 8] {
    count.to_le_bytes()
}

/// Reads a count frame; `None` when it is not 8 bytes.
fn parse_count(frame: &[u8]) -> Option<u64> {
    <[u8; 8]>::try_from(frame).ok().map(u64::from_le_bytes)
}

impl ConnectionSink {
    /// Forks the sink child for messages of `message_len` bytes.
    ///
    /// # Errors
    ///
    /// [`Error::Invalid`] when `message_len` is below [`MIN_MSG`]; as
    /// [`ConnectionEcho::start`] otherwise.
    pub fn start(message_len: usize) -> Result<Self> {
        if message_len < MIN_MSG {
            return Err(Error::Invalid {
                what: format!("message of {message_len} bytes is too short"),
            });
        }
        let (link, child) = fork_with_link(true, |link| {
            loop {
                let header = match link.recv_bytes() {
                    Ok(header) => header,
                    Err(proclife::Error::Disconnected) => return code::OK,
                    Err(_) => return code::READ,
                };
                let Some(count) = parse_count(&header) else {
                    return code::CORRUPT;
                };
                for seq in 0..count {
                    match link.recv_bytes() {
                        Ok(message) if message.len() == message_len && stamped(&message, seq) => {}
                        Ok(_) => return code::CORRUPT,
                        Err(proclife::Error::Disconnected) => return code::TRUNCATED,
                        Err(_) => return code::READ,
                    }
                }
                if link.send_bytes(&header).is_err() {
                    return code::WRITE;
                }
            }
        })?;
        Ok(ConnectionSink {
            link,
            child,
            message: vec![0u8; message_len],
        })
    }

    /// Sends `count` stamped messages and waits for the acknowledgement that all arrived
    /// intact.
    ///
    /// # Errors
    ///
    /// [`Error::Runtime`] from the transfer (or the child's own failure when it died),
    /// [`Error::Corrupt`] when the acknowledgement is wrong.
    pub fn transfer(&mut self, count: u64) -> Result<()> {
        let ack = match self.send(count) {
            Ok(ack) => ack,
            Err(source) => {
                return Err(self.child.blame(Error::Runtime {
                    call: "Connection::send_bytes/recv_bytes",
                    source,
                }));
            }
        };
        if parse_count(&ack) != Some(count) {
            return Err(Error::Corrupt {
                what: format!("sent {count} messages, sink acknowledged {ack:?}"),
            });
        }
        Ok(())
    }

    fn send(&mut self, count: u64) -> proclife::Result<Vec<u8>> {
        self.link.send_bytes(&count_header(count))?;
        for seq in 0..count {
            stamp(&mut self.message, seq);
            self.link.send_bytes(&self.message)?;
        }
        self.link.recv_bytes()
    }

    /// Closes the parent's end and waits (bounded) for the child to exit with status 0.
    ///
    /// # Errors
    ///
    /// As [`Child::wait`].
    pub fn finish(mut self) -> Result<()> {
        drop(self.link);
        self.child.wait(CHILD_EXIT_BOUND)
    }
}

/// A byte string that serde encodes as one byte string (postcard: a length, then the
/// bytes, copied at once), the counterpart of the `bytes` objects the CPython benchmarks put
/// in their queues.
///
/// A plain `Vec<u8>` would be encoded by serde as a sequence of separately encoded `u8`s,
/// which measures the element-by-element loop rather than the queue.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Bytes(pub Vec<u8>);

impl Serialize for Bytes {
    fn serialize<S: Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        serializer.serialize_bytes(&self.0)
    }
}

impl<'de> Deserialize<'de> for Bytes {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        struct BytesVisitor;

        impl Visitor<'_> for BytesVisitor {
            type Value = Bytes;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a byte string")
            }

            fn visit_bytes<E: de::Error>(self, v: &[u8]) -> std::result::Result<Bytes, E> {
                Ok(Bytes(v.to_vec()))
            }

            fn visit_byte_buf<E: de::Error>(self, v: Vec<u8>) -> std::result::Result<Bytes, E> {
                Ok(Bytes(v))
            }
        }

        deserializer.deserialize_byte_buf(BytesVisitor)
    }
}

/// Two proclife `Queue`s of the default capacity, to and from a helper child.
#[derive(Debug)]
struct QueuePair {
    to_child: Queue<Bytes>,
    from_child: Queue<Bytes>,
}

impl QueuePair {
    fn new() -> Result<Self> {
        Ok(QueuePair {
            to_child: Queue::new(0).map_err(Error::runtime("Queue::new"))?,
            from_child: Queue::new(0).map_err(Error::runtime("Queue::new"))?,
        })
    }

    /// Puts the empty byte string, which tells the child to exit, and waits (bounded) for
    /// it to exit with status 0.
    fn finish(&self, mut child: Child) -> Result<()> {
        let stop = self
            .to_child
            .put_timeout(&Bytes::default(), Some(CHILD_EXIT_BOUND))
            .map_err(Error::runtime("Queue::put_timeout"));
        match stop {
            Ok(()) => child.wait(CHILD_EXIT_BOUND),
            Err(err) => Err(child.blame(err)),
        }
    }
}

/// An echo child over two proclife `Queue`s (the layout of CPython's queue benchmark): it
/// puts back every byte string it gets, and exits 0 at the empty one.
///
/// Every `put` and `get` of the parent has a bound, as the CPython benchmark's `get` has;
/// a queue has no end of file that would tell it the child died.
#[derive(Debug)]
pub struct QueueEcho {
    queues: QueuePair,
    child: Child,
    out: Bytes,
}

impl QueueEcho {
    /// Creates the two queues and forks the echo child.
    ///
    /// # Errors
    ///
    /// [`Error::Runtime`] from `Queue::new`; as [`fork_helper`].
    pub fn start() -> Result<Self> {
        let queues = QueuePair::new()?;
        let child = fork_helper(|| {
            loop {
                match queues.to_child.get() {
                    Ok(message) if message.0.is_empty() => return code::OK,
                    Ok(message) => {
                        if queues.from_child.put(&message).is_err() {
                            return code::WRITE;
                        }
                    }
                    Err(_) => return code::READ,
                }
            }
        })?;
        Ok(QueueEcho {
            queues,
            child,
            out: Bytes(Vec::with_capacity(8)),
        })
    }

    /// Puts `value` as an 8-byte string, gets the echo and checks it is the same.
    ///
    /// # Errors
    ///
    /// [`Error::Runtime`] from `put_timeout`/`get_timeout` (or the child's own failure when
    /// it died), [`Error::Corrupt`] when the echo differs.
    pub fn round_trip(&mut self, value: u64) -> Result<()> {
        self.out.0.clear();
        self.out.0.extend_from_slice(&value.to_le_bytes());
        let queues = &self.queues;
        let exchanged = queues
            .to_child
            .put_timeout(&self.out, Some(CHILD_EXIT_BOUND))
            .and_then(|()| queues.from_child.get_timeout(Some(CHILD_EXIT_BOUND)));
        let back = match exchanged {
            Ok(back) => back,
            Err(source) => {
                return Err(self.child.blame(Error::Runtime {
                    call: "Queue::put_timeout/get_timeout",
                    source,
                }));
            }
        };
        if back != self.out {
            return Err(Error::Corrupt {
                what: format!("sent {value}, echo was {:?}", back.0),
            });
        }
        Ok(())
    }

    /// Tells the child to exit and waits (bounded) for status 0.
    ///
    /// # Errors
    ///
    /// [`Error::Runtime`] when the stop message cannot be put; as [`Child::wait`].
    pub fn finish(self) -> Result<()> {
        self.queues.finish(self.child)
    }
}

/// A sink child over two proclife `Queue`s, with the protocol of
/// [`crate::raw::ipc::Sink`]: a count, that many stamped messages, each checked by the
/// child, and the count put back as the acknowledgement; the empty byte string ends it.
#[derive(Debug)]
pub struct QueueSink {
    queues: QueuePair,
    child: Child,
    message: Bytes,
}

impl QueueSink {
    /// Creates the two queues and forks the sink child for messages of `message_len` bytes.
    ///
    /// # Errors
    ///
    /// [`Error::Invalid`] when `message_len` is below [`MIN_MSG`]; as [`QueueEcho::start`]
    /// otherwise.
    pub fn start(message_len: usize) -> Result<Self> {
        if message_len < MIN_MSG {
            return Err(Error::Invalid {
                what: format!("message of {message_len} bytes is too short"),
            });
        }
        let queues = QueuePair::new()?;
        let child = fork_helper(|| {
            loop {
                let header = match queues.to_child.get() {
                    Ok(header) if header.0.is_empty() => return code::OK,
                    Ok(header) => header,
                    Err(_) => return code::READ,
                };
                let Some(count) = parse_count(&header.0) else {
                    return code::CORRUPT;
                };
                for seq in 0..count {
                    match queues.to_child.get() {
                        Ok(message)
                            if message.0.len() == message_len && stamped(&message.0, seq) => {}
                        Ok(_) => return code::CORRUPT,
                        Err(_) => return code::READ,
                    }
                }
                if queues.from_child.put(&header).is_err() {
                    return code::WRITE;
                }
            }
        })?;
        Ok(QueueSink {
            queues,
            child,
            message: Bytes(vec![0u8; message_len]),
        })
    }

    /// Puts `count` stamped messages and waits for the acknowledgement that all arrived
    /// intact.
    ///
    /// # Errors
    ///
    /// [`Error::Runtime`] from the transfer (or the child's own failure when it died),
    /// [`Error::Corrupt`] when the acknowledgement is wrong.
    pub fn transfer(&mut self, count: u64) -> Result<()> {
        let ack = match self.send(count) {
            Ok(ack) => ack,
            Err(source) => {
                return Err(self.child.blame(Error::Runtime {
                    call: "Queue::put_timeout/get_timeout",
                    source,
                }));
            }
        };
        if parse_count(&ack.0) != Some(count) {
            return Err(Error::Corrupt {
                what: format!("sent {count} messages, sink acknowledged {:?}", ack.0),
            });
        }
        Ok(())
    }

    fn send(&mut self, count: u64) -> proclife::Result<Bytes> {
        let bound = Some(CHILD_EXIT_BOUND);
        let queues = &self.queues;
        queues
            .to_child
            .put_timeout(&Bytes(count_header(count).to_vec()), bound)?;
        for seq in 0..count {
            stamp(&mut self.message.0, seq);
            queues.to_child.put_timeout(&self.message, bound)?;
        }
        queues.from_child.get_timeout(bound)
    }

    /// Tells the child to exit and waits (bounded) for status 0.
    ///
    /// # Errors
    ///
    /// [`Error::Runtime`] when the stop message cannot be put; as [`Child::wait`].
    pub fn finish(self) -> Result<()> {
        self.queues.finish(self.child)
    }
}

/// One critical section through proclife's `Lock`: `acquire(None)`, [`Control::bump`],
/// `release`. The counterpart of [`crate::raw::sync::RobustMutex::lock_unlock`].
///
/// # Errors
///
/// [`Error::Runtime`] from `acquire` (for example `OwnerDied`) or `release`;
/// [`Error::Invalid`] when an acquire without timeout reports that it timed out.
pub fn lock_section(lock: &Lock, control: &Control) -> Result<()> {
    match lock.acquire(None) {
        Ok(true) => {}
        Ok(false) => {
            return Err(Error::Invalid {
                what: "Lock::acquire(None) returned false".into(),
            });
        }
        Err(source) => {
            return Err(Error::Runtime {
                call: "Lock::acquire",
                source,
            });
        }
    }
    control.bump();
    lock.release().map_err(Error::runtime("Lock::release"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_round_trip_through_a_queue() -> Result<()> {
        let queue = Queue::<Bytes>::with_capacity(0, 4096).map_err(Error::runtime("new"))?;
        let sent = Bytes((0..=255u8).collect());
        queue.put(&sent).map_err(Error::runtime("put"))?;
        assert_eq!(queue.get().map_err(Error::runtime("get"))?, sent);
        Ok(())
    }

    #[test]
    fn count_frames_are_eight_bytes() {
        assert_eq!(parse_count(&count_header(42)), Some(42));
        assert_eq!(parse_count(&[1, 2, 3]), None);
    }

    #[test]
    fn lock_section_counts_once() -> Result<()> {
        let lock = Lock::new().map_err(Error::runtime("Lock::new"))?;
        let control = Control::new()?;
        for _ in 0..3 {
            lock_section(&lock, &control)?;
        }
        assert_eq!(control.counter(), 3);
        assert!(!lock.is_held());
        Ok(())
    }
}
