"""What a revision turn tells the model: what its query did on the database, and nothing else.

The feedback is built from the candidate's own SQL run read-only on the task's database, under
the same limits and in the same kind of supervised worker processes as rf-exec. No gold query,
gold result or verdict is an input of any function here, so no gold information can reach a
prompt (tests/test_revise.py checks it on tasks whose gold is wrong).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Iterator

from rf_core.exec.pool import GRACE_S, Slot, supervised_map
from rf_core.exec.sqlite import Executor, Limits, Result
from rf_core.exec.verify import killed_result

PREVIEW_ROWS = 5     # rows of a result shown to the model
MAX_COLUMNS = 12     # columns shown (the rest are counted)
MAX_CELL = 60        # characters of one shown value
MAX_ERROR = 300      # characters of an error message

ASK = "Reply with the corrected SQLite query only, in a ```sql code block."


@dataclass(frozen=True)
class Preview:
    """What one query did, as the feedback shows it: ``ok`` and ``error`` (None when ok),
    ``n_rows`` (rows fetched), ``columns`` and the first ``rows`` already rendered as short
    strings, ``truncated`` (a row or byte limit cut the result), ``timed_out``."""

    ok: bool
    error: str | None = None
    n_rows: int = 0
    columns: tuple[str, ...] = ()
    rows: tuple[tuple[str, ...], ...] = ()
    truncated: bool = False
    timed_out: bool = False

    @property
    def has_rows(self) -> bool:
        """The query ran and returned at least one row: revision stops here by default."""
        return self.ok and self.n_rows > 0

    def summary(self) -> dict:
        """The record form, kept in a revision turn: what the model was told about."""
        return {"ok": self.ok, "error": self.error, "n_rows": self.n_rows,
                "truncated": self.truncated, "timed_out": self.timed_out}


NO_SQL = Preview(ok=False, error="no SQL query found in the reply")


def shorten(text: str, limit: int) -> str:
    """``text`` on one line, cut to ``limit`` characters with an ellipsis."""
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[:limit - 1] + "…"


def cell(value: Any, limit: int = MAX_CELL) -> str:
    """One value as the model sees it: NULL, a number, text cut to ``limit`` characters
    (control characters and newlines flattened), or ``<blob of N bytes>``."""
    if value is None:
        return "NULL"
    if isinstance(value, (bytes, bytearray, memoryview)):
        return f"<blob of {len(bytes(value)):,} bytes>"
    if isinstance(value, float):
        return shorten(repr(value), limit)
    text = "".join(ch if ch.isprintable() else " " for ch in str(value))
    return shorten(text, limit)


def preview_of(res: Result, rows: int = PREVIEW_ROWS) -> Preview:
    """A Result (which keeps its rows in the process that ran it) as a small Preview."""
    if not res.ok:
        return Preview(ok=False, error=shorten(res.error or "failed", MAX_ERROR),
                       timed_out=res.timed_out)
    names = tuple(cell(c, 40) for c in (res.columns or ())[:MAX_COLUMNS])
    shown = tuple(tuple(cell(v) for v in row[:MAX_COLUMNS]) for row in (res.rows or [])[:rows])
    return Preview(ok=True, n_rows=res.n_rows, columns=names, rows=shown,
                   truncated=res.truncated)


def _table(p: Preview, n_columns: int | None) -> str:
    extra = f" (and {n_columns - len(p.columns)} more)" if n_columns and n_columns > len(
        p.columns) else ""
    lines = ["Columns: " + ", ".join(p.columns) + extra]
    lines += [" | ".join(row) for row in p.rows]
    if p.n_rows > len(p.rows):
        lines.append(f"... ({p.n_rows - len(p.rows)} more row(s))")
    return "\n".join(lines)


def feedback(p: Preview, n_columns: int | None = None) -> str:
    """The user turn that follows the model's query: the error, that the result is empty,
    or the result's row count, columns and first rows. Never anything about the gold."""
    if p.timed_out:
        return (f"Running your query on the database did not finish in time ({p.error}). "
                f"Write a simpler query that answers the question. {ASK}")
    if not p.ok:
        return (f"Running your query on the database failed with this error:\n{p.error}\n"
                f"Fix the query so that it answers the question. {ASK}")
    if p.n_rows == 0:
        return ("Your query ran on the database but returned no rows. Check the tables, "
                "columns, join conditions and literal values (spelling, case) against the "
                f"schema. If the answer really is empty, repeat the query. {ASK}")
    cut = " (cut at the row limit)" if p.truncated else ""
    return (f"Your query ran on the database and returned {p.n_rows} row(s){cut}.\n"
            f"{_table(p, n_columns)}\nIf this answers the question, repeat the query; "
            f"otherwise correct it. {ASK}")


# -- running the candidates' queries in supervised worker processes -------------------------

_executor: Executor | None = None
_preview_rows = PREVIEW_ROWS


def _init_worker(limits: Limits, rows: int) -> None:
    global _executor, _preview_rows
    _executor = Executor(limits)
    _preview_rows = rows


def _run_job(job: tuple, slot: Slot | None = None, killed: dict | None = None) -> list:
    """One task's queries: (db_path, [sql ...]) -> [(Preview, column count) ...]."""
    assert _executor is not None, "runs in a worker set up by _init_worker"
    db_path, queries = job
    kept = slot.kept if slot is not None else {}
    out = []
    for i, sql in enumerate(queries):
        if i in kept:
            out.append(kept[i])
            continue
        if not isinstance(sql, str) or not sql.strip():
            out.append((NO_SQL, 0))
            continue
        if (killed or {}).get(i):
            res = killed_result(killed[i], _executor.limits)
        else:
            if slot is not None:
                slot.start(i)
            res = _executor.run(db_path, sql)
            if slot is not None:
                slot.stop()
        outcome = (preview_of(res, _preview_rows), len(res.columns or ()))
        if slot is not None:
            slot.keep(i, outcome)
        out.append(outcome)
    return out


def run_previews(jobs: Iterable[tuple[str, list[str | None]]], *, limits: Limits,
                 workers: int = 1, rows: int = PREVIEW_ROWS) -> Iterator[list]:
    """For each (db_path, [sql ...]) job, in order: [(Preview, column count) ...], each query
    run read-only under ``limits`` in a worker that is killed past the deadline. A query of
    None (no SQL in the reply) is not run: it gets ``NO_SQL``."""
    yield from supervised_map(_run_job, jobs, workers=workers,
                              hard_timeout_s=limits.timeout_s + GRACE_S,
                              init=_init_worker, init_args=(limits, rows))
