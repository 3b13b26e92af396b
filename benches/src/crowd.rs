//! Many live children: the fixtures of the scaling benchmarks (`benches/scaling.rs`), which
//! measure what one more start + join costs while a crowd of children is alive, what each live
//! child costs the parent, and how long joining a crowd that exits at once takes.
//!
//! [`RawCrowd`] is the baseline: children forked with the raw helper, asleep in `read` of a
//! pipe until the parent closes its end. [`ProcessCrowd`] is the same crowd as proclife
//! `Process`es (fork method) asleep in `Event::wait` until the parent sets the event.

use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::Arc;

use proclife::Process;
use proclife::sync::Event;

use crate::raw::{CHILD_EXIT_BOUND, Child, code, fork_helper, pipe};
use crate::runtime::join_checked;
use crate::{Error, Result};

/// What the parent holds per live child: resident memory and file descriptors, from
/// `/proc/self/statm` and `/proc/self/fd` before and after the crowd was started.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Footprint {
    /// Resident bytes of the parent per live child.
    pub rss_bytes_per_child: f64,
    /// Open file descriptors of the parent per live child.
    pub fds_per_child: f64,
}

/// The parent's resident bytes and open fds right now.
///
/// # Errors
///
/// [`Error::Os`] when `/proc/self/statm` or `/proc/self/fd` cannot be read.
pub fn usage() -> Result<(u64, u64)> {
    let statm = std::fs::read_to_string("/proc/self/statm").map_err(|source| Error::Os {
        call: "read /proc/self/statm",
        source,
    })?;
    let resident_pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|field| field.parse().ok())
        .ok_or_else(|| Error::Invalid {
            what: format!("/proc/self/statm has no resident field: {statm:?}"),
        })?;
    // SAFETY: sysconf reads a system constant and touches no memory of ours.
    let page = u64::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).unwrap_or(4096);
    let fds = std::fs::read_dir("/proc/self/fd")
        .map_err(|source| Error::Os {
            call: "read_dir /proc/self/fd",
            source,
        })?
        .count();
    Ok((resident_pages * page, fds as u64))
}

fn footprint(before: (u64, u64), after: (u64, u64), n: usize) -> Footprint {
    let per = |a: u64, b: u64| (b as f64 - a as f64) / n.max(1) as f64;
    Footprint {
        rss_bytes_per_child: per(before.0, after.0),
        fds_per_child: per(before.1, after.1),
    }
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

/// `n` raw children asleep in `read` of a pipe whose write end only the parent holds.
#[derive(Debug)]
pub struct RawCrowd {
    children: Vec<Child>,
    release: Option<OwnedFd>,
    footprint: Footprint,
}

impl RawCrowd {
    /// Forks the `n` children.
    ///
    /// # Errors
    ///
    /// As [`fork_helper`] and [`pipe`]; the children started so far are killed and reaped.
    pub fn start(n: usize) -> Result<Self> {
        let before = usage()?;
        let (read_end, write_end) = pipe()?;
        let (r, w) = (read_end.as_raw_fd(), write_end.as_raw_fd());
        let mut children = Vec::with_capacity(n);
        for _ in 0..n {
            children.push(fork_helper(move || {
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
            })?);
        }
        drop(read_end);
        let footprint = footprint(before, usage()?, n);
        Ok(RawCrowd {
            children,
            release: Some(write_end),
            footprint,
        })
    }

    /// What each child of the crowd costs the parent.
    pub fn footprint(&self) -> Footprint {
        self.footprint
    }

    /// Lets every child exit and reaps them all, checking each status.
    ///
    /// # Errors
    ///
    /// The first child's failure (as [`Child::wait`]); every child is reaped regardless.
    pub fn finish(mut self) -> Result<()> {
        drop(self.release.take());
        let mut first = None;
        for child in &mut self.children {
            if let Err(err) = child.wait(CHILD_EXIT_BOUND) {
                first.get_or_insert(err);
            }
        }
        first.map_or(Ok(()), Err)
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

impl ProcessCrowd {
    /// Starts the `n` processes.
    ///
    /// # Errors
    ///
    /// [`Error::Runtime`] from `Event::new` or `start`; the processes started so far are
    /// released and joined.
    pub fn start(n: usize) -> Result<Self> {
        let before = usage()?;
        let release = Arc::new(Event::new().map_err(Error::runtime("Event::new"))?);
        let mut crowd = ProcessCrowd {
            processes: Vec::with_capacity(n),
            release,
            footprint: footprint((0, 0), (0, 0), 1),
        };
        for _ in 0..n {
            let wait_on = Arc::clone(&crowd.release);
            // Daemons, so that a benchmark that fails half-way cannot leave them behind: the
            // runtime terminates daemon children when the parent exits.
            let mut process = Process::builder().daemon(true).target(move || {
                // The child exits with 0 once released, 1 if the wait itself failed.
                if !matches!(wait_on.wait(None), Ok(true)) {
                    std::process::exit(1);
                }
            });
            if let Err(source) = process.start() {
                let _ = crowd.finish();
                return Err(Error::Runtime {
                    call: "Process::start",
                    source,
                });
            }
            crowd.processes.push(process);
        }
        crowd.footprint = footprint(before, usage()?, n);
        Ok(crowd)
    }

    /// What each process of the crowd costs the parent.
    pub fn footprint(&self) -> Footprint {
        self.footprint
    }

    /// Sets the event and joins every process, checking each exit code.
    ///
    /// # Errors
    ///
    /// The first failure (as [`join_checked`]); every process is joined regardless.
    pub fn finish(mut self) -> Result<()> {
        self.release.set();
        let mut first = None;
        for process in &mut self.processes {
            if let Err(err) = join_checked(process) {
                first.get_or_insert(err);
            }
        }
        self.processes.clear();
        first.map_or(Ok(()), Err)
    }
}
