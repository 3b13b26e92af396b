//! Shared helpers of the model's tests: a tiny text syntax for operation sequences.
// Each test file uses a different subset of these helpers.
#![allow(dead_code)]

use proclife_model::{BlockedOn, NameArg, Node, Op, Outcome, State, Timeout, step};

/// Parses one operation: `start`, `join_timeout(0)`, `join_timeout(-1)`,
/// `join_timeout(expires)`, `join_timeout(in_time)`, `child_exit(3)`, `child_block(lock)`,
/// `set_daemon(true)`, `set_name(worker)`, `set_name(42)` (a non-string), ...
pub(crate) fn parse_op(text: &str) -> Op {
    let text = text.trim();
    let (name, arg) = match text.split_once('(') {
        Some((name, rest)) => (name, Some(rest.trim_end_matches(')'))),
        None => (text, None),
    };
    match (name, arg) {
        ("start", None) => Op::Start,
        ("run", None) => Op::Run,
        ("is_alive", None) => Op::IsAlive,
        ("join", None) => Op::Join,
        ("join_timeout", Some("expires")) => Op::JoinTimeout(Timeout::Expires),
        ("join_timeout", Some("in_time")) => Op::JoinTimeout(Timeout::InTime),
        ("join_timeout", Some(secs)) => {
            Op::JoinTimeout(Timeout::from_secs(secs.parse().expect("seconds")))
        }
        ("exitcode", None) => Op::Exitcode,
        ("pid_is_set", None) => Op::PidIsSet,
        ("sentinel_ready", None) => Op::SentinelReady,
        ("terminate", None) => Op::Terminate,
        ("kill", None) => Op::Kill,
        ("close", None) => Op::Close,
        ("daemon", None) => Op::Daemon,
        ("set_daemon", Some(value)) => Op::SetDaemon(value.parse().expect("bool")),
        ("name", None) => Op::Name,
        ("set_name", Some(value)) if value.parse::<i64>().is_ok() => Op::SetName(NameArg::NotStr),
        ("set_name", Some(value)) => Op::SetName(NameArg::Str(value.to_owned())),
        ("child_exit", Some(code)) => Op::ChildExit(code.parse().expect("exit code")),
        ("child_panic", None) => Op::ChildPanic,
        ("child_return", None) => Op::ChildReturn,
        ("child_block", Some(on)) => Op::ChildBlock(BlockedOn::from_name(on).expect("blocked on")),
        ("release", None) => Op::Release,
        ("sigstop", None) => Op::SigStop,
        ("sigcont", None) => Op::SigCont,
        ("settle", None) => Op::Settle,
        _ => panic!("unknown operation in a test: {text:?}"),
    }
}

/// Parses `a; b; c` (empty for none).
pub(crate) fn parse_ops(text: &str) -> Vec<Op> {
    text.split(';')
        .filter(|part| !part.trim().is_empty())
        .map(parse_op)
        .collect()
}

/// Runs `ops` through `step` from a new handle; returns the outcomes and the final state.
pub(crate) fn run(ops: &[Op]) -> (Vec<Outcome>, State) {
    let mut state = State::new();
    let mut outcomes = Vec::new();
    for op in ops {
        let result = step(&state, op);
        outcomes.push(result.outcome);
        state = result.next;
    }
    (outcomes, state)
}

/// Renders outcomes and the final node as `out1; out2 => node`.
pub(crate) fn render(outcomes: &[Outcome], state: &State) -> String {
    let outcomes: Vec<String> = outcomes.iter().map(ToString::to_string).collect();
    format!("{} => {}", outcomes.join("; "), Node::of(state).id())
}
