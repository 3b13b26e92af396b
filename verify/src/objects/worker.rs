//! The worker: a process target that runs a program of calls on the shared objects and
//! reports every invocation and return, stamped on one shared counter.

use std::cell::RefCell;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::time::Duration;

use proclife::ipc::{Array, Connection, JoinableQueue, Queue, SimpleQueue, Value, pipe};
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
    /// This process's handles of the ends of the checked pipes (see [`Ends`]).
    #[serde(default)]
    pub ends: RefCell<Ends>,
}

/// A process's handles of the two checked pipes: `duplex` from `Pipe(duplex=True)`,
/// `one_way` from `Pipe(duplex=False)` (`(reader, writer)`), each indexed by end.
///
/// Every process gets a handle of every end; the ends the program says it does not hold
/// are closed at its start ([`Ends::keep`]), so that a call through one is refused as
/// through a closed handle, as the model says.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Ends {
    /// The ends of the duplex pipe.
    pub duplex: [Option<Connection>; 2],
    /// The ends of the one-way pipe: the reader, then the writer.
    pub one_way: [Option<Connection>; 2],
}

impl Ends {
    /// The handle of `end` of `obj` (`Pipe` or `OneWayPipe`).
    fn get(&mut self, obj: Object, end: u8) -> Option<&mut Connection> {
        let ends = match obj {
            Object::Pipe => &mut self.duplex,
            Object::OneWayPipe => &mut self.one_way,
            _ => return None,
        };
        ends.get_mut(usize::from(end))?.as_mut()
    }

    /// Closes the ends that process `proc` does not hold: bit `proc` of `holders[e]` says
    /// whether it holds end `e` of each pipe.
    ///
    /// # Errors
    ///
    /// The runtime's `close`.
    pub fn keep(&mut self, proc: usize, holders: [u32; 2]) -> proclife::Result<()> {
        for (e, mask) in holders.into_iter().enumerate() {
            if mask & 1 << proc.min(31) == 0 {
                for conn in [&mut self.duplex[e], &mut self.one_way[e]]
                    .into_iter()
                    .flatten()
                {
                    conn.close()?;
                }
            }
        }
        Ok(())
    }

    /// The fd numbers of the open ends.
    pub fn raw_fds(&self) -> Vec<RawFd> {
        self.duplex
            .iter()
            .chain(&self.one_way)
            .flatten()
            .filter_map(|c| c.fd().ok().map(|fd| fd.as_raw_fd()))
            .collect()
    }

    /// Second handles of every open end.
    ///
    /// # Errors
    ///
    /// When an fd cannot be duplicated.
    pub fn duplicate(&self) -> proclife::Result<Ends> {
        let dup_end = |end: &Option<Connection>| -> proclife::Result<Option<Connection>> {
            match end {
                Some(c) if !c.closed() => Ok(Some(Connection::from_fd(
                    dup(c.fd()?)?,
                    c.readable(),
                    c.writable(),
                )?)),
                _ => Ok(None),
            }
        };
        Ok(Ends {
            duplex: [dup_end(&self.duplex[0])?, dup_end(&self.duplex[1])?],
            one_way: [dup_end(&self.one_way[0])?, dup_end(&self.one_way[1])?],
        })
    }
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
    /// The processes that hold each end of each pipe at their start: bit `p` of `ends[e]`
    /// when process `p` (the parent is the number of workers) holds end `e`.
    #[serde(default, skip_serializing_if = "no_ends")]
    pub ends: [u32; 2],
    /// The duplex pipe's sockets get the smallest send buffer (`SO_SNDBUF`), so a few items
    /// nobody receives fill it and the next `send` blocks.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub small_send_buffer: bool,
    /// The workers and the parent pass one barrier before any call (as they always do when
    /// the program uses a pipe), so that the workers' first calls start together: shrinking
    /// sets it where a failure needs two workers' calls to overlap, which no await can order.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub start_together: bool,
}

fn no_ends(ends: &[u32; 2]) -> bool {
    *ends == [0, 0]
}

impl Default for Setup {
    fn default() -> Setup {
        Setup {
            semaphore: 1,
            bounded: 1,
            parties: 2,
            maxsize: 2,
            ends: [0, 0],
            small_send_buffer: false,
            start_together: false,
        }
    }
}

/// A second fd of `fd` (close-on-exec).
///
/// # Errors
///
/// `dup`'s, as [`Error::Os`].
pub fn dup(fd: BorrowedFd<'_>) -> proclife::Result<OwnedFd> {
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
        let (a, b) = pipe(true)?;
        if setup.small_send_buffer {
            for end in [&a, &b] {
                // The kernel raises a zero to its minimum.
                nix::sys::socket::setsockopt(&end.fd()?, nix::sys::socket::sockopt::SndBuf, &0)
                    .map_err(|errno| Error::Os {
                        call: "setsockopt",
                        errno,
                    })?;
            }
        }
        let (reader, writer) = pipe(false)?;
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
            ends: RefCell::new(Ends {
                duplex: [Some(a), Some(b)],
                one_way: [Some(reader), Some(writer)],
            }),
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
            ends: RefCell::new(self.ends.borrow().duplicate()?),
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
            Call::Send { obj, end, item } => self.through(call, obj, end, |c| c.send(&item)),
            Call::Recv { obj, end } => self.through(call, obj, end, Connection::recv::<u32>),
            Call::Poll {
                obj,
                end,
                timeout_ms,
            } => self.through(call, obj, end, |c| c.poll(t(timeout_ms))),
            Call::CloseEnd { obj, end } => self.through(call, obj, end, Connection::close),
        }
    }

    /// Makes `call` through this process's handle of `end` of `obj`.
    fn through<T: Into<map::RetValue>>(
        &self,
        call: Call,
        obj: Object,
        end: u8,
        f: impl FnOnce(&mut Connection) -> proclife::Result<T>,
    ) -> Ret {
        let Ok(mut ends) = self.ends.try_borrow_mut() else {
            return Ret::Other {
                error: format!("{call}: the ends are in use"),
            };
        };
        match ends.get(obj, end) {
            Some(conn) => map::ret(call, f(conn)),
            None => unsupported(obj, call),
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
    /// This worker's number.
    #[serde(default)]
    pub proc: usize,
    /// The holders of each pipe end at the start ([`Setup::ends`]).
    #[serde(default)]
    pub holders: [u32; 2],
    /// Under the fork method, the fd numbers of the pipe ends the parent held when it
    /// forked this worker, other than the worker's own: copies the worker inherited and
    /// must close, so that it holds exactly the ends the program gives it.
    #[serde(default)]
    pub inherited: Vec<RawFd>,
    /// When the program uses a pipe or starts its workers together
    /// ([`Setup::start_together`]): the barrier every worker and the parent pass once each
    /// holds exactly its ends, before any call is made.
    #[serde(default)]
    pub start: Option<Barrier>,
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
    if let Some(start) = &work.start {
        // Under fork, the copies of the pipe's ends the parent held at the fork: their
        // owners are in the parent's frames, which this process never returns to.
        proclife_testkit::ipc::close_inherited(&work.inherited);
        work.shared.ends.get_mut().keep(work.proc, work.holders)?;
        start.wait_timeout(Some(crate::objects::scenario::PROMPT))?;
    }
    for (index, &call) in work.program.iter().enumerate() {
        let report = &mut work.report;
        run_call(&work.shared, |r| report.send(&r), index, call)?;
    }
    Ok(())
}

proclife::entry!(worker);
