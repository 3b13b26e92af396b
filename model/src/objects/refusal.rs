//! The primitives' refusals: each one a row of the refusal table ([`crate::refusals`]).
//!
//! A model that refuses a call names the row for the call's object and operation and the
//! situation it is in (`lock.release.unheld`, `lock.release.held_by_other`); the exception
//! a refusal stands for, CPython's own or, where proclife deliberately differs, the
//! deviation's, comes from that row ([`Refusal::names`]), so the models, the runtime's
//! `Error::python_for` and the table cannot name the same refusal differently.
//!
//! In a replay or a report a refusal is written as its row's id.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::refusals::{self, CPython, PyRaise};

/// A refusal of a primitive's operation: the id of a row of the refusal table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Refusal(&'static str);

impl Refusal {
    /// `Lock.acquire` by its holder with a nonzero timeout (proclife refuses; CPython sleeps
    /// for the whole timeout).
    pub const LOCK_ACQUIRE_ALREADY_HELD: Refusal = Refusal("lock.acquire.already_held");
    /// `Lock.acquire` after its holder died holding it: the caller holds it now.
    pub const LOCK_ACQUIRE_HOLDER_DIED: Refusal = Refusal("lock.acquire.holder_died");
    /// `Lock.release` by a process that does not hold it, while another does.
    pub const LOCK_RELEASE_HELD_BY_OTHER: Refusal = Refusal("lock.release.held_by_other");
    /// `Lock.release` while nobody holds it.
    pub const LOCK_RELEASE_UNHELD: Refusal = Refusal("lock.release.unheld");
    /// `RLock.acquire` after its holder died holding it.
    pub const RLOCK_ACQUIRE_HOLDER_DIED: Refusal = Refusal("rlock.acquire.holder_died");
    /// `RLock.release` by a process that does not hold it, while another does.
    pub const RLOCK_RELEASE_HELD_BY_OTHER: Refusal = Refusal("rlock.release.held_by_other");
    /// `RLock.release` while nobody holds it.
    pub const RLOCK_RELEASE_UNHELD: Refusal = Refusal("rlock.release.unheld");
    /// `BoundedSemaphore.release` above its initial value.
    pub const BOUNDED_SEMAPHORE_RELEASE_OVER: Refusal = Refusal("bounded_semaphore.release.over");
    /// `Queue.put` that found no room within its timeout.
    pub const QUEUE_PUT_FULL: Refusal = Refusal("queue.put.full_timeout");
    /// `Queue.get` that found no item within its timeout.
    pub const QUEUE_GET_EMPTY: Refusal = Refusal("queue.get.empty_timeout");
    /// `Queue.put` through a closed handle.
    pub const QUEUE_PUT_CLOSED: Refusal = Refusal("queue.put.closed");
    /// `Queue.get` through a closed handle.
    pub const QUEUE_GET_CLOSED: Refusal = Refusal("queue.get.closed");
    /// `SimpleQueue.put` through a closed handle.
    pub const SIMPLE_QUEUE_PUT_CLOSED: Refusal = Refusal("simple_queue.put.closed");
    /// `SimpleQueue.get` through a closed handle.
    pub const SIMPLE_QUEUE_GET_CLOSED: Refusal = Refusal("simple_queue.get.closed");
    /// `JoinableQueue.put` that found no room within its timeout.
    pub const JOINABLE_QUEUE_PUT_FULL: Refusal = Refusal("joinable_queue.put.full_timeout");
    /// `JoinableQueue.get` that found no item within its timeout.
    pub const JOINABLE_QUEUE_GET_EMPTY: Refusal = Refusal("joinable_queue.get.empty_timeout");
    /// `JoinableQueue.put` through a closed handle.
    pub const JOINABLE_QUEUE_PUT_CLOSED: Refusal = Refusal("joinable_queue.put.closed");
    /// `JoinableQueue.get` through a closed handle.
    pub const JOINABLE_QUEUE_GET_CLOSED: Refusal = Refusal("joinable_queue.get.closed");
    /// `JoinableQueue.task_done` more often than items were put.
    pub const JOINABLE_QUEUE_TASK_DONE_TOO_MANY: Refusal =
        Refusal("joinable_queue.task_done.too_many");
    /// `Condition.acquire` after a holder of its lock died holding it.
    pub const CONDITION_ACQUIRE_HOLDER_DIED: Refusal = Refusal("condition.acquire.holder_died");
    /// `Condition.wait` whose re-acquire found the lock's holder dead.
    pub const CONDITION_WAIT_HOLDER_DIED: Refusal = Refusal("condition.wait.holder_died");
    /// `Condition.notify` by a process that does not hold its lock.
    pub const CONDITION_NOTIFY_UNOWNED: Refusal = Refusal("condition.notify.unowned");
    /// `Condition.notify_all` by a process that does not hold its lock.
    pub const CONDITION_NOTIFY_ALL_UNOWNED: Refusal = Refusal("condition.notify_all.unowned");
    /// `Condition.release` by a process that does not hold its lock.
    pub const CONDITION_RELEASE_UNOWNED: Refusal = Refusal("condition.release.unowned");
    /// `Condition.wait` by a process that does not hold its lock.
    pub const CONDITION_WAIT_UNOWNED: Refusal = Refusal("condition.wait.unowned");
    /// `Barrier.wait` whose timeout passed before all parties arrived.
    pub const BARRIER_WAIT_TIMEOUT: Refusal = Refusal("barrier.wait.timeout");
    /// `Barrier.wait` on a barrier an earlier wait's timeout broke.
    pub const BARRIER_WAIT_AFTER_TIMEOUT: Refusal = Refusal("barrier.wait.after_timeout");
    /// `Barrier.wait` while (or after) a waiting party died.
    pub const BARRIER_WAIT_PARTY_DIED: Refusal = Refusal("barrier.wait.party_died");
    /// `Value.get_lock().acquire` after a holder of the lock died holding it.
    pub const VALUE_ACQUIRE_HOLDER_DIED: Refusal = Refusal("value.acquire.holder_died");
    /// `Value.get_lock().release` by a process that does not hold the lock.
    pub const VALUE_RELEASE_UNOWNED: Refusal = Refusal("value.release.unowned");
    /// Reading, writing or incrementing `Value.value` after a holder of its lock died.
    pub const VALUE_HOLDER_DIED: Refusal = Refusal("value.get.holder_died");
    /// `Array.get_lock().acquire` after a holder of the lock died holding it.
    pub const ARRAY_ACQUIRE_HOLDER_DIED: Refusal = Refusal("array.acquire.holder_died");
    /// `Array.get_lock().release` by a process that does not hold the lock.
    pub const ARRAY_RELEASE_UNOWNED: Refusal = Refusal("array.release.unowned");
    /// `array[i]` after a holder of its lock died holding it.
    pub const ARRAY_GETITEM_HOLDER_DIED: Refusal = Refusal("array.getitem.holder_died");
    /// `array[i] = x` after a holder of its lock died holding it.
    pub const ARRAY_SETITEM_HOLDER_DIED: Refusal = Refusal("array.setitem.holder_died");
    /// `array[i]` with `i` not below the length.
    pub const ARRAY_GETITEM_OUT_OF_RANGE: Refusal = Refusal("array.getitem.out_of_range");
    /// `array[i] = x` with `i` not below the length.
    pub const ARRAY_SETITEM_OUT_OF_RANGE: Refusal = Refusal("array.setitem.out_of_range");
    /// `Connection.send` through an end the caller closed.
    pub const CONNECTION_SEND_CLOSED: Refusal = Refusal("connection.send.closed");
    /// `Connection.send` through the receiving end of a one-way pipe.
    pub const CONNECTION_SEND_READ_ONLY: Refusal = Refusal("connection.send.read_only");
    /// `Connection.send` through a one-way pipe whose receiving end every process closed.
    pub const CONNECTION_SEND_PEER_CLOSED: Refusal = Refusal("connection.send.peer_closed");
    /// `Connection.send` through a one-way pipe whose receiving end's last holder was killed.
    pub const CONNECTION_SEND_READER_KILLED: Refusal = Refusal("connection.send.reader_killed");
    /// `Connection.send` through a duplex end whose peer every process closed.
    pub const CONNECTION_SEND_DUPLEX_PEER_CLOSED: Refusal =
        Refusal("connection.send.duplex_peer_closed");
    /// `Connection.send` through a duplex end whose peer's last holder was killed.
    pub const CONNECTION_SEND_PEER_KILLED: Refusal = Refusal("connection.send.peer_killed");
    /// `Connection.recv` through an end the caller closed.
    pub const CONNECTION_RECV_CLOSED: Refusal = Refusal("connection.recv.closed");
    /// `Connection.recv` through the sending end of a one-way pipe.
    pub const CONNECTION_RECV_WRITE_ONLY: Refusal = Refusal("connection.recv.write_only");
    /// `Connection.recv` with nothing left, the duplex peer closed in every process.
    pub const CONNECTION_RECV_PEER_CLOSED: Refusal = Refusal("connection.recv.peer_closed");
    /// `Connection.recv` with nothing left, the duplex peer's last holder killed.
    pub const CONNECTION_RECV_PEER_KILLED: Refusal = Refusal("connection.recv.peer_killed");
    /// `Connection.recv` with nothing left, the one-way pipe's sending end closed in every process.
    pub const CONNECTION_RECV_WRITER_CLOSED: Refusal = Refusal("connection.recv.writer_closed");
    /// `Connection.recv` with nothing left, the one-way pipe's sending end's last holder killed.
    pub const CONNECTION_RECV_WRITER_KILLED: Refusal = Refusal("connection.recv.writer_killed");
    /// `Connection.poll` through an end the caller closed.
    pub const CONNECTION_POLL_CLOSED: Refusal = Refusal("connection.poll.closed");
    /// `Connection.poll` through the sending end of a one-way pipe.
    pub const CONNECTION_POLL_WRITE_ONLY: Refusal = Refusal("connection.poll.write_only");

    /// Every refusal the primitives' models name.
    pub const MODELLED: [Refusal; 51] = [
        Refusal::LOCK_ACQUIRE_ALREADY_HELD,
        Refusal::LOCK_ACQUIRE_HOLDER_DIED,
        Refusal::LOCK_RELEASE_HELD_BY_OTHER,
        Refusal::LOCK_RELEASE_UNHELD,
        Refusal::RLOCK_ACQUIRE_HOLDER_DIED,
        Refusal::RLOCK_RELEASE_HELD_BY_OTHER,
        Refusal::RLOCK_RELEASE_UNHELD,
        Refusal::BOUNDED_SEMAPHORE_RELEASE_OVER,
        Refusal::QUEUE_PUT_FULL,
        Refusal::QUEUE_GET_EMPTY,
        Refusal::QUEUE_PUT_CLOSED,
        Refusal::QUEUE_GET_CLOSED,
        Refusal::SIMPLE_QUEUE_PUT_CLOSED,
        Refusal::SIMPLE_QUEUE_GET_CLOSED,
        Refusal::JOINABLE_QUEUE_PUT_FULL,
        Refusal::JOINABLE_QUEUE_GET_EMPTY,
        Refusal::JOINABLE_QUEUE_PUT_CLOSED,
        Refusal::JOINABLE_QUEUE_GET_CLOSED,
        Refusal::JOINABLE_QUEUE_TASK_DONE_TOO_MANY,
        Refusal::CONDITION_ACQUIRE_HOLDER_DIED,
        Refusal::CONDITION_WAIT_HOLDER_DIED,
        Refusal::CONDITION_NOTIFY_UNOWNED,
        Refusal::CONDITION_NOTIFY_ALL_UNOWNED,
        Refusal::CONDITION_RELEASE_UNOWNED,
        Refusal::CONDITION_WAIT_UNOWNED,
        Refusal::BARRIER_WAIT_TIMEOUT,
        Refusal::BARRIER_WAIT_AFTER_TIMEOUT,
        Refusal::BARRIER_WAIT_PARTY_DIED,
        Refusal::VALUE_ACQUIRE_HOLDER_DIED,
        Refusal::VALUE_RELEASE_UNOWNED,
        Refusal::VALUE_HOLDER_DIED,
        Refusal::ARRAY_ACQUIRE_HOLDER_DIED,
        Refusal::ARRAY_RELEASE_UNOWNED,
        Refusal::ARRAY_GETITEM_HOLDER_DIED,
        Refusal::ARRAY_SETITEM_HOLDER_DIED,
        Refusal::ARRAY_GETITEM_OUT_OF_RANGE,
        Refusal::ARRAY_SETITEM_OUT_OF_RANGE,
        Refusal::CONNECTION_SEND_CLOSED,
        Refusal::CONNECTION_SEND_READ_ONLY,
        Refusal::CONNECTION_SEND_PEER_CLOSED,
        Refusal::CONNECTION_SEND_READER_KILLED,
        Refusal::CONNECTION_SEND_DUPLEX_PEER_CLOSED,
        Refusal::CONNECTION_SEND_PEER_KILLED,
        Refusal::CONNECTION_RECV_CLOSED,
        Refusal::CONNECTION_RECV_WRITE_ONLY,
        Refusal::CONNECTION_RECV_PEER_CLOSED,
        Refusal::CONNECTION_RECV_PEER_KILLED,
        Refusal::CONNECTION_RECV_WRITER_CLOSED,
        Refusal::CONNECTION_RECV_WRITER_KILLED,
        Refusal::CONNECTION_POLL_CLOSED,
        Refusal::CONNECTION_POLL_WRITE_ONLY,
    ];

    /// The refusal of the table's row `id`, if the table has it.
    pub fn from_id(id: &str) -> Option<Refusal> {
        refusals::refusal(id).map(|row| Refusal(row.id))
    }

    /// The row's id, `object.operation.situation`.
    pub fn id(self) -> &'static str {
        self.0
    }

    /// The row of the refusal table (every refusal of [`Refusal::MODELLED`] has one, which
    /// a test checks).
    pub fn row(self) -> Option<&'static refusals::Refusal> {
        refusals::refusal(self.0)
    }

    /// The exception proclife names for it (the row's [`refusals::Refusal::names`]): `None`
    /// where it has no CPython counterpart.
    pub fn names(self) -> Option<PyRaise> {
        self.row().and_then(refusals::Refusal::names)
    }

    /// The name of the `proclife::Error` variant the runtime returns for it.
    pub fn error(self) -> &'static str {
        self.row().map_or("", |row| row.error)
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Some(row) = self.row() else {
            return write!(f, "refused ({}, not in the refusal table)", self.0);
        };
        match (row.names(), row.deviation) {
            (Some(raise), _) if raise.message.is_empty() => write!(f, "raised {}", raise.kind),
            (Some(raise), _) => write!(f, "raised {}: {}", raise.kind, raise.message),
            (None, deviation) => {
                write!(f, "refused with {} (CPython ", row.error)?;
                match row.cpython {
                    CPython::Raises(raise) => write!(f, "raises {}", raise.kind)?,
                    CPython::Returns(repr) => write!(f, "returns {repr}")?,
                    CPython::Hangs => f.write_str("hangs")?,
                }
                match deviation {
                    Some(d) => write!(f, ", decision {})", d.decision),
                    None => f.write_str(")"),
                }
            }
        }
    }
}

impl Serialize for Refusal {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.0)
    }
}

impl<'de> Deserialize<'de> for Refusal {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Refusal, D::Error> {
        let id = String::deserialize(deserializer)?;
        Refusal::from_id(&id).ok_or_else(|| {
            serde::de::Error::custom(format!("no row \"{id}\" in the refusal table"))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_modelled_refusal_is_a_row_of_a_primitive() {
        for refusal in Refusal::MODELLED {
            let row = refusal.row();
            assert!(row.is_some(), "{} is not a row of the table", refusal.id());
            assert_eq!(Refusal::from_id(refusal.id()), Some(refusal));
        }
    }

    #[test]
    fn names_are_the_tables() {
        let lock = Refusal::LOCK_RELEASE_UNHELD.to_string();
        assert_eq!(
            lock,
            "raised ValueError: semaphore or lock released too many times"
        );
        let rlock = Refusal::RLOCK_RELEASE_HELD_BY_OTHER.to_string();
        assert_eq!(
            rlock,
            "raised AssertionError: attempt to release recursive lock not owned by thread"
        );
        assert_eq!(Refusal::QUEUE_GET_EMPTY.to_string(), "raised _queue.Empty");
        assert_eq!(
            Refusal::LOCK_ACQUIRE_HOLDER_DIED.to_string(),
            "refused with OwnerDied (CPython returns False, decision 0003)"
        );
    }

    #[test]
    fn serde_writes_the_id_and_reads_only_rows() {
        let json = serde_json::to_string(&Refusal::QUEUE_PUT_FULL).ok();
        assert_eq!(json.as_deref(), Some("\"queue.put.full_timeout\""));
        let back: Result<Refusal, _> = serde_json::from_str("\"queue.put.full_timeout\"");
        assert_eq!(back.ok(), Some(Refusal::QUEUE_PUT_FULL));
        assert!(serde_json::from_str::<Refusal>("\"not_owner\"").is_err());
    }
}
