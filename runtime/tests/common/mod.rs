//! Shared helpers for the runtime's integration tests: a single-threaded runner that checks
//! for leaked fds, zombies, children and threads after every test, and bounded waits.
#![allow(dead_code, unsafe_code, unreachable_pub)]

use std::collections::BTreeMap;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

use proclife::Process;

/// What a test returns; `?` works on proclife errors and on strings.
pub type TestResult = Result<(), Box<dyn std::error::Error>>;

/// Fails the test with a message unless the condition holds.
#[macro_export]
macro_rules! ensure {
    ($cond:expr, $($fmt:tt)+) => {
        if !$cond {
            return Err(format!($($fmt)+).into());
        }
    };
}

/// Fails the test unless both sides are equal.
#[macro_export]
macro_rules! ensure_eq {
    ($left:expr, $right:expr $(,)?) => {{
        let (left, right) = (&$left, &$right);
        if left != right {
            return Err(format!(
                "{}:{}: {} = {:?}, expected {:?}",
                file!(),
                line!(),
                stringify!($left),
                left,
                right
            )
            .into());
        }
    }};
}

/// Fails the test unless the expression matches the pattern.
#[macro_export]
macro_rules! ensure_matches {
    ($value:expr, $pattern:pat $(,)?) => {{
        let value = $value;
        if !matches!(value, $pattern) {
            return Err(format!(
                "{}:{}: {} = {:?}, expected {}",
                file!(),
                line!(),
                stringify!($value),
                value,
                stringify!($pattern)
            )
            .into());
        }
    }};
}

/// The open fds of this process and what they point at.
pub fn fd_snapshot() -> BTreeMap<i32, String> {
    let mut fds = BTreeMap::new();
    let me = format!("/proc/{}/fd", std::process::id());
    if let Ok(dir) = std::fs::read_dir("/proc/self/fd") {
        for entry in dir.flatten() {
            let Ok(fd) = entry.file_name().to_string_lossy().parse::<i32>() else {
                continue;
            };
            let target = std::fs::read_link(entry.path())
                .map(|t| t.to_string_lossy().into_owned())
                .unwrap_or_default();
            // The directory being read shows up as an fd of its own.
            if target == me || target.is_empty() {
                continue;
            }
            fds.insert(fd, target);
        }
    }
    fds
}

/// Pids of this process's children that are zombies.
pub fn zombies() -> Vec<i32> {
    let me = std::process::id() as i32;
    let mut found = Vec::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return found;
    };
    for entry in dir.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // The command name may contain spaces and parentheses; the fields follow the last ')'.
        let Some(rest) = stat.rfind(')').map(|i| &stat[i + 1..]) else {
            continue;
        };
        let mut fields = rest.split_whitespace();
        let state = fields.next();
        let ppid = fields.next().and_then(|p| p.parse::<i32>().ok());
        if state == Some("Z") && ppid == Some(me) {
            found.push(pid);
        }
    }
    found
}

/// Pids of this process's live (or zombie) children.
pub fn children() -> Vec<i32> {
    let mut pids = Vec::new();
    if let Ok(tasks) = std::fs::read_dir("/proc/self/task") {
        for task in tasks.flatten() {
            if let Ok(list) = std::fs::read_to_string(task.path().join("children")) {
                pids.extend(
                    list.split_whitespace()
                        .filter_map(|p| p.parse::<i32>().ok()),
                );
            }
        }
    }
    pids
}

/// The number of threads of this process.
pub fn thread_count() -> usize {
    std::fs::read_dir("/proc/self/task").map_or(0, |d| d.count())
}

/// Waits (at most 5 s) until joined threads have left the kernel's thread list.
pub fn wait_single_threaded() -> TestResult {
    wait_until(Duration::from_secs(5), || thread_count() == 1)
        .map_err(|_| format!("{} threads remain", thread_count()).into())
}

/// Polls `cond` every millisecond until it holds or `limit` passes.
pub fn wait_until(limit: Duration, mut cond: impl FnMut() -> bool) -> Result<(), String> {
    let deadline = Instant::now() + limit;
    loop {
        if cond() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(format!("condition not met within {limit:?}"));
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Joins with a 10 s bound and returns the exit code.
pub fn join_code(p: &Process) -> Result<i32, Box<dyn std::error::Error>> {
    p.join_timeout(Duration::from_secs(10))?;
    match p.exitcode()? {
        Some(code) => Ok(code),
        None => Err(format!("{} still runs after 10 s", p.name()).into()),
    }
}

/// Waits (at most 10 s) until the child has exited, without reaping it: its pidfd is
/// readable then.
pub fn settle(p: &Process) -> TestResult {
    let fd = p.sentinel()?;
    ensure!(
        readable(fd.as_raw_fd(), 10_000),
        "child did not exit within 10 s"
    );
    Ok(())
}

/// `poll(fd, POLLIN, timeout_ms)`: whether `fd` became readable.
pub fn readable(fd: RawFd, timeout_ms: i32) -> bool {
    let mut pfd = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd, counted as one.
    let n = unsafe { libc::poll(&mut pfd, 1, timeout_ms) };
    n == 1
}

/// A pipe whose read end children block on until the parent opens the gate (drops the
/// write end), so any number of children can be released at once.
#[derive(Debug)]
pub struct Gate {
    read: OwnedFd,
    write: Option<OwnedFd>,
}

impl Gate {
    /// A closed gate.
    pub fn new() -> Gate {
        let (read, write) =
            nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).expect("pipe2 for a test gate");
        Gate {
            read,
            write: Some(write),
        }
    }

    /// The child side: close every inherited fd but stdio and the read end, then wait for
    /// EOF (the gate opens, or the parent dies).
    pub fn waiter(&self) -> impl FnOnce() + Send + 'static {
        let read = self.read.as_raw_fd();
        move || wait_gate(read)
    }

    /// The raw read end, for targets that wait on the gate after other work.
    pub fn read_fd(&self) -> RawFd {
        self.read.as_raw_fd()
    }

    /// Opens the gate: every waiter returns.
    pub fn open(&mut self) {
        self.write = None;
    }
}

/// In a child: closes all inherited fds except stdio and `read`, then reads `read` to EOF.
pub fn wait_gate(read: RawFd) {
    close_all_but(read);
    let mut byte = [0u8; 1];
    loop {
        // SAFETY: `read` is open in this process (kept by `close_all_but`); the buffer is
        // one valid byte.
        let n = unsafe { libc::read(read, byte.as_mut_ptr().cast(), 1) };
        if n == 0 || (n < 0 && std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR))
        {
            return;
        }
    }
}

/// In a child: closes every fd from 3 up except `keep`, so that pipes and pidfds inherited
/// from the test process do not keep other tests' gates open.
pub fn close_all_but(keep: RawFd) {
    // SAFETY: `close_range` takes integers only; the fds closed belong to this freshly
    // forked child, whose copies of the parent's handles are never used again.
    unsafe {
        if keep > 3 {
            libc::syscall(libc::SYS_close_range, 3u32, (keep - 1) as u32, 0u32);
        }
        libc::syscall(libc::SYS_close_range, (keep + 1) as u32, u32::MAX, 0u32);
    }
}

/// A target that sleeps until it is signalled (at most 60 s, so a leak ends by itself).
pub fn sleeper() -> impl FnOnce() + Send + 'static {
    || {
        close_all_but(2);
        std::thread::sleep(Duration::from_secs(60));
    }
}

/// One named test.
pub type Test = (&'static str, fn() -> TestResult);

/// Runs `tests` on the main thread, one at a time, and after each one checks that it left
/// no fd, zombie, child or thread behind.
pub fn run(tests: Vec<Test>) -> ! {
    let mut args = libtest_mimic::Arguments::from_args();
    args.test_threads = Some(1);
    let trials = tests
        .into_iter()
        .map(|(name, test)| {
            libtest_mimic::Trial::test(name, move || {
                checked(test).map_err(|e| libtest_mimic::Failed::from(e.to_string()))
            })
        })
        .collect();
    libtest_mimic::run(&args, trials).exit()
}

fn checked(test: fn() -> TestResult) -> TestResult {
    let before = fd_snapshot();
    test()?;
    wait_single_threaded()?;
    let after = fd_snapshot();
    ensure!(
        before == after,
        "fd leak: before {before:?}, after {after:?}"
    );
    let zombies = zombies();
    ensure!(zombies.is_empty(), "zombies left: {zombies:?}");
    let children = children();
    ensure!(children.is_empty(), "children left: {children:?}");
    Ok(())
}
