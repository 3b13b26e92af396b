//! A pool of worker processes fed through one queue, their results collected through a
//! second one, as in the Python tutorial's `worker(input, output)` example with a `STOP`
//! sentinel.

use std::sync::Arc;
use std::time::Duration;

use proclife::Process;
use proclife::ipc::Queue;

const WORKERS: usize = 4;
const TASKS: u64 = 20;

/// What a task computes: the tutorial's `mul` and `plus`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
enum Op {
    Mul,
    Plus,
}

fn calculate(op: Op, a: u64, b: u64) -> u64 {
    match op {
        Op::Mul => a * b,
        Op::Plus => a + b,
    }
}

/// The task with index `i`: the tutorial's `(mul, (i, 7))` and `(plus, (i, 8))`.
fn task(i: u64) -> (Op, u64, u64) {
    if i.is_multiple_of(2) {
        (Op::Mul, i, 7)
    } else {
        (Op::Plus, i, 8)
    }
}

/// Runs the example; returns an error if a result is missing, wrong or duplicated, or a
/// worker does not exit cleanly.
pub(crate) fn main() -> Result<(), Box<dyn std::error::Error>> {
    // A task is `Some((index, op, a, b))`; `None` is the `STOP` sentinel. The index lets the
    // parent match results whatever their order.
    let tasks = Arc::new(Queue::<Option<(u64, Op, u64, u64)>>::new(0)?);
    let results = Arc::new(Queue::<(String, u64, u64)>::new(0)?);

    let mut workers = Vec::new();
    for n in 0..WORKERS {
        let (tasks, results) = (Arc::clone(&tasks), Arc::clone(&results));
        let mut p = Process::builder()
            .name(format!("worker-{n}"))
            .fallible_target(move || -> proclife::Result<()> {
                let me = proclife::current_process().name().to_string();
                // Until the STOP sentinel.
                while let Some((index, op, a, b)) = tasks.get()? {
                    results.put(&(me.clone(), index, calculate(op, a, b)))?;
                }
                Ok(())
            });
        p.start()?;
        workers.push(p);
    }

    for i in 0..TASKS {
        let (op, a, b) = task(i);
        tasks.put(&Some((i, op, a, b)))?;
    }
    for _ in 0..WORKERS {
        tasks.put(&None)?;
    }

    let mut seen = vec![false; TASKS as usize];
    for _ in 0..TASKS {
        let (worker, index, value) = results.get_timeout(Some(Duration::from_secs(10)))?;
        let (op, a, b) = task(index);
        println!("{worker}: {op:?}({a}, {b}) = {value}");
        let slot = seen
            .get_mut(index as usize)
            .ok_or(format!("unknown task {index}"))?;
        if *slot || value != calculate(op, a, b) {
            return Err(format!("task {index}: duplicate or wrong result {value}").into());
        }
        *slot = true;
    }

    for p in &workers {
        p.join_timeout(Duration::from_secs(10))?;
        if p.exitcode()? != Some(0) {
            return Err(format!("{} exited with {:?}", p.name(), p.exitcode()?).into());
        }
    }
    if !results.empty() || !tasks.empty() {
        return Err("items left in the queues".into());
    }
    println!("{TASKS} results from {WORKERS} workers, all joined");
    Ok(())
}
