//! The per-process status slot: one word of `MAP_SHARED` memory through which a child tells
//! its parent what it is blocked on.
//!
//! The parent takes a slot before it starts a child; the child installs it as its current
//! slot; every blocking primitive of the runtime wraps its wait in [`blocked`], which writes
//! the reason into the current slot and restores the previous value when the wait ends.
//! The parent reads the slot to report [`BlockedOn`] from `Process::state()`.
//! In a process that has no installed slot (the main program) [`blocked`] does nothing.
//!
//! # Memory
//!
//! A slot is an `AtomicU32`, in one of three kinds of `MAP_SHARED` memory (the mappings and
//! their soundness are in [`crate::os::slot`] and [`crate::os::shm`]):
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
//! - for a re-executed child, a sealed memfd segment laid out as `os::layout::StatusHeader`.
//!
//! [`StatusSlot::install_current_as`] consumes the slot and keeps its memory for the rest of
//! the process's life, so the current slot never dangles.
#![forbid(unsafe_code)]

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use crate::children::wait::KernelWait;
use crate::error::Result;
use crate::os;
use crate::os::layout::StatusHeader;
use crate::os::shm::Segment;
use crate::os::slot::{Cell, CurrentWord, OwnPage, PER_PAGE, PoolPage};
use crate::pid::{AtomicPid, Pid};

const _: () = assert!(PER_PAGE == u64::BITS as usize);

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

/// Pool pages: up to 16 384 forked children alive at once share them; beyond that each
/// child gets a page of its own.
const MAX_PAGES: usize = 256;

/// The pool of slots for forked children (see the module's documentation).
struct Pool {
    /// The pages, mapped in order (the mapped ones are a prefix); never unmapped.
    pages: [PoolPage; MAX_PAGES],
    /// Bit `i` of `used[p]`: cell `i` of page `p` is taken.
    used: [AtomicU64; MAX_PAGES],
    /// The pid of the process whose pool this is; another pid means it was inherited
    /// through `fork()` (none until the first cell is taken).
    owner: AtomicPid,
}

static POOL: Pool = Pool {
    pages: [const { PoolPage::empty() }; MAX_PAGES],
    used: [const { AtomicU64::new(0) }; MAX_PAGES],
    owner: AtomicPid::none(),
};

/// Serialises the adoption of an inherited pool (see [`adopt_pool`]).
static ADOPT: Mutex<()> = Mutex::new(());

/// Makes the pool the calling process's own if it was inherited through `fork()`: forgets
/// the ancestor's pages (they stay mapped, since a forked child's own slot is in one of
/// them) and so never hands out or frees a cell of theirs. Done at the first start of a
/// child rather than right after the fork, so that a forked child that starts nothing
/// never writes to the pool's memory (each page a child writes costs it a copy-on-write
/// fault).
fn adopt_pool(pid: Pid) {
    if POOL.owner.load(Ordering::Acquire) == Some(pid) {
        return;
    }
    let _adopt = ADOPT.lock().unwrap_or_else(PoisonError::into_inner);
    if POOL.owner.load(Ordering::Acquire) == Some(pid) {
        return;
    }
    for (page, used) in POOL.pages.iter().zip(&POOL.used) {
        if page.get().is_none() {
            break;
        }
        page.forget();
        used.store(0, Ordering::Release);
    }
    POOL.owner.store(Some(pid), Ordering::Release);
}

/// Takes a free cell of the pool, mapping a page when every mapped one is full; `None`
/// when the pool is full.
fn take_cell() -> Result<Option<StatusSlot>> {
    let owner = crate::os::process::getpid();
    adopt_pool(owner);
    for (p, (place, used)) in POOL.pages.iter().zip(&POOL.used).enumerate() {
        let page = place.get_or_map()?;
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
                    let cell = &page.cells[index];
                    // A recycled cell may hold what a dead child left in it.
                    cell.word.store(0, Ordering::Release);
                    cell.handoff.store(PIDFD_PENDING, Ordering::Release);
                    return Ok(Some(StatusSlot {
                        backing: Backing::Pooled(PoolCell {
                            cell,
                            page: p,
                            index,
                            owner,
                            recycle: AtomicBool::new(false),
                        }),
                    }));
                }
                Err(now) => taken = now,
            }
        }
    }
    Ok(None)
}

/// The slot the calling process writes while it is blocked (none in the main program).
static CURRENT: CurrentWord = CurrentWord::none();

/// A shared word, readable by the parent, written by the child it was made for.
#[derive(Debug)]
pub(crate) struct StatusSlot {
    backing: Backing,
}

/// Cell `index` of pool page `page`, taken by process `owner`; freed on drop if `recycle`.
#[derive(Debug)]
struct PoolCell {
    cell: &'static Cell,
    page: usize,
    index: usize,
    owner: Pid,
    /// Whether `drop` may hand the cell to another child. Set by
    /// [`StatusSlot::recycle_on_drop`] once the child is known to be dead; a slot dropped
    /// while its child may still run is left taken, so that the child never writes into
    /// another child's slot.
    recycle: AtomicBool,
}

/// The memory behind a slot.
#[derive(Debug)]
enum Backing {
    /// A cell of the pool.
    Pooled(PoolCell),
    /// A page of its own (when the pool is full), unmapped on drop.
    Mapped(OwnPage),
    /// A memfd segment, for a slot handed to a re-executed child by fd.
    Shared(Segment<StatusHeader>),
}

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
            backing: Backing::Mapped(OwnPage::map()?),
        })
    }

    /// Lets `drop` hand a pooled cell to another child: to be called once the child this
    /// slot was made for is dead (reaped, or its status collected).
    pub(crate) fn recycle_on_drop(&self) {
        if let Backing::Pooled(cell) = &self.backing {
            cell.recycle.store(true, Ordering::Release);
        }
    }

    /// A slot in a sealed memfd segment, so that it can be passed by fd to a re-executed
    /// child ([`StatusSlot::fd`], [`StatusSlot::from_fd`]).
    ///
    /// # Errors
    ///
    /// As [`crate::os::shm::SharedMemory::new`].
    pub(crate) fn new_shared() -> Result<StatusSlot> {
        Ok(StatusSlot {
            backing: Backing::Shared(Segment::new(0, |_, _| Ok(()))?),
        })
    }

    /// Maps a slot received by fd.
    ///
    /// # Errors
    ///
    /// [`crate::Error::Malformed`] when the fd is not a sealed segment that holds a slot.
    pub(crate) fn from_fd(fd: OwnedFd) -> Result<StatusSlot> {
        Ok(StatusSlot {
            backing: Backing::Shared(Segment::from_fd(fd)?),
        })
    }

    /// The fd of a slot made by [`StatusSlot::new_shared`].
    pub(crate) fn fd(&self) -> Option<BorrowedFd<'_>> {
        match &self.backing {
            Backing::Shared(segment) => Some(segment.as_fd()),
            Backing::Pooled(_) | Backing::Mapped(_) => None,
        }
    }

    fn word(&self) -> &AtomicU32 {
        match &self.backing {
            Backing::Pooled(pooled) => &pooled.cell.word,
            Backing::Mapped(page) => &page.cell().word,
            Backing::Shared(segment) => &segment.header().word,
        }
    }

    /// The pidfd handoff word of a forked child's slot.
    fn handoff(&self) -> Option<&AtomicU32> {
        match &self.backing {
            Backing::Pooled(pooled) => Some(&pooled.cell.handoff),
            Backing::Mapped(page) => Some(&page.cell().handoff),
            Backing::Shared(_) => None,
        }
    }

    /// Tells the child this slot was made for that its parent holds its pidfd now, so it
    /// may exit ([`wait_for_pidfd_handoff`]): one store, and a `futex` wake only when the
    /// child already waits.
    pub(crate) fn pidfd_held(&self) {
        if let Some(handoff) = self.handoff()
            && handoff.swap(PIDFD_HELD, Ordering::AcqRel) == CHILD_WAITS
        {
            os::futex::wake(handoff, 1);
        }
    }

    /// What the child says it is blocked on, or `None` while it runs.
    pub(crate) fn blocked_on(&self) -> Option<BlockedOn> {
        BlockedOn::from_code(self.word().load(Ordering::Acquire))
    }

    /// Makes this slot the current slot of the calling process, whose pid is `me`, for the
    /// rest of its life (or until [`uninstall_current`]). Called once, in the child, right
    /// after it was created and before the target runs.
    ///
    /// The slot's memory is kept until the process ends: a pool cell is already (its page
    /// is never unmapped); a page of its own or a segment is leaked, one page in a child.
    ///
    /// A forked child's slot also carries the pidfd handoff from its parent `parent`, which
    /// [`wait_for_pidfd_handoff`] waits for.
    pub(crate) fn install_current_as(self, me: Pid, parent: Pid) -> Installed {
        let (word, handoff): (&'static AtomicU32, Option<&'static AtomicU32>) = match self.backing {
            // Dropping the cell's record leaves the cell taken (not recycled).
            Backing::Pooled(pooled) => (&pooled.cell.word, Some(&pooled.cell.handoff)),
            Backing::Mapped(page) => {
                let cell = Box::leak(Box::new(page)).cell();
                (&cell.word, Some(&cell.handoff))
            }
            Backing::Shared(segment) => (&Box::leak(Box::new(segment)).header().word, None),
        };
        word.store(0, Ordering::Release);
        CURRENT.install(word, me);
        match handoff {
            Some(handoff) => {
                HANDOFF_PARENT.store(Some(parent), Ordering::Release);
                HANDOFF.install(handoff, me);
            }
            None => HANDOFF.clear(),
        }
        Installed(word)
    }
}

/// The current slot, as installed by [`StatusSlot::install_current_as`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct Installed(&'static AtomicU32);

impl Installed {
    /// What this process says it is blocked on, or `None` while it runs.
    #[cfg_attr(not(test), allow(dead_code))]
    pub(crate) fn blocked_on(self) -> Option<BlockedOn> {
        BlockedOn::from_code(self.0.load(Ordering::Acquire))
    }
}

/// Stops writing to the current slot: the calling process counts as running from now on.
pub(crate) fn uninstall_current() {
    CURRENT.clear();
}

/// The handoff word's values: the parent does not hold the child's pidfd yet, it does, the
/// child waits for it.
const PIDFD_PENDING: u32 = 0;
const PIDFD_HELD: u32 = 1;
const CHILD_WAITS: u32 = 2;

/// The pidfd handoff word of the calling process, a forked child, and its parent's pid.
static HANDOFF: CurrentWord = CurrentWord::none();
static HANDOFF_PARENT: AtomicPid = AtomicPid::none();

/// How often a child waiting for the handoff checks that its parent is still alive.
const HANDOFF_RECHECK: Duration = Duration::from_millis(10);

/// Waits, in a forked child about to end, until its parent holds its pidfd.
///
/// The parent opens the pidfd right after `fork()` returns. A child that ended before that
/// and whose parent ignores `SIGCHLD` (or set `SA_NOCLDWAIT`) would be reaped by the kernel
/// at once, and the parent's `pidfd_open` would fail with `ESRCH` although the target ran
/// (fault catalogue T12). In the common case the parent has long set the word and this is
/// one load; otherwise the child sleeps on the word until the parent sets it, or stops
/// waiting when its parent has died (it is then nobody's to watch). A child that dies by a
/// signal never gets here.
pub(crate) fn wait_for_pidfd_handoff() {
    let Some(handoff) = HANDOFF.installed() else {
        return;
    };
    if handoff.load(Ordering::Acquire) == PIDFD_HELD
        || handoff
            .compare_exchange(
                PIDFD_PENDING,
                CHILD_WAITS,
                Ordering::AcqRel,
                Ordering::Acquire,
            )
            .is_err_and(|now| now == PIDFD_HELD)
    {
        return;
    }
    let parent = HANDOFF_PARENT.load(Ordering::Acquire);
    while handoff.load(Ordering::Acquire) != PIDFD_HELD && os::process::getppid() == parent {
        let deadline = os::time::Deadline::after(Some(HANDOFF_RECHECK));
        if os::futex::wait(handoff, CHILD_WAITS, &deadline).is_err() {
            return;
        }
    }
}

impl Drop for PoolCell {
    fn drop(&mut self) {
        // A copy inherited through fork belongs to an ancestor's pool: leave it.
        if self.recycle.load(Ordering::Acquire)
            && POOL.owner.load(Ordering::Acquire) == Some(self.owner)
            && self.owner == crate::os::process::getpid()
            && let Some(used) = POOL.used.get(self.page)
        {
            used.fetch_and(!(1u64 << self.index), Ordering::AcqRel);
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
    /// The slot written, or `None` when the process has none.
    word: Option<&'static AtomicU32>,
    previous: u32,
}

/// Records that the current process is blocked on `on`, until the returned guard drops.
pub(crate) fn blocked(on: BlockedOn) -> BlockedGuard {
    let Some(word) = CURRENT.get(crate::os::process::getpid) else {
        return BlockedGuard {
            word: None,
            previous: 0,
        };
    };
    let previous = word.swap(on.code(), Ordering::AcqRel);
    BlockedGuard {
        word: Some(word),
        previous,
    }
}

impl Drop for BlockedGuard {
    fn drop(&mut self) {
        // Compared with the current slot, so that a slot uninstalled or replaced meanwhile
        // is not written.
        if let Some(word) = self.word
            && CURRENT.is(word)
        {
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
        let me = crate::os::process::getpid();
        let slot = slot.install_current_as(me, me);
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
        uninstall_current();
        let _ignored = blocked(BlockedOn::Lock);
        assert_eq!(slot.blocked_on(), None, "written after uninstall_current");
    }
}
