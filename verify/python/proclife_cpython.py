"""CPython's side of `proclife conform`: replay-schema operations on real multiprocessing.Process.

Reads operations in the replay schema from standard input, either a whole replay file
(``{"ops":[...]}``) or one JSON object per line, drives one ``multiprocessing.Process`` and its
puppet child per ``"proc"`` index, and writes to standard output one header line
(``{"python":[3,11,7],"implementation":"cpython","method":"fork"}``) and then one observation
per operation in the replay schema: ``{"op":..,"ok":value}``, ``{"op":..,"err":{"type":..,
"msg":..}}`` with CPython's exception class and message, or ``{"op":..,"hangs":true}``.

The puppet obeys the same commands as the Rust puppet (verify/src/puppet.rs): exit with a
code, raise (the Rust puppet's panic), return, block on a lock, rlock, semaphore, event,
condition, barrier, pipe receive or the join of its own child, and be released.
The answers to the puppet protocol (``child_*``, ``release``, ``settle``) come from this
program's record of what it told each child, exactly as the Rust harness (verify/src/sut.rs)
gives them; every other observation is CPython's own.

Every wait is bounded (PROMPT seconds for what must happen promptly, HANG_PROBE for a join
that can only hang). No child outlives the program: each puppet and grandchild asks the
kernel for SIGKILL when its parent dies (PR_SET_PDEATHSIG), a puppet forked by the fork
server (whose parent is the server) watches this program through a pidfd, and the program
kills and joins every child before it exits. A harness failure is written as ``{"op":..,"harness_failed":
"reason"}`` and ends the run with exit status 3; unreadable input ends it with status 2.

Usage: python3 proclife_cpython.py [--method fork|forkserver|spawn] < replay.json
Standard library only; Python 3.9 or newer; Linux.
"""

import ctypes
import json
import multiprocessing
import multiprocessing.connection
import os
import random
import select
import signal
import sys
import threading
import time

PROMPT = 10.0
HANG_PROBE = 0.02
MAX_TIMEOUT_SECS = 30.0
MAX_PROCS = 8
EXIT_ACK = 100
BLOCKING = 200

BLOCK_CODES = {
    "lock": 0,
    "rlock": 1,
    "semaphore": 2,
    "event": 3,
    "condition": 4,
    "barrier": 5,
    "recv": 6,
    "join": 8,
}
BLOCK_NAMES = {code: name for name, code in BLOCK_CODES.items()}

PR_SET_PDEATHSIG = 1


class HarnessFailure(Exception):
    """The harness itself failed; reported, never compared."""


class BadInput(Exception):
    """The input is not in the replay schema."""


def die_with_parent(parent):
    """Asks the kernel to SIGKILL this process when its parent dies; exits if it already has."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
        os._exit(70)
    if parent is not None and os.getppid() != parent:
        os._exit(70)


def die_with_creator(creator):
    """For a forkserver child, whose parent is the server: a watchdog thread kills this
    process when the program that created it dies. (The server outlives the program while
    any of its children holds the server's liveness pipe, and every child does.)"""
    try:
        pidfd = os.pidfd_open(creator)
    except OSError:
        os._exit(70)

    def watch():
        select.select([pidfd], [], [])
        os.kill(os.getpid(), signal.SIGKILL)

    threading.Thread(target=watch, daemon=True).start()


def grandchild(parent, gate):
    """The child a puppet blocked on a join waits for: it waits for the gate (bounded)."""
    die_with_parent(parent)
    gate.acquire(True, 60.0)


def exit_delay():
    """A random 0-3 ms before an exit, three times in four with SIGTERM blocked meanwhile."""
    noise = random.getrandbits(32)
    if noise & 3 != 0:
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
    time.sleep((noise >> 2) % 3000 / 1e6)


def as_c_int(code):
    """The value a C int keeps of `code` (the Rust puppet casts the i64 code to i32)."""
    code &= 0xFFFFFFFF
    return code - (1 << 32) if code >= 1 << 31 else code


def puppet(creator, parent, commands, acks, data, prims):
    """The puppet target: obeys commands until told to exit, raise or return."""
    if os.getpid() == creator:
        # run() in the harness itself: there is no parent to obey.
        return
    die_with_parent(parent)
    if parent is None:
        die_with_creator(creator)
    while True:
        try:
            command = commands.recv()
        except (EOFError, OSError):
            return
        kind = command[0]
        if kind != "block":
            acks.send(EXIT_ACK)
            exit_delay()
        if kind == "exit":
            sys.exit(as_c_int(command[1]))
        elif kind == "panic":
            # The traceback would only clutter the checker's terminal.
            sys.stderr = open(os.devnull, "w")
            raise RuntimeError("the checker told the puppet to panic")
        elif kind == "return":
            return
        elif kind == "block":
            on = BLOCK_NAMES[command[1]]
            block(on, acks, data, prims)
            acks.send(command[1])


def block(on, acks, data, prims):
    """Blocks on `on`, after telling the harness it is about to."""
    code = BLOCKING + BLOCK_CODES[on]
    if on == "lock":
        acks.send(code)
        prims["lock"].acquire()
        prims["lock"].release()
    elif on == "rlock":
        acks.send(code)
        prims["rlock"].acquire()
        prims["rlock"].release()
    elif on == "semaphore":
        acks.send(code)
        prims["semaphore"].acquire()
    elif on == "event":
        acks.send(code)
        prims["event"].wait()
        prims["event"].clear()
    elif on == "condition":
        condition = prims["condition"]
        with condition:
            # Sent while holding the lock: the harness can notify only once this waits.
            acks.send(code)
            condition.wait()
    elif on == "barrier":
        acks.send(code)
        prims["barrier"].wait()
    elif on == "recv":
        acks.send(code)
        data.recv()
    elif on == "join":
        # Forked, as the Rust puppet's is; a daemon, and it dies with the puppet.
        fork = multiprocessing.get_context("fork")
        child = fork.Process(target=grandchild, args=(os.getpid(), prims["gate"]), daemon=True)
        child.start()
        acks.send(code)
        child.join()
        child.close()


def primitives():
    """One of each primitive, in its waiting state."""
    return {
        "lock": multiprocessing.Lock(),
        "rlock": multiprocessing.RLock(),
        "semaphore": multiprocessing.Semaphore(0),
        "event": multiprocessing.Event(),
        "condition": multiprocessing.Condition(),
        "barrier": multiprocessing.Barrier(2),
        "gate": multiprocessing.Semaphore(0),
    }


def error_json(error):
    return {"type": type(error).__name__, "msg": str(error)}


def ready(sentinel, timeout):
    return bool(multiprocessing.connection.wait([sentinel], timeout))


class Proc:
    """One process of a sequence: the handle, its puppet's pipes and primitives, and the
    harness's record of what it told the child (the fields of verify/src/sut.rs's Proc)."""

    def __init__(self):
        self.prims = primitives()
        command_reader, self.commands = multiprocessing.Pipe(duplex=False)
        self.acks, ack_writer = multiprocessing.Pipe(duplex=False)
        data_reader, self.data = multiprocessing.Pipe(duplex=False)
        # A forkserver child's parent is the server, which exits when this program does.
        parent = None if multiprocessing.get_start_method() == "forkserver" else os.getpid()
        self.process = multiprocessing.Process(
            target=puppet,
            args=(os.getpid(), parent, command_reader, ack_writer, data_reader, self.prims),
        )
        self.child_ends = [command_reader, ack_writer, data_reader]
        self.started = False
        self.closed = False
        self.exiting = False
        self.exit_in_flight = False
        self.signalled = False
        self.blocked = None
        self.held = None
        self.queue = []
        self.reaped = False

    def sentinel(self):
        try:
            return self.process.sentinel
        except ValueError:
            return None

    def has_exited(self, timeout=0.0):
        sentinel = self.sentinel()
        return sentinel is not None and ready(sentinel, timeout)

    def wait_zombie(self, deadline):
        """After the sentinel: waits until the child can be reaped, without reaping it (the
        sentinel is readable a moment before the child becomes a zombie)."""
        pid = self.process.pid
        while True:
            try:
                if os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None:
                    return
            except ChildProcessError:
                # Not our child (forkserver), or already reaped: the sentinel is the status.
                return
            if time.monotonic() >= deadline:
                return
            time.sleep(0.0002)

    def prepare(self, on):
        prims = self.prims
        if on in ("lock", "rlock"):
            if not prims[on].acquire(True, PROMPT):
                raise HarnessFailure("the harness could not take the puppet's " + on)
            self.held = on
        elif on == "event":
            prims["event"].clear()

    def unblock(self, on):
        prims = self.prims
        try:
            if on in ("lock", "rlock"):
                self.held = None
                prims[on].release()
            elif on == "semaphore":
                prims["semaphore"].release()
            elif on == "event":
                prims["event"].set()
            elif on == "condition":
                condition = prims["condition"]
                if not condition.acquire(True, PROMPT):
                    raise HarnessFailure("the harness could not take the condition's lock")
                try:
                    condition.notify()
                finally:
                    condition.release()
            elif on == "barrier":
                prims["barrier"].wait(PROMPT)
            elif on == "recv":
                self.data.send(0)
            elif on == "join":
                prims["gate"].release()
        except HarnessFailure:
            raise
        except Exception as error:
            if not self.signalled:
                raise HarnessFailure("releasing the puppet from %s failed: %r" % (on, error))

    def wait_ack(self, code, what):
        deadline = time.monotonic() + PROMPT
        while True:
            left = max(0.0, deadline - time.monotonic())
            if self.acks.poll(min(0.001, left)):
                try:
                    got = self.acks.recv()
                except (EOFError, OSError) as error:
                    if self.signalled:
                        return
                    raise HarnessFailure("reading the puppet's acknowledgement of %s: %r" % (what, error))
                if got == code:
                    return
                raise HarnessFailure("the puppet acknowledged %r instead of %s" % (got, what))
            if self.has_exited():
                if self.signalled:
                    return
                if self.acks.poll(0):
                    # The acknowledgement came just before the exit.
                    continue
                raise HarnessFailure(
                    "the puppet died with exit code %r before acknowledging %s"
                    % (self.process.exitcode, what)
                )
            if left == 0.0:
                raise HarnessFailure("the puppet did not acknowledge %s within %s s" % (what, PROMPT))

    def send(self, command):
        if command[0] == "block":
            on = BLOCK_NAMES[command[1]]
            self.prepare(on)
            self.send_raw(command)
            self.wait_ack(BLOCKING + command[1], "that it blocks on " + on)
            self.blocked = on
        else:
            self.send_raw(command)
            self.exit_in_flight = True
            self.wait_ack(EXIT_ACK, "its exit command")

    def send_raw(self, command):
        try:
            self.commands.send(command)
        except OSError as error:
            if not self.signalled:
                raise HarnessFailure("sending %r to the puppet failed: %r" % (command, error))

    def command(self, command):
        if not self.started or self.closed or self.exiting:
            return False
        if command[0] != "block":
            self.exiting = True
        if self.blocked is not None:
            self.queue.append(command)
        else:
            self.send(command)
        return True

    def release(self):
        on = self.blocked
        if on is None:
            return False
        self.blocked = None
        if self.closed or (self.signalled and self.has_exited()):
            self.release_held()
            return False
        self.unblock(on)
        self.wait_ack(BLOCK_CODES[on], "the end of its wait on " + on)
        if self.queue:
            command = self.queue.pop(0)
            if command[0] != "block":
                self.queue = []
            self.send(command)
        return True

    def signalled_now(self):
        if self.started and not self.closed:
            self.exiting = True
            self.exit_in_flight = True
            self.signalled = True

    def release_held(self):
        held, self.held = self.held, None
        if held is not None:
            try:
                self.prims[held].release()
            except Exception:
                pass

    def teardown(self):
        if self.started and not self.closed and not self.reaped:
            self.reaped = True
            try:
                self.process.kill()
            except Exception:
                pass
            if not self.has_exited(PROMPT):
                raise HarnessFailure("a killed puppet did not die within %s s" % PROMPT)
            self.process.join(PROMPT)
        self.release_held()
        for end in self.child_ends + [self.commands, self.acks, self.data]:
            end.close()
        if not self.closed:
            self.process.close()


def parent_op(proc, op, step):
    """A parent call on the handle: CPython's own answer (value or exception)."""
    p = proc.process
    if op == "start":
        p.start()
        proc.started = True
        return None
    if op == "run":
        return p.run()
    if op == "is_alive":
        return p.is_alive()
    if op == "join":
        sentinel = proc.sentinel()
        if sentinel is not None and proc.started and not proc.closed:
            bound = PROMPT if proc.exit_in_flight else HANG_PROBE
            if not ready(sentinel, bound):
                return HANGS
        return p.join()
    if op == "join_timeout":
        secs = step.get("secs")
        return p.join(min(float(secs), MAX_TIMEOUT_SECS))
    if op == "exitcode":
        return p.exitcode
    if op == "pid_is_set":
        return p.pid is not None
    if op == "sentinel_ready":
        return ready(p.sentinel, 0)
    if op in ("terminate", "kill"):
        getattr(p, op)()
        proc.signalled_now()
        return None
    if op == "close":
        p.close()
        proc.closed = True
        return None
    if op == "daemon":
        return p.daemon
    if op == "set_daemon":
        p.daemon = step["value"]
        return None
    if op == "name":
        return p.name
    if op == "set_name":
        p.name = step["value"]
        return None
    raise BadInput("unknown operation %r" % op)


HANGS = object()


def puppet_op(proc, op, step):
    """A puppet-protocol operation, answered from the harness's record."""
    if op == "child_exit":
        return proc.command(("exit", int(step["code"])))
    if op == "child_panic":
        return proc.command(("panic",))
    if op == "child_return":
        return proc.command(("return",))
    if op == "child_block":
        on = step.get("on", "event")
        if on not in BLOCK_CODES:
            raise BadInput("the puppet cannot block on %r" % on)
        if on == "join" and proc.process.daemon:
            raise HarnessFailure("a daemonic puppet cannot block on a join")
        return proc.command(("block", BLOCK_CODES[on]))
    if op == "release":
        return proc.release()
    if op == "settle":
        if proc.started and not proc.closed and proc.exit_in_flight:
            deadline = time.monotonic() + PROMPT
            if not proc.has_exited(PROMPT):
                return HANGS
            proc.wait_zombie(deadline)
            if multiprocessing.get_start_method() == "forkserver":
                # The fork server writes the exit status into the sentinel and closes it a
                # moment later; until then a handle that has read the status sees its sentinel
                # not ready. The exit has happened for every observer once the server closed
                # it: read the status (as any poll does) and wait for the end of the pipe.
                proc.process.exitcode
                if not ready(proc.process.sentinel, max(0.0, deadline - time.monotonic())):
                    raise HarnessFailure("the fork server did not close the sentinel within %s s" % PROMPT)
        return None
    raise BadInput("unknown operation %r" % op)


PUPPET_OPS = ("child_exit", "child_panic", "child_return", "child_block", "release", "settle")


def apply(proc, step):
    op = step["op"]
    if op in PUPPET_OPS:
        value = puppet_op(proc, op, step)
    else:
        try:
            value = parent_op(proc, op, step)
        except (AssertionError, ValueError, AttributeError) as error:
            return {"err": error_json(error)}
    if value is HANGS:
        return {"hangs": True}
    return {"ok": value}


def read_steps(text):
    text = text.strip()
    if not text:
        return []
    try:
        whole = json.loads(text)
    except ValueError:
        whole = None
    if isinstance(whole, dict) and "ops" in whole:
        steps = whole["ops"]
    elif isinstance(whole, dict):
        steps = [whole]
    else:
        steps = []
        for number, line in enumerate(text.splitlines(), 1):
            if line.strip():
                try:
                    steps.append(json.loads(line))
                except ValueError as error:
                    raise BadInput("line %d: %s" % (number, error))
    if not isinstance(steps, list):
        raise BadInput('"ops" must be a list')
    for index, step in enumerate(steps):
        if not isinstance(step, dict) or not isinstance(step.get("op"), str):
            raise BadInput("operation %d is not an object with a string \"op\"" % index)
        proc = step.get("proc", 0)
        if not isinstance(proc, int) or isinstance(proc, bool) or not 0 <= proc < MAX_PROCS:
            raise BadInput("operation %d: \"proc\" must be an integer below %d" % (index, MAX_PROCS))
    return steps


def emit(json_object):
    sys.stdout.write(json.dumps(json_object, separators=(",", ":")) + "\n")
    sys.stdout.flush()


def main(argv):
    method = "fork"
    if len(argv) == 2 and argv[0] == "--method" and argv[1] in ("fork", "forkserver", "spawn"):
        method = argv[1]
    elif argv:
        sys.stderr.write("usage: proclife_cpython.py [--method fork|forkserver|spawn] < ops\n")
        return 2
    multiprocessing.set_start_method(method)
    try:
        steps = read_steps(sys.stdin.read())
    except BadInput as error:
        sys.stderr.write("proclife_cpython: %s\n" % error)
        return 2
    emit(
        {
            "python": list(sys.version_info[:3]),
            "implementation": sys.implementation.name,
            "method": method,
        }
    )
    count = max([step.get("proc", 0) + 1 for step in steps] or [0])
    procs = []
    status = 0
    try:
        procs = [Proc() for _ in range(count)]
        for step in steps:
            try:
                observation = apply(procs[step.get("proc", 0)], step)
            except HarnessFailure as failure:
                emit({"op": step["op"], "harness_failed": str(failure)})
                status = 3
                break
            except (BadInput, KeyError, TypeError, ValueError) as error:
                emit({"op": step["op"], "harness_failed": "bad operation: %r" % (error,)})
                status = 2
                break
            observation = dict({"op": step["op"]}, **observation)
            if step.get("proc", 0):
                observation["proc"] = step["proc"]
            emit(observation)
    finally:
        for proc in procs:
            try:
                proc.teardown()
            except HarnessFailure as failure:
                sys.stderr.write("proclife_cpython: teardown: %s\n" % failure)
                status = status or 3
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
