//! Tests that start processes from the default test harness: [`test`](crate::test).
//!
//! libtest runs every test on a thread of its own, so a test's process always has at least
//! two threads and the fork start method refuses it ([`Error::ThreadedFork`]), even with
//! `--test-threads=1`. `#[proclife::test]` moves the test's body into a fresh process: the
//! test binary is re-executed by the spawn start method, and its bootstrap runs the body
//! on the main thread before `main`, so libtest never starts there and the body's process
//! is single-threaded (it must stay so for fork: threads the body creates count). The
//! libtest thread in the parent waits for that process, replays its output through
//! `print!` (libtest captures it and shows it only for a failing test, or with
//! `--nocapture`), and fails the test with the body's panic message, so
//! `should_panic` with an `expected` message works too.
//!
//! The body's process has the standard streams of a test: its stdout and stderr both go
//! into one pipe that the parent reads; its stdin is the parent's.
#![forbid(unsafe_code)]

use std::io::Write as _;
use std::os::fd::AsFd;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::Duration;

use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::ipc::Connection;
use crate::process::Process;
use crate::start::bootstrap::BOOTSTRAP_EXIT_CODE;
use crate::start::method::StartMethod;
use crate::start::target::TargetResult;

/// How a test body ended, as its process reports it to the parent.
#[derive(Debug, Serialize, Deserialize)]
enum Outcome {
    Passed,
    /// The body panicked; the panic's message.
    Panicked(String),
    /// The body returned an error; its `Debug` form.
    Failed(String),
}

/// What a test's body process receives: where its output and its outcome go. Made by
/// [`run_test`] only; not part of the public API.
#[doc(hidden)]
#[derive(Debug, Serialize, Deserialize)]
pub struct Sink {
    output: Connection,
    outcome: Connection,
}

/// What a `#[proclife::test]` function may return: `()` or `Result<(), E: Debug>`, as for
/// `#[test]`.
#[doc(hidden)]
pub trait TestResult {
    #[doc(hidden)]
    fn failure(self) -> Option<String>;
}

impl TestResult for () {
    fn failure(self) -> Option<String> {
        None
    }
}

impl<E: std::fmt::Debug> TestResult for std::result::Result<(), E> {
    fn failure(self) -> Option<String> {
        self.err().map(|e| format!("{e:?}"))
    }
}

impl Sink {
    /// Runs the test's body in its process: standard streams into the output pipe, the
    /// outcome to the parent. Called by the code `#[proclife::test]` generates.
    #[doc(hidden)]
    pub fn run<R: TestResult>(self, body: fn() -> R) -> TargetResult {
        let Sink {
            output,
            mut outcome,
        } = self;
        // The write end blocks (only the parent's read end does not): a test's prints wait,
        // and do not fail, when the parent is slow to read.
        let fd = output.fd()?;
        crate::os::stdio::flush_std_streams();
        nix::unistd::dup2_stdout(fd).map_err(|e| Error::os("dup2", e))?;
        nix::unistd::dup2_stderr(fd).map_err(|e| Error::os("dup2", e))?;
        drop(output);
        let result = match catch_unwind(AssertUnwindSafe(body)) {
            Ok(value) => match value.failure() {
                None => Outcome::Passed,
                Some(error) => {
                    eprintln!("Error: {error}");
                    Outcome::Failed(error)
                }
            },
            Err(payload) => Outcome::Panicked(panic_message(payload.as_ref())),
        };
        crate::os::stdio::flush_std_streams();
        // The outcome, not the exit code, is the verdict: the parent already replays the
        // panic or the error, so the process ends without printing it a second time.
        outcome.send(&result)?;
        Ok(())
    }
}

/// The message of a panic payload, as the default hook prints it.
pub(crate) fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "Box<dyn Any>".to_owned()
    }
}

/// Runs the body `f` of the test `name` in a fresh process and fails the calling test as
/// the body did. Called by the code `#[proclife::test]` generates.
///
/// # Panics
///
/// With the body's panic message when the body panicked; with a description when it
/// returned an error, when its process died before it finished (a signal, or
/// `std::process::exit` in the body), or when the process could not be started.
#[doc(hidden)]
pub fn run_test<F>(name: &str, f: F)
where
    F: FnOnce(Sink) -> TargetResult + Copy + Send + 'static,
{
    match run(name, f) {
        Ok(None) => {}
        // The body's process printed its panic already (in the replayed output); unwinding
        // with the bare message keeps the report short and lets `should_panic` match it.
        Ok(Some(message)) => std::panic::resume_unwind(Box::new(message)),
        Err(error) => panic!("#[proclife::test] could not run {name} in its own process: {error}"),
    }
}

/// Starts the body, replays its output, and returns the failure message, if any.
fn run<F>(name: &str, f: F) -> Result<Option<String>>
where
    F: FnOnce(Sink) -> TargetResult + Copy + Send + 'static,
{
    let (output, output_tx) = crate::ipc::pipe(false)?;
    // Read a piece at a time between polls of the child (`drain`).
    crate::ipc::set_nonblocking(output.fd()?)?;
    let (mut outcome, outcome_tx) = crate::ipc::pipe(false)?;
    let mut p = Process::builder()
        .name(name)
        .daemon(false)
        .start_method(StartMethod::Spawn)
        .entry(
            f,
            Sink {
                output: output_tx,
                outcome: outcome_tx,
            },
        );
    p.start()?;
    let mut replay = Replay::default();
    replay.follow(&output, &p)?;
    p.join()?;
    let code = p.exitcode()?.unwrap_or(0);
    let reported = if outcome.poll(Some(Duration::ZERO))? {
        match outcome.recv::<Outcome>() {
            Ok(outcome) => Some(outcome),
            Err(Error::Disconnected) => None,
            Err(error) => return Err(error),
        }
    } else {
        None
    };
    p.close()?;
    Ok(match reported {
        Some(Outcome::Passed) if code == 0 => None,
        Some(Outcome::Passed) => Some(format!(
            "the test passed, but its process then exited with code {code}"
        )),
        Some(Outcome::Panicked(message)) => Some(message),
        Some(Outcome::Failed(error)) => Some(format!("the test returned an error: {error}")),
        None if code < 0 => Some(format!(
            "the test's process was killed by signal {} before the test finished",
            -code
        )),
        None if code == BOOTSTRAP_EXIT_CODE => Some(format!(
            "the test's process refused its bootstrap (exit code {code}; see its output)"
        )),
        None => Some(format!(
            "the test's process exited with code {code} before the test finished \
             (std::process::exit in the test?)"
        )),
    })
}

/// The body's output on its way to `print!`, with an incomplete UTF-8 sequence at the end
/// of a read kept for the next.
#[derive(Default)]
struct Replay {
    pending: Vec<u8>,
}

impl Replay {
    /// Replays the output until the body's process has exited and the pipe holds nothing
    /// more. It does not wait for end of file: a process the body started and left running
    /// may hold the pipe open.
    fn follow(&mut self, output: &Connection, p: &Process) -> Result<()> {
        let out = output.fd()?;
        let sentinel = p.sentinel()?;
        let mut open = true;
        loop {
            let mut fds = [
                PollFd::new(sentinel, PollFlags::POLLIN),
                PollFd::new(out, PollFlags::POLLIN),
            ];
            let watched = if open { 2 } else { 1 };
            match poll(&mut fds[..watched], PollTimeout::NONE) {
                Ok(_) => {}
                Err(Errno::EINTR) => continue,
                Err(errno) => return Err(Error::os("poll", errno)),
            }
            let exited = fds[0].any().unwrap_or(true);
            if open {
                open = self.drain(out.as_fd())?;
            }
            if exited {
                // Whatever the body wrote before it exited is in the pipe by now.
                if open {
                    self.drain(out.as_fd())?;
                }
                self.flush(true);
                return Ok(());
            }
        }
    }

    /// Reads what the pipe holds now; false at end of file.
    fn drain(&mut self, fd: std::os::fd::BorrowedFd<'_>) -> Result<bool> {
        let mut buf = [0u8; 16 << 10];
        loop {
            match nix::unistd::read(fd, &mut buf) {
                Ok(0) => {
                    self.flush(true);
                    return Ok(false);
                }
                Ok(n) => {
                    self.pending.extend_from_slice(&buf[..n]);
                    self.flush(false);
                }
                Err(Errno::EAGAIN) => return Ok(true),
                Err(Errno::EINTR) => continue,
                Err(errno) => return Err(Error::os("read", errno)),
            }
        }
    }

    /// Prints the complete characters; with `all`, the rest too (lossily).
    fn flush(&mut self, all: bool) {
        let keep = match std::str::from_utf8(&self.pending) {
            Ok(_) => 0,
            Err(e) if e.error_len().is_none() && !all => self.pending.len() - e.valid_up_to(),
            Err(_) => 0,
        };
        let end = self.pending.len() - keep;
        if end > 0 {
            // `print!`, not a write to the stdout handle: libtest captures only the macros.
            print!("{}", String::from_utf8_lossy(&self.pending[..end]));
            let _ = std::io::stdout().flush();
            self.pending.drain(..end);
        }
    }
}
