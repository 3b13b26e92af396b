//! [`StartMethod`] and the process-wide default method.
#![forbid(unsafe_code)]

use std::sync::atomic::{AtomicU8, Ordering};

use crate::error::{Error, Result};

/// How a child process is created; mirrors CPython's start methods.
///
/// See `docs/start-methods.md` for when to choose which.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum StartMethod {
    /// `fork()`: the child is a copy of the parent and runs the target at once.
    ///
    /// Any closure can be a target. The parent must be single-threaded, see
    /// [`Process::start`](crate::Process::start).
    #[default]
    Fork,
    /// A fresh `execve` of the running program (`/proc/self/exe`) that runs an entry point
    /// registered with [`entry!`](crate::entry); safe in a multi-threaded parent.
    ///
    /// The target must be given with [`Builder::entry`](crate::Builder::entry); its
    /// arguments travel serialised, IPC and synchronisation objects as fds.
    Spawn,
    /// A fork server, started once by re-execution, forks each child on request; safe in a
    /// multi-threaded parent, and cheaper than spawn per child.
    ///
    /// The target must be given with [`Builder::entry`](crate::Builder::entry), as for
    /// spawn. Needs Linux 6.15 (`PIDFD_INFO_EXIT`); see
    /// [`stop_fork_server`](crate::stop_fork_server).
    ForkServer,
}

impl StartMethod {
    /// The method's name in CPython: `"fork"`, `"spawn"`, `"forkserver"`.
    pub fn name(self) -> &'static str {
        match self {
            StartMethod::Fork => "fork",
            StartMethod::Spawn => "spawn",
            StartMethod::ForkServer => "forkserver",
        }
    }

    /// Every method, in the order of their codes.
    pub const ALL: [StartMethod; 3] = [
        StartMethod::Fork,
        StartMethod::Spawn,
        StartMethod::ForkServer,
    ];

    fn code(self) -> u8 {
        match self {
            StartMethod::Fork => 1,
            StartMethod::Spawn => 2,
            StartMethod::ForkServer => 3,
        }
    }

    fn from_code(code: u8) -> Option<StartMethod> {
        StartMethod::ALL.into_iter().find(|m| m.code() == code)
    }
}

impl std::str::FromStr for StartMethod {
    type Err = Error;

    /// Parses CPython's name of a method, as `multiprocessing.get_context(name)` does.
    ///
    /// # Errors
    ///
    /// [`Error::UnknownStartMethod`] for any other name (CPython's `ValueError: cannot find
    /// context for 'name'`).
    fn from_str(name: &str) -> Result<StartMethod> {
        StartMethod::ALL
            .into_iter()
            .find(|m| m.name() == name)
            .ok_or_else(|| Error::UnknownStartMethod {
                name: name.to_owned(),
            })
    }
}

impl std::fmt::Display for StartMethod {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The global method: 0 while unset (the default applies and may still be set).
static GLOBAL: AtomicU8 = AtomicU8::new(0);

/// Sets the start method of every process whose builder does not choose one; mirrors
/// `multiprocessing.set_start_method(method)`.
///
/// # Errors
///
/// [`Error::StartMethodAlreadySet`] when the method was already fixed: by an earlier call,
/// or by [`get_start_method`] or a `start()` that used the default (CPython's
/// `RuntimeError('context has already been set')`). Use [`set_start_method_force`] to
/// change it anyway.
pub fn set_start_method(method: StartMethod) -> Result<()> {
    GLOBAL
        .compare_exchange(0, method.code(), Ordering::AcqRel, Ordering::Acquire)
        .map(drop)
        .map_err(|_| Error::StartMethodAlreadySet)
}

/// Sets the global start method even if it was fixed before; mirrors
/// `multiprocessing.set_start_method(method, force=True)`.
pub fn set_start_method_force(method: StartMethod) {
    GLOBAL.store(method.code(), Ordering::Release);
}

/// The global start method, fixing the default ([`StartMethod::Fork`]) if none was set;
/// mirrors `multiprocessing.get_start_method()`.
pub fn get_start_method() -> StartMethod {
    // Loaded before the exchange: a locked compare-exchange is a write even when it fails,
    // and a write to a page shared with a forked child costs a copy-on-write fault, which
    // every start that reaches here would pay.
    let code = match GLOBAL.load(Ordering::Acquire) {
        0 => match GLOBAL.compare_exchange(
            0,
            StartMethod::Fork.code(),
            Ordering::AcqRel,
            Ordering::Acquire,
        ) {
            Ok(_) => StartMethod::Fork.code(),
            Err(now) => now,
        },
        code => code,
    };
    StartMethod::from_code(code).unwrap_or_default()
}

/// The global setting as it stands (0 while unset), for a re-executed child to take over.
pub(crate) fn global_code() -> u8 {
    GLOBAL.load(Ordering::Acquire)
}

/// Takes over the parent's global setting in a re-executed child (set or unset, as the
/// parent had it); an unknown code leaves it unset.
pub(crate) fn inherit_global(code: u8) {
    let code = StartMethod::from_code(code).map_or(0, StartMethod::code);
    GLOBAL.store(code, Ordering::Release);
}

/// The global start method without fixing it (CPython's `get_start_method(allow_none=True)`
/// with the default filled in).
pub(crate) fn peek_start_method() -> StartMethod {
    StartMethod::from_code(GLOBAL.load(Ordering::Acquire)).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for method in StartMethod::ALL {
            assert_eq!(method.name().parse::<StartMethod>().ok(), Some(method));
            assert_eq!(method.to_string(), method.name());
            assert_eq!(StartMethod::from_code(method.code()), Some(method));
        }
        assert!(matches!(
            "threads".parse::<StartMethod>(),
            Err(Error::UnknownStartMethod { .. })
        ));
    }

    #[test]
    fn refusals_read_like_cpython() {
        assert_eq!(
            Error::StartMethodAlreadySet.python(),
            Some(("RuntimeError", "context has already been set".to_owned()))
        );
        let closure = Error::NotPassable { method: "spawn" };
        assert_eq!(
            closure.python().map(|(kind, _)| kind),
            Some("AttributeError")
        );
    }
}
