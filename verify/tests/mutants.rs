//! The verifier has teeth: each planted bug ([`Mutant`]) on top of the runtime is caught by
//! `proclife check` within its default budget, and (with settled sequences) shrunk to a short
//! sequence that shows it on every replay and passes on the real runtime.
//!
//! This runner forks, so it has `harness = false` and runs on the main thread.

use libtest_mimic::{Arguments, Failed, Trial};
use proclife_verify::check::{self, Options};
use proclife_verify::reference::SettleMode;
use proclife_verify::run;
use proclife_verify::sut::Mutant;

fn caught(mutant: Mutant) -> Result<(), Failed> {
    // The default check (half the sequences racing) finds the bug within its budget.
    let summary = check::check(
        &Options {
            mutant: Some(mutant),
            ..Options::default()
        },
        |_| {},
    );
    if summary.failure.is_none() {
        return Err(format!("{} survived {} sequences", mutant.name(), summary.cases).into());
    }
    // A racing counterexample may shrink to one that fails only with some timings; settled
    // sequences have one correct set of observations, so there the shrunk sequence must show
    // the bug on every replay, and only with the bug.
    let summary = check::check(
        &Options {
            mutant: Some(mutant),
            settle: SettleMode::Always,
            ..Options::default()
        },
        |_| {},
    );
    let Some(failure) = summary.failure else {
        return Err(format!(
            "{} survived {} settled sequences",
            mutant.name(),
            summary.cases
        )
        .into());
    };
    if failure.trace.ops.is_empty() || failure.trace.ops.len() > 12 {
        return Err(format!(
            "{}: the shrunk sequence has {} steps:\n{}",
            mutant.name(),
            failure.trace.ops.len(),
            failure.trace.to_json()
        )
        .into());
    }
    if failure.replays != 1 || failure.replay.failure.is_none() {
        return Err(format!(
            "{}: the settled shrunk sequence did not fail on its first replay:\n{}",
            mutant.name(),
            failure.trace.to_json()
        )
        .into());
    }
    let without = run::run(
        &failure.trace.ops,
        failure.trace.procs(),
        None,
        proclife::StartMethod::Fork,
    );
    if let Some(failure) = without.failure {
        return Err(format!("{}: the real runtime fails too: {failure}", mutant.name()).into());
    }
    Ok(())
}

fn main() {
    let mut args = Arguments::from_args();
    args.test_threads = Some(1);
    let trials = Mutant::ALL
        .into_iter()
        .map(|mutant| Trial::test(mutant.name(), move || caught(mutant)))
        .collect();
    libtest_mimic::run(&args, trials).exit();
}
