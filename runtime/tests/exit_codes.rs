//! Exit codes as CPython reports them, and how children crash (catalogue item T10).

#[macro_use]
extern crate proclife_testkit;
use proclife_testkit as common;

use std::os::fd::{AsRawFd, OwnedFd};
use std::time::Duration;

use common::{TestResult, join_code};
use proclife::Process;

/// Starts `p` with its fd `target_fd` (1 or 2) redirected into a pipe, joins it, and
/// returns its exit code and what it wrote.
fn capture(
    target_fd: i32,
    body: impl FnOnce() + Send + 'static,
) -> Result<(i32, String), Box<dyn std::error::Error>> {
    let (read, write) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
    let raw_write = write.as_raw_fd();
    let mut p = Process::new(move || {
        // SAFETY: both fds are open in this child; dup2 onto stdout or stderr is the point.
        unsafe { libc::dup2(raw_write, target_fd) };
        common::close_all_but(2);
        body();
    });
    p.start()?;
    drop(write);
    let code = join_code(&p)?;
    Ok((code, read_all(read)?))
}

fn read_all(read: OwnedFd) -> Result<String, Box<dyn std::error::Error>> {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = nix::unistd::read(&read, &mut buf)?;
        if n == 0 {
            break;
        }
        out.extend_from_slice(&buf[..n]);
    }
    Ok(String::from_utf8_lossy(&out).into_owned())
}

fn exit_code_of(body: impl FnOnce() + Send + 'static) -> Result<i32, Box<dyn std::error::Error>> {
    let mut p = Process::new(body);
    p.start()?;
    join_code(&p)
}

fn normal_return_is_zero() -> TestResult {
    ensure_eq!(exit_code_of(|| ())?, 0);
    let mut none = Process::builder().no_target();
    none.start()?;
    ensure_eq!(join_code(&none)?, 0);
    Ok(())
}

fn exit_n_is_n_and_0xff() -> TestResult {
    for (n, expected) in [
        (0, 0),
        (3, 3),
        (255, 255),
        (256, 0),
        (257, 1),
        (-1, 255),
        (-15, 241),
    ] {
        ensure_eq!(
            (n, exit_code_of(move || std::process::exit(n))?),
            (n, expected)
        );
    }
    Ok(())
}

fn panic_is_one_with_message() -> TestResult {
    let (code, stderr) = capture(2, || panic!("the target gave up"))?;
    ensure_eq!(code, 1);
    ensure!(
        stderr.contains("the target gave up"),
        "panic message on stderr: {stderr:?}"
    );
    Ok(())
}

fn returned_error_is_one_with_message() -> TestResult {
    let (read, write) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
    let raw_write = write.as_raw_fd();
    let mut p = Process::builder().name("failing").fallible_target(
        move || -> Result<(), std::io::Error> {
            // SAFETY: both fds are open in this child.
            unsafe { libc::dup2(raw_write, 2) };
            common::close_all_but(2);
            Err(std::io::Error::other("disk on fire"))
        },
    );
    p.start()?;
    drop(write);
    ensure_eq!(join_code(&p)?, 1);
    let stderr = read_all(read)?;
    ensure_eq!(stderr, "Process failing:\ndisk on fire\n");
    Ok(())
}

fn output_is_flushed() -> TestResult {
    let (code, stdout) = capture(1, || print!("no newline"))?;
    ensure_eq!((code, stdout.as_str()), (0, "no newline"));
    let (code, stdout) = capture(1, || {
        print!("before exit");
        std::process::exit(3)
    })?;
    ensure_eq!((code, stdout.as_str()), (3, "before exit"));
    Ok(())
}

fn segfault_is_minus_sigsegv() -> TestResult {
    let code = exit_code_of(|| {
        // SAFETY: deliberately not: the write faults, which is what the test observes.
        unsafe { std::ptr::null_mut::<u32>().write_volatile(1) };
    })?;
    ensure_eq!(code, -libc::SIGSEGV);
    Ok(())
}

fn abort_is_minus_sigabrt() -> TestResult {
    ensure_eq!(exit_code_of(|| std::process::abort())?, -libc::SIGABRT);
    Ok(())
}

fn recurse(depth: u64) -> u64 {
    if depth == u64::MAX {
        return 0;
    }
    let frame = [depth; 64];
    std::hint::black_box(&frame);
    recurse(depth + 1) + std::hint::black_box(frame[0])
}

fn stack_overflow_is_a_signal() -> TestResult {
    let (code, _) = capture(2, || {
        std::hint::black_box(recurse(0));
    })?;
    ensure!(
        code == -libc::SIGSEGV || code == -libc::SIGABRT,
        "stack overflow ends with SIGSEGV or SIGABRT, got {code}"
    );
    Ok(())
}

fn spinning_child_times_out_then_dies() -> TestResult {
    let mut p = Process::new(|| {
        common::close_all_but(2);
        loop {
            std::hint::spin_loop();
        }
    });
    p.start()?;
    p.join_timeout(Duration::from_millis(100))?;
    ensure_eq!(p.exitcode()?, None);
    p.kill()?;
    ensure_eq!(join_code(&p)?, -libc::SIGKILL);
    Ok(())
}

fn sigint_with_default_handler_is_minus_two() -> TestResult {
    let mut p = Process::new(common::sleeper());
    // The child inherits the disposition: make it the default even when this test runs
    // from a shell's background job, which starts with SIGINT ignored.
    // SAFETY: SIG_DFL is a valid disposition; the test process is single-threaded.
    let old = unsafe { libc::signal(libc::SIGINT, libc::SIG_DFL) };
    let started = p.start();
    // SAFETY: `old` was returned by `signal` for SIGINT.
    unsafe { libc::signal(libc::SIGINT, old) };
    started?;
    p.send_signal(libc::SIGINT)?;
    ensure_eq!(join_code(&p)?, -libc::SIGINT);
    Ok(())
}

fn main() {
    common::run(vec![
        ("normal_return_is_zero", normal_return_is_zero),
        ("exit_n_is_n_and_0xff", exit_n_is_n_and_0xff),
        ("panic_is_one_with_message", panic_is_one_with_message),
        (
            "returned_error_is_one_with_message",
            returned_error_is_one_with_message,
        ),
        ("output_is_flushed", output_is_flushed),
        ("segfault_is_minus_sigsegv", segfault_is_minus_sigsegv),
        ("abort_is_minus_sigabrt", abort_is_minus_sigabrt),
        ("stack_overflow_is_a_signal", stack_overflow_is_a_signal),
        (
            "spinning_child_times_out_then_dies",
            spinning_child_times_out_then_dies,
        ),
        (
            "sigint_with_default_handler_is_minus_two",
            sigint_with_default_handler_is_minus_two,
        ),
    ]);
}
