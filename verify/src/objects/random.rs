//! Random concurrent programs over the shared primitives.
//!
//! Each program focuses on one or two objects (swarm testing: a program that mixes every
//! object rarely makes any one of them contend), runs 2–4 worker processes with 1–3 rounds
//! of calls each (a round is one to a few calls on the focused object), draws every timeout
//! as data (zero, a few milliseconds, or up to 30 ms; untimed only where the call cannot
//! block forever: a simple queue's `get` after a `put` of the same process, a lock's
//! acquire before its own release, a joinable queue's `join` where every item put is taken
//! and marked done by its own process ([`joins_end`]), a pipe's `recv` once its process
//! dropped the sending end), and in one program of two kills a worker after a random
//! number of its calls. The generator is a pure function of the seed.

use proclife_model::objects::register::ARRAY_LEN;
use proclife_model::objects::{Call, Object};

use crate::objects::scenario::{Program, Step};
use crate::objects::worker::Setup;

/// A small deterministic generator (SplitMix64).
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator for `seed`.
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    /// The next 64 random bits.
    pub fn bits(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        self.bits() % n.max(1)
    }

    /// True with probability `1/n`.
    pub fn one_in(&mut self, n: u64) -> bool {
        self.below(n) == 0
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len() as u64) as usize]
    }
}

/// The objects a program may focus on.
pub const FOCUS: [Object; 14] = Object::ALL;

fn timeout(rng: &mut Rng) -> Option<u32> {
    Some(match rng.below(4) {
        0 => 0,
        1 => 1 + rng.below(3) as u32,
        _ => 5 + rng.below(25) as u32,
    })
}

/// Appends a few accesses to the value or the array for one worker: plain ones, or some
/// under `get_lock()` held for a while (so that another process waits, or the holder is
/// killed holding it). A worker acquires the lock without a timeout before it releases it,
/// so its releases are never refused (the parent's probe after a kill may be).
fn accesses(rng: &mut Rng, obj: Object, out: &mut Vec<Call>) {
    let access = |rng: &mut Rng| {
        let value = 1 + rng.below(1000) as u32;
        if obj == Object::Value {
            match rng.below(4) {
                0 => Call::ValueGet,
                1 => Call::ValueSet { value },
                _ => Call::ValueIncrement,
            }
        } else {
            // One index in four is out of range.
            let index = rng.below(ARRAY_LEN as u64 * 4 / 3 + 1) as u32;
            if rng.one_in(2) {
                Call::ArrayGet { index }
            } else {
                Call::ArraySet { index, value }
            }
        }
    };
    match rng.below(3) {
        // Accesses on both sides of a while under the lock: nothing else may change the
        // cells in between.
        0 => {
            out.push(Call::Acquire {
                obj,
                timeout_ms: None,
            });
            let before = access(rng);
            out.push(before);
            out.push(Call::EventWait {
                timeout_ms: Some(5 + rng.below(20) as u32),
            });
            let after = access(rng);
            out.push(after);
            // Sometimes kept until the process ends.
            if !rng.one_in(4) {
                out.push(Call::Release { obj });
            }
        }
        _ => {
            for _ in 0..1 + rng.below(3) {
                let call = access(rng);
                out.push(call);
            }
        }
    }
}

/// Appends a few calls on `obj` for one worker; `next_item` numbers queue items uniquely.
fn calls(rng: &mut Rng, obj: Object, out: &mut Vec<Call>, next_item: &mut u32) {
    match obj {
        Object::Lock | Object::RLock | Object::Semaphore | Object::BoundedSemaphore => {
            let acquire = Call::Acquire {
                obj,
                timeout_ms: timeout(rng),
            };
            match rng.below(7) {
                // Acquire, hold it for a while (a wait on the event), release.
                5 | 6 => out.extend([
                    acquire,
                    Call::EventWait {
                        timeout_ms: Some(10 + rng.below(20) as u32),
                    },
                    Call::Release { obj },
                ]),
                // A stray release: a refusal (or, for a semaphore, a real release).
                0 => out.push(Call::Release { obj }),
                // Acquire twice: recursion, WouldDeadlock, or a second permit.
                1 => {
                    out.extend([acquire, acquire]);
                    out.extend([Call::Release { obj }, Call::Release { obj }]);
                }
                // Acquire and keep it (until the process ends).
                2 => out.push(acquire),
                _ => out.extend([acquire, Call::Release { obj }]),
            }
        }
        Object::Event => {
            let call = match rng.below(5) {
                0 => Call::Set,
                1 => Call::Clear,
                2 => Call::IsSet,
                _ => Call::EventWait {
                    timeout_ms: timeout(rng),
                },
            };
            out.push(call);
        }
        Object::Condition => {
            let lock = Call::Acquire {
                obj,
                timeout_ms: None,
            };
            let middle = match rng.below(5) {
                0 | 1 => Call::CondWait {
                    timeout_ms: Some(5 + rng.below(30) as u32),
                },
                2 => Call::Notify {
                    n: rng.below(3) as u32,
                },
                3 => Call::NotifyAll,
                // Notify without the lock: a refusal.
                _ => {
                    out.push(Call::Notify { n: 1 });
                    return;
                }
            };
            out.extend([lock, middle, Call::Release { obj }]);
        }
        Object::Barrier => out.push(Call::BarrierWait {
            timeout_ms: if rng.one_in(3) {
                Some(5 + rng.below(20) as u32)
            } else {
                Some(200)
            },
        }),
        Object::Queue | Object::JoinableQueue => {
            let mut put = |rng: &mut Rng| {
                *next_item += 1;
                Call::Put {
                    obj,
                    item: *next_item,
                    timeout_ms: timeout(rng),
                }
            };
            let get = |rng: &mut Rng| Call::Get {
                obj,
                timeout_ms: timeout(rng),
            };
            let joinable = obj == Object::JoinableQueue;
            match rng.below(if joinable { 7 } else { 5 }) {
                0 | 1 => out.push(put(rng)),
                2 | 3 => {
                    out.push(get(rng));
                    if joinable {
                        out.push(Call::TaskDone);
                    }
                }
                // Use after close: both refused, through this handle only.
                4 => {
                    out.push(Call::Close { obj });
                    let (p, g) = (put(rng), get(rng));
                    out.extend([p, g]);
                }
                // A task marked done that nobody took, or none left: maybe too many.
                5 => out.push(Call::TaskDone),
                _ => out.push(Call::Join {
                    timeout_ms: timeout(rng),
                }),
            }
        }
        Object::Value | Object::Array => accesses(rng, obj, out),
        // Drawn with the holders of their ends, by `pipe_program`.
        Object::Pipe | Object::OneWayPipe => {}
        // A simple queue's get has no timeout, so every worker puts before it gets: no get
        // waits for an item that never comes (see `simple_gets_are_fed`).
        Object::SimpleQueue => {
            *next_item += 1;
            let put = Call::Put {
                obj,
                item: *next_item,
                timeout_ms: None,
            };
            let get = Call::Get {
                obj,
                timeout_ms: None,
            };
            match rng.below(5) {
                0 => out.push(put),
                1 => out.extend([Call::Close { obj }, put, get]),
                _ => out.extend([put, get]),
            }
        }
    }
}

/// Whether every `get` of a `SimpleQueue` in `calls` (which has no timeout) is preceded by
/// a `put` of the same process of its own, both through an open handle: then, whatever the
/// other processes do, an item is there for it in the end (items are never lost).
pub fn simple_gets_are_fed(calls: &[Call]) -> bool {
    let mut closed = false;
    let mut own = 0u32;
    for call in calls {
        match *call {
            Call::Close {
                obj: Object::SimpleQueue,
            } => closed = true,
            Call::Put {
                obj: Object::SimpleQueue,
                ..
            } if !closed => own += 1,
            Call::Get {
                obj: Object::SimpleQueue,
                ..
            } if !closed => match own.checked_sub(1) {
                Some(left) => own = left,
                None => return false,
            },
            _ => {}
        }
    }
    true
}

/// The ends of a pipe program: `r`, the end whose untimed `recv`s the program makes (its
/// designated reader's), and `f`, the end that sends to it.
#[derive(Debug, Clone, Copy)]
struct PipeRoles {
    obj: Object,
    r: u8,
    f: u8,
    /// The one process that receives through `r` (and polls it).
    reader: usize,
    /// Duplex only: the one process that polls `f` (nobody receives through it).
    poller: Option<usize>,
}

/// Appends one round of calls on a pipe by process `p`, whose current holds are `held`.
///
/// Only the reader receives through `r`, only after it dropped its own hold of `f` (so its
/// untimed `recv` ends: an item comes, or every other holder of `f` goes, which every
/// process does without waiting for it), and only the reader and the poller poll: two
/// processes reading one end at once may tear frames, as CPython's documentation warns, and
/// a receive killed between its reads would leave half a frame to a poller.
fn pipe_calls(
    rng: &mut Rng,
    roles: PipeRoles,
    p: usize,
    held: &mut [bool; 2],
    next_item: &mut u32,
    out: &mut Vec<Call>,
) {
    let PipeRoles { obj, r, f, .. } = roles;
    let duplex = obj == Object::Pipe;
    let mut send = |end: u8| {
        *next_item += 1;
        Call::Send {
            obj,
            end,
            item: *next_item,
        }
    };
    let poll = |rng: &mut Rng, end: u8| Call::Poll {
        obj,
        end,
        timeout_ms: timeout(rng),
    };
    let pick = match rng.below(8) {
        // The reader polls as often as it closes or sends.
        k @ 4..=5 if p == roles.reader && rng.one_in(2) => k - 1,
        k => k,
    };
    match pick {
        0..=2 if p == roles.reader => {
            if held[usize::from(f)] {
                out.push(Call::CloseEnd { obj, end: f });
                held[usize::from(f)] = false;
            }
            out.push(Call::Recv { obj, end: r });
        }
        3 if p == roles.reader => out.push(poll(rng, r)),
        3 if roles.poller == Some(p) => out.push(poll(rng, f)),
        // Closed here, then maybe used: refused, and nothing is read or written.
        4 => {
            let end = rng.below(2) as u8;
            out.push(Call::CloseEnd { obj, end });
            held[usize::from(end)] = false;
            let then = match rng.below(4) {
                0 => send(end),
                1 => Call::Recv { obj, end },
                2 => poll(rng, end),
                _ => return,
            };
            out.push(then);
        }
        // The other direction, or a one-way pipe's direction refusals.
        5 if duplex => out.push(send(r)),
        5 if held[0] => out.push(send(0)),
        5 if held[1] => {
            let call = if rng.one_in(2) {
                Call::Recv { obj, end: 1 }
            } else {
                poll(rng, 1)
            };
            out.push(call);
        }
        _ => {
            for _ in 0..1 + rng.below(2) {
                out.push(send(f));
            }
        }
    }
}

/// A program on one pipe (`Pipe` or `OneWayPipe`): which processes hold which ends at
/// their start, each worker's calls, the parent's calls, a kill in half the programs (then
/// the parent sends, to see whether the victim was the last holder of the other end), and
/// the parent's closes of the ends it still holds, last, so that a receive waiting for end
/// of file ends.
fn pipe_program(
    rng: &mut Rng,
    obj: Object,
    workers: usize,
    next_item: &mut u32,
) -> (Vec<Vec<Call>>, Vec<Step>, [u32; 2]) {
    let duplex = obj == Object::Pipe;
    // A one-way pipe receives through end 0; a duplex one is received through end 1 only
    // (untimed receives both ways could wait for each other).
    let (r, f) = if duplex { (1u8, 0u8) } else { (0, 1) };
    let parent = workers;
    // A worker: the harness bounds a worker's wait, not the parent's.
    let reader = rng.below(workers as u64) as usize;
    let poller = duplex.then(|| rng.below(workers as u64 + 1) as usize);
    let roles = PipeRoles {
        obj,
        r,
        f,
        reader,
        poller,
    };
    // As fork leaves them (every process holds every end), or drawn.
    let all = rng.one_in(3);
    let mut holds: Vec<[bool; 2]> = (0..=workers)
        .map(|p| {
            let mut h = [all || !rng.one_in(3), all || !rng.one_in(3)];
            if p == reader {
                h[usize::from(r)] = true;
            }
            if poller == Some(p) {
                h[usize::from(f)] = true;
            }
            h
        })
        .collect();
    let mut ends = [0u32; 2];
    for (p, h) in holds.iter().enumerate() {
        for e in 0..2 {
            if h[e] {
                ends[e] |= 1 << p;
            }
        }
    }
    let mut procs = Vec::new();
    for (p, held) in holds.iter_mut().enumerate() {
        let mut mine = Vec::new();
        for _ in 0..1 + rng.below(3) {
            pipe_calls(rng, roles, p, held, next_item, &mut mine);
        }
        procs.push(mine);
    }
    if rng.one_in(2) {
        // The reader receives until end of file: once more than items could be sent to it.
        let sends = procs
            .iter()
            .flatten()
            .filter(|c| matches!(c, Call::Send { end, .. } if *end == f))
            .count();
        let held = &mut holds[reader];
        let mine = &mut procs[reader];
        if held[usize::from(f)] {
            mine.push(Call::CloseEnd { obj, end: f });
            held[usize::from(f)] = false;
        }
        for _ in 0..(sends + 2).min(16) {
            mine.push(Call::Recv { obj, end: r });
        }
    }
    let parent_calls = procs.pop().unwrap_or_default();
    let mut steps: Vec<Step> = parent_calls
        .into_iter()
        .map(|call| Step::Call { call })
        .collect();
    if rng.one_in(2) {
        let proc = rng.below(workers as u64) as usize;
        let calls = &procs[proc];
        // The reader is killed at the latest in its first receive, which may wait for the
        // parent's closes at the end.
        let bound = calls
            .iter()
            .position(|c| matches!(c, Call::Recv { .. }))
            .map_or(calls.len(), |i| i + 1);
        let after = 1 + rng.below(bound.max(1) as u64) as usize;
        steps.push(Step::Kill { proc, after });
        let held = holds[parent];
        let end = if duplex && held[1] && (!held[0] || rng.one_in(2)) {
            1
        } else if duplex {
            0
        } else {
            1
        };
        *next_item += 1;
        steps.push(Step::Call {
            call: Call::Send {
                obj,
                end,
                item: *next_item,
            },
        });
    }
    // The parent closes its ends once the reader waits in a receive (or has ended), so an
    // end of file the reader sees before then is the workers' doing.
    if holds[parent].contains(&true) {
        steps.push(Step::AwaitBlocked {
            procs: vec![reader],
            on: obj,
        });
    }
    for end in 0..2u8 {
        if holds[parent][usize::from(end)] {
            steps.push(Step::Call {
                call: Call::CloseEnd { obj, end },
            });
        }
    }
    (procs, steps, ends)
}

/// Whether every untimed wait on the `JoinableQueue` of a program whose processes make
/// `calls` ends (`calls` holds every process's calls, the parent's included; `kills`: whether
/// the program kills a worker). Untimed `get`s and `join`s are allowed only in a program
/// where every `put` and `get` of that queue is untimed, nothing closes it or kills, each
/// untimed `get` follows a `put` of its own process not yet matched, each `task_done`
/// follows a `get` of its own not yet matched, and there are as many `task_done`s as
/// `put`s: then every `get` finds an item in the end (a process waiting in `get` has put, so
/// not every item can be gone), no `task_done` is refused (each follows its own `put`), and
/// once every process is done with its calls nothing is left unfinished, so every `join`
/// returns.
pub fn joins_end<'a>(calls: impl IntoIterator<Item = &'a [Call]> + Clone, kills: bool) -> bool {
    let jq = Object::JoinableQueue;
    let waits = calls.clone().into_iter().flatten().any(|c| {
        matches!(
            c,
            Call::Join { timeout_ms: None }
                | Call::Get {
                    obj: Object::JoinableQueue,
                    timeout_ms: None
                }
        )
    });
    if !waits {
        return true;
    }
    if kills {
        return false;
    }
    let (mut puts, mut dones) = (0u32, 0u32);
    for mine in calls {
        let (mut items, mut got) = (0u32, 0u32);
        for call in mine {
            match *call {
                Call::Put {
                    obj,
                    timeout_ms: None,
                    ..
                } if obj == jq => {
                    puts += 1;
                    items += 1;
                }
                Call::Get {
                    obj,
                    timeout_ms: None,
                } if obj == jq => match items.checked_sub(1) {
                    Some(left) => {
                        items = left;
                        got += 1;
                    }
                    None => return false,
                },
                Call::Put { obj, .. } | Call::Get { obj, .. } | Call::Close { obj }
                    if obj == jq =>
                {
                    return false;
                }
                Call::TaskDone => match got.checked_sub(1) {
                    Some(left) => {
                        got = left;
                        dones += 1;
                    }
                    None => return false,
                },
                _ => {}
            }
        }
    }
    puts == dones
}

/// A program on the `JoinableQueue` whose workers `join()` without a timeout: each either
/// only joins, or puts an item, takes one, marks it done and then joins (maybe with a
/// timeout first), all untimed; no kill ([`joins_end`] says why every call ends).
fn untimed_joins(rng: &mut Rng, workers: usize) -> Vec<Vec<Call>> {
    let obj = Object::JoinableQueue;
    let mut item = 0;
    (0..workers)
        .map(|_| {
            let mut mine = Vec::new();
            if !rng.one_in(3) {
                item += 1;
                mine.extend([
                    Call::Put {
                        obj,
                        item,
                        timeout_ms: None,
                    },
                    Call::Get {
                        obj,
                        timeout_ms: None,
                    },
                    Call::TaskDone,
                ]);
            }
            if rng.one_in(2) {
                mine.push(Call::Join {
                    timeout_ms: timeout(rng),
                });
            }
            mine.push(Call::Join { timeout_ms: None });
            mine
        })
        .collect()
}

/// The program of case `seed`.
pub fn program(seed: u64) -> Program {
    let mut rng = Rng::new(seed);
    let first = rng.pick(&FOCUS);
    if first == Object::JoinableQueue && rng.one_in(4) {
        let workers = 2 + rng.below(3) as usize;
        return Program {
            setup: Setup {
                maxsize: 1 + rng.below(2) as usize,
                ..Setup::default()
            },
            procs: untimed_joins(&mut rng, workers),
            parent: Vec::new(),
        };
    }
    if matches!(first, Object::Pipe | Object::OneWayPipe) {
        let workers = 2 + rng.below(3) as usize;
        let mut next_item = 0;
        let (procs, parent, ends) = pipe_program(&mut rng, first, workers, &mut next_item);
        return Program {
            setup: Setup {
                ends,
                ..Setup::default()
            },
            procs,
            parent,
        };
    }
    let second = if rng.one_in(3) {
        rng.pick(&FOCUS)
    } else {
        first
    };
    let workers = 2 + rng.below(3) as usize;
    let mut next_item = 0;
    let mut procs = Vec::new();
    for _ in 0..workers {
        let mut mine = Vec::new();
        let rounds = 1 + rng.below(3);
        for _ in 0..rounds {
            let obj = if rng.one_in(2) { first } else { second };
            calls(&mut rng, obj, &mut mine, &mut next_item);
        }
        procs.push(mine);
    }
    let mut parent = Vec::new();
    if first == Object::Condition && rng.one_in(2) {
        // Some workers start by waiting, long; the parent notifies once they all sleep.
        let waiters: Vec<usize> = (0..workers).filter(|_| rng.one_in(2)).collect();
        for &w in &waiters {
            let wait = [
                Call::Acquire {
                    obj: first,
                    timeout_ms: None,
                },
                Call::CondWait {
                    timeout_ms: Some(300),
                },
                Call::Release { obj: first },
            ];
            procs[w].splice(0..0, wait);
        }
        let notify = match rng.below(4) {
            3 => Call::NotifyAll,
            n => Call::Notify { n: n as u32 },
        };
        parent.push(Step::AwaitBlocked {
            procs: waiters,
            on: Object::Condition,
        });
        parent.extend(
            [
                Call::Acquire {
                    obj: first,
                    timeout_ms: None,
                },
                notify,
                Call::Release { obj: first },
            ]
            .map(|call| Step::Call { call }),
        );
    }
    if matches!(first, Object::Value | Object::Array) && rng.one_in(3) {
        // Worker 0 writes under the lock and reads back after a long while; the parent
        // writes once it sleeps: its write must wait for the release.
        let (write, read, theirs) = if first == Object::Value {
            (
                Call::ValueSet { value: 1000 },
                Call::ValueGet,
                Call::ValueIncrement,
            )
        } else {
            (
                Call::ArraySet {
                    index: 0,
                    value: 1000,
                },
                Call::ArrayGet { index: 0 },
                Call::ArraySet {
                    index: 0,
                    value: 2000,
                },
            )
        };
        let held = [
            Call::Acquire {
                obj: first,
                timeout_ms: None,
            },
            write,
            Call::EventWait {
                timeout_ms: Some(100),
            },
            read,
            Call::Release { obj: first },
        ];
        procs[0].splice(0..0, held);
        parent.push(Step::AwaitBlocked {
            procs: vec![0],
            on: Object::Event,
        });
        parent.push(Step::Call { call: theirs });
    }
    if rng.one_in(2) {
        let proc = rng.below(workers as u64) as usize;
        // Killed in the middle of a call that may block (or hold a lock meanwhile), or
        // between two calls.
        let blocking: Vec<usize> = procs[proc]
            .iter()
            .enumerate()
            .filter(|(_, c)| {
                !matches!(
                    c,
                    Call::Release { .. } | Call::Set | Call::Clear | Call::IsSet
                )
            })
            .map(|(i, _)| i)
            .collect();
        let after = if !blocking.is_empty() && !rng.one_in(4) {
            1 + blocking[rng.below(blocking.len() as u64) as usize]
        } else {
            1 + rng.below(procs[proc].len() as u64) as usize
        };
        parent.push(Step::Kill { proc, after });
        // Then the parent looks: the next acquirer of a lock the victim held is told.
        let probe = match first {
            Object::Lock | Object::RLock | Object::Semaphore | Object::BoundedSemaphore => {
                vec![Call::Acquire {
                    obj: first,
                    timeout_ms: Some(0),
                }]
            }
            // A holder killed holding the condition's lock: the parent is told.
            Object::Condition => vec![
                Call::Acquire {
                    obj: first,
                    timeout_ms: None,
                },
                Call::Release { obj: first },
            ],
            Object::Barrier => vec![Call::BarrierWait {
                timeout_ms: Some(0),
            }],
            Object::Queue | Object::JoinableQueue => vec![Call::Get {
                obj: first,
                timeout_ms: Some(0),
            }],
            // The next access (or acquirer) after a holder's death is told, and holds the
            // lock then: the release frees it for the workers still running (or, when
            // nobody died holding it, is refused).
            Object::Value | Object::Array => {
                let access = match (first, rng.below(3)) {
                    (Object::Value, _) => Call::ValueGet,
                    (_, 0) => Call::ArrayGet { index: 0 },
                    (_, 1) => Call::ArraySet { index: 1, value: 7 },
                    _ => Call::Acquire {
                        obj: first,
                        timeout_ms: None,
                    },
                };
                vec![access, Call::Release { obj: first }]
            }
            _ => vec![Call::IsSet],
        };
        parent.extend(probe.into_iter().map(|call| Step::Call { call }));
    }
    Program {
        setup: Setup {
            semaphore: 1 + rng.below(2) as u32,
            bounded: 1 + rng.below(2) as u32,
            parties: 2,
            maxsize: 1 + rng.below(2) as usize,
            ends: [0, 0],
            small_send_buffer: false,
            start_together: false,
        },
        procs,
        parent,
    }
}
