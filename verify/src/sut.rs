//! The system under test: real processes driven by the runtime, one puppet per process.
//!
//! [`Runtime::apply`] performs one operation on a real [`Process`] and returns what it gave,
//! in the model's vocabulary (through [`crate::map`]).
//! The puppet protocol's answers (`child_*`, `release`) come from the harness's own
//! bookkeeping of what it has told each child, exactly as the puppet protocol (`crate::puppet`) defines them; all other
//! observations come from the runtime.
//! Bugs planted to show that the checker catches them live in the runtime itself
//! (`proclife::planted`), never here: this module only reports what the runtime did.

use std::collections::{BTreeSet, VecDeque};
use std::os::fd::BorrowedFd;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::{Signal, kill};
use nix::sys::wait::{Id, WaitPidFlag, WaitStatus, waitid};
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
    /// The write end of the pipe a puppet in a plain `read` or a sleep waits on.
    wake: Connection,
    started: bool,
    /// Stopped by the harness's `SIGSTOP` and not continued since (by `SIGCONT` or by
    /// `terminate()`, which sends one): puppet commands and `release` answer false.
    stopped: bool,
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
    /// The start method, which decides how "exited, not reaped" is observed.
    method: StartMethod,
    /// Whether a runtime call has collected the exit status since the child exited (for
    /// the fork server's children, whose status the server reaps).
    collected: bool,
}

impl Proc {
    fn new(method: StartMethod) -> Result<Proc, Fault> {
        let primitives = Primitives::new()?;
        let (command_reader, commands) = pipe(false)?;
        let (acks, ack_writer) = pipe(false)?;
        let (data_reader, data) = pipe(false)?;
        let (wake_reader, wake) = pipe(false)?;
        let puppet = Puppet {
            creator: std::process::id(),
            commands: command_reader,
            acks: ack_writer,
            data: data_reader,
            wake: wake_reader,
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
            wake,
            started: false,
            stopped: false,
            closed: false,
            exiting: false,
            exit_in_flight: false,
            signalled: false,
            blocked: None,
            held: None,
            queue: VecDeque::new(),
            pid: None,
            reaped: false,
            method,
            collected: false,
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
            BlockedOn::Read | BlockedOn::Sleep => self.wake.send_bytes(&[1]),
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
        self.wait_state(&format!("block on {on}"), self.signalled, |state| {
            map::blocked_as(on, state)
        })
    }

    /// Polls the runtime's `state()` until `reached` holds, for up to [`PROMPT`]; a child that
    /// died meanwhile is accepted only when `may_die` (a signal was on its way).
    fn wait_state(
        &self,
        what: &str,
        may_die: bool,
        reached: impl Fn(ProcessState) -> bool,
    ) -> Result<(), Fault> {
        let deadline = Instant::now() + PROMPT;
        let mut pause = Duration::from_micros(20);
        loop {
            // A death is judged before `reached`, which may hold for it too (a state that is
            // not `Stopped`, say).
            match self.process.state()? {
                ProcessState::Terminated(_) if may_die => return Ok(()),
                ProcessState::Terminated(code) => {
                    return Err(Fault(format!(
                        "the puppet died with exit code {code} while the harness waited for it to {what}"
                    )));
                }
                state if reached(state) => return Ok(()),
                state if Instant::now() >= deadline => {
                    return Err(Fault(format!(
                        "the puppet did not {what} within {PROMPT:?} (last seen {state:?})"
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
        if !self.started || self.closed || self.exiting || self.stopped {
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
        if self.stopped {
            // A stopped child is released by nothing but `SIGCONT`.
            return Ok(Outcome::bool(false));
        }
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

    /// Sends a job-control signal to the puppet, which must be alive: the harness signals
    /// only a child with no exit on its way, so its pid cannot have been reused.
    fn job_control(&self, signal: Signal) -> Result<(), Fault> {
        if self.has_exited()? {
            return Err(Fault(format!(
                "the puppet died on its own before {}",
                signal.as_str()
            )));
        }
        let pid = self
            .pid
            .ok_or_else(|| Fault("a started puppet without a pid".into()))?;
        kill(nix::unistd::Pid::from_raw(pid), signal)
            .map_err(|errno| Fault(format!("kill({pid}, {}) failed: {errno}", signal.as_str())))
    }

    /// `sigstop`: true iff the child is alive with no exit on its way; it is then stopped (the
    /// harness waits until the runtime reports it `Stopped`).
    fn sigstop(&mut self) -> Result<Outcome, Fault> {
        if !self.started || self.closed || self.exiting {
            return Ok(Outcome::bool(false));
        }
        self.job_control(Signal::SIGSTOP)?;
        // The kernel stops the child when it next runs.
        self.wait_state("stop after SIGSTOP", false, |state| {
            state == ProcessState::Stopped
        })?;
        self.stopped = true;
        Ok(Outcome::bool(true))
    }

    /// `sigcont`: true iff the child is alive with no exit on its way; a stopped child goes
    /// on where it was (the harness waits until the runtime no longer reports it `Stopped`).
    fn sigcont(&mut self) -> Result<Outcome, Fault> {
        if !self.started || self.closed || self.exiting {
            return Ok(Outcome::bool(false));
        }
        self.job_control(Signal::SIGCONT)?;
        // The kernel wakes the child at once; `/proc` shows the stop until it is scheduled.
        self.wait_state("go on after SIGCONT", false, |state| {
            state != ProcessState::Stopped
        })?;
        self.stopped = false;
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

    fn start(&mut self) -> Result<Outcome, Fault> {
        let result = self.process.start();
        if result.is_ok() {
            self.started = true;
            self.collected = false;
            self.pid = self.process.pid()?.map(proclife::Pid::as_raw);
        }
        Ok(map::result(result, |()| Value::None)?)
    }

    /// `join()`, bounded: a join the model says can only hang is probed for [`HANG_PROBE`]
    /// and reported as `hangs`.
    fn join(&mut self, admitted: &BTreeSet<Outcome>) -> Result<Outcome, Fault> {
        let only_hangs = admitted.iter().all(|o| *o == Outcome::Hangs);
        let bound = if only_hangs { HANG_PROBE } else { PROMPT };
        match self.process.sentinel() {
            Ok(fd) if !readable(fd, bound)? => Ok(Outcome::Hangs),
            _ => Ok(map::result(self.process.join(), |()| Value::None)?),
        }
    }

    fn close(&mut self) -> Result<Outcome, Fault> {
        let result = self.process.close();
        if result.is_ok() {
            self.closed = true;
        }
        Ok(map::result(result, |()| Value::None)?)
    }

    fn block(&mut self, on: BlockedOn) -> Result<Outcome, Fault> {
        if on == BlockedOn::Join && self.process.daemon() {
            return Err(Fault(
                "a daemonic puppet cannot block on a join: daemonic processes may not have children"
                    .into(),
            ));
        }
        if on == BlockedOn::Send {
            return Err(Fault("the puppet cannot block on a send".into()));
        }
        self.command(Command::Block(block_code(on)))
    }

    /// `settle`: waits until an exit on its way has happened, without reaping.
    fn settle(&mut self) -> Result<Outcome, Fault> {
        if self.started && !self.closed && self.exit_in_flight && !self.wait_exit(PROMPT)? {
            Ok(Outcome::Hangs)
        } else {
            Ok(Outcome::NONE)
        }
    }

    fn kill_and_reap(&mut self) -> Result<(), Fault> {
        if self.started && !self.closed && !self.reaped {
            self.reaped = true;
            let _ = self.process.kill();
            self.signalled = true;
            if self.stopped && !self.has_exited()? {
                // A child the harness stopped is continued too, so that even a kill that went
                // wrong (a planted bug sending SIGTERM) cannot leave it stopped for ever; a
                // child whose sentinel is not ready has not been reaped, so its pid is still its.
                let _ = self.job_control(Signal::SIGCONT);
                self.stopped = false;
            }
            if !self.wait_exit(PROMPT)? {
                return Err(Fault("a killed puppet did not die".into()));
            }
            self.process.join()?;
        }
        Ok(())
    }
}

/// What one operation gave on the runtime.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observed {
    /// Its result, in the model's vocabulary.
    pub outcome: Outcome,
    /// For a `join_timeout`, how long the runtime call took.
    pub took: Option<Duration>,
}

/// Whether `op` makes the runtime collect the exit status of an exited child.
fn collects(op: &Op) -> bool {
    matches!(
        op,
        Op::IsAlive | Op::Join | Op::JoinTimeout(_) | Op::Exitcode | Op::Close
    )
}

/// The real processes of one sequence.
#[derive(Debug)]
pub struct Runtime {
    procs: Vec<Proc>,
    method: StartMethod,
    spawned: usize,
}

impl Runtime {
    /// `procs` new processes, each with its puppet, to be started with `method`.
    ///
    /// # Errors
    ///
    /// When the runtime cannot create the pipes or primitives.
    pub fn new(procs: usize, method: StartMethod) -> Result<Runtime, Fault> {
        let procs = (0..procs)
            .map(|_| Proc::new(method))
            .collect::<Result<_, _>>()?;
        Ok(Runtime {
            procs,
            method,
            spawned: 0,
        })
    }

    /// How many children were started.
    pub fn spawned(&self) -> usize {
        self.spawned
    }

    /// Performs `step` and returns what it gave, and how long the runtime call took for a
    /// timed wait. `admitted` is what the model allows; it only chooses how long a `join`
    /// that may hang is given.
    ///
    /// # Errors
    ///
    /// A [`Fault`] when the harness fails or the runtime answers outside the model's
    /// vocabulary.
    pub fn apply(&mut self, step: &Step, admitted: &BTreeSet<Outcome>) -> Result<Observed, Fault> {
        let proc = self
            .procs
            .get_mut(step.proc)
            .ok_or_else(|| Fault(format!("no process {}", step.proc)))?;
        let exited_before = proc.started && !proc.closed && proc.has_exited()?;
        let mut took = None;
        let outcome = match &step.op {
            Op::Start => {
                let outcome = proc.start()?;
                if outcome == Outcome::NONE {
                    self.spawned += 1;
                }
                outcome
            }
            Op::Run => map::result(proc.process.run(), |()| Value::None)?,
            Op::IsAlive => map::result(proc.process.is_alive(), Value::Bool)?,
            Op::Join => proc.join(admitted)?,
            Op::JoinTimeout(_) => {
                let secs = step.secs.unwrap_or(0.0).min(MAX_TIMEOUT_SECS);
                let began = Instant::now();
                let result = proc.process.join_timeout_secs(secs);
                took = Some(began.elapsed());
                map::result(result, |()| Value::None)?
            }
            Op::Exitcode => map::result(proc.process.exitcode(), |code| {
                code.map_or(Value::None, |c| Value::Int(i64::from(c)))
            })?,
            Op::PidIsSet => map::result(proc.process.pid(), |pid| Value::Bool(pid.is_some()))?,
            Op::SentinelReady => match proc.process.sentinel() {
                Ok(fd) => Outcome::bool(readable(fd, Duration::ZERO)?),
                Err(e) => map::error(&e)?,
            },
            Op::Terminate => {
                let result = proc.process.terminate();
                if result.is_ok() {
                    // `terminate()` sends `SIGCONT` after `SIGTERM` (decision 0015).
                    proc.stopped = false;
                }
                proc.signal(result)?
            }
            Op::Kill => {
                let result = proc.process.kill();
                proc.signal(result)?
            }
            Op::Close => proc.close()?,
            Op::Daemon => Outcome::bool(proc.process.daemon()),
            Op::SetDaemon(value) => map::result(proc.process.set_daemon(*value), |()| Value::None)?,
            Op::Name | Op::SetName(_) => {
                return Err(Fault("name operations are not in the replay schema".into()));
            }
            // `exit` takes a C int; the kernel keeps the low byte either way.
            Op::ChildExit(code) => proc.command(Command::Exit(*code as i32))?,
            Op::ChildPanic => proc.command(Command::Panic)?,
            Op::ChildReturn => proc.command(Command::Return)?,
            Op::ChildBlock(on) => proc.block(*on)?,
            Op::Release => proc.release()?,
            Op::SigStop => proc.sigstop()?,
            Op::SigCont => proc.sigcont()?,
            Op::Settle => proc.settle()?,
        };
        if exited_before && collects(&step.op) {
            proc.collected = true;
        }
        Ok(Observed { outcome, took })
    }

    /// Whether process `index`'s child has exited and the runtime has not yet collected its
    /// exit status: read without changing anything (`waitid(.., WNOWAIT)` for a child of
    /// this process; for a child of the fork server, which reaps it, whether any runtime call
    /// that collects the status ran since it exited).
    ///
    /// # Errors
    ///
    /// A [`Fault`] when `poll` or `waitid` fails unexpectedly.
    pub fn exited_unreaped(&self, index: usize) -> Result<bool, Fault> {
        let proc = self
            .procs
            .get(index)
            .ok_or_else(|| Fault(format!("no process {index}")))?;
        if !proc.started || proc.closed || !proc.has_exited()? {
            return Ok(false);
        }
        if proc.method == StartMethod::ForkServer {
            return Ok(!proc.collected);
        }
        let fd = proc.process.sentinel()?;
        let flags = WaitPidFlag::WEXITED | WaitPidFlag::WNOHANG | WaitPidFlag::WNOWAIT;
        loop {
            return match waitid(Id::PIDFd(fd), flags) {
                Ok(status) => Ok(status != WaitStatus::StillAlive),
                Err(Errno::EINTR) => continue,
                Err(Errno::ECHILD) => Ok(false),
                Err(errno) => Err(Fault(format!("waitid(WNOWAIT) failed: {errno}"))),
            };
        }
    }

    /// The runtime's view of process `index`: its `state()` and its pid, for the invariants.
    ///
    /// # Errors
    ///
    /// A [`Fault`] when `state()` fails, or when the pid changed after `start()` (a restart).
    pub fn observe_state(&mut self, index: usize) -> Result<ProcessState, Fault> {
        let proc = self
            .procs
            .get_mut(index)
            .ok_or_else(|| Fault(format!("no process {index}")))?;
        let exited_before = proc.started && !proc.closed && proc.has_exited()?;
        let state = proc.process.state()?;
        if exited_before {
            proc.collected = true;
        }
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
