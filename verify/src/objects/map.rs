//! The runtime's results in the model's vocabulary of primitive histories.
//!
//! Together with `crate::map`, the only place that names both the runtime and the model.

use proclife::Error;
use proclife_model::objects::{Refusal, Ret};

/// The model's form of what a call returned.
pub fn ret<T: Into<RetValue>>(result: proclife::Result<T>) -> Ret {
    match result {
        Ok(value) => value.into().0,
        Err(error) => refusal(&error),
    }
}

/// The model's form of a runtime error: the refusal its variant stands for, or its text.
///
/// Matched on the typed error, not on its CPython name: the name depends on the object and
/// operation (`Error::python_for`), the kind of refusal does not.
pub fn refusal(error: &Error) -> Ret {
    let refusal = match error {
        Error::NotOwner => Refusal::NotOwner,
        Error::WouldDeadlock => Refusal::WouldDeadlock,
        Error::TooManyReleases(message) if message.starts_with("task_done") => {
            Refusal::TaskDoneTooMany
        }
        Error::TooManyReleases(_) => Refusal::TooManyReleases,
        Error::OwnerDied => Refusal::OwnerDied,
        Error::BrokenBarrier => Refusal::BrokenBarrier,
        Error::Empty => Refusal::Empty,
        Error::Full => Refusal::Full,
        Error::HandleClosed | Error::Closed => Refusal::Closed,
        Error::Disconnected => Refusal::Eof,
        other => {
            return Ret::Other {
                error: other.to_string(),
            };
        }
    };
    Ret::Raised { refusal }
}

/// A runtime return value with its model form.
#[derive(Debug)]
pub struct RetValue(pub Ret);

impl From<()> for RetValue {
    fn from((): ()) -> RetValue {
        RetValue(Ret::None)
    }
}

impl From<bool> for RetValue {
    fn from(value: bool) -> RetValue {
        RetValue(Ret::Bool { value })
    }
}

impl From<usize> for RetValue {
    fn from(value: usize) -> RetValue {
        RetValue(Ret::Int {
            value: i64::try_from(value).unwrap_or(i64::MAX),
        })
    }
}

impl From<u32> for RetValue {
    fn from(value: u32) -> RetValue {
        RetValue(Ret::Int {
            value: i64::from(value),
        })
    }
}
