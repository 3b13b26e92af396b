//! The transition function [`step`] and the asynchronous [`events`] that happen between
//! operations.

use crate::op::{NameArg, Op, Timeout, exit_status};
use crate::outcome::{Outcome, PyError, Step, Value};
use crate::state::{Command, Life, Signal, Signals, State};

/// Something the child does on its own, between two operations of the parent.
///
/// These are the asynchronous halves of operations: `child_exit` asks the child to exit and
/// [`Event::Exit`] is the exit really happening; `terminate()` sends `SIGTERM` and
/// [`Event::Deliver`] is the signal killing the child.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Event {
    /// The child's own exit happens (it had been told to exit, panic or return).
    Exit,
    /// A pending signal is delivered and kills the child.
    Deliver(Signal),
}

impl Event {
    /// The label of this event in the transition graph.
    pub fn label(self) -> &'static str {
        match self {
            Event::Exit => "exit happens",
            Event::Deliver(Signal::Term) => "SIGTERM delivered",
            Event::Deliver(Signal::Kill) => "SIGKILL delivered",
        }
    }
}

/// The asynchronous events that may happen next in `state`, each with the state it leads to,
/// in a fixed order: the child's own exit first, then `SIGTERM`, then `SIGKILL`.
///
/// Every event ends the child; an empty list means nothing is pending.
/// A stopped child carries out no exit of its own and acts on no `SIGTERM` until it is
/// continued: only a `SIGKILL` ends it while it is stopped.
///
/// ```
/// use proclife_model::{Event, Op, State, events, step};
/// let running = step(&State::new(), &Op::Start).next;
/// assert!(events(&running).is_empty());
/// let exiting = step(&running, &Op::ChildExit(3)).next;
/// let (event, next) = &events(&exiting)[0];
/// assert_eq!(*event, Event::Exit);
/// assert!(!next.is_alive());
/// ```
pub fn events(state: &State) -> Vec<(Event, State)> {
    let (exiting, signals) = match &state.life {
        Life::Running { exiting, signals } => (*exiting, *signals),
        // A blocked child carries out no exit of its own until it is released.
        Life::Blocked { signals, .. } => (None, *signals),
        Life::Stopped { was } => (
            None,
            Signals {
                term: false,
                kill: was.signals().kill,
            },
        ),
        Life::New | Life::Terminated { .. } | Life::Closed { .. } => return Vec::new(),
    };
    let mut out = Vec::new();
    if let Some(exitcode) = exiting {
        out.push((Event::Exit, state.with_life(Life::Terminated { exitcode })));
    }
    for signal in signals.pending() {
        let exitcode = signal.exitcode();
        out.push((
            Event::Deliver(signal),
            state.with_life(Life::Terminated { exitcode }),
        ));
    }
    out
}

/// The model's single source of truth: what `op` does in `state`.
///
/// Pure, total and deterministic: every state and operation has exactly one result, and a
/// refusal is an outcome ([`Outcome::Raised`]) that leaves the state unchanged.
///
/// Asynchronous effects are not taken synchronously: `child_exit`, `terminate`, `kill` and the
/// like only put an exit on its way; it happens through an [`Event`] (see [`events`]).
/// Only `join`, a positive `join(timeout)` that ends in time, and `settle` wait for it; when
/// several events are pending they let the first of [`events`] happen, and the other orders
/// are left to [`Possible`](crate::Possible), which explores every interleaving.
///
/// ```
/// use proclife_model::{Op, Outcome, PyError, State, step};
/// let new = State::new();
/// let started = step(&new, &Op::Start);
/// assert_eq!(started.outcome, Outcome::NONE);
/// let again = step(&started.next, &Op::Start);
/// assert_eq!(again.outcome, Outcome::Raised(PyError::START_TWICE));
/// assert_eq!(again.next, started.next);
/// ```
pub fn step(state: &State, op: &Op) -> Step {
    match op {
        Op::Start => start(state),
        Op::Run => run(state),
        Op::IsAlive => read(state, |s| Outcome::bool(s.is_alive())),
        Op::Join => join(state),
        Op::JoinTimeout(timeout) => join_timeout(state, *timeout),
        Op::Exitcode => read(state, |s| match s.life {
            Life::Terminated { exitcode } => Outcome::Returned(Value::Int(i64::from(exitcode))),
            _ => Outcome::NONE,
        }),
        Op::PidIsSet => read(state, |s| Outcome::bool(s.was_started())),
        Op::SentinelReady => sentinel_ready(state),
        Op::Terminate => signal(state, Signal::Term),
        Op::Kill => signal(state, Signal::Kill),
        Op::Close => close(state),
        Op::Daemon => unchanged(state, Outcome::bool(state.daemon)),
        Op::SetDaemon(value) => set_daemon(state, *value),
        Op::Name => unchanged(
            state,
            Outcome::Returned(match &state.name {
                Some(name) => Value::Str(name.clone()),
                None => Value::DefaultName,
            }),
        ),
        Op::SetName(NameArg::Str(name)) => Step {
            next: State {
                name: Some(name.clone()),
                ..state.clone()
            },
            outcome: Outcome::NONE,
        },
        Op::SetName(NameArg::NotStr) => unchanged(state, Outcome::Raised(PyError::NAME_NOT_STR)),
        Op::ChildExit(code) => command(state, Command::Exit(exit_status(*code))),
        Op::ChildPanic => command(state, Command::Exit(1)),
        Op::ChildReturn => command(state, Command::Exit(0)),
        Op::ChildBlock(on) => command(state, Command::Block(*on)),
        Op::Release => release(state),
        Op::SigStop => sigstop(state),
        Op::SigCont => sigcont(state),
        Op::Settle => settle(state),
    }
}

fn unchanged(state: &State, outcome: Outcome) -> Step {
    Step {
        next: state.clone(),
        outcome,
    }
}

/// A query that raises on a closed handle and otherwise only reads.
fn read(state: &State, query: impl FnOnce(&State) -> Outcome) -> Step {
    if matches!(state.life, Life::Closed { .. }) {
        return unchanged(state, Outcome::Raised(PyError::CLOSED));
    }
    unchanged(state, query(state))
}

fn start(state: &State) -> Step {
    match state.life {
        Life::New => Step {
            next: state.with_life(Life::Running {
                exiting: None,
                signals: Signals::NONE,
            }),
            outcome: Outcome::NONE,
        },
        Life::Closed { .. } => unchanged(state, Outcome::Raised(PyError::CLOSED)),
        Life::Running { .. }
        | Life::Blocked { .. }
        | Life::Stopped { .. }
        | Life::Terminated { .. } => unchanged(state, Outcome::Raised(PyError::START_TWICE)),
    }
}

fn run(state: &State) -> Step {
    // `run()` needs no closed check: it calls the target in the caller if `start()` has not
    // deleted it (the puppet target returns at once there, having no parent to obey).
    if state.was_started() {
        unchanged(state, Outcome::Raised(PyError::NO_TARGET))
    } else {
        unchanged(state, Outcome::NONE)
    }
}

/// Lets the first pending event happen, if any.
fn first_event(state: &State) -> Option<State> {
    events(state).into_iter().next().map(|(_, next)| next)
}

fn join(state: &State) -> Step {
    match state.life {
        Life::New => unchanged(state, Outcome::Raised(PyError::JOIN_NOT_STARTED)),
        Life::Closed { .. } => unchanged(state, Outcome::Raised(PyError::CLOSED)),
        Life::Terminated { .. } => unchanged(state, Outcome::NONE),
        Life::Running { .. } | Life::Blocked { .. } | Life::Stopped { .. } => {
            match first_event(state) {
                Some(next) => Step {
                    next,
                    outcome: Outcome::NONE,
                },
                None => unchanged(state, Outcome::Hangs),
            }
        }
    }
}

fn join_timeout(state: &State, timeout: Timeout) -> Step {
    match (&state.life, timeout) {
        (Life::Running { .. } | Life::Blocked { .. } | Life::Stopped { .. }, Timeout::InTime) => {
            Step {
                next: first_event(state).unwrap_or_else(|| state.clone()),
                outcome: Outcome::NONE,
            }
        }
        (Life::Running { .. } | Life::Blocked { .. } | Life::Stopped { .. }, _) => {
            unchanged(state, Outcome::NONE)
        }
        // Apart from the wait itself, a timed join checks what `join()` checks.
        (Life::New | Life::Closed { .. } | Life::Terminated { .. }, _) => join(state),
    }
}

fn sentinel_ready(state: &State) -> Step {
    match state.life {
        Life::New => unchanged(state, Outcome::Raised(PyError::NOT_STARTED)),
        Life::Closed { .. } => unchanged(state, Outcome::Raised(PyError::CLOSED)),
        Life::Running { .. } | Life::Blocked { .. } | Life::Stopped { .. } => {
            unchanged(state, Outcome::bool(false))
        }
        Life::Terminated { .. } => unchanged(state, Outcome::bool(true)),
    }
}

fn signal(state: &State, signal: Signal) -> Step {
    let refusal = match signal {
        Signal::Term => PyError::TERMINATE_NOT_STARTED,
        Signal::Kill => PyError::KILL_NOT_STARTED,
    };
    let life = match &state.life {
        Life::New => return unchanged(state, Outcome::Raised(refusal)),
        Life::Closed { .. } => return unchanged(state, Outcome::Raised(PyError::CLOSED)),
        // The child is dead: nothing is sent and the real exit code stays.
        Life::Terminated { .. } => return unchanged(state, Outcome::NONE),
        // `terminate()` sends `SIGCONT` after `SIGTERM`, so a stopped child goes on and acts
        // on the `SIGTERM` (decision 0015); a `SIGKILL` ends it where it stands.
        Life::Stopped { was } => match signal {
            Signal::Term => with_signal(was, signal),
            Signal::Kill => Life::Stopped {
                was: Box::new(with_signal(was, signal)),
            },
        },
        alive => with_signal(alive, signal),
    };
    Step {
        next: state.with_life(life),
        outcome: Outcome::NONE,
    }
}

/// `life` with `signal` on its way (unchanged for a life without a child).
fn with_signal(life: &Life, signal: Signal) -> Life {
    match life {
        Life::Running { exiting, signals } => Life::Running {
            exiting: *exiting,
            signals: signals.with(signal),
        },
        Life::Blocked { on, queue, signals } => Life::Blocked {
            on: *on,
            queue: queue.clone(),
            signals: signals.with(signal),
        },
        Life::Stopped { was } => Life::Stopped {
            was: Box::new(with_signal(was, signal)),
        },
        Life::New | Life::Terminated { .. } | Life::Closed { .. } => life.clone(),
    }
}

/// `SIGSTOP`: a child that is alive with nothing on its way is stopped where it is.
fn sigstop(state: &State) -> Step {
    if !state.is_alive() || state.is_exiting() {
        return unchanged(state, Outcome::bool(false));
    }
    let life = match &state.life {
        Life::Stopped { .. } => state.life.clone(),
        was => Life::Stopped {
            was: Box::new(was.clone()),
        },
    };
    Step {
        next: state.with_life(life),
        outcome: Outcome::bool(true),
    }
}

/// `SIGCONT`: a stopped child with nothing on its way goes back to where it was; a running or
/// blocked one goes on as it was.
fn sigcont(state: &State) -> Step {
    if !state.is_alive() || state.is_exiting() {
        return unchanged(state, Outcome::bool(false));
    }
    let life = match &state.life {
        Life::Stopped { was } => (**was).clone(),
        other => other.clone(),
    };
    Step {
        next: state.with_life(life),
        outcome: Outcome::bool(true),
    }
}

fn close(state: &State) -> Step {
    match state.life {
        Life::New => Step {
            next: state.with_life(Life::Closed { was_started: false }),
            outcome: Outcome::NONE,
        },
        Life::Terminated { .. } => Step {
            next: state.with_life(Life::Closed { was_started: true }),
            outcome: Outcome::NONE,
        },
        Life::Closed { .. } => unchanged(state, Outcome::NONE),
        Life::Running { .. } | Life::Blocked { .. } | Life::Stopped { .. } => {
            unchanged(state, Outcome::Raised(PyError::CLOSE_RUNNING))
        }
    }
}

fn set_daemon(state: &State, daemon: bool) -> Step {
    match state.life {
        // `close()` resets `_popen` to `None`, so the "already started" check passes again.
        Life::New | Life::Closed { .. } => Step {
            next: State {
                daemon,
                ..state.clone()
            },
            outcome: Outcome::NONE,
        },
        Life::Running { .. }
        | Life::Blocked { .. }
        | Life::Stopped { .. }
        | Life::Terminated { .. } => unchanged(state, Outcome::Raised(PyError::ALREADY_STARTED)),
    }
}

/// Delivers a puppet command: answers `true` when the child is alive, not stopped and not
/// already exiting (a stopped child reads no command; the checker sends it none).
fn command(state: &State, command: Command) -> Step {
    if !state.is_alive() || state.is_exiting() || matches!(state.life, Life::Stopped { .. }) {
        return unchanged(state, Outcome::bool(false));
    }
    let life = match &state.life {
        Life::Running { signals, .. } => obey(command, Vec::new(), *signals),
        Life::Blocked { on, queue, signals } => {
            let mut queue = queue.clone();
            queue.push(command);
            Life::Blocked {
                on: *on,
                queue,
                signals: *signals,
            }
        }
        Life::New | Life::Stopped { .. } | Life::Terminated { .. } | Life::Closed { .. } => {
            state.life.clone()
        }
    };
    Step {
        next: state.with_life(life),
        outcome: Outcome::bool(true),
    }
}

/// What a running child does with `command`, with `rest` still queued behind it.
fn obey(command: Command, rest: Vec<Command>, signals: Signals) -> Life {
    match command {
        // Commands after an exit can never be obeyed (and none are accepted: the child is
        // exiting), so the rest of the queue is dropped.
        Command::Exit(code) => Life::Running {
            exiting: Some(code),
            signals,
        },
        Command::Block(on) => Life::Blocked {
            on,
            queue: rest,
            signals,
        },
    }
}

fn release(state: &State) -> Step {
    let Life::Blocked { queue, signals, .. } = &state.life else {
        return unchanged(state, Outcome::bool(false));
    };
    let mut rest = queue.clone();
    let life = if rest.is_empty() {
        Life::Running {
            exiting: None,
            signals: *signals,
        }
    } else {
        let first = rest.remove(0);
        obey(first, rest, *signals)
    };
    Step {
        next: state.with_life(life),
        outcome: Outcome::bool(true),
    }
}

fn settle(state: &State) -> Step {
    Step {
        next: first_event(state).unwrap_or_else(|| state.clone()),
        outcome: Outcome::NONE,
    }
}
