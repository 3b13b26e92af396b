//! Cost as the work grows: one more start + join while a crowd of children is alive, what each
//! live child costs the parent, joining a crowd that exits at once, and the wake-up latency of
//! the synchronisation primitives; each beside its raw baseline in the same run.
//!
//! IDs (`scaling/<function>/<case>`):
//! - `raw_fork_alive/nN`, `raw_fork_pidfd_alive/nN`, `fork_alive/nN`: one raw
//!   `fork`/`_exit`/`waitpid`, or one proclife fork-method start + join, while N other
//!   children are alive: raw ones asleep in `read` (for `raw_fork_pidfd_alive`, each with a
//!   pidfd that the parent opened at its birth and holds, as proclife does), or proclife
//!   daemon processes asleep in `Event::wait`. Flat in N means no per-start work grows with
//!   the number of children; the growth of `raw_fork_pidfd_alive` over `raw_fork_alive` is the
//!   kernel's cost of one more open fd per live child (the fd table `fork` copies and the
//!   child closes at exit).
//! - `raw_fork_join_together/n1000`, `fork_join_together/n1000`: release 1000 live children at
//!   once (close the pipe they read, or set the event they wait on) and reap or join them all;
//!   only the release and the joins are timed.
//! - `raw_futex/round`, `event/round`, `condition/round`, `barrier/round`: one round of a ping
//!   answered by a forked child (two wake-ups of a sleeping process) through a raw futex word,
//!   an `Event` pair, a `Condition` and a two-party `Barrier` (where only the first to arrive
//!   sleeps: one wake-up per round, so its ratio to the raw round flatters it about twice).
//!   Parent and child share one CPU.
//!
//! While measuring, each `*_alive` row's record is written to
//! `<criterion home>/scaling/footprint.json` for the report: the bytes (heap in use and
//! resident shared memory) and file descriptors the parent holds per live child, right before
//! the first child of the crowd and after the last ([`proclife_benches::crowd::usage`]); the
//! CPU and wall time per start + join of the process and its reaped children (`getrusage`;
//! medians over the timed loops); and the CPU the kernel's threads used while the row ran, with
//! the busiest one named ([`proclife_benches::background`]): work beside the benchmark that the
//! crowd itself can make grow.

use std::time::{Duration, Instant};

use criterion::Criterion;
use proclife_benches::background::{Background, BackgroundRecord, CpuTally};
use proclife_benches::crowd::{Crowd, Footprint, ProcessCrowd, RawCrowd, raise_fd_limit};
use proclife_benches::harness::{self, Pace, Spec, checked, time_counted, time_counted_cpu};
use proclife_benches::raw::spawn::fork_exit_wait;
use proclife_benches::raw::wake::{FutexPingPong, Turn, check_rounds};
use proclife_benches::runtime::fork_start_join;
use proclife_benches::wake::{BarrierRounds, ConditionPingPong, EventPingPong};
use proclife_benches::{Error, Result};
use serde::Serialize;

/// The crowd sizes of the `*_alive` rows.
const CROWDS: [usize; 4] = [10, 100, 1000, 4000];
/// The crowd size of the `*_join_together` rows.
const TOGETHER: usize = 1000;

fn main() {
    let mut c = harness::criterion();
    checked(raise_fd_limit());
    let mut records = Vec::new();
    alive(&mut c, &mut records);
    checked(record(&records));
    join_together(&mut c);
    wake_ups(&mut c);
    c.final_summary();
}

/// What one `*_alive` row measured beside criterion's times.
struct AliveRecord {
    /// `<function>/n<n>`.
    id: String,
    footprint: Footprint,
    tally: CpuTally,
    /// `None` where the kernel's threads cannot be read (a `/proc` without `kthreadd`, as in
    /// a container of its own pid namespace).
    background: Option<Background>,
}

/// One `*_alive` row as `footprint.json` holds it (see the module docs).
#[derive(Serialize)]
struct AliveRow<'a> {
    bytes_per_child: f64,
    fds_per_child: f64,
    /// Absent for a row that did not run (left out by criterion's filter).
    #[serde(skip_serializing_if = "Option::is_none")]
    cpu_us_per_start: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    wall_us_per_start: Option<f64>,
    starts: u64,
    #[serde(flatten)]
    background: Option<BackgroundRecord<'a>>,
}

/// One start + join beside crowds of growing size.
fn alive(c: &mut Criterion, records: &mut Vec<AliveRecord>) {
    for n in CROWDS {
        alive_row(
            c,
            records,
            "raw_fork_alive",
            n,
            RawCrowd::start,
            fork_exit_wait,
        );
        alive_row(
            c,
            records,
            "raw_fork_pidfd_alive",
            n,
            RawCrowd::start_with_pidfds,
            fork_exit_wait,
        );
        alive_row(
            c,
            records,
            "fork_alive",
            n,
            ProcessCrowd::start,
            fork_start_join,
        );
    }
}

/// The row `scaling/<function>/n<n>`: `once` timed while the crowd `start(n)` is alive.
fn alive_row<C: Crowd>(
    c: &mut Criterion,
    records: &mut Vec<AliveRecord>,
    function: &str,
    n: usize,
    start: impl Fn(usize) -> Result<C>,
    once: fn() -> Result<()>,
) {
    let crowd = checked(start(n));
    let footprint = crowd.footprint();
    let mut tally = CpuTally::default();
    let background = harness::run(c, Spec::new(format!("scaling/{function}/n{n}")), |b| {
        time_counted_cpu(b, &mut tally, once);
        Ok(())
    });
    checked(crowd.finish());
    records.push(AliveRecord {
        id: format!("{function}/n{n}"),
        footprint,
        tally,
        background,
    });
}

/// Writes the `*_alive` rows' records for the report, when measuring.
fn record(records: &[AliveRecord]) -> Result<()> {
    for r in records {
        let measured = match (
            r.tally.cpu_us_per_iteration(),
            r.tally.wall_us_per_iteration(),
        ) {
            (Some(cpu), Some(wall)) => {
                let background = r.background.as_ref().map_or_else(
                    || "kernel threads not readable".to_owned(),
                    ToString::to_string,
                );
                format!("{cpu:.1} us CPU and {wall:.1} us wall per start + join; {background}")
            }
            _ => "not run (left out by the filter)".to_owned(),
        };
        println!(
            "scaling/{}: {:.0} bytes and {:.2} fds per live child in the parent; {measured}",
            r.id, r.footprint.bytes_per_child, r.footprint.fds_per_child,
        );
    }
    if !harness::measuring() {
        return Ok(());
    }
    let json = records
        .iter()
        .map(|r| {
            let row = AliveRow {
                bytes_per_child: r.footprint.bytes_per_child,
                fds_per_child: r.footprint.fds_per_child,
                cpu_us_per_start: r.tally.cpu_us_per_iteration(),
                wall_us_per_start: r.tally.wall_us_per_iteration(),
                starts: r.tally.iterations(),
                background: r.background.as_ref().map(Background::record),
            };
            serde_json::to_value(row).map(|value| (r.id.clone(), value))
        })
        .collect::<serde_json::Result<serde_json::Map<_, _>>>()
        .and_then(|rows| serde_json::to_string_pretty(&rows))
        .map_err(|err| Error::Invalid {
            what: format!("footprint.json: {err}"),
        })?;
    let dir = harness::criterion_home().join("scaling");
    let path = dir.join("footprint.json");
    std::fs::create_dir_all(&dir)
        .and_then(|()| std::fs::write(&path, json + "\n"))
        .map_err(|source| Error::Os {
            call: "write footprint.json",
            source,
        })
}

/// Times [`Crowd::finish`] (release and join) over a fresh crowd of [`TOGETHER`] per iteration; the start of
/// each crowd is not timed.
fn time_crowds<C: Crowd>(
    b: &mut criterion::Bencher<'_>,
    start: impl Fn(usize) -> Result<C>,
) -> Result<()> {
    let mut failure = None;
    b.iter_custom(|iters| {
        let mut total = Duration::ZERO;
        for _ in 0..iters {
            let crowd = checked(start(TOGETHER));
            let started = Instant::now();
            if let Err(err) = crowd.finish() {
                failure.get_or_insert(err);
            }
            total += started.elapsed();
        }
        total
    });
    failure.map_or(Ok(()), Err)
}

/// Releasing and joining a crowd that exits together.
fn join_together(c: &mut Criterion) {
    let spec = |id: &str| Spec::new(id).pace(Pace::Slow).elements(TOGETHER as u64);
    harness::run(c, spec("scaling/raw_fork_join_together/n1000"), |b| {
        time_crowds(b, RawCrowd::start)
    });
    harness::run(c, spec("scaling/fork_join_together/n1000"), |b| {
        time_crowds(b, ProcessCrowd::start)
    });
}

/// Wake-up latency: one ping and its answer, through each primitive.
fn wake_ups(c: &mut Criterion) {
    let turn = checked(Turn::new());
    harness::run(c, Spec::new("scaling/raw_futex/round"), |b| {
        let mut pair = FutexPingPong::start(&turn)?;
        let rounds = time_counted(b, || pair.round());
        check_rounds(rounds, pair.finish()?)
    });
    harness::run(c, Spec::new("scaling/event/round"), |b| {
        let mut pair = EventPingPong::start(&turn)?;
        let rounds = time_counted(b, || pair.round());
        check_rounds(rounds, pair.finish()?)
    });
    harness::run(c, Spec::new("scaling/condition/round"), |b| {
        let mut pair = ConditionPingPong::start(&turn)?;
        let rounds = time_counted(b, || pair.round());
        check_rounds(rounds, pair.finish()?)
    });
    harness::run(c, Spec::new("scaling/barrier/round"), |b| {
        let mut pair = BarrierRounds::start(&turn)?;
        let mut timed = 0u64;
        let mut failure = None;
        b.iter_custom(|iters| {
            let n = u32::try_from(iters).unwrap_or(u32::MAX);
            match pair.rounds(n) {
                Ok(elapsed) => {
                    timed += u64::from(n);
                    elapsed
                }
                Err(err) => {
                    failure.get_or_insert(err);
                    Duration::ZERO
                }
            }
        });
        let answered = pair.finish()?;
        failure.map_or(Ok(()), Err)?;
        check_rounds(timed, answered)
    });
}
