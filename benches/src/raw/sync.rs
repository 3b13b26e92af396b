//! Raw lock baseline: a process-shared robust pthread mutex in `MAP_SHARED` memory, locked
//! and unlocked alone or while a forked child hammers the same mutex; and the control page
//! and contending child that the lock benchmarks of proclife use too.

use std::mem;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::{CHILD_EXIT_BOUND, Child, code, fork_helper};
use crate::{Error, Result, cpu};

/// How long a contending child may take to get going.
const READY_BOUND: Duration = Duration::from_secs(10);

/// A shared anonymous page holding one `T`, zero-filled, inherited by forked children and
/// unmapped on drop.
pub(crate) struct SharedPage<T> {
    pub(crate) ptr: NonNull<T>,
}

impl<T> std::fmt::Debug for SharedPage<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedPage")
            .field("ptr", &self.ptr)
            .finish()
    }
}

impl<T> SharedPage<T> {
    /// Maps the page. `T` must be valid when all its bytes are zero.
    pub(crate) fn new() -> Result<Self> {
        // SAFETY: a fresh shared anonymous mapping aliases nothing; the result is checked.
        let addr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                mem::size_of::<T>(),
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if addr == libc::MAP_FAILED {
            return Err(Error::last_os("mmap"));
        }
        NonNull::new(addr.cast::<T>())
            .map(|ptr| SharedPage { ptr })
            .ok_or_else(|| Error::Invalid {
                what: "mmap returned a null mapping".into(),
            })
    }
}

/// A type made only of atomics (or of `#[repr(C)]` structs of them): valid when all its
/// bytes are zero, and sound to read and write through a shared reference from every process
/// that maps its page.
///
/// # Safety
///
/// Implement it only for such a type.
pub(crate) unsafe trait Atomics {}

impl<T: Atomics> SharedPage<T> {
    /// The page's words, for as long as the page is mapped.
    pub(crate) fn words(&self) -> &T {
        // SAFETY: the mapping lives as long as `self` (it is unmapped only in drop), starts
        // zero-filled, and `T: Atomics` holds only atomics, so a shared reference is sound.
        unsafe { self.ptr.as_ref() }
    }
}

impl<T> Drop for SharedPage<T> {
    fn drop(&mut self) {
        // SAFETY: the mapping was made by `new` with this size and is unmapped only here. A
        // failure cannot be acted on in drop; it would only leak address space.
        let _ = unsafe { libc::munmap(self.ptr.as_ptr().cast(), mem::size_of::<T>()) };
    }
}

/// The words of a [`Control`] page.
#[repr(C)]
struct ControlWords {
    /// Incremented inside every critical section, by whichever process holds the lock.
    counter: AtomicU64,
    /// Set by the parent to tell the contender to stop.
    stop: AtomicBool,
    /// Set by the contender after its first critical section.
    ready: AtomicBool,
    /// The contender's iteration count, written just before it exits.
    contender_iterations: AtomicU64,
}

// SAFETY: every field is an atomic.
unsafe impl Atomics for ControlWords {}

/// The shared page beside the lock under test: the counter every critical section
/// increments and the contender's control words.
///
/// It is its own page, apart from the lock, for the raw mutex and for proclife's `Lock`
/// alike, so that both critical sections touch the same memory in the same way.
#[derive(Debug)]
pub struct Control {
    page: SharedPage<ControlWords>,
}

impl Control {
    /// Maps a fresh control page: counter 0, no stop request.
    ///
    /// # Errors
    ///
    /// [`Error::Os`] when `mmap` fails.
    pub fn new() -> Result<Self> {
        // The mapping is zero-filled: the atomics start at 0/false, which is their meaning
        // before anything has run.
        Ok(Control {
            page: SharedPage::new()?,
        })
    }

    /// The body of a critical section: increments the counter with a plain load and store,
    /// not an atomic add, so that two processes inside the section at once lose a count.
    pub fn bump(&self) {
        let counter = &self.page.words().counter;
        counter.store(counter.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
    }

    /// The shared counter: the number of critical sections run so far, by any process.
    pub fn counter(&self) -> u64 {
        self.page.words().counter.load(Ordering::Acquire)
    }
}

/// A `PTHREAD_PROCESS_SHARED`, `PTHREAD_MUTEX_ROBUST` mutex in an anonymous shared mapping,
/// so that children forked after [`RobustMutex::new`] use the same mutex.
#[derive(Debug)]
pub struct RobustMutex {
    page: SharedPage<libc::pthread_mutex_t>,
    /// Whether `pthread_mutex_init` succeeded, so that drop destroys only a real mutex.
    initialised: bool,
}

impl RobustMutex {
    /// Maps a shared page and initialises a process-shared robust mutex in it.
    ///
    /// # Errors
    ///
    /// [`Error::Os`] when `mmap` or a `pthread_mutexattr_*`/`pthread_mutex_init` call fails.
    pub fn new() -> Result<Self> {
        // From here on, drop unmaps the page.
        let mut this = RobustMutex {
            page: SharedPage::new()?,
            initialised: false,
        };
        // SAFETY: all zeroes is a valid value for the attribute object before init.
        let mut attr: libc::pthread_mutexattr_t = unsafe { mem::zeroed() };
        // SAFETY: `attr` is valid for writes.
        let rc = unsafe { libc::pthread_mutexattr_init(&mut attr) };
        check(rc, "pthread_mutexattr_init")?;
        let configured = (|| {
            // SAFETY: `attr` was initialised above.
            let rc = unsafe {
                libc::pthread_mutexattr_setpshared(&mut attr, libc::PTHREAD_PROCESS_SHARED)
            };
            check(rc, "pthread_mutexattr_setpshared")?;
            // SAFETY: `attr` was initialised above.
            let rc =
                unsafe { libc::pthread_mutexattr_setrobust(&mut attr, libc::PTHREAD_MUTEX_ROBUST) };
            check(rc, "pthread_mutexattr_setrobust")?;
            // SAFETY: the mutex lives in the mapping, which stays put until drop; `attr` is
            // initialised.
            let rc = unsafe { libc::pthread_mutex_init(this.mutex(), &attr) };
            check(rc, "pthread_mutex_init")
        })();
        // SAFETY: `attr` was initialised above and is not used after this.
        unsafe { libc::pthread_mutexattr_destroy(&mut attr) };
        configured?;
        this.initialised = true;
        Ok(this)
    }

    fn mutex(&self) -> *mut libc::pthread_mutex_t {
        self.page.ptr.as_ptr()
    }

    /// Locks, runs [`Control::bump`], unlocks; both calls must return 0.
    ///
    /// # Errors
    ///
    /// [`Error::OwnerDied`] when the lock reports `EOWNERDEAD` (the mutex is made consistent
    /// and released first), [`Error::Os`] for any other non-zero return.
    pub fn lock_unlock(&self, control: &Control) -> Result<()> {
        // SAFETY: the mutex was initialised in `new` and lives in the mapping.
        match unsafe { libc::pthread_mutex_lock(self.mutex()) } {
            0 => {}
            libc::EOWNERDEAD => {
                // SAFETY: we hold the inconsistent mutex, which is when these are allowed.
                unsafe {
                    libc::pthread_mutex_consistent(self.mutex());
                    libc::pthread_mutex_unlock(self.mutex());
                }
                return Err(Error::OwnerDied {
                    call: "pthread_mutex_lock",
                });
            }
            errno => return Err(Error::from_errno("pthread_mutex_lock", errno)),
        }
        control.bump();
        // SAFETY: we hold the mutex.
        check(
            unsafe { libc::pthread_mutex_unlock(self.mutex()) },
            "pthread_mutex_unlock",
        )
    }
}

impl Drop for RobustMutex {
    fn drop(&mut self) {
        if self.initialised {
            // SAFETY: the mutex was initialised, and no contender is alive (a `Contender`
            // borrows the lock through its critical section, and its child is reaped or
            // killed before the borrow ends), so nobody holds or waits on it. A failure
            // cannot be acted on in drop.
            unsafe { libc::pthread_mutex_destroy(self.mutex()) };
        }
    }
}

fn check(rc: libc::c_int, call: &'static str) -> Result<()> {
    if rc == 0 {
        Ok(())
    } else {
        Err(Error::from_errno(call, rc))
    }
}

/// A forked child that runs a critical section in a loop until told to stop.
#[derive(Debug)]
pub struct Contender<'c> {
    control: &'c Control,
    child: Child,
}

impl<'c> Contender<'c> {
    /// Forks the contender, pinned to `cpu` when given, and waits (bounded) until it has run
    /// its first critical section. `critical` is one lock + [`Control::bump`] + unlock, for
    /// example `|| mutex.lock_unlock(&control)`; the child exits with [`code::LOCK`] when it
    /// fails.
    ///
    /// # Errors
    ///
    /// As [`fork_helper`]; [`Error::ChildFailed`] or [`Error::ChildHung`] when the child dies
    /// or does not start in time.
    pub fn start<F>(control: &'c Control, cpu: Option<usize>, mut critical: F) -> Result<Self>
    where
        F: FnMut() -> Result<()>,
    {
        let words = control.page.words();
        words.stop.store(false, Ordering::Release);
        words.ready.store(false, Ordering::Release);
        words.contender_iterations.store(0, Ordering::Release);
        let mut child = fork_helper(|| {
            if let Some(cpu) = cpu
                && cpu::pin_to(cpu).is_err()
            {
                return code::PIN;
            }
            let mut iterations: u64 = 0;
            loop {
                if critical().is_err() {
                    return code::LOCK;
                }
                iterations += 1;
                if iterations == 1 {
                    words.ready.store(true, Ordering::Release);
                }
                if words.stop.load(Ordering::Relaxed) {
                    break;
                }
            }
            words
                .contender_iterations
                .store(iterations, Ordering::Release);
            code::OK
        })?;
        let deadline = Instant::now() + READY_BOUND;
        while !words.ready.load(Ordering::Acquire) {
            if child.try_wait()? {
                return Err(Error::ChildFailed {
                    pid: child.pid(),
                    status: "exited before its first critical section".into(),
                });
            }
            if Instant::now() >= deadline {
                return Err(Error::ChildHung {
                    pid: child.pid(),
                    secs: READY_BOUND.as_secs(),
                });
            }
            std::thread::sleep(Duration::from_micros(50));
        }
        Ok(Contender { control, child })
    }

    /// Tells the contender to stop, reaps it (bounded) and returns how many critical
    /// sections it ran.
    ///
    /// # Errors
    ///
    /// As [`Child::wait`].
    pub fn finish(mut self) -> Result<u64> {
        let words = self.control.page.words();
        words.stop.store(true, Ordering::Release);
        self.child.wait(CHILD_EXIT_BOUND)?;
        Ok(words.contender_iterations.load(Ordering::Acquire))
    }
}

/// Checks that the counter advanced by exactly the parent's and the contender's iterations.
///
/// # Errors
///
/// [`Error::LockCount`] when it did not.
pub fn check_count(before: u64, after: u64, parent: u64, contender: u64) -> Result<()> {
    let counted = after.wrapping_sub(before);
    let expected = parent + contender;
    if counted == expected {
        Ok(())
    } else {
        Err(Error::LockCount { counted, expected })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_must_add_up() {
        assert!(check_count(10, 25, 5, 10).is_ok());
        assert!(matches!(
            check_count(10, 24, 5, 10),
            Err(Error::LockCount {
                counted: 14,
                expected: 15
            })
        ));
    }
}
