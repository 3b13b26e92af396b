//! `proclife check`: thousands of random sequences on the model and real processes.
//!
//! Sequences come from [`reference::sequences`] and run through [`run::run`] inside a
//! proptest [`TestRunner`], which shrinks a failing sequence to a minimal one. The sequences
//! are spread over the three start methods (unless one is pinned), and coverage is counted
//! per method over the sequences of the search, not over the shrinking.
//! A shrunk sequence is kept as a counterexample only if it fails again when replayed alone
//! in a fresh process, every time ([`FRESH_REPLAYS`]); otherwise the sequence as first found
//! is tried the same way.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use proclife::StartMethod;
use proclife_model::{Op, TransitionGraph};
use proptest::test_runner::{Config, RngAlgorithm, TestCaseError, TestError, TestRng, TestRunner};

use crate::coverage::Coverage;
use crate::reference::{self, GenConfig, GenState, SettleMode, Transition};
use crate::run::{self, Outcomes};
use crate::timing;
use crate::trace::{Step, Trace};

/// How many times a counterexample is replayed alone in a fresh process; it is kept only if
/// every replay fails.
pub const FRESH_REPLAYS: usize = 5;

/// How many runs in a row a sequence must fail to count as failing: a disagreement that
/// does not repeat depends on timing; the search notes it and goes on looking for one that
/// repeats, and shrinking keeps only candidates that repeat.
pub const CONFIRM_RUNS: usize = 3;

/// The start methods a default check spreads its sequences over, in turn.
pub const METHODS: [StartMethod; 3] = [
    StartMethod::Fork,
    StartMethod::ForkServer,
    StartMethod::Spawn,
];

/// The operations that must meet a child that exited and was not yet reaped (the `state`
/// probe included) for a check to count as complete.
pub const UNREAPED_OPS: [&str; 7] = [
    "is_alive",
    "exitcode",
    "terminate",
    "kill",
    "join_timeout",
    "close",
    "state",
];

/// How a check runs.
#[derive(Debug, Clone)]
pub struct Options {
    /// Sequences to run.
    pub cases: u32,
    /// The random seed; the same seed and commit give the same sequences.
    pub seed: u64,
    /// Transitions per sequence, at most.
    pub max_ops: usize,
    /// Processes per sequence, at most.
    pub max_procs: usize,
    /// The settle discipline.
    pub settle: SettleMode,
    /// How the runtime starts each child; `None` spreads the sequences over [`METHODS`].
    pub method: Option<StartMethod>,
    /// Where a failing sequence is saved, if anywhere.
    pub save_dir: Option<PathBuf>,
    /// A `proclife` executable to replay a counterexample with in a fresh process; `None`
    /// replays it in this process.
    pub replayer: Option<PathBuf>,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            cases: 3000,
            seed: 0x5eed_0f9c_a711_fe00,
            max_ops: 30,
            max_procs: 3,
            settle: SettleMode::Mixed,
            method: None,
            save_dir: None,
            replayer: None,
        }
    }
}

/// A failing sequence, shrunk.
#[derive(Debug, Clone)]
pub struct Counterexample {
    /// The sequence kept: the shrunk one, or the one first found if the shrunk one did not
    /// fail alone every time; `None` if neither did.
    pub trace: Option<Trace>,
    /// The shrunk sequence.
    pub shrunk: Trace,
    /// The start method it ran with.
    pub method: StartMethod,
    /// What failed.
    pub reason: String,
    /// The kept (else the shrunk) sequence run once more in this process: both sides, step
    /// by step.
    pub replay: Outcomes,
    /// Where the kept sequence was saved.
    pub saved: Option<PathBuf>,
    /// Why nothing could be saved, if so.
    pub save_error: Option<String>,
}

/// Coverage of one start method.
#[derive(Debug, Clone)]
pub struct MethodCoverage {
    /// The method.
    pub method: StartMethod,
    /// Sequences run with it.
    pub cases: u32,
    /// Its edge hits.
    pub coverage: Coverage,
}

/// What a check found.
#[derive(Debug, Clone)]
pub struct Summary {
    /// The seed.
    pub seed: u64,
    /// Sequences run (not counting shrinking).
    pub cases: u32,
    /// Operations run in them.
    pub ops: u64,
    /// Children started in them.
    pub spawned: u64,
    /// Edge hits over every method.
    pub coverage: Coverage,
    /// Edge hits per start method used.
    pub methods: Vec<MethodCoverage>,
    /// How often each operation met a child that had exited and was not yet reaped.
    pub unreaped: BTreeMap<&'static str, u64>,
    /// The timing judgements.
    pub timing: timing::Tally,
    /// Sequences that left something behind.
    pub leaks: u32,
    /// Failures that did not repeat when the sequence ran again ([`CONFIRM_RUNS`]), each as
    /// its first reason.
    pub unconfirmed: Vec<String>,
    /// Wall-clock time, shrinking included.
    pub elapsed: Duration,
    /// The counterexample, if the runtime and the model disagreed.
    pub failure: Option<Counterexample>,
}

impl Summary {
    /// The operations of [`UNREAPED_OPS`] that never met an exited, unreaped child.
    pub fn unreaped_missed(&self) -> Vec<&'static str> {
        UNREAPED_OPS
            .into_iter()
            .filter(|op| self.unreaped.get(op).copied().unwrap_or(0) == 0)
            .collect()
    }

    /// Whether every edge was exercised and every operation of [`UNREAPED_OPS`] met an
    /// exited, unreaped child.
    pub fn is_complete(&self) -> bool {
        self.coverage.is_complete() && self.unreaped_missed().is_empty()
    }
}

/// Where a running check is, for a progress display.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// Sequences run so far.
    pub cases: u32,
    /// Edges exercised so far.
    pub covered: usize,
    /// Edges in the graph.
    pub edges: usize,
}

/// What the search counted.
#[derive(Debug)]
struct Tally {
    cases: u32,
    ops: u64,
    spawned: u64,
    coverage: Coverage,
    methods: Vec<MethodCoverage>,
    unreaped: BTreeMap<&'static str, u64>,
    timing: timing::Tally,
    leaks: u32,
    /// The first failing sequence and its method; shrinking follows and is not counted.
    first_failure: Option<(Trace, StartMethod)>,
    /// Failures that did not repeat, with their sequence and method.
    unconfirmed: Vec<(String, Trace, StartMethod)>,
}

impl Tally {
    fn new(graph: &TransitionGraph, options: &Options) -> Tally {
        let methods = match options.method {
            Some(method) => vec![method],
            None => METHODS.to_vec(),
        };
        Tally {
            cases: 0,
            ops: 0,
            spawned: 0,
            coverage: Coverage::new(graph),
            methods: methods
                .into_iter()
                .map(|method| MethodCoverage {
                    method,
                    cases: 0,
                    coverage: Coverage::new(graph),
                })
                .collect(),
            unreaped: BTreeMap::new(),
            timing: timing::Tally::default(),
            leaks: 0,
            first_failure: None,
            unconfirmed: Vec::new(),
        }
    }

    fn searching(&self) -> bool {
        self.first_failure.is_none()
    }

    /// The method of the next sequence of the search: the methods in turn.
    fn next_method(&self) -> StartMethod {
        self.methods[self.cases as usize % self.methods.len()].method
    }

    /// Counts one sequence of the search; `confirmed` says whether its failure, if any,
    /// repeated.
    fn record(
        &mut self,
        steps: Trace,
        method: StartMethod,
        outcomes: &Outcomes,
        confirmed: bool,
    ) -> Progress {
        self.cases += 1;
        self.ops += outcomes.rows.len() as u64;
        self.spawned += outcomes.spawned as u64;
        self.coverage.record(&outcomes.edges);
        if let Some(per) = self.methods.iter_mut().find(|m| m.method == method) {
            per.cases += 1;
            per.coverage.record(&outcomes.edges);
        }
        for op in &outcomes.unreaped {
            *self.unreaped.entry(op).or_default() += 1;
        }
        self.timing.add(outcomes.timing);
        self.leaks += u32::from(outcomes.leaked);
        match &outcomes.failure {
            Some(_) if confirmed => self.first_failure = Some((steps, method)),
            Some(failure) => self.unconfirmed.push((failure.to_string(), steps, method)),
            None => {}
        }
        Progress {
            cases: self.cases,
            covered: self.coverage.covered(),
            edges: self.coverage.total(),
        }
    }
}

fn rng(seed: u64) -> TestRng {
    let mut bytes = [0u8; 32];
    for (i, chunk) in bytes.chunks_mut(8).enumerate() {
        chunk.copy_from_slice(&seed.rotate_left(i as u32 * 16).to_le_bytes());
    }
    TestRng::from_seed(RngAlgorithm::ChaCha, &bytes)
}

/// Runs the check; `on_case` is called after each sequence of the search.
pub fn check(options: &Options, mut on_case: impl FnMut(&Progress)) -> Summary {
    let started = Instant::now();
    let graph = TransitionGraph::explore();
    let mut tally = Tally::new(&graph, options);
    // Counterexamples that were not kept (they did not fail every time alone): the search goes
    // on, with another seed, for one that is, at most `ROUNDS` times.
    let mut dropped: Option<Counterexample> = None;
    let mut round = 0;
    let failure = loop {
        let cases = options.cases.saturating_sub(tally.cases);
        if cases == 0 || round == ROUNDS {
            break dropped.or_else(|| unconfirmed(&tally));
        }
        let seed = options.seed.wrapping_add(round);
        let (next, result) = search(options, tally, seed, cases, &mut on_case);
        tally = next;
        round += 1;
        match result {
            Ok(()) => break dropped.or_else(|| unconfirmed(&tally)),
            Err(TestError::Fail(reason, (_, transitions, _))) => {
                let shrunk = Trace {
                    ops: transitions.into_iter().flatten().collect(),
                };
                let (first, method) = tally.first_failure.take().unwrap_or_else(|| {
                    (shrunk.clone(), options.method.unwrap_or(StartMethod::Fork))
                });
                let found = counterexample(options, shrunk, first, method, reason.to_string());
                if found.trace.is_some() {
                    break Some(found);
                }
                dropped.get_or_insert(found);
            }
            Err(TestError::Abort(reason)) => {
                break Some(Counterexample {
                    trace: None,
                    shrunk: Trace { ops: Vec::new() },
                    method: options.method.unwrap_or(StartMethod::Fork),
                    reason: format!("the search stopped: {reason}"),
                    replay: Outcomes::default(),
                    saved: None,
                    save_error: None,
                });
            }
        }
    };
    Summary {
        seed: options.seed,
        cases: tally.cases,
        ops: tally.ops,
        spawned: tally.spawned,
        coverage: tally.coverage,
        methods: tally.methods,
        unreaped: tally.unreaped,
        timing: tally.timing,
        leaks: tally.leaks,
        unconfirmed: tally
            .unconfirmed
            .iter()
            .map(|(reason, _, _)| reason.clone())
            .collect(),
        elapsed: started.elapsed(),
        failure,
    }
}

/// How many failures a check shrinks, at most, looking for one that fails every time alone.
pub const ROUNDS: u64 = 4;

/// The first failure that did not repeat, as a counterexample that is not kept.
fn unconfirmed(tally: &Tally) -> Option<Counterexample> {
    let (reason, trace, method) = tally.unconfirmed.first()?;
    Some(Counterexample {
        trace: None,
        shrunk: trace.clone(),
        method: *method,
        reason: reason.clone(),
        replay: run::run(&trace.ops, trace.procs(), *method),
        saved: None,
        save_error: Some(format!(
            "{} disagreements were found, but none repeated when its sequence ran again: they depend on timing",
            tally.unconfirmed.len()
        )),
    })
}

type Generated = (
    GenState,
    Vec<Transition>,
    Option<std::sync::Arc<std::sync::atomic::AtomicUsize>>,
);

/// The proptest search: every generated sequence run on both sides, a failure shrunk.
/// `cases` sequences drawn from `seed`, counted into `tally`, until one fails.
fn search(
    options: &Options,
    tally: Tally,
    seed: u64,
    cases: u32,
    on_case: &mut impl FnMut(&Progress),
) -> (Tally, Result<(), TestError<Generated>>) {
    let tally = RefCell::new(tally);
    let shrinking_method = Cell::new(None);
    let on_case = RefCell::new(on_case);
    let config = Config {
        cases,
        failure_persistence: None,
        max_shrink_iters: 512,
        max_global_rejects: cases.saturating_mul(16).max(1024),
        ..Config::default()
    };
    let mut runner = TestRunner::new_with_rng(config, rng(seed));
    let strategy = reference::sequences(
        GenConfig {
            max_procs: options.max_procs,
            settle: options.settle,
            job_control: true,
        },
        1..=options.max_ops.max(1),
    );
    let result = runner.run(&strategy, |(state, transitions, seen)| {
        let owners = owners(&transitions);
        let trace = Trace {
            ops: transitions.into_iter().flatten().collect(),
        };
        let method = shrinking_method
            .get()
            .unwrap_or_else(|| tally.borrow().next_method());
        let procs = state.procs.len();
        let mut outcomes = run::run(&trace.ops, procs, method);
        let confirmed = outcomes.failure.is_some()
            && (1..CONFIRM_RUNS).all(|_| run::run(&trace.ops, procs, method).failure.is_some());
        if let Some(seen) = seen {
            // proptest-state-machine first deletes the transitions a failing run never
            // reached; it learns which from this counter.
            let applied = if confirmed {
                applied(&owners, &outcomes)
            } else {
                owners.last().map_or(0, |&last| last + 1)
            };
            seen.fetch_add(applied, std::sync::atomic::Ordering::SeqCst);
        }
        let searching = tally.borrow().searching();
        if searching {
            let progress = tally
                .borrow_mut()
                .record(trace, method, &outcomes, confirmed);
            if confirmed {
                // Shrinking keeps the method the failure was found with.
                shrinking_method.set(Some(method));
            }
            (on_case.borrow_mut())(&progress);
        }
        if !confirmed {
            // A failure that does not repeat is noted (above) but does not stop the search,
            // and a shrinking candidate that fails only sometimes is not kept.
            outcomes.failure = None;
        }
        match outcomes.failure {
            None => Ok(()),
            Some(failure) => Err(TestCaseError::fail(failure.to_string())),
        }
    });
    (tally.into_inner(), result)
}

/// Which transition each step belongs to, so the shrinker learns how many were applied.
fn owners(transitions: &[Transition]) -> Vec<usize> {
    transitions
        .iter()
        .enumerate()
        .flat_map(|(index, steps)| std::iter::repeat_n(index, steps.len()))
        .collect()
}

/// How many transitions a run applied: all, or up to the one whose step failed.
fn applied(owners: &[usize], outcomes: &Outcomes) -> usize {
    let count = owners.last().map_or(0, |&last| last + 1);
    match &outcomes.failure {
        Some(failure) => owners
            .get(failure.index())
            .map_or(count, |&owner| owner + 1),
        None => count,
    }
}

/// Keeps the shrunk sequence if it fails alone every time, else the first one found if that
/// does; saves the kept one and runs it once more for the side-by-side table.
fn counterexample(
    options: &Options,
    shrunk: Trace,
    first: Trace,
    method: StartMethod,
    reason: String,
) -> Counterexample {
    let mut save_error = None;
    let mut kept = None;
    for candidate in &kept_forms(&[&shrunk, &first]) {
        match fails_alone(options, candidate, method) {
            Ok(true) => {
                kept = Some(candidate.clone());
                break;
            }
            Ok(false) => {}
            Err(error) => save_error = Some(error),
        }
    }
    let shown = kept.as_ref().unwrap_or(&shrunk);
    let replay = run::run(&shown.ops, shown.procs(), method);
    let saved = match (&kept, &options.save_dir) {
        (Some(trace), Some(dir)) => match save(dir, trace) {
            Ok(path) => Some(path),
            Err(error) => {
                save_error = Some(format!("cannot save in {}: {error}", dir.display()));
                None
            }
        },
        _ => None,
    };
    Counterexample {
        trace: kept,
        shrunk,
        method,
        reason,
        replay,
        saved,
        save_error,
    }
}

/// The forms of `traces` a counterexample may be kept in, in the order they are tried: each
/// with a settle after every operation that may cause an exit ([`settled`], with each
/// [`Probe`]), without repeats.
///
/// A sequence that races may fail only with some timings; the same sequence with a settle
/// after every exit has one correct set of observations, and only those forms are kept. A
/// failure that shows without the settles and never with them needs an exit to come after
/// some observation and before a later one: it fails on some replays and passes on others
/// (one such sequence failed five fresh replays in a row and passed the sixth), so it is not
/// a form here, and the search goes on for one that repeats. A sequence whose steps cause no
/// exit is its own [`Probe::Keep`] form.
fn kept_forms(traces: &[&Trace]) -> Vec<Trace> {
    let mut forms = Vec::new();
    for trace in traces {
        for probe in [Probe::Move, Probe::Drop, Probe::Keep, Probe::None] {
            let form = settled(trace, probe);
            if !forms.contains(&form) {
                forms.push(form);
            }
        }
    }
    forms
}

/// What [`settled`] does with the `state()` probe after an operation it puts a settle after.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Probe {
    /// The probe moves to the settle (it sees the exit).
    Move,
    /// Neither probes (the exited child stays unreaped for the next operation).
    Drop,
    /// The operation keeps its probe; the settle has none.
    Keep,
    /// No step of the sequence probes (an exited child stays unreaped until an operation
    /// collects it).
    None,
}

/// `trace` with a `settle` after every operation that may cause an exit (unless one follows
/// already), the probes of both treated as `probe` says.
pub fn settled(trace: &Trace, probe: Probe) -> Trace {
    let mut ops = Vec::with_capacity(trace.ops.len() * 2);
    let mut steps = trace.ops.iter().peekable();
    while let Some(step) = steps.next() {
        if !step.op.may_cause_exit() {
            ops.push(if probe == Probe::None {
                step.clone().unprobed()
            } else {
                step.clone()
            });
            continue;
        }
        // The settle that follows already, or a new one.
        let settle = match steps.next_if(|next| next.proc == step.proc && next.op == Op::Settle) {
            Some(settle) => settle.clone(),
            None => Step::new(step.proc, Op::Settle).unprobed(),
        };
        let (op, settle) = match probe {
            Probe::Move => (
                step.clone().unprobed(),
                Step {
                    probe: step.probe || settle.probe,
                    ..settle
                },
            ),
            Probe::Drop | Probe::None => (step.clone().unprobed(), settle.unprobed()),
            Probe::Keep => (step.clone(), settle),
        };
        ops.push(op);
        ops.push(settle);
    }
    Trace { ops }
}

/// Whether `trace` fails on each of [`FRESH_REPLAYS`] replays, each alone in a fresh process
/// (with [`Options::replayer`]) or in this one.
///
/// # Errors
///
/// A sentence when the replayer cannot be run.
fn fails_alone(options: &Options, trace: &Trace, method: StartMethod) -> Result<bool, String> {
    let Some(replayer) = &options.replayer else {
        return Ok((0..FRESH_REPLAYS).all(|_| {
            run::run(&trace.ops, trace.procs(), method)
                .failure
                .is_some()
        }));
    };
    let dir = std::env::temp_dir().join(format!("proclife-check-{}", std::process::id()));
    let file = save(&dir, trace).map_err(|e| format!("cannot write {}: {e}", dir.display()))?;
    let mut verdict = Ok(true);
    for _ in 0..FRESH_REPLAYS {
        match replay_in_fresh_process(replayer, &file, method) {
            Ok(true) => {}
            other => {
                verdict = other;
                break;
            }
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    verdict
}

/// How long one fresh replay may take before it is stopped.
const REPLAY_LIMIT: Duration = Duration::from_secs(120);

/// Runs `replayer replay FILE --method M`; `true` if it reported a failure (exit status 1).
fn replay_in_fresh_process(
    replayer: &Path,
    file: &Path,
    method: StartMethod,
) -> Result<bool, String> {
    let mut child = std::process::Command::new(replayer)
        .arg("replay")
        .arg(file)
        .arg("--method")
        .arg(method.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot run {}: {e}", replayer.display()))?;
    let deadline = Instant::now() + REPLAY_LIMIT;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => {
                return match status.code() {
                    Some(0) => Ok(false),
                    Some(1) => Ok(true),
                    _ => Err(format!("the replay in a fresh process ended with {status}")),
                };
            }
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(5)),
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "the replay in a fresh process took more than {REPLAY_LIMIT:?}"
                ));
            }
            Err(e) => return Err(format!("waiting for the replay: {e}")),
        }
    }
}

/// Saves `trace` as `DIR/check-HASH.json`, named by its content.
///
/// # Errors
///
/// When the folder cannot be made or the file written.
pub fn save(dir: &Path, trace: &Trace) -> std::io::Result<PathBuf> {
    let text = trace.to_json();
    // FNV-1a: a stable name for the same sequence.
    let hash = text.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    std::fs::create_dir_all(dir)?;
    let path = dir.join(format!("check-{:08x}.json", hash as u32));
    std::fs::write(&path, text)?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A racing sequence: the second `terminate` meets an exited child only if the first
    /// one's exit came after `exitcode` looked.
    fn racing() -> Trace {
        Trace {
            ops: vec![
                Step::new(0, Op::Start),
                Step::new(0, Op::Terminate),
                Step::new(0, Op::Exitcode),
                Step::new(0, Op::Terminate),
            ],
        }
    }

    #[test]
    fn every_kept_form_settles_after_each_exit() {
        let trace = racing();
        let forms = kept_forms(&[&trace, &trace]);
        assert!(!forms.is_empty(), "no form to keep");
        assert!(
            !forms.contains(&trace),
            "the unsettled sequence is a form a counterexample may be kept in"
        );
        for form in &forms {
            for (at, step) in form.ops.iter().enumerate() {
                if step.op.may_cause_exit() {
                    let next = form.ops.get(at + 1);
                    assert!(
                        next.is_some_and(|next| next.proc == step.proc && next.op == Op::Settle),
                        "step {at} ({:?}) of a kept form is not followed by its settle: {:?}",
                        step.op,
                        form.ops
                    );
                }
            }
        }
        assert_eq!(forms.len(), 4, "one form per probe treatment, no repeats");
    }

    #[test]
    fn a_sequence_without_exits_is_its_own_form() {
        let trace = Trace {
            ops: vec![Step::new(0, Op::Start), Step::new(0, Op::Exitcode)],
        };
        assert!(
            kept_forms(&[&trace]).contains(&trace),
            "a sequence that causes no exit cannot be kept as it is"
        );
    }
}
