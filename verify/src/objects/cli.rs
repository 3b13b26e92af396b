//! What `proclife check` and `proclife replay` print for the primitives.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use proclife::StartMethod;
use proclife_model::objects::Violation;

use crate::objects::check::{self, Options, run_once};
use crate::objects::replay;
use crate::objects::scenario::{Observed, Program};

/// The observed history beside the model's verdict: every call with its stamps and result,
/// the calls the model rejects marked, then the model's explanation.
pub fn explain(observed: &Observed, verdict: &Result<(), Violation>) -> String {
    let mut out =
        String::from("observed history (stamps [invoked..returned], caller, call -> result):\n");
    for (i, e) in observed.history.entries.iter().enumerate() {
        let flagged = verdict
            .as_ref()
            .err()
            .is_some_and(|v| v.entries.contains(&i));
        let took = observed
            .elapsed_us
            .get(i)
            .copied()
            .flatten()
            .map_or(String::new(), |us| format!("  ({us} µs)"));
        let mark = if flagged {
            "   <-- the model rejects this"
        } else {
            ""
        };
        let _ = writeln!(out, "  #{i:<3} {e}{took}{mark}");
    }
    for d in &observed.deaths {
        if let Some(by) = d.by {
            let _ = writeln!(out, "  p{} killed, reaped by stamp {by}", d.proc);
        }
    }
    match verdict {
        Ok(()) => out.push_str("model: every object's history is one its specification allows\n"),
        Err(v) => {
            let _ = writeln!(out, "model: {} — {}", v.rule, v.explanation);
        }
    }
    out
}

/// `proclife check` for the primitives: runs, prints coverage and any failure (saved under
/// `save_dir`); returns whether everything agreed with full coverage (or, with
/// `allow_partial_coverage`, agreed).
///
/// # Errors
///
/// A harness failure, or a replay file that cannot be written.
pub fn check_command(
    options: &Options,
    save_dir: Option<&Path>,
    allow_partial_coverage: bool,
) -> anyhow::Result<bool> {
    let began = std::time::Instant::now();
    let summary = check::check(options, |_| {})?;
    println!("{}", summary.coverage.table());
    let methods = options
        .method
        .map_or("fork, forkserver and spawn in turn".to_owned(), |m| {
            m.to_string()
        });
    println!(
        "primitives: seed {}, start method {methods}: {} programs, {:.1} s",
        options.seed,
        summary.cases,
        began.elapsed().as_secs_f64()
    );
    if let Some(failure) = &summary.failure {
        println!(
            "\nDISAGREEMENT (start method {}): {}",
            failure.method, failure.violation.rule
        );
        println!(
            "{}",
            explain(&failure.observed, &Err(failure.violation.clone()))
        );
        let text = replay::to_text(&failure.program);
        match save_dir.map(|dir| save(dir, options.seed, &text)) {
            Some(Ok(path)) => println!(
                "shrunk program saved to {} (run `proclife replay {} --method {}`)",
                path.display(),
                path.display(),
                failure.method
            ),
            Some(Err(e)) => println!("the program could not be saved ({e:#}); it is:\n{text}"),
            None => println!("the shrunk program is:\n{text}"),
        }
        return Ok(false);
    }
    let missing = summary.coverage.missing();
    if !missing.is_empty() && !allow_partial_coverage {
        println!(
            "FAILED: {} operation x outcome classes of the primitives' models were never seen \
             (marked NOT COVERED above).\nHint: raise --objects-cases (the default is 300) or \
             try another --seed.",
            missing.len()
        );
        return Ok(false);
    }
    println!("every primitive's history agreed with its model");
    Ok(true)
}

fn save(dir: &Path, seed: u64, text: &str) -> anyhow::Result<PathBuf> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let path = dir.join(format!("objects-{seed:x}.jsonl"));
    std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(path)
}

/// `proclife replay` of a primitives program (already parsed, see [`replay::parse`]): runs
/// it once and prints the history beside the model's verdict; returns whether the model
/// agreed.
///
/// # Errors
///
/// A harness failure.
pub fn replay_program(program: &Program, method: StartMethod) -> anyhow::Result<bool> {
    let (observed, verdict) = run_once(program, method)?;
    print!("{}", explain(&observed, &verdict));
    Ok(verdict.is_ok())
}
