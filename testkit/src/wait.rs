//! Bounded waits that do not guess the machine's speed.
//!
//! Two kinds of bound:
//! - around an event that should happen at once (a killed child's exit, a released waiter
//!   returning): [`AT_ONCE`], short, because nothing but scheduling delay stands between
//!   the cause and the event;
//! - around work (a loop of 10⁴ starts, 1000 children released together): a [`Progress`]
//!   watch, which fails only when no step of the work completed for [`QUIET`], however long
//!   the whole work takes on a busy machine.

use std::os::fd::{AsRawFd, RawFd};
use std::time::{Duration, Instant};

use proclife::Process;

use crate::TestResult;

/// The bound around an event that should happen at once.
pub const AT_ONCE: Duration = Duration::from_secs(10);

/// How long work may go without completing a step before it counts as stuck.
pub const QUIET: Duration = Duration::from_secs(30);

/// Polls `cond` every millisecond until it holds or `limit` passes; the error says what
/// was awaited and for how long.
///
/// # Errors
///
/// "`what`: not within `limit`".
pub fn wait_for(what: &str, limit: Duration, mut cond: impl FnMut() -> bool) -> Result<(), String> {
    let deadline = Instant::now() + limit;
    loop {
        if cond() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "expected {what} within {limit:?}; it did not happen"
            ));
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// [`wait_for`] without a description.
///
/// # Errors
///
/// When `cond` did not hold within `limit`.
pub fn wait_until(limit: Duration, cond: impl FnMut() -> bool) -> Result<(), String> {
    wait_for("the condition", limit, cond)
}

/// Waits ([`AT_ONCE`]) until joined threads have left the kernel's thread list.
///
/// # Errors
///
/// How many threads remain.
pub fn wait_single_threaded() -> TestResult {
    wait_for("one thread left", AT_ONCE, || {
        crate::procfs::thread_count() == 1
    })
    .map_err(|e| {
        format!(
            "{e}: {} threads remain (others: {:?})",
            crate::procfs::thread_count(),
            crate::procfs::other_thread_names()
        )
        .into()
    })
}

/// Joins a child that should exit at once (it was released, killed, or has nothing to do)
/// with an [`AT_ONCE`] bound, and returns its exit code.
///
/// # Errors
///
/// The join's error, or a message naming the child when it still runs.
pub fn join_code(p: &Process) -> Result<i32, Box<dyn std::error::Error>> {
    p.join_timeout(AT_ONCE)?;
    match p.exitcode()? {
        Some(code) => Ok(code),
        None => Err(format!(
            "expected {} ({:?}) to exit within {AT_ONCE:?}; it still runs",
            p.name(),
            p.pid()?
        )
        .into()),
    }
}

/// Waits ([`AT_ONCE`]) until the child has exited, without reaping it: its pidfd is
/// readable then.
///
/// # Errors
///
/// When it still runs.
pub fn settle(p: &Process) -> TestResult {
    let fd = p.sentinel()?;
    if readable(fd.as_raw_fd(), AT_ONCE.as_millis() as i32) {
        Ok(())
    } else {
        Err(format!(
            "expected {} to exit within {AT_ONCE:?}; it still runs",
            p.name()
        )
        .into())
    }
}

/// `poll(fd, POLLIN, timeout_ms)`, retried on `EINTR` with the remaining time: whether
/// `fd` became readable (or hung up) within the bound.
pub fn readable(fd: RawFd, timeout_ms: i32) -> bool {
    let deadline = Instant::now() + Duration::from_millis(timeout_ms.max(0) as u64);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let mut pfd = libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd, counted as one.
        let n = unsafe { libc::poll(&mut pfd, 1, left.as_millis() as i32) };
        if n >= 0 || std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
            return n == 1;
        }
    }
}

/// A watch over work made of many steps: each completed step is [`Progress::step`], and
/// the work counts as stuck only when no step completed for the watch's quiet limit.
#[derive(Debug)]
pub struct Progress {
    what: String,
    quiet: Duration,
    last: Instant,
    steps: u64,
}

impl Progress {
    /// A watch over `what`, stuck after [`QUIET`] without a step.
    pub fn new(what: impl Into<String>) -> Progress {
        Progress::with_quiet(what, QUIET)
    }

    /// A watch stuck after `quiet` without a step.
    pub fn with_quiet(what: impl Into<String>, quiet: Duration) -> Progress {
        Progress {
            what: what.into(),
            quiet,
            last: Instant::now(),
            steps: 0,
        }
    }

    /// One step done.
    pub fn step(&mut self) {
        self.steps += 1;
        self.last = Instant::now();
    }

    /// Steps done so far.
    pub fn steps(&self) -> u64 {
        self.steps
    }

    /// The time left before the work counts as stuck.
    pub fn left(&self) -> Duration {
        self.quiet.saturating_sub(self.last.elapsed())
    }

    /// The message for stuck work, saying what was awaited.
    pub fn stuck(&self, awaiting: impl std::fmt::Display) -> String {
        format!(
            "{}: expected {awaiting}, but nothing progressed for {:?} (after {} steps)",
            self.what, self.quiet, self.steps
        )
    }

    /// Waits within the time left until `conn` has something to read (a message, or end of
    /// file), and counts a step.
    ///
    /// # Errors
    ///
    /// The poll's error, or [`Progress::stuck`] naming `awaiting`.
    pub fn readable(
        &mut self,
        conn: &proclife::ipc::Connection,
        awaiting: impl std::fmt::Display,
    ) -> TestResult {
        if !conn.poll(Some(self.left()))? {
            return Err(self.stuck(awaiting).into());
        }
        self.step();
        Ok(())
    }

    /// Joins `p` within the time left, counts a step, and returns its exit code.
    ///
    /// # Errors
    ///
    /// The join's error, or [`Progress::stuck`] naming the child.
    pub fn join_code(&mut self, p: &Process) -> Result<i32, Box<dyn std::error::Error>> {
        p.join_timeout(self.left())?;
        match p.exitcode()? {
            Some(code) => {
                self.step();
                Ok(code)
            }
            None => Err(self.stuck(format!("{} to exit", p.name())).into()),
        }
    }

    /// Waits for `cond`, polling every millisecond; each change of `measure` counts as a
    /// step (for example the number of children that exited so far).
    ///
    /// # Errors
    ///
    /// [`Progress::stuck`] when `measure` did not change for the quiet limit.
    pub fn wait_for<M: PartialEq>(
        &mut self,
        awaiting: &str,
        mut measure: impl FnMut() -> M,
        mut cond: impl FnMut(&M) -> bool,
    ) -> Result<(), String> {
        let mut seen = measure();
        loop {
            if cond(&seen) {
                return Ok(());
            }
            if self.left().is_zero() {
                return Err(self.stuck(awaiting));
            }
            std::thread::sleep(Duration::from_millis(5));
            let now = measure();
            if now != seen {
                self.step();
                seen = now;
            }
        }
    }
}

/// Waits for a `std::process::Child` that does work (a test binary, the checker): it
/// counts as stuck only when neither its CPU time (with its reaped children's) nor
/// `output` (for example the size of its output files) changed for the watch's quiet limit.
///
/// # Errors
///
/// The watch's "nothing progressed" message (the child is killed and reaped then), or the
/// `wait` error.
pub fn wait_working(
    child: &mut std::process::Child,
    progress: &mut Progress,
    mut output: impl FnMut() -> u64,
) -> Result<std::process::ExitStatus, String> {
    let pid = child.id() as i32;
    let mut status = None;
    let waited = progress.wait_for(
        "the process to exit",
        || (crate::procfs::cpu_ticks(pid), output()),
        |_| {
            if status.is_none() {
                status = child.try_wait().ok().flatten();
            }
            status.is_some()
        },
    );
    match (waited, status) {
        (_, Some(status)) => Ok(status),
        (Err(stuck), None) => {
            // Best effort: the test fails either way, and wait() reaps the child.
            let _ = child.kill();
            let _ = child.wait();
            Err(stuck)
        }
        (Ok(()), None) => Err("the process ended without a status".to_owned()),
    }
}

/// What a command run by [`run_logged`] left: its exit code (`None` after a signal) and its
/// standard output and error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Logged {
    /// The exit code, `None` when a signal ended it.
    pub status: Option<i32>,
    /// Everything it wrote to standard output.
    pub stdout: String,
    /// Everything it wrote to standard error.
    pub stderr: String,
}

/// Runs `command` (whose arguments, directory, environment and standard input the caller
/// has set) with its standard output and error going to `<stem>.stdout` and
/// `<stem>.stderr`, so that a large output cannot fill a pipe, and waits for it as work
/// ([`wait_working`]: CPU time or output, no progress for [`QUIET`]).
///
/// # Errors
///
/// A message naming `what` when a file cannot be made or read, the command cannot be
/// started, or nothing progressed for [`QUIET`] (it is killed and reaped then).
pub fn run_logged(
    command: &mut std::process::Command,
    what: &str,
    stem: &std::path::Path,
) -> Result<Logged, String> {
    let path = |ext: &str| std::path::PathBuf::from(format!("{}.{ext}", stem.display()));
    let (out_path, err_path) = (path("stdout"), path("stderr"));
    let create = |p: &std::path::Path| {
        std::fs::File::create(p).map_err(|e| format!("{what}: create {}: {e}", p.display()))
    };
    let mut child = command
        .stdout(create(&out_path)?)
        .stderr(create(&err_path)?)
        .spawn()
        .map_err(|e| format!("{what}: spawn: {e}"))?;
    let mut progress = Progress::new(what.to_owned());
    let size = |p: &std::path::Path| std::fs::metadata(p).map_or(0, |m| m.len());
    let status = wait_working(&mut child, &mut progress, || {
        size(&out_path) + size(&err_path)
    })?;
    let read = |p: &std::path::Path| {
        std::fs::read_to_string(p).map_err(|e| format!("{what}: read {}: {e}", p.display()))
    };
    Ok(Logged {
        status: status.code(),
        stdout: read(&out_path)?,
        stderr: read(&err_path)?,
    })
}
