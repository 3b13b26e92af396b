//! The seed's reasons a process blocks, as `state()` reports them: children blocked reading
//! their stdin, reading a socket, in a sleep, on a `Lock` of proclife's, on a
//! `std::sync::Mutex` held by another of their threads, and one stopped by `SIGSTOP`. The
//! parent prints what `state()` says of each, then kills and reaps them all.

use std::io::{BufRead, Read};
use std::time::{Duration, Instant};

use proclife::sync::Lock;
use proclife::{BlockedOn, FdKind, Process, ProcessState};

/// How long a child's wait lasts at most, should the parent never end it.
const CHILD_BOUND: Duration = Duration::from_secs(60);

/// Polls `p.state()` until `want` accepts it (at most 20 s); returns it.
fn wait_for(
    p: &Process,
    want: impl Fn(&ProcessState) -> bool,
) -> Result<ProcessState, Box<dyn std::error::Error>> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let state = p.state()?;
        if want(&state) {
            return Ok(state);
        }
        if matches!(state, ProcessState::Terminated(_)) || Instant::now() > deadline {
            return Err(format!("{}: unexpected state {state:?}", p.name()).into());
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Whether the state is a kernel wait in a call of one of these names, on an fd of `kind`
/// if one is given.
fn kernel_wait(state: &ProcessState, calls: &[&str], kind: Option<FdKind>) -> bool {
    let ProcessState::Blocked(BlockedOn::Kernel(wait)) = state else {
        return false;
    };
    let named = wait
        .call
        .and_then(|call| call.name())
        .is_some_and(|name| calls.contains(&name));
    named && kind.is_none_or(|kind| wait.fd.is_some_and(|fd| fd.kind == kind))
}

/// Describes a state in a few words.
fn describe(state: &ProcessState) -> String {
    match state {
        ProcessState::Blocked(BlockedOn::Kernel(wait)) => format!("blocked in the kernel: {wait}"),
        ProcessState::Blocked(on) => format!("blocked on proclife's {on:?}"),
        other => format!("{other:?}"),
    }
}

/// Runs the example; returns an error if a child is not seen in the state it is put in.
pub(crate) fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut children: Vec<Process> = Vec::new();
    let result = show_all(&mut children);
    // Whatever happened, no child is left behind.
    for p in &children {
        if p.is_alive()? {
            p.kill()?;
        }
        p.join_timeout(Duration::from_secs(10))?;
        if p.is_alive()? {
            return Err(format!("{} still runs after SIGKILL", p.name()).into());
        }
    }
    result
}

/// Starts `p`, keeps it in `children` (so that it is killed and reaped whatever happens),
/// and waits until its state is one `want` accepts.
fn started(
    children: &mut Vec<Process>,
    mut p: Process,
    want: impl Fn(&ProcessState) -> bool,
) -> Result<ProcessState, Box<dyn std::error::Error>> {
    p.start()?;
    children.push(p);
    let p = children.last().ok_or("the child was just pushed")?;
    wait_for(p, want)
}

fn show_all(children: &mut Vec<Process>) -> Result<(), Box<dyn std::error::Error>> {
    // Stdin: a pipe whose write end the parent keeps, on the child's fd 0.
    let (stdin_read, stdin_write) = std::io::pipe()?;
    let p = Process::builder().name("reads-stdin").fallible_target(
        move || -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
            nix::unistd::dup2_stdin(&stdin_read)?;
            drop(stdin_read);
            let mut line = String::new();
            std::io::stdin().lock().read_line(&mut line)?;
            Ok(())
        },
    );
    let state = started(children, p, |s| {
        kernel_wait(s, &["read"], Some(FdKind::Pipe))
    })?;
    println!("reads-stdin:  {}", describe(&state));

    // A socket: one end of a Unix stream pair, the other kept by the parent.
    let (here, mut there) = std::os::unix::net::UnixStream::pair()?;
    let p = Process::builder()
        .name("reads-socket")
        .fallible_target(move || there.read(&mut [0u8; 1]).map(drop));
    // `UnixStream::read` is `recv(2)`, which is `recvfrom` to the kernel.
    let state = started(children, p, |s| {
        kernel_wait(s, &["read", "recvfrom"], Some(FdKind::Socket))
    })?;
    println!("reads-socket: {}", describe(&state));

    // A sleep.
    let p = Process::builder()
        .name("sleeps")
        .target(|| std::thread::sleep(CHILD_BOUND));
    let state = started(children, p, |s| {
        kernel_wait(s, &["clock_nanosleep", "nanosleep"], None)
    })?;
    println!("sleeps:       {}", describe(&state));

    // A Lock of proclife's, held by the parent.
    let lock = std::sync::Arc::new(Lock::new()?);
    lock.acquire(None)?;
    let theirs = std::sync::Arc::clone(&lock);
    let p = Process::builder()
        .name("locks")
        .fallible_target(move || theirs.acquire(Some(CHILD_BOUND)).map(drop));
    let state = started(children, p, |s| {
        *s == ProcessState::Blocked(BlockedOn::Lock)
    })?;
    println!("locks:        {}", describe(&state));

    // A std::sync::Mutex held by another thread of the child.
    let p = Process::builder().name("locks-std-mutex").target(|| {
        let mutex = std::sync::Arc::new(std::sync::Mutex::new(()));
        let (held, taken) = std::sync::mpsc::channel();
        let holder = std::sync::Arc::clone(&mutex);
        std::thread::spawn(move || {
            let _guard = holder.lock();
            let _ = held.send(());
            std::thread::sleep(CHILD_BOUND);
        });
        let _ = taken.recv();
        drop(mutex.lock());
    });
    let state = started(children, p, |s| kernel_wait(s, &["futex"], None))?;
    println!("locks-std-mutex: {}", describe(&state));

    // Stopped by SIGSTOP (the child itself sleeps).
    let p = Process::builder()
        .name("stopped")
        .target(|| std::thread::sleep(CHILD_BOUND));
    let state = started(children, p, |s| {
        kernel_wait(s, &["clock_nanosleep", "nanosleep"], None)
    })?;
    println!("before SIGSTOP: {}", describe(&state));
    let p = children.last().ok_or("the child was just started")?;
    let pid = p.pid()?.ok_or("a started child has a pid")?;
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid.as_raw()),
        nix::sys::signal::Signal::SIGSTOP,
    )?;
    let state = wait_for(p, |s| *s == ProcessState::Stopped)?;
    println!(
        "stopped:      {} (is_alive: {})",
        describe(&state),
        p.is_alive()?
    );

    lock.release()?;
    drop((here, stdin_write));
    Ok(())
}
