//! Edge coverage: how often each edge of the model's transition graph was exercised by real runs.
//!
//! Only edges the model's checker is certain of are counted (see
//! [`Possible::observe`](proclife_model::Possible::observe)): an observation that two
//! interleavings explain counts for neither until a later one decides.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use proclife_model::{EdgeKey, Node, TransitionGraph};

/// Hit counts for every edge of the transition graph.
#[derive(Debug, Clone)]
pub struct Coverage {
    hits: BTreeMap<EdgeKey, u64>,
    nodes: BTreeSet<Node>,
    labels: BTreeSet<String>,
    /// Edges between graph nodes that the derived graph does not have (a model bug if ever
    /// non-empty).
    foreign: BTreeMap<EdgeKey, u64>,
    /// Traversals of edges outside the graph's representative parameters (an exit code other
    /// than the graph's, as a node or in an operation): checked, but not part of the graph.
    outside: u64,
}

impl Coverage {
    /// Zero hits on every edge of `graph`.
    pub fn new(graph: &TransitionGraph) -> Coverage {
        Coverage {
            hits: graph.edges().map(|edge| (edge.clone(), 0)).collect(),
            nodes: graph.nodes().collect(),
            labels: graph.edges().map(|e| e.label.trigger.to_string()).collect(),
            foreign: BTreeMap::new(),
            outside: 0,
        }
    }

    /// Counts one traversal of each edge.
    pub fn record<'a>(&mut self, edges: impl IntoIterator<Item = &'a EdgeKey>) {
        for edge in edges {
            match self.hits.get_mut(edge) {
                Some(count) => *count += 1,
                None if self.nodes.contains(&edge.from)
                    && self.nodes.contains(&edge.to)
                    && self.labels.contains(&edge.label.trigger.to_string()) =>
                {
                    *self.foreign.entry(edge.clone()).or_default() += 1;
                }
                None => self.outside += 1,
            }
        }
    }

    /// Adds another run's counts to these.
    pub fn merge(&mut self, other: &Coverage) {
        for (edge, count) in &other.hits {
            *self.hits.entry(edge.clone()).or_default() += count;
        }
        for (edge, count) in &other.foreign {
            *self.foreign.entry(edge.clone()).or_default() += count;
        }
        self.outside += other.outside;
    }

    /// The number of edges in the graph.
    pub fn total(&self) -> usize {
        self.hits.len()
    }

    /// The number of edges hit at least once.
    pub fn covered(&self) -> usize {
        self.hits.values().filter(|&&count| count > 0).count()
    }

    /// The edges never hit, in graph order.
    pub fn missed(&self) -> impl Iterator<Item = &EdgeKey> {
        self.hits
            .iter()
            .filter(|&(_, &count)| count == 0)
            .map(|(edge, _)| edge)
    }

    /// Edges observed that the graph does not contain.
    pub fn foreign(&self) -> impl Iterator<Item = (&EdgeKey, u64)> {
        self.foreign.iter().map(|(edge, &count)| (edge, count))
    }

    /// The hit count of `edge` (0 for an edge not in the graph).
    pub fn hits(&self, edge: &EdgeKey) -> u64 {
        self.hits.get(edge).copied().unwrap_or(0)
    }

    /// Whether every edge was hit and nothing outside the graph was seen.
    pub fn is_complete(&self) -> bool {
        self.covered() == self.total() && self.foreign.is_empty()
    }

    /// A plain-text table: one row per source node with its edges covered, then every missed
    /// edge.
    pub fn table(&self) -> String {
        let mut per_node: BTreeMap<String, (usize, usize, u64)> = BTreeMap::new();
        for (edge, &count) in &self.hits {
            let row = per_node.entry(edge.from.to_string()).or_default();
            row.1 += 1;
            row.2 += count;
            if count > 0 {
                row.0 += 1;
            }
        }
        let width = per_node.keys().map(String::len).max().unwrap_or(4).max(4);
        let mut out = String::new();
        // Writing to a `String` cannot fail.
        let _ = writeln!(
            out,
            "{:<width$}  {:>13}  {:>10}",
            "from", "edges covered", "hits"
        );
        for (node, (covered, total, hits)) in &per_node {
            let _ = writeln!(
                out,
                "{node:<width$}  {:>6} / {:<4}  {hits:>10}",
                covered, total
            );
        }
        let _ = writeln!(
            out,
            "{:<width$}  {:>6} / {:<4}  {:>10}",
            "all",
            self.covered(),
            self.total(),
            self.hits.values().sum::<u64>()
        );
        if self.outside > 0 {
            let _ = writeln!(
                out,
                "{} steps with exit codes the graph does not draw (such as child_exit(42)): checked, not counted above",
                self.outside
            );
        }
        for edge in self.missed() {
            let _ = writeln!(
                out,
                "never exercised: {} --{}--> {}",
                edge.from, edge.label, edge.to
            );
        }
        for (edge, count) in self.foreign() {
            let _ = writeln!(
                out,
                "not in the graph ({count} hits): {} --{}--> {}",
                edge.from, edge.label, edge.to
            );
        }
        out
    }

    /// The transition graph as DOT with each edge's hit count; edges never hit are grey and
    /// dotted.
    pub fn dot(&self, graph: &TransitionGraph) -> String {
        proclife_model::dot::render_coverage(graph, |edge| self.hits(edge))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proclife_model::{Op, Outcome, Possible};

    #[test]
    fn counts_certain_edges_and_reports_the_rest() {
        let graph = TransitionGraph::explore();
        let mut coverage = Coverage::new(&graph);
        assert_eq!(coverage.covered(), 0);
        assert_eq!(coverage.total(), graph.edge_count());
        let mut possible = Possible::new();
        for (op, outcome) in [
            (Op::Start, Outcome::NONE),
            (Op::IsAlive, Outcome::bool(true)),
        ] {
            coverage.record(&possible.observe(&op, &outcome).expect("admitted"));
        }
        assert_eq!(coverage.covered(), 2);
        assert!(!coverage.is_complete());
        assert_eq!(coverage.missed().count(), graph.edge_count() - 2);
        let table = coverage.table();
        assert!(table.contains("never exercised: New --close / None--> Closed (never started)"));
        let dot = coverage.dot(&graph);
        assert!(dot.contains("start / None (1 hit)"), "{dot}");
        let mut twice = coverage.clone();
        twice.merge(&coverage);
        assert_eq!(twice.hits.values().sum::<u64>(), 4);
    }
}
