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


def _join(proc) -> None:
    proc.join(BOUND_S)
    if proc.exitcode is None:
        proc.kill()
        proc.join(BOUND_S)
        raise CheckFailed(f"child {proc.pid} did not exit within {BOUND_S} s")
    if proc.exitcode != 0:
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


def run_cpython(plan: tuple[list[int], int, int]) -> dict:
    """Measures every CPython benchmark, pinned as `plan` says; returns the results document."""
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
    ]
    results = {}
    for bench_id, func, args, throughput in benches:
        two = bench_id.endswith("contended2")
        placement = {"placement": "two-cpus" if two else "one-cpu",
                     "cpus": [primary, secondary] if two else [primary]}
        print(f"{bench_id}: {placement['placement']} {placement['cpus']}", flush=True)
        samples = func(*args)
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
    }



def main() -> int:
    import argparse
    import json

    parser = argparse.ArgumentParser(description="CPython multiprocessing benchmarks")
    parser.add_argument("--out", required=True, help="where to write the results (JSON)")
    args = parser.parse_args()
    doc = run_cpython(cpu_plan())
    with open(args.out, "w", encoding="utf-8") as out:
        json.dump(doc, out, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
