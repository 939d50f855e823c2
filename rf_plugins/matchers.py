"""The built-in matchers: official, official-keep-distinct and lenient (rf_core.exec.matching
documents each), registered as a third-party plugin registers its own."""

from __future__ import annotations

from typing import Callable

from rf_core.api import Matcher, hookimpl, lenient_match, official_match, official_rewrite

MATCHERS = (
    Matcher("official", official_match, official_rewrite,
            description="Spider's official evaluator with its default options (DISTINCT "
                        "removed)."),
    Matcher("official-keep-distinct", official_match,
            description="Spider's official evaluator with --keep_distinct (queries run as "
                        "written)."),
    Matcher("lenient", lenient_match,
            description="The set of rows, each row's values lowercased and sorted (the "
                        "reference project's comparison)."),
)


@hookimpl
def register_matchers(register: Callable) -> None:
    """Register the three built-in matchers, in the order of every candidate's verdicts."""
    for matcher in MATCHERS:
        register(matcher)
