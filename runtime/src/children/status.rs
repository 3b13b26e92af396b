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
//! - for a forked child, a 64-byte cell of the pool: the pages of reserved regions of shared
//!   anonymous memory (`os::slot::Region`, 16 384 cells each), committed in order as the pool
//!   grows and never unmapped, each page cut into 64 cells, with one bitmap word per page
//!   saying which are taken (in the region's shared header page, so that the parent's
//!   writes to it never cost a copy-on-write fault while a child shares its memory). A cell is recycled when its [`StatusSlot`] drops after the child
//!   was reaped, so starting a child costs no `mmap`/`munmap`, and a region stays at most two
//!   mappings however many children it serves (every `fork()` copies each mapping; decision
//!   0023); a second region is reserved only when the first is full. Forked children inherit
//!   the regions and the pool; the pool records its owner's pid, and a child adopts it at its
//!   first start (forgets the parent's regions, reserves its own, never frees the parent's
//!   cells). The current slot records the pid that installed it, and a process that
//!   inherited it through a fork it did not make with the runtime never writes to it, so a
//!   recycled cell is written only by the child it was handed to. The pool holds
//!   [`MAX_POOLED`] cells in [`MAX_REGIONS`] regions: a start beyond that, while every cell
//!   is taken, fails with `Error::Os { call: "fork", errno: EAGAIN }`, as `fork(2)` does at
//!   a limit on processes;
//! - for a child of the fork server, a cell of the fork server's pool: the same kind of
//!   pool, of one region (16 384 cells) in a sealed memfd instead of anonymous memory. The
//!   parent sends the memfd once to each fork server it starts, the server maps the pages of
//!   cells once, every child it forks inherits that mapping, and a start request names the
//!   child's cell by number, so that a start costs no system call for the slot. The parent
//!   recycles the cell once it has collected the child's exit (`PIDFD_INFO_EXIT`), never
//!   before: a child orphaned by a dead server keeps its cell while it may run; all cells
//!   taken is `EAGAIN` as above (decision 0027);
//! - for a re-executed child, a sealed memfd segment laid out as `os::layout::StatusHeader`.
//!
//! [`StatusSlot::install_current_as`] consumes the slot and keeps its memory for the rest of
//! the process's life, so the current slot never dangles.
#![forbid(unsafe_code)]

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};

use nix::errno::Errno;
use std::sync::{Mutex, OnceLock, PoisonError};
use std::time::Duration;

use crate::children::wait::KernelWait;
use crate::error::{Error, Result};
use crate::os;
use crate::os::layout::StatusHeader;
use crate::os::shm::Segment;
use crate::os::slot::{
    Cell, CurrentWord, PER_PAGE, PoolRegion, REGION_PAGES, Region, RegionPage, ServedCells,
};
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

/// The most regions of one pool.
pub(crate) const MAX_REGIONS: usize = 16;
/// The pages of all the regions of one pool.
const MAX_PAGES: usize = MAX_REGIONS * REGION_PAGES;
/// The most forked children whose slots the pool holds at once: 262 144.
#[cfg_attr(not(test), allow(dead_code))]
pub(crate) const MAX_POOLED: usize = MAX_PAGES * PER_PAGE;

/// The pool of slots for forked children (see the module's documentation).
///
/// A few words of the parent's own memory: the bitmap of taken cells is in the regions'
/// shared headers ([`crate::os::slot::RegionHeader`]).
struct Pool {
    /// The pid of the process whose pool this is; another pid means it was inherited
    /// through `fork()` (none until the first cell is taken).
    owner: AtomicPid,
    /// The lowest page that may have a free cell, where a search starts (a hint: a search
    /// that finds nothing from here looks at the pages below it too), so that a start does
    /// not read one word per full page.
    first_free: AtomicUsize,
    /// Serialises the adoption of an inherited pool (see [`Pool::adopt`]).
    adopt: Mutex<()>,
    /// The regions, reserved in order (the reserved ones are a prefix). The fork pool's
    /// are never unmapped; the fork server's is retired with its server
    /// ([`PoolRegion::retire`]), and unmapped only once no cell of it is taken.
    /// Page `p` of the pool is page `p % REGION_PAGES` of region `p / REGION_PAGES`.
    regions: [PoolRegion; MAX_REGIONS],
    /// The pages the pool may use: those of its first `pages / REGION_PAGES` regions.
    pages: usize,
    /// Whether its regions are memfds ([`crate::os::slot::Region::reserve_memfd`]).
    memfd: bool,
}

/// The pool of the forked children's slots.
static POOL: Pool = Pool::new(MAX_REGIONS, false);

/// The pool of the fork server's children's slots: one memfd region per server, which the
/// server maps at its start and every child it forks inherits; a child's cell travels by
/// number in its start request. A start beyond its [`SERVER_CELLS`] cells, while all are taken, fails
/// with `EAGAIN` as at the fork pool's limit.
static SERVER_POOL: Pool = Pool::new(1, true);

/// The cells of the fork server's pool.
#[cfg_attr(not(test), allow(dead_code))]
pub(crate) const SERVER_CELLS: usize = REGION_PAGES * PER_PAGE;

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("owner", &self.owner)
            .finish_non_exhaustive()
    }
}

impl Pool {
    /// An empty pool of at most `regions` regions (at most [`MAX_REGIONS`]), in memfds if
    /// `memfd`.
    const fn new(regions: usize, memfd: bool) -> Pool {
        assert!(regions <= MAX_REGIONS);
        Pool {
            owner: AtomicPid::none(),
            first_free: AtomicUsize::new(0),
            adopt: Mutex::new(()),
            regions: [const { PoolRegion::empty() }; MAX_REGIONS],
            pages: regions * REGION_PAGES,
            memfd,
        }
    }

    /// Makes the pool the calling process's own if it was inherited through `fork()`:
    /// forgets the ancestor's regions (they stay mapped, since a forked child's own slot is
    /// in it) and so never hands out or frees a cell of theirs. Done at the first start of
    /// a child rather than right after the fork, so that a forked child that starts nothing
    /// never reserves a region.
    fn adopt(&self, pid: Pid) {
        if self.owner.load(Ordering::Acquire) == Some(pid) {
            return;
        }
        let _adopt = self.adopt.lock().unwrap_or_else(PoisonError::into_inner);
        if self.owner.load(Ordering::Acquire) == Some(pid) {
            return;
        }
        for place in &self.regions {
            place.forget();
        }
        self.first_free.store(0, Ordering::Release);
        self.owner.store(Some(pid), Ordering::Release);
    }

    /// Takes a free cell for a child of `owner` (the calling process), committing the next
    /// page (reserving the next region) when every committed one is full.
    ///
    /// # Errors
    ///
    /// `Error::Os { call: "fork", errno: EAGAIN }` when all the pool's cells are taken;
    /// as [`crate::os::slot::PoolRegion::get_or_reserve`] and
    /// [`crate::os::slot::Region::page_or_commit`] when address space or memory is lacking.
    fn take(&'static self, owner: Pid) -> Result<StatusSlot> {
        self.adopt(owner);
        let start = self.first_free.load(Ordering::Acquire).min(self.pages);
        for p in (start..self.pages).chain(0..start) {
            let region = self.regions[p / REGION_PAGES].get_or_reserve(self.memfd)?;
            // Counted in while it reaches the region's pages, and for as long as it holds a
            // cell of it (a retired region is unmapped only when nothing is counted in it).
            if !region.enter() {
                // Retired since `get_or_reserve`: only a caller that does not serialise its
                // takes with the retirement gets here.
                return Err(Error::os("fork", Errno::EAGAIN));
            }
            let in_region = RegionPage::of(p);
            let page = match region.page_or_commit(in_region) {
                Ok(page) => page,
                Err(error) => {
                    region.leave();
                    return Err(error);
                }
            };
            let used = &region.header().used[in_region.get()];
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
                        return Ok(StatusSlot {
                            backing: Backing::Pooled(PoolCell {
                                pool: self,
                                region,
                                used,
                                cell,
                                page: p,
                                index,
                                owner,
                                recycle: AtomicBool::new(false),
                            }),
                        });
                    }
                    Err(now) => taken = now,
                }
            }
            region.leave();
            // Full: the next search starts past it, unless a cell below was freed since.
            let _ = self
                .first_free
                .compare_exchange(p, p + 1, Ordering::AcqRel, Ordering::Acquire);
        }
        Err(Error::os("fork", Errno::EAGAIN))
    }
}

impl Pool {
    /// In a pool of one region that a server serves: retires the region (no cell of it is
    /// handed out any more), and unmaps it and every region retired earlier once no cell of
    /// it is taken. A region retired with a cell still taken is parked in one of the places
    /// past the first (which such a pool never takes from) and tried again at each later
    /// call; with all [`MAX_REGIONS`]` - 1` places holding such regions, a further one stays
    /// mapped for the rest of the process's life.
    fn retire_served(&self) {
        let Some((current, parked)) = self.regions.split_first() else {
            return;
        };
        for place in parked {
            place.retry();
        }
        if let Some(region) = current.retire() {
            let _kept = parked.iter().any(|place| place.park(region));
        }
    }
}

/// The slot the calling process writes while it is blocked (none in the main program).
static CURRENT: &CurrentWord = &crate::children::registry::STATICS.status;

/// In a fork server (and the children it forks), the cells of its parent's
/// [`SERVER_POOL`] region.
static SERVED: OnceLock<&'static ServedCells> = OnceLock::new();

/// The region of the fork server's pool that one server serves.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ServerRegion(&'static Region);

/// For a fork server about to start, in the calling process whose pid is `me`: a fresh
/// region of the fork server's pool, and its memfd, to be sent to the server
/// ([`serve_cells`]) and then closed. The region of an earlier server is retired: unmapped
/// if none of its cells is taken, else left mapped (its cells stay taken until their
/// children's exit is collected) and unmapped at a later retirement once they are free
/// (`Pool::retire_served`).
///
/// Call under the lock that serialises the process's starts under the fork server, so that
/// no cell is taken meanwhile.
///
/// # Errors
///
/// `Error::Os { call: "memfd_create" | "ftruncate" | "fcntl" | "mmap" | "mprotect" |
/// "madvise", .. }` when the region cannot be made.
pub(crate) fn fork_server_cells(me: Pid) -> Result<(ServerRegion, OwnedFd)> {
    SERVER_POOL.adopt(me);
    SERVER_POOL.retire_served();
    SERVER_POOL.first_free.store(0, Ordering::Release);
    let region = SERVER_POOL.regions[0].get_or_reserve(true)?;
    let fd = region
        .take_fd()
        .ok_or(Error::InvalidArgument("fork server cells without fd"))?;
    Ok((ServerRegion(region), fd))
}

/// In the calling process, whose pid is `me`, once its fork server has exited: retires the
/// server's region of cells, unmapping it (and any region of an earlier server left
/// mapped) when no cell of it is taken any more (every child of it joined and dropped). Call under the lock that serialises the process's starts
/// under the fork server.
pub(crate) fn retire_fork_server_cells(me: Pid) {
    if SERVER_POOL.owner.load(Ordering::Acquire) == Some(me) {
        SERVER_POOL.retire_served();
    }
}

/// In a fork server, at its start: maps the cells of its parent's region, received as
/// `fd`, for the children it will fork.
///
/// # Errors
///
/// As [`crate::os::slot::ServedCells::map`]; [`crate::Error::Malformed`] when cells were
/// mapped already.
pub(crate) fn serve_cells(fd: &OwnedFd) -> Result<()> {
    SERVED
        .set(ServedCells::map(fd)?)
        .map_err(|_| Error::Malformed("fork server got its status cells twice"))
}

/// A shared word, readable by the parent, written by the child it was made for.
#[derive(Debug)]
pub(crate) struct StatusSlot {
    backing: Backing,
}

/// Cell `index` of page `page` of `pool`, taken by process `owner`; freed on drop if
/// `recycle`.
#[derive(Debug)]
struct PoolCell {
    pool: &'static Pool,
    /// The cell's region, in which the cell is counted ([`Region::enter`]) until it is
    /// freed.
    region: &'static Region,
    /// The bitmap word of the cell's page.
    used: &'static AtomicU64,
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
    /// A cell of a pool.
    Pooled(PoolCell),
    /// In a fork server's child, the cell its start request named, in the server's mapping
    /// of its parent's [`SERVER_POOL`] region.
    Served(&'static Cell),
    /// A memfd segment, for a slot handed to a re-executed child by fd.
    Shared(Segment<StatusHeader>),
}

impl StatusSlot {
    /// A slot for a forked child of the calling process, whose pid is `me`, set to
    /// "running": a cell of the pool.
    ///
    /// # Errors
    ///
    /// `Error::Os { call: "fork", errno: EAGAIN }` when [`MAX_POOLED`] slots are taken
    /// already; `Error::Os { call: "mmap" | "mprotect" | "madvise", .. }` (`ENOMEM`) when the
    /// region cannot be reserved or a page of it committed.
    pub(crate) fn new(me: Pid) -> Result<StatusSlot> {
        POOL.take(me)
    }

    /// A slot for a child that the fork server of the calling process, whose pid is `me`,
    /// is to fork, set to "running": a cell of the fork server's pool, which the request
    /// names by [`StatusSlot::cell_number`].
    ///
    /// # Errors
    ///
    /// `Error::Os { call: "fork", errno: EAGAIN }` when all [`SERVER_CELLS`] cells are taken
    /// by children whose exit was not collected yet; as
    /// [`crate::os::slot::Region::page_or_commit`] when a page cannot be committed.
    pub(crate) fn for_fork_server(me: Pid) -> Result<StatusSlot> {
        SERVER_POOL.take(me)
    }

    /// The number of a fork-server pool cell within `region` (what [`StatusSlot::served`]
    /// takes); `None` for another kind of slot or a cell of another region.
    pub(crate) fn cell_number(&self, region: ServerRegion) -> Option<u32> {
        match &self.backing {
            Backing::Pooled(cell)
                if std::ptr::eq(cell.pool, &SERVER_POOL) && region.0.holds(cell.used) =>
            {
                u32::try_from(cell.page * PER_PAGE + cell.index).ok()
            }
            _ => None,
        }
    }

    /// In a fork server's child, the slot its request named: cell `number` of the cells the
    /// server mapped at its start ([`serve_cells`]).
    ///
    /// # Errors
    ///
    /// [`crate::Error::Malformed`] when the process is no fork server's child or `number` is
    /// past the region's end.
    pub(crate) fn served(number: u32) -> Result<StatusSlot> {
        let cells = SERVED
            .get()
            .ok_or(Error::Malformed("no status cells in a fork server's child"))?;
        let cell = cells
            .cell(number as usize)
            .ok_or(Error::Malformed("status cell number out of range"))?;
        Ok(StatusSlot {
            backing: Backing::Served(cell),
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
            Backing::Pooled(_) | Backing::Served(_) => None,
        }
    }

    fn word(&self) -> &AtomicU32 {
        match &self.backing {
            Backing::Pooled(pooled) => &pooled.cell.word,
            Backing::Served(cell) => &cell.word,
            Backing::Shared(segment) => &segment.header().word,
        }
    }

    /// The pidfd handoff word of a forked child's slot.
    fn handoff(&self) -> Option<&AtomicU32> {
        match &self.backing {
            // A fork server's child: the server, not the parent, opens its pidfd.
            Backing::Pooled(pooled) if std::ptr::eq(pooled.pool, &SERVER_POOL) => None,
            Backing::Pooled(pooled) => Some(&pooled.cell.handoff),
            Backing::Served(_) | Backing::Shared(_) => None,
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
    /// The slot's memory is kept until the process ends: a cell of the fork pool is already
    /// (its anonymous region is never unmapped, and the record dropped here leaves the cell
    /// taken and counted in it); a segment is leaked, one page in a child.
    ///
    /// A forked child's slot also carries the pidfd handoff from its parent `parent`, which
    /// [`wait_for_pidfd_handoff`] waits for.
    pub(crate) fn install_current_as(self, me: Pid, parent: Pid) -> Installed {
        let (word, handoff): (&'static AtomicU32, Option<&'static AtomicU32>) = match self.backing {
            // Dropping the cell's record leaves the cell taken (not recycled).
            Backing::Pooled(pooled) => (&pooled.cell.word, Some(&pooled.cell.handoff)),
            // The server opens the pidfd of a child it forked: no handoff from the parent.
            Backing::Served(cell) => (&cell.word, None),
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
static HANDOFF: &CurrentWord = &crate::children::registry::STATICS.handoff;
static HANDOFF_PARENT: &AtomicPid = &crate::children::registry::STATICS.handoff_parent;

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
    // The common case, one load: the parent holds the pidfd.
    if HANDOFF
        .installed()
        .is_none_or(|handoff| handoff.load(Ordering::Acquire) == PIDFD_HELD)
    {
        return;
    }
    // Only the process that installed the word may write it: a process forked from the
    // child without the runtime inherits this handler and the pointer, not the handoff.
    let Some(handoff) = HANDOFF.get(os::process::getpid) else {
        return;
    };
    if handoff
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
            && self.pool.owner.load(Ordering::Acquire) == Some(self.owner)
            && self.owner == crate::os::process::getpid()
        {
            self.used.fetch_and(!(1u64 << self.index), Ordering::AcqRel);
            // The cell's last access to the region: from here it may be unmapped.
            self.region.leave();
            // Written only when it lowers the hint (a write is a page fault while a child
            // shares the page).
            if self.pool.first_free.load(Ordering::Acquire) > self.page {
                self.pool.first_free.fetch_min(self.page, Ordering::AcqRel);
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

    /// The `/proc/self/maps` lines that lie inside `region`.
    fn mappings_in(region: &crate::os::slot::Region) -> usize {
        let (start, end) = region.span();
        maps_lines()
            .filter(|m| m.lo >= start && m.hi <= end)
            .count()
    }

    /// The inodes of the memfd mappings inside `region` (none for an anonymous region).
    fn memfd_inodes(region: &crate::os::slot::Region) -> std::collections::BTreeSet<u64> {
        let (start, end) = region.span();
        maps_lines()
            .filter(|m| m.lo >= start && m.hi <= end && m.path.contains("/memfd:"))
            .map(|m| m.inode)
            .collect()
    }

    /// How many mappings of the process map one of `inodes`, wherever they lie: after an
    /// unmap, another test may map something else at the same addresses.
    fn mapped(inodes: &std::collections::BTreeSet<u64>) -> usize {
        maps_lines().filter(|m| inodes.contains(&m.inode)).count()
    }

    /// One line of `/proc/self/maps`.
    struct MapsLine {
        lo: usize,
        hi: usize,
        inode: u64,
        path: String,
    }

    fn maps_lines() -> std::vec::IntoIter<MapsLine> {
        let maps = std::fs::read_to_string("/proc/self/maps").expect("read /proc/self/maps");
        maps.lines()
            .filter_map(|line| {
                let mut fields = line.split_whitespace();
                let (lo, hi) = fields.next()?.split_once('-')?;
                let inode = fields.nth(3)?.parse().ok()?;
                Some(MapsLine {
                    lo: usize::from_str_radix(lo, 16).ok()?,
                    hi: usize::from_str_radix(hi, 16).ok()?,
                    inode,
                    path: fields.collect::<Vec<_>>().join(" "),
                })
            })
            .collect::<Vec<_>>()
            .into_iter()
    }

    /// A pool of its own (the process's pool serves the other tests meanwhile), filled to
    /// the end: each region stays at most two mappings and the next one is reserved only
    /// when it is full, the cell past the end is refused with `EAGAIN`, and a freed cell is
    /// handed out again.
    #[test]
    fn pool_stays_few_mappings_and_refuses_past_its_end() {
        let pool: &'static Pool = Box::leak(Box::new(Pool::new(MAX_REGIONS, false)));
        let me = crate::os::process::getpid();
        let per_region = REGION_PAGES * PER_PAGE;
        let mut slots = Vec::with_capacity(MAX_POOLED);
        slots.push(pool.take(me).expect("the first cell"));
        let first = pool.regions[0]
            .get()
            .expect("a region after the first cell");
        assert_eq!(
            mappings_in(first),
            2,
            "committed page and the rest of the reservation"
        );
        for i in 1..MAX_POOLED {
            slots.push(pool.take(me).unwrap_or_else(|e| panic!("cell #{i}: {e}")));
            if i == 1000 || i == per_region - 1 {
                let maps = mappings_in(first);
                assert!(
                    maps <= 2,
                    "{maps} mappings for the region at {i} cells, expected 2"
                );
                assert!(
                    pool.regions[1].get().is_none(),
                    "second region at {i} cells"
                );
            }
        }
        for (r, place) in pool.regions.iter().enumerate() {
            let region = place
                .get()
                .unwrap_or_else(|| panic!("region {r} not reserved"));
            assert_eq!(mappings_in(region), 1, "region {r} wholly committed");
        }
        match pool.take(me) {
            Err(Error::Os {
                call: "fork",
                errno: Errno::EAGAIN,
            }) => {}
            other => panic!("cell past the end: {other:?}, expected fork EAGAIN"),
        }
        // Dropped while its child may still run: left taken.
        drop(slots.swap_remove(77));
        assert!(pool.take(me).is_err(), "a cell not recycled was handed out");
        let freed = slots.swap_remove(1234);
        let (page, index) = match &freed.backing {
            Backing::Pooled(cell) => (cell.page, cell.index),
            _ => panic!("a pooled slot expected"),
        };
        freed.recycle_on_drop();
        drop(freed);
        let again = pool.take(me).expect("the freed cell");
        match &again.backing {
            Backing::Pooled(cell) => assert_eq!((cell.page, cell.index), (page, index)),
            _ => panic!("a pooled slot expected"),
        }
    }

    /// A fork-server pool of its own: its one memfd region, mapped as a server maps it,
    /// shows each cell at the number the request would carry; the pool refuses the cell past
    /// its end with `EAGAIN`, hands out a freed cell again, and leaves one not recycled
    /// taken; a memfd that is not a sealed region of the right size is refused.
    #[test]
    fn fork_server_pool_cells_travel_by_number() {
        let pool: &'static Pool = Box::leak(Box::new(Pool::new(1, true)));
        let me = crate::os::process::getpid();
        let mut slots = Vec::with_capacity(SERVER_CELLS);
        for i in 0..SERVER_CELLS {
            slots.push(pool.take(me).unwrap_or_else(|e| panic!("cell #{i}: {e}")));
        }
        match pool.take(me) {
            Err(Error::Os {
                call: "fork",
                errno: Errno::EAGAIN,
            }) => {}
            other => panic!("cell past the end: {other:?}, expected fork EAGAIN"),
        }
        let region = pool.regions[0].get().expect("the region");
        let fd = region.take_fd().expect("a memfd region");
        assert!(region.take_fd().is_none(), "the memfd handed out twice");
        let served = ServedCells::map(&fd).expect("map the cells");
        for number in [0, 1, 63, 64, 5000, SERVER_CELLS - 1] {
            let Backing::Pooled(cell) = &slots[number].backing else {
                panic!("a pooled slot expected");
            };
            assert_eq!(cell.page * PER_PAGE + cell.index, number, "cell order");
            let seen = served.cell(number).expect("in range");
            seen.word.store(number as u32 + 1, Ordering::Release);
            assert_eq!(
                cell.cell.word.load(Ordering::Acquire),
                number as u32 + 1,
                "cell {number} written through the server's mapping"
            );
        }
        assert!(served.cell(SERVER_CELLS).is_none(), "a cell past the end");
        drop(slots.swap_remove(10));
        assert!(pool.take(me).is_err(), "a cell not recycled was handed out");
        let freed = slots.swap_remove(4321);
        freed.recycle_on_drop();
        drop(freed);
        let again = pool.take(me).expect("the freed cell");
        let Backing::Pooled(cell) = &again.backing else {
            panic!("a pooled slot expected");
        };
        assert_eq!(cell.page * PER_PAGE + cell.index, 4321);
        let small = crate::os::shm::SharedMemory::new(crate::os::slot::PAGE_LEN)
            .expect("a sealed segment of one page");
        let small = small.as_fd().try_clone_to_owned().expect("dup");
        let unsealed =
            nix::sys::memfd::memfd_create(c"unsealed", nix::sys::memfd::MFdFlags::MFD_CLOEXEC)
                .expect("memfd_create");
        let len = crate::os::slot::REGION_LEN
            .try_into()
            .expect("a region's size fits off_t");
        nix::unistd::ftruncate(&unsealed, len).expect("ftruncate");
        for (what, fd) in [("one page", small), ("unsealed", unsealed)] {
            assert!(
                matches!(ServedCells::map(&fd), Err(Error::Malformed(_))),
                "a {what} memfd was mapped as status cells"
            );
        }
    }

    /// A retired fork-server region is unmapped per the parent's own count of taken cells,
    /// not per the bitmap, which the memfd shares with the server: with the bitmap zeroed
    /// through the memfd while a cell is held, `retire` leaves the region mapped (the held
    /// cell stays writable), and a region with no cell taken is unmapped.
    #[test]
    fn retire_trusts_no_shared_memory() {
        let pool: &'static Pool = Box::leak(Box::new(Pool::new(1, true)));
        let me = crate::os::process::getpid();
        let held = pool.take(me).expect("a cell");
        let region = pool.regions[0].get().expect("the region");
        let fd = region.take_fd().expect("a memfd region");
        let zeros = [0u8; crate::os::slot::PAGE_LEN];
        let written = nix::sys::uio::pwrite(&fd, &zeros, 0).expect("pwrite the bitmap");
        assert_eq!(written, zeros.len(), "the whole bitmap page written");
        assert!(
            region
                .header()
                .used
                .iter()
                .all(|w| w.load(Ordering::Acquire) == 0),
            "the bitmap reads zero through the parent's mapping"
        );
        assert!(
            pool.regions[0].retire().is_some(),
            "retire unmapped a region whose cell is still held"
        );
        assert!(
            mappings_in(region) > 0,
            "the held cell's region is unmapped"
        );
        held.word().store(7, Ordering::Release);
        assert_eq!(held.word().load(Ordering::Acquire), 7, "the held cell");
        held.recycle_on_drop();
        drop(held);
        let other: &'static Pool = Box::leak(Box::new(Pool::new(1, true)));
        let freed = other.take(me).expect("a cell");
        freed.recycle_on_drop();
        drop(freed);
        let free_region = other.regions[0].get().expect("the region");
        let inodes = memfd_inodes(free_region);
        assert!(!inodes.is_empty(), "the region is a mapped memfd");
        assert!(
            other.regions[0].retire().is_none(),
            "a region with no cell taken was left mapped"
        );
        assert_eq!(mapped(&inodes), 0, "the retired region is still mapped");
    }

    /// A server's region retired while one of its cells is still taken is unmapped at a
    /// later retirement once that cell is freed, not left mapped for good.
    #[test]
    fn retired_regions_are_retried() {
        let pool: &'static Pool = Box::leak(Box::new(Pool::new(1, true)));
        let me = crate::os::process::getpid();
        let held = pool.take(me).expect("a cell");
        let first = pool.regions[0].get().expect("the first region");
        let first_inodes = memfd_inodes(first);
        assert!(
            !first_inodes.is_empty(),
            "the first region is a mapped memfd"
        );
        pool.retire_served();
        assert!(
            mappings_in(first) > 0,
            "a region with a cell held was unmapped"
        );
        let second_cell = pool.take(me).expect("a cell of the next region");
        let second = pool.regions[0].get().expect("the second region");
        let second_inodes = memfd_inodes(second);
        assert!(
            !second_inodes.is_empty(),
            "the second region is a mapped memfd"
        );
        assert_ne!(
            first.span(),
            second.span(),
            "the next region is a new mapping"
        );
        second_cell.recycle_on_drop();
        drop(second_cell);
        held.recycle_on_drop();
        drop(held);
        pool.retire_served();
        assert_eq!(
            mapped(&first_inodes),
            0,
            "the first region, with no cell taken, is still mapped after a retry"
        );
        assert_eq!(
            mapped(&second_inodes),
            0,
            "the second region is still mapped"
        );
        assert!(
            pool.regions.iter().all(|place| place.get().is_none()),
            "a place still holds a region"
        );
    }

    #[test]
    fn guard_writes_and_restores() {
        let me = crate::os::process::getpid();
        let slot = StatusSlot::new(me).expect("mmap");
        assert_eq!(slot.blocked_on(), None);
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
