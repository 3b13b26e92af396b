//! Replays every sequence in `verify/regressions/` on the model and on real processes, under
//! each start method.
//!
//! The sequences start children, so this runner has `harness = false` and runs its tests one
//! at a time on the main thread (the fork start method refuses a threaded parent).

use std::path::{Path, PathBuf};

use libtest_mimic::{Arguments, Failed, Trial};
use proclife_verify::run;
use proclife_verify::trace::Trace;

fn corpus() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("regressions")
}

fn replay(path: &Path) -> Result<(), Failed> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("read: {e}"))?;
    let trace = Trace::parse(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    for method in proclife_verify::check::METHODS {
        let outcomes = run::run(&trace.ops, trace.procs(), method);
        if let Some(failure) = outcomes.failure {
            return Err(format!("{} under {method}: {failure}", path.display()).into());
        }
    }
    Ok(())
}

fn main() {
    let mut args = Arguments::from_args();
    args.test_threads = Some(1);
    let mut files: Vec<PathBuf> = std::fs::read_dir(corpus())
        .map(|dir| {
            dir.flatten()
                .map(|entry| entry.path())
                .filter(|path| path.extension().is_some_and(|e| e == "json"))
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    let mut trials: Vec<Trial> = files
        .into_iter()
        .map(|path| {
            let name = path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            Trial::test(name, move || replay(&path))
        })
        .collect();
    trials.push(Trial::test("the_corpus_is_not_empty", || {
        let count = std::fs::read_dir(corpus())
            .map(|dir| dir.flatten().count())
            .unwrap_or(0);
        if count > 1 {
            Ok(())
        } else {
            Err("verify/regressions/ holds no sequences".into())
        }
    }));
    libtest_mimic::run(&args, trials).exit();
}
