//! `Barrier`'s interval specification.
//!
//! A barrier's `wait` returns for all parties of a generation together, so it is judged over
//! whole intervals (CPython's `threading.Barrier`, which `multiprocessing.Barrier` shares):
//!
//! - The waits that returned an index form generations of `parties` waits, in order of
//!   invocation (every party of a generation arrives before the generation trips, and every
//!   party of the next arrives after it); the waits of one generation were all in progress
//!   at one moment, and got the distinct indices `0..parties`.
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
    let broken_ret = Some(Ret::Raised {
        refusal: Refusal::BrokenBarrier,
    });
    for (g, generation) in passed.chunks(parties).enumerate() {
        let ids: Vec<usize> = generation.iter().map(|&(i, _)| i).collect();
        if generation.len() < parties {
            return Err(Violation {
                rule: "a generation passed with too few parties",
                explanation: format!(
                    "generation {g} is {} waits that returned an index, but the barrier has {parties} parties",
                    generation.len()
                ),
                entries: ids,
            });
        }
        let mut indices: Vec<i64> = generation
            .iter()
            .filter_map(|(_, e)| match e.ret {
                Some(Ret::Int { value }) => Some(value),
                _ => None,
            })
            .collect();
        indices.sort_unstable();
        let expected: Vec<i64> = (0..parties as i64).collect();
        if indices != expected {
            return Err(Violation {
                rule: "a generation's indices are not 0..parties",
                explanation: format!(
                    "generation {g} got indices {indices:?}; every generation gets each of {expected:?} once"
                ),
                entries: ids,
            });
        }
        let last_in = generation.iter().map(|(_, e)| e.invoked).max();
        let first_out = generation.iter().filter_map(|(_, e)| e.returned).min();
        if let (Some(last_in), Some(first_out)) = (last_in, first_out)
            && first_out < last_in
        {
            return Err(Violation {
                rule: "a party passed before all had arrived",
                explanation: format!(
                    "in generation {g} one wait returned at {first_out}, before the last party arrived at {last_in}"
                ),
                entries: ids,
            });
        }
    }
    // Breaks need a cause, and are final.
    for &(i, e) in &waits {
        let Some(returned) = e.returned else { continue };
        if e.ret == broken_ret {
            let timed = waits.iter().any(|(_, w)| {
                matches!(
                    w.call,
                    Call::BarrierWait {
                        timeout_ms: Some(_)
                    }
                ) && w.invoked < returned
                    && w.ret
                        .as_ref()
                        .is_none_or(|r| Some(r) == broken_ret.as_ref())
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
        let broken = Ret::Raised {
            refusal: Refusal::BrokenBarrier,
        };
        let causeless = History::new(vec![wait(0, 1, 2, broken)]);
        assert!(judge(&causeless, 2, &[]).is_err());
        assert_eq!(judge(&causeless, 2, &[1]), Ok(()));
    }
}
