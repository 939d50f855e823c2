"""Built-in datasets: Spider 1.0 (from its official layout) and the project's demo benchmark."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from pathlib import Path
from typing import Any, Iterator

from rf_core.api import (BadItem, DatasetItem, Report, RFError, cache_dir, hookimpl, to_stderr,
                         write_atomic)

Entry = DatasetItem | BadItem


def _folder_name(db_id: str) -> bool:
    """Whether ``db_id`` names a folder under database/ (no path, no parent)."""
    return db_id not in (".", "..") and not any(c in db_id for c in "/\\\0")


def _spider_item(index: int, item: Any, database: Path, split: str) -> Entry:
    """One entry of a Spider question file as an item (the core checks the question and
    query types), or why it is not one."""
    if not isinstance(item, dict):
        return BadItem("is not a JSON object")
    db_id = item.get("db_id")
    if not isinstance(db_id, str) or not db_id:
        return BadItem("has no db_id")
    if not _folder_name(db_id):
        return BadItem(f"has db_id {db_id!r}, which is not a folder name under database/")
    return DatasetItem(id=f"spider/{split}/{index}", db_id=db_id,
                       db_path=str(database / db_id / f"{db_id}.sqlite"),
                       question=item.get("question"), gold_sql=item.get("query"),
                       split=split)


class Spider:
    """Spider 1.0: ``--root`` holds dev.json, train_spider.json, train_others.json, database/."""

    name = "spider"
    description = "Spider 1.0 from its official layout (--root: dev.json, database/ ...)"
    splits = {"dev": "dev.json", "train": "train_spider.json", "train_others": "train_others.json"}

    def items(self, *, root: str | None, split: str, report: Report = to_stderr,
              **_options: Any) -> Iterator[Entry]:
        """Every entry of the split's question file, in file order (ids count from 0)."""
        if not root:
            raise RFError("spider needs --root, the folder with dev.json and database/")
        if split not in self.splits:
            raise RFError(f"spider has no split {split!r}; choose from {', '.join(self.splits)}")
        source = Path(root) / self.splits[split]
        try:
            items = json.loads(source.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise RFError(f"cannot read {source}: {exc}") from None
        if not isinstance(items, list):
            raise RFError(f"{source} is not a JSON list of questions")
        database = Path(root) / "database"
        for index, item in enumerate(items):
            yield _spider_item(index, item, database, split)


DEMO_DATA = Path(__file__).parent / "demo_data"


def build_database(script: Path, target: Path) -> None:
    """Build ``target`` from a SQL script unless it is already built from the same script.

    Writes to a temporary file and renames it, so a half-built database is never used.
    """
    text = script.read_text(encoding="utf-8")
    stamp = hashlib.sha256(text.encode()).hexdigest()
    stamp_file = target.with_suffix(".sha256")
    if target.is_file() and stamp_file.is_file() and stamp_file.read_text() == stamp:
        return
    with write_atomic(target) as tmp:
        conn = sqlite3.connect(tmp)
        try:
            conn.executescript(text)
            conn.commit()
        finally:
            conn.close()
    stamp_file.write_text(stamp)


class Demo:
    """The project's own small Spider-format benchmark, built into SQLite on first use.

    ``--root`` is where the databases are built (default: the user's cache folder).
    """

    name = "demo"
    description = "the project's own small benchmark (SQLite built on first use)"
    # all: both, each task with its own split and id (a pseudo-split, as the README asks)
    splits = ("train", "dev", "all")

    def items(self, *, root: str | None, split: str, report: Report = to_stderr,
              **_options: Any) -> Iterator[DatasetItem]:
        """The split's questions in file order, each database built before its first item."""
        if split not in self.splits:
            raise RFError(f"demo has no split {split!r}; choose from {', '.join(self.splits)}")
        out_dir = Path(root) if root else cache_dir() / "demo"
        with open(DEMO_DATA / "questions.jsonl", encoding="utf-8") as fh:
            rows = [json.loads(line) for line in fh if line.strip()]
        # a task's index counts within its own split, so its id is the same under "all"
        seen: dict[str, int] = {}
        built: dict[str, str] = {}
        for row in rows:
            index = seen[row["split"]] = seen.get(row["split"], -1) + 1
            if split not in ("all", row["split"]):
                continue
            db_id = row["db_id"]
            if db_id not in built:
                built[db_id] = _built(db_id, out_dir)
            yield DatasetItem(id=f"demo/{row['split']}/{index}", db_id=db_id,
                              db_path=built[db_id], question=row["question"],
                              gold_sql=row["query"], split=row["split"])


def _built(db_id: str, out_dir: Path) -> str:
    """The demo database ``db_id``, built under ``out_dir`` if needed (absolute path)."""
    target = out_dir / db_id / f"{db_id}.sqlite"
    try:
        build_database(DEMO_DATA / f"{db_id}.sql", target)
    except (OSError, sqlite3.Error) as exc:
        raise RFError(f"cannot build demo database {db_id!r}: {exc}") from None
    return str(target.resolve())


@hookimpl
def register_datasets(register: Any) -> None:
    """Register the built-in datasets (both yield raw items: rf-data makes the tasks)."""
    register(Spider())
    register(Demo())
