//! Where the two vocabularies meet: runtime results as model outcomes, runtime states as
//! model states.
//!
//! This is the only module that turns a runtime value into a model value; other modules may
//! use both crates side by side (the system under test performs model operations on runtime
//! processes) but hand every runtime result here (the tidy test checks it).

use std::borrow::Cow;

use proclife::ProcessState;
use proclife_model::{Life, Outcome, PyError, PyErrorKind, State, Value};

/// A runtime result the model has no outcome for: a harness failure, not a disagreement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unmapped(pub String);

/// The model's blocking reason for a runtime one.
pub fn blocked_on(on: proclife::BlockedOn) -> Option<proclife_model::BlockedOn> {
    use proclife::BlockedOn as R;
    use proclife_model::BlockedOn as M;
    Some(match on {
        R::Lock => M::Lock,
        R::RLock => M::RLock,
        R::Semaphore => M::Semaphore,
        R::Event => M::Event,
        R::Condition => M::Condition,
        R::Barrier => M::Barrier,
        R::Recv => M::Recv,
        R::Send => M::Send,
        R::Join => M::Join,
        _ => return None,
    })
}

/// Whether the runtime's `state()` shows the puppet in the wait the model calls
/// `Blocked { on }`: the primitive by name, or for the waits outside every primitive the
/// kernel's wait, a `read` of a pipe or a sleep.
///
/// Where `/proc/<pid>/syscall` or the fd could not be read the runtime leaves them out
/// (`call: None`, `fd: None`), and any kernel wait is taken.
pub fn blocked_as(on: proclife_model::BlockedOn, observed: ProcessState) -> bool {
    use proclife_model::BlockedOn as M;
    let ProcessState::Blocked(real) = observed else {
        return false;
    };
    let proclife::BlockedOn::Kernel(wait) = real else {
        return blocked_on(real) == Some(on);
    };
    let call = wait.call.map(|call| call.name());
    match on {
        M::Read => {
            matches!(call, None | Some(Some("read")))
                && wait.fd.is_none_or(|fd| fd.kind == proclife::FdKind::Pipe)
        }
        M::Sleep => matches!(
            call,
            None | Some(Some("clock_nanosleep" | "nanosleep" | "restart_syscall"))
        ),
        _ => false,
    }
}

/// The model's outcome for a runtime error: the CPython exception it stands for.
///
/// # Errors
///
/// [`Unmapped`] for an error that stands for no CPython exception of the life-cycle (a system
/// call failing, a lost status): the harness reports it instead of comparing it.
pub fn error(error: &proclife::Error) -> Result<Outcome, Unmapped> {
    let Some((kind, message)) = error.python() else {
        return Err(Unmapped(format!(
            "runtime error without a CPython meaning: {error}"
        )));
    };
    let Some(kind) = PyErrorKind::from_name(kind) else {
        return Err(Unmapped(format!(
            "runtime error as {kind}: {message} ({error})"
        )));
    };
    Ok(Outcome::Raised(PyError {
        kind,
        message: Cow::Owned(message),
    }))
}

/// The model's outcome for a runtime result whose value maps through `value`.
///
/// # Errors
///
/// As [`error`].
pub fn result<T>(
    result: proclife::Result<T>,
    value: impl FnOnce(T) -> Value,
) -> Result<Outcome, Unmapped> {
    match result {
        Ok(v) => Ok(Outcome::Returned(value(v))),
        Err(e) => error(&e),
    }
}

/// Whether the runtime's `state()` may be observed while the model is in `state`.
///
/// A blocked child counts as alive: `Running` is accepted for a model state that is blocked
/// (the child may be between the release and its next wait) and `Blocked` for one that runs
/// (it may not have reported the end of its wait yet).
///
/// A wait in the kernel (`Blocked(BlockedOn::Kernel(..))`) is what the model calls running
/// (decision 0015): the model's `Blocked` is a wait on one of the runtime's primitives that
/// the checker caused and will end, and the puppet the model calls running sits in kernel
/// waits of its own: the `read`/`poll` of its command pipe, the sleep of an exit on its way,
/// the pipe reads of starting a grandchild before it joins it. For a model state that is
/// blocked it is accepted for the same reason as `Running`; this holds for the model's own
/// kernel waits (`read`, `sleep`) too.
///
/// `Stopped` is admitted for a model state that is stopped (decision 0017): the checker waits
/// until a child it stops is reported stopped, and after `sigcont` until it is no longer.
/// It is admitted too for a child with a `SIGTERM` on its way, which `terminate()` has just
/// continued. A stopped child with a `SIGKILL` on its way may already be dying: every state of
/// a live child is admitted for it.
pub fn state_admits(state: &State, observed: ProcessState) -> bool {
    match (&state.life, observed) {
        (Life::Stopped { .. }, ProcessState::Stopped) => true,
        (Life::Stopped { was }, ProcessState::Running | ProcessState::Blocked(_)) => {
            was.signals().any()
        }
        // `terminate()` continued a stopped child: the kernel has woken it, and `/proc` may
        // show the stop until it is next scheduled.
        (Life::Running { signals, .. } | Life::Blocked { signals, .. }, ProcessState::Stopped) => {
            signals.term
        }
        (Life::New, ProcessState::New) => true,
        (Life::Running { .. }, ProcessState::Running | ProcessState::Blocked(_)) => true,
        (Life::Blocked { .. }, ProcessState::Blocked(proclife::BlockedOn::Kernel(_))) => true,
        (Life::Blocked { on, .. }, ProcessState::Blocked(real)) => {
            blocked_on(real) == Some(*on)
                || matches!(state.life, Life::Blocked { signals, .. } if signals.any())
        }
        (Life::Blocked { .. }, ProcessState::Running) => true,
        (_, ProcessState::Stopped) => false,
        (Life::Terminated { exitcode }, ProcessState::Terminated(real)) => *exitcode == real,
        (Life::Closed { .. }, ProcessState::Closed) => true,
        _ => false,
    }
}

/// The name of `error`'s variant, as the refusal table's `error` column writes it.
pub fn variant(error: &proclife::Error) -> String {
    let debug = format!("{error:?}");
    debug
        .split(['(', ' ', '{'])
        .next()
        .unwrap_or_default()
        .to_owned()
}

/// The runtime's site for a row of the refusal table: the same object and the same CPython
/// operation name. `None` when the runtime has no such object or operation (a table the
/// runtime cannot name; the refusal test reports it).
pub fn site(row: &proclife_model::refusals::Refusal) -> Option<proclife::Site> {
    site_of(row.object, row.operation)
}

/// The runtime's site of `operation` (CPython's name) on the table's `object`; `None` when
/// the runtime names no such operation.
pub fn site_of(
    object: proclife_model::refusals::Object,
    operation: &str,
) -> Option<proclife::Site> {
    use proclife::Object as R;
    use proclife_model::refusals::Object as M;
    let object = match object {
        M::Process => R::Process,
        M::Connection => R::Connection,
        M::Queue => R::Queue,
        M::SimpleQueue => R::SimpleQueue,
        M::JoinableQueue => R::JoinableQueue,
        M::Value => R::Value,
        M::Array => R::Array,
        M::Lock => R::Lock,
        M::RLock => R::RLock,
        M::Semaphore => R::Semaphore,
        M::BoundedSemaphore => R::BoundedSemaphore,
        M::Event => R::Event,
        M::Condition => R::Condition,
        M::ConditionWithLock => R::ConditionWithLock,
        M::Barrier => R::Barrier,
        M::Context => R::Context,
    };
    let operation = proclife::Operation::ALL
        .into_iter()
        .find(|op| op.name() == operation)?;
    Some(proclife::Site::new(object, operation))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_runtime_reason_has_a_model_reason() {
        for on in proclife::BlockedOn::ALL {
            let mapped = blocked_on(on).expect("mapped");
            assert_eq!(
                mapped.name().to_lowercase(),
                format!("{on:?}").to_lowercase()
            );
        }
    }

    #[test]
    fn errors_carry_their_cpython_meaning() {
        let outcome = error(&proclife::Error::AlreadyStarted).expect("mapped");
        assert_eq!(outcome, Outcome::Raised(PyError::START_TWICE));
        let outcome = error(&proclife::Error::Closed).expect("mapped");
        assert_eq!(outcome, Outcome::Raised(PyError::CLOSED));
        let outcome = error(&proclife::Error::StillRunning).expect("mapped");
        assert_eq!(outcome, Outcome::Raised(PyError::CLOSE_RUNNING));
    }

    #[test]
    fn states_match_by_life() {
        let new = State::new();
        assert!(state_admits(&new, ProcessState::New));
        assert!(!state_admits(&new, ProcessState::Running));
        let done = State {
            life: Life::Terminated { exitcode: -9 },
            ..State::new()
        };
        assert!(state_admits(&done, ProcessState::Terminated(-9)));
        assert!(!state_admits(&done, ProcessState::Terminated(9)));
        assert!(!state_admits(&done, ProcessState::Stopped));
    }

    fn kernel(call: Option<i64>, kind: Option<proclife::FdKind>) -> ProcessState {
        ProcessState::Blocked(proclife::BlockedOn::Kernel(proclife::KernelWait {
            call: call.map(proclife::SystemCall::from_number),
            fd: kind.map(|kind| proclife::WaitFd { fd: 3, kind }),
        }))
    }

    #[test]
    fn the_kernel_waits_are_told_apart_by_call_and_fd() {
        use proclife_model::BlockedOn as M;
        let read = kernel(Some(nix::libc::SYS_read), Some(proclife::FdKind::Pipe));
        let socket = kernel(Some(nix::libc::SYS_read), Some(proclife::FdKind::Socket));
        let sleep = kernel(Some(nix::libc::SYS_clock_nanosleep), None);
        let unknown = kernel(None, None);
        assert!(blocked_as(M::Read, read) && !blocked_as(M::Read, socket));
        assert!(!blocked_as(M::Read, sleep) && blocked_as(M::Read, unknown));
        assert!(blocked_as(M::Sleep, sleep) && !blocked_as(M::Sleep, read));
        assert!(blocked_as(M::Sleep, unknown));
        assert!(!blocked_as(M::Lock, read) && !blocked_as(M::Read, ProcessState::Running));
        let lock = ProcessState::Blocked(proclife::BlockedOn::Lock);
        assert!(blocked_as(M::Lock, lock) && !blocked_as(M::Read, lock));
    }

    #[test]
    fn a_stop_is_admitted_for_a_stopped_state_only() {
        use proclife_model::{Op, step};
        let running = step(&State::new(), &Op::Start).next;
        let stopped = step(&running, &Op::SigStop).next;
        assert!(state_admits(&stopped, ProcessState::Stopped));
        assert!(!state_admits(&stopped, ProcessState::Running));
        assert!(!state_admits(&running, ProcessState::Stopped));
        // With a SIGKILL on its way the child may already be dying.
        let killed = step(&stopped, &Op::Kill).next;
        assert!(state_admits(&killed, ProcessState::Stopped));
        assert!(state_admits(&killed, ProcessState::Running));
        assert!(!state_admits(&killed, ProcessState::Terminated(-9)));
    }

    #[test]
    fn a_kernel_wait_is_running_and_a_stop_is_nothing() {
        let kernel = ProcessState::Blocked(proclife::BlockedOn::Kernel(proclife::KernelWait {
            call: None,
            fd: None,
        }));
        let running = State {
            life: Life::Running {
                exiting: None,
                signals: Default::default(),
            },
            ..State::new()
        };
        assert!(state_admits(&running, kernel));
        assert!(!state_admits(&running, ProcessState::Stopped));
        assert!(!state_admits(&State::new(), kernel));
    }
}
