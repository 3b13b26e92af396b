//! Tests of `proclife conform` and the CPython oracle: a small conformance run agrees with
//! CPython outside the documented deviations; the CPython table corpus runs on CPython under
//! every start method; a deviation planted in the model is caught and shrunk; `replay
//! --python` shows three columns; a bad `--python` (missing, not Python, too old, dying,
//! printing garbage) is a clear error with exit status 2 and leaves nothing running; the Python
//! program killed mid-sequence leaves no child; and the deviations file, its decision records
//! and `docs/conformance.md` agree.
//!
//! Tests that need CPython run when `python3` is on the PATH and are reported as ignored,
//! with a line saying so, when it is not. Every wait is bounded and scales with the work.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use libtest_mimic::{Arguments, Failed, Trial};
use proclife::StartMethod;
use proclife_model::Op;
use proclife_verify::conform;
use proclife_verify::cpython::Oracle;
use proclife_verify::deviations;
use proclife_verify::scenarios::{self, Annotated};

const METHODS: [StartMethod; 3] = [
    StartMethod::Fork,
    StartMethod::ForkServer,
    StartMethod::Spawn,
];

type Run = proclife_testkit::wait::Logged;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

fn tmp(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("conform-{name}"))
}

/// Runs `proclife` with `args`, output to files, waiting while it makes progress (a
/// conformance run is work: CPU time of the command and the interpreters it reaped, or
/// output).
fn proclife(name: &str, args: &[&str]) -> Result<Run, Failed> {
    let mut command = Command::new(env!("CARGO_BIN_EXE_proclife"));
    command.args(args).current_dir(root()).stdin(Stdio::null());
    Ok(proclife_testkit::wait::run_logged(
        &mut command,
        &format!("proclife {args:?}"),
        &tmp(name),
    )?)
}

fn ensure(condition: bool, message: impl FnOnce() -> String) -> Result<(), Failed> {
    if condition {
        Ok(())
    } else {
        Err(message().into())
    }
}

fn python3_available() -> bool {
    Command::new("python3")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn small_conformance_run() -> Result<(), Failed> {
    let run = proclife("small", &["conform", "--cases", "12"])?;
    ensure(run.status == Some(0), || {
        format!("status {:?}\n{}\n{}", run.status, run.stdout, run.stderr)
    })?;
    for expected in [
        "CPython 3.",
        "12 settled sequences",
        "documented deviation terminate-before-start",
        "CPython agreed with the model",
    ] {
        ensure(run.stdout.contains(expected), || {
            format!("the report lacks {expected:?}:\n{}", run.stdout)
        })?;
    }
    Ok(())
}

/// Every scenario of the CPython table runs on CPython: each observation is the expected one,
/// or a documented deviation whose proclife side is the expected one.
fn cpython_table_on_cpython(method: StartMethod) -> Result<(), Failed> {
    let oracle = Oracle::new(Path::new("python3"))?;
    let deviations = deviations::all()?;
    for scenario in scenarios::cpython_table()? {
        let observed = oracle.run(scenario.steps(), method)?;
        let verdict = conform::compare(scenario.steps(), &observed.outcomes, &deviations, None);
        if let Some(reason) = verdict.reason() {
            return Err(format!("{:?} under {method}: {reason}", scenario.name).into());
        }
        for (index, (row, expect)) in verdict.rows.iter().zip(scenario.expected()).enumerate() {
            let proclife_side = match &row.deviation {
                Some(id) => deviations.iter().find(|d| &d.id == id).map(|d| &d.model),
                None => Some(&row.cpython),
            };
            ensure(proclife_side == expect, || {
                format!(
                    "{:?} under {method}, step {index}: CPython gave {}, the corpus expects {expect:?}",
                    scenario.name, row.cpython
                )
            })?;
        }
    }
    Ok(())
}

/// A planted deviation is caught, shrunk to `expect_ops` operations, and saved with both
/// sides' observations.
fn planted(plant: &str, expect_ops: &[&str]) -> Result<(), Failed> {
    let dir = tmp(&format!("plant-{plant}"));
    let _ = std::fs::remove_dir_all(&dir);
    let dir_arg = dir.display().to_string();
    let run = proclife(
        &format!("plant-{plant}"),
        &[
            "conform",
            "--plant",
            plant,
            "--cases",
            "200",
            "--save-dir",
            &dir_arg,
        ],
    )?;
    ensure(run.status == Some(1), || {
        format!(
            "status {:?}, expected 1\n{}\n{}",
            run.status, run.stdout, run.stderr
        )
    })?;
    ensure(run.stdout.contains("DISAGREEMENT"), || run.stdout.clone())?;
    let saved: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map_err(|e| format!("read {}: {e}", dir.display()))?
        .flatten()
        .map(|e| e.path())
        .collect();
    let [file] = &saved[..] else {
        return Err(format!(
            "expected one saved file in {}, found {saved:?}",
            dir.display()
        )
        .into());
    };
    let text = std::fs::read_to_string(file).map_err(|e| format!("read: {e}"))?;
    let annotated = Annotated::parse(&text).map_err(|e| format!("{}: {e}", file.display()))?;
    let ops: Vec<&str> = annotated
        .trace
        .ops
        .iter()
        .map(|s| s.op.schema_name())
        .collect();
    ensure(ops == expect_ops, || {
        format!("shrunk to {ops:?}, expected {expect_ops:?}:\n{text}")
    })?;
    let last = annotated.annotations.last().ok_or("no annotations")?;
    ensure(
        last.model.is_some() && last.cpython.is_some() && last.model != last.cpython,
        || format!("the last operation must show both sides, differing:\n{text}"),
    )?;
    // The saved file replays; without the plant the model and CPython agree on it.
    let replay = proclife(
        &format!("plant-{plant}-replay"),
        &["replay", "--python", "python3", &file.display().to_string()],
    )?;
    ensure(replay.status == Some(0), || {
        format!(
            "replay --python: status {:?}\n{}\n{}",
            replay.status, replay.stdout, replay.stderr
        )
    })?;
    ensure(
        replay.stdout.contains("CPython") && replay.stdout.contains("runtime"),
        || {
            format!(
                "replay --python must show model, CPython and runtime:\n{}",
                replay.stdout
            )
        },
    )
}

/// A regression file with a documented deviation: replay --python shows it, exit 0.
fn replay_shows_three_columns() -> Result<(), Failed> {
    let file = root().join("verify/regressions/several-processes.json");
    let run = proclife(
        "replay-python",
        &["replay", "--python", "python3", &file.display().to_string()],
    )?;
    ensure(run.status == Some(0), || {
        format!("status {:?}\n{}\n{}", run.status, run.stdout, run.stderr)
    })?;
    for expected in [
        "model",
        "CPython",
        "runtime",
        "documented deviation terminate-before-start",
    ] {
        ensure(run.stdout.contains(expected), || {
            format!("the table lacks {expected:?}:\n{}", run.stdout)
        })?;
    }
    Ok(())
}

/// Writes an executable shell script standing in for an interpreter.
fn fake_python(name: &str, body: &str) -> Result<PathBuf, Failed> {
    use std::os::unix::fs::PermissionsExt as _;
    let path = tmp(&format!("fake-{name}"));
    std::fs::write(
        &path,
        format!("#!/bin/sh\nPATH=/usr/local/bin:/usr/bin:/bin\n{body}\n"),
    )
    .map_err(|e| format!("write: {e}"))?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))
        .map_err(|e| format!("chmod: {e}"))?;
    Ok(path)
}

/// Answers the version probe like CPython 3.11, then runs `then` for the program itself.
fn probe_then(then: &str) -> String {
    format!(
        "case \"$1 $2\" in\n\"-I -c\") echo '{{\"version\":[3,11,7],\"implementation\":\"cpython\"}}'; exit 0;;\nesac\n{then}"
    )
}

/// The processes whose command line contains `marker`.
fn processes_with(marker: &str) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        if let Ok(cmdline) = std::fs::read(entry.path().join("cmdline"))
            && String::from_utf8_lossy(&cmdline).contains(marker)
        {
            found.push(entry.file_name().to_string_lossy().into_owned());
        }
    }
    found
}

fn bad_python(name: &str, python: &Path, expect_in_error: &str) -> Result<(), Failed> {
    let run = proclife(
        &format!("bad-{name}"),
        &[
            "conform",
            "--cases",
            "2",
            "--python",
            &python.display().to_string(),
        ],
    )?;
    ensure(run.status == Some(2), || {
        format!(
            "status {:?}, expected 2\n{}\n{}",
            run.status, run.stdout, run.stderr
        )
    })?;
    ensure(run.stderr.contains(expect_in_error), || {
        format!("the error lacks {expect_in_error:?}: {}", run.stderr)
    })?;
    ensure(!run.stderr.contains("panicked"), || run.stderr.clone())
}

fn bad_pythons() -> Result<(), Failed> {
    bad_python(
        "missing",
        Path::new("/nonexistent/python3"),
        "cannot run /nonexistent/python3",
    )?;
    let not_python = fake_python("not-python", "echo hello")?;
    bad_python("not-python", &not_python, "is not a Python interpreter")?;
    let old = fake_python(
        "old",
        "echo '{\"version\":[3,8,10],\"implementation\":\"cpython\"}'",
    )?;
    bad_python(
        "old",
        &old,
        "is Python 3.8.10; proclife conform needs CPython 3.9 or newer",
    )?;
    let pypy = fake_python(
        "pypy",
        "echo '{\"version\":[3,10,13],\"implementation\":\"pypy\"}'",
    )?;
    bad_python("pypy", &pypy, "not CPython")?;
    let garbage = fake_python(
        "garbage",
        &probe_then(
            "echo '{\"python\":[3,11,7],\"implementation\":\"cpython\",\"method\":\"fork\"}'; echo 'all is well'",
        ),
    )?;
    bad_python("garbage", &garbage, "not an observation")?;
    // Dies at once, leaving a process of its own behind: the error says so, and that
    // process is killed.
    let marker = "317.25";
    let dies = fake_python(
        "dies",
        &probe_then(&format!("sleep {marker} &\nkill -9 $$")),
    )?;
    bad_python("dies", &dies, "killed by SIGKILL")?;
    let left = processes_with(&format!("sleep {marker}"));
    ensure(left.is_empty(), || {
        format!("a dying interpreter's process was left running: pids {left:?}")
    })
}

/// The processes in process group `pgid`.
fn group_members(pgid: u32) -> Vec<u32> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // The fields after the command name: state, ppid, pgrp, ...
        let rest = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
        if rest.split_whitespace().nth(2).and_then(|f| f.parse().ok()) == Some(pgid) {
            found.push(pid);
        }
    }
    found
}

/// The Python program killed while a puppet is blocked on a join (so a grandchild runs too)
/// leaves no process behind.
fn killed_program_leaves_no_child(method: StartMethod) -> Result<(), Failed> {
    use std::os::unix::process::CommandExt as _;
    let ops = tmp(&format!("kill-{method}.ops"));
    std::fs::write(
        &ops,
        // The last op keeps the program waiting (30 s at most) while it is killed.
        "{\"op\":\"start\"}\n{\"op\":\"child_block\",\"on\":\"join\"}\n{\"op\":\"start\",\"proc\":1}\n{\"op\":\"child_block\",\"on\":\"lock\",\"proc\":1}\n{\"op\":\"join_timeout\",\"secs\":30}\n",
    )
    .map_err(|e| format!("write: {e}"))?;
    let out_path = tmp(&format!("kill-{method}.stdout"));
    let mut child = Command::new("python3")
        .arg("-I")
        .arg(root().join("verify/python/proclife_cpython.py"))
        .args(["--method", &method.to_string()])
        .stdin(File::open(&ops).map_err(|e| format!("open: {e}"))?)
        .stdout(File::create(&out_path).map_err(|e| format!("create: {e}"))?)
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .map_err(|e| format!("spawn python3: {e}"))?;
    let pgid = child.id();
    // Header and four observations: both puppets are blocked.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let lines = std::fs::read_to_string(&out_path)
            .unwrap_or_default()
            .lines()
            .count();
        if lines >= 5 {
            break;
        }
        if Instant::now() > deadline || child.try_wait().ok().flatten().is_some() {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!(
                "the program did not report both puppets blocked within 60 s ({lines} lines)"
            )
            .into());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    ensure(group_members(pgid).len() >= 3, || {
        format!(
            "expected the program, two puppets and a grandchild in group {pgid}: {:?}",
            group_members(pgid)
        )
    })?;
    child.kill().map_err(|e| format!("kill: {e}"))?;
    child.wait().map_err(|e| format!("wait: {e}"))?;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let left = group_members(pgid);
        if left.is_empty() {
            return Ok(());
        }
        if Instant::now() > deadline {
            for pid in &left {
                let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
            }
            return Err(format!(
                "20 s after the program was killed, processes {left:?} of its group still ran"
            )
            .into());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn deviations_name_their_decisions() -> Result<(), Failed> {
    let all = deviations::all()?;
    ensure(!all.is_empty(), || {
        "docs/deviations.json lists nothing".to_owned()
    })?;
    let mut ids: Vec<&str> = all.iter().map(|d| d.id.as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    ensure(ids.len() == all.len(), || {
        "deviation ids must be unique".to_owned()
    })?;
    for d in &all {
        ensure(root().join(&d.decision).is_file(), || {
            format!(
                "deviation {} names {}, which does not exist",
                d.id, d.decision
            )
        })?;
        ensure(d.model != d.cpython, || {
            format!("deviation {} does not differ", d.id)
        })?;
        ensure(
            Op::graph_ops().iter().any(|op| op.schema_name() == d.op),
            || format!("deviation {} names an unknown operation {:?}", d.id, d.op),
        )?;
    }
    Ok(())
}

fn docs_agree_with_the_deviations_file() -> Result<(), Failed> {
    let table = deviations::markdown_table(&deviations::all()?);
    let page = std::fs::read_to_string(root().join("docs/conformance.md"))
        .map_err(|e| format!("read docs/conformance.md: {e}"))?;
    ensure(page.contains(&table), || {
        format!("docs/conformance.md must show the table of docs/deviations.json:\n{table}")
    })?;
    let readme = std::fs::read_to_string(root().join("README.md"))
        .map_err(|e| format!("read README.md: {e}"))?;
    ensure(readme.contains("docs/conformance.md"), || {
        "README.md must link docs/conformance.md".to_owned()
    })
}

fn main() {
    let mut args = Arguments::from_args();
    args.test_threads = Some(1);
    let python = python3_available();
    if !python {
        eprintln!("SKIPPED: python3 is not on the PATH, so the tests that run CPython are ignored");
    }
    let mut trials = vec![
        Trial::test(
            "deviations_name_their_decisions",
            deviations_name_their_decisions,
        ),
        Trial::test(
            "docs_agree_with_the_deviations_file",
            docs_agree_with_the_deviations_file,
        ),
        Trial::test(
            "bad_python_is_a_clear_error_and_leaves_nothing",
            bad_pythons,
        ),
        Trial::test("cpython_table_parses", || {
            scenarios::cpython_table().map(|_| ()).map_err(Failed::from)
        }),
    ];
    let mut needs_python = vec![
        Trial::test("small_conformance_run_agrees", small_conformance_run),
        Trial::test(
            "replay_python_shows_model_cpython_and_runtime",
            replay_shows_three_columns,
        ),
        Trial::test("planted_message_is_caught_and_shrunk", || {
            planted("start-twice-message", &["start", "start"])
        }),
        Trial::test("planted_panic_exit_code_is_caught_and_shrunk", || {
            planted(
                "panic-exit-code",
                &["start", "child_panic", "settle", "exitcode"],
            )
        }),
    ];
    for method in METHODS {
        needs_python.push(Trial::test(
            format!("{method}/cpython_table_on_cpython"),
            move || cpython_table_on_cpython(method),
        ));
        needs_python.push(Trial::test(
            format!("{method}/killed_program_leaves_no_child"),
            move || killed_program_leaves_no_child(method),
        ));
    }
    trials.extend(
        needs_python
            .into_iter()
            .map(|t| t.with_ignored_flag(!python)),
    );
    libtest_mimic::run(&args, trials).exit();
}
