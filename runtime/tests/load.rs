//! Load: a thousand live children at once (catalogue item T41), and the parent's mappings
//! flat as they grow from 10 to thousands.

#[macro_use]
extern crate proclife_testkit;
use proclife_testkit as common;

use common::{Gate, TestResult, join_code};
use nix::sys::resource::{Resource, getrlimit, setrlimit};
use proclife::{Process, active_children};

/// The lines of `/proc/self/maps`: the mappings (VMAs) a `fork()` of this process copies.
fn mappings() -> Result<usize, String> {
    std::fs::read_to_string("/proc/self/maps")
        .map(|maps| maps.lines().count())
        .map_err(|e| format!("read /proc/self/maps: {e}"))
}

/// Mappings the parent may gain between 10 and `count` live children: the status slots'
/// region grows inside one reservation (at most two mappings), and a growing table may move
/// into a mapping of its own; one mapping per 64 children would be 15 or more at 1000.
const MAPPINGS_SLACK: usize = 4;

/// Starts `count` children blocked on a gate, checks they are all alive, that the parent
/// holds one fd per child and that its mappings did not grow with the children, then
/// releases and joins them all.
fn thousand_alive(count: usize, step: impl Fn()) -> Result<(), String> {
    let base = common::fd_snapshot().len();
    let mut gate = Gate::new();
    let mut children = Vec::with_capacity(count);
    let mut mappings_at_10 = 0;
    for i in 0..count {
        let mut p = Process::new(gate.waiter());
        p.start().map_err(|e| format!("start #{i}: {e}"))?;
        children.push(p);
        if i + 1 == 10 {
            mappings_at_10 = mappings()?;
        }
        if i % 100 == 0 {
            step();
        }
    }
    let mappings_now = mappings()?;
    if mappings_now > mappings_at_10 + MAPPINGS_SLACK {
        return Err(format!(
            "{mappings_now} mappings with {count} live children, {mappings_at_10} with 10: \
             expected at most {MAPPINGS_SLACK} more"
        ));
    }
    for p in &children {
        if !p.is_alive().map_err(|e| e.to_string())? {
            return Err(format!("{} is not alive", p.name()));
        }
    }
    let live = active_children().map_err(|e| e.to_string())?.len();
    if live != count {
        return Err(format!("{live} active children, expected {count}"));
    }
    let fds = common::fd_snapshot().len();
    // The gate's two ends plus exactly one pidfd per child.
    if fds != base + 2 + count {
        return Err(format!("{fds} fds for {count} children (base {base})"));
    }
    gate.open();
    // Releasing them all is work: the bound is no exit for QUIET, not a total.
    let mut progress = common::wait::Progress::new(format!("{count} released children"));
    for p in &children {
        let code = progress.join_code(p).map_err(|e| e.to_string())?;
        step();
        if code != 0 {
            return Err(format!("{} exited with {code}", p.name()));
        }
    }
    drop(children);
    drop(gate);
    if !common::zombies().is_empty() {
        return Err("zombies left".to_owned());
    }
    if common::fd_snapshot().len() != base {
        return Err("fds left".to_owned());
    }
    Ok(())
}

/// T41 at the default soft limit of 1024 fds, in a helper that lowers its own limit.
fn t41_thousand_children_at_1024_fds() -> TestResult {
    common::helper::in_helper("t41-1024", |report| {
        let (_, hard) = getrlimit(Resource::RLIMIT_NOFILE)?;
        setrlimit(Resource::RLIMIT_NOFILE, 1024, hard)?;
        thousand_alive(1000, || report.step())?;
        Ok(())
    })
}

/// T41 with the limit raised: 4000 live children (the catalogue's number), in a helper
/// that raises its own `RLIMIT_NOFILE` to fit them (one pidfd each).
fn t41_four_thousand_children() -> TestResult {
    common::helper::in_helper("t41-4000", |report| {
        let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE)?;
        let needed = 4000 + 64;
        if hard < needed {
            return Err(common::helper::Stop::Skip(format!(
                "the hard RLIMIT_NOFILE is {hard}, 4000 children need {needed}"
            )));
        }
        setrlimit(Resource::RLIMIT_NOFILE, soft.max(needed), hard)?;
        thousand_alive(4000, || report.step())?;
        Ok(())
    })
}

/// T41: sequential start/join cycles keep fd use flat.
fn t41_sequential_cycles() -> TestResult {
    let before = common::fd_snapshot();
    for _ in 0..3000 {
        let mut p = Process::new(|| ());
        p.start()?;
        ensure_eq!(join_code(&p)?, 0);
    }
    ensure_eq!(common::fd_snapshot(), before);
    Ok(())
}

fn main() {
    common::run(vec![
        (
            "t41_thousand_children_at_1024_fds",
            t41_thousand_children_at_1024_fds,
        ),
        ("t41_four_thousand_children", t41_four_thousand_children),
        ("t41_sequential_cycles", t41_sequential_cycles),
    ]);
}
