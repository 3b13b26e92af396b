//! `docs/faults.md` lists every item of the fault catalogue (`docs/reference/faults.md`,
//! T01–T50) with the tests that check it, read from the test sources: a test checks the
//! items whose codes (`t03`, `t16`) are words of its name, or that [`UNTAGGED`] gives for
//! it. The table is generated; this test fails when the committed page differs, and
//! `UPDATE_EXPECT=1 cargo test -p proclife-testkit --test catalogue` rewrites it. The notes
//! after the table are kept as written.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Tests whose names carry no catalogue code, with the items their comments say they check.
const UNTAGGED: &[(&str, &str, &[&str])] = &[
    (
        "runtime/tests/lifecycle.rs",
        "threaded_parent_is_refused",
        &["T08"],
    ),
    ("runtime/tests/methods.rs", "threaded_parent", &["T08"]),
    (
        "runtime/tests/methods.rs",
        "kill_during_bootstrap",
        &["T06"],
    ),
    (
        "runtime/tests/methods.rs",
        "daemons_die_with_their_parent",
        &["T09", "T27"],
    ),
    ("runtime/tests/methods.rs", "fork_server_death", &["T32"]),
    (
        "runtime/tests/methods.rs",
        "forged_bootstraps_are_refused",
        &["T40"],
    ),
    (
        "runtime/tests/methods.rs",
        "clean_process_image",
        &["T45", "T50"],
    ),
    (
        "runtime/tests/exit_codes.rs",
        "panic_is_one_with_message",
        &["T10"],
    ),
    (
        "runtime/tests/exit_codes.rs",
        "segfault_is_minus_sigsegv",
        &["T10"],
    ),
    (
        "runtime/tests/exit_codes.rs",
        "abort_is_minus_sigabrt",
        &["T10"],
    ),
    (
        "runtime/tests/exit_codes.rs",
        "stack_overflow_is_a_signal",
        &["T10"],
    ),
    (
        "runtime/tests/blocked.rs",
        "holder_killed_while_blocked_elsewhere",
        &["T19"],
    ),
    ("verify/tests/agree.rs", "settled_sequences_agree", &["T01"]),
    ("verify/tests/agree.rs", "racing_sequences_agree", &["T01"]),
];

/// The directories whose `.rs` files hold tests.
const TEST_DIRS: &[&str] = &[
    "runtime/tests",
    "verify/tests",
    "model/tests",
    "benches/tests",
];

const NOTES_MARKER: &str = "<!-- Notes below this line are kept by the generator. -->";

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

/// The catalogue's items: code and title, from lines `**T03 Title.**`.
fn items(reference: &str) -> Vec<(String, String)> {
    reference
        .lines()
        .filter_map(|line| {
            let rest = line.strip_prefix("**T")?;
            let (number, title) = rest.split_once(' ')?;
            if number.len() != 2 || !number.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            let title = title.trim_end_matches("**").trim_end_matches('.');
            Some((format!("T{number}"), title.to_owned()))
        })
        .collect()
}

/// The test names of one source file: the names registered with a `harness = false` runner
/// (a string literal equal to the name of a `fn` of the file, or the name given to
/// `Trial::test`) and `#[test]` functions.
fn test_names(source: &str) -> BTreeSet<String> {
    let fns: BTreeSet<&str> = source
        .split("fn ")
        .skip(1)
        .filter_map(|rest| rest.split('(').next())
        .filter(|name| name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'))
        .collect();
    let mut names = BTreeSet::new();
    for (i, piece) in source.split('"').enumerate() {
        // A runner's entry: `("name", name)`, on one line or split by rustfmt.
        let registered = source.contains(&format!("(\"{piece}\", {piece})"))
            || source.contains(&format!("(\n            \"{piece}\""));
        if i % 2 == 1 && fns.contains(piece) && registered {
            names.insert(piece.to_owned());
        }
    }
    for piece in source.split("Trial::test(\"").skip(1) {
        if let Some(name) = piece.split('"').next() {
            names.insert(name.to_owned());
        }
    }
    let lines: Vec<&str> = source.lines().collect();
    for pair in lines.windows(2) {
        if matches!(pair[0].trim(), "#[test]" | "#[proclife::test]")
            && let Some(name) = pair[1].trim().strip_prefix("fn ")
            && let Some(name) = name.split('(').next()
        {
            names.insert(name.to_owned());
        }
    }
    names
}

/// The catalogue codes a test name carries: its words `tNN`.
fn codes_in(name: &str) -> Vec<String> {
    name.split('_')
        .filter(|w| {
            w.len() == 3 && w.starts_with('t') && w[1..].bytes().all(|b| b.is_ascii_digit())
        })
        .map(|w| w.to_uppercase())
        .collect()
}

/// `code -> [file: test]` over every test source of the workspace.
fn tests_by_item() -> BTreeMap<String, Vec<String>> {
    let mut map: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for dir in TEST_DIRS {
        let mut files: Vec<PathBuf> = std::fs::read_dir(root().join(dir))
            .map(|d| d.flatten().map(|e| e.path()).collect())
            .unwrap_or_default();
        files.retain(|p| p.extension().is_some_and(|e| e == "rs"));
        files.sort();
        for file in files {
            let source = std::fs::read_to_string(&file).unwrap_or_default();
            let rel = format!(
                "{dir}/{}",
                file.file_name().unwrap_or_default().to_string_lossy()
            );
            for name in test_names(&source) {
                let mut codes = codes_in(&name);
                for (f, n, extra) in UNTAGGED {
                    if *f == rel && *n == name {
                        codes.extend(extra.iter().map(|c| (*c).to_owned()));
                    }
                }
                for code in codes {
                    map.entry(code)
                        .or_default()
                        .push(format!("`{rel}`: `{name}`"));
                }
            }
        }
    }
    map
}

fn render(notes: &str) -> String {
    let reference = std::fs::read_to_string(root().join("docs/reference/faults.md"))
        .expect("docs/reference/faults.md is readable");
    let by_item = tests_by_item();
    let mut out = String::from(
        "# The fault catalogue and the tests that check it\n\n\
         Every item of the catalogue ([reference/faults.md](reference/faults.md), T01–T50) \
         with the tests that check it. \"Passes\" means every listed test is part of the \
         README's test command, which passes; \"not tested\" means no test checks the item. \
         This table is generated from the test sources by \
         `testkit/tests/catalogue.rs`, which fails when it is stale \
         (`UPDATE_EXPECT=1 cargo test -p proclife-testkit --test catalogue` rewrites it).\n\n\
         | Item | What | Tests | Result |\n|---|---|---|---|\n",
    );
    let mut untested = Vec::new();
    for (code, title) in items(&reference) {
        let (tests, result) = match by_item.get(&code) {
            Some(tests) => (tests.join("<br>"), "passes"),
            None => {
                untested.push(code.clone());
                ("—".to_owned(), "not tested")
            }
        };
        out.push_str(&format!("| {code} | {title} | {tests} | {result} |\n"));
    }
    let missing = if untested.is_empty() {
        String::new()
    } else {
        format!("; not tested: {}", untested.join(", "))
    };
    out.push_str(&format!(
        "\n{} of {} items are checked by a test{missing}.\n\n{NOTES_MARKER}\n",
        items(&reference).len() - untested.len(),
        items(&reference).len(),
    ));
    out.push_str(notes);
    out
}

#[test]
fn faults_page_lists_every_catalogue_item_with_its_tests() {
    let path = root().join("docs/faults.md");
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    let notes = committed
        .split_once(NOTES_MARKER)
        .map(|(_, notes)| notes.strip_prefix('\n').unwrap_or(notes))
        .unwrap_or("");
    let expected = render(notes);
    let reference = std::fs::read_to_string(root().join("docs/reference/faults.md"))
        .expect("docs/reference/faults.md is readable");
    assert_eq!(
        items(&reference).len(),
        50,
        "expected the catalogue's 50 items T01–T50"
    );
    if std::env::var_os("UPDATE_EXPECT").is_some() {
        std::fs::write(&path, &expected).expect("write docs/faults.md");
        return;
    }
    assert!(
        committed == expected,
        "docs/faults.md is stale: expected the generated table (run UPDATE_EXPECT=1 cargo test \
         -p proclife-testkit --test catalogue); it differs"
    );
}

#[test]
fn test_names_and_codes_are_read_as_documented() {
    let source = "fn main() {\n    run(vec![\n        (\"a_t03\", a_t03),\n        (\n            \"long_name_t16_t18\",\n            long_name_t16_t18,\n        ),\n    ]);\n}\nfn a_t03() {}\nfn long_name_t16_t18() {}\n#[test]\nfn plain_t44() {}\n#[proclife::test]\nfn own_process_t12() {}\nfn helper() { let s = \"helper\"; }\n";
    let names = test_names(source);
    assert_eq!(
        names.into_iter().collect::<Vec<_>>(),
        ["a_t03", "long_name_t16_t18", "own_process_t12", "plain_t44"]
    );
    assert_eq!(codes_in("long_name_t16_t18"), ["T16", "T18"]);
    assert_eq!(codes_in("t41_thousand_children_at_1024_fds"), ["T41"]);
    assert!(codes_in("exit_n_is_n_and_0xff").is_empty());
}
