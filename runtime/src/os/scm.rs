//! Receiving file descriptors over a Unix socket (`SCM_RIGHTS`), with ownership taken once.
//!
//! # Safety
//!
//! Every descriptor in an `SCM_RIGHTS` message was installed in this process by the kernel
//! for this `recvmsg` call; nothing else owns it, so it becomes an [`OwnedFd`] exactly once.
#![allow(unsafe_code)]

use std::io::IoSliceMut;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

use nix::errno::Errno;
use nix::sys::socket::{ControlMessageOwned, MsgFlags, recvmsg};

/// One message received by [`recv_with_fds`].
#[derive(Debug)]
pub(crate) struct Received {
    /// Bytes written into the buffer.
    pub(crate) bytes: usize,
    /// The descriptors that came with it, close-on-exec with `MSG_CMSG_CLOEXEC`.
    pub(crate) fds: Vec<OwnedFd>,
    /// Whether the kernel cut the control data short (`MSG_CTRUNC`): fds were lost.
    pub(crate) truncated: bool,
}

/// `recvmsg(sock, buf, flags)` with room for the control data in `space` (make it with
/// `nix::cmsg_space!`); retries on `EINTR`.
///
/// # Errors
///
/// The `errno` of `recvmsg`.
///
/// # References
///
/// <https://man7.org/linux/man-pages/man7/unix.7.html> (`SCM_RIGHTS`)
// `recvmsg` takes the control buffer as a `Vec`.
#[allow(clippy::ptr_arg)]
pub(crate) fn recv_with_fds(
    sock: BorrowedFd<'_>,
    buf: &mut [u8],
    space: &mut Vec<u8>,
    flags: MsgFlags,
) -> nix::Result<Received> {
    loop {
        let mut iov = [IoSliceMut::new(buf)];
        match recvmsg::<()>(sock.as_raw_fd(), &mut iov, Some(space), flags) {
            Ok(msg) => {
                let mut fds = Vec::new();
                for cmsg in msg.cmsgs()? {
                    if let ControlMessageOwned::ScmRights(raw) = cmsg {
                        for fd in raw {
                            // SAFETY: see the module's `# Safety`.
                            fds.push(unsafe { OwnedFd::from_raw_fd(fd) });
                        }
                    }
                }
                return Ok(Received {
                    bytes: msg.bytes,
                    fds,
                    truncated: msg.flags.contains(MsgFlags::MSG_CTRUNC),
                });
            }
            Err(Errno::EINTR) => continue,
            Err(errno) => return Err(errno),
        }
    }
}
