//! Operations: what the parent calls on a handle, and the commands it sends to the puppet child.

use std::fmt;

use crate::state::BlockedOn;

/// The timeout of `join(timeout)`, as data.
///
/// The model reads no clock: whether a positive timeout expires or the child exits in time is
/// part of the operation.
/// A real run cannot tell these two apart from `join`'s result (always `None`), so the
/// checker [`Possible`](crate::Possible) treats [`Timeout::Expires`] and [`Timeout::InTime`]
/// alike, as "some positive timeout", and tries both.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Timeout {
    /// `join(0)`: poll once.
    Zero,
    /// `join(t)` with `t < 0`: clamped to 0, polls once.
    Negative,
    /// `join(t)` with `t > 0`, and nothing pending happens before the time is up.
    Expires,
    /// `join(t)` with `t > 0`, long enough for a pending exit to happen (if there is one; if
    /// nothing is pending the wait expires all the same).
    InTime,
}

impl Timeout {
    /// The timeout class of `secs` seconds; a positive number gives [`Timeout::Expires`]
    /// (for the checker, positive timeouts are all alike).
    ///
    /// ```
    /// use proclife_model::Timeout;
    /// assert_eq!(Timeout::from_secs(0.0), Timeout::Zero);
    /// assert_eq!(Timeout::from_secs(-1.5), Timeout::Negative);
    /// assert_eq!(Timeout::from_secs(0.05), Timeout::Expires);
    /// ```
    pub fn from_secs(secs: f64) -> Timeout {
        if secs > 0.0 {
            Timeout::Expires
        } else if secs < 0.0 {
            Timeout::Negative
        } else {
            Timeout::Zero
        }
    }

    /// Whether this is a positive timeout.
    pub fn is_positive(self) -> bool {
        matches!(self, Timeout::Expires | Timeout::InTime)
    }
}

/// The argument of `name = x`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum NameArg {
    /// A string.
    Str(String),
    /// Anything that is not a string (only possible from Python; the Rust API takes strings).
    NotStr,
}

/// One operation on a process handle: a parent call, or a command to the puppet child.
///
/// Parent calls mirror `multiprocessing.Process`. Child commands follow the puppet protocol:
/// the parent asks the child to do something, and the answer says whether the command was
/// delivered (see [`step`](crate::step)).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Op {
    /// Mirrors `Process.start`.
    Start,
    /// Mirrors `Process.run`, called directly: runs the target in the caller.
    Run,
    /// Mirrors `Process.is_alive`.
    IsAlive,
    /// Mirrors `Process.join()` without a timeout.
    Join,
    /// Mirrors `Process.join(timeout)`.
    JoinTimeout(Timeout),
    /// Mirrors the `Process.exitcode` property.
    Exitcode,
    /// Mirrors `Process.pid` / `ident`: the model knows only whether it is set.
    PidIsSet,
    /// Mirrors `Process.sentinel`: whether the sentinel is readable (the child has exited).
    SentinelReady,
    /// Mirrors `Process.terminate` (`SIGTERM`).
    Terminate,
    /// Mirrors `Process.kill` (`SIGKILL`).
    Kill,
    /// Mirrors `Process.close`.
    Close,
    /// Mirrors reading `Process.daemon`.
    Daemon,
    /// Mirrors `Process.daemon = value`.
    SetDaemon(bool),
    /// Mirrors reading `Process.name`.
    Name,
    /// Mirrors `Process.name = value`.
    SetName(NameArg),
    /// Tells the child to exit with `exit(code)`; the exit code becomes `code & 0xFF`.
    ChildExit(i64),
    /// Tells the child to panic (a Python exception): exit code 1.
    ChildPanic,
    /// Tells the child's target to return normally: exit code 0.
    ChildReturn,
    /// Tells the child to block on a primitive.
    ChildBlock(BlockedOn),
    /// Releases a blocked child (it goes on with the commands it has queued).
    Release,
    /// Stops the child with `SIGSTOP` (as a shell's job control or a debugger would), and
    /// waits until it is stopped; answers `true` when the child is alive and no exit is on its
    /// way (a child already stopped stays stopped), `false` and does nothing otherwise.
    SigStop,
    /// Continues the child with `SIGCONT`; answers `true` when the child is alive and no exit
    /// is on its way (a stopped child goes back to where it was, a running or blocked one
    /// goes on as it was), `false` and does nothing otherwise.
    SigCont,
    /// Waits until a pending exit has really happened, without reaping; does nothing if no
    /// exit is pending.
    Settle,
}

/// The exit code of a child that calls `exit(n)`: `n & 0xFF`, as the operating system keeps
/// only the low byte.
///
/// ```
/// use proclife_model::exit_status;
/// assert_eq!(exit_status(3), 3);
/// assert_eq!(exit_status(256), 0);
/// assert_eq!(exit_status(-1), 255);
/// ```
pub fn exit_status(code: i64) -> i32 {
    // The mask keeps the value in 0..=255, which always fits.
    i32::from((code & 0xFF) as u8)
}

/// Exit codes used for the derived graph: a normal exit, a small code, one that wraps to 0,
/// and a negative one that wraps to 255.
pub const GRAPH_EXIT_CODES: [i64; 4] = [0, 3, 256, -1];

impl Op {
    /// The operation's name in the replay schema (`"op"` field); `name` and `set_name`, which
    /// the schema does not have, are named like the others.
    pub fn schema_name(&self) -> &'static str {
        match self {
            Op::Start => "start",
            Op::Run => "run",
            Op::IsAlive => "is_alive",
            Op::Join => "join",
            Op::JoinTimeout(_) => "join_timeout",
            Op::Exitcode => "exitcode",
            Op::PidIsSet => "pid_is_set",
            Op::SentinelReady => "sentinel_ready",
            Op::Terminate => "terminate",
            Op::Kill => "kill",
            Op::Close => "close",
            Op::Daemon => "daemon",
            Op::SetDaemon(_) => "set_daemon",
            Op::Name => "name",
            Op::SetName(_) => "set_name",
            Op::ChildExit(_) => "child_exit",
            Op::ChildPanic => "child_panic",
            Op::ChildReturn => "child_return",
            Op::ChildBlock(_) => "child_block",
            Op::Release => "release",
            Op::SigStop => "sigstop",
            Op::SigCont => "sigcont",
            Op::Settle => "settle",
        }
    }

    /// The label of this operation in the transition graph.
    ///
    /// Positive timeouts share one label, `join_timeout(>0)`, because a real run cannot tell
    /// an expired wait from one the child ended in time.
    pub fn label(&self) -> String {
        match self {
            Op::JoinTimeout(Timeout::Zero) => "join_timeout(0)".to_owned(),
            Op::JoinTimeout(Timeout::Negative) => "join_timeout(<0)".to_owned(),
            Op::JoinTimeout(Timeout::Expires | Timeout::InTime) => "join_timeout(>0)".to_owned(),
            Op::SetDaemon(value) => format!("set_daemon({value})"),
            Op::SetName(NameArg::Str(_)) => "set_name(str)".to_owned(),
            Op::SetName(NameArg::NotStr) => "set_name(non-str)".to_owned(),
            Op::ChildExit(code) => format!("child_exit({code})"),
            Op::ChildBlock(on) => format!("child_block({on})"),
            other => other.schema_name().to_owned(),
        }
    }

    /// Whether this operation can set an exit on its way (after it, observations depend on
    /// timing until the next `settle` or `join`).
    pub fn may_cause_exit(&self) -> bool {
        matches!(
            self,
            Op::ChildExit(_)
                | Op::ChildPanic
                | Op::ChildReturn
                | Op::Terminate
                | Op::Kill
                | Op::Release
        )
    }

    /// The operations the transition graph is derived from, in a fixed order.
    ///
    /// Every parent operation and child command, with these representative parameters:
    /// all four [`Timeout`] classes, `set_daemon(false)` and `set_daemon(true)`, the exit
    /// codes [`GRAPH_EXIT_CODES`], and the blocking reasons [`BlockedOn::GRAPH`] (every one
    /// but `send`, which the replay schema cannot name), then `sigstop` and `sigcont`.
    /// `name` and `set_name` are left out: the name is a plain attribute that neither steers
    /// nor depends on the life-cycle, and the replay schema has no operation for it.
    pub fn graph_ops() -> Vec<Op> {
        let mut ops = vec![
            Op::Start,
            Op::Run,
            Op::IsAlive,
            Op::Join,
            Op::JoinTimeout(Timeout::Zero),
            Op::JoinTimeout(Timeout::Negative),
            Op::JoinTimeout(Timeout::Expires),
            Op::JoinTimeout(Timeout::InTime),
            Op::Exitcode,
            Op::PidIsSet,
            Op::SentinelReady,
            Op::Terminate,
            Op::Kill,
            Op::Close,
            Op::Daemon,
            Op::SetDaemon(false),
            Op::SetDaemon(true),
        ];
        ops.extend(GRAPH_EXIT_CODES.into_iter().map(Op::ChildExit));
        ops.push(Op::ChildPanic);
        ops.push(Op::ChildReturn);
        ops.extend(BlockedOn::GRAPH.into_iter().map(Op::ChildBlock));
        ops.push(Op::Release);
        ops.push(Op::Settle);
        ops.push(Op::SigStop);
        ops.push(Op::SigCont);
        ops
    }

    /// Whether the CPython conformance check can run this operation: `sigstop`, `sigcont`
    /// and the kernel waits (`child_block` on `read` or `sleep`) are the checker's alone (the
    /// CPython program has no puppet for them, and CPython's `terminate()` of a stopped child
    /// differs from proclife's, decision 0017).
    pub fn in_conformance(&self) -> bool {
        match self {
            Op::SigStop | Op::SigCont => false,
            Op::ChildBlock(on) => !on.is_kernel_wait(),
            _ => true,
        }
    }

    /// Every operation the semantics table shows: [`Op::graph_ops`] plus the name operations.
    pub fn table_ops() -> Vec<Op> {
        let mut ops = Op::graph_ops();
        ops.push(Op::Name);
        ops.push(Op::SetName(NameArg::Str("worker".to_owned())));
        ops.push(Op::SetName(NameArg::NotStr));
        ops
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Op::JoinTimeout(Timeout::Expires) => f.write_str("join_timeout(>0, expires)"),
            Op::JoinTimeout(Timeout::InTime) => f.write_str("join_timeout(>0, in time)"),
            Op::SetName(NameArg::Str(name)) => write!(f, "set_name({name:?})"),
            other => f.write_str(&other.label()),
        }
    }
}
