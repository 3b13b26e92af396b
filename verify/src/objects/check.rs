//! `proclife check --objects`: random programs on real processes, judged by the models,
//! with coverage, shrinking and replay files.

use proclife::StartMethod;
use proclife_model::objects::{Call, Object, Violation};

use crate::objects::coverage::Coverage;
use crate::objects::judge;
use crate::objects::random;
use crate::objects::scenario::{self, Observed, Program, Step};

/// What to run.
#[derive(Debug, Clone)]
pub struct Options {
    /// Programs to run.
    pub cases: u32,
    /// The seed of the first program; program `k` uses `seed + k`.
    pub seed: u64,
    /// How workers are started; `None`: the programs take fork, forkserver and spawn in
    /// turn.
    pub method: Option<StartMethod>,
    /// How often a shrinking candidate must fail, run after run, to be taken.
    pub shrink_runs: u32,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            cases: 300,
            seed: 0x00b1_ec75,
            method: None,
            shrink_runs: 3,
        }
    }
}

/// The start methods programs take in turn when none is chosen.
pub const METHODS: [StartMethod; 3] = [
    StartMethod::Fork,
    StartMethod::ForkServer,
    StartMethod::Spawn,
];

impl Options {
    /// The start method of the `k`th program.
    pub fn method_of(&self, k: usize) -> StartMethod {
        self.method.unwrap_or(METHODS[k % METHODS.len()])
    }
}

/// A program whose history the models reject.
#[derive(Debug, Clone)]
pub struct Failure {
    /// The start method it failed under (and shrank under).
    pub method: StartMethod,
    /// The program as generated.
    pub original: Program,
    /// The shrunk program.
    pub program: Program,
    /// The failing history of the shrunk program, and the violation.
    pub observed: Observed,
    /// Why it fails.
    pub violation: Violation,
}

/// What a check found.
#[derive(Debug, Clone)]
pub struct Summary {
    /// Programs run.
    pub cases: u32,
    /// What each primitive's runs covered.
    pub coverage: Coverage,
    /// The first failure, shrunk.
    pub failure: Option<Failure>,
}

/// Runs `program` once and judges it. `Ok(Err(..))` is a disagreement, `Err` a harness
/// failure.
///
/// # Errors
///
/// The harness's.
pub fn run_once(
    program: &Program,
    method: StartMethod,
) -> anyhow::Result<(Observed, Result<(), Violation>)> {
    let observed = scenario::run(program, method)?;
    let verdict = judge::judge(program, &observed);
    Ok((observed, verdict))
}

/// Runs the random programs of `options`; calls `progress` after each.
///
/// # Errors
///
/// A harness failure (a worker that cannot be started or does not end in time).
pub fn check(options: &Options, mut progress: impl FnMut(u32)) -> anyhow::Result<Summary> {
    let mut coverage = Coverage::default();
    // First the calls killed while they block, and the holders of locks killed, which
    // random programs reach only by chance.
    let locks = [
        Object::Lock,
        Object::RLock,
        Object::Condition,
        Object::Value,
        Object::Array,
    ];
    let fixed = [Object::Lock, Object::RLock, Object::Barrier, Object::Queue]
        .into_iter()
        .filter_map(crate::objects::scenarios::killed_while_blocked)
        .chain(locks.map(crate::objects::scenarios::holder_killed))
        .chain(
            [
                Call::ValueGet,
                Call::ArrayGet { index: 0 },
                Call::ArraySet { index: 1, value: 7 },
            ]
            .map(crate::objects::scenarios::access_after_holder_killed),
        );
    for (k, program) in fixed.enumerate() {
        let method = options.method_of(k);
        let (observed, verdict) = run_once(&program, method)?;
        coverage.add(&observed);
        if let Err(violation) = verdict {
            let failure = shrink(program, method, observed, violation, options)?;
            return Ok(Summary {
                cases: 0,
                coverage,
                failure: Some(failure),
            });
        }
    }
    for k in 0..options.cases {
        let program = random::program(options.seed.wrapping_add(u64::from(k)));
        let method = options.method_of(k as usize);
        let (observed, verdict) = run_once(&program, method)?;
        coverage.add(&observed);
        progress(k + 1);
        if let Err(violation) = verdict {
            let failure = shrink(program, method, observed, violation, options)?;
            return Ok(Summary {
                cases: k + 1,
                coverage,
                failure: Some(failure),
            });
        }
    }
    Ok(Summary {
        cases: options.cases,
        coverage,
        failure: None,
    })
}

/// The programs one step smaller than `p`: a worker's calls made by the parent, a worker
/// removed, a parent step removed (but never an await, which orders the program), one call
/// removed, or one short timeout made long. Awaits repeated back to back are made one, and
/// a candidate whose parent ends holding more locks or permits than `p`'s, or where a
/// simple queue's `get` may wait for an item nobody puts, is left out: it would wait until
/// the harness gives up, which is no smaller failure.
fn smaller(p: &Program) -> Vec<Program> {
    let held = parent_holds(p);
    let mut out: Vec<Program> = candidates(p)
        .into_iter()
        .map(|mut q| {
            q.parent
                .dedup_by(|b, a| matches!(a, Step::AwaitBlocked { .. }) && a == b);
            q
        })
        .filter(|q| q != p && parent_holds(q) <= held && fed(q))
        .collect();
    out.dedup();
    out
}

/// Whether no process of `p` waits in a `SimpleQueue.get` (which has no timeout) for an
/// item nobody may put: a worker would wait until the harness gives up, the parent forever.
fn fed(p: &Program) -> bool {
    let parent: Vec<Call> = p
        .parent
        .iter()
        .filter_map(|s| match s {
            Step::Call { call } => Some(*call),
            _ => None,
        })
        .collect();
    p.procs
        .iter()
        .chain(std::iter::once(&parent))
        .all(|calls| random::simple_gets_are_fed(calls))
}

/// How many locks and permits the parent's calls leave held, counting every `acquire` as
/// taken (those with a timeout may not be), and every access to a value or an array too
/// (one told that a holder died holds the lock afterwards).
fn parent_holds(p: &Program) -> usize {
    let mut held: std::collections::BTreeMap<Object, usize> = Default::default();
    for step in &p.parent {
        match step {
            Step::Call {
                call: Call::Acquire { obj, .. },
            } => *held.entry(*obj).or_default() += 1,
            Step::Call {
                call:
                    call @ (Call::ValueGet
                    | Call::ValueSet { .. }
                    | Call::ValueIncrement
                    | Call::ArrayGet { .. }
                    | Call::ArraySet { .. }),
            } => *held.entry(call.object()).or_default() += 1,
            Step::Call {
                call: Call::Release { obj },
            } => {
                let n = held.entry(*obj).or_default();
                *n = n.saturating_sub(1);
            }
            _ => {}
        }
    }
    held.values().sum()
}

fn candidates(p: &Program) -> Vec<Program> {
    let mut out = Vec::new();
    // One worker's calls made by the parent instead, once every other worker sleeps on that
    // object or has ended: fewer processes racing, so the failure depends less on timing.
    if p.procs.len() > 1 {
        for w in 0..p.procs.len() {
            let Some(first) = p.procs[w].first() else {
                continue;
            };
            let mut q = without(p, w);
            q.parent.push(Step::AwaitBlocked {
                procs: (0..q.procs.len()).collect(),
                on: first.object(),
            });
            q.parent
                .extend(p.procs[w].iter().map(|&call| Step::Call { call }));
            out.push(q);
        }
    }
    if p.procs.len() > 1 {
        for w in 0..p.procs.len() {
            out.push(without(p, w));
        }
    }
    for s in 0..p.parent.len() {
        // Awaiting a sleeper orders the program; without it the failure would be left to
        // timing, so it stays, unless nothing comes after it.
        if matches!(p.parent[s], Step::AwaitBlocked { .. }) && s + 1 < p.parent.len() {
            continue;
        }
        let mut q = p.clone();
        q.parent.remove(s);
        out.push(q);
    }
    for w in 0..p.procs.len() {
        for c in 0..p.procs[w].len() {
            let mut q = p.clone();
            q.procs[w].remove(c);
            out.push(q);
        }
    }
    // Short timeouts made long: fewer ways for timing to decide the outcome, so the shrunk
    // program fails on replay too (each step only lengthens, so shrinking ends).
    for w in 0..p.procs.len() {
        for c in 0..p.procs[w].len() {
            if let Some(call) = lengthened(p.procs[w][c], LONG_MS) {
                let mut q = p.clone();
                q.procs[w][c] = call;
                out.push(q);
            }
        }
    }
    for s in 0..p.parent.len() {
        // The parent's calls come after it awaited the workers, so they get twice as long:
        // a parent's wait then outlasts the workers' lengthened ones.
        if let Step::Call { call } = p.parent[s]
            && let Some(call) = lengthened(call, 2 * LONG_MS)
        {
            let mut q = p.clone();
            q.parent[s] = Step::Call { call };
            out.push(q);
        }
    }
    out
}

/// `p` without worker `w`, the parent's references to later workers renumbered.
fn without(p: &Program, w: usize) -> Program {
    let mut q = p.clone();
    q.procs.remove(w);
    q.parent = p
        .parent
        .iter()
        .filter_map(|s| match s {
            Step::Kill { proc, .. } if *proc == w => None,
            Step::Kill { proc, after } => Some(Step::Kill {
                proc: if *proc > w { proc - 1 } else { *proc },
                after: *after,
            }),
            Step::AwaitBlocked { procs, on } => Some(Step::AwaitBlocked {
                procs: procs
                    .iter()
                    .filter(|&&x| x != w)
                    .map(|&x| if x > w { x - 1 } else { x })
                    .collect(),
                on: *on,
            }),
            other => Some(other.clone()),
        })
        .collect();
    q
}

/// The longest timeout shrinking gives a call, in milliseconds.
const LONG_MS: u32 = 200;

/// `call` with its timeout made `long_ms`, if it was shorter.
fn lengthened(call: Call, long_ms: u32) -> Option<Call> {
    let long = |t: Option<u32>| t.filter(|&ms| ms < long_ms).map(|_| Some(long_ms));
    Some(match call {
        Call::Acquire { obj, timeout_ms } => Call::Acquire {
            obj,
            timeout_ms: long(timeout_ms)?,
        },
        Call::EventWait { timeout_ms } => Call::EventWait {
            timeout_ms: long(timeout_ms)?,
        },
        Call::CondWait { timeout_ms } => Call::CondWait {
            timeout_ms: long(timeout_ms)?,
        },
        Call::BarrierWait { timeout_ms } => Call::BarrierWait {
            timeout_ms: long(timeout_ms)?,
        },
        // A simple queue's calls have no timeout to lengthen.
        Call::Put { obj, .. } | Call::Get { obj, .. } if obj == Object::SimpleQueue => {
            return None;
        }
        Call::Put {
            obj,
            item,
            timeout_ms,
        } => Call::Put {
            obj,
            item,
            timeout_ms: long(timeout_ms)?,
        },
        Call::Get { obj, timeout_ms } => Call::Get {
            obj,
            timeout_ms: long(timeout_ms)?,
        },
        Call::Join { timeout_ms } => Call::Join {
            timeout_ms: long(timeout_ms)?,
        },
        _ => return None,
    })
}

/// Shrinks a failing program: repeatedly takes the first smaller program that fails in each
/// of `shrink_runs` runs.
fn shrink(
    original: Program,
    method: StartMethod,
    observed: Observed,
    violation: Violation,
    options: &Options,
) -> anyhow::Result<Failure> {
    let mut best = (original.clone(), observed, violation);
    'outer: loop {
        for candidate in smaller(&best.0) {
            // Taken only if it fails on every one of `shrink_runs` runs, so that the shrunk
            // program fails on replay too, not only with lucky timing.
            let mut last = None;
            for _ in 0..options.shrink_runs.max(1) {
                match run_once(&candidate, method) {
                    Ok((observed, Err(violation))) => last = Some((observed, violation)),
                    // Agreed once, or the harness cannot run it: not a smaller failure.
                    Ok((_, Ok(()))) | Err(_) => {
                        last = None;
                        break;
                    }
                }
            }
            if let Some((observed, violation)) = last {
                best = (candidate, observed, violation);
                continue 'outer;
            }
        }
        break;
    }
    Ok(Failure {
        method,
        original,
        program: best.0,
        observed: best.1,
        violation: best.2,
    })
}
