"""When a candidate's result counts as the gold result ("correct"): the matchers.

Every matcher is a ``Matcher``: how it rewrites the gold and the candidate SQL before they run
(most run them as written), whether the gold asks for row order, and how it compares rows.
rf-exec records every registered matcher's verdict for every candidate in one pass; a query
whose rewritten text differs from the original runs once more, so only the matchers that
rewrite cost anything, and only on the queries they change.

``official``: exactly what Spider's official evaluator (test-suite-sql-eval, ``evaluation.py
--etype exec``) does with its default options, which is what published Spider EX numbers use.
Before running them it rewrites the queries:
- the candidate only: every ``value`` becomes ``1`` (a plain, case-sensitive substring
  replacement, meant for models that print a placeholder instead of a value; it also changes
  names such as ``market_value``, as the official one does);
- both: ``> =``, ``< =`` and ``! =`` lose their inner space (also inside literals, as there);
- both: every token that is the word DISTINCT, in any case, is removed, wherever it stands
  (``SELECT DISTINCT``, ``COUNT(DISTINCT x)``, subqueries), and only the first statement is
  kept (the official code re-tokenises the query with sqlparse and joins its first
  statement's tokens back without the DISTINCT ones); strings, quoted names and comments are
  left alone; this module's scanner follows sqlparse's lexer rules (see ``remove_distinct``);
- both: ``YEAR(CURDATE())`` becomes ``2020``.
Row order counts when the rewritten gold text contains ``order by`` (that exact substring,
lowercased: ``ORDER  BY`` with two spaces does not count, a literal ``'order by'`` does).
Rows compare as in ``result_eq`` there: both empty match; otherwise row and column counts
must agree, each row's values sorted by ``str(v) + str(type(v))`` must agree (as lists when
ordered, as sets otherwise), and one column permutation must make the results equal, as
lists when ordered, as multisets of rows otherwise. Values compare by Python equality
(1 == 1.0, 1 != '1', 'ABC' != 'abc').

``official-keep-distinct``: the official evaluator with ``--keep_distinct``: the same
comparison on the queries as written (no rewriting at all).

``lenient``: the reference project's comparison: the set of rows, each row's values turned
into lowercased strings and sorted. It ignores duplicates, row order, column order and case.

Matchers are plugins' to add: the ``register_matchers(register)`` hook registers a ``Matcher``
(or an object with its attributes, or a plain function ``(gold_rows, pred_rows, ordered) ->
bool``, which then runs the queries as written); these three are registered by the built-in
plugin ``rf_plugins.matchers``, as a third party would register its own.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from typing import Callable, Iterator, Sequence

Rows = Sequence[tuple]


# --------------------------------------------------------------------------------------
# The official evaluator's query rewriting
# --------------------------------------------------------------------------------------

# One token of sqlparse's lexer that can hold the letters "distinct" without being the word
# DISTINCT: comments (``--`` or ``# `` to the end of the line, ``/* */``), single-quoted
# strings (a backslash-quote does not end one there), double-quoted names, [bracketed]
# names, placeholders and @names. Anything else is a word (``\w[$#\w]*``) or one other
# character. A string or comment left open matches nothing here, so the text after it is
# scanned as SQL, as sqlparse does.
_OPAQUE = (
    r"(?:--|# ).*?(?:\r\n|\r|\n|$)"
    r"|/\*[\s\S]*?\*/"
    r"|'(?:''|\\'|[^'])*'"
    r'|"(?:""|\\"|[^"])*"'
    r"|`(?:``|[^`])*`"
    r"|(?<![\w\])])\[[^\]\[]+\]"
    r"|::"
    r"|(?<!\w)[$:?]\w+"
    r"|\\\w+"
    r"|(?:@|##|#)[A-ZÀ-Ü]\w+")
# One scan: at each position the first alternative that matches wins, as in sqlparse's lexer.
_TOKEN = re.compile(rf"(?P<opaque>{_OPAQUE})|(?P<word>\w[$#\w]*)|(?P<char>[\s\S])",
                    re.IGNORECASE)


def _tokens(sql: str) -> Iterator[tuple[str, str]]:
    """(kind, text) pieces that join back to ``sql``: kind is opaque, word or char."""
    for m in _TOKEN.finditer(sql):
        yield m.lastgroup or "char", m.group()  # every alternative is a named group


def remove_distinct(sql: str) -> str:
    """The official default's DISTINCT removal: drop every DISTINCT token and keep the first
    statement only (up to and including the first ``;`` outside parentheses, plus the
    whitespace and line comments right after it), as its sqlparse round trip does.

    Differences from sqlparse, on inputs no Spider query has: a backtick-quoted name is one
    token here (sqlparse 0.4 reads ``\\`distinct\\``` as two backticks around the word), and
    only parentheses and ``END`` move the statement-splitting level (sqlparse also counts
    BEGIN/DECLARE/IF blocks inside CREATE statements).
    """
    out: list[str] = []
    level = 0
    ended = False
    for kind, text in _tokens(sql):
        if ended:
            if text.isspace() or (kind == "opaque" and text.startswith(("--", "# "))):
                out.append(text)
                continue
            break
        if kind == "word":
            low = text.lower()
            if low == "distinct":
                continue
            if low == "end":
                level -= 1
        elif kind == "char":
            if text == "(":
                level += 1
            elif text == ")":
                level -= 1
            elif text == ";" and level <= 0:
                ended = True
        out.append(text)
    return "".join(out)


def query_key(sql: str) -> str:
    """A key equal for texts that are the same query to SQLite: whitespace and comments
    dropped, unquoted words lowercased (keywords and names are case-insensitive there);
    strings and quoted names kept as written. It names cached runs, never runs itself."""
    parts = []
    for kind, text in _tokens(sql):
        if text.isspace():
            continue
        if kind == "opaque" and text.startswith(("--", "# ", "/*")):
            continue
        parts.append(text.lower() if kind == "word" else text)
    return " ".join(parts)


_CUR_YEAR = re.compile(r"YEAR\s*\(\s*CURDATE\s*\(\s*\)\s*\)\s*", re.IGNORECASE)


def official_rewrite(sql: str, role: str) -> str:
    """The text the official default runs for a gold (``role="gold"``) or predicted query."""
    if role != "gold":
        sql = sql.replace("value", "1")
    sql = sql.replace("> =", ">=").replace("< =", "<=").replace("! =", "!=")
    if ";" in sql or "distinct" in sql.lower():  # else the scan would change nothing
        sql = remove_distinct(sql)
    return _CUR_YEAR.sub("2020", sql)


def gold_is_ordered(gold_sql: str) -> bool:
    """The official evaluator's test: the gold text contains ``order by`` (one space)."""
    return "order by" in (gold_sql or "").lower()


# --------------------------------------------------------------------------------------
# Comparing results
# --------------------------------------------------------------------------------------

def _permutations(candidates: list[list[int]]) -> Iterator[list[int]]:
    """Assignments gold column j -> distinct candidate column, from each j's candidates."""
    n = len(candidates)
    chosen: list[int] = []
    used: set[int] = set()

    def walk(j: int):
        if j == n:
            yield list(chosen)
            return
        for i in candidates[j]:
            if i not in used:
                used.add(i)
                chosen.append(i)
                yield from walk(j + 1)
                chosen.pop()
                used.discard(i)

    yield from walk(0)


def _unordered_rows(rows: Rows) -> list[tuple]:
    return [tuple(sorted(row, key=lambda v: str(v) + str(type(v)))) for row in rows]


def _passes_quick_check(gold: Rows, pred: Rows, ordered: bool) -> bool:
    """The official evaluator's first test: each row's values, sorted by their text and
    type name, agree (as lists when ordered, as sets otherwise). Besides being a shortcut
    there, it rejects some results a column permutation would make equal: an int in one
    and an equal float in the other can sort differently within a row."""
    a, b = _unordered_rows(gold), _unordered_rows(pred)
    return a == b if ordered else set(a) == set(b)


def official_match(gold: Rows, pred: Rows, ordered: bool) -> bool:
    """Spider's official evaluator's verdict on two results (``result_eq`` there): both empty
    match; else equal row and column counts, the quick check, and one column permutation
    making the rows equal (as lists when ``ordered``, as multisets otherwise)."""
    if not gold and not pred:
        return True
    if len(gold) != len(pred):
        return False
    ncols = len(gold[0])
    if len(pred[0]) != ncols:
        return False
    # Searching for a permutation first settles most candidates without sorting every row;
    # the official quick check then runs only on results that would otherwise match.
    if not _some_permutation_matches(gold, pred, ncols, ordered):
        return False
    # Without floats, values that compare equal have the same text and type, so rows that
    # a permutation made equal sort alike and the quick check cannot fail.
    if not (_has_float(gold) or _has_float(pred)):
        return True
    return _passes_quick_check(gold, pred, ordered)


def _has_float(rows: Rows) -> bool:
    return any(type(v) is float for row in rows for v in row)


def _some_permutation_matches(gold: Rows, pred: Rows, ncols: int, ordered: bool) -> bool:
    gold_list = [tuple(r) for r in gold]
    pred_list = [tuple(r) for r in pred]
    if pred_list == gold_list:
        return True
    gold_multiset = None if ordered else Counter(gold_list)
    if not ordered and Counter(pred_list) == gold_multiset:
        return True
    # A column can only map onto a column holding the same multiset of values.
    gold_cols = [Counter(row[j] for row in gold) for j in range(ncols)]
    pred_cols = [Counter(row[i] for row in pred) for i in range(ncols)]
    candidates = [[i for i in range(ncols) if pred_cols[i] == gold_cols[j]] for j in range(ncols)]
    if any(not c for c in candidates):
        return False
    for perm in _permutations(candidates):
        permuted = [tuple(row[i] for i in perm) for row in pred]
        if ordered:
            if permuted == gold_list:
                return True
        elif Counter(permuted) == gold_multiset:
            return True
    return False


def _lenient_rows(rows: Rows) -> set:
    return {tuple(sorted(str(v).lower() for v in row)) for row in rows}


def lenient_match(gold: Rows, pred: Rows, ordered: bool = False) -> bool:
    """The reference project's verdict: equal sets of rows, each row's values lowercased
    strings, sorted (duplicates, row order, column order and case ignored)."""
    # Equal rows without floats have equal texts (a float 1.0 reads '1.0', an int 1 '1').
    if len(gold) == len(pred) and list(map(tuple, gold)) == list(map(tuple, pred)) \
            and not (_has_float(gold) or _has_float(pred)):
        return True
    return _lenient_rows(gold) == _lenient_rows(pred)


# --------------------------------------------------------------------------------------
# The registry
# --------------------------------------------------------------------------------------

def _as_written(sql: str, role: str) -> str:
    return sql


@dataclass(frozen=True)
class Matcher:
    """A matcher: ``rewrite(sql, role)`` gives the text to run (role "gold" or "candidate"),
    ``ordered(gold_text)`` whether row order counts, ``match(gold, pred, ordered)`` the
    verdict on two results.

    ``name``: what ``--matcher`` and ``verified_by.matcher`` call it; ``match(gold_rows,
    pred_rows, ordered) -> bool``: the verdict on two fetched results (lists of row tuples);
    ``rewrite(sql, role) -> str``: the SQL actually run (default: as written; ``official``
    drops DISTINCT as Spider's evaluator does); ``ordered(gold_sql) -> bool``: whether row
    order counts (default: the gold query has an outer ORDER BY); ``description``: one line
    for rf-plugins and rf-exec's --help.

    Plugins register matchers with the ``register_matchers(register)`` hook: a ``Matcher``,
    any object with the same attributes (``name`` and ``match`` required, the others
    optional), or a plain function ``(gold_rows, pred_rows, ordered) -> bool`` with
    ``register(fn, name=...)``, which runs the queries as written. ``get_matcher`` turns each
    into a ``Matcher``.
    """

    name: str
    match: Callable[[Rows, Rows, bool], bool]
    rewrite: Callable[[str, str], str] = _as_written
    ordered: Callable[[str], bool] = gold_is_ordered
    description: str = ""


# rf-exec's default for ``correct`` (what rf-filter trains on), and the matcher reports lead with.
DEFAULT_MATCHER = "official"


def as_matcher(entry: object, name: str) -> Matcher:
    """The ``Matcher`` for a registered object ``entry`` called ``name``: a ``Matcher`` as it
    is; an object with ``match`` (and perhaps ``rewrite``, ``ordered``, ``description``), or
    a plain comparison function, wrapped with the defaults for what it lacks."""
    if isinstance(entry, Matcher):
        return entry
    match = getattr(entry, "match", None)
    if match is None:
        if not callable(entry):
            raise TypeError(f"matcher {name!r} has no match(gold_rows, pred_rows, ordered)")
        return Matcher(name, entry)
    return Matcher(name, match, getattr(entry, "rewrite", _as_written),
                   getattr(entry, "ordered", gold_is_ordered),
                   str(getattr(entry, "description", "") or ""))


def registered_matchers() -> dict[str, Matcher]:
    """Every registered matcher by name (the plugin manager's ``matchers`` registry): the
    built-ins first, in the order their plugin registers them, then the others by name.
    This is the order of every candidate's ``verdicts``, however plugins were loaded."""
    from rf_core.plugins import manager

    found = manager.registry("matchers")
    builtin = [name for name, (plugin, _) in found.items() if plugin in manager.DEFAULT_PLUGINS]
    names = builtin + sorted(set(found) - set(builtin))
    return {name: as_matcher(found[name][1], name) for name in names}


def get_matcher(name: str) -> Matcher:
    """The registered matcher ``name``; an unknown name is a usage error (UnknownPlugin)
    listing the installed ones."""
    from rf_core.plugins import manager

    return as_matcher(manager.get("matchers", name), name)
