//! Fault catalogue T30 for the fork start method's two thread checks (decision 0032): in a
//! process that glibc knows has never had a second thread, `start()` makes sure that an fd
//! is free for the child's pidfd before it forks (an open of `/`, closed again); once a
//! thread has existed it holds `/proc/self/task` open across the fork instead. Either way,
//! with no fd free `start()` fails with `EMFILE` before a child exists, and with one fd free
//! exactly one start succeeds, its pidfd taking that fd.
//!
//! The body runs in a process of its own (`#[proclife::test]`), re-executed, so that glibc
//! has seen no thread there yet.

use std::time::Duration;

use nix::errno::Errno;
use nix::sys::resource::{Resource, getrlimit, setrlimit};
use proclife::{Error, Process, ProcessState};
use proclife_testkit::child::Gate;
use proclife_testkit::procfs::{children, fd_snapshot, never_threaded};

/// Bounds the join of a child that was released and ends at once.
const BOUND: Duration = Duration::from_secs(60);

/// The lowest fd number that is free now.
fn lowest_free_fd() -> u64 {
    let fds = fd_snapshot();
    (0..)
        .find(|fd| !fds.contains_key(fd))
        .map_or(0, |fd| fd as u64)
}

/// With the fd limit at the lowest free fd, a start fails with `EMFILE` and leaves nothing;
/// one fd above it, one start succeeds (its pidfd takes that fd) and the next one fails.
fn starts_at_the_limit(check: &str, call: &str) {
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).expect("getrlimit");
    for extra in 0..2u64 {
        let mut gate = Gate::new();
        let before = fd_snapshot();
        let free = lowest_free_fd();
        setrlimit(Resource::RLIMIT_NOFILE, free + extra, hard).expect("setrlimit");
        let mut started = Vec::new();
        let mut failed = None;
        for _ in 0..3 {
            let mut p = Process::new(gate.waiter());
            match p.start() {
                Ok(()) => started.push(p),
                Err(error) => {
                    failed = Some((error, p));
                    break;
                }
            }
        }
        setrlimit(Resource::RLIMIT_NOFILE, soft, hard).expect("setrlimit");
        let limit = free + extra;
        assert_eq!(
            started.len() as u64,
            extra,
            "{check}, limit {limit} with fd {free} the lowest free: expected {extra} start(s) \
             to succeed before one fails, {} did",
            started.len()
        );
        let (error, mut p) = failed.expect("a start that failed");
        // Refused by the check before the fork, not by `pidfd_open` after it (a child would
        // have existed, and been killed).
        assert!(
            matches!(
                error,
                Error::Os {
                    errno: Errno::EMFILE,
                    call: c,
                } if c == call
            ),
            "{check}, limit {limit}: expected EMFILE from {call}, got {error:?}"
        );
        assert_eq!(p.state().expect("state"), ProcessState::New);
        let added: Vec<String> = fd_snapshot()
            .into_iter()
            .filter(|(fd, _)| !before.contains_key(fd))
            .map(|(_, target)| target)
            .collect();
        assert!(
            added.len() == started.len() && added.iter().all(|t| t == "anon_inode:[pidfd]"),
            "{check}, limit {limit}: expected one pidfd per started child ({}), the fds added \
             are {added:?}",
            started.len()
        );
        assert_eq!(
            children().len(),
            started.len(),
            "{check}, limit {limit}: expected one child per successful start"
        );
        // The refused handle starts once fds are free again.
        p.start().expect("a start below the restored limit");
        started.push(p);
        gate.open();
        for mut p in started {
            p.join_timeout(BOUND).expect("join");
            assert_eq!(p.exitcode().expect("exitcode"), Some(0), "{check}");
            p.close().expect("close");
        }
    }
}

#[proclife::test]
fn emfile_under_both_thread_checks_t30() {
    assert!(
        never_threaded(),
        "expected a body process in which glibc has seen no thread"
    );
    starts_at_the_limit("never threaded (glibc's flag)", "open(/)");
    assert!(
        never_threaded(),
        "starting children made glibc see a thread"
    );
    std::thread::spawn(|| ()).join().expect("a thread");
    assert!(
        !never_threaded(),
        "expected glibc to know of the thread it started"
    );
    starts_at_the_limit(
        "a thread has existed (/proc/self/task)",
        "open(/proc/self/task)",
    );
}
