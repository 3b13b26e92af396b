//! What a sequence may not leave behind: zombies, live children, open file descriptors.

use std::fs;

/// The open file descriptors of this process, with what they point at.
pub fn open_fds() -> Vec<String> {
    let Ok(dir) = fs::read_dir("/proc/self/fd") else {
        return Vec::new();
    };
    let mut fds: Vec<String> = dir
        .flatten()
        .map(|entry| {
            let target = fs::read_link(entry.path())
                .map(|t| t.display().to_string())
                .unwrap_or_default();
            format!("{} -> {target}", entry.file_name().to_string_lossy())
        })
        .collect();
    fds.sort();
    // The directory listing itself holds an fd while it is read.
    fds.retain(|fd| !fd.ends_with(&format!("/proc/{}/fd", std::process::id())));
    fds
}

/// The children of this process, each with its state letter from `/proc/PID/stat`
/// (`Z` for a zombie).
pub fn children() -> Vec<(u32, char)> {
    let me = std::process::id();
    let mut out = Vec::new();
    let Ok(proc_dir) = fs::read_dir("/proc") else {
        return out;
    };
    for entry in proc_dir.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // The command name is in parentheses and may contain spaces: parse after the last ')'.
        let Some(rest) = stat.rfind(')').map(|i| &stat[i + 1..]) else {
            continue;
        };
        let mut fields = rest.split_whitespace();
        let state = fields.next().and_then(|s| s.chars().next()).unwrap_or('?');
        let ppid = fields.next().and_then(|s| s.parse::<u32>().ok());
        if ppid == Some(me) {
            out.push((pid, state));
        }
    }
    out.sort_unstable();
    out
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
