//! Running one operation sequence on the model and on real processes, side by side.
//!
//! Both `proclife check` (for every generated sequence) and `proclife replay` (for one file)
//! go through [`run`]: each step is applied to the runtime, its observation is checked
//! against what the model admits, the model keeps only the states that explain it, and the
//! invariants are checked; at the end every child is killed and reaped and nothing may be
//! left behind.

use std::collections::BTreeSet;

use proclife::StartMethod;
use proclife_model::{EdgeKey, Op, Outcome, Possible, State, events};

use crate::leaks::Snapshot;
use crate::map;
use crate::sut::{Fault, Mutant, Runtime};
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
            Failure::Invariant { index, message } => {
                write!(f, "step {index}: invariant: {message}")
            }
            Failure::Fault { index, message } => write!(f, "step {index}: harness: {message}"),
        }
    }
}

/// The result of one sequence.
#[derive(Debug, Clone)]
pub struct Outcomes {
    /// One row per step run (up to and including the failing one).
    pub rows: Vec<Row>,
    /// The first failure, if any.
    pub failure: Option<Failure>,
    /// The edges certainly exercised, one entry per traversal.
    pub edges: Vec<EdgeKey>,
    /// Children started.
    pub spawned: usize,
}

/// The states of `possible` and every state their pending events lead to.
fn closure(possible: &Possible) -> Vec<State> {
    let mut out = Vec::new();
    let mut todo: Vec<State> = possible.states().into_iter().collect();
    while let Some(state) = todo.pop() {
        todo.extend(events(&state).into_iter().map(|(_, next)| next));
        out.push(state);
    }
    out
}

/// Runs `steps` on `procs` fresh processes (at least as many as the steps address), started
/// with `method`.
pub fn run(steps: &[Step], procs: usize, mutant: Option<Mutant>, method: StartMethod) -> Outcomes {
    let procs = procs.max(steps.iter().map(|s| s.proc + 1).max().unwrap_or(1));
    let snapshot = Snapshot::take();
    let mut out = Outcomes {
        rows: Vec::new(),
        failure: None,
        edges: Vec::new(),
        spawned: 0,
    };
    let mut runtime = match Runtime::new(procs, mutant, method) {
        Ok(runtime) => runtime,
        Err(Fault(message)) => {
            out.failure = Some(Failure::Fault { index: 0, message });
            return out;
        }
    };
    let mut possibles = vec![Possible::new(); procs];
    for (index, step) in steps.iter().enumerate() {
        let possible = &mut possibles[step.proc];
        let admitted = possible.admits(&step.op);
        let observed = runtime.apply(step, &admitted);
        let (observed, fault) = match observed {
            Ok(outcome) => (Some(outcome), None),
            Err(Fault(message)) => (None, Some(message)),
        };
        out.rows.push(Row {
            step: step.clone(),
            admitted,
            observed: observed.clone(),
        });
        if let Some(message) = fault {
            out.failure = Some(Failure::Fault { index, message });
            break;
        }
        let Some(observed) = observed else { break };
        match possible.observe(&step.op, &observed) {
            Ok(edges) => out.edges.extend(edges),
            Err(disagreement) => {
                out.failure = Some(Failure::Disagreement {
                    index,
                    message: disagreement.to_string(),
                });
                break;
            }
        }
        // An oracle observation after every step: the sentinel says whether the child is dead
        // (without reaping it). The model's `sentinel_ready` must admit it, and it decides races
        // that the operations alone leave open.
        match runtime.peek_exited(step.proc) {
            Ok(Some(exited)) => {
                match possible.observe(&Op::SentinelReady, &Outcome::bool(exited)) {
                    Ok(edges) => out.edges.extend(edges),
                    Err(disagreement) => {
                        out.failure = Some(Failure::Invariant {
                            index,
                            message: format!("after the step, the sentinel: {disagreement}"),
                        });
                        break;
                    }
                }
            }
            Ok(None) => {}
            Err(Fault(message)) => {
                out.failure = Some(Failure::Fault { index, message });
                break;
            }
        }
        match runtime.observe_state(step.proc) {
            Ok(state) => {
                if !closure(possible)
                    .iter()
                    .any(|s| map::state_admits(s, state))
                {
                    out.failure = Some(Failure::Invariant {
                        index,
                        message: format!(
                            "the runtime reports {state:?}, which no model state allows"
                        ),
                    });
                    break;
                }
            }
            Err(Fault(message)) => {
                out.failure = Some(Failure::Invariant { index, message });
                break;
            }
        }
    }
    out.spawned = runtime.spawned();
    let end = steps.len();
    if let Err(Fault(message)) = runtime.teardown() {
        out.failure.get_or_insert(Failure::Fault {
            index: end,
            message: format!("teardown: {message}"),
        });
    }
    if let Err(message) = snapshot.check() {
        out.failure.get_or_insert(Failure::Invariant {
            index: end,
            message: format!("after the sequence: {message}"),
        });
    }
    out
}
