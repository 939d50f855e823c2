"""rf-exec writes each record as soon as it and every record before it are done, and enforces
worker deadlines, whatever its producer does; workers are forked only for tasks that need
them, and --jobs has a ceiling. Each test keeps the producer's end of the pipe open: a record
that comes back then was written without waiting for more input."""

from __future__ import annotations

import os
import select
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest

from conftest import jsonl, make_task, run

BIN = Path(sys.executable).parent
# One SQLite instruction that runs for seconds: only the parent killing its worker stops it.
BOMB = "SELECT length(printf('%.*c', 2000000000, 'x'))"
SLOW = "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r) SELECT count(*) FROM r"
PATIENCE_S = 30  # generous: the test fails only if nothing comes while stdin is open


def start(*args: str) -> subprocess.Popen:
    return subprocess.Popen([str(BIN / "rf-exec"), *args], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def read_lines(proc: subprocess.Popen, n: int, within: float = PATIENCE_S) -> list[dict]:
    """n records from proc's stdout, read while its stdin stays open."""
    fd = proc.stdout.fileno()
    buf = b""
    deadline = time.monotonic() + within
    while buf.count(b"\n") < n:
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            break
        chunk = os.read(fd, 1 << 16)
        if not chunk:
            break
        buf += chunk
    return [orjson.loads(x) for x in buf.splitlines()]


def finish(proc: subprocess.Popen) -> tuple[int, bytes]:
    proc.stdin.close()
    proc.stdin = None  # communicate() would flush it
    try:
        _, err = proc.communicate(timeout=PATIENCE_S)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return proc.returncode, err


def children(pid: int) -> set[int]:
    try:
        return set(map(int, Path(f"/proc/{pid}/task/{pid}/children").read_text().split()))
    except OSError:
        return set()


needs_proc = pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="needs /proc")


@pytest.mark.parametrize("jobs", ["1", "3"])
@pytest.mark.parametrize("n_tasks", [1, 2])
def test_records_come_out_while_the_producer_is_quiet(shop_db, jobs, n_tasks):
    proc = start("--jobs", jobs)
    try:
        tasks = [make_task(shop_db, "SELECT 1", ["SELECT 1", "SELECT 2"], id=f"t/{i}")
                 for i in range(n_tasks)]
        proc.stdin.write(jsonl(tasks))
        proc.stdin.flush()
        got = read_lines(proc, n_tasks)
        assert [t["id"] for t in got] == [t["id"] for t in tasks], "held until more input"
        assert [c["correct"] for c in got[0]["candidates"]] == [True, False]
        # and the stream goes on: a later task is answered as well
        proc.stdin.write(jsonl([make_task(shop_db, "SELECT 2", ["SELECT 2"], id="late")]))
        proc.stdin.flush()
        assert [t["id"] for t in read_lines(proc, 1)] == ["late"]
    finally:
        code, err = finish(proc)
    assert code == 0, err.decode()


@pytest.mark.parametrize("sql, killed", [(BOMB, True), (SLOW, False)])
def test_a_runaway_query_ends_at_its_deadline_while_the_producer_is_quiet(shop_db, sql,
                                                                            killed):
    """BOMB is one SQLite instruction: only the parent's watch ends it at the deadline (left
    alone it runs for seconds and fails with an error of its own). SLOW is stopped by the
    worker's progress handler."""
    proc = start("--jobs", "1", "--timeout", "1")
    try:
        proc.stdin.write(jsonl([make_task(shop_db, "SELECT 1", [sql, "SELECT 1"])]))
        proc.stdin.flush()
        got = read_lines(proc, 1)
        assert len(got) == 1, "the record never came while stdin was open"
        first, second = got[0]["candidates"]
        assert first["exec"]["timed_out"] is True, first["exec"]
        assert second["correct"] is True
    finally:
        code, err = finish(proc)
    assert code == 0, err.decode()
    assert b"1 timeout(s)" in err, err.decode()


def test_order_is_kept_when_a_later_task_finishes_first(shop_db):
    proc = start("--jobs", "2", "--timeout", "1")
    try:
        slow = make_task(shop_db, "SELECT 1", [SLOW], id="slow")
        fast = make_task(shop_db, "SELECT 1", ["SELECT 1"], id="fast")
        proc.stdin.write(jsonl([slow, fast]))
        proc.stdin.flush()
        assert [t["id"] for t in read_lines(proc, 2)] == ["slow", "fast"]
    finally:
        code, err = finish(proc)
    assert code == 0, err.decode()


def test_a_bad_line_comes_after_the_records_before_it(shop_db):
    """The error is raised in its place: every record before the bad line is written."""
    good = [make_task(shop_db, "SELECT 1", ["SELECT 1"], id=f"t/{i}") for i in range(5)]
    r = run("rf-exec", ["--jobs", "2"], input=jsonl(good) + b"not json\n")
    assert r.code == 1
    assert "Error: rf-exec: line 6: invalid JSON" in r.stderr
    assert [t["id"] for t in r.records] == [t["id"] for t in good]


@needs_proc
def test_workers_are_forked_only_for_tasks_in_flight(shop_db):
    proc = start("--jobs", "4")
    try:
        time.sleep(0.5)
        assert not children(proc.pid), "workers forked before any input"
        proc.stdin.write(jsonl([make_task(shop_db, "SELECT 1", ["SELECT 1"])]))
        proc.stdin.flush()
        assert len(read_lines(proc, 1)) == 1
        assert len(children(proc.pid)) == 1, "more workers than tasks ever in flight"
    finally:
        code, err = finish(proc)
    assert code == 0, err.decode()


@pytest.mark.parametrize("jobs", ["100000", "0"])
def test_jobs_out_of_range_is_a_usage_error(shop_db, jobs):
    r = run("rf-exec", ["--jobs", jobs], input=[make_task(shop_db, "SELECT 1", ["SELECT 1"])])
    assert r.code == 2
    assert "--jobs" in r.stderr and r.stdout == b""


def test_the_largest_jobs_value_is_accepted(shop_db):
    from rf_core.commands.params import max_jobs

    r = run("rf-exec", ["--jobs", str(max_jobs())],
            input=[make_task(shop_db, "SELECT 1", ["SELECT 1"])])
    assert r.code == 0, r.stderr
    assert r.records[0]["candidates"][0]["correct"] is True
