//! `Value<T>` and `Array<T>`: plain data in shared memory, with a lock, and their lock-free
//! `RawValue`/`RawArray` variants (`multiprocessing.Value`, `Array`, `RawValue`, `RawArray`).
//!
//! The data lives in a sealed memfd segment: a [`CellsHeader`] (element count and element
//! size, checked when rebuilding from an fd) followed by the elements. Only types whose every
//! bit pattern is valid ([`Shareable`]) may be stored, so whatever another process writes,
//! even half of a write cut short by its death, is still a valid `T`. Elements are read and
//! written with volatile copies: the memory is shared with other processes, which may write
//! at any time. The locked variants serialise those writes; the raw ones may observe a torn
//! multi-byte value, which is still a valid `T` (the `Shareable` contract).
#![forbid(unsafe_code)]

use std::marker::PhantomData;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::atomic::Ordering;

use crate::error::{Error, Result};
use crate::os::layout::CellsHeader;
pub use crate::os::shm::Shareable;
use crate::os::shm::{DATA_ALIGN, Segment};
use crate::sync::RLock;

/// A segment holding `len` elements of `T` after a header.
#[derive(Debug)]
struct Cells<T> {
    seg: Segment<CellsHeader>,
    len: usize,
    _t: PhantomData<T>,
}

impl<T: Shareable> Cells<T> {
    const ALIGN_OK: () = assert!(std::mem::align_of::<T>() <= DATA_ALIGN);

    fn new(len: usize) -> Result<Cells<T>> {
        let () = Self::ALIGN_OK;
        let bytes = len
            .checked_mul(std::mem::size_of::<T>())
            .ok_or(Error::InvalidArgument(
                "array length times element size overflows",
            ))?;
        let seg = Segment::new(bytes, |header: &CellsHeader, _| {
            header.len.store(len as u64, Ordering::SeqCst);
            header
                .element_size
                .store(std::mem::size_of::<T>() as u64, Ordering::SeqCst);
            Ok(())
        })
        .map_err(|error| match error {
            Error::InvalidArgument(_) => {
                Error::InvalidArgument("array length times element size overflows")
            }
            other => other,
        })?;
        Ok(Cells {
            seg,
            len,
            _t: PhantomData,
        })
    }

    fn from_fd(fd: OwnedFd) -> Result<Cells<T>> {
        let () = Self::ALIGN_OK;
        let seg = Segment::<CellsHeader>::from_fd(fd)?;
        let len = usize::try_from(seg.header().len.load(Ordering::SeqCst))
            .map_err(|_| Error::Malformed("shared data length does not fit"))?;
        let size = seg.header().element_size.load(Ordering::SeqCst);
        if size != std::mem::size_of::<T>() as u64 || !seg.fits::<T>(len) {
            return Err(Error::Malformed(
                "shared data has another element type or size",
            ));
        }
        Ok(Cells {
            seg,
            len,
            _t: PhantomData,
        })
    }

    fn check(&self, index: usize) -> Result<()> {
        if index >= self.len {
            return Err(Error::InvalidArgument("index out of range"));
        }
        Ok(())
    }

    fn read(&self, index: usize) -> Result<T> {
        self.check(index)?;
        Ok(self.seg.read(index))
    }

    fn write(&self, index: usize, value: T) -> Result<()> {
        self.check(index)?;
        self.seg.write(index, value);
        Ok(())
    }
}

/// Runs `f` with `lock` held (acquiring it once more if the caller already holds it).
fn locked<R>(lock: &RLock, f: impl FnOnce() -> Result<R>) -> Result<R> {
    lock.acquire(None)?;
    let out = f();
    lock.release()?;
    out
}

/// One `T` in shared memory, no lock (`multiprocessing.RawValue`).
#[derive(Debug)]
pub struct RawValue<T> {
    cells: Cells<T>,
}

impl<T: Shareable> RawValue<T> {
    /// Puts `value` in a fresh shared segment.
    ///
    /// # Errors
    ///
    /// [`Error::NoSpace`] or [`Error::Os`] when the segment cannot be made.
    pub fn new(value: T) -> Result<RawValue<T>> {
        let raw = RawValue {
            cells: Cells::new(1)?,
        };
        raw.set(value);
        Ok(raw)
    }

    /// Rebuilds from the fd of the segment.
    ///
    /// # Errors
    ///
    /// [`Error::Malformed`] when the segment does not hold one `T`.
    pub fn from_fd(fd: OwnedFd) -> Result<RawValue<T>> {
        let cells = Cells::from_fd(fd)?;
        if cells.len != 1 {
            return Err(Error::Malformed("segment does not hold one value"));
        }
        Ok(RawValue { cells })
    }

    /// Reads the value (a multi-byte value written concurrently may be torn).
    pub fn get(&self) -> T {
        // A `RawValue` segment holds exactly one element (checked when it was made or mapped).
        self.cells.seg.read(0)
    }

    /// Writes the value.
    pub fn set(&self, value: T) {
        self.cells.seg.write(0, value);
    }
}

impl<T> AsFd for RawValue<T> {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.cells.seg.as_fd()
    }
}

/// One `T` in shared memory guarded by an [`RLock`] (`multiprocessing.Value`).
///
/// `get`/`set` take the lock, as CPython's `.value` does; because the lock is recursive,
/// they also work while the caller holds [`Value::get_lock`] for a read-modify-write.
///
/// ```
/// # fn main() -> proclife::Result<()> {
/// let counter = proclife::ipc::Value::new(0u64)?;
/// counter.update(|v| v + 1)?;
/// assert_eq!(counter.get()?, 1);
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct Value<T> {
    raw: RawValue<T>,
    lock: RLock,
}

impl<T: Shareable> Value<T> {
    /// Puts `value` in a fresh shared segment with a fresh [`RLock`].
    ///
    /// # Errors
    ///
    /// [`Error::NoSpace`] or [`Error::Os`] when a segment cannot be made.
    pub fn new(value: T) -> Result<Value<T>> {
        Self::with_lock(value, RLock::new()?)
    }

    /// Puts `value` in a fresh shared segment guarded by `lock`.
    ///
    /// # Errors
    ///
    /// As [`Value::new`].
    pub fn with_lock(value: T, lock: RLock) -> Result<Value<T>> {
        Ok(Value {
            raw: RawValue::new(value)?,
            lock,
        })
    }

    /// Rebuilds from the fds of the data segment and of the lock.
    ///
    /// # Errors
    ///
    /// [`Error::Malformed`] when either segment is not what it should be.
    pub fn from_fds(value: OwnedFd, lock: OwnedFd) -> Result<Value<T>> {
        Ok(Value {
            raw: RawValue::from_fd(value)?,
            lock: RLock::from_fd(lock)?,
        })
    }

    /// The lock guarding the value.
    pub fn get_lock(&self) -> &RLock {
        &self.lock
    }

    /// The value without its lock (CPython's `get_obj()`).
    pub fn get_obj(&self) -> &RawValue<T> {
        &self.raw
    }

    /// Reads the value under the lock.
    ///
    /// # Errors
    ///
    /// [`Error::OwnerDied`] when a process died holding the lock (the caller then holds it:
    /// inspect, repair, `get_lock().mark_consistent()`, `release()`), or
    /// [`Error::NotRecoverable`]. CPython raises neither: its `value` waits for a dead holder
    /// forever (decision 0003).
    pub fn get(&self) -> Result<T> {
        locked(&self.lock, || Ok(self.raw.get()))
    }

    /// Writes the value under the lock.
    ///
    /// # Errors
    ///
    /// As [`Value::get`].
    pub fn set(&self, value: T) -> Result<()> {
        locked(&self.lock, || {
            self.raw.set(value);
            Ok(())
        })
    }

    /// Replaces the value with `f(value)` under the lock; returns the new value.
    ///
    /// # Errors
    ///
    /// As [`Value::get`].
    pub fn update(&self, f: impl FnOnce(T) -> T) -> Result<T> {
        if crate::planted::active("value-update-unlocked") {
            // Planted: read, yield, write, without the lock, so increments get lost.
            let new = f(self.raw.get());
            std::thread::sleep(std::time::Duration::from_millis(50));
            self.raw.set(new);
            return Ok(new);
        }
        locked(&self.lock, || {
            let new = f(self.raw.get());
            self.raw.set(new);
            Ok(new)
        })
    }
}

impl<T> AsFd for Value<T> {
    /// The data segment's fd; the lock's comes from [`Value::get_lock`].
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.raw.as_fd()
    }
}

/// A fixed-length array of `T` in shared memory, no lock (`multiprocessing.RawArray`).
#[derive(Debug)]
pub struct RawArray<T> {
    cells: Cells<T>,
}

impl<T: Shareable> RawArray<T> {
    /// An array of `len` copies of `fill`.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] when `len * size_of::<T>()` overflows;
    /// [`Error::NoSpace`] or [`Error::Os`] when the segment cannot be made.
    pub fn new(len: usize, fill: T) -> Result<RawArray<T>> {
        let cells = Cells::new(len)?;
        for i in 0..len {
            cells.write(i, fill)?;
        }
        Ok(RawArray { cells })
    }

    /// An array holding a copy of `items`.
    ///
    /// # Errors
    ///
    /// As [`RawArray::new`].
    pub fn from_slice(items: &[T]) -> Result<RawArray<T>> {
        let cells = Cells::new(items.len())?;
        for (i, &item) in items.iter().enumerate() {
            cells.write(i, item)?;
        }
        Ok(RawArray { cells })
    }

    /// Rebuilds from the fd of the segment.
    ///
    /// # Errors
    ///
    /// [`Error::Malformed`] when the segment does not hold `T`s.
    pub fn from_fd(fd: OwnedFd) -> Result<RawArray<T>> {
        Ok(RawArray {
            cells: Cells::from_fd(fd)?,
        })
    }

    /// The number of elements.
    pub fn len(&self) -> usize {
        self.cells.len
    }

    /// Whether the array has no elements.
    pub fn is_empty(&self) -> bool {
        self.cells.len == 0
    }

    /// Reads element `index`.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] when `index >= len` (CPython: `IndexError: invalid index`).
    pub fn get(&self, index: usize) -> Result<T> {
        self.cells.read(index)
    }

    /// Writes element `index`.
    ///
    /// # Errors
    ///
    /// As [`RawArray::get`].
    pub fn set(&self, index: usize, value: T) -> Result<()> {
        self.cells.write(index, value)
    }

    /// Copies every element out.
    pub fn to_vec(&self) -> Vec<T> {
        (0..self.cells.len)
            .filter_map(|i| self.cells.read(i).ok())
            .collect()
    }
}

impl<T> AsFd for RawArray<T> {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.cells.seg.as_fd()
    }
}

/// A fixed-length array of `T` in shared memory guarded by an [`RLock`]
/// (`multiprocessing.Array`).
#[derive(Debug)]
pub struct Array<T> {
    raw: RawArray<T>,
    lock: RLock,
}

impl<T: Shareable> Array<T> {
    /// An array of `len` copies of `fill`, with a fresh [`RLock`].
    ///
    /// # Errors
    ///
    /// As [`RawArray::new`].
    pub fn new(len: usize, fill: T) -> Result<Array<T>> {
        Ok(Array {
            raw: RawArray::new(len, fill)?,
            lock: RLock::new()?,
        })
    }

    /// An array holding a copy of `items`, with a fresh [`RLock`].
    ///
    /// # Errors
    ///
    /// As [`RawArray::new`].
    pub fn from_slice(items: &[T]) -> Result<Array<T>> {
        Ok(Array {
            raw: RawArray::from_slice(items)?,
            lock: RLock::new()?,
        })
    }

    /// Rebuilds from the fds of the data segment and of the lock.
    ///
    /// # Errors
    ///
    /// [`Error::Malformed`] when either segment is not what it should be.
    pub fn from_fds(data: OwnedFd, lock: OwnedFd) -> Result<Array<T>> {
        Ok(Array {
            raw: RawArray::from_fd(data)?,
            lock: RLock::from_fd(lock)?,
        })
    }

    /// The lock guarding the array.
    pub fn get_lock(&self) -> &RLock {
        &self.lock
    }

    /// The array without its lock (CPython's `get_obj()`).
    pub fn get_obj(&self) -> &RawArray<T> {
        &self.raw
    }

    /// The number of elements.
    pub fn len(&self) -> usize {
        self.raw.len()
    }

    /// Whether the array has no elements.
    pub fn is_empty(&self) -> bool {
        self.raw.is_empty()
    }

    /// Reads element `index` under the lock.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] when `index >= len` (CPython: `IndexError: invalid index`);
    /// lock errors as in [`Value::get`].
    pub fn get(&self, index: usize) -> Result<T> {
        locked(&self.lock, || self.raw.get(index))
    }

    /// Writes element `index` under the lock.
    ///
    /// # Errors
    ///
    /// As [`Array::get`].
    pub fn set(&self, index: usize, value: T) -> Result<()> {
        if crate::planted::active("array-set-unlocked") {
            // Planted: the write does not wait for a holder of the lock.
            return self.raw.set(index, value);
        }
        locked(&self.lock, || self.raw.set(index, value))
    }

    /// Copies every element out under the lock (a consistent snapshot).
    ///
    /// # Errors
    ///
    /// Lock errors as in [`Value::get`].
    pub fn to_vec(&self) -> Result<Vec<T>> {
        locked(&self.lock, || Ok(self.raw.to_vec()))
    }
}

impl<T> AsFd for Array<T> {
    /// The data segment's fd; the lock's comes from [`Array::get_lock`].
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.raw.as_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_and_arrays() -> Result<()> {
        let v = Value::new([1.5f64, -2.0])?;
        assert_eq!(v.get()?, [1.5, -2.0]);
        v.set([0.0, 1.0])?;
        assert_eq!(v.update(|[a, b]| [a + 1.0, b])?, [1.0, 1.0]);
        let a = Array::from_slice(&[1u32, 2, 3])?;
        assert_eq!(a.len(), 3);
        a.set(2, 30)?;
        assert_eq!(a.to_vec()?, vec![1, 2, 30]);
        assert!(matches!(a.get(3), Err(Error::InvalidArgument(_))));
        assert!(matches!(
            Array::<u64>::new(usize::MAX / 4, 0),
            Err(Error::InvalidArgument(_))
        ));
        let empty = RawArray::<u8>::new(0, 0)?;
        assert!(empty.is_empty());
        Ok(())
    }

    #[test]
    fn rebuild_checks_the_element_type() -> Result<()> {
        let a = RawArray::from_slice(&[7u16, 8])?;
        let again = RawArray::<u16>::from_fd(a.as_fd().try_clone_to_owned().expect("dup"))?;
        assert_eq!(again.to_vec(), vec![7, 8]);
        let wrong = RawArray::<u32>::from_fd(a.as_fd().try_clone_to_owned().expect("dup"));
        assert!(matches!(wrong, Err(Error::Malformed(_))));
        Ok(())
    }
}
