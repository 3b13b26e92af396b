//! The refusal table: every refusal of every `multiprocessing` object proclife implements,
//! with the exception CPython raises there and the `proclife::Error` variant that stands for it.
//!
//! Pure data, shared by everything that names a refusal:
//!
//! - the primitives' models take their refusal outcomes from it ([`refusal`], [`Refusal::names`]);
//! - `verify/tests/refusals.rs` drives every row on real runtime objects (dead peers included)
//!   and checks that the runtime returns the row's variant and that `Error::python_for` names
//!   exactly [`Refusal::names`];
//! - the same test runs `verify/python/refusals.py`, which drives every row on CPython's real
//!   `multiprocessing` objects, and checks that CPython still does what [`Refusal::cpython`] says.
//!
//! The CPython column was measured on CPython 3.11.7, 3.12.1 and 3.13.0 with that program; the
//! rows where 3.13 words its exception differently are listed in [`CPYTHON_SINCE`] (3.14 was not
//! available to measure).
//! A message with an object address is written with ` at 0x…`, as the program prints it.
//!
//! A row with a [`Deviation`] is one where proclife deliberately refuses what CPython accepts
//! (or hangs on), or names the refusal differently; the deviation names its decision record in
//! `docs/decisions/`.
//!
//! `Event`'s only row is a NaN timeout: otherwise its operations never refuse (a timed-out
//! `wait` returns `false`, as in CPython). A failed system call (`Error::Os`) is named by its errno wherever it happens and
//! has no row.

/// The CPython class (or, for `Condition`, the class with the kind of its lock) a row is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Object {
    /// `multiprocessing.Process`.
    Process,
    /// `multiprocessing.connection.Connection`, the ends of `Pipe()`.
    Connection,
    /// `multiprocessing.Queue`.
    Queue,
    /// `multiprocessing.SimpleQueue`.
    SimpleQueue,
    /// `multiprocessing.JoinableQueue`.
    JoinableQueue,
    /// `multiprocessing.Value` (synchronized).
    Value,
    /// `multiprocessing.Array` (synchronized).
    Array,
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
    /// `multiprocessing.Condition()` with its default lock, an `RLock`.
    Condition,
    /// `multiprocessing.Condition(Lock())`.
    ConditionWithLock,
    /// `multiprocessing.Barrier`.
    Barrier,
    /// The default context, `multiprocessing` itself: `set_start_method`, `get_context`.
    Context,
}

/// An exception: its qualified class name (`module.Name` outside builtins, as `queue.Full`)
/// and `str()` of it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PyRaise {
    /// The qualified class name.
    pub kind: &'static str,
    /// The message, exactly as CPython words it (empty for `EOFError()` and the like).
    pub message: &'static str,
}

impl PyRaise {
    /// An exception of class `kind` with `message`.
    pub const fn new(kind: &'static str, message: &'static str) -> PyRaise {
        PyRaise { kind, message }
    }
}

/// What CPython does in a row's situation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CPython {
    /// It raises this exception.
    Raises(PyRaise),
    /// It accepts the call, which returns this `repr`.
    Returns(&'static str),
    /// It never returns (measured as no answer within one second).
    Hangs,
}

/// Where proclife deliberately differs from CPython, and what it names instead.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Deviation {
    /// The decision record, `docs/decisions/NNNN-*.md`.
    pub decision: &'static str,
    /// The exception proclife's `Error::python_for` names for the refusal, `None` when it has
    /// no CPython counterpart.
    pub names: Option<PyRaise>,
}

/// One refusal: an object, an operation, a situation, and what each side does there.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Refusal {
    /// `object.operation.situation`, the key `verify/python/refusals.py` prints.
    pub id: &'static str,
    /// The object.
    pub object: Object,
    /// CPython's name of the operation (`send_bytes`, `__getitem__`, the attribute `value`).
    pub operation: &'static str,
    /// The situation in which the operation is refused.
    pub situation: &'static str,
    /// What CPython does (measured).
    pub cpython: CPython,
    /// The name of the `proclife::Error` variant the runtime returns.
    pub error: &'static str,
    /// `None` when proclife names exactly what CPython raises.
    pub deviation: Option<Deviation>,
}

impl Refusal {
    /// The exception proclife names for this refusal: CPython's own, or the deviation's.
    pub const fn names(&self) -> Option<PyRaise> {
        match (&self.deviation, &self.cpython) {
            (Some(deviation), _) => deviation.names,
            (None, CPython::Raises(raise)) => Some(*raise),
            (None, _) => None,
        }
    }
}

/// Rows where CPython's answer changed from a version on: the row's id, the first
/// `(major, minor)` version that answers so, and its answer there. The row itself gives the
/// answer of the versions before.
pub const CPYTHON_SINCE: &[(&str, (u32, u32), CPython)] = &[
    (
        "process.start.closure_under_forkserver",
        (3, 13),
        CPython::Raises(PyRaise::new(
            "AttributeError",
            "Can't get local object 'lambda_under.<locals>.<lambda>'",
        )),
    ),
    (
        "process.start.closure_under_spawn",
        (3, 13),
        CPython::Raises(PyRaise::new(
            "AttributeError",
            "Can't get local object 'lambda_under.<locals>.<lambda>'",
        )),
    ),
];

impl Refusal {
    /// What CPython `(major, minor)` does in this row's situation.
    pub fn cpython_in(&self, version: (u32, u32)) -> CPython {
        CPYTHON_SINCE
            .iter()
            .filter(|(id, since, _)| *id == self.id && version >= *since)
            .max_by_key(|(_, since, _)| *since)
            .map_or(self.cpython, |(_, _, answer)| *answer)
    }
}

/// The row with this id.
pub fn refusal(id: &str) -> Option<&'static Refusal> {
    REFUSALS.iter().find(|row| row.id == id)
}

/// The row with this id, found at compile time where a constant names it: a constant naming
/// an id the table does not have fails to compile (`evaluation of constant value failed`).
///
/// # Panics
///
/// When the table has no row `id`; meant for constants, where that is a compile error.
/// [`refusal`] is the lookup for ids read at run time.
pub const fn row(id: &str) -> &'static Refusal {
    let mut i = 0;
    while i < REFUSALS.len() {
        if same_bytes(REFUSALS[i].id.as_bytes(), id.as_bytes()) {
            return &REFUSALS[i];
        }
        i += 1;
    }
    panic!("no row with this id in the refusal table")
}

/// `a == b`, usable in a `const fn`.
const fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i < a.len() {
        if a[i] != b[i] {
            return false;
        }
        i += 1;
    }
    true
}

/// Every refusal, ordered by id.
pub const REFUSALS: &[Refusal] = &[
    Refusal {
        id: "array.acquire.holder_died",
        object: Object::Array,
        operation: "acquire",
        situation: "a holder of its lock (`get_lock()`, an RLock) died holding it",
        cpython: CPython::Returns("False"),
        error: "OwnerDied",
        deviation: Some(Deviation {
            decision: "0003",
            names: None,
        }),
    },
    Refusal {
        id: "array.getitem.holder_died",
        object: Object::Array,
        operation: "__getitem__",
        situation: "a holder of its lock died holding it (proclife: `get`)",
        cpython: CPython::Hangs,
        error: "OwnerDied",
        deviation: Some(Deviation {
            decision: "0003",
            names: None,
        }),
    },
    Refusal {
        id: "array.getitem.out_of_range",
        object: Object::Array,
        operation: "__getitem__",
        situation: "index not below the length (proclife: `get`)",
        cpython: CPython::Raises(PyRaise::new("IndexError", "invalid index")),
        error: "InvalidArgument",
        deviation: None,
    },
    Refusal {
        id: "array.release.unowned",
        object: Object::Array,
        operation: "release",
        situation: "the caller does not hold its lock (`get_lock()`, an RLock)",
        cpython: CPython::Raises(PyRaise::new(
            "AssertionError",
            "attempt to release recursive lock not owned by thread",
        )),
        error: "NotOwner",
        deviation: None,
    },
    Refusal {
        id: "array.setitem.holder_died",
        object: Object::Array,
        operation: "__setitem__",
        situation: "a holder of its lock died holding it (proclife: `set`)",
        cpython: CPython::Hangs,
        error: "OwnerDied",
        deviation: Some(Deviation {
            decision: "0003",
            names: None,
        }),
    },
    Refusal {
        id: "array.setitem.out_of_range",
        object: Object::Array,
        operation: "__setitem__",
        situation: "index not below the length (proclife: `set`)",
        cpython: CPython::Raises(PyRaise::new("IndexError", "invalid index")),
        error: "InvalidArgument",
        deviation: None,
    },
    Refusal {
        id: "barrier.new.zero_parties",
        object: Object::Barrier,
        operation: "__init__",
        situation: "zero parties",
        cpython: CPython::Returns("<multiprocessing.synchronize.Barrier at 0x…: waiters=0/0>"),
        error: "InvalidArgument",
        deviation: Some(Deviation {
            decision: "0005",
            names: None,
        }),
    },
    Refusal {
        id: "barrier.wait.aborted",
        object: Object::Barrier,
        operation: "wait",
        situation: "the barrier was aborted",
        cpython: CPython::Raises(PyRaise::new("threading.BrokenBarrierError", "")),
        error: "BrokenBarrier",
        deviation: None,
    },
    Refusal {
        id: "barrier.wait.after_timeout",
        object: Object::Barrier,
        operation: "wait",
        situation: "an earlier wait timed out (that broke it)",
        cpython: CPython::Raises(PyRaise::new("threading.BrokenBarrierError", "")),
        error: "BrokenBarrier",
        deviation: None,
    },
    Refusal {
        id: "barrier.wait.party_died",
        object: Object::Barrier,
        operation: "wait",
        situation: "a waiting party died",
        cpython: CPython::Hangs,
        error: "BrokenBarrier",
        deviation: Some(Deviation {
            decision: "0005",
            names: Some(PyRaise::new("threading.BrokenBarrierError", "")),
        }),
    },
    Refusal {
        id: "barrier.wait.reset_while_waiting",
        object: Object::Barrier,
        operation: "wait",
        situation: "`reset()` while this party waited",
        cpython: CPython::Raises(PyRaise::new("threading.BrokenBarrierError", "")),
        error: "BrokenBarrier",
        deviation: None,
    },
    Refusal {
        id: "barrier.wait.timeout",
        object: Object::Barrier,
        operation: "wait",
        situation: "the timeout passed before all parties arrived",
        cpython: CPython::Raises(PyRaise::new("threading.BrokenBarrierError", "")),
        error: "BrokenBarrier",
        deviation: None,
    },
    Refusal {
        id: "barrier.wait.timeout_nan",
        object: Object::Barrier,
        operation: "wait",
        situation: "the timeout is NaN (through `sync::timeout_from_secs`)",
        cpython: CPython::Raises(PyRaise::new("OSError", "[Errno 22] Invalid argument")),
        error: "NanTimeout",
        deviation: None,
    },
    Refusal {
        id: "bounded_semaphore.acquire.timeout_nan",
        object: Object::BoundedSemaphore,
        operation: "acquire",
        situation: "the timeout is NaN (through `sync::timeout_from_secs`)",
        cpython: CPython::Raises(PyRaise::new("OSError", "[Errno 22] Invalid argument")),
        error: "NanTimeout",
        deviation: None,
    },
    Refusal {
        id: "bounded_semaphore.new.above_max",
        object: Object::BoundedSemaphore,
        operation: "__init__",
        situation: "initial value above SEM_VALUE_MAX",
        cpython: CPython::Raises(PyRaise::new(
            "OverflowError",
            "Python int too large to convert to C int",
        )),
        error: "InvalidArgument",
        deviation: None,
    },
    Refusal {
        id: "bounded_semaphore.release.over",
        object: Object::BoundedSemaphore,
        operation: "release",
        situation: "released more often than acquired",
        cpython: CPython::Raises(PyRaise::new(
            "ValueError",
            "semaphore or lock released too many times",
        )),
        error: "TooManyReleases",
        deviation: None,
    },
    Refusal {
        id: "condition.acquire.holder_died",
        object: Object::Condition,
        operation: "acquire",
        situation: "a holder of its lock (an RLock, the default) died holding it",
        cpython: CPython::Returns("False"),
        error: "OwnerDied",
        deviation: Some(Deviation {
            decision: "0003",
            names: None,
        }),
    },
    Refusal {
        id: "condition.notify.unowned",
        object: Object::Condition,
        operation: "notify",
        situation: "the caller does not hold its lock (an RLock, the default)",
        cpython: CPython::Raises(PyRaise::new("AssertionError", "lock is not owned")),
        error: "NotOwner",
        deviation: None,
    },
    Refusal {
        id: "condition.notify_all.unowned",
        object: Object::Condition,
        operation: "notify_all",
        situation: "the caller does not hold its lock (an RLock, the default)",
        cpython: CPython::Raises(PyRaise::new("AssertionError", "lock is not owned")),
        error: "NotOwner",
        deviation: None,
    },
    Refusal {
        id: "condition.release.unowned",
        object: Object::Condition,
        operation: "release",
        situation: "the caller does not hold its lock (an RLock, the default)",
        cpython: CPython::Raises(PyRaise::new(
            "AssertionError",
            "attempt to release recursive lock not owned by thread",
        )),
        error: "NotOwner",
        deviation: None,
    },
    Refusal {
        id: "condition.wait.holder_died",
        object: Object::Condition,
        operation: "wait",
        situation: "the notifier died holding the lock the woken wait re-acquires",
        cpython: CPython::Hangs,
        error: "OwnerDied",
        deviation: Some(Deviation {
            decision: "0005",
            names: None,
        }),
    },
    Refusal {
        id: "condition.wait.parent_died",
        object: Object::Condition,
        operation: "wait",
        situation: "an untimed wait in a child whose parent was SIGKILLed",
        cpython: CPython::Hangs,
        error: "ParentDied",
        deviation: Some(Deviation {
            decision: "0018",
            names: None,
        }),
    },
    Refusal {
        id: "condition.wait.timeout_nan",
        object: Object::Condition,
        operation: "wait",
        situation: "the timeout is NaN (through `sync::timeout_from_secs`)",
        cpython: CPython::Raises(PyRaise::new("OSError", "[Errno 22] Invalid argument")),
        error: "NanTimeout",
        deviation: None,
    },
    Refusal {
        id: "condition.wait.unowned",
        object: Object::Condition,
        operation: "wait",
        situation: "the caller does not hold its lock (an RLock, the default)",
        cpython: CPython::Raises(PyRaise::new(
            "AssertionError",
            "must acquire() condition before using wait()",
        )),
        error: "NotOwner",
        deviation: None,
    },
    Refusal {
        id: "condition.wait_for.timeout_nan",
        object: Object::Condition,
        operation: "wait_for",
        situation: "the timeout is NaN (through `sync::timeout_from_secs`)",
        cpython: CPython::Raises(PyRaise::new("OSError", "[Errno 22] Invalid argument")),
        error: "NanTimeout",
        deviation: None,
    },
    Refusal {
        id: "condition.wait_for.unowned",
        object: Object::Condition,
        operation: "wait_for",
        situation: "the caller does not hold its lock (an RLock, the default)",
        cpython: CPython::Raises(PyRaise::new(
            "AssertionError",
            "must acquire() condition before using wait()",
        )),
        error: "NotOwner",
        deviation: None,
    },
    Refusal {
        id: "condition_with_lock.notify.unowned",
        object: Object::ConditionWithLock,
        operation: "notify",
        situation: "the caller does not hold its lock (a Lock)",
        cpython: CPython::Raises(PyRaise::new("AssertionError", "lock is not owned")),
        error: "NotOwner",
        deviation: None,
    },
    Refusal {
        id: "condition_with_lock.notify_all.unowned",
        object: Object::ConditionWithLock,
        operation: "notify_all",
        situation: "the caller does not hold its lock (a Lock)",
        cpython: CPython::Raises(PyRaise::new("AssertionError", "lock is not owned")),
        error: "NotOwner",
        deviation: None,
    },
    Refusal {
        id: "condition_with_lock.release.unowned",
        object: Object::ConditionWithLock,
        operation: "release",
        situation: "the caller does not hold its lock (a Lock)",
        cpython: CPython::Raises(PyRaise::new(
            "ValueError",
            "semaphore or lock released too many times",
        )),
        error: "NotOwner",
        deviation: None,
    },
    Refusal {
        id: "condition_with_lock.wait.unowned",
        object: Object::ConditionWithLock,
        operation: "wait",
        situation: "the caller does not hold its lock (a Lock)",
        cpython: CPython::Raises(PyRaise::new(
            "AssertionError",
            "must acquire() condition before using wait()",
        )),
        error: "NotOwner",
        deviation: None,
    },
    Refusal {
        id: "condition_with_lock.wait_for.unowned",
        object: Object::ConditionWithLock,
        operation: "wait_for",
        situation: "the caller does not hold its lock (a Lock)",
        cpython: CPython::Raises(PyRaise::new(
            "AssertionError",
            "must acquire() condition before using wait()",
        )),
        error: "NotOwner",
        deviation: None,
    },
    Refusal {
        id: "connection.fileno.closed",
        object: Object::Connection,
        operation: "fileno",
        situation: "the end was closed (proclife: `fd()`)",
        cpython: CPython::Raises(PyRaise::new("OSError", "handle is closed")),
        error: "HandleClosed",
        deviation: None,
    },
    Refusal {
        id: "connection.poll.closed",
        object: Object::Connection,
        operation: "poll",
        situation: "the end was closed",
        cpython: CPython::Raises(PyRaise::new("OSError", "handle is closed")),
        error: "HandleClosed",
        deviation: None,
    },
    Refusal {
        id: "connection.poll.timeout_nan",
        object: Object::Connection,
        operation: "poll",
        situation: "the timeout is NaN (through `sync::timeout_from_secs`)",
        cpython: CPython::Raises(PyRaise::new(
            "ValueError",
            "cannot convert float NaN to integer",
        )),
        error: "NanTimeout",
        deviation: None,
    },
    Refusal {
        id: "connection.poll.write_only",
        object: Object::Connection,
        operation: "poll",
        situation: "the sending end of a one-way pipe",
        cpython: CPython::Raises(PyRaise::new("OSError", "connection is write-only")),
        error: "InvalidArgument",
        deviation: None,
    },
    Refusal {
        id: "connection.recv.closed",
        object: Object::Connection,
        operation: "recv",
        situation: "the end was closed",
        cpython: CPython::Raises(PyRaise::new("OSError", "handle is closed")),
        error: "HandleClosed",
        deviation: None,
    },
    Refusal {
        id: "connection.recv.not_decodable",
        object: Object::Connection,
        operation: "recv",
        situation: "a complete message that does not decode",
        cpython: CPython::Raises(PyRaise::new(
            "_pickle.UnpicklingError",
            "pickle data was truncated",
        )),
        error: "Decode",
        deviation: Some(Deviation {
            decision: "0013",
            names: None,
        }),
    },
    Refusal {
        id: "connection.recv.parent_died",
        object: Object::Connection,
        operation: "recv",
        situation: "an untimed receive in a forked child whose parent was SIGKILLed (the child holds both ends)",
        cpython: CPython::Hangs,
        error: "ParentDied",
        deviation: Some(Deviation {
            decision: "0018",
            names: None,
        }),
    },
    Refusal {
        id: "connection.recv.peer_closed",
        object: Object::Connection,
        operation: "recv",
        situation: "the peer end was closed, nothing left to receive",
        cpython: CPython::Raises(PyRaise::new("EOFError", "")),
        error: "Disconnected",
        deviation: None,
    },
    Refusal {
        id: "connection.recv.peer_killed",
        object: Object::Connection,
        operation: "recv",
        situation: "duplex; the process holding the peer end was killed",
        cpython: CPython::Raises(PyRaise::new("EOFError", "")),
        error: "Disconnected",
        deviation: None,
    },
    Refusal {
        id: "connection.recv.write_only",
        object: Object::Connection,
        operation: "recv",
        situation: "the sending end of a one-way pipe",
        cpython: CPython::Raises(PyRaise::new("OSError", "connection is write-only")),
        error: "InvalidArgument",
        deviation: None,
    },
    Refusal {
        id: "connection.recv.writer_closed",
        object: Object::Connection,
        operation: "recv",
        situation: "one-way; the sending end was closed in every process, nothing left to receive",
        cpython: CPython::Raises(PyRaise::new("EOFError", "")),
        error: "Disconnected",
        deviation: None,
    },
    Refusal {
        id: "connection.recv.writer_killed",
        object: Object::Connection,
        operation: "recv",
        situation: "one-way; the last process holding the sending end was killed, nothing left to receive",
        cpython: CPython::Raises(PyRaise::new("EOFError", "")),
        error: "Disconnected",
        deviation: None,
    },
    Refusal {
        id: "connection.recv_bytes.closed",
        object: Object::Connection,
        operation: "recv_bytes",
        situation: "the end was closed",
        cpython: CPython::Raises(PyRaise::new("OSError", "handle is closed")),
        error: "HandleClosed",
        deviation: None,
    },
    Refusal {
        id: "connection.recv_bytes.peer_killed",
        object: Object::Connection,
        operation: "recv_bytes",
        situation: "duplex; the process holding the peer end was killed",
        cpython: CPython::Raises(PyRaise::new("EOFError", "")),
        error: "Disconnected",
        deviation: None,
    },
    Refusal {
        id: "connection.recv_bytes.too_long",
        object: Object::Connection,
        operation: "recv_bytes",
        situation: "the message is longer than the maximum (CPython: `maxlength`; proclife: `max_frame`)",
        cpython: CPython::Raises(PyRaise::new("OSError", "bad message length")),
        error: "FrameTooLarge",
        deviation: None,
    },
    Refusal {
        id: "connection.recv_bytes.write_only",
        object: Object::Connection,
        operation: "recv_bytes",
        situation: "the sending end of a one-way pipe",
        cpython: CPython::Raises(PyRaise::new("OSError", "connection is write-only")),
        error: "InvalidArgument",
        deviation: None,
    },
    Refusal {
        id: "connection.send.closed",
        object: Object::Connection,
        operation: "send",
        situation: "the end was closed",
        cpython: CPython::Raises(PyRaise::new("OSError", "handle is closed")),
        error: "HandleClosed",
        deviation: None,
    },
    Refusal {
        id: "connection.send.duplex_peer_closed",
        object: Object::Connection,
        operation: "send",
        situation: "duplex; the peer end was closed in every process",
        cpython: CPython::Raises(PyRaise::new("BrokenPipeError", "[Errno 32] Broken pipe")),
        error: "Disconnected",
        deviation: None,
    },
    Refusal {
        id: "connection.send.peer_closed",
        object: Object::Connection,
        operation: "send",
        situation: "the receiving end of a one-way pipe was closed",
        cpython: CPython::Raises(PyRaise::new("BrokenPipeError", "[Errno 32] Broken pipe")),
        error: "Disconnected",
        deviation: None,
    },
    Refusal {
        id: "connection.send.peer_killed",
        object: Object::Connection,
        operation: "send",
        situation: "duplex; the process holding the peer end was killed",
        cpython: CPython::Raises(PyRaise::new("BrokenPipeError", "[Errno 32] Broken pipe")),
        error: "Disconnected",
        deviation: None,
    },
    Refusal {
        id: "connection.send.read_only",
        object: Object::Connection,
        operation: "send",
        situation: "the receiving end of a one-way pipe",
        cpython: CPython::Raises(PyRaise::new("OSError", "connection is read-only")),
        error: "InvalidArgument",
        deviation: None,
    },
    Refusal {
        id: "connection.send.reader_killed",
        object: Object::Connection,
        operation: "send",
        situation: "one-way; the last process holding the receiving end was killed",
        cpython: CPython::Raises(PyRaise::new("BrokenPipeError", "[Errno 32] Broken pipe")),
        error: "Disconnected",
        deviation: None,
    },
    Refusal {
        id: "connection.send_bytes.closed",
        object: Object::Connection,
        operation: "send_bytes",
        situation: "the end was closed",
        cpython: CPython::Raises(PyRaise::new("OSError", "handle is closed")),
        error: "HandleClosed",
        deviation: None,
    },
    Refusal {
        id: "connection.send_bytes.peer_killed",
        object: Object::Connection,
        operation: "send_bytes",
        situation: "duplex; the process holding the peer end was killed",
        cpython: CPython::Raises(PyRaise::new("BrokenPipeError", "[Errno 32] Broken pipe")),
        error: "Disconnected",
        deviation: None,
    },
    Refusal {
        id: "connection.send_bytes.read_only",
        object: Object::Connection,
        operation: "send_bytes",
        situation: "the receiving end of a one-way pipe",
        cpython: CPython::Raises(PyRaise::new("OSError", "connection is read-only")),
        error: "InvalidArgument",
        deviation: None,
    },
    Refusal {
        id: "connection.send_bytes.too_long",
        object: Object::Connection,
        operation: "send_bytes",
        situation: "the message is longer than this end's `max_frame`",
        cpython: CPython::Returns("True"),
        error: "FrameTooLarge",
        deviation: Some(Deviation {
            decision: "0013",
            names: None,
        }),
    },
    Refusal {
        id: "context.get_context.unknown_method",
        object: Object::Context,
        operation: "get_context",
        situation: "a name that is no start method (`bogus`)",
        cpython: CPython::Raises(PyRaise::new(
            "ValueError",
            "cannot find context for 'bogus'",
        )),
        error: "UnknownStartMethod",
        deviation: None,
    },
    Refusal {
        id: "context.set_start_method.already_set",
        object: Object::Context,
        operation: "set_start_method",
        situation: "the method was fixed before (set, read, or used by a start)",
        cpython: CPython::Raises(PyRaise::new("RuntimeError", "context has already been set")),
        error: "StartMethodAlreadySet",
        deviation: None,
    },
    Refusal {
        id: "event.wait.parent_died",
        object: Object::Event,
        operation: "wait",
        situation: "an untimed wait in a child whose parent was SIGKILLed",
        cpython: CPython::Hangs,
        error: "ParentDied",
        deviation: Some(Deviation {
            decision: "0018",
            names: None,
        }),
    },
    Refusal {
        id: "event.wait.timeout_nan",
        object: Object::Event,
        operation: "wait",
        situation: "the timeout is NaN (through `sync::timeout_from_secs`)",
        cpython: CPython::Raises(PyRaise::new("OSError", "[Errno 22] Invalid argument")),
        error: "NanTimeout",
        deviation: None,
    },
    Refusal {
        id: "joinable_queue.get.closed",
        object: Object::JoinableQueue,
        operation: "get",
        situation: "this handle was closed",
        cpython: CPython::Raises(PyRaise::new(
            "ValueError",
            "Queue <multiprocessing.queues.JoinableQueue object at 0x…> is closed",
        )),
        error: "HandleClosed",
        deviation: None,
    },
    Refusal {
        id: "joinable_queue.get.empty_timeout",
        object: Object::JoinableQueue,
        operation: "get",
        situation: "no item, the timeout passed",
        cpython: CPython::Raises(PyRaise::new("_queue.Empty", "")),
        error: "Empty",
        deviation: None,
    },
    Refusal {
        id: "joinable_queue.get.timeout_nan",
        object: Object::JoinableQueue,
        operation: "get",
        situation: "the timeout is NaN (through `sync::timeout_from_secs`)",
        cpython: CPython::Raises(PyRaise::new(
            "ValueError",
            "cannot convert float NaN to integer",
        )),
        error: "NanTimeout",
        deviation: None,
    },
    Refusal {
        id: "joinable_queue.get_nowait.closed",
        object: Object::JoinableQueue,
        operation: "get_nowait",
        situation: "this handle was closed",
        cpython: CPython::Raises(PyRaise::new(
            "ValueError",
            "Queue <multiprocessing.queues.JoinableQueue object at 0x…> is closed",
        )),
        error: "HandleClosed",
        deviation: None,
    },
    Refusal {
        id: "joinable_queue.get_nowait.empty",
        object: Object::JoinableQueue,
        operation: "get_nowait",
        situation: "no item",
        cpython: CPython::Raises(PyRaise::new("_queue.Empty", "")),
        error: "Empty",
        deviation: None,
    },
    Refusal {
        id: "joinable_queue.put.closed",
        object: Object::JoinableQueue,
        operation: "put",
        situation: "this handle was closed",
        cpython: CPython::Raises(PyRaise::new(
            "ValueError",
            "Queue <multiprocessing.queues.JoinableQueue object at 0x…> is closed",
        )),
        error: "HandleClosed",
        deviation: None,
    },
    Refusal {
        id: "joinable_queue.put.full_timeout",
        object: Object::JoinableQueue,
        operation: "put",
        situation: "`maxsize` items, the timeout passed",
        cpython: CPython::Raises(PyRaise::new("queue.Full", "")),
        error: "Full",
        deviation: None,
    },
    Refusal {
        id: "joinable_queue.put_nowait.closed",
        object: Object::JoinableQueue,
        operation: "put_nowait",
        situation: "this handle was closed",
        cpython: CPython::Raises(PyRaise::new(
            "ValueError",
            "Queue <multiprocessing.queues.JoinableQueue object at 0x…> is closed",
        )),
        error: "HandleClosed",
        deviation: None,
    },
    Refusal {
        id: "joinable_queue.put_nowait.full",
        object: Object::JoinableQueue,
        operation: "put_nowait",
        situation: "`maxsize` items",
        cpython: CPython::Raises(PyRaise::new("queue.Full", "")),
        error: "Full",
        deviation: None,
    },
    Refusal {
        id: "joinable_queue.task_done.too_many",
        object: Object::JoinableQueue,
        operation: "task_done",
        situation: "more calls than items put",
        cpython: CPython::Raises(PyRaise::new(
            "ValueError",
            "task_done() called too many times",
        )),
        error: "TooManyReleases",
        deviation: None,
    },
    Refusal {
        id: "lock.acquire.already_held",
        object: Object::Lock,
        operation: "acquire",
        situation: "the caller holds it, non-zero timeout",
        cpython: CPython::Returns("False"),
        error: "WouldDeadlock",
        deviation: Some(Deviation {
            decision: "0003",
            names: None,
        }),
    },
    Refusal {
        id: "lock.acquire.holder_died",
        object: Object::Lock,
        operation: "acquire",
        situation: "its holder died holding it",
        cpython: CPython::Returns("False"),
        error: "OwnerDied",
        deviation: Some(Deviation {
            decision: "0003",
            names: None,
        }),
    },
    Refusal {
        id: "lock.acquire.timeout_nan",
        object: Object::Lock,
        operation: "acquire",
        situation: "the timeout is NaN (through `sync::timeout_from_secs`)",
        cpython: CPython::Returns("True"),
        error: "NanTimeout",
        deviation: Some(Deviation {
            decision: "0013",
            names: None,
        }),
    },
    Refusal {
        id: "lock.release.held_by_other",
        object: Object::Lock,
        operation: "release",
        situation: "another process holds it",
        cpython: CPython::Returns("None"),
        error: "NotOwner",
        deviation: Some(Deviation {
            decision: "0003",
            names: Some(PyRaise::new(
                "ValueError",
                "semaphore or lock released too many times",
            )),
        }),
    },
    Refusal {
        id: "lock.release.twice",
        object: Object::Lock,
        operation: "release",
        situation: "released twice by its holder",
        cpython: CPython::Raises(PyRaise::new(
            "ValueError",
            "semaphore or lock released too many times",
        )),
        error: "NotOwner",
        deviation: None,
    },
    Refusal {
        id: "lock.release.unheld",
        object: Object::Lock,
        operation: "release",
        situation: "nobody holds it",
        cpython: CPython::Raises(PyRaise::new(
            "ValueError",
            "semaphore or lock released too many times",
        )),
        error: "NotOwner",
        deviation: None,
    },
    Refusal {
        id: "process.close.running",
        object: Object::Process,
        operation: "close",
        situation: "the child still runs",
        cpython: CPython::Raises(PyRaise::new(
            "ValueError",
            "Cannot close a process while it is still running. You should first call join() or terminate().",
        )),
        error: "StillRunning",
        deviation: None,
    },
    Refusal {
        id: "process.exitcode.closed",
        object: Object::Process,
        operation: "exitcode",
        situation: "the handle was closed",
        cpython: CPython::Raises(PyRaise::new("ValueError", "process object is closed")),
        error: "Closed",
        deviation: None,
    },
    Refusal {
        id: "process.is_alive.closed",
        object: Object::Process,
        operation: "is_alive",
        situation: "the handle was closed",
        cpython: CPython::Raises(PyRaise::new("ValueError", "process object is closed")),
        error: "Closed",
        deviation: None,
    },
    Refusal {
        id: "process.is_alive.not_child",
        object: Object::Process,
        operation: "is_alive",
        situation: "from a process other than its parent",
        cpython: CPython::Raises(PyRaise::new(
            "AssertionError",
            "can only test a child process",
        )),
        error: "TestNotChild",
        deviation: None,
    },
    Refusal {
        id: "process.join.closed",
        object: Object::Process,
        operation: "join",
        situation: "the handle was closed",
        cpython: CPython::Raises(PyRaise::new("ValueError", "process object is closed")),
        error: "Closed",
        deviation: None,
    },
    Refusal {
        id: "process.join.not_child",
        object: Object::Process,
        operation: "join",
        situation: "from a process other than its parent",
        cpython: CPython::Raises(PyRaise::new(
            "AssertionError",
            "can only join a child process",
        )),
        error: "JoinNotChild",
        deviation: None,
    },
    Refusal {
        id: "process.join.not_started",
        object: Object::Process,
        operation: "join",
        situation: "never started",
        cpython: CPython::Raises(PyRaise::new(
            "AssertionError",
            "can only join a started process",
        )),
        error: "JoinNotStarted",
        deviation: None,
    },
    Refusal {
        id: "process.join.timeout_nan",
        object: Object::Process,
        operation: "join",
        situation: "timeout is NaN",
        cpython: CPython::Raises(PyRaise::new(
            "ValueError",
            "cannot convert float NaN to integer",
        )),
        error: "NanTimeout",
        deviation: None,
    },
    Refusal {
        id: "process.kill.closed",
        object: Object::Process,
        operation: "kill",
        situation: "the handle was closed",
        cpython: CPython::Raises(PyRaise::new("ValueError", "process object is closed")),
        error: "Closed",
        deviation: None,
    },
    Refusal {
        id: "process.kill.not_started",
        object: Object::Process,
        operation: "kill",
        situation: "never started",
        cpython: CPython::Raises(PyRaise::new(
            "AttributeError",
            "'NoneType' object has no attribute 'kill'",
        )),
        error: "KillNotStarted",
        deviation: Some(Deviation {
            decision: "0001",
            names: Some(PyRaise::new(
                "AssertionError",
                "can only kill a started process",
            )),
        }),
    },
    Refusal {
        id: "process.pid.closed",
        object: Object::Process,
        operation: "pid",
        situation: "the handle was closed",
        cpython: CPython::Raises(PyRaise::new("ValueError", "process object is closed")),
        error: "Closed",
        deviation: None,
    },
    Refusal {
        id: "process.run.after_start",
        object: Object::Process,
        operation: "run",
        situation: "after start (the target went to the child)",
        cpython: CPython::Raises(PyRaise::new(
            "AttributeError",
            "'Process' object has no attribute '_target'",
        )),
        error: "RunAfterStart",
        deviation: None,
    },
    Refusal {
        id: "process.sentinel.not_started",
        object: Object::Process,
        operation: "sentinel",
        situation: "never started",
        cpython: CPython::Raises(PyRaise::new("ValueError", "process not started")),
        error: "SentinelNotStarted",
        deviation: None,
    },
    Refusal {
        id: "process.set_daemon.started",
        object: Object::Process,
        operation: "daemon",
        situation: "set after start",
        cpython: CPython::Raises(PyRaise::new(
            "AssertionError",
            "process has already started",
        )),
        error: "DaemonAfterStart",
        deviation: None,
    },
    Refusal {
        id: "process.start.closed",
        object: Object::Process,
        operation: "start",
        situation: "the handle was closed",
        cpython: CPython::Raises(PyRaise::new("ValueError", "process object is closed")),
        error: "Closed",
        deviation: None,
    },
    Refusal {
        id: "process.start.closure_under_forkserver",
        object: Object::Process,
        operation: "start",
        situation: "forkserver, the target is a closure (CPython: a local lambda)",
        cpython: CPython::Raises(PyRaise::new(
            "AttributeError",
            "Can't pickle local object 'lambda_under.<locals>.<lambda>'",
        )),
        error: "NotPassable",
        deviation: Some(Deviation {
            decision: "0008",
            names: Some(PyRaise::new(
                "AttributeError",
                "Can't pickle local object: a closure cannot be sent to a re-executed child",
            )),
        }),
    },
    Refusal {
        id: "process.start.closure_under_spawn",
        object: Object::Process,
        operation: "start",
        situation: "spawn, the target is a closure (CPython: a local lambda)",
        cpython: CPython::Raises(PyRaise::new(
            "AttributeError",
            "Can't pickle local object 'lambda_under.<locals>.<lambda>'",
        )),
        error: "NotPassable",
        deviation: Some(Deviation {
            decision: "0008",
            names: Some(PyRaise::new(
                "AttributeError",
                "Can't pickle local object: a closure cannot be sent to a re-executed child",
            )),
        }),
    },
    Refusal {
        id: "process.start.daemonic_parent",
        object: Object::Process,
        operation: "start",
        situation: "inside a daemonic process",
        cpython: CPython::Raises(PyRaise::new(
            "AssertionError",
            "daemonic processes are not allowed to have children",
        )),
        error: "DaemonicParent",
        deviation: None,
    },
    Refusal {
        id: "process.start.not_creator",
        object: Object::Process,
        operation: "start",
        situation: "from a process other than the one that created it",
        cpython: CPython::Raises(PyRaise::new(
            "AssertionError",
            "can only start a process object created by current process",
        )),
        error: "NotCreator",
        deviation: None,
    },
    Refusal {
        id: "process.start.threaded_fork",
        object: Object::Process,
        operation: "start",
        situation: "fork, while the parent has another thread",
        cpython: CPython::Returns("None"),
        error: "ThreadedFork",
        deviation: Some(Deviation {
            decision: "0008",
            names: None,
        }),
    },
    Refusal {
        id: "process.start.twice",
        object: Object::Process,
        operation: "start",
        situation: "started before (even if joined since)",
        cpython: CPython::Raises(PyRaise::new(
            "AssertionError",
            "cannot start a process twice",
        )),
        error: "AlreadyStarted",
        deviation: None,
    },
    Refusal {
        id: "process.start.unregistered_entry",
        object: Object::Process,
        operation: "start",
        situation: "spawn, the target function is unknown in the child (CPython: defined only in the parent's `__main__`; the child exits with 1)",
        cpython: CPython::Returns("None"),
        error: "UnregisteredEntry",
        deviation: Some(Deviation {
            decision: "0008",
            names: Some(PyRaise::new(
                "AttributeError",
                "Can't get attribute 'refusals::unregistered(())': it is not registered with proclife::entry!",
            )),
        }),
    },
    Refusal {
        id: "process.terminate.closed",
        object: Object::Process,
        operation: "terminate",
        situation: "the handle was closed",
        cpython: CPython::Raises(PyRaise::new("ValueError", "process object is closed")),
        error: "Closed",
        deviation: None,
    },
    Refusal {
        id: "process.terminate.not_started",
        object: Object::Process,
        operation: "terminate",
        situation: "never started",
        cpython: CPython::Raises(PyRaise::new(
            "AttributeError",
            "'NoneType' object has no attribute 'terminate'",
        )),
        error: "TerminateNotStarted",
        deviation: Some(Deviation {
            decision: "0001",
            names: Some(PyRaise::new(
                "AssertionError",
                "can only terminate a started process",
            )),
        }),
    },
    Refusal {
        id: "queue.get.closed",
        object: Object::Queue,
        operation: "get",
        situation: "this handle was closed",
        cpython: CPython::Raises(PyRaise::new(
            "ValueError",
            "Queue <multiprocessing.queues.Queue object at 0x…> is closed",
        )),
        error: "HandleClosed",
        deviation: None,
    },
    Refusal {
        id: "queue.get.empty_timeout",
        object: Object::Queue,
        operation: "get",
        situation: "no item, the timeout passed",
        cpython: CPython::Raises(PyRaise::new("_queue.Empty", "")),
        error: "Empty",
        deviation: None,
    },
    Refusal {
        id: "queue.get.parent_died",
        object: Object::Queue,
        operation: "get",
        situation: "an untimed get of an empty queue in a child whose parent was SIGKILLed",
        cpython: CPython::Hangs,
        error: "ParentDied",
        deviation: Some(Deviation {
            decision: "0018",
            names: None,
        }),
    },
    Refusal {
        id: "queue.get.timeout_nan",
        object: Object::Queue,
        operation: "get",
        situation: "the timeout is NaN (through `sync::timeout_from_secs`)",
        cpython: CPython::Raises(PyRaise::new(
            "ValueError",
            "cannot convert float NaN to integer",
        )),
        error: "NanTimeout",
        deviation: None,
    },
    Refusal {
        id: "queue.get_nowait.closed",
        object: Object::Queue,
        operation: "get_nowait",
        situation: "this handle was closed",
        cpython: CPython::Raises(PyRaise::new(
            "ValueError",
            "Queue <multiprocessing.queues.Queue object at 0x…> is closed",
        )),
        error: "HandleClosed",
        deviation: None,
    },
    Refusal {
        id: "queue.get_nowait.empty",
        object: Object::Queue,
        operation: "get_nowait",
        situation: "no item",
        cpython: CPython::Raises(PyRaise::new("_queue.Empty", "")),
        error: "Empty",
        deviation: None,
    },
    Refusal {
        id: "queue.put.closed",
        object: Object::Queue,
        operation: "put",
        situation: "this handle was closed",
        cpython: CPython::Raises(PyRaise::new(
            "ValueError",
            "Queue <multiprocessing.queues.Queue object at 0x…> is closed",
        )),
        error: "HandleClosed",
        deviation: None,
    },
    Refusal {
        id: "queue.put.full_timeout",
        object: Object::Queue,
        operation: "put",
        situation: "`maxsize` items, the timeout passed",
        cpython: CPython::Raises(PyRaise::new("queue.Full", "")),
        error: "Full",
        deviation: None,
    },
    Refusal {
        id: "queue.put.parent_died",
        object: Object::Queue,
        operation: "put",
        situation: "an untimed put into a full queue in a child whose parent was SIGKILLed",
        cpython: CPython::Hangs,
        error: "ParentDied",
        deviation: Some(Deviation {
            decision: "0018",
            names: None,
        }),
    },
    Refusal {
        id: "queue.put.timeout_nan",
        object: Object::Queue,
        operation: "put",
        situation: "the timeout is NaN (through `sync::timeout_from_secs`), room for the item",
        cpython: CPython::Returns("None"),
        error: "NanTimeout",
        deviation: Some(Deviation {
            decision: "0013",
            names: None,
        }),
    },
    Refusal {
        id: "queue.put.too_large",
        object: Object::Queue,
        operation: "put",
        situation: "the encoded item is larger than the ring's capacity",
        cpython: CPython::Returns("100000"),
        error: "FrameTooLarge",
        deviation: Some(Deviation {
            decision: "0004",
            names: None,
        }),
    },
    Refusal {
        id: "queue.put_nowait.closed",
        object: Object::Queue,
        operation: "put_nowait",
        situation: "this handle was closed",
        cpython: CPython::Raises(PyRaise::new(
            "ValueError",
            "Queue <multiprocessing.queues.Queue object at 0x…> is closed",
        )),
        error: "HandleClosed",
        deviation: None,
    },
    Refusal {
        id: "queue.put_nowait.full",
        object: Object::Queue,
        operation: "put_nowait",
        situation: "`maxsize` items",
        cpython: CPython::Raises(PyRaise::new("queue.Full", "")),
        error: "Full",
        deviation: None,
    },
    Refusal {
        id: "rlock.acquire.holder_died",
        object: Object::RLock,
        operation: "acquire",
        situation: "its holder died holding it",
        cpython: CPython::Returns("False"),
        error: "OwnerDied",
        deviation: Some(Deviation {
            decision: "0003",
            names: None,
        }),
    },
    Refusal {
        id: "rlock.acquire.timeout_nan",
        object: Object::RLock,
        operation: "acquire",
        situation: "the timeout is NaN (through `sync::timeout_from_secs`)",
        cpython: CPython::Returns("True"),
        error: "NanTimeout",
        deviation: Some(Deviation {
            decision: "0013",
            names: None,
        }),
    },
    Refusal {
        id: "rlock.release.held_by_other",
        object: Object::RLock,
        operation: "release",
        situation: "another process holds it",
        cpython: CPython::Raises(PyRaise::new(
            "AssertionError",
            "attempt to release recursive lock not owned by thread",
        )),
        error: "NotOwner",
        deviation: None,
    },
    Refusal {
        id: "rlock.release.unheld",
        object: Object::RLock,
        operation: "release",
        situation: "nobody holds it",
        cpython: CPython::Raises(PyRaise::new(
            "AssertionError",
            "attempt to release recursive lock not owned by thread",
        )),
        error: "NotOwner",
        deviation: None,
    },
    Refusal {
        id: "semaphore.acquire.parent_died",
        object: Object::Semaphore,
        operation: "acquire",
        situation: "an untimed acquire at 0 in a child whose parent was SIGKILLed",
        cpython: CPython::Hangs,
        error: "ParentDied",
        deviation: Some(Deviation {
            decision: "0018",
            names: None,
        }),
    },
    Refusal {
        id: "semaphore.acquire.timeout_nan",
        object: Object::Semaphore,
        operation: "acquire",
        situation: "the timeout is NaN (through `sync::timeout_from_secs`)",
        cpython: CPython::Raises(PyRaise::new("OSError", "[Errno 22] Invalid argument")),
        error: "NanTimeout",
        deviation: None,
    },
    Refusal {
        id: "semaphore.new.above_max",
        object: Object::Semaphore,
        operation: "__init__",
        situation: "initial value above SEM_VALUE_MAX",
        cpython: CPython::Raises(PyRaise::new(
            "OverflowError",
            "Python int too large to convert to C int",
        )),
        error: "InvalidArgument",
        deviation: None,
    },
    Refusal {
        id: "semaphore.release.at_max",
        object: Object::Semaphore,
        operation: "release",
        situation: "the count is SEM_VALUE_MAX",
        cpython: CPython::Raises(PyRaise::new(
            "ValueError",
            "semaphore or lock released too many times",
        )),
        error: "TooManyReleases",
        deviation: None,
    },
    Refusal {
        id: "simple_queue.get.closed",
        object: Object::SimpleQueue,
        operation: "get",
        situation: "the queue was closed",
        cpython: CPython::Raises(PyRaise::new("OSError", "handle is closed")),
        error: "HandleClosed",
        deviation: None,
    },
    Refusal {
        id: "simple_queue.put.closed",
        object: Object::SimpleQueue,
        operation: "put",
        situation: "the queue was closed",
        cpython: CPython::Raises(PyRaise::new("OSError", "handle is closed")),
        error: "HandleClosed",
        deviation: None,
    },
    Refusal {
        id: "value.acquire.holder_died",
        object: Object::Value,
        operation: "acquire",
        situation: "a holder of its lock (`get_lock()`, an RLock) died holding it",
        cpython: CPython::Returns("False"),
        error: "OwnerDied",
        deviation: Some(Deviation {
            decision: "0003",
            names: None,
        }),
    },
    Refusal {
        id: "value.get.holder_died",
        object: Object::Value,
        operation: "value",
        situation: "the holder of its lock died holding it",
        cpython: CPython::Hangs,
        error: "OwnerDied",
        deviation: Some(Deviation {
            decision: "0003",
            names: None,
        }),
    },
    Refusal {
        id: "value.release.unowned",
        object: Object::Value,
        operation: "release",
        situation: "the caller does not hold its lock (`get_lock()`, an RLock)",
        cpython: CPython::Raises(PyRaise::new(
            "AssertionError",
            "attempt to release recursive lock not owned by thread",
        )),
        error: "NotOwner",
        deviation: None,
    },
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_sorted_and_name_their_object_and_operation() {
        for pair in REFUSALS.windows(2) {
            assert!(
                pair[0].id < pair[1].id,
                "{} before {}",
                pair[0].id,
                pair[1].id
            );
        }
        for row in REFUSALS {
            let mut parts = row.id.split('.');
            let (Some(_object), Some(_operation), Some(situation), None) =
                (parts.next(), parts.next(), parts.next(), parts.next())
            else {
                panic!("{}: expected object.operation.situation", row.id);
            };
            assert!(!situation.is_empty(), "{}", row.id);
        }
    }

    #[test]
    fn a_row_without_deviation_is_a_cpython_refusal() {
        for row in REFUSALS {
            if row.deviation.is_none() {
                assert!(
                    matches!(row.cpython, CPython::Raises(_)),
                    "{}: CPython does not refuse, so the row needs a deviation",
                    row.id
                );
            }
        }
    }

    #[test]
    fn the_issue_examples_are_named_as_cpython_names_them() {
        let lock = refusal("lock.release.twice").and_then(Refusal::names);
        assert_eq!(
            lock,
            Some(PyRaise::new(
                "ValueError",
                "semaphore or lock released too many times"
            ))
        );
        let send = refusal("connection.send.peer_killed").and_then(Refusal::names);
        assert_eq!(
            send,
            Some(PyRaise::new("BrokenPipeError", "[Errno 32] Broken pipe"))
        );
    }
}
