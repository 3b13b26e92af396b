//! Catalogue item T10 with `panic = "abort"`: a child whose target panics in a program built
//! that way ends with SIGABRT (exit code -6), typed and without a hang or a leak, under every
//! start method.
//!
//! The program is `abort-probe` (package `proclife-abort-probe`), compiled here with
//! `cargo rustc -p proclife-abort-probe -- -C panic=abort` into this build's own target
//! directory and profile: the flag applies to the probe's own crate only, every dependency
//! is the one the workspace's build already compiled (crates compiled for unwinding link into
//! an aborting program), so the build compiles one small crate. Spawn and forkserver
//! re-execute that same program, so their children abort too. What each case checks is
//! described in `abort-probe/src/main.rs`.

use std::path::{Path, PathBuf};
use std::process::Command;

use proclife_testkit::wait::run_logged;

const PROBE: &str = "proclife-abort-probe";
/// What the probe's targets panic with.
const MESSAGE: &str = "the target panics under panic=abort";
/// The cases the probe reports, `ok <method> <case>`.
const CASES: &[&str] = &[
    "ok fork entry",
    "ok fork closure",
    "ok fork returning",
    "ok fork holding",
    "ok spawn entry",
    "ok spawn returning",
    "ok spawn holding",
    "ok forkserver entry",
    "ok forkserver returning",
    "ok forkserver holding",
    "ok nothing left behind",
];

/// This test binary's target directory and profile directory (`target/debug/deps/<test>`).
fn layout() -> Result<(PathBuf, PathBuf), String> {
    let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .ok_or_else(|| format!("{} is not in <target>/<profile>/deps", exe.display()))?;
    let target_dir = profile_dir
        .parent()
        .ok_or_else(|| format!("{} has no parent", profile_dir.display()))?;
    Ok((target_dir.to_path_buf(), profile_dir.to_path_buf()))
}

#[test]
fn abort_built_children_end_with_sigabrt_t10() -> Result<(), String> {
    let (target_dir, profile_dir) = layout()?;
    let profile = match profile_dir.file_name().and_then(|n| n.to_str()) {
        Some("debug") => "dev".to_owned(),
        Some(other) => other.to_owned(),
        None => return Err(format!("no profile in {}", profile_dir.display())),
    };
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("../Cargo.toml");
    let scratch = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let built = run_logged(
        Command::new(cargo)
            .args(["rustc", "--quiet", "-p", PROBE, "--bin", PROBE, "--profile"])
            .arg(&profile)
            .arg("--manifest-path")
            .arg(&manifest)
            .arg("--target-dir")
            .arg(&target_dir)
            .args(["--", "-C", "panic=abort"]),
        "cargo rustc of the panic=abort probe",
        &scratch.join("abort-probe-build"),
    )?;
    if built.status != Some(0) {
        return Err(format!(
            "expected `cargo rustc -p {PROBE} -- -C panic=abort` to succeed; it ended with {:?}:\n{}",
            built.status, built.stderr
        ));
    }
    let ran = run_logged(
        Command::new(profile_dir.join(PROBE)).env("RUST_BACKTRACE", "0"),
        "the panic=abort probe",
        &scratch.join("abort-probe-run"),
    )?;
    if ran.status != Some(0) {
        return Err(format!(
            "expected the probe to exit with 0; it ended with {:?} (2: not built with panic=abort)\nstdout:\n{}\nstderr:\n{}",
            ran.status, ran.stdout, ran.stderr
        ));
    }
    let reported: Vec<&str> = ran.stdout.lines().collect();
    if reported != CASES {
        return Err(format!(
            "expected the probe to report {CASES:?}, it reported {reported:?}"
        ));
    }
    // Every panicking target printed its message (the panic hook runs before the abort).
    let messages = ran.stderr.matches(MESSAGE).count();
    let panicked = CASES.len() - 1;
    if messages != panicked {
        return Err(format!(
            "expected the panic message {panicked} times on the probe's stderr, found it {messages} times:\n{}",
            ran.stderr
        ));
    }
    Ok(())
}
