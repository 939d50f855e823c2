"""rf-exec: sandboxing of hostile SQL, execution semantics, deduplication, order, limits."""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path

import pytest

import rf_core.exec.verify as verify
from rf_core.exec.sqlite import Executor, Limits
from conftest import make_task, run

HOSTILE = [
    "DELETE FROM product",
    "DROP TABLE product",
    "INSERT INTO product VALUES (9, 'x', 1.0, 'y')",
    "UPDATE product SET price = 0",
    "CREATE TABLE evil (a)",
    "CREATE TEMP TABLE evil AS SELECT 1",
    "ALTER TABLE product ADD COLUMN z",
    "CREATE INDEX i ON product(name)",
    "ATTACH DATABASE 'evil.sqlite' AS evil",
    "DETACH DATABASE main",
    "PRAGMA journal_mode = WAL",
    "PRAGMA user_version = 7",
    "PRAGMA writable_schema = ON",
    "PRAGMA query_only = OFF",
    "SELECT * FROM pragma_table_info('product')",
    "SELECT load_extension('/usr/lib/evil.so')",
    "BEGIN IMMEDIATE",
    "SAVEPOINT s",
    "VACUUM",
    "VACUUM INTO 'copy.sqlite'",
    "REINDEX",
    "ANALYZE",
    "SELECT 1; DROP TABLE product",
    "SELECT 1; SELECT 2",
    "SELECT 1\x00; DROP TABLE product",
    "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r) SELECT count(*) FROM r",
    "SELECT count(*) FROM big a, big b, big c",
    "SELECT * FROM big a, big b, big c",
    "SELECT group_concat(a.n) FROM big a, big b, big c",
    "SELECT randomblob(2000000000)",
    "SELECT zeroblob(2000000000)",
    "SELECT length(printf('%.*c', 2000000000, 'x'))",
    "SELECT replace(hex(zeroblob(5000000)), '0', 'aaaaaaaaaa')",
    "WITH RECURSIVE r(s) AS (SELECT 'ab' UNION ALL SELECT s || s FROM r) SELECT length(s) FROM r",
    "SELECT '" + "a" * 3_000_000 + "'",
    "",
    "   ",
    None,
    "garbage that is not sql",
]


def snapshot(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.iterdir()) if p.is_file()}


def test_hostile_sql_changes_nothing_and_crashes_nothing(shop_db):
    folder = Path(shop_db).parent
    before = snapshot(folder)
    tasks = [make_task(shop_db, "SELECT count(*) FROM product", [sql], id=f"h/{i}")
             for i, sql in enumerate(HOSTILE)]
    r = run("rf-exec", ["--timeout", "1", "--jobs", "2"], input=tasks)
    assert r.code == 0, r.stderr
    assert snapshot(folder) == before, "a hostile query changed the database folder"
    out = r.records
    assert [t["id"] for t in out] == [t["id"] for t in tasks]
    for task, sql in zip(out, HOSTILE):
        cand = task["candidates"][0]
        assert task["gold_exec"]["ok"], sql
        assert cand["correct"] is False, sql
        if "big a, big b, big c" in (sql or "") and "count" not in sql and "group" not in sql:
            # 8e9 rows: the row cap stops it, or on a loaded machine the timeout comes first
            ex = cand["exec"]
            assert (ex["ok"] and ex["truncated"]) or ex["timed_out"], ex
            continue
        if sql and sql.strip() and not sql.startswith("SELECT '"):
            assert not cand["exec"]["ok"] or sql == "REINDEX", sql


@pytest.mark.parametrize("sql, stopped_by", [
    ("SELECT length(printf('%.*c', 2000000000, 'x'))", "killing its worker process"),
    ("WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r) SELECT count(*) FROM r",
     None),
])
def test_runaway_query_is_stopped_and_the_rest_of_its_task_runs(shop_db, sql, stopped_by):
    task = make_task(shop_db, "SELECT 1", [sql, "SELECT 1"])
    r = run("rf-exec", ["--timeout", "1", "--jobs", "1"], input=[task])
    assert r.code == 0, r.stderr
    bad, good = r.records[0]["candidates"]
    assert bad["exec"]["timed_out"] and not bad["exec"]["ok"]
    assert bad["exec"]["error"].startswith("timeout after 1 s")
    if stopped_by:  # one SQLite instruction: only the kill past timeout + grace stops it
        assert stopped_by in bad["exec"]["error"]
    assert good["correct"] is True, "the rest of the task still runs after a kill"


def test_database_is_opened_read_only(shop_db):
    ex = Executor()
    conn = ex.connection(shop_db)
    res = ex.run(shop_db, "SELECT count(*) FROM product")
    assert res.ok and res.rows == [(5,)]
    denied = ex.run(shop_db, "PRAGMA query_only = OFF")
    assert not denied.ok and "not authorized" in denied.error
    # with the authorizer and query_only both lifted, the read-only open still refuses writes
    conn.set_authorizer(None)
    conn.execute("PRAGMA query_only = OFF")
    with pytest.raises(sqlite3.OperationalError, match="readonly"):
        conn.execute("DELETE FROM product")


def test_row_and_byte_caps_truncate(shop_db):
    ex = Executor(Limits(max_rows=10))
    res = ex.run(shop_db, "SELECT n FROM big")
    assert res.ok and res.truncated and res.n_rows == 10
    ex = Executor(Limits(max_bytes=100))
    res = ex.run(shop_db, "SELECT name FROM product, big")
    assert res.ok and res.truncated and res.n_rows < 100


def test_truncated_results_never_count_as_correct(shop_db):
    task = make_task(shop_db, "SELECT n FROM big", ["SELECT n FROM big"])
    r = run("rf-exec", ["--max-rows", "100"], input=[task])
    out = r.records[0]
    assert out["gold_exec"]["truncated"]
    assert out["candidates"][0]["correct"] is False
    assert "was truncated" in r.stderr


def test_verdicts_follow_the_matcher(shop_db):
    gold = "SELECT name FROM product ORDER BY price"
    cands = ["SELECT name FROM product ORDER BY price DESC",
             "SELECT name FROM product ORDER BY price",
             "SELECT lower(name) FROM product ORDER BY price DESC",
             "SELECT nme FROM product"]
    task = make_task(shop_db, gold, cands)
    official = run("rf-exec", input=[task]).records[0]
    assert [c["correct"] for c in official["candidates"]] == [False, True, False, False]
    assert official["verified_by"] == {"verifier": "sqlite", "matcher": "official"}
    lenient = run("rf-exec", ["--matcher", "lenient"], input=[task]).records[0]
    assert [c["correct"] for c in lenient["candidates"]] == [True, True, True, False]
    err = official["candidates"][3]["exec"]
    assert not err["ok"] and "no such column" in err["error"] and err["digest"] is None


def test_gold_failure_marks_the_task(shop_db):
    task = make_task(shop_db, "SELECT nope FROM product", ["SELECT nope FROM product"],
                     id="bad/1")
    r = run("rf-exec", input=[task])
    assert r.code == 0
    out = r.records[0]
    assert out["gold_exec"]["ok"] is False
    assert out["candidates"][0]["correct"] is False
    assert "gold query of task 'bad/1' failed" in r.stderr


def test_missing_database_is_recorded_not_fatal(tmp_path):
    task = make_task(str(tmp_path / "absent.sqlite"), "SELECT 1", ["SELECT 1"])
    r = run("rf-exec", input=[task])
    assert r.code == 0
    out = r.records[0]
    assert "database not found" in out["gold_exec"]["error"]
    assert out["candidates"][0]["correct"] is False


def test_no_gold_leaves_verdict_open(shop_db):
    task = make_task(shop_db, None, ["SELECT 1"])
    out = run("rf-exec", input=[task]).records[0]
    assert out["candidates"][0]["correct"] is None
    assert out["candidates"][0]["exec"]["ok"] is True
    assert "gold_exec" not in out


def test_gold_once_and_identical_candidates_once(shop_db, monkeypatch):
    verify._init_worker(Limits(), "official")
    calls = []
    real = verify._executor.run

    def counting(db, sql):
        calls.append(sql)
        return real(db, sql)

    monkeypatch.setattr(verify._executor, "run", counting)
    gold = "SELECT count(*) FROM product"
    cands = [gold, "SELECT 5", "SELECT 5", "  SELECT 5  ", "SELECT 4", gold]
    _, outs = verify.check_job((shop_db, gold, cands))
    assert sorted(calls) == sorted([gold, "SELECT 5", "SELECT 4"])
    assert [o[1] for o in outs] == [True, True, True, True, False, True]


def test_output_order_equals_input_order_with_workers(shop_db):
    tasks = [make_task(shop_db, f"SELECT {i}", [f"SELECT {i}", "SELECT -1"], id=f"o/{i}")
             for i in range(200)]
    tasks[3]["candidates"][1]["sql"] = (
        "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r) SELECT count(*) FROM r")
    r = run("rf-exec", ["--jobs", "2", "--timeout", "0.5"], input=tasks)
    assert r.code == 0, r.stderr
    assert [t["id"] for t in r.records] == [f"o/{i}" for i in range(200)]
    assert all(t["candidates"][0]["correct"] for t in r.records)


def test_unknown_verifier_is_a_usage_error():
    r = run("rf-exec", ["--verifier", "nope"], input=b"")
    assert r.code == 2
    assert "unknown verifier 'nope'; installed:" in r.stderr and "sqlite" in r.stderr


def test_output_validates_against_schema(shop_db, validate):
    task = make_task(shop_db, "SELECT name FROM product", ["SELECT name FROM product", "bad"])
    validate(run("rf-exec", input=[task]).records)


def test_kills_with_queued_tasks_keep_order_and_verdicts(shop_db):
    bomb = "SELECT length(printf('%.*c', 2000000000, 'x'))"
    tasks = [make_task(shop_db, f"SELECT {i}",
                       [f"SELECT {i}", bomb if i % 7 == 3 else "SELECT -1"], id=f"k/{i}")
             for i in range(30)]
    r = run("rf-exec", ["--jobs", "2", "--timeout", "0.3"], input=tasks)
    assert r.code == 0, r.stderr
    assert [t["id"] for t in r.records] == [t["id"] for t in tasks]
    for i, t in enumerate(r.records):
        good, other = t["candidates"]
        assert good["correct"] is True
        assert other["exec"]["timed_out"] is (i % 7 == 3)
