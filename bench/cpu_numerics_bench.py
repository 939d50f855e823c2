"""Speed and EX of the hf sampler's CPU settings that change numerics, against the default.

Each setting samples the same tasks greedily (the demo's dev split, 82 questions, by
default), with the demo loop's --max-new-tokens 96, through rf-sample --stats, rf-exec and
rf-eval, one setting after another on the same machine. The table: load seconds (model and
any quantization), prefill and decode rates, generation and wall seconds, dev EX (the
official evaluator's default semantics) and how many answers are the same SQL as the
default's.

    python bench/cpu_numerics_bench.py                          # fp32, int8
    python bench/cpu_numerics_bench.py --settings fp32,int8,bf16 --model qwen2.5-coder-0.5b

fp32 is the default (on a CPU, oneDNN's packed fp32 kernels); fp32-torch the same with
torch's default kernels (`-o kernels torch`); int8 is `-o quantize int8`, bf16 `-o dtype
bf16`. The first setting named is the one the others' SQL is compared with. Not a timed
test: quote the table with the machine it ran on.

    python bench/cpu_numerics_bench.py --settings fp32-torch,fp32   # the kernels alone
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

SETTINGS = {"fp32": [], "fp32-torch": ["-o", "kernels", "torch"],
            "int8": ["-o", "quantize", "int8"], "bf16": ["-o", "dtype", "bf16"]}


def say(message: str) -> None:
    print(f"cpu_numerics_bench: {message}", file=sys.stderr, flush=True)


def sh(cmd: str, **kwargs) -> None:
    """``cmd`` in bash, with this python's commands (the venv's rf-*) first on PATH."""
    say(f"$ {cmd}")
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    subprocess.run(["bash", "-o", "pipefail", "-c", cmd], check=True, env=env, **kwargs)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="qwen2.5-coder-0.5b")
    ap.add_argument("--settings", default="fp32,int8",
                    help=f"comma-separated, of {', '.join(SETTINGS)}")
    ap.add_argument("--dataset", default="demo")
    ap.add_argument("--split", default="dev")
    ap.add_argument("--limit", type=int, default=0, help="tasks (0: the whole split)")
    ap.add_argument("--max-new-tokens", type=int, default=96)
    ap.add_argument("--work", default="out/cpu-numerics-bench")
    args = ap.parse_args()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    tasks = work / "tasks.jsonl"
    limit = f" --limit {args.limit}" if args.limit else ""
    sh(f"rf-data {args.dataset} --split {args.split}{limit} > {tasks}")
    rows = []
    answers: dict[str, list] = {}
    for name in args.settings.split(","):
        extra = " ".join(SETTINGS[name])
        stats = work / f"{name}.sample.json"
        sh(f"rf-sample --sampler hf -m {args.model} -k 1 --temperature 0 --max-new-tokens "
           f"{args.max_new_tokens} {extra} --stats {stats} < {tasks} | rf-exec "
           f"> {work / name}.jsonl")
        sh(f"rf-eval < {work / name}.jsonl > {work / name}.report.json")
        s = json.loads(stats.read_text())
        report = json.loads((work / f"{name}.report.json").read_text())
        answers[name] = [(json.loads(line)["candidates"] or [{}])[0].get("sql")
                         for line in (work / f"{name}.jsonl").read_text().splitlines()]
        rows.append((name, s, report))
    base = answers[rows[0][0]]
    print(f"{len(base)} {args.dataset} {args.split} tasks, greedy, max_new_tokens "
          f"{args.max_new_tokens}, model {args.model}\n")
    print("| setting | load s | prefill tok/s | decode tok/s | generation s | wall s | EX | "
          f"same SQL as {rows[0][0]} |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for name, s, report in rows:
        same = sum(a == b for a, b in zip(answers[name], base))
        ex = report.get("ex")
        correct = report.get("correct")
        print(f"| {name} | {s['load_s']:.1f} | {s['prefill_tokens'] / s['prefill_s']:.0f} | "
              f"{s['new_tokens'] / s['decode_s']:.1f} | {s['generate_s']:.1f} | "
              f"{s['wall_s']:.1f} | {ex:.1f}% ({correct}/{report.get('tasks')}) | "
              f"{same}/{len(base)} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
