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

/// A worker blocked in a call on `obj` is SIGKILLed while it waits: the lock's holder (the
/// parent) keeps it, the barrier has a party short, the queue is full. The call's outcome
/// is the model's `killed` class, which random programs reach only when a kill happens to
/// land inside a blocking call; these programs reach it every time. `None` for an object
/// whose calls cannot block that way.
pub fn killed_while_blocked(obj: Object) -> Option<Program> {
    let setup = Setup::default();
    let (worker, mut parent, calls) = match obj {
        Object::Lock | Object::RLock => (
            vec![Call::Acquire {
                obj,
                timeout_ms: None,
            }],
            vec![Step::Call {
                call: Call::Acquire {
                    obj,
                    timeout_ms: None,
                },
            }],
            1,
        ),
        Object::Barrier => (vec![Call::BarrierWait { timeout_ms: None }], Vec::new(), 1),
        Object::Queue if setup.maxsize > 0 => {
            let puts: Vec<Call> = (0..=setup.maxsize)
                .map(|item| Call::Put {
                    obj,
                    item: u32::try_from(item).unwrap_or(u32::MAX),
                    timeout_ms: None,
                })
                .collect();
            let n = puts.len();
            (puts, Vec::new(), n)
        }
        _ => return None,
    };
    parent.push(Step::AwaitBlocked {
        procs: vec![0],
        on: obj,
    });
    parent.push(Step::Kill {
        proc: 0,
        after: calls,
    });
    if matches!(obj, Object::Lock | Object::RLock) {
        parent.push(Step::Call {
            call: Call::Release { obj },
        });
    }
    Some(Program {
        setup,
        procs: vec![worker],
        parent,
    })
}

/// A worker takes `obj` (a `Lock`, an `RLock` or a condition's lock) and is SIGKILLed while
/// it holds it (sleeping in an event's wait meanwhile); then the parent acquires: it is told
/// the holder died (`lock.acquire.holder_died`, ...) and holds the lock. Random programs
/// reach that only when a kill lands inside a worker's hold.
pub fn holder_killed(obj: Object) -> Program {
    let acquire = Call::Acquire {
        obj,
        timeout_ms: None,
    };
    Program {
        setup: Setup::default(),
        procs: vec![vec![
            acquire,
            Call::EventWait {
                timeout_ms: Some(10_000),
            },
        ]],
        parent: vec![
            Step::AwaitBlocked {
                procs: vec![0],
                on: Object::Event,
            },
            Step::Kill { proc: 0, after: 2 },
            Step::Call { call: acquire },
            Step::Call {
                call: Call::Release { obj },
            },
        ],
    }
}

/// As [`holder_killed`] for the lock of a `Value` or an `Array` (`get_lock()`), then the
/// parent makes `access` (on the same object): it is told the holder died
/// (`value.get.holder_died`, `array.getitem.holder_died`, `array.setitem.holder_died`) and
/// holds the lock, which the parent then releases. The worker holds the lock for at most
/// 2 s (it is killed as soon as it sleeps), so that a program shrunk from this one replays
/// quickly.
pub fn access_after_holder_killed(access: Call) -> Program {
    let mut program = holder_killed(access.object());
    program.procs[0][1] = Call::EventWait {
        timeout_ms: Some(2000),
    };
    program.parent[2] = Step::Call { call: access };
    program
}
