"""Drives every refusal of the refusal table on real CPython multiprocessing objects.

Prints one JSON object on stdout: {"python": "3.11.x", "rows": {id: outcome}}, where an outcome is
{"raised": [type, message]} or {"returned": repr}. The type is the exception's qualified name
(`module.Name` outside builtins, as `queue.Empty`), the message `str(exception)` with object
addresses (` at 0x7f...`) written as ` at 0x…`. `verify/tests/refusals.rs` compares it with the
table in `model/src/refusals.rs`.

Standard library only. Every wait is bounded, every child is joined or killed and joined, and
the fork start method is used so that children share the objects as the runtime's do.
"""

import json
import multiprocessing as mp
import os
import re
import signal
import sys
import threading
import time

CTX = mp.get_context("fork")
# Bound on every wait for a child; generous, since a busy machine may be slow to fork.
CHILD_BOUND = 30.0
# How long a probe that can only end by its timeout waits (CPython would otherwise hang).
SHORT = 0.05
# How long a probe of something CPython never finishes waits before it says "hangs".
HANG_PROBE = 1.0
# glibc's SEM_VALUE_MAX (INT_MAX) on Linux.
SEM_VALUE_MAX = 2147483647


def qualified(exc):
    kind = type(exc)
    if kind.__module__ == "builtins":
        return kind.__qualname__
    return f"{kind.__module__}.{kind.__qualname__}"


def normalise(message):
    return re.sub(r" at 0x[0-9a-fA-F]+", " at 0x\u2026", message)


def outcome_of(thunk):
    try:
        value = thunk()
    except BaseException as exc:  # noqa: BLE001 - every exception is the observation
        return {"raised": [qualified(exc), normalise(str(exc))]}
    if isinstance(value, Reported):
        return dict(value)
    return {"returned": normalise(repr(value))}


class Reported(dict):
    """An outcome observed in a child and passed on as it is."""


class Child:
    """A fork child running `body(*args)`; always joined, killed first if it outlives the bound."""

    def __init__(self, body, *args):
        self.process = CTX.Process(target=body, args=args, daemon=True)
        self.process.start()

    def kill(self):
        self.process.kill()
        self.finish()

    def finish(self):
        self.process.join(CHILD_BOUND)
        if self.process.is_alive():
            self.process.kill()
            self.process.join(CHILD_BOUND)
            raise RuntimeError("probe child outlived its bound")


def answer_or_hang(body, *args):
    """Runs `body(*args, conn)` in a child that sends one outcome; "hangs" without one in time."""
    r, w = CTX.Pipe(duplex=False)
    child = Child(body, *args, w)
    w.close()
    try:
        if r.poll(HANG_PROBE):
            return Reported(r.recv())
        return Reported({"hangs": f"no answer within {HANG_PROBE} s"})
    finally:
        child.kill()


def sleep_forever(*_objects):
    time.sleep(3600)


def hold_then_signal(lock, ready, *_):
    lock.acquire()
    ready.set()
    time.sleep(3600)


def acquire_and_exit(lock):
    lock.acquire()
    os._exit(0)


def wait_and_report(barrier, conn):
    conn.send(outcome_of(lambda: barrier.wait(CHILD_BOUND)))
    conn.close()


ROWS = {}


def row(name):
    def register(fn):
        ROWS[name] = fn
        return fn

    return register


# ---- Connection ----

def closed_end():
    a, b = CTX.Pipe()
    a.close()
    return a, b


for op, call in [
    ("send", lambda c: c.send(1)),
    ("send_bytes", lambda c: c.send_bytes(b"x")),
    ("recv", lambda c: c.recv()),
    ("recv_bytes", lambda c: c.recv_bytes()),
    ("poll", lambda c: c.poll(0)),
    ("fileno", lambda c: c.fileno()),
]:
    ROWS[f"connection.{op}.closed"] = (lambda call: lambda: call(closed_end()[0]))(call)

for op, call in [("send", lambda c: c.send(1)), ("send_bytes", lambda c: c.send_bytes(b"x"))]:
    ROWS[f"connection.{op}.read_only"] = (lambda call: lambda: call(CTX.Pipe(duplex=False)[0]))(
        call
    )

for op, call in [
    ("recv", lambda c: c.recv()),
    ("recv_bytes", lambda c: c.recv_bytes()),
    ("poll", lambda c: c.poll(0)),
]:
    ROWS[f"connection.{op}.write_only"] = (lambda call: lambda: call(CTX.Pipe(duplex=False)[1]))(
        call
    )


@row("connection.recv.peer_closed")
def _():
    a, b = CTX.Pipe()
    b.close()
    return a.recv()


@row("connection.send.peer_closed")
def _():
    r, w = CTX.Pipe(duplex=False)
    r.close()
    return w.send(1)


@row("connection.recv.writer_closed")
def _():
    r, w = CTX.Pipe(duplex=False)
    w.close()
    return r.recv()


@row("connection.send.duplex_peer_closed")
def _():
    a, b = CTX.Pipe()
    b.close()
    return a.send(1)


def with_killed_holder(duplex_false_end, then):
    """A one-way pipe whose end `duplex_false_end` (0: reader, 1: writer) only a killed child held."""
    ends = CTX.Pipe(duplex=False)
    child = Child(sleep_forever, ends[duplex_false_end])
    ends[duplex_false_end].close()
    child.kill()
    mine = ends[1 - duplex_false_end]
    try:
        return then(mine)
    finally:
        mine.close()


@row("connection.recv.writer_killed")
def _():
    return with_killed_holder(1, lambda r: r.recv())


@row("connection.send.reader_killed")
def _():
    return with_killed_holder(0, lambda w: w.send(1))


def with_killed_peer(then):
    a, b = CTX.Pipe()
    child = Child(sleep_forever, b)
    b.close()
    child.kill()
    try:
        return then(a)
    finally:
        a.close()


@row("connection.recv.peer_killed")
def _():
    return with_killed_peer(lambda a: a.recv())


@row("connection.recv_bytes.peer_killed")
def _():
    return with_killed_peer(lambda a: a.recv_bytes())


@row("connection.send.peer_killed")
def _():
    return with_killed_peer(lambda a: a.send(1))


@row("connection.send_bytes.peer_killed")
def _():
    return with_killed_peer(lambda a: a.send_bytes(b"x"))


@row("connection.recv_bytes.too_long")
def _():
    a, b = CTX.Pipe()
    b.send_bytes(b"0123456789")
    return a.recv_bytes(4)


@row("connection.send_bytes.too_long")
def _():
    # proclife bounds frames (`max_frame`); CPython sends any length. A reader drains it.
    a, b = CTX.Pipe()
    a.send_bytes(b"0123456789")
    return b.recv_bytes() == b"0123456789"


@row("connection.recv.not_decodable")
def _():
    a, b = CTX.Pipe()
    b.send_bytes(b"garbage")
    return a.recv()


# ---- Queue, JoinableQueue, SimpleQueue ----

def closed_queue(kind):
    q = kind()
    q.close()
    q.join_thread()
    return q


for kind_name, kind in [("queue", CTX.Queue), ("joinable_queue", CTX.JoinableQueue)]:
    for op, call in [
        ("put", lambda q: q.put(1)),
        ("put_nowait", lambda q: q.put_nowait(1)),
        ("get", lambda q: q.get()),
        ("get_nowait", lambda q: q.get_nowait()),
    ]:
        ROWS[f"{kind_name}.{op}.closed"] = (lambda kind, call: lambda: call(closed_queue(kind)))(
            kind, call
        )
    ROWS[f"{kind_name}.put.full_timeout"] = (
        lambda kind: lambda: (lambda q: (q.put(1), q.put(2, timeout=SHORT)))(kind(1))
    )(kind)
    ROWS[f"{kind_name}.put_nowait.full"] = (
        lambda kind: lambda: (lambda q: (q.put(1), q.put_nowait(2)))(kind(1))
    )(kind)
    ROWS[f"{kind_name}.get.empty_timeout"] = (lambda kind: lambda: kind().get(timeout=SHORT))(kind)
    ROWS[f"{kind_name}.get_nowait.empty"] = (lambda kind: lambda: kind().get_nowait())(kind)


@row("joinable_queue.task_done.too_many")
def _():
    return CTX.JoinableQueue().task_done()


@row("queue.put.too_large")
def _():
    # proclife bounds an item by the ring's capacity; CPython's pipe takes any size.
    q = CTX.Queue()
    q.put(b"x" * 100_000)
    got = q.get(timeout=CHILD_BOUND)
    return len(got)


for op, call in [("put", lambda q: q.put(1)), ("get", lambda q: q.get())]:
    ROWS[f"simple_queue.{op}.closed"] = (
        lambda call: lambda: (lambda q: (q.close(), call(q)))(CTX.SimpleQueue())
    )(call)


# ---- Value, Array ----

def read_value_and_report(value, conn):
    conn.send(outcome_of(lambda: value.value))
    conn.close()


@row("value.get.holder_died")
def _():
    # CPython: the lock of a holder that died stays taken, so the read waits forever (T19).
    value = CTX.Value("i", 7)
    Child(acquire_and_exit, value.get_lock()).finish()
    return answer_or_hang(read_value_and_report, value)

def read_item_and_report(array, conn):
    conn.send(outcome_of(lambda: array[0]))
    conn.close()


def write_item_and_report(array, conn):
    def write():
        array[0] = 1
    conn.send(outcome_of(write))
    conn.close()


@row("array.getitem.holder_died")
def _():
    # As with `value`: the dead holder's lock stays taken, so the access waits forever.
    array = CTX.Array("i", 3)
    Child(acquire_and_exit, array.get_lock()).finish()
    return answer_or_hang(read_item_and_report, array)


@row("array.setitem.holder_died")
def _():
    array = CTX.Array("i", 3)
    Child(acquire_and_exit, array.get_lock()).finish()
    return answer_or_hang(write_item_and_report, array)


@row("value.release.unowned")
def _():
    return CTX.Value("i", 7).get_lock().release()


@row("array.release.unowned")
def _():
    return CTX.Array("i", 3).get_lock().release()


@row("array.getitem.out_of_range")
def _():
    return CTX.Array("i", 3)[3]


@row("array.setitem.out_of_range")
def _():
    a = CTX.Array("i", 3)
    a[3] = 1


# ---- Lock, RLock ----

@row("lock.release.unheld")
def _():
    return CTX.Lock().release()


@row("lock.release.twice")
def _():
    lock = CTX.Lock()
    lock.acquire()
    lock.release()
    return lock.release()


def release_held_by_other(kind):
    lock, ready = kind(), CTX.Event()
    child = Child(hold_then_signal, lock, ready)
    try:
        if not ready.wait(CHILD_BOUND):
            raise RuntimeError("child did not take the lock")
        return lock.release()
    finally:
        child.kill()


ROWS["lock.release.held_by_other"] = lambda: release_held_by_other(CTX.Lock)
ROWS["rlock.release.held_by_other"] = lambda: release_held_by_other(CTX.RLock)


@row("lock.acquire.already_held")
def _():
    lock = CTX.Lock()
    lock.acquire()
    return lock.acquire(timeout=SHORT)


def holder_died(kind):
    lock = kind()
    child = Child(acquire_and_exit, lock)
    child.finish()
    return lock.acquire(timeout=SHORT)


ROWS["lock.acquire.holder_died"] = lambda: holder_died(CTX.Lock)
ROWS["rlock.acquire.holder_died"] = lambda: holder_died(CTX.RLock)
ROWS["value.acquire.holder_died"] = lambda: holder_died(lambda: CTX.Value("i", 7).get_lock())
ROWS["array.acquire.holder_died"] = lambda: holder_died(lambda: CTX.Array("i", 3).get_lock())
ROWS["condition.acquire.holder_died"] = lambda: holder_died(CTX.Condition)


def hold_wait_and_report(condition, holding, conn):
    condition.acquire()
    holding.set()
    conn.send(outcome_of(lambda: condition.wait(CHILD_BOUND)))
    conn.close()


def notify_and_exit(condition):
    condition.acquire()
    condition.notify()
    os._exit(0)


@row("condition.wait.holder_died")
def _():
    # CPython: the notifier waits until the waiter woke, then dies holding the lock; the
    # waiter's re-acquire waits forever (T19). The waiter runs in a child killed after
    # HANG_PROBE.
    condition = CTX.Condition()
    holding = CTX.Event()
    r, w = CTX.Pipe(duplex=False)
    waiter = Child(hold_wait_and_report, condition, holding, w)
    w.close()
    try:
        if not holding.wait(CHILD_BOUND):
            raise RuntimeError("the waiter never took the lock")
        Child(notify_and_exit, condition).finish()
        if r.poll(HANG_PROBE):
            return Reported(r.recv())
        return Reported({"hangs": f"no answer within {HANG_PROBE} s"})
    finally:
        waiter.kill()


@row("rlock.release.unheld")
def _():
    return CTX.RLock().release()


# ---- Semaphore, BoundedSemaphore ----

@row("semaphore.release.at_max")
def _():
    return CTX.Semaphore(SEM_VALUE_MAX).release()


@row("semaphore.new.above_max")
def _():
    return CTX.Semaphore(SEM_VALUE_MAX + 1)


@row("bounded_semaphore.release.over")
def _():
    return CTX.BoundedSemaphore(1).release()


@row("bounded_semaphore.new.above_max")
def _():
    return CTX.BoundedSemaphore(SEM_VALUE_MAX + 1)


# ---- Condition ----

for lock_name, lock_kind in [("", None), ("_with_lock", "lock")]:
    def make(lock_kind=lock_kind):
        return CTX.Condition(CTX.Lock() if lock_kind else None)

    for op, call in [
        ("wait", lambda c: c.wait(SHORT)),
        ("wait_for", lambda c: c.wait_for(lambda: False, SHORT)),
        ("notify", lambda c: c.notify()),
        ("notify_all", lambda c: c.notify_all()),
        ("release", lambda c: c.release()),
    ]:
        ROWS[f"condition{lock_name}.{op}.unowned"] = (lambda make, call: lambda: call(make()))(
            make, call
        )


# ---- Barrier ----

@row("barrier.wait.aborted")
def _():
    barrier = CTX.Barrier(2)
    barrier.abort()
    return barrier.wait(SHORT)


@row("barrier.wait.timeout")
def _():
    return CTX.Barrier(2).wait(SHORT)


@row("barrier.wait.after_timeout")
def _():
    barrier = CTX.Barrier(2)
    try:
        barrier.wait(SHORT)
    except threading.BrokenBarrierError:
        pass
    return barrier.wait(SHORT)


@row("barrier.wait.reset_while_waiting")
def _():
    barrier = CTX.Barrier(2)
    r, w = CTX.Pipe(duplex=False)
    child = Child(wait_and_report, barrier, w)
    w.close()
    try:
        deadline = time.monotonic() + CHILD_BOUND
        while barrier.n_waiting < 1:
            if time.monotonic() > deadline:
                raise RuntimeError("child never reached the barrier")
            time.sleep(0.001)
        barrier.reset()
        if not r.poll(CHILD_BOUND):
            raise RuntimeError("child did not report")
        got = r.recv()
    finally:
        child.finish()
    return Reported(got)


def timed_wait_and_report(barrier, conn):
    conn.send(outcome_of(lambda: barrier.wait(SHORT)))
    conn.close()


@row("barrier.wait.party_died")
def _():
    # CPython: the survivor's wait times out, then its `notify_all` waits for the dead party to
    # acknowledge, forever (T21). The survivor runs in a child that is killed after HANG_PROBE.
    barrier = CTX.Barrier(3)
    dying = Child(lambda: barrier.wait(CHILD_BOUND))
    deadline = time.monotonic() + CHILD_BOUND
    while barrier.n_waiting < 1:
        if time.monotonic() > deadline:
            dying.kill()
            raise RuntimeError("child never reached the barrier")
        time.sleep(0.001)
    dying.kill()
    return answer_or_hang(timed_wait_and_report, barrier)


@row("barrier.new.zero_parties")
def _():
    return CTX.Barrier(0)


# ---- A NaN timeout (proclife: `sync::timeout_from_secs`) ----

NAN = float("nan")


def held_condition():
    condition = CTX.Condition()
    condition.acquire()
    return condition


for name, call in [
    ("lock.acquire", lambda: CTX.Lock().acquire(timeout=NAN)),
    ("rlock.acquire", lambda: CTX.RLock().acquire(timeout=NAN)),
    ("semaphore.acquire", lambda: CTX.Semaphore(0).acquire(timeout=NAN)),
    ("bounded_semaphore.acquire", lambda: CTX.BoundedSemaphore(0).acquire(timeout=NAN)),
    ("event.wait", lambda: CTX.Event().wait(NAN)),
    ("condition.wait", lambda: held_condition().wait(NAN)),
    ("condition.wait_for", lambda: held_condition().wait_for(lambda: False, NAN)),
    ("barrier.wait", lambda: CTX.Barrier(2).wait(NAN)),
    ("queue.get", lambda: CTX.Queue().get(timeout=NAN)),
    ("queue.put", lambda: CTX.Queue(1).put(1, timeout=NAN)),
    ("joinable_queue.get", lambda: CTX.JoinableQueue().get(timeout=NAN)),
    ("connection.poll", lambda: CTX.Pipe()[0].poll(NAN)),
]:
    ROWS[f"{name}.timeout_nan"] = call


# ---- Process (the life-cycle's refusals) ----

def new_process():
    return CTX.Process(target=time.sleep, args=(0,))


def started(seconds=0):
    p = CTX.Process(target=time.sleep, args=(seconds,))
    p.start()
    return p


def finished():
    p = started()
    p.join(CHILD_BOUND)
    return p


def closed_process():
    p = finished()
    p.close()
    return p


@row("process.start.twice")
def _():
    return finished().start()


for op, call in [
    ("join", lambda p: p.join()),
    ("terminate", lambda p: p.terminate()),
    ("kill", lambda p: p.kill()),
    ("sentinel", lambda p: p.sentinel),
]:
    ROWS[f"process.{op}.not_started"] = (lambda call: lambda: call(new_process()))(call)

for op, call in [
    ("start", lambda p: p.start()),
    ("join", lambda p: p.join()),
    ("is_alive", lambda p: p.is_alive()),
    ("terminate", lambda p: p.terminate()),
    ("kill", lambda p: p.kill()),
    ("exitcode", lambda p: p.exitcode),
    ("pid", lambda p: p.pid),
]:
    ROWS[f"process.{op}.closed"] = (lambda call: lambda: call(closed_process()))(call)


def report_call(call, target, conn):
    conn.send(outcome_of(lambda: call(target)))
    conn.close()


def from_another_process(target, call):
    """`call(target)` in a fork child (daemonic, as every probe child), its outcome."""
    return answer_or_hang(report_call, call, target)


@row("process.join.not_child")
def _():
    p = started(CHILD_BOUND)
    try:
        return from_another_process(p, lambda p: p.join(0))
    finally:
        p.kill()
        p.join(CHILD_BOUND)


@row("process.is_alive.not_child")
def _():
    p = started(CHILD_BOUND)
    try:
        return from_another_process(p, lambda p: p.is_alive())
    finally:
        p.kill()
        p.join(CHILD_BOUND)


@row("process.start.not_creator")
def _():
    return from_another_process(new_process(), lambda p: p.start())


@row("process.start.daemonic_parent")
def _():
    # Every probe child is daemonic; this one tries to start a child of its own.
    return from_another_process(None, lambda _: new_process().start())


@row("process.run.after_start")
def _():
    # multiprocessing.Process, not the fork context's ForkProcess: the message names the class.
    p = mp.Process(target=time.sleep, args=(0,))
    p.start()
    try:
        return p.run()
    finally:
        p.join(CHILD_BOUND)


@row("process.close.running")
def _():
    p = started(CHILD_BOUND)
    try:
        return p.close()
    finally:
        p.kill()
        p.join(CHILD_BOUND)


@row("process.set_daemon.started")
def _():
    p = finished()
    p.daemon = True


@row("process.join.timeout_nan")
def _():
    p = started(CHILD_BOUND)
    try:
        return p.join(float("nan"))
    finally:
        p.kill()
        p.join(CHILD_BOUND)


def orphan_waiting(wait, conn, pids):
    """The middle process: starts a non-daemon grandchild that runs `wait()` and reports what it
    got on `conn`, tells its pid on `pids`, then sleeps until it is killed."""
    grandchild = CTX.Process(target=lambda: conn.send(outcome_of(wait)))
    grandchild.start()
    pids.send(grandchild.pid)
    time.sleep(3600)


def orphaned_answer_or_hang(wait):
    """Runs `wait()` (an untimed wait) in a grandchild whose parent is SIGKILLed meanwhile;
    "hangs" when the grandchild reports nothing within HANG_PROBE after the kill. The grandchild
    is killed at the end either way (it was told its pid by the middle process)."""
    r, w = CTX.Pipe(duplex=False)
    pids_r, pids_w = CTX.Pipe(duplex=False)
    # Not the `Child` helper: a daemonic middle process may not have children.
    middle = CTX.Process(target=orphan_waiting, args=(wait, w, pids_w))
    middle.start()
    w.close()
    pids_w.close()
    grandchild = None
    try:
        if not pids_r.poll(CHILD_BOUND):
            raise RuntimeError("the middle process did not start its child in time")
        grandchild = pids_r.recv()
        # Joined only after the grandchild is gone: it inherited the write end of the
        # middle process's sentinel pipe, so the sentinel shows the death only then.
        middle.kill()
        if r.poll(HANG_PROBE):
            return Reported(r.recv())
        return Reported({"hangs": f"no answer within {HANG_PROBE} s of the parent's death"})
    finally:
        middle.kill()
        if grandchild is not None:
            try:
                os.kill(grandchild, signal.SIGKILL)
            except ProcessLookupError:
                pass
        middle.join(CHILD_BOUND)


def full_queue():
    q = CTX.Queue(1)
    q.put(1)
    # Let the feeder thread move the item into the pipe, so that `full()` is certain.
    deadline = time.monotonic() + CHILD_BOUND
    while not q.full() and time.monotonic() < deadline:
        time.sleep(0.001)
    return q


ROWS["event.wait.parent_died"] = lambda: orphaned_answer_or_hang(CTX.Event().wait)
ROWS["semaphore.acquire.parent_died"] = lambda: orphaned_answer_or_hang(CTX.Semaphore(0).acquire)
ROWS["queue.get.parent_died"] = lambda: orphaned_answer_or_hang(CTX.Queue().get)
ROWS["queue.put.parent_died"] = lambda: orphaned_answer_or_hang(lambda q=full_queue(): q.put(2))
@row("connection.recv.parent_died")
def _():
    # Both ends stay open here, so the grandchild inherits both, as a forked child does.
    mine, _peer = CTX.Pipe(duplex=True)
    return orphaned_answer_or_hang(mine.recv)


@row("condition.wait.parent_died")
def _():
    condition = CTX.Condition()

    def wait():
        with condition:
            return condition.wait()

    return orphaned_answer_or_hang(wait)


@row("context.get_context.unknown_method")
def _():
    return mp.get_context("bogus")


@row("context.set_start_method.already_set")
def _():
    # Reading the method fixes it; setting it again is refused.
    return mp.set_start_method(mp.get_start_method())


def lambda_under(method):
    process = mp.get_context(method).Process(target=lambda: None, daemon=True)
    return process.start()


ROWS["process.start.closure_under_spawn"] = lambda: lambda_under("spawn")
ROWS["process.start.closure_under_forkserver"] = lambda: lambda_under("forkserver")


@row("process.start.unregistered_entry")
def _():
    # A function the parent's `__main__` has and the re-executed child's does not.
    def only_in_parent():
        pass

    only_in_parent.__qualname__ = only_in_parent.__name__
    globals()["only_in_parent"] = only_in_parent
    process = mp.get_context("spawn").Process(target=only_in_parent, daemon=True)
    try:
        started = process.start()
        process.join(CHILD_BOUND)
        if process.exitcode != 1:
            raise RuntimeError(f"the child ended with {process.exitcode}, not 1")
        return started
    finally:
        del globals()["only_in_parent"]
        if process.is_alive():
            process.kill()
            process.join(CHILD_BOUND)


@row("process.start.threaded_fork")
def _():
    release = threading.Event()
    thread = threading.Thread(target=release.wait, args=(CHILD_BOUND,))
    thread.start()
    try:
        process = CTX.Process(target=sleep_forever, daemon=True)
        started = process.start()
        process.kill()
        process.join(CHILD_BOUND)
        return started
    finally:
        release.set()
        thread.join(CHILD_BOUND)


def main():
    # Python ignores SIGPIPE already; make that explicit, as the runtime does.
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)
    only = set(sys.argv[1:])
    rows = {}
    for name, probe in ROWS.items():
        if only and name not in only:
            continue
        if os.environ.get("REFUSALS_TRACE"):
            print(name, file=sys.stderr, flush=True)
        rows[name] = outcome_of(probe)
    version = ".".join(map(str, sys.version_info[:3]))
    json.dump({"python": version, "rows": rows}, sys.stdout, indent=1, sort_keys=True)
    sys.stdout.write("\n")
    leftover = mp.active_children()
    if leftover:
        for child in leftover:
            child.kill()
            child.join(CHILD_BOUND)
        sys.exit("probe children were left behind")


if __name__ == "__main__":
    main()
