//! proclife: the life-cycle of Python's `multiprocessing.Process`, its IPC and its
//! process-shared synchronisation, on real Linux processes.
#![deny(unsafe_code)]

pub mod error;
mod status;

pub use error::{Error, Result};
pub use status::BlockedOn;
