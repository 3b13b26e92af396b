//! Anonymous shared memory: a sealed memfd, fully reserved, mapped `MAP_SHARED`.
//!
//! Every process-shared object of the runtime lives in one [`SharedMemory`].
//! Nothing is ever named in `/dev/shm`, so nothing can be left behind there, whatever kills
//! the processes; the memory goes away with the last fd and the last mapping.
//! The pages are reserved with `posix_fallocate` at creation, so a full tmpfs or memory
//! cgroup is a typed [`Error::NoSpace`] then, never a `SIGBUS` later (T31); the size is sealed
//! (`F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL`), so no peer holding the fd can truncate it
//! under the others (T49).
//! The fd is kept, close-on-exec, so an object can be handed to a re-executed child by fd and
//! rebuilt there with [`SharedMemory::from_fd`].
//!
//! # Safety
//!
//! The mapping is owned by the [`SharedMemory`] and unmapped only in `drop`; pointers handed
//! out by [`SharedMemory::as_ptr`] are valid for as long as the value lives. The memory is
//! shared with other processes, so the runtime only touches it through atomics, pthread
//! objects initialised for `PTHREAD_PROCESS_SHARED`, or copies made under a lock.
#![allow(unsafe_code)]

use std::num::NonZeroUsize;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::ptr::NonNull;

use nix::errno::Errno;
use nix::fcntl::{FcntlArg, SealFlag, fcntl};
use nix::sys::memfd::{MFdFlags, memfd_create};
use nix::sys::mman::{MapFlags, ProtFlags, mmap, munmap};

use crate::error::{Error, Result};

/// The seals every segment carries before it is shared.
fn seals() -> SealFlag {
    SealFlag::F_SEAL_SHRINK | SealFlag::F_SEAL_GROW | SealFlag::F_SEAL_SEAL
}

/// A sealed, fully reserved memfd mapped read-write and shared.
///
/// Inherited by `fork` as-is (the child shares the same pages); passable to another
/// process by fd.
#[derive(Debug)]
pub struct SharedMemory {
    fd: OwnedFd,
    ptr: NonNull<u8>,
    len: NonZeroUsize,
}

// SAFETY: the mapping is plain memory owned by this value; every access the runtime makes to
// it is atomic or serialised by a process-shared lock, so sharing it between threads is
// as safe as sharing it between processes.
unsafe impl Send for SharedMemory {}
// SAFETY: as above.
unsafe impl Sync for SharedMemory {}

impl SharedMemory {
    /// Creates a zero-filled segment of `len` bytes.
    ///
    /// # Errors
    ///
    /// - [`Error::InvalidArgument`] for `len == 0` or `len > i64::MAX`;
    /// - [`Error::NoSpace`] when the pages cannot be reserved (`ENOSPC`);
    /// - [`Error::Os`] for `memfd_create` (`EMFILE`, `ENFILE`), `fcntl` or `mmap` failures.
    pub fn new(len: usize) -> Result<SharedMemory> {
        let nz =
            NonZeroUsize::new(len).ok_or(Error::InvalidArgument("shared memory of zero bytes"))?;
        let off_len = libc::off_t::try_from(len)
            .map_err(|_| Error::InvalidArgument("shared memory size exceeds off_t"))?;
        let fd = memfd_create(
            c"proclife",
            MFdFlags::MFD_CLOEXEC | MFdFlags::MFD_ALLOW_SEALING,
        )
        .map_err(|errno| Error::os("memfd_create", errno))?;
        nix::unistd::ftruncate(&fd, off_len).map_err(|errno| match errno {
            Errno::EFBIG | Errno::ENOSPC | Errno::ENOMEM => Error::NoSpace { len },
            errno => Error::os("ftruncate", errno),
        })?;
        nix::fcntl::posix_fallocate(&fd, 0, off_len).map_err(|errno| match errno {
            Errno::ENOSPC | Errno::ENOMEM | Errno::EFBIG => Error::NoSpace { len },
            errno => Error::os("posix_fallocate", errno),
        })?;
        fcntl(&fd, FcntlArg::F_ADD_SEALS(seals())).map_err(|errno| Error::os("fcntl", errno))?;
        Self::map(fd, nz)
    }

    /// Maps a segment received from another process (for example an inherited fd).
    ///
    /// # Errors
    ///
    /// [`Error::Malformed`] when the fd is not a sealed, non-empty memfd segment (so a peer
    /// could still resize it); [`Error::Os`] for `fstat`, `fcntl` or `mmap` failures.
    pub fn from_fd(fd: OwnedFd) -> Result<SharedMemory> {
        let present = fcntl(&fd, FcntlArg::F_GET_SEALS).map_err(|errno| match errno {
            Errno::EINVAL => Error::Malformed("not a memfd segment"),
            errno => Error::os("fcntl", errno),
        })?;
        if SealFlag::from_bits_truncate(present) & seals() != seals() {
            return Err(Error::Malformed("shared memory segment is not sealed"));
        }
        let stat = nix::sys::stat::fstat(&fd).map_err(|errno| Error::os("fstat", errno))?;
        let len = usize::try_from(stat.st_size)
            .ok()
            .and_then(NonZeroUsize::new)
            .ok_or(Error::Malformed("shared memory segment is empty"))?;
        Self::map(fd, len)
    }

    fn map(fd: OwnedFd, len: NonZeroUsize) -> Result<SharedMemory> {
        // SAFETY: a fresh mapping at a kernel-chosen address aliases no Rust object; the
        // segment is sealed against shrinking, so every byte of `len` stays backed.
        let ptr = unsafe {
            mmap(
                None,
                len,
                ProtFlags::PROT_READ | ProtFlags::PROT_WRITE,
                MapFlags::MAP_SHARED,
                &fd,
                0,
            )
        }
        .map_err(|errno| Error::os("mmap", errno))?;
        Ok(SharedMemory {
            fd,
            ptr: ptr.cast::<u8>(),
            len,
        })
    }

    /// The segment's length in bytes.
    pub fn len(&self) -> usize {
        self.len.get()
    }

    /// Always false: a segment has at least one byte.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// The start of the mapping, valid while `self` lives; page-aligned.
    pub fn as_ptr(&self) -> *mut u8 {
        self.ptr.as_ptr()
    }

    /// A reference to the `T` at byte `offset`.
    ///
    /// # Safety
    ///
    /// `offset` must be aligned for `T`, `offset + size_of::<T>() <= len`, the bytes there
    /// must be a valid `T`, and `T` must tolerate concurrent access by other processes
    /// (atomics, or types only touched under a process-shared lock).
    pub(crate) unsafe fn at<T>(&self, offset: usize) -> &T {
        debug_assert!(offset.is_multiple_of(std::mem::align_of::<T>()));
        debug_assert!(offset + std::mem::size_of::<T>() <= self.len.get());
        // SAFETY: guaranteed by the caller; the mapping lives as long as `&self`.
        unsafe { &*self.ptr.as_ptr().add(offset).cast::<T>() }
    }
}

impl AsFd for SharedMemory {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl Drop for SharedMemory {
    fn drop(&mut self) {
        // SAFETY: the mapping was made by `map` with this address and length and no
        // reference into it outlives `self`. An error cannot be handled in `drop`.
        let _ = unsafe { munmap(self.ptr.cast(), self.len.get()) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_length_is_rejected() {
        assert!(matches!(
            SharedMemory::new(0),
            Err(Error::InvalidArgument(_))
        ));
    }

    #[test]
    fn segment_is_zeroed_sealed_and_rebuildable() {
        let shm = SharedMemory::new(10_000).expect("create");
        assert_eq!(shm.len(), 10_000);
        // SAFETY: offset 0 is page-aligned and inside the segment; u8 has no invalid values.
        assert_eq!(unsafe { *shm.at::<u8>(9_999) }, 0);
        assert_eq!(
            nix::unistd::ftruncate(&shm, 0).err(),
            Some(Errno::EPERM),
            "shrinking must be sealed"
        );
        assert_eq!(
            nix::unistd::ftruncate(&shm, 1 << 20).err(),
            Some(Errno::EPERM)
        );
        let dup = shm.as_fd().try_clone_to_owned().expect("dup");
        let again = SharedMemory::from_fd(dup).expect("rebuild");
        assert_eq!(again.len(), 10_000);
        // SAFETY: offset 8 is aligned for u64 and inside the segment.
        unsafe { shm.at::<std::sync::atomic::AtomicU64>(8) }
            .store(42, std::sync::atomic::Ordering::SeqCst);
        // SAFETY: as above, through the second mapping of the same pages.
        let seen = unsafe { again.at::<std::sync::atomic::AtomicU64>(8) }
            .load(std::sync::atomic::Ordering::SeqCst);
        assert_eq!(seen, 42);
    }

    #[test]
    fn unsealed_fd_is_refused() {
        let fd = memfd_create(c"proclife-test", MFdFlags::MFD_CLOEXEC).expect("memfd");
        assert!(matches!(
            SharedMemory::from_fd(fd),
            Err(Error::Malformed(_))
        ));
    }
}
