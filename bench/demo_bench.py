"""The demo's stage time, side by side: `make demo`'s loop (the cpu-demo preset) on a base
revision and on this checkout, one after the other on the same machine, and the ratio per
stage kind.

The base revision is checked out in a git worktree with its own venv (its `make install`);
this checkout uses its own `.venv`. Each side runs `bin/iterate.sh --preset cpu-demo` into a
fresh run folder, and its `timings.tsv` is read back: each stage's seconds, grouped by kind
(the dev and validation greedy sampling is one kind, since the change samples both in one
call). The report rows (EX, coverage, examples, loss) of both sides are compared on the
columns both reports have, speed columns (stage time, tok/s) left out: a change that only
makes the demo faster leaves them identical.

    python bench/demo_bench.py                      # c1085ed against this checkout
    python bench/demo_bench.py --base c1085ed --work /tmp/demo-bench --model qwen2.5-coder-0.5b
    python bench/demo_bench.py --change 60f340b --only change   # rerun one side, from a commit
    python bench/demo_bench.py --only change --change-args "--sampler-option dtype=bf16"
    python bench/demo_bench.py --reuse              # print the table of runs already in --work

Nothing here is a timed test: run it on a quiet machine and quote the table it prints (the
machine, and medians over --rounds where runs vary). Sides alternate round by round, base
first, so a drift in the machine's speed touches both.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# stage kinds, in the table's order: (label, does a stage name belong to it)
KINDS = (
    ("dev + val greedy sample", lambda s: s in ("dev-greedy-sample", "val-greedy-sample",
                                                 "greedy-sample", "dev-greedy-split",
                                                 "val-greedy-split")),
    ("train sample (k=4)", lambda s: s == "train-sample"),
    ("train", lambda s: s == "train"),
    ("data, exec, eval, select", lambda s: True),
)
# stages that run a model (load it): a kind's "runs" counts these
LOADS = {"dev-greedy-sample", "val-greedy-sample", "greedy-sample", "train-sample", "train"}


def say(message: str) -> None:
    print(f"demo_bench: {message}", file=sys.stderr, flush=True)


def run(cmd: list[str], **kwargs) -> None:
    say("$ " + " ".join(cmd))
    subprocess.run(cmd, check=True, stdout=sys.stderr, **kwargs)  # stdout: the table only


def checkout(rev: str, work: Path, pip_args: str) -> Path:
    """A worktree of ``rev`` under ``work``, installed into its own venv (once)."""
    tree = work / f"tree-{rev}"
    if not (tree / ".git").exists():
        run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(tree), rev])
    if not (tree / ".venv" / ".installed").exists():
        run(["make", "-C", str(tree), "install"] + ([f"PIP_ARGS={pip_args}"] if pip_args else []))
    return tree


def demo(tree: Path, out: Path, model: str, extra: list[str]) -> float:
    """The cpu-demo loop of ``tree`` into ``out`` (made anew), with ``extra`` iterate.sh
    arguments; its wall seconds."""
    if out.exists():
        subprocess.run(["rm", "-rf", "--", str(out)], check=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("RF_")}
    env["PATH"] = f"{tree / '.venv' / 'bin'}{os.pathsep}{env['PATH']}"
    log = out.with_suffix(".log")
    out.parent.mkdir(parents=True, exist_ok=True)
    began = time.perf_counter()
    with log.open("w") as f:
        cmd = ["bin/iterate.sh", "--preset", "cpu-demo", "--model", model, "--out", str(out),
               *extra]
        say(f"$ {' '.join(cmd)}  (in {tree}, log {log})")
        subprocess.run(cmd, cwd=tree, env=env, stdout=f, stderr=subprocess.STDOUT,
                       stdin=subprocess.DEVNULL, check=True)
    return time.perf_counter() - began


def timings(out: Path) -> list[tuple[str, str, float]]:
    """(iteration, stage, seconds) of a run folder's timings.tsv."""
    rows = []
    for line in (out / "timings.tsv").read_text().splitlines()[1:]:
        iteration, stage, ms = line.split("\t")
        rows.append((iteration, stage, int(ms) / 1000))
    return rows


def by_kind(rows: list[tuple[str, str, float]]) -> dict[str, tuple[int, float]]:
    """Per stage kind: (model runs, seconds)."""
    out = {label: (0, 0.0) for label, _ in KINDS}
    for _, stage, seconds in rows:
        label = next(label for label, match in KINDS if match(stage))
        runs, total = out[label]
        out[label] = (runs + (stage in LOADS), total + seconds)
    return out


def report_tables(out: Path) -> list[tuple[list[str], list[list[str]]]]:
    """The report's tables: (header cells, rows of cells) each."""
    tables: list[tuple[list[str], list[list[str]]]] = []
    header: list[str] | None = None
    for line in (out / "report.md").read_text().splitlines():
        if not line.startswith("|"):
            header = None
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if header is None:
            header = cells
            tables.append((header, []))
        elif not all(set(c) <= set("-: ") for c in cells):
            tables[-1][1].append(cells)
    return tables


def speed_column(name: str) -> bool:
    """A column that measures speed (stage time, tok/s), not what the loop produced."""
    return "time" in name.lower() or "tok/s" in name


def comparable(runs: list[Path]) -> list[list[str]]:
    """Each run's report rows as text, on the columns all the runs' tables share, speed
    columns left out (a newer report may add columns; they are not compared)."""
    reports = [report_tables(p) for p in runs]
    n = min(len(r) for r in reports)
    shown: list[list[str]] = [[] for _ in runs]
    for t in range(n):
        common = [c for c in reports[0][t][0] if not speed_column(c)
                  and all(c in r[t][0] for r in reports)]
        for i, r in enumerate(reports):
            header, rows = r[t]
            at = [header.index(c) for c in common]
            shown[i].append(" | ".join(common))
            shown[i] += [" | ".join(row[j] if j < len(row) else "" for j in at) for row in rows]
    return shown


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def machine() -> str:
    """The CPU's model name and core count, and the vector extensions that decide speed."""
    name, flags = platform.processor() or platform.machine(), ""
    try:
        info = Path("/proc/cpuinfo").read_text()
        m = re.search(r"^model name\s*:\s*(.+)$", info, re.M)
        name = m.group(1).strip() if m else name
        f = re.search(r"^flags\s*:\s*(.+)$", info, re.M)
        have = set(f.group(1).split()) if f else set()
        flags = ", ".join(x for x in ("avx2", "avx512f", "avx512_bf16", "amx_bf16")
                          if x in have)
    except OSError:
        pass
    return f"{name}, {os.cpu_count()} cores ({flags or 'flags unknown'})"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--base", default="c1085ed", help="the revision to compare against")
    ap.add_argument("--change", default="",
                    help="a revision to run as the change, in a worktree of its own "
                         "(default: this checkout as it is, which must not be edited meanwhile)")
    ap.add_argument("--change-args", default="",
                    help="more bin/iterate.sh arguments for the change side, e.g. an opt-in "
                         "option: \"--sampler-option dtype=bf16 --trainer-option dtype=bf16\"")
    ap.add_argument("--only", choices=("base", "change"),
                    help="run only this side; the other side's finished runs in --work are kept")
    ap.add_argument("--model", default="qwen2.5-coder-0.5b")
    ap.add_argument("--work", default="out/demo-bench", help="worktree, venv and run folders")
    ap.add_argument("--rounds", type=int, default=1, help="runs of each side, alternating")
    ap.add_argument("--reuse", action="store_true",
                    help="run nothing: the table of the finished runs in --work")
    ap.add_argument("--pip-args", default="", help="make install's PIP_ARGS for the base")
    args = ap.parse_args()
    work = Path(args.work).resolve()
    sides: dict[str, Path | None] = {"base": None, "change": None}
    walls: dict[str, list[float]] = {"base": [], "change": []}
    if not args.reuse:
        for side in sides:
            if args.only in (None, side):
                rev = args.base if side == "base" else args.change
                sides[side] = checkout(rev, work, args.pip_args) if rev else ROOT
        for tree in {t for t in sides.values() if t is not None}:
            if not (tree / ".venv" / ".installed").exists():
                run(["make", "-C", str(tree), "install"])
        tree = next(t for t in sides.values() if t is not None)
        run([str(tree / ".venv" / "bin" / "rf-model"), "fetch", args.model])
        for r in range(1, args.rounds + 1):
            for side, tree in sides.items():
                if tree is None:
                    continue
                extra = shlex.split(args.change_args) if side == "change" else []
                wall = demo(tree, work / f"{side}-{r}", args.model, extra)
                walls[side].append(wall)
                (work / f"{side}-{r}" / "wall_s").write_text(f"{wall:.1f}\n")
                say(f"{side} round {r}: {wall:.0f} s")
    runs = {side: sorted(p for p in work.glob(f"{side}-*") if (p / "timings.tsv").is_file()
                         and (p / "report.md").is_file()) for side in sides}
    if not runs["base"] or not runs["change"]:
        say(f"no finished runs of both sides in {work}")
        return 1
    for side in sides:
        if not walls[side]:
            walls[side] = [float((p / "wall_s").read_text()) for p in runs[side]
                           if (p / "wall_s").is_file()]
    kinds = {side: [by_kind(timings(p)) for p in runs[side]] for side in sides}

    def cell(side: str, label: str) -> tuple[int, float]:
        return (kinds[side][0][label][0],
                median([k[label][1] for k in kinds[side]]))

    change = (args.change or "this checkout") + (f" {args.change_args}" if args.change_args else "")
    print(f"demo stage time, {args.base} (base) against {change} (change); "
          f"{machine()}; {len(runs['base'])} and {len(runs['change'])} run(s), "
          "medians\n")
    print("| stage kind | base runs | base s | change runs | change s | change / base |")
    print("|---|---:|---:|---:|---:|---:|")
    totals = {"base": 0.0, "change": 0.0}
    for label, _ in KINDS:
        (bn, bs), (cn, cs) = cell("base", label), cell("change", label)
        totals["base"] += bs
        totals["change"] += cs
        ratio = f"{cs / bs:.2f}" if bs else ""
        print(f"| {label} | {bn} | {bs:.0f} | {cn} | {cs:.0f} | {ratio} |")
    b, c = totals["base"], totals["change"]
    print(f"| **all stages** | | **{b:.0f}** | | **{c:.0f}** | **{c / b:.2f}** |")
    if walls["base"] and walls["change"]:
        wb, wc = median(walls["base"]), median(walls["change"])
        print(f"| wall time of the loop | | {wb:.0f} | | {wc:.0f} | {wc / wb:.2f} |")
    every = [(side, p) for side in sides for p in runs[side]]
    shown = comparable([p for _, p in every])
    print()
    if len({tuple(rows) for rows in shown}) == 1:
        print("report rows (the columns both reports have, speed columns left out): "
              "identical on both sides")
    else:
        print("report rows (the columns both reports have, speed columns left out) differ:")
        for (side, p), rows in zip(every, shown):
            print(f"  {side} {p.name}:")
            for row in rows:
                print(f"    {row}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
