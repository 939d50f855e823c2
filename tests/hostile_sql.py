"""Hostile SQL by category, against the shop database of conftest.py (product, customer,
orders, big). Every query here must leave the database and the files around it unchanged,
never be judged correct, and stop within the per-query deadline."""

from __future__ import annotations

TABLES = ("product", "customer", "orders", "big")


def _writes() -> list[str]:
    out = []
    for t in TABLES:
        out += [f"DELETE FROM {t}", f"DELETE FROM {t} WHERE rowid = 1",
                f"UPDATE {t} SET rowid = rowid + 100",
                f"INSERT INTO {t} DEFAULT VALUES", f"REPLACE INTO {t} (rowid) VALUES (1)",
                f"INSERT OR REPLACE INTO {t} (rowid) SELECT rowid FROM {t}"]
    out += ["INSERT INTO product VALUES (9, 'x', 1.0, 'y') RETURNING *",
            "INSERT INTO product (id, name) VALUES (1, 'x') "
            "ON CONFLICT(id) DO UPDATE SET name = 'y'",
            "WITH d AS (SELECT 1) DELETE FROM product",
            "UPDATE product SET price = 0 RETURNING price",
            "DELETE FROM product RETURNING *",
            "UPDATE OR IGNORE orders SET qty = qty * 2"]
    return out


def _ddl() -> list[str]:
    out = []
    for t in TABLES:
        out += [f"DROP TABLE {t}", f"DROP TABLE IF EXISTS {t}",
                f"ALTER TABLE {t} RENAME TO {t}_old", f"ALTER TABLE {t} ADD COLUMN z",
                f"CREATE INDEX ix_{t} ON {t}(rowid)"]
    out += ["CREATE TABLE evil (a)", "CREATE TABLE IF NOT EXISTS evil AS SELECT * FROM product",
            "CREATE VIEW v AS SELECT 1", "DROP VIEW IF EXISTS v",
            "CREATE TRIGGER t AFTER INSERT ON product BEGIN DELETE FROM orders; END",
            "DROP TRIGGER IF EXISTS t", "DROP INDEX IF EXISTS sqlite_autoindex_product_1",
            "ALTER TABLE product DROP COLUMN category",
            "ALTER TABLE product RENAME COLUMN name TO nom",
            "CREATE UNIQUE INDEX u ON customer(city)"]
    return out


def _temp_objects() -> list[str]:
    return ["CREATE TEMP TABLE evil AS SELECT 1", "CREATE TEMPORARY TABLE e (a)",
            "CREATE TEMP VIEW tv AS SELECT * FROM product",
            "CREATE TEMP TRIGGER tt AFTER DELETE ON product BEGIN SELECT 1; END",
            "CREATE TABLE temp.e2 (a)", "CREATE INDEX temp.i ON product(name)",
            "INSERT INTO temp.sqlite_master VALUES ('table','x','x',0,'')",
            "DROP TABLE temp.e2"]


def _attach_vacuum() -> list[str]:
    return ["ATTACH DATABASE 'evil.sqlite' AS evil", "ATTACH ':memory:' AS m",
            "ATTACH 'file:evil2.sqlite?mode=rwc' AS e2", "ATTACH '' AS blank",
            "ATTACH DATABASE 'shop.sqlite' AS again", "DETACH DATABASE main",
            "DETACH temp", "VACUUM", "VACUUM main", "VACUUM INTO 'copy.sqlite'",
            "VACUUM INTO 'file:copy2.sqlite?mode=rwc'", "VACUUM temp",
            "SELECT * FROM pragma_database_list"]


_PRAGMA_SETS = [
    "journal_mode = WAL", "journal_mode = DELETE", "journal_mode = OFF", "user_version = 7",
    "application_id = 1", "writable_schema = ON", "query_only = OFF", "query_only = 0",
    "locking_mode = EXCLUSIVE", "synchronous = OFF", "cache_size = -1000000",
    "mmap_size = 1000000000", "temp_store = MEMORY", "foreign_keys = ON",
    "recursive_triggers = ON", "trusted_schema = ON", "cell_size_check = ON",
    "case_sensitive_like = ON", "secure_delete = ON", "auto_vacuum = FULL",
    "incremental_vacuum(10)", "wal_checkpoint(TRUNCATE)", "optimize", "shrink_memory",
    "soft_heap_limit = 0", "hard_heap_limit = 0", "threads = 8", "max_page_count = 1",
    "page_size = 65536", "schema_version = 99", "legacy_alter_table = ON",
    "integrity_check", "quick_check", "table_info(product)", "compile_options",
]


def _pragmas() -> list[str]:
    out = [f"PRAGMA {p}" for p in _PRAGMA_SETS]
    out += ["PRAGMA main.user_version = 3", "PRAGMA temp.cache_size = 1",
            "SELECT * FROM pragma_table_info('product')",
            "SELECT * FROM pragma_index_list('orders')",
            "SELECT * FROM pragma_compile_options", "SELECT * FROM pragma_function_list",
            "SELECT * FROM pragma_user_version"]
    return out


def _transactions() -> list[str]:
    return ["BEGIN", "BEGIN IMMEDIATE", "BEGIN EXCLUSIVE", "COMMIT", "END", "ROLLBACK",
            "SAVEPOINT s", "RELEASE s", "ROLLBACK TO s", "BEGIN; DELETE FROM product; COMMIT"]


def _extensions() -> list[str]:
    return ["SELECT load_extension('/usr/lib/evil.so')", "SELECT load_extension('evil')",
            "SELECT load_extension('libc.so.6', 'system')", "SELECT readfile('/etc/passwd')",
            "SELECT writefile('evil.txt', 'x')", "SELECT edit('x', 'vi')",
            "SELECT fts3_tokenizer('simple')", "SELECT sqlite_offset(name) FROM product",
            "SELECT LOAD_EXTENSION('/tmp/x.so')", "SELECT \"load_extension\"('x')"]


def _multi_statement() -> list[str]:
    return ["SELECT 1; DROP TABLE product", "SELECT 1; SELECT 2",
            "SELECT count(*) FROM product; DELETE FROM product",
            "SELECT 1 -- comment\n; DROP TABLE product",
            "SELECT 1 /* ; */ ; UPDATE product SET price = 0",
            "SELECT 1;\n\nATTACH 'x.sqlite' AS x", "; DROP TABLE product",
            "SELECT 1;;", "SELECT 1\x00; DROP TABLE product",
            "SELECT 'a;'; DELETE FROM orders"]


def _time_bombs() -> list[str]:
    return [
        "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r) SELECT count(*) FROM r",
        "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r) SELECT max(n) FROM r",
        "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n FROM r) SELECT sum(n) FROM r",
        "SELECT count(*) FROM big a, big b, big c",
        "SELECT sum(a.n * b.n) FROM big a, big b, big c",
        "SELECT count(*) FROM big a JOIN big b ON a.n <> b.n JOIN big c ON b.n <> c.n",
        "SELECT a.n FROM big a, big b, big c ORDER BY random() LIMIT 1",
        "SELECT count(*) FROM big a, big b WHERE a.n || b.n LIKE '%1%2%3%4%5%6%7%8%9%'",
        "SELECT length(printf('%.*c', 2000000000, 'x'))",
        "SELECT count(*) FROM (SELECT * FROM big a, big b, big c) GROUP BY 1 % 7",
        "SELECT max(length(hex(randomblob(1000)))) FROM big a, big b",
        "SELECT count(DISTINCT a.n * 1000000 + b.n) FROM big a, big b",
        "WITH RECURSIVE f(a, b) AS (SELECT 0, 1 UNION ALL SELECT b, a + b FROM f) "
        "SELECT count(*) FROM f",
        "SELECT (SELECT count(*) FROM big b, big c WHERE b.n > a.n) FROM big a",
        "SELECT * FROM big a, big b, big c",
    ]


def _memory_bombs() -> list[str]:
    return ["SELECT randomblob(2000000000)", "SELECT zeroblob(2000000000)",
            "SELECT randomblob(9000000) FROM big",
            "SELECT replace(hex(zeroblob(5000000)), '0', 'aaaaaaaaaa')",
            "WITH RECURSIVE r(s) AS (SELECT 'ab' UNION ALL SELECT s || s FROM r) "
            "SELECT length(s) FROM r",
            "SELECT group_concat(a.n) FROM big a, big b, big c",
            "SELECT group_concat(hex(randomblob(1000))) FROM big a, big b",
            "SELECT json_group_array(a.n) FROM big a, big b",
            "SELECT printf('%0*d', 1000000000, 1)", "SELECT printf('%.*s', 2000000000, 'x')",
            "SELECT substr(zeroblob(1000000000), 1, 1)",
            "SELECT a.n, b.n, c.n FROM big a, big b, big c",
            "WITH RECURSIVE r(n, s) AS (SELECT 1, zeroblob(1000000) UNION ALL "
            "SELECT n + 1, s FROM r WHERE n < 5000) SELECT s FROM r",
            "SELECT char(65) || zeroblob(900000000)",
            "SELECT upper(zeroblob(600000000))"]


def _huge_input() -> list[str]:
    return ["SELECT '" + "a" * 3_000_000 + "'",
            "SELECT 1 WHERE 1 IN (" + ",".join(map(str, range(200_000))) + ")",
            "SELECT " + " + ".join(["1"] * 100_000),
            "SELECT x'" + "00" * 600_000 + "'",
            "SELECT 1 " + "/* pad */ " * 120_000]


def _parser_stress() -> list[str]:
    return ["SELECT " + "(" * 1000 + "1" + ")" * 1000,
            "SELECT " + "(" * 100_000 + "1" + ")" * 100_000,
            "SELECT " + "-" * 50_000 + "1",
            "SELECT " + "CASE WHEN 1 THEN " * 2000 + "1" + " END" * 2000,
            " UNION ALL ".join(["SELECT 1"] * 1000),
            "SELECT " + ", ".join(f"{i}" for i in range(40_000)),
            "SELECT * FROM " + "(SELECT * FROM " * 300 + "product" + ")" * 300,
            "SELECT coalesce(" + ",".join(["1"] * 20_000) + ")"]


def _encoding() -> list[str]:
    return ["SELECT 1\x00", "\x00SELECT 1", "SELECT '\u202e' || name FROM product",
            "\ufeffSELECT 1", "SELECT name FROM product WHERE name = 'Appl\u0435'",
            "SELECT \u0001\u0002", "SELECT char(55296, 56320, 0)", "ＳＥＬＥＣＴ 1"]


def _garbage() -> list[str]:
    return ["", "   ", "\n\n", "garbage that is not sql", "How many products are there?",
            "```sql\nSELECT 1\n```", '{"sql": "SELECT 1"}', "SELECT", "SELECT FROM WHERE",
            ")))", "'", "SELECT 'unterminated", "DROP"]


def _virtual_tables() -> list[str]:
    return ["CREATE VIRTUAL TABLE f USING fts5(a)", "CREATE VIRTUAL TABLE r USING rtree(id, a, b)",
            "CREATE VIRTUAL TABLE temp.s USING dbstat", "SELECT * FROM dbstat",
            "SELECT * FROM sqlite_dbpage", "UPDATE sqlite_dbpage SET data = zeroblob(4096)",
            "INSERT INTO sqlite_dbpage VALUES (1, zeroblob(4096))",
            "SELECT * FROM generate_series(1, 1000000000)"]


def _system_tables() -> list[str]:
    return ["UPDATE sqlite_master SET sql = 'x'", "DELETE FROM sqlite_master",
            "UPDATE sqlite_schema SET name = 'x'", "DELETE FROM sqlite_sequence",
            "INSERT INTO sqlite_stat1 VALUES ('product', NULL, '1')", "DROP TABLE sqlite_stat1",
            "CREATE TABLE sqlite_evil (a)"]


CATEGORIES = {
    "row writes": _writes(), "schema changes": _ddl(), "temp objects": _temp_objects(),
    "attach and vacuum": _attach_vacuum(), "pragmas": _pragmas(),
    "transactions": _transactions(), "extensions and files": _extensions(),
    "multiple statements": _multi_statement(), "time bombs": _time_bombs(),
    "memory bombs": _memory_bombs(), "huge input": _huge_input(),
    "parser stress": _parser_stress(), "encoding tricks": _encoding(), "garbage": _garbage(),
    "virtual tables": _virtual_tables(), "system tables": _system_tables(),
}
CASES = [(cat, sql) for cat, qs in CATEGORIES.items() for sql in qs] + [("none", None)]
