"""rf-vote, rf-filter, rf-inject and rf-eval on executed tasks."""

from __future__ import annotations

import pytest

from rf_core.report.evaluate import pass_at_k
from rf_core.train.examples import canonical_sql
from rf_core.model.prompts import render_messages
from conftest import make_task, run

GOLD = "SELECT name FROM product WHERE category = 'fruit'"


def fenced(sql: str) -> str:
    """Completions are written the way the prompt asks for the answer."""
    return f"```sql\n{sql}\n```"


@pytest.fixture
def executed(shop_db):
    """Three tasks: 3/5 correct with duplicates, 0/3 correct, and a tie for the vote."""
    tasks = [
        make_task(shop_db, GOLD, [
            "SELECT name FROM product WHERE price <= 1",            # wrong (Milk too)
            GOLD,
            "select name from product where category='fruit'",    # same canonical SQL
            "SELECT name FROM product WHERE category = 'fruit' ORDER BY id",
            "SELECT name FROM product WHERE price <= 1",
        ], id="t/0", hardness="medium"),
        make_task(shop_db, "SELECT count(*) FROM customer", [
            "SELECT count(*) FROM orders", "SELECT 1 +", "SELECT count(*) FROM orders"],
            id="t/1", hardness="hard"),
        make_task(shop_db, "SELECT max(price) FROM product", [
            "SELECT min(price) FROM product", "SELECT max(price) FROM product"],
            id="t/2", hardness="easy"),
    ]
    r = run("rf-exec", input=tasks)
    assert r.code == 0, r.stderr
    return r.records


def test_vote_majority_and_earliest_tie_break(executed, validate):
    r = run("rf-vote", input=executed)
    assert r.code == 0, r.stderr
    out = r.records
    validate(out)
    v0, v1, v2 = (t["vote"] for t in out)
    # task 0: result {Apple, Pear} has support 3 and beats {Apple, Pear, Milk} (2)
    assert v0 == {"sql": GOLD, "index": 1, "support": 3, "n_valid": 5, "correct": True}
    # task 1: the syntax error does not vote; the wrong answer wins 2 of 2
    assert v1["support"] == 2 and v1["n_valid"] == 2 and v1["correct"] is False
    # task 2: a 1-1 tie goes to the earliest candidate
    assert v2["index"] == 0 and v2["correct"] is False


def test_vote_without_any_valid_candidate(shop_db):
    task = make_task(shop_db, "SELECT 1", ["SELECT nope", None])
    executed = run("rf-exec", input=[task]).records
    vote = run("rf-vote", input=executed).records[0]["vote"]
    assert vote == {"sql": None, "index": None, "support": 0, "n_valid": 0, "correct": False}


def test_vote_needs_executed_candidates(shop_db):
    r = run("rf-vote", input=[make_task(shop_db, "SELECT 1", ["SELECT 1"])])
    assert r.code == 1
    assert "line 1: candidate 0 has no 'correct': run rf-exec first" in r.stderr


def test_filter_dedupes_by_canonical_sql(executed, validate):
    r = run("rf-filter", input=executed)
    assert r.code == 0, r.stderr
    out = r.records
    validate(out)
    assert [(e["task_id"], e["completion"]) for e in out] == [
        ("t/0", fenced(GOLD)),
        ("t/0", fenced("SELECT name FROM product WHERE category = 'fruit' ORDER BY id")),
        ("t/2", fenced("SELECT max(price) FROM product"))]
    assert all(e["source"] == "self" and e["weight"] == 1 for e in out)
    assert out[0]["messages"] == render_messages(executed[0])
    assert "3 example(s) from 2 of 3 task(s)" in r.stderr


def test_filter_keeps_the_sampled_messages(executed):
    messages = [{"role": "system", "content": "S"}, {"role": "user", "content": "U"}]
    executed[0]["messages"] = messages
    out = run("rf-filter", input=executed[:1]).records
    assert all(e["messages"] == messages for e in out)


def test_filter_difficulty_resampling_and_cap(executed):
    out = run("rf-filter", ["--resample", "difficulty"], input=executed).records
    # t/0: k = 5, n_correct = 3, so each of its 2 distinct examples is repeated 2 times;
    # t/2: k = 2, n_correct = 1, so once
    assert [e["task_id"] for e in out] == ["t/0"] * 4 + ["t/2"]
    capped = run("rf-filter", ["--resample", "difficulty", "--max-per-task", "1"],
                 input=executed).records
    assert [e["completion"] for e in capped] == [
        fenced(GOLD), fenced(GOLD), fenced("SELECT max(price) FROM product")]


def test_filter_weight_resampling_writes_each_once_with_its_weight(executed):
    repeated = run("rf-filter", ["--resample", "difficulty"], input=executed).records
    weighted = run("rf-filter", ["--resample", "weight"], input=executed).records
    # t/0: 2 distinct examples with weight 5 - 3 = 2; t/2: one with weight 2 - 1 = 1
    assert [(e["task_id"], e["weight"]) for e in weighted] == [("t/0", 2), ("t/0", 2),
                                                                ("t/2", 1)]
    total = {}
    for e in repeated:
        total[e["completion"]] = total.get(e["completion"], 0) + e["weight"]
    assert total == {e["completion"]: e["weight"] for e in weighted}
    assert all(e["db_id"] == "shop" for e in weighted)


def test_resampling_repeats_at_least_once(shop_db):
    task = make_task(shop_db, "SELECT 1", ["SELECT 1", "SELECT 1"])
    executed = run("rf-exec", input=[task]).records
    out = run("rf-filter", ["--resample", "difficulty"], input=executed).records
    assert len(out) == 1


def test_canonical_sql_falls_back_to_whitespace():
    assert canonical_sql("select  a\nfrom t") == canonical_sql("SELECT a FROM t")
    assert canonical_sql("SELECT ((( broken") == "SELECT ((( broken"


def test_inject_gold_for_zero_correct(executed, validate):
    r = run("rf-inject", input=executed)
    assert r.code == 0, r.stderr
    out = r.records
    validate(out)
    # t/0 has 3 of 5 correct and t/2 1 of 2: only t/1 (0 of 3) gets the gold SQL
    assert [(e["task_id"], e["completion"], e["source"]) for e in out] == [
        ("t/1", fenced("SELECT count(*) FROM customer"), "gold")]


def test_inject_copies(executed):
    three = run("rf-inject", ["--copies", "3"], input=executed).records
    assert len(three) == 3
    k = run("rf-inject", ["--copies", "difficulty"], input=executed).records
    assert len(k) == 3  # t/1 has k = 3 candidates
    bad = run("rf-inject", ["--copies", "zero"], input=executed)
    assert bad.code == 2


def test_inject_skips_failed_gold_and_covers_unsampled(shop_db):
    failed = run("rf-exec", input=[make_task(shop_db, "SELECT nope", ["SELECT 1"],
                                             id="f/1")]).records
    r = run("rf-inject", input=failed + [make_task(shop_db, "SELECT 2", None, id="u/1")])
    assert [e["task_id"] for e in r.records] == ["u/1"]
    assert "task 'f/1': gold query failed; nothing injected" in r.stderr


def test_eval_first_candidate_vote_and_pass_at_k(executed, validate, tmp_path):
    first = run("rf-eval", input=executed)
    assert first.code == 0, first.stderr
    rep = first.records[0]
    validate(rep)
    assert rep["method"] == "first" and rep["matcher"] == "official"
    assert (rep["scored"], rep["correct"]) == (3, 0)
    expected_p2 = (pass_at_k(5, 3, 2) + pass_at_k(3, 0, 2) + pass_at_k(2, 1, 2)) / 3
    assert rep["pass_at_k"]["2"] == round(100 * expected_p2, 2)
    assert rep["pass_at_k"]["4"] == round(100 * (pass_at_k(5, 3, 4)), 2)  # only n >= 4 counts
    assert rep["exec_errors"] == 1 and rep["timeouts"] == 0 and rep["candidates"] == 10
    # pass@4 and pass@5 rest on the one task with 5 candidates, whose estimate is 0 or 1
    assert set(rep["pass_at_k_ci95"]) == {"1", "2", "4", "5"}
    assert rep["pass_at_k_ci95"]["4"] == [20.65, 100.0]  # Wilson, 1 of 1
    for k, (lo, hi) in rep["pass_at_k_ci95"].items():
        assert 0 <= lo <= rep["pass_at_k"][k] <= hi <= 100
    md = tmp_path / "r.md"
    voted = run("rf-vote", input=executed).records
    rep = run("rf-eval", ["--markdown", str(md)], input=voted).records[0]
    assert rep["method"] == "vote" and rep["correct"] == 1 and rep["ex"] == 33.33
    assert rep["by_hardness"]["medium"] == {"n": 1, "correct": 1, "ex": 100.0}
    text = md.read_text()
    assert "| execution accuracy (95% interval) | 33.3% [6.2, 79.2] (1/3) |" in text
    assert "Matcher: **official**" in text
    assert rep["ex_ci95"] == [6.15, 79.23]
    assert rep["outcomes"] == {"t/0": True, "t/1": False, "t/2": False}
    # every matcher's numbers, the vote scored through the voted candidate's verdicts
    assert list(rep["by_matcher"]) == ["official", "official-keep-distinct", "lenient"]
    for m in rep["by_matcher"].values():
        assert (m["scored"], m["correct"], m["ex"]) == (3, 1, 33.33)
    assert "| official-keep-distinct | 33.3% [6.2, 79.2] |" in text


def test_eval_by_matcher_differs_where_the_matchers_do(shop_db, validate):
    gold = "SELECT DISTINCT category FROM product WHERE category IS NOT NULL"
    tasks = [make_task(shop_db, gold, ["SELECT category FROM product WHERE category IS NOT NULL",
                                       "SELECT category FROM product WHERE price > 100"],
                       id="d/0"),
             make_task(shop_db, "SELECT name FROM product WHERE id = 1",
                       ["SELECT lower(name) FROM product WHERE id = 1"], id="d/1")]
    executed = run("rf-exec", ["--matcher", "official-keep-distinct"], input=tasks).records
    validate(executed)
    first, second = executed
    assert first["candidates"][0]["verdicts"] == {
        "official": True, "official-keep-distinct": False, "lenient": True}
    assert first["candidates"][0]["correct"] is False  # set by --matcher
    assert first["candidates"][1]["verdicts"] == {
        "official": False, "official-keep-distinct": False, "lenient": False}
    rep = run("rf-eval", input=executed).records[0]
    validate(rep)
    assert rep["matcher"] == "official-keep-distinct" and rep["correct"] == 0
    by = rep["by_matcher"]
    assert (by["official"]["correct"], by["official-keep-distinct"]["correct"],
            by["lenient"]["correct"]) == (1, 0, 2)
    assert by["official"]["pass_at_k"] == {"1": 25.0, "2": 100.0}
    assert by["lenient"]["ex_first"] == 100.0


def test_eval_baseline_paired_comparison(shop_db, validate, tmp_path):
    gold = "SELECT count(*) FROM product"
    base = [make_task(shop_db, gold, [gold if i < 3 else "SELECT 0"], id=f"b/{i}")
            for i in range(10)]
    now = [make_task(shop_db, gold, [gold if i < 8 else "SELECT 0"], id=f"b/{i}")
           for i in range(10)]
    base_tasks = tmp_path / "base.jsonl"
    base_tasks.write_bytes(run("rf-exec", input=base).stdout)
    base_report = tmp_path / "base.report.json"
    base_report.write_bytes(run("rf-eval", [str(base_tasks)]).stdout)
    executed = run("rf-exec", input=now).stdout
    for baseline in (base_tasks, base_report):
        r = run("rf-eval", ["--baseline", str(baseline)], input=executed)
        assert r.code == 0, r.stderr
        rep = r.records[0]
        validate(rep)
        b = rep["baseline"]
        assert (b["tasks"], b["ex"], b["ex_baseline"], b["diff"]) == (10, 80.0, 30.0, 50.0)
        assert (b["won"], b["lost"], b["tied"]) == (5, 0, 5)
        assert b["mcnemar_p"] == 0.0625  # 2 * (1/2)^5
        lo, hi = b["diff_ci95"]
        assert 0 < lo < 50 < hi <= 100


def test_eval_baseline_bad_input(shop_db, tmp_path):
    executed = run("rf-exec", input=[make_task(shop_db, "SELECT 1", ["SELECT 1"], id="x/0")])
    other = tmp_path / "other.jsonl"
    other.write_bytes(run("rf-exec", input=[make_task(shop_db, "SELECT 1", ["SELECT 1"],
                                                      id="y/0")]).stdout)
    r = run("rf-eval", ["--baseline", str(other)], input=executed.stdout)
    assert r.code == 1 and "no task id in common with the baseline" in r.stderr
    bad = tmp_path / "bad.jsonl"
    bad.write_text("{not json\n")
    r = run("rf-eval", ["--baseline", str(bad)], input=executed.stdout)
    assert r.code == 1 and r.stdout == b""
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith(f"Error: rf-eval: --baseline {bad}: line 1:")
    r = run("rf-eval", ["--baseline", str(tmp_path / "missing.jsonl")], input=executed.stdout)
    assert r.code == 2


@pytest.mark.parametrize("n,c,k,expected", [
    (8, 0, 1, 0.0), (8, 8, 1, 1.0), (8, 2, 1, 0.25), (8, 1, 8, 1.0), (4, 1, 2, 0.5),
    (5, 2, 2, 1 - 3 / 10)])
def test_pass_at_k_estimator(n, c, k, expected):
    assert pass_at_k(n, c, k) == pytest.approx(expected)
