//! Tests written the way a user of proclife writes them: the default libtest harness, one
//! attribute per test, closure targets under fork.

use std::os::fd::AsFd;
use std::time::Duration;

use proclife::sync::Event;
use proclife::{Error, Process, StartMethod, TargetResult};

fn exit_with(code: i32) -> TargetResult {
    std::process::exit(code)
}
proclife::entry!(exit_with);

#[proclife::test]
fn a_closure_child_under_fork() -> proclife::Result<()> {
    let mut p = Process::new(|| std::process::exit(3));
    p.start()?;
    p.join_timeout(Duration::from_secs(60))?;
    assert_eq!(p.exitcode()?, Some(3));
    p.close()
}

#[proclife::test]
fn every_start_method() -> proclife::Result<()> {
    for method in StartMethod::ALL {
        let mut p = Process::builder().start_method(method).entry(exit_with, 4);
        p.start()?;
        p.join_timeout(Duration::from_secs(60))?;
        assert_eq!(p.exitcode()?, Some(4), "under {method}");
    }
    proclife::stop_fork_server()
}

#[proclife::test]
fn closures_share_objects_with_the_child() {
    let event = Event::new().expect("an event");
    let child_event = Event::from_fd(event.as_fd().try_clone_to_owned().expect("dup")).unwrap();
    let mut p = Process::new(move || {
        child_event.wait(None).expect("wait");
        std::process::exit(if child_event.is_set() { 0 } else { 9 })
    });
    p.start().unwrap();
    event.set();
    p.join_timeout(Duration::from_secs(60)).unwrap();
    assert_eq!(p.exitcode().unwrap(), Some(0));
}

#[proclife::test]
#[should_panic(expected = "the child said 5")]
fn a_panic_fails_the_test_with_its_message() {
    let mut p = Process::new(|| std::process::exit(5));
    p.start().unwrap();
    p.join().unwrap();
    panic!("the child said {}", p.exitcode().unwrap().unwrap_or(0));
}

#[proclife::test]
#[should_panic(expected = "the test returned an error: AlreadyStarted")]
fn an_error_fails_the_test() -> proclife::Result<()> {
    let mut p = Process::new(|| ());
    p.start()?;
    p.join()?;
    p.start()
}

#[proclife::test]
#[should_panic(expected = "exited with code 7 before the test finished")]
fn an_exit_in_the_body_fails_the_test() {
    std::process::exit(7)
}

#[proclife::test]
#[should_panic(expected = "killed by signal 9 before the test finished")]
fn a_killed_body_fails_the_test() {
    nix::sys::signal::raise(nix::sys::signal::Signal::SIGKILL).unwrap();
}

#[proclife::test]
#[ignore = "shows that #[ignore] passes through"]
fn ignored() {
    panic!("an ignored test never runs");
}

/// Without the attribute, fork refuses, and the refusal names the attribute.
#[test]
fn a_plain_test_is_refused_and_told_why() {
    let mut p = Process::new(|| ());
    match p.start() {
        Err(error @ Error::ThreadedFork { .. }) => {
            assert!(error.to_string().contains("#[proclife::test]"), "{error}");
        }
        other => panic!("expected ThreadedFork from a libtest thread, got {other:?}"),
    }
}
