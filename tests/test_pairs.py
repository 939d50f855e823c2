"""rf-filter --pairs: preference pairs (a correct candidate against a wrong one to the same
prompt) from verified tasks; what gives no pair is counted, never an error."""

from __future__ import annotations

import orjson
import pytest

from conftest import make_task, run
from rf_core.model.prompts import task_messages
from rf_core.records.validation import SchemaError, validator
from rf_core.testing import validate_records
from rf_core.train.examples import format_completion
from rf_core.train.pairs import task_pairs

GOLD = "SELECT name FROM product"


def verified(db: str, answers: list[tuple], id: str = "t/0", **extra) -> dict:
    """A task whose candidates carry verdicts: ``answers`` are (sql, correct[, logprob])."""
    task = make_task(db, GOLD, [a[0] for a in answers], id=id, **extra)
    for cand, answer in zip(task["candidates"], answers):
        cand["correct"] = answer[1]
        if len(answer) > 2:
            cand["logprob"] = answer[2]
    return task


def pairs_of(tasks: list[dict], *args) -> tuple[list[dict], str]:
    result = run("rf-filter", ["--pairs", *args], input=tasks)
    assert result.code == 0, result.stderr
    return validate_records(result.stdout, "pair"), result.stderr


def sides(pairs: list[dict]) -> list[tuple[str, str]]:
    """(chosen, rejected) as SQL, without the completion's code fence."""
    strip = lambda s: s.removeprefix("```sql\n").removesuffix("\n```")  # noqa: E731
    return [(strip(p["chosen"]), strip(p["rejected"])) for p in pairs]


def test_a_task_with_right_and_wrong_answers_gives_pairs_of_the_exact_prompt(shop_db):
    task = verified(shop_db, [(GOLD, True), ("SELECT id FROM product", False)])
    pairs, _ = pairs_of([task])
    assert len(pairs) == 1
    pair = pairs[0]
    assert pair["kind"] == "pair" and pair["task_id"] == "t/0" and pair["db_id"] == "shop"
    assert pair["messages"] == task_messages(task)
    assert pair["chosen"] == format_completion(GOLD)
    assert pair["rejected"] == format_completion("SELECT id FROM product")
    assert pair["source"] == "self" and pair["weight"] == 1
    assert "rejected_logprob" not in pair  # the candidate had none


def test_every_combination_of_distinct_sql_and_duplicates_collapse(shop_db):
    task = verified(shop_db, [(GOLD, True), ("select  name from product", True),
                              ("SELECT name FROM product ORDER BY id", True),
                              ("SELECT id FROM product", False), ("SELECT 1", False),
                              ("select 1", False)])
    pairs, _ = pairs_of([task])
    assert sorted(sides(pairs)) == sorted(
        (c, w) for c in (GOLD, "SELECT name FROM product ORDER BY id")
        for w in ("SELECT id FROM product", "SELECT 1"))


def test_a_limit_takes_distinct_sql_on_both_sides_before_any_answer_repeats(shop_db):
    task = verified(shop_db, [(GOLD, True), ("SELECT name FROM product ORDER BY id", True),
                              ("SELECT id FROM product", False), ("SELECT 1", False),
                              ("SELECT 2", False)])
    pairs, _ = pairs_of([task], "--max-pairs-per-task", "3")
    got = sides(pairs)
    assert len(got) == 3 and len(set(got)) == 3
    assert {w for _, w in got} == {"SELECT id FROM product", "SELECT 1", "SELECT 2"}
    assert {c for c, _ in got} == {GOLD, "SELECT name FROM product ORDER BY id"}
    assert got[:2] == [(GOLD, "SELECT id FROM product"),
                       ("SELECT name FROM product ORDER BY id", "SELECT 1")]


def test_rejected_by_logprob_takes_the_wrong_answers_the_model_found_most_likely(shop_db):
    task = verified(shop_db, [(GOLD, True), ("SELECT 1", False), ("SELECT 2", False, -9.5),
                              ("SELECT 3", False, -0.5), ("SELECT 4", False, -3)])
    ordered, _ = pairs_of([task], "--rejected-by", "logprob")
    assert [w for _, w in sides(ordered)] == ["SELECT 3", "SELECT 4", "SELECT 2", "SELECT 1"]
    assert [p.get("rejected_logprob") for p in ordered] == [-0.5, -3, -9.5, None]
    first, _ = pairs_of([task], "--rejected-by", "logprob", "--max-pairs-per-task", "1")
    assert sides(first) == [(GOLD, "SELECT 3")]
    by_order, _ = pairs_of([task], "--max-pairs-per-task", "1")  # the default: as sampled
    assert sides(by_order) == [(GOLD, "SELECT 1")]


def test_same_sql_on_both_sides_is_dropped_and_counted(shop_db):
    # the verdicts disagree on one canonical SQL (as a flaky or timed-out run can make them)
    task = verified(shop_db, [(GOLD, True), ("select name from product", False),
                              ("SELECT id FROM product", False)])
    pairs, stderr = pairs_of([task])
    assert sides(pairs) == [(GOLD, "SELECT id FROM product")]
    assert "1 same-SQL pair(s) dropped" in stderr
    only_same = verified(shop_db, [(GOLD, True), ("select name from product", False)], id="t/1")
    pairs, stderr = pairs_of([only_same])
    assert pairs == []
    assert "tasks without a pair: 1 same SQL; 1 same-SQL pair(s) dropped" in stderr


def test_unverifiable_candidates_are_neither_chosen_nor_rejected(shop_db):
    task = verified(shop_db, [("SELECT 1", None), (GOLD, True), ("SELECT 2", None),
                              ("SELECT id FROM product", False)])
    task["candidates"][0]["unverifiable"] = "empty gold result"
    pairs, stderr = pairs_of([task])
    assert sides(pairs) == [(GOLD, "SELECT id FROM product")]
    assert "1 unverifiable candidate(s) not selected" in stderr
    nothing = verified(shop_db, [("SELECT 1", None), ("SELECT 2", False)], id="t/1")
    unverified = verified(shop_db, [("SELECT 1", None)], id="t/2")
    pairs, stderr = pairs_of([nothing, unverified])
    assert pairs == []
    assert "tasks without a pair: 1 no verified candidate, 1 only wrong;" in stderr


def test_the_summary_counts_tasks_pairs_and_why_tasks_gave_none(shop_db):
    tasks = [verified(shop_db, [(GOLD, True), ("SELECT 1", False), ("SELECT 2", False)]),
             verified(shop_db, [(GOLD, True)], id="t/1"),
             verified(shop_db, [(GOLD, True), (GOLD, True)], id="t/2"),
             verified(shop_db, [("SELECT 1", False)], id="t/3"),
             verified(shop_db, [], id="t/4")]
    pairs, stderr = pairs_of(tasks)
    assert len(pairs) == 2
    assert stderr == ("rf-filter: 2 pair(s) (2 self, 0 gold) from 1 of 5 task(s); tasks "
                      "without a pair: 1 no verified candidate, 2 only right, 1 only wrong; "
                      "0 same-SQL pair(s) dropped\n")


def test_gold_chosen_pairs_the_gold_sql_against_a_task_with_no_right_answer(shop_db):
    task = verified(shop_db, [("SELECT 1", False), ("SELECT 2", False), ("SELECT 3", None)])
    pairs, stderr = pairs_of([task], "--gold-chosen")
    assert sides(pairs) == [(GOLD, "SELECT 1"), (GOLD, "SELECT 2")]
    assert {p["source"] for p in pairs} == {"gold"}
    assert "2 pair(s) (0 self, 2 gold) from 1 of 1 task(s)" in stderr
    # a task with a right answer keeps its own pairs
    mixed = verified(shop_db, [("SELECT name FROM product ORDER BY 1", True),
                               ("SELECT 1", False)], id="t/1")
    pairs, _ = pairs_of([mixed], "--gold-chosen")
    assert [p["source"] for p in pairs] == ["self"]
    failed = verified(shop_db, [("SELECT 1", False)], id="t/2",
                      gold_exec={"ok": False, "error": "no such table", "n_rows": 0,
                                 "digest": None, "ms": 0.1, "truncated": False})
    missing = verified(shop_db, [("SELECT 1", False)], id="t/3", gold_sql=None)
    pairs, stderr = pairs_of([failed, missing], "--gold-chosen")
    assert pairs == [] and "tasks without a pair: 2 gold unusable;" in stderr


def test_weight_follows_resample_as_for_examples(shop_db):
    # k = 4, one right: k - n_correct = 3
    task = verified(shop_db, [(GOLD, True), ("SELECT 1", False), ("SELECT 2", False),
                              ("SELECT 1", False)])
    weighted, _ = pairs_of([task], "--resample", "weight")
    assert [p["weight"] for p in weighted] == [3, 3]
    repeated, _ = pairs_of([task], "--resample", "difficulty")
    assert [p["weight"] for p in repeated] == [1] * 6
    assert sides(repeated) == [sides(weighted)[0]] * 3 + [sides(weighted)[1]] * 3
    examples = run("rf-filter", ["--resample", "weight"], input=[task]).records
    assert [e["weight"] for e in examples] == [3]  # the same factor as an example's


def test_pairs_validate_against_their_schema_and_bad_ones_do_not():
    check = validator("pair")
    task = {"id": "t/0", "db_id": "d", "question": "q?", "schema": "CREATE TABLE t (a)",
            "candidates": [{"sql": "SELECT a FROM t", "correct": True, "logprob": -1.5},
                           {"sql": "SELECT 1", "correct": False, "logprob": -2.5}]}
    (pair,) = task_pairs(task).pairs
    check(pair)
    for field, value in (("chosen", ""), ("source", "other"), ("weight", 0),
                         ("rejected_logprob", "high")):
        with pytest.raises(SchemaError):
            check({**pair, field: value})
    with pytest.raises(SchemaError):
        check({k: v for k, v in pair.items() if k != "rejected"})


@pytest.mark.parametrize("args, message", [
    (["--pairs", "--tasks", "wrong"], "--pairs and --tasks cannot be combined"),
    (["--pairs", "--max-per-task", "2"], "--max-per-task is for examples"),
    (["--gold-chosen"], "--gold-chosen needs --pairs"),
    (["--max-pairs-per-task", "2"], "--max-pairs-per-task needs --pairs"),
    (["--rejected-by", "logprob"], "--rejected-by needs --pairs"),
    (["--pairs", "--max-pairs-per-task", "0"], "x>=1"),
    (["--pairs", "--rejected-by", "chance"], "'chance' is not one of"),
])
def test_options_of_the_wrong_mode_are_usage_errors(args, message):
    result = run("rf-filter", args, input=b"")
    assert result.code == 2 and result.stdout == b""
    assert message in result.stderr


def test_bad_input_is_one_line_naming_the_program_and_the_line(shop_db):
    good = orjson.dumps(verified(shop_db, [(GOLD, True), ("SELECT 1", False)])) + b"\n"
    for body, message in (
            (b"{nope\n", "Error: rf-filter: line 2: invalid JSON"),
            (b'{"schema_version": 1, "kind": "example"}\n',
             "Error: rf-filter: line 2: expected a 'task' record, got kind 'example'"),
            (b"NaN\n", "Error: rf-filter: line 2: ")):
        result = run("rf-filter", ["--pairs"], input=good + body)
        assert result.code == 1, result.stderr
        assert result.stderr.startswith(message) and result.stderr.count("\n") == 1
    unexecuted = make_task(shop_db, GOLD, [GOLD, "SELECT 1"], id="t/1")
    result = run("rf-filter", ["--pairs"], input=[unexecuted])
    assert result.code == 1 and result.stdout == b""
    assert result.stderr.startswith("Error: rf-filter: line 1: candidate 0 has no 'correct'")
    assert result.stderr.count("\n") == 1
    skipped = run("rf-filter", ["--pairs", "--skip-bad"], input=b"{nope\n" + good)
    assert skipped.code == 0 and len(skipped.records) == 1
    assert "skipped 1 bad line(s): 1" in skipped.stderr
