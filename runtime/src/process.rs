//! `Process`: the handle to one child process, with CPython's whole life-cycle API.

use std::os::fd::BorrowedFd;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use nix::sys::signal::Signal;

use crate::children::child::Child;
use crate::children::registry;
use crate::children::status::BlockedOn;
use crate::children::wait::{self, Seen};
use crate::error::{Error, Result};
use crate::os;
use crate::os::time::Deadline;
use crate::pid::Pid;
use crate::start::entry::FnTarget;
use crate::start::launch::TargetSlot;
use crate::start::target::{Target, TargetResult};
use crate::start::{ChildSpec, StartMethod, Threads};

/// The life-cycle state of a handle, as [`Process::state`] reports it.
///
/// `Running`, `Blocked` and `Stopped` are all CPython's `started`: [`Process::is_alive`] is
/// true in each. A sampled state is a snapshot: a child seen blocked or stopped may run on a
/// moment later.
///
/// Non-exhaustive: a state the kernel tells apart may be named later (as `Stopped` was), so a
/// `match` outside this crate needs a wildcard arm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ProcessState {
    /// Constructed, never started (CPython's `initial`).
    New,
    /// Started, and the child runs: on a CPU, or runnable (CPython's `started`).
    Running,
    /// Started, and the child waits: in one of the runtime's blocking calls (the primitive
    /// says which), or asleep in the kernel ([`BlockedOn::Kernel`], with the system call and
    /// the fd it waits on).
    Blocked(BlockedOn),
    /// Started, and the child is stopped by a signal (`SIGSTOP`, `SIGTSTP`, `SIGTTIN`,
    /// `SIGTTOU`) or a tracer, until `SIGCONT` (state `T`/`t` of proc_pid_stat(5)).
    Stopped,
    /// The child exited with this exit code (CPython's `stopped exitcode=N`).
    Terminated(i32),
    /// Closed by [`Process::close`] (CPython's `closed`).
    Closed,
}

#[derive(Debug)]
enum Stage {
    New,
    Started(Arc<Child>),
    Closed { started: bool },
}

/// A handle to one child process; mirrors `multiprocessing.Process`.
///
/// A process is single-use: new until [`start`](Process::start), then running (perhaps
/// blocked), then terminated for good; [`close`](Process::close) releases its resources.
///
/// # Examples
///
/// ```no_run
/// use proclife::{Error, Process};
///
/// let mut p = Process::new(|| println!("hello from the child"));
/// p.start()?;
/// p.join()?;
/// assert_eq!(p.exitcode()?, Some(0));
/// assert!(matches!(p.start(), Err(Error::AlreadyStarted)));
/// p.close()?;
/// # Ok::<(), Error>(())
/// ```
///
/// # Caveats
///
/// Dropping a handle whose child still runs does not wait for it. A daemon child is
/// killed (SIGKILL) and reaped at once. A non-daemon child keeps running; the runtime keeps
/// its record and reaps it in the first runtime call after it exits, so it is a zombie at
/// most until that call. At normal exit of the parent (return from `main`, `exit`) the
/// runtime applies CPython's rule: daemon children are stopped in reverse start order
/// (SIGTERM and SIGCONT, then SIGKILL after half a second), then every non-daemon child is
/// joined, so the parent's exit waits for them. Daemon children also die when the parent
/// is SIGKILLed (`PR_SET_PDEATHSIG`); non-daemon children are then orphaned and go on.
///
/// # Exit
///
/// How a child ends follows CPython 3.13 (`popen_fork`, `forkserver`, `_bootstrap`) under
/// every start method:
///
/// - The exit code: 0 when the target returns, 1 when it returns an error (printed on the
///   child's stderr as `Process <name>:` and the error) or panics, `n & 0xFF` after
///   `std::process::exit(n)` or `libc::exit(n)`, `-N` when a signal `N` kills it.
/// - Exit handlers (`libc::atexit`, `on_exit`, C++ static destructors) registered in the
///   parent before the start, inherited through `fork()` (or from the fork server), never
///   run in the child. Those the child registers itself run exactly once, in the reverse
///   order of registration, whichever way the target ends, except on a signal, which runs
///   nothing.
/// - Then the exit policy runs for the child's own children (its daemon children are
///   terminated, the others joined, as at a normal exit of the main process), then
///   Rust's standard streams and every C stdio stream are flushed, then `_exit`.
/// - The parent flushes Rust's standard streams and every C stdio stream before it
///   starts a child, so a byte buffered before the start is written once, by the parent.
///   A byte the child buffers is written once, by the child (lost on a signal).
/// - Thread-local destructors of the thread that runs the target run at the child's exit,
///   as at the end of any Rust program.
/// - Threads the target started: by default the child exits when its target is done, as a
///   Rust `main` does, and they end with it; [`Builder::join_threads`] makes it wait for
///   them first, as a CPython child waits for its non-daemon threads (decision 0010).
#[derive(Debug)]
#[must_use = "a process does nothing until it is started"]
pub struct Process {
    name: String,
    daemon: bool,
    identity: Vec<u64>,
    /// The pid of the process that constructed the handle (CPython's `_parent_pid`).
    creator: Pid,
    /// The method chosen by the builder; `None`: the global method at `start`.
    method: Option<StartMethod>,
    /// Whether the child waits for its other threads ([`Builder::join_threads`]).
    join_threads: bool,
    target: Mutex<TargetSlot>,
    stage: Stage,
}

/// Builds a [`Process`] with options; mirrors the keyword arguments of
/// `multiprocessing.Process(...)`.
///
/// # Examples
///
/// ```
/// use proclife::Process;
///
/// let p = Process::builder().name("worker").daemon(true).target(|| ());
/// assert_eq!(p.name(), "worker");
/// assert!(p.daemon());
/// ```
#[derive(Debug, Default)]
#[must_use = "a builder does nothing until `target` or `build_target` makes a Process"]
pub struct Builder {
    name: Option<String>,
    daemon: Option<bool>,
    method: Option<StartMethod>,
    join_threads: bool,
}

impl Builder {
    /// A builder with the defaults: name `Process-<n>`, the creator's daemon flag, the
    /// global start method ([`get_start_method`](crate::get_start_method)) at `start`.
    pub fn new() -> Builder {
        Builder::default()
    }

    /// Sets the process name.
    pub fn name(mut self, name: impl Into<String>) -> Builder {
        self.name = Some(name.into());
        self
    }

    /// Sets the daemon flag.
    pub fn daemon(mut self, daemon: bool) -> Builder {
        self.daemon = Some(daemon);
        self
    }

    /// Chooses the start method for this process, whatever the global one is.
    pub fn start_method(mut self, method: StartMethod) -> Builder {
        self.method = Some(method);
        self
    }

    /// Makes the child wait, once its target has returned (or failed, or panicked), until
    /// every other thread of the child has ended, as a CPython child waits for its
    /// non-daemon threads (`threading._shutdown`). Off by default: like a Rust `main`, the
    /// child exits when its target is done and its other threads end with it. A target that
    /// calls `std::process::exit` does not wait either way. See [`Process`]'s "Exit"
    /// section and decision 0010.
    ///
    /// The wait sleeps in `poll(2)` on one thread pidfd at a time (`PIDFD_THREAD`, Linux
    /// 6.9); on an older kernel the child prints why it cannot wait on its stderr and exits
    /// without waiting.
    pub fn join_threads(mut self, join: bool) -> Builder {
        self.join_threads = join;
        self
    }

    /// Builds a process whose target is the closure `f`.
    pub fn target<F>(self, f: F) -> Process
    where
        F: FnOnce() + Send + 'static,
    {
        self.build(TargetSlot::Once(Box::new(move || {
            f();
            Ok(())
        })))
    }

    /// Builds a process whose target is a closure that may fail: an `Err` ends the child
    /// with exit code 1 after printing the error on its stderr.
    pub fn fallible_target<F, E>(self, f: F) -> Process
    where
        F: FnOnce() -> std::result::Result<(), E> + Send + 'static,
        E: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        self.build(TargetSlot::Once(Box::new(move || f().map_err(Into::into))))
    }

    /// Builds a process whose target is the [`Target`] implementor `target`.
    pub fn build_target<T: Target>(self, target: T) -> Process {
        self.build(TargetSlot::Reusable(Box::new(target)))
    }

    /// Builds a process whose target is the function `f` called with `args`; the only kind
    /// of target the re-executing start methods can run.
    ///
    /// `f` must be registered with [`entry!`](crate::entry) for
    /// [`StartMethod::Spawn`] and [`StartMethod::ForkServer`]; under [`StartMethod::Fork`]
    /// it is simply called in the forked child. `args` is serialised with serde (postcard);
    /// IPC and synchronisation objects inside it travel as file descriptors, so the same
    /// target works under every method. An unregistered function is
    /// [`Error::UnregisteredEntry`] at `start` under the re-executing methods.
    ///
    /// Like CPython, which deletes `_args` after `start`, the handle drops `args` once the
    /// child is started: a connection end passed to the child is then closed in the parent.
    pub fn entry<F, A>(self, f: F, args: A) -> Process
    where
        F: FnOnce(A) -> TargetResult + Copy + Send + 'static,
        A: serde::Serialize + serde::de::DeserializeOwned + Send + 'static,
    {
        self.build(TargetSlot::Entry(Box::new(FnTarget { f, args })))
    }

    /// Builds a process without a target: starting it runs nothing and exits with 0.
    pub fn no_target(self) -> Process {
        self.build(TargetSlot::Empty)
    }

    pub(crate) fn build_slot(self, target: TargetSlot) -> Process {
        self.build(target)
    }

    fn build(self, target: TargetSlot) -> Process {
        registry::reap_orphans();
        let birth = registry::birth();
        Process {
            name: self.name.unwrap_or(birth.name),
            daemon: self.daemon.unwrap_or(birth.daemon),
            identity: birth.identity,
            creator: current_pid(),
            method: self.method,
            join_threads: self.join_threads,
            target: Mutex::new(target),
            stage: Stage::New,
        }
    }
}

fn current_pid() -> Pid {
    os::process::getpid()
}

/// [`os::time::timeout_from_secs`], with NaN refused as `Process.join` refuses it.
fn timeout_from_secs(secs: f64) -> Result<Option<Duration>> {
    if crate::planted::active("join-timeout-truncated") && secs > 0.0 && secs < 1.0 {
        return Ok(Some(Duration::ZERO));
    }
    os::time::timeout_from_secs(secs).map_err(|()| Error::NanTimeout)
}

/// Checks a signal number for [`Process::send_signal`].
fn check_signal(signal: i32) -> Result<i32> {
    let job_control = signal == Signal::SIGSTOP as i32 || signal == Signal::SIGCONT as i32;
    let standard = (1..32).contains(&signal);
    let realtime = (os::process::sigrtmin()..=os::process::sigrtmax()).contains(&signal);
    if job_control || !(standard || realtime) {
        return Err(Error::InvalidSignal { signal });
    }
    Ok(signal)
}

impl Process {
    /// A new process whose target is the closure `f`; mirrors `Process(target=f)`.
    pub fn new<F>(f: F) -> Process
    where
        F: FnOnce() + Send + 'static,
    {
        Builder::new().target(f)
    }

    /// A new process whose target is a closure that may fail; see
    /// [`Builder::fallible_target`].
    pub fn new_fallible<F, E>(f: F) -> Process
    where
        F: FnOnce() -> std::result::Result<(), E> + Send + 'static,
        E: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        Builder::new().fallible_target(f)
    }

    /// A new process whose target is a [`Target`] implementor (the Rust form of a
    /// `Process` subclass that overrides `run()`).
    pub fn from_target<T: Target>(target: T) -> Process {
        Builder::new().build_target(target)
    }

    /// A new process whose target is the registered function `f` called with `args`; see
    /// [`Builder::entry`].
    pub fn entry<F, A>(f: F, args: A) -> Process
    where
        F: FnOnce(A) -> TargetResult + Copy + Send + 'static,
        A: serde::Serialize + serde::de::DeserializeOwned + Send + 'static,
    {
        Builder::new().entry(f, args)
    }

    /// A builder for a process with a name, a daemon flag or a start method.
    pub fn builder() -> Builder {
        Builder::new()
    }

    fn started(&self) -> Result<Option<&Arc<Child>>> {
        match &self.stage {
            Stage::Closed { .. } => Err(Error::Closed),
            Stage::New => Ok(None),
            Stage::Started(child) => Ok(Some(child)),
        }
    }

    /// Starts the child; mirrors `Process.start`.
    ///
    /// With the fork method the child is a copy of the caller that runs the target and
    /// exits with CPython's exit code: 0 after a normal return, 1 after a returned error or
    /// a panic (the message goes to the child's stderr), `n & 0xFF` after
    /// `std::process::exit(n)`, `-N` when killed by signal `N`.
    ///
    /// # Errors
    ///
    /// In CPython's order: [`Error::Closed`] (`ValueError: process object is closed`);
    /// [`Error::AlreadyStarted`] (`AssertionError: cannot start a process twice`, even after
    /// `join`); [`Error::NotCreator`] in a process that did not construct the handle
    /// (`AssertionError: can only start a process object created by current process`);
    /// [`Error::DaemonicParent`] inside a daemon (`AssertionError: daemonic processes are not
    /// allowed to have children`). Then, where proclife refuses what CPython accepts
    /// (decision 0008): [`Error::ThreadedFork`] when the fork method's caller has more than
    /// one thread; [`Error::NotPassable`] for a closure under spawn or forkserver (CPython's
    /// `AttributeError: Can't pickle local object`); [`Error::UnregisteredEntry`] for a
    /// function target not registered with [`entry!`](crate::entry) (CPython starts a child
    /// that exits with 1). And [`Error::Os`] when the system refuses (`fork`:
    /// `EAGAIN` at the process limit, or with the status slots of 262 144 forked children
    /// taken (decision 0023); `pidfd_open`: `EMFILE` when fds run out; `mmap`, `mprotect`,
    /// `madvise`: `ENOMEM`).
    /// After a system error nothing is left behind and the handle is still new, so it can
    /// be started again later.
    pub fn start(&mut self) -> Result<()> {
        self.start_with(Threads::Refuse)
    }

    /// Starts the child even if the caller has other threads.
    ///
    /// # Safety
    ///
    /// The fork start method copies only the calling thread. The caller must guarantee
    /// that no other thread holds, at the moment of the fork, a lock the child will take
    /// (the allocator's, stdout's, a `Mutex` the target uses, ...), or else that the target
    /// only makes async-signal-safe calls. A daemon child started from a thread other than
    /// the main thread is killed when that thread exits (`PR_SET_PDEATHSIG` follows the
    /// thread), and a foreign `waitpid(-1)` running in another thread may steal the
    /// child's exit status ([`Error::StatusLost`]).
    // The only `unsafe` outside `os/`: the opt-in itself, whose contract is the permit's.
    #[allow(unsafe_code)]
    pub unsafe fn start_in_threaded_parent(&mut self) -> Result<()> {
        // SAFETY: this function's contract is `ForkPermit::vouched`'s, passed on unchanged.
        let permit = unsafe { os::fork::ForkPermit::vouched() };
        self.start_with(Threads::Allow(permit))
    }

    fn start_with(&mut self, threads: Threads) -> Result<()> {
        registry::reap_orphans();
        match self.stage {
            Stage::Closed { .. } => return Err(Error::Closed),
            Stage::Started(ref child)
                if crate::planted::active("restart-after-exit") && child.cached().is_some() => {}
            Stage::Started(_) => return Err(Error::AlreadyStarted),
            Stage::New => {}
        }
        // The creator is the calling process: its pid is handed down as the child's parent.
        if self.creator != current_pid() {
            return Err(Error::NotCreator);
        }
        if registry::lock().daemon() {
            return Err(Error::DaemonicParent);
        }
        registry::sweep_before_start()?;
        let spec = ChildSpec {
            name: &self.name,
            identity: &self.identity,
            daemon: self.daemon,
            join_threads: self.join_threads,
            parent: self.creator,
        };
        let target = self
            .target
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner);
        let method = self.method.unwrap_or_else(crate::start::get_start_method);
        let child = method.launch(threads, &spec, target)?;
        // Like CPython's `del self._target`: the target now belongs to the child.
        *target = TargetSlot::Empty;
        // Checked at the top, and nothing between could change it: New -> Started only (but
        // for the bug planted on purpose, which restarts an exited child).
        debug_assert!(
            matches!(self.stage, Stage::New) || crate::planted::active("restart-after-exit"),
            "start from {:?}",
            self.stage
        );
        self.stage = Stage::Started(child);
        Ok(())
    }

    /// Runs the target in the calling process; mirrors `Process.run`.
    ///
    /// # Errors
    ///
    /// [`Error::RunAfterStart`] once the handle was started (also after `close`);
    /// [`Error::Target`] when the target returns an error. A panic of the target unwinds
    /// out of `run`, as a Python exception propagates out of `p.run()`.
    ///
    /// # Caveats
    ///
    /// A closure target is `FnOnce`: `run()` consumes it, and a later `start()` starts a
    /// child that does nothing and exits with 0 (like a Python process without a target).
    /// A [`Target`] implementor runs through `&mut self` and stays in the handle, so
    /// `start()` after `run()` runs it again, in the child. A function target
    /// ([`Builder::entry`]) runs on a copy of its arguments, made the way a re-executed child
    /// receives them (IPC and synchronisation objects through duplicated fds), so it too stays
    /// and runs again after `start()`, as CPython's `run()` leaves `_target` and `_args`.
    /// The handle stays new either way.
    pub fn run(&mut self) -> Result<()> {
        match self.stage {
            Stage::Started(_) | Stage::Closed { started: true } => {
                return Err(Error::RunAfterStart);
            }
            Stage::New | Stage::Closed { started: false } => {}
        }
        let target = self
            .target
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner);
        target.run_in_caller().map_err(|error| Error::Target {
            message: error.to_string(),
        })
    }

    /// Whether the child runs; mirrors `Process.is_alive`. Reaps the child if it exited.
    ///
    /// # Errors
    ///
    /// [`Error::Closed`]; [`Error::TestNotChild`] in a process other than the creator;
    /// [`Error::StatusLost`] when a foreign reaper took the child's status.
    pub fn is_alive(&self) -> Result<bool> {
        registry::reap_orphans();
        let child = self.started()?;
        if let Some(child) = child
            && child.pid() == current_pid()
        {
            return Ok(true);
        }
        if self.creator != current_pid() {
            return Err(Error::TestNotChild);
        }
        let Some(child) = child else {
            return Ok(false);
        };
        if crate::planted::active("is-alive-cached") {
            return Ok(child.cached().is_none());
        }
        match child.poll()? {
            None => Ok(true),
            Some(_) => {
                registry::forget(child);
                Ok(false)
            }
        }
    }

    fn join_until(&self, deadline: &Deadline) -> Result<Option<i32>> {
        registry::reap_orphans();
        let child = self.started()?;
        if self.creator != current_pid() {
            return Err(Error::JoinNotChild);
        }
        let Some(child) = child else {
            return Err(Error::JoinNotStarted);
        };
        // The creator is the calling process, and the process that started the child.
        let code = child.wait_as_reaper(deadline)?;
        if code.is_some() {
            registry::forget(child);
        }
        Ok(code)
    }

    /// Waits until the child exits; mirrors `Process.join()`.
    ///
    /// Sleeps in `poll(2)` on the child's pidfd, then reaps it with `waitid(P_PIDFD)`.
    /// Any number of threads may join one handle at once; all see the same exit code.
    ///
    /// # Errors
    ///
    /// [`Error::Closed`]; [`Error::JoinNotChild`] in a process other than the creator;
    /// [`Error::JoinNotStarted`]; [`Error::StatusLost`].
    #[doc(alias = "waitpid")]
    pub fn join(&self) -> Result<()> {
        self.join_until(&Deadline::after(None)).map(drop)
    }

    /// Waits at most `timeout` for the child to exit; mirrors `Process.join(timeout)`.
    ///
    /// Returns `Ok(())` whether or not the child exited: check [`Process::exitcode`].
    /// `Duration::ZERO` polls once; a timeout too large to add to the clock waits forever.
    ///
    /// # Errors
    ///
    /// As [`Process::join`].
    #[doc(alias = "waitpid")]
    pub fn join_timeout(&self, timeout: Duration) -> Result<()> {
        self.join_until(&Deadline::after(Some(timeout))).map(drop)
    }

    /// [`Process::join_timeout`] with a Python-style timeout in seconds.
    ///
    /// Negative values and `-0.0` poll once; `+inf` and values too large for a `Duration`
    /// wait forever.
    ///
    /// # Errors
    ///
    /// [`Error::NanTimeout`] for NaN (checked after the state checks, as CPython does);
    /// otherwise as [`Process::join`].
    pub fn join_timeout_secs(&self, secs: f64) -> Result<()> {
        let child = self.started()?;
        if self.creator != current_pid() {
            return Err(Error::JoinNotChild);
        }
        if child.is_none() {
            return Err(Error::JoinNotStarted);
        }
        match timeout_from_secs(secs)? {
            Some(timeout) => self.join_timeout(timeout),
            None => self.join(),
        }
    }

    /// The child's pid, `None` before `start`; mirrors `Process.pid`.
    ///
    /// # Errors
    ///
    /// [`Error::Closed`].
    pub fn pid(&self) -> Result<Option<Pid>> {
        Ok(self.started()?.map(|child| child.pid()))
    }

    /// The child's exit code, `None` while it runs or before `start`; mirrors
    /// `Process.exitcode`. Reaps the child if it exited.
    ///
    /// # Errors
    ///
    /// [`Error::Closed`]; [`Error::StatusLost`].
    pub fn exitcode(&self) -> Result<Option<i32>> {
        registry::reap_orphans();
        match self.started()? {
            None => Ok(None),
            Some(child) => child.poll(),
        }
    }

    /// `pidfd_send_signal(SIGTERM)`, then `SIGCONT`—Asks the child to stop; mirrors
    /// `Process.terminate`. Does not wait.
    ///
    /// The SIGCONT lets a stopped child act on the SIGTERM. After the child exited nothing
    /// is sent and the exit code stays what it was.
    ///
    /// # Errors
    ///
    /// [`Error::Closed`]; [`Error::TerminateNotStarted`].
    pub fn terminate(&self) -> Result<()> {
        registry::reap_orphans();
        let child = self.started()?.ok_or(Error::TerminateNotStarted)?;
        child.signal(Signal::SIGTERM as i32)?;
        child.signal(Signal::SIGCONT as i32)
    }

    /// `pidfd_send_signal(SIGKILL)`—Kills the child; mirrors `Process.kill`. Does not wait.
    ///
    /// # Errors
    ///
    /// [`Error::Closed`]; [`Error::KillNotStarted`].
    pub fn kill(&self) -> Result<()> {
        registry::reap_orphans();
        let child = self.started()?.ok_or(Error::KillNotStarted)?;
        if crate::planted::active("kill-sends-sigterm") {
            return child.signal(Signal::SIGTERM as i32);
        }
        child.signal(Signal::SIGKILL as i32)
    }

    /// `pidfd_send_signal(SIGINT)`—Interrupts the child; mirrors `Process.interrupt()`
    /// (Python 3.14). Does not wait. A Rust child dies by the signal (exit code -2) unless
    /// it handles SIGINT.
    ///
    /// # Errors
    ///
    /// As [`Process::send_signal`]: [`Error::Closed`]; [`Error::KillNotStarted`].
    pub fn interrupt(&self) -> Result<()> {
        self.send_signal(Signal::SIGINT as i32)
    }

    /// `pidfd_send_signal(signal)`—Sends any deliverable signal to the child.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidSignal`] for 0, negative numbers, numbers above `SIGRTMAX`, glibc's
    /// reserved real-time signals, and the job-control signals SIGSTOP and SIGCONT (stopping
    /// a child is job control, which `multiprocessing` does not offer; a child stopped from
    /// outside is reported as [`ProcessState::Stopped`], decision 0017); nothing is sent then.
    /// [`Error::Closed`]; [`Error::KillNotStarted`].
    pub fn send_signal(&self, signal: i32) -> Result<()> {
        let signal = check_signal(signal)?;
        registry::reap_orphans();
        let child = self.started()?.ok_or(Error::KillNotStarted)?;
        child.signal(signal)
    }

    /// Terminates the child, waits up to `grace`, kills it if it is still alive, and waits
    /// for it; returns its exit code.
    ///
    /// The escalation CPython lacks: a child that ignores SIGTERM still ends.
    ///
    /// # Errors
    ///
    /// As [`Process::terminate`] and [`Process::join`].
    pub fn stop(&self, grace: Duration) -> Result<i32> {
        self.terminate()?;
        if let Some(code) = self.join_until(&Deadline::after(Some(grace)))? {
            return Ok(code);
        }
        self.kill()?;
        match self.join_until(&Deadline::after(None))? {
            Some(code) => Ok(code),
            // A wait without deadline by the creator ends only with a code or an error.
            None => Err(Error::JoinNotChild),
        }
    }

    /// Releases the handle's resources (the pidfd); mirrors `Process.close`.
    ///
    /// Idempotent. Afterwards every operation but `name`, `daemon`, their setters and `run`
    /// fails with [`Error::Closed`].
    ///
    /// # Errors
    ///
    /// [`Error::StillRunning`] while the child runs; nothing changes then.
    pub fn close(&mut self) -> Result<()> {
        registry::reap_orphans();
        let started = match &self.stage {
            Stage::Closed { .. } => return Ok(()),
            Stage::New => false,
            Stage::Started(child) => {
                if child.poll()?.is_none() && !crate::planted::active("close-while-running") {
                    return Err(Error::StillRunning);
                }
                registry::forget(child);
                true
            }
        };
        // New or Started (with an exited child) -> Closed, never back.
        debug_assert!(!matches!(self.stage, Stage::Closed { .. }), "closed twice");
        self.stage = Stage::Closed { started };
        Ok(())
    }

    /// The child's pidfd, readable once the child has exited; mirrors `Process.sentinel`.
    ///
    /// # Errors
    ///
    /// [`Error::Closed`]; [`Error::SentinelNotStarted`].
    pub fn sentinel(&self) -> Result<BorrowedFd<'_>> {
        let child = self.started()?.ok_or(Error::SentinelNotStarted)?;
        Ok(child.pidfd())
    }

    /// The process name; mirrors `Process.name`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Renames the process (allowed in every state, as in CPython). A running child
    /// keeps the name it was started with.
    pub fn set_name(&mut self, name: impl Into<String>) {
        self.name = name.into();
    }

    /// The daemon flag; mirrors `Process.daemon`.
    pub fn daemon(&self) -> bool {
        self.daemon
    }

    /// Sets the daemon flag; mirrors `Process.daemon = x`.
    ///
    /// # Errors
    ///
    /// [`Error::DaemonAfterStart`] once started. After `close` it is allowed again, as in
    /// CPython.
    pub fn set_daemon(&mut self, daemon: bool) -> Result<()> {
        if let Stage::Started(_) = self.stage {
            return Err(Error::DaemonAfterStart);
        }
        self.daemon = daemon;
        Ok(())
    }

    /// The handle's life-cycle state. Polls without blocking, like `is_alive`.
    ///
    /// For a live child, combines what the child says in its status slot (the runtime's
    /// primitive it waits in) with what the kernel says in `/proc/<pid>/stat` (running,
    /// asleep, stopped), `/proc/<pid>/syscall` (the system call it sleeps in) and
    /// `/proc/<pid>/fd/<n>` (what the fd it waits on is): [`ProcessState::Stopped`] when the
    /// child is stopped; else `Blocked(on)` for a primitive; else
    /// `Blocked(BlockedOn::Kernel(..))` when it sleeps in the kernel; else `Running`. The
    /// state is that of the child's main thread, the one that runs the target.
    ///
    /// The result is a snapshot: the child may leave its wait or be continued a moment later.
    /// Reading `/proc` never fails the call: where `/proc/<pid>` cannot be read (mounted with
    /// `hidepid`, another pid namespace, the child exiting meanwhile) the state is what the
    /// status slot says (`Blocked` on a primitive, else `Running`); where only
    /// `/proc/<pid>/syscall` cannot be read (no ptrace access), a kernel wait has no call.
    /// Cost: a few small `/proc` reads (see the `state` benchmark).
    ///
    /// # Errors
    ///
    /// [`Error::TestNotChild`] in a process other than the creator (for a started handle);
    /// [`Error::StatusLost`].
    pub fn state(&self) -> Result<ProcessState> {
        registry::reap_orphans();
        let child = match &self.stage {
            Stage::Closed { .. } => return Ok(ProcessState::Closed),
            Stage::New => return Ok(ProcessState::New),
            Stage::Started(child) => child,
        };
        if self.creator != current_pid() {
            return Err(Error::TestNotChild);
        }
        Ok(match child.poll()? {
            Some(code) => ProcessState::Terminated(code),
            None => match wait::observe(child.pid(), child.blocked_on()) {
                Seen::Running => ProcessState::Running,
                Seen::Blocked(on) => ProcessState::Blocked(on),
                Seen::Stopped => ProcessState::Stopped,
            },
        })
    }

    /// The start method this handle uses: its builder's choice, else the current global
    /// method (which `start` fixes, as CPython's first use of the default context does).
    pub fn start_method(&self) -> StartMethod {
        self.method.unwrap_or_else(crate::start::peek_start_method)
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let Stage::Started(child) = &self.stage else {
            return;
        };
        if !child.is_reaper() {
            return;
        }
        match child.poll_as_reaper() {
            Ok(None) if self.daemon => {
                // Errors cannot be reported from `drop`; the registry still holds the
                // child and reaps it later if the kill or the wait did not finish.
                let _ = child.signal(Signal::SIGKILL as i32);
                let deadline = Deadline::after(Some(Duration::from_secs(1)));
                if let Ok(Some(_)) = child.wait_as_reaper(&deadline) {
                    registry::forget(child);
                } else {
                    registry::orphaned();
                }
            }
            // The table keeps the record and reaps the child later.
            Ok(None) => registry::orphaned(),
            Ok(Some(_)) | Err(_) => registry::forget(child),
        }
    }
}

impl crate::ipc::Waitable for Process {
    /// The sentinel; errors as [`Process::sentinel`] ([`Error::Closed`],
    /// [`Error::SentinelNotStarted`]).
    fn readiness(&self) -> Result<crate::ipc::Readiness<'_>> {
        self.sentinel().map(crate::ipc::Readiness::Fd)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_timeouts() {
        assert!(matches!(
            timeout_from_secs(f64::NAN),
            Err(Error::NanTimeout)
        ));
        assert_eq!(timeout_from_secs(-1.0).ok(), Some(Some(Duration::ZERO)));
        assert_eq!(timeout_from_secs(-0.0).ok(), Some(Some(Duration::ZERO)));
        assert_eq!(timeout_from_secs(0.0).ok(), Some(Some(Duration::ZERO)));
        assert_eq!(
            timeout_from_secs(0.25).ok(),
            Some(Some(Duration::from_millis(250)))
        );
        assert_eq!(timeout_from_secs(f64::INFINITY).ok(), Some(None));
        assert_eq!(timeout_from_secs(1e300).ok(), Some(None));
    }

    #[test]
    fn signal_numbers() {
        for bad in [0, -1, 65, 1000, i32::MIN, 32, 33, 19, 18] {
            assert!(
                matches!(check_signal(bad), Err(Error::InvalidSignal { signal }) if signal == bad),
                "{bad}"
            );
        }
        for good in [1, 2, 9, 15, 31, 34, 64] {
            assert_eq!(check_signal(good).ok(), Some(good));
        }
    }

    #[test]
    fn pids_are_positive() {
        assert_eq!(Pid::from_raw(0), None);
        assert_eq!(Pid::from_raw(-1), None);
        assert_eq!(Pid::from_raw(7).map(Pid::as_raw), Some(7));
    }

    #[test]
    fn new_handles_answer_without_forking() {
        let mut p = Process::new(|| ());
        assert_eq!(p.pid().ok(), Some(None));
        assert_eq!(p.exitcode().ok(), Some(None));
        assert!(matches!(p.join(), Err(Error::JoinNotStarted)));
        assert!(matches!(p.terminate(), Err(Error::TerminateNotStarted)));
        assert!(matches!(p.kill(), Err(Error::KillNotStarted)));
        assert!(matches!(p.sentinel(), Err(Error::SentinelNotStarted)));
        assert_eq!(p.state().ok(), Some(ProcessState::New));
        assert!(p.close().is_ok());
        assert!(matches!(p.start(), Err(Error::Closed)));
        assert_eq!(p.state().ok(), Some(ProcessState::Closed));
    }

    fn assert_send_sync<T: Send + Sync>() {}

    #[test]
    fn process_is_send_and_sync() {
        assert_send_sync::<Process>();
    }
}
