//! Children for the IPC and synchronisation tests: a closure returning a check code,
//! started through [`proclife::Process`], killed and reaped if a test fails before it
//! reaped them.

use std::os::fd::RawFd;
use std::time::Duration;

use libtest_mimic::Failed;
use proclife::Process;

use crate::wait::AT_ONCE;

/// The result type of an IPC test body.
pub type TestResult = Result<(), Failed>;

/// Fails the test with `msg` (and the caller's location) unless `cond`.
///
/// # Errors
///
/// `msg` when `cond` is false.
#[track_caller]
pub fn ensure(cond: bool, msg: impl std::fmt::Display) -> TestResult {
    if cond {
        Ok(())
    } else {
        let loc = std::panic::Location::caller();
        Err(format!("{}:{}: {msg}", loc.file(), loc.line()).into())
    }
}

/// A child started through [`Process`] (fork method), killed and reaped on drop if the
/// test did not reap it.
#[derive(Debug)]
pub struct Child {
    process: Process,
}

/// Starts a child that runs `body`; it exits with 0 when `body` returns 0, and with 1
/// (the code printed on its stderr) otherwise, or when `body` panics.
///
/// The child is a fork of the test process: it inherits every fd the test holds at that
/// moment, as a child of CPython's fork start method does. A body that needs the peer of
/// a pipe end to see end of file closes its inherited copy with [`close_inherited`].
///
/// # Errors
///
/// The start's error.
pub fn spawn(body: impl FnOnce() -> i32 + Send + 'static) -> Result<Child, Failed> {
    let mut process = Process::new_fallible(move || match body() {
        0 => Ok(()),
        code => Err(format!("the child's check {code} failed")),
    });
    process
        .start()
        .map_err(|e| Failed::from(format!("start: {e}")))?;
    Ok(Child { process })
}

impl Child {
    /// The child's pid.
    pub fn pid(&self) -> i32 {
        match self.process.pid() {
            Ok(Some(pid)) => pid.as_raw(),
            _ => 0,
        }
    }

    /// Sends SIGKILL through the child's pidfd (nothing if it is known to have exited).
    pub fn kill(&self) {
        // A child that already exited is not signalled; that is not an error here.
        let _ = self.process.kill();
    }

    /// Waits at most `timeout` for the child to end; `Some(code)` (negative: killed by that
    /// signal) once reaped, `None` if it is still running.
    pub fn wait(&mut self, timeout: Duration) -> Option<i32> {
        self.process.join_timeout(timeout).ok()?;
        self.process.exitcode().ok().flatten()
    }

    /// Waits for a child that does work: it counts as stuck only when its CPU time did not
    /// advance for the watch's quiet limit. `Some(code)` once reaped, `None` when stuck.
    pub fn wait_working(&mut self, progress: &mut crate::wait::Progress) -> Option<i32> {
        let pid = self.pid();
        let mut code = None;
        let waited = progress.wait_for(
            &format!("child {pid} to finish its work"),
            || crate::procfs::cpu_ticks(pid),
            |_| {
                code = self.wait(Duration::ZERO);
                code.is_some()
            },
        );
        if waited.is_ok() {
            progress.step();
        }
        code
    }

    /// Kills the child and reaps it; returns its status code.
    pub fn kill_and_reap(&mut self) -> Option<i32> {
        self.kill();
        self.wait(AT_ONCE)
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        if matches!(self.process.exitcode(), Ok(None)) {
            self.kill();
            // SIGKILL takes effect at once.
            let _ = self.wait(AT_ONCE);
        }
    }
}

/// Waits for every child of `children` to finish its work and exit 0, each bounded by
/// [`Child::wait_working`] (no CPU time for [`QUIET`](crate::wait::QUIET)); `what` names
/// one child in the message (`"worker"`, `"producer"`).
///
/// # Errors
///
/// The first child that did not exit 0, with what it gave.
pub fn wait_all_working(children: &mut [Child], what: &str) -> TestResult {
    let mut progress = crate::wait::Progress::new(format!("{what}s"));
    for (i, child) in children.iter_mut().enumerate() {
        let code = child.wait_working(&mut progress);
        ensure(
            code == Some(0),
            format!("expected {what} {i} to finish its work and exit 0; it gave {code:?}"),
        )?;
    }
    Ok(())
}

/// Polls `cond` every millisecond until it holds or `timeout` passes.
pub fn wait_until(timeout: Duration, cond: impl FnMut() -> bool) -> bool {
    crate::wait::wait_until(timeout, cond).is_ok()
}

/// In a child: closes its inherited copies of `fds` (pipe ends the parent keeps), so that
/// the peers see end of file when the parent closes its own copies.
pub fn close_inherited(fds: &[RawFd]) {
    for &fd in fds {
        // SAFETY: in the child, the handles that own these fds belong to the parent's
        // frames, which the child never returns to (its path ends in `_exit`), so no owner
        // uses or closes the fd number again.
        unsafe { libc::close(fd) };
    }
}

/// The open fds of this process with their targets, and the count of memfd mappings.
pub fn resources() -> (std::collections::BTreeSet<String>, usize) {
    let fds = crate::procfs::fd_snapshot()
        .into_iter()
        .map(|(fd, target)| format!("{fd} -> {target}"))
        .collect();
    let memfd_maps = crate::procfs::shared_maps()
        .iter()
        .filter(|l| l.contains("/memfd:"))
        .count();
    (fds, memfd_maps)
}

/// A named IPC test body.
pub type Test = (&'static str, fn() -> TestResult);

/// Runs the tests on the main thread, one at a time, each followed by the leak checks
/// (fds, threads, children, new `/dev/shm` names and shared mappings).
pub fn run(tests: Vec<Test>) -> ! {
    let mut args = libtest_mimic::Arguments::from_args();
    args.test_threads = Some(1);
    let trials = tests
        .into_iter()
        .map(|(name, body)| {
            libtest_mimic::Trial::test(name, move || {
                let before = crate::procfs::Snapshot::take();
                body()?;
                crate::wait::wait_single_threaded().map_err(|e| Failed::from(e.to_string()))?;
                before
                    .check(true)
                    .map_err(|e| Failed::from(format!("leak check: {e}")))
            })
        })
        .collect();
    libtest_mimic::run(&args, trials).exit()
}
