//! Timed outcomes: how long a wait took, judged against the interval the model admits.
//!
//! The model says whether a `join_timeout(t)` must sleep its whole timeout (nothing can end
//! the child meanwhile) or must not sleep at all (the child is already dead, or `t <= 0`)
//! ([`WaitLength`]). The lower bound is exact up to [`SLACK`]: a slow machine makes a wait
//! longer, never shorter, so a wait that ended early is always a failure. The upper bound
//! (`t` plus [`GRACE`], or [`GRACE`] alone for a wait that must not sleep) can be overrun by
//! a machine that did not give the checker a CPU in time: an overrun while the machine is
//! saturated (load average at or above the number of CPUs) is counted as undecided, never
//! as a failure. Decision 0007 records the trade-off.

use std::time::Duration;

use proclife_model::WaitLength;

/// The clock granularity allowed below a wait's timeout.
pub const SLACK: Duration = Duration::from_millis(1);

/// How much longer than its timeout a wait may take on a machine that is not saturated.
pub const GRACE: Duration = Duration::from_millis(250);

/// The judgement of one timed step.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// The model has no interval for this step.
    NotJudged,
    /// The duration lies in the admitted interval.
    Agrees,
    /// The duration overran the upper bound while the machine was saturated: it may be the
    /// runtime or the machine.
    Undecided,
    /// The duration lies outside the admitted interval: a sentence saying which bound.
    Fails(String),
}

/// How many timing judgements a run made.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    /// Steps whose duration was judged and decided.
    pub decided: u64,
    /// Steps whose duration overran on a saturated machine.
    pub undecided: u64,
}

impl Tally {
    /// Counts one verdict.
    pub fn count(&mut self, verdict: &Verdict) {
        match verdict {
            Verdict::NotJudged => {}
            Verdict::Undecided => self.undecided += 1,
            Verdict::Agrees | Verdict::Fails(_) => self.decided += 1,
        }
    }

    /// Adds another tally.
    pub fn add(&mut self, other: Tally) {
        self.decided += other.decided;
        self.undecided += other.undecided;
    }
}

/// Whether the machine is saturated now: the one-minute load average is at least the
/// number of CPUs this process may use (unknown counts as saturated).
pub fn saturated() -> bool {
    let cpus = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    let load = std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|text| text.split_whitespace().next()?.parse::<f64>().ok());
    load.is_none_or(|load| load >= cpus as f64)
}

/// Judges a `join_timeout(secs)` that took `took`, when the model says its length is
/// `length`; `saturated` is asked only when an upper bound was overrun.
pub fn judge(
    length: WaitLength,
    secs: f64,
    took: Duration,
    saturated: impl FnOnce() -> bool,
) -> Verdict {
    let timeout = Duration::try_from_secs_f64(secs.max(0.0)).unwrap_or(Duration::MAX);
    let upper = match length {
        WaitLength::Immediate => GRACE,
        WaitLength::Full | WaitLength::Unknown => timeout.saturating_add(GRACE),
    };
    if length == WaitLength::Full && took.saturating_add(SLACK) < timeout {
        return Verdict::Fails(format!(
            "returned after {took:.1?}, but nothing could end the child, so it must wait its whole timeout ({timeout:?}, less {SLACK:?})"
        ));
    }
    if took <= upper {
        return Verdict::Agrees;
    }
    if saturated() {
        return Verdict::Undecided;
    }
    let expected = match length {
        WaitLength::Immediate => "the child had already exited, so it must return at once",
        WaitLength::Full | WaitLength::Unknown => "a wait ends with its timeout",
    };
    Verdict::Fails(format!(
        "returned after {took:.1?}; {expected} (within {upper:?} on a machine that is not saturated)"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn an_early_full_wait_fails_whatever_the_load() {
        let verdict = judge(WaitLength::Full, 0.005, MS / 10, || true);
        assert!(matches!(verdict, Verdict::Fails(_)), "{verdict:?}");
        assert_eq!(
            judge(WaitLength::Full, 0.005, 5 * MS, || true),
            Verdict::Agrees
        );
        assert_eq!(
            judge(WaitLength::Full, 0.005, 4 * MS, || true),
            Verdict::Agrees
        );
    }

    #[test]
    fn an_overrun_is_undecided_only_on_a_saturated_machine() {
        let long = 2 * GRACE;
        assert_eq!(
            judge(WaitLength::Immediate, 5.0, long, || true),
            Verdict::Undecided
        );
        assert!(matches!(
            judge(WaitLength::Immediate, 5.0, long, || false),
            Verdict::Fails(_)
        ));
        assert_eq!(
            judge(WaitLength::Immediate, 5.0, MS, || false),
            Verdict::Agrees
        );
        assert_eq!(
            judge(WaitLength::Unknown, 0.001, 50 * MS, || false),
            Verdict::Agrees
        );
    }

    #[test]
    fn tallies_count_decided_and_undecided() {
        let mut tally = Tally::default();
        for verdict in [
            Verdict::NotJudged,
            Verdict::Agrees,
            Verdict::Undecided,
            Verdict::Fails(String::new()),
        ] {
            tally.count(&verdict);
        }
        assert_eq!(
            tally,
            Tally {
                decided: 2,
                undecided: 1
            }
        );
    }
}
