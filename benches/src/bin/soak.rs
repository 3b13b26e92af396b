//! The seeded chaos soak (catalogue item T44): random programs of several processes using
//! the primitives, with faults injected at random points, each followed by the checks.
//!
//! ```sh
//! cargo run --release -p proclife-benches --bin soak -- [--seed S] [--seconds N] [--programs N]
//! ```
//!
//! A program starts 2 to 5 fork children. Each child runs one role, drawn from the seed:
//! a producer putting checksummed items on a bounded queue, a consumer taking them and
//! checking every item whole, a worker incrementing a shared counter under a lock and
//! writing its pid as the lock's owner field (checked on every entry: never two owners), a
//! barrier party, an event waiter, or a child that lowers its own `RLIMIT_NOFILE` and must
//! get a typed `EMFILE` from creating an object. While they run, the nemesis SIGKILLs,
//! SIGSTOPs and later SIGCONTs, or `terminate()`s random children at random points.
//!
//! After each program every child is stopped and joined, and: no zombie and no child is
//! left, the fds and the shared mappings are those before the program, no consumer or
//! worker saw a torn item or a second lock owner (it would exit 3), the lock is recoverable
//! (acquired, after `mark_consistent` if its holder died) and the queue can still carry an
//! item. The same seed draws the same programs and faults (the timing of the processes is
//! the machine's). The summary gives programs run and faults injected by kind; the exit
//! status is 0 when every check held, 1 at the first failure (with the seed and program
//! number), 2 for bad arguments.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use proclife::ipc::{Queue, Value};
use proclife::sync::{Barrier, Event, Lock};
use proclife::{Error, Process};

/// A deterministic generator (xorshift64*).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// What a child does.
#[derive(Debug, Clone, Copy)]
enum Role {
    Producer,
    Consumer,
    Worker,
    Party,
    Waiter,
    FdStarved,
}

const ROLES: [Role; 6] = [
    Role::Producer,
    Role::Consumer,
    Role::Worker,
    Role::Party,
    Role::Waiter,
    Role::FdStarved,
];

/// An item whose check word ties its two halves together: a torn item fails the check.
fn item(producer: u32, seq: u32) -> (u32, u32, u64) {
    (producer, seq, check_word(producer, seq))
}

fn check_word(producer: u32, seq: u32) -> u64 {
    (u64::from(producer) << 32 | u64::from(seq)).wrapping_mul(0x9e37_79b9_7f4a_7c15)
}

/// How long a child waits for a peer before it gives up (a peer may have been killed).
const ROLE_TIMEOUT: Duration = Duration::from_millis(200);

/// Exit code of a child that saw a broken invariant.
const BROKEN: i32 = 3;

/// The objects a program shares.
struct Shared {
    queue: Arc<Queue<(u32, u32, u64)>>,
    lock: Arc<Lock>,
    owner: Arc<Value<i32>>,
    counter: Arc<Value<u64>>,
    barrier: Arc<Barrier>,
    event: Arc<Event>,
}

impl Shared {
    fn new() -> Result<Shared, Error> {
        Ok(Shared {
            queue: Arc::new(Queue::with_capacity(8, 4096)?),
            lock: Arc::new(Lock::new()?),
            owner: Arc::new(Value::new(0i32)?),
            counter: Arc::new(Value::new(0u64)?),
            barrier: Arc::new(Barrier::new(2, Some(ROLE_TIMEOUT))?),
            event: Arc::new(Event::new()?),
        })
    }
}

/// The body of a child with `role`; returns its exit code.
fn run_role(role: Role, index: u32, s: &Shared) -> i32 {
    let me = std::process::id() as i32;
    let result = (|| -> Result<i32, Error> {
        match role {
            Role::Producer => {
                for seq in 0..2000 {
                    s.queue.put_timeout(&item(index, seq), Some(ROLE_TIMEOUT))?;
                }
                Ok(0)
            }
            Role::Consumer => loop {
                match s.queue.get_timeout(Some(ROLE_TIMEOUT)) {
                    Ok((p, seq, word)) if word != check_word(p, seq) => return Ok(BROKEN),
                    Ok(_) => {}
                    Err(Error::Empty) => return Ok(0),
                    Err(e) => return Err(e),
                }
            },
            Role::Worker => {
                for _ in 0..500 {
                    match s.lock.acquire(Some(ROLE_TIMEOUT)) {
                        Ok(true) => {}
                        Ok(false) => continue,
                        Err(Error::OwnerDied) => {
                            // The dead owner's critical section is half done: repair it.
                            s.lock.mark_consistent()?;
                            s.owner.set(0)?;
                        }
                        Err(e) => return Err(e),
                    }
                    if s.owner.get()? != 0 {
                        return Ok(BROKEN);
                    }
                    s.owner.set(me)?;
                    s.counter.set(s.counter.get()? + 1)?;
                    if s.owner.get()? != me {
                        return Ok(BROKEN);
                    }
                    s.owner.set(0)?;
                    s.lock.release()?;
                }
                Ok(0)
            }
            Role::Party => {
                for _ in 0..50 {
                    match s.barrier.wait() {
                        Ok(_) => {}
                        Err(Error::BrokenBarrier) => return Ok(0),
                        Err(e) => return Err(e),
                    }
                }
                Ok(0)
            }
            Role::Waiter => {
                s.event.wait(Some(ROLE_TIMEOUT))?;
                Ok(0)
            }
            Role::FdStarved => {
                // No fd can be opened any more: the next object cannot be made.
                let mut limit = libc::rlimit {
                    rlim_cur: 0,
                    rlim_max: 0,
                };
                // SAFETY: `limit` is a valid rlimit for getrlimit to fill and setrlimit to read.
                let set = unsafe {
                    libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 && {
                        limit.rlim_cur = 0;
                        libc::setrlimit(libc::RLIMIT_NOFILE, &limit) == 0
                    }
                };
                if !set {
                    return Ok(BROKEN);
                }
                match Queue::<u8>::with_capacity(1, 64) {
                    Err(Error::Os { errno, .. }) if errno as i32 == libc::EMFILE => Ok(0),
                    _ => Ok(BROKEN),
                }
            }
        }
    })();
    // A peer killed by the nemesis may leave a typed error behind (a disconnected queue,
    // a broken barrier); that is allowed, so an error counts as a clean exit.
    result.unwrap_or(0)
}

/// Fault counts by kind.
#[derive(Debug, Default)]
struct Faults(BTreeMap<&'static str, u64>);

impl Faults {
    fn add(&mut self, kind: &'static str) {
        *self.0.entry(kind).or_default() += 1;
    }
}

/// The open fds (with targets) and memfd mappings of this process.
fn resources() -> (Vec<String>, usize) {
    let mut fds: Vec<String> = std::fs::read_dir("/proc/self/fd")
        .map(|d| {
            d.flatten()
                .map(|e| {
                    let t = std::fs::read_link(e.path()).unwrap_or_default();
                    format!("{} -> {}", e.file_name().to_string_lossy(), t.display())
                })
                .filter(|s| !s.contains("/proc/"))
                .collect()
        })
        .unwrap_or_default();
    fds.sort();
    let maps = std::fs::read_to_string("/proc/self/maps")
        .map(|m| m.lines().filter(|l| l.contains("/memfd:")).count())
        .unwrap_or(0);
    (fds, maps)
}

/// Children of this process (any state).
fn children() -> Vec<i32> {
    std::fs::read_to_string(
        "/proc/self/task/".to_owned() + &std::process::id().to_string() + "/children",
    )
    .map(|l| {
        l.split_whitespace()
            .filter_map(|p| p.parse().ok())
            .collect()
    })
    .unwrap_or_default()
}

/// Runs program `n` of the soak; the error says which check failed.
fn program(n: u64, rng: &mut Rng, faults: &mut Faults) -> Result<(), String> {
    let before = resources();
    let shared = Shared::new().map_err(|e| format!("creating the objects: {e}"))?;
    let count = 2 + rng.below(4) as usize;
    let mut roles = Vec::with_capacity(count);
    let mut procs = Vec::with_capacity(count);
    for i in 0..count {
        let role = ROLES[rng.below(ROLES.len() as u64) as usize];
        let s = Shared {
            queue: shared.queue.clone(),
            lock: shared.lock.clone(),
            owner: shared.owner.clone(),
            counter: shared.counter.clone(),
            barrier: shared.barrier.clone(),
            event: shared.event.clone(),
        };
        let mut p = Process::new(move || std::process::exit(run_role(role, i as u32, &s)));
        p.start().map_err(|e| format!("start of a {role:?}: {e}"))?;
        roles.push(role);
        procs.push(p);
    }
    // The nemesis: a few faults at random points.
    for _ in 0..rng.below(4) {
        std::thread::sleep(Duration::from_micros(rng.below(20_000)));
        let victim = &procs[rng.below(count as u64) as usize];
        match rng.below(4) {
            0 => {
                let _ = victim.kill();
                faults.add("SIGKILL");
            }
            1 => {
                // `send_signal` refuses the job-control signals (stopping is not part of
                // `multiprocessing`), so the stop comes from outside, as a shell's would. The
                // handle is not joined yet, so the pid is still this child's (at worst an
                // unreaped zombie, which ignores signals).
                if let Ok(Some(pid)) = victim.pid() {
                    let pid = pid.as_raw();
                    // SAFETY: kill(2) takes a pid and a signal number and touches no memory.
                    if unsafe { libc::kill(pid, libc::SIGSTOP) } == 0 {
                        std::thread::sleep(Duration::from_micros(rng.below(5_000)));
                        // SAFETY: as above.
                        unsafe { libc::kill(pid, libc::SIGCONT) };
                        faults.add("SIGSTOP/SIGCONT");
                    }
                }
            }
            2 => {
                let _ = victim.terminate();
                faults.add("terminate");
            }
            _ => {
                shared.event.set();
                faults.add("event set early");
            }
        }
    }
    if roles.iter().any(|r| matches!(r, Role::FdStarved)) {
        faults.add("EMFILE");
    }
    shared.event.set();
    // Every child ends by itself within its 1 s timeouts and bounded loops; the
    // stop escalates to SIGKILL for one that does not.
    for (p, role) in procs.iter_mut().zip(&roles) {
        let _ = p.join_timeout(Duration::from_secs(5));
        let code = p
            .stop(Duration::from_secs(1))
            .map_err(|e| format!("program {n}: stopping a {role:?}: {e}"))?;
        if code == BROKEN {
            return Err(format!(
                "program {n}: a {role:?} saw a broken invariant (torn item or two lock owners)"
            ));
        }
    }
    // The lock is recoverable and the queue still carries an item.
    match shared.lock.acquire(Some(Duration::from_secs(5))) {
        Ok(true) => {}
        Err(Error::OwnerDied) => {
            shared
                .lock
                .mark_consistent()
                .map_err(|e| format!("program {n}: mark_consistent: {e}"))?;
            faults.add("lock recovered from a dead owner");
        }
        other => {
            return Err(format!(
                "program {n}: the lock is not recoverable: {other:?}"
            ));
        }
    }
    shared
        .lock
        .release()
        .map_err(|e| format!("program {n}: release: {e}"))?;
    while shared.queue.get_nowait().is_ok() {}
    shared
        .queue
        .put(&item(99, 1))
        .map_err(|e| format!("program {n}: put after the faults: {e}"))?;
    let got = shared
        .queue
        .get_timeout(Some(Duration::from_secs(5)))
        .map_err(|e| format!("program {n}: get after the faults: {e}"))?;
    if got != item(99, 1) {
        return Err(format!(
            "program {n}: the queue gave {got:?} after the faults"
        ));
    }
    drop(procs);
    drop(shared);
    let left = children();
    if !left.is_empty() {
        return Err(format!("program {n}: children left: {left:?}"));
    }
    let after = resources();
    if after != before {
        return Err(format!(
            "program {n}: fds or memfd mappings left: before {before:?}, after {after:?}"
        ));
    }
    Ok(())
}

fn usage() -> ! {
    eprintln!("usage: soak [--seed S] [--seconds N] [--programs N]");
    std::process::exit(2)
}

fn main() {
    let mut seed = 1u64;
    let mut seconds = None;
    let mut programs = None;
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value: u64 = match args.next().map(|v| v.parse()) {
            Some(Ok(v)) => v,
            _ => usage(),
        };
        match flag.as_str() {
            "--seed" => seed = value,
            "--seconds" => seconds = Some(Duration::from_secs(value)),
            "--programs" => programs = Some(value),
            _ => usage(),
        }
    }
    if seconds.is_none() && programs.is_none() {
        seconds = Some(Duration::from_secs(60));
    }
    let begin = Instant::now();
    let mut rng = Rng(seed.max(1));
    let mut faults = Faults::default();
    let mut n = 0u64;
    loop {
        if seconds.is_some_and(|s| begin.elapsed() >= s) || programs.is_some_and(|p| n >= p) {
            break;
        }
        if let Err(message) = program(n, &mut rng, &mut faults) {
            eprintln!("soak: seed {seed}: {message}");
            std::process::exit(1);
        }
        n += 1;
    }
    let total: u64 = faults.0.values().sum();
    println!(
        "soak: seed {seed}: {n} programs in {:.1} s, {total} faults injected: {:?}; every check held",
        begin.elapsed().as_secs_f64(),
        faults.0
    );
}
