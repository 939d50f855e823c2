"""rf-revise: feedback from a candidate's own execution (never the gold), lineage, rounds and
stopping, bad input, the engines, and rf-eval's before/after report."""

from __future__ import annotations

import copy
import sqlite3

import orjson
import pytest

from rf_core.api import Option
from rf_core.exec.sqlite import Result
from rf_core.report.evaluate import Evaluation
from rf_core.revise.feedback import MAX_CELL, Preview, cell, feedback, preview_of
from rf_core.testing import FakeSampler, registered, run_command, validate_records
from conftest import make_task

FIXED = "SELECT name FROM product WHERE price > 1"


class ScriptedEngine:
    """A sampler engine answering each conversation with ``script(conversation)``; it keeps
    every conversation and task it was given."""

    options = (Option("flavour", str, "plain", "A plugin option."),)

    def __init__(self, script, name: str = "scripted"):
        self.name = name
        self.script = script
        self.seen: list[list[dict]] = []
        self.tasks: list[dict] = []
        self.loads = 0

    def load(self, request, *, report, **options):
        self.loads += 1
        return self

    def generate(self, conversations, *, first, tasks=(), **context):
        self.seen.extend(copy.deepcopy(conversations))
        self.tasks.extend(copy.deepcopy(list(tasks)))
        return [[{"text": f"```sql\n{self.script(c)}\n```", "logprob": -1.0, "n_tokens": 5,
                  "finished": True}] for c in conversations]


def _revise(engine, records, *args):
    with registered(engine):
        return run_command("rf-revise", ["--sampler", engine.name, "-m", "m", *args],
                           input=records)


def _executed(records):
    res = run_command("rf-exec", ["-j", "1"], input=records)
    assert res.exit_code == 0, res.stderr
    return res.records


# -- feedback ------------------------------------------------------------------------------

def test_cells_are_short_and_printable():
    assert cell(None) == "NULL"
    assert cell(b"\x00\x01" * 5000) == "<blob of 10,000 bytes>"
    long = cell("x" * 10_000)
    assert len(long) == MAX_CELL and long.endswith("…")
    assert cell("a\nb\x00c") == "a b c"
    assert cell(1.5) == "1.5"


def test_preview_shows_columns_first_rows_and_count():
    res = Result(ok=True, rows=[(i, "y" * 500) for i in range(20)], n_rows=20,
                 columns=["id", "name"])
    p = preview_of(res, rows=3)
    text = feedback(p, 2)
    assert "returned 20 row(s)" in text and "Columns: id, name" in text
    assert "0 | " in text and "... (17 more row(s))" in text
    assert len(text) < 600


def test_feedback_for_errors_empty_and_timeouts():
    err = feedback(preview_of(Result(ok=False, error="no such column: T2.nme")))
    assert "no such column: T2.nme" in err and "```sql" in err
    empty = feedback(preview_of(Result(ok=True, rows=[], n_rows=0, columns=["a"])))
    assert "returned no rows" in empty
    slow = feedback(preview_of(Result(ok=False, error="timeout after 5 s", timed_out=True)))
    assert "did not finish" in slow
    assert "no SQL" in feedback(Preview(ok=False, error="no SQL query found in the reply"))


def test_a_failed_query_is_shown_the_columns_of_its_tables(shop_db):
    from rf_core.exec.sqlite import Limits
    from rf_core.revise.feedback import run_previews

    queries = ["SELECT T2.nme FROM customer AS T1 JOIN orders AS T2 ON T1.id = T2.customer_id",
               "SELECT x FROM nowhere", "SELECT name FROM product WHERE price > 99",
               "SELEC broken", "SELECT name FROM product"]
    (outcomes,) = run_previews([(shop_db, queries)], limits=Limits())
    column, table, empty, broken, fine = [feedback(p, n) for p, n in outcomes]
    assert "no such column: T2.nme" in column
    assert "- customer AS T1: id, name, city" in column
    assert "- orders AS T2: id, customer_id, product_id, qty" in column
    assert "- product" not in column
    assert "The database has these tables:" in table and "- big: n" in table
    assert "returned no rows" in empty and "- product: id, name, price, category" in empty
    assert "The database has these tables:" in broken  # nothing parsed: every table
    assert "columns:" not in fine.split("row(s)")[0] and "Columns: name" in fine



def test_failed_candidates_are_revised_with_lineage(shop_db, validate):
    engine = ScriptedEngine(lambda conv: FIXED)
    tasks = [make_task(shop_db, FIXED, ["SELECT nme FROM product", FIXED], id="t/0"),
             make_task(shop_db, FIXED, ["SELECT name FROM product WHERE price > 99"], id="t/1"),
             make_task(shop_db, FIXED, None, id="t/2")]
    res = _revise(engine, _executed(tasks))
    assert res.exit_code == 0, res.stderr
    out = res.records
    validate(out)
    assert [t["id"] for t in out] == ["t/0", "t/1", "t/2"]
    first, kept = out[0]["candidates"]
    assert first["sql"] == FIXED and first["sampler"] == "scripted"
    (turn,) = first["revision"]["turns"]
    assert turn["round"] == 1 and turn["sql"] == "SELECT nme FROM product"
    assert turn["correct"] is False and "no such column: nme" in turn["feedback"]
    assert turn["shown"]["ok"] is False
    assert "revision" not in kept and kept["correct"] is True  # it ran and returned rows
    assert "returned no rows" in out[1]["candidates"][0]["revision"]["turns"][0]["feedback"]
    assert "gold_exec" not in out[0] and "verified_by" not in out[0]
    # the conversation: the task's prompt, the reply, the feedback
    conv = engine.seen[0]
    assert [m["role"] for m in conv] == ["system", "user", "assistant", "user"]
    assert conv[3]["content"] == turn["feedback"]
    assert "round 1: 2 revised" in res.stderr


def test_no_gold_information_reaches_the_model(shop_db):
    """The same tasks with the right gold and with a wrong one: identical conversations, and
    identical output but for what rf-exec said before."""
    cands = ["SELECT nme FROM product", "SELECT name FROM product WHERE price > 99",
             "SELECT name FROM product"]
    runs = []
    for gold in (FIXED, "SELECT id FROM customer"):
        engine = ScriptedEngine(lambda conv: FIXED)
        task = make_task(shop_db, gold, cands)
        res = _revise(engine, _executed([task]), "--revise", "all", "--rounds", "2",
                      "--until", "never")
        assert res.exit_code == 0, res.stderr
        runs.append((engine, res.records[0]))
    (a, out_a), (b, out_b) = runs
    assert a.seen == b.seen and len(a.seen) == 6
    assert a.tasks == b.tasks and all("gold_sql" not in t for t in a.tasks)
    for text in (m["content"] for conv in a.seen for m in conv):
        assert "SELECT id FROM customer" not in text

    def without_verdicts(task):
        task = copy.deepcopy(task)
        task.pop("gold_sql")
        for c in task["candidates"]:
            for turn in c["revision"]["turns"]:
                for key in ("correct", "verdicts", "exec", "distinguishing"):
                    turn.pop(key, None)
        return task

    assert without_verdicts(out_a) == without_verdicts(out_b)


def test_rounds_stop_once_rows_come_back(shop_db):
    answers = iter(["SELECT still_wrong FROM product", FIXED, "SELECT 1 FROM product"])
    engine = ScriptedEngine(lambda conv: next(answers))
    task = make_task(shop_db, FIXED, ["SELECT nme FROM product"])
    res = _revise(engine, [task], "--rounds", "3")
    assert res.exit_code == 0, res.stderr
    cand = res.records[0]["candidates"][0]
    assert cand["sql"] == FIXED
    assert [t["round"] for t in cand["revision"]["turns"]] == [1, 2]
    assert len(engine.seen) == 2 and len(engine.seen[1]) == 6  # two replies, two feedbacks
    assert "round 2: 1 revised" in res.stderr and "1 of 1 revised" in res.stderr


def test_until_never_revises_every_round(shop_db):
    engine = ScriptedEngine(lambda conv: FIXED)
    task = make_task(shop_db, FIXED, ["SELECT nme FROM product"])
    res = _revise(engine, [task], "--rounds", "3", "--until", "never")
    assert [t["round"] for t in res.records[0]["candidates"][0]["revision"]["turns"]] == [1, 2, 3]


def test_a_second_call_continues_the_lineage(shop_db):
    engine = ScriptedEngine(lambda conv: "SELECT nope FROM product")
    task = make_task(shop_db, FIXED, ["SELECT nme FROM product"])
    once = _executed(_revise(engine, [task]).records)
    twice = _revise(engine, once).records[0]["candidates"][0]
    turns = twice["revision"]["turns"]
    assert [t["round"] for t in turns] == [1, 2]
    assert "correct" not in turns[0] and turns[1]["correct"] is False  # rf-exec ran once
    assert len(engine.seen[-1]) == 6


def test_rounds_zero_passes_records_through_and_loads_nothing(shop_db):
    engine = ScriptedEngine(lambda conv: FIXED)
    tasks = _executed([make_task(shop_db, FIXED, ["SELECT nme FROM product"])])
    data = b"".join(orjson.dumps(t) + b"\n" for t in tasks)
    res = _revise(engine, data, "--rounds", "0")
    assert res.exit_code == 0 and res.stdout == data and engine.loads == 0


def test_too_long_conversations_are_skipped_with_a_reason(shop_db):
    engine = ScriptedEngine(lambda conv: FIXED)
    engine.too_long = lambda convs: ["the conversation is 9000 prompt tokens" if
                                     "nme" in convs_text(c) else None for c in convs]
    task = make_task(shop_db, FIXED, ["SELECT nme FROM product", "SELECT zz FROM product"])
    res = _revise(engine, [task])
    assert res.exit_code == 0, res.stderr
    skipped, revised = res.records[0]["candidates"]
    assert skipped["sql"] == "SELECT nme FROM product"
    assert skipped["revision"] == {"turns": [], "skipped": "the conversation is 9000 prompt "
                                   "tokens"}
    assert revised["sql"] == FIXED
    assert "1 skipped (too long)" in res.stderr
    validate_records(res.records, "task")


def convs_text(conv):
    return " ".join(m["content"] for m in conv)


def test_a_record_level_sampler_cannot_revise(shop_db):
    with registered(FakeSampler("tasks-only")):
        res = run_command("rf-revise", ["--sampler", "tasks-only", "-m", "m"],
                          input=[make_task(shop_db, FIXED, ["SELECT nme FROM product"])])
    assert res.exit_code == 2
    (error,) = [line for line in res.stderr.splitlines() if line.startswith("Error:")]
    assert "'tasks-only' samples whole tasks" in error


def test_huge_and_binary_values_are_cut_in_the_preview(tmp_path):
    db = tmp_path / "blob.sqlite"
    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE t (a BLOB, b TEXT)")
    conn.execute("INSERT INTO t VALUES (?, ?)", (b"\x00\xff" * 300_000, "z" * 1_000_000))
    conn.commit()
    conn.close()
    engine = ScriptedEngine(lambda conv: "SELECT b FROM t")
    res = _revise(engine, [make_task(str(db), None, ["SELECT a, b FROM t"])], "--revise",
                  "all")
    assert res.exit_code == 0, res.stderr
    shown = engine.seen[0][-1]["content"]
    assert "<blob of 600,000 bytes>" in shown and len(shown) < 1000


def test_bad_lines_are_named_and_order_is_kept(shop_db):
    engine = ScriptedEngine(lambda conv: FIXED)
    good = orjson.dumps(make_task(shop_db, FIXED, ["SELECT nme FROM product"], id="a"))
    data = good + b"\n{not json\n" + good.replace(b'"a"', b'"b"') + b"\n"
    res = _revise(engine, data, "--skip-bad")
    assert res.exit_code == 0, res.stderr
    assert [t["id"] for t in res.records] == ["a", "b"]
    assert "line 2" in res.stderr
    res = _revise(engine, data)
    assert res.exit_code != 0 and "rf-revise" in res.stderr and "line 2" in res.stderr


# -- rf-eval and rf-vote over revised candidates -------------------------------------------

def test_eval_reports_before_after_fixed_and_broken(shop_db, validate):
    answers = {"SELECT nme FROM product": FIXED,
               "SELECT name FROM product WHERE price > 99": "SELECT bad FROM product"}
    engine = ScriptedEngine(lambda conv: answers[conv[-2]["content"].split("\n")[1]])
    tasks = [make_task(shop_db, FIXED, ["SELECT nme FROM product"], id="x"),
             make_task(shop_db, FIXED, ["SELECT name FROM product WHERE price > 99"], id="y"),
             make_task(shop_db, FIXED, [FIXED], id="z")]
    revised = _executed(_revise(engine, _executed(tasks)).records)
    res = run_command("rf-eval", [], input=revised)
    assert res.exit_code == 0, res.stderr
    (report,) = res.records
    validate([report])
    rev = report["revision"]
    assert rev["candidates_revised"] == 2 and rev["fixed"] == 1 and rev["broken"] == 0
    assert rev["ex_before"] == pytest.approx(100 / 3, abs=0.01)
    assert report["ex"] == pytest.approx(200 / 3, abs=0.01)
    assert rev["paired"]["won"] == 1 and rev["paired"]["lost"] == 0
    assert rev["rounds"] == [{"round": 1, "revised": 2, "judged": 2, "fixed": 1,
                              "broken": 0}]


def test_a_round_without_verdicts_is_counted_but_not_judged():
    task = {"id": "t", "candidates": [{
        "sql": "b", "correct": False, "revision": {"turns": [
            {"round": 1, "sql": "a", "correct": True, "feedback": "f", "shown": {}},
            {"round": 2, "sql": "m", "feedback": "f", "shown": {}}]}}]}
    ev = Evaluation()
    ev.add(task)
    rev = ev.report()["revision"]
    assert rev["broken"] == 1 and rev["fixed"] == 0
    assert [(r["revised"], r["judged"]) for r in rev["rounds"]] == [(1, 0), (1, 0)]


def test_vote_over_revised_candidates(shop_db):
    engine = ScriptedEngine(lambda conv: FIXED)
    task = make_task(shop_db, FIXED, ["SELECT nme FROM product", "SELECT zz FROM product",
                                      "SELECT name FROM product"])
    revised = _executed(_revise(engine, _executed([task])).records)
    voted = run_command("rf-vote", [], input=revised).records[0]["vote"]
    assert voted["sql"] == FIXED and voted["support"] == 2 and voted["correct"] is True
    report = run_command("rf-eval", [], input=[{**revised[0], "vote": voted}]).records[0]
    assert report["revision"]["paired"]["ex_baseline"] == 0.0  # the first states' vote
    assert report["ex"] == 100.0


# -- training examples from revised candidates ---------------------------------------------

def test_a_correct_revision_trains_the_original_prompt(shop_db, validate):
    engine = ScriptedEngine(lambda conv: FIXED)
    task = make_task(shop_db, FIXED, ["SELECT nme FROM product"])
    revised = _executed(_revise(engine, _executed([task])).records)
    single = run_command("rf-filter", [], input=revised)
    assert single.exit_code == 0, single.stderr
    (ex,) = single.records
    assert ex["messages"] == revised[0]["messages"]
    assert ex["completion"] == f"```sql\n{FIXED}\n```"
    assert "1 task(s) rescued by revision" in single.stderr
    assert run_command("rf-inject", [], input=revised).records == []  # no gold needed
    both = run_command("rf-filter", ["--multi-turn"], input=revised)
    validate(both.records)
    plain, multi = both.records
    assert plain == ex
    assert [m["role"] for m in multi["messages"]] == ["system", "user", "assistant", "user"]
    assert multi["messages"][2]["content"] == "```sql\nSELECT nme FROM product\n```"
    assert "no such column: nme" in multi["messages"][3]["content"]
    assert multi["completion"] == ex["completion"] and "(1 multi-turn)" in both.stderr


def test_multi_turn_examples_train(tiny_model, shop_db, tmp_path):
    engine = ScriptedEngine(lambda conv: FIXED)
    task = make_task(shop_db, FIXED, ["SELECT nme FROM product"])
    revised = _executed(_revise(engine, _executed([task])).records)
    examples = run_command("rf-filter", ["--multi-turn"], input=revised).records
    res = run_command("rf-train", ["--base", tiny_model, "--out", str(tmp_path / "a"),
                                   "--batch-size", "2", "--epochs", "1"], input=examples)
    assert res.exit_code == 0, res.stderr
    assert res.records[0]["examples"] == 2


def test_nothing_to_revise_loads_no_model(shop_db):
    engine = ScriptedEngine(lambda conv: FIXED)
    res = _revise(engine, [make_task(shop_db, FIXED, [FIXED])])
    assert res.exit_code == 0, res.stderr
    assert engine.loads == 0 and "revision" not in res.records[0]["candidates"][0]
    assert "round 1: 0 revised" in res.stderr
