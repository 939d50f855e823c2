"""Helpers for dataset plugins: choosing a fixed sample of tasks, building task records."""

from __future__ import annotations

import random
from typing import Sequence, TypeVar

from rf_core.records.io import new_record

T = TypeVar("T")


def pick(items: Sequence[T], limit: int | None, seed: int | None) -> list[T]:
    """The first ``limit`` items, or with ``seed`` a fixed random sample of ``limit`` items
    kept in their original order (so the same seed gives the same tasks on every machine)."""
    items = list(items)
    if limit is None or limit >= len(items):
        return items
    if seed is None:
        return items[:limit]
    chosen = sorted(random.Random(seed).sample(range(len(items)), limit))
    return [items[i] for i in chosen]


def make_task(*, id: str, dataset: str, split: str, db_id: str, db_path: str, question: str,
              gold_sql: str | None, hardness: str | None, schema: str) -> dict:
    return new_record("task", id=id, dataset=dataset, split=split, db_id=db_id,
                      db_path=db_path, question=question, gold_sql=gold_sql,
                      hardness=hardness, schema=schema)
