//! Histories of the shared primitives from real processes, judged by the models.
//!
//! This runner forks, so it has `harness = false` and runs on the main thread.

use libtest_mimic::{Arguments, Failed, Trial};
use proclife::StartMethod;
use proclife_model::objects::condition;
use proclife_verify::objects::scenario;
use proclife_verify::objects::scenarios::condition_notify;

fn notify_wakes_at_most_n(n: u32, method: StartMethod) -> Result<(), Failed> {
    let observed = scenario::run(&condition_notify(3, n, 1000), method)
        .map_err(|e| format!("the harness failed: {e:#}"))?;
    condition::judge(&observed.history).map_err(|v| {
        format!(
            "{v}\nhistory (elapsed µs per call: {:?}):\n{}",
            observed.elapsed_us, observed.history
        )
        .into()
    })
}

fn main() {
    let mut args = Arguments::from_args();
    args.test_threads = Some(1);
    let mut trials = Vec::new();
    for method in [StartMethod::Fork, StartMethod::Spawn] {
        for n in [0, 1, 2] {
            trials.push(Trial::test(
                format!("condition_notify_{n}_of_3_{method:?}").to_lowercase(),
                move || notify_wakes_at_most_n(n, method),
            ));
        }
    }
    libtest_mimic::run(&args, trials).exit();
}
