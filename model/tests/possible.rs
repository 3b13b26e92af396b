//! The `Possible` checker: racy runs are accepted in every real interleaving and only then,
//! and a `settle` after each exit-causing operation keeps the set a single state.

mod common;

use std::collections::BTreeSet;

use proclife_model::{
    BlockedOn, Node, Op, Outcome, Possible, PyError, State, TransitionGraph, Value, step,
};

fn int(n: i64) -> Outcome {
    Outcome::Returned(Value::Int(n))
}

/// Feeds `ops` with the outcomes the deterministic `step` gives.
fn observe_all(possible: &mut Possible, ops: &str) {
    for op in common::parse_ops(ops) {
        let admitted = possible.admits(&op);
        assert_eq!(admitted.len(), 1, "{op} admits {admitted:?}");
        let outcome = admitted.into_iter().next().expect("one outcome");
        possible.observe(&op, &outcome).expect("admitted outcome");
    }
}

fn admits(ops: &str, op: &str) -> BTreeSet<Outcome> {
    let mut possible = Possible::new();
    for prefix_op in common::parse_ops(ops) {
        let outcome = possible
            .admits(&prefix_op)
            .into_iter()
            .next()
            .expect("some outcome");
        possible.observe(&prefix_op, &outcome).expect("admitted");
    }
    possible.admits(&common::parse_op(op))
}

#[test]
fn exit_races_with_is_alive() {
    let admitted = admits("start; child_exit(3)", "is_alive");
    assert_eq!(
        admitted,
        BTreeSet::from([Outcome::bool(false), Outcome::bool(true)])
    );
}

#[test]
fn is_alive_true_then_false_is_accepted_but_not_false_then_true() {
    let mut possible = Possible::new();
    observe_all(&mut possible, "start; child_exit(3)");
    possible
        .observe(&Op::IsAlive, &Outcome::bool(true))
        .expect("not exited yet");
    possible
        .observe(&Op::IsAlive, &Outcome::bool(false))
        .expect("exited now");
    let error = possible
        .observe(&Op::IsAlive, &Outcome::bool(true))
        .expect_err("no restart");
    assert_eq!(error.admitted, BTreeSet::from([Outcome::bool(false)]));
    possible
        .observe(&Op::Exitcode, &int(3))
        .expect("its own code");
}

#[test]
fn terminate_races_with_own_exit() {
    let mut possible = Possible::new();
    observe_all(&mut possible, "start");
    possible
        .observe(&Op::ChildExit(0), &Outcome::bool(true))
        .expect("delivered");
    possible
        .observe(&Op::Terminate, &Outcome::NONE)
        .expect("terminate returns None");
    possible
        .observe(&Op::Join, &Outcome::NONE)
        .expect("join returns");
    assert_eq!(
        possible.admits(&Op::Exitcode),
        BTreeSet::from([int(-15), int(0)])
    );
    for code in [0, -15] {
        let mut each = possible.clone();
        each.observe(&Op::Exitcode, &int(code))
            .expect("either code");
        assert_eq!(each.states().len(), 1);
    }
    assert!(possible.clone().observe(&Op::Exitcode, &int(-9)).is_err());
}

#[test]
fn terminate_and_kill_race_with_each_other() {
    assert_eq!(
        admits("start; terminate; kill; join", "exitcode"),
        BTreeSet::from([int(-15), int(-9)])
    );
}

#[test]
fn close_right_after_terminate_may_succeed_or_refuse() {
    assert_eq!(
        admits("start; terminate", "close"),
        BTreeSet::from([Outcome::NONE, Outcome::Raised(PyError::CLOSE_RUNNING)])
    );
}

#[test]
fn sentinel_and_exitcode_race_too() {
    assert_eq!(
        admits("start; child_panic", "sentinel_ready"),
        BTreeSet::from([Outcome::bool(false), Outcome::bool(true)])
    );
    assert_eq!(
        admits("start; child_panic", "exitcode"),
        BTreeSet::from([Outcome::NONE, int(1)])
    );
}

#[test]
fn puppet_commands_race_with_a_pending_signal() {
    // After terminate() the child is exiting: commands are refused whether or not the signal
    // has landed; release still finds a blocked child until it has.
    assert_eq!(
        admits("start; terminate", "child_exit(1)"),
        BTreeSet::from([Outcome::bool(false)])
    );
    assert_eq!(
        admits("start; child_block(event); terminate", "release"),
        BTreeSet::from([Outcome::bool(false), Outcome::bool(true)])
    );
}

#[test]
fn join_collapses_the_set() {
    let mut possible = Possible::new();
    observe_all(&mut possible, "start; child_exit(256)");
    possible
        .observe(&Op::Join, &Outcome::NONE)
        .expect("join returns");
    assert_eq!(possible.states().len(), 1);
    assert_eq!(possible.admits(&Op::Exitcode), BTreeSet::from([int(0)]));
}

#[test]
fn positive_join_timeout_may_expire_or_end_in_time() {
    let mut possible = Possible::new();
    observe_all(&mut possible, "start; child_exit(3)");
    possible
        .observe(
            &Op::JoinTimeout(proclife_model::Timeout::Expires),
            &Outcome::NONE,
        )
        .expect("None either way");
    assert_eq!(
        possible.admits(&Op::IsAlive),
        BTreeSet::from([Outcome::bool(false), Outcome::bool(true)])
    );
}

#[test]
fn a_hanging_join_is_admitted_only_where_nothing_is_pending() {
    assert_eq!(admits("start", "join"), BTreeSet::from([Outcome::Hangs]));
    assert_eq!(
        admits("start; child_block(lock)", "join"),
        BTreeSet::from([Outcome::Hangs])
    );
    assert_eq!(
        admits("start; child_return", "join"),
        BTreeSet::from([Outcome::NONE])
    );
}

#[test]
fn wrong_observations_are_rejected_and_leave_the_set_alone() {
    let mut possible = Possible::new();
    let before = possible.clone();
    let error = possible
        .observe(&Op::Start, &Outcome::Raised(PyError::START_TWICE))
        .expect_err("a first start succeeds");
    assert_eq!(error.admitted, BTreeSet::from([Outcome::NONE]));
    assert_eq!(possible, before);
    assert!(error.to_string().contains("cannot start a process twice"));
}

#[test]
fn settle_after_every_exit_causing_op_keeps_a_single_state() {
    // A long sequence over every kind of operation, settling after each that may cause an
    // exit: the checker must never have more than one candidate state.
    let sequences = [
        "start; child_block(lock); settle; child_exit(3); settle; is_alive; release; settle; \
         is_alive; exitcode; terminate; settle; exitcode; join; close; close",
        "set_daemon(true); start; daemon; terminate; settle; is_alive; kill; settle; exitcode; \
         sentinel_ready; join_timeout(0.5); close; set_daemon(false); run",
        "start; child_block(recv); kill; settle; release; exitcode; pid_is_set; close",
        "start; join_timeout(0); join_timeout(-1); join_timeout(0.1); child_return; settle; \
         join_timeout(0.1); exitcode",
        "start; child_block(barrier); child_block(join); settle; release; settle; release; \
         settle; child_panic; settle; join; exitcode",
    ];
    for sequence in sequences {
        let mut possible = Possible::new();
        let mut state = State::new();
        for op in common::parse_ops(sequence) {
            let expected = step(&state, &op);
            possible
                .observe(&op, &expected.outcome)
                .unwrap_or_else(|e| panic!("{sequence}: {e}"));
            assert_eq!(possible.states().len(), 1, "{sequence}: after {op}");
            if !op.may_cause_exit() {
                assert_eq!(
                    possible.states().iter().next(),
                    Some(&expected.next),
                    "{sequence}: after {op}"
                );
            }
            state = possible.states().iter().next().cloned().expect("one state");
        }
    }
}

#[test]
fn observed_edges_are_graph_edges() {
    let graph = TransitionGraph::explore();
    let mut possible = Possible::new();
    let mut seen = BTreeSet::new();
    for op in common::parse_ops(
        "start; child_block(recv); child_exit(-1); release; is_alive; join; exitcode; close",
    ) {
        let outcome = possible
            .admits(&op)
            .into_iter()
            .next_back()
            .expect("some outcome");
        let edges = possible.observe(&op, &outcome).expect("admitted");
        for edge in edges {
            assert!(graph.contains(&edge), "{edge:?}");
            seen.insert(edge.to);
        }
    }
    assert!(seen.contains(&Node::Terminated { exitcode: 255 }));
    assert!(seen.contains(&Node::Closed { was_started: true }));
}

#[test]
fn every_blocked_kind_is_accepted() {
    for on in BlockedOn::ALL {
        let mut possible = Possible::new();
        observe_all(&mut possible, "start");
        possible
            .observe(&Op::ChildBlock(on), &Outcome::bool(true))
            .expect("delivered");
        possible
            .observe(&Op::IsAlive, &Outcome::bool(true))
            .expect("a blocked child is alive");
    }
}

/// Every sequence of outcomes some interleaving of `ops` (from `state`) produces: before each
/// operation at most one pending event may fire (each ends the child), and a positive timeout
/// may expire or end in time.
fn interleavings(state: &State, ops: &[Op]) -> BTreeSet<Vec<Outcome>> {
    let Some((op, rest)) = ops.split_first() else {
        return BTreeSet::from([Vec::new()]);
    };
    let mut starts = vec![state.clone()];
    starts.extend(
        proclife_model::events(state)
            .into_iter()
            .map(|(_, next)| next),
    );
    let refined = match op {
        Op::JoinTimeout(t) if t.is_positive() => vec![
            Op::JoinTimeout(proclife_model::Timeout::Expires),
            Op::JoinTimeout(proclife_model::Timeout::InTime),
        ],
        other => vec![other.clone()],
    };
    let mut out = BTreeSet::new();
    for start in &starts {
        for op in &refined {
            let result = step(start, op);
            for mut tail in interleavings(&result.next, rest) {
                tail.insert(0, result.outcome.clone());
                out.insert(tail);
            }
        }
    }
    out
}

#[test]
fn possible_accepts_exactly_the_interleavings() {
    let alphabet = common::parse_ops(
        "is_alive; join; join_timeout(0); join_timeout(expires); exitcode; sentinel_ready; \
         terminate; kill; close; child_exit(3); child_panic; child_block(lock); release; settle",
    );
    let mut checked = 0;
    for a in &alphabet {
        for b in &alphabet {
            for c in &alphabet {
                let ops = [Op::Start, a.clone(), b.clone(), c.clone()];
                let traces = interleavings(&State::new(), &ops);
                // Every interleaving is accepted ...
                for trace in &traces {
                    let mut possible = Possible::new();
                    for (op, outcome) in ops.iter().zip(trace) {
                        possible
                            .observe(op, outcome)
                            .unwrap_or_else(|e| panic!("{ops:?} {trace:?}: {e}"));
                    }
                }
                // ... and at each step the checker admits exactly the next outcomes of the
                // interleavings that agree so far.
                for trace in &traces {
                    let mut possible = Possible::new();
                    for (position, (op, outcome)) in ops.iter().zip(trace).enumerate() {
                        let expected: BTreeSet<Outcome> = traces
                            .iter()
                            .filter(|t| t[..position] == trace[..position])
                            .map(|t| t[position].clone())
                            .collect();
                        assert_eq!(possible.admits(op), expected, "{ops:?} at {position}");
                        possible.observe(op, outcome).expect("accepted above");
                    }
                }
                checked += 1;
            }
        }
    }
    assert_eq!(checked, alphabet.len().pow(3));
}

#[test]
fn settle_discipline_keeps_a_singleton_for_all_short_sequences() {
    let alphabet = Op::graph_ops();
    for a in &alphabet {
        for b in &alphabet {
            let mut ops = Vec::new();
            for op in [Op::Start, a.clone(), b.clone(), Op::Exitcode] {
                let settle = op.may_cause_exit();
                ops.push(op);
                if settle {
                    ops.push(Op::Settle);
                }
            }
            let mut possible = Possible::new();
            for op in &ops {
                let admitted = possible.admits(op);
                assert_eq!(admitted.len(), 1, "{ops:?}: {op} admits {admitted:?}");
                let outcome = admitted.into_iter().next().expect("one outcome");
                possible.observe(op, &outcome).expect("admitted");
                assert_eq!(possible.states().len(), 1, "{ops:?}: after {op}");
            }
        }
    }
}

#[test]
fn racing_edges_are_reported_once_a_later_observation_decides_them() {
    let graph = TransitionGraph::explore();
    let mut possible = Possible::new();
    let mut certain = BTreeSet::new();
    for op in common::parse_ops("start; child_exit(3)") {
        certain.extend(
            possible
                .observe(&op, &possible.admits(&op).into_iter().next().unwrap())
                .unwrap(),
        );
    }
    certain.clear();
    // The timed join may have expired with the child still exiting, or ended in time after the
    // exit: nothing about it is certain yet.
    let join = Op::JoinTimeout(proclife_model::Timeout::Expires);
    let now = possible.observe(&join, &Outcome::NONE).expect("admitted");
    assert!(now.is_empty(), "{now:?}");
    // The child is still alive, so the join expired: its edge from the exiting state is certain.
    let now = possible
        .observe(&Op::IsAlive, &Outcome::bool(true))
        .expect("admitted");
    let froms: BTreeSet<(Node, Node)> = now.iter().map(|e| (e.from, e.to)).collect();
    assert_eq!(now.len(), 2, "{now:?}");
    assert_eq!(froms.len(), 1);
    for edge in &now {
        assert!(graph.contains(edge));
        assert_eq!(edge.from, edge.to);
        assert!(edge.from.is_alive());
    }
    // Reported once: the next observation reports only its own edge, not the join's again.
    let again = possible
        .observe(&Op::IsAlive, &Outcome::bool(true))
        .expect("admitted");
    assert_eq!(again.len(), 1);
    let join_edge = now
        .iter()
        .find(|e| e.label.trigger.to_string().starts_with("join_timeout"));
    assert!(join_edge.is_some(), "{now:?}");
    assert!(!again.contains(join_edge.unwrap()));
}

#[test]
fn a_race_that_is_never_decided_reports_nothing_of_it() {
    let mut possible = Possible::new();
    for op in common::parse_ops("start; child_exit(0); terminate") {
        let outcome = possible.admits(&op).into_iter().next().unwrap();
        possible.observe(&op, &outcome).unwrap();
    }
    // Own exit or SIGTERM: the join cannot tell, so neither event edge is reported...
    let edges = possible
        .observe(&Op::Join, &Outcome::NONE)
        .expect("admitted");
    assert!(
        edges
            .iter()
            .all(|e| !matches!(e.label.trigger, proclife_model::Trigger::Event(_)))
    );
    // ...until the exit code does.
    let edges = possible
        .observe(
            &Op::Exitcode,
            &Outcome::Returned(proclife_model::Value::Int(-15)),
        )
        .expect("admitted");
    assert!(
        edges
            .iter()
            .any(|e| matches!(e.label.trigger, proclife_model::Trigger::Event(_)))
    );
}
