//! A `Semaphore(2)` lets at most two of six processes use a resource at once, as Python's
//! `with semaphore:` does; the processes record how many were inside together.

use std::sync::Arc;
use std::time::Duration;

use proclife::Process;
use proclife::ipc::Value;
use proclife::sync::Semaphore;

const PROCESSES: usize = 6;
const SLOTS: u32 = 2;

/// Runs the example; returns an error if more than two processes were ever inside together.
pub(crate) fn main() -> Result<(), Box<dyn std::error::Error>> {
    let slots = Arc::new(Semaphore::new(SLOTS)?);
    // How many are inside now, and the most ever seen; each updated under its own lock.
    let inside = Arc::new(Value::new(0u32)?);
    let most = Arc::new(Value::new(0u32)?);

    let mut children = Vec::new();
    for n in 0..PROCESSES {
        let (slots, inside, most) = (Arc::clone(&slots), Arc::clone(&inside), Arc::clone(&most));
        let mut p = Process::builder()
            .name(format!("user-{n}"))
            .fallible_target(move || -> proclife::Result<()> {
                slots.acquire(None)?;
                let now = inside.update(|v| v + 1)?;
                most.update(|m| m.max(now))?;
                // Hold the slot for a moment, so that others queue up behind it.
                std::thread::sleep(Duration::from_millis(20));
                inside.update(|v| v - 1)?;
                slots.release()
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
    let most = most.get()?;
    println!("at most {most} of {PROCESSES} processes were inside at once");
    if most == 0 || most > SLOTS {
        return Err(format!("expected between 1 and {SLOTS} inside at once, saw {most}").into());
    }
    if slots.get_value() != SLOTS {
        return Err(format!(
            "expected {SLOTS} free slots at the end, got {}",
            slots.get_value()
        )
        .into());
    }
    Ok(())
}
