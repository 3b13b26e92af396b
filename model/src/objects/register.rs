//! Sequential specifications of `Value` (one register) and `Array` (a fixed row of
//! registers), each guarded by its own recursive lock (CPython's `get_lock()`, an `RLock`).
//!
//! Every access (`value`, `array[i]`, `array[i] = x`, and the increment
//! `with v.get_lock(): v.value += 1`) takes the lock for its duration, recursively when the
//! caller already holds it through `get_lock().acquire()`, so it waits while another process
//! holds it. Increments are therefore never lost: two increments from the same value is a
//! linearizability violation.
//!
//! A process that dies holding the lock (between `get_lock().acquire()` and `release()`, or
//! inside an access) leaves it to the next caller with `OwnerDied` (proclife's robust lock;
//! CPython waits forever, decision 0003); that caller holds the lock afterwards and its access
//! did not happen. A caller killed inside an access may have taken the lock and not released
//! it, with its write done or not: the model lets such a pending call take effect as
//! [`killed_inside`], a result no returned call can have, so the next caller may be told.
//! An element is one aligned word, written whole, so no torn value is modelled. Why the lock is
//! part of the model and how a death inside an access is placed: decision 0021.

use crate::objects::call::{Call, Object, Ret};
use crate::objects::refusal::Refusal;
use crate::objects::spec::{Holder, Spec};

/// The length of the checked `Array`.
pub const ARRAY_LEN: usize = 2;

/// The result a model gives a call killed inside an access after it took the lock: never the
/// result of a call that returned, so only a killed caller's pending call is placed with it.
pub fn killed_inside() -> Ret {
    Ret::Other {
        error: "killed inside the access, holding the lock".to_owned(),
    }
}

/// `Value` (one cell) or `Array` (`ARRAY_LEN` cells): the cells and who holds the lock.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RegisterSpec {
    /// `Value` or `Array`.
    pub kind: Object,
    /// The cells, all 0 at first.
    pub cells: Vec<u32>,
    /// Who holds the lock.
    pub holder: Holder,
}

/// What an access does to the cells once the lock is taken.
enum Access {
    Read(usize),
    Write(usize, u32),
    Increment,
    OutOfRange,
}

impl RegisterSpec {
    /// A `Value` of 0 or an `Array` of `ARRAY_LEN` zeros.
    pub fn new(kind: Object) -> RegisterSpec {
        let len = if kind == Object::Array { ARRAY_LEN } else { 1 };
        RegisterSpec {
            kind,
            cells: vec![0; len],
            holder: Holder::Free,
        }
    }

    fn with(&self, holder: Holder) -> RegisterSpec {
        RegisterSpec {
            holder,
            ..self.clone()
        }
    }

    fn value(&self) -> bool {
        self.kind == Object::Value
    }

    fn index(&self, index: u32) -> Option<usize> {
        usize::try_from(index)
            .ok()
            .filter(|&i| i < self.cells.len())
    }

    /// The access `call` makes, and the refusal it gets from a dead holder's lock.
    fn access(&self, call: Call) -> Option<(Access, Refusal)> {
        let died = Refusal::VALUE_HOLDER_DIED;
        Some(match call {
            Call::ValueGet if self.value() => (Access::Read(0), died),
            Call::ValueSet { value } if self.value() => (Access::Write(0, value), died),
            Call::ValueIncrement if self.value() => (Access::Increment, died),
            Call::ArrayGet { index } if !self.value() => (
                self.index(index).map_or(Access::OutOfRange, Access::Read),
                Refusal::ARRAY_GETITEM_HOLDER_DIED,
            ),
            Call::ArraySet { index, value } if !self.value() => (
                self.index(index)
                    .map_or(Access::OutOfRange, |i| Access::Write(i, value)),
                Refusal::ARRAY_SETITEM_HOLDER_DIED,
            ),
            _ => return None,
        })
    }

    /// The accesses's results with the lock held by the caller (at `depth` before it).
    fn accessed(&self, proc: usize, depth: u32, access: &Access, call: Call) -> Vec<(Ret, Self)> {
        let mut done = self.clone();
        let ret = match *access {
            Access::Read(i) => Ret::Int {
                value: i64::from(self.cells[i]),
            },
            Access::Write(i, value) => {
                done.cells[i] = value;
                Ret::None
            }
            Access::Increment => {
                done.cells[0] = self.cells[0].wrapping_add(1);
                Ret::Int {
                    value: i64::from(done.cells[0]),
                }
            }
            Access::OutOfRange => Ret::Raised {
                refusal: if matches!(call, Call::ArrayGet { .. }) {
                    Refusal::ARRAY_GETITEM_OUT_OF_RANGE
                } else {
                    Refusal::ARRAY_SETITEM_OUT_OF_RANGE
                },
            },
        };
        // Killed inside, still holding the lock, before or after its write.
        let inside = Holder::Proc(proc, depth + 1);
        let mut out = vec![(killed_inside(), self.with(inside))];
        if done.cells != self.cells {
            out.push((killed_inside(), done.with(inside)));
        }
        out.push((ret, done));
        out
    }
}

impl Spec for RegisterSpec {
    fn step(&self, proc: usize, call: Call) -> Vec<(Ret, RegisterSpec)> {
        let raised = |refusal| Ret::Raised { refusal };
        let (acquire_died, unowned) = if self.value() {
            (
                Refusal::VALUE_ACQUIRE_HOLDER_DIED,
                Refusal::VALUE_RELEASE_UNOWNED,
            )
        } else {
            (
                Refusal::ARRAY_ACQUIRE_HOLDER_DIED,
                Refusal::ARRAY_RELEASE_UNOWNED,
            )
        };
        match call {
            Call::Acquire { obj, timeout_ms } if obj == self.kind => match self.holder {
                Holder::Free => vec![(Ret::Bool { value: true }, self.with(Holder::Proc(proc, 1)))],
                Holder::Dead => vec![(raised(acquire_died), self.with(Holder::Proc(proc, 1)))],
                Holder::Proc(p, depth) if p == proc => vec![(
                    Ret::Bool { value: true },
                    self.with(Holder::Proc(proc, depth + 1)),
                )],
                Holder::Proc(..) => match timeout_ms {
                    Some(_) => vec![(Ret::Bool { value: false }, self.clone())],
                    None => Vec::new(),
                },
            },
            Call::Release { obj } if obj == self.kind => match self.holder {
                Holder::Proc(p, 1) if p == proc => vec![(Ret::None, self.with(Holder::Free))],
                Holder::Proc(p, depth) if p == proc => {
                    vec![(Ret::None, self.with(Holder::Proc(p, depth - 1)))]
                }
                _ => vec![(raised(unowned), self.clone())],
            },
            _ => {
                let Some((access, died)) = self.access(call) else {
                    return Vec::new();
                };
                match self.holder {
                    Holder::Free => self.accessed(proc, 0, &access, call),
                    Holder::Proc(p, depth) if p == proc => {
                        self.accessed(proc, depth, &access, call)
                    }
                    // The caller is told, and holds the lock; its access did not happen.
                    Holder::Dead => vec![(raised(died), self.with(Holder::Proc(proc, 1)))],
                    // Waits for the holder (an access has no timeout).
                    Holder::Proc(..) => Vec::new(),
                }
            }
        }
    }

    fn die(&self, proc: usize) -> RegisterSpec {
        match self.holder {
            Holder::Proc(p, _) if p == proc => self.with(Holder::Dead),
            _ => self.clone(),
        }
    }

    fn exit(&self, proc: usize) -> RegisterSpec {
        match self.holder {
            Holder::Proc(p, _) if p == proc => self.with(Holder::Free),
            _ => self.clone(),
        }
    }

    fn label(&self) -> String {
        let cells: Vec<String> = self.cells.iter().map(u32::to_string).collect();
        let holder = match self.holder {
            Holder::Free => String::new(),
            Holder::Proc(p, 1) => format!(", held by p{p}"),
            Holder::Proc(p, depth) => format!(", held by p{p} x{depth}"),
            Holder::Dead => ", holder died".to_owned(),
        };
        if self.value() {
            format!("{}{holder}", cells.join(""))
        } else {
            format!("[{}]{holder}", cells.join(", "))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn only(results: Vec<(Ret, RegisterSpec)>) -> (Ret, RegisterSpec) {
        let returned: Vec<_> = results
            .into_iter()
            .filter(|(ret, _)| *ret != killed_inside())
            .collect();
        assert_eq!(returned.len(), 1, "{returned:?}");
        returned[0].clone()
    }

    #[test]
    fn increments_are_not_lost_and_the_lock_is_waited_for() {
        let v = RegisterSpec::new(Object::Value);
        let (one, after) = only(v.step(0, Call::ValueIncrement));
        assert_eq!(one, Ret::Int { value: 1 });
        assert_eq!(
            only(after.step(1, Call::ValueIncrement)).0,
            Ret::Int { value: 2 }
        );
        let acquire = Call::Acquire {
            obj: Object::Value,
            timeout_ms: None,
        };
        let (_, held) = only(v.step(0, acquire));
        assert!(held.step(1, Call::ValueGet).is_empty());
        assert_eq!(only(held.step(0, Call::ValueSet { value: 5 })).0, Ret::None);
        let release = Call::Release { obj: Object::Value };
        assert_eq!(
            only(v.step(1, release)).0,
            Ret::Raised {
                refusal: Refusal::VALUE_RELEASE_UNOWNED
            }
        );
    }

    #[test]
    fn a_holders_death_is_told_once_and_the_teller_holds_the_lock() {
        let a = RegisterSpec::new(Object::Array);
        let acquire = Call::Acquire {
            obj: Object::Array,
            timeout_ms: Some(5),
        };
        let (_, held) = only(a.step(0, acquire));
        let dead = held.die(0);
        let (told, after) = only(dead.step(1, Call::ArrayGet { index: 0 }));
        assert_eq!(
            told,
            Ret::Raised {
                refusal: Refusal::ARRAY_GETITEM_HOLDER_DIED
            }
        );
        assert_eq!(after.holder, Holder::Proc(1, 1));
        assert_eq!(
            only(after.step(1, Call::ArraySet { index: 2, value: 1 })).0,
            Ret::Raised {
                refusal: Refusal::ARRAY_SETITEM_OUT_OF_RANGE
            }
        );
        // A caller killed inside an access may leave the lock held, its write done or not.
        let inside: Vec<_> = a
            .step(0, Call::ArraySet { index: 1, value: 9 })
            .into_iter()
            .filter(|(ret, _)| *ret == killed_inside())
            .map(|(_, s)| s.die(0))
            .collect();
        assert_eq!(inside.len(), 2);
        assert!(inside.iter().all(|s| s.holder == Holder::Dead));
    }
}
