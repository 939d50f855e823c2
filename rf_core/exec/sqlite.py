"""Run untrusted SQL against SQLite databases without letting it change or hang anything.

Defences, each because one alone is not enough:
- the database is opened read-only through a URI (``mode=ro``) with ``query_only`` on;
- an authorizer allows reading and SELECT only: every write, ATTACH, PRAGMA, transaction
  and ``load_extension`` is denied before it runs;
- a progress handler interrupts a query that passes its wall-clock deadline, also while rows
  are being fetched (recursive CTEs and cross joins are the usual culprits);
- SQLite's own limits cap string/blob length (``randomblob(1e9)``) and its heap, and the
  fetch loop caps rows and result bytes as each row arrives, marking the result truncated,
  so a worker holds at most the heap limit plus ``max_bytes`` plus one row.
"""

from __future__ import annotations

import hashlib
import sqlite3
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

_ALLOWED_ACTIONS = {sqlite3.SQLITE_SELECT, sqlite3.SQLITE_READ, sqlite3.SQLITE_FUNCTION,
                    getattr(sqlite3, "SQLITE_RECURSIVE", 33)}
_DENIED_FUNCTIONS = {"load_extension", "fts3_tokenizer", "readfile", "writefile", "edit",
                     "sqlite_offset"}


@dataclass(frozen=True)
class Limits:
    """Per-query limits. Defaults are far above what any Spider gold query needs."""

    timeout_s: float = 5.0
    max_rows: int = 100_000
    max_bytes: int = 64 << 20
    max_value_bytes: int = 10 << 20
    heap_bytes: int = 1 << 30


@dataclass
class Result:
    """One execution. ``rows`` stays in the process that ran it; records get ``summary()``."""

    ok: bool
    error: str | None = None
    rows: list[tuple] | None = None
    n_rows: int = 0
    digest: str | None = None
    ms: float = 0.0
    truncated: bool = False
    timed_out: bool = False

    def summary(self) -> dict:
        return {"ok": self.ok, "error": self.error, "n_rows": self.n_rows,
                "digest": self.digest, "ms": round(self.ms, 3), "truncated": self.truncated,
                "timed_out": self.timed_out}


def _value_key(v) -> str:
    """A text key equal for values Python compares equal (1 == 1.0), distinct otherwise."""
    if v is None:
        return "n"
    if isinstance(v, (bool, int)):
        return f"i{int(v)}"
    if isinstance(v, float):
        if v.is_integer():
            return f"i{int(v)}"
        return f"f{v!r}"
    if isinstance(v, bytes):
        return "b" + v.hex()
    return "s" + str(v)


def result_digest(rows: list[tuple]) -> str:
    """Order-insensitive digest of a result: equal for the same multiset of rows.

    Self-consistency voting groups candidates by it; column order still counts.
    """
    keys = sorted("\x1f".join(_value_key(v) for v in row) for row in rows)
    h = hashlib.blake2b(digest_size=12)
    h.update(str(len(rows[0]) if rows else 0).encode())
    for k in keys:
        h.update(b"\x1e")
        h.update(k.encode("utf-8", "surrogatepass"))
    return h.hexdigest()


def _row_bytes(row: tuple) -> int:
    n = 0
    for v in row:
        n += len(v) if isinstance(v, (str, bytes)) else 8
    return n


def _authorizer(action, arg1, arg2, dbname, source):
    if action not in _ALLOWED_ACTIONS:
        return sqlite3.SQLITE_DENY
    if action == sqlite3.SQLITE_FUNCTION and (arg2 or "").lower() in _DENIED_FUNCTIONS:
        return sqlite3.SQLITE_DENY
    return sqlite3.SQLITE_OK


def _decode(b: bytes) -> str:
    # Some Spider databases hold invalid UTF-8; decode leniently, as the official evaluator does.
    return b.decode("utf-8", errors="ignore")


def open_readonly(db_path: str | Path, limits: Limits = Limits()) -> sqlite3.Connection:
    """A read-only, locked-down connection to an existing database file."""
    path = Path(db_path)
    if not path.is_file():
        raise FileNotFoundError(f"database not found: {db_path}")
    uri = f"file:{quote(str(path.resolve()))}?mode=ro"
    conn = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False)
    conn.text_factory = _decode
    conn.execute("PRAGMA query_only = ON")
    # The heap limit is process-wide in SQLite; setting it per connection is idempotent.
    conn.execute(f"PRAGMA hard_heap_limit = {int(limits.heap_bytes)}")
    conn.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, limits.max_value_bytes)
    conn.setlimit(sqlite3.SQLITE_LIMIT_SQL_LENGTH, 1 << 20)
    conn.setlimit(sqlite3.SQLITE_LIMIT_ATTACHED, 0)
    conn.set_authorizer(_authorizer)
    return conn


class Executor:
    """Runs SQL under Limits, keeping a few read-only connections open for reuse."""

    def __init__(self, limits: Limits = Limits(), max_open: int = 8):
        self.limits = limits
        self.max_open = max_open
        self._conns: OrderedDict[str, sqlite3.Connection] = OrderedDict()

    def connection(self, db_path: str) -> sqlite3.Connection:
        conn = self._conns.get(db_path)
        if conn is not None:
            self._conns.move_to_end(db_path)
            return conn
        conn = open_readonly(db_path, self.limits)
        self._conns[db_path] = conn
        if len(self._conns) > self.max_open:
            _, old = self._conns.popitem(last=False)
            old.close()
        return conn

    def close(self) -> None:
        for conn in self._conns.values():
            conn.close()
        self._conns.clear()

    def run(self, db_path: str, sql: str | None) -> Result:
        """Execute one query; every failure becomes ``Result(ok=False, error=...)``."""
        if not isinstance(sql, str) or not sql.strip():
            return Result(ok=False, error="no SQL to run")
        start = time.perf_counter()
        try:
            conn = self.connection(db_path)
        except (OSError, sqlite3.Error) as exc:
            return Result(ok=False, error=f"cannot open database: {exc}")
        limits = self.limits
        deadline = start + limits.timeout_s
        state = {"timed_out": False}

        def progress():
            if time.perf_counter() > deadline:
                state["timed_out"] = True
                return 1
            return 0

        conn.set_progress_handler(progress, 1000)
        rows: list[tuple] = []
        truncated = False
        cur = None
        try:
            cur = conn.execute(sql)
            size = 0
            # One row at a time, counted as it arrives: the rows held never pass max_bytes
            # by more than the one row that crossed it (fetching in batches first let 256
            # rows of 10 MB blobs through before the cap was looked at).
            for row in cur:
                size += _row_bytes(row)
                if len(rows) >= limits.max_rows or size > limits.max_bytes:
                    truncated = True
                    break
                rows.append(row)
        except Exception as exc:  # noqa: BLE001 - untrusted SQL may raise anything sqlite3 has
            ms = (time.perf_counter() - start) * 1000
            if state["timed_out"]:
                return Result(ok=False, error=f"timeout after {limits.timeout_s:g} s",
                              ms=ms, timed_out=True)
            return Result(ok=False, error=f"{type(exc).__name__}: {exc}", ms=ms)
        finally:
            if cur is not None:
                try:
                    cur.close()
                except sqlite3.Error:
                    pass
            conn.set_progress_handler(None, 0)
        ms = (time.perf_counter() - start) * 1000
        return Result(ok=True, rows=rows, n_rows=len(rows), digest=result_digest(rows),
                      ms=ms, truncated=truncated)
