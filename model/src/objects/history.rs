//! Histories: calls with the logical times of their invocation and return.

use std::fmt;

use crate::objects::call::{Call, Ret};

/// One call of a history.
///
/// `invoked` and `returned` are stamps of one shared counter, taken just before the call and
/// just after it returned, so `a.returned < b.invoked` means `a` really ended before `b`
/// began. A caller killed before its call returned leaves `returned` and `ret` empty: the
/// call may or may not have taken effect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The caller (0.. for the processes of a program).
    pub proc: usize,
    /// The call.
    pub call: Call,
    /// Stamp taken before the call.
    pub invoked: u64,
    /// Stamp taken after the call returned; `None` if the caller died first.
    pub returned: Option<u64>,
    /// What the call returned; `None` if the caller died first.
    pub ret: Option<Ret>,
}

impl Entry {
    /// Whether this call and `other` may have been in progress at the same moment.
    pub fn overlaps(&self, other: &Entry) -> bool {
        let ends_after = |e: &Entry, start: u64| e.returned.is_none_or(|r| r > start);
        ends_after(self, other.invoked) && ends_after(other, self.invoked)
    }

    /// Whether this call surely ended before `other` began.
    pub fn precedes(&self, other: &Entry) -> bool {
        self.returned.is_some_and(|r| r < other.invoked)
    }
}

impl fmt::Display for Entry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "p{} [{:>3}..", self.proc, self.invoked)?;
        match (self.returned, &self.ret) {
            (Some(r), Some(ret)) => write!(f, "{r:>3}] {} -> {ret}", self.call),
            _ => write!(f, "  †] {} (killed before it returned)", self.call),
        }
    }
}

/// The last stamp among `proc`'s calls in `entries` (0 if it made none): a process that was
/// killed died after it.
pub(crate) fn last_stamp(entries: &[Entry], proc: usize) -> u64 {
    entries
        .iter()
        .filter(|e| e.proc == proc)
        .map(|e| e.returned.unwrap_or(e.invoked))
        .max()
        .unwrap_or(0)
}

/// A history: the calls of all processes on one set of objects, in invocation order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct History {
    /// The calls, sorted by `invoked`.
    pub entries: Vec<Entry>,
}

impl History {
    /// A history of these calls, sorted by invocation.
    pub fn new(mut entries: Vec<Entry>) -> History {
        entries.sort_by_key(|e| (e.invoked, e.proc));
        History { entries }
    }

    /// The calls on one object, keeping their indices in `entries`.
    pub fn on(&self, obj: crate::objects::Object) -> impl Iterator<Item = (usize, &Entry)> {
        self.entries
            .iter()
            .enumerate()
            .filter(move |(_, e)| e.call.object() == obj)
    }
}

impl fmt::Display for History {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.entries.iter().enumerate() {
            writeln!(f, "  #{i:<3} {e}")?;
        }
        Ok(())
    }
}

/// Why a history is not one the specification allows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// The rule of the specification that is broken, in a few words.
    pub rule: &'static str,
    /// The indices (in `History::entries`) of the calls that show it.
    pub entries: Vec<usize>,
    /// The model's explanation, in full sentences.
    pub explanation: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.rule, self.explanation)
    }
}
