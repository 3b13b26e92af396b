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

/// How `#[proclife::test]` fails a test, checked on what its generated code calls: each
/// body below is one that must fail, and `failure_of` returns the message the test fails
/// with (the payload libtest matches against `should_panic(expected = ..)`).
mod failing_bodies {
    use proclife::TargetResult;
    use proclife::testing::{Sink, run_test};

    fn failure_of<F>(name: &str, body: F) -> String
    where
        F: FnOnce(Sink) -> TargetResult + Copy + Send + 'static,
    {
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run_test(name, body))) {
            Ok(()) => panic!("{name}: expected the test to fail, it passed"),
            Err(payload) => payload
                .downcast_ref::<String>()
                .cloned()
                .unwrap_or_else(|| format!("{name}: a payload that is not a String")),
        }
    }

    fn panics(sink: Sink) -> TargetResult {
        sink.run(|| -> () {
            let mut p = proclife::Process::new(|| std::process::exit(5));
            p.start().unwrap();
            p.join().unwrap();
            panic!("the child said {}", p.exitcode().unwrap().unwrap_or(0));
        })
    }

    fn returns_an_error(sink: Sink) -> TargetResult {
        sink.run(|| -> proclife::Result<()> {
            let mut p = proclife::Process::new(|| ());
            p.start()?;
            p.join()?;
            p.start()
        })
    }

    fn exits(sink: Sink) -> TargetResult {
        sink.run(|| -> () { std::process::exit(7) })
    }

    fn is_killed(sink: Sink) -> TargetResult {
        sink.run(|| {
            nix::sys::signal::raise(nix::sys::signal::Signal::SIGKILL).unwrap();
        })
    }

    proclife::entry!(panics, returns_an_error, exits, is_killed);

    #[test]
    fn a_panic_fails_the_test_with_its_message() {
        assert_eq!(failure_of("panics", panics), "the child said 5");
    }

    #[test]
    fn an_error_fails_the_test() {
        let message = failure_of("returns_an_error", returns_an_error);
        assert_eq!(message, "the test returned an error: AlreadyStarted");
    }

    #[test]
    fn an_exit_in_the_body_fails_the_test() {
        let message = failure_of("exits", exits);
        assert!(
            message.contains("exited with code 7 before the test finished"),
            "{message}"
        );
    }

    #[test]
    fn a_killed_body_fails_the_test() {
        let message = failure_of("is_killed", is_killed);
        assert!(
            message.contains("killed by signal 9 before the test finished"),
            "{message}"
        );
    }
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
