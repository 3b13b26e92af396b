//! The replay schema: operation sequences and observations as readable JSON.
//!
//! A replay file is `{"ops":[{"op":"start"},{"op":"child_exit","code":3},...]}`, one op per
//! line when written by this crate.
//! Each op may carry `"proc": N` to address the N-th process of the sequence (default 0).
//! The op objects themselves are the model's replay schema ([`Op::from_json`]); this module
//! adds the file around them, the process index, and the concrete timeout in seconds that the
//! model abstracts into a class.
//! Parsing never starts a process: a malformed file is rejected as a whole, with the line,
//! column and field that are wrong.

use std::fmt;

use proclife_model::{Op, Outcome, Timeout};
use serde::de::Error as _;
use serde::{Deserialize, Deserializer};
use serde_json::{Map, Value as Json};

/// The most processes one sequence may drive.
pub const MAX_PROCS: usize = 8;

/// The most operations one replay file may hold.
pub const MAX_OPS: usize = 10_000;

/// The fields an operation may carry beside it: observations expected or seen
/// (see [`crate::scenarios`]); they are checked but do not change what runs.
pub const ANNOTATIONS: [&str; 4] = ["expect", "model", "runtime", "cpython"];

/// One operation of a sequence, addressed to one of its processes.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    /// Which process (0-based).
    pub proc: usize,
    /// The operation, in the model's vocabulary.
    pub op: Op,
    /// For `join_timeout`, the real timeout in seconds (the model keeps only its class).
    pub secs: Option<f64>,
    /// Whether the checker probes the runtime's `state()` after this step (which collects
    /// the exit status of an exited child); `"probe":false` in a replay file, default true.
    pub probe: bool,
}

impl Step {
    /// An op on process `proc`; a `join_timeout` gets the representative seconds of its class.
    pub fn new(proc: usize, op: Op) -> Step {
        let secs = match op {
            Op::JoinTimeout(timeout) => Some(representative_secs(timeout)),
            _ => None,
        };
        Step {
            proc,
            op,
            secs,
            probe: true,
        }
    }

    /// This step without the `state()` probe after it.
    pub fn unprobed(self) -> Step {
        Step {
            probe: false,
            ..self
        }
    }

    /// An op on process `proc` with a concrete timeout in seconds.
    pub fn join_timeout(proc: usize, secs: f64) -> Step {
        Step {
            proc,
            op: Op::JoinTimeout(Timeout::from_secs(secs)),
            secs: Some(secs),
            probe: true,
        }
    }

    /// The JSON object of this step, as a replay file holds it.
    pub fn to_json(&self) -> Json {
        let mut json = self.op.to_json();
        if let (Some(secs), Some(object)) = (self.secs, json.as_object_mut()) {
            object.insert("secs".to_owned(), Json::from(secs));
        }
        if self.proc != 0
            && let Some(object) = json.as_object_mut()
        {
            object.insert("proc".to_owned(), Json::from(self.proc));
        }
        if !self.probe
            && let Some(object) = json.as_object_mut()
        {
            object.insert("probe".to_owned(), Json::from(false));
        }
        json
    }
}

/// The seconds a generated `join_timeout` of each class uses: an expiring timeout is short (1 ms,
/// shorter than the puppet's slowest exit), so that thousands of sequences stay fast and some
/// expire while an exit is on its way; an in-time one is long enough for any exit to land.
pub fn representative_secs(timeout: Timeout) -> f64 {
    match timeout {
        Timeout::Zero => 0.0,
        Timeout::Negative => -1.0,
        Timeout::Expires => 0.001,
        Timeout::InTime => 5.0,
    }
}

impl<'de> Deserialize<'de> for Step {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let mut fields = Map::deserialize(deserializer)?;
        let proc = match fields.remove("proc") {
            None => 0,
            Some(value) => usize::deserialize(value)
                .map_err(|e| D::Error::custom(format!("field `proc`: {e}")))?,
        };
        if proc >= MAX_PROCS {
            return Err(D::Error::custom(format!(
                "field `proc` is {proc}, it must be below {MAX_PROCS}"
            )));
        }
        let probe = match fields.remove("probe") {
            None => true,
            Some(value) => bool::deserialize(value)
                .map_err(|e| D::Error::custom(format!("field `probe`: {e}")))?,
        };
        crate::scenarios::strip(&mut fields).map_err(D::Error::custom)?;
        let json = Json::Object(fields);
        let op = Op::from_json(&json).map_err(D::Error::custom)?;
        // The model's reader ignores fields it does not use; a replay file must not carry any.
        let known = op.to_json();
        let Json::Object(fields) = json else {
            return Err(D::Error::custom("an operation must be a JSON object"));
        };
        if let Some(extra) = fields.keys().find(|key| known.get(key.as_str()).is_none()) {
            return Err(D::Error::custom(format!(
                "unknown field `{extra}` for operation `{}`",
                op.schema_name()
            )));
        }
        let secs = fields.get("secs").and_then(Json::as_f64);
        Ok(Step {
            proc,
            op,
            secs,
            probe,
        })
    }
}

/// A whole replay file.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Trace {
    /// The operations, in order.
    pub ops: Vec<Step>,
}

/// The longest message about a replay file, in characters: what a file says (an unknown
/// operation's name, say) is cut in the middle beyond it.
pub const MESSAGE_LIMIT: usize = 200;

/// `text`, cut in the middle to at most about [`MESSAGE_LIMIT`] characters.
///
/// ```
/// use proclife_verify::trace::{MESSAGE_LIMIT, shorten};
/// assert_eq!(shorten("short"), "short");
/// let long = format!("unknown operation {:?}", "x".repeat(10_000_000));
/// assert!(shorten(&long).chars().count() < MESSAGE_LIMIT + 40);
/// ```
pub fn shorten(text: &str) -> String {
    let count = text.chars().count();
    if count <= MESSAGE_LIMIT {
        return text.to_owned();
    }
    let head: String = text.chars().take(MESSAGE_LIMIT * 3 / 4).collect();
    let tail: String = text.chars().skip(count - MESSAGE_LIMIT / 4).collect();
    let cut = count - MESSAGE_LIMIT;
    format!("{head}[… {cut} characters left out …]{tail}")
}

/// Why a replay file was rejected.
#[derive(Debug, Clone, PartialEq)]
pub struct TraceError {
    /// 1-based line of the problem (0 when it concerns the whole file).
    pub line: usize,
    /// 1-based column of the problem (0 when it concerns the whole file).
    pub column: usize,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for TraceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}", self.message)
        } else {
            write!(
                f,
                "line {}, column {}: {}",
                self.line, self.column, self.message
            )
        }
    }
}

impl std::error::Error for TraceError {}

impl Trace {
    /// Parses and validates a replay file.
    ///
    /// # Errors
    ///
    /// A [`TraceError`] naming the line, column and field of the first problem: invalid JSON,
    /// an unknown op or field, a value of the wrong type, a non-finite timeout, a process
    /// index of [`MAX_PROCS`] or more, or more than [`MAX_OPS`] operations.
    pub fn parse(text: &str) -> Result<Trace, TraceError> {
        /// The file with each op left as its text, so that an op's problem is named at the
        /// line where the op begins (serde_json names the position where it noticed the
        /// problem, which for an op followed by a comma and a newline is the next line).
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct RawTrace<'a> {
            #[serde(borrow)]
            ops: Vec<&'a serde_json::value::RawValue>,
        }
        let json_error = |e: &serde_json::Error| {
            shorten(e.to_string().split(" at line ").next().unwrap_or_default())
        };
        let raw: RawTrace<'_> = serde_json::from_str(text).map_err(|e| TraceError {
            line: e.line(),
            column: e.column(),
            message: json_error(&e),
        })?;
        if raw.ops.len() > MAX_OPS {
            return Err(TraceError {
                line: 0,
                column: 0,
                message: format!("{} ops, at most {MAX_OPS} are allowed", raw.ops.len()),
            });
        }
        let ops = raw
            .ops
            .iter()
            .map(|op| {
                serde_json::from_str::<Step>(op.get()).map_err(|e| {
                    // Where the op's text begins in the file: it is a slice of `text`.
                    let at = (op.get().as_ptr() as usize).saturating_sub(text.as_ptr() as usize);
                    let before = &text[..at.min(text.len())];
                    let line = before.matches('\n').count() + 1;
                    let column = before.len() - before.rfind('\n').map_or(0, |n| n + 1);
                    TraceError {
                        line: line + e.line().saturating_sub(1),
                        column: if e.line() <= 1 {
                            column + e.column()
                        } else {
                            e.column()
                        },
                        message: json_error(&e),
                    }
                })
            })
            .collect::<Result<Vec<Step>, TraceError>>()?;
        Ok(Trace { ops })
    }

    /// How many processes the sequence addresses.
    pub fn procs(&self) -> usize {
        self.ops.iter().map(|s| s.proc + 1).max().unwrap_or(0)
    }

    /// The file as JSON, one op per line.
    pub fn to_json(&self) -> String {
        let lines: Vec<String> = self
            .ops
            .iter()
            .map(|s| format!("  {}", s.to_json()))
            .collect();
        format!("{{\"ops\":[\n{}\n]}}\n", lines.join(",\n"))
    }
}

/// One observation as the replay output spells it: `{"op":..,"ok":..}` or
/// `{"op":..,"err":{"type":..,"msg":..}}`, plus `"proc"` when it is not 0.
pub fn observation_json(step: &Step, outcome: &Outcome) -> Json {
    let mut json = outcome.to_json(&step.op);
    if step.proc != 0
        && let Some(object) = json.as_object_mut()
    {
        object.insert("proc".to_owned(), Json::from(step.proc));
    }
    json
}

#[cfg(test)]
mod tests {
    use super::*;
    use proclife_model::BlockedOn;

    #[test]
    fn parses_the_design_example() {
        let text = r#"{"ops":[{"op":"start"},{"op":"is_alive"},{"op":"join_timeout","secs":0.05},
            {"op":"child_exit","code":3},{"op":"settle"},{"op":"exitcode"},
            {"op":"child_block"},{"op":"child_block","on":"barrier","proc":2}]}"#;
        let trace = Trace::parse(text).expect("valid");
        assert_eq!(trace.ops.len(), 8);
        assert_eq!(trace.ops[2].op, Op::JoinTimeout(Timeout::Expires));
        assert_eq!(trace.ops[2].secs, Some(0.05));
        assert_eq!(trace.ops[3].op, Op::ChildExit(3));
        assert_eq!(trace.ops[6].op, Op::ChildBlock(BlockedOn::Event));
        assert_eq!(trace.ops[7].proc, 2);
        assert_eq!(trace.procs(), 3);
        assert_eq!(Trace::parse(&trace.to_json()).expect("round trip"), trace);
    }

    #[track_caller]
    fn rejects(text: &str, expect_line: usize, expect_in_message: &str) {
        let err = Trace::parse(text).expect_err("must be rejected");
        assert_eq!(err.line, expect_line, "{err}");
        assert!(err.message.contains(expect_in_message), "{err}");
    }

    #[test]
    fn names_the_line_of_an_op_followed_by_others() {
        let text =
            "{\"ops\":[\n{\"op\":\"start\"},\n{\"op\":\"frobnicate\"},\n{\"op\":\"join\"}\n]}";
        rejects(text, 3, "unknown operation \"frobnicate\"");
        let text = "{\"ops\":[\n{\"op\":\"start\"},\n{\"op\":\"child_exit\",\"code\":\"x\"}\n]}";
        rejects(text, 3, "must be an integer");
    }

    #[test]
    fn names_what_is_wrong() {
        rejects(
            "{\"ops\":[\n{\"op\":\"fly\"}]}",
            2,
            "unknown operation \"fly\"",
        );
        rejects(
            "{\"ops\":[\n{\"op\":\"child_exit\"}]}",
            2,
            "needs the field \"code\"",
        );
        rejects(
            "{\"ops\":[\n{\"op\":\"child_exit\",\"code\":\"x\"}]}",
            2,
            "must be an integer",
        );
        rejects(
            "{\"ops\":[{\"op\":\"start\",\"extra\":1}]}",
            1,
            "unknown field `extra`",
        );
        rejects(
            "{\"ops\":[{\"op\":\"child_block\",\"on\":\"moon\"}]}",
            1,
            "\"moon\"",
        );
        rejects("{\"ops\":[{\"op\":\"start\"}", 1, "EOF");
        rejects("{\"opz\":[]}", 1, "unknown field `opz`");
        rejects(
            "{\"ops\":[{\"op\":\"start\",\"proc\":8}]}",
            1,
            "field `proc` is 8",
        );
        rejects(
            "{\"ops\":[{\"op\":\"start\",\"proc\":-1}]}",
            1,
            "field `proc`",
        );
        rejects(
            "{\"ops\":[{\"op\":\"join_timeout\",\"secs\":1e999}]}",
            1,
            "",
        );
        rejects("[1,2]", 1, "invalid type");
    }

    #[test]
    fn observations_use_the_schema_spelling() {
        let ok = observation_json(&Step::new(0, Op::IsAlive), &Outcome::bool(true));
        assert_eq!(ok.to_string(), r#"{"op":"is_alive","ok":true}"#);
        let err = observation_json(
            &Step::new(1, Op::Start),
            &Outcome::Raised(proclife_model::PyError::START_TWICE),
        );
        assert_eq!(
            err.to_string(),
            r#"{"op":"start","err":{"type":"AssertionError","msg":"cannot start a process twice"},"proc":1}"#
        );
    }
}
