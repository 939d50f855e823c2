"""Training examples from verified tasks: self-generated (rf-filter) and gold (rf-inject)."""

from __future__ import annotations

import logging

from rf_core.model.prompts import (format_completion, revision_messages, revision_turns,
                                   task_messages)
from rf_core.records.io import new_record


def canonical_sql(sql: str) -> str:
    """sqlglot's normalised SQLite text, or whitespace-normalised text where it cannot parse."""
    import sqlglot  # imported here: commands that never canonicalise start faster
    from sqlglot.errors import SqlglotError

    logging.getLogger("sqlglot").setLevel(logging.ERROR)
    try:
        tree = sqlglot.parse_one(sql, read="sqlite")
        if tree is not None:
            return tree.sql(dialect="sqlite", normalize=True, comments=False)
    except (SqlglotError, RecursionError, ValueError, TypeError, AttributeError):
        pass
    return " ".join(sql.split())


def n_correct(task: dict) -> int:
    """How many of the task's candidates are correct."""
    return sum(1 for c in task.get("candidates") or [] if c.get("correct") is True)


def _example(task: dict, sql: str, source: str, weight: int = 1,
             messages: list[dict] | None = None) -> dict:
    rec = new_record("example", task_id=task.get("id"),
                     messages=messages if messages is not None else task_messages(task),
                     completion=format_completion(sql), source=source, weight=weight)
    if task.get("db_id") is not None:
        rec["db_id"] = task["db_id"]  # so rf-train can say which databases lost examples
    return rec


def self_examples(task: dict, *, resample: str | None = None,
                  max_per_task: int | None = None) -> list[dict]:
    """One example per distinct correct candidate (by canonical SQL), in candidate order.

    With ``resample="difficulty"`` each is repeated k - n_correct times (at least once), so
    questions the model rarely gets right weigh more, as in the reference project. With
    ``resample="weight"`` each appears once with ``weight`` k - n_correct instead: the trainer
    weighs its loss by that, so an epoch sees the same expected gradient with fewer tokens.
    """
    seen: set[str] = set()
    chosen: list[str] = []
    for cand in task.get("candidates") or []:
        sql = cand.get("sql")
        if cand.get("correct") is not True or not isinstance(sql, str) or not sql.strip():
            continue
        key = canonical_sql(sql)
        if key in seen:
            continue
        seen.add(key)
        chosen.append(sql)
        if max_per_task is not None and len(chosen) >= max_per_task:
            break
    factor = max(1, len(task.get("candidates") or []) - n_correct(task))
    if resample == "weight":
        return [_example(task, sql, "self", weight=factor) for sql in chosen]
    repeats = factor if resample == "difficulty" else 1
    return [_example(task, sql, "self") for sql in chosen for _ in range(repeats)]


def gold_examples(task: dict, copies: int | str = 1) -> list[dict]:
    """Gold-SQL examples for a task none of whose candidates is correct (0/k, also 0/0).

    ``copies="difficulty"`` gives k copies (at least one).
    """
    if n_correct(task) > 0 or not task.get("gold_sql"):
        return []
    if copies == "difficulty":
        copies = max(1, len(task.get("candidates") or []))
    return [_example(task, task["gold_sql"], "gold") for _ in range(int(copies))]


def conversation_examples(task: dict, max_per_task: int | None = None) -> list[dict]:
    """For each correct candidate that rf-revise wrote (distinct by canonical SQL), one
    multi-turn example: its whole conversation (the prompt, each earlier reply and the
    feedback after it) with the final SQL as the completion. The trainer's loss falls on the
    completion only: the earlier replies were wrong queries, kept as context, not as
    answers to learn."""
    seen: set[str] = set()
    out = []
    for cand in task.get("candidates") or []:
        sql = cand.get("sql")
        if (cand.get("correct") is not True or not revision_turns(cand)
                or not isinstance(sql, str) or not sql.strip()):
            continue
        key = canonical_sql(sql)
        if key in seen:
            continue
        seen.add(key)
        out.append(_example(task, sql, "self", messages=revision_messages(task, cand)))
        if max_per_task is not None and len(out) >= max_per_task:
            break
    return out


def rescued(task: dict) -> bool:
    """Whether revision rescued the task: none of its candidates was correct as sampled (each
    one's first turn), and one is correct now, so it needs no gold SQL."""
    cands = task.get("candidates") or []
    firsts = [(revision_turns(c) or [c])[0] for c in cands]
    return (any(c.get("correct") is True for c in cands)
            and not any(f.get("correct") is True for f in firsts))
