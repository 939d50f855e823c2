"""bench/gpu_check.sh --cpu-smoke end to end with the tiny model (nothing here is timed: the
results file's numbers are not checked, only that every part ran and wrote its table)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

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
                    "## Training: rf-train against the HF Trainer; the dpo trainer on pairs",
                    "## A shortened loop: bin/iterate.sh"):
        assert heading in text, heading
    assert text.count("Wall time: ") == 4
    for row in ("| plain generate (batch 4 prompts x k) |", "| rf-sample hf engine |",
                "| rf-train (peft trainer) |", "| HF Trainer, padded, no grouping |",
                "| rf-train (dpo trainer, pairs) |",
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


# -- the lease-sized check (bench/gpu_check.sh --lease, i.e. bench/gpu_lease.sh) -------------

GENEROUS = ["--total", "3000"] + [arg for part in (
    "setup", "doctor", "tests", "train", "sample-generate", "sample-hf", "sample-cb", "loop")
    for arg in ("--budget", f"{part}=400")]  # what it writes is checked here, not its speed


def _shapes(tiny_model: str, folder: Path) -> Path:
    """The tiny model's config and tokenizer without weights: what random:DIR needs."""
    folder.mkdir(parents=True)
    for path in Path(tiny_model).iterdir():
        if not path.name.endswith((".safetensors", ".bin")):
            (folder / path.name).write_bytes(path.read_bytes())
    return folder


def _stub(folder: Path, name: str, body: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(f"#!/bin/sh\n{body}\n")
    (folder / name).chmod(0o755)


def _lease(args: list[str], env: dict, tmp: Path, timeout: int = 1200):
    return subprocess.run(["bash", str(SCRIPT), "--lease", "--work", str(tmp / "work"), *args],
                          env=env, capture_output=True, text=True, timeout=timeout)


def _parts(out: Path) -> dict:
    import json

    return {row["part"]: row["status"]
            for row in json.loads((out / "results.json").read_text())["parts"]}


def test_lease_cpu_smoke_runs_every_part_and_writes_its_results_under_OUT(tiny_model, tmp_path):
    import json
    import tarfile

    model = f"random:{_shapes(tiny_model, tmp_path / 'shapes')}"
    env = _env(tmp_path) | {"OUT": str(tmp_path / "out")}
    proc = _lease(["--cpu-smoke", "--model", model, *GENEROUS], env, tmp_path)
    out = tmp_path / "out"
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert proc.stdout.strip() == str(out / "results.md")
    assert sorted(p.name for p in out.iterdir()) == [
        "logs.tar.gz", "loop.tar.gz", "results.json", "results.md"]
    assert set(_parts(out).values()) == {"ok"} and len(_parts(out)) == 8
    result = json.loads((out / "results.json").read_text())
    assert result["random_weights"] is True and result["model"] == model
    assert [r["method"] for r in result["train"]["rows"]] == ["rf-train (peft trainer)",
                                                              "rf-train (dpo trainer, pairs)"]
    assert result["train"]["rows"][1]["pairs"] > 0
    assert result["train"]["rows"][0]["largest_forward_slots"] > 0
    for engine in ("generate", "hf", "cb"):
        assert result["sample"][engine]["rows"][0]["output_tokens"] > 0, engine
    assert [r["iteration"] for r in result["loop"]["rows"]][:2] == [0, 1]
    text = (out / "results.md").read_text()
    for heading in ("## Environment (rf-doctor)", "## The CUDA-only tests",
                    "## Training: rf-train (peft trainer; dpo trainer on pairs)",
                    "## A tiny loop",
                    "## Sampling (every engine that finished)"):
        assert heading in text, heading
    with tarfile.open(out / "loop.tar.gz") as tar:
        names = tar.getnames()
    assert "loop/history.json" in names
    assert not any(n.endswith((".safetensors", ".pt")) for n in names)


def test_lease_part_out_of_time_is_recorded_and_the_next_part_still_runs(tiny_model, tmp_path):
    model = f"random:{_shapes(tiny_model, tmp_path / 'shapes')}"
    stubs = tmp_path / "stubs"
    _stub(stubs, "rf-doctor", "exec sleep 300")  # a part that never ends by itself
    env = _env(tmp_path) | {"PATH": f"{stubs}{os.pathsep}{_env(tmp_path)['PATH']}"}
    proc = _lease(["--cpu-smoke", "--model", model, "--out", str(tmp_path / "out"),
                   "--parts", "doctor,tests", *GENEROUS, "--budget", "doctor=2"], env, tmp_path)
    assert proc.returncode == 1, proc.stderr[-4000:]
    parts = _parts(tmp_path / "out")
    assert list(parts) == ["doctor", "tests"]
    assert parts["doctor"].startswith("timed out") and parts["tests"] == "ok"
    assert "**timed out after" in (tmp_path / "out" / "results.md").read_text()


def test_lease_without_a_gpu_or_without_its_carry_folder_is_one_line(tmp_path):
    env = _env(tmp_path)
    env["PATH"] = os.pathsep.join(p for p in env["PATH"].split(os.pathsep)
                                  if not (Path(p) / "nvidia-smi").exists())
    proc = _lease([], env, tmp_path, timeout=60)
    assert proc.returncode == 2 and "no CUDA GPU" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    _stub(tmp_path / "gpu", "nvidia-smi", "echo 'GPU 0: Fake (UUID: GPU-0)'")
    env["PATH"] = f"{tmp_path / 'gpu'}{os.pathsep}{env['PATH']}"
    proc = _lease(["--carry", str(tmp_path / "nowhere")], env, tmp_path, timeout=60)
    assert proc.returncode == 2 and "no carry folder" in proc.stderr
    assert "bench/gpu_pack.sh" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("damage, says", [
    ("checksum", "fails its checksum"),
    ("no-archive", "no Spider archive"),
    ("no-config", "has no config.json"),
])
def test_lease_setup_problems_are_one_line_and_the_results_still_written(
        damage, says, tiny_model, tmp_path):
    import hashlib
    import tarfile

    carry = tmp_path / "carry"
    (carry / "wheels").mkdir(parents=True)
    model = _shapes(tiny_model, carry / "model" / "tiny")
    spider = tmp_path / "spider"
    spider.mkdir()
    (spider / "dev.json").write_text("[]")
    archive = carry / "spider.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(spider, arcname="spider")
    digest = hashlib.sha256(archive.read_bytes()).hexdigest()
    (carry / "spider.tar.gz.sha256").write_text(
        f"{'0' * 64 if damage == 'checksum' else digest}  spider.tar.gz\n")
    if damage == "no-archive":
        archive.unlink()
    if damage == "no-config":
        (model / "config.json").unlink()
    _stub(tmp_path / "gpu", "nvidia-smi", "echo 'GPU 0: Fake (UUID: GPU-0)'")
    env = _env(tmp_path)
    env["PATH"] = f"{tmp_path / 'gpu'}{os.pathsep}{env['PATH']}"
    proc = _lease(["--carry", str(carry), "--model", f"random:{model}",
                   "--out", str(tmp_path / "out")], env, tmp_path, timeout=120)
    assert proc.returncode == 1
    assert says in proc.stderr and "Traceback" not in proc.stderr
    parts = _parts(tmp_path / "out")
    assert parts["setup"].startswith("failed")
    assert all(status == "not run (set-up failed)" for name, status in parts.items()
               if name != "setup")
    assert says in (tmp_path / "out" / "results.md").read_text()
