//! A `Condition` hands work to waiting processes: consumers wait, with the condition's lock,
//! until the parent publishes a value and calls `notify_all`, as with Python's
//! `with cond: cond.wait_for(predicate)`.

use std::sync::Arc;
use std::time::Duration;

use proclife::Process;
use proclife::ipc::RawValue;
use proclife::sync::Condition;

const CONSUMERS: usize = 3;
const PUBLISHED: u64 = 42;

/// Runs the example; returns an error unless every consumer received the published value.
pub(crate) fn main() -> Result<(), Box<dyn std::error::Error>> {
    let cond = Arc::new(Condition::new()?);
    // 0 until the parent publishes; read and written with the condition's lock held.
    let value = Arc::new(RawValue::new(0u64)?);

    let mut consumers = Vec::new();
    for n in 0..CONSUMERS {
        let (cond, value) = (Arc::clone(&cond), Arc::clone(&value));
        let mut p = Process::builder()
            .name(format!("consumer-{n}"))
            .fallible_target(
                move || -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
                    cond.acquire(None)?;
                    let published =
                        cond.wait_for(|| value.get() != 0, Some(Duration::from_secs(60)))?;
                    let got = value.get();
                    cond.release()?;
                    if !published || got != PUBLISHED {
                        return Err(
                            format!("consumer {n} got {got} (published: {published})").into()
                        );
                    }
                    Ok(())
                },
            );
        p.start()?;
        consumers.push(p);
    }

    cond.acquire(None)?;
    value.set(PUBLISHED);
    cond.notify_all()?;
    cond.release()?;

    for p in &consumers {
        p.join_timeout(Duration::from_secs(60))?;
        if p.exitcode()? != Some(0) {
            return Err(format!("{} exited with {:?}", p.name(), p.exitcode()?).into());
        }
    }
    println!("{CONSUMERS} consumers received {PUBLISHED}");
    Ok(())
}
