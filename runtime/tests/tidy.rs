//! The runtime's architecture invariants that can be read off the source: no dependency on
//! the model, one `fork()`, no untargeted wait, no raw `kill`, a `//!` line on every file.

use std::path::{Path, PathBuf};

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

fn crate_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn sources() -> Vec<(PathBuf, String)> {
    let mut files = Vec::new();
    rust_files(&crate_dir().join("src"), &mut files);
    files.sort();
    files
        .into_iter()
        .map(|path| {
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            (path, text)
        })
        .collect()
}

#[test]
fn runtime_does_not_depend_on_the_model() {
    let manifest = std::fs::read_to_string(crate_dir().join("Cargo.toml")).unwrap();
    assert!(
        !manifest.contains("proclife-model"),
        "runtime/Cargo.toml names the model"
    );
}

#[test]
fn every_file_starts_with_a_module_doc() {
    let mut files = Vec::new();
    for dir in ["src", "tests", "examples"] {
        rust_files(&crate_dir().join(dir), &mut files);
    }
    assert!(!files.is_empty());
    for path in files {
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            text.starts_with("//!"),
            "{} does not start with //!",
            path.display()
        );
    }
}

#[test]
fn fork_is_called_in_one_place() {
    let callers: Vec<String> = sources()
        .into_iter()
        .filter(|(_, text)| text.contains("fork()") && text.contains("unsafe { fork() }"))
        .map(|(path, _)| path.display().to_string())
        .collect();
    assert_eq!(callers.len(), 1, "{callers:?}");
    assert!(callers[0].ends_with("start/fork.rs"), "{callers:?}");
    let all: usize = sources()
        .iter()
        .map(|(_, text)| text.matches("unsafe { fork() }").count())
        .sum();
    assert_eq!(all, 1);
}

#[test]
fn waits_are_targeted_and_signals_go_through_pidfds() {
    for (path, text) in sources() {
        let name = path.display();
        // Comments may name what the code must not do.
        let text: String = text
            .lines()
            .filter(|line| !line.trim_start().starts_with("//"))
            .collect::<Vec<_>>()
            .join("\n");
        for forbidden in [
            "waitpid(-1",
            "Id::All",
            "P_ALL",
            "libc::kill(",
            "libc::wait(",
        ] {
            assert!(!text.contains(forbidden), "{name} contains {forbidden}");
        }
        // The only pid-based signal is the kill of an unregistered, unreaped child, in
        // `start/fork.rs`; nothing else imports `nix::sys::signal::kill`.
        assert!(!text.contains("signal::kill"), "{name} signals by pid");
        let imports_kill = text
            .lines()
            .any(|line| line.starts_with("use nix::sys::signal::") && line.contains(" kill"));
        if path.ends_with("start/fork.rs") {
            assert!(imports_kill);
            assert_eq!(text.matches("kill(child, Signal::SIGKILL)").count(), 1);
            assert_eq!(
                text.matches("kill(").count(),
                1,
                "{name}: one pid-based kill"
            );
        } else {
            assert!(!imports_kill, "{name} imports kill");
        }
    }
}
