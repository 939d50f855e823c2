"""Checks for the project's own Spider-format demo benchmark (rf_plugins/demo_data).

The benchmark is plain data: one SQLite script per database (``<db_id>.sql``) and
``questions.jsonl`` with ``{"db_id", "split", "question", "query"}`` per line.
These tests build every database from its script, run every gold query and
check the properties the benchmark promises (size, splits, coverage of SQL
features in both splits, no ties at an ``ORDER BY ... LIMIT`` cut).
"""

from __future__ import annotations

import json
import re
import sqlite3
from collections import Counter
from pathlib import Path

import pytest

DATA_DIR = Path(__file__).parents[1] / "rf_plugins" / "demo_data"
QUESTIONS_PATH = DATA_DIR / "questions.jsonl"

MIN_DATABASES = 5
MIN_QUESTIONS = 180
SPLITS = ("train", "dev")
MAX_TOTAL_BYTES = 250 * 1024


# ---------------------------------------------------------------------------
# loading
# ---------------------------------------------------------------------------


def db_scripts() -> dict[str, Path]:
    return {path.stem: path for path in sorted(DATA_DIR.glob("*.sql"))}


def load_questions() -> list[dict]:
    rows = []
    if not QUESTIONS_PATH.is_file():  # reported by test_data_folder_exists
        return rows
    with QUESTIONS_PATH.open(encoding="utf-8") as handle:
        for lineno, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            row = json.loads(line)
            row["_line"] = lineno
            rows.append(row)
    return rows


QUESTIONS = load_questions()


def _qid(row: dict) -> str:
    return f"{row['db_id']}:{row['_line']}"


@pytest.fixture(scope="module")
def databases(tmp_path_factory) -> dict[str, Path]:
    """Build every database from its script into a temp dir (the way the plugin does)."""
    root = tmp_path_factory.mktemp("demo_dbs")
    built = {}
    for db_id, script in db_scripts().items():
        path = root / f"{db_id}.sqlite"
        conn = sqlite3.connect(path)
        try:
            conn.executescript(script.read_text(encoding="utf-8"))
            conn.commit()
        finally:
            conn.close()
        built[db_id] = path
    return built


def run_sql(db_path: Path, sql: str) -> list[tuple]:
    conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


# ---------------------------------------------------------------------------
# small SQL helpers (string level, enough for Spider-style gold queries)
# ---------------------------------------------------------------------------


def mask_sql(sql: str) -> str:
    """Same-length copy of ``sql`` where string literals and everything inside
    parentheses is replaced by ``_``, so regexes only see the top level."""
    out = []
    depth = 0
    quote = None
    for ch in sql:
        if quote:
            out.append("_")
            if ch == quote:
                quote = None
            continue
        if ch in ("'", '"'):
            quote = ch
            out.append("_")
        elif ch == "(":
            depth += 1
            out.append("_")
        elif ch == ")":
            depth -= 1
            out.append("_")
        else:
            out.append(ch if depth == 0 else "_")
    return "".join(out)


def strip_literals(sql: str) -> str:
    """Replace the contents of string literals by ``_`` (keeps parentheses)."""
    return re.sub(r"'(?:[^']|'')*'", lambda m: "_" * len(m.group(0)), sql)


def select_blocks(sql: str) -> list[str]:
    """The query itself plus every parenthesised ``(SELECT ...)`` inside it."""
    blocks = [sql.strip().rstrip(";")]
    plain = strip_literals(sql)
    for match in re.finditer(r"\(\s*SELECT\b", plain, re.IGNORECASE):
        depth = 0
        for pos in range(match.start(), len(plain)):
            if plain[pos] == "(":
                depth += 1
            elif plain[pos] == ")":
                depth -= 1
                if depth == 0:
                    blocks.append(sql[match.start() + 1 : pos].strip())
                    break
    return blocks


def split_top_level_commas(text: str) -> list[str]:
    masked = mask_sql(text)
    parts, start = [], 0
    for pos, ch in enumerate(masked):
        if ch == ",":
            parts.append(text[start:pos])
            start = pos + 1
    parts.append(text[start:])
    return [part.strip() for part in parts]


def order_limit(block: str):
    """For a block ending in ``ORDER BY <keys> LIMIT n`` return (head, keys_text, keys, n)."""
    masked = mask_sql(block)
    limit = re.search(r"\bLIMIT\s+(\d+)\s*;?\s*$", masked, re.IGNORECASE)
    order = None
    for order in re.finditer(r"\bORDER\s+BY\b", masked, re.IGNORECASE):
        pass
    if not limit or not order or order.start() > limit.start():
        return None
    keys_text = block[order.end() : limit.start()].strip()
    keys = [
        re.sub(r"\s+(ASC|DESC)$", "", key, flags=re.IGNORECASE).strip()
        for key in split_top_level_commas(keys_text)
    ]
    return block[: order.start()].rstrip(), keys_text, keys, int(limit.group(1))


def tie_at_cut(db_path: Path, block: str):
    """Return a message if the ORDER BY key ties across the LIMIT cut, else None.

    The block is re-run without its LIMIT and with the ORDER BY keys appended to
    its select list; the key of the last kept row must differ from the key of
    the first dropped row, and no kept row may sort on a NULL key.
    """
    parsed = order_limit(block)
    assert parsed is not None
    head, keys_text, keys, n = parsed
    masked_head = mask_sql(head)
    assert not re.search(r"\b(UNION|INTERSECT|EXCEPT)\b", masked_head, re.IGNORECASE), (
        "ORDER BY ... LIMIT over a compound query is not supported"
    )
    from_kw = re.search(r"\bFROM\b", masked_head, re.IGNORECASE)
    assert from_kw is not None, block
    widened = (
        head[: from_kw.start()].rstrip()
        + ", "
        + ", ".join(keys)
        + " "
        + head[from_kw.start() :]
        + " ORDER BY "
        + keys_text
    )
    rows = run_sql(db_path, widened)
    width = len(keys)
    if any(value is None for row in rows[:n] for value in row[-width:]):
        return f"NULL sort key among the {n} kept rows"
    if len(rows) > n and tuple(rows[n - 1][-width:]) == tuple(rows[n][-width:]):
        return f"tie at LIMIT {n}: key {rows[n - 1][-width:]!r} continues past the cut"
    return None


def upper(sql: str) -> str:
    return strip_literals(sql).upper()


FEATURES = {
    "single-table filter": lambda q: " JOIN " not in q and " WHERE " in q and "(SELECT" not in q,
    "count": lambda q: "COUNT(" in q,
    "avg": lambda q: "AVG(" in q,
    "max": lambda q: "MAX(" in q,
    "sum": lambda q: "SUM(" in q,
    "join": lambda q: " JOIN " in q,
    "3-table join": lambda q: q.count(" JOIN ") >= 2,
    "group by": lambda q: " GROUP BY " in q,
    "having": lambda q: " HAVING " in q,
    "nested select": lambda q: re.search(r"\(\s*SELECT\b", q) is not None,
    "not in": lambda q: re.search(r"NOT IN\s*\(\s*SELECT\b", q) is not None,
    "in": lambda q: re.search(r"(?<!NOT) IN\s*\(\s*SELECT\b", q) is not None,
    "scalar avg comparison": lambda q: re.search(r"[<>=]\s*\(\s*SELECT\s+AVG\(", q) is not None,
    "order by limit": lambda q: re.search(r"\bORDER BY\b.*\bLIMIT \d+", q) is not None,
    "distinct": lambda q: "DISTINCT" in q,
    "like": lambda q: " LIKE " in q,
    "union": lambda q: " UNION " in q,
    "intersect": lambda q: " INTERSECT " in q,
    "except": lambda q: " EXCEPT " in q,
}


def feature_counts(rows: list[dict]) -> dict[str, int]:
    return {
        name: sum(1 for row in rows if predicate(upper(row["query"])))
        for name, predicate in FEATURES.items()
    }


# ---------------------------------------------------------------------------
# tests: files and format
# ---------------------------------------------------------------------------


def test_data_folder_exists():
    assert DATA_DIR.is_dir()
    assert QUESTIONS_PATH.is_file()


def test_total_size_is_small():
    total = sum(path.stat().st_size for path in DATA_DIR.iterdir() if path.is_file())
    assert total < MAX_TOTAL_BYTES, total


def test_database_count():
    assert len(db_scripts()) >= MIN_DATABASES


def test_identifiers_are_lowercase_snake_case():
    for db_id in db_scripts():
        assert re.fullmatch(r"[a-z][a-z0-9_]*", db_id), db_id


@pytest.mark.parametrize("db_id", sorted(db_scripts()))
def test_schema_shape(databases, db_id):
    conn = sqlite3.connect(databases[db_id])
    try:
        tables = [
            name
            for (name,) in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
            )
        ]
        assert 3 <= len(tables) <= 6, tables
        foreign_keys = 0
        for table in tables:
            assert re.fullmatch(r"[a-z][a-z0-9_]*", table), table
            columns = conn.execute(f"PRAGMA table_info({table})").fetchall()
            for column in columns:
                assert re.fullmatch(r"[a-z][a-z0-9_]*", column[1]), (table, column[1])
            assert any(column[5] for column in columns), f"{table} has no primary key"
            foreign_keys += len(conn.execute(f"PRAGMA foreign_key_list({table})").fetchall())
            count = conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
            assert 8 <= count <= 60, (table, count)
        assert foreign_keys >= 2
        assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
    finally:
        conn.close()


def test_question_rows_are_well_formed():
    dbs = set(db_scripts())
    for row in QUESTIONS:
        assert set(row) - {"_line"} == {"db_id", "split", "question", "query"}, _qid(row)
        assert row["db_id"] in dbs, _qid(row)
        assert row["split"] in SPLITS, _qid(row)
        for field in ("question", "query"):
            assert isinstance(row[field], str), _qid(row)
            assert row[field] == row[field].strip() and row[field], _qid(row)


def test_question_counts_and_splits():
    assert len(QUESTIONS) >= MIN_QUESTIONS
    per_split = Counter(row["split"] for row in QUESTIONS)
    assert set(per_split) == set(SPLITS)
    dev_share = per_split["dev"] / len(QUESTIONS)
    assert 0.25 <= dev_share <= 0.40, per_split
    assert {row["db_id"] for row in QUESTIONS} == set(db_scripts())
    assert {row["db_id"] for row in QUESTIONS if row["split"] == "dev"} == set(db_scripts())


def test_no_duplicate_questions():
    pairs = Counter((row["db_id"], row["question"].casefold()) for row in QUESTIONS)
    duplicates = [pair for pair, count in pairs.items() if count > 1]
    assert not duplicates


# ---------------------------------------------------------------------------
# tests: gold queries
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("row", QUESTIONS, ids=_qid)
def test_gold_query_returns_rows(databases, row):
    rows = run_sql(databases[row["db_id"]], row["query"])
    assert rows, f"gold query returned no rows: {row['query']}"


@pytest.mark.parametrize("row", QUESTIONS, ids=_qid)
def test_gold_query_spider_style(row):
    sql = strip_literals(row["query"])
    clause_keywords = (r"\b(select|from|where|group by|order by|having|limit|join|union"
                       r"|intersect|except|distinct|not in|like)\b")
    assert not re.search(clause_keywords, sql), f"lowercase SQL keyword in {row['query']}"
    if " JOIN " in sql:
        assert " AS T1 " in sql and " AS T2 " in sql, f"join without T1/T2 aliases: {row['query']}"
    assert ";" not in sql


@pytest.mark.parametrize("row", QUESTIONS, ids=_qid)
def test_order_by_limit_has_no_tie_at_cut(databases, row):
    for block in select_blocks(row["query"]):
        masked = mask_sql(block)
        has_limit = re.search(r"\bLIMIT\b", masked, re.IGNORECASE)
        if not has_limit:
            continue
        assert order_limit(block) is not None, f"LIMIT without ORDER BY: {block}"
        problem = tie_at_cut(databases[row["db_id"]], block)
        assert problem is None, f"{problem}: {row['query']}"


ORDER_WORDS = re.compile(
    r"\b(order|ordered|sort|sorted|alphabetical|alphabetically|ascending|descending|"
    r"rank|ranked|from (the )?(oldest|newest|most|least|highest|lowest|earliest|latest|"
    r"longest|shortest|cheapest|largest|smallest|biggest|youngest))\b",
    re.IGNORECASE,
)


@pytest.mark.parametrize("row", QUESTIONS, ids=_qid)
def test_order_by_only_when_question_asks_for_order(row):
    for block in select_blocks(row["query"]):
        masked = mask_sql(block)
        if re.search(r"\bORDER\s+BY\b", masked, re.IGNORECASE) and not re.search(
            r"\bLIMIT\b", masked, re.IGNORECASE
        ):
            assert block == row["query"], f"ORDER BY without LIMIT in a subquery: {row['query']}"
            assert ORDER_WORDS.search(row["question"]), (
                f"query sorts but the question does not ask for an order: {row['question']}"
            )


@pytest.mark.parametrize("split", SPLITS)
def test_feature_coverage_per_split(split):
    rows = [row for row in QUESTIONS if row["split"] == split]
    counts = feature_counts(rows)
    missing = [name for name, count in counts.items() if count == 0]
    assert not missing, f"{split} split lacks: {missing}"


def test_every_database_has_questions_with_joins_and_nesting():
    for db_id in db_scripts():
        rows = [row for row in QUESTIONS if row["db_id"] == db_id]
        counts = feature_counts(rows)
        assert counts["join"] and counts["nested select"] and counts["group by"], db_id
