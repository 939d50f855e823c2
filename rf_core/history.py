"""The loop's reports: history.json, report.md and plots, built from a run folder.

Everything is read back from the files the stages wrote (and timings.tsv), so the report can
be rebuilt at any time and always says what the stages produced.
"""

from __future__ import annotations

from pathlib import Path

import orjson

from .errors import BadRecord, RFError
from .evaluate import Evaluation
from .records import parse_line


def _records(path: Path):
    """A stage file's records, each checked as the commands check their input; a bad line is
    an RFError naming the file and the line."""
    with open(path, "rb") as fh:
        for lineno, line in enumerate(fh, start=1):
            if line.strip():
                try:
                    yield parse_line(line, lineno)
                except BadRecord as exc:
                    raise RFError(f"{path}: {exc}") from None


def _json(path: Path) -> dict:
    """A one-object JSON file a stage wrote (a report), or an RFError naming it."""
    try:
        rec = orjson.loads(path.read_bytes())
    except orjson.JSONDecodeError as exc:
        raise RFError(f"{path}: invalid JSON: {exc}") from None
    if not isinstance(rec, dict):
        raise RFError(f"{path}: expected a JSON object, got {type(rec).__name__}")
    return rec


def _config(run: Path) -> dict:
    cfg = {}
    path = run / "config.env"
    if path.is_file():
        for line in path.read_text().splitlines():
            if "=" in line:
                key, value = line.split("=", 1)
                cfg[key.lower()] = value
    return cfg


def _timings(run: Path) -> dict[int | str, dict[str, float]]:
    out: dict[int | str, dict[str, float]] = {}
    path = run / "timings.tsv"
    if path.is_file():
        for lineno, line in enumerate(path.read_text().splitlines()[1:], start=2):
            parts = line.split("\t")
            try:
                label, stage, ms = parts[0], parts[1], int(parts[2])
                iteration = int(label) if label.isdigit() else label  # "sft": the baseline
            except (IndexError, ValueError):
                raise RFError(f"{path}: line {lineno}: expected ITERATION<tab>STAGE<tab>MS, "
                              f"got {line[:60]!r}") from None
            out.setdefault(iteration, {})[stage] = round(ms / 1000, 2)
    return out


def _train_stats(path: Path) -> dict:
    ev = Evaluation()
    covered = tokens = 0
    for task in _records(path):
        ev.add(task)
        cands = task.get("candidates") or []
        covered += any(c.get("correct") is True for c in cands)
        tokens += sum(c.get("n_tokens") or 0 for c in cands)
    rep = ev.report()
    return {"tasks": ev.n_tasks, "covered": covered,
            "coverage": round(covered / ev.n_tasks, 4) if ev.n_tasks else None,
            "candidates": ev.candidates, "pass_at_k": rep["pass_at_k"],
            "sampled_tokens": tokens}


def _dev(path: Path) -> dict | None:
    if not path.is_file():
        return None
    rep = _json(path)
    return {k: rep.get(k) for k in ("ex", "correct", "scored", "matcher", "method",
                                    "by_hardness", "pass_at_k", "exec_errors", "timeouts")}


def _tokens(path: Path) -> int:
    if not path.is_file():
        return 0
    return sum(c.get("n_tokens") or 0 for t in _records(path) for c in t.get("candidates") or [])


def build_history(run: Path) -> dict:
    run = Path(run)
    timings = _timings(run)
    iterations = []
    folders = [p for p in run.glob("iter*") if p.is_dir() and p.name[4:].isdigit()]
    for it_dir in sorted(folders, key=lambda p: int(p.name[4:])):
        i = int(it_dir.name[4:])
        entry: dict = {"iteration": i,
                       "adapter": str(it_dir / "adapter") if (it_dir / "adapter").is_dir()
                       else None}
        if (it_dir / "train.jsonl").is_file():
            entry["train"] = _train_stats(it_dir / "train.jsonl")
        if (it_dir / "examples.jsonl").is_file():
            sources = [ex.get("source") for ex in _records(it_dir / "examples.jsonl")]
            entry["examples"] = {"self": sources.count("self"), "gold": sources.count("gold"),
                                 "total": len(sources)}
        if (it_dir / "train.report.json").is_file():
            rep = _json(it_dir / "train.report.json")
            entry["training"] = {k: rep.get(k) for k in (
                "examples", "skipped_too_long", "skipped_too_long_by_db", "tokens", "steps",
                "skipped_steps", "wall_s", "tokens_per_s")}
            curve = rep.get("loss_curve") or []
            entry["training"]["loss_first"] = curve[0] if curve else None
            entry["training"]["loss_last"] = curve[-1] if curve else None
        entry["dev"] = {"greedy": _dev(it_dir / "dev.greedy.report.json"),
                        "vote": _dev(it_dir / "dev.vote.report.json")}
        stages = timings.get(i, {})
        entry["timings_s"] = stages
        rates = {}
        for stage, sampled in (("train-sample", "train.sampled.jsonl"),
                               ("dev-greedy-sample", "dev.greedy.sampled.jsonl"),
                               ("dev-vote-sample", "dev.vote.sampled.jsonl")):
            if stages.get(stage):
                rates[stage] = round(_tokens(it_dir / sampled) / stages[stage], 1)
        entry["sampling_tokens_per_s"] = rates
        iterations.append(entry)
    return {"schema_version": 1, "kind": "history", "config": _config(run),
            "iterations": iterations}


def _pct(v) -> str:
    return "n/a" if v is None else f"{v:.1f}%"


def report_markdown(history: dict, plots: list[str]) -> str:
    cfg = history["config"]
    vote_k = cfg.get("vote", "0")
    with_vote = vote_k not in ("", "0")
    lines = [f"# ReasonForge run: {cfg.get('model', '?')} on {cfg.get('dataset', '?')}", "",
             f"Preset {cfg.get('preset', '?')}; {cfg.get('train_size', '?')} train tasks, "
             f"k={cfg.get('k', '?')} at T={cfg.get('temperature', '?')}; dev size "
             f"{cfg.get('dev_size', '?')} (0 = all); matcher: "
             f"{_matcher(history)}.", "",
             "| iteration | train coverage | examples self / gold | dev EX greedy | "
             + (f"dev EX vote@{vote_k} | " if with_vote else "")
             + "train loss first -> last | train tok/s | stage time s |",
             "|---|---|---|---|---|---|---|" + ("---|" if with_vote else "")]
    for it in history["iterations"]:
        train = it.get("train") or {}
        ex = it.get("examples") or {}
        tr = it.get("training") or {}
        greedy = (it["dev"].get("greedy") or {}).get("ex")
        vote = (it["dev"].get("vote") or {}).get("ex")
        cov = train.get("coverage")
        loss = (f"{tr['loss_first']:.3f} -> {tr['loss_last']:.3f}"
                if tr.get("loss_first") is not None else "")
        label = f"{it['iteration']}" + (" (base)" if it["iteration"] == 0 else "")
        coverage = ("" if cov is None else
                    f"{100 * cov:.1f}% ({train['covered']}/{train['tasks']})")
        sources = f"{ex['self']} / {ex['gold']}" if ex else ""
        voted = _pct(vote) if vote is not None else ""
        seconds = sum(it["timings_s"].values())
        vote_cell = f"{voted} | " if with_vote else ""
        lines.append(f"| {label} | {coverage} | {sources} | {_pct(greedy)} | {vote_cell}"
                     f"{loss} | {tr.get('tokens_per_s') or ''} | {seconds:.0f} |")
    lines += ["", "Dev EX (greedy) by hardness:", "",
              "| iteration | easy | medium | hard | extra |", "|---|---|---|---|---|"]
    for it in history["iterations"]:
        g = it["dev"].get("greedy") or {}
        by = g.get("by_hardness") or {}
        cells = [f"{_pct(by[h]['ex'])} ({by[h]['correct']}/{by[h]['n']})" if h in by else ""
                 for h in ("easy", "medium", "hard", "extra")]
        lines.append(f"| {it['iteration']} | " + " | ".join(cells) + " |")
    lines.append("")
    for p in plots:
        lines += [f"![{Path(p).stem}]({Path(p).name})", ""]
    return "\n".join(lines)


def _matcher(history: dict) -> str:
    for it in history["iterations"]:
        g = it["dev"].get("greedy")
        if g and g.get("matcher"):
            return g["matcher"]
    return "unknown"


def plots(history: dict, run: Path) -> list[str]:
    """accuracy.png (dev EX per iteration) and pass_at_k.png (train pass@k per iteration)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    its = history["iterations"]
    out = []
    fig, ax = plt.subplots(figsize=(6, 4))
    xs = [it["iteration"] for it in its]
    greedy = [(it["dev"].get("greedy") or {}).get("ex") for it in its]
    ax.plot([x for x, y in zip(xs, greedy) if y is not None],
            [y for y in greedy if y is not None], marker="o", label="greedy")
    vote = [(it["dev"].get("vote") or {}).get("ex") for it in its]
    if any(v is not None for v in vote):
        ax.plot([x for x, y in zip(xs, vote) if y is not None],
                [y for y in vote if y is not None], marker="s",
                label=f"vote@{history['config'].get('vote', '?')}")
    ax.set_xlabel("iteration (0 = base model)")
    ax.set_ylabel("dev execution accuracy (%)")
    ax.set_xticks(xs)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(run / "accuracy.png", dpi=110)
    plt.close(fig)
    out.append(str(run / "accuracy.png"))

    fig, ax = plt.subplots(figsize=(6, 4))
    drawn = False
    for it in its:
        pk = (it.get("train") or {}).get("pass_at_k") or {}
        if pk:
            ks = sorted(int(k) for k in pk)
            ax.plot(ks, [pk[str(k)] for k in ks], marker="o",
                    label=f"iteration {it['iteration']} (train)")
            drawn = True
    if drawn:
        ax.set_xscale("log", base=2)
        ax.set_xlabel("k")
        ax.set_ylabel("pass@k (%)")
        ax.grid(alpha=0.3)
        ax.legend()
        fig.tight_layout()
        fig.savefig(run / "pass_at_k.png", dpi=110)
        out.append(str(run / "pass_at_k.png"))
    plt.close(fig)
    return out
