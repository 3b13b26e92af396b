//! The puppet: a child target that obeys the checker's commands.
//!
//! The checker sends [`Command`]s over a one-way pipe; the puppet obeys them in order: exit
//! with a code, panic, return, or block until the checker releases it (on one of the
//! runtime's primitives, or in the kernel outside them: a plain `read(2)` of a pipe, or a
//! sleep), then say so on its acknowledgement pipe.
//! Every primitive is created by the checker before `start()`, so parent and child share it.
//! The puppet is a registered function target ([`puppet`], `proclife::entry!`) whose argument
//! carries its pipe ends and its own handles to the primitives, so it runs under every start
//! method: forked, spawned, or forked by the fork server.
//! Called with `run()` in the checker itself, the puppet has no parent to obey and returns at
//! once, as the puppet protocol requires.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::time::Duration;

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use proclife::ipc::Connection;
use proclife::sync::{Barrier, Condition, Event, Lock, RLock, Semaphore};
use proclife::{Process, TargetResult};
use proclife_model::BlockedOn;
use serde::{Deserialize, Serialize};

/// A command for the puppet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    /// `std::process::exit(code)`.
    Exit(i32),
    /// Panic (exit code 1).
    Panic,
    /// Return from the target (exit code 0).
    Return,
    /// Block on the primitive with this [`block_code`].
    Block(u8),
}

/// The wire code of a blocking reason.
pub fn block_code(on: BlockedOn) -> u8 {
    match on {
        BlockedOn::Lock => 0,
        BlockedOn::RLock => 1,
        BlockedOn::Semaphore => 2,
        BlockedOn::Event => 3,
        BlockedOn::Condition => 4,
        BlockedOn::Barrier => 5,
        BlockedOn::Recv => 6,
        BlockedOn::Send => 7,
        BlockedOn::Join => 8,
        BlockedOn::Read => 9,
        BlockedOn::Sleep => 10,
    }
}

/// The blocking reason with this wire code.
pub fn block_from_code(code: u8) -> Option<BlockedOn> {
    BlockedOn::ALL
        .into_iter()
        .find(|&on| block_code(on) == code)
}

/// The primitives one puppet blocks on, shared by the checker (which holds, sets, notifies
/// or releases them) and the puppet, each through its own handle.
#[derive(Debug, Serialize, Deserialize)]
pub struct Primitives {
    /// Held by the checker while the puppet waits to acquire it.
    pub lock: Lock,
    /// Held by the checker while the puppet waits to acquire it.
    pub rlock: RLock,
    /// At zero; the checker releases one permit.
    pub semaphore: Semaphore,
    /// Cleared; the checker sets it.
    pub event: Event,
    /// The puppet waits on it; the checker notifies.
    pub condition: Condition,
    /// Two parties: the puppet and the checker.
    pub barrier: Barrier,
    /// At zero; the grandchild the puppet joins waits for one permit from the checker.
    pub gate: Semaphore,
}

/// What can go wrong making the puppet's handles: the runtime refusing, or `dup` failing.
pub type SetupError = Box<dyn std::error::Error + Send + Sync>;

fn dup(fd: BorrowedFd<'_>) -> std::io::Result<OwnedFd> {
    fd.try_clone_to_owned()
}

impl Primitives {
    /// Creates one of each, in their waiting state.
    ///
    /// # Errors
    ///
    /// Any error of the runtime creating them (fds or shared memory exhausted).
    pub fn new() -> proclife::Result<Primitives> {
        Ok(Primitives {
            lock: Lock::new()?,
            rlock: RLock::new()?,
            semaphore: Semaphore::new(0)?,
            event: Event::new()?,
            condition: Condition::new()?,
            barrier: Barrier::new(2, None)?,
            gate: Semaphore::new(0)?,
        })
    }

    /// Second handles to the same primitives (duplicated fds), for the puppet: a lock is
    /// released through the handle that acquired it, so each side needs its own.
    ///
    /// # Errors
    ///
    /// When the fds cannot be duplicated.
    pub fn duplicate(&self) -> Result<Primitives, SetupError> {
        Ok(Primitives {
            lock: Lock::from_fd(dup(self.lock.as_fd())?)?,
            rlock: RLock::from_fd(dup(self.rlock.as_fd())?)?,
            semaphore: Semaphore::from_fd(dup(self.semaphore.as_fd())?)?,
            event: Event::from_fd(dup(self.event.as_fd())?)?,
            condition: Condition::from_fds(
                dup(self.condition.lock_fd())?,
                self.condition.recursive(),
                dup(self.condition.as_fd())?,
            )?,
            barrier: Barrier::from_fd(dup(self.barrier.as_fd())?)?,
            gate: Semaphore::from_fd(dup(self.gate.as_fd())?)?,
        })
    }
}

/// The puppet's argument: its ends of the checker's pipes and its handles to the primitives.
#[derive(Debug, Serialize, Deserialize)]
pub struct Puppet {
    /// The checker's process id: `run()` there returns at once.
    pub creator: u32,
    /// Commands from the checker.
    pub commands: Connection,
    /// Acknowledgements to the checker.
    pub acks: Connection,
    /// What a puppet blocked on a receive waits for.
    pub data: Connection,
    /// What a puppet blocked in a plain `read` or a sleep waits for: read with `read(2)`
    /// itself, not through the runtime (whose status slot would name the wait).
    pub wake: Connection,
    /// The primitives it blocks on.
    pub primitives: Primitives,
}

/// How long each of the sleeps of a puppet blocked in a sleep lasts; between two it looks,
/// without waiting, whether the checker has woken it.
pub const SLEEP_SLICE: Duration = Duration::from_millis(5);

/// Reads once from `fd` with `read(2)`, retrying an interrupted call; an end of file is an
/// error (the checker went away).
fn read_once(fd: BorrowedFd<'_>) -> TargetResult {
    let mut buf = [0u8; 64];
    loop {
        match nix::unistd::read(fd, &mut buf) {
            Ok(0) => return Err("the checker closed the wake pipe".into()),
            Ok(_) => return Ok(()),
            Err(nix::errno::Errno::EINTR) => {}
            Err(errno) => return Err(format!("read of the wake pipe failed: {errno}").into()),
        }
    }
}

/// What the puppet sends on its acknowledgement pipe when it has received an exit command
/// (a block's end is acknowledged with the block's code).
pub const EXIT_ACK: u8 = 100;

/// Decides how slowly an exit the puppet was told to carry out happens: a random 0–3 ms, three
/// times in four with `SIGTERM` blocked meanwhile (a child busy in a critical section).
///
/// Real children are sometimes slow to exit and sometimes exit while a signal is on its way;
/// the model admits every such interleaving, and this makes the checker meet them: a timed
/// join that expires while the exit is on its way, a `terminate()` whose signal stays pending
/// until the child's own exit wins the race, one that kills the child first.
fn exit_delay() -> std::time::Duration {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let noise = u64::from(nanos) ^ u64::from(std::process::id()).rotate_left(17);
    let noise = noise.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    if noise >> 62 != 0 {
        let mut term = nix::sys::signal::SigSet::empty();
        term.add(nix::sys::signal::Signal::SIGTERM);
        // Blocking a signal cannot fail for a valid set; if it did, the exit is only faster.
        let _ = term.thread_block();
    }
    std::time::Duration::from_micros((noise >> 32) % 3000)
}

impl Puppet {
    fn block(&mut self, on: BlockedOn) -> TargetResult {
        let p = &self.primitives;
        match on {
            BlockedOn::Lock => {
                p.lock.acquire(None)?;
                p.lock.release()?;
            }
            BlockedOn::RLock => {
                p.rlock.acquire(None)?;
                p.rlock.release()?;
            }
            BlockedOn::Semaphore => {
                p.semaphore.acquire(None)?;
            }
            BlockedOn::Event => {
                p.event.wait(None)?;
                p.event.clear();
            }
            BlockedOn::Condition => {
                p.condition.acquire(None)?;
                let waited = p.condition.wait(None);
                p.condition.release()?;
                waited?;
            }
            BlockedOn::Barrier => {
                p.barrier.wait()?;
            }
            BlockedOn::Recv => {
                let _: u8 = self.data.recv()?;
            }
            BlockedOn::Join => {
                let gate = Semaphore::from_fd(dup(p.gate.as_fd())?)?;
                // A daemon, so that it dies with the puppet if the puppet is killed while it
                // waits; forked (the puppet is single-threaded under every method); the bound
                // covers a checker that went away.
                let mut grandchild = Process::builder()
                    .daemon(true)
                    .start_method(proclife::StartMethod::Fork)
                    .target(move || {
                        let _ = gate.acquire(Some(Duration::from_secs(60)));
                    });
                grandchild.start()?;
                grandchild.join()?;
                grandchild.close()?;
            }
            BlockedOn::Read => {
                // The runtime's pipe ends block, as CPython's do: a plain `read` sleeps.
                read_once(self.wake.fd()?)?;
            }
            BlockedOn::Sleep => loop {
                std::thread::sleep(SLEEP_SLICE);
                let fd = self.wake.fd()?;
                let mut fds = [PollFd::new(fd, PollFlags::POLLIN)];
                match poll(&mut fds, PollTimeout::ZERO) {
                    Ok(0) | Err(nix::errno::Errno::EINTR) => {}
                    Ok(_) => {
                        read_once(fd)?;
                        break;
                    }
                    Err(errno) => {
                        return Err(format!("poll of the wake pipe failed: {errno}").into());
                    }
                }
            },
            BlockedOn::Send => return Err("the puppet cannot block on a send".into()),
        }
        Ok(())
    }

    fn obey(&mut self) -> TargetResult {
        loop {
            // The checker closing its end (or dying) ends the puppet normally.
            let Ok(command) = self.commands.recv::<Command>() else {
                return Ok(());
            };
            if !matches!(command, Command::Block(_)) {
                let delay = exit_delay();
                // The exit is now on its way: from here on a signal races with it.
                self.acks.send(&EXIT_ACK)?;
                std::thread::sleep(delay);
            }
            match command {
                Command::Exit(code) => std::process::exit(code),
                Command::Panic => {
                    // Told to panic: the message would only clutter the checker's terminal.
                    std::panic::set_hook(Box::new(|_| {}));
                    panic!("the checker told the puppet to panic");
                }
                Command::Return => return Ok(()),
                Command::Block(code) => {
                    let on = block_from_code(code).ok_or("unknown block code")?;
                    self.block(on)?;
                    self.acks.send(&code)?;
                }
            }
        }
    }
}

/// The puppet target: obeys the checker's commands until told to exit, panic or return.
///
/// # Errors
///
/// A failed wait or pipe: the child then exits with 1, which the checker reports.
pub fn puppet(mut puppet: Puppet) -> TargetResult {
    if std::process::id() == puppet.creator {
        // `run()` in the checker: no parent to obey.
        return Ok(());
    }
    puppet.obey()
}

proclife::entry!(puppet);
