//! The derived state graphs of the small primitives' models (`Lock`, `RLock`, `Semaphore`,
//! `Event`, `Barrier`), for two processes, as byte-stable DOT.
//!
//! Each graph is explored breadth-first from the initial state by every call of each process
//! (timed calls, so that a call that cannot complete is drawn as its timeout result) and
//! every death; states are the models' own, never drawn by hand. Unbounded counters are cut
//! off (a semaphore's value above 2, an `RLock` deeper than 2), and the cut is said in the
//! graph's label.

use std::collections::{BTreeMap, VecDeque};
use std::fmt::Write as _;

use crate::objects::call::{Call, Object, Ret};
use crate::objects::refusal::Refusal;
use crate::objects::spec::{EventSpec, Holder, LockSpec, SemaphoreSpec, Spec};

/// The objects `proclife graph --object` draws.
pub const GRAPHED: [Object; 5] = [
    Object::Lock,
    Object::RLock,
    Object::Semaphore,
    Object::Event,
    Object::Barrier,
];

/// A `Barrier` of two parties as a state machine, for the picture only (histories are judged
/// by the interval specification, [`crate::objects::barrier`]): who is waiting, and whether
/// it is broken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct BarrierState {
    waiting: [bool; 2],
    broken: bool,
}

/// The calls each process makes in the exploration of `obj`.
fn calls(obj: Object) -> Vec<Call> {
    let timed = Some(10);
    match obj {
        Object::Lock | Object::RLock | Object::Semaphore => vec![
            Call::Acquire {
                obj,
                timeout_ms: timed,
            },
            Call::Release { obj },
        ],
        Object::Event => vec![
            Call::Set,
            Call::Clear,
            Call::IsSet,
            Call::EventWait { timeout_ms: timed },
        ],
        _ => Vec::new(),
    }
}

struct Graph {
    nodes: Vec<String>,
    index: BTreeMap<String, usize>,
    edges: BTreeMap<(usize, usize), Vec<String>>,
}

impl Graph {
    fn node(&mut self, label: String, queue: &mut VecDeque<usize>) -> usize {
        if let Some(&i) = self.index.get(&label) {
            return i;
        }
        let i = self.nodes.len();
        self.nodes.push(label.clone());
        self.index.insert(label, i);
        queue.push_back(i);
        i
    }
}

/// Explores a [`Spec`] from `init` with two processes.
fn explore_spec<S: Spec>(init: S, obj: Object, keep: impl Fn(&S) -> bool) -> Graph {
    let mut g = Graph {
        nodes: Vec::new(),
        index: BTreeMap::new(),
        edges: BTreeMap::new(),
    };
    let mut states: Vec<S> = Vec::new();
    let mut queue = VecDeque::new();
    g.node(init.label(), &mut queue);
    states.push(init);
    while let Some(i) = queue.pop_front() {
        let state = states[i].clone();
        for proc in 0..2 {
            let mut moves: Vec<(String, S)> = calls(obj)
                .into_iter()
                .flat_map(|call| {
                    state.step(proc, call).into_iter().map(move |(ret, next)| {
                        (format!("p{proc}: {} -> {ret}", short(call)), next)
                    })
                })
                .collect();
            if state.die(proc) != state {
                moves.push((format!("p{proc} killed"), state.die(proc)));
            }
            if state.exit(proc) != state {
                moves.push((format!("p{proc} ends"), state.exit(proc)));
            }
            for (label, next) in moves {
                if !keep(&next) {
                    continue;
                }
                let before = g.nodes.len();
                let j = g.node(next.label(), &mut queue);
                if j == before {
                    states.push(next);
                }
                g.edges.entry((i, j)).or_default().push(label);
            }
        }
    }
    g
}

fn short(call: Call) -> String {
    let text = call.to_string();
    match text.split_once('.') {
        Some((_, rest)) => rest.to_owned(),
        None => text,
    }
}

fn explore_barrier() -> Graph {
    let mut g = Graph {
        nodes: Vec::new(),
        index: BTreeMap::new(),
        edges: BTreeMap::new(),
    };
    let label = |s: &BarrierState| {
        if s.broken {
            return "broken".to_owned();
        }
        match s.waiting {
            [false, false] => "nobody waiting".to_owned(),
            [true, false] => "p0 waiting".to_owned(),
            [false, true] => "p1 waiting".to_owned(),
            [true, true] => "both waiting".to_owned(),
        }
    };
    let mut states = vec![BarrierState {
        waiting: [false, false],
        broken: false,
    }];
    let mut queue = VecDeque::new();
    g.node(label(&states[0]), &mut queue);
    let timed_out = Ret::Raised {
        refusal: Refusal::BARRIER_WAIT_TIMEOUT,
    };
    // Broken by a timeout or a death: both rows name the same exception.
    let broken = Ret::Raised {
        refusal: Refusal::BARRIER_WAIT_AFTER_TIMEOUT,
    };
    while let Some(i) = queue.pop_front() {
        let s = states[i];
        let mut moves: Vec<(String, BarrierState)> = Vec::new();
        for p in 0..2 {
            let other = 1 - p;
            if s.broken {
                moves.push((format!("p{p}: wait() -> {broken}"), s));
                continue;
            }
            if s.waiting[p] {
                let mut next = s;
                next.waiting = [false, false];
                next.broken = true;
                moves.push((format!("p{p}: wait times out -> {timed_out}"), next));
                moves.push((format!("p{p} killed while waiting"), next));
            } else if s.waiting[other] {
                let next = BarrierState {
                    waiting: [false, false],
                    broken: false,
                };
                moves.push((
                    format!("p{p}: wait() -> 1, and p{other}'s wait() -> 0"),
                    next,
                ));
            } else {
                let mut next = s;
                next.waiting[p] = true;
                moves.push((format!("p{p}: wait() arrives"), next));
            }
        }
        for (text, next) in moves {
            let before = g.nodes.len();
            let j = g.node(label(&next), &mut queue);
            if j == before {
                states.push(next);
            }
            g.edges.entry((i, j)).or_default().push(text);
        }
    }
    g
}

/// The DOT text of `obj`'s derived state graph, or `None` for an object that is not drawn.
pub fn dot(obj: Object) -> Option<String> {
    let (graph, note) = match obj {
        Object::Lock => (explore_spec(LockSpec::new(false), obj, |_| true), ""),
        Object::RLock => (
            explore_spec(
                LockSpec::new(true),
                obj,
                |s: &LockSpec| !matches!(s.holder, Holder::Proc(_, d) if d > 2),
            ),
            " (depth cut off at 2)",
        ),
        Object::Semaphore => (
            explore_spec(
                SemaphoreSpec {
                    value: 1,
                    bound: None,
                },
                obj,
                |s: &SemaphoreSpec| s.value <= 2,
            ),
            " (initial value 1; values above 2 cut off)",
        ),
        Object::Event => (explore_spec(EventSpec { set: false }, obj, |_| true), ""),
        Object::Barrier => (explore_barrier(), " (2 parties)"),
        _ => return None,
    };
    let mut out = String::new();
    let _ = writeln!(
        out,
        "// Generated by `proclife graph --object {}` from proclife-model; do not edit.",
        obj.name()
    );
    let _ = writeln!(out, "digraph {} {{", obj.name());
    out.push_str("    rankdir=LR;\n");
    let _ = writeln!(
        out,
        "    label=\"{}: states of the model with processes p0 and p1{note}\";",
        obj.name()
    );
    out.push_str("    node [shape=box, style=rounded, fontname=\"Helvetica\"];\n");
    out.push_str("    edge [fontname=\"Helvetica\", fontsize=10];\n");
    for (i, label) in graph.nodes.iter().enumerate() {
        let _ = writeln!(out, "    n{i} [label=\"{}\"];", escape(label));
    }
    for ((a, b), labels) in &graph.edges {
        let mut labels = labels.clone();
        labels.sort();
        labels.dedup();
        let text: Vec<String> = labels.iter().map(|l| escape(l)).collect();
        let _ = writeln!(out, "    n{a} -> n{b} [label=\"{}\"];", text.join("\\n"));
    }
    out.push_str("}\n");
    Some(out)
}

fn escape(text: &str) -> String {
    text.replace('\\', "\\\\").replace('"', "\\\"")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_small_object_has_a_stable_graph() {
        for obj in GRAPHED {
            let a = dot(obj);
            assert!(a.as_deref().is_some_and(|t| t.contains("->")), "{obj:?}");
            assert_eq!(a, dot(obj));
        }
        assert_eq!(dot(Object::Queue), None);
    }

    #[test]
    fn a_lock_graph_shows_the_dead_holder() {
        let text = dot(Object::Lock).unwrap_or_default();
        assert!(text.contains("holder died"));
        assert!(text.contains("OwnerDied"));
    }
}
