//! The documented deviations from CPython: `docs/deviations.json`, compiled in.
//!
//! Each entry names an operation, the observation the model gives, the observation CPython
//! gives instead, and the decision record in `docs/decisions/` that explains why.
//! `proclife conform` excuses exactly these disagreements and nothing else; `docs/conformance.md`
//! shows the same list ([`markdown_table`]), and a test keeps the two in step.

use proclife_model::{Op, Outcome};
use serde_json::Value as Json;

/// The file as it is in the repository.
pub const FILE: &str = include_str!("../../docs/deviations.json");

/// One documented deviation.
#[derive(Debug, Clone, PartialEq)]
pub struct Deviation {
    /// A short name, e.g. `terminate-before-start`.
    pub id: String,
    /// The decision record, relative to the repository root.
    pub decision: String,
    /// The operation's name in the replay schema.
    pub op: String,
    /// What the model (and the runtime) give.
    pub model: Outcome,
    /// What CPython gives instead.
    pub cpython: Outcome,
}

impl Deviation {
    /// Whether this deviation explains CPython giving `cpython` for `op` where the model
    /// admits `admitted`.
    pub fn explains(
        &self,
        op: &Op,
        admitted: &std::collections::BTreeSet<Outcome>,
        cpython: &Outcome,
    ) -> bool {
        op.schema_name() == self.op && admitted.contains(&self.model) && *cpython == self.cpython
    }
}

/// Parses a deviations file.
///
/// # Errors
///
/// A sentence naming the entry and field that are wrong.
pub fn parse(text: &str) -> Result<Vec<Deviation>, String> {
    let json: Json = serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
    if json.get("format_version").and_then(Json::as_u64) != Some(1) {
        return Err("\"format_version\" must be 1".to_owned());
    }
    let entries = json
        .get("deviations")
        .and_then(Json::as_array)
        .ok_or("\"deviations\" must be a list")?;
    entries
        .iter()
        .enumerate()
        .map(|(index, entry)| {
            let text = |name: &str| {
                entry
                    .get(name)
                    .and_then(Json::as_str)
                    .map(str::to_owned)
                    .ok_or_else(|| format!("deviation {index} needs a string {name:?}"))
            };
            let outcome = |name: &str| {
                let json = entry
                    .get(name)
                    .ok_or_else(|| format!("deviation {index} needs {name:?}"))?;
                Outcome::from_json(json).map_err(|e| format!("deviation {index}, {name:?}: {e}"))
            };
            let decision = text("decision")?;
            if !decision.starts_with("docs/decisions/") || !decision.ends_with(".md") {
                return Err(format!(
                    "deviation {index}: \"decision\" must name a file docs/decisions/NNNN-*.md"
                ));
            }
            Ok(Deviation {
                id: text("id")?,
                decision,
                op: text("op")?,
                model: outcome("model")?,
                cpython: outcome("cpython")?,
            })
        })
        .collect()
}

/// The deviations compiled into this binary.
///
/// # Errors
///
/// When the compiled-in file is malformed (a test parses the repository's, `tests/conform.rs`).
pub fn all() -> Result<Vec<Deviation>, String> {
    parse(FILE).map_err(|reason| format!("docs/deviations.json: {reason}"))
}

/// The Markdown table of `deviations`, as `docs/conformance.md` shows it.
pub fn markdown_table(deviations: &[Deviation]) -> String {
    let mut out = String::from("| deviation | operation | proclife | CPython | decision |\n");
    out.push_str("| --- | --- | --- | --- | --- |\n");
    for d in deviations {
        let link = d.decision.trim_start_matches("docs/");
        out.push_str(&format!(
            "| `{}` | `{}` | `{}` | `{}` | [{}]({link}) |\n",
            d.id,
            d.op,
            d.model,
            d.cpython,
            link.trim_start_matches("decisions/")
                .trim_end_matches(".md")
        ));
    }
    out
}
