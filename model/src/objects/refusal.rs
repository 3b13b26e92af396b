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

/// A refusal of a primitive's operation: a row of the refusal table. Each constant below is
/// looked up at compile time ([`refusals::row`]), so a refusal without a row cannot be
/// written; one read at run time comes through [`Refusal::from_id`]. Compared, ordered and
/// hashed by the row's id.
#[derive(Clone, Copy)]
pub struct Refusal(&'static refusals::Refusal);

impl Refusal {
    /// `Lock.acquire` by its holder with a nonzero timeout (proclife refuses; CPython sleeps
    /// for the whole timeout).
    pub const LOCK_ACQUIRE_ALREADY_HELD: Refusal =
        Refusal(refusals::row("lock.acquire.already_held"));
    /// `Lock.acquire` after its holder died holding it: the caller holds it now.
    pub const LOCK_ACQUIRE_HOLDER_DIED: Refusal =
        Refusal(refusals::row("lock.acquire.holder_died"));
    /// `Lock.release` by a process that does not hold it, while another does.
    pub const LOCK_RELEASE_HELD_BY_OTHER: Refusal =
        Refusal(refusals::row("lock.release.held_by_other"));
    /// `Lock.release` while nobody holds it.
    pub const LOCK_RELEASE_UNHELD: Refusal = Refusal(refusals::row("lock.release.unheld"));
    /// `RLock.acquire` after its holder died holding it.
    pub const RLOCK_ACQUIRE_HOLDER_DIED: Refusal =
        Refusal(refusals::row("rlock.acquire.holder_died"));
    /// `RLock.release` by a process that does not hold it, while another does.
    pub const RLOCK_RELEASE_HELD_BY_OTHER: Refusal =
        Refusal(refusals::row("rlock.release.held_by_other"));
    /// `RLock.release` while nobody holds it.
    pub const RLOCK_RELEASE_UNHELD: Refusal = Refusal(refusals::row("rlock.release.unheld"));
    /// `BoundedSemaphore.release` above its initial value.
    pub const BOUNDED_SEMAPHORE_RELEASE_OVER: Refusal =
        Refusal(refusals::row("bounded_semaphore.release.over"));
    /// `Queue.put` that found no room within its timeout.
    pub const QUEUE_PUT_FULL: Refusal = Refusal(refusals::row("queue.put.full_timeout"));
    /// `Queue.get` that found no item within its timeout.
    pub const QUEUE_GET_EMPTY: Refusal = Refusal(refusals::row("queue.get.empty_timeout"));
    /// `Queue.put` through a closed handle.
    pub const QUEUE_PUT_CLOSED: Refusal = Refusal(refusals::row("queue.put.closed"));
    /// `Queue.get` through a closed handle.
    pub const QUEUE_GET_CLOSED: Refusal = Refusal(refusals::row("queue.get.closed"));
    /// `SimpleQueue.put` through a closed handle.
    pub const SIMPLE_QUEUE_PUT_CLOSED: Refusal = Refusal(refusals::row("simple_queue.put.closed"));
    /// `SimpleQueue.get` through a closed handle.
    pub const SIMPLE_QUEUE_GET_CLOSED: Refusal = Refusal(refusals::row("simple_queue.get.closed"));
    /// `JoinableQueue.put` that found no room within its timeout.
    pub const JOINABLE_QUEUE_PUT_FULL: Refusal =
        Refusal(refusals::row("joinable_queue.put.full_timeout"));
    /// `JoinableQueue.get` that found no item within its timeout.
    pub const JOINABLE_QUEUE_GET_EMPTY: Refusal =
        Refusal(refusals::row("joinable_queue.get.empty_timeout"));
    /// `JoinableQueue.put` through a closed handle.
    pub const JOINABLE_QUEUE_PUT_CLOSED: Refusal =
        Refusal(refusals::row("joinable_queue.put.closed"));
    /// `JoinableQueue.get` through a closed handle.
    pub const JOINABLE_QUEUE_GET_CLOSED: Refusal =
        Refusal(refusals::row("joinable_queue.get.closed"));
    /// `JoinableQueue.task_done` more often than items were put.
    pub const JOINABLE_QUEUE_TASK_DONE_TOO_MANY: Refusal =
        Refusal(refusals::row("joinable_queue.task_done.too_many"));
    /// `Condition.acquire` after a holder of its lock died holding it.
    pub const CONDITION_ACQUIRE_HOLDER_DIED: Refusal =
        Refusal(refusals::row("condition.acquire.holder_died"));
    /// `Condition.wait` whose re-acquire found the lock's holder dead.
    pub const CONDITION_WAIT_HOLDER_DIED: Refusal =
        Refusal(refusals::row("condition.wait.holder_died"));
    /// `Condition.notify` by a process that does not hold its lock.
    pub const CONDITION_NOTIFY_UNOWNED: Refusal =
        Refusal(refusals::row("condition.notify.unowned"));
    /// `Condition.notify_all` by a process that does not hold its lock.
    pub const CONDITION_NOTIFY_ALL_UNOWNED: Refusal =
        Refusal(refusals::row("condition.notify_all.unowned"));
    /// `Condition.release` by a process that does not hold its lock.
    pub const CONDITION_RELEASE_UNOWNED: Refusal =
        Refusal(refusals::row("condition.release.unowned"));
    /// `Condition.wait` by a process that does not hold its lock.
    pub const CONDITION_WAIT_UNOWNED: Refusal = Refusal(refusals::row("condition.wait.unowned"));
    /// `Barrier.wait` whose timeout passed before all parties arrived.
    pub const BARRIER_WAIT_TIMEOUT: Refusal = Refusal(refusals::row("barrier.wait.timeout"));
    /// `Barrier.wait` on a barrier an earlier wait's timeout broke.
    pub const BARRIER_WAIT_AFTER_TIMEOUT: Refusal =
        Refusal(refusals::row("barrier.wait.after_timeout"));
    /// `Barrier.wait` while (or after) a waiting party died.
    pub const BARRIER_WAIT_PARTY_DIED: Refusal = Refusal(refusals::row("barrier.wait.party_died"));
    /// `Value.get_lock().acquire` after a holder of the lock died holding it.
    pub const VALUE_ACQUIRE_HOLDER_DIED: Refusal =
        Refusal(refusals::row("value.acquire.holder_died"));
    /// `Value.get_lock().release` by a process that does not hold the lock.
    pub const VALUE_RELEASE_UNOWNED: Refusal = Refusal(refusals::row("value.release.unowned"));
    /// Reading, writing or incrementing `Value.value` after a holder of its lock died.
    pub const VALUE_HOLDER_DIED: Refusal = Refusal(refusals::row("value.get.holder_died"));
    /// `Array.get_lock().acquire` after a holder of the lock died holding it.
    pub const ARRAY_ACQUIRE_HOLDER_DIED: Refusal =
        Refusal(refusals::row("array.acquire.holder_died"));
    /// `Array.get_lock().release` by a process that does not hold the lock.
    pub const ARRAY_RELEASE_UNOWNED: Refusal = Refusal(refusals::row("array.release.unowned"));
    /// `array[i]` after a holder of its lock died holding it.
    pub const ARRAY_GETITEM_HOLDER_DIED: Refusal =
        Refusal(refusals::row("array.getitem.holder_died"));
    /// `array[i] = x` after a holder of its lock died holding it.
    pub const ARRAY_SETITEM_HOLDER_DIED: Refusal =
        Refusal(refusals::row("array.setitem.holder_died"));
    /// `array[i]` with `i` not below the length.
    pub const ARRAY_GETITEM_OUT_OF_RANGE: Refusal =
        Refusal(refusals::row("array.getitem.out_of_range"));
    /// `array[i] = x` with `i` not below the length.
    pub const ARRAY_SETITEM_OUT_OF_RANGE: Refusal =
        Refusal(refusals::row("array.setitem.out_of_range"));
    /// `Connection.send` through an end the caller closed.
    pub const CONNECTION_SEND_CLOSED: Refusal = Refusal(refusals::row("connection.send.closed"));
    /// `Connection.send` through the receiving end of a one-way pipe.
    pub const CONNECTION_SEND_READ_ONLY: Refusal =
        Refusal(refusals::row("connection.send.read_only"));
    /// `Connection.send` through a one-way pipe whose receiving end every process closed.
    pub const CONNECTION_SEND_PEER_CLOSED: Refusal =
        Refusal(refusals::row("connection.send.peer_closed"));
    /// `Connection.send` through a one-way pipe whose receiving end's last holder was killed.
    pub const CONNECTION_SEND_READER_KILLED: Refusal =
        Refusal(refusals::row("connection.send.reader_killed"));
    /// `Connection.send` through a duplex end whose peer every process closed.
    pub const CONNECTION_SEND_DUPLEX_PEER_CLOSED: Refusal =
        Refusal(refusals::row("connection.send.duplex_peer_closed"));
    /// `Connection.send` through a duplex end whose peer's last holder was killed.
    pub const CONNECTION_SEND_PEER_KILLED: Refusal =
        Refusal(refusals::row("connection.send.peer_killed"));
    /// `Connection.recv` through an end the caller closed.
    pub const CONNECTION_RECV_CLOSED: Refusal = Refusal(refusals::row("connection.recv.closed"));
    /// `Connection.recv` through the sending end of a one-way pipe.
    pub const CONNECTION_RECV_WRITE_ONLY: Refusal =
        Refusal(refusals::row("connection.recv.write_only"));
    /// `Connection.recv` with nothing left, the duplex peer closed in every process.
    pub const CONNECTION_RECV_PEER_CLOSED: Refusal =
        Refusal(refusals::row("connection.recv.peer_closed"));
    /// `Connection.recv` with nothing left, the duplex peer's last holder killed.
    pub const CONNECTION_RECV_PEER_KILLED: Refusal =
        Refusal(refusals::row("connection.recv.peer_killed"));
    /// `Connection.recv` with nothing left, the one-way pipe's sending end closed in every process.
    pub const CONNECTION_RECV_WRITER_CLOSED: Refusal =
        Refusal(refusals::row("connection.recv.writer_closed"));
    /// `Connection.recv` with nothing left, the one-way pipe's sending end's last holder killed.
    pub const CONNECTION_RECV_WRITER_KILLED: Refusal =
        Refusal(refusals::row("connection.recv.writer_killed"));
    /// `Connection.poll` through an end the caller closed.
    pub const CONNECTION_POLL_CLOSED: Refusal = Refusal(refusals::row("connection.poll.closed"));
    /// `Connection.poll` through the sending end of a one-way pipe.
    pub const CONNECTION_POLL_WRITE_ONLY: Refusal =
        Refusal(refusals::row("connection.poll.write_only"));

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
        refusals::refusal(id).map(Refusal)
    }

    /// The row's id, `object.operation.situation`.
    pub fn id(self) -> &'static str {
        self.0.id
    }

    /// The row of the refusal table.
    pub fn row(self) -> &'static refusals::Refusal {
        self.0
    }

    /// The exception proclife names for it (the row's [`refusals::Refusal::names`]): `None`
    /// where it has no CPython counterpart.
    pub fn names(self) -> Option<PyRaise> {
        self.0.names()
    }

    /// The name of the `proclife::Error` variant the runtime returns for it.
    pub fn error(self) -> &'static str {
        self.0.error
    }
}

impl fmt::Debug for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Refusal").field(&self.0.id).finish()
    }
}

impl PartialEq for Refusal {
    fn eq(&self, other: &Refusal) -> bool {
        self.0.id == other.0.id
    }
}

impl Eq for Refusal {}

impl std::hash::Hash for Refusal {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.0.id.hash(state);
    }
}

impl PartialOrd for Refusal {
    fn partial_cmp(&self, other: &Refusal) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Refusal {
    fn cmp(&self, other: &Refusal) -> std::cmp::Ordering {
        self.0.id.cmp(other.0.id)
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let row = self.0;
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
        serializer.serialize_str(self.0.id)
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
    fn every_modelled_refusal_is_found_again_by_its_id() {
        for refusal in Refusal::MODELLED {
            assert_eq!(Refusal::from_id(refusal.id()), Some(refusal));
            assert!(
                refusals::refusal(refusal.id()).is_some_and(|row| row == refusal.row()),
                "{} is not the table's row",
                refusal.id()
            );
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
