//! The operation × outcome classes of each primitive's model, for coverage: every class
//! must be seen in some judged history for a run to count as complete.

use crate::objects::call::{Call, Object, Ret};
use crate::objects::history::Entry;

/// One class: the object, the operation's name, and the outcome's name.
pub type Class = (Object, &'static str, &'static str);

/// The classes of `obj`'s model, in table order. `killed` is a call whose caller was
/// killed before it returned (a holder's death, a party's death, a producer's death).
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
            ("release", "None"),
            ("wait", "True"),
            ("wait", "False"),
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
            ("put", "killed"),
            ("get", "item"),
            ("get", "Empty"),
        ],
    }
}

fn op_name(call: Call) -> &'static str {
    match call {
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
        Some(Ret::Raised { refusal }) => refusal.name(),
        Some(Ret::Other { .. }) => return None,
    };
    Some((obj, op_name(entry.call), outcome))
}
