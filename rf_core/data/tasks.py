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


AUTO = "auto"


def make_task(*, id: str, dataset: str, split: str, db_id: str, db_path: str, question: str,
              gold_sql: str | None = None, hardness: str | None = AUTO,
              schema: str | None = None, values: int = 3) -> dict:
    """A ``task`` record (schema_version 1) for a dataset plugin's ``tasks`` to yield.

    ``id`` must be unique and stable: the same question gets the same id on every run and
    whichever split name reached it (``<dataset>/<split>/<index>`` is the built-ins' form);
    rf-data's ``--exclude`` and rf-eval's ``--baseline`` match tasks by it. ``split`` is the
    split the question belongs to: a dataset that offers a pseudo-split such as ``all``
    writes each task's own split here, never ``all``. ``db_path`` is the SQLite file the SQL
    runs on (an absolute path, so the records work from any folder); ``db_id`` names that
    database.

    ``gold_sql`` is None for a question without a reference query: its candidates are then
    verified as null (neither right nor wrong). ``hardness`` is ``"auto"`` by default: Spider's
    level of ``gold_sql`` (``spider_hardness``), or None without gold SQL; pass a level, or
    None for "not graded", to set it. ``schema`` is the prompt's schema context; by default
    it is made from the database (``describe_database(db_path, values)``, so pass on the
    ``values`` your ``tasks`` method received), which raises an RFError when ``db_path`` is
    not a readable database.
    """
    if hardness == AUTO:
        from rf_core.data.hardness import spider_hardness

        hardness = spider_hardness(gold_sql) if gold_sql else None
    if schema is None:
        from rf_core.data.schema_context import describe_database

        schema = describe_database(db_path, values)
    return new_record("task", id=id, dataset=dataset, split=split, db_id=db_id,
                      db_path=db_path, question=question, gold_sql=gold_sql,
                      hardness=hardness, schema=schema)
