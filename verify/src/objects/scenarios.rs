//! Named programs from public bug reports, each with the judge that decides it.

use proclife_model::objects::coverage::Class;
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
/// parent, which takes it before it lets the worker try) keeps it, the barrier has a party short, the queue is full. The call's outcome
/// is the model's `killed` class, which random programs reach only when a kill happens to
/// land inside a blocking call; these programs reach it every time. `None` for an object
/// whose calls cannot block that way.
pub fn killed_while_blocked(obj: Object) -> Option<Program> {
    let setup = Setup::default();
    let (worker, mut parent, calls) = match obj {
        // The worker waits for the event the parent sets once it holds the lock, so the
        // worker's acquire is the one that blocks whichever process the scheduler runs first.
        Object::Lock | Object::RLock => (
            vec![
                Call::EventWait {
                    timeout_ms: Some(10_000),
                },
                Call::Acquire {
                    obj,
                    timeout_ms: None,
                },
            ],
            vec![
                Step::Call {
                    call: Call::Acquire {
                        obj,
                        timeout_ms: None,
                    },
                },
                Step::Call { call: Call::Set },
            ],
            2,
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

/// A worker calls `release()`, `wait(timeout)` and `notify_all()` on a condition whose lock
/// it does not hold: each is refused (`condition.release.unowned`,
/// `condition.wait.unowned`, `condition.notify_all.unowned`). Random programs refuse only
/// a `notify` without the lock.
pub fn condition_unowned() -> Program {
    Program {
        setup: Setup::default(),
        procs: vec![vec![
            Call::Release {
                obj: Object::Condition,
            },
            Call::CondWait {
                timeout_ms: Some(10),
            },
            Call::NotifyAll,
        ]],
        parent: Vec::new(),
    }
}

/// Worker 0 holds the condition's lock and waits; worker 1, once the parent sets the
/// event, takes the lock, notifies and is SIGKILLed holding it (asleep in the event's wait,
/// which it cleared first): the woken wait's re-acquire is told the holder died
/// (`condition.wait.holder_died`). Every wait has a timeout, so the program ends whatever
/// the runtime does.
pub fn notifier_killed() -> Program {
    let acquire = Call::Acquire {
        obj: Object::Condition,
        timeout_ms: None,
    };
    let held = [
        Call::EventWait {
            timeout_ms: Some(10_000),
        },
        Call::Clear,
        acquire,
        Call::Notify { n: 1 },
        Call::EventWait {
            timeout_ms: Some(10_000),
        },
    ];
    let calls = held.len();
    Program {
        setup: Setup::default(),
        procs: vec![
            vec![
                acquire,
                Call::CondWait {
                    timeout_ms: Some(10_000),
                },
                Call::Release {
                    obj: Object::Condition,
                },
            ],
            held.to_vec(),
        ],
        parent: vec![
            Step::AwaitBlocked {
                procs: vec![0],
                on: Object::Condition,
            },
            Step::Call { call: Call::Set },
            Step::Kill {
                proc: 1,
                after: calls,
            },
        ],
    }
}

/// Worker 0 waits at the barrier without a timeout and is SIGKILLed there; then worker 1
/// (released by the parent's `set` after the kill) waits without a timeout too: the barrier
/// is broken by the death (`barrier.wait.party_died`), which random programs, whose waits
/// all have timeouts, cannot tell from a timeout.
pub fn party_killed() -> Program {
    Program {
        setup: Setup::default(),
        procs: vec![
            vec![Call::BarrierWait { timeout_ms: None }],
            vec![
                Call::EventWait {
                    timeout_ms: Some(10_000),
                },
                Call::BarrierWait { timeout_ms: None },
            ],
        ],
        parent: vec![
            Step::AwaitBlocked {
                procs: vec![0],
                on: Object::Barrier,
            },
            Step::Kill { proc: 0, after: 1 },
            Step::Call { call: Call::Set },
        ],
    }
}

/// A worker waits alone at a barrier of two parties with a short timeout, which breaks it
/// (`barrier.wait.timeout`), then waits again without one: the barrier stays broken
/// (`barrier.wait.after_timeout`). Random programs reach the second row only when a wait
/// begins after another's timeout broke the barrier.
pub fn broken_by_timeout() -> Program {
    Program {
        setup: Setup::default(),
        procs: vec![vec![
            Call::BarrierWait {
                timeout_ms: Some(10),
            },
            Call::BarrierWait { timeout_ms: None },
        ]],
        parent: Vec::new(),
    }
}

/// `JoinableQueue.join()` without a timeout, which must end: the parent puts one item,
/// worker 0 takes it and marks it done, worker 1 joins (before the item is put, or while
/// it waits to be marked done). A worker's call is bounded by the harness, so a join that
/// never returns is reported, not waited for forever.
pub fn join_untimed() -> Program {
    Program {
        setup: Setup::default(),
        procs: vec![
            vec![
                Call::Get {
                    obj: Object::JoinableQueue,
                    timeout_ms: Some(10_000),
                },
                Call::TaskDone,
            ],
            vec![Call::Join { timeout_ms: None }],
        ],
        parent: vec![Step::Call {
            call: Call::Put {
                obj: Object::JoinableQueue,
                item: 1,
                timeout_ms: None,
            },
        }],
    }
}

/// A `JoinableQueue.join(timeout)` while an item put is not marked done: it returns `False`
/// once its timeout passes. Random programs reach it under most seeds only; the pipes'
/// programs take their share of the budget.
pub fn join_times_out() -> Program {
    Program {
        setup: Setup::default(),
        procs: vec![vec![
            Call::Put {
                obj: Object::JoinableQueue,
                item: 1,
                timeout_ms: None,
            },
            Call::Join {
                timeout_ms: Some(5),
            },
        ]],
        parent: Vec::new(),
    }
}

/// A worker's `get` with a timeout on the empty queue `obj` (a `Queue` or a
/// `JoinableQueue`) times out (`*.get.empty_timeout`), then it fills the queue to its
/// `maxsize` and a `put` with a timeout finds it full (`*.put.full_timeout`). Nobody else
/// uses the queue, so both rows come every time; random programs reach them only when no
/// other process happened to put or get in time.
pub fn queue_timeouts(obj: Object) -> Program {
    let setup = Setup::default();
    // Items 0..maxsize fill it; the last put's item is one more, so every item is distinct.
    let last = u32::try_from(setup.maxsize).unwrap_or(u32::MAX);
    let fill = (0..setup.maxsize).map(|item| Call::Put {
        obj,
        item: u32::try_from(item).unwrap_or(u32::MAX),
        timeout_ms: None,
    });
    let mut calls = vec![Call::Get {
        obj,
        timeout_ms: Some(5),
    }];
    calls.extend(fill);
    calls.push(Call::Put {
        obj,
        item: last,
        timeout_ms: Some(5),
    });
    Program {
        setup,
        procs: vec![calls],
        parent: Vec::new(),
    }
}

fn pipe_call(call: Call) -> Step {
    Step::Call { call }
}

/// A sender killed in a `send` that waits for room: the duplex pipe's sockets have the
/// smallest send buffer and nobody receives, so worker 0, the only holder of end 0, blocks
/// after a few items; once it shows `Blocked(Send)` it is killed. Then the parent, holding
/// end 1, polls, receives every item that was sent whole and then end of file (its peer's
/// last holder was killed), and its own `send` finds the pipe broken.
pub fn pipe_sender_killed() -> Program {
    let obj = Object::Pipe;
    let sends = 10u32;
    let mut parent = vec![
        Step::AwaitBlocked {
            procs: vec![0],
            on: obj,
        },
        Step::Kill { proc: 0, after: 1 },
        pipe_call(Call::Poll {
            obj,
            end: 1,
            timeout_ms: Some(0),
        }),
    ];
    parent.extend((0..=sends).map(|_| pipe_call(Call::Recv { obj, end: 1 })));
    parent.extend([
        pipe_call(Call::Send {
            obj,
            end: 1,
            item: 100,
        }),
        pipe_call(Call::CloseEnd { obj, end: 1 }),
    ]);
    Program {
        setup: Setup {
            ends: [0b01, 0b10],
            small_send_buffer: true,
            ..Setup::default()
        },
        procs: vec![
            (1..=sends)
                .map(|item| Call::Send { obj, end: 0, item })
                .collect(),
        ],
        parent,
    }
}

/// The reader of a one-way pipe, its only holder of the receiving end, polls (nothing
/// there: the parent holds the sending end) and is killed in a second, long poll; then the
/// parent's `send` finds the pipe broken.
pub fn pipe_reader_killed() -> Program {
    let obj = Object::OneWayPipe;
    let poll = |timeout_ms| Call::Poll {
        obj,
        end: 0,
        timeout_ms: Some(timeout_ms),
    };
    Program {
        setup: Setup {
            ends: [0b01, 0b10],
            ..Setup::default()
        },
        procs: vec![vec![poll(1), poll(2000)]],
        parent: vec![
            Step::Kill { proc: 0, after: 2 },
            pipe_call(Call::Send {
                obj,
                end: 1,
                item: 1,
            }),
            pipe_call(Call::CloseEnd { obj, end: 1 }),
        ],
    }
}

/// The reader of a one-way pipe receives the parent's item and then waits in a second
/// receive; once it waits, the parent, the only holder of the sending end, closes it, and
/// the receive ends with end of file.
pub fn pipe_reader_waits_for_close() -> Program {
    let obj = Object::OneWayPipe;
    let recv = Call::Recv { obj, end: 0 };
    Program {
        setup: Setup {
            ends: [0b01, 0b10],
            ..Setup::default()
        },
        procs: vec![vec![recv, recv]],
        parent: vec![
            Step::AwaitBlocked {
                procs: vec![0],
                on: obj,
            },
            pipe_call(Call::Send {
                obj,
                end: 1,
                item: 1,
            }),
            Step::AwaitBlocked {
                procs: vec![0],
                on: obj,
            },
            pipe_call(Call::CloseEnd { obj, end: 1 }),
        ],
    }
}

/// Worker 0, the only holder of end 0 of both pipes, polls its duplex end for a while
/// (meanwhile the parent's poll of end 1 finds nothing), closes both ends and ends; then the
/// parent, holding end 1 of both, finds both pipes broken, the duplex one at end of file,
/// and its one-way end write-only.
pub fn pipe_peer_closed() -> Program {
    let (duplex, one_way) = (Object::Pipe, Object::OneWayPipe);
    Program {
        setup: Setup {
            ends: [0b01, 0b10],
            ..Setup::default()
        },
        procs: vec![vec![
            Call::Poll {
                obj: duplex,
                end: 0,
                timeout_ms: Some(300),
            },
            Call::CloseEnd {
                obj: one_way,
                end: 0,
            },
            Call::CloseEnd {
                obj: duplex,
                end: 0,
            },
        ]],
        parent: vec![
            // While it polls.
            Step::AwaitBlocked {
                procs: vec![0],
                on: duplex,
            },
            pipe_call(Call::Poll {
                obj: duplex,
                end: 1,
                timeout_ms: Some(1),
            }),
            // Until it has ended: it never waits on the barrier.
            Step::AwaitBlocked {
                procs: vec![0],
                on: Object::Barrier,
            },
            pipe_call(Call::Send {
                obj: one_way,
                end: 1,
                item: 1,
            }),
            pipe_call(Call::Send {
                obj: duplex,
                end: 1,
                item: 2,
            }),
            pipe_call(Call::Poll {
                obj: duplex,
                end: 1,
                timeout_ms: Some(0),
            }),
            pipe_call(Call::Recv {
                obj: duplex,
                end: 1,
            }),
            pipe_call(Call::Recv {
                obj: one_way,
                end: 1,
            }),
            pipe_call(Call::Poll {
                obj: one_way,
                end: 1,
                timeout_ms: Some(0),
            }),
            pipe_call(Call::Send {
                obj: one_way,
                end: 0,
                item: 3,
            }),
            pipe_call(Call::CloseEnd {
                obj: one_way,
                end: 1,
            }),
            pipe_call(Call::CloseEnd {
                obj: duplex,
                end: 1,
            }),
        ],
    }
}

/// The only writer of a one-way pipe sends an item and is killed while it waits (on the
/// event, which nobody sets); the reader receives the item and then end of file, which
/// a poll then reports too.
pub fn pipe_writer_killed() -> Program {
    let obj = Object::OneWayPipe;
    let recv = Call::Recv { obj, end: 0 };
    Program {
        setup: Setup {
            ends: [0b10, 0b01],
            ..Setup::default()
        },
        procs: vec![
            vec![
                Call::Send {
                    obj,
                    end: 1,
                    item: 1,
                },
                Call::EventWait {
                    timeout_ms: Some(2000),
                },
            ],
            vec![
                recv,
                recv,
                Call::Poll {
                    obj,
                    end: 0,
                    timeout_ms: Some(0),
                },
            ],
        ],
        parent: vec![Step::Kill { proc: 0, after: 2 }],
    }
}

/// The fixed programs of [`condition_unowned`], [`notifier_killed`], [`party_killed`],
/// [`broken_by_timeout`], [`join_untimed`], [`join_times_out`], [`pipe_sender_killed`],
/// [`pipe_reader_killed`],
/// [`pipe_reader_waits_for_close`], [`pipe_peer_closed`] and [`pipe_writer_killed`], each with the coverage classes (object, operation, outcome)
/// it reaches every time: the rows and calls random programs do not reach, or not surely.
pub fn rows_and_untimed_join() -> [(Program, &'static [Class]); 13] {
    [
        (
            queue_timeouts(Object::Queue),
            &[
                (Object::Queue, "get", "queue.get.empty_timeout"),
                (Object::Queue, "put", "queue.put.full_timeout"),
            ],
        ),
        (
            queue_timeouts(Object::JoinableQueue),
            &[
                (
                    Object::JoinableQueue,
                    "get",
                    "joinable_queue.get.empty_timeout",
                ),
                (
                    Object::JoinableQueue,
                    "put",
                    "joinable_queue.put.full_timeout",
                ),
            ],
        ),
        (
            condition_unowned(),
            &[
                (Object::Condition, "release", "condition.release.unowned"),
                (Object::Condition, "wait", "condition.wait.unowned"),
                (
                    Object::Condition,
                    "notify_all",
                    "condition.notify_all.unowned",
                ),
            ],
        ),
        (
            notifier_killed(),
            &[(Object::Condition, "wait", "condition.wait.holder_died")],
        ),
        (
            party_killed(),
            &[(Object::Barrier, "wait", "barrier.wait.party_died")],
        ),
        (
            broken_by_timeout(),
            &[
                (Object::Barrier, "wait", "barrier.wait.timeout"),
                (Object::Barrier, "wait", "barrier.wait.after_timeout"),
            ],
        ),
        (join_untimed(), &[(Object::JoinableQueue, "join", "True")]),
        (
            join_times_out(),
            &[(Object::JoinableQueue, "join", "False")],
        ),
        (
            pipe_sender_killed(),
            &[
                (Object::Pipe, "send", "killed"),
                (Object::Pipe, "poll", "True"),
                (Object::Pipe, "recv", "item"),
                (Object::Pipe, "recv", "connection.recv.peer_killed"),
                (Object::Pipe, "send", "connection.send.peer_killed"),
            ],
        ),
        (
            pipe_reader_killed(),
            &[
                (Object::OneWayPipe, "poll", "False"),
                (Object::OneWayPipe, "send", "connection.send.reader_killed"),
            ],
        ),
        (
            pipe_reader_waits_for_close(),
            &[
                (Object::OneWayPipe, "recv", "item"),
                (Object::OneWayPipe, "recv", "connection.recv.writer_closed"),
            ],
        ),
        (
            pipe_peer_closed(),
            &[
                (Object::OneWayPipe, "send", "connection.send.peer_closed"),
                (Object::Pipe, "send", "connection.send.duplex_peer_closed"),
                (Object::Pipe, "poll", "False"),
                (Object::Pipe, "poll", "True"),
                (Object::Pipe, "recv", "connection.recv.peer_closed"),
                (Object::OneWayPipe, "recv", "connection.recv.write_only"),
                (Object::OneWayPipe, "poll", "connection.poll.write_only"),
                (Object::OneWayPipe, "send", "connection.send.closed"),
            ],
        ),
        (
            pipe_writer_killed(),
            &[
                (Object::OneWayPipe, "recv", "item"),
                (Object::OneWayPipe, "recv", "connection.recv.writer_killed"),
                (Object::OneWayPipe, "poll", "True"),
            ],
        ),
    ]
}
