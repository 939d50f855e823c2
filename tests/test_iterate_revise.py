"""bin/iterate.sh --revise on the tiny model: the train candidates are revised before
selection, the dev and validation answers before scoring, and the report has the revised
rows beside the single-turn ones."""

from __future__ import annotations

import json
import subprocess

import orjson

from test_iterate import ROOT, environment

ARGS = ["--dataset", "demo", "--iterations", "1", "-k", "2", "--train-size", "3",
        "--dev-size", "3", "--val-size", "1", "--vote", "2", "--values", "0",
        "--max-new-tokens", "6", "--epochs", "1", "--batch-size", "2", "--max-len", "4096",
        "--no-sft-baseline", "--revise", "1", "--multi-turn"]


def records(path):
    return [orjson.loads(line) for line in path.read_bytes().splitlines()]


def test_revise_rows_and_revised_training_data(tiny_model, tmp_path, validate):
    out = tmp_path / "run"
    proc = subprocess.run(["bash", str(ROOT / "bin" / "iterate.sh"), "--model", tiny_model,
                           "--out", str(out), *ARGS], env=environment(tmp_path),
                          capture_output=True, text=True, timeout=1200)
    assert proc.returncode == 0, proc.stderr[-4000:]
    for name in ("iter1/train.revised.jsonl", "iter0/dev.greedy.revised.jsonl",
                 "iter1/val.greedy.revised.jsonl", "iter1/dev.vote.revised.jsonl",
                 "iter1/examples.jsonl"):
        validate(records(out / name))
    # the tiny model's answers fail, so every train candidate is revised once
    train = records(out / "iter1" / "train.revised.jsonl")
    assert all(len(c["revision"]["turns"]) == 1 for t in train for c in t["candidates"])
    assert all("vote" in t for t in records(out / "iter1" / "dev.vote.revised.jsonl"))
    history = json.loads((out / "history.json").read_text())
    assert history["config"]["revise"] == "1"
    for it in history["iterations"]:
        rev = it["dev"]["greedy_revised"]
        assert rev["revision"]["candidates_revised"] == 3 and "vs_base" in rev
        assert it["val"]["greedy_revised"]["scored"] == 1
        assert it["dev"]["vote_revised"]["method"] == "vote"
    stats = history["iterations"][1]["train_revision"]
    assert stats["tasks"] == 3 and stats["candidates_revised"] == 6
    report = (out / "report.md").read_text()
    assert "With execute-and-revise (1 round(s) of rf-revise" in report
    assert "| 1 | " in report.split("With execute-and-revise")[1]
    assert {"dev-greedy-revise", "dev-greedy-revised-eval", "train-revise"} <= \
        set(history["iterations"][1]["timings_s"])
