//! The verifier has teeth: each planted bug ([`Mutant`]) on top of the runtime is caught by
//! `proclife check` within its default budget, and shrunk to a short sequence that still shows
//! it.
//!
//! This runner forks, so it has `harness = false` and runs on the main thread.

use libtest_mimic::{Arguments, Failed, Trial};
use proclife_verify::check::{self, Options};
use proclife_verify::run;
use proclife_verify::sut::Mutant;

fn caught(mutant: Mutant) -> Result<(), Failed> {
    let options = Options {
        mutant: Some(mutant),
        ..Options::default()
    };
    let summary = check::check(&options, |_| {});
    let Some(failure) = summary.failure else {
        return Err(format!("{} survived {} sequences", mutant.name(), summary.cases).into());
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
    // The shrunk sequence shows the bug when replayed with it (`check` replays it until it
    // fails again), and not without it.
    if failure.replay.failure.is_none() {
        return Err(format!(
            "{}: the shrunk sequence passed {} replays",
            mutant.name(),
            failure.replays
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
