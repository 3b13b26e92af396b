//! Coverage of the primitives' models: how often each operation × outcome class was seen.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use proclife_model::objects::coverage::{self, Class};
use proclife_model::objects::{Object, Refusal};

use crate::objects::random::FOCUS;
use crate::objects::scenario::Observed;

/// Hits per class.
#[derive(Debug, Clone, Default)]
pub struct Coverage {
    hits: BTreeMap<Class, u64>,
}

impl Coverage {
    /// Counts the classes of one judged history; `rows` are the rows of the refusal table
    /// the judges found for its refusals (`None` when it was not judged agreeing: then its
    /// refusals are counted in no class).
    pub fn add(&mut self, observed: &Observed, rows: Option<&BTreeMap<usize, Refusal>>) {
        for (i, entry) in observed.history.entries.iter().enumerate() {
            let row = rows.and_then(|rows| rows.get(&i).copied());
            if let Some(class) = coverage::class(entry, row) {
                *self.hits.entry(class).or_default() += 1;
            }
        }
    }

    /// The classes of every model never seen.
    pub fn missing(&self) -> Vec<Class> {
        FOCUS
            .into_iter()
            .flat_map(|obj| {
                coverage::classes(obj)
                    .iter()
                    .map(move |&(op, outcome)| (obj, op, outcome))
            })
            .filter(|class| !self.hits.contains_key(class))
            .collect()
    }

    /// Hits of one class.
    pub fn hits(&self, obj: Object, op: &str, outcome: &str) -> u64 {
        self.hits
            .iter()
            .find(|((o, p, r), _)| *o == obj && *p == op && *r == outcome)
            .map_or(0, |(_, n)| *n)
    }

    /// The table: a header, then one line per class (object, operation, outcome: a
    /// returned value or a refusal's row) with its hits.
    pub fn table(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "{:<17} {:<11} {:<34} {:>6}",
            "primitive", "operation", "outcome", "hits"
        );
        for obj in FOCUS {
            for &(op, outcome) in coverage::classes(obj) {
                let n = self.hits(obj, op, outcome);
                let mark = if n == 0 { "  NOT COVERED" } else { "" };
                let _ = writeln!(
                    out,
                    "{:<17} {:<11} {:<34} {n:>6}{mark}",
                    obj.name(),
                    op,
                    outcome
                );
            }
        }
        out
    }
}
