//! The worker: a process target that runs a program of calls on the shared objects and
//! reports every invocation and return, stamped on one shared counter.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::time::Duration;

use proclife::ipc::{Array, Connection, JoinableQueue, Queue, SimpleQueue, Value};
use proclife::sync::{Barrier, BoundedSemaphore, Condition, Event, Lock, RLock, Semaphore};
use proclife::{Error, TargetResult};
use proclife_model::objects::register::ARRAY_LEN;
use proclife_model::objects::{Call, Object, Ret};
use serde::{Deserialize, Serialize};

use crate::objects::map;

/// The shared objects of one program, and the counter every call is stamped on.
#[derive(Debug, Serialize, Deserialize)]
pub struct Shared {
    /// A `Lock`.
    pub lock: Lock,
    /// An `RLock`.
    pub rlock: RLock,
    /// A `Semaphore`.
    pub semaphore: Semaphore,
    /// A `BoundedSemaphore`.
    pub bounded: BoundedSemaphore,
    /// An `Event`.
    pub event: Event,
    /// A `Condition` over its own `RLock`.
    pub condition: Condition,
    /// A `Barrier`.
    pub barrier: Barrier,
    /// A `Queue` of `u32` items.
    pub queue: Queue<u32>,
    /// A `SimpleQueue` of `u32` items.
    pub simple: SimpleQueue<u32>,
    /// A `JoinableQueue` of `u32` items, of the same `maxsize` as the queue.
    pub joinable: JoinableQueue<u32>,
    /// A `Value` of `u32`, initially 0.
    pub value: Value<u32>,
    /// An `Array` of `ARRAY_LEN` `u32`s, initially 0.
    pub array: Array<u32>,
    /// The logical clock: every invocation and return takes the next value.
    pub stamp: Value<u64>,
}

/// The initial values of a program's objects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Setup {
    /// The semaphore's initial value.
    pub semaphore: u32,
    /// The bounded semaphore's initial (and maximum) value.
    pub bounded: u32,
    /// The barrier's parties.
    pub parties: usize,
    /// The queue's and the joinable queue's `maxsize` (0: unbounded).
    pub maxsize: usize,
}

impl Default for Setup {
    fn default() -> Setup {
        Setup {
            semaphore: 1,
            bounded: 1,
            parties: 2,
            maxsize: 2,
        }
    }
}

fn dup(fd: BorrowedFd<'_>) -> proclife::Result<OwnedFd> {
    fd.try_clone_to_owned().map_err(|e| Error::Os {
        call: "dup",
        errno: nix::errno::Errno::from_raw(e.raw_os_error().unwrap_or(0)),
    })
}

impl Shared {
    /// Creates the objects in their initial state.
    ///
    /// # Errors
    ///
    /// The runtime's, when a segment cannot be made.
    pub fn new(setup: Setup) -> proclife::Result<Shared> {
        Ok(Shared {
            lock: Lock::new()?,
            rlock: RLock::new()?,
            semaphore: Semaphore::new(setup.semaphore)?,
            bounded: BoundedSemaphore::new(setup.bounded)?,
            event: Event::new()?,
            condition: Condition::new()?,
            barrier: Barrier::new(setup.parties, None)?,
            queue: Queue::new(setup.maxsize)?,
            simple: SimpleQueue::new()?,
            joinable: JoinableQueue::new(setup.maxsize)?,
            value: Value::new(0)?,
            array: Array::new(ARRAY_LEN, 0)?,
            stamp: Value::new(0)?,
        })
    }

    /// Second handles to the same objects (each process releases through its own).
    ///
    /// # Errors
    ///
    /// When an fd cannot be duplicated.
    pub fn duplicate(&self) -> proclife::Result<Shared> {
        Ok(Shared {
            lock: Lock::from_fd(dup(self.lock.as_fd())?)?,
            rlock: RLock::from_fd(dup(self.rlock.as_fd())?)?,
            semaphore: Semaphore::from_fd(dup(self.semaphore.as_fd())?)?,
            bounded: BoundedSemaphore::from_fd(dup(self.bounded.as_fd())?)?,
            event: Event::from_fd(dup(self.event.as_fd())?)?,
            condition: Condition::from_fds(
                dup(self.condition.lock_fd())?,
                self.condition.recursive(),
                dup(self.condition.as_fd())?,
            )?,
            barrier: Barrier::from_fd(dup(self.barrier.as_fd())?)?,
            queue: Queue::from_fd(dup(self.queue.as_fd())?)?,
            simple: SimpleQueue::from_fd(dup(self.simple.as_fd())?)?,
            joinable: JoinableQueue::from_fd(dup(self.joinable.as_fd())?)?,
            value: Value::from_fds(
                dup(self.value.as_fd())?,
                dup(self.value.get_lock().as_fd())?,
            )?,
            array: Array::from_fds(
                dup(self.array.as_fd())?,
                dup(self.array.get_lock().as_fd())?,
            )?,
            stamp: Value::from_fds(
                dup(self.stamp.as_fd())?,
                dup(self.stamp.get_lock().as_fd())?,
            )?,
        })
    }

    /// Takes the next stamp. A process killed while stamping leaves the counter's lock to
    /// the next caller as `OwnerDied`; the counter itself is one word, whole either way.
    /// The increment is written out under `get_lock()` rather than through `Value::update`,
    /// whose bugs the checked `Value` is there to find.
    ///
    /// # Errors
    ///
    /// The runtime's, other than `OwnerDied`.
    pub fn stamp(&self) -> proclife::Result<u64> {
        let lock = self.stamp.get_lock();
        match lock.acquire(None) {
            Ok(_) => {}
            Err(Error::OwnerDied) => lock.mark_consistent()?,
            Err(e) => return Err(e),
        }
        let raw = self.stamp.get_obj();
        let next = raw.get() + 1;
        raw.set(next);
        lock.release()?;
        Ok(next)
    }

    /// Performs one call and returns its result in the model's terms.
    pub fn perform(&self, call: Call) -> Ret {
        let t = |ms: Option<u32>| ms.map(|ms| Duration::from_millis(u64::from(ms)));
        match call {
            Call::Acquire { obj, timeout_ms } => {
                let timeout = t(timeout_ms);
                let acquired = match obj {
                    Object::Lock => self.lock.acquire(timeout),
                    Object::RLock => self.rlock.acquire(timeout),
                    Object::Semaphore => self.semaphore.acquire(timeout),
                    Object::BoundedSemaphore => self.bounded.acquire(timeout),
                    Object::Condition => self.condition.acquire(timeout),
                    Object::Value => self.value.get_lock().acquire(timeout),
                    Object::Array => self.array.get_lock().acquire(timeout),
                    other => return unsupported(other, call),
                };
                if matches!(acquired, Err(Error::OwnerDied)) {
                    // Told that the holder died, the caller holds the lock: it repairs
                    // nothing, so it marks the lock consistent at once.
                    if let Err(ret) = self.mark_consistent(call) {
                        return ret;
                    }
                }
                map::ret(call, acquired)
            }
            Call::Release { obj } => map::ret(
                call,
                match obj {
                    Object::Lock => self.lock.release(),
                    Object::RLock => self.rlock.release(),
                    Object::Semaphore => self.semaphore.release(),
                    Object::BoundedSemaphore => self.bounded.release(),
                    Object::Condition => self.condition.release(),
                    Object::Value => self.value.get_lock().release(),
                    Object::Array => self.array.get_lock().release(),
                    other => return unsupported(other, call),
                },
            ),
            Call::Set => {
                self.event.set();
                Ret::None
            }
            Call::Clear => {
                self.event.clear();
                Ret::None
            }
            Call::IsSet => map::ret(call, Ok(self.event.is_set())),
            Call::EventWait { timeout_ms } => map::ret(call, self.event.wait(t(timeout_ms))),
            Call::CondWait { timeout_ms } => {
                let waited = self.condition.wait(t(timeout_ms));
                // Re-acquired after the holder died: made consistent at once, as above.
                if matches!(waited, Err(Error::OwnerDied))
                    && let Err(e) = self.condition.mark_consistent()
                {
                    return map::refusal(call, &e);
                }
                map::ret(call, waited)
            }
            Call::Notify { n } => map::ret(call, self.condition.notify(n)),
            Call::NotifyAll => map::ret(call, self.condition.notify_all()),
            Call::BarrierWait { timeout_ms } => {
                map::ret(call, self.barrier.wait_timeout(t(timeout_ms)))
            }
            Call::Put {
                obj,
                item,
                timeout_ms,
            } => map::ret(
                call,
                match obj {
                    Object::Queue => self.queue.put_timeout(&item, t(timeout_ms)),
                    // A simple queue's put has no timeout.
                    Object::SimpleQueue => self.simple.put(&item),
                    Object::JoinableQueue => {
                        self.joinable.queue().put_timeout(&item, t(timeout_ms))
                    }
                    other => return unsupported(other, call),
                },
            ),
            Call::Get { obj, timeout_ms } => map::ret(
                call,
                match obj {
                    Object::Queue => self.queue.get_timeout(t(timeout_ms)),
                    // Nor its get.
                    Object::SimpleQueue => self.simple.get(),
                    Object::JoinableQueue => self.joinable.queue().get_timeout(t(timeout_ms)),
                    other => return unsupported(other, call),
                },
            ),
            Call::TaskDone => map::ret(call, self.joinable.task_done()),
            Call::Join { timeout_ms } => map::ret(call, self.joinable.join(t(timeout_ms))),
            Call::Close { obj } => {
                match obj {
                    Object::Queue => self.queue.close(),
                    Object::SimpleQueue => self.simple.close(),
                    Object::JoinableQueue => self.joinable.close(),
                    other => return unsupported(other, call),
                }
                Ret::None
            }
            Call::ValueGet => self.locked(call, self.value.get()),
            Call::ValueSet { value } => self.locked(call, self.value.set(value)),
            Call::ValueIncrement => self.locked(call, self.value.update(|v| v.wrapping_add(1))),
            Call::ArrayGet { index } => {
                let got = usize::try_from(index)
                    .map_err(|_| Error::InvalidArgument("index out of range"))
                    .and_then(|i| self.array.get(i));
                self.locked(call, got)
            }
            Call::ArraySet { index, value } => {
                let set = usize::try_from(index)
                    .map_err(|_| Error::InvalidArgument("index out of range"))
                    .and_then(|i| self.array.set(i, value));
                self.locked(call, set)
            }
        }
    }

    /// The result of an access to the value or the array: told that a holder of its lock
    /// died, the caller holds the lock (the access did not happen) and marks it consistent
    /// at once, as after an `acquire`.
    fn locked<T: Into<map::RetValue>>(&self, call: Call, result: proclife::Result<T>) -> Ret {
        if matches!(result, Err(Error::OwnerDied))
            && let Err(ret) = self.mark_consistent(call)
        {
            return ret;
        }
        map::ret(call, result)
    }

    /// Marks the lock of `call`'s object consistent, its caller told that the holder died;
    /// `Err` with what the call returns when that fails (or the object has no holder).
    fn mark_consistent(&self, call: Call) -> Result<(), Ret> {
        let marked = match call.object() {
            Object::Lock => self.lock.mark_consistent(),
            Object::RLock => self.rlock.mark_consistent(),
            Object::Condition => self.condition.mark_consistent(),
            Object::Value => self.value.get_lock().mark_consistent(),
            Object::Array => self.array.get_lock().mark_consistent(),
            other => return Err(unsupported(other, call)),
        };
        marked.map_err(|e| map::refusal(call, &e))
    }
}

fn unsupported(obj: Object, call: Call) -> Ret {
    Ret::Other {
        error: format!("{call} is not an operation of {}", obj.name()),
    }
}

/// What a worker reports on its pipe.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Report {
    /// Call `index` of the program is about to be made, at stamp `at`.
    Invoked {
        /// Index in the program.
        index: usize,
        /// The stamp.
        at: u64,
    },
    /// Call `index` returned `ret` at stamp `at`, `elapsed_us` after it was invoked.
    Returned {
        /// Index in the program.
        index: usize,
        /// The stamp.
        at: u64,
        /// What it returned.
        ret: Ret,
        /// Microseconds it took (for the explanation only; judges use stamps).
        elapsed_us: u64,
    },
}

/// The argument of [`worker`].
#[derive(Debug, Serialize, Deserialize)]
pub struct Work {
    /// The shared objects, through this process's own handles.
    pub shared: Shared,
    /// The calls, in order.
    pub program: Vec<Call>,
    /// Where the reports go.
    pub report: Connection,
}

/// Runs one call of a program and reports it: the stamps around the call and its result.
///
/// # Errors
///
/// A failed stamp or report (the harness's, not the call's).
pub fn run_call(
    shared: &Shared,
    mut report: impl FnMut(Report) -> proclife::Result<()>,
    index: usize,
    call: Call,
) -> proclife::Result<Ret> {
    let at = shared.stamp()?;
    report(Report::Invoked { index, at })?;
    let began = std::time::Instant::now();
    let ret = shared.perform(call);
    let elapsed_us = u64::try_from(began.elapsed().as_micros()).unwrap_or(u64::MAX);
    let at = shared.stamp()?;
    report(Report::Returned {
        index,
        at,
        ret: ret.clone(),
        elapsed_us,
    })?;
    Ok(ret)
}

/// The worker target: runs its program, reporting every call.
///
/// # Errors
///
/// A failed stamp or report; the child then exits with 1.
pub fn worker(mut work: Work) -> TargetResult {
    for (index, &call) in work.program.iter().enumerate() {
        let report = &mut work.report;
        run_call(&work.shared, |r| report.send(&r), index, call)?;
    }
    Ok(())
}

proclife::entry!(worker);
