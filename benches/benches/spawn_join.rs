//! Spawn+join benchmarks: start a process that exits at once and join it, measured against raw
//! `fork`/`_exit`/`waitpid`, raw `clone3(CLONE_PIDFD)` + `waitid(P_PIDFD)` and a bare re-exec
//! in the same run.
//!
//! IDs: `spawn_join/<method>/<case>`; `raw_*` methods are the baselines (`raw_posix_spawn`
//! is the re-exec through `posix_spawn` instead of `fork` + `execve`). Cases: `seq` (one
//! process at a time), `batch64` (start 64, then join all; throughput in processes),
//! `parent_<size>` (the parent has touched `<size>` of memory first).
//!
//! `fork` is `proclife::Process` with the fork start method: `Process::new(|| ())`, `start`,
//! `join`, `exitcode() == Some(0)`, `close`. `forkserver` and `spawn` are the same life-cycle
//! with `Process::builder().start_method(m).entry(noop, ())`, a registered function that
//! returns at once.
//!
//! The re-executed children and the fork server run this binary again; proclife's entry hook
//! takes them over before `main` (it acts only when its environment variable is set), while the
//! raw re-exec baseline passes its own argument and no such variable, so it reaches `main`
//! and `harness::exit_if_reexec_child`. The fork server is a process of its own and spawn
//! starts no thread in this one, so the process stays single-threaded for the fork
//! benchmarks (`harness::run` checks before every sample). The server is started before the
//! parent-size sweep touches memory and stopped at the end.

use proclife::StartMethod;
use proclife_benches::harness::{self, Pace, Spec, checked};
use proclife_benches::memory::Touched;
use proclife_benches::raw::spawn::{Reexec, clone3_pidfd_wait, fork_batch_wait, fork_exit_wait};
use proclife_benches::runtime::{
    ensure_fork_server, fork_batch_start_join, fork_start_join, method_start_join,
};

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
    checked(
        proclife::stop_fork_server().map_err(proclife_benches::Error::runtime(
            "proclife::stop_fork_server",
        )),
    );
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
    harness::run(c, Spec::new("spawn_join/forkserver/seq"), |b| {
        // The server's own start (one re-exec) is not part of a child's cost.
        ensure_fork_server()?;
        b.iter(|| checked(method_start_join(StartMethod::ForkServer)));
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
/// sample of each size, measured by the raw baseline, then by proclife's fork and forkserver
/// methods, and released after all three.
///
/// The forkserver rows start the server before any memory is touched: the point of the method
/// is that the small server, not the grown parent, forks.
fn parent_sweep(c: &mut criterion::Criterion) {
    checked(ensure_fork_server());
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
        let spec = Spec::new(format!("spawn_join/forkserver/parent_{label}")).pace(Pace::Slow);
        harness::run(c, spec, |b| {
            if memory.is_none() {
                memory = Some(Touched::new(mib)?);
            }
            b.iter(|| checked(method_start_join(StartMethod::ForkServer)));
            Ok(())
        });
        drop(memory);
    }
}

/// Fork, then `execve` of this very binary with the hidden argument that makes it `_exit(0)`
/// at the top of `main`, then `waitpid`; the same through `posix_spawn` (no page-table copy);
/// and proclife's spawn method, one re-exec per child (through `posix_spawn`).
fn reexec(c: &mut criterion::Criterion) {
    let mut prepared: Option<Reexec> = None;
    type RawRun = fn(&Reexec) -> proclife_benches::Result<()>;
    let raw_rows: [(&str, RawRun); 2] = [
        ("spawn_join/raw_reexec/seq", Reexec::run),
        ("spawn_join/raw_posix_spawn/seq", Reexec::run_posix_spawn),
    ];
    for (id, run) in raw_rows {
        harness::run(c, Spec::new(id).pace(Pace::Slow), |b| {
            if prepared.is_none() {
                prepared = Some(Reexec::current()?);
            }
            if let Some(reexec) = &prepared {
                b.iter(|| checked(run(reexec)));
            }
            Ok(())
        });
    }
    harness::run(c, Spec::new("spawn_join/spawn/seq").pace(Pace::Slow), |b| {
        b.iter(|| checked(method_start_join(StartMethod::Spawn)));
        Ok(())
    });
}
