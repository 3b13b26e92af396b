//! proclife-model: the life-cycle of Python's `multiprocessing.Process` as a pure, total
//! transition function, and the transition graph derived from it.
//!
//! # What the model is
//!
//! One process handle goes through a life-cycle: it is **new** until `start()`, then its child
//! is **running**, perhaps **blocked** on a lock, an rlock, a semaphore, an event, a condition,
//! a barrier, a pipe or queue receive (or send), the join of another process, a plain `read`
//! of a pipe or a sleep, perhaps **stopped** by `SIGSTOP` until `SIGCONT`, until it is
//! **terminated** (with its exit code), for good; finally the handle may be **closed**.
//! [`step`]`(&State, &Op) -> Step { next, outcome }` says what every operation does in every
//! state: it is pure (no I/O, no clock, no threads, no randomness, and it forbids `unsafe_code`), total
//! (defined for every pair) and deterministic.
//! A refusal is an outcome, [`Outcome::Raised`] with the CPython exception class and its
//! exact message ([`PyError`]), never an `Err` and never a panic; refusals leave the state as
//! it was.
//!
//! # States
//!
//! [`State`] is a [`Life`] plus the `daemon` flag and the name:
//!
//! | [`Life`] | CPython `repr` | meaning |
//! |---|---|---|
//! | `New` | `initial` | constructed, never started |
//! | `Running { exiting, signals }` | `started` | the child is alive; an own exit or a signal may be on its way |
//! | `Blocked { on, queue, signals }` | `started` | the child is alive and waits on `on`; commands it received meanwhile are queued |
//! | `Stopped { was }` | `started` | the child is alive and stopped by `SIGSTOP`; `SIGCONT` takes it back to `was` |
//! | `Terminated { exitcode }` | `stopped` | the child has exited (reaped or not: the API cannot tell) |
//! | `Closed { was_started }` | `closed` | `close()` succeeded |
//!
//! Exit codes follow CPython: a normal return gives 0, `exit(n)` gives `n & 0xFF`
//! ([`exit_status`]), a panic (an uncaught Python exception) gives 1, and death by signal `N`
//! gives `-N` (`terminate()` → -15, `kill()` → -9).
//!
//! # Operations
//!
//! [`Op`] has the parent's calls (`start`, `run`, `is_alive`, `join`, `join(timeout)`, `pid`,
//! `exitcode`, `sentinel`, `terminate`, `kill`, `close`, `daemon` and `name`, read and set)
//! and the commands of the *puppet* child used by the checker (`child_exit`, `child_panic`,
//! `child_return`, `child_block`, `release`), the job-control signals `sigstop` and `sigcont`,
//! and `settle`.
//! Timeouts are data ([`Timeout`]: zero, negative, expiring, in time).
//! A puppet command answers `true` when it is delivered: the child is alive and no exit is
//! already on its way; a command sent to a blocked child is queued and obeyed after
//! `release`. `release` answers `true` iff the child was blocked.
//! `sigstop` and `sigcont` answer `true` when the child is alive and no exit is on its way;
//! a stopped child obeys no command and is released by nothing but `sigcont`, and
//! `terminate()` continues it (proclife sends `SIGCONT` after `SIGTERM`), while only a
//! `SIGKILL` ends it where it stands (`docs/decisions/0017-the-model-says-stopped.md`).
//! `settle` returns `None` in every state; it waits until a pending exit has really happened.
//!
//! # Asynchrony
//!
//! Real processes race with their parent, and the model says so instead of pretending.
//! `child_exit`, `terminate()` and `kill()` do not end the child synchronously: they put an
//! exit on its way (`Running::exiting`, `signals`), and the exit happens later, as an
//! [`Event`] ([`events`] lists the ones that may happen in a state).
//! Only `join()`, a positive `join(timeout)` that ends in time, and `settle` wait for it.
//! The checker [`Possible`] tracks the set of states a real process may be in: before each
//! operation it lets any pending event fire, and it keeps the states whose outcome matches the
//! observation; `join` and `settle` collapse the set.
//! A real run is accepted iff some interleaving explains it; with a `settle` after every
//! operation that may cause an exit, the set is always a single state.
//! When an own exit and a signal race, both exit codes are possible; a signal sent to a child
//! that has already exited changes nothing, and the real exit code stays.
//!
//! # The transition graph
//!
//! [`TransitionGraph::explore`] derives the graph from [`step`] and [`events`] by
//! breadth-first search from `New` over [`Op::graph_ops`]; nothing is drawn by hand.
//! Concrete states are abstracted to a [`Node`]: `New`, `Running`, `Exiting` (own exit on its
//! way), `Blocked`, `Signalled` (a signal on its way), `Stopped`, `Terminated(code)`,
//! `Closed(started?)`.
//! Edges are [`EdgeKey`]s labelled with the operation's [`Op::label`] and its outcome, or with
//! an event.
//! Representative parameters: exit codes 0, 3, 256 and -1 ([`GRAPH_EXIT_CODES`]; with panic
//! and return they give the exit codes 0, 1, 3 and 255), all four timeout classes (positive
//! timeouts share one label, since a run cannot tell them apart), `daemon` set to `false` and
//! `true`, every [`BlockedOn`] the replay schema can name ([`BlockedOn::GRAPH`]), and blocked
//! children with at most one queued command
//! ([`EXPLORED_QUEUE_MAX`]).
//! `name` and `set_name` are not in the graph: the name neither steers nor depends on the
//! life-cycle, and the replay schema has no operation for it.
//! Every edge is the image of a concrete transition, so a real run can exercise it;
//! [`transition_edges`] names the edges of a concrete transition, for coverage counting.
//! An operation that waits for a pending exit (`join`, `settle`, a timed join that ends in time)
//! is drawn as the exit event followed by the operation on the exited child: a real run cannot
//! tell a shortcut from that path, so a shortcut edge could never be counted as exercised.
//! [`Possible::observe`] reports an edge only once every interleaving that explains the run has
//! taken it.
//! [`dot::render`] and [`export::render_json`] write the graph byte-stably;
//! [`table::render_markdown`] writes the state × operation table.
//!
//! # Deviations from CPython
//!
//! * `terminate()` and `kill()` before `start()` raise
//!   `AssertionError: can only terminate a started process` and
//!   `AssertionError: can only kill a started process`; CPython raises an accidental
//!   `AttributeError: 'NoneType' object has no attribute 'terminate'`
//!   (`docs/decisions/0001-terminate-kill-before-start.md`).
//! * `terminate()` of a stopped child continues it, so it dies of the `SIGTERM` at once;
//!   CPython's leaves the `SIGTERM` pending until someone continues the child
//!   (`docs/decisions/0015-blocked-as-the-kernel-sees-it.md`).
//! * The model has no notion of a forkserver, of `python -O`, of a handle used from another
//!   process, or of a daemonic parent; it describes one handle owned by its creator.
//! * CPython's `join(0)` window (the sentinel ready a moment before the zombie exists) is not
//!   modelled: the runtime waits on a pidfd, which has no such window.
//!
//! # The replay schema
//!
//! [`Op::from_json`], [`Op::to_json`], [`Outcome::from_json`] and [`Outcome::to_json`] convert
//! between the model and the replay schema's JSON objects, without I/O.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod dot;
pub mod export;
mod graph;
pub mod objects;
mod op;
mod outcome;
mod possible;
pub mod refusals;
mod schema;
mod state;
mod step;
pub mod story;
pub mod table;

pub use graph::{
    EXPLORED_QUEUE_MAX, EdgeKey, EdgeLabel, Node, TransitionGraph, Trigger, edge_key,
    event_edge_key, transition_edges,
};
pub use op::{GRAPH_EXIT_CODES, NameArg, Op, Timeout, exit_status};
pub use outcome::{Outcome, PyError, PyErrorKind, Step, Value};
pub use possible::{Disagreement, Possible, WaitLength};
pub use schema::SchemaError;
pub use state::{BlockedOn, Command, Life, Signal, Signals, State};
pub use step::{Event, events, step};
