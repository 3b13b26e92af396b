//! The one `poll(2)` wait of the runtime: until an fd is ready or a [`Deadline`] passes.
//!
//! Every wait on fds (pidfds, pipes, sockets) goes through [`wait`]: it retries `EINTR` with
//! the time left and rounds that time up to whole milliseconds, so a wait never ends before
//! its deadline.
#![forbid(unsafe_code)]

use std::os::fd::BorrowedFd;
use std::time::Duration;

use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};

use super::time::Deadline;
use crate::error::{Error, Result};

/// The `poll` timeout for what is left of `deadline`: rounded up to whole milliseconds,
/// capped at what `poll` takes (the caller loops).
fn timeout_for(deadline: &Deadline) -> PollTimeout {
    match deadline.remaining() {
        None => PollTimeout::NONE,
        Some(left) => {
            let millis = left.as_micros().div_ceil(1000);
            PollTimeout::try_from(millis).unwrap_or(PollTimeout::MAX)
        }
    }
}

/// Polls `fds` until at least one reports an event or `deadline` passes; returns how many
/// did (0: the deadline passed). Retries `EINTR` with the time left.
///
/// # Errors
///
/// `Error::Os { call: "poll", .. }` (`ENOMEM`, `EINVAL` for too many fds).
///
/// # References
///
/// <https://man7.org/linux/man-pages/man2/poll.2.html>
pub(crate) fn wait(fds: &mut [PollFd<'_>], deadline: &Deadline) -> Result<usize> {
    loop {
        match poll(fds, timeout_for(deadline)) {
            Ok(0) if !deadline.expired() => continue,
            Ok(n) => return Ok(usize::try_from(n).unwrap_or(0)),
            Err(Errno::EINTR) => continue,
            Err(errno) => return Err(Error::os("poll", errno)),
        }
    }
}

/// Polls `fds` once without sleeping; as [`wait`] with an expired deadline.
///
/// # Errors
///
/// As [`wait`].
pub(crate) fn now(fds: &mut [PollFd<'_>]) -> Result<usize> {
    wait(fds, &Deadline::after(Some(Duration::ZERO)))
}

/// Keeps the items of `items` for which `keep(item, ready)` says so, where `ready` is the
/// poll result at the item's index in `ready` (`missing` past its end): the items and the
/// fds of one `poll` are in the same order.
pub(crate) fn retain_by_ready<T>(
    items: &mut Vec<T>,
    ready: &[bool],
    missing: bool,
    mut keep: impl FnMut(&T, bool) -> bool,
) {
    let mut index = 0;
    items.retain(|item| {
        let ready = ready.get(index).copied().unwrap_or(missing);
        index += 1;
        keep(item, ready)
    });
}

/// Whether `fd` reports one of `events` (or an error or hang-up) before `deadline`.
///
/// # Errors
///
/// As [`wait`].
pub(crate) fn ready(fd: BorrowedFd<'_>, events: PollFlags, deadline: &Deadline) -> Result<bool> {
    let mut fds = [PollFd::new(fd, events)];
    Ok(wait(&mut fds, deadline)? > 0)
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::os::fd::AsFd;

    use super::*;

    #[test]
    fn waits_until_ready_or_deadline() {
        let (r, w) = nix::unistd::pipe().expect("pipe");
        let soon = Deadline::after(Some(Duration::from_millis(5)));
        assert!(!ready(r.as_fd(), PollFlags::POLLIN, &soon).expect("poll"));
        assert!(
            soon.expired(),
            "an empty pipe is not ready before the deadline"
        );
        std::fs::File::from(w).write_all(b"x").expect("write");
        let never = Deadline::after(None);
        assert!(ready(r.as_fd(), PollFlags::POLLIN, &never).expect("poll"));
        let mut fds = [PollFd::new(r.as_fd(), PollFlags::POLLIN)];
        assert_eq!(now(&mut fds).expect("poll"), 1);
    }

    #[test]
    fn each_item_is_kept_by_the_result_at_its_own_index() {
        let mut seen = Vec::new();
        let mut items = vec!['a', 'b', 'c', 'd', 'e'];
        // Keep the ready ones; 'e' has no result and gets `missing`.
        retain_by_ready(
            &mut items,
            &[true, false, false, true],
            true,
            |&item, ready| {
                seen.push((item, ready));
                ready
            },
        );
        assert_eq!(items, ['a', 'd', 'e']);
        assert_eq!(
            seen,
            [
                ('a', true),
                ('b', false),
                ('c', false),
                ('d', true),
                ('e', true)
            ]
        );
    }
}
