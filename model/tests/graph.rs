//! Properties of the derived transition graph, its pinned size, and its renderings.

mod common;

use std::collections::BTreeSet;

use petgraph::Direction;
use petgraph::visit::{Dfs, EdgeRef, Reversed};
use proclife_model::export::{FORMAT_VERSION, GraphDoc, render_json};
use proclife_model::{Node, Op, State, TransitionGraph, Trigger, step, transition_edges};

fn graph() -> TransitionGraph {
    TransitionGraph::explore()
}

/// The nodes reachable from `start` (itself included).
fn reachable_from(graph: &TransitionGraph, start: Node) -> BTreeSet<Node> {
    let g = graph.graph();
    let mut seen = BTreeSet::new();
    let Some(index) = graph.index_of(start) else {
        return seen;
    };
    let mut dfs = Dfs::new(g, index);
    while let Some(next) = dfs.next(g) {
        seen.insert(g[next]);
    }
    seen
}

#[test]
fn size_is_pinned() {
    // 14 nodes: New; Running; Exiting (own exit on its way); Blocked; Signalled (a signal on
    // its way); Stopped (by SIGSTOP); Terminated with -15, -9, 0, 1, 3, 255; Closed never
    // started; Closed after start.
    let graph = graph();
    let nodes: Vec<String> = graph.nodes().map(Node::id).collect();
    assert_eq!(
        nodes,
        [
            "new",
            "running",
            "exiting",
            "blocked",
            "signalled",
            "stopped",
            "terminated_neg15",
            "terminated_neg9",
            "terminated_0",
            "terminated_1",
            "terminated_3",
            "terminated_255",
            "closed_unstarted",
            "closed_started",
        ]
    );
    // 546 edges: waiting operations on an exiting child are drawn as the exit event followed by
    // the operation, not as shortcuts (see `transition_edges`).
    assert_eq!((graph.node_count(), graph.edge_count()), (14, 546));
}

#[test]
fn every_node_is_reachable_from_new() {
    let graph = graph();
    let reachable = reachable_from(&graph, Node::New);
    let all: BTreeSet<Node> = graph.nodes().collect();
    assert_eq!(reachable, all);
}

#[test]
fn no_restart_after_termination() {
    let graph = graph();
    for key in graph.edges() {
        if matches!(key.from, Node::Terminated { .. }) {
            assert!(!key.to.is_alive(), "restart edge: {key:?}");
            assert!(key.to != Node::New, "edge back to New: {key:?}");
        }
    }
}

#[test]
fn terminated_is_reachable_from_every_started_state() {
    let graph = graph();
    for node in graph.nodes().filter(|n| n.is_alive()) {
        let reachable = reachable_from(&graph, node);
        assert!(
            reachable.contains(&Node::Terminated { exitcode: -15 }),
            "terminate() does not end {node}"
        );
        assert!(
            reachable.contains(&Node::Terminated { exitcode: -9 }),
            "kill() does not end {node}"
        );
    }
}

#[test]
fn closed_is_entered_only_from_new_and_terminated() {
    let graph = graph();
    let g = graph.graph();
    for closed in [false, true] {
        let node = Node::Closed {
            was_started: closed,
        };
        let index = graph.index_of(node).expect("both closed nodes exist");
        for edge in g.edges_directed(index, Direction::Incoming) {
            let from = g[edge.source()];
            assert!(
                matches!(
                    from,
                    Node::New | Node::Terminated { .. } | Node::Closed { .. }
                ),
                "{from} -> {node}"
            );
        }
    }
    // And a closed handle never leaves the closed nodes.
    let leaving: Vec<_> = graph
        .edges()
        .filter(|k| matches!(k.from, Node::Closed { .. }) && k.to != k.from)
        .collect();
    assert!(leaving.is_empty(), "{leaving:?}");
}

#[test]
fn closed_after_start_cannot_reach_alive_states() {
    let graph = graph();
    let g = graph.graph();
    let index = graph
        .index_of(Node::Closed { was_started: true })
        .expect("node exists");
    // Walk backwards: only New and the terminated nodes lead here, never directly an alive one.
    let reversed = Reversed(g);
    let mut dfs = Dfs::new(reversed, index);
    let mut predecessors = BTreeSet::new();
    while let Some(next) = dfs.next(reversed) {
        predecessors.insert(g[next]);
    }
    assert!(predecessors.contains(&Node::New));
    assert!(predecessors.contains(&Node::Running));
}

#[test]
fn every_edge_is_the_image_of_a_transition_from_a_reachable_state() {
    // Replays a handful of real paths and checks their edges are in the graph.
    let graph = graph();
    for path in [
        "start; child_exit(3); settle; close",
        "start; child_block(lock); child_exit(256); release; join; exitcode",
        "start; terminate; kill; join",
        "set_daemon(true); start; daemon; child_panic; join_timeout(in_time)",
    ] {
        let mut state = State::new();
        for op in common::parse_ops(path) {
            let result = step(&state, &op);
            for key in transition_edges(&state, &op, &result) {
                assert!(graph.contains(&key), "{path}: {key:?}");
            }
            state = result.next;
        }
    }
}

#[test]
fn every_graph_operation_labels_some_edge() {
    let graph = graph();
    let labels: BTreeSet<String> = graph
        .edges()
        .filter_map(|k| match &k.label.trigger {
            Trigger::Op(label) => Some(label.clone()),
            Trigger::Event(_) => None,
        })
        .collect();
    for op in Op::graph_ops() {
        assert!(labels.contains(&op.label()), "{op}");
    }
    assert!(!labels.contains("name"));
}

#[test]
fn renderings_are_deterministic() {
    let first = graph();
    let second = graph();
    assert_eq!(
        proclife_model::dot::render(&first),
        proclife_model::dot::render(&second)
    );
    assert_eq!(render_json(&first), render_json(&second));
}

#[test]
fn json_round_trips_and_counts_match() {
    let graph = graph();
    let text = render_json(&graph);
    let doc: GraphDoc = serde_json::from_str(&text).expect("valid JSON");
    assert_eq!(doc.format_version, FORMAT_VERSION);
    assert_eq!(doc.nodes.len(), graph.node_count());
    assert_eq!(doc.edges.len(), graph.edge_count());
    assert_eq!(doc, GraphDoc::from_graph(&graph));
}

#[test]
fn dot_names_every_node() {
    let graph = graph();
    let dot = proclife_model::dot::render(&graph);
    assert!(dot.starts_with("// Generated"));
    assert!(dot.contains("digraph lifecycle {"));
    for node in graph.nodes() {
        assert!(
            dot.contains(&format!("    {} [label=", node.id())),
            "{node}"
        );
    }
    assert!(dot.ends_with("}\n"));
}

#[test]
fn no_shortcut_bypasses_a_pending_exit() {
    // A real run cannot tell `join` on an exiting child from the exit followed by `join`, so
    // the graph has only the latter.
    let graph = graph();
    for key in graph.edges() {
        if let Trigger::Op(label) = &key.label.trigger {
            let waits = label == "join" || label == "settle";
            if waits && matches!(key.from, Node::Exiting | Node::Signalled) {
                assert_eq!(key.from, key.to, "shortcut: {key:?}");
            }
        }
    }
}

#[test]
fn story_keeps_exactly_the_state_changing_edges() {
    use proclife_model::story::{Actor, StoryNode, story};
    let graph = graph();
    let arrows = story(&graph);
    assert_eq!(
        arrows.len(),
        17,
        "the story's arrow count changed: {arrows:#?}"
    );
    for arrow in &arrows {
        assert_ne!(arrow.from, arrow.to, "a self-loop in the story: {arrow:?}");
        assert!(
            !arrow.lines.is_empty(),
            "an arrow without a label: {arrow:?}"
        );
    }
    // Every edge of the full graph that changes the story node has an arrow between the same
    // two story nodes; no arrow exists without such an edge.
    let changing: BTreeSet<(StoryNode, StoryNode)> = graph
        .edges()
        .map(|key| (StoryNode::of(key.from), StoryNode::of(key.to)))
        .filter(|(from, to)| from != to)
        .collect();
    let drawn: BTreeSet<(StoryNode, StoryNode)> =
        arrows.iter().map(|arrow| (arrow.from, arrow.to)).collect();
    assert_eq!(drawn, changing);
    // Only events end a process, and every exit code of the graph is named on some arrow.
    for arrow in arrows.iter().filter(|a| a.to == StoryNode::Terminated) {
        assert_eq!(arrow.actor, Actor::Event, "{arrow:?}");
    }
    let text: String = arrows.iter().flat_map(|a| a.lines.clone()).collect();
    for node in graph.nodes() {
        if let Node::Terminated { exitcode } = node {
            assert!(
                text.contains(&exitcode.to_string()),
                "exit code {exitcode} is missing from the story's labels: {text}"
            );
        }
    }
}
