//! Lock benchmarks: one lock+unlock, alone and while a second process hammers the same lock,
//! measured against a process-shared robust pthread mutex in the same run.
//!
//! IDs: `sync/<lock>/<case>`; `raw_pthread_robust` is the baseline. Cases: `uncontended`
//! (pinned to one CPU, no other process), `contended2` (the parent on one CPU, a forked child
//! locking and unlocking in a loop on the other). Each critical section increments a shared
//! counter; after every sample the counter must have advanced by exactly the parent's plus the
//! child's iterations, which checks mutual exclusion and that no iteration was lost.
//!
//! `lock` is proclife's `Lock` (`acquire(None)` + `release`). Both locks protect the same
//! counter, on a control page of its own, and the contending child is forked the same way
//! for both (the raw fork helper), so the rows differ only in the lock.

use proclife::sync::Lock;
use proclife_benches::Error;
use proclife_benches::cpu::{self, Placement};
use proclife_benches::harness::{self, Spec, time_counted};
use proclife_benches::raw::sync::{Contender, Control, RobustMutex, check_count};
use proclife_benches::runtime::lock_section;

fn main() {
    let mut c = harness::criterion();
    uncontended(&mut c);
    contended2(&mut c);
    c.final_summary();
}

/// Lock and unlock with no other process using the lock.
fn uncontended(c: &mut criterion::Criterion) {
    harness::run(c, Spec::new("sync/raw_pthread_robust/uncontended"), |b| {
        let mutex = RobustMutex::new()?;
        let control = Control::new()?;
        let iterations = time_counted(b, || mutex.lock_unlock(&control));
        check_count(0, control.counter(), iterations, 0)
    });
    harness::run(c, Spec::new("sync/lock/uncontended"), |b| {
        let lock = Lock::new().map_err(Error::runtime("Lock::new"))?;
        let control = Control::new()?;
        let iterations = time_counted(b, || lock_section(&lock, &control));
        check_count(0, control.counter(), iterations, 0)
    });
}

/// Lock and unlock while a child on the other CPU does the same in a loop.
fn contended2(c: &mut criterion::Criterion) {
    let spec = Spec::new("sync/raw_pthread_robust/contended2").placement(Placement::TwoCpus);
    harness::run(c, spec, |b| {
        let helper_cpu = cpu::plan()?.secondary();
        let mutex = RobustMutex::new()?;
        let control = Control::new()?;
        let contender =
            Contender::start(&control, Some(helper_cpu), || mutex.lock_unlock(&control))?;
        let iterations = time_counted(b, || mutex.lock_unlock(&control));
        let child_iterations = contender.finish()?;
        check_count(0, control.counter(), iterations, child_iterations)
    });
    let spec = Spec::new("sync/lock/contended2").placement(Placement::TwoCpus);
    harness::run(c, spec, |b| {
        let helper_cpu = cpu::plan()?.secondary();
        let lock = Lock::new().map_err(Error::runtime("Lock::new"))?;
        let control = Control::new()?;
        let contender =
            Contender::start(&control, Some(helper_cpu), || lock_section(&lock, &control))?;
        let iterations = time_counted(b, || lock_section(&lock, &control));
        let child_iterations = contender.finish()?;
        check_count(0, control.counter(), iterations, child_iterations)
    });
}
