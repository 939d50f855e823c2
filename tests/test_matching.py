"""Matcher verdicts on the cases that separate Spider's official semantics from lenient ones."""

import pytest

from rf_core.matching import gold_is_ordered, lenient_match, official_match

# (name, gold rows, candidate rows, gold has ORDER BY, official verdict, lenient verdict)
CASES = [
    ("identical", [(1, "a"), (2, "b")], [(1, "a"), (2, "b")], False, True, True),
    ("duplicate rows vs distinct", [(1,), (1,), (2,)], [(1,), (2,)], False, False, True),
    ("duplicate counts differ", [(1,), (1,), (2,)], [(1,), (2,), (2,)], False, False, True),
    ("reversed rows, gold unordered", [(1,), (2,), (3,)], [(3,), (2,), (1,)], False, True, True),
    ("reversed rows, gold ORDER BY", [(1,), (2,), (3,)], [(3,), (2,), (1,)], True, False, True),
    ("same order, gold ORDER BY", [(1,), (2,), (3,)], [(1,), (2,), (3,)], True, True, True),
    ("one column permutation", [(1, "a"), (2, "b")], [("a", 1), ("b", 2)], False, True, True),
    ("column permutation, ordered", [(1, "a"), (2, "b")], [("a", 1), ("b", 2)], True, True,
     True),
    ("per-row swaps", [(1, 2), (3, 4)], [(2, 1), (3, 4)], False, False, True),
    ("case differs", [("ABC",)], [("abc",)], False, False, True),
    ("int vs text", [(1,)], [("1",)], False, False, True),
    ("int vs float", [(1,)], [(1.0,)], False, True, False),
    ("both empty", [], [], False, True, True),
    ("both empty, different widths", [], [], True, True, True),
    ("one empty", [(1,)], [], False, False, False),
    ("different column counts", [(1, 2)], [(1, 2, 3)], False, False, False),
    ("extra column same values", [(1,)], [(1, 1)], False, False, False),
    ("NULLs equal", [(None, 1)], [(None, 1)], False, True, True),
    ("NULL vs 0", [(None,)], [(0,)], False, False, False),
    ("NULL vs 'None'", [(None,)], [("None",)], False, False, True),
    ("permuted columns with duplicates", [(1, 1), (2, 3)], [(1, 1), (3, 2)], False, True,
     True),
    ("float precision", [(0.1 + 0.2,)], [(0.3,)], False, False, False),
]


@pytest.mark.parametrize("name,gold,pred,ordered,official,lenient", CASES,
                         ids=[c[0] for c in CASES])
def test_official(name, gold, pred, ordered, official, lenient):
    assert official_match(gold, pred, ordered) is official


@pytest.mark.parametrize("name,gold,pred,ordered,official,lenient", CASES,
                         ids=[c[0] for c in CASES])
def test_lenient(name, gold, pred, ordered, official, lenient):
    assert lenient_match(gold, pred, ordered) is lenient


def test_order_by_detection_follows_the_official_text_check():
    assert gold_is_ordered("SELECT a FROM t ORDER BY a")
    assert gold_is_ordered("select a from t order\n  by a desc limit 1")
    assert not gold_is_ordered("SELECT a FROM t GROUP BY a")
    assert not gold_is_ordered("SELECT border FROM t")


def test_many_identical_columns_do_not_explode():
    gold = [tuple([None] * 9)] * 50
    assert official_match(gold, list(gold), False)
    assert not official_match(gold, [tuple([None] * 8 + [1])] * 50, False)
