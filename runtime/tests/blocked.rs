//! `ProcessState::Blocked` end to end: a real child started through [`Process`] blocks on
//! each primitive, and the parent sees `Blocked(on)` through the child's status slot; then
//! the parent releases the child (it must run on and exit 0), or terminates or kills it
//! (the primitive must still work for the parent afterwards).

#[macro_use]
extern crate proclife_testkit;
use proclife_testkit as common;
use proclife_testkit::process::{Started, wait_state};

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{TestResult, join_code};
use proclife::ipc::{Connection, JoinableQueue, Queue, RawValue, pipe};
use proclife::sync::{Barrier, Condition, Event, Lock, RLock, Semaphore};
use proclife::{BlockedOn, Error, Process, ProcessState};

/// The bound on every wait of these tests.
const LONG: Duration = Duration::from_secs(20);

/// What a child's body returns: an `Err` ends the child with exit code 1 and its message on
/// the child's stderr.
type ChildResult = Result<(), Box<dyn std::error::Error + Send + Sync>>;

/// What a case's constructor returns.
type Made<T> = Result<T, Box<dyn std::error::Error>>;

/// In a child: fails the body with `what` unless `cond` holds.
fn expect(cond: bool, what: &str) -> ChildResult {
    if cond {
        Ok(())
    } else {
        Err(format!("expected: {what}").into())
    }
}

/// Starts a child named `name` running `body`.
fn start_child(
    name: &str,
    body: impl FnOnce() -> ChildResult + Send + 'static,
) -> Result<Started, Box<dyn std::error::Error>> {
    let mut p = Process::builder().name(name).fallible_target(body);
    p.start()?;
    Ok(Started(p))
}

/// One primitive a child blocks on, with the parent's side of it.
trait Case {
    /// What the child's state says while it waits.
    fn on(&self) -> BlockedOn;
    /// Starts a child that blocks on the primitive and, once released, checks what its
    /// wait returned.
    fn start(&mut self) -> Result<Started, Box<dyn std::error::Error>>;
    /// Releases the waiting child from the parent.
    fn release(&mut self) -> TestResult;
    /// After the released child was joined: checks what its wait left behind.
    fn finish(&mut self) -> TestResult {
        Ok(())
    }
    /// After the blocked child died by a signal: checks that the primitive still works.
    fn after_death(&mut self) -> TestResult;
}

/// Starts the child, waits for `Blocked(on)`, releases it, and checks it runs on and
/// exits 0.
fn released(mut case: impl Case) -> TestResult {
    let on = case.on();
    let p = case.start()?;
    ensure_eq!(
        wait_state(&p, "blocks", |s| s == ProcessState::Blocked(on))?,
        ProcessState::Blocked(on)
    );
    ensure_eq!(p.is_alive()?, true);
    case.release()?;
    let after = wait_state(&p, "leaves the wait", |s| s != ProcessState::Blocked(on))?;
    ensure_matches!(after, ProcessState::Running | ProcessState::Terminated(0));
    ensure_eq!(join_code(&p)?, 0);
    ensure_eq!(p.state()?, ProcessState::Terminated(0));
    ensure_eq!(p.is_alive()?, false);
    case.finish()
}

/// Starts the child, waits for `Blocked(on)`, ends it with `signal` (SIGTERM through
/// `terminate`, SIGKILL through `kill`), and checks the primitive afterwards.
fn signalled(mut case: impl Case, signal: i32) -> TestResult {
    let on = case.on();
    let p = case.start()?;
    wait_state(&p, "blocks", |s| s == ProcessState::Blocked(on))?;
    ensure_eq!(p.is_alive()?, true);
    if signal == libc::SIGTERM {
        p.terminate()?;
    } else {
        p.kill()?;
    }
    ensure_eq!(join_code(&p)?, -signal);
    ensure_eq!(p.state()?, ProcessState::Terminated(-signal));
    ensure_eq!(p.is_alive()?, false);
    case.after_death()
}

/// A `Lock` the parent holds; the child waits to acquire it.
struct LockCase {
    lock: Arc<Lock>,
}

fn lock() -> Made<LockCase> {
    let lock = Arc::new(Lock::new()?);
    ensure!(lock.acquire(None)?, "the parent takes the lock");
    Ok(LockCase { lock })
}

impl Case for LockCase {
    fn on(&self) -> BlockedOn {
        BlockedOn::Lock
    }
    fn start(&mut self) -> Result<Started, Box<dyn std::error::Error>> {
        let lock = Arc::clone(&self.lock);
        start_child("lock-waiter", move || {
            expect(
                lock.acquire(Some(LONG))?,
                "acquired once the parent released",
            )?;
            expect(lock.is_held(), "held by the child")?;
            Ok(lock.release()?)
        })
    }
    fn release(&mut self) -> TestResult {
        Ok(self.lock.release()?)
    }
    fn finish(&mut self) -> TestResult {
        ensure!(!self.lock.is_held(), "the child released the lock");
        ensure!(self.lock.acquire(Some(Duration::ZERO))?, "free again");
        Ok(self.lock.release()?)
    }
    fn after_death(&mut self) -> TestResult {
        // The dead child only waited: the lock is still the parent's, and not OwnerDied.
        ensure!(self.lock.is_held(), "still held by the parent");
        self.lock.release()?;
        ensure!(
            self.lock.acquire(Some(Duration::ZERO))?,
            "free, not OwnerDied"
        );
        Ok(self.lock.release()?)
    }
}

/// An `RLock` the parent holds twice; the child waits to acquire it.
struct RLockCase {
    lock: Arc<RLock>,
}

fn rlock() -> Made<RLockCase> {
    let lock = Arc::new(RLock::new()?);
    ensure!(lock.acquire(None)?, "first level");
    ensure!(lock.acquire(None)?, "second level");
    Ok(RLockCase { lock })
}

impl Case for RLockCase {
    fn on(&self) -> BlockedOn {
        BlockedOn::RLock
    }
    fn start(&mut self) -> Result<Started, Box<dyn std::error::Error>> {
        let lock = Arc::clone(&self.lock);
        start_child("rlock-waiter", move || {
            expect(
                lock.acquire(Some(LONG))?,
                "acquired once the parent released",
            )?;
            expect(lock.depth() == 1, "the child holds one level")?;
            Ok(lock.release()?)
        })
    }
    fn release(&mut self) -> TestResult {
        self.lock.release()?;
        ensure_eq!(self.lock.depth(), 1);
        Ok(self.lock.release()?)
    }
    fn finish(&mut self) -> TestResult {
        ensure!(self.lock.acquire(Some(Duration::ZERO))?, "free again");
        Ok(self.lock.release()?)
    }
    fn after_death(&mut self) -> TestResult {
        ensure_eq!(self.lock.depth(), 2);
        self.lock.release()?;
        self.lock.release()?;
        ensure!(
            self.lock.acquire(Some(Duration::ZERO))?,
            "free, not OwnerDied"
        );
        Ok(self.lock.release()?)
    }
}

/// A `Semaphore(0)`; the child waits for a permit.
struct SemaphoreCase {
    sem: Arc<Semaphore>,
}

fn semaphore() -> Made<SemaphoreCase> {
    Ok(SemaphoreCase {
        sem: Arc::new(Semaphore::new(0)?),
    })
}

impl Case for SemaphoreCase {
    fn on(&self) -> BlockedOn {
        BlockedOn::Semaphore
    }
    fn start(&mut self) -> Result<Started, Box<dyn std::error::Error>> {
        let sem = Arc::clone(&self.sem);
        start_child("semaphore-waiter", move || {
            expect(sem.acquire(Some(LONG))?, "got the permit")
        })
    }
    fn release(&mut self) -> TestResult {
        Ok(self.sem.release()?)
    }
    fn finish(&mut self) -> TestResult {
        ensure_eq!(self.sem.get_value(), 0);
        Ok(())
    }
    fn after_death(&mut self) -> TestResult {
        ensure_eq!(self.sem.get_value(), 0);
        self.sem.release()?;
        ensure!(
            self.sem.acquire(Some(Duration::ZERO))?,
            "the dead waiter took no permit"
        );
        Ok(())
    }
}

/// An `Event`; the child waits for it to be set.
struct EventCase {
    event: Arc<Event>,
}

fn event() -> Made<EventCase> {
    Ok(EventCase {
        event: Arc::new(Event::new()?),
    })
}

impl Case for EventCase {
    fn on(&self) -> BlockedOn {
        BlockedOn::Event
    }
    fn start(&mut self) -> Result<Started, Box<dyn std::error::Error>> {
        let event = Arc::clone(&self.event);
        start_child("event-waiter", move || {
            expect(event.wait(Some(LONG))?, "the event was set")
        })
    }
    fn release(&mut self) -> TestResult {
        self.event.set();
        Ok(())
    }
    fn after_death(&mut self) -> TestResult {
        // `set` wakes and never waits for a waiter, so the dead one cannot make it hang.
        self.event.set();
        ensure!(self.event.is_set(), "set");
        ensure!(self.event.wait(Some(Duration::ZERO))?, "a set event passes");
        self.event.clear();
        ensure!(!self.event.wait(Some(Duration::ZERO))?, "cleared");
        Ok(())
    }
}

/// A `Condition` and a shared flag; the child waits for the flag under the condition.
struct ConditionCase {
    cond: Arc<Condition>,
    flag: Arc<RawValue<u32>>,
}

fn condition() -> Made<ConditionCase> {
    Ok(ConditionCase {
        cond: Arc::new(Condition::new()?),
        flag: Arc::new(RawValue::new(0)?),
    })
}

impl Case for ConditionCase {
    fn on(&self) -> BlockedOn {
        BlockedOn::Condition
    }
    fn start(&mut self) -> Result<Started, Box<dyn std::error::Error>> {
        let (cond, flag) = (Arc::clone(&self.cond), Arc::clone(&self.flag));
        start_child("condition-waiter", move || {
            expect(cond.acquire(Some(LONG))?, "took the condition's lock")?;
            let seen = cond.wait_for(|| flag.get() == 1, Some(LONG))?;
            cond.release()?;
            expect(seen, "notified with the flag set")
        })
    }
    fn release(&mut self) -> TestResult {
        // The waiter released the lock inside `wait`, so this does not block for long.
        ensure!(self.cond.acquire(Some(LONG))?, "the parent takes the lock");
        self.flag.set(1);
        self.cond.notify_all()?;
        Ok(self.cond.release()?)
    }
    fn after_death(&mut self) -> TestResult {
        // The child died asleep in `wait`, without the lock: no OwnerDied, and `notify`
        // does not wait for the dead waiter.
        ensure!(
            self.cond.acquire(Some(Duration::ZERO))?,
            "the lock is free, not OwnerDied"
        );
        self.cond.notify_all()?;
        ensure!(
            !self.cond.wait(Some(Duration::from_millis(1)))?,
            "nobody else notifies"
        );
        Ok(self.cond.release()?)
    }
}

/// A `Barrier(2)`; the child waits for the second party.
struct BarrierCase {
    barrier: Arc<Barrier>,
}

fn barrier() -> Made<BarrierCase> {
    // A long default timeout: only the liveness check can break it within the bounds below.
    Ok(BarrierCase {
        barrier: Arc::new(Barrier::new(2, Some(Duration::from_secs(60)))?),
    })
}

impl Case for BarrierCase {
    fn on(&self) -> BlockedOn {
        BlockedOn::Barrier
    }
    fn start(&mut self) -> Result<Started, Box<dyn std::error::Error>> {
        let barrier = Arc::clone(&self.barrier);
        start_child("barrier-party", move || {
            let index = barrier.wait()?;
            expect(index < 2, "an arrival index")
        })
    }
    fn release(&mut self) -> TestResult {
        ensure_eq!(self.barrier.n_waiting(), 1);
        let index = self.barrier.wait()?;
        ensure!(index < 2, "an arrival index");
        Ok(())
    }
    fn finish(&mut self) -> TestResult {
        ensure!(!self.barrier.broken(), "passed, not broken");
        ensure_eq!(self.barrier.n_waiting(), 0);
        Ok(())
    }
    fn after_death(&mut self) -> TestResult {
        let start = Instant::now();
        let outcome = self.barrier.wait_timeout(Some(Duration::from_secs(60)));
        ensure_matches!(outcome, Err(Error::BrokenBarrier));
        ensure!(
            start.elapsed() < Duration::from_secs(30),
            "broken by the dead party, not by the timeout"
        );
        ensure!(self.barrier.broken(), "stays broken");
        self.barrier.reset()?;
        ensure!(!self.barrier.broken(), "reset");
        ensure_eq!(self.barrier.n_waiting(), 0);
        Ok(())
    }
}

/// A one-way pipe; the child waits in `recv` on its read end.
struct RecvCase {
    rx: Option<Connection>,
    tx: Connection,
}

fn recv() -> Made<RecvCase> {
    let (rx, tx) = pipe(false)?;
    Ok(RecvCase { rx: Some(rx), tx })
}

impl Case for RecvCase {
    fn on(&self) -> BlockedOn {
        BlockedOn::Recv
    }
    fn start(&mut self) -> Result<Started, Box<dyn std::error::Error>> {
        // The read end moves into the child's target, which the parent drops on start:
        // after that only the child can read.
        let mut rx = self
            .rx
            .take()
            .ok_or("the read end was already handed out")?;
        start_child("receiver", move || {
            let value: u64 = rx.recv()?;
            expect(value == 42, "received 42")
        })
    }
    fn release(&mut self) -> TestResult {
        Ok(self.tx.send(&42u64)?)
    }
    fn after_death(&mut self) -> TestResult {
        // The only reader died: the send fails at once instead of hanging.
        ensure_matches!(self.tx.send(&1u64), Err(Error::Disconnected));
        Ok(())
    }
}

/// An empty queue; the child waits in `get`.
struct GetCase {
    queue: Arc<Queue<u64>>,
}

fn queue_get() -> Made<GetCase> {
    Ok(GetCase {
        queue: Arc::new(Queue::with_capacity(1, 4096)?),
    })
}

impl Case for GetCase {
    fn on(&self) -> BlockedOn {
        BlockedOn::Recv
    }
    fn start(&mut self) -> Result<Started, Box<dyn std::error::Error>> {
        let queue = Arc::clone(&self.queue);
        start_child("getter", move || {
            let value = queue.get_timeout(Some(LONG))?;
            expect(value == 7, "got 7")
        })
    }
    fn release(&mut self) -> TestResult {
        Ok(self.queue.put(&7)?)
    }
    fn finish(&mut self) -> TestResult {
        ensure!(self.queue.empty(), "the child took the item");
        Ok(())
    }
    fn after_death(&mut self) -> TestResult {
        ensure!(self.queue.empty(), "still empty");
        self.queue.put_timeout(&8, Some(LONG))?;
        ensure_eq!(self.queue.get_nowait()?, 8);
        Ok(())
    }
}

/// A full queue (`maxsize` 1, one item in it); the child waits in `put`.
struct PutCase {
    queue: Arc<Queue<u64>>,
}

fn queue_put() -> Made<PutCase> {
    let queue = Arc::new(Queue::with_capacity(1, 4096)?);
    queue.put_nowait(&1)?;
    ensure!(queue.full(), "full");
    Ok(PutCase { queue })
}

impl Case for PutCase {
    fn on(&self) -> BlockedOn {
        BlockedOn::Send
    }
    fn start(&mut self) -> Result<Started, Box<dyn std::error::Error>> {
        let queue = Arc::clone(&self.queue);
        start_child("putter", move || Ok(queue.put_timeout(&2, Some(LONG))?))
    }
    fn release(&mut self) -> TestResult {
        ensure_eq!(self.queue.get()?, 1);
        Ok(())
    }
    fn finish(&mut self) -> TestResult {
        ensure_eq!(self.queue.get_nowait()?, 2);
        ensure!(self.queue.empty(), "nothing else");
        Ok(())
    }
    fn after_death(&mut self) -> TestResult {
        // The dead child's item was never published; the queue holds exactly the first.
        ensure_eq!(self.queue.qsize(), 1);
        ensure_eq!(self.queue.get_nowait()?, 1);
        self.queue.put_nowait(&3)?;
        ensure_eq!(self.queue.get_nowait()?, 3);
        ensure!(self.queue.empty(), "nothing else");
        Ok(())
    }
}

/// The child joins a grandchild that waits for a gate.
struct JoinCase {
    gate: Arc<Event>,
    grandchild: Arc<RawValue<i32>>,
}

fn join_grandchild() -> Made<JoinCase> {
    Ok(JoinCase {
        gate: Arc::new(Event::new()?),
        grandchild: Arc::new(RawValue::new(0)?),
    })
}

impl Case for JoinCase {
    fn on(&self) -> BlockedOn {
        BlockedOn::Join
    }
    fn start(&mut self) -> Result<Started, Box<dyn std::error::Error>> {
        let (gate, pid) = (Arc::clone(&self.gate), Arc::clone(&self.grandchild));
        start_child("joiner", move || {
            // A daemon, so that it dies with the joiner when the joiner is killed.
            let mut grandchild = Process::builder()
                .name("grandchild")
                .daemon(true)
                .fallible_target(move || expect(gate.wait(Some(LONG))?, "the gate opened"));
            grandchild.start()?;
            pid.set(grandchild.pid()?.map_or(0, |p| p.as_raw()));
            grandchild.join_timeout(LONG)?;
            expect(
                grandchild.exitcode()? == Some(0),
                "the grandchild exited with 0",
            )
        })
    }
    fn release(&mut self) -> TestResult {
        ensure!(self.grandchild.get() > 0, "the grandchild was started");
        self.gate.set();
        Ok(())
    }
    fn after_death(&mut self) -> TestResult {
        // The grandchild is a daemon: its parent's death kills it (PR_SET_PDEATHSIG).
        let pid = self.grandchild.get();
        ensure!(pid > 0, "the grandchild was started");
        let stat = format!("/proc/{pid}/stat");
        let gone = || {
            std::fs::read_to_string(&stat).map_or(true, |s| {
                s.rsplit(')')
                    .next()
                    .is_some_and(|rest| rest.trim_start().starts_with('Z'))
            })
        };
        common::wait_until(LONG, gone)?;
        self.gate.set();
        Ok(())
    }
}

/// A `JoinableQueue` with one unfinished task; the child waits in `join`.
struct JoinableCase {
    tasks: Arc<JoinableQueue<u64>>,
}

fn joinable() -> Made<JoinableCase> {
    let tasks = Arc::new(JoinableQueue::with_capacity(0, 4096)?);
    tasks.put(&5)?;
    Ok(JoinableCase { tasks })
}

impl Case for JoinableCase {
    fn on(&self) -> BlockedOn {
        BlockedOn::Join
    }
    fn start(&mut self) -> Result<Started, Box<dyn std::error::Error>> {
        let tasks = Arc::clone(&self.tasks);
        start_child("queue-joiner", move || {
            expect(tasks.join(Some(LONG))?, "every task was done")
        })
    }
    fn release(&mut self) -> TestResult {
        ensure_eq!(self.tasks.get()?, 5);
        Ok(self.tasks.task_done()?)
    }
    fn after_death(&mut self) -> TestResult {
        ensure!(
            !self.tasks.join(Some(Duration::ZERO))?,
            "the task is still unfinished"
        );
        ensure_eq!(self.tasks.get()?, 5);
        self.tasks.task_done()?;
        ensure!(self.tasks.join(Some(Duration::ZERO))?, "all done");
        Ok(())
    }
}

/// A child that holds a `Lock` and an `RLock` and is blocked on something else when it is
/// killed: the next acquirer of each gets `OwnerDied`.
fn holder_killed_while_blocked_elsewhere() -> TestResult {
    let lock = Arc::new(Lock::new()?);
    let rlock = Arc::new(RLock::new()?);
    let event = Arc::new(Event::new()?);
    let p = {
        let (lock, rlock, event) = (Arc::clone(&lock), Arc::clone(&rlock), Arc::clone(&event));
        start_child("holder", move || {
            expect(lock.acquire(None)?, "took the lock")?;
            expect(rlock.acquire(None)?, "took the rlock")?;
            expect(event.wait(Some(LONG))?, "the event was set")
        })?
    };
    wait_state(&p, "blocks", |s| {
        s == ProcessState::Blocked(BlockedOn::Event)
    })?;
    ensure!(
        !lock.acquire(Some(Duration::ZERO))?,
        "the child holds the lock"
    );
    p.kill()?;
    ensure_eq!(join_code(&p)?, -libc::SIGKILL);
    ensure_matches!(lock.acquire(Some(LONG)), Err(Error::OwnerDied));
    lock.mark_consistent()?;
    lock.release()?;
    ensure_matches!(rlock.acquire(Some(LONG)), Err(Error::OwnerDied));
    rlock.mark_consistent()?;
    rlock.release()?;
    // The event the child waited on still works.
    event.set();
    ensure!(event.wait(Some(Duration::ZERO))?, "set");
    Ok(())
}

/// Three tests per case: released, terminated (SIGTERM), killed (SIGKILL).
macro_rules! trio {
    ($name:literal, $make:ident) => {
        [
            (
                concat!($name, "_released"),
                (|| released($make()?)) as fn() -> TestResult,
            ),
            (
                concat!($name, "_terminated"),
                (|| signalled($make()?, libc::SIGTERM)) as fn() -> TestResult,
            ),
            (
                concat!($name, "_killed"),
                (|| signalled($make()?, libc::SIGKILL)) as fn() -> TestResult,
            ),
        ]
    };
}

fn main() {
    let mut tests: Vec<common::Test> = Vec::new();
    tests.extend(trio!("lock", lock));
    tests.extend(trio!("rlock", rlock));
    tests.extend(trio!("semaphore", semaphore));
    tests.extend(trio!("event", event));
    tests.extend(trio!("condition", condition));
    tests.extend(trio!("barrier", barrier));
    tests.extend(trio!("connection_recv", recv));
    tests.extend(trio!("queue_get_empty", queue_get));
    tests.extend(trio!("queue_put_full", queue_put));
    tests.extend(trio!("process_join", join_grandchild));
    tests.extend(trio!("joinable_queue_join", joinable));
    tests.push((
        "holder_killed_while_blocked_elsewhere",
        holder_killed_while_blocked_elsewhere,
    ));
    common::run(tests);
}
