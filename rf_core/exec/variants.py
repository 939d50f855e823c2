"""Test-suite database variants: perturbed copies of a database that keep its schema.

A candidate that returns the gold result on one database may still be a wrong query (a
hard-coded ``SELECT 16``, a filter on the wrong column that happens to pick the same rows).
Spider's test-suite accuracy runs each prediction on several variants of the database for
this reason; rf-exec's ``-o variants N`` does the same with N variants built here.

Variant i of a database is deterministic: its random generator is seeded with the source's
content hash, the seed and i. Each variant applies some of these perturbations, table by
table, and never changes the schema:
- drop rows (about a quarter; a table keeps at least one row; rows whose foreign key
  pointed at a dropped row go too, so the variant breaks no reference the original kept),
- duplicate rows (about a fifth; an integer primary key gets a fresh value; a copy that a
  UNIQUE constraint refuses is left out),
- change numeric values (about a third of the cells of non-key numeric columns, by a small
  amount) and text values (cells of non-key text columns swapped with other rows' values),
- shuffle the physical row order (rows re-inserted in random order; tables whose rowid is
  their INTEGER PRIMARY KEY keep key order, as SQLite stores them so).
Variant 0 drops and shuffles, 1 duplicates and shuffles, 2 changes values, 3 does all of
them; later ones repeat the cycle with other random draws.

Key columns (primary keys, foreign keys and the columns foreign keys point at) keep their
values so joins still find rows. The database's own triggers are dropped from the copy while
it is perturbed and created again afterwards: the schema stays, and they never run (a
``RAISE`` on delete stopped the build; an audit trigger filled its table). The original file
is only ever opened read-only (SQLite's backup API copies it); a WAL database is read
through its private copy (rf_core.exec.sqlite.DatabaseCopies), so the content hash covers
the commits in its -wal. Variants are built once into a cache folder, beside the model cache
(``~/.cache/reasonforge/variants`` or ``$RF_CACHE_DIR/variants``), named by that content
hash, so a changed source gets new variants; built files are made read-only.

Bounds: at most ``MAX_VARIANTS`` per database; a database's build reports progress on
stderr once it has run ``PROGRESS_FIRST_S`` seconds, and stops past ``max_s`` (its tasks are
then checked on the original only, and say so). Build files of a process that is gone
(``.NAME.PID.tmp`` and its journal) and empty cache folders are removed on the next run.
"""

from __future__ import annotations

import hashlib
import os
import random
import re
import sqlite3
import tempfile
import time
from pathlib import Path
from typing import Callable
from urllib.parse import quote

from rf_core.exec.sqlite import DatabaseCopies, DatabaseFileError, open_regular, pid_alive
from rf_core.records.files import write_atomic

ALGORITHM = 3  # bump when the perturbations change, so cached variants are rebuilt
DEFAULT_MAX_MB = 256
DEFAULT_MAX_S = 300.0  # per database, all its variants
MAX_VARIANTS = 32
PROGRESS_FIRST_S = 2.0
PROGRESS_EVERY_S = 10.0
_CHUNK = 4096  # rows between two looks at the clock; values per DELETE of a cascade
_clock = time.monotonic  # tests make builds look slow with a clock of their own
_clock_wall = time.time
_FRESH_S = 600.0  # an empty cache folder younger than this may be a build just starting
_FOLDER = re.compile(r".+-[0-9a-f]{20}")
_BUILD_FILE = re.compile(r"\..+\.(\d+)\.tmp(-journal|-wal|-shm)?")
_PERTURBATIONS = ({"drop", "shuffle"}, {"duplicate", "shuffle"}, {"values"},
                  {"drop", "duplicate", "values", "shuffle"})


def default_cache_root() -> Path:
    from rf_core.model.cache import cache_dir

    return cache_dir() / "variants"


class OverTime(Exception):
    """A build that passed its time bound."""


class _Budget:
    """A database's build time: progress lines while it runs long, OverTime past max_s."""

    def __init__(self, max_s: float, say: Callable[[str], None], what: Callable[[], str]):
        self.start = _clock()
        self.max_s = max_s
        self.say = say
        self.what = what
        self.last: float | None = None

    def elapsed(self) -> float:
        return _clock() - self.start

    def over(self) -> bool:
        """Whether the bound is passed; prints a progress line when one is due."""
        now = _clock()
        elapsed = now - self.start
        if elapsed > self.max_s:
            return True
        if elapsed >= PROGRESS_FIRST_S and (self.last is None
                                            or now - self.last >= PROGRESS_EVERY_S):
            self.last = now
            self.say(f"{self.what()}, {elapsed:.0f} s")
        return False

    def check(self) -> None:
        if self.over():
            raise OverTime()


def _content_hash(path: Path) -> str:
    h = hashlib.blake2b(digest_size=10)
    fd = open_regular(path)
    try:
        with os.fdopen(fd, "rb", closefd=False) as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
    finally:
        os.close(fd)
    return h.hexdigest()


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _tables(conn: sqlite3.Connection) -> list[str]:
    return [r[0] for r in conn.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' "
        "ORDER BY name")]


def _key_columns(conn: sqlite3.Connection, tables: list[str]) -> dict[str, set[str]]:
    keys: dict[str, set[str]] = {t.lower(): set() for t in tables}
    for t in tables:
        for row in conn.execute(f"PRAGMA table_info({_q(t)})"):
            if row[5]:  # pk position
                keys[t.lower()].add(row[1].lower())
        for fk in conn.execute(f"PRAGMA foreign_key_list({_q(t)})"):
            keys[t.lower()].add(str(fk[3]).lower())
            if fk[4] and str(fk[2]).lower() in keys:
                keys[str(fk[2]).lower()].add(str(fk[4]).lower())
    return keys


def _foreign_keys(conn: sqlite3.Connection, tables: list[str]) -> list[tuple[str, str, str, str]]:
    """(child table, child column, parent table, parent column) of every foreign key whose
    parent table exists; a key without a parent column points at the parent's primary key."""
    names = {t.lower(): t for t in tables}
    out = []
    for t in tables:
        for fk in conn.execute(f"PRAGMA foreign_key_list({_q(t)})"):
            parent = names.get(str(fk[2]).lower())
            if parent is None:
                continue
            to = fk[4]
            if not to:
                pks = [r[1] for r in conn.execute(f"PRAGMA table_info({_q(parent)})") if r[5]]
                if len(pks) != 1:
                    continue
                to = pks[0]
            out.append((t, fk[3], parent, to))
    return out


def _column_values(conn: sqlite3.Connection, table: str, column: str) -> set:
    try:
        return {r[0] for r in conn.execute(f"SELECT {_q(column)} FROM {_q(table)}")}
    except sqlite3.Error:
        return set()


def _cascade_drops(conn: sqlite3.Connection, fks: list, before: dict,
                   budget: _Budget) -> None:
    """Rows whose parent row was dropped go too, so a join the original database's keys
    made redundant stays redundant (variants break no reference the original kept)."""
    for _ in range(len(fks) + 1):
        changed = False
        for child, ccol, parent, pcol in fks:
            gone = list(before[(parent, pcol)] - _column_values(conn, parent, pcol))
            if None in gone:
                gone.remove(None)
            # in pieces: one statement takes at most SQLITE_LIMIT_VARIABLE_NUMBER values
            for i in range(0, len(gone), _CHUNK):
                budget.check()
                part = gone[i:i + _CHUNK]
                marks = ", ".join("?" * len(part))
                try:
                    cur = conn.execute(
                        f"DELETE FROM {_q(child)} WHERE {_q(ccol)} IN ({marks})", part)
                except sqlite3.Error:
                    break
                changed |= cur.rowcount > 0
        if not changed:
            return


def _integer_pk(conn: sqlite3.Connection, table: str) -> int | None:
    """Index of the column that is the table's rowid alias (INTEGER PRIMARY KEY), if any."""
    info = list(conn.execute(f"PRAGMA table_info({_q(table)})"))
    pks = [r for r in info if r[5]]
    if len(pks) == 1 and (pks[0][2] or "").strip().upper() == "INTEGER":
        return pks[0][0]
    return None


def _changed_number(v, rng: random.Random):
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return v
    if isinstance(v, int):
        return v + rng.choice([-3, -2, -1, 1, 2, 3])
    return round(v * rng.uniform(0.8, 1.2), 4) if v else rng.uniform(0.1, 2.0)


def _perturb_table(conn: sqlite3.Connection, table: str, keys: set[str], kinds: set[str],
                   rng: random.Random, budget: _Budget) -> None:
    cols = [r[1] for r in conn.execute(f"PRAGMA table_info({_q(table)})")]
    rows = []
    for r in conn.execute(f"SELECT * FROM {_q(table)}"):
        rows.append(list(r))
        if len(rows) % _CHUNK == 0:
            budget.check()
    if not rows or not cols:
        return
    ipk = _integer_pk(conn, table)
    if "drop" in kinds and len(rows) > 1:
        n_drop = min(len(rows) - 1, max(1, round(len(rows) * 0.25)))
        # one pass (deleting from the list one by one was quadratic: 16 s for 10^6 rows)
        dropped = set(rng.sample(range(len(rows)), n_drop))
        rows = [r for i, r in enumerate(rows) if i not in dropped]
    if "values" in kinds:
        for j, col in enumerate(cols):
            budget.check()
            if col.lower() in keys:
                continue
            values = [r[j] for r in rows]
            if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values
                   if v is not None) and any(v is not None for v in values):
                for r in rows:
                    if r[j] is not None and rng.random() < 0.35:
                        r[j] = _changed_number(r[j], rng)
            elif any(isinstance(v, str) for v in values) and len(rows) > 1:
                for r in rows:
                    if isinstance(r[j], str) and rng.random() < 0.35:
                        other = rows[rng.randrange(len(rows))]
                        r[j], other[j] = other[j], r[j]
    extra: list[list] = []
    if "duplicate" in kinds:
        n_dup = max(1, round(len(rows) * 0.2))
        top = max((r[ipk] for r in rows if isinstance(r[ipk], int)), default=0) \
            if ipk is not None else 0
        for i in rng.sample(range(len(rows)), min(n_dup, len(rows))):
            copy = list(rows[i])
            if ipk is not None:
                top += 1
                copy[ipk] = top
            extra.append(copy)
    order = rows + extra
    if "shuffle" in kinds:
        rng.shuffle(order)
    if ipk is not None:
        # SQLite stores these rows in key order whatever the insert order, and inserts in
        # key order are much faster; an original row also goes in before its duplicates,
        # so a UNIQUE column refuses the copy, not the original
        order.sort(key=lambda r: r[ipk] if isinstance(r[ipk], int) else -1)
    marks = ", ".join("?" * len(cols))
    conn.execute(f"DELETE FROM {_q(table)}")
    # OR IGNORE: a row that a UNIQUE, NOT NULL or CHECK constraint refuses (a duplicate,
    # mostly) is left out, as one INSERT per row catching IntegrityError did, many times
    # faster
    insert = f"INSERT OR IGNORE INTO {_q(table)} VALUES ({marks})"
    for i in range(0, len(order), _CHUNK):
        budget.check()
        conn.executemany(insert, order[i:i + _CHUNK])


def build_variant(source: Path, target: Path, seed: str, index: int,
                  budget: _Budget | None = None) -> None:
    """Write variant ``index`` of ``source`` (a database in rollback-journal mode) to
    ``target`` (overwritten); OverTime when ``budget`` runs out first."""
    budget = budget or _Budget(float("inf"), lambda msg: None, lambda: "")

    def interrupt() -> int:  # inside long SQLite steps too (the copy, VACUUM)
        return 1 if budget.over() else 0

    def run(step: Callable[[], None]) -> None:
        try:
            step()
        except sqlite3.OperationalError as exc:
            if "interrupted" in str(exc) and budget.elapsed() > budget.max_s:
                raise OverTime() from None
            raise

    uri = f"file:{quote(str(source.resolve()))}?mode=ro"
    src = sqlite3.connect(uri, uri=True)
    src.text_factory = lambda b: b.decode("utf-8", errors="ignore")
    try:
        dst = sqlite3.connect(str(target), isolation_level=None)
        try:
            dst.set_progress_handler(interrupt, 100_000)
            run(lambda: src.backup(dst, pages=1024, progress=lambda *a: budget.check()))
        finally:
            dst.close()
    finally:
        src.close()
    rng = random.Random(f"{seed}:{index}")
    kinds = _PERTURBATIONS[index % len(_PERTURBATIONS)]
    conn = sqlite3.connect(str(target), isolation_level=None)
    conn.text_factory = lambda b: b.decode("utf-8", errors="ignore")
    conn.set_progress_handler(interrupt, 100_000)
    try:
        conn.execute("PRAGMA foreign_keys = OFF")
        conn.execute("BEGIN")
        # The database's own triggers must not run on the perturbing writes: out of the
        # copy while it changes, back (same text, same order) before it is committed.
        triggers = list(conn.execute(
            "SELECT name, sql FROM sqlite_master WHERE type = 'trigger' AND sql IS NOT NULL "
            "ORDER BY rowid"))
        for name, _ in triggers:
            conn.execute(f"DROP TRIGGER {_q(name)}")
        tables = _tables(conn)
        keys = _key_columns(conn, tables)
        fks = _foreign_keys(conn, tables)
        before = {(p, c): _column_values(conn, p, c) for _, _, p, c in fks}
        for t in tables:
            run(lambda: _perturb_table(conn, t, keys[t.lower()], kinds, rng, budget))
        if "drop" in kinds:
            run(lambda: _cascade_drops(conn, fks, before, budget))
        for _, sql in triggers:
            conn.execute(sql)
        conn.execute("COMMIT")
        run(lambda: conn.execute("VACUUM"))
    finally:
        conn.close()


def _remove_leftovers(root: Path) -> None:
    """Build files of processes that are gone, and cache folders left empty (a build that
    failed, or a file that was no database, in earlier versions)."""
    try:
        folders = [p for p in root.iterdir() if p.is_dir() and _FOLDER.fullmatch(p.name)]
    except OSError:
        return
    for folder in folders:
        try:
            for p in folder.iterdir():
                match = _BUILD_FILE.fullmatch(p.name)
                if match and not pid_alive(int(match.group(1))):
                    p.unlink(missing_ok=True)
            # only when empty, and not just made: a build starting now makes its folder,
            # then its file
            if _clock_wall() - folder.stat().st_mtime > _FRESH_S:
                folder.rmdir()
        except OSError:
            pass


class VariantCache:
    """Builds and remembers the variants of each database a run meets (in the parent)."""

    def __init__(self, n: int, *, seed: int = 0, root: str | Path | None = None,
                 max_mb: float = DEFAULT_MAX_MB, max_s: float = DEFAULT_MAX_S,
                 report: Callable[[str], None] | None = None,
                 copies: DatabaseCopies | None = None):
        if not 0 <= n <= MAX_VARIANTS:
            raise ValueError(f"the number of variants must be 0 to {MAX_VARIANTS}")
        if root is not None and not str(root):
            raise ValueError("the variant cache folder is empty; leave it out for the default")
        self.n = n
        self.seed = seed
        self.max_mb = max_mb
        self.max_s = max_s
        self.report = report or (lambda msg: None)
        self.root = Path(root) if root is not None else default_cache_root()
        self._copies = copies
        self._own_copies = copies is None
        self._tmp: tempfile.TemporaryDirectory | None = None
        self._cleaned = False
        self._known: dict[str, list[str]] = {}
        self._skipped: dict[str, str] = {}
        self._folders: dict[str, tuple[str | None, str | None]] = {}
        self._digests: dict[str, str] = {}

    def _digest(self, db_path: str, source: Path) -> str:
        if db_path not in self._digests:
            self._digests[db_path] = _content_hash(source)
        return self._digests[db_path]

    def folder(self, db_path: str) -> tuple[str | None, str | None]:
        """(the cache folder of ``db_path``'s variants, named by its content hash, None),
        or (None, why there is none): where task-specific gold variants go
        (rf_core.exec.gold_variants). Works whatever ``n`` is."""
        if db_path not in self._folders:
            if self._copies is None:
                self._copies = DatabaseCopies()
            try:
                source = Path(self._copies.readable(db_path))
                size_mb = source.stat().st_size / (1 << 20)
                if size_mb > self.max_mb:
                    self._folders[db_path] = (None, f"{size_mb:.0f} MB is over "
                                                    f"variants_max_mb {self.max_mb:g}")
                else:
                    digest = self._digest(db_path, source)
                    self._folders[db_path] = (
                        str(self._folder() / f"{Path(db_path).stem}-{digest}"), None)
            except (DatabaseFileError, OSError) as exc:
                self._folders[db_path] = (None, f"cannot copy the database: {exc}")
        return self._folders[db_path]

    def _folder(self) -> Path:
        if self._tmp is not None:
            return Path(self._tmp.name)
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            probe = tempfile.NamedTemporaryFile(dir=self.root, prefix=".probe-")
            probe.close()
        except OSError as exc:
            from rf_core.exec.sqlite import COPY_PREFIX  # its leftovers are cleaned with those

            self._tmp = tempfile.TemporaryDirectory(
                prefix=f"{COPY_PREFIX}{os.getpid()}-variants-")
            self.report(f"cannot write the variant cache {self.root} "
                        f"({exc.strerror or exc}); building variants in a temporary folder")
            return Path(self._tmp.name)
        if not self._cleaned:
            self._cleaned = True
            _remove_leftovers(self.root)
        return self.root

    def skipped(self, db_path: str) -> str | None:
        """Why ``db_path``'s tasks get no variants, when they were asked for and cannot."""
        return self._skipped.get(db_path)

    def _skip(self, db_path: str, reason: str) -> list[str]:
        self._skipped[db_path] = reason
        self._known[db_path] = []
        return []

    def paths(self, db_path: str) -> list[str]:
        """Paths of the n variants of ``db_path`` (built if needed); [] when it is skipped."""
        if self.n == 0:
            return []
        if db_path in self._known:
            return self._known[db_path]
        if self._copies is None:
            self._copies = DatabaseCopies()
        try:
            # checked first: a device is hashed forever, a FIFO blocks on open
            source = Path(self._copies.readable(db_path))
            size_mb = source.stat().st_size / (1 << 20)
        except (DatabaseFileError, OSError):
            self._known[db_path] = []  # such a database fails on its own, per task
            return []
        if size_mb > self.max_mb:
            self.report(f"{db_path}: {size_mb:.0f} MB is over variants_max_mb "
                        f"{self.max_mb:g}; its tasks are checked on the original only")
            return self._skip(db_path, f"{size_mb:.0f} MB is over variants_max_mb "
                                       f"{self.max_mb:g}")
        name = Path(db_path).name
        out: list[str] = []
        budget = _Budget(self.max_s, self.report,
                         lambda: f"building {self.n} variants of {name} ({size_mb:.0f} MB): "
                                 f"variant {len(out) + 1} of {self.n}")
        folder = None
        try:
            digest = self._digest(db_path, source)
            folder = self._folder() / f"{Path(db_path).stem}-{digest}"
            for i in range(self.n):
                target = folder / f"a{ALGORITHM}-s{self.seed}-v{i}.sqlite"
                if not target.is_file():
                    with write_atomic(target) as tmp:
                        build_variant(source, tmp, f"{digest}:{self.seed}", i, budget)
                        os.chmod(tmp, 0o444)
                out.append(str(target))
        except OverTime:
            self.report(f"{db_path}: building its variants took over variants_max_s "
                        f"{self.max_s:g} s; stopped, its tasks are checked on the original "
                        "only")
            return self._skip(db_path, f"building them took over variants_max_s "
                                       f"{self.max_s:g} s")
        except (OSError, sqlite3.Error, DatabaseFileError) as exc:
            self.report(f"{db_path}: cannot build its variants ({exc}); its tasks are "
                        "checked on the original only")
            return self._skip(db_path, f"cannot build them: {exc}")
        finally:
            if folder is not None and not out:
                try:
                    folder.rmdir()  # nothing built here: leave no empty folder
                except OSError:
                    pass
        if budget.last is not None:
            self.report(f"built {self.n} variants of {name} in {budget.elapsed():.1f} s")
        self._known[db_path] = out
        return out

    def close(self) -> None:
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None
        if self._own_copies and self._copies is not None:
            self._copies.close()
            self._copies = None
