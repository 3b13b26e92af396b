//! The procspawn comparison: `procspawn::spawn` of a function that returns at once, then
//! `join`, one process at a time. procspawn starts its children by re-executing the current
//! binary, so it is compared with the bare re-exec baseline (`spawn_join/raw_reexec/seq`,
//! measured by the `spawn_join` binary in the same run) and with proclife's fork method.
//!
//! This binary needs the `procspawn` feature (`benches/run.sh` enables it), so that ordinary
//! builds and tests do not compile procspawn.
//!
//! ID: `spawn_join/procspawn/seq`. Each iteration checks that the function's return value
//! came back (procspawn reports no exit code; `join` waits for the child and reaps it).
//! `join` is used rather than `join_timeout`, which polls with sleeps of a millisecond and
//! more and would measure its own sleeps.

use proclife_benches::harness::{self, Pace, Spec, checked};
use proclife_benches::{Error, Result};

/// What the child returns, checked by the parent.
const ANSWER: u64 = 0x7072_6f63_7370_776e;

fn spawn_join() -> Result<()> {
    let handle = procspawn::spawn((), |()| ANSWER);
    match handle.join() {
        Ok(ANSWER) => Ok(()),
        Ok(other) => Err(Error::Corrupt {
            what: format!("procspawn child returned {other:#x}, expected {ANSWER:#x}"),
        }),
        Err(err) => Err(Error::Invalid {
            what: format!("procspawn spawn+join failed: {err}"),
        }),
    }
}

fn main() {
    // In a child that procspawn re-executed, this runs the function and exits.
    procspawn::init();
    // SAFETY: every function this binary spawns is defined in this binary, not in a shared
    // library, which is the condition procspawn asks for when its shared-library check is
    // compiled out.
    unsafe { procspawn::assert_spawn_is_safe() };
    let mut c = harness::criterion();
    harness::run(
        &mut c,
        Spec::new("spawn_join/procspawn/seq").pace(Pace::Slow),
        |b| {
            b.iter(|| checked(spawn_join()));
            Ok(())
        },
    );
    c.final_summary();
}
