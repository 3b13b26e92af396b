//! Data-driven tests of the stopped state: `sigstop` and `sigcont`, every parent operation on
//! a stopped child, and what a stop does to pending signals and to the checker's set of
//! possible states (decision 0017).
//!
//! Each case is `check(ops, expected)`: the operations run from a new handle, and the
//! expectation lists every outcome, then `=>` and the final node.

mod common;

use proclife_model::{
    BlockedOn, Event, Life, Op, Outcome, Possible, Signal, State, Timeout, Value, WaitLength,
    events, step,
};

#[track_caller]
fn check(ops: &str, expect: &str) {
    let (outcomes, state) = common::run(&common::parse_ops(ops));
    assert_eq!(common::render(&outcomes, &state), expect, "ops: {ops}");
}

const VE_RUNNING: &str = "ValueError: Cannot close a process while it is still running. You should first call join() or terminate().";

#[test]
fn sigstop_stops_a_running_or_blocked_child_and_sigcont_takes_it_back() {
    check("start; sigstop", "None; True => stopped");
    check("start; sigstop; sigcont", "None; True; True => running");
    check(
        "start; child_block(read); sigstop; sigcont",
        "None; True; True; True => blocked",
    );
    check(
        "start; child_block(sleep); sigstop; sigstop; sigcont; release",
        "None; True; True; True; True; True => running",
    );
    // A running child is not changed by SIGCONT.
    check("start; sigcont", "None; True => running");
}

#[test]
fn sigstop_and_sigcont_answer_false_without_a_calm_child() {
    check("sigstop; sigcont", "False; False => new");
    check("close; sigstop", "None; False => closed_unstarted");
    check(
        "start; child_exit(3); sigstop; sigcont",
        "None; True; False; False => exiting",
    );
    check(
        "start; terminate; sigstop",
        "None; None; False => signalled",
    );
    check(
        "start; child_exit(3); settle; sigstop",
        "None; True; None; False => terminated_3",
    );
}

#[test]
fn a_stopped_child_is_alive_and_refuses_what_a_running_one_refuses() {
    let stopped = "start; sigstop";
    check(
        &format!("{stopped}; is_alive; exitcode; pid_is_set; sentinel_ready"),
        "None; True; True; None; True; False => stopped",
    );
    check(
        &format!("{stopped}; close; start; set_daemon(true)"),
        &format!(
            "None; True; {VE_RUNNING}; AssertionError: cannot start a process twice; AssertionError: process has already started => stopped"
        ),
    );
    check(
        &format!("{stopped}; run"),
        "None; True; AttributeError: 'Process' object has no attribute '_target' => stopped",
    );
}

#[test]
fn a_stopped_child_obeys_no_command_and_is_released_by_nothing_but_sigcont() {
    check(
        "start; sigstop; child_exit(3); child_panic; child_return; child_block(lock); release",
        "None; True; False; False; False; False; False => stopped",
    );
    check(
        "start; child_block(event); sigstop; release; sigcont; release",
        "None; True; True; False; True; True => running",
    );
}

#[test]
fn join_on_a_stopped_child_hangs_and_a_timed_join_times_out() {
    check("start; sigstop; join", "None; True; hangs => stopped");
    check(
        "start; sigstop; join_timeout(in_time); join_timeout(expires); join_timeout(0); join_timeout(-1)",
        "None; True; None; None; None; None => stopped",
    );
    check("start; sigstop; settle", "None; True; None => stopped");
}

#[test]
fn terminate_continues_a_stopped_child_so_it_dies_of_sigterm() {
    // proclife sends SIGCONT after SIGTERM (decision 0015).
    check(
        "start; sigstop; terminate; join; exitcode",
        "None; True; None; None; -15 => terminated_neg15",
    );
    let (_, state) = common::run(&common::parse_ops("start; sigstop; terminate"));
    assert!(
        matches!(state.life, Life::Running { signals, .. } if signals.term),
        "terminate() continues the child with SIGTERM on its way: {state:?}"
    );
}

#[test]
fn kill_ends_a_stopped_child_where_it_stands() {
    check(
        "start; sigstop; kill; is_alive; sigcont; release",
        "None; True; None; True; False; False => signalled",
    );
    check(
        "start; child_block(read); sigstop; kill; settle; exitcode",
        "None; True; True; None; None; -9 => terminated_neg9",
    );
    let (_, state) = common::run(&common::parse_ops("start; sigstop; kill"));
    assert!(matches!(state.life, Life::Stopped { .. }), "{state:?}");
    let after: Vec<Event> = events(&state).into_iter().map(|(e, _)| e).collect();
    assert_eq!(after, [Event::Deliver(Signal::Kill)]);
}

#[test]
fn a_stopped_child_acts_on_nothing_but_sigkill() {
    // Reached only by hand (the checker never stops an exiting child): an exit and a SIGTERM
    // on their way wait for SIGCONT.
    let exiting = State {
        life: Life::Stopped {
            was: Box::new(Life::Running {
                exiting: Some(3),
                signals: proclife_model::Signals::NONE.with(Signal::Term),
            }),
        },
        ..State::new()
    };
    assert!(events(&exiting).is_empty());
    assert_eq!(step(&exiting, &Op::Join).outcome, Outcome::Hangs);
    let continued = step(&exiting, &Op::Terminate).next;
    assert_eq!(events(&continued).len(), 2, "{continued:?}");
}

#[test]
fn the_checker_expects_a_stopped_wait_to_last_its_whole_timeout() {
    let mut possible = Possible::new();
    possible.observe(&Op::Start, &Outcome::NONE).unwrap();
    possible
        .observe(&Op::SigStop, &Outcome::bool(true))
        .unwrap();
    let wait = Op::JoinTimeout(Timeout::Expires);
    assert_eq!(possible.wait_length(&wait), WaitLength::Full);
    possible.observe(&Op::Kill, &Outcome::NONE).unwrap();
    // The SIGKILL may or may not have ended it yet.
    assert_eq!(
        possible.admits(&Op::IsAlive),
        [Outcome::bool(false), Outcome::bool(true)].into()
    );
    assert_eq!(
        possible.admits(&Op::SigCont),
        [Outcome::bool(false)].into(),
        "a child with a SIGKILL on its way is not continued"
    );
    possible.observe(&Op::Settle, &Outcome::NONE).unwrap();
    possible
        .observe(&Op::Exitcode, &Outcome::Returned(Value::Int(-9)))
        .unwrap();
}

#[test]
fn the_kernel_waits_are_blocking_reasons_of_the_schema() {
    for on in [BlockedOn::Read, BlockedOn::Sleep] {
        assert!(on.is_kernel_wait());
        assert_eq!(BlockedOn::from_name(on.name()), Some(on));
        assert!(BlockedOn::GRAPH.contains(&on));
        assert!(!Op::ChildBlock(on).in_conformance());
    }
    assert!(!Op::SigStop.in_conformance() && !Op::SigCont.in_conformance());
    assert!(Op::ChildBlock(BlockedOn::Lock).in_conformance());
    for op in [Op::SigStop, Op::SigCont] {
        assert_eq!(Op::from_json(&op.to_json()).unwrap(), op);
    }
}
