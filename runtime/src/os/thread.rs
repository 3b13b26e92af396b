//! The calling thread's kernel id, cached per thread and forgotten in a forked child.
//!
//! # Safety
//!
//! The only `unsafe` call registers a `pthread_atfork` child handler that resets a
//! const-initialised thread-local (no allocation, no locks).
#![allow(unsafe_code)]

use std::cell::Cell;
use std::sync::Once;

thread_local! {
    /// This thread's kernel id, 0 until first asked for (and again in a forked child).
    static TID: Cell<i32> = const { Cell::new(0) };
}

static ATFORK: Once = Once::new();

/// Runs in the child after `fork(3)`: the forking thread has a new id there.
extern "C" fn forget_tid_in_child() {
    forget_cached_tid();
}

/// Forgets the cached thread id of the calling thread.
///
/// `fork(3)` does this through a `pthread_atfork` handler; a start method that creates a
/// child without glibc's `fork` (a raw `clone`/`clone3`) must call it first thing in the
/// child, before the child touches any lock.
pub(crate) fn forget_cached_tid() {
    TID.with(|tid| tid.set(0));
}

/// The calling thread's kernel id, which robust mutexes and our owner fields use.
///
/// Cached per thread: `gettid(2)` is a real system call and would dominate the cost of an
/// uncontended lock. A cached id costs one thread-local load; the first call of a thread
/// (and of a forked child) takes [`gettid_uncached`].
#[inline]
pub(crate) fn gettid() -> i32 {
    match TID.with(Cell::get) {
        0 => gettid_uncached(),
        cached => cached,
    }
}

/// [`gettid`] when the calling thread has no cached id: registers the fork handler (once per
/// process), asks the kernel, and caches the answer unless the handler could not be
/// registered.
#[cold]
fn gettid_uncached() -> i32 {
    ATFORK.call_once(|| {
        // SAFETY: registers a handler that only resets a const-initialised thread-local
        // `Cell` (no allocation, no locks), which is safe in a freshly forked child.
        // Registration fails only with ENOMEM; the cache is then never reset on fork, so
        // fall back to not caching at all (the id stays 0, so every call comes here).
        let rc = unsafe { libc::pthread_atfork(None, None, Some(forget_tid_in_child)) };
        if rc != 0 {
            NO_CACHE.store(true, std::sync::atomic::Ordering::Relaxed);
        }
    });
    let real = nix::unistd::gettid().as_raw();
    if !NO_CACHE.load(std::sync::atomic::Ordering::Relaxed) {
        TID.with(|tid| tid.set(real));
    }
    real
}

static NO_CACHE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
