//! Test support for the IPC and synchronisation tests: a raw fork helper, bounded waits,
//! and the leak checks run after every test (fds, `/dev/shm`, memfd mappings, zombies).
#![allow(unsafe_code, dead_code)]

use std::collections::BTreeSet;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::time::{Duration, Instant};

use libtest_mimic::{Arguments, Failed, Trial};
use nix::sys::signal::{Signal, kill};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::{ForkResult, Pid, fork};

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

/// A forked child that is killed and reaped on drop if the test did not reap it.
#[derive(Debug)]
pub(crate) struct Child {
    pid: Pid,
    reaped: bool,
}

/// Forks a child that runs `body` and exits with its return value (101 if it panics).
///
/// Only for the single-threaded test binaries (`harness = false`, one test thread).
pub(crate) fn spawn(body: impl FnOnce() -> i32) -> Child {
    // SAFETY: the test binaries run every test on the main thread with no other threads, so
    // the child may run arbitrary code; it never returns into the harness: it ends in
    // `_exit`.
    match unsafe { fork() } {
        Ok(ForkResult::Child) => {
            let code = std::panic::catch_unwind(std::panic::AssertUnwindSafe(body)).unwrap_or(101);
            // SAFETY: `_exit` ends the process without running the parent's destructors.
            unsafe { libc::_exit(code) }
        }
        Ok(ForkResult::Parent { child }) => Child {
            pid: child,
            reaped: false,
        },
        Err(errno) => panic!("fork failed: {errno}"),
    }
}

impl Child {
    /// The child's pid.
    pub(crate) fn pid(&self) -> Pid {
        self.pid
    }

    /// Sends SIGKILL (the child may already be dead).
    pub(crate) fn kill(&self) {
        if !self.reaped {
            let _ = kill(self.pid, Signal::SIGKILL);
        }
    }

    /// Waits at most `timeout` for the child to end; `Some(code)` (negative: killed by that
    /// signal) once reaped, `None` if it is still running.
    pub(crate) fn wait(&mut self, timeout: Duration) -> Option<i32> {
        let start = Instant::now();
        loop {
            match waitpid(self.pid, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::Exited(_, code)) => {
                    self.reaped = true;
                    return Some(code);
                }
                Ok(WaitStatus::Signaled(_, sig, _)) => {
                    self.reaped = true;
                    return Some(-(sig as i32));
                }
                Ok(_) => {}
                Err(_) => {
                    self.reaped = true;
                    return None;
                }
            }
            if start.elapsed() >= timeout {
                return None;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// Kills the child and reaps it; returns its status code.
    pub(crate) fn kill_and_reap(&mut self) -> Option<i32> {
        self.kill();
        self.wait(Duration::from_secs(10))
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        if !self.reaped {
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

/// Closes the fd in this process (used by children to drop a pipe end they inherited).
pub(crate) fn close_raw(fd: BorrowedFd<'_>) {
    // SAFETY: the caller's owner of this fd is never used again in this (child) process,
    // which ends in `_exit`.
    unsafe { libc::close(fd.as_raw_fd()) };
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
