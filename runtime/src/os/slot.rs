//! The memory of status slots (`children::status`): words of `MAP_SHARED` memory through
//! which a child tells its parent what it is blocked on, and the process-wide pointer to the
//! current one.
//!
//! - [`SlotPage`]: a page cut into [`PER_PAGE`] cells of one cache line, each holding one
//!   word.
//! - [`Region`]: the pool's memory, reservations of [`REGION_PAGES`] pages of address
//!   space, mapped once (`PROT_NONE`, `MAP_SHARED | MAP_ANONYMOUS | MAP_NORESERVE`) and never
//!   unmapped; its pages are committed in order as the pool grows (`mprotect` to read-write,
//!   then `madvise(MADV_POPULATE_WRITE)`, so that a lack of memory is an error here and not a
//!   `SIGBUS` at the first write). The pages committed so far and the rest of the reservation
//!   are at most two mappings (VMAs) however many children the pool serves, and a `fork()`
//!   copies every mapping of the parent: one mapping per page made every fork cost more with
//!   every 64 live children (decision 0023). [`PoolRegion`] is the place of one of the
//!   process's regions. A region of the fork server's pool is a sealed memfd instead
//!   ([`Region::reserve_memfd`]), which the server maps once ([`ServedCells`]) for every
//!   child it forks (decision 0027).
//! - [`CurrentWord`]: a word the calling process keeps for the rest of its life (the one it
//!   writes while it waits, the one its parent's pidfd handoff is on), with the pid that
//!   installed it. It holds only `&'static` words, so reading it never dangles.
//!
//! # Safety
//!
//! A region is a `MAP_SHARED` mapping (anonymous, or of a sealed memfd) of [`REGION_LEN`]
//! bytes at an address the kernel picks (page-aligned, aliasing no Rust object), made only by
//! [`PoolRegion::get_or_reserve`]. It is unmapped before any page of it was handed out (when
//! its header cannot be committed, or when it lost the race to be published), or, for a
//! memfd region only, by [`PoolRegion::retire`] once no cell of it is taken and none can be
//! any more. Every `&'static` reference into a published region's pages is held by the
//! holder of a taken cell (a `children::status::PoolCell`), which counts itself in the
//! region's private `taken` count (in the parent's own memory, never in the shared pages)
//! before it reaches the pages and uncounts itself (`Release`) after its last access;
//! `retire` first marks the region retired, so that no take counts itself in afterwards,
//! then unmaps only if it reads the count zero (`Acquire`, `SeqCst` against the take's
//! count-then-check). So a page is valid for as long as any reference to it exists, and an
//! anonymous region, never retired, for `'static`. Its header page is made readable and writable before the
//! [`Region`] exists. A [`Region`]'s `committed` count of pages of cells only grows, and is
//! raised to `n` only after `mprotect` made pages `0..n` readable and writable (every page
//! below the count read before that call was already, by the same rule), so every page below
//! the count is accessible. A committed page is zero-filled at first, which is a valid
//! [`SlotPage`] or [`RegionHeader`] (their fields are atomics), and shared access through
//! `&SlotPage` and `&RegionHeader` is sound because every access is atomic. A [`Region`] is leaked when published in a
//! [`PoolRegion`] and never freed (not even when unmapped), so the reference a
//! [`PoolRegion`] hands out is `'static` too, and reaching the pages through it checks that
//! the region is not retired.
//! [`ServedCells`] maps the pages of cells of such a memfd, sealed at [`REGION_LEN`] bytes
//! (checked first), read-write and never unmapped: every page of it is valid for `'static`,
//! and its cells, zero-filled at first and written only atomically, are valid [`Cell`]s.
//! [`CurrentWord`] stores only pointers made from `&'static AtomicU32`.
#![allow(unsafe_code)]

use std::num::NonZeroUsize;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU32, AtomicU64, AtomicUsize, Ordering};

use std::os::fd::OwnedFd;
use std::sync::{Mutex, PoisonError};

use nix::errno::Errno;
use nix::fcntl::{FcntlArg, SealFlag, fcntl};
use nix::sys::memfd::{MFdFlags, memfd_create};
use nix::sys::mman::{
    MapFlags, MmapAdvise, ProtFlags, madvise, mmap, mmap_anonymous, mprotect, munmap,
};

use crate::error::{Error, Result};
use crate::pid::{AtomicPid, Pid};

/// The bytes of one page of slots.
pub(crate) const PAGE_LEN: usize = 4096;
/// Bytes between two cells: a cache line each, so that children blocking at the same time
/// do not write to the same line.
pub(crate) const CELL: usize = 64;
/// Cells per page.
pub(crate) const PER_PAGE: usize = PAGE_LEN / CELL;
/// Pages in one region: 256 pages of 64 cells, so 16 384 slots, in 1 MiB of address space
/// (only the committed pages use memory). A larger reservation made every fork start a few
/// microseconds slower even with its pages untouched (decision 0023).
pub(crate) const REGION_PAGES: usize = 256;
/// The bytes of one region: its header page, then its pages of cells.
pub(crate) const REGION_LEN: usize = (1 + REGION_PAGES) * PAGE_LEN;

/// One cell: the words of one forked child, on a cache line of their own.
#[repr(C, align(64))]
#[derive(Debug)]
pub(crate) struct Cell {
    /// The status word: 0 while the process runs, a reason's code while it waits.
    pub(crate) word: AtomicU32,
    /// The pidfd handoff: whether the parent holds the child's pidfd yet
    /// (`children::status::wait_for_pidfd_handoff`).
    pub(crate) handoff: AtomicU32,
}

/// A page of cells.
#[repr(C, align(4096))]
#[derive(Debug)]
pub(crate) struct SlotPage {
    /// The cells, in address order.
    pub(crate) cells: [Cell; PER_PAGE],
}

const _: () = assert!(std::mem::size_of::<Cell>() == CELL);
const _: () = assert!(std::mem::size_of::<SlotPage>() == PAGE_LEN);

const REGION: NonZeroUsize = match NonZeroUsize::new(REGION_LEN) {
    Some(n) => n,
    None => panic!("the region length is not zero"),
};

/// [`REGION_LEN`] as a file offset.
const REGION_OFF: libc::off_t = REGION_LEN as libc::off_t;

/// The bytes of a region's pages of cells, after its header page.
const CELLS: NonZeroUsize = match NonZeroUsize::new(REGION_PAGES * PAGE_LEN) {
    Some(n) => n,
    None => panic!("a region has pages of cells"),
};

/// The seals of a region's memfd: its size can never change.
fn region_seals() -> SealFlag {
    SealFlag::F_SEAL_SHRINK | SealFlag::F_SEAL_GROW | SealFlag::F_SEAL_SEAL
}

/// The first page of a region: one word per page of cells, bit `i` of `used[p]` saying
/// whether cell `i` of page `p` is taken. In shared memory, so that the parent's writes to
/// it while a forked child still shares its pages cost no copy-on-write fault (a bitmap in
/// the parent's own memory took a start and join two page faults more); a child never writes
/// to its parent's (it takes cells from regions of its own).
#[repr(C, align(4096))]
#[derive(Debug)]
pub(crate) struct RegionHeader {
    /// The bitmap words, one per page of cells.
    pub(crate) used: [AtomicU64; REGION_PAGES],
}

const _: () = assert!(std::mem::size_of::<RegionHeader>() == PAGE_LEN);

/// The number of a page of cells within its region: always below [`REGION_PAGES`], so that
/// no page past a region's end can be asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RegionPage(usize);

impl RegionPage {
    /// Where page `p` of a sequence of regions lies within its region (the region is number
    /// `p / REGION_PAGES`): page `p % REGION_PAGES`.
    pub(crate) const fn of(p: usize) -> RegionPage {
        RegionPage(p % REGION_PAGES)
    }

    /// The page's number, below [`REGION_PAGES`].
    pub(crate) const fn get(self) -> usize {
        self.0
    }
}

/// One reservation: a header page, committed from the start, and [`REGION_PAGES`] pages of
/// cells, of which the first `committed` are readable and writable.
#[derive(Debug)]
pub(crate) struct Region {
    header: NonNull<RegionHeader>,
    pages: NonNull<SlotPage>,
    committed: AtomicUsize,
    /// The sealed memfd behind a region made by [`Region::reserve_memfd`], until it is
    /// taken ([`Region::take_fd`]) to be handed to the re-executed process (the fork
    /// server) that maps its pages ([`ServedCells::map`]).
    fd: Mutex<Option<OwnedFd>>,
    /// Whether [`PoolRegion::retire`] unmapped the region: no page of it may be reached
    /// any more.
    unmapped: AtomicBool,
    /// Whether the region is a memfd's, the only kind [`PoolRegion::retire`] may unmap.
    counted: bool,
    /// For a memfd region: the cells taken, plus takes under way ([`Region::enter`]). In
    /// the parent's own memory, so that nothing written through the memfd (page 0, the
    /// bitmap, is in it) can make [`PoolRegion::retire`] unmap memory still referenced.
    taken: AtomicUsize,
    /// Whether [`PoolRegion::retire`] took the region out of use: no take enters it any
    /// more.
    retired: AtomicBool,
}

// SAFETY: the region is unmapped only once no reference into its pages remains (see the
// module's `# Safety`), and every access to its pages is atomic.
unsafe impl Send for Region {}
// SAFETY: as above.
unsafe impl Sync for Region {}

impl Region {
    /// `mmap(PROT_NONE, MAP_SHARED | MAP_ANONYMOUS | MAP_NORESERVE)` of [`REGION_LEN`]
    /// bytes (address space only, no memory and no commit charge), then its header page
    /// committed.
    ///
    /// # Errors
    ///
    /// `Error::Os { call: "mmap", .. }`; as [`Region::page_or_commit`] for the header.
    fn reserve() -> Result<Region> {
        // SAFETY: an anonymous mapping at an address the kernel picks aliases no Rust object.
        let ptr = unsafe {
            mmap_anonymous(
                None,
                REGION,
                ProtFlags::PROT_NONE,
                MapFlags::MAP_SHARED | MapFlags::MAP_NORESERVE,
            )
        }
        .map_err(|errno| Error::os("mmap", errno))?;
        Region::with_header(ptr, None)
    }

    /// As [`Region::reserve`], but the memory is a memfd of [`REGION_LEN`] bytes (no name in
    /// any filesystem, close-on-exec, its size sealed: `F_SEAL_SHRINK | F_SEAL_GROW |
    /// F_SEAL_SEAL`), so that its fd can be handed to a re-executed process. Its pages are
    /// allocated as they are committed, as an anonymous region's are.
    ///
    /// # Errors
    ///
    /// `Error::Os` for `memfd_create`, `ftruncate`, `fcntl` or `mmap`; as
    /// [`Region::page_or_commit`] for the header.
    fn reserve_memfd() -> Result<Region> {
        let fd = memfd_create(
            c"proclife-slots",
            MFdFlags::MFD_CLOEXEC | MFdFlags::MFD_ALLOW_SEALING,
        )
        .map_err(|errno| Error::os("memfd_create", errno))?;
        nix::unistd::ftruncate(&fd, REGION_OFF).map_err(|errno| Error::os("ftruncate", errno))?;
        fcntl(&fd, FcntlArg::F_ADD_SEALS(region_seals()))
            .map_err(|errno| Error::os("fcntl", errno))?;
        // SAFETY: a mapping at an address the kernel picks aliases no Rust object; the file
        // is sealed against shrinking, so every byte of the mapping stays backed.
        let ptr = unsafe {
            mmap(
                None,
                REGION,
                ProtFlags::PROT_NONE,
                MapFlags::MAP_SHARED | MapFlags::MAP_NORESERVE,
                &fd,
                0,
            )
        }
        .map_err(|errno| Error::os("mmap", errno))?;
        Region::with_header(ptr, Some(fd))
    }

    /// The region reserved at `ptr` ([`REGION_LEN`] bytes, `PROT_NONE`), its header page
    /// committed; unmaps it on failure.
    fn with_header(ptr: NonNull<std::ffi::c_void>, fd: Option<OwnedFd>) -> Result<Region> {
        let header = ptr.cast::<RegionHeader>();
        assert!(
            (header.as_ptr() as usize).is_multiple_of(std::mem::align_of::<RegionHeader>()),
            "mmap returned an address that is not page-aligned"
        );
        if let Err(error) = commit(header.cast(), PAGE_LEN) {
            // SAFETY: mapped by the caller with this length; nothing points into it.
            let _ = unsafe { munmap(ptr, REGION_LEN) };
            return Err(error);
        }
        // SAFETY: the header is one page long, so the pages of cells start one page further,
        // still inside the mapping.
        let pages = unsafe { header.add(1) }.cast::<SlotPage>();
        Ok(Region {
            header,
            pages,
            committed: AtomicUsize::new(0),
            counted: fd.is_some(),
            fd: Mutex::new(fd),
            unmapped: AtomicBool::new(false),
            taken: AtomicUsize::new(0),
            retired: AtomicBool::new(false),
        })
    }

    /// Starts a take from the region: counts it in, unless the region was retired
    /// (`false`: take nothing from it). Each `true` is to be ended by [`Region::leave`],
    /// after the last access to the pages (at once when no cell was claimed; when the
    /// claimed cell is freed otherwise). An anonymous region is never retired and counts
    /// nothing.
    pub(crate) fn enter(&self) -> bool {
        if !self.counted {
            return true;
        }
        // `SeqCst` with `retire`'s store of `retired` and load of `taken`: either this
        // sees the region retired, or `retire` sees the count.
        self.taken.fetch_add(1, Ordering::SeqCst);
        if self.retired.load(Ordering::SeqCst) {
            self.taken.fetch_sub(1, Ordering::Release);
            return false;
        }
        true
    }

    /// Ends what [`Region::enter`] started: the caller reaches no page of the region any
    /// more through what this take gave it.
    pub(crate) fn leave(&self) {
        if self.counted {
            self.taken.fetch_sub(1, Ordering::Release);
        }
    }

    /// Unmaps a retired memfd region if nothing is counted in it; whether it is unmapped
    /// (now or before).
    fn unmap_if_free(&self) -> bool {
        if !self.counted || !self.retired.load(Ordering::SeqCst) {
            return false;
        }
        if self.taken.load(Ordering::SeqCst) != 0 {
            return false;
        }
        if self
            .unmapped
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            return true;
        }
        // SAFETY: the region was mapped by `Region::reserve_memfd` with this length, once
        // (the exchange above lets one caller here). Nothing is counted in it: every
        // cell's holder uncounted itself after its last access (its `Release` pairs with
        // the `SeqCst` load above), and no take counts itself in any more (`retired` was
        // stored before the load; see `enter`). Every other way in (`header`,
        // `page_or_commit`) checks `unmapped` first. An error leaves it mapped, nothing
        // worse.
        let _ = unsafe { munmap(self.header.cast(), REGION_LEN) };
        true
    }

    /// The memfd of a region made by [`Region::reserve_memfd`], the first time it is asked
    /// for (the mapping does not need it).
    pub(crate) fn take_fd(&self) -> Option<OwnedFd> {
        self.fd
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
    }

    /// Whether `word` lies in the region's header (is one of its bitmap words).
    pub(crate) fn holds(&self, word: &AtomicU64) -> bool {
        let at = std::ptr::from_ref(word) as usize;
        let start = self.header.as_ptr() as usize;
        (start..start + PAGE_LEN).contains(&at)
    }

    /// The region's header: its bitmap of taken cells.
    pub(crate) fn header(&self) -> &'static RegionHeader {
        assert!(
            !self.unmapped.load(Ordering::Acquire),
            "a retired region was reached"
        );
        // SAFETY: the header page is committed before the region exists, and the region is
        // not unmapped while a take is counted in it (see the module's `# Safety`); the
        // caller entered it, or it is anonymous and never unmapped.
        unsafe { self.header.as_ref() }
    }

    /// Page of cells `p`, committing it and every page below it first if needed.
    ///
    /// # Errors
    ///
    /// `Error::Os { call: "mprotect", .. }` or `Error::Os { call: "madvise", .. }`
    /// (`ENOMEM`: no memory for the page).
    pub(crate) fn page_or_commit(&self, p: RegionPage) -> Result<&'static SlotPage> {
        assert!(
            !self.unmapped.load(Ordering::Acquire),
            "a retired region was reached"
        );
        let p = p.get();
        let from = self.committed.load(Ordering::Acquire);
        if p >= from {
            // SAFETY: `from <= p < REGION_PAGES` (a `RegionPage` is below it), so the offset
            // stays inside the region.
            let start = unsafe { self.pages.add(from) }.cast();
            commit(start, (p + 1 - from) * PAGE_LEN)?;
            self.committed.fetch_max(p + 1, Ordering::AcqRel);
        }
        debug_assert!(p < self.committed.load(Ordering::Acquire));
        // SAFETY: `p` is below the committed count (it was, or the count was just raised past
        // it, and it never falls), so the page is inside the region and readable and
        // writable; the region is not unmapped while the caller's take is counted in it
        // (see the module's `# Safety`).
        Ok(unsafe { &*self.pages.as_ptr().add(p) })
    }

    /// The addresses the region spans, `[start, end)`.
    #[cfg_attr(not(test), allow(dead_code))]
    pub(crate) fn span(&self) -> (usize, usize) {
        let start = self.header.as_ptr() as usize;
        (start, start + REGION_LEN)
    }
}

/// Makes `len` bytes at `start`, whole pages of a region not yet handed out (or committed
/// already), readable and writable, and allocates their memory.
fn commit(start: NonNull<std::ffi::c_void>, len: usize) -> Result<()> {
    // SAFETY: the pages lie inside a region, which only this module maps. Making them
    // readable and writable invalidates no reference: committed pages keep the same
    // protection, and none of the others was handed out. Another thread may commit the same
    // pages at once: `mprotect` to the same protection is idempotent.
    unsafe { mprotect(start, len, ProtFlags::PROT_READ | ProtFlags::PROT_WRITE) }
        .map_err(|errno| Error::os("mprotect", errno))?;
    // SAFETY: the same pages, now writable; populating allocates the pages that have none
    // yet (zero-filled) and changes no byte of those that have.
    match unsafe { madvise(start, len, MmapAdvise::MADV_POPULATE_WRITE) } {
        // `EINVAL`: a kernel older than 5.14, which allocates at the first write.
        Ok(()) | Err(Errno::EINVAL) => Ok(()),
        Err(errno) => Err(Error::os("madvise", errno)),
    }
}

/// The place of one of the pool's regions: empty, or a region whose record lives for the
/// rest of the process's life (its memory until [`PoolRegion::retire`] unmaps it).
#[derive(Debug)]
pub(crate) struct PoolRegion(AtomicPtr<Region>);

impl PoolRegion {
    /// An empty place.
    pub(crate) const fn empty() -> PoolRegion {
        PoolRegion(AtomicPtr::new(std::ptr::null_mut()))
    }

    /// The region, if one was reserved here.
    pub(crate) fn get(&self) -> Option<&'static Region> {
        let region = self.0.load(Ordering::Acquire);
        // SAFETY: a non-null pointer here came from a leaked `Box`, never freed.
        unsafe { region.as_ref() }
    }

    /// The region, reserved now if the place is empty (in a memfd if `memfd`); when two
    /// threads reserve at once, one region wins and the other is unmapped.
    ///
    /// # Errors
    ///
    /// `Error::Os { call: "mmap", .. }` (`ENOMEM`: no address space left).
    pub(crate) fn get_or_reserve(&self, memfd: bool) -> Result<&'static Region> {
        if let Some(region) = self.get() {
            return Ok(region);
        }
        let region = if memfd {
            Region::reserve_memfd()?
        } else {
            Region::reserve()?
        };
        let fresh = Box::into_raw(Box::new(region));
        match self.0.compare_exchange(
            std::ptr::null_mut(),
            fresh,
            Ordering::AcqRel,
            Ordering::Acquire,
        ) {
            // SAFETY: `fresh` is now stored here, so it is never freed.
            Ok(_) => Ok(unsafe { &*fresh }),
            Err(other) => {
                // SAFETY: `fresh` came from `Box::into_raw` above and was never shared.
                let fresh = unsafe { Box::from_raw(fresh) };
                // SAFETY: the region was mapped by `Region::reserve` with this length and no
                // reference points into it (no page of it was ever handed out). An error
                // leaves address space reserved, nothing worse.
                let _ = unsafe { munmap(fresh.header.cast(), REGION_LEN) };
                // SAFETY: `other` is non-null (the exchange failed against null) and was
                // stored here, so it is a leaked `Box`, never freed.
                Ok(unsafe { &*other })
            }
        }
    }

    /// Empties the place, leaving its region mapped (cells of it may still be in use): the
    /// next [`PoolRegion::get_or_reserve`] reserves a new one.
    pub(crate) fn forget(&self) {
        self.0.store(std::ptr::null_mut(), Ordering::Release);
    }

    /// Empties the place and retires its region: no take enters it any more, and it is
    /// unmapped now if no cell of it is taken, per its own count of taken cells
    /// ([`Region::enter`], [`Region::leave`]), never per the bitmap, which is in memory the
    /// memfd shares. Returns the region when it stays mapped (a cell of it is still taken). An anonymous region is left mapped for good.
    pub(crate) fn retire(&self) -> Option<&'static Region> {
        let region = self.0.swap(std::ptr::null_mut(), Ordering::AcqRel);
        // SAFETY: a non-null pointer here came from a leaked `Box`, never freed.
        let region = unsafe { region.as_ref() }?;
        if !region.counted {
            return None;
        }
        region.retired.store(true, Ordering::SeqCst);
        (!region.unmap_if_free()).then_some(region)
    }

    /// Keeps `region`, retired by [`PoolRegion::retire`] and left mapped, in this place if
    /// it is empty, for [`PoolRegion::retry`]; whether it did. A place that keeps such a
    /// region is for that only: no take is ever made from it.
    pub(crate) fn park(&self, region: &'static Region) -> bool {
        self.0
            .compare_exchange(
                std::ptr::null_mut(),
                std::ptr::from_ref(region).cast_mut(),
                Ordering::AcqRel,
                Ordering::Acquire,
            )
            .is_ok()
    }

    /// Unmaps the retired region parked here ([`PoolRegion::park`]) if no cell of it is
    /// taken any more, and then empties the place.
    pub(crate) fn retry(&self) {
        let parked = self.0.load(Ordering::Acquire);
        // SAFETY: a non-null pointer here came from a leaked `Box`, never freed.
        let Some(region) = (unsafe { parked.as_ref() }) else {
            return;
        };
        if region.unmap_if_free() {
            let _ = self.0.compare_exchange(
                parked,
                std::ptr::null_mut(),
                Ordering::AcqRel,
                Ordering::Acquire,
            );
        }
    }
}

/// The pages of cells of a memfd region ([`Region::reserve_memfd`]) mapped in another
/// process (the fork server), for the children it forks: each child inherits the mapping
/// and writes only the cell its request names. Mapped read-write whole (the process that
/// made the region commits a page before it hands out a cell of it), without the header
/// page (a child has no business with the bitmap), and never unmapped.
#[derive(Debug)]
pub(crate) struct ServedCells {
    pages: NonNull<SlotPage>,
}

// SAFETY: the mapping is never unmapped and every access to its cells is atomic.
unsafe impl Send for ServedCells {}
// SAFETY: as above.
unsafe impl Sync for ServedCells {}

impl ServedCells {
    /// Maps the pages of cells of the region whose memfd is `fd` (the fd can be closed
    /// afterwards: the mapping holds the file).
    ///
    /// # Errors
    ///
    /// [`Error::Malformed`] when `fd` is not a memfd sealed against resizing of exactly
    /// [`REGION_LEN`] bytes; `Error::Os` for `fcntl`, `fstat` or `mmap`.
    pub(crate) fn map(fd: &OwnedFd) -> Result<&'static ServedCells> {
        let present = fcntl(fd, FcntlArg::F_GET_SEALS).map_err(|errno| match errno {
            Errno::EINVAL => Error::Malformed("status cells are not a memfd"),
            errno => Error::os("fcntl", errno),
        })?;
        if SealFlag::from_bits_truncate(present) & region_seals() != region_seals() {
            return Err(Error::Malformed("status cells are not sealed"));
        }
        let stat = nix::sys::stat::fstat(fd).map_err(|errno| Error::os("fstat", errno))?;
        if stat.st_size != REGION_OFF {
            return Err(Error::Malformed("status cells have the wrong size"));
        }
        // SAFETY: a mapping at an address the kernel picks aliases no Rust object; the file
        // is sealed at `REGION_LEN` bytes (checked above), so every byte of the mapping,
        // which ends at the file's end, stays backed; page-aligned offset.
        let ptr = unsafe {
            mmap(
                None,
                CELLS,
                ProtFlags::PROT_READ | ProtFlags::PROT_WRITE,
                MapFlags::MAP_SHARED | MapFlags::MAP_NORESERVE,
                fd,
                PAGE_LEN as libc::off_t,
            )
        }
        .map_err(|errno| Error::os("mmap", errno))?;
        Ok(Box::leak(Box::new(ServedCells {
            pages: ptr.cast::<SlotPage>(),
        })))
    }

    /// Cell `number` (page `number / PER_PAGE`, cell `number % PER_PAGE` of it), or `None`
    /// past the region's end.
    pub(crate) fn cell(&'static self, number: usize) -> Option<&'static Cell> {
        if number >= REGION_PAGES * PER_PAGE {
            return None;
        }
        // SAFETY: the page is inside the mapping (checked above), which is readable,
        // writable and never unmapped; zero-filled or written only atomically, a valid
        // `SlotPage`.
        let page = unsafe { &*self.pages.as_ptr().add(number / PER_PAGE) };
        Some(&page.cells[number % PER_PAGE])
    }
}

/// The word the calling process writes while it waits, and the pid that installed it.
#[derive(Debug)]
pub(crate) struct CurrentWord {
    word: AtomicPtr<AtomicU32>,
    /// The pid that installed `word`; none before any install.
    pid: AtomicPid,
}

impl CurrentWord {
    /// No word installed.
    pub(crate) const fn none() -> CurrentWord {
        CurrentWord {
            word: AtomicPtr::new(std::ptr::null_mut()),
            pid: AtomicPid::none(),
        }
    }

    /// Makes `word` the word of the process `pid`.
    pub(crate) fn install(&self, word: &'static AtomicU32, pid: Pid) {
        self.pid.store(Some(pid), Ordering::Release);
        self.word
            .store(std::ptr::from_ref(word).cast_mut(), Ordering::Release);
    }

    /// Installs no word.
    pub(crate) fn clear(&self) {
        self.word.store(std::ptr::null_mut(), Ordering::Release);
    }

    /// The installed word, whichever process installed it.
    pub(crate) fn installed(&self) -> Option<&'static AtomicU32> {
        let word = self.word.load(Ordering::Acquire);
        // SAFETY: only `install` stores a non-null pointer, made from a `&'static`.
        unsafe { word.as_ref() }
    }

    /// The installed word, if the process `me` installed it (a process forked from it
    /// without the runtime inherits the pointer but must not write through it).
    pub(crate) fn get(&self, me: impl FnOnce() -> Pid) -> Option<&'static AtomicU32> {
        let word = self.word.load(Ordering::Acquire);
        if word.is_null() || self.pid.load(Ordering::Acquire) != Some(me()) {
            return None;
        }
        // SAFETY: only `install` stores a non-null pointer, made from a `&'static`.
        Some(unsafe { &*word })
    }

    /// Whether `word` is the installed word.
    pub(crate) fn is(&self, word: &AtomicU32) -> bool {
        std::ptr::eq(self.word.load(Ordering::Acquire), word)
    }
}
