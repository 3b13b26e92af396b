//! The operation × outcome classes of each primitive's model, for coverage: every class
//! must be seen in some judged history for a run to count as complete.

use crate::objects::call::{Object, Ret};
use crate::objects::history::Entry;

/// One class: the object, the operation's name, and the outcome's name.
pub type Class = (Object, &'static str, &'static str);

/// The classes of `obj`'s model, in table order. `killed` is a call whose caller was
/// killed before it returned (a holder's death, a party's death, a producer's death); a
/// refusal's class is the name of its `proclife::Error` variant, the refusal table's `error`
/// column (a test checks that each names a row of the object and operation).
pub fn classes(obj: Object) -> &'static [(&'static str, &'static str)] {
    match obj {
        Object::Lock => &[
            ("acquire", "True"),
            ("acquire", "False"),
            ("acquire", "OwnerDied"),
            ("acquire", "WouldDeadlock"),
            ("acquire", "killed"),
            ("release", "None"),
            ("release", "NotOwner"),
        ],
        Object::RLock => &[
            ("acquire", "True"),
            ("acquire", "False"),
            ("acquire", "OwnerDied"),
            ("acquire", "killed"),
            ("release", "None"),
            ("release", "NotOwner"),
        ],
        Object::Semaphore => &[
            ("acquire", "True"),
            ("acquire", "False"),
            ("release", "None"),
        ],
        Object::BoundedSemaphore => &[
            ("acquire", "True"),
            ("acquire", "False"),
            ("release", "None"),
            ("release", "TooManyReleases"),
        ],
        Object::Event => &[
            ("set", "None"),
            ("clear", "None"),
            ("is_set", "True"),
            ("is_set", "False"),
            ("wait", "True"),
            ("wait", "False"),
        ],
        Object::Condition => &[
            ("acquire", "True"),
            ("acquire", "OwnerDied"),
            ("release", "None"),
            ("wait", "True"),
            ("wait", "False"),
            ("wait", "killed"),
            ("notify", "None"),
            ("notify", "NotOwner"),
            ("notify_all", "None"),
        ],
        Object::Barrier => &[
            ("wait", "index"),
            ("wait", "BrokenBarrier"),
            ("wait", "killed"),
        ],
        Object::Queue => &[
            ("put", "None"),
            ("put", "Full"),
            ("put", "HandleClosed"),
            ("put", "killed"),
            ("get", "item"),
            ("get", "Empty"),
            ("get", "HandleClosed"),
            ("close", "None"),
        ],
        Object::SimpleQueue => &[
            ("put", "None"),
            ("put", "HandleClosed"),
            ("get", "item"),
            ("get", "HandleClosed"),
            ("close", "None"),
        ],
        Object::JoinableQueue => &[
            ("put", "None"),
            ("put", "Full"),
            ("put", "HandleClosed"),
            ("get", "item"),
            ("get", "Empty"),
            ("get", "HandleClosed"),
            ("task_done", "None"),
            ("task_done", "TooManyReleases"),
            ("join", "True"),
            ("join", "False"),
            ("close", "None"),
        ],
        Object::Value => &[
            ("acquire", "True"),
            ("acquire", "OwnerDied"),
            ("release", "None"),
            ("release", "NotOwner"),
            ("value", "item"),
            ("value", "None"),
            ("value", "OwnerDied"),
        ],
        Object::Array => &[
            ("acquire", "True"),
            ("acquire", "OwnerDied"),
            ("release", "None"),
            ("release", "NotOwner"),
            ("__getitem__", "item"),
            ("__getitem__", "InvalidArgument"),
            ("__getitem__", "OwnerDied"),
            ("__setitem__", "None"),
            ("__setitem__", "InvalidArgument"),
            ("__setitem__", "OwnerDied"),
        ],
    }
}

/// The class of one call of a judged history.
pub fn class(entry: &Entry) -> Option<Class> {
    let obj = entry.call.object();
    let outcome = match &entry.ret {
        None => "killed",
        Some(Ret::None) => "None",
        Some(Ret::Bool { value: true }) => "True",
        Some(Ret::Bool { value: false }) => "False",
        Some(Ret::Int { .. }) if obj == Object::Barrier => "index",
        Some(Ret::Int { .. }) => "item",
        Some(Ret::Raised { refusal }) => refusal.error(),
        // A class of the table, if the model lists one with that variant's name.
        Some(Ret::Refused { error, .. }) => classes(obj)
            .iter()
            .find(|(op, outcome)| *op == entry.call.operation() && outcome == error)
            .map(|(_, outcome)| *outcome)?,
        Some(Ret::Other { .. }) => return None,
    };
    Some((obj, entry.call.operation(), outcome))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::objects::Refusal;
    use crate::refusals::REFUSALS;

    const OBJECTS: [Object; 12] = Object::ALL;

    /// Every refusal class is an `Error` variant the table names for that object and
    /// operation, and every refusal a model names is a row of an operation the coverage
    /// table counts.
    #[test]
    fn refusal_classes_are_rows_of_the_table() {
        let values = ["None", "True", "False", "index", "item", "killed"];
        for obj in OBJECTS {
            for &(op, outcome) in classes(obj) {
                if values.contains(&outcome) {
                    continue;
                }
                assert!(
                    REFUSALS.iter().any(|row| row.object == obj.in_table()
                        && row.operation == op
                        && row.error == outcome),
                    "{}.{op} -> {outcome}: no row of the refusal table",
                    obj.name()
                );
            }
        }
        for refusal in Refusal::MODELLED {
            let row = refusal.row().expect("a row");
            let obj = OBJECTS.into_iter().find(|o| o.in_table() == row.object);
            let counted = obj.map(|o| classes(o).iter().any(|&(op, _)| op == row.operation));
            assert_eq!(counted, Some(true), "{} is no counted operation", row.id);
        }
    }
}
