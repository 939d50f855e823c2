"""Matcher verdicts on the cases that separate Spider's official semantics from lenient ones,
and the official command line's default rewriting (DISTINCT removed, and the rest)."""

import sqlite3

import pytest

from rf_core.api import hookimpl
from rf_core.errors import UnknownPlugin
from rf_core.exec.matching import (get_matcher, gold_is_ordered, lenient_match, official_match,
                                   official_rewrite, query_key, registered_matchers,
                                   remove_distinct)
from rf_core.testing import registered

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
    # The official evaluator tests `'order by' in gold.lower()`: one space, anywhere.
    assert gold_is_ordered("SELECT a FROM t ORDER BY a")
    assert gold_is_ordered("select a from t order by a desc limit 1")
    assert not gold_is_ordered("select a from t order\n  by a desc limit 1")
    assert not gold_is_ordered("SELECT a FROM t ORDER  BY a")
    assert gold_is_ordered("SELECT a FROM t WHERE b = 'x order by'")
    assert not gold_is_ordered("SELECT a FROM t GROUP BY a")
    assert not gold_is_ordered("SELECT border FROM t")


def test_many_identical_columns_do_not_explode():
    gold = [tuple([None] * 9)] * 50
    assert official_match(gold, list(gold), False)
    assert not official_match(gold, [tuple([None] * 8 + [1])] * 50, False)


def test_int_and_equal_float_that_sort_differently_within_a_row():
    # The official quick check sorts each row's values by str(v) + str(type(v)) first:
    # (1, '1.5') sorts as ['1.5', 1] but (1.0, '1.5') as [1.0, '1.5'], so it rejects.
    assert not official_match([(1, "1.5")], [(1.0, "1.5")], False)
    assert official_match([(1, "x")], [(1.0, "x")], False)


# The official default's rewriting, by the behaviour it documents.
REWRITES = [
    ("SELECT DISTINCT name FROM t", "SELECT  name FROM t"),
    ("select distinct(name) from t", "select (name) from t"),
    ("SELECT count(DISTINCT x) FROM t", "SELECT count( x) FROM t"),
    ("SELECT a FROM t WHERE b IN (SELECT DISTINCT b FROM u)",
     "SELECT a FROM t WHERE b IN (SELECT  b FROM u)"),
    ("SELECT 'distinct', \"distinct\", [distinct], distinct_id FROM t",
     "SELECT 'distinct', \"distinct\", [distinct], distinct_id FROM t"),
    ("SELECT a FROM t -- distinct\n", "SELECT a FROM t -- distinct\n"),
    ("SELECT a /* distinct */ FROM t", "SELECT a /* distinct */ FROM t"),
    ("SELECT 1; SELECT 2", "SELECT 1; "),
    ("SELECT (SELECT 1); DROP TABLE t", "SELECT (SELECT 1); "),
    ("SELECT CASE WHEN a THEN 1 END FROM t; SELECT 2", "SELECT CASE WHEN a THEN 1 END FROM t; "),
]


@pytest.mark.parametrize("sql,expected", REWRITES)
def test_remove_distinct_as_the_official_default_does(sql, expected):
    assert remove_distinct(sql) == expected


def test_official_rewrite_of_gold_and_candidate():
    assert official_rewrite("SELECT a FROM t WHERE x > = 1 AND y < = 2 AND z ! = 3", "gold") \
        == "SELECT a FROM t WHERE x >= 1 AND y <= 2 AND z != 3"
    # only the prediction has every "value" replaced by 1, as evaluation.py does
    assert official_rewrite("SELECT market_value FROM t", "gold") == "SELECT market_value FROM t"
    assert official_rewrite("SELECT market_value FROM t", "candidate") == "SELECT market_1 FROM t"
    assert official_rewrite("SELECT YEAR(CURDATE()) - age FROM t", "gold") == \
        "SELECT 2020- age FROM t"
    assert official_rewrite("SELECT a FROM t", "candidate") == "SELECT a FROM t"


def test_query_key_ignores_only_what_sqlite_ignores():
    assert query_key("SELECT  a\nFROM t") == query_key("select A from T -- c")
    assert query_key("SELECT 'A' FROM t") != query_key("SELECT 'a' FROM t")
    assert query_key('SELECT "A" FROM t') != query_key('SELECT "a" FROM t')


@pytest.fixture
def people(tmp_path):
    path = tmp_path / "p.sqlite"
    conn = sqlite3.connect(path)
    conn.executescript("""
        CREATE TABLE person (id INTEGER PRIMARY KEY, name TEXT, city TEXT, age INT);
        INSERT INTO person VALUES (1, 'Ann', 'Oslo', 30), (2, 'Bob', 'Oslo', 40),
                                  (3, 'Cid', 'Rome', 30), (4, 'Dan', 'Oslo', 50);
    """)
    conn.commit()
    conn.close()
    return str(path)


def _verdict(db, name, gold, pred):
    m = get_matcher(name)
    conn = sqlite3.connect(db)
    g_text, p_text = m.rewrite(gold, "gold"), m.rewrite(pred, "candidate")
    g = conn.execute(g_text).fetchall()
    p = conn.execute(p_text).fetchall()
    return m.match(g, p, m.ordered(g_text))


# (gold, prediction, official default, official --keep_distinct)
DEFAULT_CASES = [
    # a gold SELECT DISTINCT against a prediction that returns duplicates: right by default
    ("SELECT DISTINCT city FROM person", "SELECT city FROM person", True, False),
    # DISTINCT inside COUNT is removed too: COUNT(DISTINCT city) = 2 becomes COUNT(city) = 4
    ("SELECT count(DISTINCT city) FROM person", "SELECT count(*) FROM person", True, False),
    ("SELECT count(DISTINCT city) FROM person",
     "SELECT count(*) FROM (SELECT city FROM person GROUP BY city)", False, True),
    # a gold using DISTINCT against a prediction using GROUP BY: wrong by default
    ("SELECT DISTINCT city FROM person", "SELECT city FROM person GROUP BY city", False, True),
    # ... or INTERSECT, which deduplicates
    ("SELECT DISTINCT city FROM person WHERE age > 20",
     "SELECT city FROM person WHERE age > 20 INTERSECT SELECT city FROM person", False, True),
    # in a subquery
    ("SELECT count(*) FROM (SELECT DISTINCT age FROM person)",
     "SELECT count(*) FROM person", True, False),
    # ORDER BY in the gold makes row order count; in the prediction only it does not
    ("SELECT name FROM person ORDER BY age DESC, id", "SELECT name FROM person", False, False),
    ("SELECT name FROM person", "SELECT name FROM person ORDER BY age DESC", True, True),
    # empty against empty matches, whatever the columns
    ("SELECT name FROM person WHERE age > 99", "SELECT id, age FROM person WHERE 0", True, True),
    # column permutations
    ("SELECT name, age FROM person", "SELECT age, name FROM person", True, True),
    ("SELECT name, age FROM person ORDER BY id", "SELECT age, name FROM person ORDER BY id",
     True, True),
]


@pytest.mark.parametrize("gold,pred,default,keep", DEFAULT_CASES)
def test_official_default_against_keep_distinct(people, gold, pred, default, keep):
    assert _verdict(people, "official", gold, pred) is default
    assert _verdict(people, "official-keep-distinct", gold, pred) is keep


class AlwaysPlugin:
    """Registers a plain comparison function as a matcher, by name."""

    @hookimpl
    def register_matchers(self, register):
        register(lambda gold, pred, ordered: True, name="always")


def test_registry_names_and_plain_functions():
    assert list(registered_matchers())[:3] == ["official", "official-keep-distinct", "lenient"]
    with registered(AlwaysPlugin()):
        m = get_matcher("always")
        assert m.name == "always" and m.rewrite("SELECT DISTINCT a", "gold") == "SELECT DISTINCT a"
        assert m.match([(1,)], [(2,)], False)
        assert "always" in registered_matchers()
    with pytest.raises(UnknownPlugin, match="unknown matcher 'always'; installed: lenient"):
        get_matcher("always")
