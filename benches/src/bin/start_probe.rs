//! Starts and joins N children one after the other, for counting what one start costs with
//! outside tools (`strace -f -c`, `perf stat -e page-faults,instructions`), which criterion's
//! timings do not show.
//!
//! ```sh
//! cargo build --release -p proclife-benches --bin start_probe
//! strace -f -c target/release/start_probe fork 1000
//! perf stat -e page-faults,instructions target/release/start_probe fork 1000
//! ```
//!
//! Methods: `fork`, `forkserver`, `spawn` (proclife, as the `spawn_join` benchmark starts
//! them), `raw-fork`, `raw-clone3`, `raw-reexec` and `raw-posix-spawn` (the benchmark's raw
//! baselines). Every child is checked to exit with 0 and reaped. Exit status 0 on success, 1 at the first failure, 2 for bad
//! arguments.
//!
//! `start_probe METHOD N CROWD M` first starts a crowd of M live children, as the scaling
//! benchmark does (`raw`: raw children asleep in `read`; `raw-pidfd`: the same, each with a
//! pidfd held by the parent; `proclife`: proclife processes waiting on an `Event`), prints
//! `crowd ready` on stderr, runs the N starts beside it (printing the mean time per start on
//! stderr), then releases and reaps the crowd.

use std::time::Duration;

use proclife::StartMethod;
use proclife_benches::background::rusage;
use proclife_benches::crowd::{Crowd, ProcessCrowd, RawCrowd, raise_fd_limit};
use proclife_benches::harness::exit_if_reexec_child;
use proclife_benches::raw::spawn::{Reexec, clone3_pidfd_wait, fork_exit_wait};
use proclife_benches::runtime::{fork_start_join, method_start_join};

fn main() {
    exit_if_reexec_child();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(method), Some(Ok(n))) = (args.first(), args.get(1).map(|n| n.parse::<u32>())) else {
        usage();
    };
    let crowd = match (
        args.get(2).map(String::as_str),
        args.get(3).map(|m| m.parse()),
    ) {
        (None, None) => None,
        (Some(kind), Some(Ok(m))) => Some((kind.to_owned(), m)),
        _ => usage(),
    };
    let once: fn() -> proclife_benches::Result<()> = match method.as_str() {
        "fork" => fork_start_join,
        "forkserver" => || method_start_join(StartMethod::ForkServer),
        "spawn" => || method_start_join(StartMethod::Spawn),
        "raw-fork" => fork_exit_wait,
        "raw-clone3" => clone3_pidfd_wait,
        "raw-reexec" => || reexec_wait(Reexec::run),
        "raw-posix-spawn" => || reexec_wait(Reexec::run_posix_spawn),
        other => {
            eprintln!("start_probe: unknown method {other:?}");
            std::process::exit(2);
        }
    };
    let result = match crowd {
        None => starts(once, n),
        Some((kind, m)) => {
            if let Err(error) = raise_fd_limit() {
                fail(&error);
            }
            match kind.as_str() {
                "raw" => beside(RawCrowd::start(m), once, n),
                "raw-pidfd" => beside(RawCrowd::start_with_pidfds(m), once, n),
                "proclife" => beside(<ProcessCrowd as Crowd>::start(m), once, n),
                other => {
                    eprintln!("start_probe: unknown crowd {other:?}");
                    std::process::exit(2);
                }
            }
        }
    };
    if let Err(error) = result {
        fail(&error);
    }
}

fn usage() -> ! {
    eprintln!(
        "usage: start_probe fork|forkserver|spawn|raw-fork|raw-clone3|raw-reexec|raw-posix-spawn N \
         [raw|raw-pidfd|proclife M]"
    );
    std::process::exit(2);
}

/// The benchmark's `raw_reexec` or `raw_posix_spawn` baseline, as `run` makes it: `fork` +
/// `execve(/proc/self/exe)` of this binary, or its `posix_spawn`, which
/// `exit_if_reexec_child` ends at the top of `main`, and `waitpid`; prepared once.
fn reexec_wait(run: fn(&Reexec) -> proclife_benches::Result<()>) -> proclife_benches::Result<()> {
    thread_local! {
        static PREPARED: std::cell::OnceCell<Reexec> = const { std::cell::OnceCell::new() };
    }
    PREPARED.with(|prepared| {
        if prepared.get().is_none() {
            let _ = prepared.set(Reexec::current()?);
        }
        prepared.get().map_or(Ok(()), run)
    })
}

fn fail(error: &proclife_benches::Error) -> ! {
    eprintln!("start_probe: {error}");
    std::process::exit(1);
}

/// `n` starts of `once`, one after the other.
fn starts(once: fn() -> proclife_benches::Result<()>, n: u32) -> proclife_benches::Result<()> {
    for i in 0..n {
        once().map_err(|error| proclife_benches::Error::Invalid {
            what: format!("start {i} of {n}: {error}"),
        })?;
    }
    Ok(())
}

/// `n` starts of `once` beside a live crowd, which is then released and reaped.
fn beside<C: Crowd>(
    crowd: proclife_benches::Result<C>,
    once: fn() -> proclife_benches::Result<()>,
    n: u32,
) -> proclife_benches::Result<()> {
    let crowd = crowd?;
    eprintln!("crowd ready");
    let both = || -> proclife_benches::Result<_> {
        Ok((rusage(libc::RUSAGE_SELF)?, rusage(libc::RUSAGE_CHILDREN)?))
    };
    let before = both();
    let started = std::time::Instant::now();
    let mut result = starts(once, n);
    let elapsed = started.elapsed();
    // The crowd is finished (released and reaped) whatever failed here.
    match (before, both()) {
        (Ok((self_before, children_before)), Ok((self_after, children_after))) => {
            let per = |count: i64| count as f64 / f64::from(n.max(1));
            let micros_per = |a: Duration, b: Duration| {
                b.saturating_sub(a).as_secs_f64() * 1e6 / f64::from(n.max(1))
            };
            eprintln!(
                "{:.1} us per start beside the crowd; per start: parent {:.2} page faults, {:.2} \
                 context switches, {:.1} us CPU; started children {:.2} page faults, {:.1} us CPU",
                elapsed.as_secs_f64() * 1e6 / f64::from(n.max(1)),
                per(self_after.minor_faults - self_before.minor_faults),
                per(self_after.context_switches - self_before.context_switches),
                micros_per(self_before.cpu, self_after.cpu),
                per(children_after.minor_faults - children_before.minor_faults),
                micros_per(children_before.cpu, children_after.cpu),
            );
        }
        (Err(error), _) | (_, Err(error)) => result = result.and(Err(error)),
    }
    let finished = crowd.finish();
    result.and(finished)
}
