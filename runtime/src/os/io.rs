//! Reading into memory that need not be zero-filled first.
//!
//! # Safety
//!
//! `read(2)` writes at most the length it is given into the buffer and never reads it; the
//! vector's length grows by exactly what the kernel reported written.
#![allow(unsafe_code)]

use std::os::fd::{AsRawFd, BorrowedFd};

use nix::errno::Errno;

/// One `read(2)` of at most `max` bytes into the spare capacity of `buf` (reserved here),
/// whose length then grows by the bytes read; `Ok(0)` at end of file.
///
/// # Errors
///
/// The `errno` of `read` (`EINTR` and `EAGAIN` included: the caller decides).
pub(crate) fn read_spare(fd: BorrowedFd<'_>, buf: &mut Vec<u8>, max: usize) -> nix::Result<usize> {
    buf.reserve(max);
    let spare = buf.spare_capacity_mut();
    let len = max.min(spare.len());
    // SAFETY: `spare` is valid for writes of `len` bytes; see the module's `# Safety`.
    let n = unsafe { libc::read(fd.as_raw_fd(), spare.as_mut_ptr().cast(), len) };
    let n = usize::try_from(n).map_err(|_| Errno::last())?;
    assert!(
        n <= len,
        "read(2) reported more bytes than it was given room for"
    );
    // SAFETY: `read` initialised the first `n` bytes of the spare capacity.
    unsafe { buf.set_len(buf.len() + n) };
    Ok(n)
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
        assert_eq!(read_spare(r.as_fd(), &mut buf, 3), Ok(3));
        assert_eq!(read_spare(r.as_fd(), &mut buf, 10), Ok(2));
        assert_eq!(read_spare(r.as_fd(), &mut buf, 10), Ok(0), "end of file");
        assert_eq!(buf, b"<hello");
    }
}
