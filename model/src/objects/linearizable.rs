//! The linearizability judge: Wing and Gong's search for a sequential order of a concurrent
//! history that the sequential specification accepts, with Lowe's cache of visited
//! configurations, extended with callers killed mid-call.
//!
//! A history is linearizable when every call can be given a point between its invocation and
//! its return such that the calls, applied in the order of their points to the specification
//! ([`Spec`]), return what they returned. A call whose caller was killed before it returned
//! may have taken effect (at some point after its invocation and before the caller's death)
//! or not at all. A caller's death is itself a step, placed before the stamp by which it was
//! known dead, so a lock its holder dies with passes to the next acquirer as `OwnerDied`.
//! Why this judge and not stateright's `LinearizabilityTester`: decision 0012.

use std::collections::HashSet;
use std::fmt::Write as _;

use crate::objects::call::Ret;
use crate::objects::history::{Entry, Violation, last_stamp};
use crate::objects::spec::Spec;

/// The end of a caller that is part of the history.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Death {
    /// The caller.
    pub proc: usize,
    /// Killed: a stamp taken after it was reaped; `None`: it ended normally, at some point
    /// after its last call.
    pub by: Option<u64>,
    /// Killed after its last call had returned: it may have ended normally (dropping its
    /// handles) before the signal came, or been killed.
    pub maybe_exited: bool,
}

/// Most steps (calls and deaths) of one object's history the judge takes.
pub const MAX_STEPS: usize = 128;

#[derive(Debug, Clone, Copy)]
struct Item {
    /// Index in the entries, or `None` for a death.
    entry: Option<usize>,
    /// For a death: whether it was a kill.
    killed: bool,
    /// For a kill: whether the process may have ended normally first.
    maybe_exited: bool,
    proc: usize,
    invoked: u64,
    /// `None`: never returned (a killed caller's call, optional).
    returned: Option<u64>,
}

/// Judges one object's `entries` (indices refer to `all`) against `init`.
///
/// Returns the order of the linearization found (indices into `all`; deaths are left out).
///
/// # Errors
///
/// A [`Violation`] naming the longest linearizable prefix the search found and why no call
/// can come next, or saying the history is longer than [`MAX_STEPS`].
pub fn judge<S: Spec>(
    init: &S,
    all: &[Entry],
    entries: &[usize],
    deaths: &[Death],
) -> Result<Vec<usize>, Violation> {
    linearize(init, all, entries, deaths).map(|order| order.into_iter().map(|(i, _)| i).collect())
}

/// As [`judge`], with what the model returned for each call of the linearization found:
/// for a refused call, its row of the refusal table in the model's state at that point
/// (so that two rows a real run names alike, `lock.release.unheld` and
/// `lock.release.held_by_other`, are told apart).
///
/// # Errors
///
/// As [`judge`].
pub fn linearize<S: Spec>(
    init: &S,
    all: &[Entry],
    entries: &[usize],
    deaths: &[Death],
) -> Result<Vec<(usize, Option<Ret>)>, Violation> {
    let mut items: Vec<Item> = entries
        .iter()
        .map(|&i| Item {
            entry: Some(i),
            killed: false,
            maybe_exited: false,
            proc: all[i].proc,
            invoked: all[i].invoked,
            returned: all[i].returned,
        })
        .collect();
    for d in deaths {
        // Dead after its last stamp: after its last call returned, too (a call is ordered
        // before an item whose invocation stamp is above its return stamp).
        let last = last_stamp(all, d.proc);
        items.push(Item {
            entry: None,
            killed: d.by.is_some(),
            maybe_exited: d.maybe_exited,
            proc: d.proc,
            invoked: last + 1,
            returned: Some(d.by.unwrap_or(u64::MAX)),
        });
    }
    if items.len() > MAX_STEPS {
        return Err(Violation {
            rule: "history too long to judge",
            entries: Vec::new(),
            explanation: format!(
                "{} steps on one object; the judge takes at most {MAX_STEPS}",
                items.len()
            ),
        });
    }
    let required: u128 = items
        .iter()
        .enumerate()
        .filter(|(_, it)| it.returned.is_some())
        .fold(0, |acc, (k, _)| acc | 1 << k);
    let mut search = Search {
        items: &items,
        all,
        required,
        seen: HashSet::new(),
        order: Vec::new(),
        rets: Vec::new(),
        best: Vec::new(),
        best_state: init.clone(),
    };
    if search.dfs(init.clone(), 0) {
        return Ok(search
            .order
            .iter()
            .zip(search.rets)
            .filter_map(|(&k, ret)| items[k].entry.map(|i| (i, ret)))
            .collect());
    }
    Err(search.explain())
}

struct Search<'a, S: Spec> {
    items: &'a [Item],
    all: &'a [Entry],
    required: u128,
    seen: HashSet<(u128, S)>,
    order: Vec<usize>,
    /// What the model returned for each item of `order` (`None` for a death).
    rets: Vec<Option<Ret>>,
    best: Vec<usize>,
    best_state: S,
}

impl<S: Spec> Search<'_, S> {
    /// Whether item `k` may be placed next when `done` are placed.
    fn ready(&self, k: usize, done: u128) -> bool {
        let it = self.items[k];
        if done & 1 << k != 0 {
            return false;
        }
        // Every required item that surely ended before this began must be placed already.
        let blocked =
            self.items.iter().enumerate().any(|(j, other)| {
                done & 1 << j == 0 && other.returned.is_some_and(|r| r < it.invoked)
            });
        if blocked {
            return false;
        }
        // A killed caller's call takes effect before its death, if at all.
        if it.entry.is_some() && it.returned.is_none() {
            let dead = self
                .items
                .iter()
                .enumerate()
                .any(|(j, d)| d.entry.is_none() && d.proc == it.proc && done & 1 << j != 0);
            if dead {
                return false;
            }
        }
        true
    }

    /// The states after placing item `k` in `state`, with what the model returned there.
    fn apply(&self, k: usize, state: &S) -> Vec<(Option<Ret>, S)> {
        let it = self.items[k];
        match it.entry {
            None if it.killed && it.maybe_exited => {
                vec![(None, state.die(it.proc)), (None, state.exit(it.proc))]
            }
            None if it.killed => vec![(None, state.die(it.proc))],
            None => vec![(None, state.exit(it.proc))],
            Some(i) => {
                let entry = &self.all[i];
                state
                    .step(entry.proc, entry.call)
                    .into_iter()
                    .filter(|(ret, _)| {
                        entry
                            .ret
                            .as_ref()
                            .is_none_or(|observed| observed.agrees(ret))
                    })
                    .map(|(ret, next)| (Some(ret), next))
                    .collect()
            }
        }
    }

    fn dfs(&mut self, state: S, done: u128) -> bool {
        if done & self.required == self.required {
            return true;
        }
        if !self.seen.insert((done, state.clone())) {
            return false;
        }
        if self.order.len() > self.best.len() {
            self.best = self.order.clone();
            self.best_state = state.clone();
        }
        for k in 0..self.items.len() {
            if !self.ready(k, done) {
                continue;
            }
            for (ret, next) in self.apply(k, &state) {
                self.order.push(k);
                self.rets.push(ret);
                if self.dfs(next, done | 1 << k) {
                    return true;
                }
                self.order.pop();
                self.rets.pop();
            }
        }
        false
    }

    fn explain(&self) -> Violation {
        let mut done = 0u128;
        let mut text = String::from("the longest order the model accepts is:");
        if self.best.is_empty() {
            text.push_str(" (none)");
        }
        for &k in &self.best {
            done |= 1 << k;
            match self.items[k].entry {
                Some(i) => {
                    let _ = write!(text, " #{i}");
                }
                None => {
                    let how = if self.items[k].killed {
                        "is killed"
                    } else {
                        "ends"
                    };
                    let _ = write!(text, " (p{} {how})", self.items[k].proc);
                }
            }
        }
        let _ = write!(
            text,
            "; there the object is {}, and",
            self.best_state.label()
        );
        let mut culprits = Vec::new();
        for k in 0..self.items.len() {
            if !self.ready(k, done) {
                continue;
            }
            let Some(i) = self.items[k].entry else {
                continue;
            };
            let entry = &self.all[i];
            if entry.ret.is_none() {
                continue;
            }
            culprits.push(i);
            let allowed: Vec<String> = self
                .best_state
                .step(entry.proc, entry.call)
                .into_iter()
                // What only a killed caller's call may do (`register::killed_inside`) is no
                // result of a call that returned.
                .filter(|(ret, _)| !matches!(ret, Ret::Other { .. }))
                .map(|(ret, _)| match ret {
                    // The row, so that the explanation says which refusal it means.
                    Ret::Raised { refusal } => format!("{refusal} (row {})", refusal.id()),
                    other => other.to_string(),
                })
                .collect();
            let observed = entry
                .ret
                .as_ref()
                .map_or(String::new(), ToString::to_string);
            if allowed.is_empty() {
                let _ = write!(
                    text,
                    " #{i} {} by p{} returned {observed}, where the model says it must wait;",
                    entry.call, entry.proc
                );
            } else {
                let _ = write!(
                    text,
                    " #{i} {} by p{} returned {observed}, where the model says {};",
                    entry.call,
                    entry.proc,
                    allowed.join(" or ")
                );
            }
        }
        if culprits.is_empty() {
            text.push_str(" no call can come next;");
        }
        text.push_str(" no other order explains the history either");
        Violation {
            rule: "not linearizable",
            entries: culprits,
            explanation: text,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::objects::spec::{LockSpec, QueueSpec};
    use crate::objects::{Call, Object, Refusal};

    fn e(proc: usize, call: Call, invoked: u64, returned: Option<u64>, ret: Option<Ret>) -> Entry {
        Entry {
            proc,
            call,
            invoked,
            returned,
            ret,
        }
    }

    const ACQ: Call = Call::Acquire {
        obj: Object::Lock,
        timeout_ms: Some(10),
    };
    const REL: Call = Call::Release { obj: Object::Lock };
    const T: Option<Ret> = Some(Ret::Bool { value: true });

    #[test]
    fn overlapping_acquires_need_a_release_between() {
        let lock = LockSpec::new(false);
        // Both acquired, nobody released: not linearizable.
        let h = vec![e(0, ACQ, 1, Some(3), T), e(1, ACQ, 2, Some(4), T)];
        assert!(judge(&lock, &h, &[0, 1], &[]).is_err());
        // With p0's release overlapping p1's acquire, it is.
        let h = vec![
            e(0, ACQ, 1, Some(2), T),
            e(1, ACQ, 3, Some(6), T),
            e(0, REL, 4, Some(5), Some(Ret::None)),
        ];
        assert_eq!(judge(&lock, &h, &[0, 1, 2], &[]), Ok(vec![0, 2, 1]));
    }

    #[test]
    fn a_dead_holder_is_reported_to_the_next_acquirer() {
        let lock = LockSpec::new(false);
        let died = Some(Ret::Raised {
            refusal: Refusal::LOCK_ACQUIRE_HOLDER_DIED,
        });
        let h = vec![
            e(0, ACQ, 1, Some(2), T),
            e(1, ACQ, 5, Some(6), died.clone()),
        ];
        assert!(
            judge(
                &lock,
                &h,
                &[0, 1],
                &[Death {
                    proc: 0,
                    by: Some(4),
                    maybe_exited: false
                }]
            )
            .is_ok()
        );
        // Without the death, OwnerDied has no explanation.
        assert!(judge(&lock, &h, &[0, 1], &[]).is_err());
        // A killed caller's acquire may have taken effect: the later acquirer is told.
        let h = vec![e(0, ACQ, 1, None, None), e(1, ACQ, 5, Some(6), died)];
        assert!(
            judge(
                &lock,
                &h,
                &[0, 1],
                &[Death {
                    proc: 0,
                    by: Some(4),
                    maybe_exited: false
                }]
            )
            .is_ok()
        );
    }

    #[test]
    fn a_refusal_must_be_named_as_its_row_says() {
        let lock = LockSpec::new(false);
        let refused = |kind: &str, message: &str| {
            Some(Ret::Refused {
                error: "NotOwner".to_owned(),
                named: Some((kind.to_owned(), message.to_owned())),
            })
        };
        let right = vec![e(
            0,
            REL,
            1,
            Some(2),
            refused("ValueError", "semaphore or lock released too many times"),
        )];
        assert_eq!(judge(&lock, &right, &[0], &[]), Ok(vec![0]));
        // `threading.Lock`'s name, not `multiprocessing.Lock`'s.
        let wrong = vec![e(
            0,
            REL,
            1,
            Some(2),
            refused("RuntimeError", "cannot release un-acquired lock"),
        )];
        let verdict = judge(&lock, &wrong, &[0], &[]).map_err(|v| v.explanation);
        assert!(
            verdict
                .as_ref()
                .is_err_and(|text| text.contains("row lock.release.unheld")),
            "{verdict:?}"
        );
    }

    #[test]
    fn a_refusal_gets_the_row_of_the_models_state() {
        let lock = LockSpec::new(false);
        let refused = Some(Ret::Refused {
            error: "NotOwner".to_owned(),
            named: Some((
                "ValueError".to_owned(),
                "semaphore or lock released too many times".to_owned(),
            )),
        });
        let row = |h: &[Entry]| {
            linearize(&lock, h, &[0, 1], &[])
                .ok()
                .and_then(|order| order.into_iter().find(|(i, _)| *i == 1))
                .and_then(|(_, ret)| ret)
        };
        // The same observed refusal: another process holds the lock, or nobody does.
        let held = vec![
            e(0, ACQ, 1, Some(2), T),
            e(1, REL, 3, Some(4), refused.clone()),
        ];
        assert_eq!(
            row(&held),
            Some(Ret::Raised {
                refusal: Refusal::LOCK_RELEASE_HELD_BY_OTHER
            })
        );
        let alone = vec![e(1, REL, 3, Some(4), refused)];
        assert_eq!(
            linearize(&lock, &alone, &[0], &[]).map(|order| order[0].1.clone()),
            Ok(Some(Ret::Raised {
                refusal: Refusal::LOCK_RELEASE_UNHELD
            }))
        );
    }

    #[test]
    fn a_queue_never_shows_an_item_twice() {
        let q = QueueSpec::new(Object::Queue, 0);
        let put = Call::Put {
            obj: Object::Queue,
            item: 1,
            timeout_ms: None,
        };
        let get = Call::Get {
            obj: Object::Queue,
            timeout_ms: Some(5),
        };
        let one = Some(Ret::Int { value: 1 });
        let h = vec![
            e(0, put, 1, Some(2), Some(Ret::None)),
            e(1, get, 3, Some(4), one.clone()),
            e(1, get, 5, Some(6), one),
        ];
        let v = judge(&q, &h, &[0, 1, 2], &[]);
        assert_eq!(v.map_err(|v| v.entries), Err(vec![2]));
    }
}
