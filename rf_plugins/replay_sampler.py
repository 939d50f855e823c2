"""The replay sampler: candidates given in the input, not sampled from a model.

For smoke tests of a pipeline (the gold SQL as the only candidate: ``-o field gold_sql``) and
for scoring SQL produced elsewhere through rf-exec, rf-vote and rf-eval: a field of each task
(``-o field predictions``), or a predictions file with one SQL per line in task order
(``-o file pred.txt``, the format Spider's own evaluation script reads).

Written as a third-party plugin would be: it imports only rf_core.api and the standard library.
"""

from __future__ import annotations

from typing import Callable, Iterable, Iterator

from rf_core.api import Option, RFError, hookimpl, to_stderr


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
    """A predictions file read one line per task: ``SQL`` or ``SQL<TAB>db_id``."""

    def __init__(self, path: str):
        self.path = path
        try:
            self.fh = open(path, encoding="utf-8", newline=None)
        except OSError as exc:
            raise RFError(f"cannot read -o file {path}: {exc.strerror or exc}") from None
        self.line = 0

    def next_for(self, task: dict) -> list[tuple[str, bool]]:
        try:
            raw = self.fh.readline()
        except (OSError, UnicodeDecodeError) as exc:
            raise RFError(f"-o file {self.path}: line {self.line + 1}: {exc}") from None
        if not raw:
            raise RFError(f"-o file {self.path} has {self.line} line(s) but the input has "
                          f"more tasks (task {task.get('id')!r} has none): they must line up")
        self.line += 1
        sql, tab, db_id = raw.rstrip("\n").partition("\t")
        if tab and task.get("db_id") is not None and db_id.strip() != task["db_id"]:
            raise RFError(f"-o file {self.path}: line {self.line} is for database "
                          f"{db_id.strip()!r} but task {task.get('id')!r} is on "
                          f"{task['db_id']!r}: the file and the input do not line up")
        return [(sql, True)]

    def finish(self) -> None:
        rest = sum(1 for line in self.fh if line.strip())
        self.fh.close()
        if rest:
            raise RFError(f"-o file {self.path} has {rest} line(s) more than the input has "
                          "tasks: the file and the input do not line up")


class ReplaySampler:
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
        Option("extract", bool, False, "Take given SQL texts as model answers and extract "
               "the SQL from them as rf-sample does (default: run them as given)."),
    )

    def sample(self, tasks: Iterable[dict], *, model: str, adapter: str | None = None,
               k: int = 1, temperature: float = 0.0, field: str = "predictions",
               file: str | None = None, extract: bool = False,
               report: Callable[[str], None] = to_stderr, **_ignored) -> Iterator[dict]:
        from rf_core.api import attach, task_messages

        predictions = _Predictions(file) if file else None
        n_tasks = n_candidates = 0
        for task in tasks:
            given = predictions.next_for(task) if predictions else _answers(task, field)
            answers = [{"text": text, "logprob": None, "n_tokens": None, "finished": None}
                       for text, _ in given]
            # nothing was sampled: no seed reproduces these candidates
            attach(task, task_messages(task), answers, sampler=self.name, model=model,
                   adapter=adapter, temperature=temperature, seed=None)
            if not extract:
                for cand, (text, is_sql) in zip(task["candidates"], given):
                    if is_sql:
                        cand["sql"] = text.strip() or None
            n_tasks += 1
            n_candidates += len(answers)
            yield task
        if predictions:
            predictions.finish()
        source = f"-o file {file}" if file else f"field {field!r}"
        report(f"replay: {n_candidates} candidate(s) for {n_tasks} task(s) from {source} "
               "(-k is not used: every given answer is a candidate)")


@hookimpl
def register_samplers(register):
    register(ReplaySampler())
