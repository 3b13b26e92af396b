//! Judging a program's history: every object against its model.

use proclife_model::objects::linearizable::{self, Death};
use proclife_model::objects::spec::{AnySpec, Initial};
use proclife_model::objects::{Object, Ret, Violation, barrier, condition};

use crate::objects::scenario::{Observed, Program};

/// Judges every object of `observed` against its model.
///
/// # Errors
///
/// The first object's [`Violation`], its rule prefixed with the object's name.
pub fn judge(program: &Program, observed: &Observed) -> Result<(), Violation> {
    let history = &observed.history;
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
        linearizable::judge(&spec, &history.entries, &entries, &observed.deaths)
            .map_err(|v| named(obj, v))?;
    }
    let deaths: Vec<u64> = observed
        .deaths
        .iter()
        .filter_map(|d: &Death| d.by)
        .collect();
    condition::judge(history, &observed.deaths).map_err(|v| named(Object::Condition, v))?;
    barrier::judge(history, program.setup.parties, &deaths).map_err(|v| named(Object::Barrier, v))
}

fn named(obj: Object, v: Violation) -> Violation {
    Violation {
        explanation: format!("{}: {}", obj.name(), v.explanation),
        ..v
    }
}
