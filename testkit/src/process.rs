//! A started [`Process`] that a failing test cannot leave behind, and the wait for a state.

use std::time::{Duration, Instant};

use proclife::ipc::{Connection, pipe};
use proclife::{Process, ProcessState};

use crate::wait::AT_ONCE;

/// A started process, killed and reaped when dropped before it exited, so that a failing
/// test does not leave it waiting (the leak check reports anything still left).
#[derive(Debug)]
pub struct Started(pub Process);

impl std::ops::Deref for Started {
    type Target = Process;
    fn deref(&self) -> &Process {
        &self.0
    }
}

impl Started {
    /// Starts `p` ([`Process::start`]) and keeps it as a [`Started`].
    ///
    /// # Errors
    ///
    /// The start's error.
    pub fn start(p: Process) -> Result<Started, Box<dyn std::error::Error>> {
        let mut p = Started(p);
        p.0.start()?;
        Ok(p)
    }

    /// Creates a pipe (`proclife::ipc::pipe(duplex)`), builds a process with `build`, which
    /// gets the child's end (to pass as the target's argument), and starts it. Returns the
    /// parent's end and the started process, in the order in which a failing test drops
    /// them: the process first (killed and reaped), then the parent's end.
    ///
    /// # Errors
    ///
    /// The pipe's or the start's error.
    pub fn piped(
        duplex: bool,
        build: impl FnOnce(Connection) -> Process,
    ) -> Result<(Connection, Started), Box<dyn std::error::Error>> {
        let (parent_end, child_end) = pipe(duplex)?;
        let p = Started::start(build(child_end))?;
        Ok((parent_end, p))
    }
}

impl Drop for Started {
    fn drop(&mut self) {
        if matches!(self.0.exitcode(), Ok(None)) {
            // Cleanup of a failed test.
            let _ = self.0.kill();
            let _ = self.0.join_timeout(AT_ONCE);
        }
    }
}

/// Polls `p.state()` every millisecond until `want` accepts it and returns that state.
/// Reaching a wait is an event that should happen at once: the bound is [`AT_ONCE`], and a
/// child that ends first fails at once.
///
/// # Errors
///
/// `p.state()`'s error, or a message with what was wanted (`what`) and the last state seen.
pub fn wait_state(
    p: &Process,
    what: &str,
    mut want: impl FnMut(ProcessState) -> bool,
) -> Result<ProcessState, Box<dyn std::error::Error>> {
    let deadline = Instant::now() + AT_ONCE;
    loop {
        let state = p.state()?;
        if want(state) {
            return Ok(state);
        }
        if matches!(state, ProcessState::Terminated(_)) || Instant::now() >= deadline {
            return Err(format!(
                "{} ({:?}): expected {what}; the state is {state:?} (bound {AT_ONCE:?})",
                p.name(),
                p.start_method()
            )
            .into());
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}
