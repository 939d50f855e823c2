"""A third-party dataset plugin as the README's "Datasets" section teaches it: one's own
SQLite database and a question file, with splits train, dev and the pseudo-split all."""

import json
from pathlib import Path

from rf_core.api import Option, RFError, hookimpl, make_task, pick


class MyDB:
    name = "mydb"
    description = "my.sqlite and a question file in --root"
    splits = ("train", "dev", "all")  # rf-data refuses any other --split (exit 2)
    options = (Option("questions", str, "questions.jsonl",
                      "The question file in --root: JSON lines {question, sql, split}."),)

    def tasks(self, *, root, split, limit, seed, values, report, questions, **options):
        if not root:
            raise RFError("mydb needs --root, the folder with my.sqlite and the questions")
        folder = Path(root)
        db = str((folder / "my.sqlite").resolve())
        try:
            with open(folder / questions, encoding="utf-8") as fh:
                rows = [json.loads(line) for line in fh if line.strip()]
        except (OSError, ValueError) as exc:
            raise RFError(f"cannot read the questions {folder / questions}: {exc}") from None
        # all: every question, each with its own split and the same id as under that split
        chosen = [(i, q) for i, q in enumerate(rows) if split in ("all", q["split"])]
        report(f"{len(chosen)} of {len(rows)} question(s) in split {split}")
        for i, q in pick(chosen, limit, seed):
            yield make_task(id=f"mydb/{i}", dataset=self.name, split=q["split"], db_id="my",
                            db_path=db, question=q["question"], gold_sql=q.get("sql"),
                            values=values)


@hookimpl
def register_datasets(register):
    register(MyDB())
