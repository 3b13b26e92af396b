#!/usr/bin/env python3
"""CPython comparison and report generator for the proclife benchmarks.

Run it through the one documented command, `bash benches/run.sh`, which runs the criterion
benchmarks first and then this script. On its own:

    python3 benches/compare.py [--since EPOCH] [--report-only] [--output docs/benchmarks.md]

It does two things:

1. It runs `benches/cpython_bench.py`, which measures CPython's `multiprocessing` equivalents
   of the Rust benchmarks on this machine, pinned the same way, and saves them to
   `<criterion home>/cpython-results.json` (`--report-only` reuses that file instead).
2. It reads criterion's results (`<criterion home>/<group>/<function>/<case>/new/
   {benchmark,estimates,sample}.json` and the `proclife-placement.json` the harness writes
   beside `new/`) and writes `docs/benchmarks.md`: the machine, the exact commands, one table per
   group, and the project's performance targets with the measured ratios.

Every benchmark the suite is meant to have is listed in `ROWS`; one that has no result yet is
shown as "not measured yet", never estimated. `--since EPOCH` ignores criterion results older
than the run, so a stale result from an earlier run is never mixed in.

Python 3.11 or newer, standard library only.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

# CROWDS: the crowd sizes of the `scaling/*_alive` benchmarks (benches/benches/scaling.rs).
from cpython_bench import CROWDS, cpu_plan, quick

ROOT = Path(__file__).resolve().parent.parent
# A 1-minute load average at the start of the run from this value up means other work shared
# the machine; the report's header then says so.
SHARED_LOAD = 0.3
CPYTHON_BENCH = ROOT / "benches" / "cpython_bench.py"
EXPLANATIONS = ROOT / "benches" / "explanations.toml"

# ---------------------------------------------------------------------------------------------
# What the suite measures: one row per benchmark ID, in report order.
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    """One benchmark of the report.

    `baseline` is the raw baseline it is compared with (time ratio, lower is better) and
    `cpython` the CPython equivalent (speed-up, higher is better).
    """

    id: str
    what: str
    baseline: str | None = None
    cpython: str | None = None


PARENT_SIZES = [("16MiB", "16 MiB"), ("64MiB", "64 MiB"), ("256MiB", "256 MiB"), ("1GiB", "1 GiB")]


# The children of the `state` benchmarks, and what each is doing.
STATE_CHILDREN = [
    ("kernel_sleep", "asleep in `clock_nanosleep`"),
    ("kernel_read", "in `read` of a pipe (the fd is named too)"),
    ("primitive", "waiting on an `Event` (its status slot says so)"),
]

ROWS: list[Row] = [
    # spawn_join: one process at a time
    Row("spawn_join/raw_fork/seq", "raw glibc `fork`, child `_exit(0)`, `waitpid`", None,
        "cpython/spawn_join/fork/seq"),
    Row("spawn_join/raw_clone3_pidfd/seq",
        "raw `clone3(CLONE_PIDFD)`, child `_exit(0)`, `waitid(P_PIDFD)`",
        "spawn_join/raw_fork/seq", "cpython/spawn_join/fork/seq"),
    Row("spawn_join/fork/seq", "proclife `Process`, fork method: start + join",
        "spawn_join/raw_fork/seq", "cpython/spawn_join/fork/seq"),
    Row("spawn_join/forkserver/seq", "proclife `Process`, forkserver method: start + join",
        "spawn_join/raw_fork/seq", "cpython/spawn_join/forkserver/seq"),
    Row("spawn_join/raw_reexec/seq",
        "raw `fork` + `execve(/proc/self/exe)` that `_exit(0)`s at the top of `main`, `waitpid`",
        None, "cpython/spawn_join/spawn/seq"),
    Row("spawn_join/raw_posix_spawn/seq",
        "raw glibc `posix_spawn` (`CLONE_VM` + `CLONE_VFORK`, no page-table copy) of the same "
        "re-exec, `waitpid`",
        "spawn_join/raw_reexec/seq", "cpython/spawn_join/spawn/seq"),
    Row("spawn_join/spawn/seq",
        "proclife `Process`, spawn (re-exec through `posix_spawn`) method: start + join",
        "spawn_join/raw_reexec/seq", "cpython/spawn_join/spawn/seq"),
    Row("spawn_join/procspawn/seq", "procspawn `spawn` of a closure + `join` (re-exec based)",
        "spawn_join/raw_reexec/seq", "cpython/spawn_join/spawn/seq"),
    Row("cpython/spawn_join/fork/seq", "CPython `Process` start + join, fork context",
        "spawn_join/raw_fork/seq"),
    Row("cpython/spawn_join/forkserver/seq", "CPython `Process` start + join, forkserver context",
        "spawn_join/raw_fork/seq"),
    Row("cpython/spawn_join/spawn/seq", "CPython `Process` start + join, spawn context",
        "spawn_join/raw_reexec/seq"),
    # spawn_join: batches
    Row("spawn_join/raw_fork/batch64", "raw: 64 `fork`s, then 64 `waitpid`s", None,
        "cpython/spawn_join/fork/batch64"),
    Row("spawn_join/fork/batch64", "proclife fork method: start 64, then join all",
        "spawn_join/raw_fork/batch64", "cpython/spawn_join/fork/batch64"),
    Row("cpython/spawn_join/fork/batch64", "CPython fork context: start 64, then join all",
        "spawn_join/raw_fork/batch64"),
    # spawn_join: parent-size sweep
    *[Row(f"spawn_join/raw_fork/parent_{size}",
          f"raw `fork`/`_exit`/`waitpid` from a parent that touched {pretty}", None, None)
      for size, pretty in PARENT_SIZES],
    *[Row(f"spawn_join/{method}/parent_{size}",
          f"proclife {method} method, start + join, parent touched {pretty}",
          f"spawn_join/raw_fork/parent_{size}", None)
      for method in ("fork", "forkserver") for size, pretty in PARENT_SIZES],
    # ipc: round trips
    Row("ipc/raw_pipe/rtt8", "raw: 8 bytes over a pipe to an echo child and back", None,
        "cpython/ipc/pipe/rtt8"),
    Row("ipc/raw_socketpair/rtt8", "raw: 8 bytes over a Unix socket pair to an echo child and back",
        "ipc/raw_pipe/rtt8", "cpython/ipc/pipe/rtt8"),
    Row("ipc/pipe/rtt8", "proclife duplex `Pipe` (`pipe(true)`, a Unix socket pair; `send_bytes`/"
        "`recv_bytes`): 8 bytes to an echo child and back",
        "ipc/raw_socketpair/rtt8", "cpython/ipc/pipe/rtt8"),
    Row("ipc/pipe_oneway/rtt8",
        "proclife two one-way `Pipe`s (`pipe(false)`, pipes, the raw pipe baseline's layout): 8 bytes "
        "to an echo child and back", "ipc/raw_pipe/rtt8", "cpython/ipc/pipe/rtt8"),
    Row("ipc/queue/rtt8", "proclife two `Queue`s (`put`/`get` of byte strings): 8 bytes to an echo "
        "child and back", "ipc/raw_pipe/rtt8", "cpython/ipc/queue/rtt8"),
    Row("cpython/ipc/pipe/rtt8", "CPython `Pipe()` (`send_bytes`/`recv_bytes`): 8-byte round trip",
        "ipc/raw_pipe/rtt8"),
    Row("cpython/ipc/queue/rtt8", "CPython two `Queue`s (`put`/`get`): 8-byte round trip",
        "ipc/raw_pipe/rtt8"),
    # ipc: throughput
    Row("ipc/raw_socketpair/tput64k", "raw: 64 KiB messages one way over a Unix socket pair", None,
        "cpython/ipc/pipe/tput64k"),
    Row("ipc/raw_pipe/tput64k", "raw: 64 KiB messages one way over a pipe",
        "ipc/raw_socketpair/tput64k", "cpython/ipc/pipe/tput64k"),
    Row("ipc/pipe/tput64k", "proclife duplex `Pipe` (`send_bytes`): 64 KiB messages one way",
        "ipc/raw_socketpair/tput64k", "cpython/ipc/pipe/tput64k"),
    Row("ipc/queue/tput64k", "proclife `Queue` (`put` of byte strings): 64 KiB messages one way",
        "ipc/raw_socketpair/tput64k", "cpython/ipc/queue/tput64k"),
    Row("ipc/queue/fresh64k", "the same with a fresh `Queue` (and sink child) for every sample: each sample "
        "includes the first lap through a new 16 MiB ring (256 messages, each page touched for the first time in "
        "each process), so the share of that lap differs with criterion's growing number of messages per sample; "
        "no CPython row, since CPython's queue row reuses one queue",
        "ipc/raw_socketpair/tput64k", None),
    Row("cpython/ipc/pipe/tput64k", "CPython `Pipe()` (`send_bytes`): 64 KiB messages one way",
        "ipc/raw_socketpair/tput64k"),
    Row("cpython/ipc/queue/tput64k", "CPython `Queue` (`put`): 64 KiB messages one way",
        "ipc/raw_socketpair/tput64k"),
    # sync
    Row("sync/raw_pthread_robust/uncontended",
        "raw pshared robust `pthread_mutex` lock + unlock, no other process", None,
        "cpython/sync/lock/uncontended"),
    Row("sync/lock/uncontended", "proclife `Lock` acquire + release, no other process",
        "sync/raw_pthread_robust/uncontended", "cpython/sync/lock/uncontended"),
    Row("cpython/sync/lock/uncontended", "CPython `Lock` acquire + release, no other process",
        "sync/raw_pthread_robust/uncontended"),
    Row("sync/raw_pthread_robust/contended2",
        "raw pshared robust `pthread_mutex` lock + unlock while a child on the other CPU does the same",
        None, "cpython/sync/lock/contended2"),
    Row("sync/lock/contended2", "proclife `Lock` acquire + release against a child on the other CPU",
        "sync/raw_pthread_robust/contended2", "cpython/sync/lock/contended2"),
    Row("cpython/sync/lock/contended2", "CPython `Lock` acquire + release against a child on the other CPU",
        "sync/raw_pthread_robust/contended2"),
    # state: Process.state() on a live, blocked child beside is_alive() on the same child
    *[Row(f"state/is_alive/{child}", f"`is_alive()` on a child {what}", None, None)
      for child, what in STATE_CHILDREN],
    *[Row(f"state/state/{child}", f"`state()` on a child {what}", f"state/is_alive/{child}", None)
      for child, what in STATE_CHILDREN],
    # scaling: cost as the number of live children grows, and wake-up latency
    *[Row(f"scaling/raw_fork_alive/n{n}",
          f"raw `fork`/`_exit`/`waitpid` while {n} raw children sleep in `read`", None, None)
      for n in CROWDS],
    *[Row(f"scaling/raw_fork_pidfd_alive/n{n}",
          f"raw `fork`/`_exit`/`waitpid` while {n} raw children sleep in `read`, each with a pidfd the parent "
          "opened at its birth and holds (as proclife does)",
          f"scaling/raw_fork_alive/n{n}", None)
      for n in CROWDS],
    *[Row(f"scaling/fork_alive/n{n}",
          f"proclife fork method, start + join, while {n} proclife children wait on an `Event`",
          f"scaling/raw_fork_alive/n{n}", f"cpython/scaling/fork_alive/n{n}")
      for n in CROWDS],
    *[Row(f"cpython/scaling/fork_alive/n{n}",
          f"CPython `Process` start + join, fork context, while {n} CPython children wait on an `Event` "
          "(every `start` first polls each live child it started)",
          f"scaling/raw_fork_alive/n{n}")
      for n in CROWDS],
    Row("scaling/raw_fork_join_together/n1000",
        "raw: release 1000 children asleep in `read` (close the pipe) and `waitpid` each", None, None),
    Row("scaling/fork_join_together/n1000",
        "proclife: release 1000 children waiting on an `Event` (`set`) and join each",
        "scaling/raw_fork_join_together/n1000", "cpython/scaling/fork_join_together/n1000"),
    Row("cpython/scaling/fork_join_together/n1000",
        "CPython: release 1000 children waiting on an `Event` (`set`) and join each",
        "scaling/raw_fork_join_together/n1000"),
    Row("scaling/raw_futex/round",
        "raw: a ping and its answer through one shared futex word (two wake-ups)", None, None),
    Row("scaling/event/round", "proclife `Event` pair: `set` the ping, `wait` + `clear` the answer",
        "scaling/raw_futex/round", "cpython/scaling/event/round"),
    Row("scaling/condition/round",
        "proclife `Condition`: give the turn, `notify(1)`, `wait` until it is back",
        "scaling/raw_futex/round", "cpython/scaling/condition/round"),
    Row("scaling/barrier/round", "proclife two-party `Barrier`: one `wait` of each party (one "
        "wake-up: only the first to arrive sleeps; the raw round is two)",
        "scaling/raw_futex/round", "cpython/scaling/barrier/round"),
    Row("cpython/scaling/event/round", "CPython `Event` pair: `set` the ping, `wait` + `clear` the answer",
        "scaling/raw_futex/round"),
    Row("cpython/scaling/condition/round",
        "CPython `Condition`: give the turn, `notify(1)`, `wait` until it is back",
        "scaling/raw_futex/round"),
    Row("cpython/scaling/barrier/round", "CPython two-party `Barrier`: one `wait` of each party (built on a "
        "`Condition`: the first to arrive sleeps until the second notifies it, one wake-up, as proclife's; the raw "
        "round is two)", "scaling/raw_futex/round"),
]

GROUPS = [
    ("spawn_join", "Spawn + join",
     "Time to start a process that exits at once and join it (per process for `seq` and "
     "`parent_*`, per batch of 64 for `batch64`)."),
    ("ipc", "IPC", "Time per 8-byte round trip (`rtt8`) or per 64 KiB message sent one way "
     "(`tput64k`, with the resulting throughput). Each benchmark starts its channel and helper child once and "
     "uses them for all of its samples, as the CPython rows do; `ipc/queue/fresh64k` starts a fresh queue for "
     "every sample instead."),
    ("sync", "Locks", "Time per lock + unlock (acquire + release)."),
    ("state", "State of a blocked child", "Time per `state()` (the pidfd poll, the status slot, "
     "`/proc/<pid>/stat`, and for a kernel wait `/proc/<pid>/syscall` and the fd's link) beside "
     "`is_alive()` (the pidfd poll alone) on the same live child."),
    ("scaling", "Cost as the work grows",
     "Time per start + join while N other children are alive (flat in N means no per-start work grows "
     "with the number of children), per crowd of 1000 released and joined together, and per round of a "
     "ping and its answer between two processes on one CPU (two wake-ups; a barrier round is one), "
     "beside a raw futex pair."),
]


@dataclass(frozen=True)
class Target:
    """A performance target, checked as a ratio of two medians."""

    key: str
    text: str
    num: str
    den: str
    # "time_max": time(num)/time(den) <= limit. "speedup_min": time(den)/time(num) >= limit
    # (num is ours, den the slower comparison). "tput_min": throughput(num)/throughput(den)
    # >= limit, which is time(den)/time(num). "growth_max": num and den are ours at a large
    # and a small size, kernel_num and kernel_den a raw baseline at the same sizes that pays
    # what the kernel charges for the size; (time(num) - (time(kernel_num) -
    # time(kernel_den))) / time(den) <= limit, ours with the baseline's growth taken out.
    kind: str
    limit: float
    note: str = ""
    kernel_num: str | None = None
    kernel_den: str | None = None


# Prefix of the IDs under which a target compares a scaling row's CPU time per start + join
# (from `scaling/footprint.json`) instead of its median wall time.
CPU_PREFIX = "cpu:"

TARGETS: list[Target] = [
    Target("fork_seq", "fork spawn+join ≤ 1.10× raw `fork`/`_exit`/`waitpid`, sequential",
           "spawn_join/fork/seq", "spawn_join/raw_fork/seq", "time_max", 1.10),
    Target("fork_batch", "fork batch of 64 ≤ 1.10× raw forks",
           "spawn_join/fork/batch64", "spawn_join/raw_fork/batch64", "time_max", 1.10),
    Target("fork_vs_cpython", "fork spawn+join ≥ 20× faster than CPython's fork method",
           "spawn_join/fork/seq", "cpython/spawn_join/fork/seq", "speedup_min", 20),
    Target("fork_vs_procspawn", "fork spawn+join ≥ 15× faster than procspawn",
           "spawn_join/fork/seq", "spawn_join/procspawn/seq", "speedup_min", 15,
           "procspawn re-executes the binary for every child, so this compares a fork with a re-exec; "
           "its row comes from `benches/procspawn.rs`, built with the `procspawn` feature that `run.sh` enables"),
    Target("forkserver_small", "forkserver spawn+join ≤ 1.5× raw fork, small parent",
           "spawn_join/forkserver/seq", "spawn_join/raw_fork/seq", "time_max", 1.5),
    Target("forkserver_flat", "forkserver flat as the parent grows: 1 GiB parent ≤ 1.25× 16 MiB parent",
           "spawn_join/forkserver/parent_1GiB", "spawn_join/forkserver/parent_16MiB", "time_max", 1.25,
           "the target says \"flat\"; this report reads it as at most 25 % growth from 16 MiB to 1 GiB; "
           "the fork server is started before the parent touches any of that memory"),
    Target("spawn", "spawn ≤ 1.05× a bare re-exec",
           "spawn_join/spawn/seq", "spawn_join/raw_reexec/seq", "time_max", 1.05),
    Target("pipe_rtt", "duplex `Pipe` 8-byte round trip ≤ 1.10× a raw socket pair",
           "ipc/pipe/rtt8", "ipc/raw_socketpair/rtt8", "time_max", 1.10),
    Target("pipe_oneway_rtt", "one-way `Pipe`s 8-byte round trip ≤ 1.20× a raw pipe",
           "ipc/pipe_oneway/rtt8", "ipc/raw_pipe/rtt8", "time_max", 1.20),
    Target("pipe_tput", "`Pipe` 64 KiB throughput ≥ 0.95× a raw socket pair",
           "ipc/pipe/tput64k", "ipc/raw_socketpair/tput64k", "tput_min", 0.95),
    Target("queue_rtt", "`Queue` 8-byte round trip ≤ 1.5× a raw pipe",
           "ipc/queue/rtt8", "ipc/raw_pipe/rtt8", "time_max", 1.5),
    Target("queue_tput", "`Queue` 64 KiB one way ≤ 1.4× a raw socket pair (time)",
           "ipc/queue/tput64k", "ipc/raw_socketpair/tput64k", "time_max", 1.4),
    Target("queue_tput_cpython", "`Queue` 64 KiB one way ≥ 3× faster than CPython's `Queue`",
           "ipc/queue/tput64k", "cpython/ipc/queue/tput64k", "speedup_min", 3),
    Target("lock_uncontended", "`Lock` ≤ 1.3× the pshared robust mutex, uncontended",
           "sync/lock/uncontended", "sync/raw_pthread_robust/uncontended", "time_max", 1.3),
    Target("scaling_flat", "start + join flat in the number of live children: 4000 alive ≤ 1.25× 10 alive",
           "scaling/fork_alive/n4000", "scaling/fork_alive/n10", "time_max", 1.25,
           "each live child holds a pidfd, which every `fork` copies and every child closes at exit; "
           "`scaling/raw_fork_pidfd_alive` shows what that costs a bare fork, and the next target takes it out; "
           "the target reads \"flat within noise\" as at most 25 % growth"),
    Target("scaling_flat_own", "start + join flat in the number of live children apart from the kernel's cost of a "
           "pidfd per child: 4000 alive, less the pidfd-holding raw fork's growth from 10 to 4000, ≤ 1.25× 10 alive",
           "scaling/fork_alive/n4000", "scaling/fork_alive/n10", "growth_max", 1.25,
           "the growth of `scaling/raw_fork_pidfd_alive` from 10 to 4000 children is the kernel's: `fork` copies "
           "the parent's fd table (`dup_fd`) and the child closes every inherited fd at exit; what is left of "
           "proclife's growth after taking it out is proclife's own",
           kernel_num="scaling/raw_fork_pidfd_alive/n4000", kernel_den="scaling/raw_fork_pidfd_alive/n10"),
    Target("scaling_flat_cpu", "start + join CPU time flat in the number of live children apart from the kernel's "
           "cost of a pidfd per child: CPU per start + join beside 4000, less the pidfd-holding raw fork's CPU growth "
           "from 10 to 4000, ≤ 1.25× beside 10",
           f"{CPU_PREFIX}scaling/fork_alive/n4000", f"{CPU_PREFIX}scaling/fork_alive/n10", "growth_max", 1.25,
           "the same comparison as the one above in CPU time (`getrusage` of the process and its reaped children "
           "around each timed loop, the median over the loops) instead of wall time: what one start + join itself does, without the time it "
           "waits while other work, such as the kernel's threads, uses the CPU or holds the locks `fork` and "
           "`exit` need",
           kernel_num=f"{CPU_PREFIX}scaling/raw_fork_pidfd_alive/n4000",
           kernel_den=f"{CPU_PREFIX}scaling/raw_fork_pidfd_alive/n10"),
    Target("lock_contended", "`Lock` ≤ 1.5× the pshared robust mutex, two processes contending",
           "sync/lock/contended2", "sync/raw_pthread_robust/contended2", "time_max", 1.5),
]

# ---------------------------------------------------------------------------------------------
# Reading criterion's results.
# ---------------------------------------------------------------------------------------------


def criterion_home() -> Path:
    """Same rule as `harness::criterion_home` in the Rust harness."""
    if home := os.environ.get("CRITERION_HOME"):
        return Path(home)
    if target := os.environ.get("CARGO_TARGET_DIR"):
        return Path(target) / "criterion"
    return ROOT / "target" / "criterion"


@dataclass
class Result:
    id: str
    median_ns: float
    samples_ns: list[float]
    throughput: dict | None
    placement: dict | None
    source: str  # "criterion" or "cpython"
    # The kernel threads' CPU while the benchmark ran (`proclife-background.json`); criterion rows only.
    background: dict | None = None

    @property
    def min_ns(self) -> float:
        return min(self.samples_ns)

    @property
    def max_ns(self) -> float:
        return max(self.samples_ns)


def read_criterion(home: Path, since: float | None) -> tuple[dict[str, Result], list[str]]:
    """Criterion results by full ID, and the IDs skipped as older than `since`."""
    results: dict[str, Result] = {}
    stale: list[str] = []
    for bench_file in sorted(home.glob("**/new/benchmark.json")):
        new = bench_file.parent
        meta = json.loads(bench_file.read_text())
        estimates_file, sample_file = new / "estimates.json", new / "sample.json"
        if not (estimates_file.exists() and sample_file.exists()):
            continue
        full_id = meta["full_id"]
        if since is not None and estimates_file.stat().st_mtime < since:
            stale.append(full_id)
            continue
        estimates = json.loads(estimates_file.read_text())
        sample = json.loads(sample_file.read_text())
        per_iter = [t / i for t, i in zip(sample["times"], sample["iters"]) if i > 0]
        placement_file = new.parent / "proclife-placement.json"
        placement = json.loads(placement_file.read_text()) if placement_file.exists() else None
        background_file = new.parent / "proclife-background.json"
        background = (json.loads(background_file.read_text()) if background_file.exists()
                      and (since is None or background_file.stat().st_mtime >= since) else None)
        results[full_id] = Result(full_id, estimates["median"]["point_estimate"], per_iter,
                                  meta.get("throughput"), placement, "criterion", background)
    return results, stale


def cpython_results(doc: dict) -> dict[str, Result]:
    out = {}
    for bench_id, r in doc["results"].items():
        samples = r["samples_ns"]
        out[bench_id] = Result(bench_id, statistics.median(samples), samples, r.get("throughput"),
                               {"placement": r["placement"], "cpus": r["cpus"]}, "cpython")
    return out


# ---------------------------------------------------------------------------------------------
# Formatting.
# ---------------------------------------------------------------------------------------------


def fmt_time(ns: float) -> str:
    for unit, scale in (("s", 1e9), ("ms", 1e6), ("µs", 1e3)):
        if ns >= scale:
            return f"{ns / scale:.3g} {unit}"
    return f"{ns:.3g} ns"


def fmt_throughput(result: Result) -> str:
    tp = result.throughput or {}
    if "Bytes" in tp:
        return f"{tp['Bytes'] / (result.median_ns * 1e-9) / 2**30:.2f} GiB/s"
    if "Elements" in tp:
        per_s = tp["Elements"] / (result.median_ns * 1e-9)
        unit = ("processes" if result.id.startswith(("spawn_join", "cpython/spawn_join"))
                else "children released and joined" if "join_together" in result.id else "")
        return f"{per_s / 1e3:.1f} k {unit}/s" if unit else f"{per_s / 1e3:.1f} k/s"
    return ""


def fmt_ratio(x: float) -> str:
    return f"{x:.3g}×"


def describe_placement(p: dict | None) -> str:
    if not p:
        return "placement not recorded"
    cpus = p.get("cpus", [])
    if p.get("placement") == "two-cpus" and len(cpus) == 2:
        if cpus[0] != cpus[1]:
            return f"parent on CPU {cpus[0]}, contending child on CPU {cpus[1]}"
        return f"parent and contending child both on CPU {cpus[0]} (one CPU allowed)"
    return f"pinned to CPU {cpus[0]}" if cpus else "not pinned"


# A row during which the kernel's threads used at least this share of one CPU says so in its
# placement column.
BUSY_KERNEL_SHARE = 0.10


def kernel_threads(b: dict | None) -> str | None:
    """`74 % of a CPU (kdamond.0 73 %)` from a background record (`proclife-background.json`, or
    the same keys in a footprint record); `None` without one."""
    if not b or b.get("kernel_threads_cpu_share") is None:
        return None
    top = f" ({b['kernel_thread_top']} {b['kernel_thread_top_share'] * 100:.0f} %)" if b.get("kernel_thread_top") else ""
    return f"{b['kernel_threads_cpu_share'] * 100:.0f} % of a CPU{top}"


def describe_background(b: dict | None) -> str:
    """`; kernel threads 74 % of a CPU (kdamond.0 73 %)` when they were busy during the row, else ``."""
    if not b or (b.get("kernel_threads_cpu_share") or 0) < BUSY_KERNEL_SHARE:
        return ""
    return f"; kernel threads {kernel_threads(b)}"


# ---------------------------------------------------------------------------------------------
# The report.
# ---------------------------------------------------------------------------------------------


def run_text(cmd: list[str]) -> str:
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=60, cwd=ROOT,
                              check=False).stdout.strip() or "unknown"
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"


def machine() -> list[tuple[str, str]]:
    cpuinfo = Path("/proc/cpuinfo").read_text()
    model = next((line.split(":", 1)[1].strip() for line in cpuinfo.splitlines()
                  if line.startswith("model name")), "unknown")
    mem_kib = next((int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines()
                    if line.startswith("MemTotal:")), 0)
    thp = Path("/sys/kernel/mm/transparent_hugepage/enabled")
    return [
        ("CPU", model),
        ("CPUs", f"{os.cpu_count()} online (`nproc`: {run_text(['nproc'])})"),
        ("memory", f"{mem_kib / 2**20:.1f} GiB"),
        ("kernel", f"{platform.system()} {platform.release()} {platform.version()}"),
        ("libc", " ".join(platform.libc_ver())),
        ("transparent huge pages", thp.read_text().strip() if thp.exists() else "unknown"),
        ("memory monitoring (DAMON)", damon_state()),
        ("rustc", run_text(["rustc", "-V"])),
        ("cargo", run_text(["cargo", "-V"])),
        ("python", f"{platform.python_implementation()} {platform.python_version()}"),
    ]


def damon_state() -> str:
    """DAMON's monitoring threads (`kdamond`), as configured through its sysfs interface
    (Documentation/admin-guide/mm/damon/usage.rst): whether each runs, what it watches, and the
    actions of its schemes. Their rmap walks grow with the number of processes that map a page."""
    root = Path("/sys/kernel/mm/damon/admin/kdamonds")
    if not root.exists():
        return "no DAMON sysfs interface"

    def read(path: Path) -> str:
        try:
            return path.read_text().strip()
        except OSError:
            return "?"

    kdamonds = sorted((d for d in root.iterdir() if d.name.isdigit()), key=lambda d: int(d.name))
    if not kdamonds:
        return "no kdamond configured"
    described = []
    for d in kdamonds:
        contexts = []
        for ctx in sorted((d / "contexts").glob("[0-9]*"), key=lambda c: int(c.name)):
            sample = read(ctx / "monitoring_attrs" / "intervals" / "sample_us")
            actions = [read(scheme / "action") for scheme in sorted(ctx.glob("schemes/[0-9]*"))]
            contexts.append(f"{read(ctx / 'operations')} monitoring, a sample every {sample} µs"
                            + (f", schemes: {', '.join(actions)}" if actions else ""))
        described.append(f"kdamond {d.name} {read(d / 'state')}" + (": " + "; ".join(contexts) if contexts else ""))
    return "; ".join(described)


def in_this_run(target: Target, results: dict[str, Result], footprints: dict) -> str:
    """A sentence of this run's own figures that bear on a missed target, or ``."""
    if target.key.startswith("scaling_flat"):
        return scaling_in_this_run(results, footprints)
    if target.key in ("fork_vs_cpython", "fork_vs_procspawn"):
        other, name = (("cpython/spawn_join/fork/seq", "CPython's fork start + join")
                       if target.key == "fork_vs_cpython" else ("spawn_join/procspawn/seq", "procspawn's start + join"))
        ids = (other, "spawn_join/fork/seq", "spawn_join/raw_fork/seq")
        if not all(i in results for i in ids):
            return ""
        slow, ours, bare = (results[i].median_ns for i in ids)
        return (f"In this run {name} took {fmt_time(slow)}, so {target.limit:g}× needs proclife's at "
                f"{fmt_time(slow / target.limit)}; it took {fmt_time(ours)}, and a bare fork {fmt_time(bare)}. ")
    if target.key == "forkserver_flat":
        sizes = [("seq", "a parent that touched nothing"), ("parent_16MiB", "16 MiB"), ("parent_64MiB", "64 MiB"),
                 ("parent_256MiB", "256 MiB"), ("parent_1GiB", "1 GiB")]
        shown = [f"{what} {fmt_time(results[f'spawn_join/forkserver/{case}'].median_ns)}"
                 for case, what in sizes if f"spawn_join/forkserver/{case}" in results]
        if len(shown) < 2:
            return ""
        return ("In this run, the forkserver rows by the parent's touched memory: " + ", ".join(shown)
                + " (a rise that does not follow the size is the machine's, not the method's). ")
    return ""


def scaling_in_this_run(results: dict[str, Result], footprints: dict) -> str:
    """The scaling rows' CPU and wall time per start and the kernel threads' CPU at the smallest
    and largest crowd, from this run's footprint records, and CPython's median times at the same
    crowds, as a sentence (empty without any of them)."""
    def row(fn: str, n: int) -> dict | None:
        f = footprints.get(f"{fn}/n{n}")
        return f if f and "cpu_us_per_start" in f else None

    parts = []
    for fn, what in (("fork_alive", "proclife"), ("raw_fork_pidfd_alive", "the pidfd-holding raw fork"),
                     ("raw_fork_alive", "the raw fork")):
        small, large = row(fn, 10), row(fn, 4000)
        if not small or not large:
            continue
        used = kernel_threads(large)
        kthreads = f"kernel threads using {used} beside 4000" if used else "the kernel threads' CPU not readable"
        parts.append(f"{what} {small['cpu_us_per_start']:.0f} -> {large['cpu_us_per_start']:.0f} µs of CPU and "
                     f"{small['wall_us_per_start']:.0f} -> {large['wall_us_per_start']:.0f} µs of wall time per start "
                     f"+ join from 10 to 4000 live children, {kthreads}")
    small, large = CROWDS[0], CROWDS[-1]
    cpython = [results.get(f"cpython/scaling/fork_alive/n{n}") for n in (small, large)]
    cpython_text = ""
    if all(cpython):
        before, after = (r.median_ns for r in cpython)
        cpython_text = (f"CPython's fork start + join, beside crowds of its own children, took {fmt_time(before)} "
                        f"beside {small} and {fmt_time(after)} beside {large} ({after / before:.3g}× the time; the medians of "
                        f"`cpython/scaling/fork_alive/n{small}` and `n{large}` under *Results*). ")
    if not parts:
        return f"In this run, {cpython_text}" if cpython_text else ""
    return ("In this run (`getrusage` around every timed loop, warm-up included, and the median over those loops, "
            "so not quite criterion's medians; see the table under *Results*): " + "; ".join(parts) + ". "
            + cpython_text)


def load_explanations() -> dict:
    if not EXPLANATIONS.exists():
        return {}
    import tomllib

    return tomllib.loads(EXPLANATIONS.read_text()).get("miss", {})


def describe_id(i: str) -> str:
    """A target's value ID as the report names it: `` `id` `` or ``CPU of `id` ``."""
    return f"CPU of `{i.removeprefix(CPU_PREFIX)}`" if i.startswith(CPU_PREFIX) else f"`{i}`"


def target_values(results: dict[str, Result], footprints: dict) -> dict[str, float]:
    """The nanoseconds a target can compare: each result's median under its ID, and each scaling
    row's CPU time per start + join (footprint records) under `cpu:` + its ID."""
    values = {i: r.median_ns for i, r in results.items()}
    for key, f in footprints.items():
        if "cpu_us_per_start" in f:
            values[f"{CPU_PREFIX}scaling/{key}"] = f["cpu_us_per_start"] * 1000
    return values


def evaluate(target: Target, values: dict[str, float]) -> tuple[str, str, str]:
    """(measured, status, gap) for one target, from [`target_values`]."""
    ids = (target.num, target.den, target.kernel_num, target.kernel_den)
    missing = [i for i in ids if i is not None and i not in values]
    if missing:
        return "—", "not measured yet", "no result for " + " and ".join(describe_id(m) for m in missing)
    num, den = values[target.num], values[target.den]
    if target.kind == "growth_max":
        kernel = values[target.kernel_num] - values[target.kernel_den]
        ratio = (num - kernel) / den
        ok = ratio <= target.limit
        def signed(ns: float) -> str:
            return ("−" if ns < 0 else "+") + fmt_time(abs(ns))

        what = "the CPU time" if target.num.startswith(CPU_PREFIX) else "the time"
        measured = (f"{ratio:.3g}× {what} (growth {signed(num - den)}: the kernel's {signed(kernel)}, "
                    f"proclife's own {signed(num - den - kernel)})")
        gap = "" if ok else f"{(ratio / target.limit - 1) * 100:.0f} % over the limit of {target.limit}×"
    elif target.kind == "time_max":
        ratio = num / den
        ok = ratio <= target.limit
        measured = f"{ratio:.3g}× the time"
        gap = "" if ok else f"{(ratio / target.limit - 1) * 100:.0f} % over the limit of {target.limit}×"
    elif target.kind == "speedup_min":
        ratio = den / num
        ok = ratio >= target.limit
        measured = f"{ratio:.3g}× faster"
        gap = "" if ok else f"{(1 - ratio / target.limit) * 100:.0f} % short of {target.limit}×"
    else:  # tput_min
        ratio = den / num
        ok = ratio >= target.limit
        measured = f"{ratio:.3g}× the throughput"
        gap = "" if ok else f"{(1 - ratio / target.limit) * 100:.0f} % short of {target.limit}×"
    return measured, "met" if ok else "missed", gap


def write_report(out: Path, results: dict[str, Result], cpython_doc: dict, stale: list[str],
                 args: argparse.Namespace, plan: tuple[list[int], int, int],
                 machine_rows: list[tuple[str, str]]) -> None:
    now = dt.datetime.now(dt.timezone.utc)
    commit = run_text(["git", "rev-parse", "--short=12", "HEAD"])
    dirty = run_text(["git", "status", "--porcelain", "--untracked-files=no"])
    commit_text = f"`{commit}`" + (" with uncommitted changes" if dirty not in ("", "unknown") else "")
    allowed, primary, secondary = plan
    known = {row.id for row in ROWS}
    skipped: dict[str, str] = cpython_doc.get("skipped", {})
    lines: list[str] = []
    add = lines.append

    add("# Benchmarks")
    add("")
    add(f"Generated by `bash benches/run.sh` on {now:%Y-%m-%d %H:%M} UTC from commit {commit_text}.")
    add("Do not edit by hand: run the command again (see *Reproduce*).")
    add("")
    load_end = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    load_start = args.loadavg_start or "not recorded"
    add(f"Load average (1, 5, 15 min) on this {os.cpu_count()}-CPU machine: {load_start} at the start of the "
        f"run, {load_end} at the end (the benchmarks themselves keep one CPU busy, and the scaling rows' crowds of up "
        "to 4000 children add to the load average while they start, wait in the kernel and exit).")
    try:
        shared = float(load_start.split()[0]) >= SHARED_LOAD
    except (ValueError, IndexError):
        shared = True
    if shared:
        add("")
        add("> **Shared machine:** other work was running when this run started, so absolute times and spreads "
            "are noisier than on a quiet machine and the contended-lock rows may not have had the second CPU to "
            "themselves. A rerun of `bash benches/run.sh` on a quiet machine replaces this report.")
    add("")
    if note := os.environ.get("PROCLIFE_BENCH_NOTE", "").strip():
        add(f"> **Note on this run:** {note}")
        add("")
    if quick() or cpython_doc.get("quick"):
        add("> **Quick mode** (`PROCLIFE_BENCH_QUICK=1`): few, short samples (10 per Rust row after 100 ms of "
            "warm-up over 300 ms, instead of the settings under *Method*; 2 to 5 per CPython row), and CPython's "
            "crowd of 4000 is left out. A smoke run, not for comparison.")
        add("")

    add("## Reproduce")
    add("")
    add("One command, from the repository root, on an otherwise idle machine:")
    add("")
    add("```sh")
    add("bash benches/run.sh")
    add("```")
    add("")
    add("It runs, in this order:")
    add("")
    add("```sh")
    add(args.cargo_command or "cargo bench -p proclife-benches")
    add(shlex.join(["python3", "benches/compare.py", *sys.argv[1:]]))
    add("```")
    add("")
    set_vars = [f"`{k}={v}`" if k != "PROCLIFE_BENCH_NOTE" else f"`{k}` (the note above)"
                for k, v in sorted(os.environ.items()) if k.startswith("PROCLIFE_BENCH_")]
    add("Variables set for this run: " + (", ".join(set_vars) if set_vars else "none") + ".")
    add("")
    add("Environment: `PROCLIFE_BENCH_CPU=N` picks the CPU latency benchmarks are pinned to "
        "(default: the last allowed CPU); `PROCLIFE_BENCH_QUICK=1` selects short smoke-run settings; "
        "`PROCLIFE_BENCH_NOTE=...` adds a note to this header; `CRITERION_HOME` moves criterion's results "
        f"(here `{os.path.relpath(criterion_home(), ROOT)}`).")
    if args.started:
        add("")
        add(f"This run took {(time.time() - args.started) / 60:.1f} min from the first command to this report "
            "(build, Rust benchmarks, CPython benchmarks).")
    add("")

    add("## Machine")
    add("")
    add("| | |")
    add("|---|---|")
    for key, value in machine_rows:
        add(f"| {key} | {value} |")
    load_now = Path("/proc/loadavg").read_text().split()[:3]
    if args.loadavg_start:
        add(f"| load average (1, 5, 15 min) | {args.loadavg_start} at the start, {' '.join(load_now)} at the end |")
    else:
        add(f"| load average (1, 5, 15 min) | {' '.join(load_now)} at the end |")
    add("")
    add("Results are comparable only on the same kind of machine; compare ratios, not absolute times, "
        "across machines.")
    add("")

    add("## Method")
    add("")
    add(f"- Placement: allowed CPUs {allowed}. Every benchmark, Rust and CPython, runs pinned to CPU "
        f"{primary} (`sched_setaffinity`; children inherit the mask), because a wake-up that crosses vCPUs "
        "costs more than a whole fork here. The contended-lock benchmarks are the exception: the parent "
        f"stays on CPU {primary} and the contending child pins itself to CPU {secondary}, since on one CPU "
        "two processes contend only when one is preempted holding the lock. They need that other CPU to be "
        "free: when other work occupies it, the contending child seldom runs and the figure drifts towards "
        "the uncontended one, so compare contended rows only within one quiet run. Each row's placement, as "
        "recorded by the run, is in the *placement* column, which also says when the kernel's own threads "
        f"used {BUSY_KERNEL_SHARE * 100:.0f} % of a CPU or more while the row ran (`/proc/PID/stat` of the children of "
        "`kthreadd` before and after it, with the busiest thread named): such a row was measured beside other "
        "work.")
    add("- Rust: criterion 0.8 without its `rayon` and `plotters` features, so the benchmark process stays "
        "single-threaded; every fork benchmark checks `Threads: 1` in `/proc/self/status` before each sample "
        "and fails otherwise. Fast benchmarks take 50 linearly growing samples over 4 s after 1 s of warm-up; "
        "slow ones (batches, exec, large parents) 20 flat samples over 4 s.")
    add("- CPython: `multiprocessing` from the same machine's `python3`, run by `benches/cpython_bench.py` "
        "(a small main module of its own, because spawn and forkserver children import the parent's main module), "
        "timed with `time.perf_counter_ns` "
        "over a fixed number of samples, each a loop of several iterations (fewer samples for the slow rows: the "
        "spawn context, which takes tens of milliseconds per process, the batches of 64, and the crowds of 1000 "
        "released together, each sample a crowd of its own). Pipe benchmarks use `send_bytes`/`recv_bytes` "
        "on a duplex `Pipe()` (a Unix socket pair); Queue benchmarks `put`/`get` bytes objects; lock benchmarks "
        "call the bound `acquire`/`release` methods of a `multiprocessing.Lock` in a loop. These are CPython's "
        "fastest paths for each operation, so the speed-ups are not flattered. The scaling rows' crowds are daemon "
        "`Process`es of the fork context waiting on one `Event`, as proclife's are; CPython's `Process.start` first "
        "polls every live child it started (`multiprocessing.process._cleanup`), a cost per start that grows with the "
        "crowd, so those rows show CPython's own growth.")
    add("- proclife rows: `spawn_join/fork/*` is `Process::new(|| ())`, `start`, `join` (bounded), `exitcode() == "
        "Some(0)`, `close`, as a user writes it; `spawn_join/forkserver/*` and `spawn_join/spawn/seq` are the same "
        "life-cycle with `Process::builder().start_method(m).entry(noop, ())`, a function registered with "
        "`proclife::entry!` that returns at once (the fork server is started before its rows are timed and before "
        "the parent-size sweep touches memory). The IPC and lock rows run proclife's code at both ends, but their "
        "helper children are forked by the same raw helper as the baselines' (how a process starts is what "
        "`spawn_join` measures), so a row differs from its baseline only in the channel or lock under test. "
        "`Queue` rows carry byte strings (serde `serialize_bytes`, as CPython puts `bytes`), and every `put`/`get` of "
        "the parent has a bound, as CPython's `get(timeout=...)` has. Both lock kinds protect the same counter on a "
        "control page of its own. `spawn_join/procspawn/seq` comes from the separate `procspawn` bench binary "
        "(feature `procspawn`, enabled by `run.sh`).")
    add("- Every iteration checks its result and reaps its children: exit status 0 for every process; echoes "
        "compared byte for byte; streamed 64 KiB messages checked by sequence stamps at both ends and "
        "acknowledged by count; the raw lock's shared counter must advance by exactly the iterations of both "
        "processes. A failed check stops the run instead of producing a time.")
    add("- *median* is the median over samples of the mean time per iteration; *min–max* the range of those "
        "sample means. *vs raw* is this row's median time divided by its raw baseline's (lower is better; "
        "for throughput rows the throughput ratio is its inverse). *vs CPython* is the CPython equivalent's "
        "median time divided by this row's (how many times faster; higher is better).")
    add("")

    add("## Results")
    add("")
    measured_ids = set(results)
    for group, title, blurb in GROUPS:
        add(f"### {title} (`{group}`)")
        add("")
        add(blurb)
        add("")
        add("| ID | what | median | min–max | throughput | vs raw | vs CPython | samples | placement |")
        add("|---|---|---|---|---|---|---|---|---|")
        rows = [r for r in ROWS if r.id.removeprefix("cpython/").split("/")[0] == group]
        rows += [Row(i, "(not in the report's catalogue)") for i in sorted(measured_ids - known)
                 if i.removeprefix("cpython/").split("/")[0] == group]
        for row in rows:
            r = results.get(row.id)
            if r is None:
                status = f"not measured ({skipped[row.id]})" if row.id in skipped else "not measured yet"
                add(f"| `{row.id}` | {row.what} | {status} | | | | | | |")
                continue
            base = results.get(row.baseline) if row.baseline else None
            vs_raw = fmt_ratio(r.median_ns / base.median_ns) if base else ("baseline" if row.baseline is None else "—")
            if row.id.startswith("cpython/"):
                vs_cpy = "—"
            else:
                cp = results.get(row.cpython) if row.cpython else None
                vs_cpy = (fmt_ratio(cp.median_ns / r.median_ns) if cp else
                          f"not measured (see `{row.cpython}`)" if row.cpython in skipped else "—")
            add(f"| `{row.id}` | {row.what} | {fmt_time(r.median_ns)} | {fmt_time(r.min_ns)} – {fmt_time(r.max_ns)} "
                f"| {fmt_throughput(r)} | {vs_raw} | {vs_cpy} | {len(r.samples_ns)} "
                f"| {describe_placement(r.placement)}{describe_background(r.background)} |")
        add("")

    footprint_path = criterion_home() / "scaling" / "footprint.json"
    footprints: dict = {}
    if footprint_path.exists() and (args.since is None or footprint_path.stat().st_mtime >= args.since):
        footprints = json.loads(footprint_path.read_text())
        add("What each live child costs the parent (bytes: the heap in use, from glibc's `mallinfo2`, and resident "
            "shared memory, from `/proc/self/smaps`; open file descriptors from `/proc/self/fd`; right before the crowd's first child and after its last, divided by its "
            "size, so a few bytes below zero are heap the process freed between the two readings; every crowd starts and ends one member first, a proclife crowd with a start + join, so that what "
            "a first start sets up once is not counted), what one start + join beside the crowd cost in CPU time and in wall time "
            "(the process and its reaped children, `getrusage` around each timed loop; the median over every timed "
            "loop, warm-up included, of the time per start, so not criterion's *median*: on a busy machine the two can differ by tens of "
            "percent), and how much CPU the "
            "kernel's own threads used while the row ran (`/proc/PID/stat` of the children of `kthreadd`; a share of "
            "one CPU, with the busiest thread). Wall time well above CPU time means the starts waited for something "
            "else: on a machine whose memory DAMON watches (see *Machine*), `kdamond` checks each sampled page "
            "through its reverse map, which visits every process mapping it, so a crowd of thousands of forked "
            "children sharing the parent's pages makes it busy, on the benchmark's CPU too, and its walks hold "
            "the `anon_vma` locks that `fork` and `exit` need:")
        add("")
        add("| crowd | bytes per child | fds per child | CPU per start + join | wall per start + join "
            "| kernel threads' CPU during the row |")
        add("|---|---|---|---|---|---|")
        for key, f in footprints.items():
            cpu = f.get("cpu_us_per_start")
            wall = f.get("wall_us_per_start")
            kthreads = kernel_threads(f) or "—"
            add(f"| `scaling/{key}` | {f['bytes_per_child']:.0f} | {f['fds_per_child']:.2f} "
                f"| {'—' if cpu is None else fmt_time(cpu * 1000)} | {'—' if wall is None else fmt_time(wall * 1000)} "
                f"| {kthreads} |")
        add("")

    add("## Targets")
    add("")
    add("The project's performance targets, checked on the medians above. They are targets for this report, not timed tests.")
    add("")
    add("| target | compares | measured | status |")
    add("|---|---|---|---|")
    explanations = load_explanations()
    values = target_values(results, footprints)
    misses = []
    for t in TARGETS:
        measured, status, gap = evaluate(t, values)
        shown = status if not gap else (f"{status} ({gap})" if status != "missed" else f"{status}: {gap}")
        compares = f"{describe_id(t.num)} vs {describe_id(t.den)}"
        if t.kernel_num and t.kernel_den:
            compares += f", less {describe_id(t.kernel_num)} − {describe_id(t.kernel_den)}"
        add(f"| {t.text} (`{t.key}`) | {compares} | {measured} | {shown} |")
        if status == "missed":
            misses.append((t, gap))
    add("")
    notes = [t for t in TARGETS if t.note]
    if notes:
        for t in notes:
            add(f"- *{t.text}* (`{t.key}`): {t.note}.")
        add("")
    if misses:
        add("### Why the missed targets are missed")
        add("")
        for t, gap in misses:
            entry = explanations.get(t.key, {})
            why = " ".join(entry.get("why", "").split())
            fix = " ".join(entry.get("fix", "").split())
            measured_here = in_this_run(t, results, footprints)
            add(f"- **{t.text}** (`{t.key}`) — {gap}. " + measured_here + (why if why else
                f"*Not yet explained: add `[miss.{t.key}] why = \"...\"` to `benches/explanations.toml`.*"))
            if fix:
                add(f"  *What would close it:* {fix}")
        add("")

    not_measured = [r.id for r in ROWS if r.id not in results]
    if not_measured or stale:
        add("## Not measured in this run")
        add("")
        if not_measured:
            add("These benchmarks are part of the suite's plan but have no result in this run; their rows say "
                "*not measured* (with the reason, where the run recorded one) and the targets that need them "
                "*not measured yet*, rather than show an estimate:")
            add("")
            add(", ".join(f"`{i}`" + (f" ({skipped[i]})" if i in skipped else "") for i in not_measured) + ".")
            add("")
        if stale:
            add("Results older than this run were found and ignored: " + ", ".join(f"`{i}`" for i in stale) + ".")
            add("")

    tmp = out.with_suffix(".md.tmp")
    tmp.parent.mkdir(parents=True, exist_ok=True)
    tmp.write_text("\n".join(lines))
    tmp.replace(out)


def main() -> int:
    if sys.version_info < (3, 11):
        print("benches/compare.py needs Python 3.11 or newer", file=sys.stderr)
        return 2
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--since", type=float, default=None,
                        help="ignore criterion results older than this Unix time (run.sh passes its start)")
    parser.add_argument("--report-only", action="store_true",
                        help="reuse the saved CPython results instead of measuring again")
    parser.add_argument("--output", type=Path, default=ROOT / "docs" / "benchmarks.md")
    parser.add_argument("--cargo-command", default=None, help="the cargo command run.sh ran, for the report")
    parser.add_argument("--started", type=float, default=None, help="Unix time the whole run started")
    parser.add_argument("--loadavg-start", default=None, help="/proc/loadavg at the start of the run")
    args = parser.parse_args()

    # Both are taken before this process pins itself, so they show the machine as it is.
    plan = cpu_plan()
    machine_rows = machine()
    home = criterion_home()
    saved = home / "cpython-results.json"
    if args.report_only:
        if not saved.exists():
            print(f"--report-only: {saved} does not exist; run without it first", file=sys.stderr)
            return 2
        cpython_doc = json.loads(saved.read_text())
    else:
        saved.parent.mkdir(parents=True, exist_ok=True)
        # A separate interpreter, so that spawn and forkserver children import only that small
        # script as their main module (see its docstring).
        subprocess.run([sys.executable, str(CPYTHON_BENCH), "--out", str(saved)], check=True, cwd=ROOT)
        cpython_doc = json.loads(saved.read_text())

    results, stale = read_criterion(home, args.since)
    if not results:
        print(f"warning: no criterion results under {home}", file=sys.stderr)
    results.update(cpython_results(cpython_doc))
    write_report(args.output, results, cpython_doc, stale, args, plan, machine_rows)
    print(f"wrote {os.path.relpath(args.output, ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
