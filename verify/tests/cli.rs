//! Tests of the `proclife` command line: `graph` prints the committed DOT, JSON that parses,
//! and bad arguments give a clear message and exit status 2, never a panic.
//!
//! The binary is run as a child process, so this runner has `harness = false` and runs its
//! tests one at a time on the main thread; every wait for the child is bounded.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use libtest_mimic::{Arguments, Failed, Trial};

/// How long one run of the binary may take before the test fails.
const RUN_LIMIT: Duration = Duration::from_secs(60);

struct Run {
    status: Option<i32>,
    stdout: String,
    stderr: String,
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

/// Runs `proclife` with `args`, its output going to files (so a large output cannot fill a
/// pipe), and waits at most [`RUN_LIMIT`].
fn proclife(name: &str, args: &[&str]) -> Result<Run, Failed> {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let out_path = dir.join(format!("cli-{name}.stdout"));
    let err_path = dir.join(format!("cli-{name}.stderr"));
    let out = File::create(&out_path).map_err(|e| format!("create {}: {e}", out_path.display()))?;
    let err = File::create(&err_path).map_err(|e| format!("create {}: {e}", err_path.display()))?;
    let mut child = Command::new(env!("CARGO_BIN_EXE_proclife"))
        .args(args)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .env_remove("RUST_BACKTRACE")
        .spawn()
        .map_err(|e| format!("spawn proclife: {e}"))?;
    let deadline = Instant::now() + RUN_LIMIT;
    let status = loop {
        match child.try_wait().map_err(|e| format!("wait: {e}"))? {
            Some(status) => break status,
            None if Instant::now() > deadline => {
                // Best effort: the test fails either way, and wait() reaps the child.
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("proclife {args:?} ran longer than {RUN_LIMIT:?}").into());
            }
            None => std::thread::sleep(Duration::from_millis(10)),
        }
    };
    let read =
        |p: &Path| std::fs::read_to_string(p).map_err(|e| format!("read {}: {e}", p.display()));
    Ok(Run {
        status: status.code(),
        stdout: read(&out_path)?,
        stderr: read(&err_path)?,
    })
}

fn ensure(condition: bool, message: impl FnOnce() -> String) -> Result<(), Failed> {
    if condition {
        Ok(())
    } else {
        Err(message().into())
    }
}

fn graph_dot_equals_committed_file() -> Result<(), Failed> {
    let committed = std::fs::read_to_string(root().join("docs/lifecycle.dot"))
        .map_err(|e| format!("read docs/lifecycle.dot: {e}"))?;
    for (name, args) in [
        ("dot-default", &["graph"][..]),
        ("dot", &["graph", "--format", "dot"][..]),
    ] {
        let run = proclife(name, args)?;
        ensure(run.status == Some(0), || {
            format!("{args:?}: status {:?}, {}", run.status, run.stderr)
        })?;
        ensure(run.stdout == committed, || {
            format!("{args:?} differs from docs/lifecycle.dot")
        })?;
    }
    Ok(())
}

fn graph_json_parses() -> Result<(), Failed> {
    let run = proclife("json", &["graph", "--format", "json"])?;
    ensure(run.status == Some(0), || {
        format!("status {:?}: {}", run.status, run.stderr)
    })?;
    let doc: proclife_model::export::GraphDoc =
        serde_json::from_str(&run.stdout).map_err(|e| format!("not a GraphDoc: {e}"))?;
    let graph = proclife_model::TransitionGraph::explore();
    ensure(
        doc == proclife_model::export::GraphDoc::from_graph(&graph),
        || "JSON differs from the model's graph".to_owned(),
    )
}

fn bad_arguments_exit_with_2(name: &str, args: &[&str], needle: &str) -> Result<(), Failed> {
    let run = proclife(name, args)?;
    ensure(run.status == Some(2), || {
        format!("{args:?}: status {:?}", run.status)
    })?;
    ensure(run.stdout.is_empty(), || {
        format!("{args:?} printed to stdout")
    })?;
    ensure(run.stderr.contains(needle), || {
        format!("{args:?}: stderr lacks {needle:?}: {}", run.stderr)
    })?;
    ensure(!run.stderr.contains("panicked"), || {
        format!("{args:?} panicked: {}", run.stderr)
    })
}

fn main() {
    let mut args = Arguments::from_args();
    // Spawning children: one test at a time, on the main thread.
    args.test_threads = Some(1);
    let bad: [(&'static str, &'static [&'static str], &'static str); 5] = [
        (
            "unknown-format",
            &["graph", "--format", "svg"],
            "invalid value 'svg' for '--format <FORMAT>'",
        ),
        (
            "missing-format-value",
            &["graph", "--format"],
            "a value is required for '--format <FORMAT>'",
        ),
        (
            "unknown-flag",
            &["graph", "--colour"],
            "unexpected argument '--colour'",
        ),
        (
            "unknown-subcommand",
            &["draw"],
            "unrecognized subcommand 'draw'",
        ),
        ("no-subcommand", &[], "Usage: proclife <COMMAND>"),
    ];
    let mut trials = vec![
        Trial::test(
            "graph_dot_equals_committed_file",
            graph_dot_equals_committed_file,
        ),
        Trial::test("graph_json_parses", graph_json_parses),
    ];
    for (name, argv, needle) in bad {
        trials.push(Trial::test(
            format!("bad_arguments_exit_with_2::{name}"),
            move || bad_arguments_exit_with_2(name, argv, needle),
        ));
    }
    libtest_mimic::run(&args, trials).exit();
}
