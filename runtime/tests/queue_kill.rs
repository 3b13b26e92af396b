//! A queue's producer `SIGKILL`ed at each step of a put that skips to the ring's first byte
//! (decision 0026), under every start method: no torn item, the item there exactly when the
//! tail store was made, and the queue stays usable; a consumer then takes an item that follows
//! a skip mark left at the head.
//!
//! Each step is a stop point of the runtime (`proclife::planted`, feature `planted-bugs`): a
//! process whose `PROCLIFE_PLANTED_BUG` names the step stops itself with `SIGSTOP` there, and
//! the test kills it once `state()` shows it stopped. Every scenario runs in a fresh process
//! of this binary with the variable set, so every process of the scenario agrees on it; the
//! scenario's own process never takes the step it names (a step is taken only by a put that
//! skips, which only the victim makes).

use std::os::fd::AsFd;
use std::process::Command;

use libtest_mimic::{Arguments, Failed, Trial};
use proclife::ipc::Queue;
use proclife::{Error, Process, ProcessState, StartMethod, TargetResult};
use proclife_testkit::process::{Started, wait_state};
use proclife_testkit::wait::AT_ONCE;

/// Names the scenario a fresh process of this binary runs (it also carries the stop point
/// in `PROCLIFE_PLANTED_BUG`).
const SCENARIO: &str = "PROCLIFE_QUEUE_KILL_SCENARIO";

const METHODS: [StartMethod; 3] = [
    StartMethod::Fork,
    StartMethod::ForkServer,
    StartMethod::Spawn,
];

/// The steps of a put that skips to the ring's first byte, in order.
const PUT_STEPS: [&str; 4] = [
    "queue-put-stops-after-skip-mark",
    "queue-put-stops-before-tail-store",
    "queue-put-stops-after-tail-store",
    "queue-put-stops-after-head-store",
];

type Item = Vec<u8>;

/// The ring's size: small, so that items are many pages apart.
const CAPACITY: usize = 1 << 16;

/// The deterministic content of item `seq`, of `len` bytes.
fn pattern(seq: u8, len: usize) -> Item {
    (0..len)
        .map(|i| {
            (i as u32)
                .wrapping_mul(13)
                .wrapping_add(u32::from(seq) * 71) as u8
        })
        .collect()
}

/// The victim of a put step: puts item 1 into a drained ring.
fn put_one(queue: Queue<Item>) -> TargetResult {
    queue.put(&pattern(1, 4000))?;
    Ok(())
}

proclife::entry!(put_one);

fn ensure(cond: bool, what: impl std::fmt::Display) -> Result<(), Failed> {
    if cond {
        Ok(())
    } else {
        Err(what.to_string().into())
    }
}

/// Leaves the ring drained with its write position past half the ring, so the next put
/// skips to the ring's first byte.
fn drain_past_start(queue: &Queue<Item>) -> Result<(), Failed> {
    queue.put(&pattern(0, 40_000))?;
    ensure(queue.get()? == pattern(0, 40_000), "item 0 intact")?;
    ensure(queue.empty(), "the ring is drained")
}

/// Starts `victim` under `method`, waits until it stopped itself at the step, kills it and
/// checks that it died of the kill.
fn kill_at_step(method: StartMethod, step: &str, queue: &Queue<Item>) -> Result<(), Failed> {
    let copy = Queue::from_fd(queue.as_fd().try_clone_to_owned()?)?;
    let mut p = Process::builder().start_method(method).entry(put_one, copy);
    p.start()?;
    let p = Started(p);
    wait_state(&p, &format!("stopped at {step}"), |s| {
        s == ProcessState::Stopped
    })
    .map_err(|e| Failed::from(format!("{method}: {e}")))?;
    p.kill()?;
    p.join_timeout(AT_ONCE)?;
    ensure(
        p.exitcode()? == Some(-9),
        format!(
            "{method}: the victim died of SIGKILL at {step}, exit code {:?}",
            p.exitcode()
        ),
    )
}

/// Takes every item left, without waiting.
fn drain(queue: &Queue<Item>) -> Result<Vec<Item>, Failed> {
    let mut items = Vec::new();
    loop {
        match queue.get_nowait() {
            Ok(item) => items.push(item),
            Err(Error::Empty) => return Ok(items),
            Err(e) => return Err(e.into()),
        }
    }
}

/// The queue still carries items after the death: an item too large to fit before the write
/// position (so the scenario's own process makes no put that skips), and one behind it.
fn still_usable(queue: &Queue<Item>) -> Result<(), Failed> {
    queue.put(&pattern(7, 60_000))?;
    queue.put(&pattern(8, 100))?;
    ensure(queue.get()? == pattern(7, 60_000), "item 7 after the death")?;
    ensure(queue.get()? == pattern(8, 100), "item 8 after the death")?;
    ensure(queue.qsize() == 0 && queue.empty(), "empty at the end")
}

fn put_step(step: &str) -> Result<(), Failed> {
    for method in METHODS {
        let queue = Queue::<Item>::with_capacity(0, CAPACITY)?;
        drain_past_start(&queue)?;
        kill_at_step(method, step, &queue)?;
        let left = drain(&queue)?;
        // Published only by the tail store: before it nothing, after it the whole item (with
        // the skip mark still at the head when the head store was not made).
        let published = step == PUT_STEPS[2] || step == PUT_STEPS[3];
        let want = if published {
            vec![pattern(1, 4000)]
        } else {
            Vec::new()
        };
        ensure(
            left == want,
            format!(
                "{method}, {step}: items left {:?}, expected {:?}",
                left.iter().map(Vec::len).collect::<Vec<_>>(),
                want.iter().map(Vec::len).collect::<Vec<_>>()
            ),
        )?;
        still_usable(&queue)?;
    }
    Ok(())
}

/// Runs `step`'s scenario in a fresh process of this binary with the stop point set.
fn in_fresh_process(step: &'static str) -> Result<(), Failed> {
    let exe = std::env::current_exe().map_err(|e| Failed::from(e.to_string()))?;
    let out = Command::new(exe)
        .env(SCENARIO, step)
        .env(proclife::planted::ENV, step)
        .output()
        .map_err(|e| Failed::from(format!("could not run the scenario {step}: {e}")))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "scenario {step}: {}; its output:\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
        .into())
    }
}

fn main() {
    if let Ok(step) = std::env::var(SCENARIO) {
        let outcome = if PUT_STEPS.contains(&step.as_str()) {
            put_step(&step)
        } else {
            Err(format!("no scenario {step}").into())
        };
        let stopped = proclife::stop_fork_server();
        match (outcome, stopped) {
            (Ok(()), Ok(())) => std::process::exit(0),
            (Err(e), _) => {
                eprintln!("{}", e.message().unwrap_or("failed"));
                std::process::exit(1)
            }
            (Ok(()), Err(e)) => {
                eprintln!("stopping the fork server: {e}");
                std::process::exit(1)
            }
        }
    }
    let mut args = Arguments::from_args();
    args.test_threads = Some(1);
    let trials = PUT_STEPS
        .iter()
        .map(|&step| Trial::test(step, move || in_fresh_process(step)))
        .collect();
    libtest_mimic::run(&args, trials).exit()
}
