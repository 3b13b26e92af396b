//! Running a program of calls in real processes and assembling its history.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use proclife::ipc::{Connection, pipe};
use proclife::sync::Barrier;
use proclife::{BlockedOn, Process, ProcessState, StartMethod};
use proclife_model::objects::linearizable::Death;
use proclife_model::objects::{Call, Entry, History, Object};
use serde::{Deserialize, Serialize};

use crate::objects::worker::{Report, Setup, Shared, Work, dup, run_call, worker};

/// Every wait of the harness itself is bounded by this, plus the timeouts of the calls.
pub const PROMPT: Duration = Duration::from_secs(10);

/// How many times its bound a worker that keeps making progress may take to end.
const STARVED: u32 = 10;

/// What the parent does while the workers run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Step {
    /// Wait until every listed worker shows `Blocked` on the object (or has ended, or
    /// [`PROMPT`] passed: the order it aims for is a help, not a premise of the judges).
    AwaitBlocked {
        /// The workers.
        procs: Vec<usize>,
        /// The object they block on.
        on: Object,
    },
    /// Make a call in the parent (its caller number is the number of workers).
    Call {
        /// The call.
        call: Call,
    },
    /// `SIGKILL` a worker once it has reported `after` invocations (at once if it never
    /// does before it ends).
    Kill {
        /// The worker.
        proc: usize,
        /// How many invocations to wait for.
        after: usize,
    },
}

/// A program: the objects' initial values, each worker's calls, and the parent's steps.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Program {
    /// Initial values.
    pub setup: Setup,
    /// One list of calls per worker process.
    pub procs: Vec<Vec<Call>>,
    /// The parent's steps, in order, after every worker is started.
    pub parent: Vec<Step>,
}

impl Program {
    /// Whether a worker or the parent makes a call on a pipe.
    pub fn uses_pipes(&self) -> bool {
        let pipe = |call: &Call| matches!(call.object(), Object::Pipe | Object::OneWayPipe);
        self.procs.iter().flatten().any(pipe)
            || self
                .parent
                .iter()
                .any(|s| matches!(s, Step::Call { call } if pipe(call)))
    }
}

/// A program's run: its history, and per call the microseconds it took.
#[derive(Debug, Clone)]
pub struct Observed {
    /// The history.
    pub history: History,
    /// For each entry of the history, how long the call took (`None` if it never returned).
    pub elapsed_us: Vec<Option<u64>>,
    /// How each worker ended: killed (with a stamp taken after it was reaped) or normally.
    pub deaths: Vec<Death>,
}

/// What a process blocked in a call on `obj` shows (a queue's `get` waits to receive, its
/// `put` on a full ring to send).
fn blocked_on(obj: Object) -> &'static [BlockedOn] {
    match obj {
        Object::Lock => &[BlockedOn::Lock],
        Object::RLock => &[BlockedOn::RLock],
        Object::Semaphore | Object::BoundedSemaphore => &[BlockedOn::Semaphore],
        Object::Event => &[BlockedOn::Event],
        Object::Condition => &[BlockedOn::Condition],
        Object::Barrier => &[BlockedOn::Barrier],
        Object::Queue | Object::SimpleQueue => &[BlockedOn::Recv, BlockedOn::Send],
        // A joinable queue's `join` and `task_done` wait as `Join`.
        Object::JoinableQueue => &[BlockedOn::Recv, BlockedOn::Send, BlockedOn::Join],
        // The lock of a value or an array is an `RLock`.
        Object::Value | Object::Array => &[BlockedOn::RLock],
        Object::Pipe | Object::OneWayPipe => &[BlockedOn::Recv, BlockedOn::Send],
    }
}

fn timeouts(calls: &[Call]) -> Duration {
    calls
        .iter()
        .map(|call| match *call {
            Call::Acquire { timeout_ms, .. }
            | Call::EventWait { timeout_ms }
            | Call::CondWait { timeout_ms }
            | Call::BarrierWait { timeout_ms }
            | Call::Put { timeout_ms, .. }
            | Call::Get { timeout_ms, .. }
            | Call::Join { timeout_ms }
            | Call::Poll { timeout_ms, .. } => {
                Duration::from_millis(u64::from(timeout_ms.unwrap_or(0)))
            }
            _ => Duration::ZERO,
        })
        .sum()
}

struct Worker {
    process: Process,
    reports: Connection,
    received: Vec<Report>,
    eof: bool,
    killed: bool,
}

impl Worker {
    /// Reads what has arrived, waiting at most `wait` for the first report.
    fn drain(&mut self, wait: Duration) -> anyhow::Result<()> {
        let mut wait = Some(wait);
        while !self.eof && self.reports.poll(wait.take().or(Some(Duration::ZERO)))? {
            match self.reports.recv::<Report>() {
                Ok(report) => self.received.push(report),
                Err(proclife::Error::Disconnected) => self.eof = true,
                // A worker killed in the middle of a report leaves a torn frame.
                Err(_) if self.killed => self.eof = true,
                Err(e) => return Err(e).context("reading a worker's reports"),
            }
        }
        Ok(())
    }

    fn returns(&self) -> usize {
        self.received
            .iter()
            .filter(|r| matches!(r, Report::Returned { .. }))
            .count()
    }

    fn invocations(&self) -> usize {
        self.received
            .iter()
            .filter(|r| matches!(r, Report::Invoked { .. }))
            .count()
    }
}

/// Runs `program` in real processes started with `method` and returns its history.
///
/// Every worker is reaped before this returns, whatever happens.
///
/// # Errors
///
/// When the harness fails: a worker cannot be started, does not end within [`PROMPT`] plus
/// its timeouts and then makes no progress (reports no call and is not runnable) for
/// [`PROMPT`], or exits with anything but 0 without being killed.
pub fn run(program: &Program, method: StartMethod) -> anyhow::Result<Observed> {
    if let Some(p) = program.parent.iter().find_map(|s| match s {
        Step::AwaitBlocked { procs, .. } => procs.iter().find(|&&p| p >= program.procs.len()),
        Step::Kill { proc, .. } => Some(proc).filter(|&&p| p >= program.procs.len()),
        Step::Call { .. } => None,
    }) {
        bail!(
            "the parent names worker {p}, but there are {}",
            program.procs.len()
        );
    }
    let shared = Shared::new(program.setup)?;
    let mut workers: Vec<Worker> = Vec::new();
    let outcome = drive(program, method, &shared, &mut workers);
    // Whatever happened, nothing outlives the run.
    for w in &mut workers {
        let _ = w.process.kill();
        let _ = w.process.join_timeout(PROMPT);
    }
    if method == StartMethod::ForkServer {
        // Every worker is reaped: the server exits, so the run leaves nothing behind.
        proclife::stop_fork_server().context("stopping the fork server")?;
    }
    let mut killed = outcome?;
    for p in 0..workers.len() {
        if !killed.0.iter().any(|d| d.proc == p) {
            killed.0.push(Death {
                proc: p,
                by: None,
                maybe_exited: true,
            });
        }
    }
    for w in &mut workers {
        w.drain(Duration::ZERO)?;
    }
    let mut entries = Vec::new();
    let mut elapsed = Vec::new();
    for (proc, w) in workers.iter().enumerate() {
        collect(
            proc,
            &program.procs[proc],
            &w.received,
            &mut entries,
            &mut elapsed,
        )?;
    }
    collect(
        workers.len(),
        &parent_calls(program),
        &killed.1,
        &mut entries,
        &mut elapsed,
    )?;
    // Sort both by invocation, as `History::new` does.
    let mut order: Vec<usize> = (0..entries.len()).collect();
    order.sort_by_key(|&i| (entries[i].invoked, entries[i].proc));
    let elapsed_us = order.iter().map(|&i| elapsed[i]).collect();
    let history = History::new(entries);
    Ok(Observed {
        history,
        elapsed_us,
        deaths: killed.0,
    })
}

/// The history of the calls made so far, for a harness error (a call that has not returned
/// shows as pending).
fn so_far(program: &Program, workers: &[Worker], own: &[Report]) -> String {
    let mut entries = Vec::new();
    let mut elapsed = Vec::new();
    for (proc, w) in workers.iter().enumerate() {
        // A report that does not fit its program is itself reported by `collect` in a
        // normal run; here the history is only an explanation.
        let _ = collect(
            proc,
            &program.procs[proc],
            &w.received,
            &mut entries,
            &mut elapsed,
        );
    }
    let _ = collect(
        workers.len(),
        &parent_calls(program),
        own,
        &mut entries,
        &mut elapsed,
    );
    History::new(entries).to_string()
}

/// The parent's calls of `program`, in order.
pub(crate) fn parent_calls(program: &Program) -> Vec<Call> {
    program
        .parent
        .iter()
        .filter_map(|s| match s {
            Step::Call { call } => Some(*call),
            _ => None,
        })
        .collect()
}

fn collect(
    proc: usize,
    calls: &[Call],
    reports: &[Report],
    entries: &mut Vec<Entry>,
    elapsed: &mut Vec<Option<u64>>,
) -> anyhow::Result<()> {
    let mut open: BTreeMap<usize, Entry> = BTreeMap::new();
    let mut took: BTreeMap<usize, u64> = BTreeMap::new();
    for report in reports {
        match report {
            Report::Invoked { index, at } => {
                let call = *calls.get(*index).ok_or_else(|| {
                    anyhow!("worker {proc} reported call {index} of {}", calls.len())
                })?;
                open.insert(
                    *index,
                    Entry {
                        proc,
                        call,
                        invoked: *at,
                        returned: None,
                        ret: None,
                    },
                );
            }
            Report::Returned {
                index,
                at,
                ret,
                elapsed_us,
            } => {
                let entry = open.get_mut(index).ok_or_else(|| {
                    anyhow!("worker {proc} returned from call {index} it never invoked")
                })?;
                entry.returned = Some(*at);
                entry.ret = Some(ret.clone());
                took.insert(*index, *elapsed_us);
            }
        }
    }
    for (index, entry) in open {
        entries.push(entry);
        elapsed.push(took.get(&index).copied());
    }
    Ok(())
}

/// Starts the workers and runs the parent's steps; returns the killed workers and the
/// parent's own reports.
fn drive(
    program: &Program,
    method: StartMethod,
    shared: &Shared,
    workers: &mut Vec<Worker>,
) -> anyhow::Result<(Vec<Death>, Vec<Report>)> {
    // Every worker's handles of the pipes' ends exist before the first is started, so the
    // parent can tell a forked worker which fd numbers it inherited.
    let start = (program.uses_pipes() || program.setup.start_together)
        .then(|| Barrier::new(program.procs.len() + 1, None))
        .transpose()?;
    let mut dups = program
        .procs
        .iter()
        .map(|_| shared.duplicate())
        .collect::<proclife::Result<Vec<Shared>>>()?
        .into_iter();
    for (proc, calls) in program.procs.iter().enumerate() {
        let (reports, report) = pipe(false)?;
        let mine = dups
            .next()
            .ok_or_else(|| anyhow!("no handles for worker {proc}"))?;
        let inherited = if start.is_some() && method == StartMethod::Fork {
            let mut fds = shared.ends.borrow().raw_fds();
            for later in dups.as_slice() {
                fds.extend(later.ends.borrow().raw_fds());
            }
            fds
        } else {
            Vec::new()
        };
        let work = Work {
            shared: mine,
            program: calls.clone(),
            report,
            proc,
            holders: program.setup.ends,
            inherited,
            start: start
                .as_ref()
                .map(|b| Barrier::from_fd(dup(std::os::fd::AsFd::as_fd(b))?))
                .transpose()?,
        };
        let mut process = Process::builder().start_method(method).entry(worker, work);
        process.start().context("starting a worker")?;
        workers.push(Worker {
            process,
            reports,
            received: Vec::new(),
            eof: false,
            killed: false,
        });
    }
    let parent = workers.len();
    if let Some(start) = &start {
        // The parent too holds exactly its ends before any call is made.
        shared
            .ends
            .borrow_mut()
            .keep(parent, program.setup.ends)
            .context("closing the parent's pipe ends")?;
        start
            .wait_timeout(Some(PROMPT))
            .context("waiting for the workers to hold exactly their pipe ends")?;
    }
    let mut own: Vec<Report> = Vec::new();
    let mut index = 0;
    let mut killed = Vec::new();
    for step in &program.parent {
        match step {
            Step::AwaitBlocked { procs, on } => {
                let deadline = Instant::now() + PROMPT;
                for &p in procs {
                    let w = workers
                        .get(p)
                        .ok_or_else(|| anyhow!("the parent awaits worker {p} of {parent}"))?;
                    // Only an ordering aid: the judges do not rely on it, so a worker that
                    // ended, or did not block within the bound, is not waited for further.
                    loop {
                        let state = w.process.state()?;
                        let blocked = |b: &BlockedOn| state == ProcessState::Blocked(*b);
                        if blocked_on(*on).iter().any(blocked)
                            || matches!(state, ProcessState::Terminated(_))
                            || Instant::now() >= deadline
                        {
                            break;
                        }
                        std::thread::sleep(Duration::from_micros(200));
                    }
                }
            }
            Step::Call { call } => {
                run_call(
                    shared,
                    |r| {
                        own.push(r);
                        Ok(())
                    },
                    index,
                    *call,
                )?;
                index += 1;
            }
            Step::Kill { proc, after } => {
                let w = workers
                    .get_mut(*proc)
                    .ok_or_else(|| anyhow!("the parent kills worker {proc} of {parent}"))?;
                let deadline = Instant::now() + PROMPT + timeouts(&program.procs[*proc]);
                while w.invocations() < *after && !w.eof && Instant::now() < deadline {
                    w.drain(Duration::from_millis(5))?;
                }
                w.killed = true;
                w.process.kill()?;
                w.process
                    .join_timeout(PROMPT)
                    .context("reaping a killed worker")?;
                if w.process.exitcode()?.is_none() {
                    bail!("worker {proc} survived SIGKILL for {PROMPT:?}");
                }
                // What it managed to report before it died.
                w.drain(Duration::ZERO)?;
                let calls = program.procs[*proc].len();
                killed.push(Death {
                    proc: *proc,
                    by: Some(shared.stamp()?),
                    maybe_exited: w.returns() == calls,
                });
            }
        }
    }
    for (p, w) in workers.iter_mut().enumerate() {
        let bound = PROMPT + timeouts(&program.procs[p]);
        let started = Instant::now();
        let mut deadline = started + bound;
        // A worker that still reports calls, or that is runnable but waits for a CPU (a busy
        // machine), is not stuck: the bound is then counted again from there, up to
        // `STARVED` times the bound in all (a worker spinning without end).
        let last = started + bound * STARVED;
        let mut reports = w.received.len();
        // Keep the pipe drained while waiting, so a worker never blocks on a full pipe.
        while w.process.exitcode()?.is_none() && Instant::now() < deadline {
            w.drain(Duration::from_millis(5))?;
            let running = matches!(w.process.state()?, ProcessState::Running);
            if w.received.len() > reports || running {
                reports = w.received.len();
                deadline = deadline.max((Instant::now() + PROMPT).min(last));
            }
        }
        w.process.join_timeout(Duration::ZERO)?;
        match w.process.exitcode()? {
            Some(0) => {}
            Some(_) if killed.iter().any(|d| d.proc == p) => {}
            Some(code) => bail!("worker {p} exited with {code}"),
            None => bail!(
                "worker {p} did not end: it made no progress for {PROMPT:?} after its calls' \
                 timeouts ({:?} in all); the history so far:\n{}",
                started.elapsed(),
                so_far(program, workers, &own)
            ),
        }
    }
    Ok((killed, own))
}
