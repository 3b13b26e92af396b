//! Catalogue items about surviving a hostile environment (`docs/reference/faults.md`):
//! signal storms (T03), foreign reapers (T12), SIGKILL of a whole process group (T16, T18),
//! helpers left behind (T17), a parent killed under its blocked children (T28) and who can
//! reach the shared objects and the fork server (T46, T47). Each test is named by the
//! behaviour it checks, with the catalogue code as a suffix.

#[macro_use]
extern crate proclife_testkit;
use proclife_testkit as common;

use std::collections::BTreeSet;
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::helper::{Stop, in_helper};
use common::wait::{AT_ONCE, Progress};
use common::{Gate, TestResult, join_code};
use nix::errno::Errno;
use proclife::ipc::{Array, Connection, JoinableQueue, Queue, Value, pipe};
use proclife::sync::{Barrier, BoundedSemaphore, Condition, Event, Lock, RLock, Semaphore};
use proclife::{Error, Process, StartMethod, TargetResult};

// ---------------------------------------------------------------------------------------
// T03: deadlines under a storm of signals.

/// Signals received by the waiter during the storm.
static SIGNALS: AtomicU64 = AtomicU64::new(0);

extern "C" fn count_signal(_: libc::c_int) {
    SIGNALS.fetch_add(1, Ordering::Relaxed);
}

/// The timeout every wait of the storm test is given.
const STORM_TIMEOUT: Duration = Duration::from_millis(150);
/// The catalogue's tolerance for a late return (CPython's `CLOCK_RES`), before the
/// machine's measured scheduling delay is added.
const LATE_BASE: Duration = Duration::from_millis(100);
/// How often the storm signals the waiter.
const STORM_PERIOD: Duration = Duration::from_micros(100);

/// Installs `count_signal` for SIGUSR1 without `SA_RESTART`, so every blocking call of the
/// waiter is interrupted with `EINTR`.
fn install_storm_handler() -> nix::Result<()> {
    use nix::sys::signal::{SaFlags, SigAction, SigHandler, SigSet, Signal, sigaction};
    let action = SigAction::new(
        SigHandler::Handler(count_signal),
        SaFlags::empty(),
        SigSet::empty(),
    );
    // SAFETY: the handler only increments an atomic, which is async-signal-safe.
    unsafe { sigaction(Signal::SIGUSR1, &action) }.map(drop)
}

/// A child that sends SIGUSR1 to `target` every [`STORM_PERIOD`] until the gate opens.
fn signaller(target: i32, gate: &Gate) -> Process {
    let read = gate.read_fd();
    Process::new(move || {
        common::close_all_but(read);
        let pid = nix::unistd::Pid::from_raw(target);
        while !common::readable(read, 0) {
            if nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGUSR1).is_err() {
                return;
            }
            std::thread::sleep(STORM_PERIOD);
        }
    })
}

/// One timed wait that must time out: what it is, and whether its result is the timeout's
/// (not an error such as `EINTR`).
type TimedWait<'a> = (&'static str, Box<dyn FnMut() -> Result<bool, String> + 'a>);

/// T03: under SIGUSR1 every 100 µs (handler installed without `SA_RESTART`), `join_timeout`,
/// every sync wait and every IPC receive that cannot succeed returns its timeout result,
/// never an error, never before its deadline and never later than the slack: the
/// catalogue's 100 ms plus three times the worst overshoot of a control `sleep` of the same
/// length measured in the same storm (the machine's scheduling delay, not a guess).
fn deadlines_hold_under_a_signal_storm_t03() -> TestResult {
    in_helper("t03", |report| {
        install_storm_handler()?;
        let me = std::process::id() as i32;
        let mut gate = Gate::new();
        // Holders of the locks, and a child to join, all blocked on the gate.
        let lock = std::sync::Arc::new(Lock::new()?);
        let rlock = std::sync::Arc::new(RLock::new()?);
        let held = std::sync::Arc::new(Event::new()?);
        let (l, r, h, read) = (lock.clone(), rlock.clone(), held.clone(), gate.read_fd());
        let mut holder = Process::new(move || {
            let ok = matches!(l.acquire(None), Ok(true)) && matches!(r.acquire(None), Ok(true));
            h.set();
            common::wait_gate(read);
            std::process::exit(if ok { 0 } else { 1 })
        });
        holder.start()?;
        ensure!(
            held.wait(Some(AT_ONCE))?,
            "expected the holder to take the locks at once; it did not within {AT_ONCE:?}"
        );
        let mut storm = signaller(me, &gate);
        storm.start()?;
        common::wait::wait_for("the first signal of the storm", AT_ONCE, || {
            SIGNALS.load(Ordering::Relaxed) > 0
        })?;

        let sem = Semaphore::new(0)?;
        let bsem = BoundedSemaphore::new(0)?;
        let event = Event::new()?;
        let cond = Condition::new()?;
        let empty = Queue::<u32>::new(1)?;
        let full = Queue::<u32>::new(1)?;
        full.put(&1)?;
        let unfinished = JoinableQueue::<u32>::new(0)?;
        unfinished.put(&1)?;
        let (here, _there) = pipe(true)?;
        let t = STORM_TIMEOUT;
        let timed_out = |r: Result<bool, Error>| -> Result<bool, String> {
            r.map(|acquired| !acquired).map_err(|e| format!("{e:?}"))
        };
        let mut waits: Vec<TimedWait<'_>> = vec![
            (
                "Process::join_timeout",
                Box::new(|| {
                    holder.join_timeout(t).map_err(|e| format!("{e:?}"))?;
                    Ok(holder.exitcode().map_err(|e| format!("{e:?}"))?.is_none())
                }),
            ),
            (
                "Lock::acquire",
                Box::new(|| timed_out(lock.acquire(Some(t)))),
            ),
            (
                "RLock::acquire",
                Box::new(|| timed_out(rlock.acquire(Some(t)))),
            ),
            (
                "Semaphore::acquire",
                Box::new(|| timed_out(sem.acquire(Some(t)))),
            ),
            (
                "BoundedSemaphore::acquire",
                Box::new(|| timed_out(bsem.acquire(Some(t)))),
            ),
            ("Event::wait", Box::new(|| timed_out(event.wait(Some(t))))),
            (
                "Condition::wait",
                Box::new(|| {
                    if !cond.acquire(None).map_err(|e| format!("{e:?}"))? {
                        return Err("the condition's lock was not acquired".to_owned());
                    }
                    let r = timed_out(cond.wait(Some(t)));
                    cond.release().map_err(|e| format!("{e:?}"))?;
                    r
                }),
            ),
            (
                "Barrier::wait_timeout",
                Box::new(|| {
                    let barrier = Barrier::new(2, None).map_err(|e| format!("{e:?}"))?;
                    match barrier.wait_timeout(Some(t)) {
                        Err(Error::BrokenBarrier) => Ok(true),
                        other => Err(format!("{other:?}")),
                    }
                }),
            ),
            (
                "Queue::get_timeout",
                Box::new(|| match empty.get_timeout(Some(t)) {
                    Err(Error::Empty) => Ok(true),
                    other => Err(format!("{other:?}")),
                }),
            ),
            (
                "Queue::put_timeout",
                Box::new(|| match full.put_timeout(&2, Some(t)) {
                    Err(Error::Full) => Ok(true),
                    other => Err(format!("{other:?}")),
                }),
            ),
            (
                "JoinableQueue::join",
                Box::new(|| timed_out(unfinished.join(Some(t)))),
            ),
            (
                "Connection::poll",
                Box::new(|| {
                    here.poll(Some(t))
                        .map(|ready| !ready)
                        .map_err(|e| format!("{e:?}"))
                }),
            ),
        ];
        let mut worst_control = Duration::ZERO;
        let mut results = Vec::new();
        for round in 0..3 {
            for (name, wait) in &mut waits {
                // The control: a plain sleep of the same length in the same storm.
                let begin = Instant::now();
                std::thread::sleep(t);
                worst_control = worst_control.max(begin.elapsed().saturating_sub(t));
                let signals = SIGNALS.load(Ordering::Relaxed);
                let begin = Instant::now();
                let outcome = wait();
                let took = begin.elapsed();
                let during = SIGNALS.load(Ordering::Relaxed) - signals;
                match outcome {
                    Ok(true) => {}
                    Ok(false) => {
                        return Err(Stop::Fail(format!(
                            "round {round}: {name}({t:?}) succeeded; expected it to time out \
                             (nothing could satisfy it)"
                        )));
                    }
                    Err(error) => {
                        return Err(Stop::Fail(format!(
                            "round {round}: {name}({t:?}) returned {error} after {took:?} and \
                             {during} signals; expected its timeout result"
                        )));
                    }
                }
                results.push((round, *name, took, during));
                report.step();
            }
        }
        let slack = LATE_BASE + 3 * worst_control;
        for &(round, name, took, during) in &results {
            ensure!(
                took >= t,
                "round {round}: {name}({t:?}) returned after {took:?}, before its deadline \
                 ({during} signals arrived meanwhile)"
            );
            ensure!(
                took <= t + slack,
                "round {round}: {name}({t:?}) returned after {took:?}, later than the slack \
                 {slack:?} allows (100 ms + 3 x the worst control sleep overshoot \
                 {worst_control:?}; {during} signals arrived meanwhile)"
            );
            ensure!(
                during > 0,
                "round {round}: {name}: expected the storm to interrupt the wait; no signal \
                 arrived in {took:?}"
            );
        }
        drop(waits);
        gate.open();
        ensure_eq!(join_code(&storm)?, 0);
        ensure_eq!(join_code(&holder)?, 0);
        let total: u64 = results.iter().map(|r| r.3).sum();
        eprintln!(
            "t03: {} timed waits of {t:?}, {total} signals during them, worst control \
             overshoot {worst_control:?}, slack {slack:?}",
            results.len()
        );
        Ok(())
    })
}

// ---------------------------------------------------------------------------------------
// T12: foreign reapers.

/// T12 (a): with `SIGCHLD` set to `SIG_IGN` the kernel reaps every child itself. Children
/// released together after their start: each join returns at once and each handle gives
/// its child's own exit code or `StatusLost`, never "running" for a dead child; a child
/// still blocked stays alive. A child that exits before `start` has opened its pidfd is
/// gone without a trace: that start fails with the typed `pidfd_open` `ESRCH` (counted).
fn sigchld_ignored_joins_return_t12() -> TestResult {
    in_helper("t12-sig-ign", |report| {
        // SAFETY: SIG_IGN is a valid disposition; the helper is single-threaded.
        unsafe { libc::signal(libc::SIGCHLD, libc::SIG_IGN) };
        let mut gate = Gate::new();
        let mut last = Gate::new();
        let mut running = Process::new(last.waiter());
        running.start()?;
        let handles = gated_exits(&gate, 20)?;
        gate.open();
        let (mut exact, mut lost) = (0, 0);
        for (i, p) in handles.iter().enumerate() {
            let code = i as i32 + 1;
            let outcome = p.join_timeout(AT_ONCE).and_then(|()| p.exitcode());
            match outcome {
                Ok(Some(c)) if c == code => exact += 1,
                Err(Error::StatusLost { .. }) => lost += 1,
                other => {
                    return Err(Stop::Fail(format!(
                        "child {i} exited with {code} under SIGCHLD=SIG_IGN; expected \
                         exitcode Some({code}) or StatusLost after join, got {other:?}"
                    )));
                }
            }
            ensure!(
                !matches!(p.is_alive(), Ok(true)),
                "child {i}: joined, yet is_alive() is true under SIGCHLD=SIG_IGN"
            );
            report.step();
        }
        let mut vanished = 0;
        for _ in 0..20 {
            let mut fast = Process::new(|| ());
            match fast.start() {
                Ok(()) => {
                    let outcome = fast.join_timeout(AT_ONCE).and_then(|()| fast.exitcode());
                    ensure!(
                        matches!(outcome, Ok(Some(0)) | Err(Error::StatusLost { .. })),
                        "a child that returned: expected Some(0) or StatusLost, got {outcome:?}"
                    );
                }
                Err(Error::Os {
                    call: "pidfd_open",
                    errno: Errno::ESRCH,
                }) => vanished += 1,
                Err(other) => {
                    return Err(Stop::Fail(format!(
                        "start under SIGCHLD=SIG_IGN: expected success or pidfd_open ESRCH, \
                         got {other:?}"
                    )));
                }
            }
        }
        running.join_timeout(Duration::from_millis(20))?;
        ensure!(
            running.is_alive()?,
            "expected the child blocked on the gate to be alive; it is not"
        );
        last.open();
        let outcome = running
            .join_timeout(AT_ONCE)
            .and_then(|()| running.exitcode());
        ensure!(
            matches!(outcome, Ok(Some(0)) | Err(Error::StatusLost { .. })),
            "the released child: expected Some(0) or StatusLost, got {outcome:?}"
        );
        eprintln!(
            "t12: SIGCHLD=SIG_IGN: {exact} exact exit codes, {lost} StatusLost of 20; \
             {vanished} of 20 instant children were gone before start opened their pidfd"
        );
        Ok(())
    })
}

/// Starts `n` children that wait for `gate` to open, then exit with 1, 2, ..., `n`.
fn gated_exits(gate: &Gate, n: i32) -> Result<Vec<Process>, proclife::Error> {
    (0..n)
        .map(|i| {
            let read = gate.read_fd();
            let mut p = Process::new(move || {
                common::wait_gate(read);
                std::process::exit(i + 1)
            });
            p.start().map(|()| p)
        })
        .collect()
}

/// T12 (b): a thread of the same process reaps with `waitpid(-1)` while the children exit.
/// Every join returns; a handle whose child the thread did not reap gives its own exit
/// code, and one whose child it stole gives that code or `StatusLost`.
fn foreign_waitpid_reaper_steals_no_hang_t12() -> TestResult {
    in_helper("t12-waitpid", |report| {
        const CHILDREN: i32 = 20;
        let mut gate = Gate::new();
        let handles = gated_exits(&gate, CHILDREN)?;
        // The foreign reaper: a library thread that reaps whatever exits.
        let reaper = std::thread::spawn(|| {
            let mut stolen = Vec::new();
            loop {
                let mut status = 0;
                // SAFETY: a valid status pointer; waitpid takes integers otherwise.
                let pid = unsafe { libc::waitpid(-1, &mut status, 0) };
                if pid > 0 {
                    stolen.push((pid, libc::WEXITSTATUS(status)));
                } else if Errno::last() != Errno::EINTR {
                    return stolen;
                }
            }
        });
        gate.open();
        let mut progress = Progress::new("t12: joins beside a foreign reaper");
        let mut outcomes = Vec::new();
        for p in &handles {
            let outcome = p.join_timeout(progress.left()).and_then(|()| p.exitcode());
            ensure!(
                !matches!(outcome, Ok(None)),
                "{}: expected the join to end with a status or StatusLost; it still runs after \
                 {:?}",
                p.name(),
                progress.left()
            );
            progress.step();
            report.step();
            outcomes.push(outcome);
        }
        let stolen = reaper.join().map_err(|_| "the reaper thread panicked")?;
        let stolen_pids: BTreeSet<i32> = stolen.iter().map(|s| s.0).collect();
        let mut lost = 0;
        for (i, (p, outcome)) in handles.iter().zip(outcomes).enumerate() {
            let code = i as i32 + 1;
            let pid = p.pid()?.map(|p| p.as_raw()).unwrap_or(0);
            match outcome {
                Ok(Some(c)) if c == code => {}
                Err(Error::StatusLost { .. }) if stolen_pids.contains(&pid) => lost += 1,
                other => {
                    return Err(Stop::Fail(format!(
                        "child {i} (pid {pid}, stolen: {}) exited with {code}; got {other:?}",
                        stolen_pids.contains(&pid)
                    )));
                }
            }
        }
        eprintln!(
            "t12: foreign waitpid(-1) reaped {} of {CHILDREN}; {lost} handles report StatusLost",
            stolen.len()
        );
        Ok(())
    })
}

// ---------------------------------------------------------------------------------------
// T16, T18: SIGKILL of a whole process group.

fn spawn_traffic(queue: Queue<u64>) -> TargetResult {
    loop {
        let n = queue.get()?;
        queue.put(&(n + 1))?;
    }
}
proclife::entry!(spawn_traffic);

/// Every pid whose process group is `pgid`.
fn group_members(pgid: i32) -> Vec<i32> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        // SAFETY: getpgid takes an integer; -1 for a pid that is gone.
        if unsafe { libc::getpgid(pid) } == pgid {
            found.push(pid);
        }
    }
    found
}

/// T16/T18: a process group (a leader, its fork children moving items through a queue,
/// taking a lock and passing a barrier in loops, a spawned child and a fork-server child on
/// the same queue) is SIGKILLed as a whole with `kill(-pgid)` mid-traffic. Afterwards no
/// name is left in `/dev/shm`, nothing in the group's `TMPDIR`, no socket of the group in
/// `/proc/net/unix`; while it ran, none of its sockets had a name (no path, no abstract
/// name).
fn group_sigkill_leaves_nothing_behind_t16_t18() -> TestResult {
    common::child::as_subreaper(group_sigkill)
}

fn group_sigkill() -> TestResult {
    let tmp = std::env::temp_dir().join(format!("proclife-t16-{}", std::process::id()));
    std::fs::create_dir_all(&tmp)?;
    let shm_before = common::procfs::dev_shm();
    let (read, write) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
    let w = write.as_raw_fd();
    let tmp_in_child = tmp.clone();
    let mut leader = Process::new(move || {
        common::close_all_but(w);
        // SAFETY: the leader is single-threaded here; nothing reads the environment
        // concurrently.
        unsafe { std::env::set_var("TMPDIR", &tmp_in_child) };
        let code = match traffic(w) {
            Ok(()) => 0,
            Err(error) => {
                common::child::write_all(w, format!("F{error}").as_bytes());
                1
            }
        };
        std::process::exit(code)
    });
    leader.start()?;
    drop(write);
    let pgid = leader.pid()?.ok_or("no pid")?.as_raw();
    // The leader writes 'R' once every kind of traffic has gone round at least 50 times.
    let mut progress = Progress::new("t16: traffic starting");
    let mut buf = [0u8; 256];
    ensure!(
        common::readable(read.as_raw_fd(), progress.left().as_millis() as i32),
        "{}",
        progress.stuck("the group's traffic to start")
    );
    let n = nix::unistd::read(&read, &mut buf)?;
    ensure!(
        n >= 1 && buf[0] == b'R',
        "expected the leader to report running traffic; it wrote {:?}",
        String::from_utf8_lossy(&buf[..n])
    );
    progress.step();
    let members = group_members(pgid);
    ensure!(
        members.len() >= 6,
        "expected the leader, 4 fork children, a spawned child and a fork server in group \
         {pgid}; found {members:?}"
    );
    let inodes: BTreeSet<u64> = members
        .iter()
        .flat_map(|&p| common::procfs::socket_inodes_of(p))
        .collect();
    let named: Vec<(u64, String)> = common::procfs::unix_sockets()
        .into_iter()
        .filter(|(inode, path)| inodes.contains(inode) && !path.is_empty())
        .collect();
    // SAFETY: kill takes integers; -pgid names the group just created.
    let killed = unsafe { libc::kill(-pgid, libc::SIGKILL) };
    ensure_eq!(killed, 0);
    ensure_eq!(join_code(&leader)?, -9);
    // The orphans were re-parented to this process (a subreaper): reap them all.
    common::wait::wait_for(
        "every member of the killed group to be gone",
        AT_ONCE,
        || {
            loop {
                // SAFETY: a null status pointer is allowed; WNOHANG never blocks.
                let pid = unsafe { libc::waitpid(-pgid, std::ptr::null_mut(), libc::WNOHANG) };
                if pid <= 0 {
                    break;
                }
            }
            group_members(pgid).is_empty()
        },
    )?;
    let left_sockets: Vec<(u64, String)> = common::procfs::unix_sockets()
        .into_iter()
        .filter(|(inode, _)| inodes.contains(inode))
        .collect();
    let left_tmp: Vec<String> = std::fs::read_dir(&tmp)?
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    std::fs::remove_dir_all(&tmp)?;
    let shm_new: Vec<String> = common::procfs::dev_shm()
        .difference(&shm_before)
        .cloned()
        .collect();
    ensure!(
        named.is_empty(),
        "expected every socket of the group to be unnamed; named: {named:?}"
    );
    ensure!(
        left_sockets.is_empty(),
        "expected no socket of the killed group in /proc/net/unix; left: {left_sockets:?}"
    );
    ensure!(
        left_tmp.is_empty(),
        "expected nothing in the group's TMPDIR; left: {left_tmp:?}"
    );
    ensure!(
        shm_new.is_empty(),
        "expected no new name in /dev/shm; found {shm_new:?}"
    );
    Ok(())
}

/// The leader's side of T16: its own process group, children in traffic, then 'R'.
fn traffic(report: RawFd) -> Result<(), Box<dyn std::error::Error>> {
    nix::unistd::setpgid(nix::unistd::Pid::from_raw(0), nix::unistd::Pid::from_raw(0))?;
    let queue = std::sync::Arc::new(Queue::<u64>::new(16)?);
    let lock = std::sync::Arc::new(Lock::new()?);
    let barrier = std::sync::Arc::new(Barrier::new(2, None)?);
    let rounds = std::sync::Arc::new(Value::new(0u64)?);
    let samples = std::sync::Arc::new(Array::new(64, 0u64)?);
    let mut children = Vec::new();
    for role in 0..4 {
        let (queue, lock, barrier, rounds, samples) = (
            queue.clone(),
            lock.clone(),
            barrier.clone(),
            rounds.clone(),
            samples.clone(),
        );
        let mut p = Process::new_fallible(move || -> Result<(), Error> {
            common::close_all_but(2);
            loop {
                match role {
                    0 => {
                        let n = queue.get()?;
                        queue.put(&(n + 1))?;
                    }
                    1 => {
                        if lock.acquire(None)? {
                            rounds.set(rounds.get()? + 1)?;
                            samples.set(0, rounds.get()?)?;
                            lock.release()?;
                        }
                    }
                    _ => {
                        barrier.wait()?;
                    }
                }
            }
        });
        p.start()?;
        children.push(p);
    }
    for method in [StartMethod::Spawn, StartMethod::ForkServer] {
        let queue = Queue::<u64>::from_fd(queue.as_fd().try_clone_to_owned()?)?;
        let mut p = Process::builder()
            .start_method(method)
            .entry(spawn_traffic, queue);
        p.start()?;
        children.push(p);
    }
    queue.put(&0)?;
    queue.put(&0)?;
    // Running: the lock has gone round and items have moved many times.
    let begin = Instant::now();
    while rounds.get()? < 50 || queue.get_timeout(Some(Duration::from_millis(10))).is_err() {
        if begin.elapsed() > Duration::from_secs(300) {
            return Err("no traffic".into());
        }
    }
    queue.put(&0)?;
    common::child::write_all(report, b"R");
    std::thread::sleep(Duration::from_secs(60));
    drop(children);
    Ok(())
}

// ---------------------------------------------------------------------------------------
// T17: no helper threads, processes or mappings.

/// T17's create/drop cycles (the catalogue's 10⁴).
const STORM_CYCLES: u32 = 10_000;

/// T17: [`STORM_CYCLES`] create/drop cycles of every IPC and sync object, 200 fork starts, 10 spawn
/// and 10 fork-server starts (then the server stopped) leave the process as it was: one
/// thread, no child, the same fds and the same shared mappings.
fn no_helpers_left_after_a_storm_t17() -> TestResult {
    // Warm up: the fork method's first status-slot page and the heap.
    for _ in 0..3 {
        let mut p = Process::new(|| ());
        p.start()?;
        join_code(&p)?;
    }
    let before = common::procfs::Snapshot::take();
    let maps_before = common::procfs::shared_maps();
    let mut progress = Progress::new("t17: create/drop cycles");
    for i in 0..STORM_CYCLES {
        let queue = Queue::<u32>::with_capacity(4, proclife::ipc::MIN_CAPACITY)?;
        queue.put(&i)?;
        let value = Value::new(u64::from(i))?;
        let lock = Lock::new()?;
        let event = Event::new()?;
        let barrier = Barrier::new(2, None)?;
        let (a, b) = pipe(true)?;
        drop((queue, value, lock, event, barrier, a, b));
        progress.step();
    }
    for _ in 0..200 {
        let mut p = Process::new(|| ());
        p.start()?;
        ensure_eq!(join_code(&p)?, 0);
    }
    for method in [StartMethod::Spawn, StartMethod::ForkServer] {
        for _ in 0..10 {
            let mut p = Process::builder().start_method(method).entry(exit_code, 0);
            p.start()?;
            ensure_eq!(join_code(&p)?, 0);
        }
    }
    proclife::stop_fork_server()?;
    common::wait_single_threaded()?;
    before.check(true)?;
    let maps_after = common::procfs::shared_maps();
    ensure_eq!(maps_after, maps_before);
    Ok(())
}

fn exit_code(code: i32) -> TargetResult {
    std::process::exit(code)
}
proclife::entry!(exit_code);

// ---------------------------------------------------------------------------------------
// T28: the parent is SIGKILLed while its children are blocked on it.

fn recv_from_parent(mut conn: Connection) -> TargetResult {
    match conn.recv::<u8>() {
        Err(Error::Disconnected) => std::process::exit(42),
        other => Err(format!("recv gave {other:?}, expected Disconnected").into()),
    }
}
proclife::entry!(recv_from_parent);

/// T28: a middle process is SIGKILLed while its children are blocked on it: a daemon
/// waiting on its `Event`, a daemon blocked in `put` on its full queue (both die with it),
/// and a spawned child in `recv` on its pipe (it sees end of file: it holds no copy of the
/// parent's end). None hangs: each ends within [`AT_ONCE`] of the kill.
fn children_blocked_on_a_killed_parent_end_t28() -> TestResult {
    common::child::as_subreaper(blocked_on_killed_parent)
}

/// Reads `count` pids (little-endian `i32`s) that a middle process reports on `read`; the
/// reading is work watched by a [`Progress`] named `what`.
fn read_pids(read: &std::os::fd::OwnedFd, count: usize, what: &str) -> Result<Vec<i32>, String> {
    let mut bytes = vec![0u8; count * 4];
    let mut got = 0;
    let progress = Progress::new(what);
    while got < bytes.len() {
        if !common::readable(read.as_raw_fd(), progress.left().as_millis() as i32) {
            return Err(progress.stuck("the children's pids"));
        }
        let n =
            nix::unistd::read(read, &mut bytes[got..]).map_err(|e| format!("{what}: read: {e}"))?;
        if n == 0 {
            return Err(format!(
                "{what}: expected {count} pids; the middle process died after reporting {}",
                got / 4
            ));
        }
        got += n;
    }
    Ok(bytes
        .chunks(4)
        .map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect())
}

fn blocked_on_killed_parent() -> TestResult {
    let (read, write) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
    let w = write.as_raw_fd();
    let mut middle = Process::new(move || {
        common::close_all_but(w);
        let run = || -> Result<Vec<Process>, Box<dyn std::error::Error>> {
            let event = std::sync::Arc::new(Event::new()?);
            let full = std::sync::Arc::new(Queue::<u8>::new(1)?);
            full.put(&0)?;
            let (near, far) = pipe(true)?;
            let e = event.clone();
            let mut waiter = Process::builder().daemon(true).target(move || {
                common::close_all_but(2);
                let _ = e.wait(None);
                std::process::exit(3)
            });
            let q = full.clone();
            let mut putter = Process::builder().daemon(true).target(move || {
                common::close_all_but(2);
                let _ = q.put(&1);
                std::process::exit(3)
            });
            let mut receiver = Process::builder()
                .start_method(StartMethod::Spawn)
                .entry(recv_from_parent, far);
            waiter.start()?;
            putter.start()?;
            receiver.start()?;
            std::mem::forget(near);
            Ok(vec![waiter, putter, receiver])
        };
        match run() {
            Ok(children) => {
                for p in &children {
                    let pid = p.pid().ok().flatten().map_or(0, |p| p.as_raw());
                    common::child::write_all(w, &pid.to_le_bytes());
                }
                std::mem::forget(children);
                std::thread::sleep(Duration::from_secs(60));
                std::process::exit(0)
            }
            Err(_) => std::process::exit(2),
        }
    });
    middle.start()?;
    drop(write);
    let pids = read_pids(&read, 3, "t28: the middle process starting its children")?;
    // Let them block: the daemons on the futexes, the spawned child in recv.
    for &pid in &pids {
        common::wait::wait_for(&format!("child {pid} to block"), AT_ONCE, || {
            common::proc_state(pid) == Some('S')
        })?;
    }
    middle.kill()?;
    ensure_eq!(join_code(&middle)?, -9);
    let names = [
        "daemon in Event::wait",
        "daemon in Queue::put",
        "spawned child in recv",
    ];
    let expected = [-9, -9, 42];
    for ((&pid, name), want) in pids.iter().zip(names).zip(expected) {
        let code = common::child::reap_adopted(pid, false)?;
        ensure!(
            code == want,
            "{name} (pid {pid}): expected to end with {want} after its parent was killed; \
             ended with {code}"
        );
    }
    Ok(())
}

/// What an orphaned wait ended with, as an exit code the test reads: 42 for
/// `Err(ParentDied)`, 43 for `Err(Disconnected)`; anything else fails the target.
fn orphaned<T: std::fmt::Debug>(what: &str, outcome: proclife::Result<T>) -> TargetResult {
    match outcome {
        Err(Error::ParentDied) => std::process::exit(42),
        Err(Error::Disconnected) => std::process::exit(43),
        other => Err(format!("{what} gave {other:?}, expected ParentDied").into()),
    }
}
fn orphan_event(event: Event) -> TargetResult {
    orphaned("Event::wait", event.wait(None))
}
fn orphan_put(full: Queue<u8>) -> TargetResult {
    orphaned("Queue::put", full.put(&1))
}
fn orphan_acquire(semaphore: Semaphore) -> TargetResult {
    orphaned("Semaphore::acquire", semaphore.acquire(None))
}
fn orphan_recv(mut conn: Connection) -> TargetResult {
    orphaned("Connection::recv", conn.recv::<u8>())
}
fn orphan_notified(condition: Condition) -> TargetResult {
    condition.acquire(None)?;
    orphaned("Condition::wait", condition.wait(None))
}
proclife::entry!(
    orphan_event,
    orphan_put,
    orphan_acquire,
    orphan_recv,
    orphan_notified
);

/// The number of times process `pid` gave up the CPU of its own accord
/// (`voluntary_ctxt_switches` in `/proc/<pid>/status`): each wake-up of a sleeping wait
/// that sleeps again adds one.
fn voluntary_switches(pid: i32) -> Result<u64, Box<dyn std::error::Error>> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("voluntary_ctxt_switches:"))
        .and_then(|n| n.trim().parse().ok())
        .ok_or_else(|| format!("no voluntary_ctxt_switches in /proc/{pid}/status").into())
}

/// T28's watch and the cost of live children (decision 0025): an untimed `Event::wait` in a
/// non-daemon forked child wakes every 250 ms to check its parent, while the same wait in a
/// daemon child, which dies with its parent anyway (T27), sleeps until the event is set.
/// The non-daemon's wake-ups are awaited (bounded by [`AT_ONCE`]), which shows that the
/// count moves when a wait wakes; the daemon's count must not move while the non-daemon
/// wakes three more times. A daemon that cleared its parent-death signal (as a change of
/// user id does) no longer dies with its parent, and its wait wakes to check like the
/// non-daemon's.
fn daemon_waits_sleep_without_parent_checks_t28() -> TestResult {
    let event = std::sync::Arc::new(Event::new()?);
    let started = |daemon: bool, clear: bool| -> Result<Process, Box<dyn std::error::Error>> {
        let event = std::sync::Arc::clone(&event);
        let mut p = Process::builder()
            .daemon(daemon)
            .fallible_target(move || -> TargetResult {
                if clear {
                    nix::sys::prctl::set_pdeathsig(None)?;
                }
                if event.wait(None)? {
                    Ok(())
                } else {
                    Err("the untimed wait returned without the event".into())
                }
            });
        p.start()?;
        common::process::wait_state(&p, "blocked in Event::wait", |s| {
            matches!(s, proclife::ProcessState::Blocked(_))
        })?;
        Ok(p)
    };
    let daemon = started(true, false)?;
    let watcher = started(false, false)?;
    let cleared = started(true, true)?;
    let pid = |p: &Process| -> Result<i32, Box<dyn std::error::Error>> {
        Ok(p.pid()?.ok_or("a started process has a pid")?.as_raw())
    };
    let (daemon_pid, watcher_pid, cleared_pid) = (pid(&daemon)?, pid(&watcher)?, pid(&cleared)?);
    let daemon_before = voluntary_switches(daemon_pid)?;
    let watcher_before = voluntary_switches(watcher_pid)?;
    let cleared_before = voluntary_switches(cleared_pid)?;
    let checked = common::wait::wait_for(
        "the non-daemon's untimed wait to wake three times to check its parent",
        AT_ONCE,
        || voluntary_switches(watcher_pid).is_ok_and(|n| n >= watcher_before + 3),
    );
    let daemon_after = voluntary_switches(daemon_pid)?;
    let cleared_checked = common::wait::wait_for(
        "the untimed wait of the daemon without a parent-death signal to wake three times \
         to check its parent",
        AT_ONCE,
        || voluntary_switches(cleared_pid).is_ok_and(|n| n >= cleared_before + 3),
    );
    event.set();
    ensure_eq!(join_code(&daemon)?, 0);
    ensure_eq!(join_code(&watcher)?, 0);
    ensure_eq!(join_code(&cleared)?, 0);
    checked?;
    cleared_checked?;
    ensure!(
        daemon_after == daemon_before,
        "the daemon's untimed wait woke {} times while the non-daemon's checked its parent \
         three times; it should sleep until the event is set",
        daemon_after - daemon_before
    );
    Ok(())
}

/// The waits of [`untimed_waits_end_when_the_parent_dies_t28`], and the exit code each
/// must end with under fork and under the re-executing methods.
const ORPHAN_WAITS: [(&str, i32, i32); 5] = [
    ("Event::wait", 42, 42),
    ("Queue::put on a full queue", 42, 42),
    ("Semaphore::acquire", 42, 42),
    // A forked child holds its own copy of the parent's end (decision 0006), so no end of
    // file comes; a re-executed child holds none and sees end of file.
    ("Connection::recv", 42, 43),
    ("Condition::wait", 42, 42),
];

/// T28 for non-daemon children (decision 0018): a middle process starts, under every start
/// method, non-daemon children that wait without a timeout on an `Event` nobody sets, a
/// full queue, a `Semaphore` at zero and a connection whose other end it keeps, and is
/// SIGKILLed once all of them are blocked (its fork server just before it). Each wait ends
/// with `Error::ParentDied` (or end of file where the child holds no copy of the parent's
/// end) within [`AT_ONCE`]; none waits forever as in CPython.
fn untimed_waits_end_when_the_parent_dies_t28() -> TestResult {
    common::child::as_subreaper(untimed_waits_of_orphans)
}

fn untimed_waits_of_orphans() -> TestResult {
    let count = StartMethod::ALL.len() * ORPHAN_WAITS.len();
    let (read, write) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
    let w = write.as_raw_fd();
    let mut middle = Process::new(move || {
        let run = || -> Result<Vec<i32>, Box<dyn std::error::Error>> {
            let mut children = Vec::new();
            for method in StartMethod::ALL {
                let builder = || Process::builder().start_method(method);
                let full = Queue::<u8>::new(1)?;
                full.put(&0)?;
                let (near, far) = pipe(true)?;
                // Kept open until this process dies.
                std::mem::forget(near);
                let event = Event::new()?;
                let semaphore = Semaphore::new(0)?;
                let condition = Condition::new()?;
                let mut started = if method == StartMethod::Fork {
                    vec![
                        builder().fallible_target(move || orphan_event(event)),
                        builder().fallible_target(move || orphan_put(full)),
                        builder().fallible_target(move || orphan_acquire(semaphore)),
                        builder().fallible_target(move || orphan_recv(far)),
                        builder().fallible_target(move || orphan_notified(condition)),
                    ]
                } else {
                    vec![
                        builder().entry(orphan_event, event),
                        builder().entry(orphan_put, full),
                        builder().entry(orphan_acquire, semaphore),
                        builder().entry(orphan_recv, far),
                        builder().entry(orphan_notified, condition),
                    ]
                };
                for p in &mut started {
                    p.start()?;
                }
                for p in &started {
                    common::process::wait_state(p, "blocked in its wait", |s| {
                        matches!(s, proclife::ProcessState::Blocked(_))
                    })?;
                }
                children.extend(started);
            }
            let mut pids: Vec<i32> = children
                .iter()
                .map(|p| p.pid().ok().flatten().map_or(0, |p| p.as_raw()))
                .collect();
            pids.push(proclife::fork_server_pid().map_or(0, |p| p.as_raw()));
            std::mem::forget(children);
            Ok(pids)
        };
        match run() {
            Ok(pids) => {
                let bytes: Vec<u8> = pids.iter().flat_map(|p| p.to_le_bytes()).collect();
                common::child::write_all(w, &bytes);
                std::thread::sleep(Duration::from_secs(60));
                std::process::exit(0)
            }
            Err(error) => {
                eprintln!("t28 middle process: {error}");
                std::process::exit(2)
            }
        }
    });
    middle.start()?;
    drop(write);
    let pids = match read_pids(
        &read,
        count + 1,
        "t28: the middle process starting its blocked children",
    ) {
        Ok(pids) => pids,
        Err(error) => {
            middle.kill()?;
            return Err(format!(
                "{error} (the middle process ended with {})",
                join_code(&middle)?
            )
            .into());
        }
    };
    // The fork server goes first, so that its children are this subreaper's to reap when
    // they end: a live server would reap them itself, and their codes would be lost. They
    // watch the middle process (their logical parent), not the server.
    let server = pids.last().copied().filter(|&pid| pid > 0);
    if let Some(server) = server {
        // The server is the middle process's unreaped child, so its pid is still its own.
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(server),
            nix::sys::signal::SIGKILL,
        )?;
    }
    middle.kill()?;
    // Every failure is collected, not returned at once: the orphans are reaped below
    // whatever happened to the middle process.
    let mut failures = Vec::new();
    match join_code(&middle) {
        Ok(-9) => {}
        other => failures.push(format!(
            "the middle process: expected exit code -9 (SIGKILL), got {other:?}"
        )),
    }
    for (i, &pid) in pids[..count].iter().enumerate() {
        let method = StartMethod::ALL[i / ORPHAN_WAITS.len()];
        let (what, fork_code, reexec_code) = ORPHAN_WAITS[i % ORPHAN_WAITS.len()];
        let want = if method == StartMethod::Fork {
            fork_code
        } else {
            reexec_code
        };
        match common::child::reap_adopted(pid, false) {
            Ok(code) if code == want => {}
            Ok(code) => failures.push(format!(
                "{method} child in {what} (pid {pid}): expected exit code {want} after its parent was killed, got {code}"
            )),
            Err(error) => failures.push(format!("{method} child in {what}: {error}")),
        }
    }
    if let Some(server) = server {
        match common::child::reap_adopted(server, false) {
            Ok(-9) => {}
            other => failures.push(format!(
                "the fork server (pid {server}): expected exit code -9 (SIGKILL), got {other:?}"
            )),
        }
    }
    ensure!(failures.is_empty(), "{}", failures.join("; "));
    Ok(())
}

// ---------------------------------------------------------------------------------------
// T46, T47: who can reach the shared objects and the fork server.

/// T46/T47: with every kind of shared object and a fork server alive, (a) none of this
/// process's or the server's sockets has a name (no path, no abstract name) and no shared
/// segment has a path (memfd only, nothing in `/dev/shm`); (b) a process of another uid
/// cannot open any of them through `/proc/<pid>/fd` (`EACCES`); (c) a child forked from
/// this process holds no copy of the fork server's socket, so a process other than the
/// parent cannot send the server a request.
fn shared_objects_reachable_only_by_this_user_t46_t47() -> TestResult {
    let queue = Queue::<u32>::new(4)?;
    let value = Value::new(0u64)?;
    let lock = Lock::new()?;
    let event = Event::new()?;
    let (a, b) = pipe(true)?;
    let mut via_server = Process::builder()
        .start_method(StartMethod::ForkServer)
        .entry(exit_code, 0);
    via_server.start()?;
    ensure_eq!(join_code(&via_server)?, 0);
    let server = proclife::fork_server_pid().ok_or("no fork server after a fork-server start")?;
    let me = std::process::id() as i32;
    let result = (|| -> TestResult {
        let fds = common::fd_snapshot();
        let server_sockets = common::procfs::socket_inodes_of(server.as_raw());
        let my_sockets = common::procfs::socket_inodes_of(me);
        ensure!(
            !server_sockets.is_empty(),
            "expected the fork server to hold its request socket"
        );
        // (a) Nothing named.
        let named: Vec<(u64, String)> = common::procfs::unix_sockets()
            .into_iter()
            .filter(|(inode, path)| {
                (server_sockets.contains(inode) || my_sockets.contains(inode)) && !path.is_empty()
            })
            .collect();
        ensure!(
            named.is_empty(),
            "expected only unnamed sockets; named: {named:?}"
        );
        let shared: Vec<&String> = fds
            .values()
            .filter(|t| t.starts_with('/') && !t.starts_with("/memfd:") && t.contains("shm"))
            .collect();
        ensure!(
            shared.is_empty(),
            "expected no shared object with a path; found {shared:?}"
        );
        for (what, fd) in [
            ("queue", queue.as_fd().as_raw_fd()),
            ("value", value.as_fd().as_raw_fd()),
            ("lock", lock.as_fd().as_raw_fd()),
            ("event", event.as_fd().as_raw_fd()),
        ] {
            let target = fds.get(&fd).cloned().unwrap_or_default();
            ensure!(
                target.starts_with("/memfd:"),
                "expected the {what} to be an unnamed memfd; fd {fd} is {target:?}"
            );
        }
        // (b) Another uid: open every runtime fd of this process and of the server.
        let mut targets: Vec<String> = [
            queue.as_fd().as_raw_fd(),
            value.as_fd().as_raw_fd(),
            lock.as_fd().as_raw_fd(),
            event.as_fd().as_raw_fd(),
            a.fd()?.as_raw_fd(),
            b.fd()?.as_raw_fd(),
        ]
        .iter()
        .map(|fd| format!("/proc/{me}/fd/{fd}"))
        .collect();
        for entry in std::fs::read_dir(format!("/proc/{}/fd", server.as_raw()))?.flatten() {
            targets.push(entry.path().display().to_string());
        }
        let uid = 40_000 + std::process::id() % 20_000;
        let mut foreign = Process::new(move || {
            common::close_all_but(2);
            let gid = nix::unistd::Gid::from_raw(uid);
            let user = nix::unistd::Uid::from_raw(uid);
            if nix::unistd::setresgid(gid, gid, gid).is_err()
                || nix::unistd::setresuid(user, user, user).is_err()
            {
                std::process::exit(77);
            }
            for path in &targets {
                match std::fs::File::open(path) {
                    Err(e) if e.raw_os_error() == Some(libc::EACCES) => {}
                    other => {
                        eprintln!("uid {uid} opening {path}: {other:?}, expected EACCES");
                        std::process::exit(1);
                    }
                }
            }
            std::process::exit(0)
        });
        foreign.start()?;
        match join_code(&foreign)? {
            0 => {}
            77 => println!("t46: cannot change uid here; the foreign-uid part is skipped"),
            code => {
                return Err(format!(
                    "expected a process of another uid to get EACCES for every runtime fd \
                     (exit 0); it exited with {code} (the path is on its stderr)"
                )
                .into());
            }
        }
        // (c) A forked child holds no copy of the server's request socket: the server's
        // peer is the parent's end, which the child must not have.
        let (report_rx, mut report_tx) = pipe(false)?;
        let mut child = Process::new(move || {
            let held: Vec<u64> = common::procfs::socket_inodes_of(std::process::id() as i32)
                .into_iter()
                .collect();
            let _ = report_tx.send(&held);
        });
        child.start()?;
        let mut report_rx = report_rx;
        ensure!(
            report_rx.poll(Some(AT_ONCE))?,
            "expected the forked child to report its sockets at once"
        );
        let held: Vec<u64> = report_rx.recv()?;
        ensure_eq!(join_code(&child)?, 0);
        // This process's end of the server's socket: every socket it holds but the
        // test's own pipes.
        let ours: BTreeSet<u64> = [
            a.fd()?.as_raw_fd(),
            b.fd()?.as_raw_fd(),
            report_rx.fd()?.as_raw_fd(),
        ]
        .iter()
        .filter_map(|&fd| common::procfs::socket_inode(fd))
        .collect();
        let peers: BTreeSet<u64> = common::procfs::socket_inodes_of(me)
            .difference(&ours)
            .copied()
            .collect();
        ensure!(
            peers.len() == 1,
            "expected this process to hold exactly one socket besides the test's pipes (its \
             end of the fork server's socket); it holds {peers:?}"
        );
        let shared: Vec<&u64> = held.iter().filter(|i| peers.contains(i)).collect();
        ensure!(
            shared.is_empty(),
            "expected a forked child to hold no copy of the fork server's socket; it holds \
             {shared:?}"
        );
        Ok(())
    })();
    proclife::stop_fork_server()?;
    result
}

fn main() {
    common::run(vec![
        (
            "deadlines_hold_under_a_signal_storm_t03",
            deadlines_hold_under_a_signal_storm_t03,
        ),
        (
            "sigchld_ignored_joins_return_t12",
            sigchld_ignored_joins_return_t12,
        ),
        (
            "foreign_waitpid_reaper_steals_no_hang_t12",
            foreign_waitpid_reaper_steals_no_hang_t12,
        ),
        (
            "group_sigkill_leaves_nothing_behind_t16_t18",
            group_sigkill_leaves_nothing_behind_t16_t18,
        ),
        (
            "no_helpers_left_after_a_storm_t17",
            no_helpers_left_after_a_storm_t17,
        ),
        (
            "children_blocked_on_a_killed_parent_end_t28",
            children_blocked_on_a_killed_parent_end_t28,
        ),
        (
            "untimed_waits_end_when_the_parent_dies_t28",
            untimed_waits_end_when_the_parent_dies_t28,
        ),
        (
            "daemon_waits_sleep_without_parent_checks_t28",
            daemon_waits_sleep_without_parent_checks_t28,
        ),
        (
            "shared_objects_reachable_only_by_this_user_t46_t47",
            shared_objects_reachable_only_by_this_user_t46_t47,
        ),
    ]);
}
