"""Preference pairs from verified tasks (rf-filter --pairs): a correct answer (chosen) and a
wrong one (rejected) to the same prompt, for a preference trainer such as rf-train's dpo.

Only the verifier's ``correct: true`` and ``correct: false`` count: a candidate it could not
verify (``correct: null``) is neither chosen nor rejected.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from rf_core.model.prompts import task_messages
from rf_core.records.io import new_record
from rf_core.train.examples import canonical_sql, format_completion, n_correct

# why a task gave no pair, in the order the summary line lists them
NO_PAIR_REASONS = ("no verified candidate", "only right", "only wrong", "gold unusable",
                   "same SQL")


@dataclass
class TaskPairs:
    """One task's pairs, or why it has none (``reason``), and how many correct/wrong
    combinations were dropped because both sides are the same canonical SQL."""

    pairs: list[dict]
    reason: str | None = None
    same_sql: int = 0


@dataclass
class PairCounts:
    """What rf-filter --pairs did over its input: the counts of its summary line."""

    tasks: int = 0
    with_pairs: int = 0
    pairs: dict[str, int] = field(default_factory=lambda: {"self": 0, "gold": 0})
    without: dict[str, int] = field(default_factory=dict)
    same_sql: int = 0

    def add(self, result: TaskPairs) -> None:
        """Count one task's outcome."""
        self.tasks += 1
        self.same_sql += result.same_sql
        if result.pairs:
            self.with_pairs += 1
            for pair in result.pairs:
                self.pairs[pair["source"]] += 1
        elif result.reason:
            self.without[result.reason] = self.without.get(result.reason, 0) + 1

    def summary(self) -> str:
        """The one stderr line: pairs written, tasks without a pair by reason, drops."""
        total = sum(self.pairs.values())
        reasons = ", ".join(f"{self.without[r]} {r}" for r in NO_PAIR_REASONS
                            if self.without.get(r))
        return (f"{total} pair(s) ({self.pairs['self']} self, {self.pairs['gold']} gold) "
                f"from {self.with_pairs} of {self.tasks} task(s); tasks without a pair: "
                f"{reasons or 'none'}; {self.same_sql} same-SQL pair(s) dropped")


def _logprob(cand: dict) -> float | None:
    """The candidate's logprob as the sampler wrote it, where it is a finite number."""
    value = cand.get("logprob")
    if isinstance(value, bool):
        return None
    if isinstance(value, int) or (isinstance(value, float) and math.isfinite(value)):
        return value
    return None


def _distinct(cands: list[dict]) -> list[tuple[str, str, dict]]:
    """(canonical SQL, SQL, first candidate) per distinct SQL, in the order given; candidates
    without SQL are left out (they have no completion to train on)."""
    seen: set[str] = set()
    out = []
    for cand in cands:
        sql = cand.get("sql")
        if not isinstance(sql, str) or not sql.strip():
            continue
        key = canonical_sql(sql)
        if key not in seen:
            seen.add(key)
            out.append((key, sql, cand))
    return out


def _by_logprob(cands: list[dict]) -> list[dict]:
    """Highest logprob first, those without one last; candidate order among equals."""
    return sorted(cands, key=lambda c: (_logprob(c) is None, -(_logprob(c) or 0.0)))


def _balanced(n_chosen: int, n_rejected: int, allowed: set[tuple[int, int]],
              limit: int | None) -> list[tuple[int, int]]:
    """Up to ``limit`` of the ``allowed`` (chosen, rejected) index pairs, each step taking the
    pair whose two answers have been used least so far (then the earlier rejected answer,
    then the earlier chosen one): distinct SQL on both sides before any answer repeats."""
    if limit is None or limit >= len(allowed):
        limit = len(allowed)
    used_c, used_r = [0] * n_chosen, [0] * n_rejected
    left = set(allowed)
    picked: list[tuple[int, int]] = []
    while left and len(picked) < limit:
        a, b = min(left, key=lambda p: (used_c[p[0]] + used_r[p[1]], p[1], p[0]))
        left.discard((a, b))
        used_c[a] += 1
        used_r[b] += 1
        picked.append((a, b))
    return picked


def _pair(task: dict, chosen: str, rejected: tuple[str, str, dict], source: str,
          weight: int) -> dict:
    rec = new_record("pair", task_id=task.get("id"), messages=task_messages(task),
                     chosen=format_completion(chosen), rejected=format_completion(rejected[1]),
                     source=source, weight=weight)
    if isinstance(task.get("db_id"), str):
        rec["db_id"] = task["db_id"]
    logprob = _logprob(rejected[2])
    if logprob is not None:
        rec["rejected_logprob"] = logprob
    return rec


def _gold_usable(task: dict) -> bool:
    gold = task.get("gold_exec")
    sql = task.get("gold_sql")
    return (isinstance(sql, str) and bool(sql.strip())
            and not (isinstance(gold, dict) and not gold.get("ok")))


def task_pairs(task: dict, *, max_pairs: int | None = None, rejected_by: str = "order",
               gold_chosen: bool = False, resample: str | None = None) -> TaskPairs:
    """A task's preference pairs: distinct correct answers against distinct wrong ones.

    ``rejected_by="logprob"`` offers the wrong answers the model found most likely first
    (candidates without a logprob last); ``"order"`` keeps candidate order. At most
    ``max_pairs`` pairs, chosen so that distinct SQL appears on both sides before any answer
    repeats. A combination whose two sides are the same canonical SQL is dropped and counted.
    With ``gold_chosen``, a task with no correct and some wrong candidates pairs its gold SQL
    (source "gold") against them. ``resample`` as for examples (rf_core.train.examples
    .self_examples): "difficulty" repeats each pair k - n_correct times (at least once),
    "weight" writes it once with that weight.
    """
    cands = task.get("candidates") or []
    right = _distinct([c for c in cands if c.get("correct") is True])
    wrong_cands = [c for c in cands if c.get("correct") is False]
    wrong = _distinct(_by_logprob(wrong_cands) if rejected_by == "logprob" else wrong_cands)
    source = "self"
    if not right and not wrong:
        return TaskPairs([], "no verified candidate")
    if not wrong:
        return TaskPairs([], "only right")
    if not right:
        if not gold_chosen:
            return TaskPairs([], "only wrong")
        if not _gold_usable(task):
            return TaskPairs([], "gold unusable")
        right = [(canonical_sql(task["gold_sql"]), task["gold_sql"], {})]
        source = "gold"
    allowed = {(a, b) for a in range(len(right)) for b in range(len(wrong))
               if right[a][0] != wrong[b][0]}
    same = len(right) * len(wrong) - len(allowed)
    picked = _balanced(len(right), len(wrong), allowed, max_pairs)
    if not picked:
        return TaskPairs([], "same SQL", same)
    factor = max(1, len(cands) - n_correct(task))
    weight = factor if resample == "weight" else 1
    repeats = factor if resample == "difficulty" else 1
    pairs = [_pair(task, right[a][1], wrong[b], source, weight)
             for a, b in picked for _ in range(repeats)]
    return TaskPairs(pairs, None, same)
