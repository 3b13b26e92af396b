//! Scenarios that change limits, credentials or namespaces run in a sacrificial child.
//!
//! The helper reports through a pipe: a `.` per step of work (the parent's bound is "no
//! step for [`QUIET`](crate::wait::QUIET)", never a guess at the whole duration), then one
//! line, `P` (passed), `S<reason>` (skipped) or `F<message>` (failed: what was expected and
//! what happened).

use std::os::fd::{AsRawFd, RawFd};
use std::time::Duration;

use proclife::Process;

use crate::TestResult;
use crate::wait::{AT_ONCE, Progress, QUIET};

/// The helper's report fd is at least this number, so that scenarios that count or limit
/// fds (`RLIMIT_NOFILE` of 5) see only stdio below it.
pub const REPORT_FD_FLOOR: i32 = 200;

/// Why a scenario stopped early.
#[derive(Debug)]
pub enum Stop {
    /// The scenario cannot run here (missing privilege or kernel feature).
    Skip(String),
    /// What was expected and what happened.
    Fail(String),
}

impl<E: std::fmt::Display> From<E> for Stop {
    fn from(error: E) -> Stop {
        Stop::Fail(error.to_string())
    }
}

/// What a scenario returns.
pub type Outcome = Result<(), Stop>;

/// The helper's end of the report pipe; `Copy`, so forked grandchildren can report steps.
#[derive(Debug, Clone, Copy)]
pub struct Report {
    fd: RawFd,
}

impl Report {
    /// One step of work done.
    pub fn step(&self) {
        crate::child::write_all(self.fd, b".");
    }

    /// The raw fd, which a grandchild must keep open while it reports steps.
    pub fn fd(&self) -> RawFd {
        self.fd
    }
}

/// Runs `scenario` in a sacrificial child (fork), bounded by [`QUIET`] without a step.
///
/// # Errors
///
/// The scenario's failure message, or a message when it made no step for [`QUIET`] (the
/// helper is killed then), or died without a report.
pub fn in_helper(
    name: &str,
    scenario: impl FnOnce(Report) -> Outcome + Send + 'static,
) -> TestResult {
    in_helper_quiet(name, QUIET, scenario)
}

/// [`in_helper`] with another limit on the time without a step.
///
/// # Errors
///
/// As [`in_helper`].
pub fn in_helper_quiet(
    name: &str,
    quiet: Duration,
    scenario: impl FnOnce(Report) -> Outcome + Send + 'static,
) -> TestResult {
    let (read, write) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
    let w = write.as_raw_fd();
    let mut helper = Process::builder().name(name).target(move || {
        // The report fd moves out of the way of the low numbers that scenarios count.
        // SAFETY: `fcntl(F_DUPFD_CLOEXEC)` takes integers only and returns a new fd or -1.
        let high = unsafe { libc::fcntl(w, libc::F_DUPFD_CLOEXEC, REPORT_FD_FLOOR) };
        let w = if high < 0 { w } else { high };
        crate::child::close_all_but(w);
        let report = Report { fd: w };
        let line = match scenario(report) {
            Ok(()) => "\nP".to_owned(),
            Err(Stop::Skip(reason)) => format!("\nS{reason}"),
            Err(Stop::Fail(message)) => format!("\nF{message}"),
        };
        crate::child::write_all(w, line.as_bytes());
        std::process::exit(0)
    });
    helper.start()?;
    drop(write);
    let mut progress = Progress::with_quiet(format!("helper {name}"), quiet);
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        if !crate::wait::readable(read.as_raw_fd(), progress.left().as_millis() as i32) {
            let _ = helper.kill();
            let _ = helper.join_timeout(AT_ONCE);
            return Err(progress.stuck("a step or the end of the scenario").into());
        }
        let n = match nix::unistd::read(&read, &mut buf) {
            Ok(n) => n,
            Err(nix::errno::Errno::EINTR) => continue,
            Err(errno) => return Err(format!("{name}: reading the report: {errno}").into()),
        };
        if n == 0 {
            break;
        }
        out.extend_from_slice(&buf[..n]);
        progress.step();
    }
    let code = crate::wait::join_code(&helper)?;
    let text = String::from_utf8_lossy(&out);
    let report = text.rsplit_once('\n').map(|(_, line)| line);
    match (report, code) {
        (Some("P"), 0) => Ok(()),
        (Some(line), 0) if line.starts_with('S') => {
            println!("{name}: skipped: {}", &line[1..]);
            Ok(())
        }
        (Some(line), 0) if line.starts_with('F') => Err(format!("{name}: {}", &line[1..]).into()),
        _ => Err(format!(
            "{name}: expected a report and exit code 0; the helper exited with {code} after {} \
             steps without a report",
            progress.steps()
        )
        .into()),
    }
}
