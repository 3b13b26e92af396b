//! Outcomes: the value an operation returns, or the Python exception it raises.

use std::borrow::Cow;
use std::fmt;

use crate::state::State;

/// A value returned by an operation; `None`, `Bool` and `Int` map one-to-one onto the replay
/// JSON values `null`, `true`/`false` and integers.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Value {
    /// Python's `None` (JSON `null`).
    None,
    /// A bool (`is_alive`, `pid_is_set`, `sentinel_ready`, `daemon`, the puppet answers).
    Bool(bool),
    /// An int (`exitcode` once the child has exited).
    Int(i64),
    /// A string (`name` after `name = ...`).
    Str(String),
    /// The default name, `<Class>-<n>`, whose number the model does not track.
    DefaultName,
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::None => f.write_str("None"),
            Value::Bool(true) => f.write_str("True"),
            Value::Bool(false) => f.write_str("False"),
            Value::Int(n) => write!(f, "{n}"),
            Value::Str(s) => write!(f, "{s:?}"),
            Value::DefaultName => f.write_str("'Process-N'"),
        }
    }
}

/// The Python exception class of a refusal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PyErrorKind {
    /// `AssertionError`: the `assert` checks of `process.py`.
    AssertionError,
    /// `ValueError`: a closed handle, a handle not started, closing a running process.
    ValueError,
    /// `AttributeError`: `run()` after `start()` deleted the target.
    AttributeError,
}

impl PyErrorKind {
    /// The class name, as Python prints it.
    pub fn name(self) -> &'static str {
        match self {
            PyErrorKind::AssertionError => "AssertionError",
            PyErrorKind::ValueError => "ValueError",
            PyErrorKind::AttributeError => "AttributeError",
        }
    }

    /// The kind with this class name, if the model knows it.
    pub fn from_name(name: &str) -> Option<PyErrorKind> {
        [
            PyErrorKind::AssertionError,
            PyErrorKind::ValueError,
            PyErrorKind::AttributeError,
        ]
        .into_iter()
        .find(|kind| kind.name() == name)
    }
}

/// A Python exception: its class and its exact message.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PyError {
    /// The exception class.
    pub kind: PyErrorKind,
    /// The message, exactly as CPython words it.
    pub message: Cow<'static, str>,
}

impl PyError {
    const fn new(kind: PyErrorKind, message: &'static str) -> PyError {
        PyError {
            kind,
            message: Cow::Borrowed(message),
        }
    }

    /// `AssertionError: cannot start a process twice`.
    pub const START_TWICE: PyError =
        PyError::new(PyErrorKind::AssertionError, "cannot start a process twice");
    /// `AssertionError: can only join a started process`.
    pub const JOIN_NOT_STARTED: PyError = PyError::new(
        PyErrorKind::AssertionError,
        "can only join a started process",
    );
    /// `AssertionError: can only terminate a started process` (a deliberate deviation; see
    /// `docs/decisions/0001-terminate-kill-before-start.md`).
    pub const TERMINATE_NOT_STARTED: PyError = PyError::new(
        PyErrorKind::AssertionError,
        "can only terminate a started process",
    );
    /// `AssertionError: can only kill a started process` (a deliberate deviation, like
    /// [`PyError::TERMINATE_NOT_STARTED`]).
    pub const KILL_NOT_STARTED: PyError = PyError::new(
        PyErrorKind::AssertionError,
        "can only kill a started process",
    );
    /// `AssertionError: process has already started` (setting `daemon` after `start()`).
    pub const ALREADY_STARTED: PyError =
        PyError::new(PyErrorKind::AssertionError, "process has already started");
    /// `AssertionError: name must be a string`.
    pub const NAME_NOT_STR: PyError =
        PyError::new(PyErrorKind::AssertionError, "name must be a string");
    /// `ValueError: process object is closed`.
    pub const CLOSED: PyError = PyError::new(PyErrorKind::ValueError, "process object is closed");
    /// `ValueError: process not started` (`sentinel` before `start()`).
    pub const NOT_STARTED: PyError = PyError::new(PyErrorKind::ValueError, "process not started");
    /// `ValueError: Cannot close a process while it is still running. You should first call
    /// join() or terminate().`
    pub const CLOSE_RUNNING: PyError = PyError::new(
        PyErrorKind::ValueError,
        "Cannot close a process while it is still running. You should first call join() or terminate().",
    );
    /// `AttributeError: 'Process' object has no attribute '_target'` (`run()` after `start()`).
    pub const NO_TARGET: PyError = PyError::new(
        PyErrorKind::AttributeError,
        "'Process' object has no attribute '_target'",
    );
}

impl fmt::Display for PyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind.name(), self.message)
    }
}

/// What an operation does, as the caller sees it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Outcome {
    /// It returned this value.
    Returned(Value),
    /// It raised this Python exception (the state is unchanged).
    Raised(PyError),
    /// It never returns: `join()` on a child that has nothing left that would make it exit.
    /// A checker must not issue such a call without a bound (or must map a bounded wait that
    /// ran out onto this outcome).
    Hangs,
}

impl Outcome {
    /// `Returned(Value::None)`.
    pub const NONE: Outcome = Outcome::Returned(Value::None);

    /// `Returned(Value::Bool(value))`.
    pub fn bool(value: bool) -> Outcome {
        Outcome::Returned(Value::Bool(value))
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Returned(value) => write!(f, "{value}"),
            Outcome::Raised(error) => write!(f, "{error}"),
            Outcome::Hangs => f.write_str("hangs"),
        }
    }
}

/// The result of [`step`](crate::step): the next state and what the caller saw.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Step {
    /// The state after the operation.
    pub next: State,
    /// What the operation returned or raised.
    pub outcome: Outcome,
}
