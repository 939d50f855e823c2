"""A matcher plugin: Spider's official comparison, with every float rounded first.

``SELECT avg(price)`` and ``SELECT sum(price) / count(*)`` can differ in the last bits of a
float; the official matcher then calls them different. ``rounded`` rounds every float in
both results to ``DIGITS`` decimal places and compares what is left exactly as the official
evaluator does (the queries run as written, row order counts when the gold has ORDER BY).

    rf-exec --matcher rounded        # `correct` by this matcher; `verdicts` has every one
"""

from __future__ import annotations

from typing import Callable, Sequence

from rf_core.api import Matcher, hookimpl, official_match

DIGITS = 4


def rounded_rows(rows: Sequence[tuple]) -> list[tuple]:
    """``rows`` with every float rounded to ``DIGITS`` places (other values as they are)."""
    return [tuple(round(v, DIGITS) if isinstance(v, float) else v for v in row)
            for row in rows]


def rounded_match(gold: Sequence[tuple], pred: Sequence[tuple], ordered: bool) -> bool:
    """The official verdict on the two results with their floats rounded."""
    return official_match(rounded_rows(gold), rounded_rows(pred), ordered)


ROUNDED = Matcher(
    "rounded", rounded_match,
    description=f"Spider's official comparison (queries as written) with floats rounded to "
                f"{DIGITS} decimal places.")


@hookimpl
def register_matchers(register: Callable) -> None:
    """Register the ``rounded`` matcher."""
    register(ROUNDED)
