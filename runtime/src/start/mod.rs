//! Start methods: how a `Process` becomes a running child.
//!
//! Each method is one implementation of [`Launcher`], as CPython has `popen_fork`,
//! `popen_spawn_posix` and `popen_forkserver`: [`fork`] copies the caller, [`spawn`]
//! re-executes the program and hands it an entry point and its arguments over a
//! [`bootstrap`] socket.

pub(crate) mod bootstrap;
pub(crate) mod entry;
pub(crate) mod fork;
pub(crate) mod forkserver;
pub(crate) mod launch;
pub(crate) mod method;
pub(crate) mod pass;
pub(crate) mod spawn;
pub(crate) mod target;

pub use forkserver::client::{fork_server_pid, stop_fork_server};
pub(crate) use launch::{ChildSpec, Launcher, Threads};
pub(crate) use method::peek_start_method;
pub use method::{StartMethod, get_start_method, set_start_method, set_start_method_force};

impl StartMethod {
    /// The implementation of this method; `threads` says whether the fork method may fork
    /// a multi-threaded parent (the other methods never fork the caller).
    pub(crate) fn launcher(self, threads: Threads) -> &'static dyn Launcher {
        match (self, threads) {
            (StartMethod::Fork, Threads::Refuse) => &fork::ForkLauncher {
                threads: Threads::Refuse,
            },
            (StartMethod::Fork, Threads::Allow) => &fork::ForkLauncher {
                threads: Threads::Allow,
            },
            (StartMethod::Spawn, _) => &spawn::SpawnLauncher,
            (StartMethod::ForkServer, _) => &forkserver::client::ForkServerLauncher,
        }
    }
}
