//! How a child ends, under every start method and every exit path: the exit handlers it
//! inherited never run, its own run exactly once (not on a signal), every buffered byte (C
//! stdio included) is written exactly once, the exit code mapping is CPython's, and threads
//! the target started are waited for only when the builder asks for it (decision 0010).
//!
//! Each scenario runs in a sacrificial process `P` (a fork of the test process) whose
//! standard output is a memfd: `P` registers an exit handler, writes a line through C stdio
//! (fully buffered), starts a child `C` with the method under test, reports `C`'s exit code
//! and exits with `exit(0)`. Handlers write straight to fd 1 with `write(2)`, naming the
//! process they run in; the test reads the memfd and counts.

#[macro_use]
extern crate proclife_testkit;
use proclife_testkit as common;

use std::os::fd::{AsRawFd, OwnedFd};
use std::time::Duration;

use common::{TestResult, join_code};
use proclife::{Process, StartMethod, TargetResult};

/// How the child's target ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
enum Path {
    Return,
    Fail,
    Panic,
    RustExit,
    LibcExit,
    Signal,
}

const PATHS: [Path; 6] = [
    Path::Return,
    Path::Fail,
    Path::Panic,
    Path::RustExit,
    Path::LibcExit,
    Path::Signal,
];

impl Path {
    /// The exit code CPython's rules give this path.
    fn expected_code(self) -> i32 {
        match self {
            Path::Return => 0,
            Path::Fail | Path::Panic => 1,
            Path::RustExit => 3,
            Path::LibcExit => 4,
            Path::Signal => -libc::SIGTERM,
        }
    }
}

unsafe extern "C" {
    /// glibc's standard output stream.
    static stdout: *mut libc::FILE;
}

/// Writes `text` to fd 1 at once, bypassing every buffer.
fn raw_line(text: &str) {
    let line = format!("{text}\n");
    // SAFETY: a valid buffer of the given length; fd 1 is open in every process here.
    unsafe { libc::write(1, line.as_ptr().cast(), line.len()) };
}

/// Writes `text` through C stdio (buffered).
fn c_line(text: &std::ffi::CStr) {
    // SAFETY: a NUL-terminated format without conversions.
    unsafe { libc::printf(text.as_ptr()) };
}

extern "C" fn parent_handler() {
    raw_line(&format!("parent-handler {}", std::process::id()));
}

extern "C" fn child_handler() {
    raw_line(&format!("child-handler {}", std::process::id()));
}

fn register(handler: extern "C" fn()) -> TargetResult {
    // SAFETY: a plain C-ABI function that lives as long as the program.
    if unsafe { libc::atexit(handler) } != 0 {
        return Err("atexit failed".into());
    }
    Ok(())
}

/// The child's target: registers its own handler, buffers a line in C stdio, and ends by
/// `path`.
fn ending(path: Path) -> TargetResult {
    register(child_handler)?;
    c_line(c"child-buffered\n");
    match path {
        Path::Return => Ok(()),
        Path::Fail => Err("the target fails on purpose".into()),
        Path::Panic => {
            // Quiet: the panic is the path under test, its message and backtrace are noise.
            std::panic::set_hook(Box::new(|_| {}));
            panic!("the target panics on purpose")
        }
        Path::RustExit => std::process::exit(3),
        // SAFETY: ends the process through its exit handlers, which is what is tested.
        Path::LibcExit => unsafe { libc::exit(4) },
        Path::Signal => {
            // SAFETY: raising a signal with its default disposition touches no memory.
            unsafe { libc::raise(libc::SIGTERM) };
            std::thread::sleep(Duration::from_secs(60));
            Ok(())
        }
    }
}

/// Starts a thread that writes `thread-done` once it ends, then returns. With `finishes`
/// the thread ends by itself after a short sleep; without, it blocks for ever on a pipe
/// nobody writes to, so it can only end with the process.
fn with_thread((finishes, fail): (bool, bool)) -> TargetResult {
    register(child_handler)?;
    let (read, write) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
    std::thread::spawn(move || {
        if finishes {
            std::thread::sleep(Duration::from_millis(100));
        } else {
            let mut byte = [0u8; 1];
            let _ = nix::unistd::read(&read, &mut byte);
        }
        raw_line("thread-done");
        drop(write);
    });
    if fail {
        return Err("the target fails on purpose".into());
    }
    Ok(())
}
proclife::entry!(ending, with_thread);

/// What one scenario left on `P`'s standard output, and `P`'s own pid and exit code.
struct Run {
    p_pid: i32,
    p_code: i32,
    text: String,
}

impl Run {
    fn count(&self, line: &str) -> usize {
        self.text.lines().filter(|l| *l == line).count()
    }

    fn count_prefix(&self, prefix: &str) -> usize {
        self.text.lines().filter(|l| l.starts_with(prefix)).count()
    }

    /// The child's pid and exit code, as `P` reported them.
    fn child(&self) -> Option<(i32, i32)> {
        let line = self.text.lines().find(|l| l.starts_with("child "))?;
        let mut words = line.split_whitespace().skip(1);
        Some((words.next()?.parse().ok()?, words.next()?.parse().ok()?))
    }
}

/// Runs `start` (which builds the child) inside a sacrificial process whose stdout is a
/// memfd, as the module's documentation describes.
fn scenario(
    start: impl FnOnce() -> Process + Send + 'static,
) -> Result<Run, Box<dyn std::error::Error>> {
    let memfd: OwnedFd = nix::sys::memfd::memfd_create(
        c"proclife-child-exit",
        nix::sys::memfd::MFdFlags::MFD_CLOEXEC,
    )?;
    let raw = memfd.as_raw_fd();
    let mut p = Process::new(move || {
        // SAFETY: `raw` is open in this freshly forked process; dup2 onto stdout is the
        // point, and setvbuf runs before any other use of C's stdout in this process.
        unsafe {
            libc::dup2(raw, 1);
            libc::setvbuf(stdout, std::ptr::null_mut(), libc::_IOFBF, 4096);
        }
        common::close_all_but(2);
        if register(parent_handler).is_err() {
            std::process::exit(101);
        }
        c_line(c"parent-buffered\n");
        let mut child = start();
        let outcome = child
            .start()
            .map_err(|e| e.to_string())
            .and_then(|()| join_code(&child).map_err(|e| e.to_string()));
        match outcome {
            Ok(code) => {
                let pid = child.pid().ok().flatten().map_or(0, |p| p.as_raw());
                raw_line(&format!("child {pid} {code}"));
            }
            Err(error) => raw_line(&format!("start failed: {error}")),
        }
        let _ = proclife::stop_fork_server();
        std::process::exit(0)
    });
    p.start()?;
    let p_pid = p.pid()?.map_or(0, |p| p.as_raw());
    let p_code = join_code(&p)?;
    let mut text = Vec::new();
    let mut buf = [0u8; 4096];
    let mut at = 0;
    loop {
        let n = nix::sys::uio::pread(&memfd, &mut buf, at)?;
        if n == 0 {
            break;
        }
        text.extend_from_slice(&buf[..n]);
        at += n as i64;
    }
    Ok(Run {
        p_pid,
        p_code,
        text: String::from_utf8_lossy(&text).into_owned(),
    })
}

/// Checks what every scenario shares: `P` exited with 0, its buffered line and its own
/// handler appear exactly once, its handler never ran in the child; returns the child's
/// pid and exit code.
fn check_common(method: StartMethod, what: &str, run: &Run) -> Result<(i32, i32), String> {
    let context = format!("{method}, {what}: output {:?}", run.text);
    if run.p_code != 0 {
        return Err(format!(
            "{context}: P exited with {}, expected 0",
            run.p_code
        ));
    }
    let Some((child, code)) = run.child() else {
        return Err(format!("{context}: no child report"));
    };
    let checks = [
        ("parent-buffered", run.count("parent-buffered"), 1),
        (
            "the parent's handler in the parent",
            run.count(&format!("parent-handler {}", run.p_pid)),
            1,
        ),
        (
            "the parent's handler anywhere",
            run.count_prefix("parent-handler "),
            1,
        ),
    ];
    for (name, got, want) in checks {
        if got != want {
            return Err(format!(
                "{context}: {name} appears {got} times, expected {want}"
            ));
        }
    }
    Ok((child, code))
}

fn exit_paths_under_every_method() -> TestResult {
    let mut problems = Vec::new();
    for method in StartMethod::ALL {
        for path in PATHS {
            let run =
                scenario(move || Process::builder().start_method(method).entry(ending, path))?;
            if let Err(problem) = check_path(method, path, &run) {
                problems.push(problem.to_string());
            }
        }
    }
    ensure!(
        problems.is_empty(),
        "{} of {} scenarios failed:\n{}",
        problems.len(),
        StartMethod::ALL.len() * PATHS.len(),
        problems.join("\n")
    );
    Ok(())
}

/// Checks one exit path's scenario.
fn check_path(method: StartMethod, path: Path, run: &Run) -> TestResult {
    {
        {
            let what = format!("{path:?}");
            let (child, code) = check_common(method, &what, run)?;
            let context = format!("{method}, {what}: output {:?}", run.text);
            ensure!(
                code == path.expected_code(),
                "{context}: exit code {code}, expected {}",
                path.expected_code()
            );
            let ran = if path == Path::Signal { 0 } else { 1 };
            let own = run.count(&format!("child-handler {child}"));
            ensure!(
                own == ran,
                "{context}: the child's own handler ran {own} times, expected {ran}"
            );
            let buffered = run.count("child-buffered");
            ensure!(
                buffered == ran,
                "{context}: the child's buffered line appears {buffered} times, expected {ran}"
            );
        }
    }
    Ok(())
}

fn threads_of_the_target() -> TestResult {
    for method in StartMethod::ALL {
        for fail in [false, true] {
            // Rust's behaviour, the default: the child exits when its target returns, and the
            // thread (blocked for ever) ends with it.
            let run = scenario(move || {
                Process::builder()
                    .start_method(method)
                    .entry(with_thread, (false, fail))
            })?;
            let what = format!("threads not joined, fail={fail}");
            let (child, code) = check_common(method, &what, &run)?;
            let context = format!("{method}, {what}: output {:?}", run.text);
            ensure!(code == i32::from(fail), "{context}: exit code {code}");
            ensure!(
                run.count("thread-done") == 0,
                "{context}: the thread outlived the target's return"
            );
            ensure!(
                run.count(&format!("child-handler {child}")) == 1,
                "{context}: the child's handler did not run once"
            );
            // CPython's behaviour, on request: the child waits for the thread first.
            let run = scenario(move || {
                Process::builder()
                    .start_method(method)
                    .join_threads(true)
                    .entry(with_thread, (true, fail))
            })?;
            let what = format!("threads joined, fail={fail}");
            let (child, code) = check_common(method, &what, &run)?;
            let context = format!("{method}, {what}: output {:?}", run.text);
            ensure!(code == i32::from(fail), "{context}: exit code {code}");
            let lines: Vec<&str> = run.text.lines().collect();
            let done = lines.iter().position(|l| *l == "thread-done");
            let handler = lines
                .iter()
                .position(|l| *l == format!("child-handler {child}"));
            ensure!(
                matches!((done, handler), (Some(d), Some(h)) if d < h),
                "{context}: expected the thread to end before the child's handler ran"
            );
        }
    }
    Ok(())
}

fn main() {
    common::run(vec![
        (
            "exit_paths_under_every_method",
            exit_paths_under_every_method,
        ),
        ("threads_of_the_target", threads_of_the_target),
    ]);
}
