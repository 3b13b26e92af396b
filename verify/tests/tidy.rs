//! Workspace tidy checks: house-style rules that are enforced as tests, and the freshness of
//! the documents generated from the model (`UPDATE_EXPECT=1` rewrites them).

use std::fs;
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("verify/ sits in the workspace root")
        .to_path_buf()
}

/// Every `.rs` file under `dir`, sorted.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(dir) = todo.pop() {
        let Ok(entries) = fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                if path.file_name().is_some_and(|n| n != "target") {
                    todo.push(path);
                }
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

fn workspace_rust_files() -> Vec<PathBuf> {
    let root = root();
    ["model", "runtime", "verify", "benches"]
        .iter()
        .flat_map(|krate| rust_files(&root.join(krate)))
        .collect()
}

fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

fn is_comment(line: &str) -> bool {
    line.trim_start().starts_with("//")
}

#[test]
fn every_rust_file_starts_with_a_module_doc() {
    let files = workspace_rust_files();
    assert!(files.len() > 10, "found only {} files", files.len());
    let missing: Vec<String> = files
        .iter()
        .filter(|path| !read(path).starts_with("//!"))
        .map(|path| path.display().to_string())
        .collect();
    assert!(
        missing.is_empty(),
        "files without a leading `//!`: {missing:?}"
    );
}

/// Whether a `// SAFETY:` comment stands above `index`: in the comment block right above it,
/// or above at most three lines of code that belong to the same statement.
fn safety_comment_above(lines: &[&str], index: usize) -> bool {
    let mut code_lines = 0;
    for line in lines[..index].iter().rev() {
        if is_comment(line) {
            if line.contains("// SAFETY:") {
                return true;
            }
        } else if line.trim().is_empty() {
            return false;
        } else {
            code_lines += 1;
            if code_lines > 3 {
                return false;
            }
        }
    }
    false
}

/// Whether the doc comment right above `index` (skipping attributes and plain comments) has
/// `# Safety`.
fn doc_has_safety(lines: &[&str], index: usize) -> bool {
    let mut i = index;
    while i > 0 {
        i -= 1;
        let line = lines[i].trim_start();
        if line.starts_with("///") {
            if line.contains("# Safety") {
                return true;
            }
        } else if !line.starts_with("#[") && !line.starts_with("//") {
            return false;
        }
    }
    false
}

/// The 1-based numbers of the lines of `text` whose `unsafe` is not justified: a block or an
/// `impl` without a `// SAFETY:` comment above it, a function without `# Safety` in its doc
/// (methods of trait implementations carry the trait's contract and are exempt).
fn unjustified_unsafe(text: &str) -> Vec<usize> {
    // The needles are split so that this file does not match itself.
    let block = concat!("unsafe", " {");
    let implementation = concat!("unsafe", " impl");
    let function = concat!("unsafe", " fn");
    let lines: Vec<&str> = text.lines().collect();
    let mut unjustified = Vec::new();
    // The indentation of the trait implementation we are in, if any.
    let mut trait_impl: Option<usize> = None;
    for (index, line) in lines.iter().enumerate() {
        if is_comment(line) {
            continue;
        }
        let indent = line.len() - line.trim_start().len();
        let trimmed = line.trim();
        if (trimmed.starts_with("impl") || trimmed.starts_with(implementation))
            && trimmed.contains(" for ")
        {
            trait_impl = Some(indent);
        } else if trait_impl == Some(indent) && trimmed.starts_with('}') {
            trait_impl = None;
        }
        let ok = if line.contains(function) {
            trait_impl.is_some() || doc_has_safety(&lines, index)
        } else if line.contains(block) || line.contains(implementation) {
            line.contains("// SAFETY:") || safety_comment_above(&lines, index)
        } else {
            true
        };
        if !ok {
            unjustified.push(index + 1);
        }
    }
    unjustified
}

#[test]
fn every_unsafe_is_justified() {
    let mut unjustified = Vec::new();
    for path in workspace_rust_files() {
        for line in unjustified_unsafe(&read(&path)) {
            unjustified.push(format!("{}:{line}", path.display()));
        }
    }
    assert!(
        unjustified.is_empty(),
        "unsafe without SAFETY: {unjustified:?}"
    );
}

#[test]
fn the_unsafe_check_catches_what_it_should() {
    let u = concat!("un", "safe");
    let bare_block = format!("//! m\nfn f() {{\n    let x = {u} {{ g() }};\n}}\n");
    assert_eq!(unjustified_unsafe(&bare_block), [3]);
    let justified = format!(
        "//! m\nfn f() {{\n    // SAFETY: g has no contract.\n    // More words.\n    let x = {u} {{ g() }};\n}}\n"
    );
    assert!(unjustified_unsafe(&justified).is_empty());
    let far = format!("// SAFETY: too far.\n\nlet x = {u} {{ g() }};\n");
    assert_eq!(unjustified_unsafe(&far), [3]);
    let bare_fn = format!("/// Does things.\npub {u} fn f() {{}}\n");
    assert_eq!(unjustified_unsafe(&bare_fn), [2]);
    let documented_fn = format!(
        "/// Does things.\n///\n/// # Safety\n///\n/// Call it right.\n// A note.\n#[allow(x)]\npub {u} fn f() {{}}\n"
    );
    assert!(unjustified_unsafe(&documented_fn).is_empty());
    let trait_impl = format!(
        "// SAFETY: forwards.\n{u} impl A for B {{\n    {u} fn m(&self) {{}}\n}}\n{u} fn n() {{}}\n"
    );
    assert_eq!(unjustified_unsafe(&trait_impl), [5]);
}

#[test]
fn no_should_panic_or_ignored_tests() {
    let should_panic = concat!("#[should", "_panic");
    let ignore = concat!("#[ig", "nore");
    let offenders: Vec<String> = workspace_rust_files()
        .into_iter()
        .filter(|path| {
            let text = read(path);
            text.contains(should_panic) || text.contains(ignore)
        })
        .map(|path| path.display().to_string())
        .collect();
    assert!(offenders.is_empty(), "{offenders:?}");
}

/// ARCHITECTURE.md: runtime values become model values only in `verify/src/map.rs`. Other
/// modules may use both crates side by side, but one that uses the runtime never builds a
/// model outcome, error or life from what it got.
#[test]
fn only_map_translates_runtime_values_into_model_values() {
    let translating = [
        ".python()",
        "PyError",
        "PyErrorKind",
        "Outcome::Raised",
        "Life::",
        "proclife_model::BlockedOn::",
    ];
    let mut offenders = Vec::new();
    for path in rust_files(&root().join("verify/src")) {
        if path.ends_with("map.rs") {
            continue;
        }
        let text = read(&path);
        if !text.contains("proclife::") {
            continue;
        }
        for needle in translating {
            if text.contains(needle) {
                offenders.push(format!("{} contains {needle}", path.display()));
            }
        }
    }
    assert!(offenders.is_empty(), "{offenders:?}");
    let map = read(&root().join("verify/src/map.rs"));
    assert!(
        map.contains("proclife::") && map.contains("proclife_model::") && map.contains(".python()")
    );
}

#[test]
fn model_has_no_system_dependencies() {
    let manifest = read(&root().join("model/Cargo.toml"));
    for line in manifest.lines() {
        let name = line
            .split(['=', '.', ' '])
            .next()
            .unwrap_or_default()
            .trim();
        assert!(
            !["nix", "libc", "rand"].contains(&name),
            "model/Cargo.toml depends on {name}"
        );
    }
}

#[test]
fn model_source_is_pure() {
    let forbidden = [
        "std::time",
        "std::fs",
        "std::process",
        "std::thread",
        "std::io",
        "Instant",
        "SystemTime",
        "std::env",
    ];
    let files = rust_files(&root().join("model/src"));
    assert!(!files.is_empty());
    for path in files {
        let text = read(&path);
        for needle in forbidden {
            assert!(
                !text.contains(needle),
                "{} mentions {needle}",
                path.display()
            );
        }
        // `unsafe` is allowed only as the `forbid(unsafe_code)` lint name.
        let unsafe_word = concat!("un", "safe");
        for (index, _) in text.match_indices(unsafe_word) {
            assert!(
                text[index..].starts_with(concat!("un", "safe_code")),
                "{} mentions {unsafe_word}",
                path.display()
            );
        }
    }
    let lib = read(&root().join("model/src/lib.rs"));
    assert!(lib.contains(concat!("#![forbid(un", "safe_code)]")));
}

/// Compares a generated document with its committed copy; `UPDATE_EXPECT=1` rewrites it.
fn check_fresh(relative: &str, generated: &str) {
    let path = root().join(relative);
    if std::env::var_os("UPDATE_EXPECT").is_some_and(|v| v == "1") {
        fs::write(&path, generated)
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
        return;
    }
    let committed = fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "{relative} is stale; regenerate it with `UPDATE_EXPECT=1 cargo test -p proclife-verify --test tidy`"
    );
}

#[test]
fn lifecycle_dot_is_fresh() {
    let graph = proclife_model::TransitionGraph::explore();
    check_fresh("docs/lifecycle.dot", &proclife_model::dot::render(&graph));
}

#[test]
fn lifecycle_story_is_fresh() {
    let graph = proclife_model::TransitionGraph::explore();
    let story = proclife_model::dot::render_story(&graph);
    check_fresh("docs/lifecycle-story.dot", &story);
    // The picture is drawn by Graphviz (`dot -Tsvg`), which CI need not have; every label line
    // of the story must at least appear in it, so a picture of an older story is caught.
    let svg = read(&root().join("docs/lifecycle-story.svg"));
    for arrow in proclife_model::story::story(&graph) {
        for line in &arrow.lines {
            let shown = line
                .replace('&', "&amp;")
                .replace('<', "&lt;")
                .replace('>', "&gt;")
                .replace('-', "&#45;");
            assert!(
                svg.contains(&format!(">{shown}</text>")),
                "docs/lifecycle-story.svg does not show the label {line:?} of the story; redraw it with \
                 `dot -Tsvg docs/lifecycle-story.dot > docs/lifecycle-story.svg`"
            );
        }
    }
}

#[test]
fn semantics_table_is_fresh() {
    check_fresh(
        "docs/semantics.md",
        &proclife_model::table::render_markdown(),
    );
}

/// The runtime's sources, with comment lines removed (comments may name what the code must
/// not do).
fn runtime_code() -> Vec<(PathBuf, String)> {
    rust_files(&root().join("runtime/src"))
        .into_iter()
        .map(|path| {
            let text = read(&path);
            let code: Vec<&str> = text.lines().filter(|line| !is_comment(line)).collect();
            (path, code.join("\n"))
        })
        .collect()
}

#[test]
fn runtime_does_not_depend_on_the_model() {
    let manifest = read(&root().join("runtime/Cargo.toml"));
    assert!(
        !manifest.contains("proclife-model"),
        "runtime/Cargo.toml names the model"
    );
}

#[test]
fn fork_is_called_in_one_place() {
    // Spelled in two pieces so that this file does not contain the call it looks for.
    let call = format!("{} {{ fork() }}", "unsafe");
    let callers: Vec<String> = runtime_code()
        .into_iter()
        .filter(|(_, code)| code.contains(&call))
        .map(|(path, code)| format!("{} ({}x)", path.display(), code.matches(&call).count()))
        .collect();
    assert_eq!(callers.len(), 1, "{callers:?}");
    assert!(callers[0].contains("start/fork.rs (1x)"), "{callers:?}");
}

#[test]
fn waits_are_targeted_and_signals_go_through_pidfds() {
    for (path, code) in runtime_code() {
        let name = path.display();
        for forbidden in [
            "waitpid(-1",
            "Id::All",
            "P_ALL",
            "libc::kill(",
            "libc::wait(",
        ] {
            assert!(!code.contains(forbidden), "{name} contains {forbidden}");
        }
        // The only pid-based signal is the kill of an unregistered, unreaped child in
        // `start/fork.rs` (when `pidfd_open` fails right after `fork`).
        assert!(!code.contains("signal::kill"), "{name} signals by pid");
        let imports_kill = code
            .lines()
            .any(|line| line.starts_with("use nix::sys::signal::") && line.contains(" kill"));
        if path.ends_with("start/fork.rs") {
            assert!(imports_kill);
            assert_eq!(code.matches("kill(child, Signal::SIGKILL)").count(), 1);
            assert_eq!(
                code.matches("kill(").count(),
                1,
                "{name}: one pid-based kill"
            );
        } else {
            assert!(!imports_kill, "{name} imports kill");
        }
    }
}
