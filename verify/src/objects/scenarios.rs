//! Named programs from public bug reports, each with the judge that decides it.

use proclife_model::objects::{Call, Object};

use crate::objects::scenario::{Program, Step};
use crate::objects::worker::Setup;

/// Three processes hold a condition's lock and `wait(timeout)`; once all three are blocked,
/// the parent calls `notify(n)`. CPython wakes at most `n` of them; the others return
/// `False` when their timeout passes.
pub fn condition_notify(waiters: usize, n: u32, timeout_ms: u32) -> Program {
    let waiter = vec![
        Call::Acquire {
            obj: Object::Condition,
            timeout_ms: None,
        },
        Call::CondWait {
            timeout_ms: Some(timeout_ms),
        },
        Call::Release {
            obj: Object::Condition,
        },
    ];
    Program {
        setup: Setup::default(),
        procs: vec![waiter; waiters],
        parent: vec![
            Step::AwaitBlocked {
                procs: (0..waiters).collect(),
                on: Object::Condition,
            },
            Step::Call {
                call: Call::Acquire {
                    obj: Object::Condition,
                    timeout_ms: None,
                },
            },
            Step::Call {
                call: Call::Notify { n },
            },
            Step::Call {
                call: Call::Release {
                    obj: Object::Condition,
                },
            },
        ],
    }
}
