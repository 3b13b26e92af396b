//! What a sequence may not leave behind: zombies, live children, open file descriptors.
//!
//! The reading of `/proc` is the test-support crate's (`proclife_testkit::procfs`), shared
//! with every test binary; what counts as a leak of one sequence, and the reaping of what it
//! left, are the checker's.

/// The open file descriptors of this process, each as `fd -> target`, in fd order
/// (`proclife_testkit::procfs::fd_snapshot`).
pub fn open_fds() -> Vec<String> {
    proclife_testkit::procfs::fd_snapshot()
        .into_iter()
        .map(|(fd, target)| format!("{fd} -> {target}"))
        .collect()
}

/// The children of this process, each with its state letter from `/proc/PID/stat`
/// (`Z` for a zombie; `proclife_testkit::procfs::children_of`).
pub fn children() -> Vec<(u32, char)> {
    proclife_testkit::procfs::children_of(std::process::id() as i32)
        .into_iter()
        .filter_map(|(pid, state)| u32::try_from(pid).ok().map(|pid| (pid, state)))
        .collect()
}

/// What a sequence left behind, compared with a snapshot taken before it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    fds: Vec<String>,
}

impl Snapshot {
    /// The state now.
    pub fn take() -> Snapshot {
        Snapshot { fds: open_fds() }
    }

    /// Describes every leak since `self`: new fds, and any child (alive or zombie).
    ///
    /// # Errors
    ///
    /// A sentence per leak.
    pub fn check(&self) -> Result<(), String> {
        let mut problems = Vec::new();
        let now = open_fds();
        let leaked: Vec<&String> = now.iter().filter(|fd| !self.fds.contains(fd)).collect();
        if !leaked.is_empty() {
            problems.push(format!("file descriptors left open: {leaked:?}"));
        }
        let children = children();
        if !children.is_empty() {
            problems.push(format!("children left (pid, state): {children:?}"));
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems.join("; "))
        }
    }
}

/// Kills (`SIGKILL`) and reaps every child of this process, so that what one sequence left
/// behind is reported against that sequence only and never against the next.
///
/// Returns the children it found, as [`children`] lists them.
pub fn reap_leftovers() -> Vec<(u32, char)> {
    use nix::sys::signal::{Signal, kill};
    use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
    use nix::unistd::Pid;

    let found = children();
    for &(pid, _) in &found {
        let Ok(raw) = i32::try_from(pid) else {
            continue;
        };
        let pid = Pid::from_raw(raw);
        // A zombie ignores the signal; a live child dies of it. Either way the wait below
        // returns: SIGKILL cannot be blocked.
        let _ = kill(pid, Signal::SIGKILL);
        let deadline = std::time::Instant::now() + crate::sut::PROMPT;
        let mut pause = std::time::Duration::from_micros(50);
        loop {
            match waitpid(pid, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::StillAlive) | Err(nix::errno::Errno::EINTR)
                    if std::time::Instant::now() < deadline =>
                {
                    std::thread::sleep(pause);
                    pause = (pause * 2).min(std::time::Duration::from_millis(5));
                }
                // Reaped, no longer ours, or still there after the bound: the next
                // sequence's own check reports what is left.
                _ => break,
            }
        }
    }
    found
}
