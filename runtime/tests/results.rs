//! Typed results (`Builder::target_returning`, `Builder::entry_returning`) under every start
//! method, with every way a result can fail to come back; written with `#[proclife::test]`
//! under the default harness.

use std::time::Duration;

use proclife::result::{JoinHandle, ResultError};
use proclife::sync::Lock;
use proclife::{Process, StartMethod};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Bounds every join of a child that should end by itself soon.
const BOUND: Option<Duration> = Some(Duration::from_secs(60));

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Report {
    name: String,
    squares: Vec<u64>,
}

fn report(n: u64) -> Report {
    Report {
        name: format!("report {n}"),
        squares: (0..n).map(|i| i * i).collect(),
    }
}

fn silent_panic(n: u64) -> u64 {
    std::panic::set_hook(Box::new(|_| {}));
    panic!("no square for {n}")
}

fn exit_early(code: i32) -> u64 {
    std::process::exit(code)
}

fn sleep_then(n: u64) -> u64 {
    std::thread::sleep(Duration::from_secs(120));
    n
}

fn bytes(len: usize) -> Vec<u8> {
    vec![7; len]
}

/// Serialises as an odd number, which its own `Deserialize` refuses.
#[derive(Debug)]
struct Even(u32);

impl Serialize for Even {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        (self.0 | 1).serialize(s)
    }
}

impl<'de> Deserialize<'de> for Even {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Even, D::Error> {
        let n = u32::deserialize(d)?;
        if n % 2 == 0 {
            Ok(Even(n))
        } else {
            Err(serde::de::Error::custom(format!("{n} is odd")))
        }
    }
}

fn odd((): ()) -> Even {
    Even(4)
}

/// An IPC object is not a value: it only travels as a process argument.
fn a_lock((): ()) -> Lock {
    Lock::new().expect("a lock")
}

proclife::entry_returning!(
    report,
    silent_panic,
    exit_early,
    sleep_then,
    bytes,
    odd,
    a_lock
);

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").map_or(0, Iterator::count)
}

fn started<T: serde::de::DeserializeOwned>(mut h: JoinHandle<T>) -> JoinHandle<T> {
    h.start().expect("start");
    h
}

/// `f` stays a function item (a `fn` pointer would have another entry key).
fn with<F, A, T>(method: StartMethod, f: F, args: A) -> JoinHandle<T>
where
    F: FnOnce(A) -> T + Copy + Send + 'static,
    A: Serialize + serde::de::DeserializeOwned + Send + 'static,
    T: Serialize + serde::de::DeserializeOwned + 'static,
{
    started(
        Process::builder()
            .start_method(method)
            .entry_returning(f, args),
    )
}

#[proclife::test]
fn a_closure_returns_its_value_under_fork() {
    let h = started(Process::builder().target_returning(|| report(5)));
    assert_eq!(h.join().expect("a value"), report(5));
    let mut h = started(Process::builder().target_returning(|| -> u8 {
        std::panic::set_hook(Box::new(|_| {}));
        panic!("closure panicked with {}", 42)
    }));
    match h.result(BOUND) {
        Err(ResultError::Panicked { message }) => assert_eq!(message, "closure panicked with 42"),
        other => panic!("expected the panic's message, got {other:?}"),
    }
    assert!(matches!(h.result(BOUND), Err(ResultError::Taken)));
    assert_eq!(h.exitcode().expect("exit code"), Some(1));
}

#[proclife::test]
fn a_closure_is_refused_by_the_re_executing_methods() {
    for method in [StartMethod::Spawn, StartMethod::ForkServer] {
        let mut h = Process::builder()
            .start_method(method)
            .target_returning(|| 1u8);
        assert!(
            matches!(h.start(), Err(proclife::Error::NotPassable { .. })),
            "under {method}"
        );
    }
    proclife::stop_fork_server().expect("stop the fork server");
}

#[proclife::test]
fn values_panics_and_exits_under_every_method() {
    let before = open_fds();
    for method in StartMethod::ALL {
        assert_eq!(
            with(method, report, 100).join().expect("a value"),
            report(100),
            "under {method}"
        );
        // Larger than a pipe's buffer: read while the child writes.
        assert_eq!(
            with(method, bytes, 1 << 20).join().expect("a value").len(),
            1 << 20,
            "under {method}"
        );
        match with(method, silent_panic, 3).join() {
            Err(ResultError::Panicked { message }) => {
                assert_eq!(message, "no square for 3", "under {method}");
            }
            other => panic!("under {method}: expected Panicked, got {other:?}"),
        }
        match with(method, exit_early, 3).join() {
            Err(ResultError::NoResult { exitcode: 3 }) => {}
            other => panic!("under {method}: expected NoResult with code 3, got {other:?}"),
        }
    }
    proclife::stop_fork_server().expect("stop the fork server");
    assert_eq!(open_fds(), before, "fds left open");
}

#[proclife::test]
fn a_killed_child_is_a_typed_error_and_leaks_nothing() {
    // The children inherit SIGINT's disposition: make it the default even when the tests run
    // from a shell's background job, which starts with SIGINT ignored. The body runs in a
    // process of its own, so nothing needs restoring.
    // SAFETY: SIG_DFL is a valid disposition; the process is single-threaded here.
    unsafe { libc::signal(libc::SIGINT, libc::SIG_DFL) };
    let before = open_fds();
    for method in StartMethod::ALL {
        let mut h = with(method, sleep_then, 1);
        assert!(matches!(
            h.result(Some(Duration::ZERO)),
            Err(ResultError::Timeout)
        ));
        h.kill().expect("kill");
        match h.result(BOUND) {
            Err(ResultError::Killed { signal: 9 }) => {}
            other => panic!("under {method}: expected Killed by 9, got {other:?}"),
        }
        let mut h = with(method, sleep_then, 1);
        h.interrupt().expect("interrupt");
        match h.result(BOUND) {
            Err(ResultError::Killed { signal: 2 }) => {}
            other => panic!("under {method}: expected Killed by 2 (interrupt), got {other:?}"),
        }
        h.close().expect("close");
    }
    proclife::stop_fork_server().expect("stop the fork server");
    assert_eq!(open_fds(), before, "fds left open");
}

#[proclife::test]
fn bad_values_are_typed_errors() {
    for method in StartMethod::ALL {
        match with(method, odd, ()).join() {
            Err(ResultError::Decode(_)) => {}
            other => panic!("under {method}: expected Decode, got {other:?}"),
        }
        match with(method, a_lock, ()).join() {
            Err(ResultError::Unencodable { .. }) => {}
            other => panic!("under {method}: expected Unencodable, got {other:?}"),
        }
        let mut h = Process::builder()
            .start_method(method)
            .entry_returning(bytes, 4096);
        h.set_max_size(100).expect("a limit before the start");
        h.start().expect("start");
        assert!(matches!(
            h.set_max_size(10),
            Err(proclife::Error::InvalidArgument(_))
        ));
        match h.join() {
            Err(ResultError::TooLarge { len, max: 100 }) if len > 4096 => {}
            other => panic!("under {method}: expected TooLarge, got {other:?}"),
        }
    }
    proclife::stop_fork_server().expect("stop the fork server");
}

#[proclife::test]
fn an_unstarted_or_closed_handle_says_so() {
    let mut h = Process::builder().target_returning(|| 1u8);
    assert!(matches!(
        h.result(Some(Duration::ZERO)),
        Err(ResultError::Process(proclife::Error::JoinNotStarted))
    ));
    h.start().expect("start");
    h.join_timeout(Duration::from_secs(60)).expect("join");
    h.close().expect("close");
    assert!(matches!(
        h.result(BOUND),
        Err(ResultError::Process(proclife::Error::Closed))
    ));
}
