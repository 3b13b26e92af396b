//! The checker has teeth at the right depth: each bug planted in the runtime itself
//! (`proclife::planted`, switched on by `PROCLIFE_PLANTED_BUG`) is caught by the default
//! `proclife check`, whose counterexample fails on every replay alone in a fresh process with
//! the bug, and agrees without it.
//!
//! The bugs cover the checker's former blind spots (a wait that ends early; a probe that reaped
//! the child before the operation under test; a leak that poisoned later sequences; a bug of
//! one start method) and the kinds it always caught.
//! The binary runs as a child process, so this runner has `harness = false` and runs its
//! tests one at a time on the main thread; every wait for the child is bounded.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use libtest_mimic::{Arguments, Failed, Trial};

/// The bugs planted in the runtime, each with what it breaks.
const BUGS: [(&str, &str); 10] = [
    (
        "exitcode-sign-lost",
        "a death by signal N reads as exit code N",
    ),
    (
        "forkserver-exitcode-sign",
        "the same, only for children of the fork server",
    ),
    (
        "restart-after-exit",
        "start() of a handle whose child exited and was reaped starts again",
    ),
    (
        "close-while-running",
        "close() of a running child succeeds and forgets the child",
    ),
    (
        "panic-exit-code",
        "a panicking target exits with 101 instead of 1",
    ),
    ("kill-sends-sigterm", "kill() sends SIGTERM"),
    (
        "signal-overwrites-exitcode",
        "terminate() of an exited, unreaped child overwrites its exit code",
    ),
    (
        "is-alive-cached",
        "is_alive() never collects the exit status, it reads only what is cached",
    ),
    (
        "join-timeout-truncated",
        "a join_timeout below one second returns at once",
    ),
    (
        "poll-leaves-zombie",
        "collecting an exit status leaves the zombie behind",
    ),
];

/// How long one run of the binary may take before the test fails. A total, not a progress
/// watch: the check spends most of a run waiting for fresh `proclife replay` processes,
/// whose work its own CPU time and output do not show, and it bounds each of them itself
/// (120 s); this limit is above what the default budget needs on a loaded machine.
const RUN_LIMIT: Duration = Duration::from_secs(300);

/// How many fresh replays of the saved counterexample must each fail.
const REPLAYS: usize = 3;

struct Run {
    status: Option<i32>,
    stdout: String,
}

/// Runs `proclife args` with the planted bug `bug` (or none), output to a file.
fn proclife(name: &str, args: &[&str], bug: Option<&str>) -> Result<Run, Failed> {
    let out_path = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("mutant-{name}.out"));
    let out = std::fs::File::create(&out_path)
        .map_err(|e| format!("create {}: {e}", out_path.display()))?;
    let mut command = Command::new(env!("CARGO_BIN_EXE_proclife"));
    match bug {
        Some(bug) => command.env(proclife::planted::ENV, bug),
        None => command.env_remove(proclife::planted::ENV),
    };
    let mut child = command
        .args(args)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("spawn proclife: {e}"))?;
    let deadline = Instant::now() + RUN_LIMIT;
    let status = loop {
        match child.try_wait().map_err(|e| format!("wait: {e}"))? {
            Some(status) => break status,
            None if Instant::now() > deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("proclife {args:?} ran longer than {RUN_LIMIT:?}").into());
            }
            None => std::thread::sleep(Duration::from_millis(20)),
        }
    };
    let stdout = std::fs::read_to_string(&out_path)
        .map_err(|e| format!("read {}: {e}", out_path.display()))?;
    Ok(Run {
        status: status.code(),
        stdout,
    })
}

fn caught(bug: &str, breaks: &str) -> Result<(), Failed> {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("mutant-{bug}"));
    let _ = std::fs::remove_dir_all(&dir);
    let dir_arg = dir.to_string_lossy().into_owned();
    let run = proclife(bug, &["check", "--save-dir", &dir_arg], Some(bug))?;
    if run.status != Some(1) || !run.stdout.starts_with("The runtime and the model DISAGREE") {
        return Err(format!(
            "{bug} ({breaks}) was not caught: status {:?}\n{}",
            run.status, run.stdout
        )
        .into());
    }
    // "Run it again with: proclife replay FILE --method METHOD"
    let again = run
        .stdout
        .lines()
        .find_map(|line| line.strip_prefix("Run it again with: proclife "))
        .ok_or_else(|| format!("{bug}: no counterexample was kept:\n{}", run.stdout))?;
    let args: Vec<&str> = again.split_whitespace().collect();
    let file = args.get(1).copied().unwrap_or_default();
    if !Path::new(file).starts_with(&dir) {
        return Err(format!("{bug}: saved outside {dir_arg}: {again}").into());
    }
    for replay in 0..REPLAYS {
        let with = proclife(&format!("{bug}-replay"), &args, Some(bug))?;
        if with.status != Some(1) {
            return Err(format!(
                "{bug}: replay {replay} of the counterexample did not fail (status {:?}):\n{}",
                with.status, with.stdout
            )
            .into());
        }
    }
    let without = proclife(&format!("{bug}-real"), &args, None)?;
    if without.status != Some(0) {
        return Err(format!(
            "{bug}: the real runtime fails the counterexample too:\n{}",
            without.stdout
        )
        .into());
    }
    Ok(())
}

fn main() {
    let mut args = Arguments::from_args();
    args.test_threads = Some(1);
    let trials = BUGS
        .into_iter()
        .map(|(bug, breaks)| Trial::test(bug, move || caught(bug, breaks)))
        .collect();
    libtest_mimic::run(&args, trials).exit();
}
