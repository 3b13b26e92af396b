//! The life cycle of one process, step by step, as the Python tutorial walks it:
//! create, start, check `is_alive`, join, read `exitcode`, try to start again, close.

use std::time::Duration;

use proclife::{Error, Process, ProcessState};

/// Runs the walk-through; returns an error if any step does not behave as documented.
pub(crate) fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Create: nothing runs yet.
    let mut p = Process::builder().name("worker").target(|| {
        println!("child: hello from {}", proclife::current_process().name());
        std::thread::sleep(Duration::from_millis(100));
        std::process::exit(3);
    });
    println!(
        "created {}: state {:?}, pid {:?}",
        p.name(),
        p.state()?,
        p.pid()?
    );

    // Start: the child runs, the handle knows its pid at once.
    p.start()?;
    println!("started: pid {:?}, alive {}", p.pid()?, p.is_alive()?);
    assert!(p.is_alive()?);

    // Join with a timeout that expires: still running, no exit code yet.
    p.join_timeout(Duration::from_millis(10))?;
    println!("after join(0.01): exitcode {:?}", p.exitcode()?);

    // Join for good and read the exit code.
    p.join()?;
    println!(
        "joined: exitcode {:?}, alive {}",
        p.exitcode()?,
        p.is_alive()?
    );
    assert_eq!(p.exitcode()?, Some(3));
    assert_eq!(p.state()?, ProcessState::Terminated(3));

    // A process is single-use: starting it again is refused, as in CPython.
    match p.start() {
        Err(error @ Error::AlreadyStarted) => {
            let (kind, message) = error.python().ok_or("no CPython counterpart")?;
            println!("start again: {kind}: {message}");
        }
        other => return Err(format!("a second start gave {other:?}").into()),
    }

    // Close releases the pidfd; afterwards the handle refuses everything.
    p.close()?;
    match p.is_alive() {
        Err(error @ Error::Closed) => println!("after close: {error}"),
        other => return Err(format!("is_alive after close gave {other:?}").into()),
    }
    Ok(())
}
