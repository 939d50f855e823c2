"""bench/gpu_check.sh --cpu-smoke end to end with the tiny model (nothing here is timed: the
results file's numbers are not checked, only that every part ran and wrote its table)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "bench" / "gpu_check.sh"


def _env(tmp: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RF_")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    env["RF_CACHE_DIR"] = str(tmp / "cache")
    env["RF_SPIDER_ROOT"] = str(tmp / "no-spider")
    return env


def test_cpu_smoke_runs_every_part_and_writes_its_results(tiny_model, tmp_path):
    out = tmp_path / "results.md"
    proc = subprocess.run(["bash", str(SCRIPT), "--cpu-smoke", "--model", tiny_model,
                           "--out", str(out), "--work", str(tmp_path / "work")],
                          env=_env(tmp_path), capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert proc.stdout.strip() == str(out)
    text = out.read_text()
    assert not (tmp_path / "results.md.tmp").exists()
    assert "FAILED" not in text
    for heading in ("## Environment (rf-doctor)", "## Sampling: plain generate",
                    "## Training: rf-train against the HF Trainer",
                    "## A shortened loop: bin/iterate.sh"):
        assert heading in text, heading
    assert text.count("Wall time: ") == 4
    for row in ("| plain generate (batch 4 prompts x k) |", "| rf-sample hf engine |",
                "| rf-train (peft trainer) |", "| HF Trainer, padded, no grouping |",
                "| 0 (base) |", "| train |", "| all stages |", "rf-train micro-batch"):
        assert row in text, row
    # dev EX greedy and vote for the base and iteration 1
    rows = [line for line in text.splitlines() if line.startswith(("| 0 (base) |", "| 1 |"))]
    assert len(rows) == 2 and all(line.count("%") >= 2 for line in rows)


def test_a_missing_model_stops_before_anything_runs(tmp_path):
    out = tmp_path / "results.md"
    proc = subprocess.run(["bash", str(SCRIPT), "--cpu-smoke", "--model",
                           str(tmp_path / "nowhere"), "--out", str(out), "--work",
                           str(tmp_path / "work")],
                          env=_env(tmp_path), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1
    assert "missing: the model" in proc.stderr and "nothing was run" in proc.stderr
    assert not out.exists()
