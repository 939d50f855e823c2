"""The replay sampler: known candidates through the pipeline (the gold SQL for a smoke test,
a task field, another system's predictions file), scored by rf-exec, rf-vote and rf-eval."""

from __future__ import annotations

import pytest

from conftest import make_task, run, snapshot

GOLD = ["SELECT count(*) FROM product", "SELECT name FROM customer WHERE city = 'Paris'"]


def tasks(db: str, **extra) -> list[dict]:
    return [make_task(db, gold, id=f"r/{i}", **{k: v[i] for k, v in extra.items()})
            for i, gold in enumerate(GOLD)]


def replay(inputs, *options):
    return run("rf-sample", ["--sampler", "replay", "-m", "other-system", *options],
               input=inputs)


def score(sampled) -> dict:
    executed = run("rf-exec", input=sampled.stdout)
    voted = run("rf-vote", input=executed.stdout)
    report = run("rf-eval", input=voted.stdout)
    assert report.code == 0, report.stderr
    return report.records[0]


def test_gold_as_candidate_is_a_smoke_test(shop_db, validate):
    r = replay(tasks(shop_db), "-o", "field", "gold_sql")
    assert r.code == 0, r.stderr
    validate(r.records)
    for task, gold in zip(r.records, GOLD):
        [cand] = task["candidates"]
        assert (cand["sql"], cand["sampler"], cand["model"], cand["seed"]) == \
            (gold, "replay", "other-system", None)
        assert task["messages"][1]["content"].endswith("q?")
    assert "replay: 2 candidate(s) for 2 task(s) from field 'gold_sql'" in r.stderr
    report = score(r)
    assert (report["ex"], report["method"]) == (100.0, "vote")


def test_a_predictions_field(shop_db):
    predictions = [["SELECT count(*) FROM product", {"sql": "SELECT 5"}, "SELECT 1"],
                   [{"text": "Here:\n```sql\nSELECT name FROM customer\n```"}]]
    r = replay(tasks(shop_db, predictions=predictions))
    assert r.code == 0, r.stderr
    sqls = [[c["sql"] for c in t["candidates"]] for t in r.records]
    assert sqls == [["SELECT count(*) FROM product", "SELECT 5", "SELECT 1"],
                    ["SELECT name FROM customer"]]  # a model answer: its SQL extracted
    report = score(r)
    assert report["ex"] == 50.0  # two of three agree on 5 rows: the vote is right
    assert report["pass_at_k"]["1"] == pytest.approx(100 * (2 / 3 + 0) / 2, abs=0.01)
    again = replay(r.stdout, "-o", "field", "candidates")
    assert [[c["sql"] for c in t["candidates"]] for t in again.records] == sqls


def test_another_systems_predictions_file(shop_db, tmp_path):
    """Spider's format: one SQL per line, in task order; 'SQL<TAB>db_id' is checked."""
    before = snapshot(tmp_path)
    pred = tmp_path / "pred.txt"
    pred.write_text("SELECT count(*) FROM product\tshop\n\n")
    r = replay(tasks(shop_db), "-o", "file", str(pred))
    assert r.code == 0, r.stderr
    assert [t["candidates"][0]["sql"] for t in r.records] == [GOLD[0], None]
    report = score(r)
    assert (report["correct"], report["scored"], report["exec_errors"]) == (1, 2, 1)
    hostile = tmp_path / "hostile.txt"
    hostile.write_text("DROP TABLE product\nDELETE FROM customer\n")
    r = replay(tasks(shop_db), "-o", "file", str(hostile))
    assert score(r)["exec_errors"] == 2
    assert snapshot(tmp_path) == {**before, **{k: v for k, v in snapshot(tmp_path).items()
                                               if k.endswith(".txt")}}


@pytest.mark.parametrize("lines, message", [
    ("SELECT 1\n", "has 1 line(s) but the input has more tasks (task 'r/1' has none)"),
    ("SELECT 1\nSELECT 2\nSELECT 3\n", "has 1 line(s) more than the input has tasks"),
    ("SELECT 1\tconcert_singer\nSELECT 2\n", "line 1 is for database 'concert_singer' but "
                                            "task 'r/0' is on 'shop'"),
])
def test_a_file_that_does_not_line_up_is_an_error(shop_db, tmp_path, lines, message):
    pred = tmp_path / "pred.txt"
    pred.write_text(lines)
    r = replay(tasks(shop_db), "-o", "file", str(pred))
    assert r.code == 1 and message in r.stderr.strip().splitlines()[-1], r.stderr
    assert r.stderr.strip().splitlines()[-1].startswith("Error: rf-sample: ")


@pytest.mark.parametrize("value, message", [
    (None, "task 'r/0' has no field 'predictions' to replay"),
    (3, "task 'r/0': field 'predictions' is int; expected SQL text or a list of answers"),
    ([{"x": 1}], "task 'r/0': predictions[0] is neither SQL text nor an object"),
])
def test_bad_fields_are_one_line_errors(shop_db, value, message):
    inputs = tasks(shop_db)
    if value is not None:
        inputs[0]["predictions"] = value
    r = replay(inputs)
    lines = r.stderr.strip().splitlines()
    assert r.code == 1 and len(lines) == 1, r.stderr
    assert lines[0].startswith(f"Error: rf-sample: {message}"), lines[0]
    missing = replay(tasks(shop_db), "-o", "file", "/nonexistent/pred.txt")
    assert missing.code == 1 and "cannot read -o file /nonexistent/pred.txt" in missing.stderr


def test_a_file_paired_by_task_index(shop_db, tmp_path):
    inputs = tasks(shop_db)
    inputs[0]["id"], inputs[1]["id"] = "spider/dev/0", "spider/dev/2"  # dev/1 was skipped
    pred = tmp_path / "pred.txt"
    pred.write_text(f"{GOLD[0]}\tshop\nSELECT 'skipped'\tgone\n{GOLD[1]}\tshop\n")
    r = replay(inputs, "-o", "file", str(pred), "-o", "match", "index")
    assert r.code == 0, r.stderr
    assert [t["candidates"][0]["sql"] for t in r.records] == GOLD
    inputs[1]["id"] = "spider/dev/3"
    r = replay(inputs, "-o", "file", str(pred), "-o", "match", "index")
    assert r.code == 1 and "has 3 line(s); task 'spider/dev/3' needs line 4" in r.stderr


def test_spiders_own_gold_file_scores_every_runnable_dev_task(spider):
    """dev_gold.sql is Spider's predictions format ('SQL<TAB>db_id', one line per question of
    dev.json); rf-data leaves out the questions whose database is missing."""
    data = run("rf-data", ["spider", "--root", str(spider), "--split", "dev", "--limit", "25",
                           "--seed", "3", "--values", "0"])
    r = replay(data.stdout, "-o", "file", str(spider / "dev_gold.sql"), "-o", "match", "index")
    assert r.code == 0, r.stderr
    report = score(r)
    assert (report["scored"], report["ex"]) == (25, 100.0)
