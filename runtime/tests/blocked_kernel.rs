//! `ProcessState` as the kernel sees a child: a real child, started under every start method,
//! waits in a plain `read` of a pipe, a `read` of a socket, a sleep, a `std::sync::Mutex` held
//! by another of its threads, a `waitpid` of its own child, one of proclife's primitives, or is
//! stopped by `SIGSTOP`; the parent's `state()` must name each.
//!
//! Under fork the children are closures; under spawn and forkserver the same bodies are
//! `proclife::entry!` functions. Every wait for "the child reached the state" polls `state()`
//! until it matches, bounded, and a failure names the state last seen.

#[macro_use]
extern crate proclife_testkit;
use proclife_testkit as common;
use proclife_testkit::process::{Started, wait_state};

use std::os::fd::AsFd;
use std::time::Duration;

use common::{TestResult, join_code};
use nix::sys::signal::{Signal, kill};
use proclife::ipc::{Connection, pipe};
use proclife::sync::Event;
use proclife::{BlockedOn, FdKind, KernelWait, Process, ProcessState, StartMethod, TargetResult};

/// How long a child's own wait lasts at most, should the parent never end it.
const CHILD_BOUND: Duration = Duration::from_secs(60);

/// Reads one byte with a plain `read(2)` (not `Connection::recv`), so that no status slot
/// says anything: only the kernel knows the child waits.
fn plain_read(conn: Connection) -> TargetResult {
    // A connection's fds block, as CPython's do: this read sleeps in the kernel.
    let fd = conn.fd()?;
    let mut byte = [0u8; 1];
    nix::unistd::read(fd, &mut byte)?;
    Ok(())
}

fn sleep_long((): ()) -> TargetResult {
    std::thread::sleep(CHILD_BOUND);
    Ok(())
}

/// Locks a `std::sync::Mutex` that another of its threads holds (and keeps).
fn lock_held_mutex((): ()) -> TargetResult {
    use std::sync::{Arc, Mutex, mpsc};
    let mutex = Arc::new(Mutex::new(()));
    let (held, taken) = mpsc::channel();
    let holder = Arc::clone(&mutex);
    std::thread::spawn(move || {
        let _guard = holder.lock();
        let _ = held.send(());
        std::thread::sleep(CHILD_BOUND);
    });
    taken.recv()?;
    drop(mutex.lock());
    Ok(())
}

/// Waits (`waitpid`) for a child of its own: a `cat` that reads its stdin, whose write end
/// only this process holds, so that `cat` ends when this process dies.
fn wait_own_child((): ()) -> TargetResult {
    let mut cat = std::process::Command::new("cat")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()?;
    // `Child::wait` closes stdin first; kept here, it stays open for the whole wait.
    let _stdin = cat.stdin.take();
    cat.wait()?;
    Ok(())
}

fn wait_event(event: Event) -> TargetResult {
    event.wait(Some(CHILD_BOUND))?;
    Ok(())
}

proclife::entry!(
    plain_read,
    sleep_long,
    lock_held_mutex,
    wait_own_child,
    wait_event
);

/// Starts `f(args)`: a closure under fork, the registered function otherwise.
fn start<F, A>(
    method: StartMethod,
    name: &str,
    f: F,
    args: A,
) -> Result<Started, Box<dyn std::error::Error>>
where
    F: FnOnce(A) -> TargetResult + Copy + Send + 'static,
    A: serde::Serialize + serde::de::DeserializeOwned + Send + 'static,
{
    let builder = Process::builder().name(name).start_method(method);
    let mut p = match method {
        StartMethod::Fork => builder.fallible_target(move || f(args)),
        _ => builder.entry(f, args),
    };
    p.start()?;
    Ok(Started(p))
}

/// The kernel wait of a state, if it is one.
fn kernel(state: ProcessState) -> Option<KernelWait> {
    match state {
        ProcessState::Blocked(BlockedOn::Kernel(wait)) => Some(wait),
        _ => None,
    }
}

/// Whether `state` is a kernel wait in one of `calls`, on an fd of `kind` (when given).
fn in_call(state: ProcessState, calls: &[&str], kind: Option<FdKind>) -> bool {
    kernel(state).is_some_and(|wait| {
        wait.call
            .and_then(|call| call.name())
            .is_some_and(|name| calls.contains(&name))
            && kind.is_none_or(|kind| wait.fd.is_some_and(|fd| fd.kind == kind && fd.fd >= 0))
    })
}

/// Kills the child (it is alive in every state seen) and checks that it died of SIGKILL.
fn kill_and_reap(child: &Started) -> TestResult {
    ensure!(
        child.is_alive()?,
        "{}: is_alive() false while blocked",
        child.name()
    );
    child.kill()?;
    ensure_eq!((child.name(), join_code(child)?), (child.name(), -9));
    Ok(())
}

/// The sleep call's names: glibc's `nanosleep` is `clock_nanosleep` on current kernels.
const SLEEPS: &[&str] = &["clock_nanosleep", "nanosleep"];

/// A sleep continued after a stop: the kernel resumes it through `restart_syscall`.
const SLEEPS_AFTER_STOP: &[&str] = &["clock_nanosleep", "nanosleep", "restart_syscall"];

fn pipe_read() -> TestResult {
    for method in StartMethod::ALL {
        let (reader, mut writer) = pipe(false)?;
        let child = start(method, "pipe-read", plain_read, reader)?;
        wait_state(&child, "blocked in read of a pipe", |s| {
            in_call(s, &["read"], Some(FdKind::Pipe))
        })?;
        writer.send_bytes(b"x")?;
        ensure_eq!((method, join_code(&child)?), (method, 0));
    }
    proclife::stop_fork_server()?;
    Ok(())
}

fn socket_read() -> TestResult {
    for method in StartMethod::ALL {
        let (mine, theirs) = pipe(true)?;
        let child = start(method, "socket-read", plain_read, theirs)?;
        wait_state(&child, "blocked in read of a socket", |s| {
            in_call(s, &["read"], Some(FdKind::Socket))
        })?;
        let mut mine = mine;
        mine.send_bytes(b"x")?;
        ensure_eq!((method, join_code(&child)?), (method, 0));
    }
    proclife::stop_fork_server()?;
    Ok(())
}

fn sleep() -> TestResult {
    for method in StartMethod::ALL {
        let child = start(method, "sleep", sleep_long, ())?;
        let state = wait_state(&child, "blocked in a sleep", |s| in_call(s, SLEEPS, None))?;
        ensure!(
            kernel(state).is_some_and(|w| w.fd.is_none()),
            "a sleep waits on no fd: {state:?}"
        );
        kill_and_reap(&child)?;
    }
    proclife::stop_fork_server()?;
    Ok(())
}

fn std_mutex() -> TestResult {
    for method in StartMethod::ALL {
        let child = start(method, "std-mutex", lock_held_mutex, ())?;
        wait_state(&child, "blocked in the futex of a std Mutex", |s| {
            in_call(s, &["futex"], None)
        })?;
        kill_and_reap(&child)?;
    }
    proclife::stop_fork_server()?;
    Ok(())
}

fn waitpid_own_child() -> TestResult {
    for method in StartMethod::ALL {
        let child = start(method, "waitpid", wait_own_child, ())?;
        wait_state(&child, "blocked in waitpid of its own child", |s| {
            in_call(s, &["wait4", "waitid"], None)
        })?;
        kill_and_reap(&child)?;
    }
    proclife::stop_fork_server()?;
    Ok(())
}

fn proclife_primitive() -> TestResult {
    for method in StartMethod::ALL {
        let event = Event::new()?;
        let theirs = Event::from_fd(event.as_fd().try_clone_to_owned()?)?;
        let child = start(method, "event", wait_event, theirs)?;
        wait_state(&child, "blocked on the Event", |s| {
            s == ProcessState::Blocked(BlockedOn::Event)
        })?;
        event.set();
        ensure_eq!((method, join_code(&child)?), (method, 0));
    }
    proclife::stop_fork_server()?;
    Ok(())
}

/// Stopped by SIGSTOP, continued by SIGCONT (back in its sleep); `terminate()` ends a
/// stopped child (it continues it after the SIGTERM), a SIGKILL kills it at once.
fn stopped() -> TestResult {
    for method in StartMethod::ALL {
        let child = start(method, "stopped", sleep_long, ())?;
        let pid = nix::unistd::Pid::from_raw(child.pid()?.ok_or("no pid")?.as_raw());
        wait_state(&child, "asleep before SIGSTOP", |s| {
            in_call(s, SLEEPS, None)
        })?;
        kill(pid, Signal::SIGSTOP)?;
        wait_state(&child, "stopped by SIGSTOP", |s| s == ProcessState::Stopped)?;
        ensure!(
            child.is_alive()?,
            "{method:?}: is_alive() false while stopped"
        );
        kill(pid, Signal::SIGCONT)?;
        wait_state(&child, "asleep again after SIGCONT", |s| {
            in_call(s, SLEEPS_AFTER_STOP, None)
        })?;

        kill(pid, Signal::SIGSTOP)?;
        wait_state(&child, "stopped again", |s| s == ProcessState::Stopped)?;
        // `terminate()` sends SIGCONT after SIGTERM (decision 0015): the child acts on it.
        child.terminate()?;
        ensure_eq!((method, join_code(&child)?), (method, -15));

        let child = start(method, "stopped-killed", sleep_long, ())?;
        let pid = nix::unistd::Pid::from_raw(child.pid()?.ok_or("no pid")?.as_raw());
        kill(pid, Signal::SIGSTOP)?;
        wait_state(&child, "stopped", |s| s == ProcessState::Stopped)?;
        kill_and_reap(&child)?;
    }
    proclife::stop_fork_server()?;
    Ok(())
}

fn main() {
    common::run(vec![
        ("pipe_read", pipe_read),
        ("socket_read", socket_read),
        ("sleep", sleep),
        ("std_mutex", std_mutex),
        ("waitpid_own_child", waitpid_own_child),
        ("proclife_primitive", proclife_primitive),
        ("stopped", stopped),
    ]);
}
