//! The operation × outcome classes of each primitive's model, for coverage: every class
//! must be seen in some judged history for a run to count as complete.

use crate::objects::call::{Object, Ret};
use crate::objects::history::Entry;
use crate::objects::refusal::Refusal;

/// One class: the object, the operation's name, and the outcome's name.
pub type Class = (Object, &'static str, &'static str);

/// The classes of `obj`'s model, in table order. `killed` is a call whose caller was
/// killed before it returned (a holder's death, a party's death, a producer's death); a
/// refusal's class is its row of the refusal table (`lock.release.unheld`), one class per
/// row the checker's programs reach (a test checks that each is a row of the object and
/// operation, and that every row a model names is a class).
pub fn classes(obj: Object) -> &'static [(&'static str, &'static str)] {
    match obj {
        Object::Lock => &[
            ("acquire", "True"),
            ("acquire", "False"),
            ("acquire", "lock.acquire.holder_died"),
            ("acquire", "lock.acquire.already_held"),
            ("acquire", "killed"),
            ("release", "None"),
            ("release", "lock.release.held_by_other"),
            ("release", "lock.release.unheld"),
        ],
        Object::RLock => &[
            ("acquire", "True"),
            ("acquire", "False"),
            ("acquire", "rlock.acquire.holder_died"),
            ("acquire", "killed"),
            ("release", "None"),
            ("release", "rlock.release.held_by_other"),
            ("release", "rlock.release.unheld"),
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
            ("release", "bounded_semaphore.release.over"),
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
            ("acquire", "condition.acquire.holder_died"),
            ("release", "None"),
            ("release", "condition.release.unowned"),
            ("wait", "True"),
            ("wait", "False"),
            ("wait", "condition.wait.unowned"),
            ("wait", "condition.wait.holder_died"),
            ("wait", "killed"),
            ("notify", "None"),
            ("notify", "condition.notify.unowned"),
            ("notify_all", "None"),
            ("notify_all", "condition.notify_all.unowned"),
        ],
        Object::Barrier => &[
            ("wait", "index"),
            ("wait", "barrier.wait.timeout"),
            ("wait", "barrier.wait.after_timeout"),
            ("wait", "barrier.wait.party_died"),
            ("wait", "killed"),
        ],
        Object::Queue => &[
            ("put", "None"),
            ("put", "queue.put.full_timeout"),
            ("put", "queue.put.closed"),
            ("put", "killed"),
            ("get", "item"),
            ("get", "queue.get.empty_timeout"),
            ("get", "queue.get.closed"),
            ("close", "None"),
        ],
        Object::SimpleQueue => &[
            ("put", "None"),
            ("put", "simple_queue.put.closed"),
            ("get", "item"),
            ("get", "simple_queue.get.closed"),
            ("close", "None"),
        ],
        Object::JoinableQueue => &[
            ("put", "None"),
            ("put", "joinable_queue.put.full_timeout"),
            ("put", "joinable_queue.put.closed"),
            ("get", "item"),
            ("get", "joinable_queue.get.empty_timeout"),
            ("get", "joinable_queue.get.closed"),
            ("task_done", "None"),
            ("task_done", "joinable_queue.task_done.too_many"),
            ("join", "True"),
            ("join", "False"),
            ("close", "None"),
        ],
        Object::Value => &[
            ("acquire", "True"),
            ("acquire", "value.acquire.holder_died"),
            ("release", "None"),
            ("release", "value.release.unowned"),
            ("value", "item"),
            ("value", "None"),
            ("value", "value.get.holder_died"),
        ],
        Object::Array => &[
            ("acquire", "True"),
            ("acquire", "array.acquire.holder_died"),
            ("release", "None"),
            ("release", "array.release.unowned"),
            ("__getitem__", "item"),
            ("__getitem__", "array.getitem.out_of_range"),
            ("__getitem__", "array.getitem.holder_died"),
            ("__setitem__", "None"),
            ("__setitem__", "array.setitem.out_of_range"),
            ("__setitem__", "array.setitem.holder_died"),
        ],
        Object::Pipe => &[
            ("send", "None"),
            ("send", "connection.send.closed"),
            ("send", "connection.send.duplex_peer_closed"),
            ("send", "connection.send.peer_killed"),
            ("send", "killed"),
            ("recv", "item"),
            ("recv", "connection.recv.closed"),
            ("recv", "connection.recv.peer_closed"),
            ("recv", "connection.recv.peer_killed"),
            ("poll", "True"),
            ("poll", "False"),
            ("poll", "connection.poll.closed"),
            ("close", "None"),
        ],
        Object::OneWayPipe => &[
            ("send", "None"),
            ("send", "connection.send.closed"),
            ("send", "connection.send.read_only"),
            ("send", "connection.send.peer_closed"),
            ("send", "connection.send.reader_killed"),
            ("recv", "item"),
            ("recv", "connection.recv.closed"),
            ("recv", "connection.recv.write_only"),
            ("recv", "connection.recv.writer_closed"),
            ("recv", "connection.recv.writer_killed"),
            ("poll", "True"),
            ("poll", "False"),
            ("poll", "connection.poll.closed"),
            ("poll", "connection.poll.write_only"),
            ("close", "None"),
        ],
    }
}

/// The class of one call of a judged history. `row` is the row of the refusal table the
/// judges found for a refusal a real run showed (a real run shows only the `Error` variant
/// and the exception, which two rows of one operation may share; see
/// `linearizable::linearize`, `condition::row`, `barrier::rows`): a refusal without one is
/// counted in no class.
pub fn class(entry: &Entry, row: Option<Refusal>) -> Option<Class> {
    let obj = entry.call.object();
    let op = entry.call.operation();
    let outcome = match &entry.ret {
        None => "killed",
        Some(Ret::None) => "None",
        Some(Ret::Bool { value: true }) => "True",
        Some(Ret::Bool { value: false }) => "False",
        Some(Ret::Int { .. }) if obj == Object::Barrier => "index",
        Some(Ret::Int { .. }) => "item",
        Some(Ret::Raised { refusal }) => refusal.id(),
        // The judges' row, if it is one of the object's and operation's (and agrees).
        Some(observed @ Ret::Refused { .. }) => {
            let row = row.filter(|&refusal| observed.agrees(&Ret::Raised { refusal }))?;
            classes(obj)
                .iter()
                .find(|&&(o, outcome)| o == op && outcome == row.id())
                .map(|&(_, outcome)| outcome)?
        }
        Some(Ret::Other { .. }) => return None,
    };
    Some((obj, op, outcome))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::objects::call::Call;

    const OBJECTS: [Object; 14] = Object::ALL;

    /// Every refusal class is a row the table has for that object and operation, and
    /// every row a model names is a class.
    #[test]
    fn refusal_classes_are_rows_of_the_table() {
        let values = ["None", "True", "False", "index", "item", "killed"];
        for obj in OBJECTS {
            for &(op, outcome) in classes(obj) {
                if values.contains(&outcome) {
                    continue;
                }
                let row = Refusal::from_id(outcome).map(Refusal::row);
                assert!(
                    row.is_some_and(|row| row.object == obj.in_table() && row.operation == op),
                    "{}.{op} -> {outcome}: no row of the refusal table for that operation",
                    obj.name()
                );
            }
        }
        for refusal in Refusal::MODELLED {
            let counted = OBJECTS.into_iter().any(|o| {
                classes(o)
                    .iter()
                    .any(|&(_, outcome)| outcome == refusal.id())
            });
            assert!(counted, "{} is no class of the coverage", refusal.id());
        }
    }

    /// A real run's refusal is counted under the judges' row, and only if that row is the
    /// call's and names what the run showed.
    #[test]
    fn a_refusal_is_counted_under_its_row() {
        let entry = Entry {
            proc: 0,
            call: Call::Release { obj: Object::Lock },
            invoked: 1,
            returned: Some(2),
            ret: Some(Ret::Refused {
                error: "NotOwner".to_owned(),
                named: Some((
                    "ValueError".to_owned(),
                    "semaphore or lock released too many times".to_owned(),
                )),
            }),
        };
        for row in [
            Refusal::LOCK_RELEASE_UNHELD,
            Refusal::LOCK_RELEASE_HELD_BY_OTHER,
        ] {
            assert_eq!(
                class(&entry, Some(row)),
                Some((Object::Lock, "release", row.id()))
            );
        }
        assert_eq!(class(&entry, None), None);
        assert_eq!(class(&entry, Some(Refusal::RLOCK_RELEASE_UNHELD)), None);
        assert_eq!(class(&entry, Some(Refusal::QUEUE_GET_EMPTY)), None);
    }
}
