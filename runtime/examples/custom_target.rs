//! A custom `Target`: the Rust form of subclassing `multiprocessing.Process` and
//! overriding `run()`. `run()` calls it in the caller; `start()` runs it in a child.

use std::time::Duration;

use proclife::{Process, Target, TargetResult};

/// Counts down and fails when asked to count from zero.
struct Countdown {
    from: u32,
}

impl Target for Countdown {
    fn run(&mut self) -> TargetResult {
        if self.from == 0 {
            return Err("nothing to count".into());
        }
        let me = proclife::current_process();
        for n in (1..=self.from).rev() {
            println!("{} (pid {}): {n}", me.name(), me.pid());
        }
        Ok(())
    }
}

/// Runs the walk-through; returns an error if any step does not behave as documented.
pub(crate) fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut p = Process::from_target(Countdown { from: 3 });
    // In the caller, like Python's `p.run()`: the handle stays new.
    p.run()?;
    // In a child.
    p.start()?;
    p.join_timeout(Duration::from_secs(10))?;
    println!("countdown child: exitcode {:?}", p.exitcode()?);
    assert_eq!(p.exitcode()?, Some(0));

    // A target that returns an error exits with 1; the error is printed on its stderr.
    let mut failing = Process::builder()
        .name("empty-countdown")
        .build_target(Countdown { from: 0 });
    failing.start()?;
    failing.join_timeout(Duration::from_secs(10))?;
    println!("failing child: exitcode {:?}", failing.exitcode()?);
    assert_eq!(failing.exitcode()?, Some(1));
    Ok(())
}
