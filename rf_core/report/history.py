"""The loop's reports: history.json, report.md and plots, built from a run folder.

Everything is read back from the files the stages wrote (and timings.tsv), so the report can
be rebuilt at any time and always says what the stages produced.
"""

from __future__ import annotations

from pathlib import Path

import orjson

from rf_core.errors import BadRecord, RFError
from rf_core.report.evaluate import HARDNESS, Evaluation
from rf_core.records.io import parse_line
from rf_core.report.stats import compare
from rf_core.model.prompts import revision_turns
from rf_core.train.examples import rescued


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


def _text(path: Path) -> str:
    """A text file a stage or the driver wrote, or an RFError naming it."""
    try:
        return path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RFError(f"{path}: not UTF-8 text (byte {exc.object[exc.start]:#04x} at offset "
                      f"{exc.start})") from None
    except OSError as exc:
        raise RFError(f"{path}: cannot read: {exc.strerror or exc}") from None


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _typed(path: Path, rec: dict, key: str, check, expected: str):
    """``rec[key]`` when it is missing, null or passes ``check``; else an RFError naming
    the file and the field (a report edited by hand, or written by something else)."""
    value = rec.get(key)
    if value is not None and not check(value):
        raise RFError(f"{path}: {key!r} must be {expected}, got {type(value).__name__} "
                      f"{str(value)[:40]!r}")
    return value


def _config(run: Path) -> dict:
    """bin/iterate.sh's settings (config.env), keys in lower case; a plugin's options
    (``SAMPLER_OPTIONS=a=1 b=2``) become ``{"a": "1", "b": "2"}``."""
    cfg: dict = {}
    path = run / "config.env"
    if path.is_file():
        for line in _text(path).splitlines():
            if "=" in line:
                key, value = line.split("=", 1)
                key = key.lower()
                if key.endswith("_options"):
                    cfg[key] = dict(kv.split("=", 1) for kv in value.split() if "=" in kv)
                else:
                    cfg[key] = value
    return cfg


def _plugins_line(cfg: dict, engines: list[str] | None = None) -> str:
    """``sampler hf (dtype=bf16), verifier sqlite, trainer peft``, from the run's settings
    (led by ``dataset NAME (a=1)`` when the dataset was given options);
    a sampler that picks an engine (auto) is shown with the engines its candidates name:
    ``sampler auto -> cb``."""
    parts = []
    if cfg.get("dataset_options"):  # the dataset itself is in the report's title
        opts = ", ".join(f"{k}={v}" for k, v in cfg["dataset_options"].items())
        parts.append(f"dataset {cfg.get('dataset', '?')} ({opts})")
    for kind in ("sampler", "verifier", "trainer"):
        if kind in cfg:
            name = cfg[kind]
            if kind == "sampler" and engines and engines != [name]:
                name += " -> " + ", ".join(engines)
            opts = ", ".join(f"{k}={v}" for k, v in (cfg.get(f"{kind}_options") or {}).items())
            parts.append(f"{kind} {name}" + (f" ({opts})" if opts else ""))
    return ", ".join(parts)


def _timings(run: Path) -> dict[int | str, dict[str, float]]:
    out: dict[int | str, dict[str, float]] = {}
    path = run / "timings.tsv"
    if path.is_file():
        for lineno, line in enumerate(_text(path).splitlines()[1:], start=2):
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
    # how informative the check was: selected candidates verified where the gold's result
    # is distinguishing, and tasks sent to gold injection because nothing could verify them
    verified = {"selected": 0, "distinguishing": 0, "unverifiable": 0,
                "injected_unverifiable": 0}
    for task in _records(path):
        ev.add(task)
        cands = task.get("candidates") or []
        correct = [c for c in cands if c.get("correct") is True]
        covered += bool(correct)
        tokens += sum(c.get("n_tokens") or 0 for c in cands)
        verified["selected"] += len(correct)
        verified["distinguishing"] += sum(1 for c in correct
                                          if (c.get("distinguishing") or 0) > 0)
        silent = sum(1 for c in cands if c.get("unverifiable"))
        verified["unverifiable"] += silent
        verified["injected_unverifiable"] += bool(silent and not correct)
    rep = ev.report()
    return {"tasks": ev.n_tasks, "covered": covered,
            "coverage": round(covered / ev.n_tasks, 4) if ev.n_tasks else None,
            "candidates": ev.candidates, "pass_at_k": rep["pass_at_k"],
            "sampled_tokens": tokens, "variants": rep["variants"], "verified": verified}


def _dev(path: Path) -> dict | None:
    if not path.is_file():
        return None
    rep = _json(path)
    _typed(path, rep, "ex", _is_number, "a number")
    _typed(path, rep, "ex_ci95", lambda v: isinstance(v, list) and len(v) == 2
           and all(map(_is_number, v)), "a list of two numbers")
    _typed(path, rep, "outcomes", lambda v: isinstance(v, dict), "an object")
    return {k: rep.get(k) for k in ("ex", "ex_ci95", "correct", "scored", "matcher", "method",
                                    "by_hardness", "pass_at_k", "exec_errors", "timeouts",
                                    "by_matcher", "variants", "outcomes", "revision")}


def _add_differences(iterations: list[dict]) -> None:
    """Each iteration's dev EX minus the base model's (iteration 0), paired over the same
    tasks, with a 95% bootstrap interval and McNemar's p; then drop the per-task outcomes.
    Revised answers (``greedy_revised``, ``vote_revised``) are compared with the base
    model's single-turn answers, the base model's own revised row included."""
    base = next((it for it in iterations if it["iteration"] == 0), None)
    base_outs = {kind: (((base or {}).get("dev", {}).get(kind) or {}).get("outcomes"))
                 for kind in ("greedy", "vote")}
    for kind in ("greedy", "vote", "greedy_revised", "vote_revised"):
        single = kind.removesuffix("_revised")
        base_out = base_outs[single]
        for it in iterations:
            dev = it["dev"].get(kind)
            if not dev:
                continue
            out = dev.pop("outcomes", None)
            if (it["iteration"] != 0 or kind != single) and out and base_out:
                cmp = compare(out, base_out)
                dev["vs_base"] = ({k: cmp[k] for k in ("tasks", "diff", "diff_ci95",
                                                        "mcnemar_p", "won", "lost")}
                                  if cmp["tasks"] else None)


def _revision_stats(path: Path) -> dict:
    """What revision did to a row's train candidates (rf-revise before selection): tasks it
    rescued (no correct candidate as sampled, one after), candidates revised, and correct
    candidates before and after."""
    tasks = saved = revised = before = after = 0
    for task in _records(path):
        tasks += 1
        saved += rescued(task)
        for cand in task.get("candidates") or []:
            turns = revision_turns(cand)
            revised += bool(turns)
            before += (turns or [cand])[0].get("correct") is True
            after += cand.get("correct") is True
    return {"tasks": tasks, "rescued": saved, "candidates_revised": revised,
            "correct_before": before, "correct_after": after}


def _sampled(path: Path) -> tuple[int, set[str]]:
    """A sampled stage file's generated tokens and the engines its candidates name."""
    tokens, engines = 0, set()
    if path.is_file():
        for task in _records(path):
            for c in task.get("candidates") or []:
                tokens += c.get("n_tokens") or 0
                if c.get("sampler"):
                    engines.add(c["sampler"])
    return tokens, engines


def _sources(path: Path) -> dict:
    """How many of a stage file's examples (or pairs) come from the model, and from gold."""
    sources = [rec.get("source") for rec in _records(path)]
    return {"self": sources.count("self"), "gold": sources.count("gold"),
            "total": len(sources)}


def _row_objective(label: int | str, cfg: dict) -> str | None:
    """What a row's adapter was trained on: none for the base model, sft for the SFT
    baseline, the run's --objective (sft for runs from before it existed) for iterations."""
    if label == 0:
        return None
    if label == "sft":
        return "sft"
    return cfg.get("objective") or "sft"


def _entry(folder: Path, label: int | str, timings: dict, cfg: dict | None = None) -> dict:
    """One row of the report from one folder's stage files: an iteration, or the SFT row."""
    entry: dict = {"iteration": label,
                   "adapter": str(folder / "adapter") if (folder / "adapter").is_dir() else None,
                   "objective": _row_objective(label, cfg or {})}
    if (folder / "train.jsonl").is_file():
        entry["train"] = _train_stats(folder / "train.jsonl")
    if (folder / "examples.jsonl").is_file():
        entry["examples"] = _sources(folder / "examples.jsonl")
    if (folder / "pairs.jsonl").is_file():  # --objective dpo, sft+dpo
        entry["pairs"] = _sources(folder / "pairs.jsonl")
    if (folder / "train.report.json").is_file():
        rep = _json(folder / "train.report.json")
        entry["training"] = {k: rep.get(k) for k in (
            "examples", "skipped_too_long", "skipped_too_long_by_db", "tokens", "steps",
            "skipped_steps", "wall_s", "tokens_per_s", "micro_batch_tokens",
            "largest_micro_batch_tokens", "largest_micro_batch_rows",
            "peak_gpu_allocated_bytes", "peak_gpu_reserved_bytes")}
        curve = _typed(folder / "train.report.json", rep, "loss_curve",
                       lambda v: isinstance(v, list) and all(map(_is_number, v)),
                       "a list of numbers") or []
        entry["training"]["loss_first"] = curve[0] if curve else None
        entry["training"]["loss_last"] = curve[-1] if curve else None
    entry["dev"] = {kind: _dev(folder / f"dev.{name}.report.json") for kind, name in (
        ("greedy", "greedy"), ("vote", "vote"), ("greedy_revised", "greedy.revised"),
        ("vote_revised", "vote.revised"))}
    entry["val"] = {kind: _dev(folder / f"val.{name}.report.json") for kind, name in (
        ("greedy", "greedy"), ("greedy_revised", "greedy.revised"))}
    for val in entry["val"].values():
        if val:
            val.pop("outcomes", None)
    if (folder / "train.revised.jsonl").is_file():
        entry["train_revision"] = _revision_stats(folder / "train.revised.jsonl")
    stages = timings.get(label, {})
    entry["timings_s"] = stages
    rates = {}
    engines: set[str] = set()
    for stage, sampled in (("train-sample", "train.sampled.jsonl"),
                           ("greedy-sample", "greedy.sampled.jsonl"),  # dev and val
                           ("dev-greedy-sample", "dev.greedy.sampled.jsonl"),
                           ("dev-vote-sample", "dev.vote.sampled.jsonl"),
                           (None, "val.greedy.sampled.jsonl"), (None, "train.greedy.jsonl")):
        tokens, used = _sampled(folder / sampled)
        engines |= used
        if stages.get(stage):
            rates[stage] = round(tokens / stages[stage], 1)
    entry["sampling_tokens_per_s"] = rates
    # where each sampling stage's time went (rf-sample --stats): load, prefill, decode
    entry["sampling"] = {kind: _json(folder / name) for kind, name in (
        ("greedy", "greedy.sample.json"), ("train", "train.sample.json"),
        ("vote", "dev.vote.sample.json")) if (folder / name).is_file()}
    # the engines that wrote this row's candidates: what --sampler auto resolved to
    entry["sampler_engines"] = sorted(engines)
    return entry


def best_iteration(iterations: list[dict]) -> dict | None:
    """The iteration with the highest validation EX (greedy), the earliest on a tie; the base
    model is iteration 0. Dev EX plays no part in it."""
    scored = [(it["val"]["greedy"]["ex"], -it["iteration"], it) for it in iterations
              if ((it.get("val") or {}).get("greedy") or {}).get("ex") is not None]
    if not scored:
        return None
    ex, _, it = max(scored, key=lambda t: t[:2])
    return {"iteration": it["iteration"], "val_ex": ex, "adapter": it["adapter"],
            "chosen_by": "validation EX, greedy"}


def build_history(run: Path) -> dict:
    """history.json of a bin/iterate.sh run folder: its settings, one entry per iteration
    (and the SFT baseline's), the sampler engines used and the best iteration."""
    run = Path(run)
    timings = _timings(run)
    cfg = _config(run)
    folders = [p for p in run.glob("iter*") if p.is_dir() and p.name[4:].isdigit()]
    iterations = [_entry(p, int(p.name[4:]), timings, cfg)
                  for p in sorted(folders, key=lambda p: int(p.name[4:]))]
    sft = _entry(run / "sft", "sft", timings, cfg) if (run / "sft").is_dir() else None
    _add_differences(iterations + ([sft] if sft else []))
    engines = sorted({e for it in iterations + ([sft] if sft else [])
                      for e in it["sampler_engines"]})
    return {"schema_version": 1, "kind": "history", "config": cfg,
            "sampler_engines": engines, "iterations": iterations, "sft": sft,
            "best": best_iteration(iterations)}


def rows(history: dict) -> list[dict]:
    """The report's rows in the reference's order: base, SFT on gold, then the iterations."""
    its = history["iterations"]
    sft = [history["sft"]] if history.get("sft") else []
    return [it for it in its if it["iteration"] == 0] + sft + \
        [it for it in its if it["iteration"] != 0]


def _label(it: dict, history: dict) -> str:
    if it["iteration"] == "sft":
        return "SFT on gold"
    label = f"{it['iteration']}" + (" (base)" if it["iteration"] == 0 else "")
    best = history.get("best")
    return label + (" **best**" if best and best["iteration"] == it["iteration"] else "")


def _pct(v) -> str:
    return "n/a" if v is None else f"{v:.1f}%"


def _ex_cell(dev: dict | None) -> str:
    """EX with its 95% interval, and the difference from the base model with its own."""
    if not dev or dev.get("ex") is None:
        return "n/a"
    cell = _pct(dev["ex"])
    ci = dev.get("ex_ci95")
    if ci:
        cell += f" [{ci[0]:.1f}, {ci[1]:.1f}]"
    vs = dev.get("vs_base")
    if vs and vs.get("diff_ci95"):
        lo, hi = vs["diff_ci95"]
        cell += f"; {vs['diff']:+.1f} [{lo:+.1f}, {hi:+.1f}] vs base"
    return cell


def _description(history: dict) -> str:
    """The line under the title: the run's settings and how to read an EX cell."""
    cfg = history["config"]
    plugins = _plugins_line(cfg, history.get("sampler_engines"))
    objective = cfg.get("objective") or "sft"
    if objective != "sft":  # the iterations' trainer, beside --trainer of the SFT row
        opts = ", ".join(f"{k}={v}" for k, v in (cfg.get("dpo_options") or {}).items())
        objective += " (trainer dpo" + (f": {opts})" if opts else ")")
    return (f"Preset {cfg.get('preset', '?')}; {cfg.get('train_size', '?')} train tasks, "
            f"k={cfg.get('k', '?')} at T={cfg.get('temperature', '?')}; dev size "
            f"{cfg.get('dev_size', '?')} (0 = all); matcher: {_matcher(history)}"
            + (f"; {plugins}" if plugins else "") + f"; iterations' objective: {objective}"
            + ". EX cells: EX [95% Wilson interval]; from iteration 1 on, "
            "the difference from the base model in points [95% paired bootstrap interval].")


def _summary_table(history: dict, vote_k: str | None, with_val: bool) -> list[str]:
    """The table of iterations: coverage, examples, dev EX (greedy, vote@k where the run
    voted, validation where it has one), training loss and speed, stage time."""
    lines = ["| iteration | train coverage | examples self / gold | dev EX greedy | "
             + (f"dev EX vote@{vote_k} | " if vote_k else "")
             + ("val EX greedy | " if with_val else "")
             + "train loss first -> last | train tok/s | stage time s | objective |",
             "|---|---|---|---|---|---|---|---|" + ("---|" if vote_k else "")
             + ("---|" if with_val else "")]
    return lines + [_summary_row(it, history, vote_k, with_val) for it in rows(history)]


def _summary_row(it: dict, history: dict, vote_k: str | None, with_val: bool) -> str:
    """One iteration's row of the summary table."""
    train = it.get("train") or {}
    ex = it.get("examples") or {}
    tr = it.get("training") or {}
    cov = train.get("coverage")
    loss = (f"{tr['loss_first']:.3f} -> {tr['loss_last']:.3f}"
            if tr.get("loss_first") is not None else "")
    coverage = "" if cov is None else f"{100 * cov:.1f}% ({train['covered']}/{train['tasks']})"
    sources = f"{ex['self']} / {ex['gold']}" if ex else ""
    vote_dev = it["dev"].get("vote")
    vote_cell = f"{_ex_cell(vote_dev) if vote_dev else ''} | " if vote_k else ""
    val = (it.get("val") or {}).get("greedy")
    val_cell = (_ex_cell(val) if val else "") + " | " if with_val else ""
    seconds = sum(it["timings_s"].values())
    return (f"| {_label(it, history)} | {coverage} | {sources} | "
            f"{_ex_cell(it['dev'].get('greedy'))} | {vote_cell}{val_cell}{loss} | "
            f"{tr.get('tokens_per_s') or ''} | {seconds:.0f} | {_objective_cell(it)} |")


def _objective_cell(it: dict) -> str:
    """What the row trained on: ``sft`` (examples), ``dpo: 12 pairs (8 self / 4 gold)``, or
    ``sft+dpo: 12 pairs (8 self / 4 gold) + examples``; nothing for the base model."""
    objective = it.get("objective")
    if objective in (None, "sft"):
        return objective or ""
    pairs = it.get("pairs")
    cell = objective + (f": {pairs['total']} pairs ({pairs['self']} self / {pairs['gold']} "
                        "gold)" if pairs else "")
    return cell + (" + examples" if objective == "sft+dpo" else "")


def _best_lines(history: dict) -> list[str]:
    """Which iteration is best, and that dev EX played no part in choosing it."""
    best = history.get("best")
    if not best:
        return []
    return ["", f"Best iteration by validation EX (greedy): **{best['iteration']}** "
            f"({_pct(best['val_ex'])}); the run folder's `best` points at it. Dev EX "
            "was not used to choose it."]


def _check_lines(history: dict) -> list[str]:
    """Per iteration, what the database variants rejected and how many selected train
    candidates a distinguishing database verified."""
    lines = []
    for it in history["iterations"]:
        v = (it.get("train") or {}).get("variants")
        if v:
            lines.append(f"Iteration {it['iteration']}: the {v['n']} database variants turned "
                         f"{v['rejected']} of {v['checked']} train candidates from correct to "
                         "wrong before selection.")
        ver = (it.get("train") or {}).get("verified")
        if ver and ver.get("selected") is not None:
            lines.append(f"Iteration {it['iteration']}: {ver['distinguishing']} of "
                         f"{ver['selected']} selected train candidates were verified on at "
                         "least one database where the gold's result is distinguishing; "
                         f"{ver['injected_unverifiable']} task(s) went to gold injection "
                         "because nothing could verify them "
                         f"({ver['unverifiable']} unverifiable candidate(s)).")
    return lines


def _matcher_names(history: dict) -> list[str]:
    """Every matcher any row's dev reports name, in the order first seen."""
    names: list[str] = []
    for it in rows(history):
        for kind in ("greedy", "vote"):
            for m in ((it["dev"].get(kind) or {}).get("by_matcher") or {}):
                if m not in names:
                    names.append(m)
    return names


def _matcher_cell(verdict: dict | None) -> str:
    """One matcher's dev EX with its interval, and pass@k of the largest k where k > 1."""
    cell = (_ex_cell({"ex": verdict["ex"], "ex_ci95": verdict.get("ex_ci95")})
            if verdict else "")
    pk = (verdict or {}).get("pass_at_k") or {}
    top = max(pk, key=int, default=None)
    if top is not None and int(top) > 1:
        cell += f"; pass@{top} {_pct(pk[top])}"
    return cell


def _matcher_table(history: dict, with_vote: bool) -> list[str]:
    """Dev EX of every row under every matcher (none where no report names a matcher)."""
    names = _matcher_names(history)
    if not names:
        return []
    kinds = ["greedy"] + (["vote"] if with_vote else [])
    lines = ["", "Dev EX under every matcher (original database only; "
             "EX [95% interval]; pass@k of the largest k where k > 1):", "",
             "| iteration | " + " | ".join(f"{m} ({k})" for k in kinds for m in names)
             + " |", "|---|" + "---|" * (len(names) * len(kinds))]
    for it in rows(history):
        cells = [_matcher_cell(((it["dev"].get(k) or {}).get("by_matcher") or {}).get(m))
                 for k in kinds for m in names]
        lines.append(f"| {_label(it, history)} | " + " | ".join(cells) + " |")
    return lines


def _hardness_table(history: dict) -> list[str]:
    """Dev EX (greedy) of every row by Spider hardness."""
    lines = ["", "Dev EX (greedy) by hardness:", "",
             "| iteration | easy | medium | hard | extra |", "|---|---|---|---|---|"]
    for it in rows(history):
        by = (it["dev"].get("greedy") or {}).get("by_hardness") or {}
        cells = [f"{_pct(by[h]['ex'])} ({by[h]['correct']}/{by[h]['n']})" if h in by else ""
                 for h in HARDNESS]
        lines.append(f"| {_label(it, history)} | " + " | ".join(cells) + " |")
    return lines


def _revision_cell(dev: dict | None) -> str:
    """EX after revision (vs the base model's single turn), then revision's own effect: the
    change from the same row's single-turn answers and the answers it fixed and broke."""
    if not dev:
        return ""
    cell = _ex_cell(dev)
    rev = dev.get("revision") or {}
    paired = rev.get("paired") or {}
    if paired.get("tasks") and paired.get("diff_ci95"):
        lo, hi = paired["diff_ci95"]
        cell += (f"; revision {paired['diff']:+.1f} [{lo:+.1f}, {hi:+.1f}], fixed "
                 f"{rev['fixed']} / broke {rev['broken']}")
    return cell


def _revision_table(history: dict, with_vote: bool, with_val: bool) -> list[str]:
    """The rows again with their answers revised (bin/iterate.sh --revise), where they were."""
    its = [it for it in rows(history) if it["dev"].get("greedy_revised")]
    if not its:
        return []
    rounds = history["config"].get("revise", "?")
    lines = ["", f"With execute-and-revise ({rounds} round(s) of rf-revise; EX [95% interval]; "
             "vs base: the base model's single-turn answers; revision: the change from the "
             "same row's single-turn answers [95% paired bootstrap]):", "",
             "| iteration | dev EX greedy + revision | "
             + ("dev EX vote + revision | " if with_vote else "")
             + ("val EX greedy + revision | " if with_val else "")
             + "train tasks rescued (candidates revised) |",
             "|---|---|---|" + ("---|" if with_vote else "") + ("---|" if with_val else "")]
    for it in its:
        tr = it.get("train_revision")
        cells = [_revision_cell(it["dev"].get("greedy_revised"))]
        if with_vote:
            cells.append(_revision_cell(it["dev"].get("vote_revised")))
        if with_val:
            cells.append(_revision_cell((it.get("val") or {}).get("greedy_revised")))
        cells.append(f"{tr['rescued']} of {tr['tasks']} ({tr['candidates_revised']})"
                     if tr else "")
        lines.append(f"| {_label(it, history)} | " + " | ".join(cells) + " |")
    return lines


def report_markdown(history: dict, plots: list[str]) -> str:
    """report.md of a run from its ``build_history``: the summary table, the best iteration,
    what the train-stage checks did, dev EX by matcher and by hardness, then the ``plots``."""
    cfg = history["config"]
    vote_k = cfg.get("vote", "0")
    with_vote = vote_k not in ("", "0")
    with_val = any((it.get("val") or {}).get("greedy") for it in rows(history))
    lines = [f"# ReasonForge run: {cfg.get('model', '?')} on {cfg.get('dataset', '?')}", "",
             _description(history), "",
             *_summary_table(history, vote_k if with_vote else None, with_val),
             *_best_lines(history), "", *_check_lines(history),
             *_revision_table(history, with_vote, with_val),
             *_matcher_table(history, with_vote), *_hardness_table(history), ""]
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

    def draw(kind: str, marker: str, label: str, shift: float) -> None:
        devs = [(x, it["dev"].get(kind)) for x, it in zip(xs, its)]
        devs = [(x, d) for x, d in devs if d and d.get("ex") is not None]
        if not devs:
            return
        ys = [d["ex"] for _, d in devs]
        lows = [d["ex"] - d["ex_ci95"][0] if d.get("ex_ci95") else 0 for _, d in devs]
        highs = [d["ex_ci95"][1] - d["ex"] if d.get("ex_ci95") else 0 for _, d in devs]
        ax.errorbar([x + shift for x, _ in devs], ys, yerr=[lows, highs], marker=marker,
                    capsize=4, label=f"{label} (95% interval)")

    draw("greedy", "o", "greedy", -0.04)
    draw("vote", "s", f"vote@{history['config'].get('vote', '?')}", 0.04)
    sft = ((history.get("sft") or {}).get("dev") or {}).get("greedy") or {}
    if sft.get("ex") is not None:
        ax.axhline(sft["ex"], linestyle="--", color="gray", label="SFT on gold (greedy)")
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
