//! Catalogue items from `docs/reference/faults.md`: races, leaks, failure paths and bad input
//! (T02, T04, T05, T07, T11, T13, T15, T27, T29, T30, T33, T34, T38).
//!
//! Scenarios that change limits, credentials or namespaces run in a sacrificial child that
//! reports through its exit code: 0 passed, 77 skipped (the reason is on its stderr), any
//! other code names the step that failed.

mod common;

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::{Gate, TestResult, join_code, settle, sleeper};
use nix::errno::Errno;
use nix::sys::resource::{Resource, getrlimit, setrlimit};
use proclife::{Error, Process, ProcessState, active_children};

const SKIP: i32 = 77;

/// Runs `scenario` in a sacrificial child and interprets its exit code.
fn in_helper(name: &str, scenario: impl FnOnce() -> i32 + Send + 'static) -> TestResult {
    let mut helper = Process::builder().name(name).target(move || {
        common::close_all_but(2);
        std::process::exit(scenario())
    });
    helper.start()?;
    helper.join_timeout(Duration::from_secs(120))?;
    match helper.exitcode()? {
        Some(0) => Ok(()),
        Some(SKIP) => {
            println!("{name}: skipped (see the reason above)");
            Ok(())
        }
        Some(code) => Err(format!("{name} failed at step {code}").into()),
        None => {
            helper.kill()?;
            helper.join()?;
            Err(format!("{name} did not finish within 120 s").into())
        }
    }
}

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
        p.start()?;
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
    in_helper("t04", || {
        if let Err(errno) = nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWPID) {
            eprintln!("t04: unshare(CLONE_NEWPID) refused: {errno}");
            return SKIP;
        }
        // The next child is the namespace's init; the scenario runs inside it.
        let mut init = Process::new(|| std::process::exit(pid_reuse_in_namespace()));
        if init.start().is_err() {
            return 2;
        }
        // The scenario starts and kills RACING_KILLS children: its bound scales with them
        // (10 ms each), where `join_code`'s fixed 10 s is too short on a loaded machine.
        let bound = Duration::from_millis(10) * RACING_KILLS;
        match init.join_timeout(bound).and_then(|()| init.exitcode()) {
            Ok(Some(code)) => code,
            _ => 3,
        }
    })
}

fn set_last_pid(pid: i32) -> bool {
    std::fs::write("/proc/sys/kernel/ns_last_pid", (pid - 1).to_string()).is_ok()
}

fn pid_reuse_in_namespace() -> i32 {
    // (a) The runtime reaped the child itself.
    let mut c = Process::new(|| ());
    if c.start().is_err() {
        return 10;
    }
    if join_code(&c).ok() != Some(0) {
        return 11;
    }
    let Ok(Some(old)) = c.pid() else { return 12 };
    if !set_last_pid(old.as_raw()) {
        eprintln!("t04: cannot write ns_last_pid");
        return SKIP;
    }
    let mut victim = Process::new(sleeper());
    if victim.start().is_err() {
        return 13;
    }
    if victim.pid().ok().flatten() != Some(old) {
        eprintln!("t04: the victim did not get the recycled pid");
        return 14;
    }
    if c.terminate().is_err() || c.kill().is_err() {
        return 15;
    }
    std::thread::sleep(Duration::from_millis(50));
    if victim.is_alive().ok() != Some(true) || c.exitcode().ok().flatten() != Some(0) {
        return 16;
    }
    if victim.kill().is_err() || join_code(&victim).ok() != Some(-9) {
        return 17;
    }
    // (b) A foreign waitpid(-1) stole the child's status.
    let mut stolen = Process::new(|| std::process::exit(5));
    if stolen.start().is_err() || settle(&stolen).is_err() {
        return 20;
    }
    let Ok(Some(old)) = stolen.pid() else {
        return 21;
    };
    // SAFETY: a plain waitpid(-1) with a valid status pointer: the foreign reaper.
    let reaped = unsafe { libc::waitpid(-1, std::ptr::null_mut(), 0) };
    if reaped != old.as_raw() || !set_last_pid(old.as_raw()) {
        return 22;
    }
    let mut victim = Process::new(sleeper());
    if victim.start().is_err() || victim.pid().ok().flatten() != Some(old) {
        return 23;
    }
    if stolen.terminate().is_err() || stolen.kill().is_err() {
        return 24;
    }
    std::thread::sleep(Duration::from_millis(50));
    if victim.is_alive().ok() != Some(true) {
        return 25;
    }
    if !matches!(stolen.exitcode(), Err(Error::StatusLost { .. })) {
        return 26;
    }
    if victim.kill().is_err() || join_code(&victim).ok() != Some(-9) {
        return 27;
    }
    // Racing kills against children that exit at once: the status is 0 or -SIGKILL.
    // The offsets cover the child's whole life (it exits within a few hundred microseconds
    // of `start` returning), so both outcomes occur.
    let mut rng = XorShift(7);
    let (mut exited, mut killed) = (0u32, 0u32);
    for _ in 0..RACING_KILLS {
        let mut p = Process::new(|| ());
        if p.start().is_err() {
            return 30;
        }
        spin_for(rng.next() % 300);
        if p.kill().is_err() {
            return 31;
        }
        match join_code(&p) {
            Ok(0) => exited += 1,
            Ok(-9) => killed += 1,
            _ => return 32,
        }
    }
    eprintln!("t04: {RACING_KILLS} racing kills: {exited} exited first, {killed} killed");
    0
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
    common::wait_until(Duration::from_secs(20), || {
        let zombies = common::zombies();
        common::children().iter().all(|pid| zombies.contains(pid))
    })?;
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
    nix::sys::prctl::set_child_subreaper(true)?;
    let result = daemons_die_with_their_parent();
    nix::sys::prctl::set_child_subreaper(false)?;
    result
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
    let daemon_code = reap_orphan(daemon, false)?;
    ensure_eq!(daemon_code, -9);
    ensure_eq!(proc_state(other).is_some(), true);
    let other_code = reap_orphan(other, true)?;
    ensure_eq!(other_code, -9);
    Ok(())
}

/// Waits (at most 5 s) for an adopted orphan, killing it first if asked.
fn reap_orphan(pid: i32, kill_first: bool) -> Result<i32, Box<dyn std::error::Error>> {
    let raw = nix::unistd::Pid::from_raw(pid);
    let fd: OwnedFd = {
        // SAFETY: pidfd_open takes integers only and returns a new fd or -1.
        let ret = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
        ensure!(ret >= 0, "pidfd_open({pid}) failed: {}", Errno::last());
        // SAFETY: a fresh fd owned by no one else.
        unsafe { std::os::fd::FromRawFd::from_raw_fd(ret as i32) }
    };
    if kill_first {
        nix::sys::signal::kill(raw, nix::sys::signal::Signal::SIGKILL)?;
    }
    ensure!(
        common::readable(fd.as_raw_fd(), 5_000),
        "orphan {pid} still alive after 5 s"
    );
    let status = nix::sys::wait::waitid(
        nix::sys::wait::Id::PIDFd(fd.as_fd()),
        nix::sys::wait::WaitPidFlag::WEXITED,
    )?;
    match status {
        nix::sys::wait::WaitStatus::Signaled(_, signal, _) => Ok(-(signal as i32)),
        nix::sys::wait::WaitStatus::Exited(_, code) => Ok(code),
        other => Err(format!("unexpected status {other:?}").into()),
    }
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

/// T13, ENOMEM: when the status slot cannot be mapped, `start` fails cleanly and works
/// again once memory is available.
///
/// Forked children take their slots from shared pool pages of 64 slots; a slot is in use
/// until its handle is dropped. The helper (a forked child, so with a fresh pool) holds 64
/// joined handles, so the next start must map a new page.
fn t13_enomem() -> TestResult {
    in_helper("t13-enomem", || {
        // Fill the pool's first page; this also warms up the heap, so that the allocations
        // `start` makes are served from it already.
        let mut held = Vec::with_capacity(64);
        for _ in 0..64 {
            let mut warm = Process::new(|| ());
            if warm.start().is_err() || join_code(&warm).ok() != Some(0) {
                return 2;
            }
            held.push(warm);
        }
        let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_AS) else {
            return 3;
        };
        let Some(size) = vm_size() else { return 4 };
        let before = common::fd_snapshot();
        let mut p = Process::new(|| ());
        if setrlimit(Resource::RLIMIT_AS, size, hard).is_err() {
            return 5;
        }
        let result = p.start();
        if setrlimit(Resource::RLIMIT_AS, soft, hard).is_err() {
            return 6;
        }
        match result {
            Err(Error::Os {
                call: "mmap",
                errno: Errno::ENOMEM,
            }) => {}
            other => {
                eprintln!("t13-enomem: start gave {other:?}");
                return 7;
            }
        }
        if common::fd_snapshot() != before
            || p.state().ok() != Some(ProcessState::New)
            || !common::children().is_empty()
        {
            return 8;
        }
        if p.start().is_err() || join_code(&p).ok() != Some(0) {
            return 9;
        }
        0
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
        for (i, p) in handles.iter().enumerate() {
            ensure_eq!((round, i, join_code(p)?), (round, i, storm_code(i)));
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
    in_helper("t29", || {
        // An unprivileged uid of our own, so that RLIMIT_NPROC binds.
        let uid = 40_000 + std::process::id() % 20_000;
        let gid = nix::unistd::Gid::from_raw(uid);
        let user = nix::unistd::Uid::from_raw(uid);
        if nix::unistd::setresgid(gid, gid, gid).is_err()
            || nix::unistd::setresuid(user, user, user).is_err()
        {
            eprintln!("t29: cannot change to uid {uid}");
            return SKIP;
        }
        let Ok((_, hard)) = getrlimit(Resource::RLIMIT_NPROC) else {
            return 2;
        };
        // This process counts as one: two children fit, the third start fails.
        if setrlimit(Resource::RLIMIT_NPROC, 3, hard).is_err() {
            return 3;
        }
        let gate = Gate::new();
        let mut started = Vec::new();
        let mut failed = Vec::new();
        for _ in 0..10 {
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
                    if error.python().map(|(kind, _)| kind) != Some("BlockingIOError") {
                        return 4;
                    }
                    if common::fd_snapshot() != before || p.state().ok() != Some(ProcessState::New)
                    {
                        return 5;
                    }
                    failed.push(p);
                }
                Err(error) => {
                    eprintln!("t29: unexpected {error}");
                    return 6;
                }
            }
        }
        if started.len() != 2 || failed.len() != 8 || common::children().len() != 2 {
            eprintln!("t29: {} started, {} failed", started.len(), failed.len());
            return 7;
        }
        if setrlimit(Resource::RLIMIT_NPROC, 100, hard).is_err() {
            return 8;
        }
        for p in &mut failed {
            if p.start().is_err() {
                return 9;
            }
        }
        let mut gate = gate;
        gate.open();
        for p in started.iter().chain(failed.iter()) {
            if join_code(p).ok() != Some(0) {
                return 10;
            }
        }
        0
    })
}

/// T30: fds run out (EMFILE): `start` fails cleanly at every limit and works again once the
/// limit is restored.
fn t30_emfile() -> TestResult {
    in_helper("t30", || {
        let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) else {
            return 2;
        };
        // Only fds 0, 1 and 2 are open in the helper.
        for k in 0..6u64 {
            let base = common::fd_snapshot();
            let gate = Gate::new(); // fds 3 and 4
            let before = common::fd_snapshot();
            if setrlimit(Resource::RLIMIT_NOFILE, 5 + k, hard).is_err() {
                return 3;
            }
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
            if setrlimit(Resource::RLIMIT_NOFILE, soft, hard).is_err() {
                return 9;
            }
            let Some((error, mut p)) = failure else {
                return 4;
            };
            if !matches!(
                error,
                Error::Os {
                    errno: Errno::EMFILE,
                    ..
                }
            ) {
                eprintln!("t30: unexpected {error}");
                return 5;
            }
            if error.python() != Some(("OSError", "[Errno 24] Too many open files".to_owned())) {
                return 6;
            }
            // Exactly one new fd per started child, its pidfd; nothing from the failure.
            let now = common::fd_snapshot();
            let added: Vec<&String> = now
                .iter()
                .filter(|(fd, _)| !before.contains_key(fd))
                .map(|(_, target)| target)
                .collect();
            if added.len() != started.len()
                || added.iter().any(|t| t.as_str() != "anon_inode:[pidfd]")
                || p.state().ok() != Some(ProcessState::New)
            {
                eprintln!("t30: added fds {added:?} for {} children", started.len());
                return 7;
            }
            if common::children().len() != started.len() {
                return 8;
            }
            if p.start().is_err() {
                return 9;
            }
            started.push(p);
            drop(gate);
            for mut p in started {
                if join_code(&p).ok() != Some(0) || p.close().is_err() {
                    return 10;
                }
            }
            if common::fd_snapshot() != base {
                return 11;
            }
        }
        0
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
