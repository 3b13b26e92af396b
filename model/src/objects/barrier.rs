//! `Barrier`'s interval specification.
//!
//! A barrier's `wait` returns for all parties of a generation together, so it is judged over
//! whole intervals (CPython's `threading.Barrier`, which `multiprocessing.Barrier` shares):
//!
//! - The waits that returned an index can be split into generations of `parties` waits
//!   that were all in progress at one moment and got the distinct indices `0..parties`
//!   ([`judge`] searches for such a split).
//! - A wait raises `BrokenBarrierError` only for a cause: a wait with a timeout that may
//!   have expired, or a party's death, before it returned. Once broken (nothing here resets
//!   it), no later wait succeeds.
//!
//! What is not judged: which party gets which index (CPython numbers by arrival; the stamps
//! do not order arrivals inside a generation), and that a wait breaks as soon as it could.

use crate::objects::Object;
use crate::objects::call::{Call, Ret};
use crate::objects::history::{History, Violation};
use crate::objects::refusal::Refusal;

/// Judges the `Barrier` calls of `history`, a barrier of `parties`; `deaths` are the
/// stamps by which each killed process was dead.
///
/// # Errors
///
/// The first [`Violation`] found.
pub fn judge(history: &History, parties: usize, deaths: &[u64]) -> Result<(), Violation> {
    let waits: Vec<(usize, &crate::objects::Entry)> = history
        .on(Object::Barrier)
        .filter(|(_, e)| matches!(e.call, Call::BarrierWait { .. }))
        .collect();
    let passed: Vec<(usize, &crate::objects::Entry)> = waits
        .iter()
        .copied()
        .filter(|(_, e)| matches!(e.ret, Some(Ret::Int { .. })))
        .collect();
    // Every way a barrier breaks is named alike (the rows `barrier.wait.*`); which one it
    // was, the judge does not say.
    let broken = Ret::Raised {
        refusal: Refusal::BARRIER_WAIT_TIMEOUT,
    };
    let is_broken = |ret: &Ret| ret.agrees(&broken);
    // A killed party's wait may have passed too, with an index nobody saw.
    let pending: Vec<(usize, &crate::objects::Entry)> = waits
        .iter()
        .copied()
        .filter(|(_, e)| e.ret.is_none())
        .collect();
    generations(&passed, &pending, parties)?;
    // Breaks need a cause, and are final.
    for &(i, e) in &waits {
        let Some(returned) = e.returned else { continue };
        if e.ret.as_ref().is_some_and(is_broken) {
            let timed = waits.iter().any(|(_, w)| {
                matches!(
                    w.call,
                    Call::BarrierWait {
                        timeout_ms: Some(_)
                    }
                ) && w.invoked < returned
                    && w.ret.as_ref().is_none_or(is_broken)
            });
            let died = deaths.iter().any(|&d| d < returned)
                || waits
                    .iter()
                    .any(|(_, w)| w.returned.is_none() && w.invoked < returned);
            if !timed && !died {
                return Err(Violation {
                    rule: "the barrier broke without cause",
                    explanation: format!(
                        "#{i} raised BrokenBarrierError, but no wait with a timeout and no death came before it"
                    ),
                    entries: vec![i],
                });
            }
            if let Some(&(j, _)) = passed.iter().find(|(_, w)| w.invoked > returned) {
                return Err(Violation {
                    rule: "the barrier passed after it broke",
                    explanation: format!(
                        "#{i} found the barrier broken, and #{j}, invoked after that, passed without a reset"
                    ),
                    entries: vec![i, j],
                });
            }
        }
    }
    Ok(())
}

/// The row of each broken wait of `history` (the rows `barrier.wait.*` name the same
/// exception, so the result alone does not tell them apart), where the history settles it;
/// indices into `history.entries`. A broken wait that returned at `r` is:
///
/// - `barrier.wait.party_died` when a killed party's wait was in progress before `r` and no
///   wait with a timeout was invoked before `r` (only the death can have broken it);
/// - otherwise, when no killed party's wait was in progress before `r` (only a timeout can
///   have broken it): `barrier.wait.after_timeout` when a wait that found it broken ended
///   before this one began, or this wait had no timeout (another's timeout broke it);
///   `barrier.wait.timeout` when this wait had a timeout and was in progress when the
///   barrier broke.
///
/// A wait that a death and a timeout may both have broken gets no row.
pub fn rows(history: &History) -> Vec<(usize, Refusal)> {
    let broken = Ret::Raised {
        refusal: Refusal::BARRIER_WAIT_TIMEOUT,
    };
    let is_broken = |e: &crate::objects::Entry| e.ret.as_ref().is_some_and(|r| r.agrees(&broken));
    let waits: Vec<(usize, &crate::objects::Entry)> = history
        .on(Object::Barrier)
        .filter(|(_, e)| matches!(e.call, Call::BarrierWait { .. }))
        .collect();
    let timed = |e: &crate::objects::Entry| {
        matches!(
            e.call,
            Call::BarrierWait {
                timeout_ms: Some(_)
            }
        )
    };
    let mut out = Vec::new();
    for &(i, e) in &waits {
        let Some(returned) = e.returned.filter(|_| is_broken(e)) else {
            continue;
        };
        let killed = waits
            .iter()
            .any(|(_, w)| w.returned.is_none() && w.invoked < returned);
        let any_timed = waits.iter().any(|(_, w)| timed(w) && w.invoked < returned);
        let row = match (killed, any_timed) {
            (true, false) => Refusal::BARRIER_WAIT_PARTY_DIED,
            // Neither a killed party nor a timeout in progress: nothing in the history
            // says which row broke it (the judge accepts a death of a party not waiting).
            (true, true) | (false, false) => continue,
            (false, true) => {
                let after = waits.iter().any(|(_, w)| is_broken(w) && w.precedes(e));
                if after || !timed(e) {
                    Refusal::BARRIER_WAIT_AFTER_TIMEOUT
                } else {
                    Refusal::BARRIER_WAIT_TIMEOUT
                }
            }
        };
        out.push((i, row));
    }
    out
}

/// Splits the passed waits into generations: `parties` waits with distinct indices
/// `0..parties` that were all in progress at one moment.
fn generations(
    passed: &[(usize, &crate::objects::Entry)],
    pending: &[(usize, &crate::objects::Entry)],
    parties: usize,
) -> Result<(), Violation> {
    let ids: Vec<usize> = passed.iter().map(|&(i, _)| i).collect();
    let index = |e: &crate::objects::Entry| match e.ret {
        Some(Ret::Int { value }) => usize::try_from(value).ok(),
        _ => None,
    };
    if let Some(&(i, _)) = passed
        .iter()
        .find(|(_, e)| index(e).is_none_or(|k| k >= parties))
    {
        return Err(Violation {
            rule: "an index outside 0..parties",
            entries: vec![i],
            explanation: format!("#{i} returned an index outside 0..{parties}"),
        });
    }
    let required = passed.len();
    let members: Vec<(usize, &crate::objects::Entry)> =
        passed.iter().chain(pending.iter()).copied().collect();
    let mut used = vec![false; members.len()];
    let mut group = Vec::new();
    if split(&members, required, parties, &index, &mut used, &mut group) {
        return Ok(());
    }
    Err(Violation {
        rule: "the waits cannot form generations",
        entries: ids,
        explanation: format!(
            "the {} waits that passed cannot be split into generations of {parties} waits that \
             overlap in time and got the indices 0..{parties} once each (with {} killed \
             parties' waits that may have passed too)",
            passed.len(),
            pending.len()
        ),
    })
}

/// Backtracking: completes `group` (the generation being built, indices into `members`) and
/// then the remaining generations; the first `required` members must all be placed, the
/// others (killed parties' waits, whose index is unknown) may be.
fn split(
    passed: &[(usize, &crate::objects::Entry)],
    required: usize,
    parties: usize,
    index: &impl Fn(&crate::objects::Entry) -> Option<usize>,
    used: &mut [bool],
    group: &mut Vec<usize>,
) -> bool {
    if group.is_empty() {
        // A new generation starts with the first unused wait.
        let Some(first) = used[..required].iter().position(|u| !u) else {
            return true;
        };
        used[first] = true;
        group.push(first);
        let ok = split(passed, required, parties, index, used, group);
        group.pop();
        used[first] = false;
        return ok;
    }
    if group.len() == parties {
        let done = std::mem::take(group);
        let ok = split(passed, required, parties, index, used, group);
        *group = done;
        return ok;
    }
    for k in 0..passed.len() {
        if used[k] {
            continue;
        }
        let e = passed[k].1;
        let fits = group.iter().all(|&g| {
            let other = passed[g].1;
            let distinct = match (index(other), index(e)) {
                (Some(a), Some(b)) => a != b,
                _ => true,
            };
            distinct && other.overlaps(e) && other.proc != e.proc
        });
        if !fits {
            continue;
        }
        used[k] = true;
        group.push(k);
        let ok = split(passed, required, parties, index, used, group);
        group.pop();
        used[k] = false;
        if ok {
            return true;
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::objects::Entry;

    fn wait(proc: usize, invoked: u64, returned: u64, ret: Ret) -> Entry {
        Entry {
            proc,
            call: Call::BarrierWait { timeout_ms: None },
            invoked,
            returned: Some(returned),
            ret: Some(ret),
        }
    }

    #[test]
    fn generations_overlap_and_have_distinct_indices() {
        let ok = History::new(vec![
            wait(0, 1, 4, Ret::Int { value: 0 }),
            wait(1, 2, 3, Ret::Int { value: 1 }),
        ]);
        assert_eq!(judge(&ok, 2, &[]), Ok(()));
        let twice = History::new(vec![
            wait(0, 1, 4, Ret::Int { value: 1 }),
            wait(1, 2, 3, Ret::Int { value: 1 }),
        ]);
        assert!(judge(&twice, 2, &[]).is_err());
        let early = History::new(vec![
            wait(0, 1, 2, Ret::Int { value: 0 }),
            wait(1, 3, 4, Ret::Int { value: 1 }),
        ]);
        assert!(judge(&early, 2, &[]).is_err());
        // Invocation order is not arrival order: #0 pairs with #3, #1 with #2.
        let crossed = History::new(vec![
            wait(0, 1, 9, Ret::Int { value: 0 }),
            wait(1, 2, 4, Ret::Int { value: 0 }),
            wait(2, 3, 5, Ret::Int { value: 1 }),
            wait(3, 6, 8, Ret::Int { value: 1 }),
        ]);
        assert_eq!(judge(&crossed, 2, &[]), Ok(()));
        let broken = Ret::Raised {
            refusal: Refusal::BARRIER_WAIT_TIMEOUT,
        };
        let causeless = History::new(vec![wait(0, 1, 2, broken)]);
        assert!(judge(&causeless, 2, &[]).is_err());
        assert_eq!(judge(&causeless, 2, &[1]), Ok(()));
    }

    #[test]
    fn a_broken_wait_gets_the_row_the_history_settles() {
        let broken = Ret::Raised {
            refusal: Refusal::BARRIER_WAIT_TIMEOUT,
        };
        let timed = |proc, invoked, returned| Entry {
            call: Call::BarrierWait {
                timeout_ms: Some(10),
            },
            ..wait(proc, invoked, returned, broken.clone())
        };
        let killed = Entry {
            returned: None,
            ret: None,
            ..wait(1, 1, 0, Ret::None)
        };
        // Its own timeout, then broken for a later wait without one.
        let h = History::new(vec![timed(0, 1, 2), wait(0, 3, 4, broken.clone())]);
        assert_eq!(
            rows(&h),
            vec![
                (0, Refusal::BARRIER_WAIT_TIMEOUT),
                (1, Refusal::BARRIER_WAIT_AFTER_TIMEOUT)
            ]
        );
        // A killed party's wait and no timeout: the death.
        let h = History::new(vec![killed.clone(), wait(0, 2, 3, broken.clone())]);
        assert_eq!(rows(&h), vec![(1, Refusal::BARRIER_WAIT_PARTY_DIED)]);
        // A killed party and a timeout: either may have broken it, so no row.
        let h = History::new(vec![killed, timed(0, 2, 3)]);
        assert_eq!(rows(&h), Vec::new());
    }
}
