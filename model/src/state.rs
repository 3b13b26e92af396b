//! The state of one process handle: where it is in its life-cycle and what is still pending.

use std::fmt;

/// What a blocked child is waiting for.
///
/// Mirrors the ways a `multiprocessing` child can wait: a synchronisation primitive, a receive
/// on a pipe or queue, a send into a full queue, or the join of another process; and two
/// waits in the kernel outside every primitive, a plain `read(2)` of a pipe and a sleep.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum BlockedOn {
    /// Waiting in `Lock.acquire`.
    Lock,
    /// Waiting in `RLock.acquire`.
    RLock,
    /// Waiting in `Semaphore.acquire` or `BoundedSemaphore.acquire`.
    Semaphore,
    /// Waiting in `Event.wait`.
    Event,
    /// Waiting in `Condition.wait`.
    Condition,
    /// Waiting in `Barrier.wait`.
    Barrier,
    /// Waiting for data in `Connection.recv` or `Queue.get`.
    Recv,
    /// Waiting for room in `Queue.put` or for the peer in `Connection.send`.
    Send,
    /// Waiting in `Process.join` of another process.
    Join,
    /// Waiting in a plain `read(2)` of a pipe, outside every primitive: the kernel's wait,
    /// with nothing in the status slot.
    Read,
    /// Asleep (`clock_nanosleep`) until woken, outside every primitive: the kernel's wait.
    Sleep,
}

impl BlockedOn {
    /// Every reason, in a fixed order.
    pub const ALL: [BlockedOn; 11] = [
        BlockedOn::Lock,
        BlockedOn::RLock,
        BlockedOn::Semaphore,
        BlockedOn::Event,
        BlockedOn::Condition,
        BlockedOn::Barrier,
        BlockedOn::Recv,
        BlockedOn::Send,
        BlockedOn::Join,
        BlockedOn::Read,
        BlockedOn::Sleep,
    ];

    /// The reasons the transition graph is derived with: every reason the replay schema can
    /// name (`child_block` has no `send`, since a puppet that blocks in a send needs a full
    /// queue the parent would have to fill).
    pub const GRAPH: [BlockedOn; 10] = [
        BlockedOn::Lock,
        BlockedOn::RLock,
        BlockedOn::Semaphore,
        BlockedOn::Event,
        BlockedOn::Condition,
        BlockedOn::Barrier,
        BlockedOn::Recv,
        BlockedOn::Join,
        BlockedOn::Read,
        BlockedOn::Sleep,
    ];

    /// Whether this is a wait in the kernel outside the runtime's primitives (a plain `read`,
    /// a sleep), which the runtime reports as a kernel wait rather than by name.
    pub fn is_kernel_wait(self) -> bool {
        matches!(self, BlockedOn::Read | BlockedOn::Sleep)
    }

    /// The name used by the replay schema (`{"op":"child_block","on":"lock"}`).
    pub fn name(self) -> &'static str {
        match self {
            BlockedOn::Lock => "lock",
            BlockedOn::RLock => "rlock",
            BlockedOn::Semaphore => "semaphore",
            BlockedOn::Event => "event",
            BlockedOn::Condition => "condition",
            BlockedOn::Barrier => "barrier",
            BlockedOn::Recv => "recv",
            BlockedOn::Send => "send",
            BlockedOn::Join => "join",
            BlockedOn::Read => "read",
            BlockedOn::Sleep => "sleep",
        }
    }

    /// The reason with this schema name, if there is one.
    ///
    /// ```
    /// use proclife_model::BlockedOn;
    /// assert_eq!(BlockedOn::from_name("rlock"), Some(BlockedOn::RLock));
    /// assert_eq!(BlockedOn::from_name("spin"), None);
    /// ```
    pub fn from_name(name: &str) -> Option<BlockedOn> {
        BlockedOn::ALL.into_iter().find(|on| on.name() == name)
    }
}

impl fmt::Display for BlockedOn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A signal that `terminate()` or `kill()` sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Signal {
    /// `SIGTERM`, sent by `terminate()`.
    Term,
    /// `SIGKILL`, sent by `kill()`.
    Kill,
}

impl Signal {
    /// The exit code of a child killed by this signal: minus the signal number, as CPython
    /// reports it (`-15`, `-9`).
    pub fn exitcode(self) -> i32 {
        match self {
            Signal::Term => -15,
            Signal::Kill => -9,
        }
    }

    /// The C name of the signal.
    pub fn name(self) -> &'static str {
        match self {
            Signal::Term => "SIGTERM",
            Signal::Kill => "SIGKILL",
        }
    }
}

/// The signals sent to a living child and not yet delivered.
///
/// A signal is sent by `terminate()`/`kill()` and delivered some time later; the model keeps
/// it pending until an [`Event::Deliver`](crate::Event::Deliver) happens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Signals {
    /// `SIGTERM` is on its way.
    pub term: bool,
    /// `SIGKILL` is on its way.
    pub kill: bool,
}

impl Signals {
    /// No signal pending.
    pub const NONE: Signals = Signals {
        term: false,
        kill: false,
    };

    /// Whether any signal is pending.
    pub fn any(self) -> bool {
        self.term || self.kill
    }

    /// The same set with `signal` added.
    pub fn with(self, signal: Signal) -> Signals {
        match signal {
            Signal::Term => Signals { term: true, ..self },
            Signal::Kill => Signals { kill: true, ..self },
        }
    }

    /// The pending signals, `SIGTERM` first.
    pub fn pending(self) -> impl Iterator<Item = Signal> {
        [(self.term, Signal::Term), (self.kill, Signal::Kill)]
            .into_iter()
            .filter_map(|(set, signal)| set.then_some(signal))
    }
}

/// A command that a blocked child has received and will obey, in order, once released.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Command {
    /// End with this exit code (already mapped: `exit(n)` gives `n & 0xFF`, a panic 1, a
    /// normal return 0).
    Exit(i32),
    /// Block again, on this.
    Block(BlockedOn),
}

/// Where a process handle is in its life-cycle.
///
/// The CPython `repr` words map onto these: `initial` is [`Life::New`], `started` is
/// [`Life::Running`], [`Life::Blocked`] and [`Life::Stopped`], `stopped` is
/// [`Life::Terminated`] (CPython's word for an exited child, not a child stopped by a
/// signal), `closed` is [`Life::Closed`].
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Life {
    /// Constructed and never started.
    New,
    /// Started; the child is alive and not blocked.
    Running {
        /// The exit the child is carrying out by its own command (`child_exit`, `child_panic`,
        /// `child_return`), with its exit code; it has not happened yet.
        exiting: Option<i32>,
        /// Signals sent and not yet delivered.
        signals: Signals,
    },
    /// Started; the child is alive and blocked.
    Blocked {
        /// What it waits for.
        on: BlockedOn,
        /// Commands received while blocked, obeyed in order after `release`.
        queue: Vec<Command>,
        /// Signals sent and not yet delivered; a delivered signal kills a blocked child too.
        signals: Signals,
    },
    /// Started; the child is alive and stopped by `SIGSTOP`: it runs nothing, carries out no
    /// exit and acts on no `SIGTERM` until `SIGCONT` continues it where it was. Only a
    /// `SIGKILL` ends it meanwhile.
    Stopped {
        /// Where it was when it was stopped ([`Life::Running`] or [`Life::Blocked`], with
        /// nothing on its way), and where `SIGCONT` takes it back; a `SIGKILL` sent while it
        /// is stopped is recorded in its `signals`.
        was: Box<Life>,
    },
    /// The child has exited (whether or not it has been reaped yet: the API cannot tell).
    Terminated {
        /// CPython's `exitcode`: `0..=255` for an exit, `-N` for death by signal `N`.
        exitcode: i32,
    },
    /// `close()` succeeded.
    Closed {
        /// Whether the handle had been started before it was closed (this decides what `run()`
        /// does on a closed handle).
        was_started: bool,
    },
}

impl Life {
    /// See [`State::is_exiting`].
    fn is_exiting(&self) -> bool {
        match self {
            Life::Running { exiting, signals } => exiting.is_some() || signals.any(),
            Life::Blocked { queue, signals, .. } => {
                signals.any() || queue.iter().any(|c| matches!(c, Command::Exit(_)))
            }
            Life::Stopped { was } => was.is_exiting(),
            Life::New | Life::Terminated { .. } | Life::Closed { .. } => false,
        }
    }

    /// The signals on their way to a living child (none for a child that is not alive).
    pub fn signals(&self) -> Signals {
        match self {
            Life::Running { signals, .. } | Life::Blocked { signals, .. } => *signals,
            Life::Stopped { was } => was.signals(),
            Life::New | Life::Terminated { .. } | Life::Closed { .. } => Signals::NONE,
        }
    }
}

/// The whole model state of one process handle.
///
/// The `name` and `daemon` attributes travel with the life-cycle but do not steer it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct State {
    /// The life-cycle position.
    pub life: Life,
    /// The `daemon` flag (`False` by default in the main process).
    pub daemon: bool,
    /// The name given by `name = ...`; `None` while it is still the default `Process-N`,
    /// which depends on a per-process counter the model does not track.
    pub name: Option<String>,
}

impl Default for State {
    fn default() -> State {
        State::new()
    }
}

impl State {
    /// A freshly constructed handle: new, not daemonic, default name.
    pub fn new() -> State {
        State {
            life: Life::New,
            daemon: false,
            name: None,
        }
    }

    /// Whether `start()` has succeeded on this handle at some point.
    pub fn was_started(&self) -> bool {
        match self.life {
            Life::New => false,
            Life::Running { .. }
            | Life::Blocked { .. }
            | Life::Stopped { .. }
            | Life::Terminated { .. } => true,
            Life::Closed { was_started } => was_started,
        }
    }

    /// Whether the child is alive (running, blocked or stopped).
    pub fn is_alive(&self) -> bool {
        matches!(
            self.life,
            Life::Running { .. } | Life::Blocked { .. } | Life::Stopped { .. }
        )
    }

    /// Whether the child is alive and some exit is already on its way: an own exit being
    /// carried out or queued, or a signal not yet delivered.
    /// Puppet commands sent to such a child are refused (they answer `false`).
    pub fn is_exiting(&self) -> bool {
        self.life.is_exiting()
    }

    /// The word CPython's `repr` uses for this state: `initial`, `started`, `stopped` or
    /// `closed`.
    pub fn repr_word(&self) -> &'static str {
        match self.life {
            Life::New => "initial",
            Life::Running { .. } | Life::Blocked { .. } | Life::Stopped { .. } => "started",
            Life::Terminated { .. } => "stopped",
            Life::Closed { .. } => "closed",
        }
    }

    /// The same state with another life-cycle position.
    pub(crate) fn with_life(&self, life: Life) -> State {
        State {
            life,
            daemon: self.daemon,
            name: self.name.clone(),
        }
    }
}
