//! The replay schema's JSON form of operations and observations.

use proclife_model::{NameArg, Op, Outcome, PyError, Timeout, Value};
use serde_json::json;

#[track_caller]
fn check_op(json: serde_json::Value, expect: Op) {
    assert_eq!(Op::from_json(&json), Ok(expect));
}

#[track_caller]
fn check_bad(json: serde_json::Value, reason: &str) {
    let error = Op::from_json(&json).expect_err("not an operation");
    assert_eq!(error.reason, reason);
}

#[test]
fn schema_operations() {
    check_op(json!({"op": "start"}), Op::Start);
    check_op(
        json!({"op": "join_timeout", "secs": 0}),
        Op::JoinTimeout(Timeout::Zero),
    );
    check_op(
        json!({"op": "join_timeout", "secs": -0.5}),
        Op::JoinTimeout(Timeout::Negative),
    );
    check_op(
        json!({"op": "join_timeout", "secs": 0.05}),
        Op::JoinTimeout(Timeout::Expires),
    );
    check_op(
        json!({"op": "set_daemon", "value": true}),
        Op::SetDaemon(true),
    );
    check_op(json!({"op": "child_exit", "code": 256}), Op::ChildExit(256));
    check_op(
        json!({"op": "child_block"}),
        Op::ChildBlock(proclife_model::BlockedOn::Event),
    );
    check_op(
        json!({"op": "child_block", "on": "rlock"}),
        Op::ChildBlock(proclife_model::BlockedOn::RLock),
    );
    check_op(
        json!({"op": "set_name", "value": 3}),
        Op::SetName(NameArg::NotStr),
    );
    check_op(json!({"op": "settle", "proc": 1}), Op::Settle);
}

#[test]
fn schema_rejects_bad_operations() {
    check_bad(json!([1]), "an operation must be a JSON object");
    check_bad(
        json!({"secs": 1}),
        "an operation needs a string field \"op\"",
    );
    check_bad(json!({"op": "fly"}), "unknown operation \"fly\"");
    check_bad(
        json!({"op": "join_timeout"}),
        "operation \"join_timeout\" needs the field \"secs\"",
    );
    check_bad(
        json!({"op": "join_timeout", "secs": "soon"}),
        "\"secs\" must be a finite number",
    );
    check_bad(
        json!({"op": "child_exit", "code": 1.5}),
        "\"code\" of child_exit must be an integer",
    );
    check_bad(
        json!({"op": "set_daemon", "value": 1}),
        "\"value\" of set_daemon must be a bool",
    );
    check_bad(
        json!({"op": "child_block", "on": "spin"}),
        "unknown \"on\" of child_block: \"spin\"",
    );
}

#[test]
fn operations_round_trip() {
    for op in Op::table_ops() {
        let back = Op::from_json(&op.to_json()).expect("own output parses");
        let expected = match &op {
            Op::JoinTimeout(Timeout::InTime) => Op::JoinTimeout(Timeout::Expires),
            other => other.clone(),
        };
        assert_eq!(back, expected, "{op}");
        assert_eq!(op.to_json()["op"], json!(op.schema_name()));
    }
}

#[test]
fn observations_round_trip() {
    let outcomes = [
        Outcome::NONE,
        Outcome::bool(true),
        Outcome::Returned(Value::Int(-15)),
        Outcome::Raised(PyError::START_TWICE),
        Outcome::Raised(PyError::CLOSE_RUNNING),
        Outcome::Raised(PyError::NO_TARGET),
        Outcome::Hangs,
    ];
    for outcome in outcomes {
        let json = outcome.to_json(&Op::Start);
        assert_eq!(Outcome::from_json(&json), Ok(outcome.clone()), "{json}");
    }
    assert_eq!(
        Outcome::NONE.to_json(&Op::Join),
        json!({"op": "join", "ok": null})
    );
    assert_eq!(
        Outcome::Raised(PyError::CLOSED).to_json(&Op::IsAlive),
        json!({"op": "is_alive", "err": {"type": "ValueError", "msg": "process object is closed"}})
    );
}

#[test]
fn observations_from_another_implementation_compare_equal() {
    let json = json!({"op": "start", "err": {"type": "AssertionError", "msg": "cannot start a process twice"}});
    assert_eq!(
        Outcome::from_json(&json),
        Ok(Outcome::Raised(PyError::START_TWICE))
    );
    assert!(Outcome::from_json(&json!({"op": "start"})).is_err());
    assert!(
        Outcome::from_json(&json!({"op": "start", "err": {"type": "OSError", "msg": "x"}}))
            .is_err()
    );
    assert!(Outcome::from_json(&json!({"op": "exitcode", "ok": 1.5})).is_err());
}
