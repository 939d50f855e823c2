#!/usr/bin/env python
"""Benchmark: rf-exec against a straightforward one-process verifier, on Spider dev.

Both methods read the same task file (Spider dev, 972 tasks, ``--k`` generated candidates
per task) and write it back with a ``correct`` verdict per candidate. Each runs as its own
subprocess, so wall time includes interpreter start-up and JSONL I/O for both, and peak
memory is measured the same way for both: the bench samples VmRSS of the process and all
its descendants every ~20 ms (max of the sum) and takes the process's own peak RSS
(VmHWM, from ``wait4``'s ru_maxrss) when it exits.

The baseline ("naive") is what a user would write first: one process; a new read-only
sqlite3 connection for every query; the gold query once per task; every candidate run
(no deduplication); the ``official`` matcher alone (its rewriting, then
``rf_core.exec.matching.official_match``); the same per-query timeout via a progress handler.
rf-exec records all three matchers' verdicts in the same pass.

A second table compares ``rf-exec --jobs 2 --variants 4`` (test-suite database variants,
built once into a fresh cache folder before the repeats, then reused) with
``--variants 0``, and with ``--variants 4 --for-training`` (the loop's train stage: also the
gold variants of tasks whose gold result is empty or degenerate, built once, then cached),
and reports the one-off cost of building them. ``--only-variants`` prints that table alone.

    python bench/exec_bench.py [--spider-root DIR] [--repeats 3] [--k 8] [--limit N]

Prints Markdown tables on stdout. Exits 0 with a "skipped" line when Spider is absent.
No timed tests live in tests/; this is run by hand.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import os
import platform
import random
import re
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import orjson

PROJECT_ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
TIMEOUT_S = 5.0  # rf-exec's default --timeout; the baseline uses the same


# --------------------------------------------------------------------------------------
# The baseline verifier (runs in its own process: ``exec_bench.py --naive-worker FILE``)
# --------------------------------------------------------------------------------------

def naive_verify(in_path: str, out, timeout_s: float = TIMEOUT_S) -> None:
    """One process, a new read-only connection per query, no deduplication."""
    from rf_core.exec.matching import get_matcher

    official = get_matcher("official")

    def run(db_path: str, sql: str):
        """(ok, rows or error text)."""
        deadline = time.perf_counter() + timeout_s
        conn = None
        try:
            conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
            # Some Spider databases hold invalid UTF-8; without this, those queries raise.
            conn.text_factory = lambda b: b.decode("utf-8", errors="ignore")
            conn.set_progress_handler(lambda: time.perf_counter() > deadline, 1000)
            return True, conn.execute(sql).fetchall()
        except Exception as exc:  # noqa: BLE001
            return False, f"{type(exc).__name__}: {exc}"
        finally:
            if conn is not None:
                conn.close()

    with open(in_path, "rb") as f:
        for line in f:
            if not line.strip():
                continue
            task = orjson.loads(line)
            gold_sql = official.rewrite(task["gold_sql"], "gold")
            gold_ok, gold_rows = run(task["db_path"], gold_sql)
            ordered = official.ordered(gold_sql)
            for cand in task.get("candidates") or []:
                ok, rows = run(task["db_path"], official.rewrite(cand["sql"], "candidate"))
                cand["exec"] = {"ok": ok, "error": None if ok else rows}
                cand["correct"] = bool(gold_ok and ok and official.match(gold_rows, rows, ordered))
            out.write(orjson.dumps(task, option=orjson.OPT_APPEND_NEWLINE))


# --------------------------------------------------------------------------------------
# Candidates: deterministic, shaped like temperature-0.7 samples
# --------------------------------------------------------------------------------------

_QUOTED = re.compile(r"('(?:[^']|'')*'|\"(?:[^\"]|\"\")*\")")
_KEYWORDS = re.compile(r"\b(select|from|where|group by|order by|having|join|on|as|and|or|not|"
                       r"in|limit|desc|asc|count|distinct|intersect|union|except|like|"
                       r"between|max|min|avg|sum)\b", re.IGNORECASE)


def _outside_quotes(sql: str, fn) -> str:
    parts = _QUOTED.split(sql)
    return "".join(p if i % 2 else fn(p) for i, p in enumerate(parts))


def _recase(sql: str, rng: random.Random) -> str:
    up = rng.random() < 0.5
    return _outside_quotes(sql, lambda s: _KEYWORDS.sub(
        lambda m: m.group(0).upper() if up else m.group(0).lower(), s))


def _respace(sql: str, rng: random.Random) -> str:
    style = rng.randrange(3)
    if style == 0:  # one line, single spaces
        return _outside_quotes(sql, lambda s: re.sub(r"\s+", " ", s)).strip()
    if style == 1:  # clauses on their own lines, as chat models like to print them
        return _outside_quotes(sql, lambda s: re.sub(
            r"\s+(FROM|WHERE|GROUP BY|ORDER BY|HAVING|LIMIT|JOIN)\b", r"\n\1", s,
            flags=re.IGNORECASE))
    return _outside_quotes(sql, lambda s: s.replace(",", " , ").replace("(", "( ")) + "\n"


def _broken(sql: str, rng: random.Random) -> str:
    kind = rng.randrange(3)
    if kind == 0:
        return re.sub(r"\bFROM\b", "FORM", sql, count=1, flags=re.IGNORECASE) \
            if re.search(r"\bFROM\b", sql, re.IGNORECASE) else sql + " WHERE"
    if kind == 1:  # cut off mid-query (a max_tokens stop), ending on an operator
        words = sql.split()
        return " ".join(words[: max(2, len(words) * 2 // 3)]) + " AND ("
    return sql + " )"  # an unbalanced parenthesis


def _variant(sql: str, rng: random.Random) -> str:
    """A plausible near miss: DISTINCT added, or a different / added LIMIT."""
    m = re.match(r"\s*select\s+(distinct\s+)?", sql, re.IGNORECASE)
    if rng.random() < 0.5 and m and not m.group(1) and "union" not in sql.lower():
        return sql[: m.end()] + "DISTINCT " + sql[m.end():]
    lim = re.search(r"\blimit\s+(\d+)\s*;?\s*$", sql, re.IGNORECASE)
    if lim:  # LIMIT 1 -> LIMIT 2..5; LIMIT n -> LIMIT 1
        n = int(lim.group(1))
        new = n + rng.choice([1, 2, 4]) if n == 1 else 1
        return sql[: lim.start(1)] + str(new) + sql[lim.end(1):]
    if re.search(r"\b(union|intersect|except)\b", sql, re.IGNORECASE):
        return sql.rstrip().rstrip(";") + " LIMIT 1"
    return sql.rstrip().rstrip(";") + f" LIMIT {rng.choice([1, 3, 5])}"


def make_candidates(tasks: list[dict], k: int, seed: int = 0) -> Counter:
    """Add ``k`` candidates to each task in place; returns counts per kind."""
    by_db: dict[str, list[str]] = {}
    for t in tasks:
        by_db.setdefault(t["db_id"], []).append(t["gold_sql"])
    mix: Counter = Counter()
    for idx, t in enumerate(tasks):
        rng = random.Random(f"{seed}:{idx}:{t['id']}")
        gold = t["gold_sql"]
        others = [g for g in by_db[t["db_id"]] if g.strip() != gold.strip()] or \
                 [tasks[(idx + 1) % len(tasks)]["gold_sql"]]
        n_gold = max(1, round(k * rng.choice([3, 4]) / 8))
        n_other = max(1 if k >= 3 else 0, round(k * rng.choice([1, 2]) / 8))
        n_broken = 1 if k >= 4 else 0
        n_gold = min(n_gold, k - n_other - n_broken)
        n_var = k - n_gold - n_other - n_broken
        cands: list[tuple[str, str]] = []
        # gold copies: the exact text, then restyled / recased / repeated copies
        cands.append(("gold (exact text)", gold))
        for _ in range(n_gold - 1):
            r = rng.random()
            if r < 0.3:
                cands.append(("gold (exact text)", gold))
            elif r < 0.65:
                cands.append(("gold (whitespace changed)", _respace(gold, rng)))
            else:
                cands.append(("gold (keyword case changed)", _recase(gold, rng)))
        other = rng.choice(others)
        for _ in range(n_other):
            cands.append(("other question's gold, same db", other))
        for _ in range(n_broken):
            cands.append(("syntax error", _broken(gold, rng)))
        for _ in range(n_var):
            cands.append(("variant (DISTINCT / LIMIT)", _variant(gold, rng)))
        rng.shuffle(cands)
        t["candidates"] = [{"sql": sql} for _, sql in cands]
        mix.update(kind for kind, _ in cands)
    return mix


# --------------------------------------------------------------------------------------
# Measuring a subprocess: wall time, peak summed RSS of its tree, its own VmHWM
# --------------------------------------------------------------------------------------

def _status_kb(pid: int, field: str) -> int:
    try:
        with open(f"/proc/{pid}/status", "rb") as f:
            for line in f:
                if line.startswith(field.encode()):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0


def _children(pid: int) -> list[int]:
    out: list[int] = []
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/children", "rb") as f:
                out.extend(int(x) for x in f.read().split())
        except (OSError, ValueError):
            pass
    return out


def _tree(pid: int) -> list[int]:
    seen, todo = [], [pid]
    while todo:
        p = todo.pop()
        seen.append(p)
        todo.extend(_children(p))
    return seen


def measure(cmd: list[str], stdout_path: str, interval_s: float = 0.02) -> dict:
    """Run ``cmd`` with stdout to a file; wall s, peak summed RSS (KiB), VmHWM (KiB)."""
    with open(stdout_path, "wb") as out, open(stdout_path + ".err", "wb") as err:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, cwd=PROJECT_ROOT)
        peak = {"sum": 0, "hwm": 0, "procs": 0}
        stop = threading.Event()

        def sample():
            while not stop.is_set():
                pids = _tree(proc.pid)
                total = sum(_status_kb(p, "VmRSS:") for p in pids)
                peak["sum"] = max(peak["sum"], total)
                peak["procs"] = max(peak["procs"], len(pids))
                peak["hwm"] = max(peak["hwm"], _status_kb(proc.pid, "VmHWM:"))
                stop.wait(interval_s)

        th = threading.Thread(target=sample, daemon=True)
        th.start()
        _, status, rusage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        stop.set()
        th.join()
    if proc.returncode != 0:
        with open(stdout_path + ".err", "rb") as f:
            sys.stderr.write(f.read().decode(errors="replace")[-4000:])
        raise SystemExit(f"exec_bench: {' '.join(cmd)} exited {proc.returncode}")
    # ru_maxrss of a waited-for child is its own peak RSS (KiB on Linux) = its VmHWM.
    # ru_utime/ru_stime of wait4 include the descendants it waited for (rf-exec joins its
    # workers), so cpu is the whole tree's CPU time.
    return {"wall": wall, "peak_sum_kb": peak["sum"], "hwm_kb": max(peak["hwm"], rusage.ru_maxrss),
            "procs": peak["procs"], "cpu": rusage.ru_utime + rusage.ru_stime}


# --------------------------------------------------------------------------------------

def _verdicts(path: str) -> list[tuple[str, list]]:
    out = []
    with open(path, "rb") as f:
        for line in f:
            if line.strip():
                t = orjson.loads(line)
                out.append((t["id"], [c.get("correct") for c in t.get("candidates") or []]))
    return out


def _mb(kb: int) -> str:
    return f"{kb / 1024:.0f} MiB"


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def _header(n_tasks: int, k: int, repeats: int) -> list[str]:
    try:
        ncpu = len(os.sched_getaffinity(0))
    except AttributeError:
        ncpu = os.cpu_count()
    return [
        f"- date: {_dt.datetime.now().astimezone().strftime('%Y-%m-%d %H:%M %Z')}",
        f"- machine: nproc {ncpu}, {platform.machine()}, {platform.system()} "
        f"{platform.release()}, {_cpu_model()}",
        f"- python {platform.python_version()}, sqlite {sqlite3.sqlite_version}",
        f"- input: Spider dev, {n_tasks} tasks x {k} candidates = {n_tasks * k} candidates; "
        f"wall = median of {repeats} run(s), each a fresh subprocess (start-up and JSONL I/O "
        "included)",
    ]


def variants_table(rf_exec: str, tasks_path: str, tmp: str, n_cands: int,
                   repeats: int) -> None:
    """rf-exec --jobs 2 with --variants 4 (variants cached) and with --variants 4
    --for-training (gold variants cached too) against --variants 0."""
    cache = os.path.join(tmp, "variants")
    cold = measure([rf_exec, tasks_path, "--jobs", "2", "-o", "variants", "4",
                    "-o", "variants_dir", cache], os.path.join(tmp, "v_cold.jsonl"))
    print(f"  variants: first run (builds them): {cold['wall']:.2f} s", file=sys.stderr,
          flush=True)
    training = [rf_exec, tasks_path, "--jobs", "2", "-o", "variants", "4", "-o", "variants_dir",
                cache, "--for-training", "--matcher", "official-keep-distinct"]
    cold_gold = measure(training, os.path.join(tmp, "v_cold_gold.jsonl"))
    print(f"  variants: first --for-training run (builds gold variants): "
          f"{cold_gold['wall']:.2f} s", file=sys.stderr, flush=True)
    methods = {
        "rf-exec --jobs 2 --variants 0": [rf_exec, tasks_path, "--jobs", "2"],
        "rf-exec --jobs 2 --variants 4 (variants cached)":
            [rf_exec, tasks_path, "--jobs", "2", "-o", "variants", "4", "-o", "variants_dir",
             cache],
        "rf-exec --jobs 2 --variants 4 --for-training (gold variants cached too)": training,
    }
    outputs = {m: os.path.join(tmp, f"v{i}.jsonl") for i, m in enumerate(methods)}
    runs: dict[str, list[dict]] = {m: [] for m in methods}
    for r in range(repeats):
        for m, cmd in methods.items():
            res = measure(cmd, outputs[m])
            runs[m].append(res)
            print(f"  variants run {r + 1}/{repeats} {m}: {res['wall']:.2f} s",
                  file=sys.stderr, flush=True)
    checked = rejected = 0
    with open(outputs[list(methods)[1]], "rb") as f:
        for line in f:
            for c in orjson.loads(line).get("candidates") or []:
                v = c.get("variants")
                if v:
                    checked += 1
                    rejected += v["passed"] != v["used"]
    print()
    print("## rf-exec --variants 4 against --variants 0\n")
    print("| method | wall (s), median (min-max) | candidates/s | time ratio | "
          "vs --variants 4 | CPU (s) |")
    print("|---|---:|---:|---:|---:|---:|")
    names = list(methods)
    base = statistics.median(x["wall"] for x in runs[names[0]])
    four = statistics.median(x["wall"] for x in runs[names[1]])
    for m in names:
        walls = [x["wall"] for x in runs[m]]
        wall = statistics.median(walls)
        cpu = statistics.median(x["cpu"] for x in runs[m])
        print(f"| {m} | {wall:.2f} ({min(walls):.2f}-{max(walls):.2f}) | "
              f"{n_cands / wall:,.0f} | {wall / base:.2f}x | {wall / four:.2f}x | {cpu:.2f} |")
    silent = 0
    with open(outputs[names[2]], "rb") as f:
        for line in f:
            silent += sum(bool(c.get("unverifiable"))
                          for c in orjson.loads(line).get("candidates") or [])
    print(f"\nThe first --for-training run, which built the gold variants, took "
          f"{cold_gold['wall']:.2f} s; {silent} candidate(s) were unverifiable there.")
    print(f"\nBuilding the 4 variants of every database (once; cached afterwards) made the "
          f"first --variants 4 run take {cold['wall']:.2f} s. {checked:,} candidates matched "
          f"on the original database and were checked on the variants; {rejected} of them "
          "were turned to wrong (the synthetic candidates that match are mostly gold copies).")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--spider-root", default=os.environ.get("RF_SPIDER_ROOT")
                    or str(PROJECT_ROOT.parent / "shared" / "spider"))
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--k", type=int, default=8, help="candidates per task")
    ap.add_argument("--limit", type=int, default=None, help="at most N tasks")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-scaling", action="store_true", help="skip the memory-vs-tasks table")
    ap.add_argument("--no-variants", action="store_true", help="skip the --variants 4 table")
    ap.add_argument("--only-variants", action="store_true",
                    help="only the --variants 4 table (no baseline, no scaling)")
    ap.add_argument("--naive-worker", metavar="FILE", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)

    if args.naive_worker:
        naive_verify(args.naive_worker, sys.stdout.buffer)
        return 0

    root = Path(args.spider_root)
    if not (root / "dev.json").is_file() or not (root / "database").is_dir():
        print(f"exec_bench: skipped: Spider not found at {root} (no dev.json / database/); "
              "set --spider-root or RF_SPIDER_ROOT")
        return 0

    rf_data, rf_exec = str(BIN / "rf-data"), str(BIN / "rf-exec")
    with tempfile.TemporaryDirectory(prefix="rf-exec-bench-") as tmp:
        cmd = [rf_data, "spider", "--root", str(root), "--split", "dev"]
        if args.limit is not None:
            cmd += ["--limit", str(args.limit)]
        data = subprocess.run(cmd, capture_output=True, check=True).stdout
        tasks = [orjson.loads(x) for x in data.splitlines() if x.strip()]
        if not tasks:
            print(f"exec_bench: skipped: rf-data wrote no Spider dev tasks from {root}")
            return 0
        mix = make_candidates(tasks, args.k, args.seed)
        tasks_path = os.path.join(tmp, "tasks.jsonl")
        with open(tasks_path, "wb") as f:
            for t in tasks:
                f.write(orjson.dumps(t, option=orjson.OPT_APPEND_NEWLINE))
        n_tasks, n_cands = len(tasks), sum(len(t["candidates"]) for t in tasks)
        # rf-exec runs each distinct stripped text once per task, the gold query included
        rf_queries = sum(len({t["gold_sql"].strip()} | {c["sql"].strip() for c in t["candidates"]})
                         for t in tasks)
        if args.only_variants:
            print("\n".join(_header(n_tasks, args.k, args.repeats)))
            variants_table(rf_exec, tasks_path, tmp, n_cands, args.repeats)
            return 0

        methods = {
            "naive (1 process, connection per query, no dedup)":
                [sys.executable, str(Path(__file__).resolve()), "--naive-worker", tasks_path],
            "rf-exec --jobs 1": [rf_exec, tasks_path, "--jobs", "1"],
            "rf-exec --jobs 2": [rf_exec, tasks_path, "--jobs", "2"],
        }
        runs: dict[str, list[dict]] = {m: [] for m in methods}
        load0 = os.getloadavg()[0]
        outputs = {m: os.path.join(tmp, f"out{i}.jsonl") for i, m in enumerate(methods)}
        for r in range(args.repeats):  # interleaved, so drifting machine load hits all alike
            for m, cmd in methods.items():
                res = measure(cmd, outputs[m])
                runs[m].append(res)
                print(f"  run {r + 1}/{args.repeats} {m}: {res['wall']:.2f} s",
                      file=sys.stderr, flush=True)

        names = list(methods)
        base = _verdicts(outputs[names[0]])
        for m in names[1:]:
            other = _verdicts(outputs[m])
            assert len(other) == len(base), f"{m}: {len(other)} tasks, naive {len(base)}"
            for (id_a, va), (id_b, vb) in zip(base, other):
                assert id_a == id_b and va == vb, \
                    f"verdicts differ on {id_a}: naive {va}, {m} {vb}"
        n_correct = sum(sum(v is True for v in vs) for _, vs in base)

        print("## rf-exec vs. a straightforward verifier\n")
        print("\n".join(_header(n_tasks, args.k, args.repeats)))
        print()
        print("| method | wall (s), median (min-max) | candidates/s | speedup | CPU (s), "
              "process tree | peak RSS, process tree | peak RSS, parent (VmHWM) |")
        print("|---|---:|---:|---:|---:|---:|---:|")
        base_wall = statistics.median(x["wall"] for x in runs[names[0]])
        for m in names:
            walls = [x["wall"] for x in runs[m]]
            wall = statistics.median(walls)
            cpu = statistics.median(x["cpu"] for x in runs[m])
            peak = max(x["peak_sum_kb"] for x in runs[m])
            hwm = max(x["hwm_kb"] for x in runs[m])
            procs = max(x["procs"] for x in runs[m])
            print(f"| {m} | {wall:.2f} ({min(walls):.2f}-{max(walls):.2f}) | "
                  f"{n_cands / wall:,.0f} | {base_wall / wall:.2f}x | {cpu:.2f} | "
                  f"{_mb(peak)} ({procs} proc{'s' if procs > 1 else ''}) | {_mb(hwm)} |")
        print(f"\nLoad average (1 min) before / after the runs: {load0:.2f} / "
              f"{os.getloadavg()[0]:.2f}. Peak RSS of the tree is sampled every 20 ms and sums "
              "RSS, so pages that rf-exec's forked workers share with their parent are counted "
              "in every process that maps them (the sum overstates the real footprint); VmHWM "
              "is the kernel's exact peak for the parent process alone. CPU is user + system "
              "time of the process and its waited-for children.")
        print()
        print(f"Candidate mix (seed {args.seed}): {n_cands} candidates, {n_correct} judged "
              f"correct, {n_cands - n_correct} not. Queries run: naive {n_tasks + n_cands:,} "
              f"(gold + every candidate); rf-exec {rf_queries:,} (each distinct text per task "
              "once, compared after strip(); a candidate identical to the gold text shares "
              "the gold's run).\n")
        print("| kind | candidates | per task |")
        print("|---|---:|---:|")
        for kind, n in sorted(mix.items(), key=lambda kv: -kv[1]):
            print(f"| {kind} | {n} | {n / n_tasks:.2f} |")
        print()
        print("verdicts identical: yes")

        if not args.no_variants:
            variants_table(rf_exec, tasks_path, tmp, n_cands, args.repeats)

        if not args.no_scaling:
            print()
            print("## rf-exec --jobs 2: peak memory against input size\n")
            print("The same task file repeated 1x, 2x, 4x (task ids repeat); one run each.\n")
            print("| tasks | candidates | wall (s) | candidates/s | peak RSS, process tree | "
                  "peak RSS, parent (VmHWM) |")
            print("|---:|---:|---:|---:|---:|---:|")
            with open(tasks_path, "rb") as f:
                blob = f.read()
            for times in (1, 2, 4):
                path = os.path.join(tmp, f"tasks_x{times}.jsonl")
                with open(path, "wb") as f:
                    for _ in range(times):
                        f.write(blob)
                res = measure([rf_exec, path, "--jobs", "2"], os.path.join(tmp, "scale.jsonl"))
                print(f"| {n_tasks * times} | {n_cands * times} | {res['wall']:.2f} | "
                      f"{n_cands * times / res['wall']:,.0f} | {_mb(res['peak_sum_kb'])} | "
                      f"{_mb(res['hwm_kb'])} |")
                print(f"  scaling x{times}: {res['wall']:.2f} s", file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
