//! Many live children: the fixtures of the scaling benchmarks (`benches/scaling.rs`), which
//! measure what one more start + join costs while a crowd of children is alive, what each live
//! child costs the parent, and how long joining a crowd that exits at once takes.
//!
//! Every crowd is a [`Crowd`]: started with [`Crowd::start`], measured with
//! [`Crowd::footprint`], released and reaped with [`Crowd::finish`].
//!
//! - [`RawCrowd`] is the baseline: children forked with the raw helper, asleep in `read` of a
//!   pipe until the parent closes its end. [`RawCrowd::start`] keeps nothing per child in the
//!   parent but its pid; [`RawCrowd::start_with_pidfds`] also opens a pidfd for each child at
//!   its birth (`pidfd_open`, as proclife's fork method does), so that the kernel's cost of
//!   one open fd per live child (every `fork` copies the fd table, every child closes its
//!   copies at exit) shows without anything else of proclife.
//! - [`ProcessCrowd`] is the same crowd as proclife `Process`es (fork method) asleep in
//!   `Event::wait` until the parent sets the event.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::Arc;

use proclife::Process;
use proclife::sync::Event;

use crate::raw::{CHILD_EXIT_BOUND, Child, code, fork_helper, pipe};
use crate::runtime::{fork_start_join, join_checked};
use crate::{Error, Result};

/// What the parent holds per live child: memory (heap in use and resident shared memory) and
/// file descriptors ([`usage`]) right before the first child is started (after whatever
/// releases the crowd, a pipe or an event, was created, and after one member was started and
/// ended: a raw child forked and killed, a proclife start + join) and after the last.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Footprint {
    /// Bytes the parent holds per live child: heap in use and resident shared memory.
    pub bytes_per_child: f64,
    /// Open file descriptors of the parent per live child.
    pub fds_per_child: f64,
}

/// The bytes the parent holds for its children, and its open fds, right now.
///
/// The bytes are the heap in use (`mallinfo2(3)`: `uordblks`, the bytes of allocated chunks in
/// the arenas, plus `hblkhd`, the bytes of chunks mapped on their own) and the resident shared
/// memory (`Rss:` of the `memfd`, `/dev/shm` and shared anonymous mappings in
/// `/proc/self/smaps`, such as proclife's status regions). Resident memory as a whole moves by
/// hundreds of KiB around a small crowd for reasons of its own (the allocator returns a freed
/// top of the heap to the kernel, the kernel reclaims pages of mapped files, and
/// `/proc/self/statm` reads per-CPU counters that lag), which divided by 10 children gave
/// figures of tens of KiB per child, some negative.
///
/// # Errors
///
/// [`Error::Os`] when `/proc/self/smaps` or `/proc/self/fd` cannot be read;
/// [`Error::Invalid`] when the former has an `Rss:` line without a number.
pub fn usage() -> Result<(u64, u64)> {
    let smaps = std::fs::read_to_string("/proc/self/smaps").map_err(|source| Error::Os {
        call: "read /proc/self/smaps",
        source,
    })?;
    let shared_kib = shared_memory_kib(&smaps).ok_or_else(|| Error::Invalid {
        what: "/proc/self/smaps has an Rss: line without a number".into(),
    })?;
    // SAFETY: mallinfo2 takes no arguments and returns a plain struct by value.
    let heap = unsafe { libc::mallinfo2() };
    let heap_bytes = u64::try_from(heap.uordblks.saturating_add(heap.hblkhd)).unwrap_or(u64::MAX);
    let fds = std::fs::read_dir("/proc/self/fd")
        .map_err(|source| Error::Os {
            call: "read_dir /proc/self/fd",
            source,
        })?
        .count();
    Ok((heap_bytes + shared_kib * 1024, fds as u64))
}

fn footprint(before: (u64, u64), after: (u64, u64), n: usize) -> Footprint {
    let per = |a: u64, b: u64| (b as f64 - a as f64) / n.max(1) as f64;
    Footprint {
        bytes_per_child: per(before.0, after.0),
        fds_per_child: per(before.1, after.1),
    }
}

/// The sum of `Rss:` over the shared-memory mappings of `smaps` (proc(5)): those whose path
/// starts with `/memfd:`, `/dev/shm/` or `/dev/zero` (a shared anonymous mapping). `None` when
/// an `Rss:` line has no number.
fn shared_memory_kib(smaps: &str) -> Option<u64> {
    let mut total = 0u64;
    let mut counts = false;
    for line in smaps.lines() {
        let mut fields = line.split_whitespace();
        let Some(first) = fields.next() else {
            continue;
        };
        if first.contains('-') && !first.ends_with(':') {
            // A mapping's header: range, perms, offset, device, inode, [path].
            let path = fields.nth(4).unwrap_or("");
            counts = ["/memfd:", "/dev/shm/", "/dev/zero"]
                .iter()
                .any(|prefix| path.starts_with(prefix));
        } else if first == "Rss:" && counts {
            total += fields.next()?.parse::<u64>().ok()?;
        }
    }
    Some(total)
}

/// Raises the soft limit on open files to the hard limit, so that a crowd of thousands of
/// children (one pidfd each, for proclife) fits.
///
/// # Errors
///
/// [`Error::Os`] when `getrlimit` or `setrlimit` fails.
pub fn raise_fd_limit() -> Result<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `limit` is a valid out-pointer for getrlimit.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &raw mut limit) } != 0 {
        return Err(Error::last_os("getrlimit"));
    }
    limit.rlim_cur = limit.rlim_max;
    // SAFETY: `limit` is a valid, initialised rlimit.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raw const limit) } != 0 {
        return Err(Error::last_os("setrlimit"));
    }
    Ok(limit.rlim_cur)
}

/// A crowd of live children, as the scaling benchmarks use it.
pub trait Crowd: Sized {
    /// Starts `n` children that stay alive until [`Crowd::finish`].
    ///
    /// # Errors
    ///
    /// As the implementation's start; the children started so far are released and reaped.
    fn start(n: usize) -> Result<Self>;

    /// What each child of the crowd costs the parent.
    fn footprint(&self) -> Footprint;

    /// Releases every child and reaps them all, checking each one's exit.
    ///
    /// # Errors
    ///
    /// The first child's failure; every child is reaped regardless.
    fn finish(self) -> Result<()>;
}

/// Starts `n` members with `start_one`, measuring the parent's footprint around them.
///
/// On the first failure, `abandon` gets the members started so far (to release and reap
/// them) and the error is returned.
fn gather<T>(
    n: usize,
    mut start_one: impl FnMut() -> Result<T>,
    abandon: impl FnOnce(Vec<T>),
) -> Result<(Vec<T>, Footprint)> {
    let before = usage()?;
    let mut members = Vec::with_capacity(n);
    for _ in 0..n {
        match start_one() {
            Ok(member) => members.push(member),
            Err(err) => {
                abandon(members);
                return Err(err);
            }
        }
    }
    match usage() {
        Ok(after) => Ok((members, footprint(before, after, n))),
        Err(err) => {
            abandon(members);
            Err(err)
        }
    }
}

/// The first error of `results`, after all of them ran.
fn first_error(results: impl Iterator<Item = Result<()>>) -> Result<()> {
    let mut first = None;
    for result in results {
        if let Err(err) = result {
            first.get_or_insert(err);
        }
    }
    first.map_or(Ok(()), Err)
}

/// `pidfd_open(pid, 0)`—A pidfd of `pid` (close-on-exec, as the kernel always makes them).
///
/// # Errors
///
/// [`Error::Os`] when `pidfd_open` fails.
pub fn pidfd_open(pid: libc::pid_t) -> Result<OwnedFd> {
    // SAFETY: pidfd_open takes a pid and a flags word and touches no memory of ours.
    let ret = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0 as libc::c_uint) };
    let fd = i32::try_from(ret).map_err(|_| Error::last_os("pidfd_open"))?;
    if fd < 0 {
        return Err(Error::last_os("pidfd_open"));
    }
    // SAFETY: pidfd_open succeeded, so `fd` is an open descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `n` raw children asleep in `read` of a pipe whose write end only the parent holds, each
/// with or without a pidfd held by the parent.
#[derive(Debug)]
pub struct RawCrowd {
    /// The children, each with the pidfd opened at its birth when the crowd holds pidfds.
    children: Vec<(Child, Option<OwnedFd>)>,
    release: Option<OwnedFd>,
    footprint: Footprint,
}

impl RawCrowd {
    /// Forks the `n` children; the parent keeps only their pids.
    ///
    /// # Errors
    ///
    /// As [`fork_helper`] and [`pipe`]; the children started so far are killed and reaped.
    pub fn start(n: usize) -> Result<Self> {
        Self::start_holding(n, false)
    }

    /// Forks the `n` children and opens a pidfd for each right after its fork, as proclife
    /// does; the parent holds them until the crowd is finished.
    ///
    /// # Errors
    ///
    /// As [`RawCrowd::start`], and [`pidfd_open`].
    pub fn start_with_pidfds(n: usize) -> Result<Self> {
        Self::start_holding(n, true)
    }

    fn start_holding(n: usize, pidfds: bool) -> Result<Self> {
        let (read_end, write_end) = pipe()?;
        let (r, w) = (read_end.as_raw_fd(), write_end.as_raw_fd());
        let start_one = || {
            let child = fork_helper(move || {
                // SAFETY: `w` is this child's inherited copy of the write end; closing it
                // leaves the parent the only writer, so its close is end of file here.
                unsafe { libc::close(w) };
                let mut byte = 0u8;
                loop {
                    // SAFETY: `byte` is a valid one-byte buffer; `r` the inherited read end.
                    match unsafe { libc::read(r, (&raw mut byte).cast(), 1) } {
                        0 => return code::OK,
                        -1 if std::io::Error::last_os_error().raw_os_error()
                            == Some(libc::EINTR) => {}
                        _ => return code::READ,
                    }
                }
            })?;
            // The child is unreaped, so its pid cannot name another process yet; on failure
            // the dropped `Child` kills and reaps it.
            let pidfd = if pidfds {
                Some(pidfd_open(child.pid())?)
            } else {
                None
            };
            Ok((child, pidfd))
        };
        // One member first, killed and reaped at once (as a dropped child is), so that what a
        // first fork sets up once is not counted in the footprint, as for `ProcessCrowd`.
        drop(start_one()?);
        // Dropped children are killed and reaped.
        let (children, footprint) = gather(n, start_one, drop)?;
        drop(read_end);
        Ok(RawCrowd {
            children,
            release: Some(write_end),
            footprint,
        })
    }
}

impl Crowd for RawCrowd {
    fn start(n: usize) -> Result<Self> {
        RawCrowd::start(n)
    }

    fn footprint(&self) -> Footprint {
        self.footprint
    }

    /// Closes the pipe and reaps every child with `waitpid`, checking each status; the
    /// pidfds are closed once every child is reaped.
    fn finish(mut self) -> Result<()> {
        drop(self.release.take());
        first_error(
            self.children
                .iter_mut()
                .map(|(child, _)| child.wait(CHILD_EXIT_BOUND)),
        )
    }
}

/// `n` proclife daemon `Process`es (fork method) asleep in `Event::wait` until the parent sets it.
#[derive(Debug)]
pub struct ProcessCrowd {
    processes: Vec<Process>,
    release: Arc<Event>,
    footprint: Footprint,
}

impl Drop for ProcessCrowd {
    fn drop(&mut self) {
        // Releases a crowd that was not finished (a failed benchmark); finished ones are
        // released already and have no processes left.
        self.release.set();
    }
}

/// Sets `release` and joins every process of `processes`, checking each exit code.
fn release_and_join(release: &Event, processes: &mut Vec<Process>) -> Result<()> {
    release.set();
    let joined = first_error(processes.iter_mut().map(join_checked));
    processes.clear();
    joined
}

impl Crowd for ProcessCrowd {
    /// Starts the `n` processes.
    ///
    /// # Errors
    ///
    /// [`Error::Runtime`] from `Event::new` or `start`; the processes started so far are
    /// released and joined.
    fn start(n: usize) -> Result<Self> {
        let release = Arc::new(Event::new().map_err(Error::runtime("Event::new"))?);
        // One start + join first, so that the footprint counts what each live child costs
        // and not what the process's first start sets up once (the status slots' first
        // pages, the runtime's code and statics brought into memory).
        fork_start_join()?;
        let start_one = || {
            let wait_on = Arc::clone(&release);
            // Daemons, so that a benchmark that fails half-way cannot leave them behind: the
            // runtime terminates daemon children when the parent exits.
            let mut process = Process::builder().daemon(true).target(move || {
                // The child exits with 0 once released, 1 if the wait itself failed.
                if !matches!(wait_on.wait(None), Ok(true)) {
                    std::process::exit(1);
                }
            });
            process.start().map_err(|source| Error::Runtime {
                call: "Process::start",
                source,
            })?;
            Ok(process)
        };
        let abandon = |mut started: Vec<Process>| {
            let _ = release_and_join(&release, &mut started);
        };
        let (processes, footprint) = gather(n, start_one, abandon)?;
        Ok(ProcessCrowd {
            processes,
            release,
            footprint,
        })
    }

    fn footprint(&self) -> Footprint {
        self.footprint
    }

    /// Sets the event and joins every process, checking each exit code.
    fn finish(mut self) -> Result<()> {
        release_and_join(&self.release, &mut self.processes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_shared_memory_mappings_count() {
        let smaps = "\
55d0c0000000-55d0c0008000 r--p 00000000 fe:00 5309436                    /work/bin/start_probe
Rss:                  32 kB
VmFlags: rd mr mw me sd
55d0c1000000-55d0c1021000 rw-p 00000000 00:00 0                          [heap]
Rss:                  20 kB
7f272c890000-7f272c893000 rw-p 00000000 00:00 0
Rss:                   8 kB
7f272c8a0000-7f272c8b0000 rw-s 00000000 00:01 77                         /memfd:proclife-status (deleted)
Rss:                  64 kB
7f272c8b0000-7f272c8b4000 rw-s 00000000 00:01 78                         /dev/zero (deleted)
Rss:                   4 kB
7f272c8c0000-7f272c8c2000 rw-s 00000000 00:19 79                         /dev/shm/psm_1
Rss:                   8 kB
7f272ca62000-7f272ca66000 r--p 001cf000 fe:00 326279                     /usr/lib/x86_64-linux-gnu/libc.so.6
Rss:                  16 kB
7ffd03118000-7ffd03139000 rw-p 00000000 00:00 0                          [stack]
Rss:                  12 kB
";
        assert_eq!(shared_memory_kib(smaps), Some(64 + 4 + 8));
        assert_eq!(
            shared_memory_kib("7f0-7f1 rw-s 0 00:01 7 /memfd:x\nRss: many kB\n"),
            None
        );
    }

    #[test]
    fn held_heap_bytes_count() {
        let (before, _) = usage().expect("read /proc/self");
        let held: Vec<Vec<u8>> = (0..64).map(|i| vec![i; 65536]).collect();
        let (after, _) = usage().expect("read /proc/self");
        assert!(
            after >= before + 64 * 65536,
            "expected 4 MiB more after allocating it: {before} -> {after} bytes"
        );
        drop(held);
    }

    #[test]
    fn this_process_has_fds() {
        let (_, fds) = usage().expect("read /proc/self");
        assert!(
            fds >= 3,
            "expected at least stdin, stdout and stderr, got {fds} fds"
        );
    }
}
