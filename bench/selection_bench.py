#!/usr/bin/env python
"""Benchmark: which sampled candidates today's training selection accepts and
``rf-exec --for-training`` does not.

Reads a file of sampled tasks (rf-sample's output), runs ``rf-exec --matcher
official-keep-distinct -o variants 4`` on it without and with ``--for-training`` (the same
variant cache folder, so the perturbation variants are built once), and prints Markdown: a
table of candidates and tasks selected by each, the wall time of each run, and every
candidate the old selection accepted that the new one does not (task id, question, gold,
candidate, the new verdict and its reason), for reading.

    python bench/selection_bench.py SAMPLED.jsonl [--variants 4] [--jobs 2] [--show 10]

Example (a seeded Spider train sample, Qwen2.5-Coder-0.5B on a CPU):

    rf-data spider --root SPIDER --split train --limit 200 --seed 0 --values 3 \\
      | rf-sample -m qwen2.5-coder-0.5b -k 4 -t 0.7 --max-new-tokens 160 > sampled.jsonl
    python bench/selection_bench.py sampled.jsonl
"""

from __future__ import annotations

import argparse
import datetime as _dt
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson

BIN = Path(sys.executable).parent


def run_exec(path: str, out: str, cache: str, variants: int, jobs: int,
             training: bool) -> float:
    cmd = [str(BIN / "rf-exec"), path, "--matcher", "official-keep-distinct", "--jobs",
           str(jobs), "-o", "variants", str(variants), "-o", "variants_dir", cache]
    if training:
        cmd.append("--for-training")
    start = time.perf_counter()
    with open(out, "wb") as f:
        subprocess.run(cmd, stdout=f, stderr=subprocess.DEVNULL, check=True)
    return time.perf_counter() - start


def read(path: str) -> list[dict]:
    with open(path, "rb") as f:
        return [orjson.loads(line) for line in f if line.strip()]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("sampled")
    ap.add_argument("--variants", type=int, default=4)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--show", type=int, default=10, help="candidates to print in full")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="rf-selection-bench-") as tmp:
        cache = os.path.join(tmp, "variants")
        old_path, new_path = os.path.join(tmp, "old.jsonl"), os.path.join(tmp, "new.jsonl")
        run_exec(args.sampled, old_path, cache, args.variants, args.jobs, False)  # builds
        run_exec(args.sampled, new_path, cache, args.variants, args.jobs, True)  # builds
        t_old = run_exec(args.sampled, old_path, cache, args.variants, args.jobs, False)
        t_new = run_exec(args.sampled, new_path, cache, args.variants, args.jobs, True)
        old, new = read(old_path), read(new_path)
    rows = {"old": [0, 0, 0], "new": [0, 0, 0]}  # candidates correct, null, tasks covered
    lost = []
    for a, b in zip(old, new):
        for name, task in (("old", a), ("new", b)):
            cands = task.get("candidates") or []
            rows[name][0] += sum(c.get("correct") is True for c in cands)
            rows[name][1] += sum(c.get("correct") is None for c in cands)
            rows[name][2] += any(c.get("correct") is True for c in cands)
        for ca, cb in zip(a.get("candidates") or [], b.get("candidates") or []):
            if ca.get("correct") is True and cb.get("correct") is not True:
                lost.append((b, cb))
    n_cands = sum(len(t.get("candidates") or []) for t in old)
    print(f"- date: {_dt.date.today()}; machine: {os.cpu_count()} CPUs, {platform.machine()}")
    print(f"- input: {args.sampled}: {len(old)} tasks, {n_cands} candidates; rf-exec "
          f"--matcher official-keep-distinct -o variants {args.variants} --jobs {args.jobs}, "
          "variants cached\n")
    print("| selection | candidates correct | candidates null (unverifiable) | tasks covered "
          "| wall (s) |")
    print("|---|---:|---:|---:|---:|")
    print(f"| today | {rows['old'][0]} | {rows['old'][1]} | {rows['old'][2]} | {t_old:.2f} |")
    print(f"| --for-training | {rows['new'][0]} | {rows['new'][1]} | {rows['new'][2]} | "
          f"{t_new:.2f} |")
    print(f"\n{len(lost)} candidate(s) accepted today are not accepted with --for-training "
          f"({sum(c.get('correct') is None for _, c in lost)} unverifiable, "
          f"{sum(c.get('correct') is False for _, c in lost)} wrong on a gold variant).\n")
    for task, cand in lost[:args.show]:
        why = cand.get("unverifiable") or "wrong on the gold variant"
        print(f"- `{task.get('id')}` ({task.get('db_id')}): {task.get('question')}\n"
              f"  gold: `{task.get('gold_sql')}`\n  candidate: `{cand.get('sql')}`\n"
              f"  now: correct {cand.get('correct')}; {why}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
