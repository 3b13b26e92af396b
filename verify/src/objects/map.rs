//! The runtime's results in the model's vocabulary of primitive histories.
//!
//! Together with `crate::map`, the only place that names both the runtime and the model.

use proclife::{Error, Site};
use proclife_model::objects::{Call, Ret};
use proclife_model::refusals::REFUSALS;

/// The runtime's site of `call`: its object and its CPython operation.
///
/// `None` for a call whose operation the runtime does not name (none today).
pub fn site(call: Call) -> Option<Site> {
    crate::map::site_of(call.object().in_table(), call.operation())
}

/// The model's form of what `call` returned.
pub fn ret<T: Into<RetValue>>(call: Call, result: proclife::Result<T>) -> Ret {
    match result {
        Ok(value) => value.into().0,
        Err(error) => refusal(call, &error),
    }
}

/// The model's form of a runtime error returned by `call`: the variant and the exception
/// `Error::python_for` names for it at the call's site, when the refusal table has a row of
/// that object, operation and variant naming the same exception; otherwise (no such row, or
/// the runtime names it otherwise than the table) [`Ret::Other`], which the judge reports as
/// a disagreement.
pub fn refusal(call: Call, error: &Error) -> Ret {
    let text = |named: &Option<(&str, String)>| match named {
        Some((kind, message)) if message.is_empty() => (*kind).to_owned(),
        Some((kind, message)) => format!("{kind}: {message}"),
        None => error.to_string(),
    };
    let Some(site) = site(call) else {
        return Ret::Other {
            error: format!("{error} (from {call}, which the runtime does not name)"),
        };
    };
    let variant = crate::map::variant(error);
    let named = error.python_for(site);
    let rows: Vec<_> = REFUSALS
        .iter()
        .filter(|row| row.error == variant && crate::map::site(row) == Some(site))
        .collect();
    let Some(first) = rows.first() else {
        return Ret::Other {
            error: format!(
                "{} ({variant} from {site}, which no row of the refusal table names)",
                text(&named)
            ),
        };
    };
    let same = |row: &&&proclife_model::refusals::Refusal| {
        row.names()
            .map(|raise| (raise.kind, raise.message.to_owned()))
            == named
    };
    if !rows.iter().any(|row| same(&row)) {
        let table = first.names().map_or("no exception".to_owned(), |r| {
            format!("{}: {}", r.kind, r.message)
        });
        return Ret::Other {
            error: format!(
                "{} ({variant} from {site}, where the refusal table, row {}, names {table})",
                text(&named),
                first.id
            ),
        };
    }
    Ret::Refused {
        error: variant,
        named: named.map(|(kind, message)| (kind.to_owned(), message)),
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

#[cfg(test)]
mod tests {
    use super::*;
    use proclife_model::objects::{Object, Refusal};

    #[test]
    fn a_refusal_agrees_with_its_row_by_name() {
        let release = Call::Release { obj: Object::Lock };
        let observed = refusal(release, &Error::NotOwner);
        assert!(
            observed.agrees(&Ret::Raised {
                refusal: Refusal::LOCK_RELEASE_HELD_BY_OTHER
            }),
            "{observed:?}"
        );
        let rlock = refusal(Call::Release { obj: Object::RLock }, &Error::NotOwner);
        assert!(!rlock.agrees(&Ret::Raised {
            refusal: Refusal::LOCK_RELEASE_UNHELD
        }));
        assert!(rlock.agrees(&Ret::Raised {
            refusal: Refusal::RLOCK_RELEASE_UNHELD
        }));
        let empty = refusal(
            Call::Get {
                obj: Object::Queue,
                timeout_ms: Some(0),
            },
            &Error::Empty,
        );
        assert!(empty.agrees(&Ret::Raised {
            refusal: Refusal::QUEUE_GET_EMPTY
        }));
    }

    #[test]
    fn an_error_without_a_row_is_other() {
        let acquire = Call::Acquire {
            obj: Object::Semaphore,
            timeout_ms: None,
        };
        let observed = refusal(acquire, &Error::NotOwner);
        assert!(
            matches!(&observed, Ret::Other { error } if error.contains("no row")),
            "{observed:?}"
        );
    }
}
