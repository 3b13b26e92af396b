//! The runner of the `harness = false` test binaries: every test on the main thread, one at
//! a time (a forking parent must be single-threaded), each followed by the leak check.

use crate::TestResult;
use crate::procfs::Snapshot;

/// One named test.
pub type Test = (&'static str, fn() -> TestResult);

/// Runs `tests` on the main thread, one at a time, and after each one checks that it left
/// no fd, thread, zombie or child behind (see [`Snapshot::check`]).
pub fn run(tests: Vec<Test>) -> ! {
    run_checked(tests, false)
}

/// [`run`], checking also that no test left a name in `/dev/shm` or a shared mapping.
pub fn run_checked(tests: Vec<Test>, with_dev_shm: bool) -> ! {
    let mut args = libtest_mimic::Arguments::from_args();
    args.test_threads = Some(1);
    let trials = tests
        .into_iter()
        .map(|(name, test)| {
            libtest_mimic::Trial::test(name, move || {
                checked(test, with_dev_shm).map_err(|e| libtest_mimic::Failed::from(e.to_string()))
            })
        })
        .collect();
    libtest_mimic::run(&args, trials).exit()
}

fn checked(test: fn() -> TestResult, with_dev_shm: bool) -> TestResult {
    let before = Snapshot::take();
    test()?;
    crate::wait::wait_single_threaded()?;
    let mut before = before;
    if !with_dev_shm {
        // Mappings are checked only by the IPC runner: the fork start method keeps its
        // status-slot pages mapped for later children.
        before.shared_maps = usize::MAX;
    }
    before.check(with_dev_shm)?;
    Ok(())
}
