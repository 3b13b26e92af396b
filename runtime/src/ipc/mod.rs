//! Passing data between processes: `Pipe`/`Connection`, `Queue`, `Value`/`Array`.
//!
//! Everything here is built from close-on-exec fds (socketpairs, pipes, sealed memfds), so
//! an object can be handed to another process by fd; nothing is ever named in the file
//! system or in `/dev/shm`.

mod connection;
mod queue;
mod shared;

pub use connection::{Connection, DEFAULT_MAX_FRAME, HEADER_LEN, pipe};
pub use queue::{DEFAULT_CAPACITY, JoinableQueue, MAX_CAPACITY, MIN_CAPACITY, Queue, SimpleQueue};
pub use shared::{Array, RawArray, RawValue, Shareable, Value};
