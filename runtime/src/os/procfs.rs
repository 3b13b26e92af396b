//! The one parser of `/proc/<pid>/stat`, and the reads of it the runtime makes.
//!
//! The command name (field 2) is in parentheses and may itself contain spaces and
//! parentheses, so fields are counted after the last `)`: field 3 (the state) is the first
//! one there. See proc_pid_stat(5):
//! <https://man7.org/linux/man-pages/man5/proc_pid_stat.5.html>
#![forbid(unsafe_code)]

use std::os::fd::{BorrowedFd, OwnedFd};

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sys::stat::Mode;

use crate::error::{Error, Result};

/// The fields of a `/proc/<pid>/stat` line the runtime reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Stat {
    /// Field 3, `state`: `R`, `S`, `D`, `Z` (zombie), `X`/`x` (dead), ...
    pub(crate) state: char,
    /// Field 20, `num_threads`.
    pub(crate) num_threads: usize,
    /// Field 22, `starttime`: clock ticks since boot.
    pub(crate) start_time: u64,
}

impl Stat {
    /// Parses one `/proc/<pid>/stat` line; `None` when it is not one.
    pub(crate) fn parse(line: &[u8]) -> Option<Stat> {
        let close = line.iter().rposition(|&b| b == b')')?;
        let rest = std::str::from_utf8(line.get(close + 1..)?).ok()?;
        let mut fields = rest.split_ascii_whitespace();
        // `nth` counts from the field after the last one taken: field 3 is index 0.
        let state = fields.next()?;
        let num_threads = fields.nth(20 - 4)?.parse().ok()?;
        let start_time = fields.nth(22 - 21)?.parse().ok()?;
        let mut chars = state.chars();
        let state = chars.next().filter(|_| chars.next().is_none())?;
        Some(Stat {
            state,
            num_threads,
            start_time,
        })
    }

    /// Whether the process is stopped by a signal (`T`) or in a tracing stop (`t`).
    pub(crate) fn stopped(&self) -> bool {
        matches!(self.state, 'T' | 't')
    }

    /// Whether the process has exited (a zombie, or dead).
    pub(crate) fn exited(&self) -> bool {
        matches!(self.state, 'Z' | 'X' | 'x')
    }
}

/// Opens `/proc/self/stat`, close-on-exec.
///
/// # Errors
///
/// `Error::Os { call: "open(/proc/self/stat)", .. }` (`EMFILE` when fds run out).
pub(crate) fn open_self_stat() -> Result<OwnedFd> {
    nix::fcntl::open(
        c"/proc/self/stat",
        OFlag::O_RDONLY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|errno| Error::os("open(/proc/self/stat)", errno))
}

/// Reads and parses an open stat file with one `pread` at offset 0 into a stack buffer (no
/// allocation), so one open file can be read again and again.
///
/// # Errors
///
/// `Error::Os { call: "read(/proc/self/stat)", .. }`; `EIO` when the line does not parse.
pub(crate) fn read_stat(stat: BorrowedFd<'_>) -> Result<Stat> {
    let mut buf = [0u8; 1024];
    let n = loop {
        match nix::sys::uio::pread(stat, &mut buf, 0) {
            Ok(n) => break n,
            Err(Errno::EINTR) => continue,
            Err(errno) => return Err(Error::os("read(/proc/self/stat)", errno)),
        }
    };
    Stat::parse(buf.get(..n).unwrap_or_default())
        .ok_or(Error::os("read(/proc/self/stat)", Errno::EIO))
}

/// The pid a pidfd of this process names, from `/proc/self/fdinfo/<fd>` (its `Pid:` line);
/// `None` when it cannot be read, or once the process was reaped (`-1`).
///
/// See proc_pid_fdinfo(5): <https://man7.org/linux/man-pages/man5/proc_pid_fdinfo.5.html>
pub(crate) fn pidfd_pid(pidfd: BorrowedFd<'_>) -> Option<i32> {
    use std::os::fd::AsRawFd;
    let text = std::fs::read_to_string(format!("/proc/self/fdinfo/{}", pidfd.as_raw_fd())).ok()?;
    let pid: i32 = text
        .lines()
        .find_map(|line| line.strip_prefix("Pid:"))?
        .trim()
        .parse()
        .ok()?;
    (pid > 0).then_some(pid)
}

/// The stat line of `pid`; `None` when there is no such process (or it cannot be read).
pub(crate) fn stat_of(pid: i32) -> Option<Stat> {
    let line = std::fs::read(format!("/proc/{pid}/stat")).ok()?;
    Stat::parse(&line)
}

#[cfg(test)]
mod tests {
    use std::os::fd::AsFd;

    use super::*;

    #[test]
    fn a_pidfd_names_its_pid_in_fdinfo() {
        let me = crate::os::process::getpid();
        let pidfd = crate::os::pidfd::pidfd_open(nix::unistd::Pid::from_raw(me)).expect("pidfd");
        assert_eq!(pidfd_pid(pidfd.as_fd()), Some(me));
        let stat = stat_of(me).expect("own stat");
        assert!(!stat.stopped() && !stat.exited(), "{stat:?}");
    }

    #[test]
    fn fields_are_counted_after_the_last_parenthesis() {
        let line =
            b"4242 (a) b (c)) S 1 4242 4242 0 -1 4194560 98 0 0 0 1 2 0 0 20 0 7 0 123 4096 \
                     200 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0\n";
        assert_eq!(
            Stat::parse(line),
            Some(Stat {
                state: 'S',
                num_threads: 7,
                start_time: 123
            })
        );
        assert_eq!(Stat::parse(b"4242 (x) S 1 2"), None);
        assert_eq!(Stat::parse(b"no parenthesis at all"), None);
    }

    #[test]
    fn the_live_files_parse() {
        // This test binary runs tests on threads of its own: only a lower bound is stable.
        let stat = open_self_stat().expect("open /proc/self/stat");
        let me = read_stat(stat.as_fd()).expect("read /proc/self/stat");
        assert!(me.num_threads >= 1 && !me.exited());
        let again = read_stat(stat.as_fd()).expect("read it again");
        assert_eq!(
            again.start_time, me.start_time,
            "a second read sees the same line"
        );
        let pid = nix::unistd::getpid().as_raw();
        assert_eq!(stat_of(pid).map(|s| s.start_time), Some(me.start_time));
        assert_eq!(stat_of(i32::MAX), None);
    }
}
