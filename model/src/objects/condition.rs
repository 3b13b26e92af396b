//! `Condition`'s interval specification.
//!
//! A condition's `wait` releases the lock, sleeps and re-acquires it, so it does not take
//! effect at one point; what CPython promises is about whole intervals
//! (`multiprocessing.synchronize.Condition`, `threading.Condition`):
//!
//! - `notify(n)` wakes at most `n` of the waits in progress when it runs, `notify_all()` all
//!   of them, and a wait is woken by at most one notification. So the waits that returned
//!   `True` can be given, each, a distinct wake-up of a notification whose interval
//!   overlaps theirs, no notification giving more than its `n` ([`judge`] finds such an
//!   assignment by bipartite matching, or reports the waits that cannot have one).
//! - A wait returns `False` only when its timeout passed: never for a wait without timeout.
//! - A refused call (`notify`, `notify_all`, `wait` or `release` without the lock) is named
//!   as its row of the refusal table says (`condition.notify.unowned`, ...); whether the
//!   caller held the lock then is not judged.
//!
//! What is not judged: that a notification wakes *enough* waits (a waiter whose timeout
//! expired just as it was notified may return `False`, and the stamps carry no clock to tell),
//! and which waiter wakes (CPython promises no order; neither does proclife).

use crate::objects::Object;
use crate::objects::call::{Call, Ret};
use crate::objects::history::{History, Violation};
use crate::objects::refusal::Refusal;

/// How many wake-ups a notification gives: `n`, or every wait for `notify_all`.
fn capacity(call: Call, waits: usize) -> usize {
    match call {
        Call::Notify { n } => usize::try_from(n).unwrap_or(usize::MAX).min(waits),
        Call::NotifyAll => waits,
        _ => 0,
    }
}

/// Judges the `Condition` calls of `history` against the interval specification.
///
/// # Errors
///
/// The first [`Violation`] found: a wait that returned `False` without a timeout, or the
/// waits that returned `True` with no notification left that could have woken them.
pub fn judge(history: &History) -> Result<(), Violation> {
    let calls: Vec<(usize, &crate::objects::Entry)> = history.on(Object::Condition).collect();
    for &(i, e) in &calls {
        let Some(observed @ (Ret::Raised { .. } | Ret::Refused { .. })) = &e.ret else {
            continue;
        };
        let row = match e.call {
            Call::Notify { .. } => Refusal::CONDITION_NOTIFY_UNOWNED,
            Call::NotifyAll => Refusal::CONDITION_NOTIFY_ALL_UNOWNED,
            Call::CondWait { .. } => Refusal::CONDITION_WAIT_UNOWNED,
            Call::Release { .. } => Refusal::CONDITION_RELEASE_UNOWNED,
            // `acquire` of the condition's lock never refuses (but for a dead holder, which
            // the programs with a condition do not kill).
            _ => {
                return Err(Violation {
                    rule: "a refusal the model does not have",
                    entries: vec![i],
                    explanation: format!("#{i} {} {observed}", e.call),
                });
            }
        };
        let model = Ret::Raised { refusal: row };
        if !observed.agrees(&model) {
            return Err(Violation {
                rule: "a refusal named otherwise than its row",
                entries: vec![i],
                explanation: format!(
                    "#{i} {} {observed}, where the refusal table (row {}) says it {model}",
                    e.call,
                    row.id()
                ),
            });
        }
    }
    for &(i, e) in &calls {
        if let (Call::CondWait { timeout_ms: None }, Some(Ret::Bool { value: false })) =
            (e.call, &e.ret)
        {
            return Err(Violation {
                rule: "a wait without timeout returned False",
                entries: vec![i],
                explanation: format!(
                    "#{i} waited without a timeout, so only a notification could end it, \
                     and then it returns True"
                ),
            });
        }
    }
    let woken: Vec<usize> = calls
        .iter()
        .filter(|(_, e)| {
            matches!(e.call, Call::CondWait { .. }) && e.ret == Some(Ret::Bool { value: true })
        })
        .map(|&(i, _)| i)
        .collect();
    let waits = calls
        .iter()
        .filter(|(_, e)| matches!(e.call, Call::CondWait { .. }))
        .count();
    // One slot per wake-up a notification can give.
    let mut slots: Vec<usize> = Vec::new();
    for &(i, e) in &calls {
        // A notification that raised gave no wake-up.
        if matches!(
            e.ret,
            Some(Ret::Raised { .. } | Ret::Refused { .. } | Ret::Other { .. })
        ) {
            continue;
        }
        slots.extend(std::iter::repeat_n(i, capacity(e.call, waits)));
    }
    let can_wake =
        |wait: usize, slot: usize| history.entries[slots[slot]].overlaps(&history.entries[wait]);
    // Kuhn's augmenting paths: `owner[slot]` is the wait given that wake-up.
    let mut owner: Vec<Option<usize>> = vec![None; slots.len()];
    let mut unmatched = Vec::new();
    for &w in &woken {
        let mut seen = vec![false; slots.len()];
        if !augment(w, &can_wake, &mut owner, &mut seen) {
            unmatched.push(w);
        }
    }
    if unmatched.is_empty() {
        return Ok(());
    }
    let mut explanation = format!(
        "{} of the {} waits that returned True cannot have been woken: ",
        unmatched.len(),
        woken.len()
    );
    let notifications: Vec<String> = calls
        .iter()
        .filter(|(_, e)| matches!(e.call, Call::Notify { .. } | Call::NotifyAll))
        .map(|&(i, e)| {
            format!(
                "#{i} {} gives {} wake-up(s)",
                e.call,
                capacity(e.call, waits)
            )
        })
        .collect();
    if notifications.is_empty() {
        explanation.push_str("there was no notification at all");
    } else {
        explanation.push_str(&notifications.join(", "));
        explanation.push_str(&format!(
            ", but {} waits overlapping them returned True (waits {})",
            woken.len(),
            woken
                .iter()
                .map(|w| format!("#{w}"))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    explanation.push_str("; CPython's notify(n) wakes at most n waiters, and a wait that was not woken returns False when its timeout passes");
    Err(Violation {
        rule: "more waits woken than notified",
        entries: unmatched,
        explanation,
    })
}

fn augment(
    wait: usize,
    can_wake: &impl Fn(usize, usize) -> bool,
    owner: &mut [Option<usize>],
    seen: &mut [bool],
) -> bool {
    for slot in 0..owner.len() {
        if seen[slot] || !can_wake(wait, slot) {
            continue;
        }
        seen[slot] = true;
        let free = match owner[slot] {
            None => true,
            Some(other) => augment(other, can_wake, owner, seen),
        };
        if free {
            owner[slot] = Some(wait);
            return true;
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::objects::Entry;

    fn entry(proc: usize, call: Call, invoked: u64, returned: u64, ret: Ret) -> Entry {
        Entry {
            proc,
            call,
            invoked,
            returned: Some(returned),
            ret: Some(ret),
        }
    }

    fn wait(proc: usize, invoked: u64, returned: u64, value: bool) -> Entry {
        entry(
            proc,
            Call::CondWait {
                timeout_ms: Some(3000),
            },
            invoked,
            returned,
            Ret::Bool { value },
        )
    }

    #[test]
    fn notify_zero_wakes_nobody() {
        let notify = |n| entry(3, Call::Notify { n }, 10, 11, Ret::None);
        let all_false = History::new(vec![
            wait(0, 1, 20, false),
            wait(1, 2, 21, false),
            wait(2, 3, 22, false),
            notify(0),
        ]);
        assert_eq!(judge(&all_false), Ok(()));
        let all_true = History::new(vec![
            wait(0, 1, 20, true),
            wait(1, 2, 21, true),
            wait(2, 3, 22, true),
            notify(0),
        ]);
        let violation = judge(&all_true).err();
        assert_eq!(violation.map(|v| v.entries.len()), Some(3));
        let one_of_two = History::new(vec![wait(0, 1, 20, true), wait(1, 2, 21, true), notify(1)]);
        assert_eq!(judge(&one_of_two).map_err(|v| v.entries.len()), Err(1));
    }

    #[test]
    fn a_notification_wakes_only_waits_it_overlaps() {
        let history = History::new(vec![
            entry(1, Call::Notify { n: 1 }, 1, 2, Ret::None),
            wait(0, 3, 9, true),
        ]);
        assert!(judge(&history).is_err());
        // Matching must re-assign: w1 can only use the second notification's slot.
        let history = History::new(vec![
            wait(0, 1, 30, true),
            entry(2, Call::Notify { n: 1 }, 5, 6, Ret::None),
            wait(1, 7, 20, true),
            entry(2, Call::Notify { n: 1 }, 10, 11, Ret::None),
        ]);
        assert_eq!(judge(&history), Ok(()));
    }

    #[test]
    fn a_refused_notify_is_named_as_its_row_says() {
        let refused = |kind: &str, message: &str| Ret::Refused {
            error: "NotOwner".to_owned(),
            named: Some((kind.to_owned(), message.to_owned())),
        };
        let notify = |ret| History::new(vec![entry(0, Call::Notify { n: 1 }, 1, 2, ret)]);
        assert_eq!(
            judge(&notify(refused("AssertionError", "lock is not owned"))),
            Ok(())
        );
        let wrong = judge(&notify(refused(
            "RuntimeError",
            "cannot notify on un-acquired lock",
        )));
        assert_eq!(
            wrong.map_err(|v| v.rule),
            Err("a refusal named otherwise than its row")
        );
    }

    #[test]
    fn an_untimed_wait_never_returns_false() {
        let history = History::new(vec![entry(
            0,
            Call::CondWait { timeout_ms: None },
            1,
            2,
            Ret::Bool { value: false },
        )]);
        assert!(judge(&history).is_err());
    }
}
