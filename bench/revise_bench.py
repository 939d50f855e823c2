#!/usr/bin/env python3
"""Single-turn against execute-and-revise, greedy, on one set of questions: prints a Markdown
table (EX with its 95% interval, the paired difference with the single-turn answers and its
McNemar p-value, candidates fixed and broken, seconds per question) and five revisions read.

    bench/revise_bench.py --dataset demo --split dev --out out/revise-demo
    bench/revise_bench.py --dataset spider --root ../shared/spider --limit 120 --seed 7 \\
        --values 3 --out out/revise-spider

Round r is ``rf-revise --rounds 1`` on round r-1's executed answers, then ``rf-exec``: the
same answers as one ``rf-revise --rounds R`` call (a candidate leaves once its query returns
rows; greedy decoding sees the same conversation), with a verdict after every round. Files
stay in --out; a rerun reuses the ones that are there.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path


def stage(out: Path, name: str, cmd: str, timings: dict) -> Path:
    """Run the shell pipeline ``cmd`` into out/name unless it is there; record its seconds."""
    path = out / name
    if not path.exists():
        began = time.perf_counter()
        tmp = path.with_suffix(".tmp")
        with open(tmp, "wb") as fh:
            subprocess.run(["bash", "-o", "pipefail", "-c", cmd], stdout=fh, check=True)
        tmp.rename(path)
        timings[name] = round(time.perf_counter() - began, 1)
        (out / "timings.json").write_text(json.dumps(timings, indent=1))
    return path


def report(path: Path, baseline: Path | None) -> dict:
    """rf-eval's report of an executed file (paired with ``baseline`` when given)."""
    args = ["rf-eval"] + (["--baseline", str(baseline)] if baseline else [])
    with open(path, "rb") as fh:
        return json.loads(subprocess.run(args, stdin=fh, capture_output=True,
                                         check=True).stdout)


def readings(path: Path, n: int = 5) -> list[str]:
    """The first ``n`` revised candidates whose verdict changed, or any revised ones."""
    rows, others = [], []
    for line in path.read_text().splitlines():
        task = json.loads(line)
        for cand in task.get("candidates") or []:
            turns = (cand.get("revision") or {}).get("turns") or []
            if not turns:
                continue
            first = turns[0]
            shown = first.get("shown") or {}
            what = shown.get("error") or f"{shown.get('n_rows')} row(s)"
            before, after = (" ".join(str(q.get("sql")).split()) for q in (first, cand))
            text = (f"| {task['id']} | {what} | `{before}` | `{after}` | "
                    f"{first.get('correct')} -> {cand.get('correct')} |")
            (rows if first.get("correct") != cand.get("correct") else others).append(text)
    return (rows + others)[:n]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="qwen2.5-coder-0.5b")
    ap.add_argument("--dataset", default="demo")
    ap.add_argument("--root", default=None)
    ap.add_argument("--split", default="dev")
    ap.add_argument("--limit", type=int, default=0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--values", type=int, default=0)
    ap.add_argument("--max-new-tokens", type=int, default=128)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    timings = json.loads((out / "timings.json").read_text()) if (out / "timings.json").exists() \
        else {}
    data = f"rf-data {a.dataset} --split {a.split} --values {a.values}"
    data += f" --root {a.root}" if a.root else ""
    data += f" --limit {a.limit} --seed {a.seed}" if a.limit else ""
    gen = f"--model {a.model} --max-new-tokens {a.max_new_tokens}"
    tasks = stage(out, "tasks.jsonl", data, timings)
    files = [stage(out, "round0.jsonl", f"rf-sample {gen} -k 1 -t 0 < {tasks} | rf-exec",
                   timings)]
    for r in range(1, a.rounds + 1):
        files.append(stage(out, f"round{r}.jsonl",
                           f"rf-revise {gen} --rounds 1 < {files[-1]} | rf-exec", timings))
    n = sum(1 for _ in tasks.open())
    print(f"{a.dataset} {a.split}: {n} questions, {a.model}, greedy, at most "
          f"{a.max_new_tokens} new tokens\n")
    print("| run | EX [95% interval] | vs single turn (95% paired bootstrap) | McNemar p | "
          "won / lost | revised / fixed / broken | s per question (cumulative) |")
    print("|---|---|---|---|---|---|---|")
    spent = 0.0
    for r, path in enumerate(files):
        rep = report(path, files[0] if r else None)
        spent += timings.get(path.name, float("nan"))
        ci = rep["ex_ci95"]
        name = "single turn" if r == 0 else f"+ {r} round(s) of revision"
        if r == 0:
            cmp, counts = "", ""
            p = won = ""
        else:
            b, rev = rep["baseline"], rep.get("revision") or {}
            cmp = f"{b['diff']:+.1f} [{b['diff_ci95'][0]:+.1f}, {b['diff_ci95'][1]:+.1f}]"
            p, won = f"{b['mcnemar_p']:.3g}", f"{b['won']} / {b['lost']}"
            counts = (f"{rev.get('candidates_revised', 0)} / {rev.get('fixed', 0)} / "
                      f"{rev.get('broken', 0)}")
        print(f"| {name} | {rep['ex']:.1f}% ({rep['correct']}/{rep['scored']}) "
              f"[{ci[0]:.1f}, {ci[1]:.1f}] | {cmp} | {p} | {won} | {counts} | "
              f"{spent / n:.1f} |")
    print("\nRevisions read (the first turn's feedback, the query before and after, the "
          "verdict before -> after):\n")
    print("| task | feedback on | before | after | correct |\n|---|---|---|---|---|")
    print("\n".join(readings(files[-1])))
    return 0


if __name__ == "__main__":
    sys.exit(main())
