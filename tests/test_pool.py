"""The worker pool's supervisor, one step at a time, with stand-in workers: no processes, no
clocks (deadlines are checked against a ``now`` the test gives)."""

from __future__ import annotations

from collections import deque

import pytest

from rf_core.errors import RFError
from rf_core.exec.pool import (_DONE, _END, _FAILED, _JOB, _PART, _SMALL_JOB,
                               MAX_CRASHES_PER_TASK, PoolSupervisor, Slot, _Worker,
                               supervised_map)


class FakeConn:
    """A worker's pipe: ``inbox`` holds what the worker sent, ``sent`` what it was sent."""

    def __init__(self):
        self.inbox: deque = deque()
        self.sent: list = []
        self.broken = False

    def recv(self):
        if self.broken or not self.inbox:
            raise EOFError
        return self.inbox.popleft()

    def poll(self):
        if self.broken:
            raise OSError("broken pipe")
        return bool(self.inbox)

    def send_bytes(self, data):
        self.sent.append(data)

    def send(self, msg):
        self.sent.append(msg)


class FakeProc:
    def __init__(self):
        self.alive = True

    def is_alive(self):
        return self.alive

    def join(self, timeout=None):
        pass


class FakeWorker(_Worker):
    """A _Worker without a process: its queue rules (``can_take``, ``send``) are the real
    ones."""

    def __init__(self, index: int, shared: list):
        self.index = index
        self.slot = Slot(shared, index)
        self.slot.stop()
        self.conn = FakeConn()
        self.proc = FakeProc()
        self.tasks = deque()
        self.backlog = deque()
        self.killed = False

    def kill(self):
        self.killed = True
        self.proc.alive = False


class FakeFeed:
    """The input thread's queue, already read."""

    fd = -1

    def __init__(self, *items):
        self.items = deque(items)

    def take(self):
        return self.items.popleft() if self.items else None


def supervisor(workers: int = 2, **kwargs) -> PoolSupervisor:
    shared = [0.0] * (Slot.WIDTH * workers)
    sup = PoolSupervisor(None, workers=workers, hard_timeout_s=1.0,
                         spawn=lambda i: FakeWorker(i, shared), **kwargs)
    sup.shared = shared
    return sup


def jobs(*values):
    return [(_JOB, v) for v in values]


def seqs(w) -> list[int]:
    return [t[0] for t in w.tasks]


def test_fill_uses_idle_workers_then_new_ones_then_queues_two_deep():
    sup = supervisor(workers=2)
    sup.fill(FakeFeed(*jobs("a", "b", "c", "d", "e")))
    w0, w1 = sup.pool
    assert seqs(w0) == [0, 2] and seqs(w1) == [1, 3]
    assert sup.held[0][:2] == (4, "e") and sup.submitted == 5
    assert len(w0.conn.sent) == 2  # each job sent once, pickled


def test_fill_stops_at_the_window():
    sup = supervisor(workers=4, window=2)
    sup.fill(FakeFeed(*jobs("a", "b", "c")))
    assert sup.submitted == 2 and sup.held is None and not sup.wants_input()
    sup.done[0] = "A"
    assert list(sup.take_done()) == ["A"] and sup.wants_input()


def test_a_large_job_waits_for_an_idle_worker():
    sup = supervisor(workers=1)
    sup.fill(FakeFeed(*jobs("small", "x" * (_SMALL_JOB + 1))))
    assert seqs(sup.pool[0]) == [0] and sup.held[0][0] == 1


def test_fill_notes_the_end_and_a_failure_of_the_input():
    sup = supervisor()
    sup.fill(FakeFeed(*jobs("a"), (_END, None)))
    assert sup.exhausted and sup.submitted == 1 and not sup.finished()
    failing = supervisor()
    error = ValueError("bad input")
    failing.fill(FakeFeed((_FAILED, error), *jobs("never")))
    assert failing.failure is error and failing.submitted == 0


def test_receive_keeps_parts_and_results_come_out_in_input_order():
    sup = supervisor(workers=2)
    sup.fill(FakeFeed(*jobs("a", "b")))
    w0, w1 = sup.pool
    w1.conn.inbox.append((_DONE, 1, "B"))
    sup.receive(w1)
    assert list(sup.take_done()) == [] and not w1.tasks
    w0.conn.inbox.extend([(_PART, 0, 1, "one query"), (_DONE, 0, "A")])
    sup.receive(w0)
    assert sup.parts == {0: {1: "one query"}}
    sup.receive(w0)
    assert sup.parts == {} and list(sup.take_done()) == ["A", "B"] and sup.next_out == 2


def test_restart_after_a_timeout_resends_with_the_query_killed_and_what_was_kept():
    sup = supervisor(workers=1)
    sup.fill(FakeFeed(*jobs("a", "b")))
    old = sup.pool[0]
    sup.parts[0] = {1: "kept outcome"}
    old.slot.seq = 0
    old.slot.start(3)  # running query 3 of task 0
    new = sup.restart(old, "timeout")
    assert old.killed and sup.pool[0] is new and new.index == 0
    resent = [task for task, _ in new.backlog]
    assert resent == [(0, "a", {3: "timeout"}, {1: "kept outcome"}), (1, "b", {}, {})]
    assert sup.crashes == {}
    sup.send_backlogs()
    assert seqs(new) == [0, 1] and not new.backlog


def test_restart_collects_what_the_dead_worker_had_sent():
    sup = supervisor(workers=1)
    sup.fill(FakeFeed(*jobs("a", "b")))
    old = sup.pool[0]
    old.conn.inbox.extend([(_DONE, 0, "A"), (_PART, 1, 2, "part")])
    new = sup.restart(old, "crash")
    assert sup.done == {0: "A"}
    assert [task for task, _ in new.backlog] == [(1, "b", {}, {2: "part"})]
    assert sup.crashes == {1: 1}  # died between queries: its oldest task is blamed


def test_a_task_that_keeps_crashing_its_worker_is_an_error():
    sup = supervisor(workers=1)
    sup.fill(FakeFeed(*jobs("a")))
    for n in range(MAX_CRASHES_PER_TASK):
        w = sup.pool[0]
        w.slot.seq = 0
        w.slot.start(1)
        sup.restart(w, "crash")
        sup.send_backlogs()
        assert sup.crashes == {0: n + 1}
        assert sup.pool[0].tasks[0][2] == {1: "crash"}
    with pytest.raises(RFError, match="died 4 times on input record 1"):
        sup.restart(sup.pool[0], "crash")


def test_poll_reads_ready_workers_and_restarts_overdue_dead_and_broken_ones():
    sup = supervisor(workers=4)
    sup.fill(FakeFeed(*jobs("ready", "overdue", "dead", "broken")))
    ready, overdue, dead, broken = sup.pool
    ready.conn.inbox.append((_DONE, 0, "R"))
    overdue.slot.seq = 1
    overdue.slot.start(0)
    started = sup.shared[Slot.WIDTH * 1]
    dead.proc.alive = False
    broken.conn.broken = True
    sup.poll([ready.conn, broken.conn], now=started + 0.5)  # within the deadline
    assert sup.done == {0: "R"} and sup.pool[1] is overdue
    assert sup.pool[2] is not dead and sup.pool[3] is not broken
    assert sup.crashes == {2: 1, 3: 1}
    sup.poll([], now=started + 1.5)  # past hard_timeout_s
    assert sup.pool[1] is not overdue
    assert [t for t, _ in sup.pool[1].backlog] == [(1, "overdue", {0: "timeout"}, {})]


def test_finished_only_when_everything_was_read_run_and_handed_out():
    sup = supervisor(workers=1)
    sup.fill(FakeFeed(*jobs("a"), (_END, None)))
    assert not sup.finished()
    sup.pool[0].conn.inbox.append((_DONE, 0, "A"))
    sup.receive(sup.pool[0])
    assert sup.finished() and list(sup.take_done()) == ["A"]


def _double(job, slot, killed):
    return job * 2


def _nothing():
    pass


def test_supervised_map_keeps_input_order_with_real_workers():
    out = list(supervised_map(_double, range(40), workers=3, hard_timeout_s=30,
                              init=_nothing))
    assert out == [2 * i for i in range(40)]


def test_an_input_error_comes_after_every_result_before_it():
    def jobs_in():
        yield from range(5)
        raise ValueError("line 6 is bad")

    results = supervised_map(_double, jobs_in(), workers=2, hard_timeout_s=30, init=_nothing)
    got = []
    with pytest.raises(ValueError, match="line 6 is bad"):
        for r in results:
            got.append(r)
    assert got == [0, 2, 4, 6, 8]

