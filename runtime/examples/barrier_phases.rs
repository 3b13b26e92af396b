//! A `Barrier` separates two phases: three processes each write their part of a shared
//! array, meet at the barrier, and only then read the whole array, which is complete for
//! every one of them.

use std::sync::Arc;
use std::time::Duration;

use proclife::Process;
use proclife::ipc::RawArray;
use proclife::sync::Barrier;

const PARTIES: usize = 3;

/// Runs the example; returns an error if a process saw an incomplete array after the
/// barrier.
pub(crate) fn main() -> Result<(), Box<dyn std::error::Error>> {
    // A party that waits longer than this breaks the barrier for everyone (as in CPython).
    let barrier = Arc::new(Barrier::new(PARTIES, Some(Duration::from_secs(60)))?);
    let parts = Arc::new(RawArray::new(PARTIES, 0u64)?);

    let mut children = Vec::new();
    for n in 0..PARTIES {
        let (barrier, parts) = (Arc::clone(&barrier), Arc::clone(&parts));
        let mut p = Process::builder()
            .name(format!("party-{n}"))
            .fallible_target(
                move || -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
                    // Phase 1: each party writes its own part.
                    parts.set(n, (n as u64 + 1) * 10)?;
                    barrier.wait()?;
                    // Phase 2: every part is there.
                    let total: u64 = (0..PARTIES)
                        .map(|i| parts.get(i))
                        .sum::<proclife::Result<u64>>()?;
                    if total != 10 + 20 + 30 {
                        return Err(
                            format!("party {n} saw a total of {total} after the barrier").into(),
                        );
                    }
                    Ok(())
                },
            );
        p.start()?;
        children.push(p);
    }

    for p in &children {
        p.join_timeout(Duration::from_secs(60))?;
        if p.exitcode()? != Some(0) {
            return Err(format!("{} exited with {:?}", p.name(), p.exitcode()?).into());
        }
    }
    println!("{PARTIES} parties met and each saw the whole array");
    Ok(())
}
