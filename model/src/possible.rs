//! The checker for real runs: the set of states a real process may be in.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use crate::graph::{EdgeKey, event_edge_key, transition_edges};
use crate::op::{Op, Timeout};
use crate::outcome::Outcome;
use crate::state::State;
use crate::step::{events, step};

/// The states a real process handle may be in, given what has been observed so far.
///
/// Real processes race with their parent: after `child_exit(3)` the child may or may not have
/// exited when the parent next calls `is_alive()`.
/// `Possible` accepts a real run iff some interleaving of the model's [`events`] with the
/// operations explains every observation.
/// Before each operation any pending event may fire (the set is closed under [`events`]);
/// the operation is then applied to every state, and only the states whose outcome equals
/// the observation are kept.
/// `join`, a `join(timeout)` that ended in time and `settle` wait for pending events, so they
/// collapse the set; with a `settle` after every operation that may cause an exit the set
/// stays a single state.
///
/// ```
/// use proclife_model::{Op, Outcome, Possible, Value};
/// let mut possible = Possible::new();
/// possible.observe(&Op::Start, &Outcome::NONE).unwrap();
/// possible.observe(&Op::ChildExit(3), &Outcome::bool(true)).unwrap();
/// // The exit may or may not have happened yet.
/// assert_eq!(possible.admits(&Op::IsAlive).len(), 2);
/// possible.observe(&Op::Join, &Outcome::NONE).unwrap();
/// possible.observe(&Op::Exitcode, &Outcome::Returned(Value::Int(3))).unwrap();
/// assert_eq!(possible.states().len(), 1);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Possible {
    /// Each possible state, with the edges that every interleaving leading to it has taken
    /// since they were last reported by [`Possible::observe`].
    states: BTreeMap<State, BTreeSet<EdgeKey>>,
}

/// An observation that no interleaving of the model explains.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Disagreement {
    /// The operation.
    pub op: Op,
    /// What the real run returned or raised.
    pub observed: Outcome,
    /// Everything the model would have accepted.
    pub admitted: BTreeSet<Outcome>,
}

impl fmt::Display for Disagreement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: observed {}, the model admits ",
            self.op, self.observed
        )?;
        let admitted: Vec<String> = self.admitted.iter().map(ToString::to_string).collect();
        write!(f, "{{{}}}", admitted.join(", "))
    }
}

impl std::error::Error for Disagreement {}

/// How long a wait may take, as far as the model can tell (see [`Possible::wait_length`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum WaitLength {
    /// It must return without sleeping.
    Immediate,
    /// It must sleep its whole timeout.
    Full,
    /// It may do either, or is not a wait.
    Unknown,
}

impl Default for Possible {
    fn default() -> Possible {
        Possible::new()
    }
}

/// The operations a real `op` may stand for: a positive timeout may have expired or ended in
/// time, and a real run cannot tell which.
fn refinements(op: &Op) -> Vec<Op> {
    match op {
        Op::JoinTimeout(timeout) if timeout.is_positive() => vec![
            Op::JoinTimeout(Timeout::Expires),
            Op::JoinTimeout(Timeout::InTime),
        ],
        other => vec![other.clone()],
    }
}

impl Possible {
    /// A freshly constructed handle: the single state [`State::new`].
    pub fn new() -> Possible {
        Possible::from_state(State::new())
    }

    /// Exactly one known state.
    pub fn from_state(state: State) -> Possible {
        Possible {
            states: BTreeMap::from([(state, BTreeSet::new())]),
        }
    }

    /// The states kept after the last observation (pending events not yet fired).
    pub fn states(&self) -> BTreeSet<State> {
        self.states.keys().cloned().collect()
    }

    /// The states the process may be in now: the kept states and every state their pending
    /// events lead to (an exit may have happened since the last observation).
    ///
    /// ```
    /// use proclife_model::{Op, Outcome, Possible};
    /// let mut possible = Possible::new();
    /// possible.observe(&Op::Start, &Outcome::NONE).unwrap();
    /// possible.observe(&Op::ChildExit(3), &Outcome::bool(true)).unwrap();
    /// // Still exiting, or exited with 3.
    /// assert_eq!(possible.reachable().len(), 2);
    /// ```
    pub fn reachable(&self) -> BTreeSet<State> {
        self.closure().into_iter().map(|(state, _)| state).collect()
    }

    /// How long `op` may take, whatever state the process is in now.
    ///
    /// Only waits have a length: `join_timeout(t)` with `t > 0` on a child that is alive with
    /// nothing on its way ([`WaitLength::Full`]: it must wait its whole timeout, since nothing
    /// can end the child meanwhile), and a wait on a child that is already dead or never
    /// started, or with a zero or negative timeout ([`WaitLength::Immediate`]: it must not
    /// sleep). Every other case, and every other operation, is [`WaitLength::Unknown`].
    ///
    /// ```
    /// use proclife_model::{Op, Outcome, Possible, Timeout, WaitLength};
    /// let mut possible = Possible::new();
    /// possible.observe(&Op::Start, &Outcome::NONE).unwrap();
    /// let wait = Op::JoinTimeout(Timeout::Expires);
    /// assert_eq!(possible.wait_length(&wait), WaitLength::Full);
    /// possible.observe(&Op::ChildExit(3), &Outcome::bool(true)).unwrap();
    /// assert_eq!(possible.wait_length(&wait), WaitLength::Unknown);
    /// possible.observe(&Op::Settle, &Outcome::NONE).unwrap();
    /// assert_eq!(possible.wait_length(&wait), WaitLength::Immediate);
    /// ```
    pub fn wait_length(&self, op: &Op) -> WaitLength {
        let Op::JoinTimeout(timeout) = op else {
            return WaitLength::Unknown;
        };
        if !timeout.is_positive() {
            return WaitLength::Immediate;
        }
        let states = self.reachable();
        if states.iter().all(|state| !state.is_alive()) {
            WaitLength::Immediate
        } else if states
            .iter()
            .all(|state| state.is_alive() && events(state).is_empty())
        {
            WaitLength::Full
        } else {
            WaitLength::Unknown
        }
    }

    /// The kept states together with every state reachable from them by pending events, each
    /// with the edges taken on the way (the unreported ones, then the events).
    fn closure(&self) -> Vec<(State, BTreeSet<EdgeKey>)> {
        let mut out: Vec<(State, BTreeSet<EdgeKey>)> = Vec::new();
        let mut todo: Vec<(State, BTreeSet<EdgeKey>)> = self
            .states
            .iter()
            .map(|(state, path)| (state.clone(), path.clone()))
            .collect();
        // Every event ends the child, so each path has at most one event and this terminates.
        while let Some((state, path)) = todo.pop() {
            for (event, next) in events(&state) {
                let mut next_path = path.clone();
                next_path.insert(event_edge_key(&state, event, &next));
                todo.push((next, next_path));
            }
            out.push((state, path));
        }
        out
    }

    /// Applies `op` without knowing its outcome: every state some interleaving and some
    /// outcome lead to is kept.
    ///
    /// This is the view a sequence generator has before anything has run; edge bookkeeping is
    /// dropped.
    ///
    /// ```
    /// use proclife_model::{Op, Possible};
    /// let mut possible = Possible::new();
    /// possible.apply_unobserved(&Op::Start);
    /// possible.apply_unobserved(&Op::ChildExit(3));
    /// // Exiting, or already exited.
    /// assert_eq!(possible.states().len(), 1);
    /// possible.apply_unobserved(&Op::IsAlive);
    /// assert_eq!(possible.states().len(), 2);
    /// ```
    pub fn apply_unobserved(&mut self, op: &Op) {
        let mut next = BTreeMap::new();
        for (state, _) in self.closure() {
            for refined in refinements(op) {
                next.insert(step(&state, &refined).next, BTreeSet::new());
            }
        }
        self.states = next;
    }

    /// Every outcome of `op` that some interleaving allows.
    pub fn admits(&self, op: &Op) -> BTreeSet<Outcome> {
        let mut admitted = BTreeSet::new();
        for (state, _) in self.closure() {
            for refined in refinements(op) {
                admitted.insert(step(&state, &refined).outcome);
            }
        }
        admitted
    }

    /// Records that `op` was observed to give `observed`, keeping only the states consistent
    /// with it.
    ///
    /// Returns, for coverage counting, the graph edges that are now certain to have been
    /// taken: those on *every* interleaving that explains the observations so far (event edges
    /// that fired, and the operations' own edges), each reported once.
    /// While interleavings disagree (a positive `join(timeout)` that may have expired or ended
    /// in time, a signal racing an exit), their edges wait until a later observation rules all
    /// but one out; edges that never become certain are never reported.
    ///
    /// # Errors
    ///
    /// [`Disagreement`] when no interleaving explains the observation; the set is then left
    /// as it was.
    pub fn observe(
        &mut self,
        op: &Op,
        observed: &Outcome,
    ) -> Result<BTreeSet<EdgeKey>, Disagreement> {
        let mut kept: BTreeMap<State, BTreeSet<EdgeKey>> = BTreeMap::new();
        for (state, path) in self.closure() {
            for refined in refinements(op) {
                let result = step(&state, &refined);
                if result.outcome != *observed {
                    continue;
                }
                let mut taken = path.clone();
                taken.extend(transition_edges(&state, &refined, &result));
                // Two interleavings reaching the same state keep only the edges both took.
                match kept.get_mut(&result.next) {
                    Some(common) => common.retain(|edge| taken.contains(edge)),
                    None => {
                        kept.insert(result.next, taken);
                    }
                }
            }
        }
        let mut paths = kept.values();
        let Some(first) = paths.next() else {
            return Err(Disagreement {
                op: op.clone(),
                observed: observed.clone(),
                admitted: self.admits(op),
            });
        };
        let mut certain = first.clone();
        for path in paths {
            certain.retain(|edge| path.contains(edge));
        }
        for path in kept.values_mut() {
            path.retain(|edge| !certain.contains(edge));
        }
        self.states = kept;
        Ok(certain)
    }
}
