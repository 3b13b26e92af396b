//! Data-driven tests of `step` beyond the CPython table: the cells a replay cannot name
//! (a timeout that ends in time, operations while an exit is on its way, `name`), the node each
//! operation leaves, and that refusals never change the state. The table itself (every cell,
//! the exit-code mapping, the puppet protocol) is the scenario corpus
//! `verify/scenarios/cpython-table.json`, which `tests/corpus.rs` runs on the model.
//!
//! Each case is `check(ops, expected)`: the operations run from a new handle, and the
//! expectation lists every outcome, then `=>` and the final node.

mod common;

use proclife_model::{Life, Op, Outcome, State, step};

#[track_caller]
fn check(ops: &str, expect: &str) {
    let (outcomes, state) = common::run(&common::parse_ops(ops));
    assert_eq!(common::render(&outcomes, &state), expect, "ops: {ops}");
}

/// Checks only the last outcome and the final node, after a prefix that reaches a state.
#[track_caller]
fn check_last(prefix: &str, op: &str, expect: &str) {
    let mut ops = common::parse_ops(prefix);
    ops.push(common::parse_op(op));
    let (outcomes, state) = common::run(&ops);
    let last = outcomes.last().map(ToString::to_string).unwrap_or_default();
    let got = format!("{last} => {}", proclife_model::Node::of(&state).id());
    assert_eq!(got, expect, "prefix: {prefix}; op: {op}");
}

const NEW: &str = "";
const RUNNING: &str = "start";
const BLOCKED: &str = "start; child_block(lock)";
const EXITED: &str = "start; child_exit(3); settle";
const CLOSED_NEW: &str = "close";
const CLOSED_STARTED: &str = "start; child_exit(3); settle; close";

const AE_JOIN: &str = "AssertionError: can only join a started process";
const VE_CLOSED: &str = "ValueError: process object is closed";
const VE_RUNNING: &str = "ValueError: Cannot close a process while it is still running. You should first call join() or terminate().";

// join() and join(timeout)

#[test]
fn join_before_start() {
    check("join", &format!("{AE_JOIN} => new"));
    check("join_timeout(0)", &format!("{AE_JOIN} => new"));
    check("join_timeout(-1)", &format!("{AE_JOIN} => new"));
    check("join_timeout(expires)", &format!("{AE_JOIN} => new"));
    check("join_timeout(in_time)", &format!("{AE_JOIN} => new"));
}

#[test]
fn join_timeout_cells() {
    check_last(RUNNING, "join_timeout(0)", "None => running");
    check_last(RUNNING, "join_timeout(-1)", "None => running");
    check_last(RUNNING, "join_timeout(expires)", "None => running");
    check_last(RUNNING, "join_timeout(in_time)", "None => running");
    check_last("start; child_exit(3)", "join_timeout(0)", "None => exiting");
    check_last(
        "start; child_exit(3)",
        "join_timeout(-1)",
        "None => exiting",
    );
    check_last(
        "start; child_exit(3)",
        "join_timeout(expires)",
        "None => exiting",
    );
    check_last(
        "start; child_exit(3)",
        "join_timeout(in_time)",
        "None => terminated_3",
    );
    check_last(EXITED, "join_timeout(0)", "None => terminated_3");
    check_last(EXITED, "join_timeout(-1)", "None => terminated_3");
    check_last(EXITED, "join_timeout(expires)", "None => terminated_3");
    check_last(
        CLOSED_NEW,
        "join_timeout(0)",
        &format!("{VE_CLOSED} => closed_unstarted"),
    );
    check_last(
        CLOSED_STARTED,
        "join_timeout(-1)",
        &format!("{VE_CLOSED} => closed_started"),
    );
}

#[test]
fn terminate_does_not_take_effect_synchronously() {
    check(
        "start; terminate; is_alive; exitcode; close",
        &format!("None; None; True; None; {VE_RUNNING} => signalled"),
    );
}

#[test]
fn terminate_then_join_gives_minus_15() {
    check(
        "start; terminate; join; exitcode",
        "None; None; None; -15 => terminated_neg15",
    );
    check(
        "start; kill; join; exitcode",
        "None; None; None; -9 => terminated_neg9",
    );
}

#[test]
fn name_cells() {
    check(
        "name; set_name(worker); name",
        "'Process-N'; None; \"worker\" => new",
    );
    check(
        "set_name(7)",
        "AssertionError: name must be a string => new",
    );
    check_last(RUNNING, "set_name(w)", "None => running");
    check_last(
        EXITED,
        "set_name(7)",
        "AssertionError: name must be a string => terminated_3",
    );
    check_last(CLOSED_NEW, "name", "'Process-N' => closed_unstarted");
}

// The puppet protocol.

#[test]
fn release_answers_whether_the_child_was_blocked() {
    check("start; release", "None; False => running");
    check(
        "start; child_block(semaphore); release; release",
        "None; True; True; False => running",
    );
    check(
        "start; child_block(join); terminate; release",
        "None; True; None; True => signalled",
    );
}

#[test]
fn settle_returns_none_everywhere() {
    check("settle", "None => new");
    check("start; settle", "None; None => running");
    check(
        "start; child_block(condition); settle",
        "None; True; None => blocked",
    );
    check("close; settle", "None; None => closed_unstarted");
}

#[test]
fn refusals_never_change_the_state() {
    for op in Op::table_ops() {
        for prefix in [NEW, RUNNING, BLOCKED, EXITED, CLOSED_NEW, CLOSED_STARTED] {
            let (_, state) = common::run(&common::parse_ops(prefix));
            let result = step(&state, &op);
            if matches!(result.outcome, Outcome::Raised(_)) {
                assert_eq!(result.next, state, "{op} after {prefix:?}");
            }
        }
    }
}

#[test]
fn repr_words() {
    let words: Vec<&str> = [NEW, RUNNING, BLOCKED, EXITED, CLOSED_NEW]
        .iter()
        .map(|prefix| common::run(&common::parse_ops(prefix)).1.repr_word())
        .collect();
    assert_eq!(
        words,
        ["initial", "started", "started", "stopped", "closed"]
    );
    assert_eq!(State::new().life, Life::New);
}
