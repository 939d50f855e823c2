"""rf-data's core: a dataset plugin's items become task records, the same way for every
dataset.

A dataset with ``items(...)`` yields raw DatasetItems (and BadItems); here they are checked
(bad ones skipped and counted in one line), items whose database file is missing are
skipped with a line per database, ``--exclude`` leaves tasks out, ``pick`` takes the
``--limit``/``--seed`` sample, and each chosen item gets its hardness and schema context
(``describe_database`` with ``--values``; an unreadable database skips its tasks with one
line). A dataset with only ``tasks(...)`` (record-level, kept for one release) builds whole
task records itself; only ``--exclude`` is applied to them here.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

from rf_core.data.items import DatasetItem, item_problem
from rf_core.data.tasks import make_task, pick
from rf_core.errors import RFError
from rf_core.records.io import to_stderr

Report = Callable[[str], None]  # one line to stderr under the command's name


@dataclass(frozen=True)
class Exclusion:
    """Tasks to leave out before the sample is taken: their ``ids``, and the ``source``
    (the file) they were read from, named in the stderr line."""

    ids: frozenset[str]
    source: str

    def note(self) -> str:
        """The stderr line saying what was left out."""
        return f"left out {len(self.ids)} task(s) of {self.source}"


def is_item_level(impl: Any) -> bool:
    """Whether a dataset yields raw items (``items``) rather than task records (``tasks``)."""
    return callable(getattr(impl, "items", None))


def dataset_tasks(impl: Any, name: str, *, root: str | None, split: str,
                  limit: int | None = None, seed: int | None = None, values: int = 3,
                  report: Report = to_stderr, options: dict[str, Any] | None = None,
                  exclude: Exclusion | None = None) -> Iterator[dict]:
    """The task records rf-data writes for the dataset ``impl`` chosen by ``name``.

    ``options`` are the dataset's own declared options; ``exclude`` leaves tasks out before
    ``limit``/``seed`` pick the sample.
    """
    options = options or {}
    if is_item_level(impl):
        items = impl.items(root=root, split=split, report=report, **options)
        return tasks_from_items(items, name, split=split, limit=limit, seed=seed,
                                values=values, report=report, exclude=exclude)
    if not callable(getattr(impl, "tasks", None)):
        raise RFError(f"dataset {name!r} has neither items(...) nor tasks(...)")
    if exclude is None:
        return iter(impl.tasks(root=root, split=split, limit=limit, seed=seed,
                               values=values, report=report, **options))
    return _excluded_records(impl, exclude, root=root, split=split, limit=limit, seed=seed,
                             values=values, report=report, options=options)


def _excluded_records(impl: Any, exclude: Exclusion, *, root: str | None, split: str,
                      limit: int | None, seed: int | None, values: int, report: Report,
                      options: dict[str, Any]) -> Iterator[dict]:
    every = impl.tasks(root=root, split=split, limit=None, seed=None, values=values,
                       report=report, **options)
    kept = [t for t in every if t["id"] not in exclude.ids]
    report(exclude.note())
    yield from pick(kept, limit, seed)


def tasks_from_items(items: Iterable[Any], name: str, *, split: str, limit: int | None,
                     seed: int | None, values: int, report: Report,
                     exclude: Exclusion | None = None) -> Iterator[dict]:
    """Task records of dataset ``name`` from what its ``items`` yielded (``split`` is the
    split asked for, named in the stderr lines)."""
    runnable = runnable_items(items, split, report)
    if exclude is not None:
        runnable = [item for item in runnable if item.id not in exclude.ids]
        report(exclude.note())
    yield from make_tasks(pick(runnable, limit, seed), name, split=split, values=values,
                          report=report)


def runnable_items(entries: Iterable[Any], split: str, report: Report) -> list[DatasetItem]:
    """The items that can become tasks. Bad entries are skipped and counted in one line
    naming the first; items whose database file is missing (or is not a regular file,
    which is never opened) are skipped with one line per database and a count."""
    valid: list[DatasetItem] = []
    first_bad: tuple[int, str] | None = None
    n_bad = total = 0
    for index, entry in enumerate(entries):
        total += 1
        problem = item_problem(entry)
        if problem is None:
            valid.append(entry)
            continue
        n_bad += 1
        first_bad = first_bad or (index, problem)
    if first_bad is not None:
        report(f"skipped {n_bad} of {total} {split} item(s) that are not questions "
               f"(item {first_bad[0]} {first_bad[1]})")
    return _with_databases(valid, total, split, report)


def _with_databases(items: list[DatasetItem], total: int, split: str,
                    report: Report) -> list[DatasetItem]:
    runnable: list[DatasetItem] = []
    missing: dict[str, int] = {}
    why: dict[str, str] = {}
    for item in items:
        path = Path(item.db_path)
        if path.is_file():
            runnable.append(item)
            continue
        missing[item.db_id] = missing.get(item.db_id, 0) + 1
        if item.db_id not in why:
            # a device or a FIFO is named as such (never opened: it would block rf-data)
            why[item.db_id] = "is not a regular file" if path.exists() else "is missing"
    for db_id, count in sorted(missing.items()):
        report(f"skipped {count} {split} task(s): database {db_id!r} {why[db_id]}")
    if missing:
        report(f"{sum(missing.values())} of {total} {split} tasks skipped "
               f"({len(missing)} missing or unreadable database(s)); {len(runnable)} remain")
    return runnable


def make_tasks(items: Iterable[DatasetItem], name: str, *, split: str, values: int,
               report: Report) -> Iterator[dict]:
    """A task record per item: Spider hardness of its gold SQL, and the schema context of
    its database (each database described once; one that is not a readable SQLite database
    skips its tasks with one line)."""
    schemas: dict[Path, str | None] = {}  # None: the file is not a readable database
    for item in items:
        path = Path(item.db_path).resolve()
        if path not in schemas:
            schemas[path] = _schema(path, item.db_id, split, values, report)
        schema = schemas[path]
        if schema is None:
            continue
        yield make_task(id=item.id, dataset=name, split=item.split, db_id=item.db_id,
                        db_path=str(path), question=str(item.question), gold_sql=item.gold_sql,
                        schema=with_notes(schema, item.notes))


def _schema(path: Path, db_id: str, split: str, values: int, report: Report) -> str | None:
    from rf_core.data.schema_context import describe_database

    try:
        return describe_database(str(path), values)
    except (RFError, sqlite3.Error) as exc:
        report(f"skipped the {split} tasks of database {db_id!r}: it is not a readable "
               f"SQLite database ({exc})")
        return None


def with_notes(schema: str, notes: str | None) -> str:
    """The schema context followed by an item's notes as SQL comment lines."""
    if not notes:
        return schema
    first, *rest = notes.splitlines() or [""]
    lines = [f"-- Notes: {first}".rstrip(), *(f"-- {line}".rstrip() for line in rest)]
    return "\n".join([schema, *lines] if schema else lines)
