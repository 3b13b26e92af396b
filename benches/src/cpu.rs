//! CPU placement (`sched_setaffinity`) and the single-thread check that guards every fork.
//!
//! A wake-up that crosses vCPUs costs tens of microseconds on the 2-vCPU machines this project
//! runs on, more than a whole fork+exit+wait. Sequential latency benchmarks therefore pin the
//! benchmark process to one CPU before they start; children inherit the mask, so parent and
//! child take turns on that CPU. Only the contended-lock benchmark spreads its two processes
//! over two CPUs, because on one CPU two processes contend only when one is preempted while
//! holding the lock.

use std::fmt;
use std::mem;
use std::sync::OnceLock;

use crate::{Error, Result};

/// Environment variable that picks the CPU latency benchmarks are pinned to.
pub const CPU_ENV: &str = "PROCLIFE_BENCH_CPU";

/// Where a benchmark runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placement {
    /// The process and all its children are pinned to [`CpuPlan::primary`].
    OneCpu,
    /// The process is pinned to [`CpuPlan::primary`]; its one helper child pins itself to
    /// [`CpuPlan::secondary`] (the same CPU when only one is allowed).
    TwoCpus,
}

/// The CPUs the benchmarks use, chosen once from the affinity mask the process started with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CpuPlan {
    allowed: Vec<usize>,
    primary: usize,
    secondary: usize,
}

impl CpuPlan {
    /// Chooses the CPUs from `allowed` (the start-up mask) and an optional requested CPU.
    ///
    /// The primary CPU is the requested one, or else the last allowed CPU (CPU 0 usually takes
    /// more interrupts); the secondary is the first allowed CPU other than the primary, or the
    /// primary itself when only one CPU is allowed.
    ///
    /// # Errors
    ///
    /// [`Error::Invalid`] when `allowed` is empty or the requested CPU is not in it.
    pub fn choose(allowed: Vec<usize>, requested: Option<usize>) -> Result<Self> {
        let Some(&last) = allowed.last() else {
            return Err(Error::Invalid {
                what: "the affinity mask allows no CPU".into(),
            });
        };
        let primary = match requested {
            Some(cpu) if allowed.contains(&cpu) => cpu,
            Some(cpu) => {
                return Err(Error::Invalid {
                    what: format!("{CPU_ENV}={cpu} is not in the allowed CPUs {allowed:?}"),
                });
            }
            None => last,
        };
        let secondary = allowed
            .iter()
            .copied()
            .find(|&cpu| cpu != primary)
            .unwrap_or(primary);
        Ok(CpuPlan {
            allowed,
            primary,
            secondary,
        })
    }

    /// The CPUs the process was allowed to run on at start-up.
    pub fn allowed(&self) -> &[usize] {
        &self.allowed
    }

    /// The CPU every pinned benchmark runs on.
    pub fn primary(&self) -> usize {
        self.primary
    }

    /// The CPU a contending helper child runs on.
    pub fn secondary(&self) -> usize {
        self.secondary
    }

    /// Pins the calling process as `placement` says and returns what it did.
    ///
    /// # Errors
    ///
    /// [`Error::Os`] when `sched_setaffinity` fails.
    pub fn apply(&self, placement: Placement) -> Result<Pinning> {
        pin_to(self.primary)?;
        Ok(match placement {
            Placement::OneCpu => Pinning {
                placement,
                cpus: vec![self.primary],
            },
            Placement::TwoCpus => Pinning {
                placement,
                cpus: vec![self.primary, self.secondary],
            },
        })
    }
}

/// What [`CpuPlan::apply`] did: the placement and the CPUs, parent's first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pinning {
    /// The placement that was applied.
    pub placement: Placement,
    /// The CPUs used: the parent's, then the helper child's for [`Placement::TwoCpus`].
    pub cpus: Vec<usize>,
}

impl Pinning {
    /// The record written next to criterion's results, as one JSON object.
    pub fn to_json(&self, id: &str) -> String {
        let kind = match self.placement {
            Placement::OneCpu => "one-cpu",
            Placement::TwoCpus => "two-cpus",
        };
        let cpus: Vec<String> = self.cpus.iter().map(usize::to_string).collect();
        format!(
            "{{\"id\": \"{id}\", \"placement\": \"{kind}\", \"cpus\": [{}]}}\n",
            cpus.join(", ")
        )
    }
}

impl fmt::Display for Pinning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.placement, self.cpus.as_slice()) {
            (Placement::TwoCpus, [parent, child]) if parent != child => {
                write!(
                    f,
                    "parent pinned to CPU {parent}, helper child pinned to CPU {child}"
                )
            }
            (Placement::TwoCpus, [parent, ..]) => {
                write!(
                    f,
                    "parent and helper child both pinned to CPU {parent} (only one CPU allowed)"
                )
            }
            (_, [cpu, ..]) => write!(f, "pinned to CPU {cpu}, children inherit the mask"),
            (_, []) => write!(f, "not pinned"),
        }
    }
}

/// The plan for this process, chosen on first use from the start-up affinity mask and
/// [`CPU_ENV`]. Call it before pinning anything (the harness does, in `criterion()`).
///
/// # Errors
///
/// As [`allowed_cpus`] and [`CpuPlan::choose`]; also [`Error::Invalid`] when [`CPU_ENV`] is
/// not a number.
pub fn plan() -> Result<&'static CpuPlan> {
    static PLAN: OnceLock<CpuPlan> = OnceLock::new();
    if let Some(plan) = PLAN.get() {
        return Ok(plan);
    }
    let requested = match std::env::var(CPU_ENV) {
        Ok(text) => Some(text.trim().parse::<usize>().map_err(|_| Error::Invalid {
            what: format!("{CPU_ENV}={text:?} is not a CPU number"),
        })?),
        Err(_) => None,
    };
    let plan = CpuPlan::choose(allowed_cpus()?, requested)?;
    Ok(PLAN.get_or_init(|| plan))
}

/// `sched_getaffinity(0)`—The CPUs the calling thread may run on, in increasing order.
///
/// # Errors
///
/// [`Error::Os`] when `sched_getaffinity` fails.
pub fn allowed_cpus() -> Result<Vec<usize>> {
    // SAFETY: cpu_set_t is a plain bit array; all zeroes is the empty set.
    let mut set: libc::cpu_set_t = unsafe { mem::zeroed() };
    // SAFETY: `set` is a valid, writable cpu_set_t of the size passed.
    let rc = unsafe { libc::sched_getaffinity(0, mem::size_of::<libc::cpu_set_t>(), &mut set) };
    if rc != 0 {
        return Err(Error::last_os("sched_getaffinity"));
    }
    let max = 8 * mem::size_of::<libc::cpu_set_t>();
    // SAFETY: CPU_ISSET only reads `set`, and `cpu` is below the set's capacity.
    Ok((0..max)
        .filter(|&cpu| unsafe { libc::CPU_ISSET(cpu, &set) })
        .collect())
}

/// `sched_setaffinity(0, {cpu})`—Pins the calling thread, and so every child it forks from
/// now on, to `cpu`.
///
/// It is a single system call, so a freshly forked child may call it too.
///
/// # Errors
///
/// [`Error::Invalid`] when `cpu` is beyond the mask's capacity, [`Error::Os`] when
/// `sched_setaffinity` fails (for example a CPU outside the cgroup's set).
pub fn pin_to(cpu: usize) -> Result<()> {
    if cpu >= 8 * mem::size_of::<libc::cpu_set_t>() {
        return Err(Error::Invalid {
            what: format!("CPU {cpu} is beyond cpu_set_t"),
        });
    }
    // SAFETY: cpu_set_t is a plain bit array; all zeroes is the empty set.
    let mut set: libc::cpu_set_t = unsafe { mem::zeroed() };
    // SAFETY: `cpu` was checked to be below the set's capacity.
    unsafe { libc::CPU_SET(cpu, &mut set) };
    // SAFETY: `set` is a valid cpu_set_t of the size passed.
    let rc = unsafe { libc::sched_setaffinity(0, mem::size_of::<libc::cpu_set_t>(), &set) };
    if rc != 0 {
        return Err(Error::last_os("sched_setaffinity"));
    }
    Ok(())
}

/// The number of threads in this process, from the `Threads:` line of `/proc/self/status`.
///
/// # Errors
///
/// [`Error::Os`] when the file cannot be read, [`Error::Invalid`] when it has no readable
/// `Threads:` line.
pub fn thread_count() -> Result<usize> {
    let status = std::fs::read_to_string("/proc/self/status").map_err(|source| Error::Os {
        call: "read /proc/self/status",
        source,
    })?;
    parse_threads(&status)
}

/// Reads the `Threads:` line out of the text of a `/proc/<pid>/status` file.
///
/// # Errors
///
/// [`Error::Invalid`] when there is no such line or its value is not a number.
pub fn parse_threads(status: &str) -> Result<usize> {
    status
        .lines()
        .find_map(|line| line.strip_prefix("Threads:"))
        .and_then(|value| value.trim().parse().ok())
        .ok_or_else(|| Error::Invalid {
            what: "/proc/self/status has no Threads: line".into(),
        })
}

/// Fails unless this process has exactly one thread, the condition for forking soundly.
///
/// # Errors
///
/// [`Error::Threaded`] when there is more than one thread; as [`thread_count`] otherwise.
pub fn ensure_single_threaded() -> Result<()> {
    match thread_count()? {
        1 => Ok(()),
        threads => Err(Error::Threaded { threads }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn threads_line_is_parsed() {
        let status = "Name:\tbench\nState:\tR (running)\nThreads:\t3\nSigQ:\t0/1\n";
        assert_eq!(parse_threads(status).ok(), Some(3));
    }

    #[test]
    fn missing_or_bad_threads_line_is_an_error() {
        assert!(matches!(
            parse_threads("Name:\tbench\n"),
            Err(Error::Invalid { .. })
        ));
        assert!(matches!(
            parse_threads("Threads:\tmany\n"),
            Err(Error::Invalid { .. })
        ));
    }

    #[test]
    fn plan_defaults_to_last_cpu_and_another_helper_cpu() {
        let plan = CpuPlan::choose(vec![0, 1, 3], None).ok();
        assert_eq!(plan.as_ref().map(CpuPlan::primary), Some(3));
        assert_eq!(plan.as_ref().map(CpuPlan::secondary), Some(0));
    }

    #[test]
    fn plan_honours_a_requested_cpu_and_rejects_a_foreign_one() {
        let plan = CpuPlan::choose(vec![0, 1], Some(0)).ok();
        assert_eq!(
            plan.as_ref().map(|p| (p.primary(), p.secondary())),
            Some((0, 1))
        );
        assert!(matches!(
            CpuPlan::choose(vec![0, 1], Some(5)),
            Err(Error::Invalid { .. })
        ));
        assert!(matches!(
            CpuPlan::choose(vec![], None),
            Err(Error::Invalid { .. })
        ));
    }

    #[test]
    fn one_allowed_cpu_hosts_both_processes() {
        let plan = CpuPlan::choose(vec![2], None).ok();
        assert_eq!(
            plan.as_ref().map(|p| (p.primary(), p.secondary())),
            Some((2, 2))
        );
    }

    #[test]
    fn placement_record_is_json() {
        let pinning = Pinning {
            placement: Placement::TwoCpus,
            cpus: vec![1, 0],
        };
        assert_eq!(
            pinning.to_json("sync/x/contended2"),
            "{\"id\": \"sync/x/contended2\", \"placement\": \"two-cpus\", \"cpus\": [1, 0]}\n"
        );
        assert_eq!(
            pinning.to_string(),
            "parent pinned to CPU 1, helper child pinned to CPU 0"
        );
    }
}
