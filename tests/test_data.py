"""rf-data: the demo benchmark and Spider, and gold-only execution accuracy on both."""

from __future__ import annotations

import json
import sqlite3

import pytest

from rf_core.data.schema_context import describe_database
from conftest import run


def with_gold_candidate(tasks):
    for t in tasks:
        t["candidates"] = [{"sql": t["gold_sql"]}]
    return tasks


@pytest.fixture
def demo_root(tmp_path):
    return str(tmp_path / "demo")


def test_demo_tasks(demo_root, validate):
    dev = run("rf-data", ["demo", "--split", "dev", "--root", demo_root])
    train = run("rf-data", ["demo", "--split", "train", "--root", demo_root])
    assert dev.code == 0 and train.code == 0, dev.stderr + train.stderr
    validate(dev.records + train.records)
    assert len(dev.records) + len(train.records) >= 150
    assert len({t["db_id"] for t in dev.records}) >= 4
    assert {t["hardness"] for t in dev.records + train.records} >= {"easy", "medium", "hard"}
    assert len({t["id"] for t in dev.records + train.records}) == len(dev.records +
                                                                      train.records)
    t = dev.records[0]
    assert t["schema"].startswith("CREATE TABLE") and "-- e.g." in t["schema"]
    assert f"{len(dev.records)} demo dev task(s) written" in dev.stderr


def test_demo_gold_scores_100(demo_root):
    for split in ("train", "dev"):
        tasks = with_gold_candidate(run("rf-data", ["demo", "--split", split, "--root",
                                                    demo_root]).records)
        executed = run("rf-exec", input=tasks)
        assert executed.code == 0, executed.stderr
        report = run("rf-eval", input=executed.records).records[0]
        assert report["ex"] == 100.0 and report["gold_errors"] == 0, report


def test_demo_databases_are_built_once_and_rebuilt_when_stale(demo_root):
    first = run("rf-data", ["demo", "--split", "dev", "--root", demo_root]).records
    db = first[0]["db_path"]
    mtime = __import__("os").stat(db).st_mtime_ns
    run("rf-data", ["demo", "--split", "dev", "--root", demo_root])
    assert __import__("os").stat(db).st_mtime_ns == mtime
    stamp = db[: -len(".sqlite")] + ".sha256"
    with open(stamp, "w") as fh:
        fh.write("stale")
    run("rf-data", ["demo", "--split", "dev", "--root", demo_root])
    assert open(stamp).read() != "stale"


def test_limit_and_seed_give_a_fixed_sample(demo_root):
    a = run("rf-data", ["demo", "--split", "train", "--root", demo_root, "--limit", "10",
                        "--seed", "7"]).records
    b = run("rf-data", ["demo", "--split", "train", "--root", demo_root, "--limit", "10",
                        "--seed", "7"]).records
    c = run("rf-data", ["demo", "--split", "train", "--root", demo_root, "--limit", "10",
                        "--seed", "8"]).records
    first = run("rf-data", ["demo", "--split", "train", "--root", demo_root, "--limit",
                            "10"]).records
    assert [t["id"] for t in a] == [t["id"] for t in b] and len(a) == 10
    assert [t["id"] for t in a] != [t["id"] for t in c]
    assert [t["id"] for t in first] == [f"demo/train/{i}" for i in range(10)]


def test_unknown_split_is_an_error(demo_root):
    r = run("rf-data", ["demo", "--split", "test", "--root", demo_root])
    # a usage error, before anything is read: the dataset declares its splits
    assert r.code == 2 and "dataset 'demo' has no split 'test'; its splits: train, dev, all" \
        in r.stderr


def test_schema_context_values_and_keys(shop_db):
    text = describe_database(shop_db, 2)
    assert "CREATE TABLE product (\n  id INTEGER PRIMARY KEY, -- e.g. 1, 2" in text
    assert "FOREIGN KEY (customer_id) REFERENCES customer(id)" in text
    assert "  category TEXT -- e.g. 'fruit', 'bakery'\n);" in text
    none = describe_database(shop_db, 0)
    assert "-- e.g." not in none
    # every statement parses as SQL
    conn = sqlite3.connect(":memory:")
    conn.executescript(none)


@pytest.mark.spider
def test_spider_dev_skips_missing_databases_with_a_count(spider, validate):
    r = run("rf-data", ["spider", "--root", str(spider), "--split", "dev"])
    assert r.code == 0, r.stderr
    tasks = r.records
    validate(tasks[:50])
    total = len(json.loads((spider / "dev.json").read_text()))
    assert len(tasks) <= total
    if len(tasks) < total:
        assert f"of {total} dev tasks skipped" in r.stderr
        assert "is missing" in r.stderr
    assert tasks[0]["id"] == "spider/dev/0"


@pytest.mark.spider
def test_spider_dev_gold_scores_100(spider):
    tasks = with_gold_candidate(run("rf-data", ["spider", "--root", str(spider), "--split",
                                                "dev"]).records)
    executed = run("rf-exec", input=tasks)
    assert executed.code == 0, executed.stderr
    for matcher_args in ([], ["--matcher", "lenient"]):
        out = run("rf-exec", matcher_args, input=tasks).records if matcher_args else \
            executed.records
        report = run("rf-eval", input=out).records[0]
        assert report["ex"] == 100.0, report
        assert report["scored"] == len(tasks)
