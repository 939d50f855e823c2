"""What a revision turn tells the model: what its query did on the database, and nothing else.

The feedback is built from the candidate's own SQL run read-only on the task's database, under
the same limits and in the same kind of supervised worker processes as rf-exec. No gold query,
gold result or verdict is an input of any function here, so no gold information can reach a
prompt (tests/test_revise.py checks it on tasks whose gold is wrong).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Iterable, Iterator

from rf_core.exec.pool import GRACE_S, Slot, supervised_map
from rf_core.exec.sqlite import Executor, Limits, Result
from rf_core.exec.verify import killed_result

PREVIEW_ROWS = 5     # rows of a result shown to the model
MAX_COLUMNS = 12     # columns shown (the rest are counted)
MAX_CELL = 60        # characters of one shown value
MAX_ERROR = 300      # characters of an error message
MAX_TABLES = 8       # tables listed in a schema hint
MAX_TABLE_COLUMNS = 40  # columns listed per table

ASK = "Reply with the corrected SQLite query only, in a ```sql code block."


@dataclass(frozen=True)
class Preview:
    """What one query did, as the feedback shows it: ``ok`` and ``error`` (None when ok),
    ``n_rows`` (rows fetched), ``columns`` and the first ``rows`` already rendered as short
    strings, ``truncated`` (a row or byte limit cut the result), ``timed_out``; ``tables``:
    for a query that failed or returned nothing, the tables it names (or, where it names
    none that exist, the database's) with their columns, read from the database itself:
    ``(("flight AS T2", ("flight_id", ...)), ...)``; ``all_tables``: whether those are every
    table of the database rather than the query's own."""

    ok: bool
    error: str | None = None
    n_rows: int = 0
    columns: tuple[str, ...] = ()
    rows: tuple[tuple[str, ...], ...] = ()
    truncated: bool = False
    timed_out: bool = False
    tables: tuple[tuple[str, tuple[str, ...]], ...] = ()
    all_tables: bool = False

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


def _schema(p: Preview) -> str:
    """The tables a failed or empty query uses, with their columns, one line each."""
    if not p.tables:
        return ""
    head = ("The database has these tables" if p.all_tables else
            "The tables in your query have these columns")
    return head + ":\n" + "\n".join(f"- {name}: {', '.join(cols)}" for name, cols in p.tables)


def feedback(p: Preview, n_columns: int | None = None) -> str:
    """The user turn that follows the model's query: the error, that the result is empty,
    or the result's row count, columns and first rows; for a failed or empty query also the
    columns of the tables it uses (from the database, as the prompt's schema shows them).
    Never anything about the gold."""
    schema = _schema(p)
    schema = f"\n{schema}" if schema else ""
    if p.timed_out:
        return (f"Running your query on the database did not finish in time ({p.error}). "
                f"Write a simpler query that answers the question. {ASK}")
    if not p.ok:
        return (f"Running your query on the database failed with this error:\n{p.error}"
                f"{schema}\nA query that fails is wrong: write a different one that uses only "
                f"these columns, each with its own table, and answers the question. {ASK}")
    if p.n_rows == 0:
        return ("Your query ran on the database but returned no rows." + schema +
                "\nCheck the tables, columns, join conditions and literal values (spelling, "
                "case) against the schema. If the answer really is empty, repeat the query; "
                f"otherwise write a corrected one. {ASK}")
    cut = " (cut at the row limit)" if p.truncated else ""
    return (f"Your query ran on the database and returned {p.n_rows} row(s){cut}.\n"
            f"{_table(p, n_columns)}\nIf this answers the question, repeat the query; "
            f"otherwise correct it. {ASK}")


def query_tables(sql: str) -> list[tuple[str, str | None]]:
    """(table, alias or None) for each table ``sql`` names, in order, once each; empty when
    sqlglot cannot parse it."""
    import logging

    import sqlglot
    from sqlglot import exp
    from sqlglot.errors import SqlglotError

    logging.getLogger("sqlglot").setLevel(logging.ERROR)
    try:
        tree = sqlglot.parse_one(sql, read="sqlite")
    except (SqlglotError, RecursionError, ValueError, TypeError, AttributeError):
        return []
    out: list[tuple[str, str | None]] = []
    for table in tree.find_all(exp.Table) if tree is not None else ():
        key = (table.name, table.alias or None)
        if table.name and key not in out:
            out.append(key)
    return out


def schema_hint(executor: Executor, db_path: str, sql: str) -> tuple[tuple, bool]:
    """(tables, all_tables) for ``Preview``: the columns of the tables ``sql`` names that
    exist, each as ``name AS alias``; where it names none, every table of the database. Read
    with the executor's own read-only queries (table names come from sqlite_master, so
    nothing of the model's text is run)."""
    listed = executor.run(db_path, "SELECT name FROM sqlite_master WHERE type IN "
                                   "('table', 'view') ORDER BY name")
    if not listed.ok:
        return (), False
    existing = {str(r[0]).lower(): str(r[0]) for r in listed.rows or []}
    used = [(existing[t.lower()], alias) for t, alias in query_tables(sql)
            if t.lower() in existing]
    every = not used
    if every:
        used = [(name, None) for name in existing.values()]
    out = []
    for name, alias in used[:MAX_TABLES]:
        res = executor.run(db_path, 'SELECT * FROM "{}" LIMIT 0'.format(name.replace('"', '""')))
        cols = tuple(cell(c, 40) for c in (res.columns or ())[:MAX_TABLE_COLUMNS])
        label = f"{name} AS {alias}" if alias and alias.lower() != name.lower() else name
        out.append((label, cols))
    return tuple(out), every


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
        preview = preview_of(res, _preview_rows)
        if not preview.has_rows and not preview.timed_out:
            tables, every = schema_hint(_executor, db_path, sql)
            preview = replace(preview, tables=tables, all_tables=every)
        outcome = (preview, len(res.columns or ()))
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
