//! `Queue`, `SimpleQueue` and `JoinableQueue`: a framed ring buffer in shared memory.
//!
//! One sealed memfd segment holds a robust mutex, a header, a few futex words and a byte
//! ring of fixed capacity. Each item is a frame: a 16-byte header (payload length, CRC-32 of
//! length and payload, sequence number) and the postcard payload, padded to 8 bytes; frames
//! may wrap around the end of the ring.
//!
//! Crash consistency, the reason for the layout:
//! - `put` copies the whole frame into free space, then publishes it with one store of the
//!   tail; a writer killed before that store leaves bytes nobody will ever read (T23).
//! - `put` returns only after the tail store: a returned `put` means the item is in shared
//!   memory, and the producer may exit or die at once without losing it (T25, T26). There is
//!   no feeder thread, so a child never blocks at exit on unread data.
//! - `get` copies the payload out, then consumes the frame with one store of the head. A
//!   consumer killed before that store leaves the item for the next consumer (redelivered);
//!   killed after it, the item counts as delivered to the dead consumer and is lost (T24).
//! - The counters derived from those stores (item count, published sequence) may be stale
//!   after a death; the next process to take the robust mutex gets `EOWNERDEAD` and rebuilds
//!   them by walking and checking the frames between head and tail.
//!
//! `maxsize` bounds the number of items (0: unbounded, as CPython treats `maxsize <= 0`);
//! the byte capacity bounds the total size of the frames, so `put` also waits for room in
//! bytes. An item larger than the whole ring is [`Error::FrameTooLarge`] at once.
//!
//! The segment is a [`QueueHeader`] (the mutex, the `u64` counters, the `u32` futex words)
//! followed by the ring's `capacity` bytes. Ring bytes are only read or written while
//! holding the mutex, and only between head and tail (reads) or in free space (writes).
#![forbid(unsafe_code)]

use std::marker::PhantomData;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::children::parent_watch;
use crate::children::status::{BlockedOn, blocked};
use crate::error::{Error, Result};
use crate::os::futex;
use crate::os::layout::QueueHeader;
use crate::os::pthread_mutex::{Acquire, RawMutex};
use crate::os::shm::Segment;
use crate::os::time::Deadline;

/// The default byte capacity of a queue's ring: 16 MiB, enough for a child to leave a
/// 10 MiB item and ten thousand small ones behind before it exits.
///
/// The pages are reserved at creation (no `SIGBUS` later), so every queue costs its capacity
/// in shared memory; use [`Queue::with_capacity`] for smaller or larger rings.
pub const DEFAULT_CAPACITY: usize = 16 << 20;

/// The smallest ring a queue accepts.
pub const MIN_CAPACITY: usize = 64;

/// The largest ring a queue accepts (1 TiB).
pub const MAX_CAPACITY: usize = 1 << 40;

const FRAME_HEADER: usize = 16;
const MAGIC_VALUE: u64 = 0x7072_6f63_6c69_6671; // "proclifq"

/// A counter of the header, read with `SeqCst` like every access to the shared words.
fn load(word: &AtomicU64) -> u64 {
    word.load(Ordering::SeqCst)
}

fn store(word: &AtomicU64, value: u64) {
    word.store(value, Ordering::SeqCst);
}

/// CRC-32 (IEEE) of the frame's length and payload.
fn crc32(len: u32, payload: &[u8]) -> u32 {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&len.to_le_bytes());
    hasher.update(payload);
    hasher.finalize()
}

fn frame_len(payload: usize) -> usize {
    FRAME_HEADER + payload.div_ceil(8) * 8
}

/// The ring's mutex, held: released by [`Held::leave`] (which reports an unlock error) or,
/// on an early return, when it drops.
#[must_use = "the ring's mutex is released as soon as the guard drops"]
#[derive(Debug)]
struct Held<'r> {
    ring: &'r Ring,
}

impl Held<'_> {
    /// Releases the mutex.
    fn leave(self) -> Result<()> {
        let ring = self.ring;
        std::mem::forget(self);
        ring.mutex().unlock()
    }
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        // Only on an early return; `leave` reports the error a drop must swallow.
        let _ = self.ring.mutex().unlock();
    }
}

/// The shared ring and the operations every queue flavour is built from.
#[derive(Debug)]
struct Ring {
    seg: Segment<QueueHeader>,
    capacity: usize,
    closed: AtomicBool,
}

impl Ring {
    fn new(maxsize: usize, capacity: usize) -> Result<Ring> {
        if !(MIN_CAPACITY..=MAX_CAPACITY).contains(&capacity) {
            return Err(Error::InvalidArgument("queue capacity out of range"));
        }
        let capacity = capacity.div_ceil(8) * 8;
        let seg = Segment::new(capacity, |header: &QueueHeader, fresh| {
            header.mutex.init(false, fresh)?;
            store(&header.capacity, capacity as u64);
            store(&header.maxsize, maxsize as u64);
            store(&header.magic, MAGIC_VALUE);
            Ok(())
        })?;
        Ok(Ring {
            seg,
            capacity,
            closed: AtomicBool::new(false),
        })
    }

    fn from_fd(fd: OwnedFd) -> Result<Ring> {
        let seg = Segment::<QueueHeader>::from_fd(fd)?;
        if seg.data_len() < MIN_CAPACITY {
            return Err(Error::Malformed("segment too small for a queue"));
        }
        let capacity = usize::try_from(load(&seg.header().capacity)).unwrap_or(0);
        if load(&seg.header().magic) != MAGIC_VALUE || capacity == 0 || capacity > seg.data_len() {
            return Err(Error::Malformed("segment is not a queue"));
        }
        Ok(Ring {
            seg,
            capacity,
            closed: AtomicBool::new(false),
        })
    }

    fn header(&self) -> &QueueHeader {
        self.seg.header()
    }

    fn mutex(&self) -> &RawMutex {
        &self.header().mutex
    }

    fn check_open(&self) -> Result<()> {
        if self.closed.load(Ordering::SeqCst) {
            Err(Error::HandleClosed)
        } else {
            Ok(())
        }
    }

    /// Copies `out.len()` ring bytes starting at monotonic offset `pos`; caller holds the
    /// mutex and `pos..pos + len` lies between head and tail.
    fn copy_out(&self, pos: u64, out: &mut [u8]) {
        let cap = self.capacity;
        let start = (pos % cap as u64) as usize;
        let first = out.len().min(cap - start);
        let (head, wrapped) = out.split_at_mut(first);
        self.seg.copy_out(start, head);
        self.seg.copy_out(0, wrapped);
    }

    /// Copies `len` ring bytes starting at monotonic offset `pos` into a new `Vec`, without
    /// zero-filling it first; same conditions as [`Ring::copy_out`].
    fn copy_out_vec(&self, pos: u64, len: usize) -> Vec<u8> {
        let cap = self.capacity;
        let start = (pos % cap as u64) as usize;
        let first = len.min(cap - start);
        let mut out = Vec::with_capacity(len);
        self.seg.append_out(start, first, &mut out);
        self.seg.append_out(0, len - first, &mut out);
        out
    }

    /// Copies `data` into the ring at monotonic offset `pos`; caller holds the mutex and
    /// the range is free space.
    fn copy_in(&self, pos: u64, data: &[u8]) {
        let cap = self.capacity;
        let start = (pos % cap as u64) as usize;
        let first = data.len().min(cap - start);
        let (head, wrapped) = data.split_at(first);
        self.seg.copy_in(start, head);
        self.seg.copy_in(0, wrapped);
    }

    /// Reads and checks the frame header at `pos`; returns (payload length, crc, seq).
    fn frame_at(&self, pos: u64, tail: u64) -> Result<(usize, u32, u64)> {
        if tail - pos < FRAME_HEADER as u64 {
            return Err(Error::Malformed("queue frame header past the tail"));
        }
        let mut header = [0u8; FRAME_HEADER];
        self.copy_out(pos, &mut header);
        let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize;
        let crc = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
        let mut seq = [0u8; 8];
        seq.copy_from_slice(&header[8..]);
        if frame_len(len) as u64 > tail - pos {
            return Err(Error::Malformed(
                "queue frame longer than the published data",
            ));
        }
        Ok((len, crc, u64::from_le_bytes(seq)))
    }

    /// Rebuilds the derived counters after a process died holding the mutex.
    fn recover(&self) {
        let head = load(&self.header().head);
        let tail = load(&self.header().tail);
        let mut pos = head;
        let mut count = 0u64;
        let mut last_seq = None;
        while pos < tail {
            match self.frame_at(pos, tail) {
                Ok((len, _, seq)) => {
                    pos += frame_len(len) as u64;
                    count += 1;
                    last_seq = Some(seq);
                }
                // Cannot happen without memory corruption: drop what cannot be parsed.
                Err(_) => {
                    store(&self.header().tail, pos);
                    break;
                }
            }
        }
        store(&self.header().count, count);
        if let Some(seq) = last_seq {
            store(&self.header().put_seq, seq + 1);
        }
        // Wake everyone: the dead process may have been about to.
        let header = self.header();
        for word in [&header.not_empty, &header.not_full, &header.all_done] {
            word.fetch_add(1, Ordering::SeqCst);
            futex::wake_all(word);
        }
    }

    /// Takes the ring's mutex (repairing the ring when its holder died); the guard releases
    /// it.
    fn enter(&self, on: BlockedOn) -> Result<Held<'_>> {
        match self.mutex().lock(None, || blocked(on))? {
            Acquire::Acquired => Ok(Held { ring: self }),
            Acquire::OwnerDied => {
                self.recover();
                self.mutex().make_consistent().map(|()| Held { ring: self })
            }
            Acquire::TimedOut => Err(Error::Malformed("untimed lock timed out")),
        }
    }

    /// Sleeps on futex word `word` (sampled under the mutex) until woken or `deadline`,
    /// then re-enters the mutex: `held` is given up for the sleep, and a new guard comes
    /// back with `Ok`; with `Err` the mutex is not held.
    fn sleep<'r>(
        &'r self,
        held: Held<'r>,
        word: &AtomicU32,
        waiters: &AtomicU32,
        deadline: &Deadline,
        on: BlockedOn,
    ) -> Result<Held<'r>> {
        let seq = word.load(Ordering::SeqCst);
        waiters.fetch_add(1, Ordering::SeqCst);
        let res = held.leave().and_then(|()| {
            let _blocked = blocked(on);
            parent_watch::futex_wait(word, seq, deadline)
        });
        waiters.fetch_sub(1, Ordering::SeqCst);
        match res {
            Ok(_) => self.enter(on),
            Err(e) => Err(e),
        }
    }

    fn signal(word: &AtomicU32, waiters: &AtomicU32) {
        word.fetch_add(1, Ordering::SeqCst);
        if waiters.load(Ordering::SeqCst) > 0 {
            futex::wake_all(word);
        }
    }

    fn put_bytes(&self, payload: &[u8], timeout: Option<Duration>) -> Result<()> {
        self.check_open()?;
        let need = frame_len(payload.len());
        let max = self.capacity - FRAME_HEADER;
        let len = u32::try_from(payload.len())
            .ok()
            .filter(|_| need <= self.capacity)
            .ok_or(Error::FrameTooLarge {
                len: payload.len() as u64,
                max: max as u64,
            })?;
        let crc = crc32(len, payload);
        let deadline = Deadline::after(timeout);
        let mut held = self.enter(BlockedOn::Send)?;
        loop {
            let used = load(&self.header().tail) - load(&self.header().head);
            let free = self.capacity as u64 - used;
            let maxsize = load(&self.header().maxsize);
            if (maxsize == 0 || load(&self.header().count) < maxsize) && free >= need as u64 {
                break;
            }
            if deadline.expired() {
                held.leave()?;
                return Err(Error::Full);
            }
            held = self.sleep(
                held,
                &self.header().not_full,
                &self.header().full_waiters,
                &deadline,
                BlockedOn::Send,
            )?;
        }
        let tail = load(&self.header().tail);
        let seq = load(&self.header().put_seq);
        let mut header = [0u8; FRAME_HEADER];
        header[..4].copy_from_slice(&len.to_le_bytes());
        header[4..8].copy_from_slice(&crc.to_le_bytes());
        header[8..].copy_from_slice(&seq.to_le_bytes());
        self.copy_in(tail, &header);
        self.copy_in(tail + FRAME_HEADER as u64, payload);
        // The commit point: one store publishes the whole frame, which must fit the ring.
        let new_tail = tail + need as u64;
        assert!(
            new_tail - load(&self.header().head) <= self.capacity as u64,
            "a committed frame overruns the ring"
        );
        store(&self.header().tail, new_tail);
        store(&self.header().put_seq, seq + 1);
        store(&self.header().count, load(&self.header().count) + 1);
        Ring::signal(&self.header().not_empty, &self.header().empty_waiters);
        held.leave()
    }

    fn get_bytes(&self, timeout: Option<Duration>) -> Result<Vec<u8>> {
        self.check_open()?;
        let deadline = Deadline::after(timeout);
        let mut held = self.enter(BlockedOn::Recv)?;
        while load(&self.header().tail) == load(&self.header().head) {
            if deadline.expired() {
                held.leave()?;
                return Err(Error::Empty);
            }
            held = self.sleep(
                held,
                &self.header().not_empty,
                &self.header().empty_waiters,
                &deadline,
                BlockedOn::Recv,
            )?;
        }
        let out = self.take_head();
        let left = held.leave();
        let payload = out?;
        left?;
        Ok(payload)
    }

    /// Consumes the frame at the head; the caller holds the mutex and the ring is not empty.
    fn take_head(&self) -> Result<Vec<u8>> {
        let head = load(&self.header().head);
        let tail = load(&self.header().tail);
        let checked = self.frame_at(head, tail).and_then(|(len, crc, _seq)| {
            let payload = self.copy_out_vec(head + FRAME_HEADER as u64, len);
            if crc32(len as u32, &payload) == crc {
                Ok((payload, frame_len(len)))
            } else {
                Err(Error::Malformed("queue item failed its checksum"))
            }
        });
        match checked {
            Ok((payload, flen)) => {
                if crate::planted::active("queue-get-leaves-item") {
                    // Planted: the item is copied out but stays at the head (a duplicate).
                    return Ok(payload);
                }
                // The commit point: one store consumes the frame, which lay before the tail.
                let new_head = head + flen as u64;
                assert!(new_head <= tail, "a consumed frame ends past the tail");
                store(&self.header().head, new_head);
                store(
                    &self.header().count,
                    load(&self.header().count).saturating_sub(1),
                );
                Ring::signal(&self.header().not_full, &self.header().full_waiters);
                Ok(payload)
            }
            Err(e) => {
                // Unparseable data cannot be skipped frame by frame: drop it all, keep the
                // queue usable, and report it.
                store(&self.header().head, tail);
                store(&self.header().count, 0);
                Ring::signal(&self.header().not_full, &self.header().full_waiters);
                Err(e)
            }
        }
    }

    fn task_done(&self) -> Result<()> {
        let held = self.enter(BlockedOn::Join)?;
        let done = load(&self.header().done);
        // Planted: one task may be marked done more than were put.
        let slack = u64::from(crate::planted::active("joinable-task-done-one-too-many"));
        if done >= load(&self.header().put_seq) + slack {
            held.leave()?;
            return Err(Error::TooManyReleases("task_done() called too many times"));
        }
        store(&self.header().done, done + 1);
        if done + 1 == load(&self.header().put_seq) {
            self.header().all_done.fetch_add(1, Ordering::SeqCst);
            futex::wake_all(&self.header().all_done);
        }
        held.leave()
    }

    fn join(&self, timeout: Option<Duration>) -> Result<bool> {
        let deadline = Deadline::after(timeout);
        let mut held = self.enter(BlockedOn::Join)?;
        while load(&self.header().done) < load(&self.header().put_seq) {
            if deadline.expired() {
                held.leave()?;
                return Ok(false);
            }
            held = self.sleep(
                held,
                &self.header().all_done,
                &self.header().join_waiters,
                &deadline,
                BlockedOn::Join,
            )?;
        }
        held.leave()?;
        Ok(true)
    }
}

/// A multi-producer, multi-consumer queue across processes (`multiprocessing.Queue`).
///
/// Items are encoded with postcard. Create the queue before starting the processes that
/// use it. See the module docs for what a death at any point does.
///
/// ```
/// # fn main() -> proclife::Result<()> {
/// use std::time::Duration;
/// let q = proclife::ipc::Queue::<String>::with_capacity(2, 4096)?;
/// q.put(&"a".to_string())?;
/// q.put(&"b".to_string())?;
/// assert!(matches!(q.put_nowait(&"c".to_string()), Err(proclife::Error::Full)));
/// assert_eq!(q.get()?, "a");
/// assert_eq!(q.get_timeout(Some(Duration::ZERO))?, "b");
/// assert!(matches!(q.get_nowait(), Err(proclife::Error::Empty)));
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct Queue<T> {
    ring: Ring,
    _t: PhantomData<fn(T) -> T>,
}

impl<T: Serialize + DeserializeOwned> Queue<T> {
    /// A queue of at most `maxsize` items (0: unbounded, as CPython's `maxsize <= 0`) in a
    /// ring of [`DEFAULT_CAPACITY`] bytes.
    ///
    /// # Errors
    ///
    /// [`Error::NoSpace`] or [`Error::Os`] when the segment cannot be made.
    pub fn new(maxsize: usize) -> Result<Queue<T>> {
        Self::with_capacity(maxsize, DEFAULT_CAPACITY)
    }

    /// A queue of at most `maxsize` items (0: unbounded) in a ring of `capacity` bytes
    /// (rounded up to a multiple of 8); the largest item is `capacity - 16` bytes encoded.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] for a capacity outside
    /// [`MIN_CAPACITY`]`..=`[`MAX_CAPACITY`]; [`Error::NoSpace`] or [`Error::Os`].
    pub fn with_capacity(maxsize: usize, capacity: usize) -> Result<Queue<T>> {
        Ok(Queue {
            ring: Ring::new(maxsize, capacity)?,
            _t: PhantomData,
        })
    }

    /// Rebuilds a queue from the fd of its segment.
    ///
    /// # Errors
    ///
    /// [`Error::Malformed`] when the segment is not a queue.
    pub fn from_fd(fd: OwnedFd) -> Result<Queue<T>> {
        Ok(Queue {
            ring: Ring::from_fd(fd)?,
            _t: PhantomData,
        })
    }

    /// Puts `item`, waiting as long as it takes for room.
    ///
    /// When it returns `Ok`, the item is in shared memory: it survives the death of this
    /// process.
    ///
    /// # Errors
    ///
    /// [`Error::HandleClosed`] after [`Queue::close`] (CPython: `ValueError: Queue <...> is
    /// closed`); [`Error::FrameTooLarge`] when the item can never fit (CPython queues any size;
    /// decision 0004); [`Error::Encode`]; [`Error::ParentDied`] when this wait runs in a
    /// child and outlives the parent (decision 0018; CPython waits forever).
    pub fn put(&self, item: &T) -> Result<()> {
        self.put_timeout(item, None)
    }

    /// Puts `item`, waiting at most `timeout` for room (`None`: forever; zero: not at all).
    ///
    /// # Errors
    ///
    /// [`Error::Full`] when the timeout passed (CPython: `queue.Full`); otherwise as
    /// [`Queue::put`].
    pub fn put_timeout(&self, item: &T, timeout: Option<Duration>) -> Result<()> {
        let bytes = postcard::to_stdvec(item).map_err(Error::Encode)?;
        self.ring.put_bytes(&bytes, timeout)
    }

    /// Puts `item` only if there is room now.
    ///
    /// # Errors
    ///
    /// As [`Queue::put_timeout`].
    pub fn put_nowait(&self, item: &T) -> Result<()> {
        self.put_timeout(item, Some(Duration::ZERO))
    }

    /// Takes the oldest item, waiting as long as it takes.
    ///
    /// # Errors
    ///
    /// [`Error::HandleClosed`] after [`Queue::close`] (CPython: `ValueError: Queue <...> is
    /// closed`); [`Error::Decode`] when the item is not a `T` (the item is consumed);
    /// [`Error::Malformed`] when the shared data failed its checksum (it is dropped);
    /// [`Error::ParentDied`] when this wait runs in a child and outlives the parent (decision
    /// 0018; CPython waits forever).
    pub fn get(&self) -> Result<T> {
        self.get_timeout(None)
    }

    /// Takes the oldest item, waiting at most `timeout`.
    ///
    /// # Errors
    ///
    /// [`Error::Empty`] when the timeout passed (CPython: `queue.Empty`); otherwise as
    /// [`Queue::get`].
    pub fn get_timeout(&self, timeout: Option<Duration>) -> Result<T> {
        let bytes = self.ring.get_bytes(timeout)?;
        postcard::from_bytes(&bytes).map_err(Error::Decode)
    }

    /// Takes the oldest item if there is one now.
    ///
    /// # Errors
    ///
    /// As [`Queue::get_timeout`].
    pub fn get_nowait(&self) -> Result<T> {
        self.get_timeout(Some(Duration::ZERO))
    }

    /// The number of items (a snapshot).
    pub fn qsize(&self) -> usize {
        usize::try_from(load(&self.ring.header().count)).unwrap_or(usize::MAX)
    }

    /// Whether the queue holds no item (a snapshot).
    pub fn empty(&self) -> bool {
        load(&self.ring.header().tail) == load(&self.ring.header().head)
    }

    /// Whether the queue holds `maxsize` items (a snapshot; always false when unbounded,
    /// although `put` may still wait for room in bytes).
    pub fn full(&self) -> bool {
        let maxsize = load(&self.ring.header().maxsize);
        maxsize != 0 && load(&self.ring.header().count) >= maxsize
    }

    /// The item bound (0: unbounded).
    pub fn maxsize(&self) -> usize {
        usize::try_from(load(&self.ring.header().maxsize)).unwrap_or(usize::MAX)
    }

    /// The ring's byte capacity.
    pub fn capacity(&self) -> usize {
        self.ring.capacity
    }

    /// Stops this handle: later `put`/`get` through it are [`Error::HandleClosed`]. Other
    /// handles and other processes are not affected; items already put stay readable.
    pub fn close(&self) {
        self.ring.closed.store(true, Ordering::SeqCst);
    }
}

impl<T> Queue<T> {
    /// For [`wait`](crate::ipc::wait): whether an item is there to get, with the error
    /// `get` gives on a closed handle.
    pub(crate) fn poll_ready(&self) -> Result<bool> {
        self.ring.check_open()?;
        Ok(load(&self.ring.header().tail) != load(&self.ring.header().head))
    }
}

impl<T> AsFd for Queue<T> {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.ring.seg.as_fd()
    }
}

/// An unbounded queue with only blocking `put`/`get` (`multiprocessing.SimpleQueue`).
#[derive(Debug)]
pub struct SimpleQueue<T> {
    queue: Queue<T>,
}

impl<T: Serialize + DeserializeOwned> SimpleQueue<T> {
    /// A queue in a ring of [`DEFAULT_CAPACITY`] bytes.
    ///
    /// # Errors
    ///
    /// As [`Queue::new`].
    pub fn new() -> Result<SimpleQueue<T>> {
        Ok(SimpleQueue {
            queue: Queue::new(0)?,
        })
    }

    /// A queue in a ring of `capacity` bytes.
    ///
    /// # Errors
    ///
    /// As [`Queue::with_capacity`].
    pub fn with_capacity(capacity: usize) -> Result<SimpleQueue<T>> {
        Ok(SimpleQueue {
            queue: Queue::with_capacity(0, capacity)?,
        })
    }

    /// Rebuilds a simple queue from the fd of its segment.
    ///
    /// # Errors
    ///
    /// As [`Queue::from_fd`].
    pub fn from_fd(fd: OwnedFd) -> Result<SimpleQueue<T>> {
        Ok(SimpleQueue {
            queue: Queue::from_fd(fd)?,
        })
    }

    /// See [`Queue::put`].
    ///
    /// # Errors
    ///
    /// As [`Queue::put`], except that CPython names [`Error::HandleClosed`] of a
    /// `SimpleQueue` `OSError: handle is closed`.
    pub fn put(&self, item: &T) -> Result<()> {
        self.queue.put(item)
    }

    /// See [`Queue::get`].
    ///
    /// # Errors
    ///
    /// As [`Queue::get`], except that CPython names [`Error::HandleClosed`] of a
    /// `SimpleQueue` `OSError: handle is closed`.
    pub fn get(&self) -> Result<T> {
        self.queue.get()
    }

    /// See [`Queue::empty`].
    pub fn empty(&self) -> bool {
        self.queue.empty()
    }

    /// See [`Queue::close`].
    pub fn close(&self) {
        self.queue.close();
    }
}

impl<T> SimpleQueue<T> {
    /// The queue underneath, for [`wait`](crate::ipc::wait).
    pub(crate) fn ring_queue(&self) -> &Queue<T> {
        &self.queue
    }
}

impl<T> AsFd for SimpleQueue<T> {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.queue.as_fd()
    }
}

/// A queue that counts unfinished tasks (`multiprocessing.JoinableQueue`): every `put`
/// adds one, every [`JoinableQueue::task_done`] removes one, and [`JoinableQueue::join`]
/// waits until none is left.
#[derive(Debug)]
pub struct JoinableQueue<T> {
    queue: Queue<T>,
}

impl<T: Serialize + DeserializeOwned> JoinableQueue<T> {
    /// See [`Queue::new`].
    ///
    /// # Errors
    ///
    /// As [`Queue::new`].
    pub fn new(maxsize: usize) -> Result<JoinableQueue<T>> {
        Ok(JoinableQueue {
            queue: Queue::new(maxsize)?,
        })
    }

    /// See [`Queue::with_capacity`].
    ///
    /// # Errors
    ///
    /// As [`Queue::with_capacity`].
    pub fn with_capacity(maxsize: usize, capacity: usize) -> Result<JoinableQueue<T>> {
        Ok(JoinableQueue {
            queue: Queue::with_capacity(maxsize, capacity)?,
        })
    }

    /// Rebuilds a joinable queue from the fd of its segment.
    ///
    /// # Errors
    ///
    /// As [`Queue::from_fd`].
    pub fn from_fd(fd: OwnedFd) -> Result<JoinableQueue<T>> {
        Ok(JoinableQueue {
            queue: Queue::from_fd(fd)?,
        })
    }

    /// The queue operations (`put`, `get`, `qsize`, ...).
    pub fn queue(&self) -> &Queue<T> {
        &self.queue
    }

    /// See [`Queue::put`].
    ///
    /// # Errors
    ///
    /// As [`Queue::put`].
    pub fn put(&self, item: &T) -> Result<()> {
        self.queue.put(item)
    }

    /// See [`Queue::get`].
    ///
    /// # Errors
    ///
    /// As [`Queue::get`].
    pub fn get(&self) -> Result<T> {
        self.queue.get()
    }

    /// Marks one task finished.
    ///
    /// # Errors
    ///
    /// [`Error::TooManyReleases`] when every put item is already done (CPython:
    /// `ValueError: task_done() called too many times`). Allowed after
    /// [`JoinableQueue::close`], as in CPython.
    pub fn task_done(&self) -> Result<()> {
        self.queue.ring.task_done()
    }

    /// Waits at most `timeout` until every put item was marked done; `Ok(false)` when the
    /// timeout passed first.
    ///
    /// # Errors
    ///
    /// [`Error::Os`] for an unexpected futex failure. Allowed after [`JoinableQueue::close`],
    /// as in CPython.
    pub fn join(&self, timeout: Option<Duration>) -> Result<bool> {
        self.queue.ring.join(timeout)
    }

    /// See [`Queue::close`].
    pub fn close(&self) {
        self.queue.close();
    }
}

impl<T> JoinableQueue<T> {
    /// The queue underneath, for [`wait`](crate::ipc::wait).
    pub(crate) fn ring_queue(&self) -> &Queue<T> {
        &self.queue
    }
}

impl<T> AsFd for JoinableQueue<T> {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.queue.as_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Bit-at-a-time CRC-32 (IEEE, reflected, polynomial 0xEDB88320): the definition.
    fn reference_crc(bytes: &[u8]) -> u32 {
        let mut c = !0u32;
        for &b in bytes {
            c ^= u32::from(b);
            for _ in 0..8 {
                c = if c & 1 != 0 {
                    0xEDB8_8320 ^ (c >> 1)
                } else {
                    c >> 1
                };
            }
        }
        !c
    }

    #[test]
    fn crc_matches_the_ieee_definition() {
        // The standard check value: CRC-32 of "123456789".
        assert_eq!(reference_crc(b"123456789"), 0xCBF4_3926);
        // The frame's CRC covers the length's four bytes, then the payload; lengths around
        // the vector kernels' block sizes and a 64 KiB item.
        for n in [
            0usize, 1, 7, 15, 16, 63, 64, 65, 127, 128, 129, 1000, 65_536,
        ] {
            let payload: Vec<u8> = (0..n).map(|i| (i * 31 + 7) as u8).collect();
            let len = n as u32;
            let mut framed = len.to_le_bytes().to_vec();
            framed.extend_from_slice(&payload);
            assert_eq!(crc32(len, &payload), reference_crc(&framed), "length {n}");
        }
    }

    #[test]
    fn wraps_around_and_keeps_order() -> Result<()> {
        let q = Queue::<Vec<u8>>::with_capacity(0, 256)?;
        for round in 0..50u8 {
            let a = vec![round; (round as usize * 7) % 90];
            let b = vec![round ^ 0xFF; 13];
            q.put(&a)?;
            q.put(&b)?;
            assert_eq!(q.qsize(), 2);
            assert_eq!(q.get()?, a);
            assert_eq!(q.get()?, b);
            assert!(q.empty());
        }
        Ok(())
    }

    #[test]
    fn bounds_and_errors() -> Result<()> {
        let q = Queue::<Vec<u8>>::with_capacity(0, 128)?;
        assert!(matches!(
            q.put(&vec![0; 200]),
            Err(Error::FrameTooLarge { .. })
        ));
        q.put(&vec![1; 100])?;
        assert!(matches!(
            q.put_timeout(&vec![2; 50], Some(Duration::from_millis(5))),
            Err(Error::Full)
        ));
        assert!(!q.full(), "unbounded in items");
        assert!(matches!(
            Queue::<u8>::with_capacity(0, 8),
            Err(Error::InvalidArgument(_))
        ));
        q.close();
        assert!(matches!(q.get(), Err(Error::HandleClosed)));
        assert!(matches!(q.put(&vec![]), Err(Error::HandleClosed)));
        Ok(())
    }

    #[test]
    fn joinable_counts_tasks() -> Result<()> {
        let q = JoinableQueue::<u32>::with_capacity(0, 4096)?;
        assert!(q.join(Some(Duration::ZERO))?);
        assert!(matches!(q.task_done(), Err(Error::TooManyReleases(_))));
        q.put(&1)?;
        q.put(&2)?;
        assert!(!q.join(Some(Duration::from_millis(5)))?);
        assert_eq!(q.get()?, 1);
        q.task_done()?;
        assert_eq!(q.get()?, 2);
        q.task_done()?;
        assert!(q.join(None)?);
        Ok(())
    }

    #[test]
    fn joinable_task_done_and_join_work_after_close_as_in_cpython() -> Result<()> {
        let q = JoinableQueue::<u32>::with_capacity(0, 4096)?;
        q.put(&1)?;
        assert_eq!(q.get()?, 1);
        q.close();
        assert!(!q.join(Some(Duration::ZERO))?);
        q.task_done()?;
        assert!(q.join(Some(Duration::ZERO))?);
        assert!(matches!(q.task_done(), Err(Error::TooManyReleases(_))));
        Ok(())
    }

    #[test]
    fn rebuilt_handles_share_the_ring() -> Result<()> {
        let q = JoinableQueue::<u8>::with_capacity(0, 4096)?;
        let again = JoinableQueue::<u8>::from_fd(q.as_fd().try_clone_to_owned().expect("dup"))?;
        q.put(&5)?;
        assert_eq!(again.get()?, 5);
        again.task_done()?;
        assert!(q.join(Some(Duration::ZERO))?);
        let simple = SimpleQueue::<u8>::from_fd(q.as_fd().try_clone_to_owned().expect("dup"))?;
        simple.put(&6)?;
        assert_eq!(q.get()?, 6);
        let shm = crate::os::shm::SharedMemory::new(Segment::<QueueHeader>::DATA + 64)?;
        let not_a_queue = Queue::<u8>::from_fd(shm.as_fd().try_clone_to_owned().expect("dup"));
        assert!(matches!(not_a_queue, Err(Error::Malformed(_))));
        Ok(())
    }

    #[test]
    fn wrong_type_is_a_decode_error() -> Result<()> {
        let q = Queue::<String>::with_capacity(0, 4096)?;
        let raw = Queue::<Vec<u8>>::from_fd(q.as_fd().try_clone_to_owned().expect("dup"))?;
        raw.put(&vec![0xFF; 20])?;
        assert!(matches!(q.get(), Err(Error::Decode(_))));
        assert!(q.empty());
        Ok(())
    }

    #[test]
    fn recovery_ignores_unpublished_bytes_and_rebuilds_counters() -> Result<()> {
        let q = Queue::<Vec<u8>>::with_capacity(0, 1024)?;
        let ring = &q.ring;
        q.put(&vec![1; 10])?;
        q.put(&vec![2; 20])?;
        // A writer that died mid-copy: bytes after the tail, stale counters.
        let tail = load(&ring.header().tail);
        ring.copy_in(tail, &[0xAB; 100]);
        store(&ring.header().count, 7);
        store(&ring.header().put_seq, 0);
        ring.recover();
        assert_eq!(load(&ring.header().count), 2);
        assert_eq!(load(&ring.header().put_seq), 2);
        assert_eq!(load(&ring.header().tail), tail);
        // A consumer that died after its commit store but before the count update.
        let head = load(&ring.header().head);
        let (len, _, _) = ring.frame_at(head, tail)?;
        store(&ring.header().head, head + frame_len(len) as u64);
        ring.recover();
        assert_eq!(load(&ring.header().count), 1);
        assert_eq!(q.get()?, vec![2; 20]);
        assert!(q.empty());
        q.put(&vec![3; 5])?;
        assert_eq!(q.get()?, vec![3; 5]);
        Ok(())
    }

    #[test]
    fn corrupt_item_is_reported_and_dropped() -> Result<()> {
        let q = Queue::<Vec<u8>>::with_capacity(0, 1024)?;
        q.put(&vec![1; 10])?;
        let head = load(&q.ring.header().head);
        q.ring.copy_in(head + FRAME_HEADER as u64 + 3, &[0x55]);
        assert!(matches!(q.get(), Err(Error::Malformed(_))));
        assert!(q.empty());
        q.put(&vec![4; 4])?;
        assert_eq!(q.get()?, vec![4; 4]);
        Ok(())
    }
}
