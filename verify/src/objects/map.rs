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

/// The model's form of a runtime error: a refusal the table names, or its text.
pub fn refusal(error: &Error) -> Ret {
    match error {
        Error::OwnerDied => {
            return Ret::Raised {
                refusal: Refusal::OwnerDied,
            };
        }
        Error::WouldDeadlock => {
            return Ret::Raised {
                refusal: Refusal::WouldDeadlock,
            };
        }
        _ => {}
    }
    match error.python() {
        Some((exception, message)) => match Refusal::from_python(exception, &message) {
            Some(refusal) => Ret::Raised { refusal },
            None => Ret::Other {
                error: format!("{exception}: {message}"),
            },
        },
        None => Ret::Other {
            error: error.to_string(),
        },
    }
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
