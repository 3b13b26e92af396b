//! What `Process::state()` costs on a live, blocked child, beside `is_alive()` in the same run.
//!
//! IDs: `state/<call>/<child>`. Calls: `is_alive` (the baseline: one `waitid(WNOHANG)` on the
//! pidfd), `state` (the same poll, then the status slot and `/proc/<pid>/stat`, and for a child
//! asleep in the kernel `/proc/<pid>/syscall`, and for a call on an fd the link
//! `/proc/<pid>/fd/<n>`). Children: `kernel_sleep` (a forked child in `clock_nanosleep`, no
//! fd), `kernel_read` (in `read` of a pipe: the fd is named too), `primitive` (waiting on an
//! `Event`, which its status slot says). Each child is started once, before its rows, and
//! killed and reaped after them.

use std::io::Read;
use std::time::{Duration, Instant};

use proclife::sync::Event;
use proclife::{BlockedOn, Process, ProcessState};
use proclife_benches::Error;
use proclife_benches::harness::{self, Spec, checked};

/// How long a child waits at most, should the benchmark never end it.
const CHILD_BOUND: Duration = Duration::from_secs(600);

fn main() {
    harness::exit_if_reexec_child();
    let mut c = harness::criterion();

    let sleeper = Process::new(|| std::thread::sleep(CHILD_BOUND));
    rows(
        &mut c,
        sleeper,
        "kernel_sleep",
        |s| matches!(s, ProcessState::Blocked(BlockedOn::Kernel(w)) if w.call.is_some()),
    );

    let (mut reader, writer) = checked(std::io::pipe().map_err(|source| Error::Os {
        call: "pipe",
        source,
    }));
    let reading = Process::new(move || {
        let _ = reader.read(&mut [0u8; 1]);
    });
    rows(
        &mut c,
        reading,
        "kernel_read",
        |s| matches!(s, ProcessState::Blocked(BlockedOn::Kernel(w)) if w.fd.is_some()),
    );
    drop(writer);

    let event = checked(Event::new().map_err(Error::runtime("Event::new")));
    let waiting = Process::new(move || {
        let _ = event.wait(Some(CHILD_BOUND));
    });
    rows(&mut c, waiting, "primitive", |s| {
        *s == ProcessState::Blocked(BlockedOn::Event)
    });

    c.final_summary();
}

/// Starts `child`, waits until it is in the state `ready` accepts, measures `is_alive` and
/// `state` on it, then kills and reaps it.
fn rows(
    c: &mut criterion::Criterion,
    mut child: Process,
    name: &str,
    ready: impl Fn(&ProcessState) -> bool,
) {
    checked(child.start().map_err(Error::runtime("Process::start")));
    checked(wait_until(&child, name, &ready));
    harness::run(c, Spec::new(format!("state/is_alive/{name}")), |b| {
        b.iter(|| {
            checked(
                child
                    .is_alive()
                    .map_err(Error::runtime("Process::is_alive")),
            )
        });
        // Still alive: the row measured a live child.
        match child.is_alive() {
            Ok(true) => Ok(()),
            _ => Err(Error::Invalid {
                what: format!("{name}: the child ended during the benchmark"),
            }),
        }
    });
    harness::run(c, Spec::new(format!("state/state/{name}")), |b| {
        b.iter(|| checked(child.state().map_err(Error::runtime("Process::state"))));
        // The state is still the one measured (the child stays in its wait).
        wait_until(&child, name, &ready)
    });
    checked(child.kill().map_err(Error::runtime("Process::kill")));
    checked(child.join().map_err(Error::runtime("Process::join")));
    checked(child.close().map_err(Error::runtime("Process::close")));
}

/// Polls `state()` until `ready` accepts it; at most 20 s, then an error with the last state.
fn wait_until(
    child: &Process,
    name: &str,
    ready: &impl Fn(&ProcessState) -> bool,
) -> proclife_benches::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let state = child.state().map_err(Error::runtime("Process::state"))?;
        if ready(&state) {
            return Ok(());
        }
        if matches!(state, ProcessState::Terminated(_)) || Instant::now() > deadline {
            return Err(Error::Invalid {
                what: format!("{name}: the child is {state:?}, not in the wait to measure"),
            });
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}
