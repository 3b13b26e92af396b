//! Stopping children: `terminate` (SIGTERM, exit code -15), `kill` (SIGKILL, -9), and
//! `terminate` after the child already exited, which changes nothing.

use std::time::Duration;

use proclife::Process;

fn sleeper() -> Process {
    Process::new(|| std::thread::sleep(Duration::from_secs(30)))
}

/// Runs the walk-through; returns an error if any step does not behave as documented.
pub(crate) fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut p = sleeper();
    p.start()?;
    p.terminate()?;
    p.join_timeout(Duration::from_secs(10))?;
    println!("terminated: exitcode {:?}", p.exitcode()?);
    assert_eq!(p.exitcode()?, Some(-15));

    let mut q = sleeper();
    q.start()?;
    q.kill()?;
    q.join_timeout(Duration::from_secs(10))?;
    println!("killed: exitcode {:?}", q.exitcode()?);
    assert_eq!(q.exitcode()?, Some(-9));

    // The exit code is fixed when the child dies: a later terminate sends nothing.
    let mut r = Process::new(|| ());
    r.start()?;
    r.join_timeout(Duration::from_secs(10))?;
    r.terminate()?;
    println!("terminate after exit: exitcode {:?}", r.exitcode()?);
    assert_eq!(r.exitcode()?, Some(0));

    // A child that ignores SIGTERM: `stop` escalates to SIGKILL after a grace period.
    // The child inherits the disposition from the fork, so it ignores SIGTERM from birth.
    let mut s = sleeper();
    // SAFETY: ignoring SIGTERM is a valid disposition; nothing signals this process meanwhile.
    let old = unsafe { libc::signal(libc::SIGTERM, libc::SIG_IGN) };
    let started = s.start();
    // SAFETY: `old` is the disposition `signal` returned for SIGTERM.
    unsafe { libc::signal(libc::SIGTERM, old) };
    started?;
    let code = s.stop(Duration::from_millis(200))?;
    println!("stubborn child stopped: exitcode {code}");
    assert_eq!(code, -9);
    Ok(())
}
