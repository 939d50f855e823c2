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
from collections import deque
from multiprocessing.connection import wait
from typing import Callable, Iterable, Iterator

from .errors import RFError

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
        slot.seq = seq
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
        # Tasks sent and not yet answered, oldest first: (seq, job, killed). The worker
        # answers in order, so keeping two queued hides the round trip between tasks.
        self.tasks: deque = deque()

    def send(self, task: tuple) -> None:
        self.tasks.append(task)
        self.conn.send(task)

    def kill(self) -> None:
        if self.proc.is_alive():
            os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.join()
        self.conn.close()


def supervised_map(run: Callable, jobs_in: Iterable, *, workers: int, hard_timeout_s: float,
                   init: Callable, init_args: tuple = (), window: int | None = None,
                   queue_depth: int = 2) -> Iterator:
    """Yield ``run(job, slot, killed)`` for each job, in input order.

    ``run`` must call ``slot.start(i)`` before its i-th query and ``slot.stop()`` after it,
    and must not run a query whose index is in ``killed`` (a dict: index -> "timeout" when
    its worker was killed past the deadline, "crash" when its worker died running it).
    """
    methods = mp.get_all_start_methods()
    ctx = mp.get_context("fork" if "fork" in methods else "spawn")
    shared = ctx.RawArray("d", Slot.WIDTH * workers)
    window = window or workers * 8
    pool = [_Worker(ctx, i, shared, init, init_args, run) for i in range(workers)]
    source = iter(enumerate(jobs_in))
    done: dict[int, object] = {}
    crashes: dict[int, int] = {}
    next_out = 0
    submitted = 0
    exhausted = False

    def restart(w: _Worker, reason: str | None) -> None:
        """Replace a worker; collect answers it sent, then resend what it still held, with the
        query it was running (if any) marked killed for ``reason``."""
        started, query_index, running_seq = w.slot.read()
        w.kill()
        while w.tasks:
            try:  # answers already in the pipe survive the worker
                if not w.conn.poll():
                    break
            except (OSError, ValueError):
                break
            try:
                seq, result = w.conn.recv()
            except (EOFError, OSError):
                break
            done[seq] = result
            w.tasks.popleft()
        new = _Worker(ctx, w.index, shared, init, init_args, run)
        pool[w.index] = new
        if reason == "crash" and w.tasks and (started == IDLE or running_seq not in
                                              {t[0] for t in w.tasks}):
            seq = w.tasks[0][0]  # died between queries: count it against its oldest task
            crashes[seq] = crashes.get(seq, 0) + 1
            if crashes[seq] > MAX_CRASHES_PER_TASK:
                raise RFError(f"a worker process died {crashes[seq]} times on input "
                              f"record {seq + 1}")
        for seq, job, killed in w.tasks:
            if seq == running_seq and started != IDLE:
                if reason == "crash":
                    crashes[seq] = crashes.get(seq, 0) + 1
                    if crashes[seq] > MAX_CRASHES_PER_TASK:
                        raise RFError(f"a worker process died {crashes[seq]} times on input "
                                      f"record {seq + 1}")
                killed = {**killed, query_index: reason or "crash"}
            new.send((seq, job, killed))

    try:
        while True:
            for w in pool:
                while (len(w.tasks) < queue_depth and not exhausted
                       and submitted - next_out < window):
                    try:
                        seq, job = next(source)
                    except StopIteration:
                        exhausted = True
                        break
                    w.send((seq, job, {}))
                    submitted += 1
            while next_out in done:
                yield done.pop(next_out)
                next_out += 1
            busy = [w for w in pool if w.tasks]
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
                        restart(w, "crash")
                        continue
                    done[seq] = result
                    w.tasks.popleft()
                    continue
                started, _, _ = w.slot.read()
                if started != IDLE and now - started > hard_timeout_s:
                    restart(w, "timeout")
                elif not w.proc.is_alive():
                    restart(w, "crash")
    finally:
        for w in pool:
            try:
                if w.proc.is_alive():
                    w.conn.send(None)
            except OSError:
                pass
        for w in pool:
            w.proc.join(timeout=0.5)
            w.kill()
