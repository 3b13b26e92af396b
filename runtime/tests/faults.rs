//! Catalogue items from `docs/reference/faults.md`: races, leaks, failure paths and bad input
//! (T02, T04, T05, T07, T11, T13, T15, T27, T29, T30, T33, T34, T38).
//!
//! Scenarios that change limits, credentials or namespaces run in a sacrificial child
//! (`proclife_testkit::helper`) that reports its steps and, on failure, what was expected and
//! what happened.

#[macro_use]
extern crate proclife_testkit;
use proclife_testkit as common;

use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::helper::{Outcome, Report, Stop, in_helper};
use common::{Gate, TestResult, join_code, settle, sleeper};
use nix::errno::Errno;
use nix::sys::resource::{Resource, getrlimit, setrlimit};
use proclife::{Error, Process, ProcessState, active_children};

/// A tiny deterministic generator for delays.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn spin_for(micros: u64) {
    let end = Instant::now() + Duration::from_micros(micros);
    while Instant::now() < end {
        std::hint::spin_loop();
    }
}

/// T02: 4 joiners and 4 pollers on one handle, 1000 rounds; the child exits after 0–5 ms.
fn t02_concurrent_join_and_poll() -> TestResult {
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
    for round in 0..1000 {
        let delay = rng.next() % 5_000;
        let code = (round % 200) + 1;
        let mut p = Process::new(move || {
            spin_for(delay);
            std::process::exit(code)
        });
        p.start().map_err(|e| {
            format!(
                "round {round}: expected the child to start; {e} (threads besides this \
                     one: {:?})",
                common::procfs::other_thread_names()
            )
        })?;
        let inconsistent = AtomicBool::new(false);
        let outcomes: Vec<Option<i32>> = std::thread::scope(|scope| {
            let joiners: Vec<_> = (0..4)
                .map(|_| {
                    scope.spawn(|| {
                        p.join().ok()?;
                        p.exitcode().ok().flatten()
                    })
                })
                .collect();
            for _ in 0..4 {
                scope.spawn(|| {
                    loop {
                        let alive = p.is_alive();
                        let code = p.exitcode();
                        match (alive, code) {
                            (Ok(false), Ok(None)) | (Err(_), _) | (_, Err(_)) => {
                                inconsistent.store(true, Ordering::SeqCst);
                                return;
                            }
                            (_, Ok(Some(c))) => {
                                // Once set, the code never changes and the child is dead.
                                if p.exitcode().ok().flatten() != Some(c)
                                    || p.is_alive().ok() != Some(false)
                                {
                                    inconsistent.store(true, Ordering::SeqCst);
                                }
                                return;
                            }
                            (Ok(true), Ok(None)) => std::hint::spin_loop(),
                        }
                    }
                });
            }
            joiners
                .into_iter()
                .map(|j| j.join().ok().flatten())
                .collect()
        });
        common::wait_single_threaded()?;
        ensure!(
            !inconsistent.load(Ordering::SeqCst),
            "round {round}: a poller saw an exited child without exit code"
        );
        ensure!(
            outcomes.iter().all(|o| *o == Some(code)),
            "round {round}: joiners saw {outcomes:?}, expected {code}"
        );
        ensure_eq!(p.exitcode()?, Some(code));
    }
    Ok(())
}

/// T04: a recycled pid is never signalled; a stale handle's terminate/kill is a no-op; and
/// [`RACING_KILLS`] kills racing the exit of children that exit at once each leave exactly
/// 0 or -SIGKILL.
fn t04_pid_reuse() -> TestResult {
    in_helper("t04", |report| {
        if let Err(errno) = nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWPID) {
            return Err(Stop::Skip(format!(
                "unshare(CLONE_NEWPID) refused: {errno}"
            )));
        }
        // The next child is the namespace's init; the scenario runs inside it and reports
        // its steps and its outcome itself. Not a daemon: a daemon checks `getppid()`
        // against its parent, and the parent of a namespace's init is outside it (0). It
        // asks for SIGKILL when the helper dies instead, so the namespace ends with it.
        let mut init = Process::new(move || {
            let _ = nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL);
            let line = match pid_reuse_in_namespace(report) {
                Ok(()) => "\nP".to_owned(),
                Err(Stop::Skip(reason)) => format!("\nS{reason}"),
                Err(Stop::Fail(message)) => format!("\nF{message}"),
            };
            common::child::write_all(report.fd(), line.as_bytes());
            std::process::exit(0)
        });
        init.start()?;
        // The work's bound is the parent's: no step for QUIET.
        init.join()?;
        match init.exitcode()? {
            // The report is written; the helper adds none.
            Some(0) => std::process::exit(0),
            other => Err(Stop::Fail(format!(
                "expected the namespace's init to report and exit with 0; it ended with \
                 {other:?} without a report"
            ))),
        }
    })
}

fn set_last_pid(pid: i32) -> Outcome {
    std::fs::write("/proc/sys/kernel/ns_last_pid", (pid - 1).to_string())
        .map_err(|e| Stop::Skip(format!("cannot write ns_last_pid: {e}")))
}

/// Joins a child that should exit at once inside the scenario.
fn exit_code(p: &Process) -> Result<i32, Stop> {
    join_code(p).map_err(Stop::from)
}

fn pid_reuse_in_namespace(report: Report) -> Outcome {
    // (a) The runtime reaped the child itself.
    let mut c = Process::new(|| ());
    c.start()?;
    ensure_eq!(exit_code(&c)?, 0);
    let old = c.pid()?.ok_or("a joined child has no pid")?;
    set_last_pid(old.as_raw())?;
    let mut victim = Process::new(sleeper());
    victim.start()?;
    ensure_eq!(victim.pid()?, Some(old));
    c.terminate()?;
    c.kill()?;
    std::thread::sleep(Duration::from_millis(50));
    ensure!(
        victim.is_alive()?,
        "expected the victim with the recycled pid {old:?} to be untouched by the stale handle's \
         terminate/kill; it is not alive"
    );
    ensure_eq!(c.exitcode()?, Some(0));
    victim.kill()?;
    ensure_eq!(exit_code(&victim)?, -9);
    report.step();
    // (b) A foreign waitpid(-1) stole the child's status.
    let mut stolen = Process::new(|| std::process::exit(5));
    stolen.start()?;
    settle(&stolen)?;
    let old = stolen.pid()?.ok_or("a settled child has no pid")?;
    // SAFETY: a plain waitpid(-1) with a null status pointer: the foreign reaper.
    let reaped = unsafe { libc::waitpid(-1, std::ptr::null_mut(), 0) };
    ensure_eq!(reaped, old.as_raw());
    set_last_pid(old.as_raw())?;
    let mut victim = Process::new(sleeper());
    victim.start()?;
    ensure_eq!(victim.pid()?, Some(old));
    stolen.terminate()?;
    stolen.kill()?;
    std::thread::sleep(Duration::from_millis(50));
    ensure!(
        victim.is_alive()?,
        "expected the victim with the stolen child's pid {old:?} to be untouched; it is not alive"
    );
    ensure_matches!(stolen.exitcode(), Err(Error::StatusLost { .. }));
    victim.kill()?;
    ensure_eq!(exit_code(&victim)?, -9);
    report.step();
    // Racing kills against children that exit at once: the status is 0 or -SIGKILL.
    // The offsets cover the child's whole life (it exits within a few hundred microseconds
    // of `start` returning), so both outcomes occur.
    let mut rng = XorShift(7);
    let (mut exited, mut killed) = (0u32, 0u32);
    for i in 0..RACING_KILLS {
        let mut p = Process::new(|| ());
        p.start()?;
        spin_for(rng.next() % 300);
        p.kill()?;
        match exit_code(&p)? {
            0 => exited += 1,
            -9 => killed += 1,
            other => {
                return Err(Stop::Fail(format!(
                    "racing kill #{i}: expected exit code 0 or -9, got {other}"
                )));
            }
        }
        if i % 100 == 0 {
            report.step();
        }
    }
    eprintln!("t04: {RACING_KILLS} racing kills: {exited} exited first, {killed} killed");
    Ok(())
}

/// T04's racing loop: `kill()` at a random offset after `start()` against a child that
/// exits at once, this many times (the catalogue's 10⁴).
const RACING_KILLS: u32 = 10_000;

/// T05: misuse around the life cycle gives typed errors with CPython's messages.
fn t05_api_misuse() -> TestResult {
    let n = Process::new(|| ());
    ensure_matches!(n.kill(), Err(Error::KillNotStarted));
    ensure_matches!(n.terminate(), Err(Error::TerminateNotStarted));
    ensure_matches!(n.join(), Err(Error::JoinNotStarted));
    ensure_eq!(n.is_alive()?, false);
    ensure_matches!(n.send_signal(libc::SIGTERM), Err(Error::KillNotStarted));
    let mut p = Process::new(sleeper());
    p.start()?;
    ensure_matches!(p.start(), Err(Error::AlreadyStarted));
    ensure_matches!(p.close(), Err(Error::StillRunning));
    p.terminate()?;
    ensure_eq!(join_code(&p)?, -15);
    ensure_matches!(p.start(), Err(Error::AlreadyStarted));
    p.close()?;
    let closed: [(&str, Result<(), Error>); 12] = [
        ("start", p.start()),
        ("is_alive", p.is_alive().map(drop)),
        ("join", p.join()),
        ("join_timeout", p.join_timeout(Duration::ZERO)),
        ("join_timeout_secs", p.join_timeout_secs(1.0)),
        ("pid", p.pid().map(drop)),
        ("exitcode", p.exitcode().map(drop)),
        ("terminate", p.terminate()),
        ("kill", p.kill()),
        ("send_signal", p.send_signal(libc::SIGTERM)),
        ("sentinel", p.sentinel().map(drop)),
        ("stop", p.stop(Duration::ZERO).map(drop)),
    ];
    for (op, result) in closed {
        let error = result.err().ok_or(format!("{op} after close succeeded"))?;
        ensure_eq!(
            (op, error.python()),
            (
                op,
                Some(("ValueError", "process object is closed".to_owned()))
            )
        );
    }
    ensure_eq!(p.state()?, ProcessState::Closed);
    p.close()?;
    Ok(())
}

/// T07's storm: short children started and dropped without joining (the catalogue's 10⁴).
const DROPPED_HANDLES: usize = 10_000;

/// T07: [`DROPPED_HANDLES`] short children dropped without joining (every other one a
/// daemon) leave no zombie past the next runtime call, daemons are killed on drop, and a
/// foreign child's status is left for its owner.
fn t07_dropped_handles() -> TestResult {
    let mut foreign = std::process::Command::new("true").spawn()?;
    let mut pids = Vec::with_capacity(DROPPED_HANDLES);
    for i in 0..DROPPED_HANDLES {
        let mut p = Process::builder().daemon(i % 2 == 0).target(|| ());
        p.start()?;
        pids.push(p.pid()?.ok_or("no pid")?.as_raw());
    }
    // Running handles dropped: a daemon is killed at once, a non-daemon runs on.
    let mut gate = Gate::new();
    let mut daemon = Process::builder().daemon(true).target(gate.waiter());
    daemon.start()?;
    let mut worker = Process::new(gate.waiter());
    worker.start()?;
    let worker_pid = worker.pid()?.ok_or("no pid")?.as_raw();
    let daemon_pid = daemon.pid()?.ok_or("no pid")?.as_raw();
    drop(daemon);
    drop(worker);
    ensure!(
        !common::children().contains(&daemon_pid),
        "a dropped daemon is killed and reaped at once"
    );
    ensure!(
        proc_state(worker_pid).is_some_and(|state| state != 'Z'),
        "a dropped non-daemon runs on"
    );
    gate.open();
    // Wait until every child has exited (they are zombies or reaped), then make one call.
    // Work: watched by progress (the number of children still running goes down).
    common::wait::Progress::new("t07: dropped children exiting").wait_for(
        "every dropped child to exit",
        || {
            let zombies = common::zombies();
            common::children()
                .iter()
                .filter(|pid| !zombies.contains(pid))
                .count()
        },
        |running| *running == 0,
    )?;
    ensure!(
        common::zombies().contains(&worker_pid),
        "the orphaned worker is a zombie until the next runtime call"
    );
    ensure!(active_children()?.is_empty(), "no active child is left");
    let left = common::children();
    ensure!(
        !pids.iter().any(|pid| left.contains(pid)),
        "a dropped child is still ours after the next runtime call"
    );
    // The foreign child's status was left for its owner.
    ensure!(
        foreign.wait()?.success(),
        "the foreign child's status is intact"
    );
    ensure_eq!(common::zombies(), Vec::<i32>::new());
    Ok(())
}

/// Runs `f` (which starts a child) with `handler` as this process's SIGTERM disposition,
/// so the child inherits it from the fork, and restores the old disposition afterwards.
fn with_sigterm<T>(handler: libc::sighandler_t, f: impl FnOnce() -> T) -> T {
    // SAFETY: `handler` is SIG_IGN, SIG_DFL or an `extern "C"` handler that only makes
    // async-signal-safe calls; nothing sends SIGTERM to this process meanwhile.
    let old = unsafe { libc::signal(libc::SIGTERM, handler) };
    let result = f();
    // SAFETY: `old` was returned by `signal` for SIGTERM.
    unsafe { libc::signal(libc::SIGTERM, old) };
    result
}

extern "C" fn exit_5_after_cleanup(_: libc::c_int) {
    std::thread::sleep(Duration::from_millis(100));
    // SAFETY: `_exit` is async-signal-safe.
    unsafe { libc::_exit(5) };
}

/// T11: terminate sends SIGCONT too, and `stop` escalates to SIGKILL.
fn t11_terminate_and_escalate() -> TestResult {
    // (a) A child that ignores SIGTERM (from the moment it exists): stop() escalates.
    let mut stubborn = Process::new(sleeper());
    with_sigterm(libc::SIG_IGN, || stubborn.start())?;
    ensure_eq!(stubborn.stop(Duration::from_millis(200))?, -9);
    // (b) A stopped child: terminate's SIGCONT lets the SIGTERM act.
    let mut stopped = Process::new(|| {
        common::close_all_but(2);
        let _ = nix::sys::signal::raise(nix::sys::signal::Signal::SIGSTOP);
        std::thread::sleep(Duration::from_secs(60));
    });
    stopped.start()?;
    let pid = stopped.pid()?.ok_or("no pid")?.as_raw();
    common::wait_until(Duration::from_secs(10), || proc_state(pid) == Some('T'))?;
    stopped.terminate()?;
    stopped.join_timeout(Duration::from_secs(3))?;
    ensure_eq!(stopped.exitcode()?, Some(-15));
    // (c) A slow cleanup that finishes within the grace period keeps its own code.
    let mut slow = Process::new(sleeper());
    let handler = exit_5_after_cleanup as *const () as libc::sighandler_t;
    with_sigterm(handler, || slow.start())?;
    ensure_eq!(slow.stop(Duration::from_secs(5))?, 5);
    Ok(())
}

fn proc_state(pid: i32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().next()?.chars().next()
}

/// T11, exit policy: a parent that returns stops its 5 daemons in reverse start order and
/// joins its 5 other children.
fn t11_exit_policy_on_return() -> TestResult {
    exit_policy(false)
}

/// T11, exit policy through `exit()`: the runtime's `atexit` hook applies the same rule.
fn t11_exit_policy_on_exit() -> TestResult {
    exit_policy(true)
}

fn exit_policy(call_exit: bool) -> TestResult {
    let (read, write) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
    let w = write.as_raw_fd();
    let mut parent = Process::new(move || {
        common::close_all_but(w);
        let mut children = Vec::new();
        DAEMON_FD.store(w, Ordering::SeqCst);
        for i in 0..5u8 {
            // Each daemon inherits its index and the handler from the fork.
            DAEMON_INDEX.store(i, Ordering::SeqCst);
            let mut d = Process::builder().daemon(true).target(|| {
                std::thread::sleep(Duration::from_secs(60));
            });
            let handler = report_and_exit as *const () as libc::sighandler_t;
            if with_sigterm(handler, || d.start()).is_err() {
                std::process::exit(2);
            }
            children.push(d);
        }
        for _ in 0..5 {
            let mut n = Process::new(move || {
                std::thread::sleep(Duration::from_millis(300));
                write_byte(w, b'n');
            });
            if n.start().is_err() {
                std::process::exit(3);
            }
            children.push(n);
        }
        // Leaving with the handles alive: the exit policy must handle them.
        std::mem::forget(children);
        if call_exit {
            std::process::exit(0);
        }
    });
    parent.start()?;
    drop(write);
    ensure_eq!(join_code(&parent)?, 0);
    let mut out = Vec::new();
    let mut buf = [0u8; 64];
    loop {
        let n = nix::unistd::read(&read, &mut buf)?;
        if n == 0 {
            break;
        }
        out.extend_from_slice(&buf[..n]);
    }
    let daemons: Vec<u8> = out.iter().copied().filter(u8::is_ascii_digit).collect();
    ensure_eq!(String::from_utf8_lossy(&daemons), "43210");
    ensure_eq!(out.iter().filter(|b| **b == b'n').count(), 5);
    Ok(())
}

fn write_byte(fd: i32, byte: u8) {
    // SAFETY: `fd` is open in this process; one valid byte is written.
    unsafe { libc::write(fd, (&raw const byte).cast(), 1) };
}

static DAEMON_FD: std::sync::atomic::AtomicI32 = std::sync::atomic::AtomicI32::new(-1);
static DAEMON_INDEX: std::sync::atomic::AtomicU8 = std::sync::atomic::AtomicU8::new(0);

/// A daemon's SIGTERM handler: reports the daemon's index, then exits.
extern "C" fn report_and_exit(_: libc::c_int) {
    let fd = DAEMON_FD.load(Ordering::SeqCst);
    let byte = b'0' + DAEMON_INDEX.load(Ordering::SeqCst);
    write_byte(fd, byte);
    // SAFETY: `_exit` is async-signal-safe.
    unsafe { libc::_exit(0) };
}

/// T27: when the parent is SIGKILLed its daemon children die too; others are orphaned.
fn t27_daemons_die_with_their_parent() -> TestResult {
    common::child::as_subreaper(daemons_die_with_their_parent)
}

fn daemons_die_with_their_parent() -> TestResult {
    let (read, write) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
    let w = write.as_raw_fd();
    let mut parent = Process::new(move || {
        common::close_all_but(w);
        let mut daemon = Process::builder().daemon(true).target(sleeper());
        let mut other = Process::new(sleeper());
        if daemon.start().is_err() || other.start().is_err() {
            std::process::exit(2);
        }
        for p in [&daemon, &other] {
            let pid = p.pid().ok().flatten().map_or(0, |p| p.as_raw());
            for byte in pid.to_le_bytes() {
                write_byte(w, byte);
            }
        }
        let _ = nix::sys::signal::raise(nix::sys::signal::Signal::SIGKILL);
    });
    parent.start()?;
    drop(write);
    let mut bytes = [0u8; 8];
    let mut got = 0;
    while got < 8 {
        let n = nix::unistd::read(&read, &mut bytes[got..])?;
        ensure!(n > 0, "the parent died before reporting its children");
        got += n;
    }
    ensure_eq!(join_code(&parent)?, -9);
    let daemon = i32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
    let other = i32::from_le_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]);
    // Both orphans were re-parented to this process (a subreaper): reap them by pidfd.
    let daemon_code = common::child::reap_adopted(daemon, false)?;
    ensure_eq!(daemon_code, -9);
    ensure_eq!(proc_state(other).is_some(), true);
    let other_code = common::child::reap_adopted(other, true)?;
    ensure_eq!(other_code, -9);
    Ok(())
}

/// T13: create → start → join → close leaves no fd behind, over many rounds.
fn t13_zero_fd_delta() -> TestResult {
    let cycle = || -> TestResult {
        let mut p = Process::new(|| ());
        p.start()?;
        ensure_eq!(join_code(&p)?, 0);
        p.close()?;
        Ok(())
    };
    for _ in 0..3 {
        cycle()?;
    }
    let before = common::fd_snapshot();
    for _ in 0..1000 {
        cycle()?;
    }
    ensure_eq!(common::fd_snapshot(), before);
    // Dropping instead of closing leaves nothing either.
    for _ in 0..100 {
        let mut p = Process::new(|| ());
        p.start()?;
        p.join()?;
    }
    ensure_eq!(common::fd_snapshot(), before);
    Ok(())
}

/// T13, ENOMEM: when the status slots cannot be mapped, `start` fails cleanly and works
/// again once memory is available.
///
/// Forked children take their slots from a region of shared memory that a process reserves
/// at its first fork start (decision 0023). The helper is a forked child, so its pool is
/// fresh and its first start must reserve a region: with the address space limited to its
/// current size, that `mmap` fails.
fn t13_enomem() -> TestResult {
    in_helper("t13-enomem", |_| {
        // Warm up the heap, so that the allocations `start` makes before the `mmap` are
        // served from it already (64 KiB, below malloc's threshold for a mapping of its own,
        // stays in the heap once freed).
        drop(std::hint::black_box(vec![1u8; 64 * 1024]));
        let (soft, hard) = getrlimit(Resource::RLIMIT_AS)?;
        let size = vm_size().ok_or("no VmSize in /proc/self/status")?;
        let before = common::fd_snapshot();
        let mut p = Process::new(|| ());
        setrlimit(Resource::RLIMIT_AS, size, hard)?;
        let result = p.start();
        setrlimit(Resource::RLIMIT_AS, soft, hard)?;
        ensure_matches!(
            result,
            Err(Error::Os {
                call: "mmap",
                errno: Errno::ENOMEM,
            })
        );
        ensure_eq!(common::fd_snapshot(), before);
        ensure_eq!(p.state()?, ProcessState::New);
        ensure_eq!(common::children(), Vec::<i32>::new());
        p.start()?;
        ensure_eq!(exit_code(&p)?, 0);
        Ok(())
    })
}

/// The address-space size of this process, from `/proc/self/status`.
fn vm_size() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmSize:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// T15: rounds of children blocked on one `Event` and released at once (the catalogue's 10).
const STORM_ROUNDS: usize = 10;
/// T15: children per round (the catalogue's 1000).
const STORM_CHILDREN: usize = 1000;
/// T15: sequential start/join cycles after the storms (the catalogue's 10⁴).
const SEQUENTIAL_CYCLES: usize = 10_000;

/// T15: [`STORM_ROUNDS`] rounds of [`STORM_CHILDREN`] children blocked on one `Event` and
/// released at once, then [`SEQUENTIAL_CYCLES`] sequential start/join cycles. Each child
/// exits with a code of its own, so every handle is seen to collect its own child's status,
/// once: a second join and a later `exitcode()` give the same code, and no zombie remains.
fn t15_no_zombies_after_storms() -> TestResult {
    for round in 0..STORM_ROUNDS {
        let event = std::sync::Arc::new(proclife::sync::Event::new()?);
        let mut handles = Vec::with_capacity(STORM_CHILDREN);
        for i in 0..STORM_CHILDREN {
            let code = storm_code(i);
            let event = std::sync::Arc::clone(&event);
            let mut p = Process::new(move || {
                common::close_all_but(2);
                // The mapping outlives its fd; a child whose parent is gone ends by itself.
                let released = event.wait(Some(Duration::from_secs(60)));
                // Exit before `event` is dropped: its fd was closed above.
                std::process::exit(if matches!(released, Ok(true)) {
                    code
                } else {
                    255
                })
            });
            p.start()?;
            handles.push(p);
        }
        ensure_eq!(active_children()?.len(), STORM_CHILDREN);
        event.set();
        let mut collected = 0;
        // 1000 exits at once are work: the bound is no exit for QUIET, not a total.
        let mut progress = common::wait::Progress::new(format!("t15 round {round}"));
        for (i, p) in handles.iter().enumerate() {
            ensure_eq!(
                (round, i, progress.join_code(p)?),
                (round, i, storm_code(i))
            );
            collected += 1;
        }
        ensure_eq!(collected, STORM_CHILDREN);
        for (i, p) in handles.iter().enumerate() {
            p.join()?;
            ensure_eq!((round, i, p.exitcode()?), (round, i, Some(storm_code(i))));
        }
        ensure_eq!(common::zombies(), Vec::<i32>::new());
        ensure_eq!(common::children(), Vec::<i32>::new());
    }
    for i in 0..SEQUENTIAL_CYCLES {
        let code = storm_code(i);
        let mut p = Process::new(move || std::process::exit(code));
        p.start()?;
        ensure_eq!((i, join_code(&p)?), (i, code));
    }
    ensure_eq!(common::zombies(), Vec::<i32>::new());
    Ok(())
}

/// The exit code of the `i`th child of a T15 storm: 0 to 199.
fn storm_code(i: usize) -> i32 {
    (i % 200) as i32
}

/// T29: `fork` fails with EAGAIN at the process limit; the handle stays New, nothing leaks,
/// and it starts once the limit is raised.
fn t29_fork_eagain() -> TestResult {
    in_helper("t29", |_| {
        // An unprivileged uid of our own, so that RLIMIT_NPROC binds.
        let uid = 40_000 + std::process::id() % 20_000;
        let gid = nix::unistd::Gid::from_raw(uid);
        let user = nix::unistd::Uid::from_raw(uid);
        if let Err(errno) = nix::unistd::setresgid(gid, gid, gid)
            .and_then(|()| nix::unistd::setresuid(user, user, user))
        {
            return Err(Stop::Skip(format!("cannot change to uid {uid}: {errno}")));
        }
        let (_, hard) = getrlimit(Resource::RLIMIT_NPROC)?;
        // This process counts as one: two children fit, the third start fails.
        setrlimit(Resource::RLIMIT_NPROC, 3, hard)?;
        let gate = Gate::new();
        let mut started = Vec::new();
        let mut failed = Vec::new();
        for i in 0..10 {
            let mut p = Process::new(gate.waiter());
            let before = common::fd_snapshot();
            match p.start() {
                Ok(()) => started.push(p),
                Err(
                    error @ Error::Os {
                        call: "fork",
                        errno: Errno::EAGAIN,
                    },
                ) => {
                    ensure_eq!(
                        error.python().map(|(kind, _)| kind),
                        Some("BlockingIOError")
                    );
                    ensure_eq!(common::fd_snapshot(), before);
                    ensure_eq!(p.state()?, ProcessState::New);
                    failed.push(p);
                }
                Err(error) => {
                    return Err(Stop::Fail(format!(
                        "start #{i}: expected success or fork EAGAIN, got {error:?}"
                    )));
                }
            }
        }
        ensure_eq!((started.len(), failed.len()), (2, 8));
        ensure_eq!(common::children().len(), 2);
        setrlimit(Resource::RLIMIT_NPROC, 100, hard)?;
        for p in &mut failed {
            p.start()?;
        }
        let mut gate = gate;
        gate.open();
        for p in started.iter().chain(failed.iter()) {
            ensure_eq!(exit_code(p)?, 0);
        }
        Ok(())
    })
}

/// T30: fds run out (EMFILE): `start` fails cleanly at every limit and works again once the
/// limit is restored.
fn t30_emfile() -> TestResult {
    in_helper("t30", |_| {
        let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE)?;
        // Only fds 0, 1 and 2 are open below the helper's report fd.
        for k in 0..6u64 {
            let base = common::fd_snapshot();
            let gate = Gate::new(); // fds 3 and 4
            let before = common::fd_snapshot();
            setrlimit(Resource::RLIMIT_NOFILE, 5 + k, hard)?;
            let mut started = Vec::new();
            let mut failure = None;
            for _ in 0..10 {
                let mut p = Process::new(gate.waiter());
                match p.start() {
                    Ok(()) => started.push(p),
                    Err(error) => {
                        failure = Some((error, p));
                        break;
                    }
                }
            }
            // /proc cannot be read at the limit: check after restoring it.
            setrlimit(Resource::RLIMIT_NOFILE, soft, hard)?;
            let (error, mut p) = failure.ok_or(format!(
                "limit {}: expected a start to fail with EMFILE; all 10 started",
                5 + k
            ))?;
            ensure_matches!(
                &error,
                Error::Os {
                    errno: Errno::EMFILE,
                    ..
                }
            );
            ensure_eq!(
                error.python(),
                Some(("OSError", "[Errno 24] Too many open files".to_owned()))
            );
            // Exactly one new fd per started child, its pidfd; nothing from the failure.
            let now = common::fd_snapshot();
            let added: Vec<&String> = now
                .iter()
                .filter(|(fd, _)| !before.contains_key(fd))
                .map(|(_, target)| target)
                .collect();
            ensure!(
                added.len() == started.len()
                    && added.iter().all(|t| t.as_str() == "anon_inode:[pidfd]"),
                "limit {}: expected one pidfd per started child ({}); the fds added are {added:?}",
                5 + k,
                started.len()
            );
            ensure_eq!(p.state()?, ProcessState::New);
            ensure_eq!(common::children().len(), started.len());
            p.start()?;
            started.push(p);
            drop(gate);
            for mut p in started {
                ensure_eq!(exit_code(&p)?, 0);
                p.close()?;
            }
            ensure_eq!(common::fd_snapshot(), base);
        }
        Ok(())
    })
}

/// T33: invalid signal numbers are refused and have no effect on the child.
fn t33_invalid_signals() -> TestResult {
    let mut p = Process::new(sleeper());
    p.start()?;
    let pid = p.pid()?.ok_or("no pid")?.as_raw();
    common::wait_until(Duration::from_secs(10), || proc_state(pid) == Some('S'))?;
    for signal in [0, -1, 65, 1000, i32::MIN, libc::SIGSTOP, libc::SIGCONT] {
        let error = p
            .send_signal(signal)
            .err()
            .ok_or(format!("signal {signal} sent"))?;
        ensure_matches!(&error, Error::InvalidSignal { .. });
        ensure_eq!(
            error.python(),
            Some(("ValueError", "signal number out of range".to_owned()))
        );
    }
    std::thread::sleep(Duration::from_millis(20));
    ensure!(p.is_alive()?, "the child is unaffected");
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    ensure!(
        status
            .lines()
            .any(|l| l.starts_with("State:") && l.contains("S (sleeping)")),
        "the child still sleeps: {status}"
    );
    ensure!(
        status.lines().any(|l| l == "SigPnd:\t0000000000000000"),
        "no signal pending"
    );
    p.send_signal(libc::SIGUSR1)?;
    ensure_eq!(join_code(&p)?, -libc::SIGUSR1);
    Ok(())
}

/// T34: negative, zero, NaN, infinite and huge timeouts.
fn t34_timeouts() -> TestResult {
    let mut gate = Gate::new();
    let mut p = Process::new(gate.waiter());
    p.start()?;
    for secs in [-1.0, -0.0, 0.0, f64::MIN, f64::NEG_INFINITY] {
        let begin = Instant::now();
        p.join_timeout_secs(secs)?;
        ensure!(
            begin.elapsed() < Duration::from_secs(2),
            "{secs} polls once"
        );
    }
    let error = p.join_timeout_secs(f64::NAN).err().ok_or("NaN accepted")?;
    ensure_matches!(&error, Error::NanTimeout);
    ensure_eq!(
        error.python(),
        Some((
            "ValueError",
            "cannot convert float NaN to integer".to_owned()
        ))
    );
    ensure!(p.is_alive()?, "still running");
    gate.open();
    p.join_timeout_secs(f64::INFINITY)?;
    ensure_eq!(p.exitcode()?, Some(0));
    for secs in [1e300, f64::MAX] {
        let mut q = Process::new(|| std::thread::sleep(Duration::from_millis(20)));
        q.start()?;
        q.join_timeout_secs(secs)?;
        ensure_eq!(q.exitcode()?, Some(0));
    }
    let mut q = Process::new(|| std::thread::sleep(Duration::from_millis(20)));
    q.start()?;
    q.join_timeout(Duration::MAX)?;
    ensure_eq!(q.exitcode()?, Some(0));
    Ok(())
}

/// T38: a closed handle refuses everything, even when its old fd number now names a file.
fn t38_closed_handle_and_fd_reuse() -> TestResult {
    let mut p = Process::new(|| ());
    p.start()?;
    let old_fd = p.sentinel()?.as_raw_fd();
    p.join()?;
    p.close()?;
    let dir = std::env::temp_dir().join(format!("proclife-t38-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let result = (|| -> TestResult {
        let mut files = Vec::new();
        for i in 0..64 {
            let path = dir.join(format!("f{i}"));
            std::fs::write(&path, b"untouched")?;
            files.push((path.clone(), std::fs::File::open(&path)?));
        }
        ensure!(
            files.iter().any(|(_, f)| f.as_raw_fd() == old_fd),
            "the old fd number was reused"
        );
        ensure_matches!(p.kill(), Err(Error::Closed));
        ensure_matches!(p.terminate(), Err(Error::Closed));
        ensure_matches!(p.join(), Err(Error::Closed));
        ensure_matches!(p.is_alive(), Err(Error::Closed));
        ensure_matches!(p.exitcode(), Err(Error::Closed));
        ensure_matches!(p.sentinel(), Err(Error::Closed));
        ensure_matches!(p.send_signal(libc::SIGKILL), Err(Error::Closed));
        for (path, file) in &files {
            let offset = nix::unistd::lseek(file, 0, nix::unistd::Whence::SeekCur)?;
            ensure_eq!(offset, 0);
            ensure_eq!(std::fs::read(path)?, b"untouched".to_vec());
        }
        Ok(())
    })();
    std::fs::remove_dir_all(&dir)?;
    result
}

fn main() {
    common::run(vec![
        ("t02_concurrent_join_and_poll", t02_concurrent_join_and_poll),
        ("t04_pid_reuse", t04_pid_reuse),
        ("t05_api_misuse", t05_api_misuse),
        ("t07_dropped_handles", t07_dropped_handles),
        ("t11_terminate_and_escalate", t11_terminate_and_escalate),
        ("t11_exit_policy_on_return", t11_exit_policy_on_return),
        ("t11_exit_policy_on_exit", t11_exit_policy_on_exit),
        (
            "t27_daemons_die_with_their_parent",
            t27_daemons_die_with_their_parent,
        ),
        ("t13_zero_fd_delta", t13_zero_fd_delta),
        ("t13_enomem", t13_enomem),
        ("t15_no_zombies_after_storms", t15_no_zombies_after_storms),
        ("t29_fork_eagain", t29_fork_eagain),
        ("t30_emfile", t30_emfile),
        ("t33_invalid_signals", t33_invalid_signals),
        ("t34_timeouts", t34_timeouts),
        (
            "t38_closed_handle_and_fd_reuse",
            t38_closed_handle_and_fd_reuse,
        ),
    ]);
}
