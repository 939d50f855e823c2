"""Shards of one rf-sample run and putting them back together (rf-merge).

``rf-sample --shard I/N`` keeps every N-th task from I and tags each task it writes with
``shard``: ``{"index": its position among the input's records (from 0), "of": N, "run": a
digest of the run's settings}``. ``merge_shards`` checks that the shard files are one run,
complete and without duplicates, drops the tag and returns the tasks in input order: for an
engine whose answers for a task do not depend on the other tasks (hf with ``-o
batch_invariant true``), byte for byte what the unsharded run writes.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from rf_core.errors import BadRecord, RFError

SHARD_FIELD = "shard"


def run_digest(settings: dict[str, Any]) -> str:
    """16 hex digits naming a run by its settings (the same settings give the same)."""
    text = json.dumps(settings, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def check_untagged(task: dict) -> None:
    """An RFError for a task that carries a shard tag already (a shard's output sampled
    again before it was merged)."""
    if SHARD_FIELD in task:
        raise RFError(f"task {task.get('id')!r} already has a {SHARD_FIELD!r} field (a shard's "
                      "output not merged yet?); merge the shards with rf-merge first")


def tag_task(task: dict, index: int, of: int, run: str) -> dict:
    """``task`` with its shard tag, as the last field (so removing it gives back the
    unsharded run's record byte for byte)."""
    check_untagged(task)
    task[SHARD_FIELD] = {"index": index, "of": of, "run": run}
    return task


def _tag_of(task: dict, source: str) -> tuple[int, int, str]:
    """(index, of, run) of a tagged task; an RFError naming the file and task otherwise."""
    tag = task.get(SHARD_FIELD)
    ok = (isinstance(tag, dict) and set(tag) == {"index", "of", "run"}
          and all(type(tag[k]) is int for k in ("index", "of")) and isinstance(tag["run"], str)
          and 0 <= tag["index"] and tag["of"] >= 1)
    if not ok:
        raise RFError(f"{source}: task {task.get('id')!r} has no valid {SHARD_FIELD!r} tag "
                      "(not an rf-sample --shard output)")
    return tag["index"], tag["of"], tag["run"]


@dataclass
class Merge:
    """Tagged tasks gathered from shard files, checked as they come: one run, one N, no
    position twice."""

    by_index: dict[int, dict] = field(default_factory=dict)
    source_of: dict[int, str] = field(default_factory=dict)
    run: tuple[int, str] | None = None
    first_source: str = ""

    def add(self, task: dict, source: str) -> None:
        """Take one tagged task read from ``source``."""
        index, of, run = _tag_of(task, source)
        if self.run is None:
            self.run, self.first_source = (of, run), source
        elif (of, run) != self.run:
            raise RFError(f"{source}: task {task.get('id')!r} is from another run (run {run}, "
                          f"{of} shards) than {self.first_source} (run {self.run[1]}, "
                          f"{self.run[0]} shards); merge the shards of one run")
        if index in self.by_index:
            raise RFError(f"{source}: the task at position {index} ({task.get('id')!r}) is "
                          f"also in {self.source_of[index]}: a shard given twice?")
        self.by_index[index] = task
        self.source_of[index] = source

    def missing(self, total: int) -> list[int]:
        """Positions below ``total`` no shard holds."""
        return [i for i in range(total) if i not in self.by_index]


def _say_missing(missing: list[int], of: int, present: set[int]) -> str:
    """One line naming what is missing: whole shards, else the first positions."""
    shards = sorted({i % of for i in missing})
    whole = [s for s in shards if not any(i % of == s for i in present)]
    if whole:
        names = ", ".join(f"{s}/{of}" for s in whole)
        return f"shard(s) {names} missing: no task of theirs was given"
    shown = ", ".join(f"{i} (shard {i % of}/{of})" for i in missing[:5])
    more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
    return f"{len(missing)} task(s) missing, at position(s) {shown}{more}: an incomplete shard?"


def merge_shards(shards: Iterable[tuple[str, Iterable[dict]]],
                 order: list[str] | None = None) -> list[dict]:
    """The tasks of ``shards`` (pairs of a name, for messages, and its tasks) in input order,
    their shard tags removed. With ``order`` (the ids of the input the shards were sampled
    from, in order) every position must hold that id, and every id must be there; without
    it, positions 0 to the highest one given must all be there (a shard missing its last
    tasks is then caught only where a later position exists). Any fault is an RFError."""
    merge = Merge()
    for source, tasks in shards:
        for task in tasks:
            merge.add(task, source)
    if merge.run is None:
        if order:
            raise RFError(f"no task in the shards; the order file has {len(order)}")
        return []
    total = len(order) if order is not None else max(merge.by_index) + 1
    if order is not None:
        for index, task in sorted(merge.by_index.items()):
            expected = order[index] if index < total else None
            if task.get("id") != expected:
                where = (f"the order file has {expected!r} there" if expected is not None
                         else f"the order file has {total} task(s)")
                raise RFError(f"{merge.source_of[index]}: task {task.get('id')!r} at position "
                              f"{index}, but {where}: shards of another input")
    missing = merge.missing(total)
    if missing:
        raise RFError(_say_missing(missing, merge.run[0], set(merge.by_index)))
    out = []
    for index in range(total):
        task = merge.by_index[index]
        del task[SHARD_FIELD]
        out.append(task)
    return out


def _read_file(path: Path, prog: str) -> list[dict]:
    """A JSONL file's task records; a bad line is an RFError naming the file and line."""
    from rf_core.records.io import read_records

    try:
        with open(path, "rb") as stream:
            return list(read_records(stream, prog=prog, kind="task"))
    except BadRecord as exc:
        raise RFError(f"{path}: {exc}") from None
    except OSError as exc:
        raise RFError(f"cannot read {path}: {exc.strerror or exc}") from None


def merge_files(paths: Iterable[str | os.PathLike], order: str | os.PathLike | None = None,
                prog: str = "rf-merge") -> list[dict]:
    """``merge_shards`` of shard files, with ``order`` the input file they were sampled from
    (its tasks' ids give the order and the count), if given."""
    ids = None
    if order is not None:
        ids = [str(t.get("id")) for t in _read_file(Path(order), prog)]
    return merge_shards(((str(p), _read_file(Path(p), prog)) for p in paths), ids)
