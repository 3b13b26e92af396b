//! The replay schema: operation sequences and observations as readable JSON.
//!
//! A replay file is `{"ops":[{"op":"start"},{"op":"child_exit","code":3},...]}`.
//! Each op may carry `"proc": N` to address the N-th process of the sequence (default 0).
//! An observation is `{"op":"is_alive","ok":true}` or
//! `{"op":"start","err":{"type":"AssertionError","msg":"cannot start a process twice"}}`.
//! Parsing never starts a process: a malformed file is rejected as a whole, with the line,
//! column and field that are wrong.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The most processes one sequence may drive.
pub const MAX_PROCS: usize = 8;

/// The most operations one replay file may hold.
pub const MAX_OPS: usize = 10_000;

/// The blocking primitives a puppet child can be told to wait on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BlockKind {
    /// `Lock::acquire` of a lock the parent holds.
    Lock,
    /// `RLock::acquire` of a reentrant lock the parent holds.
    Rlock,
    /// `Semaphore::acquire` of a semaphore at zero.
    Semaphore,
    /// `Event::wait` of an event that is not set.
    Event,
    /// `Condition::wait` until the parent notifies.
    Condition,
    /// `Barrier::wait` of a two-party barrier the parent has not reached.
    Barrier,
    /// `Connection::recv` on a pipe the parent has not written to.
    Recv,
    /// `Process::join` of a grandchild that waits for the parent's word.
    Join,
}

impl BlockKind {
    /// Every kind, in a fixed order.
    pub const ALL: [BlockKind; 8] = [
        BlockKind::Lock,
        BlockKind::Rlock,
        BlockKind::Semaphore,
        BlockKind::Event,
        BlockKind::Condition,
        BlockKind::Barrier,
        BlockKind::Recv,
        BlockKind::Join,
    ];

    /// The schema's name for this kind.
    pub fn name(self) -> &'static str {
        match self {
            BlockKind::Lock => "lock",
            BlockKind::Rlock => "rlock",
            BlockKind::Semaphore => "semaphore",
            BlockKind::Event => "event",
            BlockKind::Condition => "condition",
            BlockKind::Barrier => "barrier",
            BlockKind::Recv => "recv",
            BlockKind::Join => "join",
        }
    }
}

fn default_block() -> BlockKind {
    BlockKind::Event
}

/// One operation of a sequence, as the replay schema spells it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
pub enum TraceOp {
    /// `Process.start()`.
    Start,
    /// `Process.run()` in the caller.
    Run,
    /// `Process.is_alive()`.
    IsAlive,
    /// `Process.join()`.
    Join,
    /// `Process.join(secs)`; `secs` may be zero or negative.
    JoinTimeout {
        /// The timeout in seconds.
        secs: f64,
    },
    /// `Process.exitcode`.
    Exitcode,
    /// `Process.pid is not None`.
    PidIsSet,
    /// Whether `Process.sentinel` is readable now.
    SentinelReady,
    /// `Process.terminate()`.
    Terminate,
    /// `Process.kill()`.
    Kill,
    /// `Process.close()`.
    Close,
    /// `Process.daemon`.
    Daemon,
    /// `Process.daemon = value`.
    SetDaemon {
        /// The new flag.
        value: bool,
    },
    /// Tell the child to exit with `code`.
    ChildExit {
        /// The code passed to the child's `exit`.
        code: i32,
    },
    /// Tell the child to panic.
    ChildPanic,
    /// Tell the child's target to return normally.
    ChildReturn,
    /// Tell the child to block on a primitive.
    ChildBlock {
        /// What to block on.
        #[serde(default = "default_block")]
        on: BlockKind,
    },
    /// Release a blocked child.
    Release,
    /// Wait until a pending exit of the child has really happened, without reaping it.
    Settle,
}

impl TraceOp {
    /// The schema's name for this op.
    pub fn name(&self) -> &'static str {
        match self {
            TraceOp::Start => "start",
            TraceOp::Run => "run",
            TraceOp::IsAlive => "is_alive",
            TraceOp::Join => "join",
            TraceOp::JoinTimeout { .. } => "join_timeout",
            TraceOp::Exitcode => "exitcode",
            TraceOp::PidIsSet => "pid_is_set",
            TraceOp::SentinelReady => "sentinel_ready",
            TraceOp::Terminate => "terminate",
            TraceOp::Kill => "kill",
            TraceOp::Close => "close",
            TraceOp::Daemon => "daemon",
            TraceOp::SetDaemon { .. } => "set_daemon",
            TraceOp::ChildExit { .. } => "child_exit",
            TraceOp::ChildPanic => "child_panic",
            TraceOp::ChildReturn => "child_return",
            TraceOp::ChildBlock { .. } => "child_block",
            TraceOp::Release => "release",
            TraceOp::Settle => "settle",
        }
    }
}

/// An operation addressed to one process of the sequence.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Step {
    /// Which process (0-based); omitted in the file when 0.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub proc: usize,
    /// The operation.
    #[serde(flatten)]
    pub op: TraceOp,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

// Written by hand because `#[serde(flatten)]` would silently accept unknown fields.
impl<'de> Deserialize<'de> for Step {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::Error as _;
        let mut fields = serde_json::Map::deserialize(deserializer)?;
        let proc = match fields.remove("proc") {
            None => 0,
            Some(value) => usize::deserialize(value)
                .map_err(|e| D::Error::custom(format!("field `proc`: {e}")))?,
        };
        let op = TraceOp::deserialize(serde_json::Value::Object(fields.clone()))
            .map_err(D::Error::custom)?;
        // serde ignores extra fields on unit variants of an internally tagged enum, so the
        // fields are checked against those the op itself writes.
        let known = serde_json::to_value(op).map_err(D::Error::custom)?;
        if let Some(extra) = fields.keys().find(|key| known.get(key.as_str()).is_none()) {
            return Err(D::Error::custom(format!(
                "unknown field `{extra}` for op `{}`",
                op.name()
            )));
        }
        Ok(Step { proc, op })
    }
}

/// A whole replay file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Trace {
    /// The operations, in order.
    pub ops: Vec<Step>,
}

/// Why a replay file was rejected.
#[derive(Debug, Clone, PartialEq)]
pub struct TraceError {
    /// 1-based line of the problem, when known.
    pub line: usize,
    /// 1-based column of the problem, when known.
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
        let trace: Trace = serde_json::from_str(text).map_err(|e| TraceError {
            line: e.line(),
            column: e.column(),
            message: e
                .to_string()
                .split(" at line ")
                .next()
                .unwrap_or_default()
                .to_owned(),
        })?;
        trace.validate()?;
        Ok(trace)
    }

    fn validate(&self) -> Result<(), TraceError> {
        let at = |index: usize, message: String| TraceError {
            line: 0,
            column: 0,
            message: format!("ops[{index}]: {message}"),
        };
        if self.ops.len() > MAX_OPS {
            return Err(TraceError {
                line: 0,
                column: 0,
                message: format!("{} ops, at most {MAX_OPS} are allowed", self.ops.len()),
            });
        }
        for (index, step) in self.ops.iter().enumerate() {
            if step.proc >= MAX_PROCS {
                return Err(at(
                    index,
                    format!(
                        "field `proc` is {}, it must be below {MAX_PROCS}",
                        step.proc
                    ),
                ));
            }
            if let TraceOp::JoinTimeout { secs } = step.op {
                if !secs.is_finite() {
                    return Err(at(index, "field `secs` must be a finite number".to_owned()));
                }
            }
        }
        Ok(())
    }

    /// How many processes the sequence addresses.
    pub fn procs(&self) -> usize {
        self.ops.iter().map(|s| s.proc + 1).max().unwrap_or(0)
    }

    /// The file as pretty JSON, one op per line.
    pub fn to_json(&self) -> String {
        let mut out = String::from("{\"ops\":[\n");
        for (index, step) in self.ops.iter().enumerate() {
            let line = serde_json::to_string(step).unwrap_or_default();
            out.push_str("  ");
            out.push_str(&line);
            if index + 1 < self.ops.len() {
                out.push(',');
            }
            out.push('\n');
        }
        out.push_str("]}\n");
        out
    }
}

/// A value an operation returned, as the schema spells it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ObservedValue {
    /// `null`.
    Null,
    /// `true` / `false`.
    Bool(bool),
    /// An integer (exit codes).
    Int(i64),
}

/// The CPython exception an operation raised.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ObservedError {
    /// The exception type, e.g. `AssertionError`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The exact message.
    pub msg: String,
}

/// What one operation gave: a value or an error.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Observed {
    /// The operation returned this value.
    Ok(ObservedValue),
    /// The operation raised this error.
    Err(ObservedError),
}

impl fmt::Display for Observed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Observed::Ok(ObservedValue::Null) => f.write_str("None"),
            Observed::Ok(ObservedValue::Bool(b)) => f.write_str(if *b { "True" } else { "False" }),
            Observed::Ok(ObservedValue::Int(n)) => write!(f, "{n}"),
            Observed::Err(e) => write!(f, "{}: {}", e.kind, e.msg),
        }
    }
}

/// One line of a replay's output: the op's name, its process and what it gave.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Observation {
    /// The op's schema name.
    pub op: String,
    /// Which process; omitted when 0.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub proc: usize,
    /// The value or error.
    #[serde(flatten)]
    pub result: Observed,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_design_example() {
        let text = r#"{"ops":[{"op":"start"},{"op":"is_alive"},{"op":"join_timeout","secs":0.05},
            {"op":"child_exit","code":3},{"op":"settle"},{"op":"exitcode"},
            {"op":"child_block"},{"op":"child_block","on":"barrier","proc":2}]}"#;
        let trace = Trace::parse(text).expect("valid");
        assert_eq!(trace.ops.len(), 8);
        assert_eq!(trace.ops[2].op, TraceOp::JoinTimeout { secs: 0.05 });
        assert_eq!(
            trace.ops[6].op,
            TraceOp::ChildBlock {
                on: BlockKind::Event
            }
        );
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
    fn names_what_is_wrong() {
        rejects("{\"ops\":[\n{\"op\":\"fly\"}]}", 2, "unknown variant `fly`");
        rejects(
            "{\"ops\":[\n{\"op\":\"child_exit\"}]}",
            2,
            "missing field `code`",
        );
        rejects(
            "{\"ops\":[\n{\"op\":\"child_exit\",\"code\":\"x\"}]}",
            2,
            "invalid type",
        );
        rejects(
            "{\"ops\":[{\"op\":\"start\",\"extra\":1}]}",
            1,
            "unknown field `extra`",
        );
        rejects(
            "{\"ops\":[{\"op\":\"child_block\",\"on\":\"moon\"}]}",
            1,
            "unknown variant `moon`",
        );
        rejects("{\"ops\":[{\"op\":\"start\"}", 1, "EOF");
        rejects("{\"opz\":[]}", 1, "unknown field `opz`");
        rejects(
            "{\"ops\":[{\"op\":\"start\",\"proc\":8}]}",
            0,
            "ops[0]: field `proc` is 8",
        );
        rejects(
            "{\"ops\":[{\"op\":\"join_timeout\",\"secs\":1e999}]}",
            1,
            "",
        );
    }

    #[test]
    fn observations_use_the_schema_spelling() {
        let ok = Observation {
            op: "is_alive".into(),
            proc: 0,
            result: Observed::Ok(ObservedValue::Bool(true)),
        };
        assert_eq!(
            serde_json::to_string(&ok).unwrap(),
            r#"{"op":"is_alive","ok":true}"#
        );
        let err = Observation {
            op: "start".into(),
            proc: 1,
            result: Observed::Err(ObservedError {
                kind: "AssertionError".into(),
                msg: "cannot start a process twice".into(),
            }),
        };
        assert_eq!(
            serde_json::to_string(&err).unwrap(),
            r#"{"op":"start","proc":1,"err":{"type":"AssertionError","msg":"cannot start a process twice"}}"#
        );
        let null = Observation {
            op: "exitcode".into(),
            proc: 0,
            result: Observed::Ok(ObservedValue::Null),
        };
        assert_eq!(
            serde_json::to_string(&null).unwrap(),
            r#"{"op":"exitcode","ok":null}"#
        );
    }
}
