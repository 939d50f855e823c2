#!/usr/bin/env python
"""Benchmark: what rf-exec's defences cost and bound, in three tables.

1. Memory under a byte cap: peak RSS of rf-exec (parent and worker summed, sampled every
   20 ms) for a candidate returning 100 rows of a 10 MB blob, with `--jobs 1
   --max-memory-mb 64 --max-bytes 1000000`, against a `SELECT 1` control.
2. A killed worker's task: one task of 8 slow queries (each counts a recursive CTE, about
   0.1 s), a query that can only be stopped by killing its worker, then 8 more;
   `--timeout 1`. Its wall time against the same task without the bomb: the difference is
   the timeout, the grace and the gold query run again, not the queries that had finished.
3. Schema validation on reading: the time to parse and check each task record against
   schemas/ (rf_core.records.io.parse_line) against parsing alone, on Spider dev-972 tasks
   with 8 candidates each (exec fields filled, as rf-vote reads them), and that time as a
   share of an `rf-exec --jobs 2` run over the same tasks.

    python bench/hostile_bench.py [--spider-root DIR] [--repeats 5]

Prints Markdown tables on stdout; table 3 is left out when Spider is absent. Not a test.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import os
import platform
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))
from exec_bench import BIN, _cpu_model, make_candidates, measure  # noqa: E402

from rf_core.records.io import parse_line  # noqa: E402

BLOBS = ("WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 100) "
         "SELECT randomblob(10000000) FROM c")
BOMB = "SELECT length(printf('%.*c', 2000000000, 'x'))"


def slow(i: int) -> str:
    return (f"WITH RECURSIVE r(n) AS (SELECT {i} UNION ALL SELECT n + 1 FROM r "
            f"WHERE n < {i} + 600000) SELECT count(*) FROM r")


def task(db: str, gold: str, cands: list[str]) -> dict:
    return {"schema_version": 1, "kind": "task", "id": "b/0", "question": "q", "db_path": db,
            "gold_sql": gold, "candidates": [{"sql": c} for c in cands]}


def run_exec(tmp: Path, name: str, tasks: list[dict], args: list[str], repeats: int) -> list:
    path = tmp / f"{name}.jsonl"
    path.write_bytes(b"".join(orjson.dumps(t) + b"\n" for t in tasks))
    cmd = [str(BIN / "rf-exec"), *args, str(path)]
    return [measure(cmd, str(tmp / f"{name}.out")) for _ in range(repeats)]


def memory_table(tmp: Path, db: str, repeats: int) -> list[str]:
    args = ["--jobs", "1", "--max-memory-mb", "64", "--max-bytes", "1000000"]
    rows = ["| candidate | peak RSS, rf-exec + worker (median) | max |", "|---|---|---|"]
    for label, sql in (("SELECT 1 (control)", "SELECT 1"),
                       ("100 rows of a 10 MB blob", BLOBS)):
        runs = run_exec(tmp, "mem", [task(db, "SELECT 1", [sql])], args, repeats)
        peaks = [r["peak_sum_kb"] / 1024 for r in runs]
        rows.append(f"| {label} | {statistics.median(peaks):.0f} MiB | {max(peaks):.0f} MiB |")
    return rows


def kill_table(tmp: Path, db: str, repeats: int) -> list[str]:
    before = [slow(i) for i in range(8)]
    after = [slow(100 + i) for i in range(8)]
    rows = ["| task | wall (median) |", "|---|---|"]
    walls = {}
    for label, cands in (("16 slow queries", before + after),
                         ("16 slow queries + one killed in the middle", before + [BOMB] + after)):
        runs = run_exec(tmp, "kill", [task(db, slow(999), cands)],
                        ["--jobs", "1", "--timeout", "1"], repeats)
        walls[label] = statistics.median(r["wall"] for r in runs)
        rows.append(f"| {label} | {walls[label]:.2f} s |")
    a, b = walls.values()
    rows.append(f"| difference | {b - a:.2f} s (timeout 1 s + grace 0.5 s + the gold again) |")
    return rows


def validation_table(tmp: Path, root: Path, repeats: int) -> list[str] | None:
    data = os.popen(f"{BIN / 'rf-data'} spider --root {root} --split dev 2>/dev/null").read()
    tasks = [orjson.loads(x) for x in data.splitlines() if x.strip()]
    if not tasks:
        return None
    make_candidates(tasks, 8)
    path = tmp / "dev.jsonl"
    path.write_bytes(b"".join(orjson.dumps(t) + b"\n" for t in tasks))
    executed = measure([str(BIN / "rf-exec"), "--jobs", "2", str(path)], str(tmp / "dev.out"))
    lines = Path(tmp / "dev.out").read_bytes().splitlines()
    parse_only, checked = [], []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for line in lines:
            orjson.loads(line)
        t1 = time.perf_counter()
        for n, line in enumerate(lines, 1):
            parse_line(line, n, "task")
        t2 = time.perf_counter()
        parse_only.append(t1 - t0)
        checked.append(t2 - t1)
    p, c = statistics.median(parse_only), statistics.median(checked)
    per_task = (c - p) / len(lines) * 1e6
    return ["| records | parse only | parse + schema check | check per task | "
            "check as share of rf-exec --jobs 2 |", "|---|---|---|---|---|",
            f"| {len(lines)} tasks x 8 candidates | {p * 1000:.0f} ms | {c * 1000:.0f} ms | "
            f"{per_task:.0f} us | {(c - p) / executed['wall'] * 100:.1f}% of "
            f"{executed['wall']:.2f} s |"]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--spider-root", default=os.environ.get("RF_SPIDER_ROOT")
                    or str(Path(__file__).resolve().parents[2] / "shared" / "spider"))
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args(argv)
    print(f"# rf-exec defences: {_dt.date.today()}, {_cpu_model()}, {os.cpu_count()} cores, "
          f"Python {platform.python_version()}, SQLite {sqlite3.sqlite_version}; "
          f"median of {args.repeats}\n")
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        db = str(tmp / "empty.sqlite")
        sqlite3.connect(db).close()
        print("## Memory under --max-memory-mb 64 --max-bytes 1000000\n")
        print("\n".join(memory_table(tmp, db, args.repeats)) + "\n")
        print("## A task whose worker is killed\n")
        print("\n".join(kill_table(tmp, db, args.repeats)) + "\n")
        table = validation_table(tmp, Path(args.spider_root), min(args.repeats, 3))
        if table:
            print("## Schema check on reading\n")
            print("\n".join(table) + "\n")
        else:
            print(f"(schema-check table skipped: no Spider dev at {args.spider_root})\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
