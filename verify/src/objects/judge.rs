//! Judging a program's history: every object against its model.

use std::collections::BTreeMap;

use proclife_model::objects::linearizable::{self, Death};
use proclife_model::objects::spec::{AnySpec, Initial};
use proclife_model::objects::{Object, Refusal, Ret, Violation, barrier, condition};

use crate::objects::scenario::{Observed, Program};

/// The row of the refusal table of each refusal of a history, by its index there.
pub type Rows = BTreeMap<usize, Refusal>;

/// Judges every object of `observed` against its model.
///
/// # Errors
///
/// The first object's [`Violation`], its rule prefixed with the object's name.
pub fn judge(program: &Program, observed: &Observed) -> Result<(), Violation> {
    rows(program, observed).map(|_| ())
}

/// As [`judge`], with the row of the refusal table of each refusal the run showed, where
/// the judges settle it (indices into the history): the row the sequential model names in
/// the linearization found, the one `Condition`'s result names
/// ([`condition::row`]), or the one the history settles for a broken barrier
/// ([`barrier::rows`]). The coverage counts refusals by these rows.
///
/// # Errors
///
/// As [`judge`].
pub fn rows(program: &Program, observed: &Observed) -> Result<Rows, Violation> {
    let history = &observed.history;
    let mut rows = BTreeMap::new();
    for (i, e) in history.entries.iter().enumerate() {
        if let Some(Ret::Other { error }) = &e.ret {
            return Err(Violation {
                rule: "an error the refusal table does not name so",
                entries: vec![i],
                explanation: format!("#{i} {} by p{} raised {error}", e.call, e.proc),
            });
        }
    }
    let init = Initial {
        semaphore: program.setup.semaphore,
        bounded: program.setup.bounded,
        maxsize: program.setup.maxsize,
        ends: program.setup.ends,
    };
    // The objects with a sequential specification; `Condition` and `Barrier` are judged below.
    for obj in Object::ALL {
        let entries: Vec<usize> = history.on(obj).map(|(i, _)| i).collect();
        if entries.is_empty() {
            continue;
        }
        let Some(spec) = AnySpec::initial(obj, init) else {
            continue;
        };
        let order = linearizable::linearize(&spec, &history.entries, &entries, &observed.deaths)
            .map_err(|v| named(obj, v))?;
        for (i, ret) in order {
            if let (Some(Ret::Refused { .. }), Some(Ret::Raised { refusal })) =
                (&history.entries[i].ret, ret)
            {
                rows.insert(i, refusal);
            }
        }
    }
    let deaths: Vec<u64> = observed
        .deaths
        .iter()
        .filter_map(|d: &Death| d.by)
        .collect();
    condition::judge(history, &observed.deaths).map_err(|v| named(Object::Condition, v))?;
    barrier::judge(history, program.setup.parties, &deaths)
        .map_err(|v| named(Object::Barrier, v))?;
    for (i, e) in history.on(Object::Condition) {
        if let Some(row) = e.ret.as_ref().and_then(|ret| condition::row(e.call, ret)) {
            rows.insert(i, row);
        }
    }
    rows.extend(barrier::rows(history));
    Ok(rows)
}

fn named(obj: Object, v: Violation) -> Violation {
    Violation {
        explanation: format!("{}: {}", obj.name(), v.explanation),
        ..v
    }
}
