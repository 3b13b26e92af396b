//! Touched parent memory for the parent-size sweep.
//!
//! `fork` copies the parent's page tables, so its cost grows with the memory the parent has
//! touched. [`Touched`] maps private anonymous memory, asks for small pages
//! (`MADV_NOHUGEPAGE`, so the result does not depend on the machine's transparent-huge-page
//! setting; small pages are also the worst case for fork) and writes one byte in every page.

use std::ptr::NonNull;

use crate::{Error, Result};

/// A private anonymous mapping of which every page has been written; unmapped on drop.
#[derive(Debug)]
pub struct Touched {
    ptr: NonNull<u8>,
    len: usize,
    page: usize,
}

impl Touched {
    /// Maps `mib` MiB, disables transparent huge pages on it and touches every page.
    ///
    /// # Errors
    ///
    /// [`Error::Invalid`] for zero or an impossible size, [`Error::Os`] when `mmap` or
    /// `madvise` fails.
    pub fn new(mib: usize) -> Result<Self> {
        let len = mib
            .checked_mul(1 << 20)
            .filter(|&len| len > 0)
            .ok_or_else(|| Error::Invalid {
                what: format!("cannot touch {mib} MiB"),
            })?;
        let page = page_size()?;
        // SAFETY: a fresh private anonymous mapping aliases nothing; the result is checked.
        let addr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if addr == libc::MAP_FAILED {
            return Err(Error::last_os("mmap"));
        }
        let Some(ptr) = NonNull::new(addr.cast::<u8>()) else {
            return Err(Error::Invalid {
                what: "mmap returned a null mapping".into(),
            });
        };
        let touched = Touched { ptr, len, page };
        // SAFETY: the range is exactly the mapping made above.
        if unsafe { libc::madvise(addr, len, libc::MADV_NOHUGEPAGE) } != 0 {
            return Err(Error::last_os("madvise(MADV_NOHUGEPAGE)"));
        }
        for offset in (0..len).step_by(page) {
            // SAFETY: `offset < len`, so the byte is inside the writable mapping.
            unsafe { touched.ptr.as_ptr().add(offset).write_volatile(1) };
        }
        Ok(touched)
    }

    /// The mapping's size in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Always false: a mapping of zero bytes cannot be made.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The number of pages written.
    pub fn pages(&self) -> usize {
        self.len.div_ceil(self.page)
    }
}

impl Drop for Touched {
    fn drop(&mut self) {
        // SAFETY: the mapping was made by `new` with this address and length and is unmapped
        // only here. A failure cannot be acted on in drop; it would only leak address space.
        let _ = unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.len) };
    }
}

/// `sysconf(_SC_PAGESIZE)`—The size of a small page.
///
/// # Errors
///
/// [`Error::Os`] when `sysconf` fails.
pub fn page_size() -> Result<usize> {
    // SAFETY: sysconf has no memory-safety preconditions.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    usize::try_from(size)
        .ok()
        .filter(|&size| size > 0)
        .ok_or_else(|| Error::last_os("sysconf"))
}
