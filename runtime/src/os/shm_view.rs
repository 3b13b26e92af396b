//! A borrowed view of bytes in a shared segment's data area, for decoding a queue item where
//! it lies instead of copying it out first.
//!
//! # Safety
//!
//! The view is handed to a closure and cannot outlive the call, so it never outlives the
//! mapping. The shared slice must see no write while the closure runs. That rests on a lock
//! protocol: the caller holds a robust mutex that lies in the segment's own header (the
//! queue's), and every process that maps the segment writes its data area only while holding
//! that mutex, and only where no reader may look (the queue's free space, outside the range
//! handed out here). [`Segment::with_bytes`] checks its part at run time: it takes the mutex
//! as a witness and panics unless the mutex lies in this segment's header and the calling
//! thread holds it, so safe code cannot borrow the bytes without the lock. The rest is a
//! trust model, as for every shared segment: a process that holds the segment's fd and
//! writes its pages without the mutex (a buggy or hostile peer) breaks the protocol, and this
//! view then sees bytes change under it, as [`Segment::copy_out`] would see torn bytes.
#![allow(unsafe_code)]

use super::pthread_mutex::RawMutex;
use super::shm::{Header, Segment};

impl<H: Header> Segment<H> {
    /// Calls `f` with the `len` bytes of the data area at `at`, while the calling thread holds
    /// `lock`, the robust mutex in this segment's header that serialises every writer of the
    /// data area (see the module's `# Safety` for the protocol the other processes follow).
    ///
    /// # Panics
    ///
    /// When the range lies outside the data area, when `lock` does not lie in this segment's
    /// header, or when the calling thread does not hold it.
    pub(crate) fn with_bytes<R>(
        &self,
        lock: &RawMutex,
        at: usize,
        len: usize,
        f: impl FnOnce(&[u8]) -> R,
    ) -> R {
        let header = std::ptr::from_ref(self.header()).addr();
        let mutex = std::ptr::from_ref(lock).addr();
        assert!(
            header <= mutex && mutex + size_of::<RawMutex>() <= header + size_of::<H>(),
            "the witness of a shared view is not the segment's own mutex"
        );
        assert!(
            lock.held_by_caller() && lock.depth() > 0,
            "a shared view borrowed without holding the segment's mutex"
        );
        let ptr = self.data_at(at, len);
        // SAFETY: `data_at` checked that `at..at + len` lies inside the mapping, which lives
        // as long as `&self` and so for the whole call; `u8` has no alignment or validity
        // requirement; the calling thread holds the segment's own mutex (checked above) for
        // the whole call, under which no process following the protocol writes the range
        // (see the module's `# Safety`), and `f` cannot keep the slice past the call.
        let bytes = unsafe { std::slice::from_raw_parts(ptr.cast_const(), len) };
        f(bytes)
    }
}
