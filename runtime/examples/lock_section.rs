//! A `Lock` shared by several processes keeps a two-step update whole: each process marks
//! a shared "inside" flag, checks that nobody else is inside, and clears it, always with the
//! lock held, as Python's `with lock:` blocks do.

use std::sync::Arc;
use std::time::Duration;

use proclife::Process;
use proclife::ipc::RawArray;
use proclife::sync::Lock;

const PROCESSES: usize = 4;
const ROUNDS: u64 = 500;
/// Slots of the shared array: who is inside (0: nobody), sections entered, overlaps seen.
const INSIDE: usize = 0;
const ENTERED: usize = 1;
const OVERLAPS: usize = 2;

/// Runs the example; returns an error unless every section ran alone.
pub(crate) fn main() -> Result<(), Box<dyn std::error::Error>> {
    let lock = Arc::new(Lock::new()?);
    let shared = Arc::new(RawArray::new(3, 0u64)?);

    let mut children = Vec::new();
    for n in 1..=PROCESSES as u64 {
        let (lock, shared) = (Arc::clone(&lock), Arc::clone(&shared));
        let mut p = Process::builder()
            .name(format!("section-{n}"))
            .fallible_target(move || -> proclife::Result<()> {
                for _ in 0..ROUNDS {
                    lock.acquire(None)?;
                    if shared.get(INSIDE)? != 0 {
                        shared.set(OVERLAPS, shared.get(OVERLAPS)? + 1)?;
                    }
                    shared.set(INSIDE, n)?;
                    shared.set(ENTERED, shared.get(ENTERED)? + 1)?;
                    std::thread::yield_now();
                    shared.set(INSIDE, 0)?;
                    lock.release()?;
                }
                Ok(())
            });
        p.start()?;
        children.push(p);
    }

    for p in &children {
        p.join_timeout(Duration::from_secs(60))?;
        if p.exitcode()? != Some(0) {
            return Err(format!("{} exited with {:?}", p.name(), p.exitcode()?).into());
        }
    }
    let (entered, overlaps) = (shared.get(ENTERED)?, shared.get(OVERLAPS)?);
    println!("{entered} sections, {overlaps} overlaps");
    if entered != PROCESSES as u64 * ROUNDS || overlaps != 0 {
        return Err(format!(
            "expected {} sections and no overlap, got {entered} and {overlaps}",
            PROCESSES as u64 * ROUNDS
        )
        .into());
    }
    Ok(())
}
