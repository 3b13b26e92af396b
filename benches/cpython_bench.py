#!/usr/bin/env python3
"""CPython `multiprocessing` equivalents of the proclife benchmarks.

`benches/compare.py` runs this script as a separate process, right after the Rust benchmarks:

    python3 benches/cpython_bench.py --out RESULTS.json

It is a script of its own, with few imports at the top, because CPython's spawn and forkserver
start methods import the parent's main module in every child: measuring them from the report
generator would charge CPython for importing the generator. The start+join figures here are
therefore CPython's with a minimal main module, as a user's small program would have.

Placement follows the Rust harness (`benches/src/cpu.rs`): everything pinned to
`PROCLIFE_BENCH_CPU`, else the last allowed CPU; the contending child of the contended lock on
the first other allowed CPU. `PROCLIFE_BENCH_QUICK=1` takes fewer samples.

Every child's exit code must be 0, echoes must equal what was sent, streamed messages carry
sequence stamps that the receiver checks, and every wait on a child has a bound.

Python 3.11 or newer, standard library only.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import sys
import time

MSG_64K = 64 * 1024
BATCH = 64
BOUND_S = 30.0  # every wait on a child has this bound
# The crowd sizes of the `scaling/*_alive` rows and of `*_join_together`, as in
# benches/benches/scaling.rs.
CROWDS = (10, 100, 1000, 4000)
TOGETHER = 1000
# Memory a live CPython crowd child holds, an upper bound: each child keeps the copies of the
# pages the parent wrote after forking it (reference counts), about 3 MiB per child measured
# with `free` beside 4000 of them. A crowd is not started without this much available, and
# 1 GiB more.
CROWD_CHILD_BYTES = 4 * 2**20

# ---------------------------------------------------------------------------------------------
# Placement: the same rule as benches/src/cpu.rs.
# ---------------------------------------------------------------------------------------------


def cpu_plan() -> tuple[list[int], int, int]:
    """(allowed CPUs, primary, secondary), chosen like `CpuPlan::choose` in the Rust harness."""
    allowed = sorted(os.sched_getaffinity(0))
    requested = os.environ.get("PROCLIFE_BENCH_CPU")
    if requested is not None:
        primary = int(requested)
        if primary not in allowed:
            sys.exit(f"PROCLIFE_BENCH_CPU={primary} is not in the allowed CPUs {allowed}")
    else:
        primary = allowed[-1]
    secondary = next((c for c in allowed if c != primary), primary)
    return allowed, primary, secondary


def quick() -> bool:
    value = os.environ.get("PROCLIFE_BENCH_QUICK", "")
    return value not in ("", "0")


# ---------------------------------------------------------------------------------------------
# CPython measurements. Children are module-level functions so that forkserver and spawn can
# import them; this module has no side effects at import.
# ---------------------------------------------------------------------------------------------


class CheckFailed(RuntimeError):
    """A CPython benchmark saw a wrong result."""


def _noop() -> None:
    pass


def _stamp(seq: int) -> tuple[bytes, bytes]:
    return seq.to_bytes(8, "little"), ((~seq) & 0xFFFF_FFFF_FFFF_FFFF).to_bytes(8, "little")


def _message(seq: int) -> bytes:
    head, tail = _stamp(seq)
    return head + bytes(MSG_64K - 16) + tail


def _check_message(msg: bytes, seq: int) -> bool:
    head, tail = _stamp(seq)
    return len(msg) == MSG_64K and msg[:8] == head and msg[-8:] == tail


def _pipe_echo(conn, parent_end) -> None:
    parent_end.close()  # so that closing the parent's end is an end of file here
    while True:
        try:
            msg = conn.recv_bytes()
        except EOFError:
            return
        conn.send_bytes(msg)


def _pipe_sink(conn, parent_end) -> None:
    parent_end.close()  # so that closing the parent's end is an end of file here
    while True:
        try:
            header = conn.recv_bytes()
        except EOFError:
            return
        count = int.from_bytes(header, "little")
        for seq in range(count):
            if not _check_message(conn.recv_bytes(), seq):
                sys.exit(4)
        conn.send_bytes(header)


def _queue_echo(q_in, q_out) -> None:
    while (msg := q_in.get()) is not None:
        q_out.put(msg)


def _queue_sink(q_in, q_out) -> None:
    while (count := q_in.get()) is not None:
        for seq in range(count):
            if not _check_message(q_in.get(), seq):
                sys.exit(4)
        q_out.put(count)


def _lock_contender(lock, stop, ready, child_iterations, cpu) -> None:
    os.sched_setaffinity(0, {cpu})
    acquire, release = lock.acquire, lock.release
    n = 0
    while True:
        acquire()
        release()
        n += 1
        if n == 1:
            ready.value = 1
        if stop.value:
            break
    child_iterations.value = n


def _crowd_member(release) -> None:
    # Untimed, as the proclife crowd's `Event::wait(None)`: the parent's `finish` sets the
    # event, and a daemon child is terminated by multiprocessing if the parent exits first.
    if not release.wait():
        sys.exit(3)


def _event_echo(ping, pong, stop, answered) -> None:
    while True:
        if not ping.wait(BOUND_S):
            sys.exit(3)
        ping.clear()
        if stop.value:
            return
        answered.value += 1
        pong.set()


def _condition_echo(cond, childs, stop, answered) -> None:
    with cond:
        while True:
            while not childs.value:
                if not cond.wait(BOUND_S):
                    sys.exit(3)
            if stop.value:
                return
            answered.value += 1
            childs.value = 0
            cond.notify(1)


def _barrier_party(barrier, announced, answered) -> None:
    while True:
        barrier.wait(BOUND_S)
        n = announced.value
        if n == 0:
            return
        for _ in range(n):
            barrier.wait(BOUND_S)
            answered.value += 1


def _join(proc, check_exit: bool = True) -> None:
    """Joins `proc` within `BOUND_S`, killing it after that; raises `CheckFailed` when it had
    to be killed or, with `check_exit`, when it exited with anything but 0."""
    proc.join(BOUND_S)
    if proc.exitcode is None:
        proc.kill()
        proc.join(BOUND_S)
        raise CheckFailed(f"child {proc.pid} did not exit within {BOUND_S} s")
    if check_exit and proc.exitcode != 0:
        raise CheckFailed(f"child {proc.pid} exited with {proc.exitcode}")


def _sample(run, samples: int, inner: int, warmup: int = 1) -> list[float]:
    """Per-iteration nanoseconds of `samples` samples, each timing `run(inner)`."""
    for _ in range(warmup):
        run(inner)
    out = []
    for _ in range(samples):
        start = time.perf_counter_ns()
        run(inner)
        out.append((time.perf_counter_ns() - start) / inner)
    return out


def bench_start_join(method: str, samples: int, inner: int) -> list[float]:
    ctx = mp.get_context(method)

    def run(n: int) -> None:
        for _ in range(n):
            proc = ctx.Process(target=_noop)
            proc.start()
            _join(proc)

    return _sample(run, samples, inner)


def bench_batch(samples: int) -> list[float]:
    ctx = mp.get_context("fork")

    def run(n: int) -> None:
        for _ in range(n):
            procs = [ctx.Process(target=_noop) for _ in range(BATCH)]
            for proc in procs:
                proc.start()
            for proc in procs:
                _join(proc)

    return _sample(run, samples, 1)


def bench_pipe_rtt(samples: int, inner: int) -> list[float]:
    ctx = mp.get_context("fork")
    parent, child = ctx.Pipe()
    proc = ctx.Process(target=_pipe_echo, args=(child, parent))
    proc.start()
    child.close()
    msgs = [i.to_bytes(8, "little") for i in range(inner)]
    send, recv = parent.send_bytes, parent.recv_bytes

    def run(n: int) -> None:
        for msg in msgs[:n]:
            send(msg)
            if recv() != msg:
                raise CheckFailed("echo differs from the message sent")

    try:
        return _sample(run, samples, inner)
    finally:
        parent.close()
        _join(proc)


def bench_pipe_tput(samples: int, inner: int) -> list[float]:
    ctx = mp.get_context("fork")
    parent, child = ctx.Pipe()
    proc = ctx.Process(target=_pipe_sink, args=(child, parent))
    proc.start()
    child.close()
    msgs = [_message(seq) for seq in range(inner)]

    def run(n: int) -> None:
        header = n.to_bytes(8, "little")
        parent.send_bytes(header)
        for msg in msgs[:n]:
            parent.send_bytes(msg)
        if not parent.poll(BOUND_S) or parent.recv_bytes() != header:
            raise CheckFailed("the sink did not acknowledge every message")

    try:
        return _sample(run, samples, inner)
    finally:
        parent.close()
        _join(proc)


def bench_queue_rtt(samples: int, inner: int) -> list[float]:
    ctx = mp.get_context("fork")
    q_in, q_out = ctx.Queue(), ctx.Queue()
    proc = ctx.Process(target=_queue_echo, args=(q_in, q_out))
    proc.start()
    msgs = [i.to_bytes(8, "little") for i in range(inner)]

    def run(n: int) -> None:
        for msg in msgs[:n]:
            q_in.put(msg)
            if q_out.get(timeout=BOUND_S) != msg:
                raise CheckFailed("echo differs from the message sent")

    try:
        return _sample(run, samples, inner)
    finally:
        q_in.put(None)
        _join(proc)
        for q in (q_in, q_out):
            q.close()
            q.join_thread()


def bench_queue_tput(samples: int, inner: int) -> list[float]:
    import queue

    ctx = mp.get_context("fork")
    q_in, q_out = ctx.Queue(), ctx.Queue()
    proc = ctx.Process(target=_queue_sink, args=(q_in, q_out))
    proc.start()
    msgs = [_message(seq) for seq in range(inner)]

    def run(n: int) -> None:
        q_in.put(n)
        for msg in msgs[:n]:
            q_in.put(msg)
        try:
            acked = q_out.get(timeout=BOUND_S)
        except queue.Empty:
            raise CheckFailed("the sink did not acknowledge in time") from None
        if acked != n:
            raise CheckFailed(f"sent {n} messages, sink acknowledged {acked}")

    try:
        return _sample(run, samples, inner)
    finally:
        q_in.put(None)
        _join(proc)
        for q in (q_in, q_out):
            q.close()
            q.join_thread()


def bench_lock_uncontended(samples: int, inner: int) -> list[float]:
    lock = mp.get_context("fork").Lock()
    acquire, release = lock.acquire, lock.release

    def run(n: int) -> None:
        for _ in range(n):
            acquire()
            release()

    out = _sample(run, samples, inner)
    if not lock.acquire(False):
        raise CheckFailed("the lock is still held after the benchmark")
    lock.release()
    return out


def bench_lock_contended(samples: int, inner: int, helper_cpu: int) -> list[float]:
    ctx = mp.get_context("fork")
    lock = ctx.Lock()
    stop, ready = ctx.RawValue("b", 0), ctx.RawValue("b", 0)
    child_iterations = ctx.RawValue("Q", 0)
    proc = ctx.Process(target=_lock_contender, args=(lock, stop, ready, child_iterations, helper_cpu))
    proc.start()
    deadline = time.monotonic() + BOUND_S
    while not ready.value:
        if not proc.is_alive() or time.monotonic() > deadline:
            proc.kill()
            proc.join(BOUND_S)
            raise CheckFailed("the contending child did not start")
        time.sleep(0.0001)
    acquire, release = lock.acquire, lock.release

    def run(n: int) -> None:
        for _ in range(n):
            acquire()
            release()

    try:
        return _sample(run, samples, inner)
    finally:
        stop.value = 1
        _join(proc)
        if child_iterations.value == 0:
            raise CheckFailed("the contending child ran no iteration")


class Skipped(Exception):
    """A benchmark this machine cannot run; its reason goes into the results document."""


def _mem_available() -> int:
    """`MemAvailable` of /proc/meminfo in bytes (0 when it cannot be read)."""
    try:
        with open("/proc/meminfo", encoding="ascii") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


class _Crowd:
    """`n` live daemon children of the fork context, each waiting on one `Event`, as the
    proclife crowd of benches/src/crowd.rs. Every `Process.start` of CPython first polls each
    live child it started (`multiprocessing.process._cleanup`), so starting a crowd of `n`
    takes time quadratic in `n`."""

    def __init__(self, n: int) -> None:
        need = n * CROWD_CHILD_BYTES + 2**30
        available = _mem_available()
        if available < need:
            raise Skipped(f"a crowd of {n} CPython children needs about {need / 2**30:.1f} GiB of memory, "
                          f"{available / 2**30:.1f} GiB is available")
        ctx = mp.get_context("fork")
        self.release = ctx.Event()
        self.procs = []
        try:
            for _ in range(n):
                proc = ctx.Process(target=_crowd_member, args=(self.release,), daemon=True)
                proc.start()
                self.procs.append(proc)
        except BaseException:
            self.finish(raising=False)
            raise

    def finish(self, raising: bool = True) -> None:
        """Sets the event and joins every child; raises `CheckFailed` for the first that did
        not exit with 0 within the bound (after joining, or killing, all of them)."""
        self.release.set()
        failure = None
        for proc in self.procs:
            try:
                _join(proc)
            except CheckFailed as err:
                failure = failure or err
        self.procs = []
        if failure is not None and raising:
            raise failure


def bench_alive(n: int, samples: int, inner: int) -> list[float]:
    """Fork start + join while a crowd of `n` children is alive."""
    crowd = _Crowd(n)
    try:
        out = bench_start_join("fork", samples, inner)
    except BaseException:
        crowd.finish(raising=False)
        raise
    crowd.finish()
    return out


def bench_join_together(samples: int) -> list[float]:
    """Per sample: a fresh crowd of `TOGETHER` (not timed), then its release and joins (timed);
    nanoseconds per crowd."""
    out = []
    for _ in range(samples):
        crowd = _Crowd(TOGETHER)
        start = time.perf_counter_ns()
        crowd.finish()
        out.append(float(time.perf_counter_ns() - start))
    return out


def _time_rounds(proc, answered, samples: int, inner: int, one_round, stop) -> list[float]:
    """Starts `proc`, times `one_round()` as `_sample` does, then `stop()`s it, joins it and
    checks that it answered every round (warm-up included)."""
    proc.start()
    rounds = 0

    def run(n: int) -> None:
        nonlocal rounds
        for _ in range(n):
            one_round()
            rounds += 1

    try:
        return _sample(run, samples, inner)
    finally:
        stop()
        _checked_rounds(proc, answered, rounds)


def _checked_rounds(proc, answered, rounds: int) -> None:
    """Joins `proc` (exit code 0) and checks that it answered `rounds` rounds."""
    _join(proc)
    if answered.value != rounds:
        raise CheckFailed(f"the child answered {answered.value} rounds of {rounds}")


def bench_event_round(samples: int, inner: int) -> list[float]:
    """`set` the ping, `wait` + `clear` the answer; the child does the same the other way."""
    ctx = mp.get_context("fork")
    ping, pong = ctx.Event(), ctx.Event()
    stop, answered = ctx.RawValue("b", 0), ctx.RawValue("Q", 0)

    def one_round() -> None:
        ping.set()
        if not pong.wait(BOUND_S):
            raise CheckFailed(f"no answer to an Event ping within {BOUND_S} s")
        pong.clear()

    def stop_child() -> None:
        stop.value = 1
        ping.set()

    proc = ctx.Process(target=_event_echo, args=(ping, pong, stop, answered))
    return _time_rounds(proc, answered, samples, inner, one_round, stop_child)


def bench_condition_round(samples: int, inner: int) -> list[float]:
    """Give the turn, `notify(1)`, `wait` until it is back (the child does the same)."""
    ctx = mp.get_context("fork")
    cond = ctx.Condition()
    childs, stop, answered = ctx.RawValue("b", 0), ctx.RawValue("b", 0), ctx.RawValue("Q", 0)

    def one_round() -> None:
        with cond:
            childs.value = 1
            cond.notify(1)
            while childs.value:
                if not cond.wait(BOUND_S):
                    raise CheckFailed(f"no answer to a Condition ping within {BOUND_S} s")

    def stop_child() -> None:
        with cond:
            stop.value = 1
            childs.value = 1
            cond.notify(1)

    proc = ctx.Process(target=_condition_echo, args=(cond, childs, stop, answered))
    return _time_rounds(proc, answered, samples, inner, one_round, stop_child)


def bench_barrier_round(samples: int, inner: int) -> list[float]:
    """One `wait` of each party of a two-party `Barrier` per round. Before each sample the
    parent announces its number of rounds and meets the child once, untimed."""
    ctx = mp.get_context("fork")
    barrier = ctx.Barrier(2)
    announced, answered = ctx.RawValue("Q", 0), ctx.RawValue("Q", 0)
    proc = ctx.Process(target=_barrier_party, args=(barrier, announced, answered))
    proc.start()
    rounds = 0

    def timed(n: int) -> float:
        nonlocal rounds
        announced.value = n
        barrier.wait(BOUND_S)
        start = time.perf_counter_ns()
        for _ in range(n):
            if barrier.wait(BOUND_S) not in (0, 1):
                raise CheckFailed("a two-party barrier returned an index above 1")
        elapsed = time.perf_counter_ns() - start
        rounds += n
        return elapsed / n

    try:
        timed(inner)  # warm-up
        out = [timed(inner) for _ in range(samples)]
    except BaseException:
        barrier.abort()  # the child's wait raises BrokenBarrierError and it exits with 1
        _join(proc, check_exit=False)
        raise
    announced.value = 0
    barrier.wait(BOUND_S)
    _checked_rounds(proc, answered, rounds)
    return out


def run_cpython(plan: tuple[list[int], int, int], only: str | None = None) -> dict:
    """Measures every CPython benchmark (or those whose ID contains `only`), pinned as `plan`
    says; returns the results document."""
    allowed, primary, secondary = plan
    os.sched_setaffinity(0, {primary})
    q = quick()
    # (id, function, args, throughput): samples and inner loop sizes keep each benchmark to
    # a few seconds; spawn is slow (tens of ms per process), so it gets few samples.
    benches = [
        ("cpython/spawn_join/fork/seq", bench_start_join, ("fork", 5 if q else 40, 5), None),
        ("cpython/spawn_join/forkserver/seq", bench_start_join, ("forkserver", 5 if q else 30, 3), None),
        ("cpython/spawn_join/spawn/seq", bench_start_join, ("spawn", 3 if q else 15, 1), None),
        ("cpython/spawn_join/fork/batch64", bench_batch, (3 if q else 15,), {"Elements": BATCH}),
        ("cpython/ipc/pipe/rtt8", bench_pipe_rtt, (5 if q else 40, 500), None),
        ("cpython/ipc/queue/rtt8", bench_queue_rtt, (5 if q else 40, 200), None),
        ("cpython/ipc/pipe/tput64k", bench_pipe_tput, (5 if q else 30, 100), {"Bytes": MSG_64K}),
        ("cpython/ipc/queue/tput64k", bench_queue_tput, (5 if q else 30, 100), {"Bytes": MSG_64K}),
        ("cpython/sync/lock/uncontended", bench_lock_uncontended, (5 if q else 40, 20_000), None),
        ("cpython/sync/lock/contended2", bench_lock_contended, (5 if q else 40, 20_000, secondary), None),
        # Crowds of live children: starting one of 4000 takes CPython about a minute (see
        # `_Crowd`), so a quick run leaves that row out.
        *[(f"cpython/scaling/fork_alive/n{n}", bench_alive, (n, 5 if q else 30, 3), None)
          for n in CROWDS],
        (f"cpython/scaling/fork_join_together/n{TOGETHER}", bench_join_together, (2 if q else 6,),
         {"Elements": TOGETHER}),
        ("cpython/scaling/event/round", bench_event_round, (5 if q else 40, 500), None),
        ("cpython/scaling/condition/round", bench_condition_round, (5 if q else 40, 500), None),
        ("cpython/scaling/barrier/round", bench_barrier_round, (5 if q else 40, 500), None),
    ]
    results = {}
    skipped = {}
    for bench_id, func, args, throughput in benches:
        if only is not None and only not in bench_id:
            continue
        two = bench_id.endswith("contended2")
        placement = {"placement": "two-cpus" if two else "one-cpu",
                     "cpus": [primary, secondary] if two else [primary]}
        if q and bench_id == f"cpython/scaling/fork_alive/n{max(CROWDS)}":
            skipped[bench_id] = f"left out of quick runs: CPython takes about a minute to start {max(CROWDS)} children"
            print(f"{bench_id}: skipped, {skipped[bench_id]}", flush=True)
            continue
        print(f"{bench_id}: {placement['placement']} {placement['cpus']}", flush=True)
        try:
            samples = func(*args)
        except Skipped as reason:
            skipped[bench_id] = str(reason)
            print(f"{bench_id}: skipped, {reason}", flush=True)
            continue
        results[bench_id] = {"samples_ns": samples, "throughput": throughput, **placement}
        ordered = sorted(samples)
        print(f"{bench_id}: median {ordered[len(ordered) // 2]:.0f} ns ({len(samples)} samples)",
              flush=True)
    return {
        "python": sys.version.split()[0],
        "quick": q,
        "allowed_cpus": allowed,
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "results": results,
        "skipped": skipped,
    }



def main() -> int:
    import argparse
    import json

    parser = argparse.ArgumentParser(description="CPython multiprocessing benchmarks")
    parser.add_argument("--out", required=True, help="where to write the results (JSON)")
    parser.add_argument("--only", default=None,
                        help="run only the benchmarks whose ID contains this text (the report needs them all)")
    args = parser.parse_args()
    doc = run_cpython(cpu_plan(), args.only)
    with open(args.out, "w", encoding="utf-8") as out:
        json.dump(doc, out, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
