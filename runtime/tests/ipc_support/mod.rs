//! Test support for the IPC and synchronisation tests: children started through
//! [`proclife::Process`] that are killed and reaped if a test fails before it reaped them,
//! bounded waits, and the leak checks run after every test (fds, `/dev/shm`, memfd
//! mappings, zombies).
#![allow(unsafe_code, dead_code)]

use std::collections::BTreeSet;
use std::os::fd::RawFd;
use std::time::{Duration, Instant};

use libtest_mimic::{Arguments, Failed, Trial};
use proclife::Process;

/// The result type of a test body.
pub(crate) type TestResult = Result<(), Failed>;

/// Fails the test with `msg` unless `cond`.
#[track_caller]
pub(crate) fn ensure(cond: bool, msg: impl std::fmt::Display) -> TestResult {
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
pub(crate) struct Child {
    process: Process,
}

/// Starts a child that runs `body`; it exits with 0 when `body` returns 0, and with 1
/// (the code printed on its stderr) otherwise, or when `body` panics.
///
/// The child is a fork of the test process: it inherits every fd the test holds at that
/// moment, as a child of CPython's fork start method does. A body that needs the peer of
/// a pipe end to see end of file closes its inherited copy with [`close_inherited`].
pub(crate) fn spawn(body: impl FnOnce() -> i32 + Send + 'static) -> Result<Child, Failed> {
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
    pub(crate) fn pid(&self) -> i32 {
        match self.process.pid() {
            Ok(Some(pid)) => pid.as_raw(),
            _ => 0,
        }
    }

    /// Sends SIGKILL through the child's pidfd (nothing if it is known to have exited).
    pub(crate) fn kill(&self) {
        // A child that already exited is not signalled; that is not an error here.
        let _ = self.process.kill();
    }

    /// Waits at most `timeout` for the child to end; `Some(code)` (negative: killed by that
    /// signal) once reaped, `None` if it is still running.
    pub(crate) fn wait(&mut self, timeout: Duration) -> Option<i32> {
        self.process.join_timeout(timeout).ok()?;
        self.process.exitcode().ok().flatten()
    }

    /// Kills the child and reaps it; returns its status code.
    pub(crate) fn kill_and_reap(&mut self) -> Option<i32> {
        self.kill();
        self.wait(Duration::from_secs(10))
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        if matches!(self.process.exitcode(), Ok(None)) {
            self.kill();
            // A bounded wait: SIGKILL takes effect promptly.
            let _ = self.wait(Duration::from_secs(10));
        }
    }
}

/// Polls `cond` every millisecond until it holds or `timeout` passes.
pub(crate) fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while !cond() {
        if start.elapsed() >= timeout {
            return false;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    true
}

/// In a child: closes its inherited copies of `fds` (pipe ends the parent keeps), so that
/// the peers see end of file when the parent closes its own copies.
pub(crate) fn close_inherited(fds: &[RawFd]) {
    for &fd in fds {
        // SAFETY: in the child, the handles that own these fds belong to the parent's
        // frames, which the child never returns to (its path ends in `_exit`), so no owner
        // uses or closes the fd number again.
        unsafe { libc::close(fd) };
    }
}

/// What must be the same before and after each test.
#[derive(Debug, PartialEq, Eq)]
struct Snapshot {
    fds: BTreeSet<String>,
    dev_shm: BTreeSet<String>,
    memfd_maps: usize,
    children: String,
}

/// The open fds of this process with their targets, and the count of memfd mappings.
pub(crate) fn resources() -> (BTreeSet<String>, usize) {
    let now = snapshot();
    (now.fds, now.memfd_maps)
}

fn snapshot() -> Snapshot {
    let fds = std::fs::read_dir("/proc/self/fd")
        .map(|dir| {
            dir.flatten()
                .map(|e| {
                    let target = std::fs::read_link(e.path()).unwrap_or_default();
                    format!(
                        "{} -> {}",
                        e.file_name().to_string_lossy(),
                        target.display()
                    )
                })
                // The read_dir fd itself.
                .filter(|s| !s.contains("/proc/") || !s.contains("/fd"))
                .collect()
        })
        .unwrap_or_default();
    let dev_shm = std::fs::read_dir("/dev/shm")
        .map(|dir| {
            dir.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    let memfd_maps = std::fs::read_to_string("/proc/self/maps")
        .map(|m| m.lines().filter(|l| l.contains("/memfd:")).count())
        .unwrap_or(0);
    let children = std::fs::read_dir("/proc/self/task")
        .map(|dir| {
            dir.flatten()
                .map(|t| std::fs::read_to_string(t.path().join("children")).unwrap_or_default())
                .collect::<String>()
        })
        .unwrap_or_default();
    Snapshot {
        fds,
        dev_shm,
        memfd_maps,
        children,
    }
}

/// A named test body.
pub(crate) type Test = (&'static str, fn() -> TestResult);

/// Runs the tests on the main thread, one at a time, each followed by the leak checks.
pub(crate) fn run(tests: Vec<Test>) -> ! {
    let mut args = Arguments::from_args();
    args.test_threads = Some(1);
    let trials = tests
        .into_iter()
        .map(|(name, body)| {
            Trial::test(name, move || {
                let before = snapshot();
                body()?;
                let after = snapshot();
                if before != after {
                    return Err(format!(
                        "leak check failed:\nbefore {before:#?}\nafter {after:#?}"
                    )
                    .into());
                }
                Ok(())
            })
        })
        .collect();
    libtest_mimic::run(&args, trials).exit()
}
