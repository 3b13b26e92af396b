//! Replays every sequence in `verify/regressions/` and every scenario of the CPython table
//! (`verify/scenarios/cpython-table.json`) on the model and on real processes, under each start
//! method (fork, forkserver, spawn); a scenario's observations must also be the ones it expects.
//!
//! The sequences start children, so this runner has `harness = false` and runs its tests one
//! at a time on the main thread (the fork start method refuses a threaded parent).

use std::path::{Path, PathBuf};

use libtest_mimic::{Arguments, Failed, Trial};
use proclife::StartMethod;
use proclife_verify::run;
use proclife_verify::scenarios::{self, Scenario};
use proclife_verify::trace::Trace;

const METHODS: [StartMethod; 3] = [
    StartMethod::Fork,
    StartMethod::ForkServer,
    StartMethod::Spawn,
];

fn corpus() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("regressions")
}

fn replay(path: &Path, method: StartMethod) -> Result<(), Failed> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("read: {e}"))?;
    let trace = Trace::parse(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    let outcomes = run::run(&trace.ops, trace.procs(), method);
    match outcomes.failure {
        None => Ok(()),
        Some(failure) => Err(format!("{} under {method}: {failure}", path.display()).into()),
    }
}

/// Runs a scenario on the model and the runtime: they must agree, and every observation must
/// be the expected one.
fn scenario(scenario: &Scenario, method: StartMethod) -> Result<(), Failed> {
    let steps = scenario.steps();
    let procs = steps.iter().map(|s| s.proc + 1).max().unwrap_or(1);
    let outcomes = run::run(steps, procs, method);
    if let Some(failure) = outcomes.failure {
        return Err(format!("{:?} under {method}: {failure}", scenario.name).into());
    }
    for (index, (row, expect)) in outcomes.rows.iter().zip(scenario.expected()).enumerate() {
        if row.observed.as_ref() != expect {
            return Err(format!(
                "{:?} under {method}, step {index} ({}): expected {}, the runtime gave {}",
                scenario.name,
                row.step.to_json(),
                expect.map_or_else(|| "nothing".to_owned(), ToString::to_string),
                row.observed
                    .as_ref()
                    .map_or_else(|| "nothing".to_owned(), ToString::to_string),
            )
            .into());
        }
    }
    if outcomes.rows.len() != steps.len() {
        return Err(format!(
            "{:?} under {method}: {} of {} steps ran",
            scenario.name,
            outcomes.rows.len(),
            steps.len()
        )
        .into());
    }
    Ok(())
}

fn main() {
    let mut args = Arguments::from_args();
    args.test_threads = Some(1);
    let mut files: Vec<PathBuf> = std::fs::read_dir(corpus())
        .map(|dir| {
            dir.flatten()
                .map(|entry| entry.path())
                .filter(|path| path.extension().is_some_and(|e| e == "json"))
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    let mut trials = Vec::new();
    for method in METHODS {
        for path in &files {
            let name = path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            let path = path.clone();
            trials.push(Trial::test(format!("{method}/{name}"), move || {
                replay(&path, method)
            }));
        }
    }
    match scenarios::cpython_table() {
        Ok(table) => {
            for method in METHODS {
                for (index, s) in table.iter().enumerate() {
                    let s = s.clone();
                    trials.push(Trial::test(
                        format!("{method}/cpython-table/{index:02}"),
                        move || scenario(&s, method),
                    ));
                }
            }
        }
        Err(reason) => trials.push(Trial::test("cpython_table_parses", move || {
            Err(format!("verify/scenarios/cpython-table.json: {reason}").into())
        })),
    }
    trials.push(Trial::test("the_corpus_is_not_empty", || {
        let count = std::fs::read_dir(corpus())
            .map(|dir| dir.flatten().count())
            .unwrap_or(0);
        if count > 1 {
            Ok(())
        } else {
            Err("verify/regressions/ holds no sequences".into())
        }
    }));
    libtest_mimic::run(&args, trials).exit();
}
