//! What a child and a child of a child inherit, under all nine parent → child method pairs:
//! `current_process()` (name, daemon flag, identity), `parent_process()` (the real parent,
//! and `is_alive()` false once it died), the start-method setting, the fork-server
//! connection, the status slot, and the exit policy (ARCHITECTURE.md lists the rules).
//!
//! The main process starts a middle process `C` with method `m1` (through the global
//! setting), `C` starts a grandchild `G` with method `m2` (through its own global setting),
//! and both report over connections. Then `C` is killed (and `G` must see its parent dead),
//! or `C` returns (and its exit policy must join `G`, or terminate it if it is a daemon).
//! This process is a child subreaper, so orphans come back here and are reaped.

#[macro_use]
extern crate proclife_testkit;
use proclife_testkit as common;

use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::time::Duration;

use common::{TestResult, join_code};
use proclife::ipc::{Connection, pipe};
use proclife::sync::Event;
use proclife::{Process, ProcessState, StartMethod, TargetResult};

const LIMIT: Duration = Duration::from_secs(20);

/// What a process says about itself.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
struct Me {
    pid: i32,
    ppid: i32,
    name: String,
    daemon: bool,
    identity: Vec<u64>,
    parent: Option<(i32, String, bool)>,
    method: String,
    server: Option<i32>,
}

fn me() -> Me {
    let current = proclife::current_process();
    Me {
        pid: current.pid().as_raw(),
        ppid: nix::unistd::getppid().as_raw(),
        name: current.name().to_owned(),
        daemon: current.daemon(),
        identity: current.identity().to_vec(),
        parent: proclife::parent_process()
            .map(|p| (p.pid().as_raw(), p.name().to_owned(), p.is_alive())),
        method: proclife::get_start_method().to_string(),
        server: proclife::fork_server_pid().map(|p| p.as_raw()),
    }
}

/// What happens to the middle process once both have reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
enum Ending {
    /// The main process kills it; the grandchild must then see its parent dead.
    Killed,
    /// It returns; its exit policy joins the (non-daemon) grandchild.
    Returns,
    /// It returns; its exit policy terminates the daemon grandchild.
    ReturnsDaemon,
}

/// The grandchild's arguments.
#[derive(serde::Serialize, serde::Deserialize)]
struct Leaf {
    report: Connection,
    commands: Connection,
    gate: Event,
}

/// The grandchild: reports, blocks on the gate until its parent opens it, then waits for
/// the main process's command and reports whether its parent is alive.
fn leaf(mut a: Leaf) -> TargetResult {
    a.report.send(&me())?;
    if !a.gate.wait(Some(LIMIT))? {
        return Err("the gate never opened".into());
    }
    // The command says whether the parent was killed; then wait until this process has
    // been re-parented before asking.
    let killed_parent: Option<i32> = a.commands.recv()?;
    if let Some(parent) = killed_parent {
        let deadline = std::time::Instant::now() + LIMIT;
        while nix::unistd::getppid().as_raw() == parent {
            if std::time::Instant::now() >= deadline {
                return Err("never re-parented".into());
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    let alive = proclife::parent_process().map(|p| p.is_alive());
    a.report.send(&alive)?;
    Ok(())
}

/// The middle process's arguments.
#[derive(serde::Serialize, serde::Deserialize)]
struct Middle {
    report: Connection,
    commands: Connection,
    leaf_method: String,
    ending: Ending,
    leaf: Leaf,
}

/// What the middle process reports after starting the grandchild.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct Started {
    leaf_pid: i32,
    leaf_state: String,
    server: Option<i32>,
}

fn middle(mut a: Middle) -> TargetResult {
    a.report.send(&me())?;
    // The grandchild's method comes from this process's own global setting.
    proclife::set_start_method_force(a.leaf_method.parse()?);
    let gate = Event::new()?;
    let leaf = Leaf {
        report: a.leaf.report,
        commands: a.leaf.commands,
        gate: Event::from_fd(gate.as_fd().try_clone_to_owned()?)?,
    };
    let mut g = Process::builder()
        .daemon(a.ending == Ending::ReturnsDaemon)
        .entry(self::leaf, leaf);
    g.start()?;
    // The grandchild's status slot is its own: this process sees it blocked on the gate.
    let deadline = std::time::Instant::now() + LIMIT;
    while g.state()? != ProcessState::Blocked(proclife::BlockedOn::Event) {
        if std::time::Instant::now() >= deadline {
            return Err(format!("grandchild never blocked: {:?}", g.state()).into());
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    a.report.send(&Started {
        leaf_pid: g.pid()?.map_or(0, |p| p.as_raw()),
        leaf_state: format!("{:?}", g.state()?),
        server: proclife::fork_server_pid().map(|p| p.as_raw()),
    })?;
    gate.set();
    // Blocked in `recv` until the main process says go (or kills this process).
    let (): () = a.commands.recv()?;
    // Returning hands `g` to the exit policy: joined, or terminated if it is a daemon.
    std::mem::forget(g);
    Ok(())
}
proclife::entry!(leaf, middle);

/// Reports whether `set_start_method` succeeds here (it does only while the setting is
/// unset) and the method that is then in force.
fn try_set(mut report: Connection) -> TargetResult {
    let set = proclife::set_start_method(StartMethod::Fork).map_err(|e| e.to_string());
    report.send(&(set, proclife::get_start_method().to_string()))?;
    Ok(())
}
proclife::entry!(try_set);

/// A `try_set` child's answer: whether it could set the method, and the method in force.
type Answer = (Result<(), String>, String);

/// Starts a `try_set` child under every method and returns their answers.
fn try_set_everywhere() -> Result<Vec<Answer>, Box<dyn std::error::Error>> {
    let mut answers = Vec::new();
    for method in StartMethod::ALL {
        let (mut rx, tx) = pipe(false)?;
        let mut p = Process::builder().start_method(method).entry(try_set, tx);
        p.start()?;
        ensure!(rx.poll(Some(LIMIT))?, "{method}: no answer");
        answers.push(rx.recv()?);
        ensure_eq!((method, join_code(&p)?), (method, 0));
    }
    Ok(answers)
}

/// The start-method setting passes to every kind of child as the parent has it: unset (the
/// child may still set it) or set (the child has that method, and setting it again fails).
fn setting_set_or_unset() -> TestResult {
    // Builder methods do not fix the global setting; nothing here has touched it yet unless
    // another test of this binary ran first, which the first `set_start_method` tells.
    let before = try_set_everywhere()?;
    let was_unset = proclife::set_start_method(StartMethod::Spawn).is_ok();
    for (method, (set, _)) in StartMethod::ALL.into_iter().zip(&before) {
        ensure!(
            set.is_ok() == was_unset,
            "{method}: the child could set the method: {set:?}, the parent's was unset: {was_unset}"
        );
    }
    proclife::set_start_method_force(StartMethod::ForkServer);
    let after = try_set_everywhere()?;
    for (method, answer) in StartMethod::ALL.into_iter().zip(after) {
        let expected = (
            Err("context has already been set".to_owned()),
            "forkserver".to_owned(),
        );
        ensure_eq!((method, answer), (method, expected));
    }
    proclife::stop_fork_server()?;
    proclife::set_start_method_force(StartMethod::Fork);
    Ok(())
}

fn pidfd_of(pid: i32) -> Result<OwnedFd, Box<dyn std::error::Error>> {
    // SAFETY: pidfd_open takes integers only and returns a new fd or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    ensure!(fd >= 0, "pidfd_open({pid}) failed");
    // SAFETY: a fresh descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// Waits for and reaps every child of this process that no handle owns (orphans re-parented
/// here), except `keep`; bounded by `LIMIT`.
fn reap_adopted(keep: Option<i32>) -> TestResult {
    let deadline = std::time::Instant::now() + LIMIT;
    loop {
        let adopted: Vec<i32> = common::children()
            .into_iter()
            .filter(|&pid| Some(pid) != keep)
            .collect();
        if adopted.is_empty() {
            return Ok(());
        }
        for pid in adopted {
            let Ok(fd) = pidfd_of(pid) else { continue };
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            ensure!(
                common::readable(fd.as_raw_fd(), left.as_millis() as i32),
                "adopted process {pid} did not exit"
            );
            let _ = nix::sys::wait::waitid(
                nix::sys::wait::Id::PIDFd(fd.as_fd()),
                nix::sys::wait::WaitPidFlag::WEXITED,
            );
        }
        ensure!(
            std::time::Instant::now() < deadline,
            "adopted processes remain: {:?}",
            common::children()
        );
    }
}

fn identity_of(name: &str) -> Vec<u64> {
    name.trim_start_matches("Process-")
        .split(':')
        .filter_map(|n| n.parse().ok())
        .collect()
}

/// Records a mismatch without stopping the protocol, so that every process still ends.
fn differ<T: std::fmt::Debug + PartialEq>(problems: &mut Vec<String>, what: &str, got: T, want: T) {
    if got != want {
        problems.push(format!("{what}: got {got:?}, expected {want:?}"));
    }
}

/// Runs one pair; returns the mismatches found (the protocol's own failures are errors).
fn one_pair(
    m1: StartMethod,
    m2: StartMethod,
    ending: Ending,
) -> Result<Vec<String>, Box<dyn std::error::Error>> {
    let ctx = format!("main -{m1}-> C -{m2}-> G, {ending:?}");
    let mut problems = Vec::new();
    let main = proclife::current_process();
    let main_server = proclife::fork_server_pid().map(|p| p.as_raw());
    // The middle process's method comes from this process's global setting.
    proclife::set_start_method_force(m1);
    let (mut c_report, c_report_tx) = pipe(false)?;
    let (c_commands_rx, mut c_commands) = pipe(false)?;
    let (mut g_report, g_report_tx) = pipe(false)?;
    let (g_commands_rx, mut g_commands) = pipe(false)?;
    let leaf = Leaf {
        report: g_report_tx,
        commands: g_commands_rx,
        // Replaced by the middle process; a placeholder that travels like the real one.
        gate: Event::new()?,
    };
    let mut c = Process::entry(
        middle,
        Middle {
            report: c_report_tx,
            commands: c_commands_rx,
            leaf_method: m2.to_string(),
            ending,
            leaf,
        },
    );
    let c_name = c.name().to_owned();
    c.start()?;
    let c_pid = c.pid()?.map_or(0, |p| p.as_raw());
    let main_server = main_server.or(proclife::fork_server_pid().map(|p| p.as_raw()));

    ensure!(c_report.poll(Some(LIMIT))?, "{ctx}: no report from C");
    let c_me: Me = c_report.recv()?;
    let expected_c = Me {
        pid: c_pid,
        ppid: if m1 == StartMethod::ForkServer {
            main_server.unwrap_or(0)
        } else {
            main.pid().as_raw()
        },
        name: c_name.clone(),
        daemon: false,
        identity: identity_of(&c_name),
        parent: Some((main.pid().as_raw(), main.name().to_owned(), true)),
        method: m1.to_string(),
        server: None,
    };
    differ(&mut problems, &format!("{ctx}: C"), c_me, expected_c);

    ensure!(g_report.poll(Some(LIMIT))?, "{ctx}: no report from G");
    let g_me: Me = g_report.recv()?;
    ensure!(
        c_report.poll(Some(LIMIT))?,
        "{ctx}: no second report from C"
    );
    let started: Started = c_report.recv()?;
    match m2 {
        StartMethod::ForkServer => {
            if started.server.is_none() || started.server == main_server {
                problems.push(format!(
                    "{ctx}: C's fork server {:?} is not its own (main's is {main_server:?})",
                    started.server
                ));
            }
        }
        _ => differ(
            &mut problems,
            &format!("{ctx}: C's fork server"),
            started.server,
            None,
        ),
    }
    let g_name = format!("{c_name}:1");
    let expected_g = Me {
        pid: started.leaf_pid,
        ppid: if m2 == StartMethod::ForkServer {
            started.server.unwrap_or(0)
        } else {
            c_pid
        },
        name: g_name.clone(),
        daemon: ending == Ending::ReturnsDaemon,
        identity: identity_of(&g_name),
        parent: Some((c_pid, c_name.clone(), true)),
        method: m2.to_string(),
        server: None,
    };
    differ(&mut problems, &format!("{ctx}: G"), g_me, expected_g);
    differ(
        &mut problems,
        &format!("{ctx}: G's state seen by C"),
        started.leaf_state.as_str(),
        "Blocked(Event)",
    );
    // The grandchild's slot is not the middle process's: C waits in `recv` now.
    common::wait_until(LIMIT, || {
        c.state().ok() == Some(ProcessState::Blocked(proclife::BlockedOn::Recv))
    })
    .map_err(|e| format!("{ctx}: C's state {:?}: {e}", c.state()))?;

    let g_watch = pidfd_of(started.leaf_pid)?;
    match ending {
        Ending::Killed => {
            c.kill()?;
            ensure_eq!((&ctx, join_code(&c)?), (&ctx, -libc::SIGKILL));
            g_commands.send(&Some(c_pid))?;
            ensure!(g_report.poll(Some(LIMIT))?, "{ctx}: no answer from G");
            let alive: Option<bool> = g_report.recv()?;
            differ(
                &mut problems,
                &format!("{ctx}: G's parent_process().is_alive() after C was killed"),
                alive,
                Some(false),
            );
        }
        Ending::Returns => {
            c_commands.send(&())?;
            // C's exit policy waits for G, which waits for the main process.
            c.join_timeout(Duration::from_millis(200))?;
            differ(
                &mut problems,
                &format!("{ctx}: C's exit code before G ended"),
                c.exitcode()?,
                None,
            );
            g_commands.send(&None::<i32>)?;
            ensure!(g_report.poll(Some(LIMIT))?, "{ctx}: no answer from G");
            let alive: Option<bool> = g_report.recv()?;
            differ(
                &mut problems,
                &format!("{ctx}: G's parent_process().is_alive() while C runs its exit policy"),
                alive,
                Some(true),
            );
            ensure_eq!((&ctx, join_code(&c)?), (&ctx, 0));
        }
        Ending::ReturnsDaemon => {
            c_commands.send(&())?;
            // C's exit policy terminates its daemon child, then C exits.
            ensure_eq!((&ctx, join_code(&c)?), (&ctx, 0));
            ensure!(
                common::readable(g_watch.as_raw_fd(), 10_000),
                "{ctx}: the daemon grandchild outlived its parent's exit"
            );
        }
    }
    ensure!(
        common::readable(g_watch.as_raw_fd(), 10_000),
        "{ctx}: G did not exit"
    );
    drop(g_watch);
    reap_adopted(proclife::fork_server_pid().map(|p| p.as_raw()))?;
    Ok(problems)
}

fn nine_pairs(ending: Ending) -> TestResult {
    let mut problems = Vec::new();
    for m1 in StartMethod::ALL {
        for m2 in StartMethod::ALL {
            problems.extend(one_pair(m1, m2, ending)?);
        }
    }
    proclife::stop_fork_server()?;
    reap_adopted(None)?;
    proclife::set_start_method_force(StartMethod::Fork);
    ensure!(
        problems.is_empty(),
        "{} mismatches:\n{}",
        problems.len(),
        problems.join("\n")
    );
    Ok(())
}

fn parent_killed() -> TestResult {
    nine_pairs(Ending::Killed)
}

fn parent_returns() -> TestResult {
    nine_pairs(Ending::Returns)
}

fn parent_returns_with_daemon() -> TestResult {
    nine_pairs(Ending::ReturnsDaemon)
}

fn main() {
    // Orphans (a grandchild whose parent was killed, a middle process's fork server) come
    // back to this process, which reaps them.
    if let Err(error) = nix::sys::prctl::set_child_subreaper(true) {
        eprintln!("cannot become a child subreaper: {error}");
        std::process::exit(2);
    }
    common::run(vec![
        ("setting_set_or_unset", setting_set_or_unset),
        ("parent_killed", parent_killed),
        ("parent_returns", parent_returns),
        ("parent_returns_with_daemon", parent_returns_with_daemon),
    ]);
}
