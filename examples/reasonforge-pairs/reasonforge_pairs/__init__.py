"""A dataset plugin: your own SQLite database and a file of question and SQL pairs.

The pairs are a CSV file with the header row ``question,sql`` (a ``split`` column is
optional) or JSON lines ``{"question": ..., "sql": ..., "split": ...}``. A pair's split is
``dev`` unless it names one; pair n of the file (from 0, blank JSON lines aside) is the task
``pairs/n`` under every split name. An empty ``sql`` means no reference query.

It yields raw items only: rf-data skips and counts the bad pairs, takes the --limit/--seed
sample, grades hardness and writes the schema context, as it does for every dataset.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any, Iterator

from rf_core.api import (BadItem, DatasetItem, Option, Report, RFError, UsageError,
                         hookimpl)


def read_pairs(path: Path) -> list[dict | BadItem]:
    """Each pair of a .csv or JSON-lines file as a dict, or a BadItem saying why not."""
    try:
        with open(path, encoding="utf-8", newline="") as fh:
            if path.suffix.lower() != ".csv":
                return [_json_pair(line) for line in fh if line.strip()]
            rows = csv.DictReader(fh)
            if not {"question", "sql"} <= set(rows.fieldnames or ()):
                raise RFError(f"{path}: a CSV of pairs needs the header row question,sql")
            return list(rows)
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise RFError(f"cannot read the pairs {path}: {exc}") from None


def _json_pair(line: str) -> dict | BadItem:
    try:
        pair = json.loads(line)
    except ValueError:
        return BadItem("is not valid JSON")
    return pair if isinstance(pair, dict) else BadItem("is not a JSON object")


class Pairs:
    """Questions about one SQLite database, with their SQL, from a CSV or JSONL file."""

    name = "pairs"
    description = "your SQLite file (-o database) and question/SQL pairs (-o pairs: CSV, JSONL)"
    splits = ("train", "dev", "all")
    options = (
        Option("database", str, None, "The SQLite file the questions ask about."),
        Option("pairs", str, None, "The pairs: a .csv with the header question,sql[,split] or "
               "JSON lines {question, sql, split}. Both paths are relative to --root."),
    )

    def items(self, *, root: str | None, split: str, report: Report, database: str | None,
              pairs: str | None, **options: Any) -> Iterator[DatasetItem | BadItem]:
        """The pairs of ``split`` (every bad pair too, so that rf-data counts it)."""
        if not database or not pairs:
            raise UsageError("dataset 'pairs' needs -o database FILE and -o pairs FILE")
        folder = Path(root or ".")
        db_path = folder / database
        for n, pair in enumerate(read_pairs(folder / pairs)):
            if isinstance(pair, BadItem):
                yield pair
                continue
            own = pair.get("split") or "dev"
            if split in ("all", own):
                yield DatasetItem(id=f"pairs/{n}", db_id=db_path.stem, db_path=db_path,
                                  question=pair.get("question"),
                                  gold_sql=pair.get("sql") or None, split=own)


@hookimpl
def register_datasets(register: Any) -> None:
    """Register the dataset ``pairs``."""
    register(Pairs())
