//! The life-cycle story: the transition graph reduced to the edges that change state, with
//! the exit codes grouped, for a picture that reads at a glance.
//!
//! [`TransitionGraph`] keeps every edge the model can take (self-loops of queries and
//! refusals, one node per representative exit code), which is what coverage counts but is
//! unreadable at page width. The story is derived from it, never drawn by hand:
//!
//! * every `Terminated` node becomes one [`StoryNode::Terminated`], and both `Closed` nodes
//!   one [`StoryNode::Closed`]; the exit code moves into the label of the arrow that ends
//!   the process;
//! * an edge whose two ends fall on the same story node is dropped (queries, refusals,
//!   waits that change nothing);
//! * the remaining edges between the same two nodes and of the same [`Actor`] become one
//!   arrow, whose label lists what makes it, grouped by operation (`target blocks on lock,
//!   event, ...`).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use crate::graph::{Node, TransitionGraph, Trigger};

/// A node of the story: a [`Node`] with the exit code and the "was started" flag dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum StoryNode {
    /// Never started.
    New,
    /// Alive, not blocked, nothing pending.
    Running,
    /// Alive and blocked.
    Blocked,
    /// Alive, its own exit on its way.
    Exiting,
    /// Alive, a `SIGTERM` or `SIGKILL` on its way.
    Signalled,
    /// Alive and stopped by `SIGSTOP`.
    Stopped,
    /// Exited, with any exit code.
    Terminated,
    /// Closed.
    Closed,
}

impl StoryNode {
    /// The story node of a graph node.
    pub fn of(node: Node) -> StoryNode {
        match node {
            Node::New => StoryNode::New,
            Node::Running => StoryNode::Running,
            Node::Blocked => StoryNode::Blocked,
            Node::Exiting => StoryNode::Exiting,
            Node::Signalled => StoryNode::Signalled,
            Node::Stopped => StoryNode::Stopped,
            Node::Terminated { .. } => StoryNode::Terminated,
            Node::Closed { .. } => StoryNode::Closed,
        }
    }

    /// A stable identifier, usable in DOT: `new`, `running`, ...
    pub fn id(self) -> &'static str {
        match self {
            StoryNode::New => "new",
            StoryNode::Running => "running",
            StoryNode::Blocked => "blocked",
            StoryNode::Exiting => "exiting",
            StoryNode::Signalled => "signalled",
            StoryNode::Stopped => "stopped",
            StoryNode::Terminated => "terminated",
            StoryNode::Closed => "closed",
        }
    }

    /// Whether `is_alive()` is true in this node.
    pub fn is_alive(self) -> bool {
        matches!(
            self,
            StoryNode::Running
                | StoryNode::Blocked
                | StoryNode::Exiting
                | StoryNode::Signalled
                | StoryNode::Stopped
        )
    }
}

impl fmt::Display for StoryNode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            StoryNode::New => "New",
            StoryNode::Running => "Running",
            StoryNode::Blocked => "Blocked",
            StoryNode::Exiting => "Running\n(exit on its way)",
            StoryNode::Signalled => "Running, Blocked or Stopped\n(signal on its way)",
            StoryNode::Stopped => "Stopped\n(by SIGSTOP)",
            StoryNode::Terminated => "Terminated",
            StoryNode::Closed => "Closed",
        })
    }
}

/// Who makes a story arrow happen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Actor {
    /// A method call on the `Process` handle, in the parent.
    Parent,
    /// What the target does in the child (return, exit, panic, block, be released).
    Target,
    /// What takes effect by itself: the exit happening, a signal being delivered.
    Event,
    /// A signal sent from outside the `Process` API: `SIGSTOP` and `SIGCONT` (a shell's job
    /// control, a debugger, the checker).
    JobControl,
}

/// One arrow of the story.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct StoryEdge {
    /// Where it starts.
    pub from: StoryNode,
    /// Where it ends.
    pub to: StoryNode,
    /// Who makes it happen.
    pub actor: Actor,
    /// What makes it happen, one group of triggers per line, in sorted order.
    pub lines: Vec<String>,
}

/// The story derived from `graph`: its arrows in sorted order (by ends, then actor).
///
/// ```
/// use proclife_model::TransitionGraph;
/// use proclife_model::story::{Actor, StoryNode, story};
/// let arrows = story(&TransitionGraph::explore());
/// let start = arrows.iter().find(|a| a.from == StoryNode::New && a.to == StoryNode::Running);
/// assert_eq!(start.map(|a| (a.actor, a.lines.clone())), Some((Actor::Parent, vec!["start()".to_owned()])));
/// assert!(arrows.iter().all(|a| a.from != a.to));
/// ```
pub fn story(graph: &TransitionGraph) -> Vec<StoryEdge> {
    // (from, to, actor) -> trigger family -> arguments (and exit codes for events).
    let mut arrows: BTreeMap<(StoryNode, StoryNode, Actor), BTreeMap<String, BTreeSet<Arg>>> =
        BTreeMap::new();
    for key in graph.edges() {
        let (from, to) = (StoryNode::of(key.from), StoryNode::of(key.to));
        if from == to {
            continue;
        }
        let (actor, family, arg) = match &key.label.trigger {
            Trigger::Event(event) => {
                let code = match key.to {
                    Node::Terminated { exitcode } => Arg::Code(exitcode),
                    _ => Arg::None,
                };
                (Actor::Event, event.label().to_owned(), code)
            }
            Trigger::Op(label) => {
                let (family, arg) = split_label(label);
                let actor = if family.starts_with("child_") || family == "release" {
                    Actor::Target
                } else if family == "sigstop" || family == "sigcont" {
                    Actor::JobControl
                } else {
                    Actor::Parent
                };
                (actor, family.to_owned(), arg)
            }
        };
        arrows
            .entry((from, to, actor))
            .or_default()
            .entry(family)
            .or_default()
            .insert(arg);
    }
    arrows
        .into_iter()
        .map(|((from, to, actor), families)| StoryEdge {
            from,
            to,
            actor,
            lines: families
                .iter()
                .map(|(family, args)| phrase(family, args, to))
                .collect(),
        })
        .collect()
}

/// An argument of a trigger, as the story groups it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Arg {
    /// The trigger has none.
    None,
    /// A text argument (`lock` of `child_block(lock)`, `3` of `child_exit(3)`).
    Text(String),
    /// The exit code an event ends the process with.
    Code(i32),
}

/// `"child_block(lock)"` → `("child_block", Text("lock"))`; `"start"` → `("start", None)`.
fn split_label(label: &str) -> (&str, Arg) {
    match label.split_once('(') {
        Some((family, rest)) => (
            family,
            Arg::Text(rest.strip_suffix(')').unwrap_or(rest).to_owned()),
        ),
        None => (label, Arg::None),
    }
}

/// One line of an arrow's label: the trigger family in the words of the `Process` API.
fn phrase(family: &str, args: &BTreeSet<Arg>, to: StoryNode) -> String {
    let listed = |args: &BTreeSet<Arg>| -> String {
        args.iter()
            .filter_map(|arg| match arg {
                Arg::None => None,
                Arg::Text(text) => Some(text.clone()),
                Arg::Code(code) => Some(code.to_string()),
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    match family {
        "child_block" => format!("target blocks on {}", listed(args)),
        "child_exit" => "target calls exit(n): exitcode n & 0xFF".to_owned(),
        "child_panic" => "target panics or returns Err: exitcode 1".to_owned(),
        "child_return" => "target returns Ok: exitcode 0".to_owned(),
        "release" if to == StoryNode::Exiting => "target is released, then exits".to_owned(),
        "release" => "target is released".to_owned(),
        "sigstop" => "SIGSTOP".to_owned(),
        "sigcont" => "SIGCONT".to_owned(),
        "exit happens" => format!("exit takes effect: exitcode {}", listed(args)),
        "SIGTERM delivered" | "SIGKILL delivered" => {
            format!("{family}: exitcode {}", listed(args))
        }
        other if args.iter().all(|arg| *arg == Arg::None) => format!("{other}()"),
        other => format!("{other}({})", listed(args)),
    }
}
