//! Sequential specifications of the primitives whose operations take effect at one point:
//! `Lock`, `RLock`, `Semaphore`, `BoundedSemaphore`, `Event`, `Queue`, `SimpleQueue`,
//! `JoinableQueue`, and (in [`crate::objects::register`]) `Value` and `Array`, and (in
//! [`crate::objects::pipe`]) `Pipe`.
//!
//! Each is a pure `step` from a state and one call by one process to the results the call
//! may have at that point and the states after it; no result means the call cannot complete
//! in that state (it blocks until another call changes it). A call with a timeout that cannot
//! complete returns its timeout result (`False`, `queue.Empty`, `queue.Full`): a linearizable
//! history places it at a moment when it could not complete. Semantics and messages are
//! CPython's `multiprocessing.synchronize` and `multiprocessing.queues`; every refusal is a
//! row of the refusal table ([`Refusal`]), which says where proclife deliberately differs.
//!
//! A process's death is a step too ([`Spec::die`]): a lock its holder dies with passes to
//! the next acquirer with `OwnerDied`; a semaphore's permits are not tied to processes, so
//! nothing changes; a `put` the producer died in either took effect whole or not at all.

use std::collections::VecDeque;
use std::fmt::Debug;
use std::hash::Hash;

use crate::objects::call::{Call, Object, Ret};
pub use crate::objects::pipe::PipeSpec;
use crate::objects::refusal::Refusal;
pub use crate::objects::register::RegisterSpec;

/// A sequential specification of one primitive.
pub trait Spec: Clone + Eq + Hash + Debug {
    /// What `call` by `proc` may return in this state, each with the state after it; empty
    /// when it blocks.
    fn step(&self, proc: usize, call: Call) -> Vec<(Ret, Self)>;

    /// The state after `proc` died (killed).
    fn die(&self, proc: usize) -> Self;

    /// The state after `proc` ended normally, dropping its handles (proclife releases a
    /// lock whose handle is dropped by its holder). By default nothing changes.
    fn exit(&self, _proc: usize) -> Self {
        self.clone()
    }

    /// The state's label in the derived state graph.
    fn label(&self) -> String;
}

fn ret_bool(value: bool) -> Ret {
    Ret::Bool { value }
}

fn raised(refusal: Refusal) -> Ret {
    Ret::Raised { refusal }
}

/// The result of a call that cannot complete: its timeout result, or nothing (it blocks).
fn timed_out<S>(timeout_ms: Option<u32>, ret: Ret, state: &S) -> Vec<(Ret, S)>
where
    S: Clone,
{
    match timeout_ms {
        Some(_) => vec![(ret, state.clone())],
        None => Vec::new(),
    }
}

/// Who holds a lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Holder {
    /// Nobody.
    Free,
    /// This process, this many times (always 1 for a `Lock`).
    Proc(usize, u32),
    /// A process that died holding it: the next acquirer is told.
    Dead,
}

/// `Lock` (non-recursive) or `RLock` (recursive): who holds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LockSpec {
    /// `RLock` when true.
    pub recursive: bool,
    /// The holder.
    pub holder: Holder,
}

impl LockSpec {
    /// A free lock.
    pub fn new(recursive: bool) -> LockSpec {
        LockSpec {
            recursive,
            holder: Holder::Free,
        }
    }

    fn with(self, holder: Holder) -> LockSpec {
        LockSpec { holder, ..self }
    }
}

impl Spec for LockSpec {
    fn step(&self, proc: usize, call: Call) -> Vec<(Ret, LockSpec)> {
        match call {
            Call::Acquire { timeout_ms, .. } => match self.holder {
                Holder::Free => vec![(ret_bool(true), self.with(Holder::Proc(proc, 1)))],
                // The robust lock passes to the caller, who is told (and marks it consistent).
                Holder::Dead => {
                    let died = if self.recursive {
                        Refusal::RLOCK_ACQUIRE_HOLDER_DIED
                    } else {
                        Refusal::LOCK_ACQUIRE_HOLDER_DIED
                    };
                    vec![(raised(died), self.with(Holder::Proc(proc, 1)))]
                }
                Holder::Proc(p, depth) if p == proc && self.recursive => {
                    vec![(ret_bool(true), self.with(Holder::Proc(proc, depth + 1)))]
                }
                Holder::Proc(p, _) if p == proc => match timeout_ms {
                    Some(0) => vec![(ret_bool(false), *self)],
                    _ => vec![(raised(Refusal::LOCK_ACQUIRE_ALREADY_HELD), *self)],
                },
                Holder::Proc(..) => timed_out(timeout_ms, ret_bool(false), self),
            },
            Call::Release { .. } => match self.holder {
                Holder::Proc(p, 1) if p == proc => vec![(Ret::None, self.with(Holder::Free))],
                Holder::Proc(p, depth) if p == proc => {
                    vec![(Ret::None, self.with(Holder::Proc(p, depth - 1)))]
                }
                // A lock whose holder died is held by another process, not by nobody.
                Holder::Proc(..) | Holder::Dead => {
                    let other = if self.recursive {
                        Refusal::RLOCK_RELEASE_HELD_BY_OTHER
                    } else {
                        Refusal::LOCK_RELEASE_HELD_BY_OTHER
                    };
                    vec![(raised(other), *self)]
                }
                Holder::Free => {
                    let unheld = if self.recursive {
                        Refusal::RLOCK_RELEASE_UNHELD
                    } else {
                        Refusal::LOCK_RELEASE_UNHELD
                    };
                    vec![(raised(unheld), *self)]
                }
            },
            _ => Vec::new(),
        }
    }

    fn die(&self, proc: usize) -> LockSpec {
        match self.holder {
            Holder::Proc(p, _) if p == proc => self.with(Holder::Dead),
            _ => *self,
        }
    }

    fn exit(&self, proc: usize) -> LockSpec {
        match self.holder {
            Holder::Proc(p, _) if p == proc => self.with(Holder::Free),
            _ => *self,
        }
    }

    fn label(&self) -> String {
        match self.holder {
            Holder::Free => "free".to_owned(),
            Holder::Proc(p, 1) => format!("held by p{p}"),
            Holder::Proc(p, depth) => format!("held by p{p} x{depth}"),
            Holder::Dead => "holder died".to_owned(),
        }
    }
}

/// `Semaphore` or `BoundedSemaphore`: its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SemaphoreSpec {
    /// The value.
    pub value: u32,
    /// `BoundedSemaphore`'s initial value, the most it may reach.
    pub bound: Option<u32>,
}

impl Spec for SemaphoreSpec {
    fn step(&self, _proc: usize, call: Call) -> Vec<(Ret, SemaphoreSpec)> {
        match call {
            Call::Acquire { timeout_ms, .. } => {
                if self.value > 0 {
                    let next = SemaphoreSpec {
                        value: self.value - 1,
                        ..*self
                    };
                    vec![(ret_bool(true), next)]
                } else {
                    timed_out(timeout_ms, ret_bool(false), self)
                }
            }
            Call::Release { .. } => {
                if self.bound.is_some_and(|b| self.value >= b) {
                    vec![(raised(Refusal::BOUNDED_SEMAPHORE_RELEASE_OVER), *self)]
                } else {
                    let next = SemaphoreSpec {
                        value: self.value + 1,
                        ..*self
                    };
                    vec![(Ret::None, next)]
                }
            }
            _ => Vec::new(),
        }
    }

    fn die(&self, _proc: usize) -> SemaphoreSpec {
        *self
    }

    fn label(&self) -> String {
        format!("value {}", self.value)
    }
}

/// `Event`: its flag.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EventSpec {
    /// Whether it is set.
    pub set: bool,
}

impl Spec for EventSpec {
    fn step(&self, _proc: usize, call: Call) -> Vec<(Ret, EventSpec)> {
        match call {
            Call::Set => vec![(Ret::None, EventSpec { set: true })],
            Call::Clear => vec![(Ret::None, EventSpec { set: false })],
            Call::IsSet => vec![(ret_bool(self.set), *self)],
            Call::EventWait { timeout_ms } => {
                if self.set {
                    vec![(ret_bool(true), *self)]
                } else {
                    timed_out(timeout_ms, ret_bool(false), self)
                }
            }
            _ => Vec::new(),
        }
    }

    fn die(&self, _proc: usize) -> EventSpec {
        *self
    }

    fn label(&self) -> String {
        if self.set { "set" } else { "clear" }.to_owned()
    }
}

/// `Queue`, `SimpleQueue` or `JoinableQueue`: its items, oldest first, its `maxsize` (0:
/// unbounded), the tasks not yet marked done (`JoinableQueue`), and the processes that
/// closed their handle.
///
/// `close()` closes only the caller's handle (CPython's `Queue.close`, `SimpleQueue.close`):
/// its later `put` and `get` are refused, other processes' are not, and the items stay.
/// `task_done` and `join` are allowed after `close`, as in CPython.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct QueueSpec {
    /// `Queue`, `SimpleQueue` or `JoinableQueue`.
    pub kind: Object,
    /// The items.
    pub items: VecDeque<u32>,
    /// `maxsize`; 0 is unbounded.
    pub maxsize: usize,
    /// Items put and not yet marked done (`JoinableQueue`).
    pub unfinished: u32,
    /// Bit `p` is set when process `p` closed its handle.
    pub closed: u32,
}

impl QueueSpec {
    /// An empty queue of `kind` (`Queue`, `SimpleQueue` or `JoinableQueue`).
    pub fn new(kind: Object, maxsize: usize) -> QueueSpec {
        QueueSpec {
            kind,
            items: VecDeque::new(),
            maxsize: if kind == Object::SimpleQueue {
                0
            } else {
                maxsize
            },
            unfinished: 0,
            closed: 0,
        }
    }

    fn bit(proc: usize) -> u32 {
        1 << proc.min(31)
    }

    /// The refusals of this kind of queue: put closed, get closed, put full, get empty.
    fn refusals(&self) -> [Refusal; 4] {
        match self.kind {
            Object::SimpleQueue => [
                Refusal::SIMPLE_QUEUE_PUT_CLOSED,
                Refusal::SIMPLE_QUEUE_GET_CLOSED,
                // A simple queue is unbounded and its get has no timeout: never refused so.
                Refusal::QUEUE_PUT_FULL,
                Refusal::QUEUE_GET_EMPTY,
            ],
            Object::JoinableQueue => [
                Refusal::JOINABLE_QUEUE_PUT_CLOSED,
                Refusal::JOINABLE_QUEUE_GET_CLOSED,
                Refusal::JOINABLE_QUEUE_PUT_FULL,
                Refusal::JOINABLE_QUEUE_GET_EMPTY,
            ],
            _ => [
                Refusal::QUEUE_PUT_CLOSED,
                Refusal::QUEUE_GET_CLOSED,
                Refusal::QUEUE_PUT_FULL,
                Refusal::QUEUE_GET_EMPTY,
            ],
        }
    }
}

impl Spec for QueueSpec {
    fn step(&self, proc: usize, call: Call) -> Vec<(Ret, QueueSpec)> {
        let [put_closed, get_closed, full, empty] = self.refusals();
        let closed = self.closed & QueueSpec::bit(proc) != 0;
        // A simple queue's get waits without a timeout.
        let timeout = |t: Option<u32>| t.filter(|_| self.kind != Object::SimpleQueue);
        match call {
            Call::Put { .. } | Call::Get { .. } if call.object() != self.kind => Vec::new(),
            Call::Put { .. } if closed => vec![(raised(put_closed), self.clone())],
            Call::Get { .. } if closed => vec![(raised(get_closed), self.clone())],
            Call::Put {
                item, timeout_ms, ..
            } => {
                if self.maxsize != 0 && self.items.len() >= self.maxsize {
                    timed_out(timeout(timeout_ms), raised(full), self)
                } else {
                    let mut next = self.clone();
                    next.items.push_back(item);
                    if self.kind == Object::JoinableQueue {
                        next.unfinished += 1;
                    }
                    vec![(Ret::None, next)]
                }
            }
            Call::Get { timeout_ms, .. } => match self.items.front() {
                Some(&item) => {
                    let mut next = self.clone();
                    next.items.pop_front();
                    vec![(
                        Ret::Int {
                            value: i64::from(item),
                        },
                        next,
                    )]
                }
                None => timed_out(timeout(timeout_ms), raised(empty), self),
            },
            Call::TaskDone if self.kind == Object::JoinableQueue => {
                if self.unfinished == 0 {
                    vec![(
                        raised(Refusal::JOINABLE_QUEUE_TASK_DONE_TOO_MANY),
                        self.clone(),
                    )]
                } else {
                    let mut next = self.clone();
                    next.unfinished -= 1;
                    vec![(Ret::None, next)]
                }
            }
            Call::Join { timeout_ms } if self.kind == Object::JoinableQueue => {
                if self.unfinished == 0 {
                    vec![(ret_bool(true), self.clone())]
                } else {
                    timed_out(timeout_ms, ret_bool(false), self)
                }
            }
            Call::Close { obj } if obj == self.kind => {
                let mut next = self.clone();
                next.closed |= QueueSpec::bit(proc);
                vec![(Ret::None, next)]
            }
            _ => Vec::new(),
        }
    }

    fn die(&self, _proc: usize) -> QueueSpec {
        self.clone()
    }

    fn label(&self) -> String {
        let items: Vec<String> = self.items.iter().map(u32::to_string).collect();
        let mut label = format!("[{}]", items.join(", "));
        if self.kind == Object::JoinableQueue {
            label.push_str(&format!(", {} unfinished", self.unfinished));
        }
        if self.closed != 0 {
            let procs: Vec<String> = (0..32)
                .filter(|p| self.closed & 1 << p != 0)
                .map(|p| format!("p{p}"))
                .collect();
            label.push_str(&format!(", closed by {}", procs.join(", ")));
        }
        label
    }
}

/// The sequential specification of `obj` in its initial state, for the objects that have
/// one (`Condition` and `Barrier` have interval specifications instead).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum AnySpec {
    /// `Lock` or `RLock`.
    Lock(LockSpec),
    /// `Semaphore` or `BoundedSemaphore`.
    Semaphore(SemaphoreSpec),
    /// `Event`.
    Event(EventSpec),
    /// `Queue`, `SimpleQueue` or `JoinableQueue`.
    Queue(QueueSpec),
    /// `Value` or `Array`.
    Register(RegisterSpec),
    /// `Pipe` or `OneWayPipe`.
    Pipe(PipeSpec),
}

/// Initial values of the objects of a history.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Initial {
    /// `Semaphore`'s value.
    pub semaphore: u32,
    /// `BoundedSemaphore`'s value and bound.
    pub bounded: u32,
    /// `Queue`'s maxsize.
    pub maxsize: usize,
    /// The holders of each end of each pipe at the start: bit `p` of `ends[e]` when
    /// process `p` holds end `e`.
    pub ends: [u32; 2],
}

impl AnySpec {
    /// The specification of `obj`, initially; `None` for `Condition` and `Barrier`.
    pub fn initial(obj: Object, init: Initial) -> Option<AnySpec> {
        Some(match obj {
            Object::Lock => AnySpec::Lock(LockSpec::new(false)),
            Object::RLock => AnySpec::Lock(LockSpec::new(true)),
            Object::Semaphore => AnySpec::Semaphore(SemaphoreSpec {
                value: init.semaphore,
                bound: None,
            }),
            Object::BoundedSemaphore => AnySpec::Semaphore(SemaphoreSpec {
                value: init.bounded,
                bound: Some(init.bounded),
            }),
            Object::Event => AnySpec::Event(EventSpec { set: false }),
            Object::Queue | Object::SimpleQueue | Object::JoinableQueue => {
                AnySpec::Queue(QueueSpec::new(obj, init.maxsize))
            }
            Object::Value | Object::Array => AnySpec::Register(RegisterSpec::new(obj)),
            Object::Pipe | Object::OneWayPipe => AnySpec::Pipe(PipeSpec::new(obj, init.ends)),
            Object::Condition | Object::Barrier => return None,
        })
    }
}

impl Spec for AnySpec {
    fn step(&self, proc: usize, call: Call) -> Vec<(Ret, AnySpec)> {
        fn wrap<S>(v: Vec<(Ret, S)>, f: impl Fn(S) -> AnySpec) -> Vec<(Ret, AnySpec)> {
            v.into_iter().map(|(r, s)| (r, f(s))).collect()
        }
        match self {
            AnySpec::Lock(s) => wrap(s.step(proc, call), AnySpec::Lock),
            AnySpec::Semaphore(s) => wrap(s.step(proc, call), AnySpec::Semaphore),
            AnySpec::Event(s) => wrap(s.step(proc, call), AnySpec::Event),
            AnySpec::Queue(s) => wrap(s.step(proc, call), AnySpec::Queue),
            AnySpec::Register(s) => wrap(s.step(proc, call), AnySpec::Register),
            AnySpec::Pipe(s) => wrap(s.step(proc, call), AnySpec::Pipe),
        }
    }

    fn die(&self, proc: usize) -> AnySpec {
        match self {
            AnySpec::Lock(s) => AnySpec::Lock(s.die(proc)),
            AnySpec::Semaphore(s) => AnySpec::Semaphore(s.die(proc)),
            AnySpec::Event(s) => AnySpec::Event(s.die(proc)),
            AnySpec::Queue(s) => AnySpec::Queue(s.die(proc)),
            AnySpec::Register(s) => AnySpec::Register(s.die(proc)),
            AnySpec::Pipe(s) => AnySpec::Pipe(s.die(proc)),
        }
    }

    fn exit(&self, proc: usize) -> AnySpec {
        match self {
            AnySpec::Lock(s) => AnySpec::Lock(s.exit(proc)),
            AnySpec::Register(s) => AnySpec::Register(s.exit(proc)),
            AnySpec::Pipe(s) => AnySpec::Pipe(s.exit(proc)),
            other => other.clone(),
        }
    }

    fn label(&self) -> String {
        match self {
            AnySpec::Lock(s) => s.label(),
            AnySpec::Semaphore(s) => s.label(),
            AnySpec::Event(s) => s.label(),
            AnySpec::Queue(s) => s.label(),
            AnySpec::Register(s) => s.label(),
            AnySpec::Pipe(s) => s.label(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ACQ: Call = Call::Acquire {
        obj: Object::Lock,
        timeout_ms: Some(5),
    };
    const REL: Call = Call::Release { obj: Object::Lock };

    #[test]
    fn a_lock_is_owned_and_its_holders_death_is_told() {
        let free = LockSpec::new(false);
        let (ret, held) = free.step(0, ACQ)[0].clone();
        assert_eq!(ret, ret_bool(true));
        assert_eq!(held.step(1, ACQ)[0].0, ret_bool(false));
        assert_eq!(
            held.step(1, REL)[0].0,
            raised(Refusal::LOCK_RELEASE_HELD_BY_OTHER)
        );
        assert_eq!(free.step(1, REL)[0].0, raised(Refusal::LOCK_RELEASE_UNHELD));
        assert_eq!(
            held.step(0, ACQ)[0].0,
            raised(Refusal::LOCK_ACQUIRE_ALREADY_HELD)
        );
        let untimed = Call::Acquire {
            obj: Object::Lock,
            timeout_ms: None,
        };
        assert!(held.step(1, untimed).is_empty());
        let dead = held.die(0);
        assert_eq!(
            dead.step(1, ACQ)[0].0,
            raised(Refusal::LOCK_ACQUIRE_HOLDER_DIED)
        );
        assert_eq!(held.die(1), held);
    }

    #[test]
    fn a_bounded_semaphore_refuses_over_release() {
        let s = SemaphoreSpec {
            value: 1,
            bound: Some(1),
        };
        let rel = Call::Release {
            obj: Object::BoundedSemaphore,
        };
        assert_eq!(
            s.step(0, rel)[0].0,
            raised(Refusal::BOUNDED_SEMAPHORE_RELEASE_OVER)
        );
    }

    #[test]
    fn a_queue_is_fifo_and_bounded() {
        let q = QueueSpec::new(Object::Queue, 1);
        let put = |item| Call::Put {
            obj: Object::Queue,
            item,
            timeout_ms: Some(1),
        };
        let get = Call::Get {
            obj: Object::Queue,
            timeout_ms: Some(1),
        };
        let (_, q1) = q.step(0, put(7))[0].clone();
        assert_eq!(q1.step(0, put(8))[0].0, raised(Refusal::QUEUE_PUT_FULL));
        assert_eq!(q1.step(1, get)[0].0, Ret::Int { value: 7 });
        assert_eq!(q.step(1, get)[0].0, raised(Refusal::QUEUE_GET_EMPTY));
        // Closing is per handle.
        let (_, closed) = q1.step(0, Call::Close { obj: Object::Queue })[0].clone();
        assert_eq!(closed.step(0, get)[0].0, raised(Refusal::QUEUE_GET_CLOSED));
        assert_eq!(closed.step(1, get)[0].0, Ret::Int { value: 7 });
    }

    #[test]
    fn a_joinable_queue_counts_tasks() {
        let q = QueueSpec::new(Object::JoinableQueue, 0);
        let join = Call::Join {
            timeout_ms: Some(5),
        };
        assert_eq!(q.step(0, join)[0].0, ret_bool(true));
        assert_eq!(
            q.step(0, Call::TaskDone)[0].0,
            raised(Refusal::JOINABLE_QUEUE_TASK_DONE_TOO_MANY)
        );
        let put = Call::Put {
            obj: Object::JoinableQueue,
            item: 1,
            timeout_ms: None,
        };
        let (_, one) = q.step(0, put)[0].clone();
        assert_eq!(one.step(1, join)[0].0, ret_bool(false));
        assert!(one.step(1, Call::Join { timeout_ms: None }).is_empty());
        let (ret, done) = one.step(1, Call::TaskDone)[0].clone();
        assert_eq!((ret, done.unfinished), (Ret::None, 0));
        // A simple queue's get has no timeout: it waits.
        let simple = QueueSpec::new(Object::SimpleQueue, 3);
        let get = Call::Get {
            obj: Object::SimpleQueue,
            timeout_ms: Some(5),
        };
        assert!(simple.step(0, get).is_empty());
    }

    /// Every refusal the sequential specifications reach, from every state two processes
    /// can bring them to, is the row of the call's object and operation.
    #[test]
    fn every_reachable_refusal_is_the_row_of_its_call() {
        let init = Initial {
            semaphore: 1,
            bounded: 1,
            maxsize: 2,
            ends: [0b01, 0b11],
        };
        for obj in Object::ALL {
            let calls = [
                Call::Acquire {
                    obj,
                    timeout_ms: Some(0),
                },
                Call::Acquire {
                    obj,
                    timeout_ms: Some(5),
                },
                Call::Release { obj },
                Call::Set,
                Call::Clear,
                Call::IsSet,
                Call::EventWait {
                    timeout_ms: Some(5),
                },
                Call::Put {
                    obj,
                    item: 1,
                    timeout_ms: Some(5),
                },
                Call::Get {
                    obj,
                    timeout_ms: Some(5),
                },
                Call::TaskDone,
                Call::Join {
                    timeout_ms: Some(5),
                },
                Call::Close { obj },
                Call::ValueGet,
                Call::ValueSet { value: 3 },
                Call::ValueIncrement,
                Call::ArrayGet { index: 1 },
                Call::ArrayGet { index: 2 },
                Call::ArraySet { index: 0, value: 4 },
                Call::ArraySet { index: 2, value: 4 },
                Call::Send {
                    obj,
                    end: 0,
                    item: 1,
                },
                Call::Send {
                    obj,
                    end: 1,
                    item: 2,
                },
                Call::Recv { obj, end: 0 },
                Call::Recv { obj, end: 1 },
                Call::Poll {
                    obj,
                    end: 0,
                    timeout_ms: Some(5),
                },
                Call::Poll {
                    obj,
                    end: 1,
                    timeout_ms: Some(5),
                },
                Call::CloseEnd { obj, end: 0 },
                Call::CloseEnd { obj, end: 1 },
            ];
            let Some(first) = AnySpec::initial(obj, init) else {
                continue;
            };
            let mut seen = std::collections::HashSet::from([first.clone()]);
            let mut todo = vec![first];
            while let Some(state) = todo.pop() {
                let mut next = vec![state.die(0), state.exit(0), state.die(1)];
                for proc in 0..2 {
                    for call in calls.into_iter().filter(|c| c.object() == obj) {
                        for (ret, after) in state.step(proc, call) {
                            if let Ret::Raised { refusal } = ret {
                                let row = refusal.row();
                                assert_eq!(
                                    (row.object, row.operation),
                                    (obj.in_table(), call.operation()),
                                    "{call} in {state:?}"
                                );
                                assert!(Refusal::MODELLED.contains(&refusal));
                            }
                            next.push(after);
                        }
                    }
                }
                for s in next {
                    if seen.len() < 64 && seen.insert(s.clone()) {
                        todo.push(s);
                    }
                }
            }
        }
    }
}
