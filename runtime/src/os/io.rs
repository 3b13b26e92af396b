//! Reads into memory that need not be zero-filled first, and reads and writes that must not
//! sleep in the kernel on an fd that blocks.
//!
//! # Safety
//!
//! `read(2)` and `preadv2(2)` write at most the length they are given into the buffer and
//! never read it; the vector's length grows by exactly what the kernel reported written.
//! `pwritev2(2)` only reads the slices it is given.
#![allow(unsafe_code)]

use std::io::IoSlice;
use std::os::fd::{AsRawFd, BorrowedFd};

use nix::errno::Errno;

/// Whether one read or write may sleep in the kernel when the fd has nothing to read or no
/// room to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Sleep {
    /// It may (on an fd that blocks): `read(2)`, `writev(2)`.
    May,
    /// It returns `EAGAIN` instead, whatever the fd's own `O_NONBLOCK`: on a socket `recv(2)`
    /// with `MSG_DONTWAIT` (every kernel); on anything else `preadv2(2)`/`pwritev2(2)` with
    /// `RWF_NOWAIT` at the current position (offset -1), which older kernels (pipes before
    /// Linux 6.4) and some files (named FIFOs) refuse with `EOPNOTSUPP`.
    Never,
    /// A plain call made right after `poll(2)` found the fd ready, for an fd that cannot be
    /// asked not to sleep: a read takes what is there; a write is cut to `PIPE_BUF` bytes,
    /// which a pipe that polled writable takes without sleeping (unless another writer
    /// fills it first).
    Bounded,
}

/// One read of at most `max` bytes into the spare capacity of `buf` (reserved here), whose
/// length then grows by the bytes read; `Ok(0)` at end of file.
///
/// # Errors
///
/// The `errno` of the call (`EINTR`, `EAGAIN` and `EOPNOTSUPP` included: the caller decides).
pub(crate) fn read_spare(
    fd: BorrowedFd<'_>,
    buf: &mut Vec<u8>,
    max: usize,
    sleep: Sleep,
    socket: bool,
) -> nix::Result<usize> {
    buf.reserve(max);
    let spare = buf.spare_capacity_mut();
    let len = max.min(spare.len());
    // SAFETY: `spare` is valid for writes of `len` bytes; see the module's `# Safety`.
    let n = unsafe { read_raw(fd, spare.as_mut_ptr().cast(), len, sleep, socket) }?;
    // SAFETY: the read initialised the first `n` bytes of the spare capacity.
    unsafe { buf.set_len(buf.len() + n) };
    Ok(n)
}

/// One read of at most `buf.len()` bytes into `buf`; `Ok(0)` at end of file. `socket` says
/// whether `fd` is a socket (see [`Sleep::Never`]).
///
/// # Errors
///
/// As [`read_spare`].
pub(crate) fn read_into(
    fd: BorrowedFd<'_>,
    buf: &mut [u8],
    sleep: Sleep,
    socket: bool,
) -> nix::Result<usize> {
    // SAFETY: `buf` is valid for writes of its length; see the module's `# Safety`.
    unsafe { read_raw(fd, buf.as_mut_ptr(), buf.len(), sleep, socket) }
}

/// `read(2)`, or without sleeping `recv(2)` with `MSG_DONTWAIT` (a socket) or `preadv2(2)`
/// with `RWF_NOWAIT`, of at most `len` bytes to `ptr`.
///
/// # Safety
///
/// `ptr` must be valid for writes of `len` bytes.
unsafe fn read_raw(
    fd: BorrowedFd<'_>,
    ptr: *mut u8,
    len: usize,
    sleep: Sleep,
    socket: bool,
) -> nix::Result<usize> {
    let n = match (sleep, socket) {
        // SAFETY: the caller's contract.
        (Sleep::May | Sleep::Bounded, _) => unsafe { libc::read(fd.as_raw_fd(), ptr.cast(), len) },
        // SAFETY: the caller's contract.
        (Sleep::Never, true) => unsafe {
            libc::recv(fd.as_raw_fd(), ptr.cast(), len, libc::MSG_DONTWAIT)
        },
        (Sleep::Never, false) => {
            let iov = libc::iovec {
                iov_base: ptr.cast(),
                iov_len: len,
            };
            // SAFETY: `iov` describes memory valid for writes of `len` bytes (the caller's
            // contract) and outlives the call; offset -1 is the current position.
            unsafe { libc::preadv2(fd.as_raw_fd(), &iov, 1, -1, libc::RWF_NOWAIT) }
        }
    };
    let n = usize::try_from(n).map_err(|_| Errno::last())?;
    assert!(
        n <= len,
        "the kernel reported more bytes read than it was given room for"
    );
    Ok(n)
}

/// One `writev(2)`, or `pwritev2(2)` with `RWF_NOWAIT`, of `slices` (not for sockets: they
/// send with `sendmsg`); returns the bytes written (perhaps fewer than given). With
/// [`Sleep::Bounded`] at most `PIPE_BUF` bytes are written.
///
/// # Errors
///
/// The `errno` of the call (`EINTR`, `EAGAIN`, `EPIPE` and `EOPNOTSUPP` included: the caller
/// decides).
pub(crate) fn write_vectored(
    fd: BorrowedFd<'_>,
    slices: &[IoSlice<'_>],
    sleep: Sleep,
) -> nix::Result<usize> {
    match sleep {
        Sleep::May => nix::sys::uio::writev(fd, slices),
        Sleep::Bounded => {
            // At most the first two slices (a frame's header and payload), cut to PIPE_BUF
            // bytes in all: a shorter write is a partial write, which the caller continues.
            let mut room = libc::PIPE_BUF;
            let mut cut = [IoSlice::new(&[]), IoSlice::new(&[])];
            let mut used = 0;
            for (slot, slice) in cut.iter_mut().zip(slices) {
                let take = slice.len().min(room);
                *slot = IoSlice::new(&slice[..take]);
                room -= take;
                used += 1;
            }
            nix::sys::uio::writev(fd, &cut[..used])
        }
        Sleep::Never => {
            let count = libc::c_int::try_from(slices.len()).map_err(|_| Errno::EINVAL)?;
            // SAFETY: `IoSlice` is ABI-compatible with `iovec` (its documented guarantee on
            // Unix); the slices outlive the call, which only reads them.
            let n = unsafe {
                libc::pwritev2(
                    fd.as_raw_fd(),
                    slices.as_ptr().cast::<libc::iovec>(),
                    count,
                    -1,
                    libc::RWF_NOWAIT,
                )
            };
            usize::try_from(n).map_err(|_| Errno::last())
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::os::fd::AsFd;

    use super::*;

    #[test]
    fn reads_append_what_arrived() {
        let (r, w) = nix::unistd::pipe().expect("pipe");
        std::fs::File::from(w).write_all(b"hello").expect("write");
        let mut buf = b"<".to_vec();
        assert_eq!(read_spare(r.as_fd(), &mut buf, 3, Sleep::May, false), Ok(3));
        assert_eq!(
            read_spare(r.as_fd(), &mut buf, 10, Sleep::Never, false),
            Ok(2)
        );
        assert_eq!(
            read_spare(r.as_fd(), &mut buf, 10, Sleep::May, false),
            Ok(0),
            "end of file"
        );
        assert_eq!(buf, b"<hello");
    }

    #[test]
    fn never_sleeping_calls_answer_eagain_on_a_blocking_pipe() {
        let (r, w) = nix::unistd::pipe().expect("pipe");
        let mut buf = [0u8; 4];
        assert_eq!(
            read_into(r.as_fd(), &mut buf, Sleep::Never, false),
            Err(Errno::EAGAIN)
        );
        let chunk = [7u8; 4096];
        let mut written = 0;
        let full = loop {
            match write_vectored(w.as_fd(), &[IoSlice::new(&chunk)], Sleep::Never) {
                Ok(n) => written += n,
                Err(errno) => break errno,
            }
            assert!(
                written <= 1 << 24,
                "a pipe took {written} bytes without filling up"
            );
        };
        assert_eq!(
            full,
            Errno::EAGAIN,
            "a full pipe: EAGAIN after {written} bytes"
        );
        assert_eq!(read_into(r.as_fd(), &mut buf, Sleep::Never, false), Ok(4));
        assert_eq!(buf, [7u8; 4]);
        let (a, b) = nix::sys::socket::socketpair(
            nix::sys::socket::AddressFamily::Unix,
            nix::sys::socket::SockType::Stream,
            None,
            nix::sys::socket::SockFlag::SOCK_CLOEXEC,
        )
        .expect("socketpair");
        assert_eq!(
            read_into(a.as_fd(), &mut buf, Sleep::Never, true),
            Err(Errno::EAGAIN)
        );
        nix::unistd::write(&b, b"ok").expect("write");
        assert_eq!(read_into(a.as_fd(), &mut buf, Sleep::Never, true), Ok(2));
    }

    #[test]
    fn bounded_writes_are_cut_to_pipe_buf() {
        let (_r, w) = nix::unistd::pipe().expect("pipe");
        let big = vec![1u8; 3 * libc::PIPE_BUF];
        let header = [2u8; 8];
        let n = write_vectored(
            w.as_fd(),
            &[IoSlice::new(&header), IoSlice::new(&big)],
            Sleep::Bounded,
        );
        assert_eq!(n, Ok(libc::PIPE_BUF), "one write of at most PIPE_BUF bytes");
    }
}
