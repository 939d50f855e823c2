"""What a dataset plugin yields: one raw item per question of its source, nothing derived.

The core (rf_core.data.make) turns items into task records: it skips and counts the bad
ones, takes the sample, grades hardness and writes the schema context, the same way for
every dataset.
"""

from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass(frozen=True)
class DatasetItem:
    """One question of a dataset, as its source gives it.

    ``id`` is unique and stable: the same question has the same id on every run and under
    whichever split name reached it (``<dataset>/<split>/<index>`` is the built-ins' form;
    rf-data's ``--exclude`` and rf-eval's ``--baseline`` match tasks by it). ``db_id`` names
    the database and ``db_path`` is its SQLite file (a relative path is taken from the
    current folder; the task records carry it absolute). ``question`` is the question's
    text (None where the source has none: the item is then skipped as bad, so a field read
    from a file can be passed as it is) and ``gold_sql`` its reference query, or None for
    a question without one (its candidates are then verified as null, and it is not
    graded). ``split`` is the split
    the question belongs to: a dataset offering a pseudo-split such as ``all`` gives each
    item its own split here, never ``all``. ``notes`` is any extra text the question needs
    (BIRD's evidence, a definition, a unit): it ends the prompt's schema context as SQL
    comment lines ``-- Notes: ...``; None (the default) adds nothing.

    The core checks the field types, so an item built from untrusted input with a wrong
    type (a question that is a number) is skipped and counted, never a crash.
    """

    id: str
    db_id: str
    db_path: str | os.PathLike[str]
    question: str | None
    gold_sql: str | None
    split: str
    notes: str | None = None


@dataclass(frozen=True)
class BadItem:
    """An entry of a dataset's source that cannot become an item (a line that is not an
    object, a row with no database). Yield it in the entry's place: the core skips it and
    counts it with the other bad items in one stderr line, naming the first one's
    ``problem``, a phrase that follows ``item <index>``, e.g. ``"is not a JSON object"``
    (``index`` counts every item and bad item yielded, from 0)."""

    problem: str


def item_problem(entry: object) -> str | None:
    """Why ``entry`` (something a dataset yielded) cannot become a task, or None."""
    if isinstance(entry, BadItem):
        return str(entry.problem)
    if not isinstance(entry, DatasetItem):
        return f"is a {type(entry).__name__}, not a DatasetItem"
    if not isinstance(entry.id, str) or not entry.id:
        return "has no id"
    if not isinstance(entry.db_id, str) or not entry.db_id:
        return "has no db_id"
    if not isinstance(entry.db_path, (str, os.PathLike)) or not isinstance(
            os.fspath(entry.db_path), str) or not os.fspath(entry.db_path):
        return "has no database path"
    if not isinstance(entry.question, str):
        return "has no question"
    if entry.gold_sql is not None and not isinstance(entry.gold_sql, str):
        return "has a query that is not a string"
    if not isinstance(entry.split, str) or not entry.split:
        return "has no split"
    if entry.notes is not None and not isinstance(entry.notes, str):
        return "has notes that are not a string"
    return None
