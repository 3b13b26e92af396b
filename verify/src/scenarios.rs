//! Annotated replay files: operations with the observations expected of them, or seen on
//! each side of a comparison.
//!
//! An annotated file is a replay file ([`Trace`]) whose operations may carry observations
//! (without their `"op"`), one per side: `"expect"` (what every implementation must give: the
//! scenario corpus in `verify/scenarios/`), and `"model"`, `"runtime"`, `"cpython"` (what
//! each gave, written by `proclife conform` beside a disagreement):
//!
//! ```json
//! {"ops":[
//!   {"op":"start","expect":{"ok":null}},
//!   {"op":"start","expect":{"err":{"type":"AssertionError","msg":"cannot start a process twice"}}}
//! ]}
//! ```
//!
//! `proclife replay` runs such a file like any other ([`Trace::parse`] accepts and checks the
//! annotations); [`Annotated::parse`] also returns them.

use proclife_model::Outcome;
use serde_json::{Map, Value as Json};

use crate::trace::{ANNOTATIONS, Trace, TraceError};

/// The observations written beside one operation.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Annotations {
    /// What every implementation must give.
    pub expect: Option<Outcome>,
    /// What the model gave.
    pub model: Option<Outcome>,
    /// What the runtime gave.
    pub runtime: Option<Outcome>,
    /// What CPython gave.
    pub cpython: Option<Outcome>,
}

impl Annotations {
    fn fields(&self) -> [(&'static str, Option<&Outcome>); 4] {
        [
            ("expect", self.expect.as_ref()),
            ("model", self.model.as_ref()),
            ("runtime", self.runtime.as_ref()),
            ("cpython", self.cpython.as_ref()),
        ]
    }
}

/// A replay file with its annotations, one [`Annotations`] per operation.
#[derive(Debug, Clone, PartialEq)]
pub struct Annotated {
    /// The operations.
    pub trace: Trace,
    /// The observations beside each operation (same length as `trace.ops`).
    pub annotations: Vec<Annotations>,
}

/// The observation `outcome` without its `"op"` field, as an annotation holds it.
fn bare(outcome: &Outcome) -> Json {
    let mut json = outcome.to_json(&proclife_model::Op::Start);
    if let Some(object) = json.as_object_mut() {
        object.remove("op");
    }
    json
}

impl Annotated {
    /// Parses an annotated replay file.
    ///
    /// # Errors
    ///
    /// A [`TraceError`] as [`Trace::parse`] gives it (a malformed annotation is one).
    pub fn parse(text: &str) -> Result<Annotated, TraceError> {
        let trace = Trace::parse(text)?;
        let json: Json = serde_json::from_str(text).map_err(|e| TraceError {
            line: e.line(),
            column: e.column(),
            message: e.to_string(),
        })?;
        let ops = json
            .get("ops")
            .and_then(Json::as_array)
            .cloned()
            .unwrap_or_default();
        let annotations = ops
            .iter()
            .enumerate()
            .map(|(index, op)| {
                let get = |name: &str| -> Result<Option<Outcome>, TraceError> {
                    op.get(name)
                        .map(|json| {
                            Outcome::from_json(json).map_err(|e| TraceError {
                                line: 0,
                                column: 0,
                                message: format!("operation {index}, {name:?}: {e}"),
                            })
                        })
                        .transpose()
                };
                Ok(Annotations {
                    expect: get("expect")?,
                    model: get("model")?,
                    runtime: get("runtime")?,
                    cpython: get("cpython")?,
                })
            })
            .collect::<Result<Vec<_>, TraceError>>()?;
        Ok(Annotated { trace, annotations })
    }

    /// The file as JSON, one operation and its annotations per line.
    pub fn to_json(&self) -> String {
        let lines: Vec<String> = self
            .trace
            .ops
            .iter()
            .enumerate()
            .map(|(index, step)| {
                let mut json = step.to_json();
                if let (Some(object), Some(notes)) =
                    (json.as_object_mut(), self.annotations.get(index))
                {
                    for (name, outcome) in notes.fields() {
                        if let Some(outcome) = outcome {
                            object.insert(name.to_owned(), bare(outcome));
                        }
                    }
                }
                format!("  {json}")
            })
            .collect();
        format!("{{\"ops\":[\n{}\n]}}\n", lines.join(",\n"))
    }
}

/// Whether `key` is an annotation rather than a field of the operation.
pub fn is_annotation(key: &str) -> bool {
    ANNOTATIONS.contains(&key)
}

/// Removes the annotations from an operation object, checking that each is an observation.
///
/// # Errors
///
/// The annotation's name and what is wrong with it.
pub fn strip(fields: &mut Map<String, Json>) -> Result<(), String> {
    for name in ANNOTATIONS {
        if let Some(json) = fields.remove(name) {
            Outcome::from_json(&json).map_err(|e| format!("annotation `{name}`: {e}"))?;
        }
    }
    Ok(())
}

/// One named scenario of a corpus.
#[derive(Debug, Clone, PartialEq)]
pub struct Scenario {
    /// What it shows.
    pub name: String,
    /// Its operations and their expected observations.
    pub annotated: Annotated,
}

/// The scenario corpus: the CPython table as replay sequences with expected observations.
pub const CPYTHON_TABLE: &str = include_str!("../scenarios/cpython-table.json");

/// Parses a corpus file: `{"about":..,"scenarios":[{"name":..,"ops":[..]},..]}`, where every
/// operation carries `"expect"`.
///
/// # Errors
///
/// A sentence naming the scenario and operation that are wrong: not JSON, an operation
/// outside the replay schema, or one without an expected observation.
pub fn parse_corpus(text: &str) -> Result<Vec<Scenario>, String> {
    let json: Json = serde_json::from_str(text)
        .map_err(|e| format!("line {}, column {}: {e}", e.line(), e.column()))?;
    let scenarios = json
        .get("scenarios")
        .and_then(Json::as_array)
        .ok_or("a corpus needs a list \"scenarios\"")?;
    scenarios
        .iter()
        .enumerate()
        .map(|(index, scenario)| {
            let name = scenario
                .get("name")
                .and_then(Json::as_str)
                .ok_or_else(|| format!("scenario {index} needs a string \"name\""))?
                .to_owned();
            let ops = scenario
                .get("ops")
                .and_then(Json::as_array)
                .ok_or_else(|| format!("scenario {name:?} needs a list \"ops\""))?;
            let mut steps = Vec::with_capacity(ops.len());
            let mut annotations = Vec::with_capacity(ops.len());
            for (at, op) in ops.iter().enumerate() {
                let step: crate::trace::Step = serde_json::from_value(op.clone())
                    .map_err(|e| format!("scenario {name:?}, operation {at}: {e}"))?;
                let expect = op
                    .get("expect")
                    .ok_or_else(|| format!("scenario {name:?}, operation {at}: no \"expect\""))
                    .and_then(|e| {
                        Outcome::from_json(e)
                            .map_err(|e| format!("scenario {name:?}, operation {at}: {e}"))
                    })?;
                steps.push(step);
                annotations.push(Annotations {
                    expect: Some(expect),
                    ..Annotations::default()
                });
            }
            Ok(Scenario {
                name,
                annotated: Annotated {
                    trace: Trace { ops: steps },
                    annotations,
                },
            })
        })
        .collect()
}

/// The scenario corpus compiled into this crate (`verify/scenarios/cpython-table.json`).
///
/// # Errors
///
/// As [`parse_corpus`]; a test parses the repository's file.
pub fn cpython_table() -> Result<Vec<Scenario>, String> {
    parse_corpus(CPYTHON_TABLE)
}

impl Scenario {
    /// The expected observations, in order.
    pub fn expected(&self) -> Vec<Option<&Outcome>> {
        self.annotated
            .annotations
            .iter()
            .map(|a| a.expect.as_ref())
            .collect()
    }

    /// The operations.
    pub fn steps(&self) -> &[crate::trace::Step] {
        &self.annotated.trace.ops
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proclife_model::{Op, PyError};

    #[test]
    fn annotations_round_trip_and_replay_files_accept_them() {
        let text = "{\"ops\":[\n  {\"op\":\"start\",\"expect\":{\"ok\":null}},\n  {\"op\":\"start\",\"proc\":1,\"model\":{\"ok\":null},\"cpython\":{\"err\":{\"type\":\"AssertionError\",\"msg\":\"cannot start a process twice\"}}}\n]}\n";
        let annotated = Annotated::parse(text).expect("valid");
        assert_eq!(annotated.trace.ops.len(), 2);
        assert_eq!(annotated.trace.ops[1].proc, 1);
        assert_eq!(annotated.annotations[0].expect, Some(Outcome::NONE));
        assert_eq!(
            annotated.annotations[1].cpython,
            Some(Outcome::Raised(PyError::START_TWICE))
        );
        assert_eq!(annotated.to_json(), text);
        assert_eq!(
            Trace::parse(text).expect("a replay file").ops[0].op,
            Op::Start
        );
    }

    #[test]
    fn a_malformed_annotation_is_rejected_with_its_line() {
        let err = Trace::parse("{\"ops\":[\n{\"op\":\"start\",\"expect\":{\"maybe\":1}}]}")
            .expect_err("must be rejected");
        assert_eq!(err.line, 2, "{err}");
        assert!(err.message.contains("annotation `expect`"), "{err}");
    }

    #[test]
    fn the_corpus_parses_and_every_op_has_an_expectation() {
        let table = cpython_table().expect("the corpus parses");
        assert!(table.len() > 10);
        for scenario in &table {
            assert!(
                scenario.expected().iter().all(Option::is_some),
                "{}",
                scenario.name
            );
        }
        let bad = parse_corpus("{\"scenarios\":[{\"name\":\"x\",\"ops\":[{\"op\":\"start\"}]}]}")
            .expect_err("no expect");
        assert!(bad.contains("no \"expect\""), "{bad}");
    }
}
