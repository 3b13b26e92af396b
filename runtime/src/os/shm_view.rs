//! A borrowed view of bytes in a shared segment's data area, for decoding a queue item where
//! it lies instead of copying it out first.
//!
//! # Safety
//!
//! The view is handed to a closure and cannot outlive the call, so it never outlives the
//! mapping. Like [`Segment::copy_out`], it relies on the caller serialising writers of the
//! range (the queue's mutex, held for the whole call, and the ring's rule that nobody writes
//! between head and tail): while the closure runs no process that follows the protocol writes
//! those bytes, so the shared slice sees no write.
#![allow(unsafe_code)]

use super::shm::{Header, Segment};

impl<H: Header> Segment<H> {
    /// Calls `f` with the `len` bytes of the data area at `at`; the caller serialises writers
    /// of that range (a lock) for the whole call. Panics when the range lies outside the data
    /// area.
    pub(crate) fn with_bytes<R>(&self, at: usize, len: usize, f: impl FnOnce(&[u8]) -> R) -> R {
        let ptr = self.data_at(at, len);
        // SAFETY: `data_at` checked that `at..at + len` lies inside the mapping, which lives
        // as long as `&self` and so for the whole call; `u8` has no alignment or validity
        // requirement; the caller keeps every writer of the range out while `f` runs (see the
        // module's `# Safety`), and `f` cannot keep the slice past the call.
        let bytes = unsafe { std::slice::from_raw_parts(ptr.cast_const(), len) };
        f(bytes)
    }
}
