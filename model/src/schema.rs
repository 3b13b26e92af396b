//! The replay schema's JSON form of operations and observations, without I/O.
//!
//! An operation is `{"op":"join_timeout","secs":0.05}`; an observation is
//! `{"op":..,"ok":value}` or `{"op":..,"err":{"type":..,"msg":..}}`.

use std::borrow::Cow;
use std::fmt;

use serde_json::{Map, Value as Json};

use crate::export::value_json;
use crate::op::{NameArg, Op, Timeout};
use crate::outcome::{Outcome, PyError, PyErrorKind, Value};
use crate::state::BlockedOn;

/// Why a JSON operation or observation is not in the replay schema.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemaError {
    /// What is wrong, in a sentence without a final period.
    pub reason: String,
}

impl fmt::Display for SchemaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.reason)
    }
}

impl std::error::Error for SchemaError {}

fn bad(reason: impl Into<String>) -> SchemaError {
    SchemaError {
        reason: reason.into(),
    }
}

fn field<'a>(object: &'a Map<String, Json>, op: &str, name: &str) -> Result<&'a Json, SchemaError> {
    object
        .get(name)
        .ok_or_else(|| bad(format!("operation {op:?} needs the field {name:?}")))
}

impl Op {
    /// The operation a replay-schema JSON object stands for.
    ///
    /// A positive `secs` becomes [`Timeout::Expires`] (see [`Timeout`]); `child_block`
    /// without `on` blocks on an event; `set_name` takes `value`, and a non-string value is
    /// [`NameArg::NotStr`].
    ///
    /// ```
    /// use proclife_model::{Op, Timeout};
    /// let json = serde_json::json!({"op": "join_timeout", "secs": -1});
    /// assert_eq!(Op::from_json(&json), Ok(Op::JoinTimeout(Timeout::Negative)));
    /// assert!(Op::from_json(&serde_json::json!({"op": "fly"})).is_err());
    /// ```
    ///
    /// # Errors
    ///
    /// [`SchemaError`] for anything that is not an operation of the schema.
    pub fn from_json(json: &Json) -> Result<Op, SchemaError> {
        let object = json
            .as_object()
            .ok_or_else(|| bad("an operation must be a JSON object"))?;
        let name = object
            .get("op")
            .and_then(Json::as_str)
            .ok_or_else(|| bad("an operation needs a string field \"op\""))?;
        let op = match name {
            "start" => Op::Start,
            "run" => Op::Run,
            "is_alive" => Op::IsAlive,
            "join" => Op::Join,
            "join_timeout" => {
                let secs = field(object, name, "secs")?
                    .as_f64()
                    .filter(|secs| secs.is_finite())
                    .ok_or_else(|| bad("\"secs\" must be a finite number"))?;
                Op::JoinTimeout(Timeout::from_secs(secs))
            }
            "exitcode" => Op::Exitcode,
            "pid_is_set" => Op::PidIsSet,
            "sentinel_ready" => Op::SentinelReady,
            "terminate" => Op::Terminate,
            "kill" => Op::Kill,
            "close" => Op::Close,
            "daemon" => Op::Daemon,
            "set_daemon" => Op::SetDaemon(
                field(object, name, "value")?
                    .as_bool()
                    .ok_or_else(|| bad("\"value\" of set_daemon must be a bool"))?,
            ),
            "name" => Op::Name,
            "set_name" => Op::SetName(match field(object, name, "value")? {
                Json::String(text) => NameArg::Str(text.clone()),
                _ => NameArg::NotStr,
            }),
            "child_exit" => Op::ChildExit(
                field(object, name, "code")?
                    .as_i64()
                    .ok_or_else(|| bad("\"code\" of child_exit must be an integer"))?,
            ),
            "child_panic" => Op::ChildPanic,
            "child_return" => Op::ChildReturn,
            "child_block" => Op::ChildBlock(match object.get("on") {
                None => BlockedOn::Event,
                Some(on) => on
                    .as_str()
                    .and_then(BlockedOn::from_name)
                    .ok_or_else(|| bad(format!("unknown \"on\" of child_block: {on}")))?,
            }),
            "release" => Op::Release,
            "sigstop" => Op::SigStop,
            "sigcont" => Op::SigCont,
            "settle" => Op::Settle,
            other => return Err(bad(format!("unknown operation {other:?}"))),
        };
        Ok(op)
    }

    /// The replay-schema JSON object of this operation.
    ///
    /// Timeouts are written as representative seconds: `0`, `-1`, and `0.05` for both
    /// positive classes.
    pub fn to_json(&self) -> Json {
        let mut object = Map::new();
        object.insert("op".to_owned(), Json::from(self.schema_name()));
        match self {
            Op::JoinTimeout(timeout) => {
                let secs = match timeout {
                    Timeout::Zero => 0.0,
                    Timeout::Negative => -1.0,
                    Timeout::Expires | Timeout::InTime => 0.05,
                };
                object.insert("secs".to_owned(), Json::from(secs));
            }
            Op::SetDaemon(value) => {
                object.insert("value".to_owned(), Json::from(*value));
            }
            Op::SetName(NameArg::Str(text)) => {
                object.insert("value".to_owned(), Json::from(text.clone()));
            }
            Op::SetName(NameArg::NotStr) => {
                object.insert("value".to_owned(), Json::from(0));
            }
            Op::ChildExit(code) => {
                object.insert("code".to_owned(), Json::from(*code));
            }
            Op::ChildBlock(on) => {
                object.insert("on".to_owned(), Json::from(on.name()));
            }
            _ => {}
        }
        Json::Object(object)
    }
}

impl Outcome {
    /// The replay-schema observation of this outcome for `op`:
    /// `{"op":..,"ok":value}`, `{"op":..,"err":{"type":..,"msg":..}}` or
    /// `{"op":..,"hangs":true}`.
    pub fn to_json(&self, op: &Op) -> Json {
        let mut object = Map::new();
        object.insert("op".to_owned(), Json::from(op.schema_name()));
        match self {
            Outcome::Returned(value) => {
                object.insert("ok".to_owned(), value_json(value));
            }
            Outcome::Raised(error) => {
                let mut err = Map::new();
                err.insert("type".to_owned(), Json::from(error.kind.name()));
                err.insert("msg".to_owned(), Json::from(error.message.to_string()));
                object.insert("err".to_owned(), Json::Object(err));
            }
            Outcome::Hangs => {
                object.insert("hangs".to_owned(), Json::Bool(true));
            }
        }
        Json::Object(object)
    }

    /// The outcome a replay-schema observation stands for (its `"op"` field is not checked).
    ///
    /// `ok` values map back one-to-one: `null`, bools and integers; a string is a name.
    ///
    /// # Errors
    ///
    /// [`SchemaError`] when the observation has neither `ok`, `err` nor `hangs`, or an
    /// unknown exception class, or a value of another JSON type.
    pub fn from_json(json: &Json) -> Result<Outcome, SchemaError> {
        let object = json
            .as_object()
            .ok_or_else(|| bad("an observation must be a JSON object"))?;
        if let Some(ok) = object.get("ok") {
            let value = match ok {
                Json::Null => Value::None,
                Json::Bool(b) => Value::Bool(*b),
                Json::Number(n) => Value::Int(
                    n.as_i64()
                        .ok_or_else(|| bad(format!("\"ok\" number {n} is not an integer")))?,
                ),
                Json::String(s) => Value::Str(s.clone()),
                other => return Err(bad(format!("\"ok\" value {other} is not in the schema"))),
            };
            return Ok(Outcome::Returned(value));
        }
        if let Some(err) = object.get("err") {
            let kind = err
                .get("type")
                .and_then(Json::as_str)
                .ok_or_else(|| bad("\"err\" needs a string field \"type\""))?;
            let kind = PyErrorKind::from_name(kind)
                .ok_or_else(|| bad(format!("unknown exception type {kind:?}")))?;
            let msg = err
                .get("msg")
                .and_then(Json::as_str)
                .ok_or_else(|| bad("\"err\" needs a string field \"msg\""))?;
            return Ok(Outcome::Raised(PyError {
                kind,
                message: Cow::Owned(msg.to_owned()),
            }));
        }
        if object.get("hangs") == Some(&Json::Bool(true)) {
            return Ok(Outcome::Hangs);
        }
        Err(bad("an observation needs \"ok\", \"err\" or \"hangs\""))
    }
}
