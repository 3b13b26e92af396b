//! The system layer: every `unsafe` block and every raw system call of the runtime.
//!
//! Each module wraps one family of calls behind a safe interface whose doc names the call
//! and its errors; the layers above (`children`, `sync`, `ipc`, `start`, `process`) forbid
//! `unsafe` code. A new system call goes here, in the module of its family or a new one.

pub(crate) mod fork;
pub(crate) mod futex;
pub(crate) mod io;
pub(crate) mod layout;
pub(crate) mod pidfd;
pub(crate) mod poll;
pub(crate) mod process;
pub(crate) mod procfs;
pub(crate) mod pthread_mutex;
pub(crate) mod scm;
pub mod shm;
mod shm_view;
pub(crate) mod slot;
pub(crate) mod stdio;
pub(crate) mod thread;
pub(crate) mod time;
