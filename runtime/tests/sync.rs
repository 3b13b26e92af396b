//! Tests for [`proclife::sync`] across real processes: robustness to death (T19–T22),
//! invalid arguments (T34, T39) and contention (T43, scaled to finish in seconds).
//!
//! Every child is a [`proclife::Process`] (fork method) started through
//! `ipc_support::spawn`; the primitives it shares with the parent are moved into its target
//! behind an `Arc`, and the fork gives the child the same shared memory.

use proclife_testkit::ipc as ipc_support;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use ipc_support::{Child, TestResult, ensure, spawn, wait_until};
use proclife::Error;
use proclife::shm::SharedMemory;
use proclife::sync::{
    Barrier, BoundedSemaphore, Condition, Event, Lock, RLock, SEM_VALUE_MAX, Semaphore,
    timeout_from_secs,
};

const LONG: Duration = Duration::from_secs(20);

fn main() {
    ipc_support::run(vec![
        (
            "t19_lock_holder_killed_marked",
            t19_lock_holder_killed_marked,
        ),
        (
            "t19_lock_holder_killed_unmarked",
            t19_lock_holder_killed_unmarked,
        ),
        (
            "t19_rlock_holder_killed_at_depth_3",
            t19_rlock_holder_killed_at_depth_3,
        ),
        ("t20_condition_waiter_killed", t20_condition_waiter_killed),
        ("t20_event_waiter_killed", t20_event_waiter_killed),
        ("t21_barrier_party_killed", t21_barrier_party_killed),
        (
            "t21_barrier_waiter_sees_a_waiting_party_killed",
            t21_barrier_waiter_sees_a_waiting_party_killed,
        ),
        ("t22_semaphore_holder_killed", t22_semaphore_holder_killed),
        ("t34_timeouts", t34_timeouts),
        (
            "t39_invalid_arguments_and_misuse",
            t39_invalid_arguments_and_misuse,
        ),
        ("t43_lock_contention", t43_lock_contention),
        ("t43_rlock_contention", t43_rlock_contention),
        ("t43_barrier_passes", t43_barrier_passes),
        ("t43_semaphore_contention", t43_semaphore_contention),
        ("t43_condition_notify_storm", t43_condition_notify_storm),
        (
            "semaphore_hands_permits_across_processes",
            semaphore_hands_permits_across_processes,
        ),
        ("rebuild_from_fd", rebuild_from_fd),
        ("guards_release_on_drop", guards_release_on_drop),
        (
            "guard_dropped_by_a_panic_releases",
            guard_dropped_by_a_panic_releases,
        ),
        (
            "lock_guard_excludes_another_process",
            lock_guard_excludes_another_process,
        ),
    ]);
}

/// A counter in shared memory, updated non-atomically (load, then store) so that only the
/// lock under test keeps increments from being lost.
struct Counter {
    shm: SharedMemory,
}

impl Counter {
    fn new() -> Counter {
        Counter {
            shm: SharedMemory::new(8).expect("shared memory"),
        }
    }

    fn word(&self) -> &AtomicU64 {
        // SAFETY: the segment is at least 8 bytes, page-aligned and zero-filled, and
        // lives as long as `self`.
        unsafe { &*self.shm.as_ptr().cast::<AtomicU64>() }
    }

    fn get(&self) -> u64 {
        self.word().load(Ordering::SeqCst)
    }

    fn bump(&self) {
        let v = self.word().load(Ordering::Relaxed);
        std::hint::spin_loop();
        self.word().store(v + 1, Ordering::Relaxed);
    }
}

/// Starts a child that takes `lock` (through `take`), says so, and sleeps until killed.
fn holder(
    ready: &Arc<Event>,
    take: impl FnOnce() -> bool + Send + 'static,
) -> Result<Child, libtest_mimic::Failed> {
    let ready = Arc::clone(ready);
    spawn(move || {
        if !take() {
            return 2;
        }
        ready.set();
        std::thread::sleep(Duration::from_secs(60));
        3
    })
}

fn t19_lock_holder_killed_marked() -> TestResult {
    let lock = Arc::new(Lock::new()?);
    let ready = Arc::new(Event::new()?);
    let held = Arc::clone(&lock);
    let mut child = holder(&ready, move || held.acquire(None).is_ok_and(|ok| ok))?;
    ensure(ready.wait(Some(LONG))?, "child took the lock")?;
    ensure(child.kill_and_reap() == Some(-9), "child killed")?;
    let outcome = lock.acquire(Some(LONG));
    ensure(
        matches!(outcome, Err(Error::OwnerDied)),
        format!("OwnerDied, got {outcome:?}"),
    )?;
    ensure(lock.is_held(), "the next acquirer holds the lock")?;
    lock.mark_consistent()?;
    lock.release()?;
    ensure(
        lock.acquire(Some(Duration::ZERO))?,
        "usable after mark_consistent",
    )?;
    lock.release()?;
    Ok(())
}

fn t19_lock_holder_killed_unmarked() -> TestResult {
    let lock = Arc::new(Lock::new()?);
    let ready = Arc::new(Event::new()?);
    let held = Arc::clone(&lock);
    let mut child = holder(&ready, move || held.acquire(None).is_ok_and(|ok| ok))?;
    ensure(ready.wait(Some(LONG))?, "child took the lock")?;
    child.kill_and_reap();
    ensure(
        matches!(lock.acquire(Some(LONG)), Err(Error::OwnerDied)),
        "OwnerDied",
    )?;
    lock.release()?;
    let outcome = lock.acquire(Some(Duration::from_millis(100)));
    ensure(
        matches!(outcome, Err(Error::NotRecoverable)),
        format!("NotRecoverable, got {outcome:?}"),
    )?;
    let again = lock.acquire(None);
    ensure(
        matches!(again, Err(Error::NotRecoverable)),
        format!("stays NotRecoverable, got {again:?}"),
    )?;
    Ok(())
}

fn t19_rlock_holder_killed_at_depth_3() -> TestResult {
    let lock = Arc::new(RLock::new()?);
    let ready = Arc::new(Event::new()?);
    let held = Arc::clone(&lock);
    let mut child = holder(&ready, move || {
        (0..3).all(|_| held.acquire(None).is_ok_and(|ok| ok))
    })?;
    ensure(ready.wait(Some(LONG))?, "child took the lock three times")?;
    child.kill_and_reap();
    ensure(
        matches!(lock.acquire(Some(LONG)), Err(Error::OwnerDied)),
        "OwnerDied",
    )?;
    ensure(
        lock.depth() == 1,
        format!("depth 1 after OwnerDied, got {}", lock.depth()),
    )?;
    lock.mark_consistent()?;
    lock.release()?;
    ensure(lock.depth() == 0, "released")?;
    ensure(lock.acquire(Some(Duration::ZERO))?, "usable again")?;
    lock.release()?;
    Ok(())
}

fn t20_condition_waiter_killed() -> TestResult {
    let cond = Arc::new(Condition::with_lock(Lock::new()?)?);
    let ready = Arc::new(Semaphore::new(0)?);
    let woken = Arc::new(Semaphore::new(0)?);
    let mut children: Vec<Child> = (0..3)
        .map(|_| {
            let (cond, ready, woken) = (Arc::clone(&cond), Arc::clone(&ready), Arc::clone(&woken));
            spawn(move || {
                let run = || -> proclife::Result<i32> {
                    cond.acquire(None)?;
                    ready.release()?;
                    let notified = cond.wait_for(|| false, Some(Duration::ZERO)).is_ok()
                        && cond.wait(Some(LONG))?;
                    cond.release()?;
                    woken.release()?;
                    Ok(if notified { 0 } else { 2 })
                };
                run().unwrap_or(4)
            })
        })
        .collect::<Result<_, _>>()?;
    for _ in 0..3 {
        ensure(ready.acquire(Some(LONG))?, "waiter ready")?;
    }
    // Holding the lock means every waiter has released it inside `wait`.
    ensure(cond.acquire(Some(LONG))?, "parent takes the lock")?;
    ensure(children[0].kill_and_reap() == Some(-9), "one waiter killed")?;
    let start = Instant::now();
    cond.notify(1)?;
    cond.notify_all()?;
    cond.release()?;
    ensure(
        start.elapsed() < Duration::from_secs(5),
        "notify never waits for a waiter",
    )?;
    for child in &mut children[1..] {
        ensure(child.wait(LONG) == Some(0), "live waiter woke")?;
    }
    ensure(woken.get_value() == 2, "exactly the two live waiters woke")?;
    Ok(())
}

fn t20_event_waiter_killed() -> TestResult {
    let event = Arc::new(Event::new()?);
    let ready = Arc::new(Semaphore::new(0)?);
    let mut children: Vec<Child> = (0..3)
        .map(|_| {
            let (event, ready) = (Arc::clone(&event), Arc::clone(&ready));
            spawn(move || {
                if ready.release().is_err() {
                    return 4;
                }
                match event.wait(Some(LONG)) {
                    Ok(true) => 0,
                    _ => 2,
                }
            })
        })
        .collect::<Result<_, _>>()?;
    for _ in 0..3 {
        ensure(ready.acquire(Some(LONG))?, "waiter ready")?;
    }
    std::thread::sleep(Duration::from_millis(20));
    children[0].kill_and_reap();
    event.set();
    ensure(event.is_set(), "set")?;
    for child in &mut children[1..] {
        ensure(child.wait(LONG) == Some(0), "live waiter woke")?;
    }
    event.clear();
    ensure(!event.wait(Some(Duration::from_millis(5)))?, "cleared")?;
    Ok(())
}

/// A three-party barrier with a 60 s default timeout, so that only liveness detection can
/// break it within the tests' bounds, and party A, a child, waiting at it.
fn three_parties_and_a_waits() -> Result<(Arc<Barrier>, Child), libtest_mimic::Failed> {
    let barrier = Arc::new(Barrier::new(3, Some(Duration::from_secs(60)))?);
    let party = Arc::clone(&barrier);
    let a = spawn(move || match party.wait() {
        Ok(_) => 0,
        Err(_) => 2,
    })?;
    ensure(
        wait_until(LONG, || barrier.n_waiting() == 1),
        "party A waits",
    )?;
    Ok((barrier, a))
}

fn t21_barrier_party_killed() -> TestResult {
    let (barrier, mut a) = three_parties_and_a_waits()?;
    // Killed but not reaped yet: a zombie counts as dead.
    a.kill();
    // SIGKILL is asynchronous: let it land (A becomes a zombie) before the others arrive.
    let stat = format!("/proc/{}/stat", a.pid());
    let zombie = || {
        std::fs::read_to_string(&stat).is_ok_and(|s| {
            s.rsplit(')')
                .next()
                .is_some_and(|rest| rest.trim_start().starts_with('Z'))
        })
    };
    ensure(wait_until(LONG, zombie), "A is a zombie")?;
    let party = Arc::clone(&barrier);
    let mut c = spawn(move || match party.wait() {
        Err(Error::BrokenBarrier) => 0,
        _ => 2,
    })?;
    let start = Instant::now();
    let outcome = barrier.wait();
    ensure(
        matches!(outcome, Err(Error::BrokenBarrier)),
        format!("broken, got {outcome:?}"),
    )?;
    ensure(
        start.elapsed() < Duration::from_secs(30),
        "broken by liveness, not by timeout",
    )?;
    ensure(c.wait(LONG) == Some(0), "party C saw the broken barrier")?;
    ensure(a.wait(LONG) == Some(-9), "A reaped")?;
    ensure(barrier.broken(), "stays broken")?;
    barrier.reset()?;
    ensure(!barrier.broken(), "reset")?;
    Ok(())
}

/// The other path of T21: no party arrives after the death, so only a waiting party's check
/// after its liveness slice can see it. (Which check sees it, the slot's robust mutex or
/// `/proc`, decision 0031, the barrier's unit tests tell apart.)
fn t21_barrier_waiter_sees_a_waiting_party_killed() -> TestResult {
    let (barrier, mut a) = three_parties_and_a_waits()?;
    let party = Arc::clone(&barrier);
    let mut b = spawn(move || match party.wait() {
        Err(Error::BrokenBarrier) => 0,
        _ => 2,
    })?;
    ensure(
        wait_until(LONG, || barrier.n_waiting() == 2),
        "party B waits beside A",
    )?;
    a.kill();
    ensure(
        b.wait(LONG) == Some(0),
        "party B saw the barrier broken by A's death while it waited",
    )?;
    ensure(a.wait(LONG) == Some(-9), "A reaped")?;
    ensure(barrier.broken(), "stays broken")?;
    ensure(
        matches!(barrier.wait(), Err(Error::BrokenBarrier)),
        "a later party finds it broken",
    )?;
    barrier.reset()?;
    ensure(!barrier.broken(), "reset")?;
    Ok(())
}

fn t22_semaphore_holder_killed() -> TestResult {
    // Documented contract: permits held by a dead process are lost; acquire honours its
    // timeout.
    let sem = Arc::new(Semaphore::new(3)?);
    let ready = Arc::new(Event::new()?);
    let held = Arc::clone(&sem);
    let mut child = holder(&ready, move || {
        held.acquire(None).is_ok_and(|ok| ok) && held.acquire(None).is_ok_and(|ok| ok)
    })?;
    ensure(ready.wait(Some(LONG))?, "child took two permits")?;
    child.kill_and_reap();
    ensure(
        sem.acquire(Some(Duration::from_millis(100)))?,
        "the third permit",
    )?;
    let start = Instant::now();
    ensure(
        !sem.acquire(Some(Duration::from_millis(100)))?,
        "the dead child's permits are lost",
    )?;
    ensure(
        start.elapsed() >= Duration::from_millis(100),
        "the timeout was honoured",
    )?;
    Ok(())
}

fn t34_timeouts() -> TestResult {
    ensure(
        timeout_from_secs(-1.0)? == Some(Duration::ZERO),
        "negative polls",
    )?;
    ensure(timeout_from_secs(-0.0)? == Some(Duration::ZERO), "-0 polls")?;
    ensure(
        timeout_from_secs(f64::INFINITY)?.is_none(),
        "inf is forever",
    )?;
    ensure(timeout_from_secs(1e300)?.is_none(), "huge is forever")?;
    ensure(
        matches!(timeout_from_secs(f64::NAN), Err(Error::NanTimeout)),
        "NaN",
    )?;
    let lock = Lock::new()?;
    ensure(
        lock.acquire(Some(Duration::MAX))?,
        "Duration::MAX on a free lock",
    )?;
    ensure(!lock.acquire(Some(Duration::ZERO))?, "zero on a held lock")?;
    lock.release()?;
    let event = Event::new()?;
    ensure(!event.wait(Some(Duration::ZERO))?, "zero on a clear event")?;
    event.set();
    ensure(
        event.wait(Some(Duration::MAX))?,
        "Duration::MAX on a set event",
    )?;
    let sem = Semaphore::new(1)?;
    ensure(
        sem.acquire(Some(Duration::MAX))?,
        "Duration::MAX on a semaphore",
    )?;
    ensure(
        !sem.acquire(Some(Duration::ZERO))?,
        "zero on an empty semaphore",
    )?;
    let cond = Condition::new()?;
    cond.acquire(Some(Duration::MAX))?;
    ensure(!cond.wait(Some(Duration::ZERO))?, "zero condition wait")?;
    cond.release()?;
    Ok(())
}

fn t39_invalid_arguments_and_misuse() -> TestResult {
    ensure(
        matches!(
            Semaphore::new(SEM_VALUE_MAX + 1),
            Err(Error::InvalidArgument(_))
        ),
        "sem max",
    )?;
    ensure(
        matches!(Barrier::new(0, None), Err(Error::InvalidArgument(_))),
        "Barrier(0)",
    )?;
    let bounded = BoundedSemaphore::new(1)?;
    ensure(
        matches!(bounded.release(), Err(Error::TooManyReleases(_))),
        "bounded over-release",
    )?;
    let lock = Arc::new(Lock::new()?);
    ensure(
        matches!(lock.release(), Err(Error::NotOwner)),
        "unheld lock release",
    )?;
    let cond = Condition::new()?;
    ensure(
        matches!(cond.wait(None), Err(Error::NotOwner)),
        "wait without the lock",
    )?;
    ensure(
        matches!(cond.notify_all(), Err(Error::NotOwner)),
        "notify without the lock",
    )?;
    // Release by another process.
    let rlock = Arc::new(RLock::new()?);
    rlock.acquire(None)?;
    lock.acquire(None)?;
    let (lock_in_child, rlock_in_child) = (Arc::clone(&lock), Arc::clone(&rlock));
    let mut child = spawn(move || {
        let (lock, rlock) = (lock_in_child, rlock_in_child);
        // The child is another thread: it must not see itself as the holder.
        let seen = !lock.is_held() && rlock.depth() == 0;
        let r = matches!(rlock.release(), Err(Error::NotOwner));
        let l = matches!(lock.release(), Err(Error::NotOwner));
        if seen && r && l { 0 } else { 2 }
    })?;
    ensure(
        child.wait(LONG) == Some(0),
        "non-owner process cannot release",
    )?;
    ensure(
        rlock.depth() == 1 && lock.is_held(),
        "still held by the parent",
    )?;
    rlock.release()?;
    lock.release()?;
    Ok(())
}

const WORKERS: usize = 4;
const INCREMENTS: u64 = 5_000;

/// A mutual-exclusion primitive the contention tests drive the same way.
trait Exclusive: Send + Sync + 'static {
    fn enter(&self) -> bool;
    fn leave(&self) -> bool;
}

impl Exclusive for Lock {
    fn enter(&self) -> bool {
        self.acquire(None).is_ok_and(|ok| ok)
    }
    fn leave(&self) -> bool {
        self.release().is_ok()
    }
}

/// Held at depth 2, as T43 asks: acquired twice, released twice.
impl Exclusive for RLock {
    fn enter(&self) -> bool {
        self.acquire(None).is_ok_and(|ok| ok) && self.acquire(None).is_ok_and(|ok| ok)
    }
    fn leave(&self) -> bool {
        self.release().and_then(|()| self.release()).is_ok()
    }
}

impl Exclusive for BoundedSemaphore {
    fn enter(&self) -> bool {
        self.acquire(None).is_ok_and(|ok| ok)
    }
    fn leave(&self) -> bool {
        self.release().is_ok()
    }
}

/// `WORKERS` processes each increment a shared counter `INCREMENTS` times under `mutex`; the
/// total must be exact.
fn contend<M: Exclusive>(mutex: &Arc<M>) -> TestResult {
    let counter = Arc::new(Counter::new());
    let mut children: Vec<Child> = (0..WORKERS)
        .map(|_| {
            let (mutex, counter) = (Arc::clone(mutex), Arc::clone(&counter));
            spawn(move || {
                for _ in 0..INCREMENTS {
                    if !mutex.enter() {
                        return 2;
                    }
                    counter.bump();
                    if !mutex.leave() {
                        return 3;
                    }
                }
                0
            })
        })
        .collect::<Result<_, _>>()?;
    // Incrementing is work: the bound is a worker making no progress, not a total.
    ipc_support::wait_all_working(&mut children, "worker")?;
    ensure(
        counter.get() == WORKERS as u64 * INCREMENTS,
        format!("exact total, got {}", counter.get()),
    )
}

fn t43_lock_contention() -> TestResult {
    contend(&Arc::new(Lock::new()?))
}

fn t43_rlock_contention() -> TestResult {
    contend(&Arc::new(RLock::new()?))
}

fn t43_barrier_passes() -> TestResult {
    const PASSES: usize = 200;
    let barrier = Arc::new(Barrier::new(WORKERS + 1, Some(LONG))?);
    let indices = Counter::new();
    let mut children: Vec<Child> = (0..WORKERS)
        .map(|_| {
            let barrier = Arc::clone(&barrier);
            spawn(move || {
                for _ in 0..PASSES {
                    if barrier.wait().is_err() {
                        return 2;
                    }
                }
                0
            })
        })
        .collect::<Result<_, _>>()?;
    for _ in 0..PASSES {
        barrier.wait()?;
        indices.bump();
    }
    for child in &mut children {
        ensure(child.wait(LONG) == Some(0), "every party passed every time")?;
    }
    ensure(indices.get() == PASSES as u64, "passes")?;
    ensure(!barrier.broken() && barrier.n_waiting() == 0, "clean state")?;
    Ok(())
}

fn t43_condition_notify_storm() -> TestResult {
    const ROUNDS: u64 = 300;
    let cond = Arc::new(Condition::new()?);
    let counter = Arc::new(Counter::new());
    let mut children: Vec<Child> = (0..WORKERS)
        .map(|_| {
            let (cond, counter) = (Arc::clone(&cond), Arc::clone(&counter));
            spawn(move || {
                let run = || -> proclife::Result<bool> {
                    cond.acquire(None)?;
                    let done = cond.wait_for(|| counter.get() >= ROUNDS, Some(LONG))?;
                    cond.release()?;
                    Ok(done)
                };
                match run() {
                    Ok(true) => 0,
                    Ok(false) => 2,
                    Err(_) => 3,
                }
            })
        })
        .collect::<Result<_, _>>()?;
    for _ in 0..ROUNDS {
        cond.acquire(None)?;
        counter.bump();
        cond.notify_all()?;
        cond.release()?;
    }
    for child in &mut children {
        ensure(child.wait(LONG) == Some(0), "no lost wake-up")?;
    }
    Ok(())
}

fn semaphore_hands_permits_across_processes() -> TestResult {
    let sem = Arc::new(Semaphore::new(0)?);
    let waiter = Arc::clone(&sem);
    let mut child = spawn(move || match waiter.acquire(Some(LONG)) {
        Ok(true) => 0,
        _ => 2,
    })?;
    std::thread::sleep(Duration::from_millis(20));
    sem.release()?;
    ensure(child.wait(LONG) == Some(0), "child got the permit")?;
    ensure(sem.get_value() == 0, "consumed")?;
    Ok(())
}

fn rebuild_from_fd() -> TestResult {
    use std::os::fd::AsFd;
    let lock = Lock::new()?;
    let again = Lock::from_fd(lock.as_fd().try_clone_to_owned()?)?;
    lock.acquire(None)?;
    ensure(again.is_held(), "same mutex through the rebuilt handle")?;
    ensure(
        !again.acquire(Some(Duration::ZERO))?,
        "held, seen through the rebuilt handle",
    )?;
    lock.release()?;
    ensure(!again.is_held(), "released")?;
    // Dropping a handle that is held releases the lock.
    lock.acquire(None)?;
    drop(lock);
    ensure(again.acquire(Some(Duration::ZERO))?, "released by drop")?;
    again.release()?;
    let event = Event::new()?;
    Event::from_fd(event.as_fd().try_clone_to_owned()?)?.set();
    ensure(event.is_set(), "same event")?;
    let sem = Semaphore::new(2)?;
    ensure(
        Semaphore::from_fd(sem.as_fd().try_clone_to_owned()?)?.get_value() == 2,
        "same semaphore",
    )?;
    let barrier = Barrier::new(2, None)?;
    ensure(
        Barrier::from_fd(barrier.as_fd().try_clone_to_owned()?)?.parties() == 2,
        "same barrier",
    )?;
    let shm = SharedMemory::new(64)?;
    ensure(
        matches!(
            Barrier::from_fd(shm.as_fd().try_clone_to_owned()?),
            Err(Error::Malformed(_))
        ),
        "not a barrier",
    )?;
    Ok(())
}

fn t43_semaphore_contention() -> TestResult {
    // A BoundedSemaphore(1) used as a mutex by several processes: exact totals, and the
    // bound is never exceeded.
    let sem = Arc::new(BoundedSemaphore::new(1)?);
    contend(&sem)?;
    ensure(sem.get_value() == 1, "all permits back")
}

/// Every guard releases exactly one acquisition when it drops, and `Guard::release` reports
/// the primitive's answer.
fn guards_release_on_drop() -> TestResult {
    let lock = Lock::new()?;
    {
        let _held = lock.lock()?;
        ensure(
            lock.is_held(),
            "Lock::lock returned a guard for a lock not held",
        )?;
        ensure(
            !lock.acquire(Some(Duration::ZERO))?,
            "a held Lock was acquired again with a zero timeout",
        )?;
    }
    ensure(!lock.is_held(), "Lock still held after its guard dropped")?;
    let held = lock.acquire_guard(Some(Duration::ZERO))?;
    ensure(
        held.is_some(),
        "acquire_guard(0) on a free Lock returned no guard",
    )?;
    ensure(
        lock.acquire_guard(Some(Duration::ZERO))?.is_none(),
        "acquire_guard(0) on a held Lock returned a guard",
    )?;
    if let Some(guard) = held {
        guard.release()?;
    }
    ensure(!lock.is_held(), "Lock still held after Guard::release")?;

    let rlock = RLock::new()?;
    {
        let _outer = rlock.lock()?;
        let inner = rlock.lock()?;
        ensure(
            rlock.depth() == 2,
            format!("RLock depth {} under two guards, expected 2", rlock.depth()),
        )?;
        drop(inner);
        ensure(
            rlock.depth() == 1,
            format!(
                "RLock depth {} after one guard dropped, expected 1",
                rlock.depth()
            ),
        )?;
    }
    ensure(
        rlock.depth() == 0,
        format!(
            "RLock depth {} after both guards dropped, expected 0",
            rlock.depth()
        ),
    )?;

    let sem = Semaphore::new(2)?;
    {
        let _a = sem.acquire_guard(None)?;
        let _b = sem.acquire_guard(None)?;
        ensure(
            sem.get_value() == 0,
            format!(
                "Semaphore value {} under two guards, expected 0",
                sem.get_value()
            ),
        )?;
        ensure(
            sem.acquire_guard(Some(Duration::ZERO))?.is_none(),
            "an empty Semaphore handed out a guard",
        )?;
    }
    ensure(
        sem.get_value() == 2,
        format!(
            "Semaphore value {} after the guards dropped, expected 2",
            sem.get_value()
        ),
    )?;

    let bounded = BoundedSemaphore::new(1)?;
    {
        let _permit = bounded.acquire_guard(None)?;
        ensure(
            bounded.get_value() == 0,
            "BoundedSemaphore permit not taken by its guard",
        )?;
    }
    ensure(
        bounded.get_value() == 1,
        format!(
            "BoundedSemaphore value {} after its guard dropped, expected 1",
            bounded.get_value()
        ),
    )?;
    Ok(())
}

/// A guard dropped while its thread unwinds from a panic still releases (CPython's `with`
/// releases on an exception).
fn guard_dropped_by_a_panic_releases() -> TestResult {
    let lock = Lock::new()?;
    let rlock = RLock::new()?;
    let sem = BoundedSemaphore::new(1)?;
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let outcome = std::panic::catch_unwind(|| {
        let _l = lock.lock();
        let _r = rlock.lock();
        let _s = sem.acquire_guard(None);
        panic!("unwinding through three guards");
    });
    std::panic::set_hook(previous);
    ensure(outcome.is_err(), "the closure did not panic")?;
    ensure(
        !lock.is_held(),
        "Lock still held after its guard was dropped by a panic",
    )?;
    ensure(
        rlock.depth() == 0,
        format!("RLock depth {} after a panic, expected 0", rlock.depth()),
    )?;
    ensure(
        sem.get_value() == 1,
        format!(
            "BoundedSemaphore value {} after a panic, expected 1",
            sem.get_value()
        ),
    )?;
    Ok(())
}

/// While the parent holds a `Lock` through a guard, a child cannot take it; once the guard
/// drops, the child can.
fn lock_guard_excludes_another_process() -> TestResult {
    let lock = Arc::new(Lock::new()?);
    let probed = Arc::new(Event::new()?);
    let guard = lock.lock()?;
    let (probe, told) = (Arc::clone(&lock), Arc::clone(&probed));
    let mut child = spawn(move || {
        let took_held_lock = probe.acquire(Some(Duration::ZERO)).unwrap_or(true);
        told.set();
        if took_held_lock {
            return 1;
        }
        match probe.acquire_guard(Some(LONG)) {
            Ok(Some(_held)) => 0,
            _ => 2,
        }
    })?;
    let told = probed.wait(Some(LONG))?;
    drop(guard);
    ensure(told, "the child never reported its probe of the held lock")?;
    let code = child.wait(LONG);
    ensure(
        code == Some(0),
        format!("child ended with {code:?} (its stderr names the failed check), expected Some(0)"),
    )?;
    Ok(())
}
