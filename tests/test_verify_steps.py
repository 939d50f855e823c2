"""The steps of a task's check (rf_core.exec.verify), each on its own, with a stand-in
executor: which queries run, under which index, how often, and what each step decides."""

from __future__ import annotations

from rf_core.exec.matching import Matcher, official_match, official_rewrite
from rf_core.exec.sqlite import Limits, Result
from rf_core.exec.verify import (CHANGED, GoldVariantSpec, Job, Outcome, TaskCheck,
                                 TaskRecords, _extra_index)


def rows(*values) -> Result:
    return Result(ok=True, rows=[(v,) for v in values], n_rows=len(values), digest=str(values))


class FakeExecutor:
    """Answers from a table of SQL text -> Result and records what ran (db, sql)."""

    limits = Limits()

    def __init__(self, answers: dict[str, Result], changed: bool = False):
        self.answers = answers
        self.changed = changed
        self.ran: list[tuple[str, str]] = []

    def run(self, db, sql):
        self.ran.append((db, sql))
        return self.answers.get(sql, Result(ok=False, error="no such table"))

    def begin(self, db):
        return None

    def end(self, db):
        return self.changed


class Slot:
    """Records query indexes started and outcomes kept."""

    def __init__(self, kept=None):
        self.kept = kept or {}
        self.started: list[int] = []
        self.keeps: dict = {}

    def start(self, i):
        self.started.append(i)

    def stop(self):
        pass

    def keep(self, i, value):
        self.keeps[i] = value


class Counting:
    """A comparison that counts its calls (to see shared verdicts)."""

    def __init__(self):
        self.calls = 0

    def __call__(self, gold, pred, ordered):
        self.calls += 1
        return official_match(gold, pred, ordered)


OFFICIAL = Matcher("official", official_match, official_rewrite)
KEEP = Matcher("official-keep-distinct", official_match)


def check(job: Job, answers: dict, matchers=(OFFICIAL, KEEP), slot=None, **kwargs):
    executor = FakeExecutor(answers, **kwargs)
    return TaskCheck(job, executor, list(matchers), matchers[0], slot), executor


def test_job_from_its_positional_form():
    assert Job.of(("db", "SELECT 1", ["SELECT 2"])) == Job("db", "SELECT 1", ("SELECT 2",))
    full = Job.of(("db", "g", ["c"], ["v1"], "unreadable", ("folder", 3, 1.5, None)))
    assert full.variant_paths == ("v1",) and full.open_error == "unreadable"
    assert full.gold_variant == GoldVariantSpec("folder", 3, 1.5, None)
    assert Job.of(full) is full


def test_each_text_runs_once_under_the_index_of_its_first_occurrence():
    job = Job("db", "SELECT 1", ("SELECT 2", "  SELECT 2 ", "SELECT 1"))
    slot = Slot()
    task, executor = check(job, {"SELECT 1": rows(1), "SELECT 2": rows(2)}, slot=slot)
    gold, out = task.run()
    assert gold["ok"] and [o.correct for o in out] == [False, False, True]
    assert executor.ran == [("db", "SELECT 1"), ("db", "SELECT 2")]
    assert slot.started == [0, 1]
    assert set(slot.keeps) == {-1, 1, 2, 3} and slot.keeps[3] == out[2]


def test_a_rewritten_text_runs_once_more_under_an_index_after_the_candidates():
    job = Job("db", "SELECT DISTINCT a FROM t", ("SELECT a FROM t",))
    answers = {"SELECT DISTINCT a FROM t": rows(1), "SELECT  a FROM t": rows(1, 1),
               "SELECT a FROM t": rows(1, 1)}
    task, executor = check(job, answers)
    out = task.candidates()
    assert [sql for _, sql in executor.ran] == [
        "SELECT DISTINCT a FROM t", "SELECT a FROM t", "SELECT  a FROM t"]
    assert out[0].verdicts == {"official": True, "official-keep-distinct": False}
    key = task.key_of("SELECT  a FROM t")
    assert _extra_index(1, "db", key) > 1  # after the gold (0) and the candidate (1)


def test_matchers_sharing_a_comparison_share_its_verdict():
    counting = Counting()
    first, second = Matcher("a", counting), Matcher("b", counting)
    task, _ = check(Job("db", "SELECT 1", ("SELECT 1",)), {"SELECT 1": rows(1)},
                    matchers=(first, second))
    task.gold = task.run_gold()
    verdicts, primary_text = task.verdicts("SELECT 1", task.run_query(1, "SELECT 1"))
    assert verdicts == {"a": True, "b": True} and counting.calls == 1
    assert primary_text == "SELECT 1"


def test_no_gold_sql_gives_no_verdicts():
    task, executor = check(Job("db", None, ("SELECT 1",)), {"SELECT 1": rows(1)})
    gold, out = task.run()
    assert gold is None and out == [Outcome(rows(1).summary(), None,
                                            {"official": None, "official-keep-distinct": None},
                                            None, None)]


def test_judge_needs_every_usable_variant_and_for_training_a_speaking_result():
    task, _ = check(Job("db", "SELECT 1", ()), {"SELECT 1": rows(1)})
    task.gold = task.run_gold()
    informed = {"distinguishing": 1, "unverifiable": None}
    assert task.judge({"official": True}, None, informed) is True
    assert task.judge({"official": True}, {"used": 2, "passed": 1}, informed) is False
    assert task.judge({"official": False}, None, informed) is False
    trains, _ = check(Job("db", "SELECT 0", (), gold_variant=GoldVariantSpec(None, 0, 1.0,
                                                                           "no cache")),
                      {"SELECT 0": rows(0)})
    trains.gold = trains.run_gold()
    silent = {"distinguishing": 0, "unverifiable": None}
    assert trains.judge({"official": True}, None, silent) is None
    assert silent["unverifiable"] == "gold result degenerate (one row of NULL or 0) on every " \
                                     "database"


def test_variants_check_a_matching_candidate_once_per_query():
    job = Job("db", "SELECT 1", ("SELECT 1", "select 1"), variant_paths=("v1", "v2"))
    task, executor = check(job, {"SELECT 1": rows(1), "select 1": rows(1)})
    out = task.candidates()
    assert [o.variants for o in out] == [{"used": 2, "passed": 2}] * 2
    on_variants = [(db, sql) for db, sql in executor.ran if db != "db"]
    assert on_variants == [("v1", "SELECT 1"), ("v2", "SELECT 1")]  # the gold's runs serve
    assert [o.informed["distinguishing"] for o in out] == [3, 3]


def test_a_changed_database_fails_the_gold_and_every_verdict():
    task, _ = check(Job("db", "SELECT 1", ("SELECT 1",)), {"SELECT 1": rows(1)}, changed=True)
    gold, out = task.run()
    assert not gold["ok"] and gold["error"] == CHANGED
    assert out[0].correct is False and set(out[0].verdicts.values()) == {False}


def test_a_killed_query_is_recorded_not_run():
    job = Job("db", "SELECT 1", ("SELECT 2",))
    task, executor = check(job, {"SELECT 1": rows(1)})
    task.killed = {1: "timeout"}
    out = task.candidates()
    assert executor.ran == [("db", "SELECT 1")]
    assert out[0].exec["timed_out"] and "killing its worker" in out[0].exec["error"]


def test_task_records_write_outcomes_and_verified_by():
    records = TaskRecords(matcher="official", verifier="sqlite", report=None, variants=2,
                          variants_seed=0, for_training=True, gold_variants_max_s=1.0,
                          cache=None, copies=None)
    cands = [{"sql": "a", "variants": {"old": 1}}, {"sql": "b", "unverifiable": "old"}]
    why = records.record_candidates(cands, [
        Outcome({"ok": True}, True, {"official": True}, None, {"distinguishing": 1,
                                                               "unverifiable": None}),
        Outcome({"ok": True}, None, {"official": True}, {"used": 0, "passed": 0},
                {"distinguishing": 0, "unverifiable": "silent"})])
    assert why == "silent"
    assert cands[0] == {"sql": "a", "exec": {"ok": True}, "verdicts": {"official": True},
                        "correct": True, "distinguishing": 1}
    assert cands[1]["unverifiable"] == "silent" and cands[1]["variants"] == {"used": 0,
                                                                            "passed": 0}
    assert records.verified_by("too big") == {"verifier": "sqlite", "matcher": "official",
                                              "for_training": True, "variants": 2,
                                              "variants_skipped": "too big"}
