//! The per-process status slot: one word of `MAP_SHARED` memory through which a child tells
//! its parent what it is blocked on.
//!
//! The parent takes a slot before it starts a child; the child installs it as its current
//! slot; every blocking primitive of the runtime wraps its wait in [`blocked`], which writes
//! the reason into the current slot and restores the previous value when the wait ends.
//! The parent reads the slot to report [`BlockedOn`] from `Process::state()`.
//! In a process that has no installed slot (the main program) [`blocked`] does nothing.
//!
//! # Safety
//!
//! A slot is an `AtomicU32`, in one of three kinds of `MAP_SHARED` memory:
//! - for a forked child, a 64-byte cell of a pool page: anonymous pages, mapped once and
//!   never unmapped, each cut into 64 cells, with one bitmap word per page saying which are
//!   taken. A cell is recycled when its [`StatusSlot`] drops after the child was reaped, so
//!   starting a child costs no `mmap`/`munmap`. Forked children inherit the pages and the
//!   pool; the pool records its owner's pid, and a child adopts it at its first start
//!   (forgets the parent's pages, takes cells from pages of its own, never frees the
//!   parent's). The current slot records the pid that installed it, and a process that
//!   inherited it through a fork it did not make with the runtime never writes to it, so a
//!   recycled cell is written only by the child it was handed to;
//! - when the pool is full, a page of its own, unmapped on drop;
//! - for a re-executed child, a sealed memfd segment (whose size is checked).
//!
//! The pointer installed by [`StatusSlot::install_current`] is used only in a child, whose
//! copy of the slot is never dropped: the child path ends in `_exit`.
#![allow(unsafe_code)]

use std::num::NonZeroUsize;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicPtr, AtomicU32, AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};

use nix::sys::mman::{MapFlags, ProtFlags, mmap_anonymous, munmap};

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

const _: () = assert!(PER_PAGE == u64::BITS as usize);

use crate::children::wait::KernelWait;
use crate::error::{Error, Result};
use crate::os::shm::SharedMemory;

/// What a running process is waiting for.
///
/// Mirrors the reasons a `multiprocessing` process can block: a synchronisation primitive,
/// a receive on a pipe or queue, a send into a full queue, or the join of another process
/// (the runtime's own primitives, which the child names through its status slot); or any
/// other wait, in the kernel ([`BlockedOn::Kernel`], which `Process::state()` reads from
/// `/proc`).
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
    /// Asleep in the kernel outside the runtime's primitives: a system call such as `read`
    /// of a pipe, `clock_nanosleep`, the `futex` of a `std::sync::Mutex`, `wait4`. Seen
    /// through `/proc`, never written to the status slot.
    Kernel(KernelWait),
}

impl BlockedOn {
    /// Every reason a child writes to its status slot, in the order of their slot codes
    /// (all but [`BlockedOn::Kernel`], which only `/proc` reports).
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

    /// The word stored in the slot: 0 means running, `n` means `ALL[n - 1]`; a reason not
    /// in `ALL` ([`BlockedOn::Kernel`]) is stored as 0.
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

/// Bytes between two pooled slots: a cache line each, so that children blocking at the
/// same time do not write to the same line.
const CELL: usize = 64;
/// Slots per pool page (one bit each in the page's `used` word).
const PER_PAGE: usize = SLOT_LEN.get() / CELL;
/// Pool pages: up to 16 384 forked children alive at once share them; beyond that each
/// child gets a page of its own.
const MAX_PAGES: usize = 256;

/// The pool of slots for forked children (see the module's documentation).
struct Pool {
    /// Page addresses; null until a page is mapped. Pages are never unmapped.
    pages: [AtomicPtr<u8>; MAX_PAGES],
    /// Bit `i` of `used[p]`: cell `i` of page `p` is taken.
    used: [AtomicU64; MAX_PAGES],
    /// The pid of the process whose pool this is; another pid means it was inherited
    /// through `fork()` (0 until the first cell is taken).
    owner: AtomicI32,
}

static POOL: Pool = Pool {
    pages: [const { AtomicPtr::new(std::ptr::null_mut()) }; MAX_PAGES],
    used: [const { AtomicU64::new(0) }; MAX_PAGES],
    owner: AtomicI32::new(0),
};

/// Serialises the adoption of an inherited pool (see [`adopt_pool`]).
static ADOPT: Mutex<()> = Mutex::new(());

/// Makes the pool the calling process's own if it was inherited through `fork()`: forgets
/// the ancestor's pages (they stay mapped, since a forked child's own slot is in one of
/// them) and so never hands out or frees a cell of theirs. Done at the first start of a
/// child rather than right after the fork, so that a forked child that starts nothing
/// never writes to the pool's memory (each page a child writes costs it a copy-on-write
/// fault).
fn adopt_pool(pid: i32) {
    if POOL.owner.load(Ordering::Acquire) == pid {
        return;
    }
    let _adopt = ADOPT.lock().unwrap_or_else(PoisonError::into_inner);
    if POOL.owner.load(Ordering::Acquire) == pid {
        return;
    }
    // Pages are mapped in order, so the mapped ones are a prefix.
    for (page, used) in POOL.pages.iter().zip(&POOL.used) {
        if page.load(Ordering::Acquire).is_null() {
            break;
        }
        page.store(std::ptr::null_mut(), Ordering::Release);
        used.store(0, Ordering::Release);
    }
    POOL.owner.store(pid, Ordering::Release);
}

/// Maps one zero-filled shared page.
fn map_page() -> Result<NonNull<u8>> {
    // SAFETY: an anonymous mapping at an address the kernel picks aliases no Rust object;
    // the kernel zero-fills it, which is a valid `AtomicU32` with value 0 ("running") at
    // every cell.
    let ptr = unsafe {
        mmap_anonymous(
            None,
            SLOT_LEN,
            ProtFlags::PROT_READ | ProtFlags::PROT_WRITE,
            MapFlags::MAP_SHARED,
        )
    }
    .map_err(|errno| Error::os("mmap", errno))?;
    Ok(ptr.cast::<u8>())
}

/// Takes a free cell of the pool, mapping a page when every mapped one is full; `None`
/// when the pool is full.
fn take_cell() -> Result<Option<StatusSlot>> {
    let owner = crate::os::process::getpid();
    adopt_pool(owner);
    for (p, (page_ptr, used)) in POOL.pages.iter().zip(&POOL.used).enumerate() {
        let mut page = page_ptr.load(Ordering::Acquire);
        if page.is_null() {
            let fresh = map_page()?;
            match page_ptr.compare_exchange(
                std::ptr::null_mut(),
                fresh.as_ptr(),
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => page = fresh.as_ptr(),
                Err(other) => {
                    // SAFETY: `fresh` was mapped just above with this length and is not
                    // shared with anyone: another thread published its page first.
                    let _ = unsafe { munmap(fresh.cast(), SLOT_LEN.get()) };
                    page = other;
                }
            }
        }
        let mut taken = used.load(Ordering::Acquire);
        while taken != u64::MAX {
            let index = (!taken).trailing_zeros() as usize;
            match used.compare_exchange_weak(
                taken,
                taken | (1 << index),
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => {
                    // SAFETY: `index < PER_PAGE`, so the cell lies inside the mapped page;
                    // cells are `CELL`-aligned in a page-aligned mapping.
                    let cell = unsafe { page.add(index * CELL) };
                    let word = NonNull::new(cell.cast::<AtomicU32>())
                        .ok_or(Error::Malformed("status slot mapped at null"))?;
                    let slot = StatusSlot {
                        word,
                        backing: Backing::Pooled {
                            page: p,
                            index,
                            owner,
                        },
                        recycle: AtomicBool::new(false),
                    };
                    // A recycled cell may hold what a dead child was blocked on.
                    slot.word().store(0, Ordering::Release);
                    return Ok(Some(slot));
                }
                Err(now) => taken = now,
            }
        }
    }
    Ok(None)
}

/// The slot a child process writes while it is blocked; `null` in a process without one.
static CURRENT: AtomicPtr<AtomicU32> = AtomicPtr::new(std::ptr::null_mut());
/// The pid of the process that installed [`CURRENT`]: a process forked from it without the
/// runtime inherits the pointer but must not write through it.
static CURRENT_PID: AtomicI32 = AtomicI32::new(0);

/// A shared word, readable by the parent, written by the child it was made for.
#[derive(Debug)]
pub(crate) struct StatusSlot {
    word: NonNull<AtomicU32>,
    backing: Backing,
    /// For a pooled cell: whether `drop` may hand it to another child. Set by
    /// [`StatusSlot::recycle_on_drop`] once the child is known to be dead; a slot dropped
    /// while its child may still run is left taken, so that the child never writes into
    /// another child's slot.
    recycle: AtomicBool,
}

/// The memory behind a slot.
#[derive(Debug)]
enum Backing {
    /// Cell `index` of pool page `page`, taken by process `owner`.
    Pooled {
        page: usize,
        index: usize,
        owner: i32,
    },
    /// A page of its own (inherited through fork), which `drop` unmaps.
    Mapped,
    /// A memfd segment, for a slot handed to a re-executed child by fd.
    Shared(SharedMemory),
}

// SAFETY: the slot is an `AtomicU32` in memory owned by this value; atomics may be shared
// and sent between threads, and the mapping lives until `drop`.
unsafe impl Send for StatusSlot {}
// SAFETY: all access to the word goes through atomic operations.
unsafe impl Sync for StatusSlot {}

impl StatusSlot {
    /// A slot for a forked child, set to "running": a cell of the pool, or a page of its own
    /// (`mmap(MAP_SHARED | MAP_ANONYMOUS)`) when the pool is full.
    ///
    /// # Errors
    ///
    /// `Error::Os { call: "mmap", .. }` when a page cannot be mapped (`ENOMEM`).
    pub(crate) fn new() -> Result<StatusSlot> {
        if let Some(slot) = take_cell()? {
            return Ok(slot);
        }
        Ok(StatusSlot {
            word: map_page()?.cast::<AtomicU32>(),
            backing: Backing::Mapped,
            recycle: AtomicBool::new(false),
        })
    }

    /// Lets `drop` hand a pooled cell to another child: to be called once the child this
    /// slot was made for is dead (reaped, or its status collected).
    pub(crate) fn recycle_on_drop(&self) {
        self.recycle.store(true, Ordering::Release);
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
            backing: Backing::Shared(shm),
            recycle: AtomicBool::new(false),
        })
    }

    /// The fd of a slot made by [`StatusSlot::new_shared`].
    pub(crate) fn fd(&self) -> Option<BorrowedFd<'_>> {
        match &self.backing {
            Backing::Shared(shm) => Some(shm.as_fd()),
            Backing::Pooled { .. } | Backing::Mapped => None,
        }
    }

    fn word(&self) -> &AtomicU32 {
        // SAFETY: `word` points at an aligned `AtomicU32` in a live mapping: a pool page
        // (never unmapped) or a mapping owned by `self`.
        unsafe { self.word.as_ref() }
    }

    /// What the child says it is blocked on, or `None` while it runs.
    pub(crate) fn blocked_on(&self) -> Option<BlockedOn> {
        BlockedOn::from_code(self.word().load(Ordering::Acquire))
    }

    /// Makes this slot the current process's slot. Called once, in the child, right after
    /// it was created and before the target runs.
    #[cfg(test)]
    pub(crate) fn install_current(&self) {
        self.install_current_as(crate::os::process::getpid());
    }

    /// [`install_current`](Self::install_current) for a caller that knows its pid `me`.
    pub(crate) fn install_current_as(&self, me: i32) {
        self.word().store(0, Ordering::Release);
        CURRENT_PID.store(me, Ordering::Release);
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
        match self.backing {
            // The segment unmaps itself.
            Backing::Shared(_) => {}
            Backing::Pooled { page, index, owner } => {
                // A copy inherited through fork belongs to an ancestor's pool: leave it.
                if self.recycle.load(Ordering::Acquire)
                    && owner == POOL.owner.load(Ordering::Acquire)
                    && owner == crate::os::process::getpid()
                    && let Some(used) = POOL.used.get(page)
                {
                    used.fetch_and(!(1u64 << index), Ordering::AcqRel);
                }
            }
            Backing::Mapped => {
                // SAFETY: the mapping was made by `new` with this address and length, and
                // no reference into it outlives `self`. An error cannot be handled in `drop`.
                let _ = unsafe { munmap(self.word.cast(), SLOT_LEN.get()) };
            }
        }
    }
}

/// Marks the current process as blocked until the guard is dropped.
///
/// Every blocking wait in the runtime holds one of these for exactly the time it sleeps.
/// Guards nest: dropping one restores what was there before it.
#[must_use = "the process counts as blocked only while the guard lives"]
#[derive(Debug)]
pub(crate) struct BlockedGuard {
    /// The slot written, or null when the process has none.
    word: *const AtomicU32,
    previous: u32,
}

/// The current slot, if this process installed it.
fn current() -> *const AtomicU32 {
    let slot = CURRENT.load(Ordering::Acquire);
    if slot.is_null() || CURRENT_PID.load(Ordering::Acquire) != crate::os::process::getpid() {
        return std::ptr::null();
    }
    slot
}

/// Records that the current process is blocked on `on`, until the returned guard drops.
pub(crate) fn blocked(on: BlockedOn) -> BlockedGuard {
    let word = current();
    if word.is_null() {
        return BlockedGuard { word, previous: 0 };
    }
    // SAFETY: a non-null `current()` points at a live slot: see the module's `# Safety`.
    let previous = unsafe { &*word }.swap(on.code(), Ordering::AcqRel);
    BlockedGuard { word, previous }
}

impl Drop for BlockedGuard {
    fn drop(&mut self) {
        // Compared with the current slot, so that a slot dropped meanwhile (which clears
        // `CURRENT`) is not written.
        if !self.word.is_null() && std::ptr::eq(self.word, CURRENT.load(Ordering::Acquire)) {
            // SAFETY: as in `blocked`.
            let word = unsafe { &*self.word };
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
