//! The criterion harness shared by the three benchmark binaries: configuration, the
//! re-exec hook, and [`run`], which places, checks and records every benchmark.
//!
//! The benchmark binaries write their own `main` (criterion's `criterion_main!` would
//! generate one) so that a re-executed copy can `_exit(0)` before criterion starts:
//!
//! ```no_run
//! use proclife_benches::harness::{self, Spec};
//! use proclife_benches::raw;
//!
//! fn main() {
//!     harness::exit_if_reexec_child();
//!     let mut c = harness::criterion();
//!     harness::run(&mut c, Spec::new("spawn_join/raw_fork/seq"), |b| {
//!         b.iter(|| harness::checked(raw::spawn::fork_exit_wait()));
//!         Ok(())
//!     });
//!     c.final_summary();
//! }
//! ```

use std::path::PathBuf;
use std::time::Duration;

use criterion::measurement::WallTime;
use criterion::{Bencher, BenchmarkId, Criterion, SamplingMode, Throughput};

use crate::background::{self, Background, CpuTally, KernelThreads};
use crate::cpu::{self, Placement};
use crate::raw::spawn::REEXEC_ARG;
use crate::{Error, Result};

/// Environment variable that selects the quick smoke-run settings when set to a non-empty
/// value other than `0`.
pub const QUICK_ENV: &str = "PROCLIFE_BENCH_QUICK";

/// The file, next to criterion's `new/` folder of each benchmark, that records its placement.
pub const PLACEMENT_FILE: &str = "proclife-placement.json";

/// The file, next to [`PLACEMENT_FILE`], that records the kernel threads' CPU time while the
/// benchmark ran ([`Background::record`]).
pub const BACKGROUND_FILE: &str = "proclife-background.json";

/// Whether the quick smoke-run settings are selected (see [`QUICK_ENV`]).
pub fn quick() -> bool {
    std::env::var_os(QUICK_ENV).is_some_and(|v| !v.is_empty() && v != "0")
}

/// Where criterion writes its results: `$CRITERION_HOME`, else `$CARGO_TARGET_DIR/criterion`,
/// else the workspace's `target/criterion`. `benches/compare.py` uses the same rule.
pub fn criterion_home() -> PathBuf {
    if let Some(home) = std::env::var_os("CRITERION_HOME") {
        return PathBuf::from(home);
    }
    if let Some(target) = std::env::var_os("CARGO_TARGET_DIR") {
        return PathBuf::from(target).join("criterion");
    }
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("target")
        .join("criterion")
}

/// Exits at once with status 0 when this process is the re-exec of a benchmark binary
/// (its first argument is [`REEXEC_ARG`]). Call it first thing in `main`.
pub fn exit_if_reexec_child() {
    if std::env::args_os()
        .nth(1)
        .is_some_and(|arg| arg == REEXEC_ARG)
    {
        // SAFETY: `_exit` ends the process at once; nothing has been set up that needs
        // flushing or tearing down.
        unsafe { libc::_exit(0) }
    }
}

/// Whether criterion is measuring (`cargo bench`), as opposed to its test mode (`cargo test
/// --benches`, or `--test`) or listing; the same rule criterion applies to its arguments.
pub fn measuring() -> bool {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let has = |flag: &str| args.iter().any(|arg| arg == flag);
    has("--bench") && !has("--test") && !has("--list")
}

/// The criterion runner for the benchmark binaries: no plots, the output directory of
/// [`criterion_home`], then the command-line arguments. It also fixes the CPU plan from the
/// start-up affinity mask, before any benchmark pins the process.
///
/// # Panics
///
/// When the CPU plan cannot be made (see [`cpu::plan`]): benchmarks must not run unplaced.
pub fn criterion() -> Criterion {
    let plan = checked(cpu::plan());
    if measuring() {
        println!(
            "proclife benches: allowed CPUs {:?}; latency benchmarks pinned to CPU {}, contending \
             helpers on CPU {}{}",
            plan.allowed(),
            plan.primary(),
            plan.secondary(),
            if quick() {
                "; quick mode (smoke run, not for comparison)"
            } else {
                ""
            },
        );
    }
    Criterion::default()
        .without_plots()
        .output_directory(&criterion_home())
        .nresamples(if quick() { 2_000 } else { 20_000 })
        .configure_from_args()
}

/// How long one iteration takes, which decides the sampling settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pace {
    /// Nanoseconds to tens of microseconds: 50 linearly growing samples.
    Fast,
    /// Hundreds of microseconds or more (process batches, exec, big parents): 20 flat
    /// samples, so that the slowest benchmark still fits its time.
    Slow,
}

/// What [`run`] needs to know about a benchmark besides its body.
#[derive(Debug, Clone)]
pub struct Spec {
    id: String,
    placement: Placement,
    pace: Pace,
    throughput: Option<Throughput>,
}

impl Spec {
    /// A benchmark with ID `group/function/parameter`, pinned to one CPU, fast, no throughput.
    pub fn new(id: impl Into<String>) -> Self {
        Spec {
            id: id.into(),
            placement: Placement::OneCpu,
            pace: Pace::Fast,
            throughput: None,
        }
    }

    /// Sets the placement.
    #[must_use]
    pub fn placement(mut self, placement: Placement) -> Self {
        self.placement = placement;
        self
    }

    /// Sets the pace.
    #[must_use]
    pub fn pace(mut self, pace: Pace) -> Self {
        self.pace = pace;
        self
    }

    /// Reports throughput: `n` elements (processes, messages) per iteration.
    #[must_use]
    pub fn elements(mut self, n: u64) -> Self {
        self.throughput = Some(Throughput::Elements(n));
        self
    }

    /// Reports throughput: `n` bytes per iteration.
    #[must_use]
    pub fn bytes(mut self, n: u64) -> Self {
        self.throughput = Some(Throughput::Bytes(n));
        self
    }

    /// The benchmark ID.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Splits the ID into its three parts, checking that each is a plain name (letters,
    /// digits, `_`), so that criterion's folder for it is the ID itself.
    ///
    /// # Errors
    ///
    /// [`Error::Invalid`] for any other shape.
    pub fn parts(&self) -> Result<(&str, &str, &str)> {
        let plain =
            |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
        let mut parts = self.id.split('/');
        match (parts.next(), parts.next(), parts.next(), parts.next()) {
            (Some(g), Some(f), Some(p), None) if plain(g) && plain(f) && plain(p) => Ok((g, f, p)),
            _ => Err(Error::Invalid {
                what: format!("benchmark ID {:?} is not group/function/parameter", self.id),
            }),
        }
    }
}

/// Runs one benchmark.
///
/// Before the first sample it pins the process as the spec says, prints the placement and,
/// when measuring, records it in [`PLACEMENT_FILE`] next to criterion's results. Before every
/// sample it checks that the process is single-threaded. `body` is called once per sample (and
/// during warm-up) with criterion's `Bencher`; it sets up its fixture, times with `b.iter` or
/// `b.iter_custom`, then checks and tears the fixture down, returning any error.
///
/// It returns the CPU time the kernel's threads used while the benchmark ran (warm-up,
/// samples and criterion's analysis), `None` where they cannot be read or the benchmark did
/// not run (left out by criterion's filter), and when measuring
/// records it in [`BACKGROUND_FILE`] next to the placement, so that the report can flag a row
/// measured beside other work.
///
/// # Panics
///
/// When the ID is malformed, when placement or the thread check fails, and when `body`
/// returns an error: a benchmark whose checks fail must not report a time.
pub fn run<F>(c: &mut Criterion, spec: Spec, mut body: F) -> Option<Background>
where
    F: FnMut(&mut Bencher<'_, WallTime>) -> Result<()>,
{
    let (group, function, parameter) = checked(spec.parts());
    let quick = quick();
    let mut g = c.benchmark_group(group);
    match (spec.pace, quick) {
        (_, true) => {
            g.sample_size(10).warm_up_time(Duration::from_millis(100));
            g.measurement_time(Duration::from_millis(300));
        }
        (Pace::Fast, false) => {
            g.sample_size(50).warm_up_time(Duration::from_secs(1));
            g.measurement_time(Duration::from_secs(4));
        }
        (Pace::Slow, false) => {
            g.sample_size(20).warm_up_time(Duration::from_secs(1));
            g.measurement_time(Duration::from_secs(4));
        }
    }
    if spec.pace == Pace::Slow {
        g.sampling_mode(SamplingMode::Flat);
    }
    if let Some(throughput) = spec.throughput.clone() {
        g.throughput(throughput);
    }
    let mut placed = false;
    let before = KernelThreads::snapshot().ok();
    g.bench_function(BenchmarkId::new(function, parameter), |b| {
        if !placed {
            place(&spec);
            placed = true;
        }
        checked(cpu::ensure_single_threaded());
        if let Err(err) = body(b) {
            panic!("{}: {err}", spec.id);
        }
    });
    g.finish();
    // A benchmark that criterion's filter left out never ran (and has no folder to write to).
    let background = before
        .filter(|_| placed)
        .and_then(|before| Some(KernelThreads::snapshot().ok()?.since(&before)));
    if let Some(background) = background.as_ref().filter(|_| measuring()) {
        let path = criterion_home().join(&spec.id).join(BACKGROUND_FILE);
        let written = serde_json::to_string(&background.record())
            .map_err(std::io::Error::other)
            .and_then(|json| std::fs::write(&path, json));
        if let Err(err) = written {
            panic!("{}: cannot record {}: {err}", spec.id, path.display());
        }
    }
    background
}

fn place(spec: &Spec) {
    let plan = checked(cpu::plan());
    let pinning = checked(plan.apply(spec.placement));
    println!("{}: {pinning}", spec.id);
    if measuring() {
        let dir = criterion_home().join(&spec.id);
        let written = std::fs::create_dir_all(&dir)
            .and_then(|()| std::fs::write(dir.join(PLACEMENT_FILE), pinning.to_json(&spec.id)));
        if let Err(err) = written {
            panic!(
                "{}: cannot record placement in {}: {err}",
                spec.id,
                dir.display()
            );
        }
    }
}

/// Times one `round_trip(seq)` per iteration, with a fresh sequence number each time, and
/// checks every result.
pub fn time_round_trips(
    b: &mut Bencher<'_, WallTime>,
    mut round_trip: impl FnMut(u64) -> Result<()>,
) {
    let mut seq = 0u64;
    b.iter(|| {
        seq += 1;
        checked(round_trip(seq));
    });
}

/// Times one `section()` per iteration, checks every result, and returns how many ran (so the
/// caller can check a shared counter against it).
pub fn time_counted(b: &mut Bencher<'_, WallTime>, mut section: impl FnMut() -> Result<()>) -> u64 {
    let mut iterations = 0u64;
    b.iter(|| {
        checked(section());
        iterations += 1;
    });
    iterations
}

/// Times one `section()` per iteration like [`time_counted`], and adds each timed loop's
/// iterations, CPU time (this process and its reaped children, [`background::cpu_time`]) and
/// wall time to `tally`. The two `getrusage` calls per loop fall outside the timed span.
pub fn time_counted_cpu(
    b: &mut Bencher<'_, WallTime>,
    tally: &mut CpuTally,
    mut section: impl FnMut() -> Result<()>,
) {
    b.iter_custom(|iters| {
        let cpu_before = checked(background::cpu_time());
        let start = std::time::Instant::now();
        for _ in 0..iters {
            checked(section());
        }
        let wall = start.elapsed();
        let cpu = checked(background::cpu_time()).saturating_sub(cpu_before);
        tally.add(iters, cpu, wall);
        wall
    });
}

/// Times `transfer(iters)` for the whole batch of iterations (a stream whose end is
/// acknowledged once), and checks it.
pub fn time_transfers(b: &mut Bencher<'_, WallTime>, mut transfer: impl FnMut(u64) -> Result<()>) {
    b.iter_custom(|iters| {
        let start = std::time::Instant::now();
        checked(transfer(iters));
        start.elapsed()
    });
}

/// Returns the value, or panics with the error: for benchmark bodies, where a failed check
/// must stop the run instead of producing a time.
///
/// # Panics
///
/// When `result` is an error.
#[track_caller]
pub fn checked<T>(result: Result<T>) -> T {
    match result {
        Ok(value) => value,
        Err(err) => panic!("benchmark check failed: {err}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_have_three_plain_parts() {
        assert_eq!(
            Spec::new("ipc/raw_pipe/rtt8").parts().ok(),
            Some(("ipc", "raw_pipe", "rtt8"))
        );
        for bad in ["ipc/raw_pipe", "ipc/raw pipe/rtt8", "a/b/c/d", "ipc//rtt8"] {
            assert!(
                matches!(Spec::new(bad).parts(), Err(Error::Invalid { .. })),
                "{bad}"
            );
        }
    }
}
