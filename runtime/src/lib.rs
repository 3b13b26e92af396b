//! proclife: the life-cycle of Python's `multiprocessing.Process`, its IPC and its
//! process-shared synchronisation, on real Linux processes.
#![deny(unsafe_code)]

pub mod error;
// The parent-side half of the status slot is used by `Process`.
#[allow(dead_code)]
mod status;

pub use error::{Error, Result};
pub use status::BlockedOn;
pub mod ipc;
pub mod shm;
pub mod sync;
