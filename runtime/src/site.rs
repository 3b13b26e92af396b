//! Where a refusal happened: the object and the operation, in CPython's terms.
//!
//! CPython names the same kind of refusal differently on different objects (a `Lock` released
//! too often raises `ValueError`, an `RLock` released by a non-owner `AssertionError`, a dead
//! peer is `EOFError` on receive and `BrokenPipeError` on send), so
//! [`Error::python_for`](crate::Error::python_for) takes a [`Site`].
#![forbid(unsafe_code)]

use std::fmt;

/// The object a refused operation was called on, named after its CPython class.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Object {
    /// [`Process`](crate::Process) (`multiprocessing.Process`).
    Process,
    /// [`Connection`](crate::ipc::Connection), an end of [`pipe`](crate::ipc::pipe).
    Connection,
    /// [`Queue`](crate::ipc::Queue).
    Queue,
    /// [`SimpleQueue`](crate::ipc::SimpleQueue).
    SimpleQueue,
    /// [`JoinableQueue`](crate::ipc::JoinableQueue).
    JoinableQueue,
    /// [`Value`](crate::ipc::Value).
    Value,
    /// [`Array`](crate::ipc::Array).
    Array,
    /// [`Lock`](crate::sync::Lock).
    Lock,
    /// [`RLock`](crate::sync::RLock).
    RLock,
    /// [`Semaphore`](crate::sync::Semaphore).
    Semaphore,
    /// [`BoundedSemaphore`](crate::sync::BoundedSemaphore).
    BoundedSemaphore,
    /// [`Event`](crate::sync::Event).
    Event,
    /// [`Condition`](crate::sync::Condition) over an [`RLock`](crate::sync::RLock), CPython's
    /// default (`Condition::new`, `Condition::with_rlock`).
    Condition,
    /// [`Condition`](crate::sync::Condition) over a [`Lock`](crate::sync::Lock)
    /// (`Condition::with_lock`).
    ConditionWithLock,
    /// [`Barrier`](crate::sync::Barrier).
    Barrier,
    /// The default context: [`set_start_method`](crate::set_start_method) and the parsing of a
    /// start method's name (`multiprocessing.get_context(name)`).
    Context,
}

impl Object {
    /// Every object.
    pub const ALL: [Object; 16] = [
        Object::Process,
        Object::Connection,
        Object::Queue,
        Object::SimpleQueue,
        Object::JoinableQueue,
        Object::Value,
        Object::Array,
        Object::Lock,
        Object::RLock,
        Object::Semaphore,
        Object::BoundedSemaphore,
        Object::Event,
        Object::Condition,
        Object::ConditionWithLock,
        Object::Barrier,
        Object::Context,
    ];

    /// The name used in the refusal table (the CPython class, `ConditionWithLock` for a
    /// condition over a `Lock`).
    pub const fn name(self) -> &'static str {
        match self {
            Object::Process => "Process",
            Object::Connection => "Connection",
            Object::Queue => "Queue",
            Object::SimpleQueue => "SimpleQueue",
            Object::JoinableQueue => "JoinableQueue",
            Object::Value => "Value",
            Object::Array => "Array",
            Object::Lock => "Lock",
            Object::RLock => "RLock",
            Object::Semaphore => "Semaphore",
            Object::BoundedSemaphore => "BoundedSemaphore",
            Object::Event => "Event",
            Object::Condition => "Condition",
            Object::ConditionWithLock => "ConditionWithLock",
            Object::Barrier => "Barrier",
            Object::Context => "Context",
        }
    }
}

impl fmt::Display for Object {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A refusable operation, named after the CPython method or attribute it stands for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Operation {
    /// The constructor (`__init__`): `new`, `with_capacity`, ...
    New,
    /// `start()`.
    Start,
    /// `run()`.
    Run,
    /// `join()` of a process or a joinable queue.
    Join,
    /// `is_alive()` (and proclife's `state()`).
    IsAlive,
    /// `terminate()`.
    Terminate,
    /// `kill()` (and proclife's `send_signal()`).
    Kill,
    /// `close()`.
    Close,
    /// The `exitcode` attribute.
    Exitcode,
    /// The `pid` attribute.
    Pid,
    /// The `sentinel` attribute.
    Sentinel,
    /// Setting the `daemon` attribute.
    Daemon,
    /// `send()`.
    Send,
    /// `send_bytes()`.
    SendBytes,
    /// `recv()`.
    Recv,
    /// `recv_bytes()`.
    RecvBytes,
    /// `poll()`.
    Poll,
    /// `fileno()` (proclife's `Connection::fd`).
    Fileno,
    /// `put()` (and `put(timeout=...)`).
    Put,
    /// `put_nowait()`.
    PutNowait,
    /// `get()` (and `get(timeout=...)`).
    Get,
    /// `get_nowait()`.
    GetNowait,
    /// `task_done()`.
    TaskDone,
    /// Reading or writing `Value.value`.
    ValueAttr,
    /// `array[i]` (proclife's `get`).
    GetItem,
    /// `array[i] = x` (proclife's `set`).
    SetItem,
    /// `acquire()`.
    Acquire,
    /// `release()`.
    Release,
    /// `wait()`.
    Wait,
    /// `wait_for()`.
    WaitFor,
    /// `notify()`.
    Notify,
    /// `notify_all()`.
    NotifyAll,
    /// `abort()`.
    Abort,
    /// `reset()`.
    Reset,
    /// `set_start_method()`.
    SetStartMethod,
    /// `get_context()` (proclife's `str::parse::<StartMethod>`).
    GetContext,
}

impl Operation {
    /// Every operation.
    pub const ALL: [Operation; 36] = [
        Operation::New,
        Operation::Start,
        Operation::Run,
        Operation::Join,
        Operation::IsAlive,
        Operation::Terminate,
        Operation::Kill,
        Operation::Close,
        Operation::Exitcode,
        Operation::Pid,
        Operation::Sentinel,
        Operation::Daemon,
        Operation::Send,
        Operation::SendBytes,
        Operation::Recv,
        Operation::RecvBytes,
        Operation::Poll,
        Operation::Fileno,
        Operation::Put,
        Operation::PutNowait,
        Operation::Get,
        Operation::GetNowait,
        Operation::TaskDone,
        Operation::ValueAttr,
        Operation::GetItem,
        Operation::SetItem,
        Operation::Acquire,
        Operation::Release,
        Operation::Wait,
        Operation::WaitFor,
        Operation::Notify,
        Operation::NotifyAll,
        Operation::Abort,
        Operation::Reset,
        Operation::SetStartMethod,
        Operation::GetContext,
    ];

    /// CPython's name of the method or attribute (`send_bytes`, `__getitem__`, `value`).
    pub const fn name(self) -> &'static str {
        match self {
            Operation::New => "__init__",
            Operation::Start => "start",
            Operation::Run => "run",
            Operation::Join => "join",
            Operation::IsAlive => "is_alive",
            Operation::Terminate => "terminate",
            Operation::Kill => "kill",
            Operation::Close => "close",
            Operation::Exitcode => "exitcode",
            Operation::Pid => "pid",
            Operation::Sentinel => "sentinel",
            Operation::Daemon => "daemon",
            Operation::Send => "send",
            Operation::SendBytes => "send_bytes",
            Operation::Recv => "recv",
            Operation::RecvBytes => "recv_bytes",
            Operation::Poll => "poll",
            Operation::Fileno => "fileno",
            Operation::Put => "put",
            Operation::PutNowait => "put_nowait",
            Operation::Get => "get",
            Operation::GetNowait => "get_nowait",
            Operation::TaskDone => "task_done",
            Operation::ValueAttr => "value",
            Operation::GetItem => "__getitem__",
            Operation::SetItem => "__setitem__",
            Operation::Acquire => "acquire",
            Operation::Release => "release",
            Operation::Wait => "wait",
            Operation::WaitFor => "wait_for",
            Operation::Notify => "notify",
            Operation::NotifyAll => "notify_all",
            Operation::Abort => "abort",
            Operation::Reset => "reset",
            Operation::SetStartMethod => "set_start_method",
            Operation::GetContext => "get_context",
        }
    }
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// An object and an operation on it: where an [`Error`](crate::Error) was returned.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Site {
    /// The object.
    pub object: Object,
    /// The operation.
    pub operation: Operation,
}

impl Site {
    /// `operation` on `object`.
    pub const fn new(object: Object, operation: Operation) -> Site {
        Site { object, operation }
    }
}

impl fmt::Display for Site {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.object, self.operation)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique() {
        let objects: std::collections::HashSet<_> = Object::ALL.iter().map(|o| o.name()).collect();
        assert_eq!(objects.len(), Object::ALL.len());
        let operations: std::collections::HashSet<_> =
            Operation::ALL.iter().map(|o| o.name()).collect();
        assert_eq!(operations.len(), Operation::ALL.len());
        assert_eq!(
            Site::new(Object::Connection, Operation::SendBytes).to_string(),
            "Connection.send_bytes"
        );
    }
}
