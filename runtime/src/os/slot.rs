//! The memory of status slots (`children::status`): words of `MAP_SHARED` memory through
//! which a child tells its parent what it is blocked on, and the process-wide pointer to the
//! current one.
//!
//! - [`SlotPage`]: a page cut into [`PER_PAGE`] cells of one cache line, each holding one
//!   word. A pool page lives in a [`PoolPage`], which maps it once and never unmaps it, so
//!   its cells are `&'static`; [`OwnPage`] is a page of its own, unmapped on drop.
//! - [`CurrentWord`]: a word the calling process keeps for the rest of its life (the one it
//!   writes while it waits, the one its parent's pidfd handoff is on), with the pid that
//!   installed it. It holds only `&'static` words, so reading it never dangles.
//!
//! # Safety
//!
//! Every page is an anonymous `MAP_SHARED` mapping of [`PAGE_LEN`] bytes at an address the
//! kernel picks (page-aligned, aliasing no Rust object), zero-filled, which is a valid
//! [`SlotPage`] (its fields are atomics). Shared access through `&SlotPage` is sound because
//! every access is atomic. A pool page is never unmapped: a pointer stored in a [`PoolPage`]
//! is valid for `'static`. An [`OwnPage`] is unmapped only by its `drop`, and every reference
//! into it borrows it. [`CurrentWord`] stores only pointers made from `&'static AtomicU32`.
#![allow(unsafe_code)]

use std::num::NonZeroUsize;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicPtr, AtomicU32, Ordering};

use nix::sys::mman::{MapFlags, ProtFlags, mmap_anonymous, munmap};

use crate::error::{Error, Result};
use crate::pid::{AtomicPid, Pid};

/// The bytes of one page of slots.
pub(crate) const PAGE_LEN: usize = 4096;
/// Bytes between two cells: a cache line each, so that children blocking at the same time
/// do not write to the same line.
pub(crate) const CELL: usize = 64;
/// Cells per page.
pub(crate) const PER_PAGE: usize = PAGE_LEN / CELL;

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

const PAGE: NonZeroUsize = match NonZeroUsize::new(PAGE_LEN) {
    Some(n) => n,
    None => panic!("the page length is not zero"),
};

/// `mmap(MAP_SHARED | MAP_ANONYMOUS)` of one zero-filled page.
fn map_page() -> Result<NonNull<SlotPage>> {
    // SAFETY: an anonymous mapping at an address the kernel picks aliases no Rust object.
    let ptr = unsafe {
        mmap_anonymous(
            None,
            PAGE,
            ProtFlags::PROT_READ | ProtFlags::PROT_WRITE,
            MapFlags::MAP_SHARED,
        )
    }
    .map_err(|errno| Error::os("mmap", errno))?;
    let page = ptr.cast::<SlotPage>();
    assert!(
        (page.as_ptr() as usize).is_multiple_of(std::mem::align_of::<SlotPage>()),
        "mmap returned an address that is not page-aligned"
    );
    Ok(page)
}

/// `munmap` of a page from [`map_page`] that no reference points into.
fn unmap_page(page: NonNull<SlotPage>) {
    // SAFETY: the caller hands over a page mapped by `map_page` with this length, into
    // which no reference points any more. An error leaves a mapping behind, nothing worse.
    let _ = unsafe { munmap(page.cast(), PAGE_LEN) };
}

/// The place of one pool page: empty, or a page mapped for the rest of the process's life.
#[derive(Debug)]
pub(crate) struct PoolPage(AtomicPtr<SlotPage>);

impl PoolPage {
    /// An empty place.
    pub(crate) const fn empty() -> PoolPage {
        PoolPage(AtomicPtr::new(std::ptr::null_mut()))
    }

    /// The page, if one is mapped here.
    pub(crate) fn get(&self) -> Option<&'static SlotPage> {
        let page = self.0.load(Ordering::Acquire);
        // SAFETY: a non-null pointer here came from `map_page` and is never unmapped (see
        // the module's `# Safety`).
        unsafe { page.as_ref() }
    }

    /// The page, mapped now if the place is empty; when two threads map at once, one page
    /// wins and the other is unmapped.
    ///
    /// # Errors
    ///
    /// `Error::Os { call: "mmap", .. }` (`ENOMEM`).
    pub(crate) fn get_or_map(&self) -> Result<&'static SlotPage> {
        if let Some(page) = self.get() {
            return Ok(page);
        }
        let fresh = map_page()?;
        match self.0.compare_exchange(
            std::ptr::null_mut(),
            fresh.as_ptr(),
            Ordering::AcqRel,
            Ordering::Acquire,
        ) {
            // SAFETY: `fresh` is now stored here, so it is never unmapped.
            Ok(_) => Ok(unsafe { fresh.as_ref() }),
            Err(other) => {
                // Another thread published its page first; `fresh` was never shared.
                unmap_page(fresh);
                // SAFETY: `other` is non-null (the exchange failed against null) and was
                // stored here, so it is never unmapped.
                Ok(unsafe { &*other })
            }
        }
    }

    /// Empties the place, leaving its page mapped (cells of it may still be in use).
    pub(crate) fn forget(&self) {
        self.0.store(std::ptr::null_mut(), Ordering::Release);
    }
}

/// A page of its own, unmapped on drop; its first cell is the slot.
#[derive(Debug)]
pub(crate) struct OwnPage(NonNull<SlotPage>);

// SAFETY: the page is owned by this value and reached only through atomics.
unsafe impl Send for OwnPage {}
// SAFETY: as above: every access is atomic.
unsafe impl Sync for OwnPage {}

impl OwnPage {
    /// Maps a page of its own.
    ///
    /// # Errors
    ///
    /// `Error::Os { call: "mmap", .. }` (`ENOMEM`).
    pub(crate) fn map() -> Result<OwnPage> {
        map_page().map(OwnPage)
    }

    /// The page's first cell.
    pub(crate) fn cell(&self) -> &Cell {
        // SAFETY: the page stays mapped while `self` lives (see the module's `# Safety`).
        &unsafe { self.0.as_ref() }.cells[0]
    }
}

impl Drop for OwnPage {
    fn drop(&mut self) {
        unmap_page(self.0);
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
