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
values so joins still find rows. The original file is only ever opened read-only (SQLite's
backup API copies it). Variants are built once into a cache folder, beside the model cache
(``~/.cache/reasonforge/variants`` or ``$RF_CACHE_DIR/variants``), named by the source's
content hash, so a changed source gets new variants; built files are made read-only.
"""

from __future__ import annotations

import hashlib
import os
import random
import sqlite3
import tempfile
from pathlib import Path
from typing import Callable
from urllib.parse import quote

from rf_core.records.files import write_atomic

ALGORITHM = 2  # bump when the perturbations change, so cached variants are rebuilt
DEFAULT_MAX_MB = 256
_PERTURBATIONS = ({"drop", "shuffle"}, {"duplicate", "shuffle"}, {"values"},
                  {"drop", "duplicate", "values", "shuffle"})


def default_cache_root() -> Path:
    from rf_core.model.cache import cache_dir

    return cache_dir() / "variants"


def _content_hash(path: Path) -> str:
    h = hashlib.blake2b(digest_size=10)
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
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


def _cascade_drops(conn: sqlite3.Connection, fks: list, before: dict) -> None:
    """Rows whose parent row was dropped go too, so a join the original database's keys
    made redundant stays redundant (variants break no reference the original kept)."""
    for _ in range(len(fks) + 1):
        changed = False
        for child, ccol, parent, pcol in fks:
            gone = before[(parent, pcol)] - _column_values(conn, parent, pcol)
            gone.discard(None)
            if not gone:
                continue
            marks = ", ".join("?" * len(gone))
            try:
                cur = conn.execute(f"DELETE FROM {_q(child)} WHERE {_q(ccol)} IN ({marks})",
                                   list(gone))
            except sqlite3.Error:
                continue
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
                   rng: random.Random) -> None:
    cols = [r[1] for r in conn.execute(f"PRAGMA table_info({_q(table)})")]
    rows = [list(r) for r in conn.execute(f"SELECT * FROM {_q(table)}")]
    if not rows or not cols:
        return
    ipk = _integer_pk(conn, table)
    if "drop" in kinds and len(rows) > 1:
        n_drop = min(len(rows) - 1, max(1, round(len(rows) * 0.25)))
        for i in sorted(rng.sample(range(len(rows)), n_drop), reverse=True):
            del rows[i]
    if "values" in kinds:
        for j, col in enumerate(cols):
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
    marks = ", ".join("?" * len(cols))
    conn.execute(f"DELETE FROM {_q(table)}")
    for r in order:
        try:
            conn.execute(f"INSERT INTO {_q(table)} VALUES ({marks})", r)
        except sqlite3.IntegrityError:
            pass  # a duplicate that a UNIQUE or CHECK constraint refuses is left out


def build_variant(source: Path, target: Path, seed: str, index: int) -> None:
    """Write variant ``index`` of ``source`` to ``target`` (overwritten)."""
    uri = f"file:{quote(str(source.resolve()))}?mode=ro"
    src = sqlite3.connect(uri, uri=True)
    src.text_factory = lambda b: b.decode("utf-8", errors="ignore")
    try:
        dst = sqlite3.connect(str(target), isolation_level=None)
        try:
            src.backup(dst)
        finally:
            dst.close()
    finally:
        src.close()
    rng = random.Random(f"{seed}:{index}")
    kinds = _PERTURBATIONS[index % len(_PERTURBATIONS)]
    conn = sqlite3.connect(str(target), isolation_level=None)
    conn.text_factory = lambda b: b.decode("utf-8", errors="ignore")
    try:
        conn.execute("PRAGMA foreign_keys = OFF")
        conn.execute("BEGIN")
        tables = _tables(conn)
        keys = _key_columns(conn, tables)
        fks = _foreign_keys(conn, tables)
        before = {(p, c): _column_values(conn, p, c) for _, _, p, c in fks}
        for t in tables:
            _perturb_table(conn, t, keys[t.lower()], kinds, rng)
        if "drop" in kinds:
            _cascade_drops(conn, fks, before)
        conn.execute("COMMIT")
        conn.execute("VACUUM")
    finally:
        conn.close()


class VariantCache:
    """Builds and remembers the variants of each database a run meets (in the parent)."""

    def __init__(self, n: int, *, seed: int = 0, root: str | Path | None = None,
                 max_mb: float = DEFAULT_MAX_MB, report: Callable[[str], None] | None = None):
        if n < 0:
            raise ValueError("the number of variants must be 0 or more")
        self.n = n
        self.seed = seed
        self.max_mb = max_mb
        self.report = report or (lambda msg: None)
        self.root = Path(root) if root is not None else default_cache_root()
        self._tmp: tempfile.TemporaryDirectory | None = None
        self._known: dict[str, list[str]] = {}

    def _folder(self) -> Path:
        if self._tmp is not None:
            return Path(self._tmp.name)
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            probe = tempfile.NamedTemporaryFile(dir=self.root, prefix=".probe-")
            probe.close()
            return self.root
        except OSError as exc:
            self._tmp = tempfile.TemporaryDirectory(prefix="rf-variants-")
            self.report(f"cannot write the variant cache {self.root} "
                        f"({exc.strerror or exc}); building variants in a temporary folder")
            return Path(self._tmp.name)

    def paths(self, db_path: str) -> list[str]:
        """Paths of the n variants of ``db_path`` (built if needed); [] when it is skipped."""
        if self.n == 0:
            return []
        if db_path in self._known:
            return self._known[db_path]
        source = Path(db_path)
        out: list[str] = []
        try:
            size_mb = source.stat().st_size / (1 << 20)
        except OSError:
            self._known[db_path] = out  # a missing database fails on its own, per query
            return out
        if size_mb > self.max_mb:
            self.report(f"{db_path}: {size_mb:.0f} MB is over variants_max_mb "
                        f"{self.max_mb:g}; its tasks are checked on the original only")
            self._known[db_path] = out
            return out
        try:
            digest = _content_hash(source)
            folder = self._folder() / f"{source.stem}-{digest}"
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(self.n):
                target = folder / f"a{ALGORITHM}-s{self.seed}-v{i}.sqlite"
                if not target.is_file():
                    with write_atomic(target) as tmp:
                        build_variant(source, tmp, f"{digest}:{self.seed}", i)
                        os.chmod(tmp, 0o444)
                out.append(str(target))
        except (OSError, sqlite3.Error) as exc:
            self.report(f"{db_path}: cannot build its variants ({exc}); its tasks are "
                        "checked on the original only")
            out = []
        self._known[db_path] = out
        return out

    def close(self) -> None:
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None
