//! Tests of the `proclife` command line: `graph` prints the committed DOT and JSON that parses;
//! `replay` runs a file (or standard input) and prints both sides; `check` catches a bug planted
//! in the runtime, prints it first, saves the sequence where it says and exits with 1; partial
//! coverage comes with a hint; `--help` gives the exit statuses and the replay format; bad
//! arguments and malformed replay files give a clear, short message and exit status 2, never a
//! panic.
//!
//! The binary is run as a child process, so this runner has `harness = false` and runs its
//! tests one at a time on the main thread; every wait for the child is bounded.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use libtest_mimic::{Arguments, Failed, Trial};

type Run = proclife_testkit::wait::Logged;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

/// Runs `proclife` with `args`, its output going to files (so a large output cannot fill a
/// pipe), and waits while it makes progress.
fn proclife(name: &str, args: &[&str]) -> Result<Run, Failed> {
    proclife_with_stdin(name, args, None)
}

/// As [`proclife`], with standard input read from `stdin`.
fn proclife_with_stdin(name: &str, args: &[&str], stdin: Option<&Path>) -> Result<Run, Failed> {
    proclife_env(name, args, stdin, None)
}

/// As [`proclife_with_stdin`], with the runtime's planted bug `bug` switched on.
fn proclife_env(
    name: &str,
    args: &[&str],
    stdin: Option<&Path>,
    bug: Option<&str>,
) -> Result<Run, Failed> {
    let input = match stdin {
        Some(path) => {
            Stdio::from(File::open(path).map_err(|e| format!("open {}: {e}", path.display()))?)
        }
        None => Stdio::null(),
    };
    let mut command = Command::new(env!("CARGO_BIN_EXE_proclife"));
    match bug {
        Some(bug) => command.env(proclife::planted::ENV, bug),
        None => command.env_remove(proclife::planted::ENV),
    };
    command.args(args).stdin(input).env_remove("RUST_BACKTRACE");
    // A run is work (a check of many sequences): the bound is no progress (CPU time or
    // output), not a total.
    let stem = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("cli-{name}"));
    Ok(proclife_testkit::wait::run_logged(
        &mut command,
        &format!("proclife {args:?}"),
        &stem,
    )?)
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

fn graph_story_equals_committed_file() -> Result<(), Failed> {
    let committed = std::fs::read_to_string(root().join("docs/lifecycle-story.dot"))
        .map_err(|e| format!("read docs/lifecycle-story.dot: {e}"))?;
    let run = proclife("story", &["graph", "--view", "story"])?;
    ensure(run.status == Some(0), || {
        format!("status {:?}, {}", run.status, run.stderr)
    })?;
    ensure(run.stdout == committed, || {
        "`graph --view story` differs from docs/lifecycle-story.dot".to_owned()
    })?;
    let json = proclife(
        "story-json",
        &["graph", "--view", "story", "--format", "json"],
    )?;
    ensure(json.status == Some(2), || {
        format!("story as JSON: expected status 2, got {:?}", json.status)
    })?;
    ensure(json.stderr.contains("DOT only"), || {
        format!(
            "story as JSON: expected a message naming DOT, got {:?}",
            json.stderr
        )
    })
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

/// A scratch file under the test target's temporary folder.
fn scratch(name: &str, text: &str) -> Result<PathBuf, Failed> {
    let path = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(name);
    std::fs::write(&path, text).map_err(|e| format!("write {}: {e}", path.display()))?;
    Ok(path)
}

const GOOD: &str = r#"{"ops":[
  {"op":"start"},
  {"op":"child_exit","code":3},
  {"op":"settle"},
  {"op":"is_alive"},
  {"op":"exitcode"},
  {"op":"start"}
]}
"#;

fn replay_json_prints_both_sides() -> Result<(), Failed> {
    let file = scratch("good.json", GOOD)?;
    let path = file.to_string_lossy().into_owned();
    for (name, args, stdin) in [
        ("replay-file", vec!["replay", "--json", path.as_str()], None),
        (
            "replay-stdin",
            vec!["replay", "--json", "-"],
            Some(file.as_path()),
        ),
    ] {
        let run = proclife_with_stdin(name, &args, stdin)?;
        ensure(run.status == Some(0), || {
            format!("{args:?}: status {:?}: {}", run.status, run.stderr)
        })?;
        let json: serde_json::Value =
            serde_json::from_str(&run.stdout).map_err(|e| format!("not JSON: {e}"))?;
        ensure(json["agree"] == serde_json::json!(true), || {
            run.stdout.clone()
        })?;
        let expected = serde_json::json!([
            {"op": "start", "ok": null},
            {"op": "child_exit", "ok": true},
            {"op": "settle", "ok": null},
            {"op": "is_alive", "ok": false},
            {"op": "exitcode", "ok": 3},
            {"op": "start", "err": {"type": "AssertionError", "msg": "cannot start a process twice"}}
        ]);
        ensure(json["runtime"] == expected, || {
            format!("runtime side: {}", json["runtime"])
        })?;
        ensure(json["model"] == expected, || {
            format!("model side: {}", json["model"])
        })?;
    }
    Ok(())
}

fn malformed_replay_exits_with_2(name: &str, text: &str, needles: &[&str]) -> Result<(), Failed> {
    let file = scratch(&format!("{name}.json"), text)?;
    let path = file.to_string_lossy().into_owned();
    let run = proclife(name, &["replay", &path])?;
    ensure(run.status == Some(2), || format!("status {:?}", run.status))?;
    // Nothing ran: the table of steps is printed only after a run.
    ensure(run.stdout.is_empty(), || format!("printed: {}", run.stdout))?;
    for needle in needles {
        ensure(run.stderr.contains(needle), || {
            format!("stderr lacks {needle:?}: {}", run.stderr)
        })?;
    }
    ensure(!run.stderr.contains("panicked"), || run.stderr.clone())
}

fn check_catches_a_planted_bug_and_saves_it() -> Result<(), Failed> {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("cli-regressions");
    let _ = std::fs::remove_dir_all(&dir);
    let dir_arg = dir.to_string_lossy().into_owned();
    let bug = Some("exitcode-sign-lost");
    let run = proclife_env(
        "check-planted",
        &[
            "check",
            "--lifecycle",
            "--cases",
            "200",
            "--method",
            "fork",
            "--save-dir",
            &dir_arg,
        ],
        None,
        bug,
    )?;
    ensure(run.status == Some(1), || {
        format!("status {:?}: {}{}", run.status, run.stdout, run.stderr)
    })?;
    // The disagreement comes first, before the coverage table.
    ensure(
        run.stdout.starts_with("The runtime and the model DISAGREE"),
        || run.stdout.clone(),
    )?;
    ensure(run.stdout.contains("<-- differs"), || run.stdout.clone())?;
    ensure(run.stdout.contains(&format!("Saved to {dir_arg}")), || {
        run.stdout.clone()
    })?;
    let saved: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map_err(|e| format!("read {}: {e}", dir.display()))?
        .flatten()
        .map(|entry| entry.path())
        .collect();
    ensure(saved.len() == 1, || format!("saved {saved:?}"))?;
    let saved = saved[0].to_string_lossy().into_owned();
    let with = proclife_env("replay-planted", &["replay", "--json", &saved], None, bug)?;
    ensure(with.status == Some(1), || {
        format!("status {:?}", with.status)
    })?;
    ensure(with.stdout.contains("\"agree\":false"), || {
        with.stdout.clone()
    })?;
    let without = proclife("replay-saved", &["replay", &saved])?;
    ensure(without.status == Some(0), || {
        format!("the real runtime disagrees: {}", without.stdout)
    })
}

fn check_runs_under_every_method() -> Result<(), Failed> {
    for method in ["fork", "forkserver", "spawn"] {
        let run = proclife(
            &format!("check-{method}"),
            &[
                "check",
                "--lifecycle",
                "--cases",
                "30",
                "--allow-partial-coverage",
                "--method",
                method,
            ],
        )?;
        ensure(run.status == Some(0), || {
            format!(
                "{method}: status {:?}: {}{}",
                run.status, run.stdout, run.stderr
            )
        })?;
        ensure(
            run.stdout
                .contains(&format!("Ran 30 sequences (30 {method})")),
            || run.stdout.clone(),
        )?;
    }
    Ok(())
}

/// A partial run says so in plain words, with what to do, and exits with 1.
fn partial_coverage_gives_a_hint() -> Result<(), Failed> {
    let run = proclife("check-partial", &["check", "--cases", "6"])?;
    ensure(run.status == Some(1), || {
        format!("status {:?}: {}{}", run.status, run.stdout, run.stderr)
    })?;
    ensure(
        run.stdout
            .contains("Ran 6 sequences (2 fork, 2 forkserver, 2 spawn)"),
        || run.stdout.clone(),
    )?;
    ensure(run.stdout.contains("Hint: raise --cases"), || {
        run.stdout.clone()
    })?;
    ensure(run.stdout.contains("coverage is partial"), || {
        run.stdout.clone()
    })
}

/// `--help` gives the exit statuses and the replay format.
fn help_gives_exit_codes_and_the_replay_format() -> Result<(), Failed> {
    for command in [&["--help"][..], &["check", "--help"], &["replay", "--help"]] {
        let run = proclife("help", command)?;
        ensure(run.status == Some(0), || format!("status {:?}", run.status))?;
        for needle in [
            "Exit status:",
            "2  bad arguments",
            "{\"op\":\"child_exit\",\"code\":3}",
        ] {
            ensure(run.stdout.contains(needle), || {
                format!("{command:?} lacks {needle:?}: {}", run.stdout)
            })?;
        }
    }
    Ok(())
}

/// An unknown operation's enormous name is not echoed back.
fn long_names_are_cut() -> Result<(), Failed> {
    let path = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("cli-long-name.json");
    let text = format!("{{\"ops\":[{{\"op\":\"{}\"}}]}}", "x".repeat(10 << 20));
    std::fs::write(&path, text).map_err(|e| format!("write {}: {e}", path.display()))?;
    let run = proclife("long-name", &["replay", &path.to_string_lossy()])?;
    ensure(run.status == Some(2), || format!("status {:?}", run.status))?;
    ensure(run.stderr.contains("unknown operation"), || {
        run.stderr.clone()
    })?;
    ensure(run.stderr.contains("characters left out"), || {
        run.stderr.clone()
    })?;
    ensure(run.stderr.len() < 1000, || {
        format!("{} bytes of messages", run.stderr.len())
    })
}

fn check_writes_coverage() -> Result<(), Failed> {
    let dot = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("coverage.dot");
    let dot_arg = dot.to_string_lossy().into_owned();
    let run = proclife(
        "check-small",
        &[
            "check",
            "--lifecycle",
            "--cases",
            "40",
            "--allow-partial-coverage",
            "--dot-coverage",
            &dot_arg,
        ],
    )?;
    ensure(run.status == Some(0), || {
        format!("status {:?}: {}{}", run.status, run.stdout, run.stderr)
    })?;
    ensure(run.stdout.contains("Ran 40 sequences"), || {
        run.stdout.clone()
    })?;
    let text = std::fs::read_to_string(&dot).map_err(|e| format!("read coverage: {e}"))?;
    ensure(
        text.starts_with("// Coverage of a `proclife check` run")
            && text.contains("start / None (")
            && text.contains(" hits)"),
        || text.clone(),
    )
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
        Trial::test(
            "graph_story_equals_committed_file",
            graph_story_equals_committed_file,
        ),
    ];
    trials.push(Trial::test(
        "replay_json_prints_both_sides",
        replay_json_prints_both_sides,
    ));
    trials.push(Trial::test(
        "check_catches_a_planted_bug_and_saves_it",
        check_catches_a_planted_bug_and_saves_it,
    ));
    trials.push(Trial::test("check_writes_coverage", check_writes_coverage));
    trials.push(Trial::test(
        "partial_coverage_gives_a_hint",
        partial_coverage_gives_a_hint,
    ));
    trials.push(Trial::test(
        "help_gives_exit_codes_and_the_replay_format",
        help_gives_exit_codes_and_the_replay_format,
    ));
    trials.push(Trial::test("long_names_are_cut", long_names_are_cut));
    trials.push(Trial::test(
        "check_runs_under_every_method",
        check_runs_under_every_method,
    ));
    let malformed: [(&'static str, &'static str, &'static [&'static str]); 4] = [
        (
            "unknown-op",
            "{\"ops\":[\n{\"op\":\"start\"},\n{\"op\":\"fly\"}]}",
            &["line 3", "unknown operation \"fly\""],
        ),
        (
            "bad-field",
            "{\"ops\":[\n{\"op\":\"child_exit\",\"code\":\"x\"}]}",
            &["line 2", "\"code\" of child_exit must be an integer"],
        ),
        (
            "extra-field",
            "{\"ops\":[{\"op\":\"start\",\"colour\":1}]}",
            &["line 1", "unknown field `colour`"],
        ),
        (
            "truncated",
            "{\"ops\":[{\"op\":\"start\"}",
            &["line 1", "EOF"],
        ),
    ];
    for (name, text, needles) in malformed {
        trials.push(Trial::test(
            format!("malformed_replay_exits_with_2::{name}"),
            move || malformed_replay_exits_with_2(name, text, needles),
        ));
    }
    trials.push(Trial::test("missing_replay_file_exits_with_2", || {
        let run = proclife("missing", &["replay", "/nonexistent/replay.json"])?;
        ensure(run.status == Some(2), || format!("status {:?}", run.status))?;
        ensure(
            run.stderr.contains("cannot read /nonexistent/replay.json"),
            || run.stderr.clone(),
        )
    }));
    for (name, argv, needle) in [
        (
            "zero-cases",
            &["check", "--cases", "0"][..],
            "invalid value '0' for '--cases <CASES>'",
        ),
        (
            "unknown-method",
            &["check", "--method", "vfork"][..],
            "unknown start method",
        ),
        (
            "settle-and-no-settle",
            &["check", "--settle", "--no-settle"][..],
            "cannot be used with",
        ),
    ] {
        trials.push(Trial::test(
            format!("bad_arguments_exit_with_2::{name}"),
            move || bad_arguments_exit_with_2(name, argv, needle),
        ));
    }
    for (name, argv, needle) in bad {
        trials.push(Trial::test(
            format!("bad_arguments_exit_with_2::{name}"),
            move || bad_arguments_exit_with_2(name, argv, needle),
        ));
    }
    libtest_mimic::run(&args, trials).exit();
}
