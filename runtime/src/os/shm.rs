//! Anonymous shared memory: a sealed memfd, fully reserved, mapped `MAP_SHARED`.
//!
//! Every process-shared object of the runtime lives in one [`SharedMemory`].
//! Nothing is ever named in `/dev/shm`, so nothing can be left behind there, whatever kills
//! the processes; the memory goes away with the last fd and the last mapping.
//! The pages are reserved with `posix_fallocate` at creation, so a full tmpfs or memory
//! cgroup is a typed [`Error::NoSpace`] then, never a `SIGBUS` later; the size is sealed
//! (`F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL`), so no peer holding the fd can truncate it
//! under the others.
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

use std::marker::PhantomData;
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

/// The alignment of the data area that follows a segment's header, and the largest alignment
/// a header, an element or a [`Shareable`] may have.
pub(crate) const DATA_ALIGN: usize = 64;

/// A `#[repr(C)]` layout with named fields that lives at the start of a shared segment
/// (the layouts are in [`super::layout`]).
///
/// # Safety
///
/// The all-zero bytes must be a valid `Self` (a fresh segment is zero-filled), and so must
/// every state another process can leave behind: every field is an atomic, a
/// [`RawMutex`](super::pthread_mutex::RawMutex) (touched only through `pthread_mutex_*`), or a
/// `#[repr(C)]` struct of those. The alignment is at most [`DATA_ALIGN`].
pub(crate) unsafe trait Header: Sync + Sized + 'static {
    /// The refusal of a segment too small for this header.
    const TOO_SMALL: &'static str;
}

/// Plain old data that may live in shared memory.
///
/// # Safety
///
/// Every bit pattern of `size_of::<Self>()` bytes must be a valid `Self` (so `bool`, `char`,
/// enums and references are excluded: store a `bool` as `u8`); the type must hold no
/// pointers or handles that mean nothing in another process, and its alignment must be at
/// most 64.
pub unsafe trait Shareable: Copy + Send + Sync + 'static {}

macro_rules! shareable {
    ($($t:ty),*) => {
        $(
            // SAFETY: a primitive number: every bit pattern is valid, no pointers.
            unsafe impl Shareable for $t {}
        )*
    };
}

shareable!(
    u8, u16, u32, u64, u128, usize, i8, i16, i32, i64, i128, isize, f32, f64
);

// SAFETY: an array of valid-for-every-bit-pattern elements is itself valid for every bit
// pattern, and has its element's alignment.
unsafe impl<T: Shareable, const N: usize> Shareable for [T; N] {}

/// Proof that a segment was created a moment ago and is not shared with anyone yet; only
/// [`Segment::new`] makes one, and hands it to the header's initialiser.
#[derive(Debug)]
pub(crate) struct Fresh {
    _private: (),
}

/// A [`SharedMemory`] segment laid out as a header `H` followed by a data area.
///
/// The bounds that make [`Segment::header`] sound are checked once, with `assert!`, when the
/// segment is created or mapped; every access to the data area checks its range with
/// `assert!` too, so a wrong offset is a panic, never undefined behaviour.
#[derive(Debug)]
pub(crate) struct Segment<H: Header> {
    shm: SharedMemory,
    // `fn() -> H`: the segment owns no `H` by value, so `H` does not decide its auto traits.
    _header: PhantomData<fn() -> H>,
}

impl<H: Header> Segment<H> {
    /// The offset of the data area: the header's size rounded up to [`DATA_ALIGN`].
    pub(crate) const DATA: usize = std::mem::size_of::<H>().next_multiple_of(DATA_ALIGN);

    /// Creates a zero-filled segment with `data_len` bytes after the header, and lets `init`
    /// set the header up before anyone else can see it.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] when the size overflows; as [`SharedMemory::new`]; what
    /// `init` returns.
    pub(crate) fn new(
        data_len: usize,
        init: impl FnOnce(&H, &Fresh) -> Result<()>,
    ) -> Result<Self> {
        Self::new_with(data_len, |segment, fresh| init(segment.header(), fresh))
    }

    /// As [`Segment::new`], with the whole segment (header and data area) handed to `init`,
    /// for a data area whose elements need setting up too.
    ///
    /// # Errors
    ///
    /// As [`Segment::new`].
    pub(crate) fn new_with(
        data_len: usize,
        init: impl FnOnce(&Self, &Fresh) -> Result<()>,
    ) -> Result<Self> {
        let len = Self::DATA
            .checked_add(data_len)
            .filter(|&len| len <= isize::MAX as usize)
            .ok_or(Error::InvalidArgument("shared segment size overflows"))?;
        let segment = Self::checked(SharedMemory::new(len)?);
        init(&segment, &Fresh { _private: () })?;
        Ok(segment)
    }

    /// Maps a segment received from another process.
    ///
    /// # Errors
    ///
    /// [`Error::Malformed`] (`H::TOO_SMALL`) when it cannot hold the header; as
    /// [`SharedMemory::from_fd`]. The caller checks the header's contents.
    pub(crate) fn from_fd(fd: OwnedFd) -> Result<Self> {
        let shm = SharedMemory::from_fd(fd)?;
        if shm.len() < Self::DATA {
            return Err(Error::Malformed(H::TOO_SMALL));
        }
        Ok(Self::checked(shm))
    }

    fn checked(shm: SharedMemory) -> Self {
        assert!(
            std::mem::align_of::<H>() <= DATA_ALIGN,
            "header alignment above DATA_ALIGN"
        );
        assert!(
            (shm.as_ptr() as usize).is_multiple_of(DATA_ALIGN),
            "mapping not aligned"
        );
        assert!(shm.len() >= Self::DATA, "segment smaller than its header");
        Segment {
            shm,
            _header: PhantomData,
        }
    }

    /// The header.
    pub(crate) fn header(&self) -> &H {
        // SAFETY: `checked` asserted that the mapping is aligned for `H` and holds at least
        // `size_of::<H>()` bytes; `H: Header` is valid for every state the memory can be in
        // and tolerates shared access; the mapping lives as long as `&self`.
        unsafe { &*self.shm.as_ptr().cast::<H>() }
    }

    /// The length of the data area in bytes.
    pub(crate) fn data_len(&self) -> usize {
        self.shm.len() - Self::DATA
    }

    /// The start of `len` bytes at `at` in the data area; panics when out of bounds.
    pub(super) fn data_at(&self, at: usize, len: usize) -> *mut u8 {
        let end = at.checked_add(len);
        assert!(
            end.is_some_and(|end| end <= self.data_len()),
            "range {at}+{len} outside the data area of {} bytes",
            self.data_len()
        );
        // SAFETY: `DATA + at + len <= shm.len()` was just checked.
        unsafe { self.shm.as_ptr().add(Self::DATA + at) }
    }

    /// Whether `count` elements of `E` fit in the data area.
    pub(crate) fn fits<E>(&self, count: usize) -> bool {
        count
            .checked_mul(std::mem::size_of::<E>())
            .is_some_and(|bytes| bytes <= self.data_len())
    }

    /// Element `index` of an array of `E` that fills the data area; panics when it lies
    /// outside.
    pub(crate) fn element<E: Header>(&self, index: usize) -> &E {
        assert!(
            std::mem::align_of::<E>() <= DATA_ALIGN,
            "element alignment above DATA_ALIGN"
        );
        let size = std::mem::size_of::<E>();
        let at = index.saturating_mul(size);
        let ptr = self.data_at(at, size);
        // SAFETY: in bounds (checked by `data_at`), aligned (`DATA` and the mapping are
        // `DATA_ALIGN`-aligned and `at` is a multiple of `size`, itself a multiple of
        // `align_of::<E>()`); `E: Header` is valid for any state of the memory.
        unsafe { &*ptr.cast::<E>() }
    }

    /// Copies `bytes` into the data area at `at`; the caller serialises writers (a lock).
    pub(crate) fn copy_in(&self, at: usize, bytes: &[u8]) {
        let dst = self.data_at(at, bytes.len());
        // SAFETY: `dst` has room for `bytes.len()` bytes (checked) and is shared memory, not
        // the private buffer `bytes`.
        unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), dst, bytes.len()) };
    }

    /// Copies `out.len()` bytes of the data area from `at`.
    pub(crate) fn copy_out(&self, at: usize, out: &mut [u8]) {
        let src = self.data_at(at, out.len());
        // SAFETY: as in `copy_in`, the other way round.
        unsafe { std::ptr::copy_nonoverlapping(src, out.as_mut_ptr(), out.len()) };
    }

    /// Appends `len` bytes of the data area from `at` to `out`, without zero-filling them
    /// first.
    pub(crate) fn append_out(&self, at: usize, len: usize, out: &mut Vec<u8>) {
        let src = self.data_at(at, len);
        out.reserve(len);
        let filled = out.len();
        // SAFETY: `reserve` made room for `len` more bytes after `filled`; the copy
        // initialises exactly those before `set_len`; the source is in bounds (checked).
        unsafe {
            std::ptr::copy_nonoverlapping(src, out.as_mut_ptr().add(filled), len);
            out.set_len(filled + len);
        }
    }

    /// Element `index` of an array of `T` that fills the data area, read with one volatile
    /// load; panics when out of bounds.
    pub(crate) fn read<T: Shareable>(&self, index: usize) -> T {
        let ptr = self.shareable_at::<T>(index);
        // SAFETY: in bounds and aligned (`shareable_at`); any bits are a valid `T`.
        unsafe { ptr.read_volatile() }
    }

    /// Writes element `index` of an array of `T` with one volatile store.
    pub(crate) fn write<T: Shareable>(&self, index: usize, value: T) {
        let ptr = self.shareable_at::<T>(index);
        // SAFETY: as in `read`; the segment is writable shared memory.
        unsafe { ptr.write_volatile(value) }
    }

    fn shareable_at<T: Shareable>(&self, index: usize) -> *mut T {
        assert!(
            std::mem::align_of::<T>() <= DATA_ALIGN,
            "element alignment above DATA_ALIGN"
        );
        let size = std::mem::size_of::<T>();
        let at = index.saturating_mul(size);
        self.data_at(at, size).cast::<T>()
    }
}

impl<H: Header> AsFd for Segment<H> {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.shm.as_fd()
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
        let bytes = Segment::<crate::os::layout::EventHeader>::from_fd(
            shm.as_fd().try_clone_to_owned().expect("dup"),
        )
        .expect("map");
        assert_eq!(bytes.read::<u8>(bytes.data_len() - 1), 0);
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
        let first = Segment::<crate::os::layout::EventHeader>::from_fd(
            shm.as_fd().try_clone_to_owned().expect("dup"),
        )
        .expect("map");
        let second = Segment::<crate::os::layout::EventHeader>::from_fd(
            again.as_fd().try_clone_to_owned().expect("dup"),
        )
        .expect("map");
        first.write::<u64>(1, 42);
        assert_eq!(
            second.read::<u64>(1),
            42,
            "two mappings of one segment share their pages"
        );
        first
            .header()
            .flag
            .store(7, std::sync::atomic::Ordering::SeqCst);
        assert_eq!(
            second
                .header()
                .flag
                .load(std::sync::atomic::Ordering::SeqCst),
            7
        );
    }

    #[test]
    fn unsealed_fd_is_refused() {
        let fd = memfd_create(c"proclife-test", MFdFlags::MFD_CLOEXEC).expect("memfd");
        assert!(matches!(
            SharedMemory::from_fd(fd),
            Err(Error::Malformed(_))
        ));
    }

    #[test]
    fn out_of_bounds_data_access_panics() {
        let seg =
            Segment::<crate::os::layout::EventHeader>::new(16, |_, _| Ok(())).expect("create");
        assert_eq!(seg.data_len(), 16);
        seg.write::<u64>(1, 5);
        assert_eq!(seg.read::<u64>(1), 5);
        let past = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| seg.read::<u64>(2)));
        assert!(past.is_err(), "reading past the data area must panic");
        let mut out = [0u8; 4];
        let past =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| seg.copy_out(13, &mut out)));
        assert!(past.is_err(), "copying past the data area must panic");
    }
}
