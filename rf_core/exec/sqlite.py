"""Run untrusted SQL against SQLite databases without letting it change or hang anything.

Defences, each because one alone is not enough:
- the database is opened read-only through a URI (``mode=ro``) with ``query_only`` on;
- an authorizer allows reading and SELECT only: every write, ATTACH, PRAGMA, transaction
  and ``load_extension`` is denied before it runs;
- a progress handler interrupts a query that passes its wall-clock deadline, also while rows
  are being fetched (recursive CTEs and cross joins are the usual culprits);
- SQLite's own limits cap string/blob length (``randomblob(1e9)``) and its heap, and the
  fetch loop caps rows and result bytes as each row arrives, marking the result truncated,
  so a worker holds at most the heap limit plus ``max_bytes`` plus one row; sorts and
  temporary tables stay in memory (``temp_store``), under that heap limit, instead of
  spilling to the system's temporary folder.

Nothing is ever created beside a database. A path is checked to be a regular file before
anything opens it (a device is read forever, a FIFO blocks its reader). A database in
rollback-journal mode (Spider's) is opened as it is: SQLite's locks and hot-journal checks
apply, and a read-only connection creates no file. A database in WAL mode is never opened in
place, since even a read-only connection creates ``-shm`` and ``-wal`` files beside it:
``DatabaseCopies`` copies its main file and ``-wal`` into a private folder (retried while
either changes during the copy) and folds the ``-wal``'s commits into that copy, which is read
instead. ``immutable=1`` on the original would skip both the locks and the ``-wal``'s commits.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import sqlite3
import stat
import tempfile
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from rf_core.errors import RFError

_ALLOWED_ACTIONS = {sqlite3.SQLITE_SELECT, sqlite3.SQLITE_READ, sqlite3.SQLITE_FUNCTION,
                    getattr(sqlite3, "SQLITE_RECURSIVE", 33)}
_DENIED_FUNCTIONS = {"load_extension", "fts3_tokenizer", "readfile", "writefile", "edit",
                     "sqlite_offset"}


@dataclass(frozen=True)
class Limits:
    """Per-query limits. Defaults are far above what any Spider gold query needs.

    ``timeout_s``: seconds of execution before the query is interrupted (``timed_out``);
    ``max_rows``: rows fetched before the result is cut (``truncated``); ``max_bytes``: bytes
    of the fetched rows before it is cut; ``max_value_bytes``: the largest single value
    (longer text or blobs fail the query); ``heap_bytes``: SQLite's memory for the query
    (past it the query fails, "out of memory"). rf-exec's --timeout, --max-rows and
    --max-bytes set the first three; a verifier receives them as ``limits``.
    """

    timeout_s: float = 5.0
    max_rows: int = 100_000
    max_bytes: int = 64 << 20
    max_value_bytes: int = 10 << 20
    heap_bytes: int = 1 << 30


@dataclass
class Result:
    """One execution. ``rows`` stays in the process that ran it; records get ``summary()``.

    ``ok``: the query ran to its end (or to a row or byte limit); ``error``: why not, one
    line (None when ok); ``rows``: the fetched rows (None when not ok); ``n_rows``: how many;
    ``digest``: ``result_digest(rows)``, equal for the same multiset of rows (None when not
    ok); ``ms``: execution time; ``truncated``: a row or byte limit cut the result (it is
    then neither voted on nor trusted as a match); ``timed_out``: ``Limits.timeout_s`` ended
    it (``ok`` is False).
    """

    ok: bool
    error: str | None = None
    rows: list[tuple] | None = None
    n_rows: int = 0
    digest: str | None = None
    ms: float = 0.0
    truncated: bool = False
    timed_out: bool = False
    columns: list[str] | None = None

    def summary(self) -> dict:
        """The record form (a candidate's ``exec``, a task's ``gold_exec``): every field but
        ``rows``."""
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


class DatabaseFileError(RFError):
    """A database path that cannot be read as a database: missing, not a regular file, not
    an SQLite file, or (in WAL mode) changing faster than it can be copied."""


_HEADER = b"SQLite format 3\x00"
_KINDS = ((stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
          (stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"), (stat.S_ISDIR, "a folder"))


def _not_regular(mode: int, path) -> DatabaseFileError:
    kind = next((name for test, name in _KINDS if test(mode)), "not a plain file")
    return DatabaseFileError(f"not a regular file ({kind}): {path}")


def open_regular(path: str | os.PathLike) -> int:
    """A read-only descriptor of ``path``, which must be a regular file (checked before and
    after opening, without blocking: the path may have turned into a FIFO in between).

    Never call this on a database that an SQLite connection of this process has open:
    closing any descriptor of a file drops every POSIX lock the process holds on it.
    """
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise DatabaseFileError(f"database not found: {path}") from None
    except OSError as exc:
        raise DatabaseFileError(f"cannot read {path}: {exc.strerror or exc}") from None
    if not stat.S_ISREG(st.st_mode):
        raise _not_regular(st.st_mode, path)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError as exc:
        raise DatabaseFileError(f"cannot read {path}: {exc.strerror or exc}") from None
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        raise _not_regular(mode, path)
    return fd


def is_wal_database(path: str | os.PathLike) -> bool:
    """Whether the database file at ``path`` is in WAL mode (its header's read or write
    version is 2). An empty file is an empty database in rollback mode."""
    fd = open_regular(path)
    try:
        header = os.pread(fd, 100, 0)
    finally:
        os.close(fd)
    if not header:
        return False
    if len(header) < 100 or not header.startswith(_HEADER):
        raise DatabaseFileError(f"not an SQLite database: {path}")
    return header[18] == 2 or header[19] == 2


COPY_PREFIX = "rf-db-"
_COPY_TRIES = 3


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def remove_stale_copies() -> None:
    """Delete the private-copy folders of processes that are gone (killed before their
    cleanup ran); they are named by the process id that made them."""
    pattern = re.compile(re.escape(COPY_PREFIX) + r"(\d+)-")
    try:
        names = os.listdir(tempfile.gettempdir())
    except OSError:
        return
    for name in names:
        match = pattern.match(name)
        if match and not pid_alive(int(match.group(1))):
            shutil.rmtree(os.path.join(tempfile.gettempdir(), name), ignore_errors=True)


def _stamp(path: Path) -> tuple:
    """What changes when a file is written: for the main file and its -wal."""
    out = []
    for p in (path, Path(f"{path}-wal")):
        try:
            st = os.stat(p)
            out.append((st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns))
        except FileNotFoundError:
            out.append(None)
    return tuple(out)


def _copy_regular(source: Path, target: Path) -> None:
    fd = open_regular(source)
    try:
        with os.fdopen(fd, "rb", closefd=False) as src, open(target, "wb") as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
    finally:
        os.close(fd)


def fold_wal_copy(source: Path, target: Path) -> None:
    """Write to ``target`` a rollback-mode database holding what the WAL database ``source``
    holds: its main file and its -wal copied, then the -wal's commits checkpointed into the
    copy. Only ``source``'s files are read; a copy during which either changed is retried."""
    for _ in range(_COPY_TRIES):
        before = _stamp(source)
        for suffix in ("-wal", "-shm", "-journal"):
            Path(f"{target}{suffix}").unlink(missing_ok=True)
        _copy_regular(source, target)
        if before[1] is not None:
            try:
                _copy_regular(Path(f"{source}-wal"), Path(f"{target}-wal"))
            except DatabaseFileError:
                continue  # checkpointed and removed while we copied: try again
        if _stamp(source) == before:
            break
    else:
        raise DatabaseFileError(f"{source} kept changing while it was being copied "
                                f"({_COPY_TRIES} tries)")
    conn = sqlite3.connect(str(target), isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode = DELETE")  # checkpoints the -wal, then drops it
    except sqlite3.Error as exc:
        raise DatabaseFileError(f"cannot read the WAL database {source}: {exc}") from None
    finally:
        conn.close()
    os.chmod(target, 0o444)


class DatabaseCopies:
    """For each database path, the file that is safe to open read-only: the database
    itself in rollback-journal mode; for a WAL database, a private copy with its -wal
    folded in (made once, in a folder deleted by ``close``). Errors are remembered too."""

    def __init__(self):
        self._folder: Path | None = None
        self._known: dict[str, str | DatabaseFileError] = {}

    def readable(self, db_path: str) -> str:
        known = self._known.get(db_path)
        if known is None:
            try:
                known = self._resolve(db_path)
            except DatabaseFileError as exc:
                known = exc
            except OSError as exc:
                known = DatabaseFileError(f"cannot copy the WAL database {db_path}: {exc}")
            self._known[db_path] = known
        if isinstance(known, DatabaseFileError):
            raise known
        return known

    def _resolve(self, db_path: str) -> str:
        if not is_wal_database(db_path):
            return db_path
        if self._folder is None:
            remove_stale_copies()
            self._folder = Path(tempfile.mkdtemp(prefix=f"{COPY_PREFIX}{os.getpid()}-"))
        source = Path(db_path)
        target = self._folder / f"{len(self._known)}" / source.name
        target.parent.mkdir()
        fold_wal_copy(source, target)
        return str(target)

    def close(self) -> None:
        if self._folder is not None:
            shutil.rmtree(self._folder, ignore_errors=True)
            self._folder = None
        self._known.clear()


def open_readonly(db_path: str | Path, limits: Limits = Limits()) -> sqlite3.Connection:
    """A read-only, locked-down connection to an existing database file in rollback-journal
    mode (``DatabaseCopies`` gives the file to open for one in WAL mode)."""
    path = Path(db_path)
    if is_wal_database(path):
        raise DatabaseFileError(f"a WAL database, which a read-only connection would create "
                                f"files beside: read DatabaseCopies().readable(path): {path}")
    uri = f"file:{quote(str(path.resolve()))}?mode=ro"
    conn = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False)
    conn.text_factory = _decode
    conn.execute("PRAGMA query_only = ON")
    # Sorts and temporary b-trees in memory, under the heap limit below: on disk they filled
    # the temporary folder (586 MB within one query's timeout, times --jobs).
    conn.execute("PRAGMA temp_store = MEMORY")
    # The heap limit is process-wide in SQLite; setting it per connection is idempotent.
    conn.execute(f"PRAGMA hard_heap_limit = {int(limits.heap_bytes)}")
    conn.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, limits.max_value_bytes)
    conn.setlimit(sqlite3.SQLITE_LIMIT_SQL_LENGTH, 1 << 20)
    conn.setlimit(sqlite3.SQLITE_LIMIT_ATTACHED, 0)
    conn.set_authorizer(_authorizer)
    return conn


class Executor:
    """Runs SQL under Limits, keeping a few read-only connections open for reuse.

    ``begin(db)`` ... ``end(db)`` puts the queries run on ``db`` in between into one read
    transaction: they all see one snapshot of the database, and a writer commits only after
    ``end`` (in rollback-journal mode it waits, up to its busy timeout, or gets "database is
    locked"). ``end`` also says whether another connection changed the database since
    ``begin``, which can happen only if the transaction was lost on the way (SQLite may roll
    back a read transaction after running out of memory).
    """

    def __init__(self, limits: Limits = Limits(), max_open: int = 8):
        self.limits = limits
        self.max_open = max_open
        self._conns: OrderedDict[str, sqlite3.Connection] = OrderedDict()
        self._copies = DatabaseCopies()
        self._versions: dict[str, int] = {}

    def connection(self, db_path: str) -> sqlite3.Connection:
        """The open read-only connection to ``db_path`` (opened, and the least recently used
        one closed, as needed)."""
        conn = self._conns.get(db_path)
        if conn is not None:
            self._conns.move_to_end(db_path)
            return conn
        conn = open_readonly(self._copies.readable(db_path), self.limits)
        self._conns[db_path] = conn
        if len(self._conns) > self.max_open:
            for old_path, old in self._conns.items():
                if not old.in_transaction:  # never end a snapshot that is in use
                    del self._conns[old_path]
                    old.close()
                    break
        return conn

    def close(self) -> None:
        """Close every connection (and the temporary copies of unreadable-in-place files)."""
        for conn in self._conns.values():
            conn.close()
        self._conns.clear()
        self._copies.close()

    def _trusted(self, conn: sqlite3.Connection, *statements: str) -> list:
        """Run this module's own statements (a transaction, a PRAGMA: all denied to
        untrusted SQL) past the authorizer; the first column of each one's first row."""
        conn.set_authorizer(None)
        try:
            out = []
            for sql in statements:
                row = conn.execute(sql).fetchone()
                out.append(row[0] if row else None)
            return out
        finally:
            conn.set_authorizer(_authorizer)

    def begin(self, db_path: str) -> Result | None:
        """Start the snapshot of ``db_path``; a failed Result if the database cannot be
        read at all (missing, locked, a hot journal, not a database)."""
        try:
            conn = self.connection(db_path)
        except (OSError, sqlite3.Error, DatabaseFileError) as exc:
            return Result(ok=False, error=f"cannot open database: {exc}")
        try:
            if conn.in_transaction:
                self._trusted(conn, "ROLLBACK")
            # reading the schema takes the read lock now, not at the first query
            _, _, version = self._trusted(conn, "BEGIN", "SELECT count(*) FROM sqlite_master",
                                          "PRAGMA data_version")
        except sqlite3.Error as exc:
            if conn.in_transaction:
                self._trusted(conn, "ROLLBACK")
            return Result(ok=False, error=f"{type(exc).__name__}: {exc}")
        self._versions[db_path] = version
        return None

    def end(self, db_path: str) -> bool:
        """End the snapshot of ``db_path``: whether the database changed since ``begin``."""
        before = self._versions.pop(db_path, None)
        conn = self._conns.get(db_path)
        if before is None or conn is None:
            return False
        try:
            (version,) = self._trusted(conn, "PRAGMA data_version")
            if conn.in_transaction:
                self._trusted(conn, "COMMIT")
        except sqlite3.Error:
            return True
        return version != before

    def run(self, db_path: str, sql: str | None) -> Result:
        """Execute one query; every failure becomes ``Result(ok=False, error=...)``."""
        if not isinstance(sql, str) or not sql.strip():
            return Result(ok=False, error="no SQL to run")
        start = time.perf_counter()
        try:
            conn = self.connection(db_path)
        except (OSError, sqlite3.Error, DatabaseFileError) as exc:
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
        columns = [str(d[0]) for d in cur.description or ()] if cur is not None else []
        return Result(ok=True, rows=rows, n_rows=len(rows), digest=result_digest(rows),
                      ms=ms, truncated=truncated, columns=columns)
