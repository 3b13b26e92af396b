//! The JSON export of the transition graph: the only serialisable types of the model.
//!
//! These types are a versioned boundary: `format_version` changes whenever their meaning
//! does. The model's own types (`State`, `Op`, ...) stay free to change.

use serde::{Deserialize, Serialize};

use crate::graph::{Node, TransitionGraph, Trigger};
use crate::outcome::{Outcome, Value};

/// The version of the JSON format written by [`GraphDoc::from_graph`].
pub const FORMAT_VERSION: u32 = 1;

/// The whole graph, as written by `proclife graph --format json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GraphDoc {
    /// [`FORMAT_VERSION`].
    pub format_version: u32,
    /// The nodes, in sorted order.
    pub nodes: Vec<StateDoc>,
    /// The edges, in sorted order.
    pub edges: Vec<EdgeDoc>,
}

/// One node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateDoc {
    /// The node's identifier ([`Node::id`]).
    pub id: String,
    /// A readable description.
    pub label: String,
    /// Whether the child is alive there.
    pub alive: bool,
}

/// One edge.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EdgeDoc {
    /// The source node's identifier.
    pub from: String,
    /// The target node's identifier.
    pub to: String,
    /// `"op"` or `"event"`.
    pub kind: String,
    /// The operation's label ([`Op::label`](crate::Op::label)) or the event's.
    pub trigger: String,
    /// What the operation returned or raised; absent for an event.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub outcome: Option<OutcomeDoc>,
}

/// An outcome, in the replay schema's shape: `{"ok": value}` or
/// `{"err": {"type": .., "msg": ..}}`, or `{"hangs": true}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutcomeDoc {
    /// The returned value (JSON `null`, a bool, an int or a string); `Some(null)` for a
    /// returned `None`, `None` when the field is absent.
    #[serde(
        skip_serializing_if = "Option::is_none",
        default,
        deserialize_with = "present"
    )]
    pub ok: Option<serde_json::Value>,
    /// The raised exception.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub err: Option<ErrorDoc>,
    /// Present (and `true`) when the call never returns.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub hangs: Option<bool>,
}

/// Reads a field that is present, even as `null`, as `Some`.
fn present<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<serde_json::Value>, D::Error> {
    serde_json::Value::deserialize(deserializer).map(Some)
}

/// A raised exception.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorDoc {
    /// The Python exception class.
    #[serde(rename = "type")]
    pub kind: String,
    /// The exact message.
    pub msg: String,
}

/// The replay schema's JSON value for a returned value (`Value::None` is `null`).
pub fn value_json(value: &Value) -> serde_json::Value {
    match value {
        Value::None => serde_json::Value::Null,
        Value::Bool(b) => serde_json::Value::Bool(*b),
        Value::Int(n) => serde_json::Value::from(*n),
        Value::Str(s) => serde_json::Value::String(s.clone()),
        Value::DefaultName => serde_json::Value::String("Process-N".to_owned()),
    }
}

impl OutcomeDoc {
    /// The document of an outcome.
    pub fn from_outcome(outcome: &Outcome) -> OutcomeDoc {
        match outcome {
            Outcome::Returned(value) => OutcomeDoc {
                ok: Some(value_json(value)),
                err: None,
                hangs: None,
            },
            Outcome::Raised(error) => OutcomeDoc {
                ok: None,
                err: Some(ErrorDoc {
                    kind: error.kind.name().to_owned(),
                    msg: error.message.to_string(),
                }),
                hangs: None,
            },
            Outcome::Hangs => OutcomeDoc {
                ok: None,
                err: None,
                hangs: Some(true),
            },
        }
    }
}

impl GraphDoc {
    /// The document of a graph.
    pub fn from_graph(graph: &TransitionGraph) -> GraphDoc {
        let nodes = graph
            .nodes()
            .map(|node: Node| StateDoc {
                id: node.id(),
                label: node.to_string(),
                alive: node.is_alive(),
            })
            .collect();
        let edges = graph
            .edges()
            .map(|key| {
                let (kind, trigger) = match &key.label.trigger {
                    Trigger::Op(label) => ("op", label.clone()),
                    Trigger::Event(event) => ("event", event.label().to_owned()),
                };
                EdgeDoc {
                    from: key.from.id(),
                    to: key.to.id(),
                    kind: kind.to_owned(),
                    trigger,
                    outcome: key.label.outcome.as_ref().map(OutcomeDoc::from_outcome),
                }
            })
            .collect();
        GraphDoc {
            format_version: FORMAT_VERSION,
            nodes,
            edges,
        }
    }
}

/// Renders the graph as pretty-printed JSON, ending in a newline.
pub fn render_json(graph: &TransitionGraph) -> String {
    let doc = GraphDoc::from_graph(graph);
    // Serialising plain structs of strings, bools and JSON values into a string cannot fail;
    // the fallback keeps the function total all the same.
    let mut text = serde_json::to_string_pretty(&doc).unwrap_or_default();
    text.push('\n');
    text
}
