"""When a candidate's result counts as the gold result ("correct").

``official``: Spider's execution semantics (test-suite-sql-eval). Both empty match; otherwise
the row counts and column counts must agree, and some single permutation of the candidate's
columns must make the results equal: as lists when the gold query has ORDER BY, else as
multisets of rows. Values compare by Python equality (1 == 1.0, 1 != '1', 'ABC' != 'abc').

``lenient``: the reference project's comparison: the set of rows, each row's values turned
into lowercased strings and sorted. It ignores duplicates, row order, column order and case.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Callable, Iterator, Sequence

Rows = Sequence[tuple]

_ORDER_BY = re.compile(r"\border\s+by\b", re.IGNORECASE)


def gold_is_ordered(gold_sql: str) -> bool:
    """The official evaluator checks the gold text for ORDER BY, so row order then counts."""
    return bool(_ORDER_BY.search(gold_sql or ""))


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


def official_match(gold: Rows, pred: Rows, ordered: bool) -> bool:
    if not gold and not pred:
        return True
    if len(gold) != len(pred):
        return False
    ncols = len(gold[0])
    if len(pred[0]) != ncols:
        return False
    # The identity permutation settles most candidates without building column statistics.
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
    return _lenient_rows(gold) == _lenient_rows(pred)


MATCHERS: dict[str, Callable[[Rows, Rows, bool], bool]] = {
    "official": official_match,
    "lenient": lenient_match,
}
