//! Workers that run until the parent tells them to stop through a shared `Event`, the
//! process-safe boolean flag: each loops until the event is set, then returns cleanly, and
//! the parent joins them.

use std::sync::Arc;
use std::time::{Duration, Instant};

use proclife::ipc::Array;
use proclife::sync::Event;
use proclife::{Process, ProcessState};

const WORKERS: usize = 3;

/// Runs the example; returns an error if a worker does no work, does not stop, or does not
/// exit with 0.
pub(crate) fn main() -> Result<(), Box<dyn std::error::Error>> {
    let stop = Arc::new(Event::new()?);
    // Rounds done by each worker, so the parent can see they are working.
    let rounds = Arc::new(Array::new(WORKERS, 0u64)?);

    let mut workers = Vec::new();
    for n in 0..WORKERS {
        let (stop, rounds) = (Arc::clone(&stop), Arc::clone(&rounds));
        let mut p = Process::builder()
            .name(format!("worker-{n}"))
            .fallible_target(move || -> proclife::Result<()> {
                // `wait` with a timeout is the loop's pause: it returns `true` as soon as the
                // flag is set, `false` after the timeout.
                while !stop.wait(Some(Duration::from_millis(5)))? {
                    let done = rounds.get(n)?;
                    rounds.set(n, done + 1)?;
                }
                Ok(())
            });
        p.start()?;
        workers.push(p);
    }

    // Let every worker do some rounds (bounded wait).
    let deadline = Instant::now() + Duration::from_secs(10);
    while rounds.to_vec()?.iter().any(|&r| r < 3) {
        if Instant::now() > deadline {
            return Err(format!("workers stalled: {:?}", rounds.to_vec()?).into());
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    for p in &workers {
        if !p.is_alive()? {
            return Err(format!("{} stopped before it was told to", p.name()).into());
        }
    }

    println!(
        "rounds before stop: {:?}; setting the stop flag",
        rounds.to_vec()?
    );
    stop.set();

    for p in &workers {
        p.join_timeout(Duration::from_secs(10))?;
        println!("{}: {:?}", p.name(), p.state()?);
        if p.state()? != ProcessState::Terminated(0) {
            return Err(format!("{} did not stop cleanly: {:?}", p.name(), p.state()?).into());
        }
    }
    println!("final rounds: {:?}", rounds.to_vec()?);
    Ok(())
}
