"""Gold variants: a task's own copy of its database, on which an empty or degenerate gold
query returns rows that can tell a right query from a lucky one.

When the gold query returns no row, or one row whose every value is NULL or 0 (``SELECT
count(*) ... WHERE`` that counts nothing), any candidate that also returns nothing "agrees"
with it, and the test-suite variants (rf_core.exec.variants) rarely help: they perturb the
rows that are there, and the gold stays empty. Here rows are added that satisfy the gold
query's own predicates, so that the gold returns a distinguishing result, which a candidate
that returns nothing (or filters on the wrong value) does not:

- the query is parsed with sqlglot; for each SELECT that must return rows (both sides of an
  INTERSECT, the left side of an EXCEPT, one side of a UNION) one new row is made per table
  it reads: a copy of a random existing row, or values of the column's declared type where
  the table is empty;
- columns the query joins on share one value; a primary key gets a fresh value (a foreign
  key that is not joined on keeps the copied row's value, so it still points at a row);
- the literals the query compares with set the values (``=``, ``<``, ``>``, ``BETWEEN``,
  ``IN``, ``LIKE``, ``IS NULL``; a scalar subquery is evaluated on the copy); one side of an
  ``OR`` is chosen; both sides of an INTERSECT get the same selected values; the rows of an
  EXCEPT's left side break one of its right side's conditions;
- ``HAVING count(*) >= n`` inserts the rows n times, with fresh keys where they are free;
  columns under SUM, AVG, MIN or MAX get a non-zero value;
- then the gold query runs on the copy, and the attempt is kept only when it returns a
  distinguishing result; otherwise it is rolled back and another random draw is tried.

A build is seeded (the database's content hash, the seed and the gold text), bounded in time
(``max_s``), and cached read-only in the database's variant cache folder, named by the gold
text's hash. A gold query that cannot be parsed, or for which no attempt worked, is
remembered by a small ``.none`` file holding the reason, so later runs do not try again;
one over its time bound or that could not copy the database is tried again next time.
"""

from __future__ import annotations

import hashlib
import logging
import os
import random
import sqlite3
from pathlib import Path
from urllib.parse import quote

from rf_core.exec.variants import OverTime, _Budget, _foreign_keys, _q, _tables
from rf_core.records.files import write_atomic

ALGORITHM = 1  # bump when the builder changes, so cached gold variants are rebuilt
DEFAULT_MAX_S = 10.0  # per task
ATTEMPTS = 24
_MAX_COPIES = 20


def degenerate(rows: list | None) -> bool:
    """No row, or one row whose every value is NULL or 0: a result any query that finds
    nothing can share."""
    if not rows:
        return True
    return len(rows) == 1 and all(
        v is None or (isinstance(v, (int, float)) and not isinstance(v, bool) and v == 0)
        for v in rows[0])


class Unbuildable(Exception):
    """No gold variant for this task; the message says why."""


def gold_key(gold_sql: str) -> str:
    return hashlib.blake2b(gold_sql.strip().encode("utf-8", "surrogatepass"),
                           digest_size=8).hexdigest()


def gold_variant(source: str, folder: str, gold_sql: str, seed: int,
                 max_s: float = DEFAULT_MAX_S) -> str:
    """The path of the gold variant of ``source`` for ``gold_sql`` in ``folder`` (the
    database's variant cache folder, named by its content hash), built when missing;
    Unbuildable when there is none."""
    base = Path(folder) / f"g{ALGORITHM}-s{seed}-{gold_key(gold_sql)}"
    target, failed = base.with_suffix(".sqlite"), base.with_suffix(".none")
    if target.is_file():
        return str(target)
    if failed.is_file():
        try:
            raise Unbuildable(failed.read_text(encoding="utf-8").strip() or "no rows found")
        except OSError:
            pass
    budget = _Budget(max_s, lambda msg: None, lambda: "")
    try:
        with write_atomic(target) as tmp:
            _build(Path(source), tmp, gold_sql, f"{Path(folder).name}:{seed}:"
                   f"{gold_key(gold_sql)}", budget)
            os.chmod(tmp, 0o444)
    except OverTime:
        raise Unbuildable(f"building it took over gold_variants_max_s {max_s:g} s") from None
    except _NoRows as exc:
        try:  # deterministic: remembered, so the next run does not spend the time again
            with write_atomic(failed) as tmp:
                tmp.write_text(f"{exc}\n", encoding="utf-8")
                os.chmod(tmp, 0o444)
        except OSError:
            pass
        raise Unbuildable(str(exc)) from None
    except (OSError, sqlite3.Error) as exc:
        raise Unbuildable(f"cannot build it: {exc}") from None
    return str(target)


class _NoRows(Exception):
    """A deterministic failure: the gold cannot be parsed, or no attempt made it speak."""


def _build(source: Path, target: Path, gold_sql: str, seed: str, budget: _Budget) -> None:
    import sqlglot
    from sqlglot.errors import SqlglotError

    logging.getLogger("sqlglot").setLevel(logging.ERROR)
    try:
        tree = sqlglot.parse_one(gold_sql, read="sqlite")
    except (SqlglotError, RecursionError, ValueError, TypeError, AttributeError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise _NoRows(f"the gold query cannot be parsed: {first[:120]}") from None
    if tree is None:
        raise _NoRows("the gold query cannot be parsed")

    def interrupt() -> int:
        return 1 if budget.over() else 0

    uri = f"file:{quote(str(source.resolve()))}?mode=ro"
    src = sqlite3.connect(uri, uri=True)
    try:
        dst = sqlite3.connect(str(target), isolation_level=None)
        try:
            dst.set_progress_handler(interrupt, 100_000)
            src.backup(dst, pages=1024, progress=lambda *a: budget.check())
        finally:
            dst.close()
    finally:
        src.close()
    conn = sqlite3.connect(str(target), isolation_level=None)
    conn.text_factory = lambda b: b.decode("utf-8", errors="ignore")
    conn.set_progress_handler(interrupt, 100_000)
    try:
        conn.execute("PRAGMA foreign_keys = OFF")
        schema = _Schema(conn)
        if not schema.tables:
            raise _NoRows("the database has no tables")
        triggers = list(conn.execute(
            "SELECT name, sql FROM sqlite_master WHERE type = 'trigger' AND sql IS NOT NULL "
            "ORDER BY rowid"))
        conn.execute("BEGIN")
        for name, _ in triggers:  # the database's own triggers must not run on our rows
            conn.execute(f"DROP TRIGGER {_q(name)}")
        rng = random.Random(seed)
        last = "no attempt found rows on which the gold query returns a distinguishing result"
        for attempt in range(ATTEMPTS):
            budget.check()
            conn.execute("SAVEPOINT attempt")
            try:
                _Attempt(conn, schema, rng, attempt).apply(tree)
                rows = conn.execute(gold_sql).fetchmany(2)
            except sqlite3.OperationalError as exc:
                if "interrupted" in str(exc) and budget.over():
                    raise OverTime() from None
                rows, last = None, f"no attempt worked (last: {exc})"
            except (sqlite3.Error, _Skip, ValueError, TypeError, OverflowError) as exc:
                rows = None
                if isinstance(exc, _Skip):
                    last = str(exc)
            if not degenerate(rows):
                conn.execute("RELEASE attempt")
                break
            conn.execute("ROLLBACK TO attempt")
            conn.execute("RELEASE attempt")
        else:
            raise _NoRows(last)
        for _, sql in triggers:
            conn.execute(sql)
        conn.execute("COMMIT")
    except sqlite3.OperationalError as exc:
        if "interrupted" in str(exc) and budget.over():
            raise OverTime() from None
        raise
    finally:
        conn.close()


class _Skip(Exception):
    """This query has a shape the builder does not handle."""


class _Schema:
    def __init__(self, conn: sqlite3.Connection):
        self.tables: dict[str, str] = {t.lower(): t for t in _tables(conn)}
        self.columns: dict[str, list[tuple[str, str, int]]] = {}  # name, type, pk position
        for low, t in self.tables.items():
            self.columns[low] = [(r[1], (r[2] or "").upper(), r[5])
                                 for r in conn.execute(f"PRAGMA table_info({_q(t)})")]
        self.fks: dict[tuple[str, str], tuple[str, str]] = {}
        for child, ccol, parent, pcol in _foreign_keys(conn, list(self.tables.values())):
            self.fks[(child.lower(), ccol.lower())] = (parent, pcol)

    def has(self, table: str, column: str) -> bool:
        return any(c[0].lower() == column.lower() for c in self.columns.get(table, ()))


def _literal(node):
    """A constant's Python value, or raise _Skip."""
    from sqlglot import exp

    if isinstance(node, exp.Paren):
        return _literal(node.this)
    if isinstance(node, exp.Literal):
        if node.is_string:
            return node.this
        text = node.this
        try:
            return int(text)
        except ValueError:
            return float(text)
    if isinstance(node, exp.Neg):
        value = _literal(node.this)
        if isinstance(value, (int, float)):
            return -value
    if isinstance(node, exp.Null):
        return None
    if isinstance(node, exp.Boolean):
        return int(node.this)
    raise _Skip(f"not a constant: {node.sql()[:60]}")


_FLIP = {"GT": "LT", "LT": "GT", "GTE": "LTE", "LTE": "GTE", "EQ": "EQ", "NEQ": "NEQ"}
_NEGATE = {"GT": "LTE", "LT": "GTE", "GTE": "LT", "LTE": "GT", "EQ": "NEQ", "NEQ": "EQ"}


def _satisfy(op: str, value, rng: random.Random):
    """A value v with ``v op value``."""
    if op in ("EQ", "GTE", "LTE") or value is None:
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        step = rng.randint(1, 5) if isinstance(value, int) else rng.uniform(0.5, 5)
        return value + step if op in ("GT", "NEQ") else value - step
    text = str(value)
    if op == "LT":
        return text[:-1] if text else None  # a proper prefix sorts first
    return text + rng.choice("xyz")  # GT and NEQ


class _Branch:
    """One SELECT's tables (instances), its columns' equivalence classes and their values."""

    def __init__(self, select, schema: _Schema):
        from sqlglot import exp

        self.select = select
        self.schema = schema
        self.instances: list[tuple[str, str]] = []  # (alias lower, table lower)
        sources = []
        if select.args.get("from_") is not None:
            sources.append(select.args["from_"].this)
        for join in select.args.get("joins") or []:
            sources.append(join.this)
        for src in sources:
            if not isinstance(src, exp.Table):
                raise _Skip("a FROM clause that is not a table")
            table = src.name.lower()
            if table not in schema.tables:
                raise _Skip(f"no table {src.name!r}")
            self.instances.append(((src.alias_or_name or table).lower(), table))
        if not self.instances:
            raise _Skip("a SELECT without a table")
        self.parent: dict = {}
        self.values: dict = {}  # class root -> value
        self.fixed: set = set()  # class roots set from a literal
        self.copies = 1

    def resolve(self, column):
        """(instance index, column name lower) of a column, or None."""
        name = column.name.lower()
        qual = (column.table or "").lower()
        for i, (alias, table) in enumerate(self.instances):
            if qual and qual not in (alias, table):
                continue
            if self.schema.has(table, name):
                return (i, name)
        return None

    def find(self, key):
        self.parent.setdefault(key, key)
        while self.parent[key] != key:
            self.parent[key] = self.parent[self.parent[key]]
            key = self.parent[key]
        return key

    def union(self, a, b) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[rb] = ra
            if rb in self.fixed:
                self.fixed.add(ra)
                self.values[ra] = self.values[rb]

    def fix(self, key, value) -> None:
        root = self.find(key)
        self.values[root] = value
        self.fixed.add(root)


class _Attempt:
    """One random draw of rows for a query, inserted into the open transaction."""

    def __init__(self, conn: sqlite3.Connection, schema: _Schema, rng: random.Random,
                 attempt: int):
        self.conn = conn
        self.schema = schema
        self.rng = rng
        self.fresh = attempt % 2 == 1  # odd attempts: new values in free text columns too
        self.extra_copies = attempt % 4 == 3

    # ---- the query's shape ------------------------------------------------------------
    def apply(self, tree) -> None:
        from sqlglot import exp

        while isinstance(tree, (exp.Subquery, exp.Paren)):
            tree = tree.this
        if isinstance(tree, exp.Union):
            self.apply(self.rng.choice([tree.this, tree.expression]))
        elif isinstance(tree, exp.Intersect):
            left, right = self._branch(tree.this), self._branch(tree.expression)
            self._link(left, right)
            self._insert(left)
            self._insert(right)
        elif isinstance(tree, exp.Except):
            left = self._branch(tree.this)
            try:
                self._break(left, tree.expression)
            except _Skip:
                pass
            self._insert(left)
        elif isinstance(tree, exp.Select):
            self._insert(self._branch(tree))
        else:
            raise _Skip(f"a {type(tree).__name__} statement")

    def _branch(self, node) -> _Branch:
        from sqlglot import exp

        while isinstance(node, (exp.Subquery, exp.Paren)):
            node = node.this
        if isinstance(node, exp.SetOperation):
            raise _Skip("nested set operations")
        if not isinstance(node, exp.Select):
            raise _Skip(f"a {type(node).__name__} where a SELECT was expected")
        b = _Branch(node, self.schema)
        conds = []
        for join in node.args.get("joins") or []:
            if join.args.get("on") is not None:
                conds += self._conjuncts(join.args["on"])
        if node.args.get("where") is not None:
            conds += self._conjuncts(node.args["where"].this)
        for cond in conds:
            try:
                self._constrain(b, cond, negate=False)
            except _Skip:
                pass  # a condition we cannot satisfy on purpose: the gold check decides
        if node.args.get("having") is not None:
            for cond in self._conjuncts(node.args["having"].this):
                self._having(b, cond)
        if self.extra_copies:
            b.copies = max(b.copies, 2)
        self._values(b)
        return b

    def _conjuncts(self, node) -> list:
        from sqlglot import exp

        while isinstance(node, exp.Paren):
            node = node.this
        if isinstance(node, exp.And):
            return self._conjuncts(node.this) + self._conjuncts(node.expression)
        if isinstance(node, exp.Or):
            return self._conjuncts(self.rng.choice([node.this, node.expression]))
        return [node]

    def _value_of(self, b: _Branch, node):
        """A constant, a double-quoted string SQLite reads as text, or a scalar subquery's
        value on the copy."""
        from sqlglot import exp

        if isinstance(node, exp.Column) and b.resolve(node) is None and not node.table:
            ident = node.args.get("this")
            if isinstance(ident, exp.Identifier) and ident.quoted:
                return ident.this
        if isinstance(node, exp.Subquery):
            rows = self.conn.execute(f"SELECT ({node.this.sql(dialect='sqlite')})").fetchall()
            if not rows or rows[0][0] is None:
                raise _Skip("a subquery without a value")
            return rows[0][0]
        return _literal(node)

    def _constrain(self, b: _Branch, cond, negate: bool) -> None:
        from sqlglot import exp

        if isinstance(cond, exp.Not):
            inner = cond.this
            while isinstance(inner, exp.Paren):
                inner = inner.this
            if isinstance(inner, exp.Is):
                col = self._column(b, inner.this)
                if not negate:
                    self._not_null(b, col)
                return
            if isinstance(inner, exp.In) and not negate:
                # NOT IN: a value nobody holds yet
                col = self._column(b, inner.this)
                table = b.instances[col[0]][1]
                b.fix(col, self._fresh_key([(table, col[1])], self._synthetic(table, col[1])))
                return
            raise _Skip("NOT")
        name = type(cond).__name__.upper()
        if name in _FLIP:
            left, right = cond.this, cond.expression
            if isinstance(left, exp.Column) and isinstance(right, exp.Column) \
                    and b.resolve(left) and b.resolve(right):
                if negate or name != "EQ":
                    raise _Skip("a comparison of two columns")
                b.union(b.resolve(left), b.resolve(right))
                return
            if not (isinstance(left, exp.Column) and b.resolve(left)):
                left, right, name = right, left, _FLIP[name]
            col = self._column(b, left)
            value = self._value_of(b, right)
            op = _NEGATE[name] if negate else name
            b.fix(col, _satisfy(op, value, self.rng))
        elif isinstance(cond, exp.Between) and not negate:
            b.fix(self._column(b, cond.this), _literal(cond.args["low"]))
        elif isinstance(cond, exp.In) and not negate:
            col = self._column(b, cond.this)
            if cond.args.get("query") is not None:
                query = cond.args["query"]
                query = query.this if isinstance(query, exp.Subquery) else query
                rows = self.conn.execute(query.sql(dialect="sqlite")).fetchmany(50)
                if not rows:
                    raise _Skip("an IN subquery without rows")
                b.fix(col, self.rng.choice(rows)[0])
            elif cond.expressions:
                b.fix(col, self._value_of(b, self.rng.choice(cond.expressions)))
        elif isinstance(cond, (exp.Like, exp.ILike)):
            col = self._column(b, cond.this)
            pattern = _literal(cond.expression)
            if not isinstance(pattern, str):
                raise _Skip("LIKE without a text pattern")
            if negate:
                b.fix(col, "~" + pattern.replace("%", "").replace("_", ""))
            else:
                b.fix(col, pattern.replace("%", "").replace("_", "a"))
        elif isinstance(cond, exp.Is) and isinstance(cond.expression, exp.Null):
            col = self._column(b, cond.this)
            if negate:
                self._not_null(b, col)
            else:
                b.fix(col, None)
        else:
            raise _Skip(f"a condition {type(cond).__name__}")

    def _column(self, b: _Branch, node):
        from sqlglot import exp

        if not isinstance(node, exp.Column):
            raise _Skip("a condition on an expression")
        key = b.resolve(node)
        if key is None:
            raise _Skip(f"column {node.sql()!r} of no table here")
        return key

    def _not_null(self, b: _Branch, key) -> None:
        root = b.find(key)
        if b.values.get(root) is None:
            b.fix(key, self._synthetic(b.instances[key[0]][1], key[1]))

    def _having(self, b: _Branch, cond) -> None:
        from sqlglot import exp

        name = type(cond).__name__.upper()
        if name not in _FLIP:
            return
        left, right = cond.this, cond.expression
        if not isinstance(left, exp.Count):
            left, right, name = right, left, _FLIP[name]
        if not isinstance(left, exp.Count):
            return
        try:
            n = _literal(right)
        except _Skip:
            return
        if isinstance(n, (int, float)):
            want = {"GT": int(n) + 1, "GTE": int(n), "EQ": int(n)}.get(name, 1)
            b.copies = max(b.copies, min(_MAX_COPIES, max(1, want)))

    def _break(self, left: _Branch, right_node) -> None:
        """Make the left side's rows fail one condition of the right side (EXCEPT)."""
        from sqlglot import exp

        while isinstance(right_node, (exp.Subquery, exp.Paren)):
            right_node = right_node.this
        if not isinstance(right_node, exp.Select) or right_node.args.get("where") is None:
            raise _Skip("nothing to break")
        conds = self._conjuncts(right_node.args["where"].this)
        self.rng.shuffle(conds)
        for cond in conds:
            try:
                self._constrain(left, cond, negate=True)
            except _Skip:
                continue
            self._write_fixed(left)
            return

    def _link(self, left: _Branch, right: _Branch) -> None:
        """Both sides of an INTERSECT select the same values."""
        from sqlglot import exp

        for a, c in zip(left.select.expressions, right.select.expressions):
            a = a.this if isinstance(a, exp.Alias) else a
            c = c.this if isinstance(c, exp.Alias) else c
            if not (isinstance(a, exp.Column) and isinstance(c, exp.Column)):
                continue
            ka, kc = left.resolve(a), right.resolve(c)
            if ka is None or kc is None:
                continue
            ra, rc = left.find(ka), right.find(kc)
            if rc in right.fixed and ra not in left.fixed:
                value = right.values[rc]
            else:
                value = left.values.get(ra, left.rows[ka[0]][ka[1]])
            for b, root in ((left, ra), (right, rc)):
                b.values[root] = value
                b.fixed.add(root)
        self._write_fixed(left)
        self._write_fixed(right)

    def _write_fixed(self, b: _Branch) -> None:
        """Rows take their classes' fixed values (after a later constraint or a link)."""
        for key in list(b.parent):
            root = b.find(key)
            if root in b.fixed:
                b.rows[key[0]][key[1]] = b.values[root]

    # ---- values and rows --------------------------------------------------------------
    def _base_row(self, table: str) -> dict:
        t = self.schema.tables[table]
        n = self.conn.execute(f"SELECT count(*) FROM {_q(t)}").fetchone()[0]
        cols = self.schema.columns[table]
        if n:
            row = self.conn.execute(f"SELECT * FROM {_q(t)} LIMIT 1 OFFSET ?",
                                    (self.rng.randrange(n),)).fetchone()
            out = {c[0].lower(): v for c, v in zip(cols, row)}
        else:
            out = {c[0].lower(): self._synthetic(table, c[0].lower()) for c in cols}
        if self.fresh:
            for name, ctype, pk in cols:
                low = name.lower()
                if not pk and (table, low) not in self.schema.fks and isinstance(out[low], str):
                    out[low] = self._synthetic(table, low)
        return out

    def _synthetic(self, table: str, column: str):
        """A value of the column's declared type; for a foreign key, a parent's value."""
        parent = self.schema.fks.get((table, column))
        if parent is not None:
            col = _q(parent[1])
            rows = self.conn.execute(f"SELECT {col} FROM {_q(parent[0])} "
                                     f"WHERE {col} IS NOT NULL LIMIT 50")
            values = [r[0] for r in rows]
            if values:
                return self.rng.choice(values)
        ctype = next((c[1] for c in self.schema.columns[table] if c[0].lower() == column), "")
        if "INT" in ctype or "BOOL" in ctype:
            return self.rng.randint(1, 1000)
        if any(k in ctype for k in ("REAL", "FLOA", "DOUB", "NUM", "DEC")):
            return round(self.rng.uniform(1, 1000), 2)
        if "DATE" in ctype or "TIME" in ctype:
            return f"{self.rng.randint(1990, 2020)}-{self.rng.randint(1, 12):02d}-" \
                   f"{self.rng.randint(1, 28):02d}"
        return "".join(self.rng.choice("bcdfghjklmnpqrstvwz") for _ in range(6)).title()

    def _fresh_key(self, members: list[tuple[str, str]], value):
        """A key value no member column holds yet."""
        if isinstance(value, str):
            return f"{value}-{self.rng.randrange(10**6)}"
        top = 0
        for table, col in members:
            try:
                got = self.conn.execute(f"SELECT max({_q(col)}) FROM "
                                        f"{_q(self.schema.tables[table])} WHERE "
                                        f"typeof({_q(col)}) IN ('integer', 'real')").fetchone()
            except sqlite3.Error:
                continue
            if got and isinstance(got[0], (int, float)):
                top = max(top, int(got[0]))
        return top + self.rng.randint(1, 50)

    def _values(self, b: _Branch) -> None:
        """Each instance's row: base values, then class values (literal > fresh key >
        the first member's copied value)."""
        b.rows = [self._base_row(table) for _, table in b.instances]
        classes: dict = {}
        for i, (_, table) in enumerate(b.instances):
            for name, _, _ in self.schema.columns[table]:
                key = (i, name.lower())
                if key in b.parent:
                    classes.setdefault(b.find(key), []).append(key)
        b.free_keys = {i: [] for i in range(len(b.instances))}
        for i, (_, table) in enumerate(b.instances):
            for name, _, pk in self.schema.columns[table]:
                key, low = (i, name.lower()), name.lower()
                if not pk or key in b.parent:
                    continue
                if (table, low) in self.schema.fks:
                    # a key that is also a foreign key: a parent no row of this table
                    # points at yet, so the new row's key is new and its reference holds
                    unused = self._unused_parent(table, low)
                    if unused is not None:
                        b.rows[i][low] = unused
                    continue
                classes[key] = [key]
                b.parent[key] = key
        for root, members in classes.items():
            if root in b.fixed:
                value = b.values[root]
            else:
                tables = [(b.instances[i][1], col) for i, col in members]
                first = b.rows[members[0][0]][members[0][1]]
                if any(self._is_pk(t, c) for t, c in tables):
                    value = self._fresh_key(tables, first)
                    if len(members) == 1:
                        b.free_keys[members[0][0]].append(members[0][1])
                else:
                    value = first
                b.values[root] = value
            for i, col in members:
                b.rows[i][col] = value
        # aggregated columns: a value that SUM/AVG/MIN/MAX cannot take for "nothing"
        from sqlglot import exp

        for agg in b.select.find_all(exp.Sum, exp.Avg, exp.Min, exp.Max):
            col = agg.this
            if isinstance(col, exp.Column) and (key := b.resolve(col)) is not None:
                if b.find(key) in b.fixed:
                    continue
                if b.rows[key[0]].get(key[1]) in (None, 0, 0.0, ""):
                    b.rows[key[0]][key[1]] = self.rng.randint(1, 100)

    def _unused_parent(self, table: str, column: str):
        parent, pcol = self.schema.fks[(table, column)]
        rows = self.conn.execute(
            f"SELECT {_q(pcol)} FROM {_q(parent)} WHERE {_q(pcol)} IS NOT NULL AND {_q(pcol)} "
            f"NOT IN (SELECT {_q(column)} FROM {_q(self.schema.tables[table])} WHERE "
            f"{_q(column)} IS NOT NULL) LIMIT 50").fetchall()
        return self.rng.choice(rows)[0] if rows else None

    def _is_pk(self, table: str, column: str) -> bool:
        return any(c[0].lower() == column and c[2] for c in self.schema.columns[table])

    def _insert(self, b: _Branch) -> None:
        for copy in range(b.copies):
            for i, (_, table) in enumerate(b.instances):
                row = dict(b.rows[i])
                if copy:
                    if not b.free_keys[i]:
                        continue  # a row whose keys are all joined on: one is enough
                    for col in b.free_keys[i]:
                        row[col] = self._fresh_key([(table, col)], row[col])
                cols = self.schema.columns[table]
                marks = ", ".join("?" * len(cols))
                names = ", ".join(_q(c[0]) for c in cols)
                self.conn.execute(f"INSERT INTO {_q(self.schema.tables[table])} ({names}) "
                                  f"VALUES ({marks})", [row[c[0].lower()] for c in cols])
