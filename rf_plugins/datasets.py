"""Built-in datasets: Spider 1.0 (from its official layout) and the project's demo benchmark."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from pathlib import Path
from typing import Callable, Iterator

from rf_core.api import (RFError, cache_dir, describe_database, hookimpl, make_task, pick,
                         to_stderr, write_atomic)

Report = Callable[[str], None]


def _item_problem(item) -> str | None:
    """Why a Spider item cannot become a task, or None when it can."""
    if not isinstance(item, dict):
        return "is not a JSON object"
    db_id = item.get("db_id")
    if not isinstance(db_id, str) or not db_id:
        return "has no db_id"
    if db_id in (".", "..") or any(c in db_id for c in "/\\\0"):
        return f"has db_id {db_id!r}, which is not a folder name under database/"
    if not isinstance(item.get("question"), str):
        return "has no question"
    if not isinstance(item.get("query", ""), str):
        return "has a query that is not a string"
    return None


class Spider:
    """Spider 1.0: ``--root`` holds dev.json, train_spider.json, train_others.json, database/."""

    name = "spider"
    description = "Spider 1.0 from its official layout (--root: dev.json, database/ ...)"
    splits = {"dev": "dev.json", "train": "train_spider.json", "train_others": "train_others.json"}

    def tasks(self, *, root: str | None, split: str, limit: int | None = None,
              seed: int | None = None, values: int = 3, report: Report = to_stderr,
              **_options) -> Iterator[dict]:
        if not root:
            raise RFError("spider needs --root, the folder with dev.json and database/")
        if split not in self.splits:
            raise RFError(f"spider has no split {split!r}; choose from {', '.join(self.splits)}")
        root_path = Path(root)
        source = root_path / self.splits[split]
        try:
            items = json.loads(source.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise RFError(f"cannot read {source}: {exc}") from None
        if not isinstance(items, list):
            raise RFError(f"{source} is not a JSON list of questions")
        bad = [(i, why) for i, item in enumerate(items) if (why := _item_problem(item))]
        if bad:
            first, problem = bad[0]
            report(f"skipped {len(bad)} of {len(items)} {split} item(s) that are not "
                   f"questions (item {first} {problem})")
        skip = {i for i, _ in bad}
        runnable, missing, why = [], {}, {}
        for index, item in enumerate(items):
            if index in skip:
                continue
            db_path = root_path / "database" / item["db_id"] / f"{item['db_id']}.sqlite"
            if db_path.is_file():
                runnable.append((index, item, db_path))
                continue
            missing[item["db_id"]] = missing.get(item["db_id"], 0) + 1
            if item["db_id"] not in why:
                # a device or a FIFO is named as such (never opened: it would block rf-data)
                why[item["db_id"]] = ("is not a regular file" if db_path.exists()
                                      else "is missing")
        for db_id, count in sorted(missing.items()):
            report(f"skipped {count} {split} task(s): database {db_id!r} {why[db_id]}")
        if missing:
            report(f"{sum(missing.values())} of {len(items)} {split} tasks skipped "
                   f"({len(missing)} missing or unreadable database(s)); {len(runnable)} "
                   "remain")
        from rf_core.api import spider_hardness  # sqlglot: only when tasks are made

        schemas: dict[Path, str | None] = {}  # None: the file is not a readable database
        for index, item, db_path in pick(runnable, limit, seed):
            db_path = db_path.resolve()
            if db_path not in schemas:
                try:
                    schemas[db_path] = describe_database(str(db_path), values)
                except (RFError, sqlite3.Error) as exc:
                    schemas[db_path] = None
                    report(f"skipped the {split} tasks of database {item['db_id']!r}: it is "
                           f"not a readable SQLite database ({exc})")
            if schemas[db_path] is None:
                continue
            gold = item.get("query")
            yield make_task(
                id=f"spider/{split}/{index}", dataset="spider", split=split,
                db_id=item["db_id"], db_path=str(db_path), question=item["question"],
                gold_sql=gold, hardness=spider_hardness(gold) if gold else None,
                schema=schemas[db_path])


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

    def tasks(self, *, root: str | None, split: str, limit: int | None = None,
              seed: int | None = None, values: int = 3, report: Report = to_stderr,
              **_options) -> Iterator[dict]:
        if split not in self.splits:
            raise RFError(f"demo has no split {split!r}; choose from {', '.join(self.splits)}")
        out_dir = Path(root) if root else cache_dir() / "demo"
        items = []
        with open(DEMO_DATA / "questions.jsonl", encoding="utf-8") as fh:
            for line in fh:
                if line.strip():
                    items.append(json.loads(line))
        # a task's index counts within its own split, so its id is the same under "all"
        numbered, seen = [], {}
        for item in items:
            index = seen[item["split"]] = seen.get(item["split"], -1) + 1
            if split in ("all", item["split"]):
                numbered.append((index, item))
        from rf_core.api import spider_hardness  # sqlglot: only when tasks are made

        built: dict[str, Path] = {}
        for index, item in pick(numbered, limit, seed):
            db_id = item["db_id"]
            if db_id not in built:
                target = out_dir / db_id / f"{db_id}.sqlite"
                try:
                    build_database(DEMO_DATA / f"{db_id}.sql", target)
                except (OSError, sqlite3.Error) as exc:
                    raise RFError(f"cannot build demo database {db_id!r}: {exc}") from None
                built[db_id] = target.resolve()
            db_path = str(built[db_id])
            yield make_task(
                id=f"demo/{item['split']}/{index}", dataset="demo", split=item["split"],
                db_id=db_id,
                db_path=db_path, question=item["question"], gold_sql=item["query"],
                hardness=spider_hardness(item["query"]),
                schema=describe_database(db_path, values))


@hookimpl
def register_datasets(register):
    register(Spider())
    register(Demo())
