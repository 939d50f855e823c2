"""rf-data spider on a question file or database that is not what Spider's layout promises:
items that are not questions, a db_id that leaves database/, a file that is not SQLite, a
database with a hot journal, a --root that is not UTF-8. Each is skipped or refused with one
line; nothing is opened outside --root and no byte of a database changes."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import run

BIN = Path(sys.executable).parent


def database(path: Path, rows: int = 3) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE t (a INTEGER)")
    conn.executemany("INSERT INTO t VALUES (?)", [(i,) for i in range(rows)])
    conn.commit()
    conn.close()
    return path


def layout(root: Path, items: list) -> Path:
    database(root / "database" / "ok" / "ok.sqlite")
    (root / "dev.json").write_text(json.dumps(items))
    return root


OK = {"db_id": "ok", "question": "How many?", "query": "SELECT count(*) FROM t"}


@pytest.mark.parametrize("bad,problem", [
    (5, "item 0 is not a JSON object"),
    ({"question": "q", "query": "SELECT 1"}, "item 0 has no db_id"),
    ({"db_id": 7, "question": "q"}, "item 0 has no db_id"),
    ({"db_id": "ok"}, "item 0 has no question"),
    ({"db_id": "ok", "question": "q", "query": ["SELECT 1"]},
     "item 0 has a query that is not a string"),
])
def test_items_that_are_not_questions_are_skipped_and_counted(tmp_path, bad, problem):
    root = layout(tmp_path / "spider", [bad, OK])
    r = run("rf-data", ["spider", "--root", str(root), "--split", "dev"])
    assert r.code == 0, r.stderr
    assert [t["db_id"] for t in r.records] == ["ok"]
    assert f"skipped 1 of 2 dev item(s) that are not questions ({problem})" in r.stderr


@pytest.mark.parametrize("db_id", ["OUTSIDE", "../outside", "..", "a/../../outside"])
def test_a_db_id_that_leaves_database_is_refused(tmp_path, db_id):
    outside = database(tmp_path / "outside" / "outside.sqlite")
    db_id = str(outside.parent) if db_id == "OUTSIDE" else db_id
    root = layout(tmp_path / "spider", [{**OK, "db_id": db_id}, OK])
    r = run("rf-data", ["spider", "--root", str(root), "--split", "dev"])
    assert r.code == 0, r.stderr
    assert [t["db_id"] for t in r.records] == ["ok"]
    assert "which is not a folder name under database/" in r.stderr


def test_a_question_file_that_is_not_a_list_is_one_error(tmp_path):
    root = layout(tmp_path / "spider", [])
    (root / "dev.json").write_text(json.dumps({"db_id": "ok"}))
    r = run("rf-data", ["spider", "--root", str(root), "--split", "dev"])
    assert r.code == 1 and r.records == []
    assert r.stderr.strip().splitlines()[-1].endswith("is not a JSON list of questions")


def test_a_file_that_is_not_sqlite_skips_its_tasks_with_one_line(tmp_path):
    root = layout(tmp_path / "spider", [{**OK, "db_id": "junk"}, {**OK, "db_id": "junk"}, OK])
    (root / "database" / "junk").mkdir()
    (root / "database" / "junk" / "junk.sqlite").write_text("not a database\n")
    r = run("rf-data", ["spider", "--root", str(root), "--split", "dev"])
    assert r.code == 0, r.stderr
    assert [t["db_id"] for t in r.records] == ["ok"]
    lines = [line for line in r.stderr.splitlines() if "'junk'" in line]
    assert len(lines) == 1 and "not a readable SQLite database" in lines[0], r.stderr


def test_a_database_with_a_hot_journal_is_skipped_and_left_as_it_was(tmp_path):
    root = layout(tmp_path / "spider", [{**OK, "db_id": "hot"}, OK])
    db = database(root / "database" / "hot" / "hot.sqlite", rows=2000)
    pid = os.fork()
    if pid == 0:  # a writer killed mid-transaction leaves a hot journal
        conn = sqlite3.connect(db, isolation_level=None)
        conn.execute("PRAGMA cache_size = 1")
        conn.execute("BEGIN")
        conn.execute("UPDATE t SET a = a + 1")
        os.kill(os.getpid(), signal.SIGKILL)
    os.waitpid(pid, 0)
    journal = Path(f"{db}-journal")
    assert journal.is_file() and journal.stat().st_size > 0
    before = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in db.parent.iterdir()}
    r = run("rf-data", ["spider", "--root", str(root), "--split", "dev"])
    assert r.code == 0, r.stderr
    assert [t["db_id"] for t in r.records] == ["ok"]
    assert "database 'hot': it is not a readable SQLite database" in r.stderr
    after = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in db.parent.iterdir()}
    assert after == before  # the journal was not rolled back, nothing was added


def test_a_root_that_is_not_utf8_is_a_usage_error(tmp_path):
    root = os.fsencode(tmp_path) + b"/spider-\xff"
    proc = subprocess.run([str(BIN / "rf-data"), "spider", "--root", root, "--split", "dev"],
                          capture_output=True)
    assert proc.returncode == 2 and b"--root" in proc.stderr
    assert b"not valid UTF-8" in proc.stderr and b"Traceback" not in proc.stderr
    assert proc.stdout == b""
