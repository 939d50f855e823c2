"""bin/iterate.sh --objective sft|dpo|sft+dpo: the pairs stage, what rf-train is given and
with which trainer, and each row's objective in history.json and report.md.

The driver's tests use fake rf-* commands (seconds); the loop's test runs the real commands
with model-free plugins (tests/trainer_plugin: a trainer named "dpo" standing in for the
preference trainer, an SFT trainer and a sampler with right and wrong answers).
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
from pathlib import Path

import pytest

from conftest import install_plugin, run
from rf_core.testing import validate_records

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = str(ROOT / "bin" / "iterate.sh")
PLUGIN_SRC = Path(__file__).resolve().parent / "trainer_plugin"
BASE = ["--model", "fake", "--dataset", "demo", "--iterations", "1", "-k", "2",
        "--train-size", "2", "--dev-size", "1", "--val-size", "0", "--vote", "0"]

# A stand-in for an rf-* command: logs its call; rf-filter and rf-inject write one record of
# the kind they make; rf-train logs the kinds it was given on stdin.
FAKE = r"""#!/usr/bin/env bash
name=$(basename "$0")
line=$(printf '%q' "$name"; printf ' %q' "$@")
echo "$line" >> "$CALLS"
case $name in
  rf-data) echo '{}' ;;
  rf-report) echo "# report" > "$1/report.md" ;;
  rf-eval) echo '{}' ;;
  rf-train) kinds=$(sed 's/.*"kind":"\([a-z]*\)".*/\1/' | paste -sd, -)
            echo "rf-train-stdin $kinds" >> "$CALLS"; echo '{}' ;;
  rf-filter) cat > /dev/null
             if [[ " $* " == *" --pairs "* ]]; then echo '{"kind":"pair"}';
             else echo '{"kind":"example"}'; fi ;;
  rf-inject) cat > /dev/null; echo '{"kind":"example"}' ;;
  *) cat ;;
esac
"""


@pytest.fixture
def env(tmp_path) -> dict:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in ("rf-data", "rf-sample", "rf-exec", "rf-vote", "rf-eval", "rf-filter",
                 "rf-inject", "rf-train", "rf-report", "rf-model"):
        (bin_dir / name).write_text(FAKE)
        (bin_dir / name).chmod(0o755)
    env = {k: v for k, v in os.environ.items() if not k.startswith("RF_")}
    env["PATH"] = f"{bin_dir}{os.pathsep}{env['PATH']}"
    env["CALLS"] = str(tmp_path / "calls")
    return env


def drive(env, tmp_path, *args, **variables) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", SCRIPT, *BASE, "--out", str(tmp_path / "run"), *args],
                          env={**env, **variables}, cwd=tmp_path, capture_output=True,
                          text=True, timeout=60)


def calls(tmp_path) -> list[str]:
    return (tmp_path / "calls").read_text().splitlines()


def trainings(tmp_path) -> list[tuple[list[str], str]]:
    """Each rf-train call's arguments, with the kinds it read on stdin."""
    lines = calls(tmp_path)
    return [(shlex.split(line), lines[i + 1].split(" ", 1)[1])
            for i, line in enumerate(lines) if line.startswith("rf-train ")]


def test_sft_is_the_default_and_writes_no_pairs(env, tmp_path):
    default = drive(env, tmp_path, "--dry-run")
    sft = drive(env, tmp_path, "--dry-run", "--objective", "sft")
    assert default.returncode == sft.returncode == 0, default.stderr + sft.stderr
    assert default.stdout == sft.stdout
    assert "pairs" not in sft.stdout and "--trainer dpo" not in sft.stdout
    r = drive(env, tmp_path)
    assert r.returncode == 0, r.stderr
    assert "OBJECTIVE=sft" in (tmp_path / "run" / "config.env").read_text().splitlines()
    assert [kinds for _, kinds in trainings(tmp_path)] == ["example", "example,example"]
    assert not (tmp_path / "run" / "iter1" / "pairs.jsonl").exists()


@pytest.mark.parametrize("objective, kinds", [("dpo", "pair"),
                                              ("sft+dpo", "pair,example,example")])
def test_dpo_trains_the_iterations_on_pairs_and_the_sft_row_on_examples(env, tmp_path,
                                                                        objective, kinds):
    r = drive(env, tmp_path, "--objective", objective, "--dpo-option", "beta=0.2",
              "--trainer-option", "rank=4", "--max-per-task", "2", "--resample", "weight")
    assert r.returncode == 0, r.stderr
    run_dir = tmp_path / "run"
    assert (run_dir / "iter1" / "pairs.jsonl").read_text() == '{"kind":"pair"}\n'
    assert (run_dir / "iter1" / "examples.jsonl").is_file()  # written beside the pairs
    (sft, sft_kinds), (dpo, dpo_kinds) = trainings(tmp_path)
    assert sft[sft.index("--trainer") + 1] == "peft" and sft_kinds == "example"
    assert "rank=4" in sft and "beta=0.2" not in sft
    assert dpo[dpo.index("--trainer") + 1] == "dpo" and dpo_kinds == kinds
    assert dpo[dpo.index("--option") + 1] == "beta=0.2" and "rank=4" not in dpo
    pairs = next(shlex.split(c) for c in calls(tmp_path) if " --pairs" in c)
    assert pairs[1:] == ["--pairs", "--resample", "weight", "--rejected-by", "logprob",
                         "--gold-chosen", "--max-pairs-per-task", "2"]
    config = (run_dir / "config.env").read_text().splitlines()
    assert f"OBJECTIVE={objective}" in config and "DPO_OPTIONS=beta=0.2" in config


def test_the_extra_round_keeps_the_last_iterations_pairs(env, tmp_path):
    r = drive(env, tmp_path, "--dry-run", "--objective", "dpo", "--retrain-on-errors")
    assert r.returncode == 0, r.stderr
    out = tmp_path / "run"
    stage = next(line for line in r.stdout.splitlines()
                 if line.endswith(f"> {out}/iter2/pairs.jsonl"))
    assert stage.startswith(f"{{ cat {out}/iter1/pairs.jsonl; rf-filter --pairs ")


@pytest.mark.parametrize("value", ["ppo", "", "dpo "])
def test_an_unknown_objective_is_a_usage_error(env, tmp_path, value):
    r = drive(env, tmp_path, "--dry-run", "--objective", value)
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr == ("iterate.sh: --objective (RF_OBJECTIVE): expected one of sft, dpo, "
                        f"sft+dpo, got '{value}'\n")
    r = drive(env, tmp_path, "--dry-run", RF_OBJECTIVE=value)
    assert r.returncode == 2 and "expected one of sft, dpo, sft+dpo" in r.stderr


def test_a_rerun_with_another_objective_is_refused(env, tmp_path):
    assert drive(env, tmp_path).returncode == 0
    r = drive(env, tmp_path, "--objective", "dpo")
    assert r.returncode == 2 and "OBJECTIVE: sft -> dpo" in r.stderr


# -- the report ----------------------------------------------------------------------------

def _stage_files(run_dir: Path, objective: str | None) -> None:
    """A run folder as the driver leaves it: base, SFT on gold, one iteration with pairs."""
    from rf_core.records.io import new_record

    config = "MODEL=m\nDATASET=demo\n" + (f"OBJECTIVE={objective}\n" if objective else "")
    (run_dir / "config.env").write_text(config + "DPO_OPTIONS=beta=0.2\n")
    for folder in ("iter0", "sft", "iter1"):
        (run_dir / folder).mkdir()
    example = new_record("example", task_id="t", messages=[{"role": "user", "content": "q"}],
                         completion="a", source="gold", weight=1)
    pair = new_record("pair", task_id="t", messages=[{"role": "user", "content": "q"}],
                      chosen="a", rejected="b", source="self", weight=1)
    (run_dir / "sft" / "examples.jsonl").write_text(json.dumps(example) + "\n")
    (run_dir / "iter1" / "examples.jsonl").write_text(json.dumps(example) + "\n")
    if objective not in (None, "sft"):
        (run_dir / "iter1" / "pairs.jsonl").write_text(
            json.dumps(pair) + "\n" + json.dumps({**pair, "source": "gold"}) + "\n")


@pytest.mark.parametrize("objective, cell", [
    (None, "sft"), ("sft", "sft"), ("dpo", "dpo: 2 pairs (1 self / 1 gold)"),
    ("sft+dpo", "sft+dpo: 2 pairs (1 self / 1 gold) + examples")])
def test_history_and_report_name_each_rows_objective(tmp_path, objective, cell):
    from rf_core.report.history import build_history, report_markdown

    _stage_files(tmp_path, objective)
    history = build_history(tmp_path)
    assert [it["objective"] for it in history["iterations"]] == [None, objective or "sft"]
    assert history["sft"]["objective"] == "sft"
    assert ("pairs" in history["iterations"][1]) == (cell != "sft")
    text = report_markdown(history, [])
    lines = text.splitlines()
    header = lines.index(next(x for x in lines if x.startswith("| iteration | train cov")))
    assert lines[header].endswith("| stage time s | objective |")
    assert lines[header + 1].count("|") == lines[header].count("|")
    base, sft, first = lines[header + 2:header + 5]
    assert base.startswith("| 0 (base) |") and base.endswith("|  |")
    assert sft.startswith("| SFT on gold |") and sft.endswith("| sft |")
    assert first.startswith("| 1 |") and first.endswith(f"| {cell} |")
    assert first.count("|") == lines[header].count("|")
    described = "trainer dpo: beta=0.2" if cell != "sft" else "iterations' objective: sft."
    assert described in text


# -- the loop with the real commands ---------------------------------------------------------

def _entry_point_name() -> str:
    """The plugin name the fake registers under: a built-in dpo trainer's own, so that the
    built-in stands aside (the manager registers a built-in only where no plugin holds its
    name) and "dpo" is not registered twice."""
    from rf_core.plugins import manager

    return manager.registry("trainers").get("dpo", ("fakedpo",))[0]


@pytest.fixture
def plugin_env(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(PLUGIN_SRC))
    name = _entry_point_name()
    env = install_plugin(tmp_path / "site", PLUGIN_SRC, "reasonforge_fakedpo", name)
    env["RF_CACHE_DIR"] = str(tmp_path / "cache")
    return env


def test_the_loop_trains_on_pairs_and_reports_each_rows_objective(plugin_env, tmp_path):
    out = tmp_path / "run"
    proc = subprocess.run(
        ["bash", SCRIPT, "--model", "none", "--out", str(out), "--dataset", "demo",
         "--iterations", "1", "-k", "4", "--train-size", "3", "--dev-size", "2",
         "--val-size", "0", "--vote", "0", "--values", "0", "--max-per-task", "0",
         "--sampler", "fake-mixed", "--trainer", "fake-sft", "--objective", "sft+dpo",
         "--dpo-option", "beta=0.25"],
        env=plugin_env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    pairs = validate_records((out / "iter1" / "pairs.jsonl").read_bytes(), "pair")
    # per task, 2 right answers (one SQL) against 2 wrong ones, the more likely first
    assert pairs and {p["source"] for p in pairs} == {"self"}
    assert [p["rejected"] for p in pairs[:2]] == ["```sql\nSELECT * FROM missing_1\n```",
                                                  "```sql\nSELECT * FROM missing_3\n```"]
    examples = validate_records((out / "iter1" / "examples.jsonl").read_bytes(), "example")
    got = json.loads((out / "iter1" / "adapter" / "records.json").read_text())
    assert got["kinds"] == {"pair": len(pairs), "example": len(examples)}
    assert got["records"] == pairs + examples
    report = json.loads((out / "iter1" / "train.report.json").read_text())
    assert report["trainer"] == "dpo" and report["beta"] == 0.25
    sft_got = json.loads((out / "sft" / "adapter" / "records.json").read_text())
    assert set(sft_got["kinds"]) == {"example"}
    history = json.loads((out / "history.json").read_text())
    assert [it["objective"] for it in history["iterations"]] == [None, "sft+dpo"]
    assert history["sft"]["objective"] == "sft"
    assert history["iterations"][1]["pairs"] == {"self": len(pairs), "gold": 0,
                                                 "total": len(pairs)}
    text = (out / "report.md").read_text()
    lines = text.splitlines()
    first = lines.index(next(x for x in lines if x.startswith("| iteration | train coverage")))
    rows = {line.split(" |")[0]: line for line in lines[first + 2:first + 5]}
    assert lines[first].endswith("| stage time s | objective |")
    assert rows["| 0 (base)"].endswith("|  |")
    assert rows["| SFT on gold"].endswith("| sft |")
    assert rows["| 1"].endswith(f"| sft+dpo: {len(pairs)} pairs ({len(pairs)} self / 0 gold) "
                                "+ examples |")
    assert "iterations' objective: sft+dpo (trainer dpo: beta=0.25)" in text
