"""bin/iterate.sh end to end with the tiny model on the demo data; SIGKILL and resume."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest

ROOT = Path(__file__).resolve().parents[1]
SMALL = ["--dataset", "demo", "--iterations", "2", "-k", "2", "--train-size", "6",
         "--dev-size", "4", "--val-size", "2", "--vote", "2", "--values", "0",
         "--max-new-tokens", "6",
         "--epochs", "1", "--batch-size", "2", "--lr", "1e-3", "--max-len", "4096"]


def command(model: str, out: Path, *extra) -> list[str]:
    return ["bash", str(ROOT / "bin" / "iterate.sh"), "--model", model, "--out", str(out),
            *SMALL, *extra]


def environment(tmp: Path) -> dict:
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    env["RF_CACHE_DIR"] = str(tmp / "cache")
    for key in [k for k in env if k.startswith("RF_") and k != "RF_CACHE_DIR"]:
        del env[key]
    return env


@pytest.fixture(scope="module")
def finished_run(tiny_model, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("loop")
    out = tmp / "run"
    proc = subprocess.run(command(tiny_model, out), env=environment(tmp), capture_output=True,
                          text=True, timeout=1200)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return out, proc


def summary(history: dict) -> list:
    """What must not depend on whether the run was interrupted."""
    rows = []
    for it in history["iterations"]:
        rows.append((it["iteration"], it.get("train", {}).get("coverage"),
                     it.get("examples"), (it["dev"]["greedy"] or {}).get("ex"),
                     (it["dev"]["vote"] or {}).get("ex"),
                     (it.get("training") or {}).get("loss_last")))
    return rows


def test_two_iterations_write_valid_stages_and_reports(finished_run, validate):
    out, proc = finished_run
    assert "# ReasonForge run" in proc.stdout  # the report's table on the terminal
    for name in ("data/train.jsonl", "data/dev.jsonl", "iter1/train.jsonl",
                 "iter1/examples.jsonl", "iter2/dev.vote.jsonl", "iter0/dev.greedy.jsonl"):
        records = [orjson.loads(line) for line in (out / name).read_bytes().splitlines()]
        assert records, name
        validate(records)
    for i in (0, 1, 2):
        validate(json.loads((out / f"iter{i}" / "dev.greedy.report.json").read_text()))
    assert (out / "iter2" / "adapter" / "adapter_config.json").is_file()
    assert not list(out.rglob("*.tmp*"))
    history = json.loads((out / "history.json").read_text())
    assert history["config"]["iterations"] == "2"
    its = history["iterations"]
    assert [it["iteration"] for it in its] == [0, 1, 2]
    assert its[0]["dev"]["greedy"]["matcher"] == "official"
    for it in its[1:]:
        assert it["train"]["tasks"] == 6 and 0 <= it["train"]["coverage"] <= 1
        ex = it["examples"]
        assert ex["self"] + ex["gold"] == ex["total"] > 0
        tasks = [orjson.loads(x) for x in (out / f"iter{it['iteration']}" / "train.jsonl")
                 .read_bytes().splitlines()]
        covered = sum(any(c["correct"] for c in t["candidates"]) for t in tasks)
        assert it["train"]["covered"] == covered
        assert it["training"]["steps"] > 0 and it["training"]["tokens_per_s"] > 0
        assert 0 <= it["dev"]["greedy"]["ex"] <= 100 and it["dev"]["vote"]["ex"] is not None
        # dev and validation sampled in one call (greedy-sample), split after
        assert {"train-sample", "train-exec", "train", "greedy-sample", "dev-greedy-split",
                "val-greedy-split"} <= set(it["timings_s"])
        assert it["sampling_tokens_per_s"]["train-sample"] > 0
        sampling = it["sampling"]
        assert sampling["greedy"]["tasks"] == 4 + 2 and sampling["train"]["candidates"] == 12
        for figures in sampling.values():
            assert figures["engine"] == "hf" and figures["load_s"] >= 0
            assert figures["prefill_tokens"] > 0 and figures["decode_s"] >= 0
    report = (out / "report.md").read_text()
    assert "| iteration | train coverage |" in report and "accuracy.png" in report
    # the reference's three kinds of rows, and the best iteration chosen on validation
    sft = history["sft"]
    assert sft["iteration"] == "sft" and sft["examples"]["gold"] == 6
    assert sft["training"]["steps"] > 0 and sft["dev"]["greedy"]["ex"] is not None
    assert sft["val"]["greedy"]["scored"] == 2
    assert report.index("| 0 (base)") < report.index("| SFT on gold") < report.index("| 1 ")
    best = history["best"]
    assert best["iteration"] in (0, 1, 2) and best["chosen_by"] == "validation EX, greedy"
    assert best["val_ex"] == max(it["val"]["greedy"]["ex"] for it in its)
    assert (out / "best").resolve() == (out / f"iter{best['iteration']}").resolve()
    assert "Best iteration by validation EX (greedy)" in report
    assert (out / "accuracy.png").stat().st_size > 1000


def test_sigkill_mid_stage_then_rerun_gives_the_same_history(finished_run, tiny_model,
                                                             tmp_path):
    reference = json.loads((finished_run[0] / "history.json").read_text())
    out = tmp_path / "run"
    env = environment(tmp_path)
    proc = subprocess.Popen(command(tiny_model, out), env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    def inside_a_stage():  # its temporary file is there
        return list((out / "iter1").glob("train.sampled.jsonl.tmp.*"))

    deadline = time.time() + 600
    while not inside_a_stage() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    assert proc.poll() is None, "the loop ended before it could be interrupted"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (out / "iter1" / "train.sampled.jsonl").exists()
    rerun = subprocess.run(command(tiny_model, out), env=env, capture_output=True, text=True,
                           timeout=1200)
    assert rerun.returncode == 0, rerun.stderr[-4000:]
    assert "data-train: done already" in rerun.stderr
    history = json.loads((out / "history.json").read_text())
    assert summary(history) == summary(reference)


def test_a_rerun_waits_for_the_stage_a_killed_run_left_holding_the_lock(finished_run,
                                                                       tiny_model, tmp_path):
    """Right after a driver is killed outright, its stage still holds the lock until the
    stage's watcher kills it: a rerun then waits for the lock instead of refusing."""
    out = tmp_path / "run"
    shutil.copytree(finished_run[0], out, symlinks=True)
    gone = subprocess.Popen(["true"])
    gone.wait()
    (out / ".lock").write_text(f"{gone.pid}\n")  # the killed driver
    stage = subprocess.Popen(["flock", str(out / ".lock"), "-c", "echo held; exec sleep 600"],
                             stdout=subprocess.PIPE, text=True, start_new_session=True)
    try:
        assert stage.stdout.readline() == "held\n"
        rerun = subprocess.Popen(command(tiny_model, out), env=environment(tmp_path),
                                 stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        seen = []
        for line in rerun.stderr:
            seen.append(line)
            if f"a stage of a run that was killed (pid {gone.pid}) still holds it" in line:
                break
        assert rerun.poll() is None, "".join(seen)
        os.killpg(stage.pid, signal.SIGKILL)  # what the watcher does
        stage.wait()
        _, err = rerun.communicate(timeout=600)
        assert rerun.returncode == 0, "".join(seen) + err
        assert "data-train: done already" in err
        assert (out / ".lock").read_text().strip() == str(rerun.pid)
    finally:
        if stage.poll() is None:
            os.killpg(stage.pid, signal.SIGKILL)
            stage.wait()


def test_dry_run_prints_commands_and_runs_nothing(tmp_path):
    proc = subprocess.run(["bash", str(ROOT / "bin" / "iterate.sh"), "--dry-run", "--out",
                           str(tmp_path / "x"), "--retrain-on-errors"],
                          capture_output=True, text=True, env=environment(tmp_path))
    assert proc.returncode == 0, proc.stderr
    assert "rf-train --trainer peft --base qwen2.5-coder-0.5b" in proc.stdout
    assert "rf-filter --tasks wrong" in proc.stdout
    assert not (tmp_path / "x").exists()


def test_bad_option_is_a_usage_error(tmp_path):
    proc = subprocess.run(["bash", str(ROOT / "bin" / "iterate.sh"), "--nope"],
                          capture_output=True, text=True, env=environment(tmp_path))
    assert proc.returncode == 2 and "unknown option '--nope'" in proc.stderr


def test_the_loop_stops_when_too_many_examples_exceed_max_len(tiny_model, tmp_path):
    small = ["--dataset", "demo", "--iterations", "1", "-k", "1", "--train-size", "3",
             "--dev-size", "1", "--vote", "0", "--values", "0", "--max-new-tokens", "2",
             "--max-len", "40"]
    proc = subprocess.run(["bash", str(ROOT / "bin" / "iterate.sh"), "--model", tiny_model,
                           "--out", str(tmp_path / "run"), *small],
                          env=environment(tmp_path), capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert "of 3 examples (100.0%) are longer than --max-len 40 (by database:" in proc.stderr
    assert "more than the 1% allowed" in proc.stderr
    # the SFT baseline trains first, on the same tasks' gold SQL: it stops there
    assert "SFT baseline: stage train failed with exit status 1" in proc.stderr
    assert not (tmp_path / "run" / "sft" / "train.report.json").exists()
