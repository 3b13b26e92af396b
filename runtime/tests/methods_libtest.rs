//! What the start methods promise to a test suite: ordinary `#[test]`s in the normal
//! multi-threaded libtest harness start, join and terminate children under the re-executing
//! start methods.

use std::time::Duration;

use proclife::{Process, StartMethod, TargetResult};

fn exit_with(code: i32) -> TargetResult {
    std::process::exit(code)
}
fn sleep_long((): ()) -> TargetResult {
    std::thread::sleep(Duration::from_secs(60));
    Ok(())
}
proclife::entry!(exit_with, sleep_long);

fn start_join_terminate(method: StartMethod) -> proclife::Result<()> {
    let mut p = Process::builder().start_method(method).entry(exit_with, 5);
    p.start()?;
    p.join_timeout(Duration::from_secs(20))?;
    assert_eq!(p.exitcode()?, Some(5));
    let mut q = Process::builder()
        .start_method(method)
        .entry(sleep_long, ());
    q.start()?;
    assert!(q.is_alive()?);
    q.terminate()?;
    q.join_timeout(Duration::from_secs(20))?;
    assert_eq!(q.exitcode()?, Some(-15));
    q.close()?;
    Ok(())
}

#[test]
fn spawn_in_the_threaded_harness() -> proclife::Result<()> {
    start_join_terminate(StartMethod::Spawn)
}

#[test]
fn forkserver_in_the_threaded_harness() -> proclife::Result<()> {
    start_join_terminate(StartMethod::ForkServer)
}
