//! The refusal table (`proclife_model::refusals`) against the runtime and against CPython.
//!
//! - `runtime_<id>`: drives the row's situation on real runtime objects (dead peers are real
//!   children started with the fork start method and killed) and checks that the runtime
//!   returns the row's `Error` variant and that `Error::python_for` names the row's exception.
//! - `cpython_agrees_with_the_table`: runs `verify/python/refusals.py` with `python3` and checks
//!   that CPython still raises (or returns, or hangs) exactly as every row says. Without
//!   `python3` on the PATH it is reported as ignored, with the reason on stderr.
//!
//! The children make this runner `harness = false`, one test at a time on the main thread.

use std::fmt::Debug;
use std::os::fd::AsRawFd;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use libtest_mimic::{Arguments, Failed, Trial};
use proclife::ipc::{Array, JoinableQueue, Queue, SimpleQueue, Value, pipe};
use proclife::sync::{
    Barrier, BoundedSemaphore, Condition, Event, Lock, RLock, SEM_VALUE_MAX, Semaphore,
    timeout_from_secs,
};
use proclife::{Error, Process, ProcessState, Site, StartMethod};
use proclife_model::refusals::{CPython, PyRaise, REFUSALS, Refusal};
use proclife_verify::map::{self, variant};

/// Bound on every wait for a child; generous, a loaded machine may be slow to fork.
const BOUND: Duration = Duration::from_secs(30);
/// The timeout of a wait that can only end by its timeout.
const SHORT: Duration = Duration::from_millis(50);
/// A small ring for queues that need no room.
const RING: usize = 4096;

/// A function target deliberately not registered with `proclife::entry!`.
fn unregistered((): ()) -> proclife::TargetResult {
    Ok(())
}

/// The variant name and what `python_for` named, as observed (in this process or a child).
type Observed = (String, Option<(String, String)>);

fn observe(error: &Error, site: Site) -> Observed {
    (
        variant(error),
        error
            .python_for(site)
            .map(|(kind, message)| (kind.to_owned(), message)),
    )
}

fn refused<T: Debug>(result: proclife::Result<T>) -> Result<Error, String> {
    match result {
        Err(error) => Ok(error),
        Ok(value) => Err(format!("expected a refusal, the call returned {value:?}")),
    }
}

fn setup<T>(result: proclife::Result<T>) -> Result<T, String> {
    result.map_err(|e| format!("setting up the situation failed: {e}"))
}

/// A daemon fork child running `body`; it ends by itself after `BOUND` at the latest.
fn child(body: impl FnOnce() + Send + 'static) -> Result<Process, String> {
    let mut process = Process::builder()
        .start_method(StartMethod::Fork)
        .daemon(true)
        .target(body);
    setup(process.start())?;
    Ok(process)
}

/// Kills `process` and reaps it, within `BOUND`.
fn kill(process: &Process) -> Result<(), String> {
    setup(process.kill())?;
    reap(process)
}

fn reap(process: &Process) -> Result<(), String> {
    setup(process.join_timeout(BOUND))?;
    match setup(process.exitcode())? {
        Some(_) => Ok(()),
        None => Err(format!("a child did not end within {BOUND:?}")),
    }
}

/// Waits (bounded) until `barrier` has `n` parties waiting.
fn until_waiting(barrier: &Barrier, n: usize) -> Result<(), String> {
    let start = Instant::now();
    while barrier.n_waiting() < n {
        if start.elapsed() > BOUND {
            return Err(format!("no party reached the barrier within {BOUND:?}"));
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    Ok(())
}

/// A child that takes `take` (a lock) and then signals `ready` and sleeps until killed.
fn holder(take: impl FnOnce() -> bool + Send + 'static) -> Result<Process, String> {
    let ready = Arc::new(setup(Event::new())?);
    let signal = Arc::clone(&ready);
    let process = child(move || {
        if take() {
            signal.set();
            std::thread::sleep(BOUND);
        }
    })?;
    if setup(ready.wait(Some(BOUND)))? {
        Ok(process)
    } else {
        kill(&process)?;
        Err("the child did not take the lock".into())
    }
}

/// A child that takes `take` (a lock) and exits holding it; returns once it is reaped.
fn died_holding(take: impl FnOnce() -> bool + Send + 'static) -> Result<(), String> {
    let process = child(move || {
        let _ = take();
    })?;
    reap(&process)
}

/// `Lock`, `RLock` and `Condition`'s lock, for the rows they share.
trait Mutex: Send + Sync + 'static {
    fn take(&self, timeout: Option<Duration>) -> proclife::Result<bool>;
    fn give(&self) -> proclife::Result<()>;
}

impl Mutex for Lock {
    fn take(&self, timeout: Option<Duration>) -> proclife::Result<bool> {
        self.acquire(timeout)
    }
    fn give(&self) -> proclife::Result<()> {
        self.release()
    }
}

impl Mutex for RLock {
    fn take(&self, timeout: Option<Duration>) -> proclife::Result<bool> {
        self.acquire(timeout)
    }
    fn give(&self) -> proclife::Result<()> {
        self.release()
    }
}

impl Mutex for Value<i32> {
    fn take(&self, timeout: Option<Duration>) -> proclife::Result<bool> {
        self.get_lock().acquire(timeout)
    }
    fn give(&self) -> proclife::Result<()> {
        self.get_lock().release()
    }
}

impl Mutex for Array<i32> {
    fn take(&self, timeout: Option<Duration>) -> proclife::Result<bool> {
        self.get_lock().acquire(timeout)
    }
    fn give(&self) -> proclife::Result<()> {
        self.get_lock().release()
    }
}

impl Mutex for Condition {
    fn take(&self, timeout: Option<Duration>) -> proclife::Result<bool> {
        self.acquire(timeout)
    }
    fn give(&self) -> proclife::Result<()> {
        self.release()
    }
}

/// Releases `lock` while a live child holds it.
fn release_held_by_other(lock: impl Mutex) -> Result<Error, String> {
    let lock = Arc::new(lock);
    let held = Arc::clone(&lock);
    let process = holder(move || held.take(None).is_ok_and(|ok| ok))?;
    let got = refused(lock.give());
    kill(&process)?;
    got
}

/// Acquires `lock` after a child died holding it.
fn acquire_after_holder_died(lock: impl Mutex) -> Result<Error, String> {
    let lock = Arc::new(lock);
    let held = Arc::clone(&lock);
    died_holding(move || held.take(None).is_ok_and(|ok| ok))?;
    refused(lock.take(Some(BOUND)))
}

fn start_twice() -> Result<Error, String> {
    let mut process = Process::builder()
        .start_method(StartMethod::Fork)
        .target(|| {});
    setup(process.start())?;
    reap(&process)?;
    refused(process.start())
}

fn running_process(
    then: impl FnOnce(&mut Process) -> Result<Error, String>,
) -> Result<Error, String> {
    let mut process = child(|| std::thread::sleep(BOUND))?;
    let got = then(&mut process);
    kill(&process)?;
    got
}

fn closed_process(
    then: impl FnOnce(&mut Process) -> Result<Error, String>,
) -> Result<Error, String> {
    let mut process = Process::builder()
        .start_method(StartMethod::Fork)
        .target(|| {});
    setup(process.start())?;
    reap(&process)?;
    setup(process.close())?;
    then(&mut process)
}

/// A duplex pipe whose peer end was held only by a child that was killed.
fn killed_peer(
    then: impl FnOnce(&mut proclife::ipc::Connection) -> Result<Error, String>,
) -> Result<Error, String> {
    let (mut mine, peer) = setup(pipe(true))?;
    let process = child(move || {
        let _peer = peer;
        std::thread::sleep(BOUND);
    })?;
    kill(&process)?;
    then(&mut mine)
}

/// Gives `end` to a child, which is then killed: the child was its last holder.
fn killed_holder(end: proclife::ipc::Connection) -> Result<(), String> {
    let process = child(move || {
        let _end = end;
        std::thread::sleep(BOUND);
    })?;
    kill(&process)
}

/// A NaN timeout, converted as a caller holding Python-style seconds would.
fn nan() -> proclife::Result<Option<Duration>> {
    timeout_from_secs(f64::NAN)
}

fn condition(recursive: bool) -> Result<Condition, String> {
    if recursive {
        setup(Condition::new())
    } else {
        setup(Condition::with_lock(setup(Lock::new())?))
    }
}

/// Drives the situation of the row `id` on real objects; the error the runtime returned.
fn drive(id: &str) -> Result<Error, String> {
    let closed_conn = || -> Result<proclife::ipc::Connection, String> {
        let (mut end, _peer) = setup(pipe(true))?;
        setup(end.close())?;
        Ok(end)
    };
    let queue = |maxsize| setup(Queue::<u8>::with_capacity(maxsize, RING));
    let joinable = |maxsize| setup(JoinableQueue::<u8>::with_capacity(maxsize, RING));
    match id {
        "connection.send.closed" => refused(closed_conn()?.send(&1u8)),
        "connection.send_bytes.closed" => refused(closed_conn()?.send_bytes(b"x")),
        "connection.recv.closed" => refused(closed_conn()?.recv::<u8>()),
        "connection.recv_bytes.closed" => refused(closed_conn()?.recv_bytes()),
        "connection.poll.closed" => refused(closed_conn()?.poll(Some(Duration::ZERO))),
        "connection.fileno.closed" => refused(closed_conn()?.fd().map(|fd| fd.as_raw_fd())),
        "connection.send.read_only" => refused(setup(pipe(false))?.0.send(&1u8)),
        "connection.send_bytes.read_only" => refused(setup(pipe(false))?.0.send_bytes(b"x")),
        "connection.recv.write_only" => refused(setup(pipe(false))?.1.recv::<u8>()),
        "connection.recv_bytes.write_only" => refused(setup(pipe(false))?.1.recv_bytes()),
        "connection.poll.write_only" => refused(setup(pipe(false))?.1.poll(Some(Duration::ZERO))),
        "connection.recv.peer_closed" => {
            let (mut mine, peer) = setup(pipe(true))?;
            drop(peer);
            refused(mine.recv::<u8>())
        }
        "connection.send.peer_closed" => {
            let (reader, mut writer) = setup(pipe(false))?;
            drop(reader);
            refused(writer.send(&1u8))
        }
        "connection.recv.writer_closed" => {
            let (mut reader, writer) = setup(pipe(false))?;
            drop(writer);
            refused(reader.recv::<u8>())
        }
        "connection.send.duplex_peer_closed" => {
            let (mut mine, peer) = setup(pipe(true))?;
            drop(peer);
            refused(mine.send(&1u8))
        }
        "connection.recv.writer_killed" => {
            let (mut reader, writer) = setup(pipe(false))?;
            killed_holder(writer)?;
            refused(reader.recv::<u8>())
        }
        "connection.send.reader_killed" => {
            let (reader, mut writer) = setup(pipe(false))?;
            killed_holder(reader)?;
            refused(writer.send(&1u8))
        }
        "connection.recv.peer_killed" => killed_peer(|c| refused(c.recv::<u8>())),
        "connection.recv_bytes.peer_killed" => killed_peer(|c| refused(c.recv_bytes())),
        "connection.send.peer_killed" => killed_peer(|c| refused(c.send(&1u8))),
        "connection.send_bytes.peer_killed" => killed_peer(|c| refused(c.send_bytes(b"x"))),
        "context.get_context.unknown_method" => refused("bogus".parse::<StartMethod>()),
        "context.set_start_method.already_set" => {
            // Reading the method fixes it, as in CPython; setting it again is then refused and
            // leaves it as it was.
            let method = proclife::get_start_method();
            refused(proclife::set_start_method(method))
        }
        "process.start.closure_under_spawn" | "process.start.closure_under_forkserver" => {
            let method = if id.ends_with("spawn") {
                StartMethod::Spawn
            } else {
                StartMethod::ForkServer
            };
            refused(
                Process::builder()
                    .start_method(method)
                    .target(|| {})
                    .start(),
            )
        }
        "process.start.unregistered_entry" => refused(
            Process::builder()
                .start_method(StartMethod::Spawn)
                .entry(unregistered, ())
                .start(),
        ),
        "process.start.threaded_fork" => {
            let (release, wait) = std::sync::mpsc::channel::<()>();
            let thread = std::thread::spawn(move || wait.recv_timeout(BOUND).is_ok());
            let refusal = refused(
                Process::builder()
                    .start_method(StartMethod::Fork)
                    .target(|| {})
                    .start(),
            );
            let _ = release.send(());
            thread
                .join()
                .map_err(|_| "the helper thread panicked".to_owned())?;
            refusal
        }
        "connection.recv_bytes.too_long" => {
            let (mut mine, mut peer) = setup(pipe(true))?;
            setup(peer.send_bytes(b"0123456789"))?;
            setup(mine.set_max_frame(4))?;
            refused(mine.recv_bytes())
        }
        "connection.send_bytes.too_long" => {
            let (mut mine, _peer) = setup(pipe(true))?;
            setup(mine.set_max_frame(4))?;
            refused(mine.send_bytes(b"0123456789"))
        }
        "connection.recv.not_decodable" => {
            let (mut mine, mut peer) = setup(pipe(true))?;
            setup(peer.send_bytes(&[0xff]))?;
            refused(mine.recv::<String>())
        }
        "queue.put.closed"
        | "queue.put_nowait.closed"
        | "queue.get.closed"
        | "queue.get_nowait.closed" => {
            let q = queue(0)?;
            q.close();
            match id {
                "queue.put.closed" => refused(q.put(&1)),
                "queue.put_nowait.closed" => refused(q.put_nowait(&1)),
                "queue.get.closed" => refused(q.get()),
                _ => refused(q.get_nowait()),
            }
        }
        "joinable_queue.put.closed"
        | "joinable_queue.put_nowait.closed"
        | "joinable_queue.get.closed"
        | "joinable_queue.get_nowait.closed" => {
            let q = joinable(0)?;
            q.close();
            match id {
                "joinable_queue.put.closed" => refused(q.put(&1)),
                "joinable_queue.put_nowait.closed" => refused(q.queue().put_nowait(&1)),
                "joinable_queue.get.closed" => refused(q.get()),
                _ => refused(q.queue().get_nowait()),
            }
        }
        "queue.put.full_timeout" | "queue.put_nowait.full" => {
            let q = queue(1)?;
            setup(q.put(&1))?;
            if id == "queue.put_nowait.full" {
                refused(q.put_nowait(&2))
            } else {
                refused(q.put_timeout(&2, Some(SHORT)))
            }
        }
        "joinable_queue.put.full_timeout" | "joinable_queue.put_nowait.full" => {
            let q = joinable(1)?;
            setup(q.put(&1))?;
            if id == "joinable_queue.put_nowait.full" {
                refused(q.queue().put_nowait(&2))
            } else {
                refused(q.queue().put_timeout(&2, Some(SHORT)))
            }
        }
        "queue.get.empty_timeout" => refused(queue(0)?.get_timeout(Some(SHORT))),
        "queue.get_nowait.empty" => refused(queue(0)?.get_nowait()),
        "joinable_queue.get.empty_timeout" => {
            refused(joinable(0)?.queue().get_timeout(Some(SHORT)))
        }
        "joinable_queue.get_nowait.empty" => refused(joinable(0)?.queue().get_nowait()),
        "joinable_queue.task_done.too_many" => refused(joinable(0)?.task_done()),
        "queue.put.too_large" => {
            let q = setup(Queue::<Vec<u8>>::with_capacity(0, RING))?;
            refused(q.put(&vec![0u8; RING + 1]))
        }
        "simple_queue.put.closed" | "simple_queue.get.closed" => {
            let q = setup(SimpleQueue::<u8>::with_capacity(RING))?;
            q.close();
            if id == "simple_queue.put.closed" {
                refused(q.put(&1))
            } else {
                refused(q.get())
            }
        }
        "value.get.holder_died" => {
            let value = Arc::new(setup(Value::new(7i32))?);
            let held = Arc::clone(&value);
            died_holding(move || held.get_lock().acquire(None).is_ok_and(|ok| ok))?;
            refused(value.get())
        }
        "value.acquire.holder_died" => acquire_after_holder_died(setup(Value::new(7i32))?),
        "value.release.unowned" => refused(setup(Value::new(7i32))?.get_lock().release()),
        "array.acquire.holder_died" => acquire_after_holder_died(setup(Array::new(3, 0i32))?),
        "array.release.unowned" => refused(setup(Array::new(3, 0i32))?.get_lock().release()),
        "array.getitem.holder_died" | "array.setitem.holder_died" => {
            let array = Arc::new(setup(Array::new(3, 0i32))?);
            let held = Arc::clone(&array);
            died_holding(move || held.get_lock().acquire(None).is_ok_and(|ok| ok))?;
            if id == "array.getitem.holder_died" {
                refused(array.get(0))
            } else {
                refused(array.set(0, 1))
            }
        }
        "array.getitem.out_of_range" => refused(setup(Array::new(3, 0i32))?.get(3)),
        "array.setitem.out_of_range" => refused(setup(Array::new(3, 0i32))?.set(3, 1)),
        "lock.release.unheld" => refused(setup(Lock::new())?.release()),
        "lock.release.twice" => {
            let lock = setup(Lock::new())?;
            setup(lock.acquire(None))?;
            setup(lock.release())?;
            refused(lock.release())
        }
        "lock.release.held_by_other" => release_held_by_other(setup(Lock::new())?),
        "lock.acquire.already_held" => {
            let lock = setup(Lock::new())?;
            setup(lock.acquire(None))?;
            refused(lock.acquire(Some(SHORT)))
        }
        "lock.acquire.holder_died" => acquire_after_holder_died(setup(Lock::new())?),
        "rlock.acquire.holder_died" => acquire_after_holder_died(setup(RLock::new())?),
        "condition.acquire.holder_died" => acquire_after_holder_died(setup(Condition::new())?),
        "condition.wait.holder_died" => {
            // The caller holds the lock when the child starts, so the child takes it only
            // once the wait released it; it notifies and ends holding it.
            let condition = Arc::new(setup(Condition::new())?);
            setup(condition.acquire(None))?;
            let notifier = Arc::clone(&condition);
            let process = child(move || {
                if notifier.acquire(Some(BOUND)).is_ok_and(|ok| ok) {
                    let _ = notifier.notify(1);
                }
            })?;
            let got = refused(condition.wait(Some(BOUND)));
            reap(&process)?;
            got
        }
        "rlock.release.unheld" => refused(setup(RLock::new())?.release()),
        "rlock.release.held_by_other" => release_held_by_other(setup(RLock::new())?),
        "semaphore.release.at_max" => refused(setup(Semaphore::new(SEM_VALUE_MAX))?.release()),
        "semaphore.new.above_max" => refused(Semaphore::new(SEM_VALUE_MAX + 1)),
        "bounded_semaphore.release.over" => refused(setup(BoundedSemaphore::new(1))?.release()),
        "bounded_semaphore.new.above_max" => refused(BoundedSemaphore::new(SEM_VALUE_MAX + 1)),
        "barrier.wait.aborted" => {
            let barrier = setup(Barrier::new(2, None))?;
            setup(barrier.abort())?;
            refused(barrier.wait_timeout(Some(SHORT)))
        }
        "barrier.wait.timeout" => refused(setup(Barrier::new(2, None))?.wait_timeout(Some(SHORT))),
        "barrier.wait.after_timeout" => {
            let barrier = setup(Barrier::new(2, None))?;
            refused(barrier.wait_timeout(Some(SHORT)))?;
            refused(barrier.wait_timeout(Some(SHORT)))
        }
        "barrier.wait.party_died" => {
            let barrier = Arc::new(setup(Barrier::new(3, None))?);
            let party = Arc::clone(&barrier);
            let process = child(move || {
                let _ = party.wait_timeout(Some(BOUND));
            })?;
            until_waiting(&barrier, 1)?;
            kill(&process)?;
            refused(barrier.wait_timeout(Some(BOUND)))
        }
        "barrier.new.zero_parties" => refused(Barrier::new(0, None)),
        "lock.acquire.timeout_nan" => {
            let lock = setup(Lock::new())?;
            refused(nan().and_then(|t| lock.acquire(t)))
        }
        "rlock.acquire.timeout_nan" => {
            let lock = setup(RLock::new())?;
            refused(nan().and_then(|t| lock.acquire(t)))
        }
        "semaphore.acquire.timeout_nan" => {
            let sem = setup(Semaphore::new(0))?;
            refused(nan().and_then(|t| sem.acquire(t)))
        }
        "bounded_semaphore.acquire.timeout_nan" => {
            let sem = setup(BoundedSemaphore::new(0))?;
            refused(nan().and_then(|t| sem.acquire(t)))
        }
        "event.wait.timeout_nan" => {
            let event = setup(Event::new())?;
            refused(nan().and_then(|t| event.wait(t)))
        }
        "condition.wait.timeout_nan" | "condition.wait_for.timeout_nan" => {
            let cond = condition(true)?;
            setup(cond.acquire(None))?;
            if id == "condition.wait.timeout_nan" {
                refused(nan().and_then(|t| cond.wait(t)))
            } else {
                refused(nan().and_then(|t| cond.wait_for(|| false, t)))
            }
        }
        "barrier.wait.timeout_nan" => {
            let barrier = setup(Barrier::new(2, None))?;
            refused(nan().and_then(|t| barrier.wait_timeout(t)))
        }
        "queue.get.timeout_nan" => {
            let q = queue(0)?;
            refused(nan().and_then(|t| q.get_timeout(t)))
        }
        "queue.put.timeout_nan" => {
            let q = queue(1)?;
            refused(nan().and_then(|t| q.put_timeout(&1, t)))
        }
        "joinable_queue.get.timeout_nan" => {
            let q = joinable(0)?;
            refused(nan().and_then(|t| q.queue().get_timeout(t)))
        }
        "connection.poll.timeout_nan" => {
            let (mine, _peer) = setup(pipe(true))?;
            refused(nan().and_then(|t| mine.poll(t)))
        }
        "process.start.twice" => start_twice(),
        "process.join.not_started" => refused(Process::new(|| {}).join()),
        "process.terminate.not_started" => refused(Process::new(|| {}).terminate()),
        "process.kill.not_started" => refused(Process::new(|| {}).kill()),
        "process.sentinel.not_started" => {
            refused(Process::new(|| {}).sentinel().map(|fd| fd.as_raw_fd()))
        }
        "process.close.running" => running_process(|p| refused(p.close())),
        "process.join.timeout_nan" => running_process(|p| refused(p.join_timeout_secs(f64::NAN))),
        "process.set_daemon.started" => {
            let mut process = Process::builder()
                .start_method(StartMethod::Fork)
                .target(|| {});
            setup(process.start())?;
            reap(&process)?;
            refused(process.set_daemon(true))
        }
        "process.run.after_start" => {
            let mut process = Process::builder()
                .start_method(StartMethod::Fork)
                .target(|| {});
            setup(process.start())?;
            let got = refused(process.run());
            reap(&process)?;
            got
        }
        "process.start.closed" => closed_process(|p| refused(p.start())),
        "process.join.closed" => closed_process(|p| refused(p.join())),
        "process.is_alive.closed" => closed_process(|p| refused(p.is_alive())),
        "process.terminate.closed" => closed_process(|p| refused(p.terminate())),
        "process.kill.closed" => closed_process(|p| refused(p.kill())),
        "process.exitcode.closed" => closed_process(|p| refused(p.exitcode())),
        "process.pid.closed" => closed_process(|p| refused(p.pid())),
        _ => match id.split_once('.') {
            Some(("condition" | "condition_with_lock", rest)) => {
                let cond = condition(id.starts_with("condition."))?;
                match rest {
                    "wait.unowned" => refused(cond.wait(Some(SHORT))),
                    "wait_for.unowned" => refused(cond.wait_for(|| false, Some(SHORT))),
                    "notify.unowned" => refused(cond.notify(1)),
                    "notify_all.unowned" => refused(cond.notify_all()),
                    "release.unowned" => refused(cond.release()),
                    _ => Err(format!("no driver for {id}")),
                }
            }
            _ => Err(format!("no driver for {id}")),
        },
    }
}

/// Runs `body` in a fork child (daemonic when `daemon`), runs `meanwhile` here, and returns
/// what the child observed.
fn observed_in_child(
    daemon: bool,
    body: impl FnOnce() -> Option<Observed> + Send + 'static,
    meanwhile: impl FnOnce() -> Result<(), String>,
) -> Result<Observed, String> {
    let (mut reader, mut writer) = setup(pipe(false))?;
    let mut process = Process::builder()
        .start_method(StartMethod::Fork)
        .daemon(daemon)
        .target(move || {
            let observed = body();
            let _ = writer.send(&observed);
        });
    setup(process.start())?;
    let got = meanwhile().and_then(|()| {
        if setup(reader.poll(Some(BOUND)))? {
            setup(reader.recv::<Option<Observed>>())
        } else {
            Err(format!("the child did not report within {BOUND:?}"))
        }
    });
    if got.is_err() {
        setup(process.kill())?;
    }
    reap(&process)?;
    got?.ok_or_else(|| "expected a refusal, the child's call returned".to_owned())
}

/// Runs `wait` (an untimed wait) in a non-daemon grandchild whose parent is SIGKILLed once
/// the grandchild sleeps in that wait (so the wait is in progress when the parent dies), and
/// returns what the wait gave it. The grandchild is killed if it does not report within
/// [`BOUND`], and whatever else fails.
fn orphaned_wait(
    site: Site,
    wait: impl FnOnce() -> proclife::Result<()> + Send + 'static,
) -> Result<Observed, String> {
    let (mut reader, mut writer) = setup(pipe(false))?;
    let (mut pids, mut pid_writer) = setup(pipe(false))?;
    let mut middle = Process::builder()
        .start_method(StartMethod::Fork)
        .target(move || {
            let mut grandchild =
                Process::builder()
                    .start_method(StartMethod::Fork)
                    .target(move || {
                        let observed = wait().err().map(|e| observe(&e, site));
                        let _ = writer.send(&observed);
                    });
            if grandchild.start().is_ok() {
                let pid = grandchild.pid().ok().flatten().map(proclife::Pid::as_raw);
                // Its pid is sent once it sleeps in the wait, or when it did not within the
                // bound (the parent then reports what the wait gave, if anything).
                let _ = proclife_testkit::process::wait_state(&grandchild, "blocked", |s| {
                    matches!(s, ProcessState::Blocked(_))
                });
                let _ = pid_writer.send(&pid);
                std::thread::sleep(BOUND);
            }
        });
    setup(middle.start())?;
    let grandchild = if setup(pids.poll(Some(BOUND)))? {
        setup(pids.recv::<Option<i32>>())?
    } else {
        None
    };
    let got = setup(middle.kill())
        .and_then(|()| reap(&middle))
        .and_then(|()| grandchild.ok_or("the middle process did not start its child".into()))
        .and_then(|_| {
            if setup(reader.poll(Some(BOUND)))? {
                setup(reader.recv::<Option<Observed>>())
            } else {
                Err(format!(
                    "the orphaned child did not report within {BOUND:?} of its parent's death"
                ))
            }
        });
    // The grandchild is not ours to reap (it was reparented); it only has to be gone,
    // whatever failed above.
    if let Some(grandchild) = grandchild {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(grandchild),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
    got?.ok_or_else(|| "expected a refusal, the wait returned".to_owned())
}

/// `call` on a running process's handle, from another process (a fork child).
fn from_another_process(
    site: Site,
    call: impl FnOnce(&Process) -> proclife::Result<bool> + Send + 'static,
) -> Result<Observed, String> {
    let sibling = Arc::new(child(|| std::thread::sleep(BOUND))?);
    let inherited = Arc::clone(&sibling);
    let got = observed_in_child(
        false,
        move || call(&inherited).err().map(|e| observe(&e, site)),
        || Ok(()),
    );
    kill(&sibling)?;
    got
}

/// Drives a row whose refusal is observed in a child process; `None` for the other rows.
fn drive_in_child(id: &str, site: Site) -> Option<Result<Observed, String>> {
    Some(match id {
        "barrier.wait.reset_while_waiting" => (|| {
            let barrier = Arc::new(setup(Barrier::new(2, None))?);
            let party = Arc::clone(&barrier);
            observed_in_child(
                true,
                move || {
                    party
                        .wait_timeout(Some(BOUND))
                        .err()
                        .map(|e| observe(&e, site))
                },
                || until_waiting(&barrier, 1).and_then(|()| setup(barrier.reset())),
            )
        })(),
        "event.wait.parent_died" => (|| {
            let event = setup(Event::new())?;
            orphaned_wait(site, move || event.wait(None).map(drop))
        })(),
        "semaphore.acquire.parent_died" => (|| {
            let semaphore = setup(Semaphore::new(0))?;
            orphaned_wait(site, move || semaphore.acquire(None).map(drop))
        })(),
        "condition.wait.parent_died" => (|| {
            let cond = setup(Condition::new())?;
            orphaned_wait(site, move || {
                cond.acquire(None)?;
                cond.wait(None).map(drop)
            })
        })(),
        "queue.get.parent_died" => (|| {
            let queue = setup(Queue::<u8>::with_capacity(0, RING))?;
            orphaned_wait(site, move || queue.get().map(drop))
        })(),
        "queue.put.parent_died" => (|| {
            let queue = setup(Queue::<u8>::with_capacity(1, RING))?;
            setup(queue.put(&1))?;
            orphaned_wait(site, move || queue.put(&2))
        })(),
        "connection.recv.parent_died" => (|| {
            // Both ends stay open here, so the grandchild inherits both (decision 0006).
            let (mut mine, peer) = setup(pipe(true))?;
            let got = orphaned_wait(site, move || mine.recv::<u8>().map(drop));
            drop(peer);
            got
        })(),
        "process.join.not_child" => from_another_process(site, |p| p.join().map(|()| true)),
        "process.is_alive.not_child" => from_another_process(site, Process::is_alive),
        "process.start.not_creator" => {
            let mut fresh = Process::builder()
                .start_method(StartMethod::Fork)
                .target(|| {});
            observed_in_child(
                false,
                move || fresh.start().err().map(|e| observe(&e, site)),
                || Ok(()),
            )
        }
        "process.start.daemonic_parent" => observed_in_child(
            true,
            move || {
                let mut grandchild = Process::builder()
                    .start_method(StartMethod::Fork)
                    .target(|| {});
                grandchild.start().err().map(|e| observe(&e, site))
            },
            || Ok(()),
        ),
        _ => return None,
    })
}

fn check_runtime(row: &'static Refusal) -> Result<(), Failed> {
    let site = map::site(row).ok_or_else(|| {
        format!(
            "{}: the runtime has no site {:?}.{}",
            row.id, row.object, row.operation
        )
    })?;
    let observed = match drive_in_child(row.id, site) {
        Some(got) => got,
        None => drive(row.id).map(|error| observe(&error, site)),
    }
    .map_err(|e| format!("{}: {e}", row.id))?;
    let names = row
        .names()
        .map(|PyRaise { kind, message }| (kind.to_owned(), message.to_owned()));
    let expected = (row.error.to_owned(), names);
    if observed == expected {
        Ok(())
    } else {
        Err(format!(
            "{} ({site}, {}): expected {expected:?}, the runtime gave {observed:?}",
            row.id, row.situation
        )
        .into())
    }
}

/// What the table says CPython does, in the form `refusals.py` prints it.
fn cpython_json(cpython: &CPython) -> serde_json::Value {
    match cpython {
        CPython::Raises(PyRaise { kind, message }) => {
            serde_json::json!({"raised": [kind, message]})
        }
        CPython::Returns(repr) => serde_json::json!({"returned": repr}),
        CPython::Hangs => serde_json::json!({"hangs": null}),
    }
}

fn check_cpython(python: &Path) -> Result<(), Failed> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("python/refusals.py");
    let output = std::process::Command::new(python)
        .arg(&script)
        .output()
        .map_err(|e| format!("running {}: {e}", script.display()))?;
    if !output.status.success() {
        return Err(format!(
            "{} failed ({}): {}",
            script.display(),
            output.status,
            String::from_utf8_lossy(&output.stderr)
        )
        .into());
    }
    let report: serde_json::Value = serde_json::from_slice(&output.stdout)
        .map_err(|e| format!("{} printed no JSON: {e}", script.display()))?;
    let version = report["python"].as_str().unwrap_or("?").to_owned();
    let mut parts = version.split('.').map(|part| part.parse::<u32>().ok());
    let Some((Some(major), Some(minor))) = parts.next().zip(parts.next()) else {
        return Err(format!("{} printed no version (got {version:?})", script.display()).into());
    };
    let rows = report["rows"]
        .as_object()
        .ok_or("the report has no rows object")?;
    let mut problems = Vec::new();
    for row in REFUSALS {
        let expected = cpython_json(&row.cpython_in((major, minor)));
        match rows.get(row.id) {
            None => problems.push(format!("{}: refusals.py has no probe for it", row.id)),
            Some(got) => {
                // A hang is reported with how long the probe waited; only the kind matters.
                let same = if expected.get("hangs").is_some() {
                    got.get("hangs").is_some()
                } else {
                    *got == expected
                };
                if !same {
                    problems.push(format!(
                        "{}: the table says {expected}, CPython {version} did {got}",
                        row.id
                    ));
                }
            }
        }
    }
    for id in rows.keys() {
        if REFUSALS.iter().all(|row| row.id != id) {
            problems.push(format!("{id}: probed by refusals.py but not in the table"));
        }
    }
    if problems.is_empty() {
        eprintln!("CPython {version} agrees with all {} rows", REFUSALS.len());
        Ok(())
    } else {
        Err(problems.join("\n").into())
    }
}

/// Every deviation names a decision record that exists in `docs/decisions/`.
fn deviations_have_records() -> Result<(), Failed> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/decisions");
    let records: Vec<String> = std::fs::read_dir(&dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?
        .flatten()
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .collect();
    let missing: Vec<String> = REFUSALS
        .iter()
        .filter_map(|row| row.deviation.map(|d| (row.id, d.decision)))
        .filter(|(_, decision)| {
            !records
                .iter()
                .any(|name| name.starts_with(&format!("{decision}-")))
        })
        .map(|(id, decision)| format!("{id}: no docs/decisions/{decision}-*.md"))
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(missing.join("\n").into())
    }
}

/// `python3` on the PATH, if any.
fn python3() -> Option<std::path::PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join("python3"))
        .find(|candidate| candidate.is_file())
}

fn main() {
    let mut args = Arguments::from_args();
    args.test_threads = Some(1);
    let mut trials: Vec<Trial> = REFUSALS
        .iter()
        .map(|row| Trial::test(format!("runtime_{}", row.id), move || check_runtime(row)))
        .collect();
    let cpython = match python3() {
        Some(python) => Trial::test("cpython_agrees_with_the_table", move || {
            check_cpython(&python)
        }),
        None => {
            eprintln!(
                "SKIPPED cpython_agrees_with_the_table: python3 is not on the PATH, so the \
                 table's CPython column was not checked against CPython"
            );
            Trial::test("cpython_agrees_with_the_table", || Ok(())).with_ignored_flag(true)
        }
    };
    trials.push(cpython);
    trials.push(Trial::test(
        "every_deviation_has_its_decision_record",
        deviations_have_records,
    ));
    libtest_mimic::run(&args, trials).exit();
}
