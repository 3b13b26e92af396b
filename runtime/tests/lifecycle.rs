//! Every row of the CPython life-cycle table (`docs/reference/cpython-semantics.md` §2), on real
//! processes with closure targets: each operation in each state New, Running, Exited
//! (unobserved and observed), Closed, with the typed error of each refusal, what reaps, and
//! what a closure target does. The observations of the table themselves (values, CPython
//! exception classes and messages) are the scenario corpus `verify/scenarios/cpython-table.json`,
//! run under every start method by `verify/tests/regressions.rs`.

#[macro_use]
extern crate proclife_testkit;
use proclife_testkit as common;

use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::{Gate, TestResult, join_code, readable, settle, sleeper};
use proclife::{
    BlockedOn, Error, Process, ProcessState, Target, TargetResult, active_children,
    current_process, parent_process,
};

/// A started child that has exited but was not observed yet (CPython's Z).
fn exited_unobserved(code: i32) -> Result<Process, Box<dyn std::error::Error>> {
    let mut p = Process::new(move || std::process::exit(code));
    p.start()?;
    settle(&p)?;
    Ok(p)
}

/// A started child that has exited and was reaped (CPython's D).
fn exited_observed(code: i32) -> Result<Process, Box<dyn std::error::Error>> {
    let p = exited_unobserved(code)?;
    ensure_eq!(join_code(&p)?, code);
    Ok(p)
}

/// A running child and the gate that ends it.
fn running() -> Result<(Process, Gate), Box<dyn std::error::Error>> {
    let gate = Gate::new();
    let mut p = Process::new(gate.waiter());
    p.start()?;
    Ok((p, gate))
}

fn finish(p: &Process, mut gate: Gate) -> TestResult {
    gate.open();
    ensure_eq!(join_code(p)?, 0);
    Ok(())
}

fn closed_after_start() -> Result<Process, Box<dyn std::error::Error>> {
    let mut p = exited_observed(0)?;
    p.close()?;
    Ok(p)
}

fn closed_new() -> Result<Process, Box<dyn std::error::Error>> {
    let mut p = Process::new(|| ());
    p.close()?;
    Ok(p)
}

fn start_row() -> TestResult {
    let (mut p, gate) = running()?;
    ensure!(p.pid()?.is_some(), "pid known when start returns");
    ensure_matches!(p.start(), Err(Error::AlreadyStarted));
    finish(&p, gate)?;
    let mut z = exited_unobserved(0)?;
    ensure_matches!(z.start(), Err(Error::AlreadyStarted));
    ensure_matches!(exited_observed(0)?.start(), Err(Error::AlreadyStarted));
    ensure_matches!(closed_new()?.start(), Err(Error::Closed));
    ensure_matches!(closed_after_start()?.start(), Err(Error::Closed));
    Ok(())
}

fn counting_target(counter: &Arc<AtomicUsize>) -> impl FnOnce() + Send + 'static {
    let counter = Arc::clone(counter);
    move || {
        counter.fetch_add(1, Ordering::SeqCst);
    }
}

fn run_row() -> TestResult {
    let counter = Arc::new(AtomicUsize::new(0));
    let mut p = Process::new(counting_target(&counter));
    p.run()?;
    ensure_eq!(counter.load(Ordering::SeqCst), 1);
    ensure_eq!(p.state()?, ProcessState::New);
    // The closure was consumed: a second run and a start do nothing.
    p.run()?;
    ensure_eq!(counter.load(Ordering::SeqCst), 1);

    let (mut r, gate) = running()?;
    ensure_matches!(r.run(), Err(Error::RunAfterStart));
    finish(&r, gate)?;
    ensure_matches!(exited_unobserved(0)?.run(), Err(Error::RunAfterStart));
    ensure_matches!(exited_observed(0)?.run(), Err(Error::RunAfterStart));
    ensure_matches!(closed_after_start()?.run(), Err(Error::RunAfterStart));

    let mut c = Process::new(counting_target(&counter));
    c.close()?;
    c.run()?;
    ensure_eq!(counter.load(Ordering::SeqCst), 2);

    let mut failing = Process::new_fallible(|| Err::<(), _>("no luck"));
    ensure_matches!(failing.run(), Err(Error::Target { .. }));
    Ok(())
}

fn run_then_start_closure_does_nothing() -> TestResult {
    let mut p = Process::new(|| std::process::exit(7));
    // Running `exit(7)` in the caller would end the test: replace it by a harmless run.
    let mut q = Process::new(|| ());
    q.run()?;
    q.start()?;
    ensure_eq!(join_code(&q)?, 0);
    // A closure that was not run keeps its effect in the child.
    p.start()?;
    ensure_eq!(join_code(&p)?, 7);
    Ok(())
}

struct Counter(i32);

impl Target for Counter {
    fn run(&mut self) -> TargetResult {
        self.0 += 1;
        if self.0 >= 2 {
            std::process::exit(self.0 + 40);
        }
        Ok(())
    }
}

fn target_runs_again_in_child() -> TestResult {
    let mut p = Process::from_target(Counter(0));
    p.run()?;
    p.start()?;
    ensure_eq!(join_code(&p)?, 42);
    Ok(())
}

fn is_alive_row() -> TestResult {
    ensure!(!Process::new(|| ()).is_alive()?, "new is not alive");
    let (p, gate) = running()?;
    ensure!(p.is_alive()?, "running is alive");
    finish(&p, gate)?;
    let z = exited_unobserved(0)?;
    ensure!(!z.is_alive()?, "exited is not alive");
    ensure!(common::zombies().is_empty(), "is_alive reaps");
    ensure!(!exited_observed(0)?.is_alive()?, "observed is not alive");
    ensure_matches!(closed_after_start()?.is_alive(), Err(Error::Closed));
    Ok(())
}

fn join_row() -> TestResult {
    ensure_matches!(Process::new(|| ()).join(), Err(Error::JoinNotStarted));
    let mut p = Process::new(|| std::thread::sleep(Duration::from_millis(100)));
    p.start()?;
    p.join()?;
    ensure_eq!(p.exitcode()?, Some(0));
    p.join()?; // any number of times
    let z = exited_unobserved(3)?;
    z.join()?;
    ensure_eq!(z.exitcode()?, Some(3));
    ensure!(common::zombies().is_empty(), "join reaps");
    exited_observed(0)?.join()?;
    ensure_matches!(closed_after_start()?.join(), Err(Error::Closed));
    ensure_matches!(closed_new()?.join(), Err(Error::Closed));
    Ok(())
}

fn join_timeout_row() -> TestResult {
    ensure_matches!(
        Process::new(|| ()).join_timeout(Duration::from_millis(10)),
        Err(Error::JoinNotStarted)
    );
    ensure_matches!(
        Process::new(|| ()).join_timeout_secs(-1.0),
        Err(Error::JoinNotStarted)
    );
    let (p, gate) = running()?;
    // Positive, expires: returns, still running.
    let begin = Instant::now();
    p.join_timeout(Duration::from_millis(50))?;
    ensure!(
        begin.elapsed() >= Duration::from_millis(50),
        "waited the timeout"
    );
    ensure_eq!(p.exitcode()?, None);
    // Zero and negative: at once, still running.
    p.join_timeout(Duration::ZERO)?;
    p.join_timeout_secs(0.0)?;
    p.join_timeout_secs(-1.0)?;
    ensure!(p.is_alive()?, "still running after join(0)");
    finish(&p, gate)?;
    // Positive, in time.
    let mut q = Process::new(|| std::thread::sleep(Duration::from_millis(20)));
    q.start()?;
    q.join_timeout_secs(10.0)?;
    ensure_eq!(q.exitcode()?, Some(0));
    // Exited: zero and negative reap.
    let z = exited_unobserved(4)?;
    z.join_timeout(Duration::ZERO)?;
    ensure_eq!(z.exitcode()?, Some(4));
    let z = exited_unobserved(5)?;
    z.join_timeout_secs(-1.0)?;
    ensure!(common::zombies().is_empty(), "negative join reaps");
    ensure_eq!(z.exitcode()?, Some(5));
    ensure_matches!(
        closed_after_start()?.join_timeout(Duration::ZERO),
        Err(Error::Closed)
    );
    Ok(())
}

fn pid_row() -> TestResult {
    ensure_eq!(Process::new(|| ()).pid()?, None);
    let (p, gate) = running()?;
    let pid = p.pid()?.ok_or("no pid")?;
    ensure!(pid.as_raw() > 0, "positive pid");
    ensure!(
        common::children().contains(&pid.as_raw()),
        "pid is our child"
    );
    finish(&p, gate)?;
    ensure_eq!(p.pid()?, Some(pid)); // kept after exit
    let z = exited_unobserved(0)?;
    ensure!(z.pid()?.is_some(), "zombie pid");
    z.join()?;
    ensure_matches!(closed_after_start()?.pid(), Err(Error::Closed));
    Ok(())
}

fn exitcode_row() -> TestResult {
    ensure_eq!(Process::new(|| ()).exitcode()?, None);
    let (p, gate) = running()?;
    ensure_eq!(p.exitcode()?, None);
    finish(&p, gate)?;
    let z = exited_unobserved(9)?;
    ensure_eq!(z.exitcode()?, Some(9));
    ensure!(common::zombies().is_empty(), "exitcode reaps");
    ensure_eq!(z.exitcode()?, Some(9));
    ensure_matches!(closed_after_start()?.exitcode(), Err(Error::Closed));
    Ok(())
}

fn terminate_row() -> TestResult {
    ensure_matches!(
        Process::new(|| ()).terminate(),
        Err(Error::TerminateNotStarted)
    );
    let mut p = Process::new(sleeper());
    p.start()?;
    p.terminate()?;
    ensure_eq!(join_code(&p)?, -15);
    let z = exited_unobserved(0)?;
    z.terminate()?;
    ensure_eq!(join_code(&z)?, 0);
    let d = exited_observed(0)?;
    d.terminate()?;
    ensure_eq!(d.exitcode()?, Some(0));
    ensure_matches!(closed_after_start()?.terminate(), Err(Error::Closed));
    Ok(())
}

fn kill_row() -> TestResult {
    ensure_matches!(Process::new(|| ()).kill(), Err(Error::KillNotStarted));
    let mut p = Process::new(sleeper());
    p.start()?;
    p.kill()?;
    ensure_eq!(join_code(&p)?, -9);
    let z = exited_unobserved(2)?;
    z.kill()?;
    ensure_eq!(join_code(&z)?, 2);
    let d = exited_observed(0)?;
    d.kill()?;
    ensure_eq!(d.exitcode()?, Some(0));
    ensure_matches!(closed_after_start()?.kill(), Err(Error::Closed));
    Ok(())
}

fn close_row() -> TestResult {
    let mut n = Process::new(|| ());
    n.close()?;
    ensure_eq!(n.state()?, ProcessState::Closed);
    n.close()?; // idempotent
    let (mut p, gate) = running()?;
    ensure_matches!(p.close(), Err(Error::StillRunning));
    ensure!(p.is_alive()?, "close changed nothing");
    finish(&p, gate)?;
    p.close()?;
    let mut z = exited_unobserved(0)?;
    z.close()?;
    ensure!(common::zombies().is_empty(), "close reaps");
    let mut d = exited_observed(0)?;
    d.close()?;
    d.close()?;
    // Everything but name, daemon and run refuses.
    ensure_matches!(d.sentinel(), Err(Error::Closed));
    ensure_eq!(d.name(), d.name().to_owned());
    Ok(())
}

fn daemon_row() -> TestResult {
    let mut n = Process::new(|| ());
    ensure!(!n.daemon(), "default is the creator's flag (false in main)");
    n.set_daemon(true)?;
    ensure!(n.daemon(), "set on new");
    let (mut p, gate) = running()?;
    ensure_matches!(p.set_daemon(true), Err(Error::DaemonAfterStart));
    finish(&p, gate)?;
    ensure_matches!(p.set_daemon(true), Err(Error::DaemonAfterStart));
    let mut z = exited_unobserved(0)?;
    ensure_matches!(z.set_daemon(true), Err(Error::DaemonAfterStart));
    z.join()?;
    let mut c = closed_after_start()?;
    c.set_daemon(true)?;
    ensure!(c.daemon(), "allowed after close");
    Ok(())
}

fn name_row() -> TestResult {
    let a = Process::new(|| ());
    let b = Process::new(|| ());
    let na: u64 = a
        .name()
        .strip_prefix("Process-")
        .ok_or("default name")?
        .parse()?;
    let nb: u64 = b
        .name()
        .strip_prefix("Process-")
        .ok_or("default name")?
        .parse()?;
    ensure_eq!(nb, na + 1);
    let named = Process::builder().name("worker").target(|| ());
    ensure_eq!(named.name(), "worker");
    let (mut p, gate) = running()?;
    p.set_name("renamed");
    ensure_eq!(p.name(), "renamed");
    finish(&p, gate)?;
    let mut c = closed_after_start()?;
    c.set_name("after-close");
    ensure_eq!(c.name(), "after-close");
    Ok(())
}

fn sentinel_row() -> TestResult {
    let new = Process::new(|| ());
    ensure_matches!(new.sentinel(), Err(Error::SentinelNotStarted));
    let (p, gate) = running()?;
    ensure!(
        !readable(p.sentinel()?.as_raw_fd(), 0),
        "not readable while running"
    );
    let fd = p.sentinel()?.as_raw_fd();
    finish(&p, gate)?;
    ensure!(
        readable(p.sentinel()?.as_raw_fd(), 0),
        "readable after exit"
    );
    ensure_eq!(p.sentinel()?.as_raw_fd(), fd);
    let z = exited_unobserved(0)?;
    ensure!(
        readable(z.sentinel()?.as_raw_fd(), 0),
        "readable as a zombie"
    );
    z.join()?;
    let closed = closed_after_start()?;
    ensure_matches!(closed.sentinel(), Err(Error::Closed));
    Ok(())
}

fn active_children_row() -> TestResult {
    let n = Process::new(|| ());
    ensure_eq!(n.pid()?, None);
    let (p, gate) = running()?;
    let pid = p.pid()?.ok_or("no pid")?;
    ensure!(active_children()?.contains(&pid), "running child is active");
    finish(&p, gate)?;
    ensure!(
        !active_children()?.contains(&pid),
        "joined child is not active"
    );
    let z = exited_unobserved(0)?;
    let zpid = z.pid()?.ok_or("no pid")?;
    ensure!(
        !active_children()?.contains(&zpid),
        "the sweep drops exited children"
    );
    ensure!(common::zombies().is_empty(), "the sweep reaps");
    ensure_eq!(z.exitcode()?, Some(0));
    Ok(())
}

fn state_row() -> TestResult {
    let mut p = Process::new(|| std::process::exit(6));
    ensure_eq!(p.state()?, ProcessState::New);
    p.start()?;
    settle(&p)?;
    ensure_eq!(p.state()?, ProcessState::Terminated(6));
    p.close()?;
    ensure_eq!(p.state()?, ProcessState::Closed);
    let (r, gate) = running()?;
    ensure_eq!(r.state()?, ProcessState::Running);
    finish(&r, gate)?;
    ensure_eq!(r.state()?, ProcessState::Terminated(0));
    Ok(())
}

fn blocked_on_join_of_grandchild() -> TestResult {
    let mut gate = Gate::new();
    let read = gate.read_fd();
    let mut p = Process::new_fallible(move || -> Result<(), Error> {
        // Drop the inherited write end, or the gate could never open for the grandchild.
        common::close_all_but(read);
        let mut grandchild = Process::new(move || common::wait_gate(read));
        grandchild.start()?;
        grandchild.join()
    });
    p.start()?;
    common::wait_until(Duration::from_secs(10), || {
        p.state().ok() == Some(ProcessState::Blocked(BlockedOn::Join))
    })?;
    ensure!(p.is_alive()?, "a blocked process is alive");
    gate.open();
    ensure_eq!(join_code(&p)?, 0);
    Ok(())
}

fn daemonic_processes_have_no_children() -> TestResult {
    let mut p = Process::builder().daemon(true).target(|| {
        let mut grandchild = Process::new(|| ());
        let code = match grandchild.start() {
            Err(error @ Error::DaemonicParent) => match error.python() {
                Some(("AssertionError", msg))
                    if msg == "daemonic processes are not allowed to have children" =>
                {
                    0
                }
                _ => 2,
            },
            _ => 3,
        };
        std::process::exit(code)
    });
    p.start()?;
    ensure_eq!(join_code(&p)?, 0);
    Ok(())
}

fn children_know_themselves() -> TestResult {
    let me = current_process();
    ensure_eq!(me.name(), "MainProcess");
    ensure!(parent_process().is_none(), "the main process has no parent");
    let main_pid = me.pid();
    let mut p = Process::new(move || {
        let me = current_process();
        let Some(parent) = parent_process() else {
            std::process::exit(10)
        };
        if parent.pid() != main_pid || parent.name() != "MainProcess" || !parent.is_alive() {
            std::process::exit(11);
        }
        let prefix = me.name().to_owned();
        let grandchild = Process::new(|| ());
        let expected = format!("{prefix}:1");
        if grandchild.name() != expected {
            std::process::exit(12);
        }
        std::process::exit(0)
    });
    p.start()?;
    ensure_eq!(join_code(&p)?, 0);
    Ok(())
}

fn only_the_parent_joins() -> TestResult {
    let (sibling, gate) = running()?;
    let sibling = Arc::new(sibling);
    let inherited = Arc::clone(&sibling);
    let mut fresh = Process::new(|| ());
    let mut p = Process::new(move || {
        let join = inherited.join().err().and_then(|e| e.python());
        let alive = inherited.is_alive().err().and_then(|e| e.python());
        let start = fresh.start().err().and_then(|e| e.python());
        let ok = join.map(|(_, m)| m).as_deref() == Some("can only join a child process")
            && alive.map(|(_, m)| m).as_deref() == Some("can only test a child process")
            && start.map(|(_, m)| m).as_deref()
                == Some("can only start a process object created by current process");
        // No parent check on exitcode, as in CPython: it cannot reap, so it reports None.
        let code = inherited.exitcode().ok().flatten();
        std::process::exit(if ok && code.is_none() { 0 } else { 1 })
    });
    p.start()?;
    ensure_eq!(join_code(&p)?, 0);
    let sibling = Arc::try_unwrap(sibling).map_err(|_| "sibling still shared")?;
    finish(&sibling, gate)?;
    Ok(())
}

fn threaded_parent_is_refused() -> TestResult {
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let thread = std::thread::spawn(move || rx.recv().ok());
    let mut p = Process::new(|| ());
    let refused = p.start();
    tx.send(()).map_err(|e| e.to_string())?;
    thread.join().map_err(|_| "thread panicked")?;
    common::wait_single_threaded()?;
    let error = refused
        .err()
        .ok_or("fork of a threaded parent was allowed")?;
    ensure_matches!(&error, Error::ThreadedFork { threads: 2 });
    let message = error.to_string();
    ensure!(
        message.contains("spawn") && message.contains("forkserver"),
        "the error names the alternatives: {message}"
    );
    ensure_eq!(p.state()?, ProcessState::New);
    p.start()?;
    ensure_eq!(join_code(&p)?, 0);
    Ok(())
}

fn threaded_parent_opt_in() -> TestResult {
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let thread = std::thread::spawn(move || rx.recv().ok());
    let mut p = Process::new(|| std::process::exit(4));
    // SAFETY: the other thread only waits on a channel; it holds no lock the child takes.
    let started = unsafe { p.start_in_threaded_parent() };
    tx.send(()).map_err(|e| e.to_string())?;
    thread.join().map_err(|_| "thread panicked")?;
    started?;
    ensure_eq!(join_code(&p)?, 4);
    Ok(())
}

fn main() {
    common::run(vec![
        ("start_row", start_row),
        ("run_row", run_row),
        (
            "run_then_start_closure_does_nothing",
            run_then_start_closure_does_nothing,
        ),
        ("target_runs_again_in_child", target_runs_again_in_child),
        ("is_alive_row", is_alive_row),
        ("join_row", join_row),
        ("join_timeout_row", join_timeout_row),
        ("pid_row", pid_row),
        ("exitcode_row", exitcode_row),
        ("terminate_row", terminate_row),
        ("kill_row", kill_row),
        ("close_row", close_row),
        ("daemon_row", daemon_row),
        ("name_row", name_row),
        ("sentinel_row", sentinel_row),
        ("active_children_row", active_children_row),
        ("state_row", state_row),
        (
            "blocked_on_join_of_grandchild",
            blocked_on_join_of_grandchild,
        ),
        (
            "daemonic_processes_have_no_children",
            daemonic_processes_have_no_children,
        ),
        ("children_know_themselves", children_know_themselves),
        ("only_the_parent_joins", only_the_parent_joins),
        ("threaded_parent_is_refused", threaded_parent_is_refused),
        ("threaded_parent_opt_in", threaded_parent_opt_in),
    ]);
}
