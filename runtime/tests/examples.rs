//! Runs every example: its code in this process, and its built binary when `cargo test`
//! has built the examples next to this test.

#[macro_use]
extern crate proclife_testkit;
use proclife_testkit as common;

use std::path::PathBuf;

use common::TestResult;

#[path = "../examples/custom_target.rs"]
mod custom_target;
#[path = "../examples/event_shutdown.rs"]
mod event_shutdown;
#[path = "../examples/lifecycle.rs"]
mod lifecycle;
#[path = "../examples/pipe_result.rs"]
mod pipe_result;
#[path = "../examples/shared_counter.rs"]
mod shared_counter;
#[path = "../examples/terminate_kill.rs"]
mod terminate_kill;
#[path = "../examples/worker_queue.rs"]
mod worker_queue;

/// `target/<profile>/examples/<name>`, next to `target/<profile>/deps/<this test>`.
fn example_binary(name: &str) -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let path = exe.parent()?.parent()?.join("examples").join(name);
    path.exists().then_some(path)
}

/// Runs the built example binary (if built), bounded by no progress (CPU time) for
/// [`QUIET`](common::wait::QUIET), and checks it exits 0.
fn run_binary(name: &str) -> TestResult {
    let Some(path) = example_binary(name) else {
        println!("{name}: binary not built, ran its code in-process only");
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
    lifecycle::main()?;
    run_binary("lifecycle")
}

fn terminate_kill_example() -> TestResult {
    terminate_kill::main()?;
    run_binary("terminate_kill")
}

fn custom_target_example() -> TestResult {
    custom_target::main()?;
    run_binary("custom_target")
}

fn pipe_result_example() -> TestResult {
    pipe_result::main()?;
    run_binary("pipe_result")
}

fn worker_queue_example() -> TestResult {
    worker_queue::main()?;
    run_binary("worker_queue")
}

fn shared_counter_example() -> TestResult {
    shared_counter::main()?;
    run_binary("shared_counter")
}

fn event_shutdown_example() -> TestResult {
    event_shutdown::main()?;
    run_binary("event_shutdown")
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
    ]);
}
