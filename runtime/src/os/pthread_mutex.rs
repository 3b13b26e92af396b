//! The robust, process-shared pthread mutex under `Lock`, `RLock`, `Barrier` and `Queue`.
//!
//! A [`RawMutex`] lives inside a [`SharedMemory`](crate::os::shm::SharedMemory) segment. It is a
//! glibc mutex initialised with `PTHREAD_PROCESS_SHARED` and `PTHREAD_MUTEX_ROBUST`, so the
//! kernel's robust list hands a dead holder's mutex to the next locker with `EOWNERDEAD`
//! instead of leaving it locked forever (T19). Non-recursive mutexes are
//! `PTHREAD_MUTEX_ERRORCHECK`, so unlocking a mutex the caller does not hold is `EPERM`, not
//! undefined behaviour. Timed waits use `pthread_mutex_clocklock` on `CLOCK_MONOTONIC`.
//!
//! # Safety
//!
//! A `RawMutex` is only ever reached through a reference into a live shared mapping at an
//! 8-aligned offset, initialised once by [`RawMutex::init`] before the segment is shared;
//! after that it is touched only through `pthread_mutex_*` and atomics.
#![allow(unsafe_code)]

use std::cell::UnsafeCell;
use std::sync::atomic::{AtomicI32, AtomicU32, Ordering};
use std::time::Duration;

use nix::errno::Errno;

use super::shm::Fresh;
use crate::error::{Error, Result};
use crate::os::thread::gettid;
use crate::os::time::Deadline;

// SAFETY: the signature matches glibc's declaration in <pthread.h> (glibc 2.30 and later).
unsafe extern "C" {
    /// glibc ≥ 2.30: `pthread_mutex_timedlock` with a selectable clock.
    fn pthread_mutex_clocklock(
        mutex: *mut libc::pthread_mutex_t,
        clock: libc::clockid_t,
        abstime: *const libc::timespec,
    ) -> libc::c_int;
}

/// A robust process-shared mutex plus the owner bookkeeping the runtime needs.
#[repr(C)]
pub(crate) struct RawMutex {
    mutex: UnsafeCell<libc::pthread_mutex_t>,
    /// Kernel thread id of the holder, 0 when free. Written only by the holder.
    holder: AtomicI32,
    /// Recursion depth of a recursive mutex. Written only by the holder.
    depth: AtomicU32,
}

// SAFETY: the `pthread_mutex_t` is touched only through `pthread_mutex_*` calls, which are
// made for concurrent use (by threads and, with `PTHREAD_PROCESS_SHARED`, by processes); the
// other fields are atomics.
unsafe impl Sync for RawMutex {}

impl std::fmt::Debug for RawMutex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawMutex")
            .field("holder", &self.holder.load(Ordering::Relaxed))
            .field("depth", &self.depth.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

/// The outcome of [`RawMutex::lock`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Acquire {
    /// The caller holds the mutex.
    Acquired,
    /// The caller holds the mutex, and its previous holder died holding it.
    OwnerDied,
    /// The deadline passed first.
    TimedOut,
}

fn check(call: &'static str, rc: libc::c_int) -> Result<()> {
    if rc == 0 {
        Ok(())
    } else {
        Err(Error::os(call, Errno::from_raw(rc)))
    }
}

impl RawMutex {
    #[inline]
    fn raw(&self) -> *mut libc::pthread_mutex_t {
        self.mutex.get()
    }

    /// Initialises the mutex in place, in a segment nobody else sees yet (`Fresh` proves it).
    pub(crate) fn init(&self, recursive: bool, _fresh: &Fresh) -> Result<()> {
        let mut attr = std::mem::MaybeUninit::<libc::pthread_mutexattr_t>::uninit();
        let kind = if recursive {
            libc::PTHREAD_MUTEX_RECURSIVE
        } else {
            libc::PTHREAD_MUTEX_ERRORCHECK
        };
        // SAFETY: `attr` is initialised by `pthread_mutexattr_init` before any other use and
        // destroyed once at the end; the mutex memory is exclusively ours (the segment is fresh).
        unsafe {
            check(
                "pthread_mutexattr_init",
                libc::pthread_mutexattr_init(attr.as_mut_ptr()),
            )?;
            let res = check(
                "pthread_mutexattr_settype",
                libc::pthread_mutexattr_settype(attr.as_mut_ptr(), kind),
            )
            .and_then(|()| {
                check(
                    "pthread_mutexattr_setpshared",
                    libc::pthread_mutexattr_setpshared(
                        attr.as_mut_ptr(),
                        libc::PTHREAD_PROCESS_SHARED,
                    ),
                )
            })
            .and_then(|()| {
                check(
                    "pthread_mutexattr_setrobust",
                    libc::pthread_mutexattr_setrobust(
                        attr.as_mut_ptr(),
                        libc::PTHREAD_MUTEX_ROBUST,
                    ),
                )
            })
            .and_then(|()| {
                check(
                    "pthread_mutex_init",
                    libc::pthread_mutex_init(self.raw(), attr.as_ptr()),
                )
            });
            libc::pthread_mutexattr_destroy(attr.as_mut_ptr());
            res
        }
    }

    fn outcome(&self, rc: libc::c_int) -> Result<Option<Acquire>> {
        match rc {
            // glibc reports a robust mutex left unrecoverable by another thread as EDEADLK
            // from the blocking lock calls; only the holder can really deadlock.
            libc::EDEADLK if !self.held_by_caller() => Err(Error::NotRecoverable),
            0 => Ok(Some(Acquire::Acquired)),
            libc::EOWNERDEAD => Ok(Some(Acquire::OwnerDied)),
            libc::EBUSY | libc::ETIMEDOUT => Ok(None),
            libc::ENOTRECOVERABLE => Err(Error::NotRecoverable),
            libc::EDEADLK => Err(Error::WouldDeadlock),
            libc::EAGAIN => Err(Error::InvalidArgument("maximum recursion depth reached")),
            errno => Err(Error::os("pthread_mutex_lock", Errno::from_raw(errno))),
        }
    }

    #[inline]
    fn acquired(&self, how: Acquire) -> Acquire {
        // Only the holder writes `holder` and `depth`, so plain loads and stores suffice
        // (no read-modify-write instructions on the fast path).
        match how {
            Acquire::Acquired => {
                self.holder.store(gettid(), Ordering::Relaxed);
                let depth = self.depth.load(Ordering::Relaxed);
                self.depth.store(depth + 1, Ordering::Relaxed);
            }
            Acquire::OwnerDied => {
                // The dead holder's depth means nothing to the new one.
                self.holder.store(gettid(), Ordering::Relaxed);
                self.depth.store(1, Ordering::Relaxed);
            }
            Acquire::TimedOut => {}
        }
        how
    }

    /// Takes the mutex, waiting at most `timeout` (`None`: forever). Only when it has to
    /// sleep does it call `while_blocked` and hold what that returns until it wakes up (the
    /// callers pass `|| blocked(on)`, so the process's status slot says what it waits for).
    ///
    /// Inlined into its callers up to the first `pthread_mutex_trylock`: an uncontended
    /// acquisition is that call and two stores, everything else is out of line.
    ///
    /// # Errors
    ///
    /// [`Error::NotRecoverable`], [`Error::WouldDeadlock`] (non-recursive, already held by
    /// the caller), [`Error::InvalidArgument`] (recursion limit), [`Error::Os`].
    #[inline]
    pub(crate) fn lock<G>(
        &self,
        timeout: Option<Duration>,
        while_blocked: impl FnOnce() -> G,
    ) -> Result<Acquire> {
        // SAFETY: the mutex was initialised (module `# Safety`).
        let rc = unsafe { libc::pthread_mutex_trylock(self.raw()) };
        if rc == 0 {
            return Ok(self.acquired(Acquire::Acquired));
        }
        self.lock_after_trylock(rc, timeout, while_blocked)
    }

    /// [`RawMutex::lock`] after a `pthread_mutex_trylock` that returned `rc` (not 0).
    #[cold]
    #[inline(never)]
    fn lock_after_trylock<G>(
        &self,
        rc: libc::c_int,
        timeout: Option<Duration>,
        while_blocked: impl FnOnce() -> G,
    ) -> Result<Acquire> {
        let poll_only = timeout == Some(Duration::ZERO);
        if rc == libc::EDEADLK && poll_only {
            // A zero timeout on a lock the caller holds: "not acquired", as in CPython.
            return Ok(Acquire::TimedOut);
        }
        if let Some(how) = self.outcome(rc)? {
            return Ok(self.acquired(how));
        }
        // Only a contended acquisition reads the clock.
        let deadline = Deadline::after(timeout);
        if poll_only || deadline.expired() {
            return Ok(Acquire::TimedOut);
        }
        let _blocked = while_blocked();
        loop {
            let rc = match deadline.timespec() {
                // SAFETY: as above.
                None => unsafe { libc::pthread_mutex_lock(self.raw()) },
                // SAFETY: as above; `ts` outlives the call.
                Some(ts) => unsafe {
                    pthread_mutex_clocklock(self.raw(), libc::CLOCK_MONOTONIC, &ts)
                },
            };
            match self.outcome(rc)? {
                Some(how) => return Ok(self.acquired(how)),
                None if deadline.expired() => return Ok(Acquire::TimedOut),
                None => continue,
            }
        }
    }

    /// Whether the calling thread holds the mutex.
    #[inline]
    pub(crate) fn held_by_caller(&self) -> bool {
        self.holder.load(Ordering::Relaxed) == gettid()
    }

    /// The recursion depth (1 for a held non-recursive mutex, 0 when free).
    #[inline]
    pub(crate) fn depth(&self) -> u32 {
        self.depth.load(Ordering::Relaxed)
    }

    /// Releases one level of the mutex.
    ///
    /// Inlined like [`RawMutex::lock`] up to the `pthread_mutex_unlock`; a failed unlock is
    /// handled out of line.
    ///
    /// # Errors
    ///
    /// [`Error::NotOwner`] when the caller does not hold it.
    #[inline]
    pub(crate) fn unlock(&self) -> Result<()> {
        let depth = self.depth();
        if depth == 0 || !self.held_by_caller() {
            return Err(Error::NotOwner);
        }
        self.depth.store(depth - 1, Ordering::Relaxed);
        if depth == 1 {
            self.holder.store(0, Ordering::Relaxed);
        }
        // SAFETY: the mutex was initialised; the caller holds it.
        let rc = unsafe { libc::pthread_mutex_unlock(self.raw()) };
        if rc == 0 {
            return Ok(());
        }
        self.unlock_failed(depth, rc)
    }

    /// [`RawMutex::unlock`] after a `pthread_mutex_unlock` that returned `rc` (not 0) with
    /// the bookkeeping already lowered from `depth`.
    #[cold]
    #[inline(never)]
    fn unlock_failed(&self, depth: u32, rc: libc::c_int) -> Result<()> {
        // Undo the bookkeeping: the mutex is still ours.
        self.depth.store(depth, Ordering::Relaxed);
        self.holder.store(gettid(), Ordering::Relaxed);
        match rc {
            libc::EPERM => Err(Error::NotOwner),
            errno => Err(Error::os("pthread_mutex_unlock", Errno::from_raw(errno))),
        }
    }

    /// Marks the state protected by a mutex acquired with [`Acquire::OwnerDied`] consistent.
    ///
    /// # Errors
    ///
    /// [`Error::NotOwner`] when the caller does not hold it; [`Error::InvalidArgument`] when
    /// it is not in the owner-died state.
    pub(crate) fn make_consistent(&self) -> Result<()> {
        if !self.held_by_caller() {
            return Err(Error::NotOwner);
        }
        // SAFETY: the mutex was initialised; the caller holds it.
        match unsafe { libc::pthread_mutex_consistent(self.raw()) } {
            0 => Ok(()),
            libc::EINVAL => Err(Error::InvalidArgument("the lock is not inconsistent")),
            errno => Err(Error::os(
                "pthread_mutex_consistent",
                Errno::from_raw(errno),
            )),
        }
    }
}
