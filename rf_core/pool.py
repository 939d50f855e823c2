"""Worker processes that run SQL jobs in input order, under a hard per-query deadline.

SQLite's progress handler interrupts a query between VM instructions, which stops nearly
every runaway query at its timeout. A single instruction can still run for long (one
``printf('%.*c', 2000000000, 'x')`` took 11 s), and no thread can interrupt C code, so the
parent watches each worker: before every query a worker writes the query's start time and
index to shared memory, and a worker whose query passes timeout + grace is killed and
replaced. Its task is sent again with that query marked as killed, so the rest of the task
still runs and the killed query is recorded as a timeout.

At most ``window`` tasks are in flight or waiting to be written, so memory does not grow
with the input (``multiprocessing.Pool.imap`` would read the whole input ahead).
"""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import time
from multiprocessing.connection import wait
from typing import Callable, Iterable, Iterator

from .errors import RFError

IDLE = 0.0
GRACE_S = 0.5
MAX_CRASHES_PER_TASK = 3


class Slot:
    """What a worker is doing, in shared memory: [query start (monotonic), query index]."""

    def __init__(self, array, index: int):
        self._a = array
        self._i = 2 * index

    def start(self, query_index: int) -> None:
        self._a[self._i + 1] = query_index
        self._a[self._i] = time.monotonic()

    def stop(self) -> None:
        self._a[self._i] = IDLE

    def read(self) -> tuple[float, int]:
        return self._a[self._i], int(self._a[self._i + 1])


def _worker_main(conn, slot: Slot, init: Callable, init_args: tuple, run: Callable) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C and kills us
    init(*init_args)
    while True:
        try:
            msg = conn.recv()
        except EOFError:
            return
        if msg is None:
            return
        seq, job, killed = msg
        conn.send((seq, run(job, slot, killed)))


class _Worker:
    def __init__(self, ctx, index: int, shared, init, init_args, run):
        self.index = index
        self.slot = Slot(shared, index)
        self.slot.stop()
        parent_conn, child_conn = ctx.Pipe()
        self.conn = parent_conn
        self.proc = ctx.Process(target=_worker_main, daemon=True,
                                args=(child_conn, self.slot, init, init_args, run))
        self.proc.start()
        child_conn.close()
        self.task: tuple | None = None  # (seq, job, killed)

    def kill(self) -> None:
        if self.proc.is_alive():
            os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.join()
        self.conn.close()


def supervised_map(run: Callable, jobs_in: Iterable, *, workers: int, hard_timeout_s: float,
                   init: Callable, init_args: tuple = (), window: int | None = None) -> Iterator:
    """Yield ``run(job, slot, killed)`` for each job, in input order.

    ``run`` must call ``slot.start(i)`` before its i-th query and ``slot.stop()`` after it,
    and must not run a query whose index is in ``killed`` (a dict: index -> "timeout" when
    its worker was killed past the deadline, "crash" when its worker died running it).
    """
    methods = mp.get_all_start_methods()
    ctx = mp.get_context("fork" if "fork" in methods else "spawn")
    shared = ctx.RawArray("d", 2 * workers)
    window = window or workers * 8
    pool = [_Worker(ctx, i, shared, init, init_args, run) for i in range(workers)]
    source = iter(enumerate(jobs_in))
    done: dict[int, object] = {}
    crashes: dict[int, int] = {}
    next_out = 0
    submitted = 0
    exhausted = False

    def replace(w: _Worker) -> _Worker:
        w.kill()
        new = _Worker(ctx, w.index, shared, init, init_args, run)
        pool[w.index] = new
        return new

    try:
        while True:
            for i, w in enumerate(pool):
                if w.task is None and not exhausted and submitted - next_out < window:
                    try:
                        seq, job = next(source)
                    except StopIteration:
                        exhausted = True
                        break
                    w.task = (seq, job, {})
                    w.conn.send(w.task)
                    submitted += 1
            while next_out in done:
                yield done.pop(next_out)
                next_out += 1
            busy = [w for w in pool if w.task is not None]
            if not busy:
                if exhausted:
                    return
                continue
            ready = wait([w.conn for w in busy], timeout=0.05)
            now = time.monotonic()
            for w in busy:
                if w.conn in ready:
                    try:
                        seq, result = w.conn.recv()
                    except (EOFError, OSError):
                        _resubmit(w, replace, crashes, "crashed")
                        continue
                    done[seq] = result
                    w.task = None
                    continue
                started, query_index = w.slot.read()
                if started != IDLE and now - started > hard_timeout_s:
                    seq, job, killed = w.task
                    new = replace(w)
                    new.task = (seq, job, {**killed, query_index: "timeout"})
                    new.conn.send(new.task)
                elif not w.proc.is_alive():
                    _resubmit(w, replace, crashes, "died")
    finally:
        for w in pool:
            try:
                if w.task is None and w.proc.is_alive():
                    w.conn.send(None)
            except OSError:
                pass
        for w in pool:
            w.proc.join(timeout=0.5)
            w.kill()


def _resubmit(w: _Worker, replace, crashes: dict, how: str) -> None:
    """A worker died outside a timed-out query (a crash): the query it was running, if any,
    is marked killed and the task is sent again; a task that keeps crashing is an error."""
    seq, job, killed = w.task
    crashes[seq] = crashes.get(seq, 0) + 1
    if crashes[seq] > MAX_CRASHES_PER_TASK:
        raise RFError(f"a worker process {how} {crashes[seq]} times on input record {seq + 1}")
    started, query_index = w.slot.read()
    if started != IDLE:
        killed = {**killed, query_index: "crash"}
    new = replace(w)
    new.task = (seq, job, killed)
    new.conn.send(new.task)
