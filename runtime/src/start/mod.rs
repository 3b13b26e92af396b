//! Start methods: how a `Process` becomes a running child.
//!
//! Each method is one implementation of [`Launcher`], as CPython has `popen_fork`,
//! `popen_spawn_posix` and `popen_forkserver`: [`fork`] copies the caller, [`spawn`]
//! re-executes the program and hands it an entry point and its arguments over a
//! [`bootstrap`] socket.

use std::sync::Arc;

use crate::children::child::Child;
use crate::error::Result;

pub(crate) mod bootstrap;
pub(crate) mod entry;
pub(crate) mod exit;
pub(crate) mod fork;
pub(crate) mod forkserver;
pub(crate) mod launch;
pub(crate) mod method;
pub(crate) mod pass;
pub(crate) mod spawn;
pub(crate) mod target;

pub use forkserver::client::{fork_server_pid, stop_fork_server};
pub(crate) use launch::{ChildSpec, Launcher, TargetSlot, Threads};
pub(crate) use method::peek_start_method;
pub use method::{StartMethod, get_start_method, set_start_method, set_start_method_force};

impl StartMethod {
    /// Starts a child with this method; `threads` says whether the fork method may fork a
    /// multi-threaded parent (the other methods never fork the caller). See
    /// [`Launcher::launch`].
    pub(crate) fn launch(
        self,
        threads: Threads,
        spec: &ChildSpec<'_>,
        target: &mut TargetSlot,
    ) -> Result<Arc<Child>> {
        match self {
            StartMethod::Fork => fork::ForkLauncher { threads }.launch(spec, target),
            StartMethod::Spawn => spawn::SpawnLauncher.launch(spec, target),
            StartMethod::ForkServer => forkserver::client::ForkServerLauncher.launch(spec, target),
        }
    }
}
