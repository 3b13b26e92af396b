//! A program whose own code is compiled with `panic = "abort"` (catalogue item T10):
//! `runtime/tests/panic_abort.rs` builds it with `cargo rustc ... -- -C panic=abort`, which
//! reuses the workspace's build of every dependency (a crate compiled for unwinding links
//! into an aborting program; the program's strategy decides, and the panic runtime is
//! `panic_abort`), and runs it.
//!
//! Under each start method (fork, forkserver, spawn; the re-executed children of the last
//! two run this same aborting program) a child whose target panics must end as CPython's
//! `-SIGABRT` would be reported: the panic hook prints the message, `abort()` raises
//! SIGABRT, and the parent observes exit code -6, a typed `ResultError::Killed { signal: 6 }`
//! for a handle that waits for a value, and end of file on a pipe whose other end only the
//! child held; nothing is left behind (no child, fd, mapping or thread).
//!
//! It prints one line `ok <method> <case>` per checked case and exits with 0 when every case
//! held, 1 with the reason on standard error otherwise, and 2 when it was not built with
//! `panic = "abort"` (so an unwinding build cannot pass for an aborting one).

use std::process::ExitCode;

use proclife::connection::{Connection, pipe};
use proclife::result::ResultError;
use proclife::{Process, StartMethod, TargetResult};
use proclife_testkit::procfs::Snapshot;
use proclife_testkit::wait::{AT_ONCE, join_code};

/// The message every target panics with; the test looks for it on standard error.
const MESSAGE: &str = "the target panics under panic=abort";

fn panic_now((): ()) -> TargetResult {
    panic!("{MESSAGE}")
}

fn panic_returning((): ()) -> u32 {
    panic!("{MESSAGE}")
}

/// Holds the only write end of a pipe and panics with it open.
fn panic_holding(_end: Connection) -> TargetResult {
    panic!("{MESSAGE}")
}

proclife::entry!(panic_now, panic_holding);
proclife::entry_returning!(panic_returning);

type Checked = Result<(), Box<dyn std::error::Error>>;

fn builder(method: StartMethod, case: &str) -> proclife::Builder {
    Process::builder()
        .start_method(method)
        .name(format!("{method}-{case}"))
}

fn expect_sigabrt(method: StartMethod, case: &str, code: i32) -> Checked {
    if code == -libc::SIGABRT {
        println!("ok {method} {case}");
        Ok(())
    } else {
        Err(format!(
            "{method} {case}: expected exit code {} (SIGABRT), got {code}",
            -libc::SIGABRT
        )
        .into())
    }
}

fn check(method: StartMethod) -> Checked {
    let mut p = builder(method, "entry").entry(panic_now, ());
    p.start()?;
    expect_sigabrt(method, "entry", join_code(&p)?)?;
    p.close()?;

    if method == StartMethod::Fork {
        let mut p = builder(method, "closure").target(|| panic!("{MESSAGE}"));
        p.start()?;
        expect_sigabrt(method, "closure", join_code(&p)?)?;
        p.close()?;
    }

    let mut handle = Process::builder()
        .start_method(method)
        .entry_returning(panic_returning, ());
    handle.start()?;
    match handle.result(Some(AT_ONCE)) {
        Err(ResultError::Killed { signal }) if signal == libc::SIGABRT => {
            println!("ok {method} returning");
        }
        other => {
            return Err(format!(
                "{method} returning: expected ResultError::Killed {{ signal: {} }}, got {other:?}",
                libc::SIGABRT
            )
            .into());
        }
    }

    let (mut read, write) = pipe(false)?;
    let mut p = builder(method, "holding").entry(panic_holding, write);
    p.start()?;
    // The parent's copy of the write end went with the handle's arguments; the child's
    // copy dies with it, so the read end sees end of file, not a hang.
    match read.poll(Some(AT_ONCE)) {
        Ok(true) => {}
        other => {
            return Err(format!(
                "{method} holding: expected the read end to become ready within {AT_ONCE:?}, got {other:?}"
            )
            .into());
        }
    }
    match read.recv_bytes() {
        Err(proclife::Error::Disconnected) => {}
        other => {
            return Err(format!("{method} holding: expected Disconnected, got {other:?}").into());
        }
    }
    expect_sigabrt(method, "holding", join_code(&p)?)?;
    p.close()?;
    Ok(())
}

fn run() -> Checked {
    // abort() may dump core; a dump is slow and nothing here reads it.
    nix::sys::resource::setrlimit(nix::sys::resource::Resource::RLIMIT_CORE, 0, 0)?;
    let before = Snapshot::take();
    for method in StartMethod::ALL {
        check(method)?;
    }
    // The fork server (a child of this process, with its socket and pidfd) is not a leak
    // of the children's deaths; it ends here so that what is left can be counted.
    proclife::stop_fork_server()?;
    before
        .check(false)
        .map_err(|leaks| format!("after the children ended: {leaks}"))?;
    println!("ok nothing left behind");
    Ok(())
}

fn main() -> ExitCode {
    if !cfg!(panic = "abort") {
        eprintln!("this program checks panic = \"abort\": build it with `-C panic=abort`");
        return ExitCode::from(2);
    }
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("{error}");
            ExitCode::FAILURE
        }
    }
}
