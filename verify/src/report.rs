//! What `proclife check` and `proclife replay` print: a disagreement first, then coverage,
//! then a plain summary and, when coverage is partial, what to do about it.

use std::fmt::Write as _;

use crate::check::{Counterexample, Summary};
use crate::run::Outcomes;

/// The side-by-side table of a run: step, process, op, what the model admits, what the
/// runtime gave (with the time a timed wait took).
pub fn table(outcomes: &Outcomes) -> String {
    let mut out = format!(
        "{:>4}  {:>4}  {:<28}  {:<40}  {}\n",
        "step", "proc", "op", "model", "runtime"
    );
    for (index, row) in outcomes.rows.iter().enumerate() {
        let admitted: Vec<String> = row.admitted.iter().map(ToString::to_string).collect();
        let mut observed = row
            .observed
            .as_ref()
            .map_or_else(|| "(harness failed)".to_owned(), ToString::to_string);
        if let Some(took) = row.took {
            let _ = write!(observed, " after {took:.1?}");
        }
        let differs = !row.agrees()
            || outcomes
                .failure
                .as_ref()
                .is_some_and(|failure| failure.index() == index);
        let mark = if differs { "   <-- differs" } else { "" };
        let op = match row.step.secs {
            Some(secs) => format!("{}({secs} s)", row.step.op.schema_name()),
            None => row.step.op.to_string(),
        };
        // Writing to a `String` cannot fail.
        let _ = writeln!(
            out,
            "{index:>4}  {:>4}  {op:<28}  {:<40}  {observed}{mark}",
            row.step.proc,
            admitted.join(" | "),
        );
    }
    if let Some(failure) = &outcomes.failure {
        let _ = writeln!(out, "{failure}");
    }
    out
}

/// The counterexample: what failed, both sides step by step, and where it was saved.
pub fn counterexample(failure: &Counterexample) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "The runtime and the model DISAGREE (start method {}).",
        failure.method
    );
    let _ = writeln!(out, "What failed: {}", failure.reason);
    match &failure.trace {
        Some(_) => {
            let _ = writeln!(
                out,
                "A sequence that failed again each time it ran alone in a fresh process:"
            );
        }
        None => {
            let _ = writeln!(
                out,
                "Neither the shortest failing sequence nor the one first found failed every time it ran alone in a fresh process: the failure depends on timing. The shortest one, run once more:"
            );
        }
    }
    out.push_str(&table(&failure.replay));
    match (&failure.saved, &failure.trace) {
        (Some(path), _) => {
            let _ = writeln!(
                out,
                "Saved to {}\nRun it again with: proclife replay {} --method {}",
                path.display(),
                path.display(),
                failure.method
            );
        }
        (None, Some(trace)) => {
            if let Some(error) = &failure.save_error {
                let _ = writeln!(out, "Not saved: {error}");
            }
            let _ = writeln!(out, "The sequence is:\n{}", trace.to_json());
        }
        (None, None) => {
            if let Some(error) = &failure.save_error {
                let _ = writeln!(out, "{error}");
            }
            let _ = writeln!(
                out,
                "The shortest sequence is:\n{}",
                failure.shrunk.to_json()
            );
        }
    }
    out
}

/// The summary after the coverage table, in plain words.
pub fn summary(summary: &Summary) -> String {
    let mut out = String::new();
    let methods: Vec<String> = summary
        .methods
        .iter()
        .map(|m| format!("{} {}", m.cases, m.method))
        .collect();
    let _ = writeln!(
        out,
        "Ran {} sequences ({}) in {:.1} s: {} operations, {} processes started (seed {}).",
        summary.cases,
        methods.join(", "),
        summary.elapsed.as_secs_f64(),
        summary.ops,
        summary.spawned,
        summary.seed
    );
    let per_method: Vec<String> = summary
        .methods
        .iter()
        .map(|m| format!("{} {}", m.method, m.coverage.covered()))
        .collect();
    let _ = writeln!(
        out,
        "Transitions of the life-cycle exercised: {} of {} (by start method: {}).",
        summary.coverage.covered(),
        summary.coverage.total(),
        per_method.join(", ")
    );
    let met: Vec<String> = crate::check::UNREAPED_OPS
        .iter()
        .map(|op| format!("{op} {}", summary.unreaped.get(op).copied().unwrap_or(0)))
        .collect();
    let _ = writeln!(
        out,
        "Calls that met a child that had exited but was not yet reaped: {}.",
        met.join(", ")
    );
    let _ = writeln!(
        out,
        "Wait times checked: {} decided, {} undecided (the machine was too busy to tell).",
        summary.timing.decided, summary.timing.undecided
    );
    let _ = writeln!(
        out,
        "Sequences that left a process or file descriptor behind: {}.",
        summary.leaks
    );
    if !summary.unconfirmed.is_empty() {
        let _ = writeln!(
            out,
            "Disagreements that did not repeat when their sequence ran again: {}.",
            summary.unconfirmed.len()
        );
    }
    out
}

/// The last line: the verdict, and a hint when coverage is partial.
pub fn verdict(summary: &Summary, allow_partial: bool) -> String {
    if summary.failure.is_some() {
        return "FAILED: the runtime did something the model does not allow (see the top).\n"
            .to_owned();
    }
    if !summary.is_complete() {
        let mut out = String::new();
        let missed_edges = summary.coverage.total() - summary.coverage.covered();
        let missed_ops = summary.unreaped_missed();
        let _ = write!(
            out,
            "{}: the runtime agreed on every observation, but coverage is partial",
            if allow_partial { "PASSED" } else { "FAILED" }
        );
        if missed_edges > 0 {
            let _ = write!(out, "; {missed_edges} transitions were never exercised");
        }
        if !missed_ops.is_empty() {
            let _ = write!(
                out,
                "; never met an exited, unreaped child: {}",
                missed_ops.join(", ")
            );
        }
        let _ = writeln!(
            out,
            ".\nHint: raise --cases (the default is {}) or try another --seed.",
            crate::check::Options::default().cases
        );
        return out;
    }
    "PASSED: the runtime agreed with the model on every observation, with full coverage.\n"
        .to_owned()
}
