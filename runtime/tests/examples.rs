//! Runs every example: its code in this process, and its built binary when
//! `cargo build --examples` has built the examples next to this test.

#[macro_use]
extern crate proclife_testkit;
use proclife_testkit as common;

use std::path::PathBuf;

use common::TestResult;

#[path = "../examples/barrier_phases.rs"]
mod barrier_phases;
#[path = "../examples/blocked_states.rs"]
mod blocked_states;
#[path = "../examples/condition_handoff.rs"]
mod condition_handoff;
#[path = "../examples/custom_target.rs"]
mod custom_target;
#[path = "../examples/event_shutdown.rs"]
mod event_shutdown;
#[path = "../examples/lifecycle.rs"]
mod lifecycle;
#[path = "../examples/lock_section.rs"]
mod lock_section;
#[path = "../examples/pipe_result.rs"]
mod pipe_result;
#[path = "../examples/semaphore_limit.rs"]
mod semaphore_limit;
#[path = "../examples/shared_counter.rs"]
mod shared_counter;
#[path = "../examples/terminate_kill.rs"]
mod terminate_kill;
#[path = "../examples/worker_queue.rs"]
mod worker_queue;

/// Runs an example's `main` with this process's stdout and stderr (and so its forked
/// children's) in a memfd, so that a passing run prints nothing; a failure shows what it
/// printed.
fn quietly(main: fn() -> Result<(), Box<dyn std::error::Error>>) -> TestResult {
    use std::io::{Read, Seek, Write};
    use std::os::fd::AsFd;

    let mut capture = std::fs::File::from(nix::sys::memfd::memfd_create(
        c"example-output",
        nix::sys::memfd::MFdFlags::MFD_CLOEXEC,
    )?);
    std::io::stdout().flush()?;
    let saved_out = std::io::stdout().as_fd().try_clone_to_owned()?;
    let saved_err = std::io::stderr().as_fd().try_clone_to_owned()?;
    nix::unistd::dup2_stdout(&capture)?;
    nix::unistd::dup2_stderr(&capture)?;
    let result = main();
    let flushed = std::io::stdout().flush();
    nix::unistd::dup2_stdout(&saved_out)?;
    nix::unistd::dup2_stderr(&saved_err)?;
    drop((saved_out, saved_err));
    flushed?;
    if let Err(error) = result {
        let mut output = String::new();
        capture.rewind()?;
        capture.read_to_string(&mut output)?;
        return Err(format!("{error}; the example printed:\n{output}").into());
    }
    Ok(())
}

/// `target/<profile>/examples/<name>`, next to `target/<profile>/deps/<this test>`.
fn example_binary(name: &str) -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let path = exe.parent()?.parent()?.join("examples").join(name);
    path.exists().then_some(path)
}

/// Runs the built example binary, when `cargo build --examples` has built it (`cargo test`
/// builds examples as test harnesses only), bounded by no progress (CPU time) for
/// [`QUIET`](common::wait::QUIET), and checks it exits 0; otherwise the example's code ran
/// in this process, which is the check.
fn run_binary(name: &str) -> TestResult {
    let Some(path) = example_binary(name) else {
        return Ok(());
    };
    let mut child = std::process::Command::new(&path)
        .stdout(std::process::Stdio::null())
        .spawn()?;
    let mut progress = common::wait::Progress::new(format!("example {name}"));
    let status = common::wait::wait_working(&mut child, &mut progress, || 0)?;
    ensure!(
        status.success(),
        "expected example {name} to exit 0; it exited with {status}"
    );
    Ok(())
}

fn lifecycle_example() -> TestResult {
    quietly(lifecycle::main)?;
    run_binary("lifecycle")
}

fn terminate_kill_example() -> TestResult {
    quietly(terminate_kill::main)?;
    run_binary("terminate_kill")
}

fn custom_target_example() -> TestResult {
    quietly(custom_target::main)?;
    run_binary("custom_target")
}

fn pipe_result_example() -> TestResult {
    quietly(pipe_result::main)?;
    run_binary("pipe_result")
}

fn worker_queue_example() -> TestResult {
    quietly(worker_queue::main)?;
    run_binary("worker_queue")
}

fn shared_counter_example() -> TestResult {
    quietly(shared_counter::main)?;
    run_binary("shared_counter")
}

fn event_shutdown_example() -> TestResult {
    quietly(event_shutdown::main)?;
    run_binary("event_shutdown")
}

fn lock_example() -> TestResult {
    quietly(lock_section::main)?;
    run_binary("lock_section")
}

fn semaphore_example() -> TestResult {
    quietly(semaphore_limit::main)?;
    run_binary("semaphore_limit")
}

fn barrier_example() -> TestResult {
    quietly(barrier_phases::main)?;
    run_binary("barrier_phases")
}

fn condition_example() -> TestResult {
    quietly(condition_handoff::main)?;
    run_binary("condition_handoff")
}

fn blocked_states_example() -> TestResult {
    quietly(blocked_states::main)?;
    run_binary("blocked_states")
}

fn main() {
    common::run(vec![
        ("lifecycle_example", lifecycle_example),
        ("terminate_kill_example", terminate_kill_example),
        ("custom_target_example", custom_target_example),
        ("pipe_result_example", pipe_result_example),
        ("worker_queue_example", worker_queue_example),
        ("shared_counter_example", shared_counter_example),
        ("event_shutdown_example", event_shutdown_example),
        ("lock_example", lock_example),
        ("semaphore_example", semaphore_example),
        ("barrier_example", barrier_example),
        ("condition_example", condition_example),
        ("blocked_states_example", blocked_states_example),
    ]);
}
