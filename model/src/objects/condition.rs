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
//! - Killed processes: a holder of the lock killed holding it makes the next `acquire`, or
//!   the re-acquire that ends a `wait`, report `OwnerDied` (rows
//!   `condition.acquire.holder_died`, `condition.wait.holder_died`), and only after a death;
//!   a killed waiter's wait may have taken a wake-up or not, and one granted to it but never
//!   taken may go to a wait that began after the notification (the runtime's ledger pools
//!   the wake-ups granted to waiters registered before a notification, and a later
//!   notification makes the newer waiters eligible too): so, when a wait killed while it
//!   waited overlaps a notification, that notification's wake-ups may also go to a wait that
//!   overlaps any later notification. A wait that reported `OwnerDied` may have been woken.
//!
//! What is not judged: that a notification wakes *enough* waits (a waiter whose timeout
//! expired just as it was notified may return `False`, and the stamps carry no clock to tell),
//! and which waiter wakes (CPython promises no order; neither does proclife).

use crate::objects::Object;
use crate::objects::call::{Call, Ret};
use crate::objects::history::{History, Violation, last_stamp};
use crate::objects::linearizable::Death;
use crate::objects::refusal::Refusal;

/// How many wake-ups a notification gives: `n`, or every wait for `notify_all`.
fn capacity(call: Call, waits: usize) -> usize {
    match call {
        Call::Notify { n } => usize::try_from(n).unwrap_or(usize::MAX).min(waits),
        Call::NotifyAll => waits,
        _ => 0,
    }
}

/// The rows of the refusal table a `Condition` call may be refused with.
fn rows(call: Call) -> &'static [Refusal] {
    match call {
        Call::Notify { .. } => &[Refusal::CONDITION_NOTIFY_UNOWNED],
        Call::NotifyAll => &[Refusal::CONDITION_NOTIFY_ALL_UNOWNED],
        Call::CondWait { .. } => &[
            Refusal::CONDITION_WAIT_UNOWNED,
            Refusal::CONDITION_WAIT_HOLDER_DIED,
        ],
        Call::Release { .. } => &[Refusal::CONDITION_RELEASE_UNOWNED],
        Call::Acquire { .. } => &[Refusal::CONDITION_ACQUIRE_HOLDER_DIED],
        _ => &[],
    }
}

/// The row of the refusal table a `Condition` call that returned `observed` was refused
/// with: its rows name distinct `Error` variants, so the result tells them apart. `None`
/// when `observed` is no refusal of the call's rows.
pub fn row(call: Call, observed: &Ret) -> Option<Refusal> {
    rows(call)
        .iter()
        .copied()
        .find(|&row| observed.agrees(&Ret::Raised { refusal: row }))
}

/// Judges the `Condition` calls of `history` against the interval specification; `deaths`
/// are the ends of its processes (a kill's `by` is a stamp taken after it was reaped).
///
/// # Errors
///
/// The first [`Violation`] found: a refusal named otherwise than its row or without its
/// cause, a wait that returned `False` without a timeout, or the waits that returned `True`
/// with no notification left that could have woken them.
pub fn judge(history: &History, deaths: &[Death]) -> Result<(), Violation> {
    let calls: Vec<(usize, &crate::objects::Entry)> = history.on(Object::Condition).collect();
    for &(i, e) in &calls {
        let Some(observed @ (Ret::Raised { .. } | Ret::Refused { .. })) = &e.ret else {
            continue;
        };
        let rows = rows(e.call);
        let Some(row) = row(e.call, observed) else {
            let named: Vec<String> = rows
                .iter()
                .map(|row| format!("{} (row {})", Ret::Raised { refusal: *row }, row.id()))
                .collect();
            return Err(Violation {
                rule: "a refusal named otherwise than its row",
                entries: vec![i],
                explanation: format!(
                    "#{i} {} {observed}, where the refusal table says it {}",
                    e.call,
                    if named.is_empty() {
                        "never refuses".to_owned()
                    } else {
                        named.join(" or ")
                    }
                ),
            });
        };
        // A killed process died after its last stamp: before `returned` if that came after.
        let died = |returned: Option<u64>| {
            deaths.iter().filter(|d| d.by.is_some()).any(|d| {
                let last = last_stamp(&history.entries, d.proc);
                returned.is_none_or(|r| last < r)
            })
        };
        let holder_died = [
            Refusal::CONDITION_ACQUIRE_HOLDER_DIED,
            Refusal::CONDITION_WAIT_HOLDER_DIED,
        ];
        if holder_died.contains(&row) && !died(e.returned) {
            return Err(Violation {
                rule: "a holder died that nobody killed",
                entries: vec![i],
                explanation: format!(
                    "#{i} {} {observed} (row {}), but no process was killed before it returned",
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
    // A notification that raised gave no wake-up.
    let gives = |e: &crate::objects::Entry| {
        if matches!(
            e.ret,
            Some(Ret::Raised { .. } | Ret::Refused { .. } | Ret::Other { .. })
        ) {
            0
        } else {
            capacity(e.call, waits)
        }
    };
    // One slot per wake-up a notification can give.
    let mut slots: Vec<usize> = Vec::new();
    for &(i, e) in &calls {
        slots.extend(std::iter::repeat_n(i, gives(e)));
    }
    let entries = &history.entries;
    let notifies: Vec<usize> = calls
        .iter()
        .filter(|(_, e)| matches!(e.call, Call::Notify { .. } | Call::NotifyAll))
        .map(|&(i, _)| i)
        .collect();
    // Waits killed while they waited: a wake-up granted to one may go to a later waiter.
    let killed: Vec<usize> = calls
        .iter()
        .filter(|(_, e)| matches!(e.call, Call::CondWait { .. }) && e.ret.is_none())
        .map(|&(i, _)| i)
        .collect();
    let can_wake = |wait: usize, slot: usize| {
        let (n, w) = (&entries[slots[slot]], &entries[wait]);
        if n.overlaps(w) {
            return true;
        }
        let leaks = killed.iter().any(|&k| entries[k].overlaps(n));
        leaks
            && w.returned.is_none_or(|r| r > n.invoked)
            && notifies
                .iter()
                .any(|&later| entries[later].invoked >= n.invoked && entries[later].overlaps(w))
    };
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
        .map(|&(i, e)| format!("#{i} {} gives {} wake-up(s)", e.call, gives(e)))
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
        assert_eq!(judge(&all_false, &[]), Ok(()));
        let all_true = History::new(vec![
            wait(0, 1, 20, true),
            wait(1, 2, 21, true),
            wait(2, 3, 22, true),
            notify(0),
        ]);
        let violation = judge(&all_true, &[]).err();
        assert_eq!(violation.map(|v| v.entries.len()), Some(3));
        let one_of_two = History::new(vec![wait(0, 1, 20, true), wait(1, 2, 21, true), notify(1)]);
        assert_eq!(judge(&one_of_two, &[]).map_err(|v| v.entries.len()), Err(1));
    }

    #[test]
    fn a_notification_wakes_only_waits_it_overlaps() {
        let history = History::new(vec![
            entry(1, Call::Notify { n: 1 }, 1, 2, Ret::None),
            wait(0, 3, 9, true),
        ]);
        assert!(judge(&history, &[]).is_err());
        // Matching must re-assign: w1 can only use the second notification's slot.
        let history = History::new(vec![
            wait(0, 1, 30, true),
            entry(2, Call::Notify { n: 1 }, 5, 6, Ret::None),
            wait(1, 7, 20, true),
            entry(2, Call::Notify { n: 1 }, 10, 11, Ret::None),
        ]);
        assert_eq!(judge(&history, &[]), Ok(()));
    }

    #[test]
    fn a_refused_notify_is_named_as_its_row_says() {
        let refused = |kind: &str, message: &str| Ret::Refused {
            error: "NotOwner".to_owned(),
            named: Some((kind.to_owned(), message.to_owned())),
        };
        let notify = |ret| History::new(vec![entry(0, Call::Notify { n: 1 }, 1, 2, ret)]);
        assert_eq!(
            judge(&notify(refused("AssertionError", "lock is not owned")), &[]),
            Ok(())
        );
        let wrong = judge(
            &notify(refused("RuntimeError", "cannot notify on un-acquired lock")),
            &[],
        );
        assert_eq!(
            wrong.map_err(|v| v.rule),
            Err("a refusal named otherwise than its row")
        );
    }

    #[test]
    fn a_killed_waiters_wake_up_may_go_to_a_later_wait() {
        let killed = Entry {
            proc: 0,
            call: Call::CondWait {
                timeout_ms: Some(3000),
            },
            invoked: 1,
            returned: None,
            ret: None,
        };
        // p1's wait began after the notify(1) ended, and overlaps only a notify(0).
        let history = History::new(vec![
            killed.clone(),
            entry(2, Call::Notify { n: 1 }, 2, 3, Ret::None),
            wait(1, 5, 20, true),
            entry(2, Call::Notify { n: 0 }, 10, 11, Ret::None),
        ]);
        let p0 = [Death {
            proc: 0,
            by: Some(4),
            maybe_exited: false,
        }];
        assert_eq!(judge(&history, &p0), Ok(()));
        // Without the killed waiter, that wake-up has no explanation.
        let mut alone = history.clone();
        alone.entries.retain(|e| e != &killed);
        assert!(judge(&alone, &[]).is_err());
        // OwnerDied needs a death before it.
        let died = Ret::Refused {
            error: "OwnerDied".to_owned(),
            named: None,
        };
        let acquire = Call::Acquire {
            obj: Object::Condition,
            timeout_ms: None,
        };
        let history = History::new(vec![killed.clone(), entry(1, acquire, 5, 6, died)]);
        assert_eq!(judge(&history, &p0), Ok(()));
        assert_eq!(
            judge(&history, &[]).map_err(|v| v.rule),
            Err("a holder died that nobody killed")
        );
        // Nor a death after it: p0's last stamp is 7, after the refusal returned.
        let late = History::new(vec![
            entry(0, Call::NotifyAll, 6, 7, Ret::None),
            entry(
                1,
                acquire,
                2,
                5,
                Ret::Refused {
                    error: "OwnerDied".to_owned(),
                    named: None,
                },
            ),
        ]);
        assert!(judge(&late, &p0).is_err());
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
        assert!(judge(&history, &[]).is_err());
    }
}
