//! The shared primitives (`Lock`, `RLock`, `Semaphore`, `BoundedSemaphore`, `Event`,
//! `Condition`, `Barrier`, `Queue`, `SimpleQueue`, `JoinableQueue`, `Value`, `Array`, `Pipe`) as
//! specifications, and
//! the histories they judge.
//!
//! A history is what real processes did to one set of shared objects: every call with the
//! logical times of its invocation and return, stamped on one shared counter, and its result
//! (or none, when the caller was killed before it returned). Objects whose operations take
//! effect at one point are judged by a sequential specification (a pure `step`); `Condition`
//! and `Barrier`, whose waits release and re-acquire or return for all parties together, are
//! judged by an interval specification over the whole history.
//!
//! Like the life-cycle model, nothing here does I/O, reads a clock or draws a random number.

pub mod barrier;
mod call;
pub mod condition;
pub mod coverage;
pub mod graph;
mod history;
pub mod linearizable;
pub mod pipe;
pub mod refusal;
pub mod register;
pub mod spec;

pub use call::{Call, Object, Ret};
pub use history::{Entry, History, Violation};
pub use refusal::Refusal;
