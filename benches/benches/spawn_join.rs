//! Spawn+join benchmarks: start a process that exits at once and join it, measured against raw
//! `fork`/`_exit`/`waitpid`, raw `clone3(CLONE_PIDFD)` + `waitid(P_PIDFD)` and a bare re-exec
//! in the same run.
//!
//! IDs: `spawn_join/<method>/<case>`; `raw_*` methods are the baselines. Cases: `seq` (one
//! process at a time), `batch64` (start 64, then join all; throughput in processes),
//! `parent_<size>` (the parent has touched `<size>` of memory first).
//!
//! `fork` is `proclife::Process` with the fork start method: `Process::new(|| ())`, `start`,
//! `join`, `exitcode() == Some(0)`, `close`. The forkserver and spawn methods get their rows
//! (`spawn_join/forkserver/*`, `spawn_join/spawn/seq`) with the start methods themselves.

use proclife_benches::harness::{self, Pace, Spec, checked};
use proclife_benches::memory::Touched;
use proclife_benches::raw::spawn::{Reexec, clone3_pidfd_wait, fork_batch_wait, fork_exit_wait};
use proclife_benches::runtime::{fork_batch_start_join, fork_start_join};

/// Processes per iteration of the batch benchmarks.
const BATCH: usize = 64;

/// Parent sizes of the sweep, in MiB, with the suffix used in the IDs.
const PARENT_SIZES: [(usize, &str); 4] = [
    (16, "16MiB"),
    (64, "64MiB"),
    (256, "256MiB"),
    (1024, "1GiB"),
];

fn main() {
    harness::exit_if_reexec_child();
    let mut c = harness::criterion();
    seq(&mut c);
    batch(&mut c);
    parent_sweep(&mut c);
    reexec(&mut c);
    c.final_summary();
}

/// One process at a time: start, then join, pinned to one CPU.
fn seq(c: &mut criterion::Criterion) {
    harness::run(c, Spec::new("spawn_join/raw_fork/seq"), |b| {
        b.iter(|| checked(fork_exit_wait()));
        Ok(())
    });
    harness::run(c, Spec::new("spawn_join/raw_clone3_pidfd/seq"), |b| {
        b.iter(|| checked(clone3_pidfd_wait()));
        Ok(())
    });
    harness::run(c, Spec::new("spawn_join/fork/seq"), |b| {
        b.iter(|| checked(fork_start_join()));
        Ok(())
    });
}

/// Start 64 processes, then join them all; throughput in processes per second.
fn batch(c: &mut criterion::Criterion) {
    let mut pids = [0; BATCH];
    let spec = Spec::new("spawn_join/raw_fork/batch64")
        .pace(Pace::Slow)
        .elements(BATCH as u64);
    harness::run(c, spec, |b| {
        b.iter(|| checked(fork_batch_wait(&mut pids)));
        Ok(())
    });
    let mut processes = Vec::with_capacity(BATCH);
    let spec = Spec::new("spawn_join/fork/batch64")
        .pace(Pace::Slow)
        .elements(BATCH as u64);
    harness::run(c, spec, |b| {
        b.iter(|| checked(fork_batch_start_join(&mut processes, BATCH)));
        Ok(())
    });
}

/// Fork cost as the parent's touched memory grows. The memory is touched before the first
/// sample of each size, measured by the raw baseline and then by proclife's fork method, and
/// released after both.
///
/// A forkserver benchmark of the sweep must start its server before touching the memory: the
/// point of the method is that the server, not the grown parent, forks.
fn parent_sweep(c: &mut criterion::Criterion) {
    for (mib, label) in PARENT_SIZES {
        let mut memory: Option<Touched> = None;
        let spec = Spec::new(format!("spawn_join/raw_fork/parent_{label}")).pace(Pace::Slow);
        harness::run(c, spec, |b| {
            if memory.is_none() {
                memory = Some(Touched::new(mib)?);
            }
            b.iter(|| checked(fork_exit_wait()));
            Ok(())
        });
        let spec = Spec::new(format!("spawn_join/fork/parent_{label}")).pace(Pace::Slow);
        harness::run(c, spec, |b| {
            if memory.is_none() {
                memory = Some(Touched::new(mib)?);
            }
            b.iter(|| checked(fork_start_join()));
            Ok(())
        });
        drop(memory);
    }
}

/// Fork, then `execve` of this very binary with the hidden argument that makes it `_exit(0)`
/// at the top of `main`, then `waitpid`.
fn reexec(c: &mut criterion::Criterion) {
    let mut prepared: Option<Reexec> = None;
    harness::run(
        c,
        Spec::new("spawn_join/raw_reexec/seq").pace(Pace::Slow),
        |b| {
            if prepared.is_none() {
                prepared = Some(Reexec::current()?);
            }
            if let Some(reexec) = &prepared {
                b.iter(|| checked(reexec.run()));
            }
            Ok(())
        },
    );
}
