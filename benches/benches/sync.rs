//! Lock benchmarks: one lock+unlock, alone and while a second process hammers the same lock,
//! measured against a process-shared robust pthread mutex in the same run.
//!
//! IDs: `sync/<lock>/<case>`; `raw_pthread_robust` is the baseline. Cases: `uncontended`
//! (pinned to one CPU, no other process), `contended2` (the parent on one CPU, a forked child
//! locking and unlocking in a loop on the other). Each critical section increments a shared
//! counter; after every sample the counter must have advanced by exactly the parent's plus the
//! child's iterations, which checks mutual exclusion and that no iteration was lost.
//!
//! A proclife benchmark goes into the function of its case, right after its baseline, as one
//! more `harness::run` call with an ID such as `sync/lock/contended2`.

use proclife_benches::cpu::{self, Placement};
use proclife_benches::harness::{self, Spec, checked};
use proclife_benches::raw::sync::{Contender, RobustMutex, check_count};

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
        let mut iterations = 0u64;
        b.iter(|| {
            checked(mutex.lock_unlock());
            iterations += 1;
        });
        check_count(0, mutex.counter(), iterations, 0)
    });
}

/// Lock and unlock while a child on the other CPU does the same in a loop.
fn contended2(c: &mut criterion::Criterion) {
    let spec = Spec::new("sync/raw_pthread_robust/contended2").placement(Placement::TwoCpus);
    harness::run(c, spec, |b| {
        let helper_cpu = cpu::plan()?.secondary();
        let mutex = RobustMutex::new()?;
        let before = mutex.counter();
        let contender = Contender::start(&mutex, Some(helper_cpu))?;
        let mut iterations = 0u64;
        b.iter(|| {
            checked(mutex.lock_unlock());
            iterations += 1;
        });
        let child_iterations = contender.finish()?;
        check_count(before, mutex.counter(), iterations, child_iterations)
    });
}
