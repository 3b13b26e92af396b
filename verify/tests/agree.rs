//! The model and the runtime agree on random operation sequences: `proclife check` with a
//! small budget, once with a settle after every exit-causing operation and once racing, under
//! the fork start method, and mixed under the fork server and spawn.
//!
//! The budget is `PROPTEST_CASES` (default 300 per mode); `proclife check` with its defaults
//! runs the full budget and requires full edge coverage.
//! This runner forks, so it has `harness = false` and runs on the main thread.

use libtest_mimic::{Arguments, Failed, Trial};
use proclife::StartMethod;
use proclife_verify::check::{self, Options};
use proclife_verify::reference::SettleMode;

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300)
}

fn agree(settle: SettleMode, seed: u64, method: StartMethod) -> Result<(), Failed> {
    let options = Options {
        cases: cases(),
        seed,
        settle,
        method: Some(method),
        ..Options::default()
    };
    let summary = check::check(&options, |_| {});
    if let Some(failure) = summary.failure {
        return Err(format!("{}\n{}", failure.reason, failure.shrunk.to_json()).into());
    }
    if summary.cases != options.cases {
        return Err(format!("ran {} of {} sequences", summary.cases, options.cases).into());
    }
    if summary.leaks > 0 {
        return Err(format!("{} sequences left something behind", summary.leaks).into());
    }
    if summary.coverage.foreign().next().is_some() {
        return Err(format!("edges outside the graph:\n{}", summary.coverage.table()).into());
    }
    Ok(())
}

fn main() {
    let mut args = Arguments::from_args();
    args.test_threads = Some(1);
    let trials = vec![
        Trial::test("settled_sequences_agree", || {
            agree(SettleMode::Always, 11, StartMethod::Fork)
        }),
        Trial::test("racing_sequences_agree", || {
            agree(SettleMode::Never, 12, StartMethod::Fork)
        }),
        Trial::test("forkserver_sequences_agree", || {
            agree(SettleMode::Mixed, 13, StartMethod::ForkServer)
        }),
        Trial::test("spawn_sequences_agree", || {
            agree(SettleMode::Mixed, 14, StartMethod::Spawn)
        }),
    ];
    libtest_mimic::run(&args, trials).exit();
}
