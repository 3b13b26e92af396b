//! What else used the CPU while a benchmark ran, and what the benchmark's own processes used.
//!
//! A time measured beside other work is that work's time too. The kernel's own threads are
//! the part of that work a benchmark can make grow: on a machine whose memory is watched by
//! DAMON (`kdamond`, `mm/damon/paddr.c`), every sampled page is checked through its reverse
//! map, which visits each process that maps it, so thousands of forked children sharing the
//! parent's pages make the kernel thread busier, and its walks hold the `anon_vma` locks that
//! `fork` and `exit` take. [`KernelThreads`] measures that: the CPU time of every kernel thread
//! (children of `kthreadd`, pid 2, from `/proc/2/task/2/children` and `/proc/PID/stat`,
//! proc(5)) between two snapshots. [`CpuTally`] adds up the CPU time of the benchmark's
//! process and its reaped children (`getrusage(2)`, `RUSAGE_SELF` + `RUSAGE_CHILDREN`) over
//! the timed loops only, so that the CPU per iteration can be set beside the wall time.

use std::collections::HashMap;
use std::fmt;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::{Error, Result};

/// The CPU time of every kernel thread at one moment.
#[derive(Debug, Clone)]
pub struct KernelThreads {
    taken: Instant,
    /// Per pid: the thread's name (`comm`) and its user + system time in clock ticks.
    threads: HashMap<u32, (String, u64)>,
}

/// The kernel threads' CPU use between two [`KernelThreads`] snapshots.
#[derive(Debug, Clone, PartialEq)]
pub struct Background {
    /// Wall time between the snapshots.
    pub wall: Duration,
    /// CPU time of all kernel threads, as a share of one CPU over `wall` (0.25 = a quarter of
    /// one CPU's time).
    pub share: f64,
    /// The busiest kernel thread, by name, and its share of one CPU; `None` when none ran.
    pub top: Option<(String, f64)>,
}

impl KernelThreads {
    /// Reads the CPU time of every kernel thread now.
    ///
    /// A thread that ends while being read is left out.
    ///
    /// # Errors
    ///
    /// [`Error::Os`] when `/proc/2/task/2/children` cannot be read (no `/proc`, or a kernel
    /// without `CONFIG_PROC_CHILDREN`).
    pub fn snapshot() -> Result<Self> {
        let children =
            std::fs::read_to_string("/proc/2/task/2/children").map_err(|source| Error::Os {
                call: "read /proc/2/task/2/children",
                source,
            })?;
        let threads = std::iter::once(2)
            .chain(children.split_whitespace().filter_map(|p| p.parse().ok()))
            .filter_map(|pid: u32| {
                let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
                parse_stat(&stat).map(|entry| (pid, entry))
            })
            .collect();
        Ok(Self {
            taken: Instant::now(),
            threads,
        })
    }

    /// What the kernel threads used between `earlier` and this snapshot; threads that started
    /// in between count from zero.
    pub fn since(&self, earlier: &Self) -> Background {
        let wall = self.taken.saturating_duration_since(earlier.taken);
        let mut by_name: HashMap<&str, u64> = HashMap::new();
        for (pid, (name, ticks)) in &self.threads {
            let before = earlier.threads.get(pid).map_or(0, |(_, t)| *t);
            *by_name.entry(name.as_str()).or_default() += ticks.saturating_sub(before);
        }
        let per_second = clock_ticks_per_second();
        let share = |ticks: u64| {
            if wall.is_zero() {
                0.0
            } else {
                ticks as f64 / per_second / wall.as_secs_f64()
            }
        };
        let total: u64 = by_name.values().sum();
        let top = by_name
            .iter()
            .filter(|(_, ticks)| **ticks > 0)
            .max_by_key(|(name, ticks)| (**ticks, std::cmp::Reverse(*name)))
            .map(|(name, ticks)| ((*name).to_owned(), share(*ticks)));
        Background {
            wall,
            share: share(total),
            top,
        }
    }
}

impl Background {
    /// The record written for the report (`kernel_threads_cpu_share`, and
    /// `kernel_thread_top` with `kernel_thread_top_share` when a kernel thread ran).
    pub fn record(&self) -> BackgroundRecord<'_> {
        BackgroundRecord {
            kernel_threads_cpu_share: self.share,
            kernel_thread_top: self.top.as_ref().map(|(name, _)| name.as_str()),
            kernel_thread_top_share: self.top.as_ref().map(|(_, share)| *share),
        }
    }
}

impl fmt::Display for Background {
    /// `kernel threads used 74.1 % of a CPU (kdamond.0 73.0 %)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "kernel threads used {:.1} % of a CPU",
            self.share * 100.0
        )?;
        match &self.top {
            Some((name, share)) => write!(f, " ({name} {:.1} %)", share * 100.0),
            None => Ok(()),
        }
    }
}

/// [`Background`] as the report reads it (JSON through serde).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BackgroundRecord<'a> {
    /// [`Background::share`].
    pub kernel_threads_cpu_share: f64,
    /// The busiest kernel thread's name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kernel_thread_top: Option<&'a str>,
    /// The busiest kernel thread's share of one CPU.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kernel_thread_top_share: Option<f64>,
}

/// The name and user + system ticks from one `/proc/PID/stat` line (proc(5): the name is in
/// parentheses and may itself hold spaces and parentheses; `utime` and `stime` are fields 14
/// and 15).
fn parse_stat(stat: &str) -> Option<(String, u64)> {
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    let name = stat.get(open + 1..close)?.to_owned();
    // Fields from the third (state) on; utime is the 14th field, so the 12th of these.
    let mut rest = stat.get(close + 1..)?.split_whitespace().skip(11);
    let utime: u64 = rest.next()?.parse().ok()?;
    let stime: u64 = rest.next()?.parse().ok()?;
    Some((name, utime + stime))
}

/// `sysconf(_SC_CLK_TCK)`, the unit of `/proc/PID/stat`'s times; 100 when it is unknown.
fn clock_ticks_per_second() -> f64 {
    // SAFETY: sysconf reads a system constant and touches no memory of ours.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks > 0 { ticks as f64 } else { 100.0 }
}

/// What `getrusage(2)` reports for one `who` (`RUSAGE_SELF` or `RUSAGE_CHILDREN`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// Minor page faults (`ru_minflt`).
    pub minor_faults: i64,
    /// Voluntary + involuntary context switches (`ru_nvcsw + ru_nivcsw`).
    pub context_switches: i64,
    /// User + system CPU time (`ru_utime + ru_stime`).
    pub cpu: Duration,
}

/// `getrusage(who)`.
///
/// # Errors
///
/// [`Error::Os`] when `getrusage` fails (an unknown `who`).
pub fn rusage(who: libc::c_int) -> Result<Usage> {
    // SAFETY: an all-zero `rusage` is a valid value of the plain C struct.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `usage` is a valid out-pointer for getrusage.
    if unsafe { libc::getrusage(who, &raw mut usage) } != 0 {
        return Err(Error::last_os("getrusage"));
    }
    let time = |t: libc::timeval| {
        Duration::from_secs(u64::try_from(t.tv_sec).unwrap_or(0))
            + Duration::from_micros(u64::try_from(t.tv_usec).unwrap_or(0))
    };
    Ok(Usage {
        minor_faults: usage.ru_minflt,
        context_switches: usage.ru_nvcsw + usage.ru_nivcsw,
        cpu: time(usage.ru_utime) + time(usage.ru_stime),
    })
}

/// CPU time used by this process and its reaped children so far ([`rusage`] of
/// `RUSAGE_SELF` and `RUSAGE_CHILDREN`).
///
/// # Errors
///
/// [`Error::Os`] when `getrusage` fails.
pub fn cpu_time() -> Result<Duration> {
    Ok(rusage(libc::RUSAGE_SELF)?.cpu + rusage(libc::RUSAGE_CHILDREN)?.cpu)
}

/// Iterations, CPU time and wall time of each timed loop of one benchmark.
///
/// Like criterion's sample means, the per-iteration figures are medians over the loops, so that
/// a few loops slowed by something else do not decide them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CpuTally {
    loops: Vec<TimedLoop>,
}

/// One timed loop of a [`CpuTally`].
#[derive(Debug, Clone, Copy, PartialEq)]
struct TimedLoop {
    iterations: u64,
    cpu: Duration,
    wall: Duration,
}

impl CpuTally {
    /// Adds one timed loop of `iterations` iterations (a loop of none is not counted).
    pub fn add(&mut self, iterations: u64, cpu: Duration, wall: Duration) {
        if iterations > 0 {
            self.loops.push(TimedLoop {
                iterations,
                cpu,
                wall,
            });
        }
    }

    /// Iterations timed, over all loops.
    pub fn iterations(&self) -> u64 {
        self.loops.iter().map(|l| l.iterations).sum()
    }

    /// The median over the loops of the CPU time per iteration, in microseconds; `None` before
    /// any loop (a benchmark that did not run).
    pub fn cpu_us_per_iteration(&self) -> Option<f64> {
        self.median(|l| l.cpu)
    }

    /// The median over the loops of the wall time per iteration, in microseconds; `None` before
    /// any loop.
    pub fn wall_us_per_iteration(&self) -> Option<f64> {
        self.median(|l| l.wall)
    }

    fn median(&self, time: impl Fn(&TimedLoop) -> Duration) -> Option<f64> {
        let mut per: Vec<f64> = self
            .loops
            .iter()
            .map(|l| time(l).as_secs_f64() * 1e6 / l.iterations as f64)
            .collect();
        per.sort_by(f64::total_cmp);
        match per.len() {
            0 => None,
            n if n % 2 == 1 => Some(per[n / 2]),
            n => Some((per[n / 2 - 1] + per[n / 2]) / 2.0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stat_line_gives_its_name_and_ticks() {
        let line = "78 (kdamond.0) I 2 0 0 0 -1 2129984 0 0 0 0 4000 1500 0 0 20 0 1 0 132 0 0";
        assert_eq!(parse_stat(line), Some(("kdamond.0".to_owned(), 5500)));
        let odd = "9 (a (b) c) S 2 0 0 0 -1 0 0 0 0 0 7 3 0 0 20 0 1 0 1 0 0";
        assert_eq!(parse_stat(odd), Some(("a (b) c".to_owned(), 10)));
        assert_eq!(parse_stat("9 (cut) S 2"), None);
    }

    #[test]
    fn the_busiest_thread_is_named_with_its_share() {
        let at = Instant::now();
        let snapshot = |secs: u64, threads: &[(u32, &str, u64)]| KernelThreads {
            taken: at + Duration::from_secs(secs),
            threads: threads
                .iter()
                .map(|(pid, name, ticks)| (*pid, ((*name).to_owned(), *ticks)))
                .collect(),
        };
        let tick = clock_ticks_per_second();
        let ticks = |seconds: f64| (seconds * tick).round() as u64;
        let before = snapshot(0, &[(3, "rcu", 0), (78, "kdamond.0", ticks(1.0))]);
        let after = snapshot(
            10,
            &[
                (3, "rcu", ticks(0.5)),
                (78, "kdamond.0", ticks(4.0)),
                (90, "kworker", ticks(0.5)),
            ],
        );
        let background = after.since(&before);
        assert_eq!(background.wall, Duration::from_secs(10));
        assert!(
            (background.share - 0.4).abs() < 1e-9,
            "expected 4 s of kernel-thread CPU in 10 s (0.4), got {}",
            background.share
        );
        let (name, share) = background.top.expect("a kernel thread ran");
        assert_eq!(name, "kdamond.0");
        assert!(
            (share - 0.3).abs() < 1e-9,
            "expected kdamond's 3 s in 10 s (0.3), got {share}"
        );
        assert_eq!(before.since(&before).top, None);
    }

    #[test]
    fn a_background_records_its_busiest_thread_only_when_one_ran() {
        let busy = Background {
            wall: Duration::from_millis(5100),
            share: 0.74,
            top: Some(("kdamond.0".to_owned(), 0.73)),
        };
        let record = busy.record();
        assert_eq!(record.kernel_thread_top, Some("kdamond.0"));
        assert_eq!(record.kernel_thread_top_share, Some(0.73));
        assert_eq!(
            busy.to_string(),
            "kernel threads used 74.0 % of a CPU (kdamond.0 73.0 %)"
        );
        let idle = Background {
            wall: Duration::from_secs(1),
            share: 0.0,
            top: None,
        };
        let json = serde_json::to_string(&idle.record()).expect("serialise");
        assert_eq!(
            json, "{\"kernel_threads_cpu_share\":0.0}",
            "an idle background names no thread"
        );
        assert_eq!(idle.to_string(), "kernel threads used 0.0 % of a CPU");
    }

    #[test]
    fn cpu_time_grows_with_work() {
        let before = cpu_time().expect("getrusage");
        let mut x = 0u64;
        let started = Instant::now();
        while started.elapsed() < Duration::from_millis(30) {
            x = std::hint::black_box(x.wrapping_add(1));
        }
        let after = cpu_time().expect("getrusage");
        assert!(
            after > before,
            "expected CPU time to grow over 30 ms of spinning: {before:?} -> {after:?}"
        );
    }

    #[test]
    fn a_tally_gives_the_median_loop() {
        let mut tally = CpuTally::default();
        assert_eq!(tally.cpu_us_per_iteration(), None);
        let us = Duration::from_micros;
        tally.add(4, us(400), us(1000));
        tally.add(0, us(7), us(7));
        tally.add(2, us(10_000), us(90_000));
        tally.add(6, us(1200), us(1500));
        assert_eq!(tally.iterations(), 12);
        // Per iteration: CPU 100, 5000, 200 -> median 200; wall 250, 45000, 250 -> 250.
        let near = |got: Option<f64>, want: f64| got.is_some_and(|got| (got - want).abs() < 1e-9);
        assert!(near(tally.cpu_us_per_iteration(), 200.0));
        assert!(near(tally.wall_us_per_iteration(), 250.0));
        tally.add(1, us(300), us(300));
        // CPU 100, 200, 300, 5000 -> (200 + 300) / 2.
        assert!(near(tally.cpu_us_per_iteration(), 250.0));
    }
}
