//! The per-process table: the children this process started, its own identity, and the
//! exit policy that stops them.
//!
//! One mutex guards the whole table. The fork start method holds it across `fork()`, so the
//! child inherits it in a consistent state and rewrites it for itself before the target runs:
//! a child has no children, a fresh name counter, and its own name and daemon flag.
//! The table owns a strong reference to every child that has not been observed dead, as
//! CPython's `_children` set does, so a child whose handle was dropped is still reaped.
#![forbid(unsafe_code)]

use std::borrow::Cow;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use nix::poll::{PollFd, PollFlags};
use nix::sys::signal::Signal;

use crate::children::child::Child;
use crate::error::Result;
use crate::os;
use crate::os::slot::CurrentWord;
use crate::os::time::Deadline;
use crate::pid::{AtomicPid, Pid};

/// How long a daemon child gets between SIGTERM and SIGKILL when its parent exits.
pub(crate) const DAEMON_GRACE: Duration = Duration::from_millis(500);

/// What a process knows about itself and its children.
#[derive(Debug)]
pub(crate) struct Table {
    /// Children started by this process and not yet observed dead, in start order.
    pub(crate) children: Vec<Arc<Child>>,
    /// The next number for a default name (`Process-<n>`).
    counter: u64,
    /// This process's identity: empty in the main process, `[2, 1]` for `Process-2:1`.
    identity: Vec<u64>,
    /// This process's name.
    name: Cow<'static, str>,
    /// Whether this process is a daemon (then it may not start children).
    daemon: bool,
    /// The parent's pid and name, in a child process. The name is the table's own name
    /// taken over as it was (a forked child of the main process borrows `MainProcess`
    /// instead of allocating a copy).
    parent: Option<(Pid, Cow<'static, str>)>,
    /// Whether the exit hook is registered in this process (inherited across fork).
    exit_hook: bool,
    /// What the last sweep left.
    swept: Swept,
}

/// The process-wide state that a forked child writes as it becomes itself, in one block of
/// the program's data: its table, and the words read without the table's lock (its status
/// slot, its pidfd handoff, its exit handler's owner, its parent). Each page of the
/// program's data that a child writes is a copy-on-write fault at every start; as separate
/// statics these fell on one page or on two, as the linker placed them (the table is
/// initialised data, the words zeroed data), and one block aligned to its size never
/// straddles a page (decision 0030). The other modules name their words through `&'static`
/// statics of their own (`children::status::CURRENT`, `start::exit::ARMED`, ...).
#[repr(C, align(256))]
pub(crate) struct ChildStatics {
    table: Mutex<Table>,
    /// [`ORPHANS`].
    orphans: AtomicUsize,
    /// `children::status::CURRENT`.
    pub(crate) status: CurrentWord,
    /// `children::status::HANDOFF`.
    pub(crate) handoff: CurrentWord,
    /// `children::status::HANDOFF_PARENT`.
    pub(crate) handoff_parent: AtomicPid,
    /// `children::current::WATCHED_PARENT`.
    pub(crate) watched_parent: AtomicPid,
    /// `children::current::PARENT_PIDFD_OWNER`.
    pub(crate) parent_pidfd_owner: AtomicPid,
    /// `start::exit::ARMED`.
    pub(crate) exit_armed: AtomicPid,
    /// `children::current::DAEMON`.
    pub(crate) daemon: AtomicBool,
}

// A block larger than its alignment could straddle a page.
const _: () = assert!(std::mem::size_of::<ChildStatics>() == std::mem::align_of::<ChildStatics>());

/// The one [`ChildStatics`] of the process.
pub(crate) static STATICS: ChildStatics = ChildStatics {
    table: Mutex::new(Table::AT_START),
    orphans: AtomicUsize::new(0),
    status: CurrentWord::none(),
    handoff: CurrentWord::none(),
    handoff_parent: AtomicPid::none(),
    watched_parent: AtomicPid::none(),
    parent_pidfd_owner: AtomicPid::none(),
    exit_armed: AtomicPid::none(),
    daemon: AtomicBool::new(false),
};

impl Table {
    /// The table as the process starts.
    const AT_START: Table = Table {
        children: Vec::new(),
        counter: 1,
        identity: Vec::new(),
        name: Cow::Borrowed("MainProcess"),
        daemon: false,
        parent: None,
        exit_hook: false,
        swept: Swept {
            left: 0,
            at: None,
            starts: 0,
        },
    };
}

/// What the last sweep left: the number of children, when it ran (`None` before the first
/// sweep), and how many starts asked for a sweep since.
#[derive(Debug)]
struct Swept {
    left: usize,
    at: Option<Instant>,
    starts: usize,
}

/// What a layer above must do in a freshly forked child; registered once, see
/// [`at_fork_child`].
static AT_FORK_CHILD: OnceLock<fn()> = OnceLock::new();

/// Registers `hook` to run in every child forked from now on, right after the child's table
/// was rewritten ([`after_fork_in_child`]). One hook per program (the fork server's client
/// drops its parent's server handle there); a second registration of the same function is
/// a no-op.
pub(crate) fn at_fork_child(hook: fn()) {
    let _ = AT_FORK_CHILD.set(hook);
}

/// Runs the hook registered with [`at_fork_child`], if any; called by the fork start method
/// in the child. Reads one word when nothing was registered, so a forked child takes no
/// copy-on-write fault here.
pub(crate) fn after_fork_in_child() {
    if let Some(hook) = AT_FORK_CHILD.get() {
        hook();
    }
}

/// Locks the table.
pub(crate) fn lock() -> MutexGuard<'static, Table> {
    // Every update of the table is a single push, retain or assignment; a panic cannot
    // leave it half-updated, so a poisoned lock is still consistent.
    STATICS.table.lock().unwrap_or_else(PoisonError::into_inner)
}

/// What a new handle inherits from the process that creates it.
#[derive(Debug)]
pub(crate) struct Birth {
    /// The handle's identity (`[n]` in the main process).
    pub(crate) identity: Vec<u64>,
    /// Its default name.
    pub(crate) name: String,
    /// Its default daemon flag: the creator's.
    pub(crate) daemon: bool,
}

/// Allocates the identity and default name of a new handle.
pub(crate) fn birth() -> Birth {
    let mut table = lock();
    let n = table.counter;
    table.counter = table.counter.saturating_add(1);
    let mut identity = table.identity.clone();
    identity.push(n);
    let numbers: Vec<String> = identity.iter().map(u64::to_string).collect();
    Birth {
        name: format!("Process-{}", numbers.join(":")),
        identity,
        daemon: table.daemon,
    }
}

impl Table {
    /// Registers a child that was just started.
    pub(crate) fn add(&mut self, child: Arc<Child>) {
        self.children.push(child);
    }

    /// Whether the current process is a daemon.
    pub(crate) fn daemon(&self) -> bool {
        self.daemon
    }

    /// Registers the exit hook once per process.
    pub(crate) fn ensure_exit_hook(&mut self) -> Result<()> {
        if !self.exit_hook {
            os::process::atexit(exit_hook)?;
            self.exit_hook = true;
        }
        Ok(())
    }

    /// Rewrites the table in a freshly forked child: it has no children yet, and it is the
    /// process described by `identity`, `name` and `daemon`.
    pub(crate) fn become_child(
        &mut self,
        identity: Vec<u64>,
        name: String,
        daemon: bool,
        parent: Pid,
    ) {
        // Dropping an inherited record whose handle was dropped closes the child's copy of
        // its pidfd. A record that a handle still holds would only have its reference count
        // decremented, a write to a page the child shares with its parent (a copy-on-write
        // fault per page, one or more per sibling in a batch of starts); such records are
        // left alone instead, as the handles themselves are (the child never returns into
        // the frames that own them), and their pidfds stay with those handles.
        // Without orphans in the parent there is nothing to drop, and the records are not
        // read at all (each read is a cache miss per sibling in a large parent).
        let mut inherited = std::mem::ManuallyDrop::new(std::mem::take(&mut self.children));
        if may_hold_orphans() && inherited.iter().any(|c| Arc::strong_count(c) == 1) {
            inherited.retain(|c| Arc::strong_count(c) > 1);
        }
        ORPHANS.store(0, Ordering::Release);
        self.swept = Swept {
            left: 0,
            at: None,
            starts: 0,
        };
        let parent_name = std::mem::replace(&mut self.name, Cow::Owned(name));
        self.parent = Some((parent, parent_name));
        crate::children::current::set_watched_parent(parent, daemon);
        self.counter = 1;
        self.identity = identity;
        self.daemon = daemon;
    }
}

impl Table {
    /// Rewrites the table in a re-executed child: as [`Table::become_child`], but the
    /// parent's name comes with the bootstrap message instead of the inherited table.
    pub(crate) fn become_child_of(
        &mut self,
        identity: Vec<u64>,
        name: String,
        daemon: bool,
        parent: Pid,
        parent_name: String,
    ) {
        self.become_child(identity, name, daemon, parent);
        self.parent = Some((parent, Cow::Owned(parent_name)));
    }
}

/// How many records of the table may be orphans: their handle was dropped while the child
/// ran, so only the table holds them (`Arc::strong_count == 1`). Counted up by
/// [`orphaned`] before the handle lets go of its record, and down only when such a record
/// leaves the table, so it is never below the true number; while it is 0, nothing needs the
/// scans for orphans, which otherwise read every record at every runtime call (a cost that
/// grows with the number of live children).
static ORPHANS: &AtomicUsize = &STATICS.orphans;

/// Notes that a handle of a running child is being dropped: its record becomes an orphan.
pub(crate) fn orphaned() {
    ORPHANS.fetch_add(1, Ordering::AcqRel);
}

/// Whether the table may hold orphans (see [`ORPHANS`]).
fn may_hold_orphans() -> bool {
    ORPHANS.load(Ordering::Acquire) > 0
}

/// Counts `n` orphans out of the table.
fn orphans_left_table(n: usize) {
    if n > 0 {
        let _ = ORPHANS.fetch_update(Ordering::AcqRel, Ordering::Acquire, |count| {
            Some(count.saturating_sub(n))
        });
    }
}

/// Removes `child` from the table (it was observed dead, or its handle was closed).
///
/// Searched from the end: the child joined is most often the one started last, and then
/// neither the search nor the removal reads the other records. A record that only the
/// caller's reference holds is not in the table (the table holds a reference of its own to
/// each record it lists), so forgetting it again, as `close` does after `join`, neither
/// takes the lock nor reads the table (before: a search of every live child's record).
pub(crate) fn forget(child: &Arc<Child>) {
    if Arc::strong_count(child) == 1 {
        return;
    }
    let mut table = lock();
    if let Some(i) = table.children.iter().rposition(|c| Arc::ptr_eq(c, child)) {
        table.children.remove(i);
    }
}

/// Reaps children whose handles were dropped, if they have exited.
///
/// Every runtime call runs this first, so a dropped handle never leaves a zombie past
/// the next call into the runtime.
pub(crate) fn reap_orphans() {
    if !may_hold_orphans() {
        return;
    }
    let mut table = lock();
    let mut reaped = 0;
    table.children.retain(|c| {
        if Arc::strong_count(c) > 1 {
            return true;
        }
        // A lost status (`Err`) will never come back: drop the record too.
        let running = matches!(c.poll(), Ok(None));
        reaped += usize::from(!running);
        running
    });
    orphans_left_table(reaped);
}

/// How long a start may skip the sweep: a child that exited is reaped by the first start
/// after this much time, however few children were started since, while the table is
/// small ([`SWEEP_SMALL`]).
pub(crate) const SWEEP_INTERVAL: Duration = Duration::from_millis(50);

/// Up to this many children, a sweep after [`SWEEP_INTERVAL`] always runs (it costs at most
/// this many polls every `SWEEP_INTERVAL`).
pub(crate) const SWEEP_SMALL: usize = 64;

/// In a larger table, how many pidfds a sweep after [`SWEEP_INTERVAL`] may poll per start
/// since the last sweep: it waits until at least `1 / SWEEP_POLLS_PER_START` of the children
/// it would poll were started since.
pub(crate) const SWEEP_POLLS_PER_START: usize = 2;

/// The sweep a start runs first (CPython's `_cleanup` in `Process.start`), made cheaper for
/// many starts in a row and for many live children. It runs when the table has grown to
/// twice what the last sweep left (so a batch of `n` starts polls `O(n)` pidfds in all
/// instead of `O(n²)`), or when [`SWEEP_INTERVAL`] has passed since the last one and either
/// the last sweep left at most [`SWEEP_SMALL`] children or enough starts happened since that
/// the sweep costs at most [`SWEEP_POLLS_PER_START`] polls per start, or, whatever the
/// number of starts, once `SWEEP_INTERVAL` has passed for every `SWEEP_SMALL` children the
/// last sweep left (at most `SWEEP_SMALL` polls per `SWEEP_INTERVAL`). So a child that has
/// exited is still reaped by a later start (in a small table the first one after
/// `SWEEP_INTERVAL`; with `n` live children the first one that comes `SWEEP_INTERVAL` and
/// `n / SWEEP_POLLS_PER_START` starts after the last sweep, or `SWEEP_INTERVAL × ⌈n /
/// SWEEP_SMALL⌉` after it: 3.1 s with 4 000), and the sweep's cost per start stays bounded
/// however many children are alive (decision 0025; with the interval alone, a parent with
/// 4 000 live children polled 4 000 pidfds every 50 ms). A table with no children costs
/// nothing.
pub(crate) fn sweep_before_start() -> Result<()> {
    let mut table = lock();
    let len = table.children.len();
    if len == 0 {
        return Ok(());
    }
    table.swept.starts = table.swept.starts.saturating_add(1);
    let swept = &table.swept;
    let due = sweep_due(
        len,
        swept.left,
        swept.starts,
        swept.at.map(|at| at.elapsed()),
    );
    drop(table);
    if due { sweep() } else { Ok(()) }
}

/// The rule of [`sweep_before_start`]: whether a start sweeps, with `len` children in the
/// table, `left` after the last sweep, `starts` since it (this one included), and the time
/// since it (`None` before the first sweep).
fn sweep_due(len: usize, left: usize, starts: usize, since: Option<Duration>) -> bool {
    let passed = |interval: Duration| since.is_none_or(|since| since >= interval);
    let rounds = u32::try_from(left.div_ceil(SWEEP_SMALL)).unwrap_or(u32::MAX);
    len >= left.saturating_mul(2)
        || (passed(SWEEP_INTERVAL)
            && (left <= SWEEP_SMALL || starts.saturating_mul(SWEEP_POLLS_PER_START) >= left))
        || passed(SWEEP_INTERVAL.saturating_mul(rounds))
}

/// Polls every child and drops the ones that have exited (CPython's `_cleanup`).
///
/// One `poll(2)` over all pidfds finds the exited ones; only those are waited for.
pub(crate) fn sweep() -> Result<()> {
    let mut table = lock();
    table.swept = Swept {
        left: table.children.len(),
        at: Some(Instant::now()),
        starts: 0,
    };
    let ready: Vec<bool> = {
        let mut fds: Vec<PollFd<'_>> = table
            .children
            .iter()
            .map(|c| PollFd::new(c.pidfd(), PollFlags::POLLIN))
            .collect();
        if fds.is_empty() {
            return Ok(());
        }
        os::poll::now(&mut fds)?;
        fds.iter()
            .map(|fd| fd.any().unwrap_or(false) || fd.revents().is_none())
            .collect()
    };
    let mut orphans = 0;
    // A child without a poll result is polled by itself.
    os::poll::retain_by_ready(&mut table.children, &ready, true, |c, exited| {
        let keep = !exited || matches!(c.poll(), Ok(None));
        orphans += usize::from(!keep && Arc::strong_count(c) == 1);
        keep
    });
    orphans_left_table(orphans);
    table.swept.left = table.children.len();
    Ok(())
}

/// The pids of the children that are still running, after a sweep.
pub(crate) fn active_children() -> Result<Vec<Pid>> {
    sweep()?;
    Ok(lock().children.iter().map(|c| c.pid()).collect())
}

/// What the current process knows of itself, apart from its pid.
#[derive(Debug, Clone)]
pub(crate) struct Me {
    /// Its name (`MainProcess`, `Process-1`, ...).
    pub(crate) name: String,
    /// Whether it is a daemon.
    pub(crate) daemon: bool,
    /// Its identity (`[2, 1]` for `Process-2:1`; empty in the main process).
    pub(crate) identity: Vec<u64>,
    /// Its parent's pid and name, in a child.
    pub(crate) parent: Option<(Pid, String)>,
}

/// The current process's pid-independent facts.
pub(crate) fn me() -> Me {
    let table = lock();
    Me {
        name: table.name.clone().into_owned(),
        daemon: table.daemon,
        identity: table.identity.clone(),
        parent: table
            .parent
            .as_ref()
            .map(|(pid, name)| (*pid, name.clone().into_owned())),
    }
}

/// The current process's name, without copying the rest of [`me`].
pub(crate) fn my_name() -> String {
    lock().name.clone().into_owned()
}

/// The exit policy: daemon children are stopped in reverse start order (SIGTERM and
/// SIGCONT, then SIGKILL after [`DAEMON_GRACE`]), then every other child is joined.
///
/// Runs when the process exits normally (`exit`, return from `main`) and, in a child, right
/// after its target returned. Acts only on children of the current process.
pub(crate) fn shutdown_children() {
    let children: Vec<Arc<Child>> = lock()
        .children
        .iter()
        .filter(|c| c.is_reaper())
        .cloned()
        .collect();
    for child in children.iter().rev().filter(|c| c.daemon()) {
        let _ = child.signal(Signal::SIGTERM as i32);
        let _ = child.signal(Signal::SIGCONT as i32);
        if matches!(child.wait(&Deadline::after(Some(DAEMON_GRACE))), Ok(None)) {
            let _ = child.signal(Signal::SIGKILL as i32);
            let _ = child.wait(&Deadline::after(None));
        }
    }
    for child in children.iter().filter(|c| !c.daemon()) {
        let _ = child.wait(&Deadline::after(None));
    }
    let mut table = lock();
    let mut orphans = 0;
    table.children.retain(|c| {
        let keep = !children.iter().any(|d| Arc::ptr_eq(c, d)) || c.cached().is_none();
        // `children` holds a second reference to each record it lists.
        orphans += usize::from(!keep && Arc::strong_count(c) == 2);
        keep
    });
    orphans_left_table(orphans);
}

/// The `atexit` hook: applies the exit policy and flushes Rust's stdout.
extern "C" fn exit_hook() {
    // A panic must not unwind into libc's `exit`.
    let _ = std::panic::catch_unwind(|| {
        shutdown_children();
        crate::os::stdio::flush_std_streams();
    });
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::{SWEEP_INTERVAL, SWEEP_POLLS_PER_START, SWEEP_SMALL, sweep_due};

    const NOW: Option<Duration> = Some(Duration::ZERO);
    const AFTER_INTERVAL: Option<Duration> = Some(SWEEP_INTERVAL);

    #[test]
    fn a_doubled_table_sweeps_at_once() {
        assert!(sweep_due(2, 1, 1, NOW));
        assert!(sweep_due(8000, 4000, 1, NOW));
        assert!(!sweep_due(7999, 4000, 1, NOW));
    }

    #[test]
    fn the_first_start_sweeps() {
        assert!(sweep_due(4000, 0, 1, None));
    }

    #[test]
    fn a_small_table_sweeps_at_the_first_start_after_the_interval() {
        assert!(!sweep_due(SWEEP_SMALL, SWEEP_SMALL, 1, NOW));
        assert!(sweep_due(SWEEP_SMALL, SWEEP_SMALL, 1, AFTER_INTERVAL));
    }

    #[test]
    fn a_large_table_waits_for_starts_that_pay_for_the_sweep() {
        let left = 4000;
        let enough = left / SWEEP_POLLS_PER_START;
        assert!(!sweep_due(left, left, enough - 1, AFTER_INTERVAL));
        assert!(sweep_due(left, left, enough, AFTER_INTERVAL));
        // The starts alone do not make it due before the interval.
        assert!(!sweep_due(left, left, left, NOW));
    }

    #[test]
    fn a_large_table_with_few_starts_sweeps_after_an_interval_per_small_table() {
        let left: usize = 4000;
        let rounds = u32::try_from(left.div_ceil(SWEEP_SMALL)).unwrap_or(u32::MAX);
        let long = SWEEP_INTERVAL * rounds;
        assert!(!sweep_due(
            left,
            left,
            1,
            Some(long - Duration::from_millis(1))
        ));
        assert!(sweep_due(left, left, 1, Some(long)));
    }
}
