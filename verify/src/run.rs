//! Running one operation sequence on the model and on real processes, side by side.
//!
//! Both `proclife check` (for every generated sequence) and `proclife replay` (for one file)
//! go through [`run`]: each step is applied to the runtime, its observation is checked
//! against what the model admits (and, for a timed wait, its duration against the interval
//! the model admits), the model keeps only the states that explain it, and the invariants are
//! checked; at the end every child is killed and reaped and nothing may be left behind.
//!
//! The probes after a step must not change what later steps observe. The sentinel is peeked
//! at after every step (a `poll`, which reaps nothing). `Process::state()` collects the exit
//! status of an exited child, so it runs only after the steps that ask for it
//! ([`Step::probe`]; the generator leaves it out after about half of them, and a replay file
//! says `"probe":false`): the others leave an exited child unreaped for the next operation,
//! and [`Outcomes::unreaped`] counts the operations that met one.

use std::collections::BTreeSet;
use std::time::Duration;

use proclife::StartMethod;
use proclife_model::{EdgeKey, Op, Outcome, Possible};

use crate::leaks::{self, Snapshot};
use crate::map;
use crate::sut::{Fault, Runtime};
use crate::timing::{self, Verdict};
use crate::trace::Step;

/// What one step gave on each side.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// The step.
    pub step: Step,
    /// What the model admitted.
    pub admitted: BTreeSet<Outcome>,
    /// What the runtime gave (`None` when the harness failed at this step).
    pub observed: Option<Outcome>,
    /// For a timed wait, how long the runtime took.
    pub took: Option<Duration>,
}

impl Row {
    /// The model's observation to print beside the runtime's: the runtime's own if the model
    /// admits it, else the first admitted.
    pub fn model_outcome(&self) -> Option<&Outcome> {
        match &self.observed {
            Some(observed) if self.admitted.contains(observed) => Some(observed),
            _ => self.admitted.iter().next(),
        }
    }

    /// Whether the model admits what the runtime gave.
    pub fn agrees(&self) -> bool {
        self.observed
            .as_ref()
            .is_some_and(|observed| self.admitted.contains(observed))
    }
}

/// Why a sequence failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// The runtime gave an observation no interleaving of the model explains.
    Disagreement {
        /// The index of the step.
        index: usize,
        /// A sentence.
        message: String,
    },
    /// A timed wait took a time outside the interval the model admits.
    Timing {
        /// The index of the step.
        index: usize,
        /// A sentence.
        message: String,
    },
    /// An invariant broke after a step (state, pid) or at the end (leaks).
    Invariant {
        /// The index of the step, or the number of steps for the end of the sequence.
        index: usize,
        /// A sentence.
        message: String,
    },
    /// The harness failed.
    Fault {
        /// The index of the step, or the number of steps for the end of the sequence.
        index: usize,
        /// A sentence.
        message: String,
    },
}

impl Failure {
    /// The step it happened at.
    pub fn index(&self) -> usize {
        match self {
            Failure::Disagreement { index, .. }
            | Failure::Timing { index, .. }
            | Failure::Invariant { index, .. }
            | Failure::Fault { index, .. } => *index,
        }
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Disagreement { index, message } => {
                write!(f, "step {index}: disagreement: {message}")
            }
            Failure::Timing { index, message } => write!(f, "step {index}: time: {message}"),
            Failure::Invariant { index, message } => {
                write!(f, "step {index}: invariant: {message}")
            }
            Failure::Fault { index, message } => write!(f, "step {index}: harness: {message}"),
        }
    }
}

/// The result of one sequence.
#[derive(Debug, Clone, Default)]
pub struct Outcomes {
    /// One row per step run (up to and including the failing one).
    pub rows: Vec<Row>,
    /// The first failure, if any.
    pub failure: Option<Failure>,
    /// The edges certainly exercised, one entry per traversal.
    pub edges: Vec<EdgeKey>,
    /// Children started.
    pub spawned: usize,
    /// The operations (replay-schema names, `state` for the probe) that met a child that had
    /// exited and whose exit status the runtime had not yet collected, one entry per meeting.
    pub unreaped: Vec<&'static str>,
    /// The timing judgements made.
    pub timing: timing::Tally,
    /// Whether the sequence left something behind (then killed and reaped).
    pub leaked: bool,
}

/// Runs `steps` on `procs` fresh processes (at least as many as the steps address), started
/// with `method`.
///
/// Whatever the sequence leaves behind (a child, a zombie, an fd) fails this sequence; the
/// children are then killed and reaped, so that the next sequence starts clean.
pub fn run(steps: &[Step], procs: usize, method: StartMethod) -> Outcomes {
    let procs = procs.max(steps.iter().map(|s| s.proc + 1).max().unwrap_or(1));
    let snapshot = Snapshot::take();
    let mut out = Outcomes::default();
    match Runtime::new(procs, method) {
        Ok(mut runtime) => {
            let mut possibles = vec![Possible::new(); procs];
            for (index, step) in steps.iter().enumerate() {
                let possible = &mut possibles[step.proc];
                if let Err(failure) = one_step(&mut runtime, possible, index, step, &mut out) {
                    out.failure = Some(failure);
                    break;
                }
            }
            out.spawned = runtime.spawned();
            if let Err(Fault(message)) = runtime.teardown() {
                out.failure.get_or_insert(Failure::Fault {
                    index: steps.len(),
                    message: format!("teardown: {message}"),
                });
            }
        }
        Err(Fault(message)) => out.failure = Some(Failure::Fault { index: 0, message }),
    }
    if let Err(message) = snapshot.check() {
        out.leaked = true;
        out.failure.get_or_insert(Failure::Invariant {
            index: steps.len(),
            message: format!("after the sequence: {message}"),
        });
        leaks::reap_leftovers();
    }
    out
}

/// One step: the operation, its observation and duration judged, then the probes.
fn one_step(
    runtime: &mut Runtime,
    possible: &mut Possible,
    index: usize,
    step: &Step,
    out: &mut Outcomes,
) -> Result<(), Failure> {
    let fault = |Fault(message)| Failure::Fault { index, message };
    let admitted = possible.admits(&step.op);
    let length = possible.wait_length(&step.op);
    if runtime.exited_unreaped(step.proc).map_err(fault)? {
        out.unreaped.push(step.op.schema_name());
    }
    let observed = match runtime.apply(step, &admitted) {
        Ok(observed) => observed,
        Err(Fault(message)) => {
            out.rows.push(Row {
                step: step.clone(),
                admitted,
                observed: None,
                took: None,
            });
            return Err(Failure::Fault { index, message });
        }
    };
    out.rows.push(Row {
        step: step.clone(),
        admitted,
        observed: Some(observed.outcome.clone()),
        took: observed.took,
    });
    let edges = possible
        .observe(&step.op, &observed.outcome)
        .map_err(|disagreement| Failure::Disagreement {
            index,
            message: disagreement.to_string(),
        })?;
    out.edges.extend(edges);
    if let (Some(took), Some(secs)) = (observed.took, step.secs) {
        let verdict = timing::judge(length, secs, took, timing::saturated);
        out.timing.count(&verdict);
        if let Verdict::Fails(message) = verdict {
            return Err(Failure::Timing {
                index,
                message: format!("{}: {message}", step.op),
            });
        }
    }
    peek_sentinel(runtime, possible, index, step.proc, out)?;
    if step.probe {
        if runtime.exited_unreaped(step.proc).map_err(fault)? {
            out.unreaped.push("state");
        }
        check_state(runtime, possible, index, step.proc)?;
    }
    Ok(())
}

/// The oracle peek after a step: the sentinel says whether the child is dead, without reaping
/// it. The model's `sentinel_ready` must admit it, and it decides races that the operations
/// alone leave open.
fn peek_sentinel(
    runtime: &Runtime,
    possible: &mut Possible,
    index: usize,
    proc: usize,
    out: &mut Outcomes,
) -> Result<(), Failure> {
    let exited = runtime
        .peek_exited(proc)
        .map_err(|Fault(message)| Failure::Fault { index, message })?;
    let Some(exited) = exited else {
        return Ok(());
    };
    let edges = possible
        .observe(&Op::SentinelReady, &Outcome::bool(exited))
        .map_err(|disagreement| Failure::Invariant {
            index,
            message: format!("after the step, the sentinel: {disagreement}"),
        })?;
    out.edges.extend(edges);
    Ok(())
}

/// The runtime's `state()` and pid must be ones some state the process may be in allows.
fn check_state(
    runtime: &mut Runtime,
    possible: &Possible,
    index: usize,
    proc: usize,
) -> Result<(), Failure> {
    let state = runtime
        .observe_state(proc)
        .map_err(|Fault(message)| Failure::Invariant { index, message })?;
    if possible
        .reachable()
        .iter()
        .any(|s| map::state_admits(s, state))
    {
        Ok(())
    } else {
        Err(Failure::Invariant {
            index,
            message: format!("the runtime reports {state:?}, which no model state allows"),
        })
    }
}
