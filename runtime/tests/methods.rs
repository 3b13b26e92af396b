//! The re-executing start methods (spawn, forkserver): the same life-cycle as fork, from a
//! multi-threaded parent, with IPC and synchronisation objects as arguments, and the
//! bootstrap's defences (T06, T09, T27, T32, T40, T45, T50).

#[macro_use]
extern crate proclife_testkit;
use proclife_testkit as common;

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::time::Duration;

use common::{TestResult, join_code};
use proclife::ipc::{Connection, Queue, Value, pipe};
use proclife::sync::{Event, Lock};
use proclife::{Error, Process, ProcessState, StartMethod, TargetResult};

/// The methods under test.
const METHODS: [StartMethod; 2] = [StartMethod::Spawn, StartMethod::ForkServer];

fn builder(method: StartMethod) -> proclife::Builder {
    Process::builder().start_method(method)
}

fn exit_with(code: i32) -> TargetResult {
    std::process::exit(code)
}
fn panic_now((): ()) -> TargetResult {
    // The exit code is what is checked; a silent hook keeps the test run free of the
    // default hook's message and, under RUST_BACKTRACE, its backtrace.
    std::panic::set_hook(Box::new(|_| {}));
    panic!("the target panics on purpose")
}
fn fail_now((): ()) -> TargetResult {
    // The exit code is what is checked; the runtime's report of the error goes nowhere, so
    // that the test run stays quiet.
    let null = std::fs::File::create("/dev/null")?;
    nix::unistd::dup2_stderr(&null)?;
    Err("the target fails on purpose".into())
}
fn sleep_long((): ()) -> TargetResult {
    std::thread::sleep(Duration::from_secs(60));
    Ok(())
}
fn wait_event(event: Event) -> TargetResult {
    if event.wait(Some(Duration::from_secs(20)))? {
        Ok(())
    } else {
        Err("the event was never set".into())
    }
}
proclife::entry!(exit_with, panic_now, fail_now, sleep_long, wait_event);

/// Receives a number on the connection, puts it + 1 on the queue, adds it to the value
/// under the lock held by the parent until it sends again, and answers with the value.
fn round_trip(
    (mut conn, queue, lock, value): (Connection, Queue<u32>, Lock, Value<u64>),
) -> TargetResult {
    let n: u32 = conn.recv()?;
    queue.put(&(n + 1))?;
    if !lock.acquire(Some(Duration::from_secs(20)))? {
        return Err("the lock was never released".into());
    }
    value.set(value.get()? + u64::from(n))?;
    lock.release()?;
    conn.send(&value.get()?)?;
    Ok(())
}
proclife::entry!(round_trip);

/// What a re-executed child tells about itself.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct Report {
    fds: Vec<(i32, String)>,
    environ_has_marker: bool,
    cmdline: Vec<String>,
    name: String,
    parent: Option<(i32, String, bool)>,
}

fn report(mut conn: Connection) -> TargetResult {
    let mut fds = Vec::new();
    for entry in std::fs::read_dir("/proc/self/fd")?.flatten() {
        let Ok(fd) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let target = std::fs::read_link(entry.path())
            .map(|t| t.to_string_lossy().into_owned())
            .unwrap_or_default();
        if !target.is_empty() && !target.starts_with("/proc/") {
            fds.push((fd, target));
        }
    }
    let environ = std::fs::read("/proc/self/environ")?;
    let cmdline = std::fs::read("/proc/self/cmdline")?;
    let me = proclife::current_process();
    let parent =
        proclife::parent_process().map(|p| (p.pid().as_raw(), p.name().to_owned(), p.is_alive()));
    conn.send(&Report {
        fds,
        environ_has_marker: environ
            .split(|&b| b == 0)
            .any(|var| var.starts_with(proclife::BOOTSTRAP_ENV.as_bytes())),
        cmdline: cmdline
            .split(|&b| b == 0)
            .filter(|a| !a.is_empty())
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect(),
        name: me.name().to_owned(),
        parent,
    })?;
    Ok(())
}
proclife::entry!(report);

fn exit_codes() -> TestResult {
    for method in METHODS {
        for (code, expected) in [(0, 0), (3, 3), (256, 0), (-1, 255)] {
            let mut p = builder(method).entry(exit_with, code);
            p.start()?;
            ensure_eq!((method, code, join_code(&p)?), (method, code, expected));
        }
        let mut p = builder(method).entry(panic_now, ());
        p.start()?;
        ensure_eq!((method, join_code(&p)?), (method, 1));
        let mut p = builder(method).entry(fail_now, ());
        p.start()?;
        ensure_eq!((method, join_code(&p)?), (method, 1));
        let mut p = builder(method).no_target();
        p.start()?;
        ensure_eq!((method, join_code(&p)?), (method, 0));
        let mut p = builder(method).entry(sleep_long, ());
        p.start()?;
        ensure!(p.is_alive()?, "{method}: child not alive");
        p.terminate()?;
        ensure_eq!((method, join_code(&p)?), (method, -15));
        ensure!(!p.is_alive()?, "{method}: child alive after join");
        let mut p = builder(method).entry(sleep_long, ());
        p.start()?;
        p.kill()?;
        ensure_eq!((method, join_code(&p)?), (method, -9));
        p.close()?;
    }
    proclife::stop_fork_server()?;
    Ok(())
}

fn cpython_refusals() -> TestResult {
    for method in METHODS {
        let mut p = builder(method).entry(sleep_long, ());
        ensure_matches!(p.join(), Err(Error::JoinNotStarted));
        p.start()?;
        ensure_matches!(p.start(), Err(Error::AlreadyStarted));
        ensure_matches!(p.close(), Err(Error::StillRunning));
        ensure!(
            !common::readable(p.sentinel()?.as_raw_fd(), 0),
            "sentinel readable early"
        );
        p.terminate()?;
        common::settle(&p)?;
        ensure_eq!(p.exitcode()?, Some(-15));
        p.close()?;
        ensure_matches!(p.start(), Err(Error::Closed));

        let mut closure = builder(method).target(|| ());
        ensure_matches!(closure.start(), Err(Error::NotPassable { .. }));
        ensure_eq!(closure.state()?, ProcessState::New);
        ensure_eq!(closure.pid()?, None);

        fn not_registered((): ()) -> TargetResult {
            Ok(())
        }
        let mut unknown = builder(method).entry(not_registered, ());
        ensure_matches!(unknown.start(), Err(Error::UnregisteredEntry { .. }));
        ensure_eq!(unknown.state()?, ProcessState::New);
        // The same function runs under fork, where it need not be registered.
        let mut forked = Process::builder()
            .start_method(StartMethod::Fork)
            .entry(not_registered, ());
        forked.start()?;
        ensure_eq!(join_code(&forked)?, 0);
    }
    proclife::stop_fork_server()?;
    Ok(())
}

fn threaded_parent() -> TestResult {
    let stop = std::sync::Arc::new(std::sync::Barrier::new(5));
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let stop = std::sync::Arc::clone(&stop);
            std::thread::spawn(move || {
                stop.wait();
            })
        })
        .collect();
    let outcome = (|| -> TestResult {
        ensure!(common::thread_count() >= 5, "threads did not start");
        let mut forked = Process::builder()
            .start_method(StartMethod::Fork)
            .target(|| ());
        ensure_matches!(forked.start(), Err(Error::ThreadedFork { .. }));
        for method in METHODS {
            let mut a = builder(method).entry(exit_with, 7);
            let mut b = builder(method).entry(sleep_long, ());
            a.start()?;
            b.start()?;
            ensure_eq!(join_code(&a)?, 7);
            ensure!(b.is_alive()?, "{method}: sleeper died");
            b.terminate()?;
            ensure_eq!(join_code(&b)?, -15);
            // A daemon started from a thread that ends at once must outlive that thread
            // (PR_SET_PDEATHSIG follows the thread, T09).
            let handle = std::thread::spawn(move || -> Result<Process, Error> {
                let mut d = builder(method).daemon(true).entry(sleep_long, ());
                d.start()?;
                Ok(d)
            });
            let d = handle.join().map_err(|_| "starter thread panicked")??;
            std::thread::sleep(Duration::from_millis(200));
            ensure!(
                d.is_alive()?,
                "{method}: daemon died with its starting thread"
            );
            d.kill()?;
            ensure_eq!(join_code(&d)?, -9);
        }
        Ok(())
    })();
    stop.wait();
    proclife::stop_fork_server()?;
    for t in threads {
        t.join().map_err(|_| "thread panicked")?;
    }
    outcome
}

fn blocked_on_event_argument() -> TestResult {
    for method in METHODS {
        let event = Event::new()?;
        let mut p = builder(method).entry(
            wait_event,
            Event::from_fd(event.as_fd().try_clone_to_owned()?)?,
        );
        p.start()?;
        common::wait_until(Duration::from_secs(10), || {
            p.state().ok() == Some(ProcessState::Blocked(proclife::BlockedOn::Event))
        })?;
        event.set();
        ensure_eq!(join_code(&p)?, 0);
    }
    proclife::stop_fork_server()?;
    Ok(())
}

fn objects_work_both_ways() -> TestResult {
    for method in METHODS {
        let (mut here, there) = pipe(true)?;
        let queue = Queue::<u32>::new(4)?;
        let lock = Lock::new()?;
        let value = Value::new(100u64)?;
        let args = (
            there,
            Queue::from_fd(queue.as_fd().try_clone_to_owned()?)?,
            Lock::from_fd(lock.as_fd().try_clone_to_owned()?)?,
            Value::from_fds(
                value.as_fd().try_clone_to_owned()?,
                value.get_lock().as_fd().try_clone_to_owned()?,
            )?,
        );
        let mut p = builder(method).entry(round_trip, args);
        p.start()?;
        // Taken after the start: dropping the handle's copy of the arguments releases a lock
        // that the parent's thread holds through the copy (one handle per process).
        ensure!(lock.acquire(Some(Duration::ZERO))?, "lock taken");
        here.send(&41u32)?;
        ensure_eq!(queue.get_timeout(Some(Duration::from_secs(10)))?, 42);
        common::wait_until(Duration::from_secs(10), || {
            p.state().ok() == Some(ProcessState::Blocked(proclife::BlockedOn::Lock))
        })
        .map_err(|e| format!("{method}: {e}: {:?}", p.state()))?;
        lock.release()?;
        ensure!(here.poll(Some(Duration::from_secs(10)))?, "no answer");
        ensure_eq!(here.recv::<u64>()?, 141);
        ensure_eq!(value.get()?, 141);
        ensure_eq!(join_code(&p)?, 0);
        // The parent's copy of the child's end was dropped at start: end of file now.
        ensure_matches!(here.recv::<u64>(), Err(Error::Disconnected));
    }
    proclife::stop_fork_server()?;
    Ok(())
}

fn clean_process_image() -> TestResult {
    // A descriptor of the parent without close-on-exec, open while the fork server starts
    // and while each child starts: neither may inherit it.
    let leak = nix::unistd::pipe()?;
    proclife::stop_fork_server()?;
    for method in METHODS {
        let (mut here, there) = pipe(false)?;
        let mut p = builder(method).name("reporter").entry(report, there);
        p.start()?;
        ensure!(
            here.poll(Some(Duration::from_secs(10)))?,
            "{method}: no report"
        );
        let report: Report = here.recv()?;
        ensure_eq!(join_code(&p)?, 0);
        // T45: 0, 1, 2, the passed connection, and the runtime's own (the parent's pidfd, and
        // under spawn the status slot's memfd: a fork server's child has its slot in the
        // cells the server mapped, without an fd); nothing else of the parent's survived.
        let slot_fds = usize::from(method == StartMethod::Spawn);
        let extra: Vec<&(i32, String)> = report.fds.iter().filter(|(fd, _)| *fd > 2).collect();
        ensure!(
            extra.len() == 2 + slot_fds,
            "{method}: {extra:?}, expected {} fds above 2",
            2 + slot_fds
        );
        ensure_eq!(
            extra
                .iter()
                .filter(|(_, t)| t.starts_with("/memfd:proclife"))
                .count(),
            slot_fds
        );
        ensure_eq!(extra.iter().filter(|(_, t)| t.contains("pidfd")).count(), 1);
        ensure_eq!(
            extra
                .iter()
                .filter(|(_, t)| t.starts_with("pipe:") || t.starts_with("socket:"))
                .count(),
            1
        );
        // T50: no bootstrap variable, no secret on the command line.
        ensure!(
            !report.environ_has_marker,
            "{method}: bootstrap variable visible"
        );
        ensure_eq!(report.cmdline.len(), 2);
        ensure_eq!(report.cmdline[1].as_str(), "--proclife-bootstrap");
        ensure_eq!(report.name.as_str(), "reporter");
        let me = proclife::current_process();
        ensure_eq!(
            report.parent,
            Some((me.pid().as_raw(), me.name().to_owned(), true))
        );
    }
    proclife::stop_fork_server()?;
    drop(leak);
    Ok(())
}

/// Runs this test binary with a bootstrap socket carrying `bytes` (and `fds`).
fn forged(
    bytes: &[u8],
    fds: &[std::os::fd::BorrowedFd<'_>],
) -> Result<(i32, String), Box<dyn std::error::Error>> {
    use nix::sys::socket::{
        AddressFamily, ControlMessage, MsgFlags, SockFlag, SockType, sendmsg, socketpair,
    };
    let (ours, theirs): (OwnedFd, OwnedFd) = socketpair(
        AddressFamily::Unix,
        SockType::Stream,
        None,
        SockFlag::empty(),
    )?;
    nix::fcntl::fcntl(
        &ours,
        nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
    )?;
    let raw: Vec<i32> = fds.iter().map(|fd| fd.as_raw_fd()).collect();
    let cmsg = [ControlMessage::ScmRights(&raw)];
    let iov = [std::io::IoSlice::new(bytes)];
    sendmsg::<()>(
        ours.as_raw_fd(),
        &iov,
        if raw.is_empty() { &[] } else { &cmsg },
        MsgFlags::empty(),
        None,
    )?;
    drop(ours);
    let out = std::process::Command::new(std::env::current_exe()?)
        .arg("--proclife-bootstrap")
        .env(proclife::BOOTSTRAP_ENV, theirs.as_raw_fd().to_string())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .output()?;
    drop(theirs);
    let code = out.status.code().unwrap_or(-1);
    let mut text = String::from_utf8_lossy(&out.stderr).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stdout));
    Ok((code, text))
}

fn forged_bootstraps_are_refused() -> TestResult {
    let mut header = Vec::new();
    header.extend_from_slice(b"PROCLIFE");
    header.extend_from_slice(&1u32.to_le_bytes());
    header.extend_from_slice(&1u32.to_le_bytes());
    let good_header = |len: u32, nfds: u32| {
        let mut h = header.clone();
        h.extend_from_slice(&len.to_le_bytes());
        h.extend_from_slice(&nfds.to_le_bytes());
        h
    };
    let mut wrong_magic = good_header(0, 0);
    wrong_magic[0] = b'X';
    let mut wrong_version = good_header(0, 0);
    wrong_version[8] = 9;
    // A fork-server bootstrap whose payload is not a server's.
    let mut server_request = good_header(4, 0);
    server_request[12] = 2;
    server_request.extend_from_slice(&[1, 2, 3, 4]);
    let mut unknown_kind = good_header(0, 0);
    unknown_kind[12] = 7;
    let lock = Lock::new()?;
    let cases: Vec<(&str, Vec<u8>, usize)> = vec![
        ("empty", Vec::new(), 0),
        ("truncated header", b"PROCLIFE\x01".to_vec(), 0),
        ("wrong magic", wrong_magic, 0),
        ("wrong version", wrong_version, 0),
        ("fd count mismatch", good_header(0, 3), 1),
        ("truncated payload", good_header(100, 0), 0),
        (
            "garbage payload",
            [good_header(4, 0), vec![0xff; 4]].concat(),
            0,
        ),
        ("huge payload", good_header(u32::MAX, 0), 0),
        ("forged server", server_request, 0),
        ("unknown kind", unknown_kind, 0),
    ];
    for (what, bytes, nfds) in cases {
        let fds: Vec<_> = (0..nfds).map(|_| lock.as_fd()).collect();
        let (code, text) = forged(&bytes, &fds)?;
        ensure!(
            code == proclife::BOOTSTRAP_EXIT_CODE && text.contains("bootstrap refused"),
            "{what}: exit {code}, output {text:?}"
        );
        // Nothing of the program ran: no test harness output.
        ensure!(
            !text.contains("running"),
            "{what}: the harness ran: {text:?}"
        );
    }
    // The variable without a socket behind it.
    let out = std::process::Command::new(std::env::current_exe()?)
        .arg("--proclife-bootstrap")
        .env(proclife::BOOTSTRAP_ENV, "1")
        .stderr(std::process::Stdio::piped())
        .output()?;
    ensure_eq!(out.status.code(), Some(proclife::BOOTSTRAP_EXIT_CODE));
    Ok(())
}

fn global_start_method() -> TestResult {
    // Nothing in this binary fixes the global method before this test: every other start
    // names its method explicitly.
    proclife::set_start_method(StartMethod::Spawn)?;
    ensure_matches!(
        proclife::set_start_method(StartMethod::Fork),
        Err(Error::StartMethodAlreadySet)
    );
    ensure_eq!(proclife::get_start_method(), StartMethod::Spawn);
    let mut p = Process::entry(exit_with, 4);
    ensure_eq!(p.start_method(), StartMethod::Spawn);
    p.start()?;
    ensure_eq!(join_code(&p)?, 4);
    let mut closure = Process::new(|| ());
    ensure_matches!(closure.start(), Err(Error::NotPassable { method: "spawn" }));
    proclife::set_start_method_force(StartMethod::Fork);
    ensure_eq!(proclife::get_start_method(), StartMethod::Fork);
    ensure_eq!(
        "forkserver".parse::<StartMethod>()?,
        StartMethod::ForkServer
    );
    ensure_matches!(
        "vfork".parse::<StartMethod>(),
        Err(Error::UnknownStartMethod { .. })
    );
    Ok(())
}

/// Starts a daemon grandchild under `method` (from a thread that ends at once, if
/// `from_thread`), reports its pid, then waits to be killed.
fn start_daemon_grandchild(
    (mut conn, method, from_thread): (Connection, String, bool),
) -> TargetResult {
    let method: StartMethod = method.parse()?;
    let start = move || -> Result<Process, Error> {
        let mut grandchild = Process::builder()
            .start_method(method)
            .daemon(true)
            .entry(sleep_long, ());
        grandchild.start()?;
        Ok(grandchild)
    };
    let grandchild = if from_thread {
        std::thread::spawn(start)
            .join()
            .map_err(|_| "starter thread panicked")??
    } else {
        start()?
    };
    let pid = grandchild.pid()?.map(|p| p.as_raw()).unwrap_or(0);
    conn.send(&pid)?;
    std::thread::sleep(Duration::from_secs(60));
    Ok(())
}

/// A daemon tries to start a child and reports the error's CPython message.
fn daemon_starts_child(mut conn: Connection) -> TargetResult {
    let mut p = Process::entry(exit_with, 0);
    let outcome = p.start().map_err(|e| e.to_string());
    conn.send(&outcome)?;
    Ok(())
}
proclife::entry!(start_daemon_grandchild, daemon_starts_child);

fn pidfd_of(pid: i32) -> Result<OwnedFd, Box<dyn std::error::Error>> {
    // SAFETY: pidfd_open takes integers only and returns a new fd or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    ensure!(fd >= 0, "pidfd_open({pid}) failed");
    // SAFETY: a fresh descriptor that nothing else owns.
    Ok(unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd as i32) })
}

fn daemons_die_with_their_parent() -> TestResult {
    for (method, from_thread) in METHODS.into_iter().flat_map(|m| [(m, false), (m, true)]) {
        // T09/T27: the middle process is SIGKILLed; its daemon child must die too, also when
        // the thread that started it ended long before.
        let (mut here, there) = pipe(false)?;
        let mut middle = builder(method).entry(
            start_daemon_grandchild,
            (there, method.to_string(), from_thread),
        );
        middle.start()?;
        ensure!(
            here.poll(Some(Duration::from_secs(10)))?,
            "{method}: no grandchild pid"
        );
        let grandchild: i32 = here.recv()?;
        let watch = pidfd_of(grandchild)?;
        ensure!(
            !common::readable(watch.as_raw_fd(), 0),
            "{method}: grandchild already dead"
        );
        middle.kill()?;
        ensure_eq!(join_code(&middle)?, -9);
        ensure!(
            common::readable(watch.as_raw_fd(), 10_000),
            "{method}: daemon grandchild outlived its killed parent"
        );
        // "daemonic processes are not allowed to have children", in a re-executed daemon.
        let (mut here, there) = pipe(false)?;
        let mut daemon = builder(method)
            .daemon(true)
            .entry(daemon_starts_child, there);
        daemon.start()?;
        ensure!(
            here.poll(Some(Duration::from_secs(10)))?,
            "{method}: no answer"
        );
        let outcome: Result<(), String> = here.recv()?;
        ensure_eq!(
            outcome,
            Err("daemonic processes are not allowed to have children".to_owned())
        );
        ensure_eq!(join_code(&daemon)?, 0);
    }
    proclife::stop_fork_server()?;
    Ok(())
}

fn kill_during_bootstrap() -> TestResult {
    // T06: a child killed before it read its bootstrap is reported -9, nothing hangs.
    for method in METHODS {
        for _ in 0..5 {
            let mut p = builder(method).entry(sleep_long, ());
            p.start()?;
            p.kill()?;
            ensure_eq!((method, join_code(&p)?), (method, -9));
        }
    }
    proclife::stop_fork_server()?;
    Ok(())
}

fn fork_server_death() -> TestResult {
    // T32: the server is SIGKILLed with a daemon and a non-daemon child running.
    let method = StartMethod::ForkServer;
    let mut daemon = builder(method).daemon(true).entry(sleep_long, ());
    let mut worker = builder(method).entry(sleep_long, ());
    daemon.start()?;
    worker.start()?;
    let server = kill_fork_server()?;
    // The next start fails with a typed error, the one after gets a new server.
    let mut next = builder(method).entry(exit_with, 0);
    ensure_matches!(next.start(), Err(Error::ForkServerDied));
    ensure_eq!(next.state()?, ProcessState::New);
    next.start()?;
    ensure_eq!(join_code(&next)?, 0);
    ensure!(
        proclife::fork_server_pid() != Some(server),
        "the dead server is still used"
    );
    // The daemon child died with the server (its death signal); nobody can reap it now,
    // so its exit is reported as 255, as CPython's forkserver does.
    ensure_eq!(join_code(&daemon)?, 255);
    // The non-daemon child was not orphaned silently: it still answers to its handle.
    ensure!(worker.is_alive()?, "worker died with the server");
    worker.terminate()?;
    ensure_eq!(join_code(&worker)?, 255);
    proclife::stop_fork_server()?;
    Ok(())
}

/// A start whose reply cannot be read whole (its pidfd refused at `RLIMIT_NOFILE`, which can
/// leave the reply's payload on the socket) fails with a typed error, and the server,
/// which may have forked a child for it, is killed and forgotten: the next start gets a new
/// server, whose reply is its own (the old one's would be read as garbage, or as another
/// request's pid).
fn fork_server_reply_out_of_step() -> TestResult {
    common::helper::in_helper("fork-server-reply", |_| {
        use nix::sys::resource::{Resource, getrlimit, setrlimit};
        let method = StartMethod::ForkServer;
        let mut first = builder(method).entry(exit_with, 0);
        first.start()?;
        ensure_eq!(join_code(&first)?, 0);
        let server = proclife::fork_server_pid().ok_or("no fork server")?;
        // The lowest free fd: a limit of that many leaves no room for the reply's pidfd.
        let lowest = std::fs::File::open("/dev/null")?.as_raw_fd();
        let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE)?;
        setrlimit(Resource::RLIMIT_NOFILE, u64::try_from(lowest)?, hard)?;
        let mut second = builder(method).entry(exit_with, 0);
        let outcome = second.start();
        setrlimit(Resource::RLIMIT_NOFILE, soft, hard)?;
        // `recvmsg` fails (`ENOBUFS`) or reports the fds truncated (`Error::Malformed`),
        // depending on the kernel.
        ensure!(
            matches!(
                outcome,
                Err(Error::Malformed(_)
                    | Error::Os {
                        call: "recvmsg",
                        ..
                    })
            ),
            "a start whose reply lost its pidfd: expected Error::Malformed or a recvmsg \
             error, got {outcome:?}"
        );
        ensure!(
            proclife::fork_server_pid() != Some(server),
            "the server whose reply was not read whole is still used"
        );
        let mut third = builder(method).entry(exit_with, 3);
        third.start()?;
        ensure_eq!(join_code(&third)?, 3);
        proclife::stop_fork_server()?;
        Ok(())
    })
}

/// The fork server's status cells (decision 0027): the cell of a child killed while it was
/// blocked goes to the next child reset (never read as the dead child's reason), and a child
/// orphaned by a dead server keeps its cell, still read right while the new server's
/// children take cells of their own.
fn fork_server_cells_recycled_and_kept() -> TestResult {
    let method = StartMethod::ForkServer;
    let blocked = ProcessState::Blocked(proclife::BlockedOn::Event);
    let waiter = |event: &Event| -> Result<Process, Box<dyn std::error::Error>> {
        let mut p = builder(method).entry(
            wait_event,
            Event::from_fd(event.as_fd().try_clone_to_owned()?)?,
        );
        p.start()?;
        common::wait_until(Duration::from_secs(10), || p.state().ok() == Some(blocked))?;
        Ok(p)
    };
    for round in 0..3 {
        let event = Event::new()?;
        let p = waiter(&event)?;
        p.kill()?;
        ensure_eq!((round, join_code(&p)?), (round, -9));
        drop(p);
        let mut next = builder(method).entry(sleep_long, ());
        next.start()?;
        let state = next.state()?;
        ensure!(
            state != blocked,
            "round {round}: a fresh child reads as {state:?}, the killed child's reason"
        );
        next.kill()?;
        ensure_eq!((round, join_code(&next)?), (round, -9));
    }
    let event = Event::new()?;
    let orphan = waiter(&event)?;
    kill_fork_server()?;
    let mut refused = builder(method).entry(exit_with, 0);
    ensure_matches!(refused.start(), Err(Error::ForkServerDied));
    let other = Event::new()?;
    let fresh = waiter(&other)?;
    let state = orphan.state()?;
    ensure!(
        state == blocked,
        "the orphan reads as {state:?} after a new server, expected {blocked:?}"
    );
    other.set();
    ensure_eq!(join_code(&fresh)?, 0);
    let state = orphan.state()?;
    ensure!(
        state == blocked,
        "the orphan reads as {state:?} after a new child, expected {blocked:?}"
    );
    event.set();
    // Nobody can reap the orphan now: its exit is reported as 255.
    ensure_eq!(join_code(&orphan)?, 255);
    proclife::stop_fork_server()?;
    Ok(())
}

/// The verifier's puppet shape: connections and every primitive in one derived struct.
#[derive(serde::Serialize, serde::Deserialize)]
struct Puppet {
    commands: Connection,
    replies: Connection,
    lock: Lock,
    rlock: proclife::sync::RLock,
    semaphore: proclife::sync::Semaphore,
    event: Event,
    condition: proclife::sync::Condition,
    barrier: proclife::sync::Barrier,
}

fn puppet(mut p: Puppet) -> TargetResult {
    let rounds: u32 = p.commands.recv()?;
    let limit = Some(Duration::from_secs(20));
    for _ in 0..rounds {
        if !p.lock.acquire(limit)? || !p.rlock.acquire(limit)? || !p.rlock.acquire(limit)? {
            return Err("a lock timed out".into());
        }
        p.rlock.release()?;
        p.rlock.release()?;
        p.lock.release()?;
        p.semaphore.release()?;
    }
    p.event.set();
    if !p.condition.acquire(limit)? {
        return Err("the condition's lock timed out".into());
    }
    p.condition.notify_all()?;
    p.condition.release()?;
    p.barrier.wait_timeout(limit)?;
    p.replies.send(&rounds)?;
    Ok(())
}
proclife::entry!(puppet);

fn dup(fd: std::os::fd::BorrowedFd<'_>) -> Result<OwnedFd, Box<dyn std::error::Error>> {
    Ok(fd.try_clone_to_owned()?)
}

fn puppet_under_every_method() -> TestResult {
    use proclife::sync::{Barrier, Condition, RLock, Semaphore};
    for method in StartMethod::ALL {
        // A one-way pipe's first end receives: the child reads commands, the parent replies.
        let (commands_there, mut commands) = pipe(false)?;
        let (mut replies, replies_there) = pipe(false)?;
        let lock = Lock::new()?;
        let rlock = RLock::new()?;
        let semaphore = Semaphore::new(0)?;
        let event = Event::new()?;
        let condition = Condition::new()?;
        let barrier = Barrier::new(2, None)?;
        let args = Puppet {
            commands: commands_there,
            replies: replies_there,
            lock: Lock::from_fd(dup(lock.as_fd())?)?,
            rlock: RLock::from_fd(dup(rlock.as_fd())?)?,
            semaphore: Semaphore::from_fd(dup(semaphore.as_fd())?)?,
            event: Event::from_fd(dup(event.as_fd())?)?,
            condition: Condition::from_fds(
                dup(condition.lock_fd())?,
                condition.recursive(),
                dup(condition.as_fd())?,
            )?,
            barrier: Barrier::from_fd(dup(barrier.as_fd())?)?,
        };
        let mut p = builder(method).entry(puppet, args);
        p.start()?;
        commands.send(&3u32)?;
        let limit = Some(Duration::from_secs(20));
        ensure!(event.wait(limit)?, "{method}: event never set");
        ensure_eq!(semaphore.get_value(), 3);
        barrier.wait_timeout(limit)?;
        ensure!(replies.poll(limit)?, "{method}: no reply");
        ensure_eq!(replies.recv::<u32>()?, 3);
        ensure_eq!(join_code(&p)?, 0);
        ensure!(
            lock.acquire(Some(Duration::ZERO))?,
            "{method}: lock left held"
        );
        lock.release()?;
    }
    proclife::stop_fork_server()?;
    Ok(())
}

/// `run()` calls a function target in the caller on a copy of its arguments and leaves the
/// target in the handle, so `start()` afterwards runs it again in the child (CPython's `run()`
/// leaves `_target` and `_args`), under every method.
fn run_then_start_function_target() -> TestResult {
    for method in [
        StartMethod::Fork,
        StartMethod::Spawn,
        StartMethod::ForkServer,
    ] {
        let (mut reader, writer) = pipe(false)?;
        let mut p = builder(method).entry(send_pid, writer);
        p.run()?;
        p.run()?;
        let first: u32 = reader.recv()?;
        let second: u32 = reader.recv()?;
        assert_eq!(first, std::process::id(), "{method}");
        assert_eq!(second, std::process::id(), "{method}");
        p.start()?;
        let child: u32 = reader.recv()?;
        assert_ne!(child, std::process::id(), "{method}");
        assert_eq!(join_code(&p)?, 0, "{method}");
        assert!(matches!(p.run(), Err(Error::RunAfterStart)), "{method}");
        p.close()?;
        // The handle dropped its arguments at `start()`: the writer is gone everywhere.
        assert!(
            matches!(reader.recv::<u32>(), Err(Error::Disconnected)),
            "{method}"
        );
    }
    proclife::stop_fork_server()?;
    Ok(())
}

/// Sends its pid on the connection.
fn send_pid(mut conn: Connection) -> TargetResult {
    conn.send(&std::process::id())?;
    Ok(())
}
proclife::entry!(send_pid);

fn main() {
    common::run(vec![
        (
            "run_then_start_function_target",
            run_then_start_function_target,
        ),
        ("puppet_under_every_method", puppet_under_every_method),
        ("global_start_method", global_start_method),
        (
            "daemons_die_with_their_parent",
            daemons_die_with_their_parent,
        ),
        ("kill_during_bootstrap", kill_during_bootstrap),
        ("fork_server_death", fork_server_death),
        (
            "fork_server_reply_out_of_step",
            fork_server_reply_out_of_step,
        ),
        (
            "fork_server_cells_recycled_and_kept",
            fork_server_cells_recycled_and_kept,
        ),
        ("exit_codes", exit_codes),
        ("cpython_refusals", cpython_refusals),
        ("threaded_parent", threaded_parent),
        ("blocked_on_event_argument", blocked_on_event_argument),
        ("objects_work_both_ways", objects_work_both_ways),
        ("clean_process_image", clean_process_image),
        (
            "forged_bootstraps_are_refused",
            forged_bootstraps_are_refused,
        ),
    ]);
}

/// SIGKILLs this process's fork server through a pidfd, waits until it has died, and returns
/// its pid.
fn kill_fork_server() -> Result<proclife::Pid, Box<dyn std::error::Error>> {
    let server = proclife::fork_server_pid().ok_or("no fork server")?;
    let server_fd = pidfd_of(server.as_raw())?;
    // SAFETY: pidfd_send_signal with a null info pointer touches no memory of ours.
    let sent = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            server_fd.as_raw_fd(),
            libc::SIGKILL,
            0usize,
            0,
        )
    };
    ensure_eq!(sent, 0);
    ensure!(
        common::readable(server_fd.as_raw_fd(), 10_000),
        "server did not die"
    );
    Ok(server)
}
