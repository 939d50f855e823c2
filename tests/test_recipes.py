"""The cluster recipes, without a cluster: examples/slurm/reasonforge.sbatch and
examples/skypilot/run.sh run with shims for srun, scontrol, vllm and curl that record the
commands they are given (and do nothing else), and the real bin/iterate.sh in --dry-run; the
recorded commands are asserted."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

SHIM = r"""#!/usr/bin/env bash
# records its name, the VLLM_ALLOW_RUNTIME_LORA_UPDATING it sees and its arguments
printf '%s|%s|%s\n' "$(basename "$0")" "${VLLM_ALLOW_RUNTIME_LORA_UPDATING:-}" "$*" \
  >> "$SHIM_LOG"
case $(basename "$0") in
  scontrol) printf '%s\n' gpu-a gpu-b gpu-c gpu-d ;;  # show hostnames gpu-[a-d]
esac
exit 0
"""


@pytest.fixture
def shims(tmp_path) -> dict:
    bin_dir = tmp_path / "shims"
    bin_dir.mkdir()
    for name in ("srun", "scontrol", "vllm", "curl"):
        (bin_dir / name).write_text(SHIM)
        (bin_dir / name).chmod(0o755)
    spider = tmp_path / "shared" / "spider"
    (spider / "database" / "db1").mkdir(parents=True)
    (spider / "database" / "db1" / "db1.sqlite").write_bytes(b"")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RF_", "SLURM_", "SKY"))}
    env.update(PATH=os.pathsep.join([str(bin_dir), str(Path(sys.executable).parent),
                                     env["PATH"]]),
               SHIM_LOG=str(tmp_path / "calls.log"), RF_PROJECT=str(ROOT),
               RF_SPIDER=str(spider), RF_MODEL="/shared/models/qwen", RF_OUT=str(tmp_path / "out"),
               RF_LOCAL_DIR=str(tmp_path / "local"))
    return env


def calls(env: dict) -> list[tuple[str, str, str]]:
    log = Path(env["SHIM_LOG"])
    return [tuple(line.split("|", 2)) for line in log.read_text().splitlines()]


def test_the_sbatch_script_places_servers_training_and_the_driver(shims, tmp_path):
    env = {**shims, "SLURM_JOB_NODELIST": "gpu-[a-d]", "SLURM_JOB_ID": "77",
           "SLURM_SUBMIT_DIR": str(ROOT), "SLURM_GPUS_ON_NODE": "8"}
    r = subprocess.run(["bash", str(ROOT / "examples" / "slurm" / "reasonforge.sbatch"),
                        "--iterations", "1", "--dry-run"], env=env, capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    got = calls(env)
    local = tmp_path / "local"
    assert got[0] == ("scontrol", "", "show hostnames gpu-[a-d]")
    # the databases, once per node, to the same node-local path
    assert got[1] == ("srun", "", "--nodes=4 --ntasks-per-node=1 bash -c mkdir -p \"$1\" && "
                      f"cp -r \"$2\" \"$1/\" stage {local} {shims['RF_SPIDER']}")
    # two vLLM servers, on the last two nodes, with runtime LoRA loading (started in the
    # background: in either order)
    servers = [c for c in got if c[0] == "srun" and "vllm serve" in c[2]]
    assert sorted(s[2] for s in servers) == [
        f"--nodes=1 --ntasks=1 --nodelist={node} env VLLM_ALLOW_RUNTIME_LORA_UPDATING=True "
        "vllm serve /shared/models/qwen --host 0.0.0.0 --port 8000 --enable-lora "
        "--max-lora-rank 16" for node in ("gpu-c", "gpu-d")]
    assert [c[2] for c in got if c[0] == "curl"] == [
        "-sf http://gpu-c:8000/v1/models", "-sf http://gpu-d:8000/v1/models"]
    # the loop samples from both servers and trains on the first two nodes
    lines = r.stdout.splitlines()
    samples = [line for line in lines if line.startswith("rf-sample ")]
    assert samples and all("--sampler openai" in s and
                           "--option base_url=http://gpu-c:8000/v1 "
                           "--option base_url=http://gpu-d:8000/v1" in s for s in samples)
    assert all(f"--root {local}/spider" in line for line in lines if line.startswith("rf-data"))
    # the stage's shell reads each printed line as these words (--dry-run quotes them)
    trains = [shlex.split(line) for line in lines if "rf-train" in line]
    rf_train = str(Path(sys.executable).parent / "rf-train")
    launch = ("srun --nodes=2 --ntasks-per-node=1 --nodelist=gpu-a,gpu-b torchrun --nnodes=2 "
              "--nproc-per-node=8 --rdzv-backend=c10d --rdzv-endpoint=gpu-a:29500 "
              f"--rdzv-id=77 {rf_train} --trainer peft --base /shared/models/qwen").split()
    assert len(trains) == 2 and all(t[:len(launch)] == launch for t in trains)
    assert all(t[-3].endswith("/examples.jsonl") and t[-2] == ">" for t in trains)


def test_the_sbatch_script_needs_a_node_to_train_and_one_to_serve(shims):
    env = {**shims, "SLURM_JOB_NODELIST": "gpu-[a-d]", "SLURM_JOB_ID": "77",
           "SLURM_SUBMIT_DIR": str(ROOT), "RF_SERVE_NODES": "4"}
    r = subprocess.run(["bash", str(ROOT / "examples" / "slurm" / "reasonforge.sbatch")],
                       env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "RF_SERVE_NODES=4: needs 1 to 3" in r.stderr
    assert [c[0] for c in calls(env)] == ["scontrol"]  # nothing started


def sky_env(shims: dict, rank: int) -> dict:
    return {**shims, "SKYPILOT_NODE_RANK": str(rank), "SKYPILOT_NUM_GPUS_PER_NODE": "4",
            "SKYPILOT_NODE_IPS": "10.0.0.1\n10.0.0.2\n10.0.0.3",
            "RF_ITERATE_ARGS": "--iterations 1 --dry-run"}


def test_skypilot_head_runs_the_loop_over_the_other_nodes_servers(shims, tmp_path):
    env = sky_env(shims, 0)
    r = subprocess.run(["bash", str(ROOT / "examples" / "skypilot" / "run.sh")], env=env,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "local" / "spider" / "database" / "db1" / "db1.sqlite").is_file()
    assert [c[2] for c in calls(env)] == ["-sf http://10.0.0.2:8000/v1/models",
                                          "-sf http://10.0.0.3:8000/v1/models"]
    lines = r.stdout.splitlines()
    samples = [line for line in lines if line.startswith("rf-sample ")]
    assert samples and all("--option base_url=http://10.0.0.2:8000/v1 "
                           "--option base_url=http://10.0.0.3:8000/v1" in s for s in samples)
    rf_train = Path(sys.executable).parent / "rf-train"
    trains = [line for line in lines if "rf-train" in line]
    assert len(trains) == 2 and all(
        t.startswith(f"torchrun --nproc-per-node=4 {rf_train} --trainer peft ") for t in trains)


def test_skypilot_other_nodes_serve(shims):
    env = sky_env(shims, 2)
    r = subprocess.run(["bash", str(ROOT / "examples" / "skypilot" / "run.sh")], env=env,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert calls(env) == [("vllm", "True", "serve /shared/models/qwen --host 0.0.0.0 --port "
                           "8000 --enable-lora --max-lora-rank 16")]


def top_level(yaml_text: str) -> dict[str, str]:
    """The top-level `key: value` lines of a YAML file (no YAML parser is a dependency)."""
    out = {}
    for line in yaml_text.splitlines():
        if line and not line[0].isspace() and not line.startswith("#") and ":" in line:
            key, _, value = line.partition(":")
            out[key] = value.strip()
    return out


def test_the_skypilot_task_runs_the_scripts_tested_here():
    yaml = top_level((ROOT / "examples" / "skypilot" / "reasonforge.yaml").read_text())
    assert yaml["run"] == "bash examples/skypilot/run.sh"
    assert yaml["setup"] == "bash examples/skypilot/setup.sh"
    assert int(yaml["num_nodes"]) >= 2 and yaml["workdir"] == "."
