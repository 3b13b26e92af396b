//! The layout of every shared segment: one `#[repr(C)]` header type with named fields per
//! kind of object, and the argument, made once here, that each is a sound [`Header`].
//!
//! The objects themselves (in `sync/` and `ipc/`) reach their memory only through
//! [`Segment::header`](super::shm::Segment::header) and the checked data-area accessors of
//! [`Segment`](super::shm::Segment). A new shared object adds its header here.
//!
//! # Safety
//!
//! Each `unsafe impl Header` below holds for the same reason: the type is `#[repr(C)]`, its
//! fields are atomics (an [`AtomicPid`] is one `AtomicI32`), [`RawMutex`]es, or structs of
//! those, so all-zero bytes are a valid value, every state another process can leave is a
//! valid value, and shared access through `&Self` is sound; no alignment exceeds 8.
#![allow(unsafe_code)]

use std::sync::atomic::{AtomicU32, AtomicU64};

use super::pthread_mutex::RawMutex;
use super::shm::Header;
use crate::pid::AtomicPid;

// SAFETY: see the module's `# Safety`.
unsafe impl Header for RawMutex {
    const TOO_SMALL: &'static str = "segment too small for a lock";
}

/// A [`Semaphore`](crate::sync::Semaphore) or
/// [`BoundedSemaphore`](crate::sync::BoundedSemaphore).
#[repr(C)]
#[derive(Debug)]
pub(crate) struct SemaphoreHeader {
    /// The count; a futex word.
    pub(crate) value: AtomicU32,
    /// How many waiters sleep on `value`.
    pub(crate) sleepers: AtomicU32,
    /// The largest count a release may reach (`u32::MAX`: unbounded).
    pub(crate) bound: AtomicU32,
}

// SAFETY: see the module's `# Safety`.
unsafe impl Header for SemaphoreHeader {
    const TOO_SMALL: &'static str = "segment too small for a semaphore";
}

/// An [`Event`](crate::sync::Event).
#[repr(C)]
#[derive(Debug)]
pub(crate) struct EventHeader {
    /// 0 clear, 1 set; a futex word.
    pub(crate) flag: AtomicU32,
}

// SAFETY: see the module's `# Safety`.
unsafe impl Header for EventHeader {
    const TOO_SMALL: &'static str = "segment too small for an event";
}

/// The wake-up sequence of a [`Condition`](crate::sync::Condition) (its lock has a segment
/// of its own).
#[repr(C)]
#[derive(Debug)]
pub(crate) struct ConditionHeader {
    /// Bumped by every notify that grants a wake-up; a futex word.
    pub(crate) seq: AtomicU32,
    /// The waiters and the wake-ups granted to them, packed in one word
    /// (`sync::condition::Ledger`), changed by compare-and-swap.
    pub(crate) ledger: AtomicU64,
}

// SAFETY: see the module's `# Safety`.
unsafe impl Header for ConditionHeader {
    const TOO_SMALL: &'static str = "segment too small for a condition";
}

/// A [`Barrier`](crate::sync::Barrier); its data area holds two banks of one [`BarrierSlot`]
/// per party, the even generations' and the odd ones'.
#[repr(C)]
#[derive(Debug)]
pub(crate) struct BarrierHeader {
    /// Serialises every change below.
    pub(crate) mutex: RawMutex,
    /// The number of parties, fixed at creation.
    pub(crate) parties: AtomicU32,
    /// How many parties wait in the current generation.
    pub(crate) count: AtomicU32,
    /// The generation, bumped when all parties arrived.
    pub(crate) generation: AtomicU32,
    /// 1 when broken.
    pub(crate) broken: AtomicU32,
    /// Bumped by every wake-up; a futex word.
    pub(crate) wake_seq: AtomicU32,
    /// The generation a reset or an abort ended (`u32::MAX`: none).
    pub(crate) aborted_generation: AtomicU32,
    /// The default timeout in nanoseconds (`u64::MAX`: none).
    pub(crate) default_timeout: AtomicU64,
}

// SAFETY: see the module's `# Safety`.
unsafe impl Header for BarrierHeader {
    const TOO_SMALL: &'static str = "segment too small for a barrier";
}

/// The party at one index of a [`Barrier`](crate::sync::Barrier): who waits there, and the
/// robust mutex whose holder is that party while it waits.
#[repr(C)]
#[derive(Debug)]
pub(crate) struct BarrierSlot {
    /// The waiting process's pid, none (0) when the slot is free.
    pub(crate) pid: AtomicPid,
    /// 1 when the party recorded here holds `alive`; 0 when it could not take it (an
    /// earlier party of this slot had not left it yet) and its liveness is read from `/proc`.
    pub(crate) held: AtomicU32,
    /// That process's start time (clock ticks since boot), against pid reuse.
    pub(crate) start_time: AtomicU64,
    /// Held by the waiting party: the kernel marks it owner-died when that thread dies.
    pub(crate) alive: RawMutex,
}

// SAFETY: see the module's `# Safety`.
unsafe impl Header for BarrierSlot {
    const TOO_SMALL: &'static str = "segment too small for a barrier party";
}

/// A [`Queue`](crate::ipc::Queue)'s ring; its data area is the ring's bytes.
#[repr(C)]
#[derive(Debug)]
pub(crate) struct QueueHeader {
    /// Serialises every change of the ring.
    pub(crate) mutex: RawMutex,
    /// Monotonic byte offset of the oldest frame.
    pub(crate) head: AtomicU64,
    /// Monotonic byte offset after the newest frame: one store of it commits a put.
    pub(crate) tail: AtomicU64,
    /// Frames in the ring.
    pub(crate) count: AtomicU64,
    /// Sequence number of the next put.
    pub(crate) put_seq: AtomicU64,
    /// How many items were marked done (`JoinableQueue::task_done`).
    pub(crate) done: AtomicU64,
    /// The ring's size in bytes.
    pub(crate) capacity: AtomicU64,
    /// The item bound (0: none).
    pub(crate) maxsize: AtomicU64,
    /// `MAGIC` once initialised.
    pub(crate) magic: AtomicU64,
    /// Bumped when a frame arrives; a futex word.
    pub(crate) not_empty: AtomicU32,
    /// Bumped when space frees up; a futex word.
    pub(crate) not_full: AtomicU32,
    /// How many getters sleep on `not_empty`.
    pub(crate) empty_waiters: AtomicU32,
    /// How many putters sleep on `not_full`.
    pub(crate) full_waiters: AtomicU32,
    /// Bumped when every task is done; a futex word.
    pub(crate) all_done: AtomicU32,
    /// How many joiners sleep on `all_done`.
    pub(crate) join_waiters: AtomicU32,
}

// SAFETY: see the module's `# Safety`.
unsafe impl Header for QueueHeader {
    const TOO_SMALL: &'static str = "segment too small for a queue";
}

/// A [`Value`](crate::ipc::Value) or [`Array`](crate::ipc::Array); its data area holds the
/// elements.
#[repr(C)]
#[derive(Debug)]
pub(crate) struct CellsHeader {
    /// The number of elements.
    pub(crate) len: AtomicU64,
    /// The size of one element in bytes, checked by a process that maps the segment.
    pub(crate) element_size: AtomicU64,
}

// SAFETY: see the module's `# Safety`.
unsafe impl Header for CellsHeader {
    const TOO_SMALL: &'static str = "segment too small for shared data";
}

/// The status slot of a re-executed child (`children::status`), passed to it by fd.
#[repr(C)]
#[derive(Debug)]
pub(crate) struct StatusHeader {
    /// 0 while the child runs, the code of what it waits for while it waits.
    pub(crate) word: AtomicU32,
}

// SAFETY: see the module's `# Safety`.
unsafe impl Header for StatusHeader {
    const TOO_SMALL: &'static str = "status slot segment has the wrong size";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_have_the_sizes_the_segments_assume() {
        assert_eq!(
            std::mem::size_of::<BarrierSlot>(),
            16 + std::mem::size_of::<RawMutex>()
        );
        assert_eq!(std::mem::size_of::<SemaphoreHeader>(), 12);
        assert!(std::mem::align_of::<QueueHeader>() <= 8);
        assert!(std::mem::align_of::<BarrierHeader>() <= 8);
    }
}
