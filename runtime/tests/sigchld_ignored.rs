//! Fault catalogue T12, the start itself: with `SIGCHLD` ignored the kernel reaps a child
//! the moment it exits, so a child that ends at once could be gone before `start()` has
//! opened its pidfd. Every start must still succeed (the child's exit waits for its
//! parent's pidfd, decision 0019), and the join must end with the code or `StatusLost`.
//!
//! Each test body runs in a process of its own (`#[proclife::test]`), so ignoring `SIGCHLD`
//! there changes nothing for the other tests.

use proclife::{Error, Process};
use proclife_testkit::child::Gate;
use proclife_testkit::wait::AT_ONCE;

/// Starts per kind of ending: enough that, without the handoff, some child ends before its
/// parent's `pidfd_open` on a busy machine.
const STARTS: usize = 300;

fn ignore_sigchld() {
    // SAFETY: `SIG_IGN` is a valid disposition and installs no handler code; the test body
    // runs in its own single-threaded process.
    let previous = unsafe { libc::signal(libc::SIGCHLD, libc::SIG_IGN) };
    assert_ne!(previous, libc::SIG_ERR, "signal(SIGCHLD, SIG_IGN) failed");
}

/// Starts `STARTS` children made by `make`, each of which ends at once with `code`, and
/// checks every start and join.
fn start_all(kind: &str, code: i32, make: impl Fn() -> Process) -> proclife::Result<()> {
    for i in 0..STARTS {
        let mut p = make();
        if let Err(error) = p.start() {
            panic!(
                "{kind}, start {i} of {STARTS} under SIGCHLD=SIG_IGN: expected the start to \
                 succeed, got {error:?}"
            );
        }
        match p.join_timeout(AT_ONCE).and_then(|()| p.exitcode()) {
            Ok(Some(c)) => assert_eq!(c, code, "{kind}, child {i}: wrong exit code"),
            // Under SIG_IGN the kernel usually takes the status first.
            Err(Error::StatusLost { .. }) => {}
            other => panic!(
                "{kind}, child {i}: expected Some({code}) or StatusLost after join, got {other:?}"
            ),
        }
        assert!(
            !matches!(p.is_alive(), Ok(true)),
            "{kind}, child {i}: joined, yet is_alive() is true"
        );
    }
    Ok(())
}

#[proclife::test]
fn children_ending_at_once_start_under_sigchld_ignored_t12() -> proclife::Result<()> {
    ignore_sigchld();
    start_all("a target that returns", 0, || Process::new(|| ()))?;
    start_all("a target that calls exit(3)", 3, || {
        Process::new(|| std::process::exit(3))
    })?;
    // A child that is still running (it waits on a gate) is not disturbed by any of this.
    let mut gate = Gate::new();
    let mut running = Process::new(gate.waiter());
    running.start()?;
    let alive = running.is_alive();
    gate.open();
    assert!(
        matches!(alive, Ok(true)),
        "a child waiting on a gate: expected is_alive() = Ok(true), got {alive:?}"
    );
    let end = running
        .join_timeout(AT_ONCE)
        .and_then(|()| running.exitcode());
    assert!(
        matches!(end, Ok(Some(0)) | Err(Error::StatusLost { .. })),
        "the sleeping child: expected Some(0) or StatusLost after join, got {end:?}"
    );
    Ok(())
}
