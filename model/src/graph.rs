//! The transition graph, derived from [`step`] and [`events`] by exploration from `New`.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt;

use petgraph::graph::{Graph, NodeIndex};

use crate::op::Op;
use crate::outcome::{Outcome, Step};
use crate::state::{Life, State};
use crate::step::{Event, events, step};

/// A node of the transition graph: a state with its details abstracted away.
///
/// The abstraction keeps what the parent's operations can tell apart and drops the rest: the
/// `daemon` flag and the name, what a blocked child waits for, the commands it has queued,
/// and the exit code of an exit still on its way.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Node {
    /// Never started.
    New,
    /// Alive, not blocked, nothing pending.
    Running,
    /// Alive, not blocked, carrying out its own exit (not yet happened); no signal pending.
    Exiting,
    /// Alive and blocked; no signal pending.
    Blocked,
    /// Alive, running or blocked, with a `SIGTERM` or `SIGKILL` on its way (and maybe its own
    /// exit too), or stopped with a `SIGKILL` on its way.
    Signalled,
    /// Alive and stopped by `SIGSTOP`, running or blocked underneath; no signal pending.
    Stopped,
    /// Exited with this exit code.
    Terminated {
        /// CPython's `exitcode`.
        exitcode: i32,
    },
    /// Closed.
    Closed {
        /// Whether the handle had been started.
        was_started: bool,
    },
}

impl Node {
    /// The node a state belongs to.
    pub fn of(state: &State) -> Node {
        match &state.life {
            Life::New => Node::New,
            life @ (Life::Running { .. } | Life::Blocked { .. } | Life::Stopped { .. })
                if life.signals().any() =>
            {
                Node::Signalled
            }
            Life::Stopped { .. } => Node::Stopped,
            Life::Running { exiting: None, .. } => Node::Running,
            Life::Running {
                exiting: Some(_), ..
            } => Node::Exiting,
            Life::Blocked { .. } => Node::Blocked,
            Life::Terminated { exitcode } => Node::Terminated {
                exitcode: *exitcode,
            },
            Life::Closed { was_started } => Node::Closed {
                was_started: *was_started,
            },
        }
    }

    /// A stable identifier, usable in DOT and JSON: `new`, `terminated_3`,
    /// `terminated_neg15`, `closed_started`, ...
    pub fn id(self) -> String {
        match self {
            Node::New => "new".to_owned(),
            Node::Running => "running".to_owned(),
            Node::Exiting => "exiting".to_owned(),
            Node::Blocked => "blocked".to_owned(),
            Node::Signalled => "signalled".to_owned(),
            Node::Stopped => "stopped".to_owned(),
            Node::Terminated { exitcode } if exitcode < 0 => {
                format!("terminated_neg{}", exitcode.unsigned_abs())
            }
            Node::Terminated { exitcode } => format!("terminated_{exitcode}"),
            Node::Closed { was_started: false } => "closed_unstarted".to_owned(),
            Node::Closed { was_started: true } => "closed_started".to_owned(),
        }
    }

    /// Whether the child is alive in this node.
    pub fn is_alive(self) -> bool {
        matches!(
            self,
            Node::Running | Node::Exiting | Node::Blocked | Node::Signalled | Node::Stopped
        )
    }
}

impl fmt::Display for Node {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Node::New => f.write_str("New"),
            Node::Running => f.write_str("Running"),
            Node::Exiting => f.write_str("Running (exit on its way)"),
            Node::Blocked => f.write_str("Blocked"),
            Node::Signalled => f.write_str("Running, Blocked or Stopped (signal on its way)"),
            Node::Stopped => f.write_str("Stopped (by SIGSTOP)"),
            Node::Terminated { exitcode } => write!(f, "Terminated (exitcode {exitcode})"),
            Node::Closed { was_started: false } => f.write_str("Closed (never started)"),
            Node::Closed { was_started: true } => f.write_str("Closed (after start)"),
        }
    }
}

/// What makes an edge: an operation (by its [`Op::label`]) or an asynchronous event.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Trigger {
    /// An operation, named by [`Op::label`].
    Op(String),
    /// An event.
    Event(Event),
}

impl fmt::Display for Trigger {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Trigger::Op(label) => f.write_str(label),
            Trigger::Event(event) => write!(f, "[{}]", event.label()),
        }
    }
}

/// The label of an edge: its trigger and, for an operation, the outcome.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EdgeLabel {
    /// What makes the transition.
    pub trigger: Trigger,
    /// What the operation returned or raised; `None` for an event.
    pub outcome: Option<Outcome>,
}

impl fmt::Display for EdgeLabel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.outcome {
            Some(outcome) => write!(f, "{} / {}", self.trigger, outcome),
            None => write!(f, "{}", self.trigger),
        }
    }
}

/// The identity of an edge: the key both the derived graph and coverage counting use.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EdgeKey {
    /// Where it starts.
    pub from: Node,
    /// What it is labelled with.
    pub label: EdgeLabel,
    /// Where it ends.
    pub to: Node,
}

/// The edge that the concrete transition `step(state, op) == result` corresponds to.
///
/// ```
/// use proclife_model::{Node, Op, State, TransitionGraph, edge_key, step};
/// let new = State::new();
/// let result = step(&new, &Op::Start);
/// let key = edge_key(&new, &Op::Start, &result);
/// assert_eq!((key.from, key.to), (Node::New, Node::Running));
/// assert!(TransitionGraph::explore().contains(&key));
/// ```
pub fn edge_key(state: &State, op: &Op, result: &Step) -> EdgeKey {
    EdgeKey {
        from: Node::of(state),
        label: EdgeLabel {
            trigger: Trigger::Op(op.label()),
            outcome: Some(result.outcome.clone()),
        },
        to: Node::of(&result.next),
    }
}

/// The graph edges the concrete transition `step(state, op) == result` consists of.
///
/// Usually the one edge [`edge_key`] names.
/// An operation that waits for the child's pending exit (`join`, `settle`, a timed join that
/// ends in time) is drawn as what a real run shows: the exit happening ([`Event`] edge), then
/// the operation on the exited child.
/// A direct shortcut from the exiting state would be an edge no real run could tell apart
/// from that path, so it could never be counted as exercised.
///
/// ```
/// use proclife_model::{Node, Op, State, step, transition_edges};
/// let running = step(&State::new(), &Op::Start).next;
/// let exiting = step(&running, &Op::ChildExit(3)).next;
/// let joined = step(&exiting, &Op::Join);
/// let edges = transition_edges(&exiting, &Op::Join, &joined);
/// assert_eq!(edges.len(), 2);
/// assert_eq!((edges[0].from, edges[0].to), (Node::Exiting, Node::Terminated { exitcode: 3 }));
/// assert_eq!(edges[1].from, Node::Terminated { exitcode: 3 });
/// ```
pub fn transition_edges(state: &State, op: &Op, result: &Step) -> Vec<EdgeKey> {
    let waits = matches!(
        op,
        Op::Join | Op::Settle | Op::JoinTimeout(crate::op::Timeout::InTime)
    );
    if waits {
        // `step` lets the first pending event happen for these operations.
        if let Some((event, after)) = events(state).into_iter().next() {
            let rest = step(&after, op);
            let mut edges = vec![event_edge_key(state, event, &after)];
            edges.extend(transition_edges(&after, op, &rest));
            return edges;
        }
    }
    vec![edge_key(state, op, result)]
}

/// The edge of the event `event` leading from `state` to `next` (an entry of
/// [`events`]`(state)`).
pub fn event_edge_key(state: &State, event: Event, next: &State) -> EdgeKey {
    EdgeKey {
        from: Node::of(state),
        label: EdgeLabel {
            trigger: Trigger::Event(event),
            outcome: None,
        },
        to: Node::of(next),
    }
}

/// How many commands a blocked child may have queued in the states the exploration expands.
///
/// Longer queues are reachable (and handled by [`step`]), but they add no edge: the node
/// abstraction drops the queue, and every edge from a longer queue already appears from a
/// queue of one command.
pub const EXPLORED_QUEUE_MAX: usize = 1;

/// The transition graph: nodes are [`Node`]s, edges are labelled with an [`EdgeLabel`].
///
/// Derived by breadth-first exploration of concrete states from [`State::new`] over
/// [`Op::graph_ops`] and [`events`]; every concrete transition becomes the edge
/// [`transition_edges`] names. Nodes and edges are added in sorted order, so the graph and its
/// renderings are deterministic.
#[derive(Debug, Clone)]
pub struct TransitionGraph {
    graph: Graph<Node, EdgeLabel>,
    nodes: BTreeMap<Node, NodeIndex>,
    edges: BTreeSet<EdgeKey>,
}

impl TransitionGraph {
    /// Explores the model from `New` and builds the graph.
    pub fn explore() -> TransitionGraph {
        let ops = Op::graph_ops();
        let start = State::new();
        let mut seen: BTreeSet<State> = BTreeSet::from([start.clone()]);
        let mut todo: VecDeque<State> = VecDeque::from([start]);
        let mut edges: BTreeSet<EdgeKey> = BTreeSet::new();
        let mut nodes: BTreeSet<Node> = BTreeSet::from([Node::New]);
        while let Some(state) = todo.pop_front() {
            let mut keys: Vec<EdgeKey> = Vec::new();
            let mut successors: Vec<State> = Vec::new();
            for op in &ops {
                let result = step(&state, op);
                keys.extend(transition_edges(&state, op, &result));
                successors.push(result.next);
            }
            for (event, next) in events(&state) {
                keys.push(event_edge_key(&state, event, &next));
                successors.push(next);
            }
            for key in keys {
                nodes.insert(key.from);
                nodes.insert(key.to);
                edges.insert(key);
            }
            for next in successors {
                if queue_len(&next) <= EXPLORED_QUEUE_MAX && seen.insert(next.clone()) {
                    todo.push_back(next);
                }
            }
        }
        let mut graph = Graph::new();
        let mut index = BTreeMap::new();
        for node in nodes {
            index.insert(node, graph.add_node(node));
        }
        for key in &edges {
            // Both ends of every edge were inserted into `nodes` above.
            graph.add_edge(index[&key.from], index[&key.to], key.label.clone());
        }
        TransitionGraph {
            graph,
            nodes: index,
            edges,
        }
    }

    /// The petgraph graph.
    pub fn graph(&self) -> &Graph<Node, EdgeLabel> {
        &self.graph
    }

    /// The number of nodes.
    pub fn node_count(&self) -> usize {
        self.graph.node_count()
    }

    /// The number of edges.
    pub fn edge_count(&self) -> usize {
        self.graph.edge_count()
    }

    /// The nodes, in sorted order.
    pub fn nodes(&self) -> impl Iterator<Item = Node> + '_ {
        self.nodes.keys().copied()
    }

    /// The petgraph index of `node`, if the graph has it.
    pub fn index_of(&self, node: Node) -> Option<NodeIndex> {
        self.nodes.get(&node).copied()
    }

    /// The edges, in sorted order.
    pub fn edges(&self) -> impl Iterator<Item = &EdgeKey> + '_ {
        self.edges.iter()
    }

    /// Whether the graph has this edge.
    pub fn contains(&self, key: &EdgeKey) -> bool {
        self.edges.contains(key)
    }
}

fn queue_len(state: &State) -> usize {
    life_queue_len(&state.life)
}

fn life_queue_len(life: &Life) -> usize {
    match life {
        Life::Blocked { queue, .. } => queue.len(),
        Life::Stopped { was } => life_queue_len(was),
        _ => 0,
    }
}
