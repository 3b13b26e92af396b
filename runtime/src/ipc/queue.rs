//! `Queue`, `SimpleQueue` and `JoinableQueue`: a framed ring buffer in shared memory.
//!
//! One sealed memfd segment holds a robust mutex, a header, a few futex words and a byte
//! ring of fixed capacity. Each item is a frame: a 16-byte header (payload length, CRC-32 of
//! length and sequence number, sequence number) and the postcard payload, padded to 8 bytes;
//! frames may wrap around the end of the ring. A put into a drained ring whose write
//! position is past half the ring goes back to the ring's first byte, behind a skip mark, so
//! a queue that keeps up reuses the pages it has touched (decision 0026). Items are encoded straight into the ring and decoded where they
//! lie.
//!
//! Crash consistency, the reason for the layout:
//! - `put` writes the whole frame (and a skip mark before it, if any) into free space, then
//!   publishes it with one store of the tail; a writer killed before that store leaves bytes
//!   nobody will ever read (T23). After the store a put that skipped moves the head, which
//!   was at the mark, past it; a get steps over a mark a dead writer left at the head.
//! - `put` returns only after the tail store: a returned `put` means the item is in shared
//!   memory, and the producer may exit or die at once without losing it (T25, T26). There is
//!   no feeder thread, so a child never blocks at exit on unread data.
//! - `get` consumes the frame with one store of the head, then decodes the payload before
//!   releasing the mutex (no writer reuses the bytes until then). A consumer killed before
//!   that store leaves the item for the next consumer (redelivered); killed after it (while
//!   decoding, too), the item counts as delivered to the dead consumer and is lost (T24).
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

use crate::children::parent_watch::{self, PARENT_SLICE};
use crate::children::status::{BlockedOn, blocked};
use crate::error::{Error, Result};
use crate::os::futex::{self, Wake};
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

/// The length word of a skip mark: the rest of the ring up to its end holds no frame, and the
/// next frame starts at the ring's first byte (decision 0026).
const SKIP_LEN: u32 = u32::MAX;
/// The second word of a skip mark.
const SKIP_CHECK: u32 = 0x5049_4b53; // "SKIP"
/// The size of a skip mark; frames start 8-byte aligned, so the ring's end is at least this
/// far from any frame start.
const SKIP_MARK: usize = 8;

/// The largest encoded item: its length must fit the header's `u32` and differ from
/// [`SKIP_LEN`].
const MAX_ITEM: usize = SKIP_LEN as usize - 1;

/// A counter of the header, read with `SeqCst` like every access to the shared words.
fn load(word: &AtomicU64) -> u64 {
    word.load(Ordering::SeqCst)
}

fn store(word: &AtomicU64, value: u64) {
    word.store(value, Ordering::SeqCst);
}

/// CRC-32 (IEEE) of a frame header's length and sequence number, its check word. The payload
/// has no checksum: the commit protocol keeps torn items out (decision 0026).
fn header_crc(len: u32, seq: u64) -> u32 {
    // One call over the 12 bytes: the same CRC as two updates, at half the calls.
    let mut bytes = [0u8; 12];
    bytes[..4].copy_from_slice(&len.to_le_bytes());
    bytes[4..].copy_from_slice(&seq.to_le_bytes());
    crc32fast::hash(&bytes)
}

fn frame_len(payload: usize) -> usize {
    FRAME_HEADER + payload.div_ceil(8) * 8
}

/// Stops this process with `SIGSTOP` at the step `name` of a put or a get when the planted
/// fault `name` is on (feature `planted-bugs`), so that a test can `SIGKILL` it exactly there;
/// nothing without the feature.
fn stop_point(name: &str) {
    if crate::planted::active(name) {
        let _ = nix::sys::signal::raise(nix::sys::signal::Signal::SIGSTOP);
    }
}

/// What starts at a frame boundary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Frame {
    /// An item: its payload's length and sequence number.
    Item { len: usize, seq: u64 },
    /// A skip mark: the next frame starts at monotonic offset `to`, the ring's first byte.
    Skip { to: u64 },
}

/// A postcard flavour that writes an item straight into the ring's free space, from `pos`
/// up to `end`, with no buffer in between.
struct RingWriter<'r> {
    ring: &'r Ring,
    pos: u64,
    end: u64,
}

impl postcard::ser_flavors::Flavor for RingWriter<'_> {
    /// Where the writing stopped.
    type Output = u64;

    fn try_push(&mut self, byte: u8) -> postcard::Result<()> {
        self.try_extend(&[byte])
    }

    fn try_extend(&mut self, data: &[u8]) -> postcard::Result<()> {
        if self.end - self.pos < data.len() as u64 {
            // More than the sizing pass measured: the `Serialize` impl is not deterministic.
            return Err(postcard::Error::SerializeBufferFull);
        }
        self.ring.copy_in(self.pos, data);
        self.pos += data.len() as u64;
        Ok(())
    }

    fn finalize(self) -> postcard::Result<u64> {
        Ok(self.pos)
    }
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

/// Wakes every sleeper on `word` when dropped, if `wake`: declared before a [`Held`], it runs
/// after the unlock, on a normal return and on unwinding alike.
struct WakeOnDrop<'r> {
    word: &'r AtomicU32,
    wake: bool,
}

impl Drop for WakeOnDrop<'_> {
    fn drop(&mut self) {
        if self.wake {
            futex::wake_all(self.word);
        }
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

    /// Reads and checks what starts at the frame boundary `pos`, which lies before `tail`.
    fn frame_at(&self, pos: u64, tail: u64) -> Result<Frame> {
        if tail - pos < SKIP_MARK as u64 {
            return Err(Error::Malformed("queue frame header past the tail"));
        }
        let mut word = [0u8; SKIP_MARK];
        self.copy_out(pos, &mut word);
        let len = u32::from_le_bytes([word[0], word[1], word[2], word[3]]);
        let check = u32::from_le_bytes([word[4], word[5], word[6], word[7]]);
        if len == SKIP_LEN {
            let into = pos % self.capacity as u64;
            if check != SKIP_CHECK || into == 0 {
                return Err(Error::Malformed("queue skip mark is damaged"));
            }
            let to = pos - into + self.capacity as u64;
            // A skip mark is published with the item after it, by the same tail store.
            if to >= tail {
                return Err(Error::Malformed("queue skip mark without a frame after it"));
            }
            return Ok(Frame::Skip { to });
        }
        if tail - pos < FRAME_HEADER as u64 {
            return Err(Error::Malformed("queue frame header past the tail"));
        }
        let mut seq = [0u8; 8];
        self.copy_out(pos + SKIP_MARK as u64, &mut seq);
        let seq = u64::from_le_bytes(seq);
        if header_crc(len, seq) != check {
            return Err(Error::Malformed("queue frame header failed its check"));
        }
        let len = len as usize;
        if frame_len(len) as u64 > tail - pos {
            return Err(Error::Malformed(
                "queue frame longer than the published data",
            ));
        }
        Ok(Frame::Item { len, seq })
    }

    /// The item at the frame boundary `pos` (after the skip mark there, if any): where its
    /// frame starts, its payload's length and its sequence number.
    fn item_at(&self, pos: u64, tail: u64) -> Result<(u64, usize, u64)> {
        match self.frame_at(pos, tail)? {
            Frame::Item { len, seq } => Ok((pos, len, seq)),
            Frame::Skip { to } => match self.frame_at(to, tail)? {
                Frame::Item { len, seq } => Ok((to, len, seq)),
                Frame::Skip { .. } => Err(Error::Malformed("queue skip mark after a skip mark")),
            },
        }
    }

    /// Rebuilds the derived counters after a process died holding the mutex.
    fn recover(&self) {
        let head = load(&self.header().head);
        let tail = load(&self.header().tail);
        let mut pos = head;
        let mut count = 0u64;
        let mut last_seq = None;
        while pos < tail {
            match self.item_at(pos, tail) {
                Ok((start, len, seq)) => {
                    pos = start + frame_len(len) as u64;
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
    ///
    /// The sleep is cut into slices of at most [`PARENT_SLICE`] in every process, each
    /// re-waiting on the value sampled under the mutex: a waker killed between its unlock
    /// and its `FUTEX_WAKE` has already bumped the word, so the next slice returns at once
    /// and the caller re-checks its condition under the mutex. A missed wake costs at most a
    /// slice. In a child whose untimed wait watches its parent, a slice that ends with the
    /// parent gone is [`Error::ParentDied`], as in [`parent_watch::futex_wait`].
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
            loop {
                // Without a deadline a slice needs no clock read (`wait_slice`).
                let wake = if deadline.timespec().is_none() {
                    futex::wait_slice(word, seq, PARENT_SLICE)?
                } else {
                    futex::wait(word, seq, &deadline.capped(PARENT_SLICE))?
                };
                match wake {
                    Wake::Retry => return Ok(()),
                    Wake::TimedOut if deadline.expired() => return Ok(()),
                    Wake::TimedOut if parent_watch::parent_died(deadline) => {
                        return Err(Error::ParentDied);
                    }
                    Wake::TimedOut => {}
                }
            }
        });
        waiters.fetch_sub(1, Ordering::SeqCst);
        match res {
            Ok(_) => self.enter(on),
            Err(e) => Err(e),
        }
    }

    /// Bumps `word` (under the mutex) and says whether anyone sleeps on it, so that the wake
    /// can be made once the mutex is released: a sleeper woken while the waker still holds
    /// the mutex would only block on it again (decision 0026).
    fn bump(word: &AtomicU32, waiters: &AtomicU32) -> bool {
        word.fetch_add(1, Ordering::SeqCst);
        waiters.load(Ordering::SeqCst) > 0
    }

    /// The bytes a put of a frame of `need` bytes skips to start at the ring's first byte:
    /// only when the ring is empty (`head == tail`), the write position is at least half the
    /// capacity into the ring, and the frame fits before it, so that a drained queue goes
    /// back to pages it has touched (decision 0026); else 0.
    ///
    /// The half-capacity rule bounds the offsets: a skip wastes `capacity - into <= into`
    /// bytes, and the `into` bytes before it in this lap were all frames (a lap begins at
    /// its first byte, and a skip mark ends its lap), so the tail grows at most twice as fast
    /// as the bytes of frames written, and the `u64` offsets overflow only after about 2^63
    /// bytes written, centuries at any speed. Skipping from any position would burn a whole
    /// lap per put of a drained ring: 2^24 puts with a 1 TiB ring.
    fn skip_for(&self, head: u64, tail: u64, need: usize) -> u64 {
        let cap = self.capacity as u64;
        let into = tail % cap;
        if head == tail && into >= cap / 2 && need as u64 <= into {
            cap - into
        } else {
            0
        }
    }

    /// Puts one item of `len` encoded bytes: waits for room, then lets `write` encode it
    /// straight into the ring between the two offsets it is given, and publishes it.
    fn put_with(
        &self,
        len: usize,
        timeout: Option<Duration>,
        write: impl FnOnce(u64, u64) -> Result<()>,
    ) -> Result<()> {
        self.check_open()?;
        let max = (self.capacity - FRAME_HEADER).min(MAX_ITEM);
        if len > max {
            return Err(Error::FrameTooLarge {
                len: len as u64,
                max: max as u64,
            });
        }
        let need = frame_len(len);
        let deadline = Deadline::after(timeout);
        let mut held = self.enter(BlockedOn::Send)?;
        let skip = loop {
            let head = load(&self.header().head);
            let tail = load(&self.header().tail);
            let skip = self.skip_for(head, tail, need);
            let free = self.capacity as u64 - (tail - head);
            let maxsize = load(&self.header().maxsize);
            if (maxsize == 0 || load(&self.header().count) < maxsize) && free >= skip + need as u64
            {
                break skip;
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
        };
        let tail = load(&self.header().tail);
        if skip > 0 {
            let mut mark = [0u8; SKIP_MARK];
            mark[..4].copy_from_slice(&SKIP_LEN.to_le_bytes());
            mark[4..].copy_from_slice(&SKIP_CHECK.to_le_bytes());
            self.copy_in(tail, &mark);
            stop_point("queue-put-stops-after-skip-mark");
        }
        let start = tail + skip;
        let payload = start + FRAME_HEADER as u64;
        // Encoded in place, in free space; an encoding error publishes nothing.
        write(payload, payload + len as u64)?;
        let seq = load(&self.header().put_seq);
        let len32 = len as u32;
        let mut header = [0u8; FRAME_HEADER];
        header[..4].copy_from_slice(&len32.to_le_bytes());
        header[4..8].copy_from_slice(&header_crc(len32, seq).to_le_bytes());
        header[8..].copy_from_slice(&seq.to_le_bytes());
        self.copy_in(start, &header);
        if skip > 0 {
            stop_point("queue-put-stops-before-tail-store");
        }
        // The commit point: one store publishes the skip mark and the frame, which must fit.
        let new_tail = start + need as u64;
        assert!(
            new_tail - load(&self.header().head) <= self.capacity as u64,
            "a committed frame overruns the ring"
        );
        store(&self.header().tail, new_tail);
        if skip > 0 {
            stop_point("queue-put-stops-after-tail-store");
            // The skip mark is no item: the head, which was at it (the ring was empty), moves
            // past it at once, so it holds no room. A death before this store leaves the
            // mark at the head, which the next get steps over.
            assert_eq!(
                load(&self.header().head),
                tail,
                "a skip in a ring that was not empty"
            );
            store(&self.header().head, start);
            stop_point("queue-put-stops-after-head-store");
        }
        store(&self.header().put_seq, seq + 1);
        store(&self.header().count, load(&self.header().count) + 1);
        let wake = Ring::bump(&self.header().not_empty, &self.header().empty_waiters);
        let left = held.leave();
        if wake {
            futex::wake_all(&self.header().not_empty);
        }
        left
    }

    /// Takes the oldest item, waiting until `deadline`, and hands its encoded bytes to
    /// `decode` where they lie in the ring (copied out first only when they wrap around its
    /// end).
    ///
    /// The item is consumed (the head store) before `decode` runs, still under the mutex: no
    /// writer can reuse the freed bytes before the unlock, and a `decode` that panics (or a
    /// consumer that dies while decoding) has consumed the item, as one that fails does,
    /// instead of leaving it at the head for every later get to trip over.
    fn get_with<R>(&self, timeout: Option<Duration>, decode: impl FnOnce(&[u8]) -> R) -> Result<R> {
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
        let (taken, wake) = self.take_head();
        // Declared before the guard below, so dropped after it: the wake follows the unlock
        // on every path, a panicking `decode` included.
        let _wake = WakeOnDrop {
            word: &self.header().not_full,
            wake,
        };
        let held = held;
        let out = taken.map(|(start, len)| self.decode_at(&held, start, len, decode));
        let left = held.leave();
        let decoded = out?;
        left?;
        Ok(decoded)
    }

    /// Consumes the item at the head and says where its frame starts and its payload's
    /// length; the caller holds the mutex and the ring is not empty, and decodes the payload
    /// before releasing the mutex. Also says whether a putter sleeps on `not_full`, to be
    /// woken once the mutex is released.
    fn take_head(&self) -> (Result<(u64, usize)>, bool) {
        let head = load(&self.header().head);
        let tail = load(&self.header().tail);
        match self.item_at(head, tail) {
            Ok((start, len, _seq)) => {
                if crate::planted::active("queue-get-leaves-item") {
                    // Planted: the item is decoded but stays at the head (a duplicate).
                    return (Ok((start, len)), false);
                }
                // The commit point: one store consumes the skip mark, if any, and the frame,
                // which lay before the tail.
                let new_head = start + frame_len(len) as u64;
                assert!(new_head <= tail, "a consumed frame ends past the tail");
                store(&self.header().head, new_head);
                store(
                    &self.header().count,
                    load(&self.header().count).saturating_sub(1),
                );
                let wake = Ring::bump(&self.header().not_full, &self.header().full_waiters);
                (Ok((start, len)), wake)
            }
            Err(e) => {
                // Unparseable data cannot be skipped frame by frame: drop it all, keep the
                // queue usable, and report it.
                store(&self.header().head, tail);
                store(&self.header().count, 0);
                let wake = Ring::bump(&self.header().not_full, &self.header().full_waiters);
                (Err(e), wake)
            }
        }
    }

    /// Hands the `len` payload bytes of the frame at `start`, consumed under the mutex that
    /// `held` proves held, to `decode`: in place (the mutex is the view's witness), or copied
    /// out when they wrap around the ring's end.
    fn decode_at<R>(
        &self,
        held: &Held<'_>,
        start: u64,
        len: usize,
        decode: impl FnOnce(&[u8]) -> R,
    ) -> R {
        let cap = self.capacity as u64;
        let at = (start + FRAME_HEADER as u64) % cap;
        if at + len as u64 <= cap {
            self.seg
                .with_bytes(held.ring.mutex(), at as usize, len, decode)
        } else {
            decode(&self.copy_out_vec(start + FRAME_HEADER as u64, len))
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
    /// (rounded up to a multiple of 8); the largest item is `capacity - 16` bytes encoded,
    /// and below `u32::MAX`.
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
    /// `T`'s `Serialize` runs twice per item: once to size it, before the lock, and once to
    /// write it straight into the ring, under the queue's cross-process mutex (decision
    /// 0026). So the second run must produce the same bytes (else [`Error::Encode`]), should
    /// be quick (a slow one stalls every producer and consumer of the queue, in every
    /// process), must not take a lock that another thread may hold while it waits for this
    /// queue (a lock-order deadlock), and must not use this queue: a `put` or `get` from
    /// inside it is [`Error::WouldDeadlock`].
    ///
    /// # Errors
    ///
    /// [`Error::HandleClosed`] after [`Queue::close`] (CPython: `ValueError: Queue <...> is
    /// closed`); [`Error::FrameTooLarge`] when the item can never fit (CPython queues any size;
    /// decision 0004); [`Error::Encode`] when `Serialize` fails or writes other bytes than it
    /// measured; [`Error::ParentDied`] when this wait runs in a child and outlives the parent
    /// (decision 0018; CPython waits forever).
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
        // A sizing pass first, so the item is then encoded once, straight into the ring.
        let len = postcard::serialize_with_flavor(item, postcard::ser_flavors::Size::default())
            .map_err(Error::Encode)?;
        let ring = &self.ring;
        ring.put_with(len, timeout, |pos, end| {
            let reached = postcard::serialize_with_flavor(item, RingWriter { ring, pos, end })
                .map_err(Error::Encode)?;
            if reached == end {
                Ok(())
            } else {
                // Fewer bytes than the sizing pass measured: not deterministic either.
                Err(Error::Encode(postcard::Error::SerializeBufferFull))
            }
        })
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
    /// [`Error::Malformed`] when a frame header in the shared data failed its check (what
    /// is left is dropped); [`Error::ParentDied`] when this wait runs in a child and outlives
    /// the parent (decision 0018; CPython waits forever).
    ///
    /// # Panics
    ///
    /// When `T`'s `Deserialize` panics; the item is consumed then too (as with
    /// [`Error::Decode`]), and the queue stays usable. `Deserialize` runs under the queue's
    /// cross-process mutex, after the item was taken off the ring.
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
        self.ring
            .get_with(timeout, |bytes| postcard::from_bytes(bytes))?
            .map_err(Error::Decode)
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
    fn header_check_is_the_ieee_crc_of_length_and_sequence() {
        // The standard check value: CRC-32 of "123456789".
        assert_eq!(reference_crc(b"123456789"), 0xCBF4_3926);
        for (len, seq) in [
            (0u32, 0u64),
            (8, 1),
            (65_536, 1 << 40),
            (MAX_ITEM as u32, u64::MAX),
        ] {
            let mut framed = len.to_le_bytes().to_vec();
            framed.extend_from_slice(&seq.to_le_bytes());
            assert_eq!(header_crc(len, seq), reference_crc(&framed), "{len}/{seq}");
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
    fn frames_that_wrap_around_the_rings_end_come_out_whole() -> Result<()> {
        let mut header_split = false;
        for first in 40..=150usize {
            // A ring of 256 bytes that is never drained: item `c` starts where `a` and `b`
            // left the tail, no skip applies, and its frame runs past the ring's end.
            let q = Queue::<Vec<u8>>::with_capacity(0, 256)?;
            let (a, b, c) = (vec![1u8; first], vec![2u8; 60], vec![3u8; 100]);
            q.put(&a)?;
            q.put(&b)?;
            assert_eq!(q.get()?, a);
            let start = load(&q.ring.header().tail);
            let need = frame_len(postcard::to_stdvec(&c).expect("encode").len()) as u64;
            q.put(&c)?;
            assert_eq!(
                load(&q.ring.header().tail),
                start + need,
                "{first}: no skip"
            );
            assert!(
                start % 256 + need > 256 && start < 256,
                "{first}: the frame at {start} of {need} bytes does not wrap"
            );
            header_split |= start % 256 > 256 - FRAME_HEADER as u64;
            // `b` decodes in place, `c` from the copy of its two pieces.
            assert_eq!(q.get()?, b, "{first}");
            assert_eq!(q.get()?, c, "{first}");
            assert!(q.empty());
            // And the ring goes on from there.
            q.put(&a)?;
            assert_eq!(q.get()?, a, "{first}");
        }
        assert!(header_split, "no frame header was split by the ring's end");
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

    /// An item whose `Deserialize` panics on the value 1.
    #[derive(Debug, PartialEq, Serialize)]
    struct PanicsOnOne(u32);

    impl<'de> serde::Deserialize<'de> for PanicsOnOne {
        fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
            let value = u32::deserialize(d)?;
            assert_ne!(value, 1, "planted panic in Deserialize");
            Ok(PanicsOnOne(value))
        }
    }

    #[test]
    fn a_panicking_deserialize_consumes_its_item() -> Result<()> {
        let q = Queue::<PanicsOnOne>::with_capacity(0, 4096)?;
        q.put(&PanicsOnOne(1))?;
        q.put(&PanicsOnOne(2))?;
        let got = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| q.get()));
        assert!(got.is_err(), "the get of 1 panics, got {got:?}");
        assert_eq!(q.qsize(), 1, "the panicking get consumed its item");
        // The mutex was released on unwinding and the next get sees the next item.
        assert_eq!(q.get_nowait()?, PanicsOnOne(2));
        assert_eq!(q.qsize(), 0);
        assert!(q.empty());
        Ok(())
    }

    #[test]
    fn a_shared_view_needs_the_rings_own_mutex_held() -> Result<()> {
        let q = Queue::<u8>::with_capacity(0, 64)?;
        let other = Queue::<u8>::with_capacity(0, 64)?;
        let view = |lock: &RawMutex| {
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                q.ring.seg.with_bytes(lock, 0, 8, <[u8]>::len)
            }))
        };
        assert!(view(q.ring.mutex()).is_err(), "a view without the lock");
        let held_other = other.ring.enter(BlockedOn::Recv)?;
        assert!(view(other.ring.mutex()).is_err(), "another ring's mutex");
        held_other.leave()?;
        let held = q.ring.enter(BlockedOn::Recv)?;
        assert_eq!(view(q.ring.mutex()).ok(), Some(8), "a view under the lock");
        held.leave()?;
        Ok(())
    }

    #[test]
    fn a_wake_lost_with_its_waker_costs_a_sleeper_at_most_a_slice() -> Result<()> {
        let q = Queue::<u32>::with_capacity(0, 4096)?;
        let waiters = &q.ring.header().empty_waiters;
        std::thread::scope(|s| -> Result<()> {
            let (sent, got) = std::sync::mpsc::channel();
            let getter = &q;
            s.spawn(move || sent.send(getter.get()));
            // The bound of an event that should happen at once (`AT_ONCE` in the testkit).
            let bound = Duration::from_secs(10);
            let asleep = Deadline::after(Some(bound));
            while waiters.load(Ordering::SeqCst) == 0 {
                assert!(
                    !asleep.expired(),
                    "the getter did not go to sleep within {bound:?}"
                );
                std::thread::yield_now();
            }
            // As a putter killed between its unlock and its wake leaves it: the word bumped,
            // no `FUTEX_WAKE` (the put sees no sleeper and makes none).
            waiters.fetch_sub(1, Ordering::SeqCst);
            q.put(&7)?;
            waiters.fetch_add(1, Ordering::SeqCst);
            match got.recv_timeout(bound) {
                Ok(item) => assert_eq!(item?, 7),
                Err(e) => {
                    // Wake it, so that the scope can join it, and report.
                    futex::wake_all(&q.ring.header().not_empty);
                    panic!("the sleeper got no item within {bound:?} of a lost wake: {e}");
                }
            }
            Ok(())
        })?;
        assert!(q.empty());
        Ok(())
    }

    #[test]
    fn a_put_from_inside_serialize_is_would_deadlock() -> Result<()> {
        /// Puts into `queue` from its second serialisation (the one under the lock) and
        /// keeps what that put returned.
        struct Reenters<'q> {
            queue: &'q Queue<u8>,
            runs: std::cell::Cell<u32>,
            inner: std::cell::RefCell<Option<Result<()>>>,
        }
        impl Serialize for Reenters<'_> {
            fn serialize<S: serde::Serializer>(
                &self,
                s: S,
            ) -> std::result::Result<S::Ok, S::Error> {
                self.runs.set(self.runs.get() + 1);
                if self.runs.get() == 2 {
                    *self.inner.borrow_mut() = Some(self.queue.put_nowait(&1));
                }
                s.serialize_u8(9)
            }
        }
        let q = Queue::<u8>::with_capacity(0, 4096)?;
        let item = Reenters {
            queue: &q,
            runs: std::cell::Cell::new(0),
            inner: std::cell::RefCell::new(None),
        };
        let len = postcard::serialize_with_flavor(&item, postcard::ser_flavors::Size::default())
            .expect("size");
        let ring = &q.ring;
        ring.put_with(len, None, |pos, end| {
            postcard::serialize_with_flavor(&item, RingWriter { ring, pos, end })
                .map(|_| ())
                .map_err(Error::Encode)
        })?;
        assert_eq!(item.runs.get(), 2, "sized once, written once");
        let inner = item.inner.borrow_mut().take();
        assert!(
            matches!(inner, Some(Err(Error::WouldDeadlock))),
            "the put from inside: {inner:?}"
        );
        assert_eq!(q.get_nowait()?, 9);
        assert!(q.empty(), "the inner put published nothing");
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
        let Frame::Item { len, .. } = ring.frame_at(head, tail)? else {
            panic!("no skip mark at the start of a fresh ring");
        };
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
    fn corrupt_header_is_reported_and_dropped() -> Result<()> {
        let q = Queue::<Vec<u8>>::with_capacity(0, 1024)?;
        q.put(&vec![1; 10])?;
        let head = load(&q.ring.header().head);
        // A scribbled sequence number: the header's check word no longer matches.
        q.ring.copy_in(head + 9, &[0x55]);
        assert!(matches!(q.get(), Err(Error::Malformed(_))));
        assert!(q.empty());
        q.put(&vec![4; 4])?;
        assert_eq!(q.get()?, vec![4; 4]);
        Ok(())
    }

    /// The ring position (offset from the ring's first byte) of the next frame to be put.
    fn write_position(ring: &Ring) -> u64 {
        load(&ring.header().tail) % ring.capacity as u64
    }

    #[test]
    fn a_drained_ring_starts_again_at_its_first_byte() -> Result<()> {
        let q = Queue::<Vec<u8>>::with_capacity(0, 4096)?;
        let ring = &q.ring;
        for round in 0..20u8 {
            q.put(&vec![round; 2100])?;
            // The first put of a drained ring lands at the ring's first byte, after a skip
            // mark from the old write position (none the first time), which is past half the
            // ring.
            let tail = load(&ring.header().tail);
            assert_eq!(tail % 4096, frame_len(2102) as u64, "round {round}");
            assert_eq!(q.get()?, vec![round; 2100]);
        }
        // A ring that is not empty keeps going where it is, and so does a drained ring whose
        // next frame would not fit before the old position.
        q.put(&vec![1; 100])?;
        q.put(&vec![2; 100])?;
        assert_eq!(write_position(ring), 2 * frame_len(101) as u64);
        assert_eq!(q.get()?, vec![1; 100]);
        assert_eq!(q.get()?, vec![2; 100]);
        let before = write_position(ring);
        q.put(&vec![3; 2000])?;
        assert_eq!(write_position(ring), before + frame_len(2002) as u64);
        assert_eq!(q.get()?, vec![3; 2000]);
        // Items that wrap around the ring's end still come out whole.
        for round in 0..40u8 {
            let a = vec![round; 1500];
            q.put(&a)?;
            q.put(&a)?;
            assert_eq!(q.get()?, a);
            assert_eq!(q.get()?, a);
        }
        Ok(())
    }

    #[test]
    fn a_drained_ring_skips_only_past_half_its_capacity() -> Result<()> {
        let q = Queue::<Vec<u8>>::with_capacity(0, 4096)?;
        let ring = &q.ring;
        // Below half the ring: a drained ring keeps its write position, so a lap of offsets
        // is never spent on a few bytes.
        q.put(&vec![1; 1000])?;
        assert_eq!(q.get()?, vec![1; 1000]);
        let below = write_position(ring);
        assert!(below < 2048, "{below}");
        q.put(&vec![2; 10])?;
        assert_eq!(
            write_position(ring),
            below + frame_len(11) as u64,
            "no skip"
        );
        assert_eq!(q.get()?, vec![2; 10]);
        // At or past half: the next put skips to the ring's first byte.
        q.put(&vec![3; 1200])?;
        assert_eq!(q.get()?, vec![3; 1200]);
        let lap = load(&ring.header().tail) / 4096;
        assert!(write_position(ring) >= 2048, "{}", write_position(ring));
        q.put(&vec![4; 10])?;
        assert_eq!(
            load(&ring.header().tail),
            (lap + 1) * 4096 + frame_len(11) as u64
        );
        assert_eq!(q.get()?, vec![4; 10]);
        // Offsets grow at most twice as fast as the frames written.
        let start = load(&ring.header().tail);
        let mut written = 0u64;
        for round in 0..200usize {
            let item = vec![5u8; (round * 37) % 1500];
            q.put(&item)?;
            written += frame_len(postcard::to_stdvec(&item).expect("encode").len()) as u64;
            assert_eq!(q.get()?, item);
        }
        let grown = load(&ring.header().tail) - start;
        assert!(
            grown <= 2 * written + 4096,
            "grew {grown} for {written} written"
        );
        Ok(())
    }

    /// Drains `q` after a process died holding the mutex (simulated: `recover` runs as the
    /// next locker's `EOWNERDEAD` would), checking the counters it rebuilt.
    fn recover_and_drain(q: &Queue<Vec<u8>>, count: u64, put_seq: u64) -> Result<Vec<Vec<u8>>> {
        q.ring.recover();
        assert_eq!(load(&q.ring.header().count), count, "rebuilt count");
        assert_eq!(load(&q.ring.header().put_seq), put_seq, "rebuilt put_seq");
        let mut items = Vec::new();
        while let Ok(item) = q.get_nowait() {
            items.push(item);
        }
        assert_eq!(items.len() as u64, count, "items left");
        q.put(&vec![7; 50])?;
        assert_eq!(q.get()?, vec![7; 50], "the queue stays usable");
        Ok(items)
    }

    /// A drained ring whose write position is past half the ring, and the tail there.
    fn drained(q: &Queue<Vec<u8>>) -> Result<u64> {
        q.put(&vec![9; 2200])?;
        assert_eq!(q.get()?, vec![9; 2200]);
        Ok(load(&q.ring.header().tail))
    }

    #[test]
    fn a_producer_dead_at_each_step_of_a_skip_leaves_no_torn_item() -> Result<()> {
        // Killed after the skip mark: bytes past the tail, never seen.
        let q = Queue::<Vec<u8>>::with_capacity(0, 4096)?;
        let tail = drained(&q)?;
        let mut mark = [0u8; SKIP_MARK];
        mark[..4].copy_from_slice(&SKIP_LEN.to_le_bytes());
        mark[4..].copy_from_slice(&SKIP_CHECK.to_le_bytes());
        q.ring.copy_in(tail, &mark);
        assert!(recover_and_drain(&q, 0, 1)?.is_empty());
        // Killed after the whole frame, before the tail store: the same.
        let q = Queue::<Vec<u8>>::with_capacity(0, 4096)?;
        let tail = drained(&q)?;
        q.ring.copy_in(tail, &mark);
        let start = tail + 4096 - tail % 4096;
        let payload = postcard::to_stdvec(&vec![5u8; 100]).expect("encode");
        let mut header = [0u8; FRAME_HEADER];
        header[..4].copy_from_slice(&(payload.len() as u32).to_le_bytes());
        header[4..8].copy_from_slice(&header_crc(payload.len() as u32, 1).to_le_bytes());
        header[8..].copy_from_slice(&1u64.to_le_bytes());
        q.ring.copy_in(start, &header);
        q.ring.copy_in(start + FRAME_HEADER as u64, &payload);
        assert!(recover_and_drain(&q, 0, 1)?.is_empty());
        // Killed after the tail store, before the counters: published, and counted again.
        let q = Queue::<Vec<u8>>::with_capacity(0, 4096)?;
        let tail = drained(&q)?;
        q.ring.copy_in(tail, &mark);
        q.ring.copy_in(start, &header);
        q.ring.copy_in(start + FRAME_HEADER as u64, &payload);
        store(
            &q.ring.header().tail,
            start + frame_len(payload.len()) as u64,
        );
        assert_eq!(recover_and_drain(&q, 1, 2)?, vec![vec![5u8; 100]]);
        // Killed after the head store too: the same, without the skip mark.
        let q = Queue::<Vec<u8>>::with_capacity(0, 4096)?;
        let tail = drained(&q)?;
        q.ring.copy_in(tail, &mark);
        q.ring.copy_in(start, &header);
        q.ring.copy_in(start + FRAME_HEADER as u64, &payload);
        store(
            &q.ring.header().tail,
            start + frame_len(payload.len()) as u64,
        );
        store(&q.ring.header().head, start);
        assert_eq!(recover_and_drain(&q, 1, 2)?, vec![vec![5u8; 100]]);
        Ok(())
    }

    #[test]
    fn a_consumer_dead_at_each_step_of_a_skip_loses_or_repeats_nothing_else() -> Result<()> {
        for dies_after_head_store in [false, true] {
            let q = Queue::<Vec<u8>>::with_capacity(0, 4096)?;
            let tail = drained(&q)?;
            q.put(&vec![1; 100])?;
            // As a producer killed between its tail store and its head store leaves it: the
            // skip mark still at the head.
            store(&q.ring.header().head, tail);
            q.put(&vec![2; 100])?;
            assert!(
                matches!(
                    q.ring.frame_at(tail, load(&q.ring.header().tail))?,
                    Frame::Skip { .. }
                ),
                "the first item follows a skip mark"
            );
            let (start, len, _) = q.ring.item_at(tail, load(&q.ring.header().tail))?;
            if dies_after_head_store {
                // Past the commit point: the first item counts as delivered to the dead.
                store(&q.ring.header().head, start + frame_len(len) as u64);
                assert_eq!(recover_and_drain(&q, 1, 3)?, vec![vec![2; 100]]);
            } else {
                // Before it: both items are still there, in order.
                assert_eq!(
                    recover_and_drain(&q, 2, 3)?,
                    vec![vec![1; 100], vec![2; 100]]
                );
            }
        }
        Ok(())
    }

    #[test]
    fn damaged_skip_marks_are_reported_and_dropped() -> Result<()> {
        let q = Queue::<Vec<u8>>::with_capacity(0, 4096)?;
        let tail = drained(&q)?;
        q.put(&vec![1; 100])?;
        store(&q.ring.header().head, tail);
        q.ring.copy_in(tail + 4, &[0; 4]);
        assert!(matches!(q.get(), Err(Error::Malformed(_))));
        assert!(q.empty());
        q.put(&vec![2; 10])?;
        assert_eq!(q.get()?, vec![2; 10]);
        Ok(())
    }

    #[test]
    fn an_encoding_that_differs_from_its_sizing_publishes_nothing() -> Result<()> {
        /// Serialises one more byte each time it is serialised.
        struct Growing(std::cell::Cell<usize>);
        impl Serialize for Growing {
            fn serialize<S: serde::Serializer>(
                &self,
                s: S,
            ) -> std::result::Result<S::Ok, S::Error> {
                let n = self.0.get();
                self.0.set(n + 1);
                s.serialize_bytes(&vec![3; n])
            }
        }
        let q = Queue::<Vec<u8>>::with_capacity(0, 4096)?;
        let growing = Growing(std::cell::Cell::new(10));
        let len = postcard::serialize_with_flavor(&growing, postcard::ser_flavors::Size::default())
            .expect("size");
        let ring = &q.ring;
        let put = ring.put_with(len, None, |pos, end| {
            postcard::serialize_with_flavor(&growing, RingWriter { ring, pos, end })
                .map(|_| ())
                .map_err(Error::Encode)
        });
        assert!(matches!(put, Err(Error::Encode(_))), "{put:?}");
        assert!(q.empty());
        assert_eq!(q.qsize(), 0);
        q.put(&vec![4; 4])?;
        assert_eq!(q.get()?, vec![4; 4]);
        Ok(())
    }
}
