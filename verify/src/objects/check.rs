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
    /// How many runs decide whether a shrinking candidate fails: the shrunk program failed
    /// on every one of this many runs, run after run (see `shrink`).
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
    let (observed, verdict) = run_judged(program, method)?;
    Ok((observed, verdict.map(|_| ())))
}

/// As [`run_once`], with the rows of the refusals the run showed ([`judge::rows`]).
///
/// # Errors
///
/// The harness's.
pub fn run_judged(
    program: &Program,
    method: StartMethod,
) -> anyhow::Result<(Observed, Result<judge::Rows, Violation>)> {
    let observed = scenario::run(program, method)?;
    let verdict = judge::rows(program, &observed);
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
        )
        .chain(crate::objects::scenarios::rows_and_untimed_join().map(|(program, _)| program));
    for (k, program) in fixed.enumerate() {
        let method = options.method_of(k);
        let (observed, verdict) = run_judged(&program, method)?;
        coverage.add(&observed, verdict.as_ref().ok());
        if let Err(violation) = verdict {
            let failure = shrink(program, method, observed, violation, options);
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
        let (observed, verdict) = run_judged(&program, method)?;
        coverage.add(&observed, verdict.as_ref().ok());
        progress(k + 1);
        if let Err(violation) = verdict {
            let failure = shrink(program, method, observed, violation, options);
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

/// The programs one step smaller or more ordered than `p`: an await widened to every worker
/// that calls only its object, a worker's calls made by the parent (with the releases the
/// worker's end would have made), a worker removed, half of a worker's calls removed, a
/// parent step removed (an await only when nothing follows it, since it orders the
/// program), one call removed, one short timeout made long (a worker's to [`LONG_MS`], the
/// parent's to twice that), or, last, the workers started together. Awaits repeated back to
/// back are made one, and a candidate that ends with more locks or permits held than `p`
/// ([`held_at_end`]), where a simple queue's `get` may wait for an item nobody puts, or where
/// a pipe's `recv` may wait for end of file forever ([`pipe_waits_end`]), is left out: it
/// would wait until the harness gives up, which is no smaller failure.
fn smaller(p: &Program) -> Vec<Program> {
    let held = held_at_end(p);
    let mut out: Vec<Program> = candidates(p)
        .into_iter()
        .map(|mut q| {
            q.parent
                .dedup_by(|b, a| matches!(a, Step::AwaitBlocked { .. }) && a == b);
            q
        })
        .filter(|q| q != p && held_at_end(q) <= held && fed(q) && pipe_waits_end(q) && joins_end(q))
        .collect();
    out.dedup();
    out
}

/// Whether every untimed `get` and `join` of the `JoinableQueue` in `p` ends
/// ([`random::joins_end`]).
pub(crate) fn joins_end(p: &Program) -> bool {
    let parent = crate::objects::scenario::parent_calls(p);
    let kills = p.parent.iter().any(|s| matches!(s, Step::Kill { .. }));
    let calls = p
        .procs
        .iter()
        .map(Vec::as_slice)
        .chain(std::iter::once(parent.as_slice()));
    random::joins_end(calls, kills)
}

/// Whether no process of `p` waits in a `SimpleQueue.get` (which has no timeout) for an
/// item nobody may put: a worker would wait until the harness gives up, the parent forever.
fn fed(p: &Program) -> bool {
    let parent = crate::objects::scenario::parent_calls(p);
    p.procs
        .iter()
        .chain(std::iter::once(&parent))
        .all(|calls| random::simple_gets_are_fed(calls))
}

/// Whether every untimed `recv` on a pipe in `p` ends: each process receives only through
/// an end whose sending end it no longer holds (it closed it or never held it), all of a
/// pipe's receives go through one end (two processes receiving each way could wait for each
/// other), the parent holds no end once its steps are done, and a worker is killed at the
/// latest in its first receive (the kill waits for that many calls to begin, and a later
/// one may wait for the parent's closes, which come after the kill).
pub(crate) fn pipe_waits_end(p: &Program) -> bool {
    let parent = p.procs.len();
    let parent_calls = crate::objects::scenario::parent_calls(p);
    let mut ends_received: std::collections::BTreeMap<Object, u8> = Default::default();
    for (proc, calls) in p
        .procs
        .iter()
        .chain(std::iter::once(&parent_calls))
        .enumerate()
    {
        // The ends this process holds, by pipe: the start's, less those it closed.
        let mut held: std::collections::BTreeMap<Object, [bool; 2]> = Default::default();
        let start = |e: usize| p.setup.ends[e] & 1 << proc.min(31) != 0;
        for call in calls {
            match *call {
                Call::CloseEnd { obj, end } => {
                    held.entry(obj).or_insert([start(0), start(1)])[usize::from(end) % 2] = false;
                }
                Call::Recv { obj, end } => {
                    let h = held.entry(obj).or_insert([start(0), start(1)]);
                    let receives = h[usize::from(end) % 2];
                    if receives && h[1 - usize::from(end) % 2] {
                        return false;
                    }
                    if receives && *ends_received.entry(obj).or_insert(end) != end {
                        return false;
                    }
                }
                _ => {}
            }
        }
        if proc == parent {
            for obj in [Object::Pipe, Object::OneWayPipe] {
                let h = held.get(&obj).copied().unwrap_or([start(0), start(1)]);
                let used = p
                    .procs
                    .iter()
                    .chain(std::iter::once(&parent_calls))
                    .flatten()
                    .any(|c| c.object() == obj);
                if used && (h[0] || h[1]) {
                    return false;
                }
            }
        }
    }
    p.parent.iter().all(|s| match s {
        Step::Kill { proc, after } => p.procs.get(*proc).is_none_or(|calls| {
            let first = calls.iter().position(|c| matches!(c, Call::Recv { .. }));
            first.is_none_or(|i| *after <= i + 1)
        }),
        _ => true,
    })
}

/// How many locks and permits stay held after `p`'s calls, where a later call may wait for
/// them: all the parent's calls leave held ([`held_after`]), and the semaphore permits a
/// worker's calls leave taken (a worker's end releases its locks, not its permits). A
/// worker's calls made by the parent move its permits from one count to the other.
fn held_at_end(p: &Program) -> usize {
    let parent = p.parent.iter().filter_map(|step| match step {
        Step::Call { call } => Some(call),
        _ => None,
    });
    let permits = |calls: &[Call]| -> usize {
        held_after(calls)
            .into_iter()
            .filter(|(obj, _)| matches!(obj, Object::Semaphore | Object::BoundedSemaphore))
            .map(|(_, n)| n)
            .sum()
    };
    held_after(parent).values().sum::<usize>()
        + p.procs.iter().map(|calls| permits(calls)).sum::<usize>()
}

/// Per object, how many levels of it `calls` leave held, counting every `acquire` as taken
/// (those with a timeout may not be), and every access to a value or an array too (one told
/// that a holder died holds the lock afterwards).
fn held_after<'a>(
    calls: impl IntoIterator<Item = &'a Call>,
) -> std::collections::BTreeMap<Object, usize> {
    let mut held: std::collections::BTreeMap<Object, usize> = Default::default();
    for call in calls {
        match *call {
            Call::Acquire { obj, .. } => *held.entry(obj).or_default() += 1,
            Call::ValueGet
            | Call::ValueSet { .. }
            | Call::ValueIncrement
            | Call::ArrayGet { .. }
            | Call::ArraySet { .. } => *held.entry(call.object()).or_default() += 1,
            Call::Release { obj } => {
                let n = held.entry(obj).or_default();
                *n = n.saturating_sub(1);
            }
            _ => {}
        }
    }
    held
}

fn candidates(p: &Program) -> Vec<Program> {
    let mut out = Vec::new();
    // An await widened to every worker that calls only the awaited object (so it sleeps on
    // it or ends, and the await ends): what the program does after the await then no
    // longer depends on how fast those workers got there. First, so that the descent
    // orders the program before it shrinks it.
    for (s, step) in p.parent.iter().enumerate() {
        if let Step::AwaitBlocked { procs, on } = step {
            let wider: Vec<usize> = (0..p.procs.len())
                .filter(|w| {
                    procs.contains(w)
                        || (!p.procs[*w].is_empty()
                            && p.procs[*w].iter().all(|c| c.object() == *on))
                })
                .collect();
            if wider.len() > procs.len() {
                let mut q = p.clone();
                q.parent[s] = Step::AwaitBlocked {
                    procs: wider,
                    on: *on,
                };
                out.push(q);
            }
        }
    }
    // One worker's calls made by the parent instead, once every other worker sleeps on that
    // object or has ended: fewer processes racing, so the failure depends less on timing.
    if p.procs.len() > 1 {
        for w in 0..p.procs.len() {
            let Some(first) = p.procs[w].first() else {
                continue;
            };
            let mut q = without(p, w);
            // The parent holds the pipe ends the worker held too.
            let parent = q.procs.len();
            for e in 0..2 {
                if p.setup.ends[e] & 1 << w != 0 {
                    q.setup.ends[e] |= 1 << parent;
                }
            }
            q.parent.push(Step::AwaitBlocked {
                procs: (0..q.procs.len()).collect(),
                on: first.object(),
            });
            q.parent
                .extend(p.procs[w].iter().map(|&call| Step::Call { call }));
            // A worker's end releases the locks it still holds; the parent's calls do not
            // end, so they release them explicitly (otherwise the filter of `smaller` drops
            // the candidate, and the program keeps two workers racing).
            q.parent.extend(
                released_at_end(&p.procs[w])
                    .into_iter()
                    .map(|call| Step::Call { call }),
            );
            out.push(q);
        }
    }
    if p.procs.len() > 1 {
        for w in 0..p.procs.len() {
            out.push(without(p, w));
        }
    }
    // Half of a worker's calls removed: a long program shrinks in a number of steps that
    // grows with the logarithm of its length, not the length.
    for w in 0..p.procs.len() {
        let len = p.procs[w].len();
        if len >= 4 {
            for half in [0..len / 2, len / 2..len] {
                let mut q = p.clone();
                q.procs[w].drain(half);
                out.push(q);
            }
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
    // The workers started together: last, for a failure that needs two workers' calls to
    // overlap (a lost update), which no await orders; without it, a worker started late
    // under load can miss the other's window.
    if p.procs.len() > 1 && !p.setup.start_together {
        let mut q = p.clone();
        q.setup.start_together = true;
        out.push(q);
    }
    out
}

/// The releases a process ending after `calls` makes implicitly: one per level of every
/// `Lock`, `RLock` and `Condition` it still holds ([`held_after`]; dropping a held lock's
/// handle releases it, a semaphore's permits stay taken).
fn released_at_end(calls: &[Call]) -> Vec<Call> {
    held_after(calls)
        .into_iter()
        .filter(|(obj, _)| matches!(obj, Object::Lock | Object::RLock | Object::Condition))
        .flat_map(|(obj, n)| std::iter::repeat_n(Call::Release { obj }, n))
        .collect()
}

/// `p` without worker `w`, the parent's references to later workers renumbered.
fn without(p: &Program, w: usize) -> Program {
    let mut q = p.clone();
    q.procs.remove(w);
    // The holders of the pipes' ends renumbered: bit `w` out, the later ones (the parent's
    // last) one down.
    for mask in &mut q.setup.ends {
        let low = *mask & ((1 << w) - 1);
        *mask = low | (*mask >> (w + 1)) << w;
    }
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

/// When a shrinking candidate counts as failing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Accept {
    /// It failed on every one of the runs: the failure does not depend on timing.
    Every,
    /// It failed on at least one of the runs.
    Any,
}

/// One run of a program: its history and the violation if it failed, `None` if it agreed
/// or the harness could not run it.
type Run<'a> = dyn FnMut(&Program) -> Option<(Observed, Violation)> + 'a;

/// A failing program, the history of a failing run, and why it failed.
type Failing = (Program, Observed, Violation);

/// The greedy descent: repeatedly takes the first smaller program that fails (as `accept`
/// says) in `runs` runs. Returns the last program taken and its failing run.
fn descend(mut best: Failing, run: &mut Run<'_>, runs: u32, accept: Accept) -> Failing {
    'outer: loop {
        for candidate in smaller(&best.0) {
            if let Some((observed, violation)) = fails(&candidate, run, runs, accept) {
                best = (candidate, observed, violation);
                continue 'outer;
            }
        }
        return best;
    }
}

/// Runs `program` up to `runs` times; its last failing run if it fails as `accept` says.
fn fails(
    program: &Program,
    run: &mut Run<'_>,
    runs: u32,
    accept: Accept,
) -> Option<(Observed, Violation)> {
    let mut last = None;
    for _ in 0..runs.max(1) {
        match run(program) {
            Some(failed) if accept == Accept::Any => return Some(failed),
            Some(failed) => last = Some(failed),
            None if accept == Accept::Every => return None,
            None => {}
        }
    }
    last
}

/// Shrinks a failing program to one that fails on every one of `runs` runs, so that it
/// fails on replay too, not only with lucky timing.
///
/// First the descent takes only candidates that fail on every run. A program found failing
/// once may fail only now and then, and so may every candidate one step from it; if the
/// program reached fails on some of `runs` further runs only, a second descent takes
/// candidates that fail at least once (fewer calls and processes leave timing less to
/// decide) and a third one, from there, again only those that fail on every run. Its result
/// is kept if it fails on every one of `runs` further runs; otherwise the first descent's is.
fn shrink_with(found: Failing, run: &mut Run<'_>, runs: u32) -> Failing {
    let best = descend(found, run, runs, Accept::Every);
    if fails(&best.0, run, runs, Accept::Every).is_some() {
        return best;
    }
    let loose = descend(best.clone(), run, runs, Accept::Any);
    let tight = descend(loose, run, runs, Accept::Every);
    match fails(&tight.0, run, runs, Accept::Every) {
        Some((observed, violation)) => (tight.0, observed, violation),
        None => best,
    }
}

/// Shrinks `original`, found failing under `method` with `observed` and `violation`, by
/// running candidates in real processes (see `shrink_with`).
fn shrink(
    original: Program,
    method: StartMethod,
    observed: Observed,
    violation: Violation,
    options: &Options,
) -> Failure {
    let mut run = |p: &Program| match run_once(p, method) {
        Ok((observed, Err(violation))) => Some((observed, violation)),
        Ok((_, Ok(()))) | Err(_) => None,
    };
    let best = shrink_with(
        (original.clone(), observed, violation),
        &mut run,
        options.shrink_runs,
    );
    Failure {
        method,
        original,
        program: best.0,
        observed: best.1,
        violation: best.2,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::objects::worker::Setup;
    use proclife_model::objects::History;

    const COND: Object = Object::Condition;

    /// A failing program as the random programs find them: the waiter and the notification
    /// that show the fault, among calls that have nothing to do with it.
    fn found() -> Program {
        let noise = [Call::Set, Call::Clear, Call::IsSet, Call::Set];
        let mut waiter = vec![
            Call::Acquire {
                obj: COND,
                timeout_ms: None,
            },
            Call::CondWait {
                timeout_ms: Some(300),
            },
            Call::Release { obj: COND },
        ];
        waiter.extend(noise);
        Program {
            setup: Default::default(),
            procs: vec![noise.to_vec(), waiter, noise.to_vec()],
            parent: [
                Call::Acquire {
                    obj: COND,
                    timeout_ms: None,
                },
                Call::Notify { n: 0 },
                Call::Release { obj: COND },
            ]
            .into_iter()
            .map(|call| Step::Call { call })
            .collect(),
        }
    }

    fn lines(p: &Program) -> usize {
        p.procs.iter().map(Vec::len).sum::<usize>() + p.parent.len()
    }

    fn shows_fault(p: &Program) -> bool {
        let waits = p
            .procs
            .iter()
            .any(|calls| calls.iter().any(|c| matches!(c, Call::CondWait { .. })));
        let notifies = p.parent.iter().any(|s| {
            matches!(
                s,
                Step::Call {
                    call: Call::Notify { n: 0 }
                }
            )
        });
        waits && notifies
    }

    fn failed() -> (Observed, Violation) {
        let observed = Observed {
            history: History::new(Vec::new()),
            elapsed_us: Vec::new(),
            deaths: Vec::new(),
        };
        let violation = Violation {
            rule: "planted",
            entries: Vec::new(),
            explanation: String::new(),
        };
        (observed, violation)
    }

    /// A program that shows the fault fails on every run once it is down to `small` lines,
    /// and before that on one run in `one_in` only (timing decides).
    fn runner(small: usize, one_in: u32) -> impl FnMut(&Program) -> Option<(Observed, Violation)> {
        let mut runs = 0u32;
        move |p| {
            runs += 1;
            let lucky = runs.is_multiple_of(one_in);
            (shows_fault(p) && (lines(p) <= small || lucky)).then(failed)
        }
    }

    /// Every random program's untimed waits on a pipe or a joinable queue end, and so does
    /// every shrinking candidate the filters let through; removing a `task_done` of a
    /// program with an untimed join, or the parent's close of a pipe's sending end, is
    /// caught.
    #[test]
    fn untimed_waits_of_random_programs_end() {
        let (mut joins, mut pipes) = (0, 0);
        for seed in 0..400 {
            let p = crate::objects::random::program(seed);
            assert!(pipe_waits_end(&p), "seed {seed}: {p:?}");
            assert!(joins_end(&p), "seed {seed}: {p:?}");
            for q in smaller(&p) {
                assert!(pipe_waits_end(&q) && joins_end(&q), "seed {seed}: {q:?}");
            }
            if p.procs
                .iter()
                .flatten()
                .any(|c| *c == Call::Join { timeout_ms: None })
            {
                joins += 1;
                let mut q = p.clone();
                for calls in &mut q.procs {
                    if let Some(i) = calls.iter().position(|c| *c == Call::TaskDone) {
                        calls.remove(i);
                        break;
                    }
                }
                assert!(q == p || !joins_end(&q), "seed {seed}: {q:?}");
            }
            let closes = |s: &Step| {
                matches!(
                    s,
                    Step::Call {
                        call: Call::CloseEnd { .. }
                    }
                )
            };
            if p.uses_pipes() && p.parent.iter().any(closes) {
                pipes += 1;
                let mut q = p.clone();
                q.parent.retain(|s| !closes(s));
                assert!(!pipe_waits_end(&q), "seed {seed}: {q:?}");
            }
        }
        assert!(
            joins > 0 && pipes > 0,
            "{joins} join programs, {pipes} pipe programs"
        );
    }

    /// Two workers, one waiting on the condition and one notifying it without releasing it
    /// (its end releases it): the candidate that makes the parent the notifier, after it
    /// awaited the waiter asleep, passes the filters, so the shrunk program does not leave
    /// the order of the wait and the notification to timing.
    #[test]
    fn a_notifier_that_ends_holding_the_lock_can_become_the_parent() {
        let acquire = Call::Acquire {
            obj: COND,
            timeout_ms: None,
        };
        let racing = Program {
            setup: Default::default(),
            procs: vec![
                vec![
                    acquire,
                    Call::CondWait {
                        timeout_ms: Some(200),
                    },
                ],
                vec![acquire, Call::Notify { n: 0 }],
            ],
            parent: Vec::new(),
        };
        let ordered: Vec<Step> = [
            Step::AwaitBlocked {
                procs: vec![0],
                on: COND,
            },
            Step::Call { call: acquire },
            Step::Call {
                call: Call::Notify { n: 0 },
            },
            Step::Call {
                call: Call::Release { obj: COND },
            },
        ]
        .into();
        let smaller = smaller(&racing);
        assert!(
            smaller
                .iter()
                .any(|q| q.procs == racing.procs[..1] && q.parent == ordered),
            "expected a candidate with the notifier in the parent after an await, got {smaller:?}"
        );
    }

    /// A worker that keeps a semaphore's permit, beside one that waits for it: the candidate
    /// that makes the parent the holder passes the filter (the permit stays taken either
    /// way), while one that drops a worker's release of a permit does not.
    #[test]
    fn a_permit_holder_can_become_the_parent() {
        let sem = Object::Semaphore;
        let acquire = Call::Acquire {
            obj: sem,
            timeout_ms: None,
        };
        let waiter = vec![Call::Acquire {
            obj: sem,
            timeout_ms: Some(200),
        }];
        let racing = Program {
            setup: Default::default(),
            procs: vec![waiter.clone(), vec![acquire]],
            parent: Vec::new(),
        };
        let smaller_ = smaller(&racing);
        assert!(
            smaller_.iter().any(|q| q.procs == [waiter.clone()]
                && q.parent.last() == Some(&Step::Call { call: acquire })),
            "expected the holder moved into the parent, got {smaller_:?}"
        );
        let releasing = Program {
            procs: vec![waiter, vec![acquire, Call::Release { obj: sem }]],
            ..racing
        };
        assert!(
            smaller(&releasing)
                .iter()
                .all(|q| q.procs.get(1) != Some(&vec![acquire])),
            "a candidate kept the permit taken"
        );
    }

    /// Two workers waiting on the condition, the parent awaiting only one of them before it
    /// notifies: the first candidate awaits both, and no candidate awaits a worker that
    /// calls another object (it might sleep there, and the await would not end).
    #[test]
    fn an_await_is_widened_to_every_worker_of_its_object() {
        let waiter = vec![
            Call::Acquire {
                obj: COND,
                timeout_ms: None,
            },
            Call::CondWait {
                timeout_ms: Some(200),
            },
        ];
        let await_on = |procs: Vec<usize>| Step::AwaitBlocked { procs, on: COND };
        let p = Program {
            setup: Default::default(),
            procs: vec![
                waiter.clone(),
                waiter,
                vec![Call::EventWait { timeout_ms: None }],
            ],
            parent: vec![
                await_on(vec![1]),
                Step::Call {
                    call: Call::Notify { n: 1 },
                },
            ],
        };
        let first = candidates(&p).into_iter().next();
        assert_eq!(
            first.map(|q| q.parent[0].clone()),
            Some(await_on(vec![0, 1])),
            "expected the await widened to both waiters first"
        );
    }

    /// Two workers whose calls must overlap: the last candidate starts them together; one
    /// worker has nothing to overlap with, and a program that starts them together already
    /// is not offered again.
    #[test]
    fn racing_workers_are_offered_a_common_start() {
        let p = Program {
            setup: Default::default(),
            procs: vec![vec![Call::ValueIncrement], vec![Call::ValueIncrement]],
            parent: Vec::new(),
        };
        let last = candidates(&p).pop().map(|q| q.setup.start_together);
        assert_eq!(
            last,
            Some(true),
            "expected the last candidate to start them together"
        );
        let together = Program {
            setup: Setup {
                start_together: true,
                ..Setup::default()
            },
            ..p.clone()
        };
        assert!(
            candidates(&together).iter().all(|q| q.setup.start_together),
            "a candidate dropped the common start"
        );
        let alone = Program {
            procs: vec![vec![Call::ValueIncrement]],
            ..p
        };
        assert!(
            candidates(&alone).iter().all(|q| !q.setup.start_together),
            "one worker was offered a common start"
        );
    }

    #[test]
    fn a_program_that_fails_every_time_shrinks_to_the_fault() {
        let (observed, violation) = failed();
        let mut run = runner(usize::MAX, 1);
        let (program, ..) = shrink_with((found(), observed, violation), &mut run, 3);
        assert!(
            shows_fault(&program),
            "the shrunk program lost the fault: {program:?}"
        );
        assert_eq!(
            lines(&program),
            2,
            "expected the wait and the notification alone, got {program:?}"
        );
    }

    #[test]
    fn a_program_that_fails_now_and_then_still_shrinks_to_one_that_always_fails() {
        // Every candidate one step from the program found fails on one run in three, so a
        // descent that takes only candidates failing on every run cannot leave it.
        let (observed, violation) = failed();
        let mut run = runner(6, 3);
        let (program, ..) = shrink_with((found(), observed, violation), &mut run, 3);
        assert!(
            shows_fault(&program),
            "the shrunk program lost the fault: {program:?}"
        );
        assert!(
            lines(&program) <= 6,
            "expected at most 6 lines (the size at which it fails every time), got {}: {program:?}",
            lines(&program)
        );
    }
}
