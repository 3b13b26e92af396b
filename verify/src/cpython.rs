//! CPython as an oracle: runs operation sequences through `verify/python/proclife_cpython.py`
//! on a real Python interpreter and reads back its observations.
//!
//! The Python program is compiled into the binary and written to a private temporary folder
//! (the `spawn` and `forkserver` start methods re-import it by path in their children).
//! Each sequence runs in a fresh interpreter in its own process group: the ops go to its
//! standard input, one observation per op comes back on its standard output.
//! Every wait is bounded by watching progress (no output for [`STALL`] is a failure), and on
//! any failure the whole process group is killed before the interpreter is reaped, so nothing
//! it started is left running.
//! Failures of the interpreter or of the program are [`OracleError`]s, never observations.

use std::io::{Read as _, Write as _};
use std::os::fd::AsFd;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::{Signal, killpg};
use nix::sys::wait::{Id, WaitPidFlag, WaitStatus, waitid};
use nix::unistd::Pid;
use proclife::StartMethod;
use proclife_model::Outcome;
use serde_json::Value as Json;

use crate::trace::Step;

/// The Python program, as it is in the repository.
pub const PROGRAM: &str = include_str!("../python/proclife_cpython.py");

/// The oldest Python the program supports.
pub const MIN_VERSION: (u64, u64) = (3, 9);

/// How long the interpreter may go without writing anything before it is called stuck.
/// Its own waits are bounded by 10 s (30 s for the longest `join_timeout`), so this is only
/// reached by a broken interpreter or program.
pub const STALL: Duration = Duration::from_secs(60);

/// Why CPython could not be asked: a bad interpreter, or a program that died, hung or printed
/// something outside the replay schema. Never a disagreement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OracleError(pub String);

impl std::fmt::Display for OracleError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for OracleError {}

/// A Python interpreter checked to be CPython 3.9 or newer, with the program written out.
#[derive(Debug)]
pub struct Oracle {
    python: PathBuf,
    dir: PathBuf,
    script: PathBuf,
    version: (u64, u64, u64),
}

/// What one run of the program gave: one observation per op it got to.
#[derive(Debug, Clone, PartialEq)]
pub struct Observations {
    /// CPython's observations, in order.
    pub outcomes: Vec<Outcome>,
}

fn bad(message: impl Into<String>) -> OracleError {
    OracleError(message.into())
}

/// What a finished child printed and how it ended.
struct Finished {
    stdout: Vec<u8>,
    stderr: Vec<u8>,
    status: ExitStatus,
}

/// How long what an interpreter started may keep its output open after it exited (the fork
/// server and the resource tracker leave when they see it gone).
pub const GRACE: Duration = Duration::from_secs(10);

/// Runs `command` in its own process group with `input` on its standard input, and waits,
/// bounded by `stall` without progress, until it exits and both output pipes are closed (so
/// that whatever it started has exited too). On a stall, or when something it started keeps
/// running [`GRACE`] after it exited, the whole group is killed and that is an error.
fn run_bounded(
    command: &mut Command,
    input: &[u8],
    stall: Duration,
) -> Result<Finished, OracleError> {
    let what = command.get_program().to_string_lossy().into_owned();
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .map_err(|e| bad(format!("cannot run {what}: {e}")))?;
    let result = drive(&mut child, input, stall);
    if result.is_err() {
        kill_group(&child);
    }
    // The interpreter has exited (seen without reaping it) or its group was killed.
    let status = child
        .wait()
        .map_err(|e| bad(format!("waiting for {what}: {e}")))?;
    let (stdout, stderr) = result?;
    Ok(Finished {
        stdout,
        stderr,
        status,
    })
}

/// Kills the child's process group. The child is not reaped yet, so its pid, which is the
/// group's id, cannot have been reused.
fn kill_group(child: &Child) {
    if let Ok(pid) = i32::try_from(child.id()) {
        // ESRCH only means the group is already empty.
        let _ = killpg(Pid::from_raw(pid), Signal::SIGKILL);
    }
}

/// How `child` ended, if it has, read without reaping it (`WNOWAIT`).
fn has_exited(child: &Child) -> Option<String> {
    let pid = i32::try_from(child.id()).ok()?;
    let flags = WaitPidFlag::WEXITED | WaitPidFlag::WNOHANG | WaitPidFlag::WNOWAIT;
    match waitid(Id::Pid(Pid::from_raw(pid)), flags) {
        Ok(WaitStatus::StillAlive) | Err(nix::errno::Errno::EINTR) => None,
        Ok(WaitStatus::Exited(_, code)) => Some(format!("exit status {code}")),
        Ok(WaitStatus::Signaled(_, signal, _)) => Some(format!("killed by {signal}")),
        Ok(other) => Some(format!("{other:?}")),
        Err(errno) => Some(format!("waitid failed: {errno}")),
    }
}

/// Writes `input`, closes standard input, and reads both outputs until end of file.
fn drive(
    child: &mut Child,
    input: &[u8],
    stall: Duration,
) -> Result<(Vec<u8>, Vec<u8>), OracleError> {
    if let Some(mut stdin) = child.stdin.take() {
        // The program reads all of its input before it writes anything; a program that
        // exits early closes the pipe, which shows up below as missing observations.
        let _ = stdin.write_all(input);
    }
    let mut out = child
        .stdout
        .take()
        .ok_or_else(|| bad("no standard output pipe"))?;
    let mut err = child
        .stderr
        .take()
        .ok_or_else(|| bad("no standard error pipe"))?;
    let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
    let (mut out_open, mut err_open) = (true, true);
    let mut last_progress = Instant::now();
    let mut exited: Option<(Instant, String)> = None;
    let mut buf = [0u8; 8192];
    while out_open || err_open {
        if exited.is_none() {
            exited = has_exited(child).map(|how| (Instant::now(), how));
        }
        if let Some((at, how)) = &exited
            && at.elapsed() >= GRACE
        {
            return Err(bad(format!(
                "the Python program ended ({how}) but left processes running for {GRACE:?}; they were killed (its output: {}, its errors: {})",
                excerpt(&stdout),
                excerpt(&stderr)
            )));
        }
        let left = stall.saturating_sub(last_progress.elapsed());
        if left.is_zero() {
            return Err(bad(format!(
                "the Python program made no progress for {stall:?} and was killed (its output so far: {})",
                excerpt(&stdout)
            )));
        }
        let millis = u16::try_from(left.as_millis().min(100)).unwrap_or(100);
        let (out_ready, err_ready) = {
            let mut fds = Vec::new();
            if out_open {
                fds.push(PollFd::new(out.as_fd(), PollFlags::POLLIN));
            }
            if err_open {
                fds.push(PollFd::new(err.as_fd(), PollFlags::POLLIN));
            }
            match poll(&mut fds, PollTimeout::from(millis)) {
                Ok(0) | Err(nix::errno::Errno::EINTR) => continue,
                Ok(_) => {}
                Err(errno) => return Err(bad(format!("poll failed: {errno}"))),
            }
            let ready = |fd: &PollFd<'_>| fd.revents().is_some_and(|r| !r.is_empty());
            let mut it = fds.iter();
            let o = out_open && it.next().is_some_and(ready);
            let e = err_open && it.next().is_some_and(ready);
            (o, e)
        };
        if out_ready {
            match out.read(&mut buf) {
                Ok(0) => out_open = false,
                Ok(n) => {
                    stdout.extend_from_slice(&buf[..n]);
                    last_progress = Instant::now();
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(bad(format!("reading the Python program's output: {e}"))),
            }
        }
        if err_ready {
            match err.read(&mut buf) {
                Ok(0) => err_open = false,
                Ok(n) => {
                    // Enough for a traceback; the rest is dropped.
                    if stderr.len() < 64 * 1024 {
                        stderr.extend_from_slice(&buf[..n]);
                    }
                    last_progress = Instant::now();
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(bad(format!("reading the Python program's errors: {e}"))),
            }
        }
    }
    // Both pipes are closed: the interpreter has exited or is about to; bounded all the same.
    let deadline = Instant::now() + GRACE;
    while has_exited(child).is_none() {
        if Instant::now() >= deadline {
            return Err(bad(format!(
                "the Python program closed its output but did not exit within {GRACE:?}; it was killed"
            )));
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    Ok((stdout, stderr))
}

fn excerpt(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let text = text.trim();
    if text.is_empty() {
        return "nothing".to_owned();
    }
    let mut short: String = text.chars().take(600).collect();
    if short.len() < text.len() {
        short.push_str(" ...");
    }
    format!("{short:?}")
}

/// The probe that asks an interpreter what it is.
const PROBE: &str = "import json, sys; print(json.dumps({'version': list(sys.version_info[:3]), \
                     'implementation': sys.implementation.name}))";

impl Oracle {
    /// Checks that `python` is CPython 3.9 or newer and writes the program out for it.
    ///
    /// # Errors
    ///
    /// An [`OracleError`] saying what `python` is instead (not runnable, not Python, too
    /// old, not CPython) or why the program could not be written.
    pub fn new(python: &Path) -> Result<Oracle, OracleError> {
        let shown = python.display();
        let probe = run_bounded(
            Command::new(python).args(["-I", "-c", PROBE]),
            b"",
            Duration::from_secs(30),
        )?;
        let text = String::from_utf8_lossy(&probe.stdout);
        let answer: Option<Json> = serde_json::from_str(text.trim()).ok();
        let version = answer
            .as_ref()
            .and_then(|a| a.get("version"))
            .and_then(Json::as_array)
            .map(|v| v.iter().filter_map(Json::as_u64).collect::<Vec<_>>());
        let implementation = answer
            .as_ref()
            .and_then(|a| a.get("implementation"))
            .and_then(Json::as_str);
        let (Some(version), Some(implementation), true) =
            (version, implementation, probe.status.success())
        else {
            return Err(bad(format!(
                "{shown} is not a Python interpreter: asked for its version it exited with {} and printed {} (errors: {})",
                probe.status,
                excerpt(&probe.stdout),
                excerpt(&probe.stderr)
            )));
        };
        let [major, minor, micro] = version[..] else {
            return Err(bad(format!(
                "{shown} reported a malformed version {version:?}"
            )));
        };
        if (major, minor) < MIN_VERSION {
            return Err(bad(format!(
                "{shown} is Python {major}.{minor}.{micro}; proclife conform needs CPython {}.{} or newer",
                MIN_VERSION.0, MIN_VERSION.1
            )));
        }
        if implementation != "cpython" {
            return Err(bad(format!(
                "{shown} is {implementation} {major}.{minor}.{micro}, not CPython"
            )));
        }
        let dir = std::env::temp_dir().join(format!(
            "proclife-conform-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.subsec_nanos())
        ));
        std::fs::create_dir_all(&dir)
            .map_err(|e| bad(format!("cannot create {}: {e}", dir.display())))?;
        let script = dir.join("proclife_cpython.py");
        let oracle = Oracle {
            python: python.to_owned(),
            dir,
            script,
            version: (major, minor, micro),
        };
        std::fs::write(&oracle.script, PROGRAM)
            .map_err(|e| bad(format!("cannot write {}: {e}", oracle.script.display())))?;
        Ok(oracle)
    }

    /// The interpreter's version, e.g. `(3, 11, 7)`.
    pub fn version(&self) -> (u64, u64, u64) {
        self.version
    }

    /// The interpreter as given.
    pub fn python(&self) -> &Path {
        &self.python
    }

    /// Runs `steps` on CPython with `method` and returns one observation per step.
    ///
    /// # Errors
    ///
    /// An [`OracleError`] when the program dies, stalls, fails in its own harness, or prints
    /// anything that is not an observation of the step it stands for; the process group is
    /// killed first.
    pub fn run(&self, steps: &[Step], method: StartMethod) -> Result<Observations, OracleError> {
        let mut input = String::new();
        for step in steps {
            input.push_str(&step.to_json().to_string());
            input.push('\n');
        }
        let method = method.to_string();
        let finished = run_bounded(
            Command::new(&self.python)
                .arg("-I")
                .arg(&self.script)
                .args(["--method", &method])
                .current_dir(&self.dir),
            input.as_bytes(),
            STALL,
        )?;
        let text = String::from_utf8_lossy(&finished.stdout);
        let mut lines = text.lines();
        let header: Option<Json> = lines.next().and_then(|l| serde_json::from_str(l).ok());
        let said_method = header
            .as_ref()
            .and_then(|h| h.get("method"))
            .and_then(Json::as_str);
        if said_method != Some(method.as_str()) {
            return Err(bad(format!(
                "the Python program did not start as expected ({}): it printed {} and its errors were {}",
                finished.status,
                excerpt(&finished.stdout),
                excerpt(&finished.stderr)
            )));
        }
        let mut outcomes = Vec::with_capacity(steps.len());
        for (index, line) in lines.enumerate() {
            let Some(step) = steps.get(index) else {
                return Err(bad(format!(
                    "the Python program printed more observations than the {} operations: {line:?}",
                    steps.len()
                )));
            };
            let json: Json = serde_json::from_str(line).map_err(|_| {
                bad(format!(
                    "the Python program printed a line that is not an observation, at step {index}: {line:?}"
                ))
            })?;
            if let Some(reason) = json.get("harness_failed") {
                return Err(bad(format!(
                    "the CPython harness failed at step {index} ({}): {}",
                    step.to_json(),
                    reason.as_str().unwrap_or_default()
                )));
            }
            let names_step = json.get("op").and_then(Json::as_str) == Some(step.op.schema_name())
                && json.get("proc").and_then(Json::as_u64).unwrap_or(0) == step.proc as u64;
            let outcome = Outcome::from_json(&json).ok().filter(|_| names_step).ok_or_else(|| {
                bad(format!(
                    "the Python program printed {line:?} for step {index}, which is not an observation of {}",
                    step.to_json()
                ))
            })?;
            outcomes.push(outcome);
        }
        if outcomes.len() != steps.len() || !finished.status.success() {
            return Err(bad(format!(
                "the Python program ended ({}) after {} of {} observations; its errors: {}",
                finished.status,
                outcomes.len(),
                steps.len(),
                excerpt(&finished.stderr)
            )));
        }
        Ok(Observations { outcomes })
    }
}

impl Drop for Oracle {
    fn drop(&mut self) {
        // Best effort: a left-over file in the temporary folder is harmless.
        let _ = std::fs::remove_file(&self.script);
        let _ = std::fs::remove_dir(&self.dir);
    }
}
