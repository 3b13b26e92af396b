//! T44: the chaos soak with a short budget, as part of the test command
//! (`cargo run --release -p proclife-benches --bin soak -- --seconds N` runs it longer).

use std::process::{Command, Stdio};

/// The soak's budget in the test command: short, so CI stays fast.
const CI_SECONDS: &str = "5";

#[test]
fn seeded_chaos_soak_short_budget_t44() {
    let out = std::env::temp_dir().join(format!("proclife-soak-{}.out", std::process::id()));
    let file = std::fs::File::create(&out).expect("create the soak's output file");
    let mut child = Command::new(env!("CARGO_BIN_EXE_soak"))
        .args(["--seed", "44", "--seconds", CI_SECONDS])
        .stdout(Stdio::from(file))
        .spawn()
        .expect("start the soak");
    // The soak is work: bounded by no progress (CPU time, output), not by a total.
    let mut progress = proclife_testkit::wait::Progress::new("the soak");
    let status = proclife_testkit::wait::wait_working(&mut child, &mut progress, || 0);
    let summary = std::fs::read_to_string(&out).unwrap_or_default();
    let _ = std::fs::remove_file(&out);
    let status = status.unwrap_or_else(|stuck| panic!("{stuck}"));
    assert!(
        status.success(),
        "expected the soak to pass every check (exit 0); it exited with {status}: {summary}"
    );
    eprint!("{summary}");
    let programs: u64 = summary
        .split_whitespace()
        .skip_while(|w| *w != "44:")
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(
        programs > 0 && summary.contains("faults injected"),
        "expected a summary with programs run and faults injected; got {summary:?}"
    );
}
