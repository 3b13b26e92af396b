//! The puppet: a child target that obeys the checker's commands.
//!
//! The checker sends [`Command`]s over a one-way pipe; the puppet obeys them in order: exit
//! with a code, panic, return, or block on one of the runtime's primitives until the checker
//! releases it, then say so on its acknowledgement pipe.
//! Every primitive is created by the checker before `start()`, so parent and child share it.
//! Called with `run()` in the checker itself, the puppet has no parent to obey and returns at
//! once, as DESIGN.md's puppet protocol says.

use std::sync::Arc;
use std::time::Duration;

use proclife::ipc::Connection;
use proclife::sync::{Barrier, Condition, Event, Lock, RLock, Semaphore};
use proclife::{Process, Target, TargetResult};
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
    }
}

/// The blocking reason with this wire code.
pub fn block_from_code(code: u8) -> Option<BlockedOn> {
    BlockedOn::ALL
        .into_iter()
        .find(|&on| block_code(on) == code)
}

/// The primitives one puppet blocks on, shared by the checker (which holds, sets, notifies
/// or releases them) and the puppet.
#[derive(Debug)]
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
}

/// The puppet target.
#[derive(Debug)]
pub struct Puppet {
    creator: u32,
    commands: Connection,
    acks: Connection,
    data: Connection,
    primitives: Arc<Primitives>,
}

impl Puppet {
    /// A puppet reading commands from `commands`, acknowledging ends of blocks on `acks`,
    /// and receiving on `data` when told to block on a receive.
    pub fn new(
        commands: Connection,
        acks: Connection,
        data: Connection,
        primitives: Arc<Primitives>,
    ) -> Puppet {
        Puppet {
            creator: std::process::id(),
            commands,
            acks,
            data,
            primitives,
        }
    }

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
                let primitives = Arc::clone(&self.primitives);
                // A daemon, so that it dies with the puppet if the puppet is killed while it
                // waits; the bound covers a checker that went away.
                let mut grandchild = Process::builder().daemon(true).target(move || {
                    let _ = primitives.gate.acquire(Some(Duration::from_secs(60)));
                });
                grandchild.start()?;
                grandchild.join()?;
                grandchild.close()?;
            }
            BlockedOn::Send => return Err("the puppet cannot block on a send".into()),
        }
        Ok(())
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

impl Target for Puppet {
    fn run(&mut self) -> TargetResult {
        if std::process::id() == self.creator {
            // `run()` in the checker: no parent to obey.
            return Ok(());
        }
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
