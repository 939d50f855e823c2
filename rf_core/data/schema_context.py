"""Prompt context for a database: CREATE TABLE lines with a few sample values per column.

The database is read as rf-exec reads it (rf_core.exec.sqlite.DatabaseCopies): a path that is
not a regular file is an error before anything opens it, and a WAL database is read from a
private copy with its -wal folded in, so nothing is created beside it.
"""

from __future__ import annotations

import sqlite3
from functools import lru_cache
from pathlib import Path
from urllib.parse import quote

from rf_core.exec.sqlite import DatabaseCopies, remove_stale_copies

MAX_VALUE_CHARS = 40


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _literal(v) -> str:
    if isinstance(v, str):
        text = v if len(v) <= MAX_VALUE_CHARS else v[:MAX_VALUE_CHARS] + "..."
        return "'" + text.replace("'", "''") + "'"
    if isinstance(v, bytes):
        return "<blob>"
    return repr(v)


def _sample_values(conn: sqlite3.Connection, table: str, column: str, n: int) -> list:
    try:
        rows = conn.execute(
            f"SELECT DISTINCT {_q(column)} FROM {_q(table)} "
            f"WHERE {_q(column)} IS NOT NULL AND {_q(column)} != '' LIMIT {int(n)}").fetchall()
    except sqlite3.Error:
        return []
    return [r[0] for r in rows]


@lru_cache(maxsize=256)
def describe_database(db_path: str, values: int = 3) -> str:
    """The schema as CREATE TABLE statements, each column followed by up to ``values``
    distinct sample values in a comment, and foreign keys as constraints.

    Raises DatabaseFileError (an RFError) for a path that is not a readable database file.
    """
    remove_stale_copies()
    copies = DatabaseCopies()
    try:
        return _describe(copies.readable(db_path), values)
    finally:
        copies.close()


def _describe(db_path: str, values: int) -> str:
    uri = f"file:{quote(str(Path(db_path).resolve()))}?mode=ro"
    conn = sqlite3.connect(uri, uri=True)
    conn.text_factory = lambda b: b.decode("utf-8", errors="ignore")
    try:
        tables = [r[0] for r in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' "
            "AND name NOT LIKE 'sqlite_%' ORDER BY rowid")]
        blocks = []
        for table in tables:
            cols = conn.execute(f"PRAGMA table_info({_q(table)})").fetchall()
            fks = conn.execute(f"PRAGMA foreign_key_list({_q(table)})").fetchall()
            pk_cols = [c[1] for c in sorted(cols, key=lambda c: c[5]) if c[5]]
            lines = []
            for _, name, ctype, _notnull, _default, pk in cols:
                decl = f"  {name} {ctype or ''}".rstrip()
                if pk and len(pk_cols) == 1:
                    decl += " PRIMARY KEY"
                samples = _sample_values(conn, table, name, values) if values > 0 else []
                if samples:
                    decl += ", -- e.g. " + ", ".join(_literal(v) for v in samples)
                else:
                    decl += ","
                lines.append(decl)
            if len(pk_cols) > 1:
                lines.append(f"  PRIMARY KEY ({', '.join(pk_cols)}),")
            for fk in fks:
                ref_col = fk[4] if fk[4] is not None else fk[3]
                lines.append(f"  FOREIGN KEY ({fk[3]}) REFERENCES {fk[2]}({ref_col}),")
            # the last item takes no comma; its comment (if any) stays after it
            last = lines[-1] if lines else ""
            if ", -- e.g." in last and not last.lstrip().startswith(("PRIMARY", "FOREIGN")):
                lines[-1] = last.replace(", -- e.g.", " -- e.g.", 1)
            elif last.endswith(","):
                lines[-1] = last[:-1]
            blocks.append(f"CREATE TABLE {table} (\n" + "\n".join(lines) + "\n);")
        return "\n".join(blocks)
    finally:
        conn.close()
