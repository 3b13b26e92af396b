//! The vocabulary of the primitives' histories: which object, which call, what it returned.
//!
//! These types are also the replay files' vocabulary, so, unlike the life-cycle's `Op`, they
//! derive serde.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::objects::refusal::Refusal;

/// One of the shared primitives of a history.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Object {
    /// `multiprocessing.Lock`.
    Lock,
    /// `multiprocessing.RLock`.
    RLock,
    /// `multiprocessing.Semaphore`.
    Semaphore,
    /// `multiprocessing.BoundedSemaphore`.
    BoundedSemaphore,
    /// `multiprocessing.Event`.
    Event,
    /// `multiprocessing.Condition` (over its own `RLock`).
    Condition,
    /// `multiprocessing.Barrier`.
    Barrier,
    /// `multiprocessing.Queue`.
    Queue,
    /// `multiprocessing.SimpleQueue`.
    SimpleQueue,
    /// `multiprocessing.JoinableQueue`.
    JoinableQueue,
    /// `multiprocessing.Value` (synchronized, over its own `RLock`).
    Value,
    /// `multiprocessing.Array` (synchronized, over its own `RLock`), of
    /// [`crate::objects::register::ARRAY_LEN`] elements.
    Array,
    /// `multiprocessing.Pipe(duplex=True)`: two `Connection`s, each sending to the other.
    Pipe,
    /// `multiprocessing.Pipe(duplex=False)`: `(reader, writer)`, end 0 receiving what end 1
    /// sends.
    OneWayPipe,
}

impl Object {
    /// Every primitive a history may use.
    pub const ALL: [Object; 14] = [
        Object::Lock,
        Object::RLock,
        Object::Semaphore,
        Object::BoundedSemaphore,
        Object::Event,
        Object::Condition,
        Object::Barrier,
        Object::Queue,
        Object::SimpleQueue,
        Object::JoinableQueue,
        Object::Value,
        Object::Array,
        Object::Pipe,
        Object::OneWayPipe,
    ];

    /// The CPython class name.
    pub fn name(self) -> &'static str {
        match self {
            Object::Lock => "Lock",
            Object::RLock => "RLock",
            Object::Semaphore => "Semaphore",
            Object::BoundedSemaphore => "BoundedSemaphore",
            Object::Event => "Event",
            Object::Condition => "Condition",
            Object::Barrier => "Barrier",
            Object::Queue => "Queue",
            Object::SimpleQueue => "SimpleQueue",
            Object::JoinableQueue => "JoinableQueue",
            Object::Value => "Value",
            Object::Array => "Array",
            Object::Pipe => "Pipe",
            Object::OneWayPipe => "OneWayPipe",
        }
    }

    /// `Queue`, the object of a `put` or `get` that names none (replay files written before
    /// the other queues were checked).
    pub fn queue() -> Object {
        Object::Queue
    }

    /// The object as the refusal table names it (a `Condition` here is over its own
    /// `RLock`, CPython's default).
    pub fn in_table(self) -> crate::refusals::Object {
        use crate::refusals::Object as T;
        match self {
            Object::Lock => T::Lock,
            Object::RLock => T::RLock,
            Object::Semaphore => T::Semaphore,
            Object::BoundedSemaphore => T::BoundedSemaphore,
            Object::Event => T::Event,
            Object::Condition => T::Condition,
            Object::Barrier => T::Barrier,
            Object::Queue => T::Queue,
            Object::SimpleQueue => T::SimpleQueue,
            Object::JoinableQueue => T::JoinableQueue,
            Object::Value => T::Value,
            Object::Array => T::Array,
            Object::Pipe | Object::OneWayPipe => T::Connection,
        }
    }
}

/// One call on one primitive. Timeouts are data, in milliseconds (`None`: wait forever).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Call {
    /// `acquire(timeout=...)` on a `Lock`, `RLock`, `Semaphore`, `BoundedSemaphore`, the
    /// lock of a `Condition`, or the lock of a `Value` or `Array` (`get_lock().acquire()`).
    Acquire {
        /// The object.
        obj: Object,
        /// Milliseconds, `None` for no timeout.
        timeout_ms: Option<u32>,
    },
    /// `release()` on the same kinds of object.
    Release {
        /// The object.
        obj: Object,
    },
    /// `Event.set()`.
    Set,
    /// `Event.clear()`.
    Clear,
    /// `Event.is_set()`.
    IsSet,
    /// `Event.wait(timeout)`.
    EventWait {
        /// Milliseconds, `None` for no timeout.
        timeout_ms: Option<u32>,
    },
    /// `Condition.wait(timeout)`.
    CondWait {
        /// Milliseconds, `None` for no timeout.
        timeout_ms: Option<u32>,
    },
    /// `Condition.notify(n)`.
    Notify {
        /// At most this many waiters wake.
        n: u32,
    },
    /// `Condition.notify_all()`.
    NotifyAll,
    /// `Barrier.wait(timeout)`.
    BarrierWait {
        /// Milliseconds, `None` for the barrier's default (none).
        timeout_ms: Option<u32>,
    },
    /// `put(item, timeout=...)` on a `Queue`, `SimpleQueue` (no timeout) or `JoinableQueue`.
    Put {
        /// The queue.
        #[serde(default = "Object::queue")]
        obj: Object,
        /// The item (distinct per history, so that a duplicate or a reorder shows).
        item: u32,
        /// Milliseconds, `None` for no timeout (a `SimpleQueue` has none).
        timeout_ms: Option<u32>,
    },
    /// `get(timeout=...)` on the same kinds of queue.
    Get {
        /// The queue.
        #[serde(default = "Object::queue")]
        obj: Object,
        /// Milliseconds, `None` for no timeout (a `SimpleQueue` has none).
        timeout_ms: Option<u32>,
    },
    /// `JoinableQueue.task_done()`.
    TaskDone,
    /// `JoinableQueue.join()`, with proclife's timeout (CPython's has none).
    Join {
        /// Milliseconds, `None` for no timeout.
        timeout_ms: Option<u32>,
    },
    /// `close()` of the caller's handle of a queue.
    Close {
        /// The queue.
        obj: Object,
    },
    /// Reading `Value.value` (under the value's lock).
    ValueGet,
    /// Writing `Value.value` (under the value's lock).
    ValueSet {
        /// The value written.
        value: u32,
    },
    /// `with v.get_lock(): v.value += 1` (proclife's `Value::update`); returns the new value.
    ValueIncrement,
    /// `array[index]` (under the array's lock).
    ArrayGet {
        /// The index (out of range when not below the length).
        index: u32,
    },
    /// `array[index] = value` (under the array's lock).
    ArraySet {
        /// The index.
        index: u32,
        /// The value written.
        value: u32,
    },
    /// `send(item)` through end `end` (0 or 1) of a pipe.
    Send {
        /// `Pipe` or `OneWayPipe`.
        obj: Object,
        /// The end: 0 or 1, in the order `Pipe()` returns them.
        end: u8,
        /// The item (distinct per history).
        item: u32,
    },
    /// `recv()` through end `end` of a pipe (CPython's has no timeout).
    Recv {
        /// `Pipe` or `OneWayPipe`.
        obj: Object,
        /// The end.
        end: u8,
    },
    /// `poll(timeout)` through end `end` of a pipe.
    Poll {
        /// `Pipe` or `OneWayPipe`.
        obj: Object,
        /// The end.
        end: u8,
        /// Milliseconds, `None` for no timeout.
        timeout_ms: Option<u32>,
    },
    /// `close()` of the caller's end `end` of a pipe.
    CloseEnd {
        /// `Pipe` or `OneWayPipe`.
        obj: Object,
        /// The end.
        end: u8,
    },
}

impl Call {
    /// The object the call is made on.
    pub fn object(self) -> Object {
        match self {
            Call::Acquire { obj, .. } | Call::Release { obj } => obj,
            Call::Set | Call::Clear | Call::IsSet | Call::EventWait { .. } => Object::Event,
            Call::CondWait { .. } | Call::Notify { .. } | Call::NotifyAll => Object::Condition,
            Call::BarrierWait { .. } => Object::Barrier,
            Call::Put { obj, .. } | Call::Get { obj, .. } | Call::Close { obj } => obj,
            Call::TaskDone | Call::Join { .. } => Object::JoinableQueue,
            Call::ValueGet | Call::ValueSet { .. } | Call::ValueIncrement => Object::Value,
            Call::ArrayGet { .. } | Call::ArraySet { .. } => Object::Array,
            Call::Send { obj, .. }
            | Call::Recv { obj, .. }
            | Call::Poll { obj, .. }
            | Call::CloseEnd { obj, .. } => obj,
        }
    }

    /// CPython's name of the method (`acquire`, `wait`, `notify_all`), as the refusal table
    /// names operations.
    pub fn operation(self) -> &'static str {
        match self {
            Call::Acquire { .. } => "acquire",
            Call::Release { .. } => "release",
            Call::Set => "set",
            Call::Clear => "clear",
            Call::IsSet => "is_set",
            Call::EventWait { .. } | Call::CondWait { .. } | Call::BarrierWait { .. } => "wait",
            Call::Notify { .. } => "notify",
            Call::NotifyAll => "notify_all",
            Call::Put { .. } => "put",
            Call::Get { .. } => "get",
            Call::TaskDone => "task_done",
            Call::Join { .. } => "join",
            Call::Close { .. } | Call::CloseEnd { .. } => "close",
            Call::Send { .. } => "send",
            Call::Recv { .. } => "recv",
            Call::Poll { .. } => "poll",
            // CPython reads, writes and increments through the attribute `value`.
            Call::ValueGet | Call::ValueSet { .. } | Call::ValueIncrement => "value",
            Call::ArrayGet { .. } => "__getitem__",
            Call::ArraySet { .. } => "__setitem__",
        }
    }
}

fn timeout(f: &mut fmt::Formatter<'_>, timeout_ms: Option<u32>) -> fmt::Result {
    match timeout_ms {
        None => Ok(()),
        Some(ms) => write!(f, "timeout={}.{:03}", ms / 1000, ms % 1000),
    }
}

impl fmt::Display for Call {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.", self.object().name())?;
        match *self {
            Call::ValueGet => return f.write_str("value"),
            Call::ValueSet { value } => return write!(f, "value = {value}"),
            Call::ValueIncrement => return f.write_str("value += 1 (under get_lock())"),
            Call::ArrayGet { index } => return write!(f, "[{index}]"),
            Call::ArraySet { index, value } => return write!(f, "[{index}] = {value}"),
            Call::Send { end, item, .. } => return write!(f, "end{end}.send({item})"),
            Call::Recv { end, .. } => return write!(f, "end{end}.recv()"),
            Call::Poll {
                end, timeout_ms, ..
            } => {
                write!(f, "end{end}.poll(")?;
                timeout(f, timeout_ms)?;
                return f.write_str(")");
            }
            Call::CloseEnd { end, .. } => return write!(f, "end{end}.close()"),
            Call::Acquire { obj, .. } | Call::Release { obj }
                if matches!(obj, Object::Value | Object::Array) =>
            {
                f.write_str("get_lock().")?;
            }
            _ => {}
        }
        match *self {
            Call::Acquire { timeout_ms, .. } => {
                f.write_str("acquire(")?;
                timeout(f, timeout_ms)?;
            }
            Call::Release { .. } => f.write_str("release(")?,
            Call::Set => f.write_str("set(")?,
            Call::Clear => f.write_str("clear(")?,
            Call::IsSet => f.write_str("is_set(")?,
            Call::EventWait { timeout_ms }
            | Call::CondWait { timeout_ms }
            | Call::BarrierWait { timeout_ms } => {
                f.write_str("wait(")?;
                timeout(f, timeout_ms)?;
            }
            Call::Notify { n } => write!(f, "notify(n={n}")?,
            Call::NotifyAll => f.write_str("notify_all(")?,
            Call::Put {
                item, timeout_ms, ..
            } => {
                write!(f, "put({item}")?;
                if timeout_ms.is_some() {
                    f.write_str(", ")?;
                }
                timeout(f, timeout_ms)?;
            }
            Call::Get { timeout_ms, .. } => {
                f.write_str("get(")?;
                timeout(f, timeout_ms)?;
            }
            Call::TaskDone => f.write_str("task_done(")?,
            Call::Join { timeout_ms } => {
                f.write_str("join(")?;
                timeout(f, timeout_ms)?;
            }
            Call::Close { .. } => f.write_str("close(")?,
            Call::ValueGet
            | Call::ValueSet { .. }
            | Call::ValueIncrement
            | Call::ArrayGet { .. }
            | Call::ArraySet { .. }
            | Call::Send { .. }
            | Call::Recv { .. }
            | Call::Poll { .. }
            | Call::CloseEnd { .. } => {}
        }
        f.write_str(")")
    }
}

/// What a call returned, in CPython's terms.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Ret {
    /// `None`.
    None,
    /// `True` or `False` (acquire, wait, is_set).
    Bool {
        /// The value.
        value: bool,
    },
    /// An int (a barrier index, a queue item).
    Int {
        /// The value.
        value: i64,
    },
    /// A refusal as the model names it: a row of the refusal table.
    Raised {
        /// The refusal.
        refusal: Refusal,
    },
    /// A refusal as a real run shows it: the runtime's `Error` variant and the exception
    /// `Error::python_for` names for it at the call's object and operation (`None` where
    /// it names none). It agrees with a model's refusal of the same variant and names
    /// ([`Ret::agrees`]); the situation is the model's to say.
    Refused {
        /// The `proclife::Error` variant's name.
        error: String,
        /// The exception class and message it names.
        named: Option<(String, String)>,
    },
    /// An exception the model does not name (the runtime's class and message, or its
    /// `Error` text when it has no CPython equivalent), or names otherwise than the refusal
    /// table.
    Other {
        /// What was raised.
        error: String,
    },
}

impl Ret {
    /// Whether a call that returned `self` did what `model` says it returns: the same
    /// value, or a refusal a real run cannot tell from the model's row (the same `Error`
    /// variant and the same exception class and message).
    pub fn agrees(&self, model: &Ret) -> bool {
        match (self, model) {
            (Ret::Refused { error, named }, Ret::Raised { refusal }) => {
                let names = refusal
                    .names()
                    .map(|raise| (raise.kind.to_owned(), raise.message.to_owned()));
                error == refusal.error() && *named == names
            }
            (observed, model) => observed == model,
        }
    }
}

impl fmt::Display for Ret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Ret::None => f.write_str("None"),
            Ret::Bool { value: true } => f.write_str("True"),
            Ret::Bool { value: false } => f.write_str("False"),
            Ret::Int { value } => write!(f, "{value}"),
            Ret::Raised { refusal } => write!(f, "{refusal}"),
            Ret::Refused {
                named: Some((kind, message)),
                ..
            } if message.is_empty() => write!(f, "raised {kind}"),
            Ret::Refused {
                named: Some((kind, message)),
                ..
            } => write!(f, "raised {kind}: {message}"),
            Ret::Refused { error, named: None } => write!(f, "refused with {error}"),
            Ret::Other { error } => write!(f, "raised {error}"),
        }
    }
}
