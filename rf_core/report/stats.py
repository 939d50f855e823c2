"""Uncertainty of execution accuracy: intervals for one evaluation, tests for two.

EX is a share of tasks, so one evaluation gets a Wilson score interval. Two evaluations of
the same tasks are paired: each task is won (right now, wrong in the baseline), lost, or
tied, and only won and lost tasks carry information. The difference in EX gets a paired
bootstrap interval (tasks resampled with replacement, both evaluations together) and an
exact McNemar test (a two-sided binomial test on the won and lost counts).

The bootstrap draws the won/lost/tied counts of each resample from their multinomial
distribution directly (two binomial draws by inverse CDF), which is the same distribution
as drawing n task indexes, at a cost independent of n. Seeded: the same inputs give the
same interval.
"""

from __future__ import annotations

import bisect
import math
import random
from typing import Mapping

Z95 = 1.959963984540054


def percent(part: float, whole: float) -> float | None:
    """100 * part / whole, rounded to 2 places; None when whole is 0."""
    return round(100.0 * part / whole, 2) if whole else None


def wilson_interval(correct: int, n: int, z: float = Z95) -> tuple[float, float] | None:
    """95% Wilson score interval of correct / n, in percent."""
    if n <= 0:
        return None
    p = correct / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (round(100 * max(0.0, centre - half), 2), round(100 * min(1.0, centre + half), 2))


def mcnemar_exact(won: int, lost: int) -> float:
    """Two-sided exact McNemar p-value: a binomial(won + lost, 1/2) test."""
    m = won + lost
    if m == 0:
        return 1.0
    tail = sum(math.comb(m, k) for k in range(min(won, lost) + 1))
    return min(1.0, 2 * tail / 2 ** m)


def _binomial_cdf(n: int, p: float) -> list[float]:
    if p <= 0:
        return [1.0] * (n + 1)
    if p >= 1:
        return [0.0] * n + [1.0]
    lp, lq = math.log(p), math.log1p(-p)
    lg = math.lgamma
    cdf, total = [], 0.0
    for k in range(n + 1):
        total += math.exp(lg(n + 1) - lg(k + 1) - lg(n - k + 1) + k * lp + (n - k) * lq)
        cdf.append(total)
    return cdf


def paired_bootstrap(won: int, lost: int, n: int, *, resamples: int = 10000, seed: int = 0,
                     level: float = 0.95) -> tuple[float, float] | None:
    """Interval of the EX difference (percentage points) over n paired tasks, ``won`` of
    them right only in the first evaluation and ``lost`` right only in the second."""
    if n <= 0:
        return None
    rng = random.Random(seed)
    p_won = won / n
    cdf_won = _binomial_cdf(n, p_won)
    p_lost_rest = lost / (n - won) if n > won else 0.0
    tables: dict[int, list[float]] = {}
    diffs = []
    for _ in range(resamples):
        w = min(n, bisect.bisect_left(cdf_won, rng.random() * cdf_won[-1]))
        rest = n - w
        if rest not in tables:
            tables[rest] = _binomial_cdf(rest, p_lost_rest)
        cdf = tables[rest]
        l_ = min(rest, bisect.bisect_left(cdf, rng.random() * cdf[-1]))
        diffs.append((w - l_) / n)
    diffs.sort()
    lo_i = int(math.floor((1 - level) / 2 * resamples))
    hi_i = min(resamples - 1, int(math.ceil((1 + level) / 2 * resamples)) - 1)
    return (round(100 * diffs[lo_i], 2), round(100 * diffs[hi_i], 2))


def compare(current: Mapping[str, bool], baseline: Mapping[str, bool]) -> dict:
    """The paired comparison of two evaluations' per-task outcomes (task id -> correct)."""
    common = [t for t in current if t in baseline]
    n = len(common)
    won = sum(1 for t in common if current[t] and not baseline[t])
    lost = sum(1 for t in common if baseline[t] and not current[t])
    ex_now = sum(1 for t in common if current[t])
    ex_base = sum(1 for t in common if baseline[t])


    return {
        "tasks": n,
        "only_here": len(current) - n,
        "only_baseline": sum(1 for t in baseline if t not in current),
        "ex": percent(ex_now, n),
        "ex_baseline": percent(ex_base, n),
        "diff": round(100.0 * (ex_now - ex_base) / n, 2) if n else None,
        "diff_ci95": list(paired_bootstrap(won, lost, n)) if n else None,
        "mcnemar_p": round(mcnemar_exact(won, lost), 6),
        "won": won,
        "lost": lost,
        "tied": n - won - lost,
    }
