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
/// modules may use both crates side by side, but one that uses the runtime (beyond naming a
/// start method, which is configuration, not an observation) never builds a model outcome,
/// error or life from what it got.
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
        if !text
            .replace("proclife::StartMethod", "")
            .contains("proclife::")
        {
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
    assert!(callers[0].contains("os/fork.rs (1x)"), "{callers:?}");
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
        // `os/fork.rs` (when `pidfd_open` fails right after `fork`).
        assert!(!code.contains("signal::kill"), "{name} signals by pid");
        let imports_kill = code
            .lines()
            .any(|line| line.starts_with("use nix::sys::signal::") && line.contains(" kill"));
        if path.ends_with("os/fork.rs") {
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

/// The runtime's module stack, lowest first; `ARCHITECTURE.md` ("The runtime's layers") lists
/// the same. A unit is a module path; a file belongs to the longest unit that prefixes its
/// module path. Units in one row may import each other; a file may import only its own row
/// and the rows below it.
const RUNTIME_STACK: &[&[&str]] = &[
    &["planted"],
    &["pid"],
    &["site"],
    &["error"],
    &["os"],
    &["children"],
    &["sync"],
    &["ipc"],
    &["start::pass"],
    &["start::exit"],
    &["start::target"],
    &["start::entry"],
    &["start::method", "start::launch"],
    &["start::bootstrap::wire"],
    &["start::fork"],
    &["start::bootstrap::child"],
    &["start::forkserver::protocol"],
    &["start::forkserver::server"],
    &["start::spawn"],
    &["start::forkserver::client"],
    &["start::bootstrap::hook"],
    &["start"],
    &["process"],
    &["testing"],
    &["result"],
    &[""],
];

/// The row of the unit `path` (a module path without `crate::`) belongs to.
fn stack_level(path: &str) -> usize {
    let mut best: Option<(usize, usize)> = None;
    for (level, units) in RUNTIME_STACK.iter().enumerate() {
        for unit in *units {
            let inside = unit.is_empty()
                || path == *unit
                || path
                    .strip_prefix(unit)
                    .is_some_and(|rest| rest.starts_with("::"));
            if inside && best.is_none_or(|(len, _)| unit.len() > len) {
                best = Some((unit.len(), level));
            }
        }
    }
    best.map_or(RUNTIME_STACK.len() - 1, |(_, level)| level)
}

/// The module path of a runtime source file: `start/bootstrap/wire.rs` is
/// `start::bootstrap::wire`, `os/mod.rs` is `os`, `lib.rs` is the empty path.
fn module_path(relative: &Path) -> String {
    let mut parts: Vec<String> = relative
        .with_extension("")
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    if parts
        .last()
        .is_some_and(|last| last == "mod" || last == "lib")
    {
        parts.pop();
    }
    parts.join("::")
}

/// The `crate::` and `super::` paths a line of code names (not `$crate::`, not macro calls),
/// as module paths from the crate root.
fn named_paths(line: &str, module: &str) -> Vec<String> {
    let mut out = Vec::new();
    for (keyword, base) in [
        ("crate::", String::new()),
        ("super::", {
            let mut parts: Vec<&str> = module.split("::").collect();
            parts.pop();
            parts.join("::")
        }),
    ] {
        let mut rest = line;
        while let Some(at) = rest.find(keyword) {
            let before = rest[..at].chars().next_back();
            let tail = &rest[at + keyword.len()..];
            rest = tail;
            if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '$' || c == ':') {
                continue;
            }
            let end = tail
                .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
                .unwrap_or(tail.len());
            if tail[end..].starts_with('!') {
                continue;
            }
            let named = tail[..end].trim_end_matches(':');
            out.push(match (base.is_empty(), named.is_empty()) {
                (true, _) => named.to_owned(),
                (false, true) => base.clone(),
                (false, false) => format!("{base}::{named}"),
            });
        }
    }
    out
}

/// Every import of a runtime file that points up the stack, as `file:line: unit -> path`.
fn upward_imports() -> Vec<String> {
    let src = root().join("runtime/src");
    let mut found = Vec::new();
    for path in rust_files(&src) {
        let relative = path.strip_prefix(&src).expect("under runtime/src");
        let module = module_path(relative);
        let own = stack_level(&module);
        let text = read(&path);
        // Unit tests may use any layer: they stop at the file's `#[cfg(test)]` module.
        let code = text.split("#[cfg(test)]").next().unwrap_or_default();
        for (index, line) in code.lines().enumerate() {
            if is_comment(line) {
                continue;
            }
            for named in named_paths(line, &module) {
                if stack_level(&named) > own {
                    found.push(format!(
                        "runtime/src/{}:{}: {module} -> {named}",
                        relative.display(),
                        index + 1
                    ));
                }
            }
        }
    }
    found
}

#[test]
fn runtime_imports_never_point_up_the_stack() {
    let found = upward_imports();
    assert!(
        found.is_empty(),
        "imports pointing up:\n{}",
        found.join("\n")
    );
}

#[test]
fn the_stack_check_resolves_paths_as_rustc_does() {
    assert_eq!(
        module_path(Path::new("start/bootstrap/wire.rs")),
        "start::bootstrap::wire"
    );
    assert_eq!(module_path(Path::new("os/mod.rs")), "os");
    assert_eq!(module_path(Path::new("lib.rs")), "");
    assert_eq!(
        named_paths("use super::wire::{Kind, ENV};", "start::bootstrap::hook"),
        ["start::bootstrap::wire"]
    );
    assert_eq!(
        named_paths(
            "x = crate::os::pidfd::pidfd_open(p); crate::entry!(f); $crate::x",
            "pid"
        ),
        ["os::pidfd::pidfd_open"]
    );
    // An upward import is caught, a downward one is not.
    assert!(stack_level("sync::lock") > stack_level("os::futex"));
    assert!(stack_level("start::forkserver::server") < stack_level("start::bootstrap::hook"));
    assert_eq!(stack_level("Error"), RUNTIME_STACK.len() - 1);
}

/// Files outside `runtime/src/os/` that still hold `unsafe` code, each to move into `os/`
/// (decision record 0009). The list only shrinks: a file that no longer needs its
/// `allow(unsafe_code)` fails the check below until it is removed from here.
const UNSAFE_OUTSIDE_OS: &[&str] = &["process.rs", "start/bootstrap/hook.rs", "start/entry.rs"];

#[test]
fn unsafe_code_and_libc_calls_live_in_os() {
    let src = root().join("runtime/src");
    let mut wrong = Vec::new();
    for path in rust_files(&src) {
        let relative = path.strip_prefix(&src).expect("under runtime/src");
        let name = relative.to_string_lossy().replace('\\', "/");
        let text = read(&path);
        let code: Vec<&str> = text.lines().filter(|line| !is_comment(line)).collect();
        let allows = code.iter().any(|line| line.contains("allow(unsafe_code)"));
        let forbids = code
            .iter()
            .any(|line| line.trim() == "#![forbid(unsafe_code)]");
        let in_os = name.starts_with("os/");
        let pending = UNSAFE_OUTSIDE_OS.contains(&name.as_str());
        let declares_modules = name == "lib.rs" || name.ends_with("/mod.rs");
        if allows && !in_os && !pending {
            wrong.push(format!("{name}: allow(unsafe_code) outside os/"));
        }
        if pending && !allows {
            wrong.push(format!(
                "{name}: needs no unsafe any more; drop it from UNSAFE_OUTSIDE_OS"
            ));
        }
        if !in_os && !pending && !declares_modules && !forbids {
            wrong.push(format!("{name}: lacks #![forbid(unsafe_code)]"));
        }
        // Raw system calls: `libc::syscall` only in os/; no `libc::` item at all outside
        // os/ except in the files still listed above.
        if !in_os && code.iter().any(|line| line.contains("libc::syscall")) {
            wrong.push(format!("{name}: libc::syscall outside os/"));
        }
        if !in_os && !pending && code.iter().any(|line| line.contains("libc::")) {
            wrong.push(format!("{name}: names libc:: outside os/"));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

/// The stack as `ARCHITECTURE.md` draws it ("The runtime's layers"): the name column of its
/// first `text` block after that heading, top line first.
fn documented_stack() -> Vec<String> {
    let doc = read(&root().join("ARCHITECTURE.md"));
    let after = doc
        .split("#### The runtime's layers")
        .nth(1)
        .expect("ARCHITECTURE.md has the section \"The runtime's layers\"");
    let block = after
        .split("```text\n")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .expect("the section draws the stack in a text block");
    block
        .lines()
        .map(|line| {
            line.trim()
                .split("  ")
                .next()
                .unwrap_or_default()
                .to_owned()
        })
        .collect()
}

/// How `documented_stack` names a unit: `os/` for a directory, `fork.rs` or
/// `bootstrap/hook.rs` inside `start/`, `pid.rs` for a file.
fn documented_name(unit: &str) -> String {
    let parts: Vec<&str> = unit.split("::").collect();
    match parts.as_slice() {
        [] | [""] => "lib.rs".to_owned(),
        [one] if root().join("runtime/src").join(one).is_dir() => format!("{one}/"),
        [one] => format!("{one}.rs"),
        [_, rest @ ..] => format!("{}.rs", rest.join("/")),
    }
}

#[test]
fn architecture_md_draws_the_checked_stack() {
    let lines = documented_stack();
    let line_of = |unit: &str| {
        let name = documented_name(unit);
        lines
            .iter()
            .position(|line| line.split(", ").any(|n| n == name))
            .unwrap_or_else(|| panic!("ARCHITECTURE.md's stack lacks {name} ({unit})"))
    };
    // Drawn top down: a higher row of RUNTIME_STACK is an earlier line.
    for pair in RUNTIME_STACK.windows(2) {
        for lower in pair[0] {
            for higher in pair[1] {
                assert!(
                    line_of(higher) < line_of(lower),
                    "ARCHITECTURE.md draws {higher} below {lower}, RUNTIME_STACK above"
                );
            }
        }
    }
}

/// Whether `name` (a binding, field or function) names a process id: it mentions a pid
/// (not a pidfd), a parent, a creator or an owner.
fn names_a_pid(name: &str) -> bool {
    let name = name.to_ascii_lowercase().replace("pidfd", "");
    ["pid", "parent", "creator", "owner"]
        .iter()
        .any(|word| name.contains(word))
}

/// Whether `ty`, a type as written, holds a raw integer: `i32`, `AtomicI32` or `pid_t` by
/// itself or inside another type (`Option<i32>`, `Result<i32>`, `Vec<i32>`, `&[i32]`,
/// `libc::pid_t`).
fn holds_raw_integer(ty: &str) -> bool {
    ty.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .any(|word| matches!(word, "i32" | "AtomicI32" | "pid_t"))
}

/// Where the keyword `fn` starts a function in `line` (not inside a longer word).
fn fn_keyword(line: &str) -> Option<usize> {
    line.match_indices("fn ").map(|(at, _)| at).find(|&at| {
        !line[..at]
            .chars()
            .next_back()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
    })
}

/// The code of `code` as logical lines, `(first line's number, text)`: comment lines left
/// out, and a function's signature that spans several lines joined into one, up to the
/// line that opens its body or ends it with `;`.
fn logical_lines(code: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut lines = code
        .lines()
        .enumerate()
        .filter(|(_, line)| !is_comment(line));
    while let Some((index, line)) = lines.next() {
        let mut text = line.to_owned();
        if fn_keyword(line).is_some() {
            while !text.contains('{') && !text.contains(';') {
                let Some((_, next)) = lines.next() else {
                    break;
                };
                text.push(' ');
                text.push_str(next.trim());
            }
        }
        out.push((index + 1, text));
    }
    out
}

/// The places in `code` (one file, unit tests cut off) where a process id is a raw integer,
/// as `line: text`: a binding, field or parameter with a pid's name whose type holds a raw
/// integer ([`holds_raw_integer`]); a function with a pid's name whose return type does, its
/// signature read across lines; and any `pid_t` or `nix::unistd::Pid`, whatever its name.
fn raw_pids(code: &str) -> Vec<String> {
    let ident = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let in_type = |c: char| ident(c) || "<>:&[]".contains(c);
    let mut found = Vec::new();
    for (number, line) in logical_lines(code) {
        let mut raw = line.split(|c: char| !ident(c)).any(|word| word == "pid_t")
            || line.contains("unistd::Pid");
        for (at, _) in line.match_indices(": ") {
            let ty: String = line[at + 2..].chars().take_while(|&c| in_type(c)).collect();
            let name: String = line[..at].chars().rev().take_while(|&c| ident(c)).collect();
            let name: String = name.chars().rev().collect();
            raw |= holds_raw_integer(&ty) && names_a_pid(&name);
        }
        if let Some(fn_at) = fn_keyword(&line)
            && let Some(arrow) = line[fn_at..].find("-> ")
        {
            let ty: String = line[fn_at + arrow + 3..]
                .chars()
                .take_while(|&c| in_type(c))
                .collect();
            let name: String = line[fn_at + 3..]
                .chars()
                .take_while(|&c| ident(c))
                .collect();
            raw |= holds_raw_integer(&ty) && names_a_pid(&name);
        }
        if raw {
            found.push(format!("{number}: {}", line.trim()));
        }
    }
    found
}

#[test]
fn process_ids_are_pids_outside_os() {
    // `os/` takes and gives raw pids at the system calls; the wire formats encode a `Pid`
    // through `raw_pid`, and `pid.rs` defines the types.
    let src = root().join("runtime/src");
    let mut wrong = Vec::new();
    for path in rust_files(&src) {
        let relative = path.strip_prefix(&src).expect("under runtime/src");
        let name = relative.to_string_lossy().replace('\\', "/");
        if name.starts_with("os/") || name == "pid.rs" {
            continue;
        }
        let text = read(&path);
        let code = text.split("#[cfg(test)]").next().unwrap_or_default();
        wrong.extend(
            raw_pids(code)
                .into_iter()
                .map(|at| format!("runtime/src/{name}:{at}")),
        );
    }
    assert!(
        wrong.is_empty(),
        "raw process ids outside os/:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn the_raw_pid_check_catches_what_it_should() {
    let caught = [
        "    creator: i32,",
        "fn current_pid() -> i32 {",
        "static OWNER: AtomicI32 = x;",
        "fn observe(pid: i32, slot: Option<BlockedOn>) -> Seen {",
        "pub(crate) fn pidfd_pid(fd: BorrowedFd<'_>) -> Option<i32> {",
        "pub(crate) fn pidfd_pid(fd: BorrowedFd<'_>) -> Result<i32> {",
        "fn parent_pid() -> io::Result<Option<i32>> {",
        "fn child_pids(&self) -> Result<Vec<i32>> {",
        "fn reap(pids: &[i32]) {",
        "    parent: libc::pid_t,",
        "    let raw = me.as_raw() as nix::libc::pid_t;",
        "fn fork_child(spec: &Spec) -> nix::unistd::Pid {",
        "pub(crate) fn pidfd_pid(\n    fd: BorrowedFd<'_>,\n) -> Result<i32> {",
        "fn wait_owner<F>(\n    f: F,\n)\n    -> Option<i32>\nwhere\n    F: Fn(),\n{",
        "fn signal(\n    // the target's pid\n    pid: i32,\n    signal: i32,\n) -> Result<()>;",
    ];
    for example in caught {
        assert_eq!(raw_pids(example).len(), 1, "not caught once: {example}");
    }
    let passed = [
        "    creator: Pid,",
        "    exitcode: Option<i32>,",
        "fn signal(&self, signal: i32) {",
        "fn exitcode(&self) -> Result<Option<i32>> {",
        "    pidfd: OwnedFd,",
        "// pid: i32, a pid_t in a comment",
        "fn end(code: i32, me: Pid) -> ! {",
        "fn check_signal(signal: i32) -> Result<i32> {",
        "fn parent_pid() -> Option<Pid> {",
        "fn pidfd_of(pid: Pid) -> Result<OwnedFd> {",
        "pub(crate) fn exitcode(\n    &self,\n    deadline: &Deadline,\n) -> Result<Option<i32>> {",
        "fn parent(\n    &self,\n) -> Option<Pid>;\n    let code: i32 = 0;\n    owner: Pid,",
        "fn kill_pid(pid: Pid) -> Result<()> {\n    x\n}\nlet status: i32 = 0;",
    ];
    for example in passed {
        assert_eq!(raw_pids(example), Vec::<String>::new(), "caught: {example}");
    }
}
