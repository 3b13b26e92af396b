//! The per-process status slot: one word of `MAP_SHARED` memory through which a child tells
//! its parent what it is blocked on.
//!
//! The parent maps a slot before it starts a child; the child installs it as its current
//! slot; every blocking primitive of the runtime wraps its wait in [`blocked`], which writes
//! the reason into the current slot and restores the previous value when the wait ends.
//! The parent reads the slot to report [`BlockedOn`] from `Process::state()`.
//! In a process that has no installed slot (the main program) [`blocked`] does nothing.
//!
//! # Safety
//!
//! The slot is an `AtomicU32` at the start of a page-sized shared mapping that the
//! [`StatusSlot`] owns and unmaps on drop: anonymous for a forked child, a sealed memfd
//! segment (whose size is checked) for a re-executed child.
//! The pointer installed by [`StatusSlot::install_current`] is used only in a child, whose
//! copy of the slot is never dropped: the child path ends in `_exit`.
#![allow(unsafe_code)]

use std::num::NonZeroUsize;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicPtr, AtomicU32, Ordering};

use nix::sys::mman::{MapFlags, ProtFlags, mmap_anonymous, munmap};

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use crate::error::{Error, Result};
use crate::shm::SharedMemory;

/// What a running process is waiting for.
///
/// Mirrors the reasons a `multiprocessing` process can block: a synchronisation primitive,
/// a receive on a pipe or queue, a send into a full queue, or the join of another process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum BlockedOn {
    /// Waiting in `Lock::acquire`.
    Lock,
    /// Waiting in `RLock::acquire`.
    RLock,
    /// Waiting in `Semaphore::acquire` or `BoundedSemaphore::acquire`.
    Semaphore,
    /// Waiting in `Event::wait`.
    Event,
    /// Waiting in `Condition::wait`.
    Condition,
    /// Waiting in `Barrier::wait`.
    Barrier,
    /// Waiting for data in `Connection::recv` or `Queue::get`.
    Recv,
    /// Waiting for room in `Queue::put` or for the peer in `Connection::send`.
    Send,
    /// Waiting in `Process::join` of another process.
    Join,
}

impl BlockedOn {
    /// Every reason, in the order of their slot codes.
    pub const ALL: [BlockedOn; 9] = [
        BlockedOn::Lock,
        BlockedOn::RLock,
        BlockedOn::Semaphore,
        BlockedOn::Event,
        BlockedOn::Condition,
        BlockedOn::Barrier,
        BlockedOn::Recv,
        BlockedOn::Send,
        BlockedOn::Join,
    ];

    /// The word stored in the slot: 0 means running, `n` means `ALL[n - 1]`.
    fn code(self) -> u32 {
        let index = BlockedOn::ALL.iter().position(|&b| b == self);
        // `ALL` lists every variant, so the position always exists; 0 is never produced.
        index.map_or(0, |i| i as u32 + 1)
    }

    fn from_code(code: u32) -> Option<BlockedOn> {
        let index = code.checked_sub(1)?;
        BlockedOn::ALL.get(index as usize).copied()
    }
}

const SLOT_LEN: NonZeroUsize = match NonZeroUsize::new(4096) {
    Some(n) => n,
    None => panic!("the slot length is not zero"),
};

/// The slot a child process writes while it is blocked; `null` in a process without one.
static CURRENT: AtomicPtr<AtomicU32> = AtomicPtr::new(std::ptr::null_mut());

/// A shared word, readable by the parent, written by the child it was made for.
#[derive(Debug)]
pub(crate) struct StatusSlot {
    word: NonNull<AtomicU32>,
    /// The memfd segment behind the word, for a slot handed to a re-executed child by fd;
    /// `None` for an anonymous mapping (inherited through fork), which `drop` unmaps.
    shm: Option<SharedMemory>,
}

// SAFETY: the slot is an `AtomicU32` in memory owned by this value; atomics may be shared
// and sent between threads, and the mapping lives until `drop`.
unsafe impl Send for StatusSlot {}
// SAFETY: all access to the word goes through atomic operations.
unsafe impl Sync for StatusSlot {}

impl StatusSlot {
    /// `mmap(MAP_SHARED | MAP_ANONYMOUS)`—Maps a fresh slot, set to "running".
    ///
    /// # Errors
    ///
    /// `Error::Os { call: "mmap", .. }` when the mapping cannot be made (`ENOMEM`).
    pub(crate) fn new() -> Result<StatusSlot> {
        // SAFETY: an anonymous mapping at an address the kernel picks aliases no Rust object;
        // the kernel zero-fills it, which is a valid `AtomicU32` with value 0 ("running").
        let ptr = unsafe {
            mmap_anonymous(
                None,
                SLOT_LEN,
                ProtFlags::PROT_READ | ProtFlags::PROT_WRITE,
                MapFlags::MAP_SHARED,
            )
        }
        .map_err(|errno| Error::os("mmap", errno))?;
        Ok(StatusSlot {
            word: ptr.cast::<AtomicU32>(),
            shm: None,
        })
    }

    /// A slot in a sealed memfd segment, so that it can be passed by fd to a re-executed
    /// child ([`StatusSlot::fd`], [`StatusSlot::from_fd`]).
    ///
    /// # Errors
    ///
    /// As [`SharedMemory::new`].
    pub(crate) fn new_shared() -> Result<StatusSlot> {
        Self::over(SharedMemory::new(SLOT_LEN.get())?)
    }

    /// Maps a slot received by fd.
    ///
    /// # Errors
    ///
    /// [`Error::Malformed`] when the fd is not a sealed segment of a slot's size.
    pub(crate) fn from_fd(fd: OwnedFd) -> Result<StatusSlot> {
        let shm = SharedMemory::from_fd(fd)?;
        if shm.len() != SLOT_LEN.get() {
            return Err(Error::Malformed("status slot segment has the wrong size"));
        }
        Self::over(shm)
    }

    fn over(shm: SharedMemory) -> Result<StatusSlot> {
        let word = NonNull::new(shm.as_ptr().cast::<AtomicU32>())
            .ok_or(Error::Malformed("status slot mapped at null"))?;
        Ok(StatusSlot {
            word,
            shm: Some(shm),
        })
    }

    /// The fd of a slot made by [`StatusSlot::new_shared`].
    pub(crate) fn fd(&self) -> Option<BorrowedFd<'_>> {
        self.shm.as_ref().map(AsFd::as_fd)
    }

    fn word(&self) -> &AtomicU32 {
        // SAFETY: `word` points at the start of a live, page-aligned mapping owned by `self`.
        unsafe { self.word.as_ref() }
    }

    /// What the child says it is blocked on, or `None` while it runs.
    pub(crate) fn blocked_on(&self) -> Option<BlockedOn> {
        BlockedOn::from_code(self.word().load(Ordering::Acquire))
    }

    /// Makes this slot the current process's slot. Called once, in the child, right after
    /// it was created and before the target runs.
    pub(crate) fn install_current(&self) {
        self.word().store(0, Ordering::Release);
        CURRENT.store(self.word.as_ptr(), Ordering::Release);
    }
}

impl Drop for StatusSlot {
    fn drop(&mut self) {
        // The slot is about to disappear; a current pointer at it would dangle.
        let _ = CURRENT.compare_exchange(
            self.word.as_ptr(),
            std::ptr::null_mut(),
            Ordering::AcqRel,
            Ordering::Acquire,
        );
        if self.shm.is_some() {
            // The segment unmaps itself.
            return;
        }
        // SAFETY: the mapping was made by `new` with this address and length, and no
        // reference into it outlives `self`. An error here cannot be handled in `drop`.
        let _ = unsafe { munmap(self.word.cast(), SLOT_LEN.get()) };
    }
}

/// Marks the current process as blocked until the guard is dropped.
///
/// Every blocking wait in the runtime holds one of these for exactly the time it sleeps.
/// Guards nest: dropping one restores what was there before it.
#[must_use = "the process counts as blocked only while the guard lives"]
#[derive(Debug)]
pub(crate) struct BlockedGuard {
    previous: u32,
}

/// Records that the current process is blocked on `on`, until the returned guard drops.
pub(crate) fn blocked(on: BlockedOn) -> BlockedGuard {
    let slot = CURRENT.load(Ordering::Acquire);
    if slot.is_null() {
        return BlockedGuard { previous: 0 };
    }
    // SAFETY: a non-null `CURRENT` points at a live slot: see the module's `# Safety`.
    let word = unsafe { &*slot };
    BlockedGuard {
        previous: word.swap(on.code(), Ordering::AcqRel),
    }
}

impl Drop for BlockedGuard {
    fn drop(&mut self) {
        let slot = CURRENT.load(Ordering::Acquire);
        if !slot.is_null() {
            // SAFETY: as in `blocked`.
            let word = unsafe { &*slot };
            word.store(self.previous, Ordering::Release);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip() {
        for on in BlockedOn::ALL {
            assert_eq!(BlockedOn::from_code(on.code()), Some(on));
        }
        assert_eq!(BlockedOn::from_code(0), None);
        assert_eq!(BlockedOn::from_code(BlockedOn::ALL.len() as u32 + 1), None);
    }

    #[test]
    fn guard_writes_and_restores() {
        let slot = StatusSlot::new().expect("mmap");
        assert_eq!(slot.blocked_on(), None);
        slot.install_current();
        {
            let _outer = blocked(BlockedOn::Condition);
            assert_eq!(slot.blocked_on(), Some(BlockedOn::Condition));
            {
                let _inner = blocked(BlockedOn::Lock);
                assert_eq!(slot.blocked_on(), Some(BlockedOn::Lock));
            }
            assert_eq!(slot.blocked_on(), Some(BlockedOn::Condition));
        }
        assert_eq!(slot.blocked_on(), None);
        drop(slot);
        assert!(CURRENT.load(Ordering::Acquire).is_null());
    }
}
