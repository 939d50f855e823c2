"""The verifier contract (README, "Verifiers"): what rf-vote, rf-eval, rf-filter and rf-inject
read from a verifier, and what they do without it. A verdict-only verifier (the canonical
example writes `correct` but no `exec`) gives EX by first candidate, and a vote over it is
refused with a line naming the verifier and the missing field, never scored as 0%."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from conftest import make_task, run
from rf_core.testing import registered

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "reasonforge-canonical"
GOLD = "SELECT name FROM product WHERE price > 1"


@pytest.fixture
def canonical(monkeypatch):
    """The example plugin, registered for the test (installed or not)."""
    try:
        import reasonforge_canonical
    except ImportError:
        monkeypatch.syspath_prepend(str(EXAMPLE))
        sys.modules.pop("reasonforge_canonical", None)
        import reasonforge_canonical
    with registered(reasonforge_canonical):
        yield


def sampled(db: str) -> list[dict]:
    right = "select name from product where price>1"  # the gold, canonically
    return [make_task(db, GOLD, [right, "SELECT name FROM product"], id="c/0"),
            make_task(db, GOLD, ["SELECT 1", right], id="c/1")]


def test_verdict_only_verifier_scores_first_candidates(canonical, shop_db, validate):
    checked = run("rf-exec", ["--verifier", "canonical"], input=sampled(shop_db))
    assert checked.code == 0, checked.stderr
    assert all("exec" not in c for t in checked.records for c in t["candidates"])
    r = run("rf-eval", input=checked.stdout)
    assert r.code == 0, r.stderr
    [report] = r.records
    validate(report)
    assert (report["ex"], report["ex_first"], report["method"]) == (50.0, 50.0, "first")
    assert report["pass_at_k"]["2"] == 100.0
    assert (report["candidates"], report["executed"], report["exec_errors"]) == (4, 0, 0)
    assert "4 of 4 candidate(s) carry no 'exec' (verifier canonical)" in r.stderr


def test_a_vote_over_verdicts_only_is_refused(canonical, shop_db):
    """`rf-exec --verifier canonical | rf-vote | rf-eval` once printed vote EX 0.0 beside
    ex_first 100.0, with nothing on stderr."""
    checked = run("rf-exec", ["--verifier", "canonical"], input=sampled(shop_db))
    r = run("rf-vote", input=checked.stdout)
    assert r.code == 1 and r.stdout == b""
    assert r.stderr.startswith("Error: rf-vote: line 1: candidate 0 has no 'exec': "
                               "verifier 'canonical' writes verdicts only"), r.stderr
    # a vote taken by an earlier rf-vote over no executed candidate
    voted = checked.records
    for t in voted:
        t["vote"] = {"sql": None, "index": None, "support": 0, "n_valid": 0, "correct": False}
    for prog, args in (("rf-eval", []), ("rf-filter", ["--tasks", "wrong"])):
        r = run(prog, args, input=voted)
        assert r.code == 1 and r.stdout == b"", (prog, r.stderr)
        assert f"Error: {prog}: line 1: the task has a vote but candidate 0 has no 'exec' " \
            "(verifier 'canonical' writes verdicts only)" in r.stderr
    # what does not use the vote goes on: examples from the verdicts
    r = run("rf-filter", input=voted)
    assert r.code == 0 and len(r.records) == 2, r.stderr


def test_a_verifier_that_sets_no_verdict_is_named(shop_db):
    class Silent:
        name = "silent"

        def verify(self, tasks, **options):
            for task in tasks:
                task["verified_by"] = {"verifier": self.name, "matcher": "none"}
                yield task

    with registered(Silent()):
        checked = run("rf-exec", ["--verifier", "silent"], input=sampled(shop_db))
    assert checked.code == 0, checked.stderr
    for prog in ("rf-vote", "rf-eval", "rf-filter", "rf-inject"):
        r = run(prog, input=checked.stdout)
        assert r.code == 1, (prog, r.stderr)
        assert f"Error: {prog}: line 1: candidate 0 has no 'correct': verifier 'silent' " \
            "did not set it" in r.stderr


def test_an_executing_verifier_votes(shop_db):
    checked = run("rf-exec", input=sampled(shop_db))
    voted = run("rf-vote", input=checked.stdout)
    assert voted.code == 0, voted.stderr
    assert [t["vote"]["n_valid"] for t in voted.records] == [2, 2]
    r = run("rf-eval", input=voted.stdout)
    assert r.code == 0 and "carry no 'exec'" not in r.stderr
    assert r.records[0]["executed"] == 4 and r.records[0]["method"] == "vote"
