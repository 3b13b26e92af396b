//! The system under test: real processes driven by the runtime, one puppet per process.
//!
//! [`Runtime::apply`] performs one operation on a real [`Process`] and returns what it gave,
//! in the model's vocabulary (through [`crate::map`]).
//! The puppet protocol's answers (`child_*`, `release`) come from the harness's own
//! bookkeeping of what it has told each child, exactly as DESIGN.md defines them; all other
//! observations come from the runtime.
//! A [`Mutant`] plants a known bug on top of the runtime's answers, to show that the checker
//! catches it.

use std::collections::{BTreeSet, VecDeque};
use std::os::fd::BorrowedFd;
use std::time::{Duration, Instant};

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use proclife::ipc::{Connection, pipe};
use proclife::{Process, ProcessState, StartMethod};
use proclife_model::{BlockedOn, Op, Outcome, Value};

use crate::map;
use crate::puppet::{Command, EXIT_ACK, Primitives, Puppet, block_code};
use crate::trace::Step;

/// How long the harness waits for something that must happen promptly (a child blocking,
/// acknowledging a release, dying after a signal) before it calls it a failure.
pub const PROMPT: Duration = Duration::from_secs(10);

/// How long `join()` is given when the model says it can only hang.
pub const HANG_PROBE: Duration = Duration::from_millis(20);

/// The longest `join_timeout` the harness passes on; longer ones are cut to this.
pub const MAX_TIMEOUT_SECS: f64 = 30.0;

/// A bug planted on top of the runtime, for the mutation check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Mutant {
    /// `start()` of a handle whose child has exited starts a new child.
    RestartAfterExit,
    /// `is_alive()` stays true after the child exited.
    AliveAfterExit,
    /// The exit code loses its sign (killed by SIGTERM reads as 15).
    ExitcodeSignLost,
    /// `close()` of a running process kills and reaps it instead of refusing.
    CloseWhileRunning,
    /// `terminate()` after the child exited overwrites the exit code with -15.
    TerminateOverwritesExitcode,
}

impl Mutant {
    /// Every mutant.
    pub const ALL: [Mutant; 5] = [
        Mutant::RestartAfterExit,
        Mutant::AliveAfterExit,
        Mutant::ExitcodeSignLost,
        Mutant::CloseWhileRunning,
        Mutant::TerminateOverwritesExitcode,
    ];

    /// The mutant's command-line name.
    pub fn name(self) -> &'static str {
        match self {
            Mutant::RestartAfterExit => "restart-after-exit",
            Mutant::AliveAfterExit => "alive-after-exit",
            Mutant::ExitcodeSignLost => "exitcode-sign-lost",
            Mutant::CloseWhileRunning => "close-while-running",
            Mutant::TerminateOverwritesExitcode => "terminate-overwrites-exitcode",
        }
    }

    /// The mutant with this name.
    pub fn from_name(name: &str) -> Option<Mutant> {
        Mutant::ALL.into_iter().find(|m| m.name() == name)
    }
}

/// Something went wrong in the harness itself, or the runtime did something the model has no
/// outcome for (an OS error, a child that never blocked): reported, never compared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fault(pub String);

impl From<map::Unmapped> for Fault {
    fn from(unmapped: map::Unmapped) -> Fault {
        Fault(unmapped.0)
    }
}

impl From<proclife::Error> for Fault {
    fn from(error: proclife::Error) -> Fault {
        Fault(format!("harness call failed: {error}"))
    }
}

/// Waits up to `timeout` for `fd` to become readable; `true` if it did.
fn readable(fd: BorrowedFd<'_>, timeout: Duration) -> Result<bool, Fault> {
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let millis = u16::try_from(left.as_millis()).unwrap_or(u16::MAX);
        let mut fds = [PollFd::new(fd, PollFlags::POLLIN)];
        match poll(&mut fds, PollTimeout::from(millis)) {
            Ok(0) if left.is_zero() => return Ok(false),
            Ok(0) => continue,
            Ok(_) => return Ok(true),
            Err(nix::errno::Errno::EINTR) => continue,
            Err(errno) => return Err(Fault(format!("poll failed: {errno}"))),
        }
    }
}

/// One process of a sequence, with its puppet's pipes and primitives and the harness's
/// record of what it told the child.
#[derive(Debug)]
struct Proc {
    process: Process,
    primitives: Primitives,
    commands: Connection,
    acks: Connection,
    data: Connection,
    started: bool,
    closed: bool,
    /// An exit has been asked for (sent, queued, or a signal): `child_*` answer false.
    exiting: bool,
    /// An exit is really on its way (sent to a running child, or a signal): `settle` waits.
    exit_in_flight: bool,
    /// A signal was sent while the child was alive.
    signalled: bool,
    blocked: Option<BlockedOn>,
    /// The lock the harness holds while the puppet waits for it.
    held: Option<BlockedOn>,
    /// Commands told to a blocked child, forwarded after `release`.
    queue: VecDeque<Command>,
    pid: Option<i32>,
    /// Killed and joined by the harness at the end of the sequence.
    reaped: bool,
    /// For [`Mutant::TerminateOverwritesExitcode`]: a terminate after the exit happened.
    overwritten: bool,
}

impl Proc {
    fn new(method: StartMethod) -> Result<Proc, Fault> {
        let primitives = Primitives::new()?;
        let (command_reader, commands) = pipe(false)?;
        let (acks, ack_writer) = pipe(false)?;
        let (data_reader, data) = pipe(false)?;
        let puppet = Puppet {
            creator: std::process::id(),
            commands: command_reader,
            acks: ack_writer,
            data: data_reader,
            primitives: primitives
                .duplicate()
                .map_err(|e| Fault(format!("duplicating the primitives: {e}")))?,
        };
        Ok(Proc {
            process: Process::builder()
                .start_method(method)
                .entry(crate::puppet::puppet, puppet),
            primitives,
            commands,
            acks,
            data,
            started: false,
            closed: false,
            exiting: false,
            exit_in_flight: false,
            signalled: false,
            blocked: None,
            held: None,
            queue: VecDeque::new(),
            pid: None,
            reaped: false,
            overwritten: false,
        })
    }

    /// Whether the child has exited (read from the sentinel, without reaping it).
    fn has_exited(&self) -> Result<bool, Fault> {
        self.wait_exit(Duration::ZERO)
    }

    /// Waits until the child has exited, without reaping it.
    fn wait_exit(&self, timeout: Duration) -> Result<bool, Fault> {
        match self.process.sentinel() {
            Ok(fd) => readable(fd, timeout),
            Err(_) => Ok(false),
        }
    }

    /// Makes `on` block the puppet: the harness takes the lock it will wait for, or clears
    /// the event.
    fn prepare(&mut self, on: BlockedOn) -> Result<(), Fault> {
        let p = &self.primitives;
        match on {
            BlockedOn::Lock => {
                if !p.lock.acquire(Some(PROMPT))? {
                    return Err(Fault("the harness could not take the puppet's lock".into()));
                }
                self.held = Some(on);
            }
            BlockedOn::RLock => {
                if !p.rlock.acquire(Some(PROMPT))? {
                    return Err(Fault(
                        "the harness could not take the puppet's rlock".into(),
                    ));
                }
                self.held = Some(on);
            }
            BlockedOn::Event => p.event.clear(),
            _ => {}
        }
        Ok(())
    }

    /// Ends the puppet's wait on `on`.
    fn unblock(&mut self, on: BlockedOn) -> Result<(), Fault> {
        let p = &self.primitives;
        let done = match on {
            BlockedOn::Lock => {
                self.held = None;
                p.lock.release()
            }
            BlockedOn::RLock => {
                self.held = None;
                p.rlock.release()
            }
            BlockedOn::Semaphore => p.semaphore.release(),
            BlockedOn::Event => {
                p.event.set();
                Ok(())
            }
            BlockedOn::Condition => p
                .condition
                .acquire(Some(PROMPT))
                .and_then(|_| p.condition.notify(1))
                .and_then(|()| p.condition.release()),
            BlockedOn::Barrier => p.barrier.wait_timeout(Some(PROMPT)).map(|_| ()),
            BlockedOn::Recv => self.data.send(&0u8),
            BlockedOn::Join => p.gate.release(),
            BlockedOn::Send => return Err(Fault("the puppet cannot block on a send".into())),
        };
        match done {
            Ok(()) => Ok(()),
            // A child dying from a signal may break the barrier or close the pipe under us.
            Err(_) if self.signalled => Ok(()),
            Err(e) => Err(Fault(format!("releasing the puppet from {on} failed: {e}"))),
        }
    }

    /// Waits until the runtime reports the puppet blocked on `on` (or, with a signal on its
    /// way, dead).
    fn wait_blocked(&self, on: BlockedOn) -> Result<(), Fault> {
        let deadline = Instant::now() + PROMPT;
        let mut pause = Duration::from_micros(20);
        loop {
            match self.process.state()? {
                ProcessState::Blocked(real) if map::blocked_on(real) == Some(on) => return Ok(()),
                ProcessState::Terminated(_) if self.signalled => return Ok(()),
                ProcessState::Terminated(code) => {
                    return Err(Fault(format!(
                        "the puppet died with exit code {code} instead of blocking on {on}"
                    )));
                }
                _ if Instant::now() >= deadline => {
                    return Err(Fault(format!(
                        "the puppet did not report Blocked({on}) within {PROMPT:?}"
                    )));
                }
                _ => {
                    std::thread::sleep(pause);
                    pause = (pause * 2).min(Duration::from_millis(2));
                }
            }
        }
    }

    /// Sends `command` to the running puppet and, for a block, waits until it waits.
    fn send(&mut self, command: Command) -> Result<(), Fault> {
        if let Command::Block(code) = command {
            let on = crate::puppet::block_from_code(code)
                .ok_or_else(|| Fault("bad block code".into()))?;
            self.prepare(on)?;
            self.send_raw(command)?;
            self.wait_blocked(on)?;
            self.blocked = Some(on);
        } else {
            self.send_raw(command)?;
            self.exit_in_flight = true;
            self.wait_ack(EXIT_ACK, "its exit command")?;
        }
        Ok(())
    }

    /// Waits for the puppet to send `code` on its acknowledgement pipe; a child killed by a
    /// signal may die first.
    fn wait_ack(&mut self, code: u8, what: &str) -> Result<(), Fault> {
        let deadline = Instant::now() + PROMPT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if readable(self.acks.fd()?, Duration::from_millis(1).min(left))? {
                match self.acks.recv::<u8>() {
                    Ok(got) if got == code => return Ok(()),
                    Ok(got) => {
                        return Err(Fault(format!(
                            "the puppet acknowledged {got} instead of {what}"
                        )));
                    }
                    // End of file: the puppet died, which only a signal may cause.
                    Err(proclife::Error::Disconnected) if self.signalled => return Ok(()),
                    Err(e) => {
                        return Err(Fault(format!(
                            "reading the puppet's acknowledgement of {what}: {e}"
                        )));
                    }
                }
            }
            if self.signalled && self.has_exited()? {
                return Ok(());
            }
            if left.is_zero() {
                return Err(Fault(format!("the puppet did not acknowledge {what}")));
            }
        }
    }

    fn send_raw(&mut self, command: Command) -> Result<(), Fault> {
        match self.commands.send(&command) {
            Ok(()) => Ok(()),
            Err(_) if self.signalled => Ok(()),
            Err(e) => Err(Fault(format!(
                "sending {command:?} to the puppet failed: {e}"
            ))),
        }
    }

    /// A `child_*` command: delivered iff the child is alive and not already exiting.
    fn command(&mut self, command: Command) -> Result<Outcome, Fault> {
        if !self.started || self.closed || self.exiting {
            return Ok(Outcome::bool(false));
        }
        if !matches!(command, Command::Block(_)) {
            self.exiting = true;
        }
        if self.blocked.is_some() {
            self.queue.push_back(command);
        } else {
            self.send(command)?;
        }
        Ok(Outcome::bool(true))
    }

    /// `release`: true iff the child was blocked; it then goes on with its queued commands.
    fn release(&mut self) -> Result<Outcome, Fault> {
        let Some(on) = self.blocked.take() else {
            return Ok(Outcome::bool(false));
        };
        if self.closed || (self.signalled && self.has_exited()?) {
            // A signal already killed it (`close` succeeds only on a dead child): there is no
            // blocked child any more.
            if let Some(held) = self.held.take() {
                self.release_held(held);
            }
            return Ok(Outcome::bool(false));
        }
        self.unblock(on)?;
        // The puppet acknowledges the end of its wait; a child killed by a signal may not.
        self.wait_ack(block_code(on), &format!("the end of its wait on {on}"))?;
        if let Some(next) = self.queue.pop_front() {
            if !matches!(next, Command::Block(_)) {
                // Nothing after an exit is ever obeyed.
                self.queue.clear();
            }
            self.send(next)?;
        }
        Ok(Outcome::bool(true))
    }

    fn signal(&mut self, result: proclife::Result<()>) -> Result<Outcome, Fault> {
        let ok = result.is_ok();
        let outcome = map::result(result, |()| Value::None)?;
        // Whether or not the signal lands before the next call, the child is exiting or dead:
        // puppet commands are refused from now on.
        if ok && self.started && !self.closed {
            self.exiting = true;
            self.exit_in_flight = true;
            self.signalled = true;
        }
        Ok(outcome)
    }

    /// Gives back the lock the harness took for a block that will never happen.
    fn release_held(&self, held: BlockedOn) {
        // The puppet is dead, so the harness is the holder and the release cannot be refused;
        // an error would only mean the lock is already free.
        let _ = match held {
            BlockedOn::RLock => self.primitives.rlock.release(),
            _ => self.primitives.lock.release(),
        };
    }

    fn kill_and_reap(&mut self) -> Result<(), Fault> {
        if self.started && !self.closed && !self.reaped {
            self.reaped = true;
            let _ = self.process.kill();
            self.signalled = true;
            if !self.wait_exit(PROMPT)? {
                return Err(Fault("a killed puppet did not die".into()));
            }
            self.process.join()?;
        }
        Ok(())
    }
}

/// The real processes of one sequence.
#[derive(Debug)]
pub struct Runtime {
    procs: Vec<Proc>,
    mutant: Option<Mutant>,
    method: StartMethod,
    spawned: usize,
}

impl Runtime {
    /// `procs` new processes, each with its puppet, to be started with `method`.
    ///
    /// # Errors
    ///
    /// When the runtime cannot create the pipes or primitives.
    pub fn new(
        procs: usize,
        mutant: Option<Mutant>,
        method: StartMethod,
    ) -> Result<Runtime, Fault> {
        let procs = (0..procs)
            .map(|_| Proc::new(method))
            .collect::<Result<_, _>>()?;
        Ok(Runtime {
            procs,
            mutant,
            method,
            spawned: 0,
        })
    }

    /// How many children were started.
    pub fn spawned(&self) -> usize {
        self.spawned
    }

    /// Performs `step` and returns what it gave. `admitted` is what the model allows; it
    /// only chooses how long a `join` that may hang is given.
    ///
    /// # Errors
    ///
    /// A [`Fault`] when the harness fails or the runtime answers outside the model's
    /// vocabulary.
    pub fn apply(&mut self, step: &Step, admitted: &BTreeSet<Outcome>) -> Result<Outcome, Fault> {
        let mutant = self.mutant;
        let proc = self
            .procs
            .get_mut(step.proc)
            .ok_or_else(|| Fault(format!("no process {}", step.proc)))?;
        let outcome = match &step.op {
            Op::Start => {
                let result = proc.process.start();
                if result.is_ok() {
                    proc.started = true;
                    self.spawned += 1;
                    proc.pid = proc.process.pid()?.map(proclife::Pid::as_raw);
                } else if mutant == Some(Mutant::RestartAfterExit)
                    && proc.started
                    && !proc.closed
                    && proc.process.exitcode()?.is_some()
                {
                    let mut fresh = Proc::new(self.method)?;
                    fresh.process.start()?;
                    self.spawned += 1;
                    fresh.started = true;
                    fresh.pid = fresh.process.pid()?.map(proclife::Pid::as_raw);
                    let old = std::mem::replace(proc, fresh);
                    drop(old);
                    return Ok(Outcome::NONE);
                }
                map::result(result, |()| Value::None)?
            }
            Op::Run => map::result(proc.process.run(), |()| Value::None)?,
            Op::IsAlive => {
                let outcome = map::result(proc.process.is_alive(), Value::Bool)?;
                if mutant == Some(Mutant::AliveAfterExit)
                    && outcome == Outcome::bool(false)
                    && proc.started
                {
                    Outcome::bool(true)
                } else {
                    outcome
                }
            }
            Op::Join => {
                let only_hangs = admitted.iter().all(|o| *o == Outcome::Hangs);
                let bound = if only_hangs { HANG_PROBE } else { PROMPT };
                match proc.process.sentinel() {
                    Ok(fd) if !readable(fd, bound)? => Outcome::Hangs,
                    _ => map::result(proc.process.join(), |()| Value::None)?,
                }
            }
            Op::JoinTimeout(_) => {
                let secs = step.secs.unwrap_or(0.0).min(MAX_TIMEOUT_SECS);
                map::result(proc.process.join_timeout_secs(secs), |()| Value::None)?
            }
            Op::Exitcode => {
                let code = proc.process.exitcode();
                let code = match (mutant, code) {
                    (Some(Mutant::ExitcodeSignLost), Ok(Some(c))) => Ok(Some(c.abs())),
                    (Some(Mutant::TerminateOverwritesExitcode), Ok(Some(_)))
                        if proc.overwritten =>
                    {
                        Ok(Some(-15))
                    }
                    (_, other) => other,
                };
                map::result(code, |c| match c {
                    Some(c) => Value::Int(i64::from(c)),
                    None => Value::None,
                })?
            }
            Op::PidIsSet => map::result(proc.process.pid(), |pid| Value::Bool(pid.is_some()))?,
            Op::SentinelReady => match proc.process.sentinel() {
                Ok(fd) => Outcome::bool(readable(fd, Duration::ZERO)?),
                Err(e) => map::error(&e)?,
            },
            Op::Terminate => {
                if mutant == Some(Mutant::TerminateOverwritesExitcode)
                    && proc.started
                    && !proc.closed
                    && proc.has_exited()?
                {
                    proc.overwritten = true;
                }
                let result = proc.process.terminate();
                proc.signal(result)?
            }
            Op::Kill => {
                let result = proc.process.kill();
                proc.signal(result)?
            }
            Op::Close => {
                let mut result = proc.process.close();
                if mutant == Some(Mutant::CloseWhileRunning)
                    && matches!(result, Err(proclife::Error::StillRunning))
                {
                    proc.kill_and_reap()?;
                    result = proc.process.close();
                }
                if result.is_ok() {
                    proc.closed = true;
                }
                map::result(result, |()| Value::None)?
            }
            Op::Daemon => Outcome::bool(proc.process.daemon()),
            Op::SetDaemon(value) => map::result(proc.process.set_daemon(*value), |()| Value::None)?,
            Op::Name | Op::SetName(_) => {
                return Err(Fault("name operations are not in the replay schema".into()));
            }
            Op::ChildExit(code) => {
                // `exit` takes a C int; the kernel keeps the low byte either way.
                let code = *code as i32;
                proc.command(Command::Exit(code))?
            }
            Op::ChildPanic => proc.command(Command::Panic)?,
            Op::ChildReturn => proc.command(Command::Return)?,
            Op::ChildBlock(on) => {
                if *on == BlockedOn::Join && proc.process.daemon() {
                    return Err(Fault(
                        "a daemonic puppet cannot block on a join: daemonic processes may not have children"
                            .into(),
                    ));
                }
                if *on == BlockedOn::Send {
                    return Err(Fault("the puppet cannot block on a send".into()));
                }
                proc.command(Command::Block(block_code(*on)))?
            }
            Op::Release => proc.release()?,
            Op::Settle => {
                if proc.started && !proc.closed && proc.exit_in_flight && !proc.wait_exit(PROMPT)? {
                    Outcome::Hangs
                } else {
                    Outcome::NONE
                }
            }
        };
        Ok(outcome)
    }

    /// The runtime's view of process `index`: its `state()` and its pid, for the invariants.
    ///
    /// # Errors
    ///
    /// A [`Fault`] when `state()` fails, or when the pid changed after `start()` (a restart).
    pub fn observe_state(&self, index: usize) -> Result<ProcessState, Fault> {
        let proc = self
            .procs
            .get(index)
            .ok_or_else(|| Fault(format!("no process {index}")))?;
        let state = proc.process.state()?;
        if proc.started && !proc.closed {
            let pid = proc.process.pid()?.map(proclife::Pid::as_raw);
            if pid != proc.pid {
                return Err(Fault(format!(
                    "the pid changed from {:?} to {pid:?}: the process was started again",
                    proc.pid
                )));
            }
        }
        Ok(state)
    }

    /// Whether process `index`'s child has exited, read from its sentinel without reaping it
    /// (`None` while there is no sentinel: never started, or closed).
    ///
    /// # Errors
    ///
    /// A [`Fault`] when `poll` fails.
    pub fn peek_exited(&self, index: usize) -> Result<Option<bool>, Fault> {
        let proc = self
            .procs
            .get(index)
            .ok_or_else(|| Fault(format!("no process {index}")))?;
        match proc.process.sentinel() {
            Ok(fd) => readable(fd, Duration::ZERO).map(Some),
            Err(_) => Ok(None),
        }
    }

    /// Kills and reaps every child that may still run, and drops every handle.
    ///
    /// # Errors
    ///
    /// A [`Fault`] when a child does not die.
    pub fn teardown(mut self) -> Result<(), Fault> {
        let mut first = Ok(());
        for proc in &mut self.procs {
            if let Err(fault) = proc.kill_and_reap() {
                first = first.and(Err(fault));
            }
            if let Some(held) = proc.held.take() {
                proc.release_held(held);
            }
        }
        let method = self.method;
        drop(self);
        if method == StartMethod::ForkServer {
            // Every child is reaped: the server exits, so the sequence leaves nothing behind.
            if let Err(error) = proclife::stop_fork_server() {
                first = first.and(Err(Fault(format!("stopping the fork server: {error}"))));
            }
        }
        first
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        for proc in &mut self.procs {
            // Best effort on an unwinding path; `teardown` reports failures.
            let _ = proc.kill_and_reap();
        }
    }
}
