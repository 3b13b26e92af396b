//! Test support shared by every test binary of the workspace.
//!
//! - [`procfs`]: what this process holds, read from `/proc` (fds, children, zombies,
//!   threads, mappings, `/dev/shm`), and [`procfs::Snapshot`], the leak check run after
//!   every test.
//! - [`wait`]: bounded waits. A bound around an event that should happen at once is
//!   [`wait::AT_ONCE`]; a bound around work is a [`wait::Progress`] watch ("no progress for
//!   [`wait::QUIET`]"), never a guess at how long the work takes.
//! - [`child`]: gates, sleepers and fd hygiene for forked targets.
//! - [`process`]: a started process that a failing test cannot leave behind, and the
//!   bounded wait for one of its states.
//! - [`helper`]: scenarios that change limits, credentials or namespaces, run in a
//!   sacrificial child that reports progress and a failure message through a pipe.
//! - [`runner`]: the single-thread runner for `harness = false` test binaries (tests that
//!   fork need a single-threaded parent).
//! - [`ipc`]: children that run a closure returning a check code, for the IPC and sync
//!   tests.
#![allow(unsafe_code)]

pub mod child;
pub mod helper;
pub mod ipc;
pub mod process;
pub mod procfs;
pub mod runner;
pub mod wait;

pub use child::{Gate, close_all_but, sleeper, wait_gate};
pub use procfs::{children, fd_snapshot, proc_state, thread_count, zombies};
pub use runner::{Test, run};
pub use wait::{join_code, readable, settle, wait_single_threaded, wait_until};

/// What a test returns; `?` works on proclife errors and on strings.
pub type TestResult = Result<(), Box<dyn std::error::Error>>;

/// Fails the test with a message unless the condition holds.
#[macro_export]
macro_rules! ensure {
    ($cond:expr, $($fmt:tt)+) => {
        if !$cond {
            return Err(format!($($fmt)+).into());
        }
    };
}

/// Fails the test unless both sides are equal; the message gives both.
#[macro_export]
macro_rules! ensure_eq {
    ($left:expr, $right:expr $(,)?) => {{
        let (left, right) = (&$left, &$right);
        if left != right {
            return Err(format!(
                "{}:{}: {} = {:?}, expected {:?}",
                file!(),
                line!(),
                stringify!($left),
                left,
                right
            )
            .into());
        }
    }};
}

/// Fails the test unless the expression matches the pattern; the message gives the value.
#[macro_export]
macro_rules! ensure_matches {
    ($value:expr, $pattern:pat $(,)?) => {{
        let value = $value;
        if !matches!(value, $pattern) {
            return Err(format!(
                "{}:{}: {} = {:?}, expected {}",
                file!(),
                line!(),
                stringify!($value),
                value,
                stringify!($pattern)
            )
            .into());
        }
    }};
}
