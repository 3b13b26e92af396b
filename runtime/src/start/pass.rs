//! Passing IPC and synchronisation objects to a re-executed child as process arguments.
//!
//! This is the Rust form of CPython's `multiprocessing.reduction`: while the runtime encodes
//! the arguments of an entry-point target, every object that lives in a file descriptor
//! (a [`Connection`], a [`Lock`], a [`Queue`], ...) serialises as the index of a duplicate
//! of its fd in a side table, and the side table travels with the bootstrap message as
//! `SCM_RIGHTS`. While the child decodes the arguments, the same objects deserialise by
//! taking their fd out of the received table and rebuilding themselves with their
//! `from_fd(s)` constructor.
//!
//! Outside of those two moments there is no side table, and serialising such an object
//! (for example sending a `Lock` through a `Connection`) fails with a serde error: an fd
//! number means nothing in another process.
//!
//! After the hand-off both processes hold the object: the child a rebuilt copy, the parent
//! its original until the handle drops its arguments (right after `start`, as CPython
//! deletes `_args`), so a `Connection` end passed to the child is closed in the parent then.
#![forbid(unsafe_code)]

use std::cell::RefCell;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use serde::de::{DeserializeOwned, Error as _};
use serde::ser::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::{Error, Result};
use crate::ipc::{
    Array, Connection, JoinableQueue, Queue, RawArray, RawValue, Shareable, SimpleQueue, Value,
};
use crate::os::shm::SharedMemory;
use crate::sync::{Barrier, BoundedSemaphore, Condition, Event, Lock, RLock, Semaphore};

/// The most fds one start may pass (the kernel's `SCM_MAX_FD` is 253; the status slot and
/// the parent's pidfd take two more).
pub(crate) const MAX_FDS: usize = 240;

/// The side table of the encoding or decoding in progress on this thread.
#[derive(Debug, Default)]
enum Table {
    /// No process arguments are being encoded or decoded.
    #[default]
    Idle,
    /// Encoding: the duplicates collected so far.
    Sink(Vec<OwnedFd>),
    /// Decoding: the received fds, each taken at most once.
    Source(Vec<Option<OwnedFd>>),
}

thread_local! {
    static TABLE: RefCell<Table> = const { RefCell::new(Table::Idle) };
    /// The runtime error behind the last serde error raised by an object of this module,
    /// so that the caller reports it typed rather than as postcard's opaque custom error.
    static FAILURE: RefCell<Option<Error>> = const { RefCell::new(None) };
}

/// Initialises this thread's argument tables, so that a process forked from it later finds
/// them ready: a fork server calls it at its start, so that its children's first decode does
/// not register the tables' destructors (`__cxa_thread_atexit_impl`, whose first call in a
/// process also binds its symbol in the dynamic loader).
pub(crate) fn warm_thread_tables() {
    TABLE.with(|_| ());
    FAILURE.with(|_| ());
}

fn fail(error: Error) -> String {
    let text = error.to_string();
    FAILURE.with(|f| *f.borrow_mut() = Some(error));
    text
}

/// Duplicates `fd` (close-on-exec) into the side table and returns its index.
fn put(fd: BorrowedFd<'_>) -> std::result::Result<u32, String> {
    TABLE.with(|table| match &mut *table.borrow_mut() {
        Table::Sink(fds) => {
            if fds.len() >= MAX_FDS {
                return Err(fail(Error::InvalidArgument(
                    "too many IPC and synchronisation objects in one process's arguments",
                )));
            }
            let dup = fd
                .try_clone_to_owned()
                .map_err(|e| fail(Error::io("fcntl(F_DUPFD_CLOEXEC)", &e)))?;
            let index = u32::try_from(fds.len()).unwrap_or(u32::MAX);
            fds.push(dup);
            Ok(index)
        }
        _ => Err(fail(Error::InvalidArgument(
            "an object backed by a file descriptor can only be passed as a process argument",
        ))),
    })
}

/// Takes the fd at `index` out of the side table.
fn take(index: u32) -> std::result::Result<OwnedFd, String> {
    TABLE.with(|table| match &mut *table.borrow_mut() {
        Table::Source(fds) => fds
            .get_mut(index as usize)
            .and_then(Option::take)
            .ok_or_else(|| fail(Error::Malformed("argument names a missing or reused fd"))),
        _ => Err(fail(Error::InvalidArgument(
            "an object backed by a file descriptor can only be received as a process argument",
        ))),
    })
}

/// Restores the idle table even when encoding or decoding unwinds.
struct Reset;

impl Drop for Reset {
    fn drop(&mut self) {
        TABLE.with(|table| *table.borrow_mut() = Table::Idle);
    }
}

fn take_failure() -> Option<Error> {
    FAILURE.with(|f| f.borrow_mut().take())
}

/// Encodes process arguments: their postcard bytes and the fds of the objects among them.
///
/// # Errors
///
/// The object's own error (a closed connection: [`Error::HandleClosed`]; too many objects:
/// [`Error::InvalidArgument`]), or [`Error::Encode`].
pub(crate) fn encode<A: Serialize + ?Sized>(args: &A) -> Result<(Vec<u8>, Vec<OwnedFd>)> {
    let _reset = Reset;
    take_failure();
    TABLE.with(|table| *table.borrow_mut() = Table::Sink(Vec::new()));
    let bytes =
        postcard::to_allocvec(args).map_err(|e| take_failure().unwrap_or(Error::Encode(e)))?;
    let fds = TABLE.with(|table| match std::mem::take(&mut *table.borrow_mut()) {
        Table::Sink(fds) => fds,
        _ => Vec::new(),
    });
    Ok((bytes, fds))
}

/// Decodes process arguments from their bytes and the fds that came with them. Fds no
/// argument claims are closed.
///
/// # Errors
///
/// The rebuilt object's error ([`Error::Malformed`] for an fd of the wrong kind or a reused
/// index), or [`Error::Decode`].
pub(crate) fn decode<A: DeserializeOwned>(bytes: &[u8], fds: Vec<OwnedFd>) -> Result<A> {
    let _reset = Reset;
    take_failure();
    TABLE.with(|table| *table.borrow_mut() = Table::Source(fds.into_iter().map(Some).collect()));
    postcard::from_bytes(bytes).map_err(|e| take_failure().unwrap_or(Error::Decode(e)))
}

/// Implements `Serialize`/`Deserialize` for objects rebuilt from one fd.
macro_rules! one_fd {
    ($($ty:ident $(<$t:ident: $($b:path),+>)?),* $(,)?) => {$(
        impl$(<$t>)? Serialize for $ty$(<$t>)? {
            /// Passes the object's fd as a process argument (see `docs/start-methods.md`).
            fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
                put(self.as_fd()).map_err(S::Error::custom)?.serialize(s)
            }
        }

        impl<'de, $($t: $($b+)+ )?> Deserialize<'de> for $ty$(<$t>)? {
            /// Rebuilds the object from an fd received as a process argument.
            fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
                let fd = take(u32::deserialize(d)?).map_err(D::Error::custom)?;
                $ty::from_fd(fd).map_err(|e| D::Error::custom(fail(e)))
            }
        }
    )*};
}

one_fd!(
    Lock,
    RLock,
    Semaphore,
    BoundedSemaphore,
    Event,
    Barrier,
    SharedMemory,
    Queue<T: Serialize, DeserializeOwned>,
    SimpleQueue<T: Serialize, DeserializeOwned>,
    JoinableQueue<T: Serialize, DeserializeOwned>,
    RawValue<T: Shareable>,
    RawArray<T: Shareable>,
);

impl Serialize for Connection {
    /// Passes the connection's fd and direction as a process argument.
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        let fd = self.fd().map_err(|e| S::Error::custom(fail(e)))?;
        let index = put(fd).map_err(S::Error::custom)?;
        (index, self.readable(), self.writable()).serialize(s)
    }
}

impl<'de> Deserialize<'de> for Connection {
    /// Rebuilds the connection from an fd received as a process argument.
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let (index, readable, writable) = <(u32, bool, bool)>::deserialize(d)?;
        let fd = take(index).map_err(D::Error::custom)?;
        Connection::from_fd(fd, readable, writable).map_err(|e| D::Error::custom(fail(e)))
    }
}

impl Serialize for Condition {
    /// Passes the condition's two segments as a process argument.
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        let lock = put(self.lock_fd()).map_err(S::Error::custom)?;
        let seq = put(self.as_fd()).map_err(S::Error::custom)?;
        (lock, self.recursive(), seq).serialize(s)
    }
}

impl<'de> Deserialize<'de> for Condition {
    /// Rebuilds the condition from fds received as a process argument.
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let (lock, recursive, seq) = <(u32, bool, u32)>::deserialize(d)?;
        let lock = take(lock).map_err(D::Error::custom)?;
        let seq = take(seq).map_err(D::Error::custom)?;
        Condition::from_fds(lock, recursive, seq).map_err(|e| D::Error::custom(fail(e)))
    }
}

/// Implements `Serialize`/`Deserialize` for the locked shared values (data fd + lock fd).
macro_rules! locked {
    ($($ty:ident),*) => {$(
        impl<T: Shareable> Serialize for $ty<T> {
            /// Passes the data segment and the lock as a process argument.
            fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
                let data = put(self.as_fd()).map_err(S::Error::custom)?;
                let lock = put(self.get_lock().as_fd()).map_err(S::Error::custom)?;
                (data, lock).serialize(s)
            }
        }

        impl<'de, T: Shareable> Deserialize<'de> for $ty<T> {
            /// Rebuilds the value from fds received as a process argument.
            fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
                let (data, lock) = <(u32, u32)>::deserialize(d)?;
                let data = take(data).map_err(D::Error::custom)?;
                let lock = take(lock).map_err(D::Error::custom)?;
                $ty::from_fds(data, lock).map_err(|e| D::Error::custom(fail(e)))
            }
        }
    )*};
}

locked!(Value, Array);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn objects_round_trip_through_the_side_table() -> Result<()> {
        let lock = Lock::new()?;
        let event = Event::new()?;
        let value = Value::new(7u64)?;
        let (a, b) = crate::ipc::pipe(true)?;
        let (bytes, fds) = encode(&(&lock, &event, &value, &b, 5u8))?;
        assert_eq!(fds.len(), 5);
        drop(b);
        let (lock2, event2, value2, mut b2, five): (Lock, Event, Value<u64>, Connection, u8) =
            decode(&bytes, fds)?;
        assert_eq!(five, 5);
        event2.set();
        assert!(event.is_set());
        value2.set(9)?;
        assert_eq!(value.get()?, 9);
        assert!(lock2.acquire(None)?);
        assert!(
            !lock
                .acquire(Some(std::time::Duration::ZERO))
                .unwrap_or(true)
        );
        lock2.release()?;
        let mut a = a;
        a.send(&3u32)?;
        assert_eq!(b2.recv::<u32>()?, 3);
        Ok(())
    }

    #[test]
    fn objects_refuse_other_serialisers() -> Result<()> {
        let lock = Lock::new()?;
        assert!(postcard::to_allocvec(&lock).is_err());
        let bytes = postcard::to_allocvec(&0u32).map_err(Error::Encode)?;
        assert!(postcard::from_bytes::<Lock>(&bytes).is_err());
        Ok(())
    }

    #[test]
    fn reused_or_missing_fds_are_malformed() -> Result<()> {
        let bytes = postcard::to_allocvec(&(0u32, 0u32)).map_err(Error::Encode)?;
        let lock = Lock::new()?;
        let fd = lock
            .as_fd()
            .try_clone_to_owned()
            .map_err(|e| Error::io("dup", &e))?;
        assert!(matches!(
            decode::<(Lock, Lock)>(&bytes, vec![fd]),
            Err(Error::Malformed(_))
        ));
        let fd = lock
            .as_fd()
            .try_clone_to_owned()
            .map_err(|e| Error::io("dup", &e))?;
        assert!(matches!(
            decode::<Event>(&[], vec![fd]),
            Err(Error::Decode(_))
        ));
        Ok(())
    }
}
