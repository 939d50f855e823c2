"""Worker processes that run SQL jobs in input order, under a hard per-query deadline.

SQLite's progress handler interrupts a query between VM instructions, which stops nearly
every runaway query at its timeout. A single instruction can still run for long (one
``printf('%.*c', 2000000000, 'x')`` took 11 s), and no thread can interrupt C code, so the
parent watches each worker: before every query a worker writes the query's start time and
index to shared memory, and a worker whose query passes timeout + grace is killed and
replaced. Its task is sent again with that query marked as killed, so the rest of the task
still runs and the killed query is recorded as a timeout. What the task had already finished
comes back with it (``Slot.keep`` sends each finished query's outcome to the parent as it is
made), so no query runs twice.

Workers die with the parent however it ends: a parent-death signal (Linux) for SIGKILL, and
the parent's ``finally`` for every signal it handles (rf_core.records.signals). They never hold the
command's stdout, so a reader downstream sees EOF as soon as the parent is gone.

At most ``window`` tasks are in flight or waiting to be written, so memory does not grow
with the input (``multiprocessing.Pool.imap`` would read the whole input ahead). A job too
large for a pipe's buffer is sent only to an idle worker: otherwise the parent could block
sending it while the worker blocks sending its previous answers back.

The input is read by a thread (``_Feed``), so the parent writes each result as soon as it and
every one before it are done, and keeps enforcing deadlines, while the producer upstream is
quiet. Workers are forked when a task needs one (no idle worker, fewer than ``workers``), so
there are never more of them than tasks in flight.
"""

from __future__ import annotations

import ctypes
import multiprocessing as mp
import os
import pickle
import signal
import sys
import threading
import time
from collections import deque
from multiprocessing.connection import wait
from typing import Callable, Iterable, Iterator

from rf_core.records import signals
from rf_core.errors import RFError

IDLE = 0.0
GRACE_S = 0.5
MAX_CRASHES_PER_TASK = 3


class Slot:
    """What a worker is doing, in shared memory: [query start (monotonic), query index,
    task sequence number]."""

    WIDTH = 3

    def __init__(self, array, index: int):
        self._a = array
        self._i = self.WIDTH * index
        self.seq = -1

    def start(self, query_index: int) -> None:
        self._a[self._i + 1] = query_index
        self._a[self._i + 2] = self.seq
        self._a[self._i] = time.monotonic()

    def stop(self) -> None:
        self._a[self._i] = IDLE

    def read(self) -> tuple[float, int, int]:
        return self._a[self._i], int(self._a[self._i + 1]), int(self._a[self._i + 2])

    # In the worker: the outcomes of the current task's finished queries, kept by the parent.
    conn = None
    kept: dict = {}

    def keep(self, query_index: int, value) -> None:
        """Hand a finished query's outcome to the parent, so that if this worker is killed
        later in the task, the task is re-sent with it (in ``kept``) instead of running it
        again."""
        if self.conn is not None:
            self.conn.send((_PART, self.seq, query_index, value))


_DONE, _PART = 0, 1
_PR_SET_PDEATHSIG = 1
# A job larger than this goes only to an idle worker, so the parent never blocks sending while
# that worker blocks sending its answers back (two queued small jobs fit in a pipe's buffer).
_SMALL_JOB = 16 << 10


def _die_with_parent(parent: int) -> None:
    """Have the kernel kill this process when its parent dies, even by SIGKILL (Linux)."""
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
        except (OSError, AttributeError):
            pass
    if os.getppid() != parent:  # the parent died before the signal was armed
        os._exit(1)


def _worker_main(conn, slot: Slot, parent: int, init: Callable, init_args: tuple,
                 run: Callable) -> None:
    _die_with_parent(parent)
    signals.reset_in_child()
    devnull = os.open(os.devnull, os.O_WRONLY)  # never hold the command's stdout open
    os.dup2(devnull, 1)
    os.close(devnull)
    slot.conn = conn
    init(*init_args)
    while True:
        try:
            msg = pickle.loads(conn.recv_bytes())
        except EOFError:
            return
        if msg is None:
            return
        seq, job, killed, kept = msg
        slot.seq = seq
        slot.kept = kept
        conn.send((_DONE, seq, run(job, slot, killed)))


class _Worker:
    def __init__(self, ctx, index: int, shared, init, init_args, run):
        self.index = index
        self.slot = Slot(shared, index)
        self.slot.stop()
        parent_conn, child_conn = ctx.Pipe()
        self.conn = parent_conn
        self.proc = ctx.Process(target=_worker_main, daemon=True,
                                args=(child_conn, self.slot, os.getpid(), init, init_args, run))
        self.proc.start()
        child_conn.close()
        # Tasks sent and not yet answered, oldest first: (seq, job, killed, kept). The worker
        # answers in order, so keeping two queued hides the round trip between tasks.
        self.tasks: deque = deque()
        # Tasks this worker must run next (re-sent after a kill), as (task, pickled task).
        self.backlog: deque = deque()

    def can_take(self, size: int, depth: int) -> bool:
        return not self.tasks or (len(self.tasks) < depth and size <= _SMALL_JOB)

    def send(self, task: tuple, data: bytes) -> None:
        self.tasks.append(task)
        self.conn.send_bytes(data)

    def kill(self) -> None:
        if self.proc.is_alive():
            os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.join()
        self.conn.close()


_JOB, _END, _FAILED = 0, 1, 2


class _Feed:
    """The jobs, taken from their iterable by a thread, at most ``ahead`` of what the main loop
    took. A byte on a pipe (``fd``) says a new item is there, so the main loop waits on its
    workers and on its input at once."""

    def __init__(self, jobs: Iterable, ahead: int = 2):
        self.items: deque = deque()
        self._room = threading.Semaphore(ahead)
        self._lock = threading.Lock()
        self._closed = False
        self.fd, self._wake = os.pipe()
        os.set_blocking(self.fd, False)
        self._thread = threading.Thread(target=self._read, args=(jobs,), daemon=True,
                                        name="rf-pool-input")
        self._thread.start()

    def _read(self, jobs: Iterable) -> None:
        source = iter(jobs)
        while True:
            self._room.acquire()
            if self._closed:
                return
            try:
                item = (_JOB, next(source))
            except StopIteration:
                item = (_END, None)
            except BaseException as exc:  # noqa: BLE001 - raised in the main loop, in order
                item = (_FAILED, exc)
            with self._lock:  # never write to the pipe after close(): its fd may be reused
                if self._closed:
                    return
                self.items.append(item)
                os.write(self._wake, b"\0")
            if item[0] != _JOB:
                return

    def take(self):
        """The next item, or None when the thread has not read one yet."""
        if not self.items:
            return None
        item = self.items.popleft()
        self._room.release()
        return item

    def drain(self) -> None:
        try:
            while os.read(self.fd, 4096):
                pass
        except BlockingIOError:
            pass

    def close(self) -> None:
        """Stop the thread (one blocked reading its input is left to end with the process)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            os.close(self.fd)
            os.close(self._wake)
        self._room.release()


def unshared_input(stream):
    """A private reader of ``stream``'s file, at its position, for reading in ``_Feed``'s
    thread. A thread blocked reading ``sys.stdin`` holds its buffer's lock: a worker forked
    meanwhile then hangs closing its copy of ``sys.stdin`` (multiprocessing does that in every
    child), and the interpreter aborts at exit. A stream with no descriptor (tests) is
    returned as it is."""
    try:
        fd = stream.fileno()
    except (AttributeError, OSError, ValueError):
        return stream
    private = os.dup(fd)
    try:
        if stream.seekable():
            # the stream's buffer may be ahead of its logical position
            os.lseek(private, stream.tell(), os.SEEK_SET)
    except (AttributeError, OSError, ValueError):
        pass
    return open(private, "rb")


class PoolSupervisor:
    """The parent's side of ``supervised_map``, one step per method: ``fill`` hands input
    jobs to workers, ``receive`` takes a worker's message, ``poll`` reads the workers that
    are ready and enforces deadlines, ``restart`` replaces a dead or overdue worker and
    re-sends what it held, ``take_done`` yields results in input order; ``results`` runs
    them in a loop.

    ``spawn(index)`` makes the worker of that index (default: a forked ``_Worker`` running
    ``run`` after ``init(*init_args)``); tests pass stand-ins.
    """

    def __init__(self, run: Callable, *, workers: int, hard_timeout_s: float,
                 init: Callable | None = None, init_args: tuple = (),
                 window: int | None = None, queue_depth: int = 2,
                 spawn: Callable[[int], _Worker] | None = None):
        self.workers = workers
        self.hard_timeout_s = hard_timeout_s
        self.window = window or workers * 8
        self.queue_depth = queue_depth
        self.spawn = spawn or self._forker(run, init, init_args)
        self.pool: list[_Worker] = []  # grows as tasks need workers
        self.done: dict[int, object] = {}
        self.parts: dict[int, dict] = {}  # seq -> {query index: outcome kept by Slot.keep}
        self.crashes: dict[int, int] = {}
        self.next_out = 0
        self.submitted = 0
        self.exhausted = False
        self.failure: BaseException | None = None  # what reading the input raised
        self.held: tuple | None = None  # the next job, waiting for a worker that can take it

    def _forker(self, run: Callable, init: Callable | None,
                init_args: tuple) -> Callable[[int], _Worker]:
        methods = mp.get_all_start_methods()
        ctx = mp.get_context("fork" if "fork" in methods else "spawn")
        try:
            shared = ctx.RawArray("d", Slot.WIDTH * self.workers)
        except OSError as exc:  # a file in /dev/shm or the temp folder backs it
            raise RFError(f"cannot create the workers' shared memory: "
                          f"{exc.strerror or exc}") from None
        return lambda index: _Worker(ctx, index, shared, init, init_args, run)

    @staticmethod
    def packed(task: tuple) -> tuple[tuple, bytes]:
        """A task (seq, job, killed, kept) and its pickled form, as workers are sent it."""
        return task, pickle.dumps(task, protocol=pickle.HIGHEST_PROTOCOL)

    # -- workers' messages ---------------------------------------------------------------

    def receive(self, w: _Worker) -> None:
        """Take one message from a worker: a finished task, or one finished query of it."""
        msg = w.conn.recv()
        if msg[0] == _PART:
            _, seq, index, value = msg
            self.parts.setdefault(seq, {})[index] = value
        else:
            _, seq, result = msg
            self.done[seq] = result
            self.parts.pop(seq, None)
            w.tasks.popleft()

    def take_done(self) -> Iterator:
        """The finished results that every earlier one precedes, in input order."""
        while self.next_out in self.done:
            result = self.done.pop(self.next_out)
            self.next_out += 1
            yield result

    # -- restarts ------------------------------------------------------------------------

    def crashed(self, seq: int) -> None:
        """Count a crash on task ``seq``; too many is an error naming its input record."""
        self.crashes[seq] = self.crashes.get(seq, 0) + 1
        if self.crashes[seq] > MAX_CRASHES_PER_TASK:
            raise RFError(f"a worker process died {self.crashes[seq]} times on input "
                          f"record {seq + 1}")

    def collect(self, w: _Worker) -> None:
        """Receive what a killed worker had sent (messages in the pipe survive it)."""
        while w.tasks:
            try:
                if not w.conn.poll():
                    break
                self.receive(w)
            except (EOFError, OSError, ValueError):
                break

    def restart(self, w: _Worker, reason: str | None) -> _Worker:
        """Replace a worker; collect what it sent, then resend what it still held, with the
        query it was running (if any) marked killed for ``reason``. Returns the new one."""
        started, query_index, running_seq = w.slot.read()
        w.kill()
        self.collect(w)
        new = self.spawn(w.index)
        self.pool[w.index] = new
        running = started != IDLE and running_seq in {t[0] for t in w.tasks}
        if reason == "crash" and w.tasks:
            # the task it was running, or (died between queries) its oldest task
            self.crashed(running_seq if running else w.tasks[0][0])
        for seq, job, killed, _ in list(w.tasks) + [t for t, _ in w.backlog]:
            if running and seq == running_seq:
                killed = {**killed, query_index: reason or "crash"}
            new.backlog.append(self.packed((seq, job, killed, self.parts.get(seq, {}))))
        return new

    # -- handing out jobs ----------------------------------------------------------------

    def worker_for(self, size: int) -> _Worker | None:
        """An idle worker, else a new one while fewer than ``workers`` run, else one that
        can queue a job of ``size`` bytes behind its current task."""
        for w in self.pool:
            if not w.tasks and not w.backlog:
                return w
        if len(self.pool) < self.workers:
            self.pool.append(self.spawn(len(self.pool)))
            return self.pool[-1]
        return next((w for w in self.pool
                     if not w.backlog and w.can_take(size, self.queue_depth)), None)

    def send_backlogs(self) -> None:
        """Send each worker what it must run next (re-sent tasks), as far as it can take."""
        for w in self.pool:
            while w.backlog and w.can_take(len(w.backlog[0][1]), self.queue_depth):
                w.send(*w.backlog.popleft())

    def wants_input(self) -> bool:
        """Whether another job may be taken from the input (the window has room)."""
        return (not self.exhausted and self.failure is None
                and self.submitted - self.next_out < self.window)

    def hold_next(self, feed: "_Feed") -> tuple | None:
        """Take the next job from ``feed`` into ``held`` and return it; None when there is
        none now (not read yet, the input's end, or its failure, which are noted)."""
        item = feed.take()
        if item is None:
            return None
        if item[0] == _END:
            self.exhausted = True
            return None
        if item[0] == _FAILED:
            self.failure = item[1]
            return None
        self.held = self.packed((self.submitted, item[1], {}, {}))
        self.submitted += 1
        return self.held

    def fill(self, feed: "_Feed") -> None:
        """Hand jobs from ``feed`` to workers while the window has room and a worker can
        take the next one."""
        while self.wants_input():
            held = self.held or self.hold_next(feed)
            if held is None:
                break
            w = self.worker_for(len(held[1]))
            if w is None:
                break
            w.send(*held)
            self.held = None

    # -- waiting -------------------------------------------------------------------------

    def finished(self) -> bool:
        """Whether every job was read, run and handed out."""
        return (self.exhausted and self.held is None
                and not any(w.tasks or w.backlog for w in self.pool))

    def poll(self, ready: list, now: float) -> None:
        """Read every busy worker that is ``ready``; restart one whose query is past its
        deadline at ``now`` (monotonic) or that died."""
        for w in [w for w in self.pool if w.tasks]:
            if w.conn in ready:
                try:
                    while w.tasks and w.conn.poll():
                        self.receive(w)
                except (EOFError, OSError):
                    self.restart(w, "crash")
                continue
            started, _, _ = w.slot.read()
            if started != IDLE and now - started > self.hard_timeout_s:
                self.restart(w, "timeout")
            elif not w.proc.is_alive():
                self.restart(w, "crash")

    def wait(self, feed: "_Feed") -> list:
        """Wait for a busy worker's message or new input; with a query running, wake up in
        time to enforce its deadline."""
        busy = [w for w in self.pool if w.tasks]
        waiting = [w.conn for w in busy]
        if self.held is None and self.wants_input():
            waiting.append(feed.fd)
        ready = wait(waiting, timeout=0.05 if busy or not waiting else None)
        if feed.fd in ready:
            feed.drain()
        return ready

    # -- the whole run -------------------------------------------------------------------

    def loop(self, feed: "_Feed") -> Iterator:
        """Yield every job's result in input order: fill, yield what is done, wait, poll."""
        while True:
            self.send_backlogs()
            self.fill(feed)
            yield from self.take_done()
            if self.failure is not None and self.next_out == self.submitted:
                raise self.failure
            if self.finished():
                return
            ready = self.wait(feed)
            self.poll(ready, time.monotonic())

    def results(self, jobs_in: Iterable) -> Iterator:
        """Run every job of ``jobs_in`` (read in a thread) and yield the results in input
        order; the workers end with it, however it ends."""
        feed = _Feed(jobs_in)
        try:
            yield from self.loop(feed)
        except BaseException:  # a signal, an error, or the consumer stopping early
            for w in self.pool:
                w.kill()
            raise
        finally:
            feed.close()
            self.shutdown()

    def shutdown(self) -> None:
        """Ask every worker to stop, then stop those that do not within 0.5 s."""
        for w in self.pool:
            try:
                if w.proc.is_alive():
                    w.conn.send(None)
            except OSError:
                pass
        for w in self.pool:
            w.proc.join(timeout=0.5)
            w.kill()


def supervised_map(run: Callable, jobs_in: Iterable, *, workers: int, hard_timeout_s: float,
                   init: Callable, init_args: tuple = (), window: int | None = None,
                   queue_depth: int = 2) -> Iterator:
    """Yield ``run(job, slot, killed)`` for each job, in input order, each as soon as it and
    every job before it are done.

    ``run`` must call ``slot.start(i)`` before its i-th query and ``slot.stop()`` after it,
    and must not run a query whose index is in ``killed`` (a dict: index -> "timeout" when
    its worker was killed past the deadline, "crash" when its worker died running it). It
    may hand each finished query's outcome to ``slot.keep(i, value)``; a task re-sent after
    a kill then finds them in ``slot.kept`` (index -> value) and need not run them again.

    ``jobs_in`` is iterated in a thread; an exception it raises is raised here after the
    results of every job before it.
    """
    supervisor = PoolSupervisor(run, workers=workers, hard_timeout_s=hard_timeout_s,
                                init=init, init_args=init_args, window=window,
                                queue_depth=queue_depth)
    yield from supervisor.results(jobs_in)
