//! `proclife conform`: random settled sequences on the model and on CPython, compared
//! observation by observation.
//!
//! Sequences come from the same generator as `proclife check`, always settled (CPython cannot
//! be asked to replay a race). Each runs on the model ([`Possible`]) and through the Python
//! program ([`crate::cpython`]); CPython's observation must be one the model admits, or a
//! documented deviation ([`crate::deviations`]), in which case the model's own observation
//! is carried on. A disagreement is shrunk by proptest and saved as an annotated replay file
//! ([`crate::scenarios`]) with the model's and CPython's observations beside each operation.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use proclife::StartMethod;
use proclife_model::{Op, Outcome, Possible, PyError, PyErrorKind, Value};
use proptest::test_runner::{Config, RngAlgorithm, TestCaseError, TestError, TestRng, TestRunner};

use crate::cpython::{Oracle, OracleError};
use crate::deviations::Deviation;
use crate::reference::{self, GenConfig, SettleMode};
use crate::scenarios::{Annotated, Annotations};
use crate::trace::{Step, Trace};

/// A deviation planted in the model's predictions, to show that `conform` catches and
/// shrinks one. It distorts only what `conform` compares, never the model itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Plant {
    /// The model words `start()` of a started process differently.
    StartTwiceMessage,
    /// The model says a child that panicked (raised) exits with 2 instead of 1.
    PanicExitCode,
}

impl Plant {
    /// Every plant.
    pub const ALL: [Plant; 2] = [Plant::StartTwiceMessage, Plant::PanicExitCode];

    /// The command-line name.
    pub fn name(self) -> &'static str {
        match self {
            Plant::StartTwiceMessage => "start-twice-message",
            Plant::PanicExitCode => "panic-exit-code",
        }
    }

    /// The plant with this name.
    pub fn from_name(name: &str) -> Option<Plant> {
        Plant::ALL.into_iter().find(|p| p.name() == name)
    }
}

/// One step of a comparison.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// The step.
    pub step: Step,
    /// What the model admits.
    pub admitted: BTreeSet<Outcome>,
    /// What CPython gave.
    pub cpython: Outcome,
    /// The documented deviation that explains a difference, if any.
    pub deviation: Option<String>,
}

impl Row {
    /// Whether CPython gave what the model admits (a documented deviation does not agree).
    pub fn agrees(&self) -> bool {
        self.admitted.contains(&self.cpython)
    }

    /// The model's observation to show: CPython's if admitted, else the first admitted.
    pub fn model_outcome(&self) -> Option<&Outcome> {
        if self.agrees() {
            Some(&self.cpython)
        } else {
            self.admitted.iter().next()
        }
    }
}

/// The comparison of one sequence.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Verdict {
    /// One row per step compared (up to and including a disagreement).
    pub rows: Vec<Row>,
    /// The first step CPython and the model disagree on, outside the documented deviations.
    pub disagreement: Option<usize>,
}

impl Verdict {
    /// A sentence about the disagreement, if there is one.
    pub fn reason(&self) -> Option<String> {
        let index = self.disagreement?;
        let row = self.rows.get(index)?;
        let admitted: Vec<String> = row.admitted.iter().map(ToString::to_string).collect();
        Some(format!(
            "step {index} ({}): CPython gave {}, the model admits {}",
            row.step.to_json(),
            row.cpython,
            admitted.join(" | ")
        ))
    }
}

/// What a plant makes of the model's admitted outcomes for `op`, given whether the process's
/// puppet was told to panic.
fn planted(
    plant: Option<Plant>,
    op: &Op,
    panicked: bool,
    admitted: BTreeSet<Outcome>,
) -> BTreeSet<Outcome> {
    match plant {
        Some(Plant::StartTwiceMessage) if *op == Op::Start => admitted
            .into_iter()
            .map(|o| {
                if o == Outcome::Raised(PyError::START_TWICE) {
                    Outcome::Raised(PyError {
                        kind: PyErrorKind::AssertionError,
                        message: "cannot start a process more than once".into(),
                    })
                } else {
                    o
                }
            })
            .collect(),
        Some(Plant::PanicExitCode) if *op == Op::Exitcode && panicked => admitted
            .into_iter()
            .map(|o| {
                if o == Outcome::Returned(Value::Int(1)) {
                    Outcome::Returned(Value::Int(2))
                } else {
                    o
                }
            })
            .collect(),
        _ => admitted,
    }
}

/// Compares CPython's `observed` outcomes for `steps` with the model, step by step.
pub fn compare(
    steps: &[Step],
    observed: &[Outcome],
    deviations: &[Deviation],
    plant: Option<Plant>,
) -> Verdict {
    let procs = steps.iter().map(|s| s.proc + 1).max().unwrap_or(0);
    let mut possibles = vec![Possible::new(); procs];
    let mut panicked = vec![false; procs];
    let mut rows = Vec::new();
    for (index, (step, cpython)) in steps.iter().zip(observed).enumerate() {
        let possible = &mut possibles[step.proc];
        let admitted = planted(
            plant,
            &step.op,
            panicked[step.proc],
            possible.admits(&step.op),
        );
        let deviation = if admitted.contains(cpython) {
            None
        } else {
            deviations
                .iter()
                .find(|d| d.explains(&step.op, &admitted, cpython))
        };
        // After a documented deviation the model goes on with its own observation.
        let carried = match deviation {
            Some(d) => d.model.clone(),
            None => cpython.clone(),
        };
        let row = Row {
            step: step.clone(),
            admitted: admitted.clone(),
            cpython: cpython.clone(),
            deviation: deviation.map(|d| d.id.clone()),
        };
        rows.push(row);
        if !admitted.contains(&carried) || possible.observe(&step.op, &carried).is_err() {
            return Verdict {
                rows,
                disagreement: Some(index),
            };
        }
        if step.op == Op::ChildPanic && *cpython == Outcome::bool(true) {
            panicked[step.proc] = true;
        }
    }
    Verdict {
        rows,
        disagreement: None,
    }
}

/// How a conformance run goes.
#[derive(Debug, Clone)]
pub struct Options {
    /// The Python interpreter.
    pub python: PathBuf,
    /// Sequences to run.
    pub cases: u32,
    /// The random seed; the same seed and commit give the same sequences.
    pub seed: u64,
    /// Transitions per sequence, at most.
    pub max_ops: usize,
    /// Processes per sequence, at most.
    pub max_procs: usize,
    /// CPython's start method.
    pub method: StartMethod,
    /// Where a disagreement is saved, if anywhere.
    pub save_dir: Option<PathBuf>,
    /// A deviation planted in the model's predictions.
    pub plant: Option<Plant>,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            python: PathBuf::from("python3"),
            cases: 200,
            seed: 0x5eed_0f9c_a711_fe00,
            max_ops: 30,
            max_procs: 3,
            method: StartMethod::Fork,
            save_dir: None,
            plant: None,
        }
    }
}

/// A disagreement, shrunk.
#[derive(Debug, Clone)]
pub struct Counterexample {
    /// The comparison of the minimal sequence.
    pub verdict: Verdict,
    /// The minimal sequence.
    pub trace: Trace,
    /// Where it was saved (with both sides' observations).
    pub saved: Option<PathBuf>,
    /// Whether it disagreed again when it was run once more (and so could be shrunk).
    pub reproduced: bool,
}

/// What a conformance run found.
#[derive(Debug, Clone)]
pub struct Summary {
    /// CPython's version.
    pub version: (u64, u64, u64),
    /// Sequences run (not counting shrinking).
    pub cases: u32,
    /// Operations compared in them.
    pub ops: u64,
    /// Operations on which CPython gave what the model admits.
    pub agreed: u64,
    /// Documented deviations met, by id.
    pub deviations: BTreeMap<String, u64>,
    /// Wall-clock time, shrinking included.
    pub elapsed: Duration,
    /// The shrunk disagreement, if any.
    pub failure: Option<Counterexample>,
}

fn rng(seed: u64) -> TestRng {
    let mut bytes = [0u8; 32];
    for (i, chunk) in bytes.chunks_mut(8).enumerate() {
        chunk.copy_from_slice(&seed.rotate_left(i as u32 * 16).to_le_bytes());
    }
    TestRng::from_seed(RngAlgorithm::ChaCha, &bytes)
}

#[derive(Debug, Default)]
struct Tally {
    cases: u32,
    ops: u64,
    agreed: u64,
    deviations: BTreeMap<String, u64>,
    shrinking: bool,
    error: Option<OracleError>,
    /// The first disagreeing sequence and its verdict, as the search found it.
    found: Option<(Vec<Step>, Verdict)>,
}

/// Runs the conformance check; `on_case` gets the number of sequences run so far.
///
/// # Errors
///
/// An [`OracleError`] when the interpreter is not CPython 3.9+, or the Python program dies,
/// stalls or prints garbage; nothing it started is left running.
pub fn conform(options: &Options, mut on_case: impl FnMut(u32)) -> Result<Summary, OracleError> {
    let started = Instant::now();
    let oracle = Oracle::new(&options.python)?;
    let deviations = crate::deviations::all().map_err(OracleError)?;
    let tally = RefCell::new(Tally::default());
    let config = Config {
        cases: options.cases,
        failure_persistence: None,
        // Shrinking runs CPython for every candidate; [`shrink`] does it by whole transitions,
        // which keeps every candidate settled.
        max_shrink_iters: 0,
        max_global_rejects: options.cases.saturating_mul(16).max(1024),
        ..Config::default()
    };
    let mut runner = TestRunner::new_with_rng(config, rng(options.seed));
    let strategy = reference::sequences(
        GenConfig {
            max_procs: options.max_procs,
            settle: SettleMode::Always,
            // The CPython program has no puppet that stops or waits in the kernel outside its
            // primitives (decision 0017).
            job_control: false,
        },
        1..=options.max_ops.max(1),
    );
    let on_case = RefCell::new(&mut on_case);
    let result = runner.run(&strategy, |(_, transitions, _)| {
        if tally.borrow().error.is_some() {
            return Ok(());
        }
        let steps: Vec<Step> = transitions.into_iter().flatten().collect();
        let observed = match oracle.run(&steps, options.method) {
            Ok(observed) => observed,
            Err(error) => {
                tally.borrow_mut().error = Some(error);
                return Ok(());
            }
        };
        let verdict = compare(&steps, &observed.outcomes, &deviations, options.plant);
        let mut t = tally.borrow_mut();
        if t.found.is_none() && verdict.disagreement.is_some() {
            t.found = Some((steps.clone(), verdict.clone()));
        }
        if !t.shrinking {
            t.cases += 1;
            t.ops += verdict.rows.len() as u64;
            t.agreed += verdict.rows.iter().filter(|r| r.agrees()).count() as u64;
            for id in verdict.rows.iter().filter_map(|r| r.deviation.clone()) {
                *t.deviations.entry(id).or_default() += 1;
            }
            t.shrinking = verdict.disagreement.is_some();
            (on_case.borrow_mut())(t.cases);
        }
        match verdict.reason() {
            None => Ok(()),
            Some(reason) => Err(TestCaseError::fail(reason)),
        }
    });
    let mut tally = tally.into_inner();
    if let Some(error) = tally.error.take() {
        return Err(error);
    }
    let failure = match result {
        Ok(()) => None,
        Err(TestError::Fail(_, (_, transitions, _))) => {
            let judge = Judge {
                oracle: &oracle,
                method: options.method,
                deviations: &deviations,
                plant: options.plant,
            };
            let (trace, verdict, reproduced) = match shrink(&judge, transitions) {
                Some((trace, verdict)) => (trace, verdict, true),
                // It did not disagree again: report it as it was found, unshrunk.
                None => {
                    let (steps, verdict) = tally.found.take().unwrap_or_default();
                    (Trace { ops: steps }, verdict, false)
                }
            };
            let saved = options
                .save_dir
                .as_deref()
                .and_then(|dir| save(dir, &trace, &verdict).ok());
            Some(Counterexample {
                verdict,
                trace,
                saved,
                reproduced,
            })
        }
        Err(TestError::Abort(reason)) => {
            return Err(OracleError(format!("the search stopped: {reason}")));
        }
    };
    Ok(Summary {
        version: oracle.version(),
        cases: tally.cases,
        ops: tally.ops,
        agreed: tally.agreed,
        deviations: tally.deviations,
        elapsed: started.elapsed(),
        failure,
    })
}

/// Runs candidate sequences on CPython and the model.
struct Judge<'a> {
    oracle: &'a Oracle,
    method: StartMethod,
    deviations: &'a [Deviation],
    plant: Option<Plant>,
}

/// The most candidates [`shrink`] tries.
pub const SHRINK_RUNS: usize = 300;

impl Judge<'_> {
    /// The verdict on `transitions` if they still disagree, with the transitions after the
    /// disagreeing one dropped.
    fn disagrees(&self, transitions: &[Vec<Step>]) -> Option<(Vec<Vec<Step>>, Verdict)> {
        let steps: Vec<Step> = transitions.iter().flatten().cloned().collect();
        // A candidate CPython cannot run (a daemon told to join a child) is no counterexample.
        let observed = self.oracle.run(&steps, self.method).ok()?;
        let verdict = compare(&steps, &observed.outcomes, self.deviations, self.plant);
        let index = verdict.disagreement?;
        let mut seen = 0;
        let keep = transitions
            .iter()
            .position(|t| {
                seen += t.len();
                seen > index
            })
            .map_or(transitions.len(), |owner| owner + 1);
        Some((transitions[..keep].to_vec(), verdict))
    }
}

/// Shrinks a disagreeing sequence by removing whole transitions (an operation with the
/// `settle` after it), halving the chunk size down to one, until no removal still disagrees
/// or [`SHRINK_RUNS`] candidates were tried; `None` if the sequence does not disagree again.
fn shrink(judge: &Judge<'_>, transitions: Vec<Vec<Step>>) -> Option<(Trace, Verdict)> {
    let (mut current, mut verdict) = judge.disagrees(&transitions)?;
    let mut runs = 1;
    let mut changed = true;
    while changed && runs < SHRINK_RUNS {
        changed = false;
        let mut chunk = current.len().div_ceil(2).max(1);
        loop {
            let mut start = 0;
            while start < current.len() && runs < SHRINK_RUNS {
                let mut candidate = current.clone();
                candidate.drain(start..(start + chunk).min(current.len()));
                runs += 1;
                match judge.disagrees(&candidate) {
                    Some((smaller, v)) if !smaller.is_empty() => {
                        current = smaller;
                        verdict = v;
                        changed = true;
                    }
                    _ => start += chunk,
                }
            }
            if chunk == 1 {
                break;
            }
            chunk = chunk.div_ceil(2);
        }
    }
    let trace = Trace {
        ops: current.into_iter().flatten().collect(),
    };
    Some((trace, verdict))
}

/// The annotated replay file of a comparison: each operation with the model's and CPython's
/// observations beside it.
pub fn annotated(trace: &Trace, verdict: &Verdict) -> Annotated {
    let annotations = trace
        .ops
        .iter()
        .enumerate()
        .map(|(index, _)| {
            let row = verdict.rows.get(index);
            Annotations {
                model: row.and_then(Row::model_outcome).cloned(),
                cpython: row.map(|r| r.cpython.clone()),
                ..Annotations::default()
            }
        })
        .collect();
    Annotated {
        trace: trace.clone(),
        annotations,
    }
}

/// Saves a disagreement as `DIR/conform-HASH.json` (named by its content).
///
/// # Errors
///
/// When the folder cannot be made or the file written.
pub fn save(dir: &Path, trace: &Trace, verdict: &Verdict) -> std::io::Result<PathBuf> {
    let text = annotated(trace, verdict).to_json();
    let hash = text.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    std::fs::create_dir_all(dir)?;
    let path = dir.join(format!("conform-{:08x}.json", hash as u32));
    std::fs::write(&path, text)?;
    Ok(path)
}

/// The side-by-side table: step, process, op, model, CPython, and, when given, the runtime.
pub fn table(verdict: &Verdict, runtime: Option<&crate::run::Outcomes>) -> String {
    let mut out = format!(
        "{:>4}  {:>4}  {:<28}  {:<40}  {:<40}",
        "step", "proc", "op", "model", "CPython"
    );
    if runtime.is_some() {
        out.push_str("  runtime");
    }
    out.push('\n');
    for (index, row) in verdict.rows.iter().enumerate() {
        let admitted: Vec<String> = row.admitted.iter().map(ToString::to_string).collect();
        out.push_str(&format!(
            "{index:>4}  {:>4}  {:<28}  {:<40}  {:<40}",
            row.step.proc,
            row.step.op.to_string(),
            admitted.join(" | "),
            row.cpython.to_string(),
        ));
        if let Some(outcomes) = runtime {
            let observed = outcomes
                .rows
                .get(index)
                .and_then(|r| r.observed.as_ref())
                .map_or_else(|| "(not run)".to_owned(), ToString::to_string);
            out.push_str(&format!("  {observed}"));
        }
        match &row.deviation {
            Some(id) => out.push_str(&format!("   <-- documented deviation {id}")),
            None if !row.agrees() => out.push_str("   <-- differs"),
            None => {}
        }
        out.push('\n');
    }
    out
}

/// The report of a run: CPython's version, sequences, operations, agreement, documented
/// deviations met, and the shrunk disagreement if there is one.
pub fn report(summary: &Summary, options: &Options) -> String {
    let (major, minor, micro) = summary.version;
    let deviated: u64 = summary.deviations.values().sum();
    let percent = if summary.ops == 0 {
        100.0
    } else {
        summary.agreed as f64 * 100.0 / summary.ops as f64
    };
    let mut out = format!(
        "CPython {major}.{minor}.{micro} ({}), start method {}, seed {}\n\
         {} settled sequences, {} operations: {} agree ({percent:.2}%), {deviated} documented deviations, {} disagreements\n",
        options.python.display(),
        options.method,
        options.seed,
        summary.cases,
        summary.ops,
        summary.agreed,
        summary.ops - summary.agreed - deviated,
    );
    if let Ok(all) = crate::deviations::all() {
        for d in all {
            let hits = summary.deviations.get(&d.id).copied().unwrap_or(0);
            out.push_str(&format!(
                "  documented deviation {:<24} {hits:>6} times  ({})\n",
                d.id, d.decision
            ));
        }
    }
    out.push_str(&format!("{:.1} s\n", summary.elapsed.as_secs_f64()));
    match &summary.failure {
        None => out.push_str("CPython agreed with the model on every observation outside the documented deviations\n"),
        Some(failure) => {
            out.push_str(&format!(
                "\nDISAGREEMENT: {}\n",
                failure.verdict.reason().unwrap_or_default()
            ));
            if !failure.reproduced {
                out.push_str("(it agreed when it was run again, so it depends on timing; it is shown as found, unshrunk)\n");
            }
            out.push_str(&table(&failure.verdict, None));
            match &failure.saved {
                Some(path) => out.push_str(&format!(
                    "saved to {} (run `proclife replay --python {} {}`)\n",
                    path.display(),
                    options.python.display(),
                    path.display()
                )),
                None => out.push_str(&format!(
                    "the sequence is:\n{}",
                    annotated(&failure.trace, &failure.verdict).to_json()
                )),
            }
        }
    }
    out
}

/// Runs `trace` on CPython too and returns the three-column table (model, CPython, runtime)
/// and whether CPython agreed with the model (documented deviations aside).
///
/// # Errors
///
/// An [`OracleError`] as [`Oracle::run`] gives it.
pub fn replay_with_cpython(
    trace: &Trace,
    runtime: &crate::run::Outcomes,
    python: &Path,
    method: StartMethod,
) -> Result<(String, bool), OracleError> {
    let oracle = Oracle::new(python)?;
    let deviations = crate::deviations::all().map_err(OracleError)?;
    let observed = oracle.run(&trace.ops, method)?;
    let verdict = compare(&trace.ops, &observed.outcomes, &deviations, None);
    let (major, minor, micro) = oracle.version();
    let mut out = format!("CPython {major}.{minor}.{micro}, start method {method}\n");
    out.push_str(&table(&verdict, Some(runtime)));
    match verdict.reason() {
        None => out.push_str("CPython agreed with the model on every observation outside the documented deviations\n"),
        Some(reason) => out.push_str(&format!("CPython disagrees with the model: {reason}\n")),
    }
    Ok((out, verdict.disagreement.is_none()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deviations;

    fn steps(ops: &[Op]) -> Vec<Step> {
        ops.iter().map(|op| Step::new(0, op.clone())).collect()
    }

    fn cpython_terminate_before_start() -> Outcome {
        Outcome::Raised(PyError {
            kind: PyErrorKind::AttributeError,
            message: "'NoneType' object has no attribute 'terminate'".into(),
        })
    }

    #[test]
    fn a_documented_deviation_is_not_a_disagreement() {
        let all = deviations::all().expect("the deviations file parses");
        let ops = steps(&[Op::Terminate, Op::Start, Op::IsAlive]);
        let observed = [
            cpython_terminate_before_start(),
            Outcome::NONE,
            Outcome::bool(true),
        ];
        let verdict = compare(&ops, &observed, &all, None);
        assert_eq!(verdict.disagreement, None, "{:?}", verdict.reason());
        assert_eq!(
            verdict.rows[0].deviation.as_deref(),
            Some("terminate-before-start")
        );
        assert!(!verdict.rows[0].agrees());
        assert!(verdict.rows[1].agrees() && verdict.rows[2].agrees());
    }

    #[test]
    fn only_the_listed_difference_is_excused() {
        let all = deviations::all().expect("the deviations file parses");
        // The same CPython error on `kill` is not the listed one.
        let ops = steps(&[Op::Kill]);
        let verdict = compare(&ops, &[cpython_terminate_before_start()], &all, None);
        assert_eq!(verdict.disagreement, Some(0));
        // Without the deviations file, the listed one is a disagreement too.
        let ops = steps(&[Op::Terminate]);
        let verdict = compare(&ops, &[cpython_terminate_before_start()], &[], None);
        assert_eq!(verdict.disagreement, Some(0));
        assert!(
            verdict
                .reason()
                .is_some_and(|r| r.contains("AttributeError"))
        );
    }

    #[test]
    fn plants_distort_only_what_they_name() {
        let ops = steps(&[
            Op::Start,
            Op::ChildPanic,
            Op::Settle,
            Op::Exitcode,
            Op::Start,
        ]);
        let cpython = [
            Outcome::NONE,
            Outcome::bool(true),
            Outcome::NONE,
            Outcome::Returned(Value::Int(1)),
            Outcome::Raised(PyError::START_TWICE),
        ];
        assert_eq!(compare(&ops, &cpython, &[], None).disagreement, None);
        let panic = compare(&ops, &cpython, &[], Some(Plant::PanicExitCode));
        assert_eq!(panic.disagreement, Some(3));
        let message = compare(&ops, &cpython, &[], Some(Plant::StartTwiceMessage));
        assert_eq!(message.disagreement, Some(4));
    }

    #[test]
    fn a_malformed_deviations_file_is_named() {
        assert!(deviations::parse("{}").is_err_and(|e| e.contains("format_version")));
        let no_decision = r#"{"format_version":1,"deviations":[{"id":"x","decision":"elsewhere.md","op":"kill","model":{"ok":null},"cpython":{"ok":null}}]}"#;
        assert!(deviations::parse(no_decision).is_err_and(|e| e.contains("docs/decisions/")));
    }
}
