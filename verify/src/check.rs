//! `proclife check`: thousands of random sequences on the model and real processes.
//!
//! Sequences come from [`reference::sequences`] and run through [`run::run`] inside a
//! proptest [`TestRunner`], which shrinks a failing sequence to a minimal one; that sequence
//! is replayed once more for the side-by-side table and saved as a replay file.
//! Edge coverage is counted over the sequences of the search, not over the shrinking.

use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use proclife::StartMethod;
use proclife_model::TransitionGraph;
use proptest::test_runner::{Config, RngAlgorithm, TestCaseError, TestError, TestRng, TestRunner};

use crate::coverage::Coverage;
use crate::reference::{self, GenConfig, SettleMode};
use crate::run::{self, Outcomes};
use crate::sut::Mutant;
use crate::trace::Trace;

/// How many times a shrunk counterexample is replayed to see it fail again.
pub const REPLAYS: usize = 20;

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
    /// A bug to plant on top of the runtime (mutation check).
    pub mutant: Option<Mutant>,
    /// How the runtime starts each child.
    pub method: StartMethod,
    /// Where a failing sequence is saved, if anywhere.
    pub save_dir: Option<PathBuf>,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            cases: 3000,
            seed: 0x5eed_0f9c_a711_fe00,
            max_ops: 30,
            max_procs: 3,
            settle: SettleMode::Mixed,
            mutant: None,
            method: StartMethod::Fork,
            save_dir: None,
        }
    }
}

/// A failing sequence, shrunk.
#[derive(Debug, Clone)]
pub struct Counterexample {
    /// The minimal sequence.
    pub trace: Trace,
    /// What proptest reported for it.
    pub reason: String,
    /// The sequence replayed again until it failed (at most [`REPLAYS`] times): both sides,
    /// step by step.
    pub replay: Outcomes,
    /// How many replays that took; if the last one agreed too, the disagreement depends on
    /// timing.
    pub replays: usize,
    /// Where it was saved.
    pub saved: Option<PathBuf>,
}

/// What a check found.
#[derive(Debug, Clone)]
pub struct Summary {
    /// Sequences run (not counting shrinking).
    pub cases: u32,
    /// Operations run in them.
    pub ops: u64,
    /// Children started in them.
    pub spawned: u64,
    /// Edge hits.
    pub coverage: Coverage,
    /// Wall-clock time, shrinking included.
    pub elapsed: Duration,
    /// The counterexample, if the runtime and the model disagreed.
    pub failure: Option<Counterexample>,
}

#[derive(Debug)]
struct Tally {
    cases: u32,
    ops: u64,
    spawned: u64,
    coverage: Coverage,
    searching: bool,
}

fn rng(seed: u64) -> TestRng {
    let mut bytes = [0u8; 32];
    for (i, chunk) in bytes.chunks_mut(8).enumerate() {
        chunk.copy_from_slice(&seed.rotate_left(i as u32 * 16).to_le_bytes());
    }
    TestRng::from_seed(RngAlgorithm::ChaCha, &bytes)
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

/// Runs the check; `on_case` is called after each sequence of the search.
pub fn check(options: &Options, mut on_case: impl FnMut(&Progress)) -> Summary {
    let started = Instant::now();
    let graph = TransitionGraph::explore();
    let tally = RefCell::new(Tally {
        cases: 0,
        ops: 0,
        spawned: 0,
        coverage: Coverage::new(&graph),
        searching: true,
    });
    let config = Config {
        cases: options.cases,
        failure_persistence: None,
        max_shrink_iters: 512,
        max_global_rejects: options.cases.saturating_mul(16).max(1024),
        ..Config::default()
    };
    let mut runner = TestRunner::new_with_rng(config, rng(options.seed));
    let strategy = reference::sequences(
        GenConfig {
            max_procs: options.max_procs,
            settle: options.settle,
        },
        1..=options.max_ops.max(1),
    );
    let on_case = RefCell::new(&mut on_case);
    let result = runner.run(&strategy, |(state, transitions, seen)| {
        // Which transition each step belongs to, so the shrinker learns how many were applied.
        let owners: Vec<usize> = transitions
            .iter()
            .enumerate()
            .flat_map(|(index, steps)| std::iter::repeat_n(index, steps.len()))
            .collect();
        let count = transitions.len();
        let steps: Vec<_> = transitions.into_iter().flatten().collect();
        let outcomes = run::run(&steps, state.procs.len(), options.mutant, options.method);
        if let Some(seen) = seen {
            // proptest-state-machine first deletes the transitions a failing run never
            // reached; it learns which from this counter.
            let applied = match &outcomes.failure {
                Some(failure) => owners
                    .get(failure.index())
                    .map_or(count, |&owner| owner + 1),
                None => count,
            };
            seen.fetch_add(applied, std::sync::atomic::Ordering::SeqCst);
        }
        let progress = {
            let mut tally = tally.borrow_mut();
            if !tally.searching {
                None
            } else {
                tally.cases += 1;
                tally.ops += outcomes.rows.len() as u64;
                tally.spawned += outcomes.spawned as u64;
                tally.coverage.record(&outcomes.edges);
                if outcomes.failure.is_some() {
                    // What follows is shrinking: it is not counted.
                    tally.searching = false;
                }
                Some(Progress {
                    cases: tally.cases,
                    covered: tally.coverage.covered(),
                    edges: tally.coverage.total(),
                })
            }
        };
        if let Some(progress) = progress {
            (on_case.borrow_mut())(&progress);
        }
        match outcomes.failure {
            None => Ok(()),
            Some(failure) => Err(TestCaseError::fail(failure.to_string())),
        }
    });
    let failure = match result {
        Ok(()) => None,
        Err(TestError::Fail(reason, (state, transitions, _))) => {
            let trace = Trace {
                ops: transitions.into_iter().flatten().collect(),
            };
            // A sequence that races may need a few runs to fail again.
            let mut replay = run::run(
                &trace.ops,
                state.procs.len(),
                options.mutant,
                options.method,
            );
            let mut replays = 1;
            while replay.failure.is_none() && replays < REPLAYS {
                replay = run::run(
                    &trace.ops,
                    state.procs.len(),
                    options.mutant,
                    options.method,
                );
                replays += 1;
            }
            let saved = options
                .save_dir
                .as_deref()
                .and_then(|dir| save(dir, &trace).ok());
            Some(Counterexample {
                trace,
                reason: reason.to_string(),
                replay,
                replays,
                saved,
            })
        }
        Err(TestError::Abort(reason)) => Some(Counterexample {
            trace: Trace { ops: Vec::new() },
            reason: format!("the search stopped: {reason}"),
            replay: run::run(&[], 1, None, options.method),
            replays: 1,
            saved: None,
        }),
    };
    let tally = tally.into_inner();
    Summary {
        cases: tally.cases,
        ops: tally.ops,
        spawned: tally.spawned,
        coverage: tally.coverage,
        elapsed: started.elapsed(),
        failure,
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
