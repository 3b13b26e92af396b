//! Data-driven tests of `step`: every cell of the CPython master table, the exit-code mapping,
//! the puppet protocol and the project's decisions.
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

const AE_TWICE: &str = "AssertionError: cannot start a process twice";
const AE_JOIN: &str = "AssertionError: can only join a started process";
const AE_STARTED: &str = "AssertionError: process has already started";
const VE_CLOSED: &str = "ValueError: process object is closed";
const VE_RUNNING: &str = "ValueError: Cannot close a process while it is still running. You should first call join() or terminate().";
const NO_TARGET: &str = "AttributeError: 'Process' object has no attribute '_target'";

// start()

#[test]
fn start_cells() {
    check_last(NEW, "start", "None => running");
    check_last(RUNNING, "start", &format!("{AE_TWICE} => running"));
    check_last(BLOCKED, "start", &format!("{AE_TWICE} => blocked"));
    check_last(EXITED, "start", &format!("{AE_TWICE} => terminated_3"));
    check_last(
        CLOSED_NEW,
        "start",
        &format!("{VE_CLOSED} => closed_unstarted"),
    );
    check_last(
        CLOSED_STARTED,
        "start",
        &format!("{VE_CLOSED} => closed_started"),
    );
}

#[test]
fn start_twice() {
    check("start; start", &format!("None; {AE_TWICE} => running"));
}

#[test]
fn start_after_join() {
    check(
        "start; child_return; join; start",
        &format!("None; True; None; {AE_TWICE} => terminated_0"),
    );
}

// run()

#[test]
fn run_cells() {
    check_last(NEW, "run", "None => new");
    check_last(RUNNING, "run", &format!("{NO_TARGET} => running"));
    check_last(BLOCKED, "run", &format!("{NO_TARGET} => blocked"));
    check_last(EXITED, "run", &format!("{NO_TARGET} => terminated_3"));
    check_last(CLOSED_NEW, "run", "None => closed_unstarted");
    check_last(
        CLOSED_STARTED,
        "run",
        &format!("{NO_TARGET} => closed_started"),
    );
}

#[test]
fn run_twice_before_start_stays_new() {
    check("run; run; start", "None; None; None => running");
}

// is_alive()

#[test]
fn is_alive_cells() {
    check_last(NEW, "is_alive", "False => new");
    check_last(RUNNING, "is_alive", "True => running");
    check_last(BLOCKED, "is_alive", "True => blocked");
    check_last(EXITED, "is_alive", "False => terminated_3");
    check_last(
        CLOSED_NEW,
        "is_alive",
        &format!("{VE_CLOSED} => closed_unstarted"),
    );
    check_last(
        CLOSED_STARTED,
        "is_alive",
        &format!("{VE_CLOSED} => closed_started"),
    );
}

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
fn join_cells() {
    check_last(RUNNING, "join", "hangs => running");
    check_last(BLOCKED, "join", "hangs => blocked");
    check_last("start; child_exit(3)", "join", "None => terminated_3");
    check_last(EXITED, "join", "None => terminated_3");
    check_last(
        CLOSED_NEW,
        "join",
        &format!("{VE_CLOSED} => closed_unstarted"),
    );
    check_last(
        CLOSED_STARTED,
        "join",
        &format!("{VE_CLOSED} => closed_started"),
    );
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
fn join_many_times() {
    check(
        "start; child_exit(3); join; join; join_timeout(0)",
        "None; True; None; None; None => terminated_3",
    );
}

// pid, exitcode, sentinel

#[test]
fn pid_cells() {
    check_last(NEW, "pid_is_set", "False => new");
    check_last(RUNNING, "pid_is_set", "True => running");
    check_last(EXITED, "pid_is_set", "True => terminated_3");
    check_last(
        CLOSED_NEW,
        "pid_is_set",
        &format!("{VE_CLOSED} => closed_unstarted"),
    );
    check_last(
        CLOSED_STARTED,
        "pid_is_set",
        &format!("{VE_CLOSED} => closed_started"),
    );
}

#[test]
fn exitcode_cells() {
    check_last(NEW, "exitcode", "None => new");
    check_last(RUNNING, "exitcode", "None => running");
    check_last(BLOCKED, "exitcode", "None => blocked");
    check_last(EXITED, "exitcode", "3 => terminated_3");
    check_last(
        CLOSED_NEW,
        "exitcode",
        &format!("{VE_CLOSED} => closed_unstarted"),
    );
    check_last(
        CLOSED_STARTED,
        "exitcode",
        &format!("{VE_CLOSED} => closed_started"),
    );
}

#[test]
fn sentinel_cells() {
    check_last(
        NEW,
        "sentinel_ready",
        "ValueError: process not started => new",
    );
    check_last(RUNNING, "sentinel_ready", "False => running");
    check_last(BLOCKED, "sentinel_ready", "False => blocked");
    check_last(EXITED, "sentinel_ready", "True => terminated_3");
    check_last(
        CLOSED_NEW,
        "sentinel_ready",
        &format!("{VE_CLOSED} => closed_unstarted"),
    );
    check_last(
        CLOSED_STARTED,
        "sentinel_ready",
        &format!("{VE_CLOSED} => closed_started"),
    );
}

// terminate() and kill()

#[test]
fn terminate_kill_before_start_is_a_project_decision() {
    check(
        "terminate",
        "AssertionError: can only terminate a started process => new",
    );
    check(
        "kill",
        "AssertionError: can only kill a started process => new",
    );
}

#[test]
fn terminate_kill_cells() {
    check_last(RUNNING, "terminate", "None => signalled");
    check_last(RUNNING, "kill", "None => signalled");
    check_last(BLOCKED, "terminate", "None => signalled");
    check_last(EXITED, "terminate", "None => terminated_3");
    check_last(EXITED, "kill", "None => terminated_3");
    check_last(
        CLOSED_NEW,
        "terminate",
        &format!("{VE_CLOSED} => closed_unstarted"),
    );
    check_last(
        CLOSED_STARTED,
        "kill",
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
fn terminate_after_exit_keeps_the_real_exit_code() {
    check(
        "start; child_exit(0); settle; terminate; join; exitcode",
        "None; True; None; None; None; 0 => terminated_0",
    );
    check(
        "start; child_exit(3); settle; kill; join; exitcode",
        "None; True; None; None; None; 3 => terminated_3",
    );
}

#[test]
fn terminate_kills_a_blocked_child() {
    check(
        "start; child_block(event); terminate; settle; exitcode",
        "None; True; None; None; -15 => terminated_neg15",
    );
    check(
        "start; child_block(barrier); kill; join; exitcode",
        "None; True; None; None; -9 => terminated_neg9",
    );
}

// close()

#[test]
fn close_cells() {
    check_last(NEW, "close", "None => closed_unstarted");
    check_last(RUNNING, "close", &format!("{VE_RUNNING} => running"));
    check_last(BLOCKED, "close", &format!("{VE_RUNNING} => blocked"));
    check_last(EXITED, "close", "None => closed_started");
    check_last(CLOSED_NEW, "close", "None => closed_unstarted");
    check_last(CLOSED_STARTED, "close", "None => closed_started");
}

#[test]
fn close_while_running() {
    check("start; close", &format!("None; {VE_RUNNING} => running"));
}

#[test]
fn close_twice() {
    check("close; close", "None; None => closed_unstarted");
}

#[test]
fn everything_after_close() {
    for op in [
        "start",
        "is_alive",
        "join",
        "join_timeout(0)",
        "join_timeout(-1)",
        "join_timeout(expires)",
        "exitcode",
        "pid_is_set",
        "sentinel_ready",
        "terminate",
        "kill",
    ] {
        check_last(
            CLOSED_STARTED,
            op,
            &format!("{VE_CLOSED} => closed_started"),
        );
    }
    check_last(CLOSED_STARTED, "daemon", "False => closed_started");
    check_last(CLOSED_STARTED, "set_daemon(true)", "None => closed_started");
    check_last(CLOSED_STARTED, "name", "'Process-N' => closed_started");
    check_last(CLOSED_STARTED, "set_name(w)", "None => closed_started");
    check_last(CLOSED_STARTED, "close", "None => closed_started");
    check_last(CLOSED_STARTED, "settle", "None => closed_started");
    check_last(CLOSED_STARTED, "child_exit(0)", "False => closed_started");
    check_last(CLOSED_STARTED, "release", "False => closed_started");
}

// daemon and name

#[test]
fn daemon_cells() {
    check(
        "daemon; set_daemon(true); daemon",
        "False; None; True => new",
    );
    check_last(
        RUNNING,
        "set_daemon(true)",
        &format!("{AE_STARTED} => running"),
    );
    check_last(
        EXITED,
        "set_daemon(false)",
        &format!("{AE_STARTED} => terminated_3"),
    );
    check(
        "set_daemon(true); start; daemon",
        "None; None; True => running",
    );
    check(
        "start; child_return; settle; close; set_daemon(true); daemon",
        "None; True; None; None; None; True => closed_started",
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

// Exit codes.

#[test]
fn exit_code_mapping() {
    let cases: [(&str, &str); 9] = [
        ("child_exit(0)", "0"),
        ("child_exit(3)", "3"),
        ("child_exit(255)", "255"),
        ("child_exit(256)", "0"),
        ("child_exit(257)", "1"),
        ("child_exit(-1)", "255"),
        ("child_exit(-15)", "241"),
        ("child_panic", "1"),
        ("child_return", "0"),
    ];
    for (cause, code) in cases {
        check_last(
            &format!("start; {cause}; settle"),
            "exitcode",
            &format!("{code} => terminated_{code}"),
        );
    }
    check_last(
        "start; terminate; settle",
        "exitcode",
        "-15 => terminated_neg15",
    );
    check_last("start; kill; settle", "exitcode", "-9 => terminated_neg9");
}

// The puppet protocol.

#[test]
fn puppet_commands_need_a_living_child() {
    check(
        "child_exit(3); child_panic; child_return; child_block(lock); release",
        "False; False; False; False; False => new",
    );
    check(
        "start; child_exit(3); child_exit(4); child_return",
        "None; True; False; False => exiting",
    );
    check(
        "start; terminate; child_exit(3); child_block(event)",
        "None; None; False; False => signalled",
    );
    check_last(EXITED, "child_panic", "False => terminated_3");
}

#[test]
fn commands_to_a_blocked_child_are_queued_until_release() {
    check(
        "start; child_block(lock); child_exit(3); is_alive; release; settle; exitcode",
        "None; True; True; True; True; None; 3 => terminated_3",
    );
    check(
        "start; child_block(lock); child_block(recv); release; is_alive; release; release",
        "None; True; True; True; True; True; False => running",
    );
    check(
        "start; child_block(lock); child_return; child_exit(5)",
        "None; True; True; False => blocked",
    );
}

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
fn join_on_an_idle_child_hangs() {
    check("start; join", "None; hangs => running");
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
