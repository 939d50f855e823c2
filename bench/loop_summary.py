"""Markdown tables of a bin/iterate.sh run: dev EX per iteration and seconds per stage.

    python bench/loop_summary.py RUN_DIR       # reads RUN_DIR/history.json (rf-report's)
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def pct(value) -> str:
    return "n/a" if value is None else f"{value:.1f}%"


def tables(history: dict) -> str:
    its = history["iterations"]
    cfg = history.get("config", {})
    vote = cfg.get("vote", "0")
    lines = ["| iteration | dev EX greedy | dev EX vote@" + vote + " | train coverage "
             "| examples self / gold | training tok/s |", "|---|---|---|---|---|---|"]
    for it in its:
        dev = it["dev"]
        train = it.get("train") or {}
        ex = it.get("examples") or {}
        tr = it.get("training") or {}
        lines.append(
            f"| {it['iteration']}{' (base)' if it['iteration'] == 0 else ''} "
            f"| {pct((dev.get('greedy') or {}).get('ex'))} "
            f"| {pct((dev.get('vote') or {}).get('ex'))} "
            f"| {pct(100 * train['coverage']) if train.get('coverage') is not None else ''} "
            f"| {'%s / %s' % (ex.get('self'), ex.get('gold')) if ex else ''} "
            f"| {tr.get('tokens_per_s') or ''} |")
    stages = []
    for it in its:
        for stage in it.get("timings_s") or {}:
            if stage not in stages:
                stages.append(stage)
    lines += ["", "| stage | " + " | ".join(f"iteration {it['iteration']} s" for it in its)
              + " |", "|---|" + "---|" * len(its)]
    total = [0.0] * len(its)
    for stage in stages:
        cells = []
        for j, it in enumerate(its):
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
