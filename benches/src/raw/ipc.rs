//! Raw IPC baselines: an 8-byte round trip with a forked echo child, and one-way streaming of
//! fixed-size messages to a forked sink child, over a pair of pipes or a Unix socket pair.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use super::{CHILD_EXIT_BOUND, Child, code, fork_helper, pipe, read_exact, socketpair, write_all};
use crate::{Error, Result};

/// The message size of the throughput benchmarks.
pub const MSG_64K: usize = 64 * 1024;

/// The smallest message [`Sink`] accepts: room for the two 8-byte stamps.
pub const MIN_MSG: usize = 16;

/// What carries the bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// Two pipes, one per direction (`pipe2(O_CLOEXEC)`).
    Pipe,
    /// One `AF_UNIX` `SOCK_STREAM` socket pair, used in both directions.
    SocketPair,
}

/// One side's ends of a two-way link.
#[derive(Debug)]
enum Link {
    Pipe { tx: OwnedFd, rx: OwnedFd },
    Socket(OwnedFd),
}

impl Link {
    /// The two sides of a new link: (parent's, child's).
    fn pair(transport: Transport) -> Result<(Link, Link)> {
        Ok(match transport {
            Transport::Pipe => {
                let (down_rx, down_tx) = pipe()?;
                let (up_rx, up_tx) = pipe()?;
                (
                    Link::Pipe {
                        tx: down_tx,
                        rx: up_rx,
                    },
                    Link::Pipe {
                        tx: up_tx,
                        rx: down_rx,
                    },
                )
            }
            Transport::SocketPair => {
                let (parent, child) = socketpair()?;
                (Link::Socket(parent), Link::Socket(child))
            }
        })
    }

    fn tx(&self) -> BorrowedFd<'_> {
        match self {
            Link::Pipe { tx, .. } => tx.as_fd(),
            Link::Socket(fd) => fd.as_fd(),
        }
    }

    fn rx(&self) -> BorrowedFd<'_> {
        match self {
            Link::Pipe { rx, .. } => rx.as_fd(),
            Link::Socket(fd) => fd.as_fd(),
        }
    }
}

/// Forks a child that runs `body` on its side of a new link and returns the parent's side.
///
/// Each process closes the other's ends right after the fork, so closing the parent's side
/// is an end of file for the child.
fn fork_with_link(transport: Transport, body: impl FnOnce(&Link) -> i32) -> Result<(Link, Child)> {
    let (parent, child_side) = Link::pair(transport)?;
    let mut parent = Some(parent);
    let mut child_side = Some(child_side);
    let child = fork_helper(|| {
        drop(parent.take());
        match child_side.take() {
            Some(link) => body(&link),
            None => code::PANIC,
        }
    })?;
    drop(child_side);
    let parent = parent.ok_or_else(|| Error::Invalid {
        what: "link lost before fork".into(),
    })?;
    Ok((parent, child))
}

/// An echo child: it writes back every 8 bytes it reads, and exits 0 at end of file.
#[derive(Debug)]
pub struct Echo {
    link: Link,
    child: Child,
}

impl Echo {
    /// Forks the echo child over a new link.
    ///
    /// # Errors
    ///
    /// As [`fork_helper`], [`pipe`] and [`socketpair`].
    pub fn start(transport: Transport) -> Result<Self> {
        let (link, child) = fork_with_link(transport, |link| {
            let mut buf = [0u8; 8];
            loop {
                match read_exact(link.rx(), &mut buf) {
                    Ok(true) => {}
                    Ok(false) => return code::OK,
                    Err(Error::Disconnected) => return code::TRUNCATED,
                    Err(_) => return code::READ,
                }
                if write_all(link.tx(), &buf).is_err() {
                    return code::WRITE;
                }
            }
        })?;
        Ok(Echo { link, child })
    }

    /// Sends `value` as 8 bytes, reads the echo and checks it is the same 8 bytes.
    ///
    /// # Errors
    ///
    /// [`Error::Os`]/[`Error::Disconnected`] from the transfer, [`Error::Corrupt`] when the
    /// echo differs.
    pub fn round_trip(&mut self, value: u64) -> Result<()> {
        let out = value.to_le_bytes();
        let mut back = [0u8; 8];
        let exchanged =
            write_all(self.link.tx(), &out).and_then(|()| read_exact(self.link.rx(), &mut back));
        match exchanged {
            Ok(true) => {}
            Ok(false) => return Err(self.child.blame(Error::Disconnected)),
            Err(err) => return Err(self.child.blame(err)),
        }
        if back != out {
            return Err(Error::Corrupt {
                what: format!("sent {value}, echo was {}", u64::from_le_bytes(back)),
            });
        }
        Ok(())
    }

    /// Closes the link and waits (bounded) for the child to exit with status 0.
    ///
    /// # Errors
    ///
    /// As [`Child::wait`].
    pub fn finish(mut self) -> Result<()> {
        drop(self.link);
        self.child.wait(CHILD_EXIT_BOUND)
    }
}

/// Writes the stamps of message `seq` into `msg`: `seq` in the first 8 bytes and `!seq` in
/// the last 8, little-endian. Messages shorter than [`MIN_MSG`] are left unchanged.
pub fn stamp(msg: &mut [u8], seq: u64) {
    let len = msg.len();
    if len < MIN_MSG {
        return;
    }
    if let Some(head) = msg.get_mut(..8) {
        head.copy_from_slice(&seq.to_le_bytes());
    }
    if let Some(tail) = msg.get_mut(len - 8..) {
        tail.copy_from_slice(&(!seq).to_le_bytes());
    }
}

/// Whether `msg` carries the stamps of message `seq` (see [`stamp`]).
pub fn stamped(msg: &[u8], seq: u64) -> bool {
    let len = msg.len();
    len >= MIN_MSG
        && msg.get(..8) == Some(&seq.to_le_bytes()[..])
        && msg.get(len - 8..) == Some(&(!seq).to_le_bytes()[..])
}

/// A sink child for one-way throughput.
///
/// Protocol: the parent writes a count `n` (8 bytes), then `n` messages of the agreed size;
/// the child reads each one whole, checks its stamps ([`stamped`]) and, after the last one,
/// writes `n` back as the acknowledgement. End of file at a count boundary ends the child
/// with status 0.
#[derive(Debug)]
pub struct Sink {
    link: Link,
    child: Child,
    msg: Vec<u8>,
}

impl Sink {
    /// Forks the sink child for messages of `msg_len` bytes.
    ///
    /// # Errors
    ///
    /// [`Error::Invalid`] when `msg_len` is below [`MIN_MSG`]; as [`Echo::start`] otherwise.
    pub fn start(transport: Transport, msg_len: usize) -> Result<Self> {
        if msg_len < MIN_MSG {
            return Err(Error::Invalid {
                what: format!("message of {msg_len} bytes is too short"),
            });
        }
        // Allocated before the fork, so the child allocates nothing.
        let mut inbox = vec![0u8; msg_len];
        let (link, child) = fork_with_link(transport, |link| {
            let mut header = [0u8; 8];
            loop {
                match read_exact(link.rx(), &mut header) {
                    Ok(true) => {}
                    Ok(false) => return code::OK,
                    Err(Error::Disconnected) => return code::TRUNCATED,
                    Err(_) => return code::READ,
                }
                let count = u64::from_le_bytes(header);
                for seq in 0..count {
                    match read_exact(link.rx(), &mut inbox) {
                        Ok(true) => {}
                        Ok(false) | Err(Error::Disconnected) => return code::TRUNCATED,
                        Err(_) => return code::READ,
                    }
                    if !stamped(&inbox, seq) {
                        return code::CORRUPT;
                    }
                }
                if write_all(link.tx(), &header).is_err() {
                    return code::WRITE;
                }
            }
        })?;
        Ok(Sink {
            link,
            child,
            msg: vec![0u8; msg_len],
        })
    }

    /// Sends `count` stamped messages and waits for the child's acknowledgement that it
    /// received all of them intact.
    ///
    /// # Errors
    ///
    /// [`Error::Os`] from the transfer; [`Error::Disconnected`] when the child closed its end
    /// (it exits with [`code::CORRUPT`] on a bad message: [`Sink::finish`] reports it);
    /// [`Error::Corrupt`] when the acknowledgement is wrong.
    pub fn transfer(&mut self, count: u64) -> Result<()> {
        let mut ack = [0u8; 8];
        match self.send(count, &mut ack) {
            Ok(true) => {}
            Ok(false) => return Err(self.child.blame(Error::Disconnected)),
            Err(err) => return Err(self.child.blame(err)),
        }
        let acked = u64::from_le_bytes(ack);
        if acked != count {
            return Err(Error::Corrupt {
                what: format!("sent {count} messages, sink acknowledged {acked}"),
            });
        }
        Ok(())
    }

    fn send(&mut self, count: u64, ack: &mut [u8; 8]) -> Result<bool> {
        write_all(self.link.tx(), &count.to_le_bytes())?;
        for seq in 0..count {
            stamp(&mut self.msg, seq);
            write_all(self.link.tx(), &self.msg)?;
        }
        read_exact(self.link.rx(), ack)
    }

    /// Closes the link and waits (bounded) for the child to exit with status 0.
    ///
    /// # Errors
    ///
    /// As [`Child::wait`].
    pub fn finish(mut self) -> Result<()> {
        drop(self.link);
        self.child.wait(CHILD_EXIT_BOUND)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamped_message_is_recognised_only_with_its_own_sequence_number() {
        let mut msg = vec![0u8; MSG_64K];
        stamp(&mut msg, 41);
        assert!(stamped(&msg, 41));
        assert!(!stamped(&msg, 42));
    }

    #[test]
    fn damaged_or_short_message_is_not_stamped() {
        let mut msg = vec![0u8; 32];
        stamp(&mut msg, 7);
        if let Some(last) = msg.last_mut() {
            *last ^= 1;
        }
        assert!(!stamped(&msg, 7));
        assert!(!stamped(&[0u8; 8], 0));
    }
}
