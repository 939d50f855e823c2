"""rf-exec --variants: test-suite database variants reject queries right for the wrong reason."""

from __future__ import annotations

import hashlib
import json
import re
import sqlite3
import stat
from pathlib import Path

import pytest

from rf_core.exec.variants import VariantCache
from conftest import make_task, run


@pytest.fixture
def people_db(tmp_path) -> str:
    path = tmp_path / "db" / "people.sqlite"
    path.parent.mkdir()
    conn = sqlite3.connect(path)
    conn.executescript("""
        CREATE TABLE city (id INTEGER PRIMARY KEY, name TEXT, country TEXT);
        CREATE TABLE person (id INTEGER PRIMARY KEY, name TEXT, age INTEGER, height REAL,
                             city_id INTEGER REFERENCES city(id));
        INSERT INTO city VALUES (1, 'Oslo', 'Norway'), (2, 'Rome', 'Italy'),
                                (3, 'Lyon', 'France'), (4, 'Bergen', 'Norway');
        INSERT INTO person VALUES
            (1, 'Ann', 30, 1.70, 1), (2, 'Bob', 41, 1.82, 2), (3, 'Cid', 35, 1.65, 2),
            (4, 'Dan', 52, 1.90, 3), (5, 'Eve', 28, 1.60, 1), (6, 'Fay', 47, 1.75, 4),
            (7, 'Gus', 33, 1.68, 3), (8, 'Hal', 61, 1.80, 1), (9, 'Ida', 25, 1.72, 2),
            (10, 'Jon', 39, 1.77, 4), (11, 'Kim', 44, 1.66, 1), (12, 'Lou', 58, 1.85, 3);
    """)
    conn.commit()
    conn.close()
    return str(path)


def snapshot(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.iterdir()) if p.is_file()}


GOLD_COUNT = "SELECT count(*) FROM person"
GOLD_ROME = "SELECT name FROM person WHERE city_id = 2"
# Right on the original for the wrong reason: a constant, and a filter on another column
# that happens to select the same three people.
CONSTANT = "SELECT 12"
WRONG_COLUMN = "SELECT name FROM person WHERE name IN ('Bob', 'Cid', 'Ida')"


def test_variants_reject_right_answers_for_wrong_reasons(people_db, tmp_path, validate):
    folder = Path(people_db).parent
    before = snapshot(folder)
    tasks = [make_task(people_db, GOLD_COUNT, [GOLD_COUNT, CONSTANT,
                                               "SELECT  COUNT(id) FROM person"], id="v/0"),
             make_task(people_db, GOLD_ROME, [WRONG_COLUMN, GOLD_ROME.lower()], id="v/1")]
    r = run("rf-exec", ["-o", "variants", "4", "-o", "variants_dir", str(tmp_path / "cache")],
            input=tasks)
    assert r.code == 0, r.stderr
    validate(r.records)
    count, rome = r.records
    verdicts = [c["verdicts"]["official"] for c in count["candidates"] + rome["candidates"]]
    assert verdicts == [True] * 5, "all five match on the original database"
    gold_copy, constant, count_id = count["candidates"]
    wrong_column, rome_copy = rome["candidates"]
    for cand in (gold_copy, count_id, rome_copy):
        assert cand["correct"] is True and cand["variants"]["used"] >= 3
        assert cand["variants"]["passed"] == cand["variants"]["used"]
    for cand in (constant, wrong_column):
        assert cand["correct"] is False
        assert cand["variants"]["passed"] < cand["variants"]["used"]
    assert count["verified_by"] == {"verifier": "sqlite", "matcher": "official", "variants": 4}
    assert "variants 4: 2 candidate(s) turned from correct to wrong" in r.stderr
    assert snapshot(folder) == before, "the original database folder was written"


def test_without_variants_nothing_changes(people_db):
    r = run("rf-exec", [], input=[make_task(people_db, GOLD_COUNT, [CONSTANT])])
    cand = r.records[0]["candidates"][0]
    assert cand["correct"] is True and "variants" not in cand
    assert "variants" not in r.records[0]["verified_by"]
    assert "turned from correct" not in r.stderr


def test_variants_are_deterministic_cached_read_only_and_follow_the_source(people_db, tmp_path):
    a = VariantCache(3, root=tmp_path / "a").paths(people_db)
    b = VariantCache(3, root=tmp_path / "b").paths(people_db)
    assert len(a) == 3

    def dump(path):
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            return [list(conn.execute(f"SELECT * FROM {t}")) for t in ("city", "person")]
        finally:
            conn.close()

    assert [dump(p) for p in a] == [dump(p) for p in b]
    assert len({json.dumps(dump(p)) for p in a} | {json.dumps(dump(people_db))}) == 4
    for p in a:
        assert not Path(p).stat().st_mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH)
        conn = sqlite3.connect(p)
        schema = list(conn.execute("SELECT sql FROM sqlite_master ORDER BY name"))
        conn.close()
        orig = sqlite3.connect(people_db)
        assert schema == list(orig.execute("SELECT sql FROM sqlite_master ORDER BY name"))
        orig.close()
    # built once: a second cache object finds the same files
    assert VariantCache(3, root=tmp_path / "a").paths(people_db) == a
    # a changed source gets new variants
    conn = sqlite3.connect(people_db)
    conn.execute("UPDATE person SET age = age + 1")
    conn.commit()
    conn.close()
    c = VariantCache(3, root=tmp_path / "a").paths(people_db)
    assert c != a and all(Path(p).is_file() for p in c)


def test_negative_variants_is_a_usage_error(people_db):
    r = run("rf-exec", ["-o", "variants", "-1"],
            input=[make_task(people_db, GOLD_COUNT, [CONSTANT])])
    assert r.code == 2
    assert "option 'variants' of verifier 'sqlite': -1 is below the minimum 0" in r.stderr
    assert r.stdout == b""


def test_unwritable_cache_builds_in_a_temporary_folder(people_db, tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the cache folder should be")
    r = run("rf-exec", ["-o", "variants", "2", "-o", "variants_dir", str(blocker / "cache")],
            input=[make_task(people_db, GOLD_COUNT, [CONSTANT, GOLD_COUNT])])
    assert r.code == 0, r.stderr
    notes = [line for line in r.stderr.splitlines() if "variant cache" in line]
    assert len(notes) == 1 and "temporary folder" in notes[0] and notes[0].startswith("rf-exec: ")
    constant, gold = r.records[0]["candidates"]
    assert constant["correct"] is False and gold["correct"] is True


def test_database_over_the_size_limit_is_checked_on_the_original_only(people_db, tmp_path):
    r = run("rf-exec", ["-o", "variants", "2", "-o", "variants_max_mb", "0.001",
                        "-o", "variants_dir", str(tmp_path / "cache")],
            input=[make_task(people_db, GOLD_COUNT, [CONSTANT], id=f"s/{i}") for i in range(3)])
    assert r.code == 0, r.stderr
    notes = [line for line in r.stderr.splitlines() if "variants_max_mb" in line]
    assert len(notes) == 1, "one note per database, not per task"
    for task in r.records:
        cand = task["candidates"][0]
        assert cand["correct"] is True and "variants" not in cand
    assert not (tmp_path / "cache").exists() or not any((tmp_path / "cache").rglob("*.sqlite"))


def test_variant_where_the_gold_fails_or_turns_empty_is_skipped(people_db, tmp_path):
    import rf_core.exec.verify as verify
    from rf_core.exec.sqlite import Limits

    def db(name, script):
        path = tmp_path / name
        conn = sqlite3.connect(path)
        conn.executescript(script)
        conn.commit()
        conn.close()
        return str(path)

    no_table = db("no_table.sqlite", "CREATE TABLE other (x);")
    empty = db("empty.sqlite", "CREATE TABLE person (id INTEGER PRIMARY KEY, name TEXT, "
                               "age INTEGER, height REAL, city_id INTEGER);")
    fewer = db("fewer.sqlite", "CREATE TABLE person (id INTEGER PRIMARY KEY, name TEXT, "
                               "age INTEGER, height REAL, city_id INTEGER);"
                               "INSERT INTO person VALUES (1, 'Ann', 30, 1.7, 2);")
    verify._init_worker(Limits(), "official", ("official", "lenient"))
    gold = GOLD_ROME
    _, outs = verify.check_job((people_db, gold, [gold, WRONG_COLUMN, "SELECT 1"],
                                [no_table, empty, fewer]))
    (_, g_ok, g_verdicts, g_var, _), (_, w_ok, _, w_var, _), (_, c_ok, c_verdicts, c_var, _) = outs
    assert g_ok is True and g_var == {"used": 1, "passed": 1}
    assert w_ok is False and w_var == {"used": 1, "passed": 0}
    assert c_ok is False and c_var is None and c_verdicts == {"official": False, "lenient": False}
    assert g_verdicts == {"official": True, "lenient": True}


@pytest.mark.spider
def test_every_spider_dev_gold_passes_its_own_variants(spider, tmp_path):
    """Gold-as-candidate stays at 100% under --variants 4 (the text is respaced, so the
    candidate runs separately on the original database)."""
    data = run("rf-data", ["spider", "--root", str(spider), "--split", "dev"])
    tasks = data.records
    assert len(tasks) >= 900
    for t in tasks:
        respaced = re.sub(r"^\s*select\s+", "SELECT\n  ", t["gold_sql"], flags=re.IGNORECASE)
        t["candidates"] = [{"sql": "  " + respaced + "  "}]
    r = run("rf-exec", ["-o", "variants", "4", "--jobs", "2", "-o", "variants_dir",
                        str(tmp_path / "cache")], input=tasks)
    assert r.code == 0, r.stderr
    cands = [t["candidates"][0] for t in r.records]
    wrong = [(t["id"], t["candidates"][0].get("exec"), t.get("gold_exec"), t.get("verified_by"))
             for t in r.records if t["candidates"][0]["correct"] is not True]
    assert not wrong, (len(wrong), wrong[:3], r.stderr[-2000:])
    used = [c["variants"]["used"] for c in cands]
    assert sum(u == 4 for u in used) / len(used) > 0.8, "most tasks use every variant"


def test_empty_variants_dir_is_a_usage_error(people_db, tmp_path, monkeypatch):
    # an unset shell variable, most likely: building in the working folder instead would
    # scatter cache folders wherever the command ran
    monkeypatch.chdir(tmp_path)
    r = run("rf-exec", ["-o", "variants", "2", "-o", "variants_dir", ""],
            input=[make_task(people_db, GOLD_COUNT, [CONSTANT])])
    assert r.code == 2, r.stderr
    assert "option 'variants_dir' of verifier 'sqlite'" in r.stderr and "empty" in r.stderr
    assert r.stdout == b"" and list(tmp_path.iterdir()) == [Path(people_db).parent]


def test_variants_above_the_maximum_is_a_usage_error(people_db):
    from rf_core.exec.variants import MAX_VARIANTS

    r = run("rf-exec", ["-o", "variants", str(MAX_VARIANTS + 1)],
            input=[make_task(people_db, GOLD_COUNT, [CONSTANT])])
    assert r.code == 2
    assert f"is above the maximum {MAX_VARIANTS}" in r.stderr
    assert r.stdout == b""


class FakeClock:
    """Time that passes ``step`` seconds at every reading: a build looks slow on any machine."""

    def __init__(self, step: float):
        self.now = 0.0
        self.step = step

    def __call__(self) -> float:
        self.now += self.step
        return self.now


def test_long_builds_report_progress(people_db, tmp_path, monkeypatch):
    import rf_core.exec.variants as variants

    monkeypatch.setattr(variants, "_clock", FakeClock(1.0))
    r = run("rf-exec", ["-o", "variants", "2", "-o", "variants_dir", str(tmp_path / "cache"),
                        "-o", "variants_max_s", "1e9"],
            input=[make_task(people_db, GOLD_COUNT, [GOLD_COUNT])])
    assert r.code == 0, r.stderr
    lines = [line for line in r.stderr.splitlines() if "building 2 variants of" in line]
    assert lines and all(line.startswith("rf-exec: ") and "people.sqlite" in line
                         for line in lines), r.stderr
    assert "built 2 variants of" in r.stderr
    assert r.records[0]["candidates"][0]["variants"]["used"] == 2


def test_a_build_over_its_time_bound_stops_and_its_tasks_verify_without(people_db, tmp_path,
                                                                          monkeypatch, validate):
    import rf_core.exec.variants as variants

    monkeypatch.setattr(variants, "_clock", FakeClock(10.0))
    cache = tmp_path / "cache"
    tasks = [make_task(people_db, GOLD_COUNT, [CONSTANT], id=f"t/{i}") for i in range(3)]
    r = run("rf-exec", ["-o", "variants", "2", "-o", "variants_dir", str(cache),
                        "-o", "variants_max_s", "30"], input=tasks)
    assert r.code == 0, r.stderr
    validate(r.records)
    notes = [line for line in r.stderr.splitlines() if "variants_max_s" in line]
    assert len(notes) == 1 and "people.sqlite" in notes[0], r.stderr
    for task in r.records:
        cand = task["candidates"][0]
        assert cand["correct"] is True and "variants" not in cand
        assert "variants_max_s" in task["verified_by"]["variants_skipped"]
    assert not [p for p in cache.rglob("*") if p.is_file() and p.name.startswith(".")]


def test_the_databases_own_triggers_do_not_run_while_perturbing(tmp_path):
    path = tmp_path / "trig.sqlite"
    conn = sqlite3.connect(path)
    conn.executescript("""
        CREATE TABLE item (id INTEGER PRIMARY KEY, name TEXT, n INTEGER);
        CREATE TABLE audit (item_id INTEGER, what TEXT);
        INSERT INTO item VALUES (1, 'a', 1), (2, 'b', 2), (3, 'c', 3), (4, 'd', 4),
                                (5, 'e', 5), (6, 'f', 6), (7, 'g', 7), (8, 'h', 8);
        CREATE TRIGGER keep BEFORE DELETE ON item BEGIN SELECT RAISE(ABORT, 'no'); END;
        CREATE TRIGGER log AFTER INSERT ON item BEGIN INSERT INTO audit VALUES (new.id, 'in');
        END;
    """)
    conn.commit()
    conn.close()
    paths = VariantCache(4, root=tmp_path / "cache").paths(str(path))
    assert len(paths) == 4
    original = sqlite3.connect(path)
    schema = sorted(original.execute("SELECT type, name, sql FROM sqlite_master"))
    original.close()
    for p in paths:
        conn = sqlite3.connect(f"file:{p}?mode=ro", uri=True)
        assert conn.execute("SELECT count(*) FROM audit").fetchone() == (0,), p
        assert sorted(conn.execute("SELECT type, name, sql FROM sqlite_master")) == schema
        conn.close()

