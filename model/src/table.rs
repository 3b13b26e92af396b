//! The state × operation table of `docs/semantics.md`, generated from [`step`].

use std::fmt::Write as _;

use crate::graph::Node;
use crate::op::{GRAPH_EXIT_CODES, Op};
use crate::outcome::Outcome;
use crate::state::{BlockedOn, State};
use crate::step::{events, step};

/// A representative state for a column of the table, reached from `New` by `path`.
#[derive(Debug, Clone)]
pub struct Column {
    /// The column heading.
    pub heading: &'static str,
    /// The operations that lead there from a new handle.
    pub path: Vec<Op>,
    /// The state they lead to.
    pub state: State,
}

/// The columns of the table: one representative state per kind of node.
pub fn columns() -> Vec<Column> {
    let paths: [(&'static str, Vec<Op>); 9] = [
        ("New", vec![]),
        ("Running", vec![Op::Start]),
        ("Exiting", vec![Op::Start, Op::ChildExit(3)]),
        ("Blocked", vec![Op::Start, Op::ChildBlock(BlockedOn::Event)]),
        ("Signalled", vec![Op::Start, Op::Terminate]),
        ("Stopped", vec![Op::Start, Op::SigStop]),
        (
            "Terminated(3)",
            vec![Op::Start, Op::ChildExit(3), Op::Settle],
        ),
        ("Closed (unstarted)", vec![Op::Close]),
        (
            "Closed (started)",
            vec![Op::Start, Op::ChildExit(3), Op::Settle, Op::Close],
        ),
    ];
    paths
        .into_iter()
        .map(|(heading, path)| {
            let state = path
                .iter()
                .fold(State::new(), |state, op| step(&state, op).next);
            Column {
                heading,
                path,
                state,
            }
        })
        .collect()
}

fn cell(state: &State, op: &Op) -> String {
    let result = step(state, op);
    let shown = match &result.outcome {
        Outcome::Returned(value) => format!("`{value}`"),
        Outcome::Raised(error) => format!("{}: `{}`", error.kind.name(), error.message),
        Outcome::Hangs => "hangs".to_owned(),
    };
    let from = Node::of(state);
    let to = Node::of(&result.next);
    if from == to {
        shown
    } else {
        format!("{shown} → {to}")
    }
}

/// Renders `docs/semantics.md`.
pub fn render_markdown() -> String {
    let mut out = String::new();
    out.push_str("# proclife semantics: state × operation\n\n");
    out.push_str(
        "Generated from `proclife_model::step` by `proclife_model::table::render_markdown`; \
         do not edit (the tidy test rewrites it with `UPDATE_EXPECT=1`).\n\n",
    );
    out.push_str(
        "Each cell is what the operation returns (a value, or the Python exception and its \
         exact message) and, after `→`, the state it leads to when that changes.\n",
    );
    out.push_str(
        "Asynchronous exits are not taken synchronously: they are events (second table), \
         which may happen between any two operations.\n\n",
    );
    let columns = columns();
    out.push_str("| state | reached by |\n|---|---|\n");
    for column in &columns {
        let path: Vec<String> = column.path.iter().map(ToString::to_string).collect();
        let path = if path.is_empty() {
            "a new handle".to_owned()
        } else {
            format!("`{}`", path.join(", "))
        };
        let _ = writeln!(out, "| {} | {} |", column.heading, path);
    }
    out.push_str("\n## Operations\n\n| operation |");
    for column in &columns {
        let _ = write!(out, " {} |", column.heading);
    }
    out.push_str("\n|---|");
    for _ in &columns {
        out.push_str("---|");
    }
    out.push('\n');
    for op in Op::table_ops() {
        let _ = write!(out, "| `{op}` |");
        for column in &columns {
            let _ = write!(out, " {} |", cell(&column.state, &op));
        }
        out.push('\n');
    }
    out.push_str("\n## Events\n\n| state | event | leads to |\n|---|---|---|\n");
    for column in &columns {
        for (event, next) in events(&column.state) {
            let _ = writeln!(
                out,
                "| {} | {} | {} |",
                column.heading,
                event.label(),
                Node::of(&next)
            );
        }
    }
    out.push_str("\n## Exit codes\n\n| child does | exitcode |\n|---|---|\n");
    let mut causes: Vec<Op> = GRAPH_EXIT_CODES.into_iter().map(Op::ChildExit).collect();
    causes.extend([Op::ChildPanic, Op::ChildReturn, Op::Terminate, Op::Kill]);
    for cause in causes {
        let ops = [Op::Start, cause.clone(), Op::Settle, Op::Exitcode];
        let mut state = State::new();
        let mut last = Outcome::NONE;
        for op in &ops {
            let result = step(&state, op);
            state = result.next;
            last = result.outcome;
        }
        let _ = writeln!(out, "| `start, {cause}, settle` | {last} |");
    }
    out
}
