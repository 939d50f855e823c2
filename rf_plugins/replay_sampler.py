"""The replay sampler: candidates given in the input, not sampled from a model.

For smoke tests of a pipeline (the gold SQL as the only candidate: ``-o field gold_sql``) and
for scoring SQL produced elsewhere through rf-exec, rf-vote and rf-eval: a field of each task
(``-o field predictions``), or a predictions file with one SQL per line in task order
(``-o file pred.txt``, the format Spider's own evaluation script reads).

Written as a third-party plugin would be: it imports only rf_core.api and the standard library.
"""

from __future__ import annotations

import re
from typing import Callable

from rf_core.api import Option, RFError, SampleRequest, hookimpl, to_stderr

_INDEX = re.compile(r"/(\d+)$")


def _answers(task: dict, field: str) -> list[tuple[str, bool]]:
    """(text, is_sql) for each answer in the task's ``field``: a string, or a list of strings
    and of objects with ``text`` (a model's answer) or ``sql``."""
    if field not in task:
        raise RFError(f"task {task.get('id')!r} has no field {field!r} to replay "
                      "(-o field NAME names it; -o file PATH reads a predictions file)")
    value = task[field]
    items = [value] if isinstance(value, str) or value is None else value
    if not isinstance(items, list):
        raise RFError(f"task {task.get('id')!r}: field {field!r} is "
                      f"{type(value).__name__}; expected SQL text or a list of answers")
    out = []
    for i, item in enumerate(items):
        if item is None:
            out.append(("", True))
        elif isinstance(item, str):
            out.append((item, True))
        elif isinstance(item, dict) and isinstance(item.get("text"), str):
            out.append((item["text"], False))
        elif isinstance(item, dict) and isinstance(item.get("sql", 0), (str, type(None))):
            out.append((item.get("sql") or "", True))
        else:
            raise RFError(f"task {task.get('id')!r}: {field}[{i}] is neither SQL text nor "
                          "an object with 'text' or 'sql'")
    return out


class _Predictions:
    """A predictions file, one ``SQL`` or ``SQL<TAB>db_id`` line per task: the next line for
    each task (``position``), or line N + 1 for the task whose id ends in ``/N`` (``index``)."""

    def __init__(self, path: str, match: str):
        self.path = path
        self.match = match
        self.line = 0
        try:
            self.fh = open(path, encoding="utf-8", newline=None)
            # by index: the whole file (one line per question of a split) is looked up
            self.lines = self.fh.read().split("\n") if match == "index" else None
        except (OSError, UnicodeDecodeError) as exc:
            raise RFError(f"cannot read -o file {path}: "
                          f"{getattr(exc, 'strerror', None) or exc}") from None
        if self.lines and self.lines[-1] == "":
            self.lines.pop()

    def _line(self, task: dict) -> str:
        if self.lines is not None:
            m = _INDEX.search(str(task.get("id", "")))
            if m is None:
                raise RFError(f"task id {task.get('id')!r} does not end in /N, which -o match "
                              "index needs (the built-in datasets' ids do: spider/dev/N)")
            self.line = int(m.group(1)) + 1
            if self.line > len(self.lines):
                raise RFError(f"-o file {self.path} has {len(self.lines)} line(s); task "
                              f"{task.get('id')!r} needs line {self.line}")
            return self.lines[self.line - 1]
        try:
            raw = self.fh.readline()
        except (OSError, UnicodeDecodeError) as exc:
            raise RFError(f"-o file {self.path}: line {self.line + 1}: {exc}") from None
        if not raw:
            raise RFError(f"-o file {self.path} has {self.line} line(s) but the input has "
                          f"more tasks (task {task.get('id')!r} has none): they must line up "
                          "(-o match index pairs them by the task's index instead)")
        self.line += 1
        return raw.rstrip("\n")

    def next_for(self, task: dict) -> list[tuple[str, bool]]:
        """The answer for ``task``: its line, checked against its database."""
        sql, tab, db_id = self._line(task).partition("\t")
        if tab and task.get("db_id") is not None and db_id.strip() != task["db_id"]:
            raise RFError(f"-o file {self.path}: line {self.line} is for database "
                          f"{db_id.strip()!r} but task {task.get('id')!r} is on "
                          f"{task['db_id']!r}: the file and the input do not line up")
        return [(sql, True)]

    def finish(self) -> None:
        """Close the file; RFError where it has lines left over."""
        rest = 0 if self.lines is not None else sum(1 for line in self.fh if line.strip())
        self.fh.close()
        if rest:
            raise RFError(f"-o file {self.path} has {rest} line(s) more than the input has "
                          "tasks: the file and the input do not line up (-o match index "
                          "pairs them by the task's index instead)")


class ReplaySampler:
    """Candidates given in the input, not sampled from a model."""

    name = "replay"
    description = ("candidates given in the input (a task field, or a predictions file), "
                   "for smoke tests and for scoring SQL made elsewhere")
    options = (
        Option("field", str, "predictions", "The task field to replay: SQL text, or a list of "
               "SQL texts and of objects with 'text' (a model answer) or 'sql'. gold_sql: "
               "the gold query; candidates: the task's earlier candidates."),
        Option("file", str, None, "Read the answers from this file instead: one SQL per line, "
               "line i for the i-th input task (Spider's predictions format; 'SQL<TAB>db_id' "
               "lines are checked against the task's database)."),
        Option("match", str, "position", "How -o file's lines pair with tasks. position: "
               "line i for the i-th input task; index: line N + 1 for the task whose id ends "
               "in /N (spider/dev/N: a file for every question of dev.json scores the tasks "
               "rf-data wrote, also where it skipped some).", choices=("position", "index")),
        Option("extract", bool, False, "Take given SQL texts as model answers and extract "
               "the SQL from them as rf-sample does (default: run them as given)."),
    )

    def load(self, request: SampleRequest, *, report: Callable[[str], None] = to_stderr,
             field: str = "predictions", file: str | None = None, match: str = "position",
             extract: bool = False, **_ignored) -> "_Replay":
        """Open the predictions file, if any; -k, the model and the sampling settings are
        not used."""
        return _Replay(field, _Predictions(file, match) if file else None, extract, report)


class _Replay:
    """A replay run: each task's given answers, as the rate line and candidates count them."""

    def __init__(self, field: str, predictions: _Predictions | None, extract: bool,
                 report: Callable[[str], None]):
        self.field = field
        self.predictions = predictions
        self.extract = extract
        self.report = report
        self.tasks = self.candidates = 0

    def generate(self, conversations: list, *, tasks: list[dict], **_context) -> list[list]:
        """The given answers of each task; SQL given as such is run as given."""
        rows = []
        for task in tasks:
            given = (self.predictions.next_for(task) if self.predictions
                     else _answers(task, self.field))
            answers = []
            for text, is_sql in given:
                answer = {"text": text, "logprob": None, "n_tokens": None, "finished": None}
                if is_sql and not self.extract:
                    answer["sql"] = text.strip() or None
                answers.append(answer)
            rows.append(answers)
            self.tasks += 1
            self.candidates += len(answers)
        return rows

    def close(self) -> None:
        """Check that a predictions file had no lines left; say where the answers came from."""
        if self.predictions:
            self.predictions.finish()
        source = f"-o file {self.predictions.path}" if self.predictions else \
            f"field {self.field!r}"
        self.report(f"replay: {self.candidates} candidate(s) for {self.tasks} task(s) from "
                    f"{source} (-k is not used: every given answer is a candidate)")


@hookimpl
def register_samplers(register):
    """replay."""
    register(ReplaySampler())
