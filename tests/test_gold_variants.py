"""rf-exec --for-training: empty and degenerate gold results are made to speak on gold
variants, and an agreement that rests only on them is unverifiable, never correct."""

from __future__ import annotations

import json
import sqlite3
import stat
from pathlib import Path

import pytest

from conftest import make_task, run

EMPTY = "SELECT NULL WHERE 0"
GOLD_OSLO_OLD = "SELECT name FROM person WHERE city_id = 1 AND age > 70"  # nobody: empty
GOLD_COUNT_OLD = "SELECT count(*) FROM person WHERE age > 70"  # one row: 0
GOLD_NEVER = "SELECT name FROM person WHERE 1 = 0"  # no row can ever satisfy it
WRONG_AGE = "SELECT name FROM person WHERE city_id = 1 AND age > 80"  # also empty there


@pytest.fixture
def people_db(tmp_path) -> str:
    path = tmp_path / "db" / "people.sqlite"
    path.parent.mkdir()
    conn = sqlite3.connect(path)
    conn.executescript("""
        CREATE TABLE city (id INTEGER PRIMARY KEY, name TEXT, country TEXT);
        CREATE TABLE person (id INTEGER PRIMARY KEY, name TEXT, age INTEGER,
                             city_id INTEGER REFERENCES city(id));
        INSERT INTO city VALUES (1, 'Oslo', 'Norway'), (2, 'Rome', 'Italy');
        INSERT INTO person VALUES (1, 'Ann', 30, 1), (2, 'Bob', 41, 2), (3, 'Cid', 35, 2),
                                  (4, 'Dan', 52, 1), (5, 'Eve', 28, 1);
    """)
    conn.commit()
    conn.close()
    return str(path)


def exec_for_training(tasks, cache: Path, *extra):
    return run("rf-exec", ["--for-training", "--matcher", "official-keep-distinct",
                           "-o", "variants_dir", str(cache), *extra], input=tasks)


def test_an_empty_gold_speaks_on_its_gold_variant(people_db, tmp_path, validate):
    tasks = [make_task(people_db, GOLD_OSLO_OLD, [EMPTY, GOLD_OSLO_OLD, WRONG_AGE], id="e/0"),
             make_task(people_db, GOLD_COUNT_OLD, ["SELECT 0", GOLD_COUNT_OLD], id="e/1")]
    before = Path(people_db).read_bytes()
    r = exec_for_training(tasks, tmp_path / "cache")
    assert r.code == 0, r.stderr
    validate(r.records)
    (empty, gold, wrong), (zero, count) = (t["candidates"] for t in r.records)
    # on the original all of them agree with the gold; the gold variant tells them apart
    assert all(c["verdicts"]["official-keep-distinct"] for c in (empty, gold, wrong, zero))
    assert empty["correct"] is False and wrong["correct"] is False and zero["correct"] is False
    assert gold["correct"] is True and count["correct"] is True
    assert gold["distinguishing"] == 1 and empty["distinguishing"] == 1
    assert gold["variants"] == {"used": 1, "passed": 1}
    assert all(t["verified_by"]["for_training"] is True for t in r.records)
    assert "unverifiable:" not in r.stderr and "0 unverifiable (correct: null)" in r.stderr
    assert "2 of 2 correct verified on such a database" in r.stderr
    assert Path(people_db).read_bytes() == before  # built beside the cache, never in place
    built = [p for p in (tmp_path / "cache").rglob("g*.sqlite")]
    assert len(built) == 2 and all(not p.stat().st_mode & stat.S_IWUSR for p in built)
    # the gold variant is the original plus rows that satisfy the gold's predicates
    conn = sqlite3.connect(f"file:{built[0]}?mode=ro", uri=True)
    try:
        assert conn.execute("SELECT count(*) FROM person").fetchone()[0] > 5
        assert conn.execute("SELECT count(*) FROM person WHERE id <= 5").fetchone()[0] == 5
    finally:
        conn.close()


def test_evaluation_keeps_the_official_semantics(people_db, tmp_path, validate):
    """Without --for-training an empty result equal to an empty gold is correct, as in
    Spider's official evaluator, and nothing is built; the record still says the gold's
    result distinguished nothing."""
    tasks = [make_task(people_db, GOLD_OSLO_OLD, [EMPTY, GOLD_OSLO_OLD])]
    r = run("rf-exec", ["-o", "variants_dir", str(tmp_path / "cache")], input=tasks)
    assert r.code == 0, r.stderr
    validate(r.records)
    cands = r.records[0]["candidates"]
    assert [c["correct"] for c in cands] == [True, True]
    assert [c["distinguishing"] for c in cands] == [0, 0]
    assert not any("unverifiable" in c for c in cands)
    assert "for_training" not in r.records[0]["verified_by"]
    assert not (tmp_path / "cache").exists()


def test_a_gold_no_row_can_satisfy_is_unverifiable_and_its_task_gets_the_gold(
        people_db, tmp_path, validate):
    cache = tmp_path / "cache"
    tasks = [make_task(people_db, GOLD_NEVER, [EMPTY, GOLD_NEVER, "SELECT 1"], id="n/0")]
    r = exec_for_training(tasks, cache)
    assert r.code == 0, r.stderr
    validate(r.records)
    empty, gold, one = r.records[0]["candidates"]
    assert empty["correct"] is None and gold["correct"] is None and one["correct"] is False
    assert empty["unverifiable"].startswith("gold result empty on every database; no gold "
                                            "variant: no attempt found rows")
    assert "unverifiable" not in one and one["distinguishing"] == 0
    notes = [line for line in r.stderr.splitlines() if "unverifiable:" in line]
    assert len(notes) == 1 and notes[0].startswith("rf-exec: task 'n/0': unverifiable: ")
    assert "2 unverifiable (correct: null)" in r.stderr
    # remembered: the next run does not try again, and says the same
    assert len(list(cache.rglob("*.none"))) == 1
    again = exec_for_training(tasks, cache)
    assert again.records[0]["candidates"][0]["unverifiable"] == empty["unverifiable"]
    # rf-filter selects none of them; rf-inject teaches the gold as for a 0/k task
    data = b"".join(json.dumps(t).encode() + b"\n" for t in r.records)
    f = run("rf-filter", input=data)
    assert f.code == 0 and f.records == [], f.stderr
    assert "2 unverifiable candidate(s) not selected" in f.stderr
    i = run("rf-inject", input=data)
    assert i.code == 0, i.stderr
    assert [(e["source"], e["completion"]) for e in i.records] == [
        ("gold", f"```sql\n{GOLD_NEVER}\n```")]
    assert "1 of them because their agreeing candidates were unverifiable" in i.stderr


def test_a_database_over_the_size_bound_leaves_its_empty_gold_tasks_unverifiable(
        people_db, tmp_path):
    tasks = [make_task(people_db, GOLD_OSLO_OLD, [EMPTY]),
             make_task(people_db, "SELECT name FROM person", ["SELECT name FROM person"])]
    r = exec_for_training(tasks, tmp_path / "cache", "-o", "variants_max_mb", "0")
    assert r.code == 0, r.stderr
    (silent,), (speaking,) = (t["candidates"] for t in r.records)
    assert silent["correct"] is None and "over variants_max_mb 0" in silent["unverifiable"]
    assert speaking["correct"] is True and speaking["distinguishing"] == 1


def test_a_build_over_its_time_bound_leaves_the_task_unverifiable(people_db, tmp_path,
                                                                   monkeypatch):
    import rf_core.exec.variants as variants

    class Clock:  # every reading ten seconds later: any build looks slow
        now = 0.0

        def __call__(self):
            self.now += 10.0
            return self.now

    monkeypatch.setattr(variants, "_clock", Clock())
    r = exec_for_training([make_task(people_db, GOLD_OSLO_OLD, [EMPTY])], tmp_path / "cache",
                          "-o", "gold_variants_max_s", "5")
    assert r.code == 0, r.stderr
    cand = r.records[0]["candidates"][0]
    assert cand["correct"] is None and "over gold_variants_max_s 5 s" in cand["unverifiable"]
    assert not list((tmp_path / "cache").rglob("*.none"))  # tried again next time


def test_a_gold_the_builder_cannot_parse_is_unbuildable(people_db, tmp_path):
    from rf_core.exec.gold_variants import Unbuildable, gold_variant

    with pytest.raises(Unbuildable, match="cannot be parsed"):
        gold_variant(people_db, str(tmp_path / "f"), "SELECT name FROM person WHERE (", 0)
    with pytest.raises(Unbuildable, match="cannot build it"):
        gold_variant(str(tmp_path / "missing.sqlite"), str(tmp_path / "f"),
                     GOLD_OSLO_OLD, 0)


def test_gold_variants_cover_intersect_except_joins_and_empty_tables(tmp_path):
    from rf_core.exec.gold_variants import degenerate, gold_variant

    path = tmp_path / "music.sqlite"
    conn = sqlite3.connect(path)
    conn.executescript("""
        CREATE TABLE band (id INTEGER PRIMARY KEY, lastname TEXT);
        CREATE TABLE song (songid INTEGER PRIMARY KEY, title TEXT);
        CREATE TABLE vocals (songid INTEGER REFERENCES song(songid),
                             bandmate INTEGER REFERENCES band(id), type TEXT,
                             PRIMARY KEY (songid, bandmate));
        CREATE TABLE people (id INTEGER PRIMARY KEY, country TEXT, age INTEGER);
        INSERT INTO people VALUES (1, 'Norway', 20), (2, 'Italy', 40);
    """)
    conn.commit()
    conn.close()
    golds = [
        "SELECT count(*) FROM song",
        "SELECT T2.title FROM vocals AS T1 JOIN song AS T2 ON T1.songid = T2.songid "
        "JOIN band AS T3 ON T1.bandmate = T3.id WHERE T3.lastname = \"Heilo\"",
        "SELECT country FROM people WHERE age < 25 INTERSECT "
        "SELECT country FROM people WHERE age > 30",
        "SELECT DISTINCT title FROM vocals AS t1 JOIN song AS t2 ON t1.songid = t2.songid "
        "EXCEPT SELECT t2.title FROM vocals AS t1 JOIN song AS t2 ON t1.songid = t2.songid "
        "WHERE type = \"back\"",
        "SELECT avg(age) FROM people WHERE country = 'Chile'",
    ]
    for gold in golds:
        built = gold_variant(str(path), str(tmp_path / "cache"), gold, 0)
        conn = sqlite3.connect(f"file:{built}?mode=ro", uri=True)
        try:
            assert not degenerate(conn.execute(gold).fetchall()), gold
        finally:
            conn.close()
        assert gold_variant(str(path), str(tmp_path / "cache"), gold, 0) == built  # cached


def test_history_counts_verified_and_unverifiable_selections(tmp_path):
    from rf_core.report.history import _train_stats

    def task(i, *cands):
        return make_task("x.sqlite", "SELECT 1", [], id=f"t/{i}", candidates=list(cands))

    rows = [task(0, {"sql": "a", "correct": True, "distinguishing": 2},
                 {"sql": "b", "correct": False, "distinguishing": 1}),
            task(1, {"sql": "c", "correct": None, "distinguishing": 0,
                     "unverifiable": "gold result empty on every database"},
                 {"sql": "d", "correct": None, "distinguishing": 0,
                  "unverifiable": "gold result empty on every database"}),
            task(2, {"sql": "e", "correct": True, "distinguishing": 0})]
    path = tmp_path / "train.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert _train_stats(path)["verified"] == {"selected": 2, "distinguishing": 1,
                                              "unverifiable": 2, "injected_unverifiable": 1}


@pytest.mark.spider
def test_spider_dev_empty_and_degenerate_golds(spider, tmp_path):
    """On dev-972's tasks whose gold result is empty or degenerate: a trivially empty
    candidate is never selected, the gold itself is judged wrong on at most 10%, and most
    get a gold variant."""
    from rf_core.exec.gold_variants import degenerate
    from rf_core.exec.sqlite import Executor, Limits

    data = run("rf-data", ["spider", "--root", str(spider), "--split", "dev"])
    assert data.code == 0, data.stderr
    ex = Executor(Limits(heap_bytes=1 << 30))
    silent = []
    for task in data.records:
        res = ex.run(task["db_path"], task["gold_sql"])
        if res.ok and degenerate(res.rows):
            task["candidates"] = [{"sql": EMPTY}, {"sql": task["gold_sql"]}]
            silent.append(task)
    ex.close()
    assert len(silent) == 75  # 49 empty, 26 one row of NULL or 0
    r = exec_for_training(silent, tmp_path / "cache")
    assert r.code == 0, r.stderr
    trivial = [t["candidates"][0]["correct"] for t in r.records]
    gold = [t["candidates"][1]["correct"] for t in r.records]
    assert trivial.count(True) == 0
    assert gold.count(False) <= len(silent) // 10, [
        t["id"] for t in r.records if t["candidates"][1]["correct"] is False]
    assert gold.count(True) >= 0.8 * len(silent)
