"""The results of bench/gpu_lease.sh: one Markdown file and one JSON file from its work folder.

    python bench/lease_report.py WORK_DIR OUT_DIR

WORK_DIR holds what the parts left: ``parts.tsv`` (one line per part: name, budget s, wall s,
status, exit code), ``doctor.json``, ``train.json``, ``sample-<engine>.json``, the loop's run
folder ``loop/`` and each part's stdout (``<part>.md``) and log (``<part>.log``). A part that
failed, ran out of time or never ran has no JSON: its row says so and its section shows the
end of its log. Writes OUT_DIR/results.md and OUT_DIR/results.json.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from loop_summary import tables as loop_tables  # noqa: E402

TITLES = {"setup": "Set-up (install from the carry folder, Spider, model)",
          "doctor": "Environment (rf-doctor)",
          "tests": "The CUDA-only tests",
          "train": "Training: rf-train (peft trainer; dpo trainer on pairs)",
          "sample-generate": "Sampling: plain transformers generate",
          "sample-hf": "Sampling: rf-sample's hf engine",
          "sample-cb": "Sampling: transformers' continuous batching (cb)",
          "loop": "A tiny loop: bin/iterate.sh --sampler hf"}


def read_json(path: Path):
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def parts(work: Path) -> list[dict]:
    rows = []
    try:
        lines = (work / "parts.tsv").read_text().splitlines()
    except OSError:
        return rows
    for line in lines:
        name, budget, wall, status, rc = (line.split("\t") + [""] * 5)[:5]
        rows.append({"part": name, "budget_s": int(budget), "wall_s": int(wall),
                     "status": status, "exit": int(rc) if rc.lstrip("-").isdigit() else None})
    return rows


def tail(path: Path, n: int = 15) -> str:
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return "(no log)"
    return "\n".join(lines[-n:]) or "(empty log)"


def machine(doctor: dict | None) -> dict:
    if not doctor:
        return {}
    gpu = doctor["gpus"][0] if doctor.get("gpus") else None
    return {"gpu": gpu["name"] if gpu else None,
            "gpu_memory_gb": gpu["total_gb"] if gpu else None,
            "python": doctor.get("python"), "torch": doctor.get("torch"),
            "packages": doctor.get("packages"), "model": doctor.get("model"),
            "sampler_auto": doctor.get("sampler_auto"),
            "sampler_auto_reason": doctor.get("sampler_auto_reason"),
            "train_plan": doctor.get("train_plan")}


def sample_table(samples: dict) -> list[str]:
    rows = [(name, row, data) for name, data in samples.items() if data
            for row in data["rows"]]
    if not rows:
        return []
    first = rows[0][2]
    lines = [f"{first['source']}, {first['prompts']} prompts ({first['prompt_tokens']:,} prompt "
             f"tokens), k={first['k']}, T={first['temperature']}, "
             f"max_new_tokens={first['max_new_tokens']}, {first['dtype']}, {first['device']}.",
             "", "| engine | wall s | engine start s | output tokens | output tok/s "
             "| peak memory MB |", "|---|---|---|---|---|---|"]
    for _, row, _ in rows:
        start = row.get("engine_start_s")
        peak = row.get("peak_memory_mb")
        lines.append(f"| {row['method']} | {row['wall_s']:.1f} | "
                     f"{'n/a' if start is None else format(start, '.1f')} | "
                     f"{row['output_tokens']:,} | {row['tokens_per_s']:,.0f} | "
                     f"{'n/a' if peak is None else format(peak, ',.0f')} |")
    return lines


def train_table(train: dict | None) -> list[str]:
    if not train or not train.get("rows"):
        return []
    lines = [f"{train['model']} ({train['params'] / 1e6:.1f}M parameters), {train['source']}: "
             f"{train['examples']} examples, --max-len {train['max_len']}, batch size "
             f"{train['batch_size']}, {train['dtype']}, {train['device']}.", "",
             "| trainer | wall s | real tokens | real tok/s | MFU | largest forward "
             "(slots x rows) | peak GPU MB | micro-batch budget |",
             "|---|---|---|---|---|---|---|---|"]
    for row in train["rows"]:
        mfu = row.get("mfu")
        peak = row.get("peak_gpu_mb")
        budget = row.get("micro_batch_budget")
        lines.append(f"| {row['method']} | {row['wall_s']:.1f} | {row['real_tokens']:,} | "
                     f"{row['tokens_per_s']:,.0f} | "
                     f"{'n/a' if mfu is None else format(mfu, '.2%')} | "
                     f"{row['largest_forward_slots']:,} x {row['largest_forward_rows']} | "
                     f"{'n/a' if peak is None else format(peak, ',.0f')} | "
                     f"{'n/a' if budget is None else format(budget, ',')} |")
    return lines


def loop_summary(run: Path) -> dict | None:
    history = read_json(run / "history.json")
    if not history:
        return None
    out = {"config": history.get("config"), "rows": []}
    entries = list(history.get("iterations") or [])
    if history.get("sft"):
        entries.append(history["sft"])
    for it in entries:
        dev = it.get("dev") or {}
        out["rows"].append({"iteration": it.get("iteration"),
                            "dev_ex_greedy": (dev.get("greedy") or {}).get("ex"),
                            "dev_ex_vote": (dev.get("vote") or {}).get("ex"),
                            "timings_s": it.get("timings_s"),
                            "training": it.get("training")})
    return out


def build(work: Path, header: dict) -> tuple[str, dict]:
    rows = parts(work)
    doctor = read_json(work / "doctor.json")
    train = read_json(work / "train.json")
    samples = {name: read_json(work / f"sample-{name}.json")
               for name in ("generate", "hf", "cb")}
    loop = loop_summary(work / "loop")
    found = machine(doctor)
    result = {**header, "machine": found, "parts": rows, "doctor": doctor, "train": train,
              "sample": samples, "loop": loop}

    gpu = found.get("gpu") or "no GPU"
    torch = (found.get("torch") or {}).get("version")
    packages = found.get("packages") or {}
    md = [f"# GPU lease check: {header['model']} on {gpu}, {header['date']}", "",
          f"Mode: {header['mode']}. Torch {torch or 'unknown'}, transformers "
          f"{packages.get('transformers') or 'unknown'}, peft {packages.get('peft') or 'unknown'}"
          f"; sampler auto: {found.get('sampler_auto') or 'unknown'}"
          + (f" ({found['sampler_auto_reason']})" if found.get("sampler_auto_reason") else "")
          + f". Total budget {header['total_budget_s']} s, used {header['wall_s']} s.", ""]
    if header.get("random_weights"):
        md += ["The model has random weights (the real architecture and tokenizer): its answers "
               "never end, so every sampled answer runs to max_new_tokens and the loop's "
               "accuracy is meaningless; tokens/s, memory and MFU are real.", ""]
    md += ["| part | budget s | wall s | result |", "|---|---|---|---|"]
    for row in rows:
        md.append(f"| {row['part']} | {row['budget_s']} | {row['wall_s']} | {row['status']} |")
    for row in rows:
        name = row["part"]
        if name.startswith("sample-") and row["status"] == "ok":
            continue  # one table for every engine that finished, under Sampling below
        md += ["", f"## {TITLES.get(name, name)}", ""]
        if row["status"] != "ok":
            md += [f"**{row['status']}**; the end of its log:", "", "```",
                   tail(work / f"{name}.log"), "```"]
            continue
        if name == "train" and train:
            md += train_table(train)
        elif name == "loop" and (work / "loop" / "history.json").is_file():
            md.append(loop_tables(read_json(work / "loop" / "history.json")))
        else:
            text = (work / f"{name}.md").read_text(errors="replace").strip() \
                if (work / f"{name}.md").is_file() else ""
            log = tail(work / f"{name}.log", 40) if name in ("doctor", "setup") else ""
            body = "\n".join(filter(None, [text if name != "doctor" else "", log]))
            md += ["```", body or "(no output)", "```"]
    all_samples = sample_table(samples)
    if all_samples:
        md += ["", "## Sampling (every engine that finished)", ""] + all_samples
    return "\n".join(md) + "\n", result


def main() -> int:
    if len(sys.argv) != 3:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    work, out = Path(sys.argv[1]), Path(sys.argv[2])
    header = read_json(work / "header.json") or {}
    text, result = build(work, header)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.md").write_text(text)
    (out / "results.json").write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
