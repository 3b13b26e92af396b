//! Histories of the shared primitives from real processes, judged by the models.
//!
//! This runner forks, so it has `harness = false` and runs on the main thread.

use libtest_mimic::{Arguments, Failed, Trial};
use proclife::StartMethod;
use proclife_model::objects::condition;
use proclife_verify::objects::coverage::Coverage;
use proclife_verify::objects::scenarios::{condition_notify, rows_and_untimed_join};
use proclife_verify::objects::{check, scenario};

fn notify_wakes_at_most_n(n: u32, method: StartMethod) -> Result<(), Failed> {
    let observed = scenario::run(&condition_notify(3, n, 1000), method)
        .map_err(|e| format!("the harness failed: {e:#}"))?;
    condition::judge(&observed.history, &[]).map_err(|v| {
        format!(
            "{v}\nhistory (elapsed µs per call: {:?}):\n{}",
            observed.elapsed_us, observed.history
        )
        .into()
    })
}

/// Runs trial `name` of this binary again with the bug `bug` planted, and expects it to fail
/// with the judge's verdict `rule`.
fn planted(bug: &'static str, name: &'static str, rule: &'static str) -> Result<(), Failed> {
    let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
    let out = std::process::Command::new(exe)
        .args(["--exact", name])
        .env(proclife::planted::ENV, bug)
        .output()
        .map_err(|e| format!("running {name} with {bug}: {e}"))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if out.status.success() || !stdout.contains(rule) {
        return Err(format!(
            "expected {name} to fail with \"{rule}\" with {bug} planted; it exited with {} and said:\n{stdout}",
            out.status
        )
        .into());
    }
    Ok(())
}

fn random_programs_agree(method: Option<StartMethod>, cases: u32) -> Result<(), Failed> {
    let options = check::Options {
        cases,
        method,
        ..check::Options::default()
    };
    let summary =
        check::check(&options, |_| {}).map_err(|e| format!("the harness failed: {e:#}"))?;
    if let Some(f) = summary.failure {
        return Err(format!(
            "{}\nshrunk program: {:?}\nhistory:\n{}",
            f.violation, f.program, f.observed.history
        )
        .into());
    }
    Ok(())
}

/// The bugs planted in the runtime's primitives, each caught by the default budget of
/// `proclife check --objects`.
const PLANTED: [&str; 11] = [
    "condition-notify-zero-wakes-one",
    "condition-notify-wakes-one-more",
    "condition-timeout-reports-woken",
    "lock-release-by-non-owner",
    "queue-get-leaves-item",
    "barrier-last-index-zero",
    "joinable-task-done-one-too-many",
    "value-update-unlocked",
    "array-set-unlocked",
    "pipe-eof-early",
    "duplex-recv-skips-item",
];

fn proclife(args: &[&str], bug: Option<&str>) -> Result<std::process::Output, String> {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_proclife"));
    command.args(args).env_remove(proclife::planted::ENV);
    if let Some(bug) = bug {
        command.env(proclife::planted::ENV, bug);
    }
    command
        .output()
        .map_err(|e| format!("running proclife {args:?}: {e}"))
}

/// `proclife check --objects` catches `bug` within its default budget and saves a shrunk
/// program that fails on every replay with the bug, and agrees without it.
fn caught_and_shrunk(bug: &'static str) -> Result<(), Failed> {
    let dir = std::env::temp_dir().join(format!("proclife-objects-{}-{bug}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let dir_arg = dir.to_string_lossy().into_owned();
    let out = proclife(&["check", "--objects", "--save-dir", &dir_arg], Some(bug))?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let result = (|| {
        if out.status.code() != Some(1) || !stdout.contains("DISAGREEMENT") {
            return Err(format!(
                "{bug}: expected check to exit 1 with a disagreement; it exited with {} and said:\n{stdout}\n{}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        let file = std::fs::read_dir(&dir)
            .map_err(|e| format!("{bug}: no replay file was saved: {e}"))?
            .filter_map(Result::ok)
            .map(|entry| entry.path())
            .next()
            .ok_or_else(|| format!("{bug}: no replay file was saved"))?;
        let text = std::fs::read_to_string(&file).map_err(|e| e.to_string())?;
        let calls = text.lines().count() - 1;
        if calls > 12 {
            return Err(format!(
                "{bug}: the shrunk program has {calls} lines:\n{text}"
            ));
        }
        let path = file.to_string_lossy().into_owned();
        // "... (run `proclife replay FILE --method METHOD`)"
        let method = stdout
            .split("--method ")
            .nth(1)
            .and_then(|rest| rest.split('`').next())
            .ok_or_else(|| format!("{bug}: the check named no start method:\n{stdout}"))?
            .to_owned();
        let mut failed = 0;
        let mut last = String::new();
        for _ in 0..3 {
            let again = proclife(&["replay", &path, "--method", &method], Some(bug))?;
            if again.status.code() == Some(1) {
                failed += 1;
            } else {
                last = String::from_utf8_lossy(&again.stdout).into_owned();
            }
        }
        // Shrinking orders the program by awaits and gives every wait a long timeout (the
        // parent's twice the workers'), so the failure no longer depends on timing.
        if failed < 3 {
            return Err(format!(
                "{bug}: the shrunk program failed on {failed} of 3 replays:\n{text}\n{last}"
            ));
        }
        let clean = proclife(&["replay", &path, "--method", &method], None)?;
        if !clean.status.success() {
            return Err(format!(
                "{bug}: without the bug, the shrunk program should agree:\n{}",
                String::from_utf8_lossy(&clean.stdout)
            ));
        }
        Ok(())
    })();
    let _ = std::fs::remove_dir_all(&dir);
    result.map_err(Failed::from)
}

/// `docs/objects/<name>.dot` is what `proclife graph --object <Name>` prints;
/// `UPDATE_EXPECT=1` rewrites it (render the picture with `dot -Tsvg`).
fn object_graphs_are_committed() -> Result<(), Failed> {
    let docs = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/objects");
    for obj in proclife_model::objects::graph::GRAPHED {
        let path = docs.join(format!("{}.dot", obj.name().to_lowercase()));
        let fresh = proclife_model::objects::graph::dot(obj)
            .ok_or_else(|| format!("no graph for {}", obj.name()))?;
        if std::env::var_os("UPDATE_EXPECT").is_some_and(|v| v == "1") {
            std::fs::write(&path, &fresh).map_err(|e| format!("{}: {e}", path.display()))?;
            continue;
        }
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        if committed != fresh {
            return Err(format!(
                "{} is stale; regenerate it with `UPDATE_EXPECT=1 cargo test -p proclife-verify --test objects`",
                path.display()
            )
            .into());
        }
    }
    Ok(())
}

/// Each fixed program that stands in for what random programs do not reach (a refusal row,
/// an untimed `join`) agrees with the models and reaches its classes, under `method`.
fn fixed_programs_reach_their_rows(method: StartMethod) -> Result<(), Failed> {
    for (program, classes) in rows_and_untimed_join() {
        let (observed, verdict) = check::run_judged(&program, method)
            .map_err(|e| format!("the harness failed: {e:#}"))?;
        let rows = verdict.map_err(|v| format!("{v}\nhistory:\n{}", observed.history))?;
        let mut coverage = Coverage::default();
        coverage.add(&observed, Some(&rows));
        for &(obj, op, outcome) in classes {
            if coverage.hits(obj, op, outcome) == 0 {
                return Err(format!(
                    "expected {}.{op} -> {outcome} in the history of {program:?}; it was:\n{}",
                    obj.name(),
                    observed.history
                )
                .into());
            }
        }
    }
    Ok(())
}

fn main() {
    let mut args = Arguments::from_args();
    args.test_threads = Some(1);
    let mut trials = vec![Trial::test(
        "object_graphs_are_committed",
        object_graphs_are_committed,
    )];
    for method in [StartMethod::Fork, StartMethod::Spawn] {
        for n in [0, 1, 2] {
            trials.push(Trial::test(
                format!("condition_notify_{n}_of_3_{method:?}").to_lowercase(),
                move || notify_wakes_at_most_n(n, method),
            ));
        }
    }
    for method in [
        StartMethod::Fork,
        StartMethod::ForkServer,
        StartMethod::Spawn,
    ] {
        trials.push(Trial::test(
            format!("fixed_programs_reach_their_rows_{method:?}").to_lowercase(),
            move || fixed_programs_reach_their_rows(method),
        ));
    }
    let cases: u32 = std::env::var("OBJECTS_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100);
    trials.push(Trial::test(
        "random_programs_agree_every_method",
        move || random_programs_agree(None, cases),
    ));
    for (bug, name) in [
        (
            "condition-notify-zero-wakes-one",
            "condition_notify_0_of_3_fork",
        ),
        (
            "condition-notify-wakes-one-more",
            "condition_notify_1_of_3_fork",
        ),
        (
            "condition-timeout-reports-woken",
            "condition_notify_0_of_3_spawn",
        ),
    ] {
        trials.push(Trial::test(format!("planted_{bug}"), move || {
            planted(bug, name, "more waits woken than notified")
        }));
    }
    for bug in PLANTED {
        trials.push(Trial::test(format!("check_catches_{bug}"), move || {
            caught_and_shrunk(bug)
        }));
    }
    libtest_mimic::run(&args, trials).exit();
}
