//! A `Value<i64>` in shared memory incremented by several processes, each increment under
//! the value's own lock, as in the Python tutorial's `with n.get_lock(): n.value += 1`.

use std::sync::Arc;
use std::time::Duration;

use proclife::Process;
use proclife::ipc::Value;

const PROCESSES: i64 = 4;
const INCREMENTS: i64 = 1000;

/// Runs the example; returns an error unless the total is exact.
pub(crate) fn main() -> Result<(), Box<dyn std::error::Error>> {
    let counter = Arc::new(Value::new(0i64)?);

    let mut children = Vec::new();
    for n in 0..PROCESSES {
        let counter = Arc::clone(&counter);
        let mut p = Process::builder()
            .name(format!("incrementer-{n}"))
            .fallible_target(move || -> proclife::Result<()> {
                for _ in 0..INCREMENTS {
                    // `+= 1` is a read and a write: without the lock, two processes can
                    // read the same value and one increment is lost. (`counter.update(|v|
                    // v + 1)` does the same in one call.)
                    counter.get_lock().acquire(None)?;
                    let raw = counter.get_obj();
                    raw.set(raw.get() + 1);
                    counter.get_lock().release()?;
                }
                Ok(())
            });
        p.start()?;
        children.push(p);
    }

    for p in &children {
        p.join_timeout(Duration::from_secs(30))?;
        if p.exitcode()? != Some(0) {
            return Err(format!("{} exited with {:?}", p.name(), p.exitcode()?).into());
        }
    }
    let total = counter.get()?;
    println!("{PROCESSES} processes x {INCREMENTS} increments = {total}");
    if total != PROCESSES * INCREMENTS {
        return Err(format!("expected {}, got {total}", PROCESSES * INCREMENTS).into());
    }
    Ok(())
}
