"""Signals, memory and kills: each case here is a hole found by trying the commands as a
hostile user would, kept as a regression test."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest

import rf_core.exec.verify as verify
from rf_core.exec.sqlite import Executor, Limits
from conftest import jsonl, make_task, run

BIN = Path(sys.executable).parent
SLOW = "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r) SELECT count(*) FROM r"
# One SQLite instruction that runs for seconds: only killing its worker stops it.
BOMB = "SELECT length(printf('%.*c', 2000000000, 'x'))"


def children(pid: int) -> set[int]:
    """Every live descendant of ``pid`` (Linux /proc)."""
    found, todo = set(), [pid]
    while todo:
        p = todo.pop()
        try:
            kids = Path(f"/proc/{p}/task/{p}/children").read_text().split()
        except OSError:
            continue
        for k in map(int, kids):
            found.add(k)
            todo.append(k)
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def wait_gone(pids: set[int], within: float = 5.0) -> set[int]:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        left = {p for p in pids if alive(p)}
        if not left:
            return left
        time.sleep(0.05)
    return {p for p in pids if alive(p)}


needs_proc = pytest.mark.skipif(not Path("/proc/self/task").is_dir(),
                                reason="needs Linux /proc to find worker processes")


@needs_proc
@pytest.mark.parametrize("sig, code", [(signal.SIGTERM, 143), (signal.SIGHUP, 129),
                                       (signal.SIGINT, 130), (signal.SIGKILL, -9)])
def test_workers_die_with_rf_exec_and_the_reader_gets_eof(shop_db, tmp_path, sig, code):
    path = tmp_path / "slow.jsonl"
    path.write_bytes(jsonl([make_task(shop_db, "SELECT 1", [SLOW, SLOW], id=f"s/{i}")
                            for i in range(20)]))
    proc = subprocess.Popen([str(BIN / "rf-exec"), "--jobs", "2", "--timeout", "2", str(path)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 30
        while len(children(proc.pid)) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        workers = children(proc.pid)
        assert len(workers) >= 2, "rf-exec started no workers"
        time.sleep(0.3)  # the workers are inside their first slow query
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=15)  # EOF: nothing else holds the pipe
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == code, err.decode()
    assert not wait_gone(workers), "a worker outlived rf-exec"
    assert b"Traceback" not in err, err.decode()
    if sig != signal.SIGKILL:
        assert f"rf-exec: stopped by {signal.Signals(sig).name}".encode() in err
    assert out == b"" or out.endswith(b"\n")


def test_a_signal_mid_record_never_leaves_half_a_line(shop_db, tmp_path):
    task = make_task(shop_db, "SELECT 1", ["SELECT 1"], correct=None)
    task["candidates"][0].update(correct=True, exec={
        "ok": True, "error": None, "n_rows": 1, "digest": "d", "ms": 0.1, "truncated": False})
    task["ext"] = {"blob": "x" * (20 << 20)}  # a 20 MB record: far more than a pipe holds
    path = tmp_path / "big.jsonl"
    path.write_bytes(jsonl([task, task | {"id": "t/1"}]))
    proc = subprocess.Popen([str(BIN / "rf-vote"), str(path)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    try:
        time.sleep(1.0)  # rf-vote is now blocked writing the first record into a full pipe
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 143, err.decode()
    assert out.endswith(b"\n"), f"got {len(out)} bytes ending without a newline"
    lines = out.splitlines()
    assert len(lines) == 1 and orjson.loads(lines[0])["id"] == "t/0"


def test_byte_cap_bounds_worker_memory(tmp_path):
    """100 rows of a 10 MB blob under --max-bytes 1000000: the worker held 256 of them
    (about 2.5 GB) before the cap was looked at."""
    db = tmp_path / "empty.sqlite"
    import sqlite3

    sqlite3.connect(db).close()
    blobs = ("WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 100) "
             "SELECT randomblob(10000000) FROM c")
    task = make_task(str(db), "SELECT 1", [blobs])
    probe = ("import resource, subprocess, sys; "
             "p = subprocess.run(sys.argv[1:], input=sys.stdin.buffer.read(), "
             "capture_output=True); sys.stdout.buffer.write(p.stdout); "
             "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr)")
    proc = subprocess.run([sys.executable, "-c", probe, str(BIN / "rf-exec"), "--jobs", "1",
                           "--max-memory-mb", "64", "--max-bytes", "1000000"],
                          input=jsonl([task]), capture_output=True, timeout=120)
    peak_mib = int(proc.stderr.decode().split()[-1]) / 1024
    cand = orjson.loads(proc.stdout)["candidates"][0]
    assert cand["exec"]["truncated"] and cand["correct"] is False
    # the interpreter and sqlite3 (about 30 MiB), the 64 MiB heap, 1 MB of rows, one row
    assert peak_mib < 200, f"peak RSS {peak_mib:.0f} MiB"


def test_rows_are_counted_as_they_arrive(shop_db):
    res = Executor(Limits(max_bytes=10)).run(shop_db, "SELECT 'abcdefgh' FROM big")
    assert res.truncated and res.n_rows == 1


def test_sigint_exits_130_in_process(shop_db, monkeypatch):
    """Ctrl-C while a command reads: exit 130 and one line, not click's 'Aborted!' and 1."""

    def interrupt(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr("rf_core.commands.vote.vote", interrupt)
    task = make_task(shop_db, "SELECT 1", ["SELECT 1"])
    task["candidates"][0]["correct"] = True
    task["candidates"][0]["exec"] = {"ok": True, "error": None, "n_rows": 1, "digest": "d",
                                     "ms": 0.1, "truncated": False}
    r = run("rf-vote", input=[task])
    assert r.code == 130 and "rf-vote: stopped by SIGINT" in r.stderr


def test_a_killed_task_keeps_what_it_had_finished(shop_db, tmp_path, monkeypatch):
    """A worker killed past the deadline: its task is re-sent, and before, every earlier
    query of the task ran again (one task of 371 queries took 197.6 s instead of 76.5 s)."""
    log = tmp_path / "ran.log"
    real = Executor.run

    def logged(self, db, sql):
        with open(log, "a") as fh:
            fh.write(repr(sql) + "\n")
        return real(self, db, sql)

    monkeypatch.setattr(Executor, "run", logged)  # workers are forked: they inherit it
    cands = [f"SELECT {i}" for i in range(6)] + [BOMB, "SELECT 6", "SELECT 2"]
    r = run("rf-exec", ["--jobs", "1", "--timeout", "0.3"],
            input=[make_task(shop_db, "SELECT 2", cands)])
    assert r.code == 0, r.stderr
    got = [c["correct"] for c in r.records[0]["candidates"]]
    assert got == [False, False, True, False, False, False, False, False, True]
    assert r.records[0]["candidates"][6]["exec"]["timed_out"]
    ran = [eval(line) for line in log.read_text().splitlines()]
    assert ran.count("SELECT 2") == 2, ran  # the gold, run again after the kill
    for i in (0, 1, 3, 4, 5, 6):
        assert ran.count(f"SELECT {i}") == 1, (i, ran)
    assert ran.count(BOMB) == 1


def test_check_job_uses_kept_outcomes(shop_db):
    verify._init_worker(Limits(), "official")

    class Kept:
        kept = {1: ({"ok": True, "from": "kept"}, True)}
        calls: list = []

        def start(self, i):
            self.calls.append(i)

        def stop(self):
            pass

        def keep(self, i, value):
            pass

    slot = Kept()
    _, outs = verify.check_job((shop_db, "SELECT 1", ["SELECT 1", "SELECT 1", "SELECT 2"]),
                               slot, {})
    assert outs[0][0]["from"] == "kept" and outs[1][0]["from"] == "kept"
    assert outs[2][1] is False
    assert slot.calls == [0, 3]


def test_a_large_job_behind_a_task_with_many_answers_does_not_deadlock(shop_db, tmp_path):
    """The parent blocked sending a job bigger than a pipe holds while its worker blocked
    sending the previous task's answers back: a job that large now waits for an idle
    worker."""
    many = make_task(shop_db, "SELECT 1", [f"SELECT {i}" for i in range(400)], id="many")
    big = make_task(shop_db, "SELECT 1", ["SELECT '" + "x" * 300_000 + "'"], id="big")
    path = tmp_path / "in.jsonl"
    path.write_bytes(jsonl([many, big, many | {"id": "again"}]))
    proc = subprocess.run([str(BIN / "rf-exec"), "--jobs", "1", str(path)],
                          capture_output=True, timeout=120)
    assert proc.returncode == 0, proc.stderr.decode()
    out = [orjson.loads(x) for x in proc.stdout.splitlines()]
    assert [t["id"] for t in out] == ["many", "big", "again"]
    assert sum(c["correct"] for c in out[0]["candidates"]) == 1
