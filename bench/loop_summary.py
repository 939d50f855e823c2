"""Markdown tables of a bin/iterate.sh run: dev EX per row (the base model, the SFT-on-gold
baseline when the run had one, then each iteration) and seconds per stage.

    python bench/loop_summary.py RUN_DIR       # reads RUN_DIR/history.json (rf-report's)

The training columns come from each row's rf-train report as history.json carries it: the
largest micro-batch that ran and the peak GPU memory appear when the reports have them (a GPU
run; on a CPU they are null), so the first GPU run shows what the memory plan must refit.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def pct(value) -> str:
    return "n/a" if value is None else f"{value:.1f}%"


def rows(history: dict) -> list[dict]:
    """The base model, the SFT baseline (history.json's "sft", absent or null without one),
    then the iterations: the order of rf-report's own table."""
    its = history["iterations"]
    sft = [history["sft"]] if history.get("sft") else []
    return ([it for it in its if it["iteration"] == 0] + sft
            + [it for it in its if it["iteration"] != 0])


def label(it: dict) -> str:
    if it["iteration"] == "sft":
        return "SFT on gold"
    return f"{it['iteration']}{' (base)' if it['iteration'] == 0 else ''}"


def gb(value) -> str:
    return "" if value is None else f"{value / 1e9:.1f}"


def tables(history: dict) -> str:
    entries = rows(history)
    cfg = history.get("config", {})
    vote = cfg.get("vote", "0")
    training = [it.get("training") or {} for it in entries]
    with_peak = any(tr.get("peak_gpu_reserved_bytes") is not None for tr in training)
    with_largest = any(tr.get("largest_micro_batch_tokens") for tr in training)
    lines = ["| iteration | dev EX greedy | dev EX vote@" + vote + " | train coverage "
             "| examples self / gold | training tok/s |"
             + (" largest micro-batch tokens x rows |" if with_largest else "")
             + (" training peak GPU GB allocated / reserved |" if with_peak else ""),
             "|---|---|---|---|---|---|" + "---|" * (with_largest + with_peak)]
    for it, tr in zip(entries, training):
        dev = it["dev"]
        train = it.get("train") or {}
        ex = it.get("examples") or {}
        line = (f"| {label(it)} "
                f"| {pct((dev.get('greedy') or {}).get('ex'))} "
                f"| {pct((dev.get('vote') or {}).get('ex'))} "
                f"| {pct(100 * train['coverage']) if train.get('coverage') is not None else ''} "
                f"| {'%s / %s' % (ex.get('self'), ex.get('gold')) if ex else ''} "
                f"| {tr.get('tokens_per_s') or ''} |")
        if with_largest:
            line += (f" {tr['largest_micro_batch_tokens']:,} x {tr['largest_micro_batch_rows']} |"
                     if tr.get("largest_micro_batch_tokens") else "  |")
        if with_peak:
            line += (f" {gb(tr['peak_gpu_allocated_bytes'])} / "
                     f"{gb(tr['peak_gpu_reserved_bytes'])} |"
                     if tr.get("peak_gpu_reserved_bytes") is not None else "  |")
        lines.append(line)
    stages = []
    for it in entries:
        for stage in it.get("timings_s") or {}:
            if stage not in stages:
                stages.append(stage)
    lines += ["", "| stage | " + " | ".join(
                  "SFT on gold s" if it["iteration"] == "sft" else f"iteration {it['iteration']} s"
                  for it in entries) + " |",
              "|---|" + "---|" * len(entries)]
    total = [0.0] * len(entries)
    for stage in stages:
        cells = []
        for j, it in enumerate(entries):
            sec = (it.get("timings_s") or {}).get(stage)
            total[j] += sec or 0
            cells.append("" if sec is None else f"{sec:.1f}")
        lines.append(f"| {stage} | " + " | ".join(cells) + " |")
    lines.append("| all stages | " + " | ".join(f"{t:.1f}" for t in total) + " |")
    return "\n".join(lines)


def main() -> int:
    if len(sys.argv) != 2:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    path = Path(sys.argv[1]) / "history.json"
    if not path.is_file():
        print(f"loop_summary: {path} not found (run rf-report first)", file=sys.stderr)
        return 1
    print(tables(json.loads(path.read_text())))
    return 0


if __name__ == "__main__":
    sys.exit(main())
