"""rf-train on two "machines": two torchrun processes on 127.0.0.1, one per node, joined by a
c10d rendezvous, gloo on the CPU (and the same through `accelerate launch` with a two-machine
configuration, where accelerate is installed) give the adapter a single process gives with
the same global batch; a rendezvous that never forms ends in torchrun's timeout; the
processes refuse examples on their shared stdin and examples that differ between them."""

from __future__ import annotations

import importlib.util
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from rf_core.testing import run_command
from conftest import jsonl

BIN = Path(sys.executable).parent
TORCHRUN = shutil.which("torchrun", path=str(BIN)) or shutil.which("torchrun")
RF_TRAIN = shutil.which("rf-train", path=str(BIN)) or shutil.which("rf-train")

try:
    import torch.distributed as dist
    DISTRIBUTED = dist.is_available()
except ImportError:
    DISTRIBUTED = False

pytestmark = pytest.mark.skipif(not (DISTRIBUTED and TORCHRUN and RF_TRAIN),
                                reason="torch.distributed (torchrun) is not available")

PAIRS = [("How many products are there?", "SELECT count(*) FROM product"),
         ("Which customers live in Paris?", "SELECT name FROM customer WHERE city = 'Paris'"),
         ("What is the most expensive product?",
          "SELECT name FROM product ORDER BY price DESC LIMIT 1"),
         ("List every category.", "SELECT DISTINCT category FROM product")]
LR = 5e-3
# Summing the gradients of two halves over gloo is not bit-equal to one process's sum, and
# Adam's first steps magnify rounding in near-zero gradients: 1e-4 is 2% of one step of
# LR (measured: 4.2e-5 at most, 2026-12-06, 2-core x86_64); the trained weights move > 50x that.
ATOL = 1e-4


def examples(n: int = 4) -> list[dict]:
    return [{"schema_version": 1, "kind": "example", "task_id": f"t/{i}",
             "messages": [{"role": "system", "content": "You write SQL."},
                          {"role": "user", "content": q}],
             "completion": sql, "source": "gold", "weight": 1}
            for i, (q, sql) in enumerate(PAIRS[:n])]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def common(model: str, data: Path) -> list[str]:
    # global batch 4: one step takes all four examples, two on each process
    return ["--base", model, "--lr", str(LR), "-o", "dropout", "0", "--batch-size", "4",
            "--epochs", "2", "-o", "device", "cpu", str(data)]


def env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1"}


def adapter(folder: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(folder / "adapter_model.safetensors")


@pytest.fixture(scope="module")
def single(tiny_model, tmp_path_factory):
    """The single-process run: its folder and report."""
    folder = tmp_path_factory.mktemp("multinode")
    data = folder / "ex.jsonl"
    data.write_bytes(jsonl(examples()))
    r = run_command("rf-train", ["--out", folder / "one", *common(tiny_model, data)])
    assert r.exit_code == 0, r.stderr
    return folder, data, r.records[0]


def launch_nodes(commands: list[list[str]], out: Path) -> tuple[list, dict]:
    """Start the nodes' commands together, wait for both; (their results, the report)."""
    procs = [subprocess.Popen(c, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env(),
                              stdin=subprocess.DEVNULL) for c in commands]
    results = [(p.wait(timeout=300), *p.communicate()) for p in procs]
    for code, _, err in results:
        assert code == 0, err.decode()[-3000:]
    # rank 0 alone prints the report, on whichever node the rendezvous made it
    reports = [o for _, o, _ in results if o.strip()]
    assert len(reports) == 1
    import json
    return results, json.loads(reports[0])


def assert_same_adapter(one: Path, two: Path, report_one: dict, report_two: dict) -> None:
    import torch

    a, b = adapter(one), adapter(two)
    assert a.keys() == b.keys() and len(a) > 0
    for name in a:
        torch.testing.assert_close(b[name], a[name], rtol=0, atol=ATOL, msg=name)
    moved = max(float(t.abs().max()) for n, t in a.items() if "lora_B" in n)
    assert moved > 50 * ATOL  # lora_B starts at zero: the comparison is not of untrained weights
    assert report_two["processes"] == 2 and report_two["steps"] == report_one["steps"]
    assert report_two["loss_curve"] == pytest.approx(report_one["loss_curve"], rel=1e-4)


def test_two_nodes_give_the_single_process_adapter(single, tiny_model):
    folder, data, one = single
    port, out = free_port(), folder / "two"
    nodes = [[TORCHRUN, "--nnodes", "2", "--node-rank", str(rank), "--nproc-per-node", "1",
              "--rdzv-backend", "c10d", "--rdzv-endpoint", f"127.0.0.1:{port}",
              "--rdzv-id", "rf-test", RF_TRAIN, "--out", str(out), *common(tiny_model, data)]
             for rank in (0, 1)]
    _, two = launch_nodes(nodes, out)
    assert_same_adapter(folder / "one", out, one, two)
    assert sorted(p.name for p in folder.iterdir() if p.name.startswith("two")) == ["two"]


@pytest.mark.skipif(importlib.util.find_spec("accelerate") is None
                    or not shutil.which("accelerate", path=str(BIN)),
                    reason="accelerate is not installed")
def test_accelerate_launch_on_two_machines(single, tiny_model):
    folder, data, one = single
    port, out = free_port(), folder / "acc"
    launcher = shutil.which("accelerate", path=str(BIN))
    # --multi_gpu is accelerate's torchrun-style launcher; without CUDA the trainer uses gloo
    nodes = [[launcher, "launch", "--multi_gpu", "--num_machines", "2", "--num_processes", "2",
              "--machine_rank", str(rank), "--main_process_ip", "127.0.0.1",
              "--main_process_port", str(port), "--rdzv_backend", "static",
              RF_TRAIN, "--out", str(out), *common(tiny_model, data)]
             for rank in (0, 1)]
    _, two = launch_nodes(nodes, out)
    assert_same_adapter(folder / "one", out, one, two)


def test_a_rendezvous_that_never_forms_times_out(single, tiny_model):
    folder, data, _ = single
    out = folder / "alone"
    # one node of two: torchrun waits join_timeout seconds for the other, then gives up
    r = subprocess.run([TORCHRUN, "--nnodes", "2", "--nproc-per-node", "1", "--rdzv-backend",
                        "c10d", "--rdzv-endpoint", f"127.0.0.1:{free_port()}", "--rdzv-id",
                        "rf-alone", "--rdzv-conf", "join_timeout=3", RF_TRAIN, "--out",
                        str(out), *common(tiny_model, data)],
                       capture_output=True, env=env(), stdin=subprocess.DEVNULL, timeout=120)
    assert r.returncode != 0
    last = r.stderr.decode().strip().splitlines()[-1]
    assert "RendezvousTimeoutError" in last
    assert not out.exists() and not Path(f"{out}.partial").exists() and r.stdout == b""


def test_examples_on_a_shared_stdin_are_refused(tiny_model, tmp_path):
    r = run_command("rf-train", ["--base", tiny_model, "--out", tmp_path / "a"],
                    input=jsonl(examples()), env={"WORLD_SIZE": "2"})
    assert r.exit_code == 2
    assert "pass them as FILE, not on stdin" in r.stderr and not (tmp_path / "a").exists()


CHECK = """
import sys
import torch.distributed as dist
from rf_plugins.peft.model import same_on_every_process
from rf_core.api import RFError
rank = int(sys.argv[1])
dist.init_process_group("gloo", init_method="file://" + sys.argv[2], rank=rank, world_size=2)
exs = [{"task_id": "t/0", "completion": "SELECT 1"}] + ([] if rank else [{"task_id": "t/1"}])
for mine in (exs[:1], exs):  # the same examples, then rank 0 with one more
    try:
        same_on_every_process(mine, rank, "cpu")
        print("same")
    except RFError as exc:
        print(exc)
"""


def test_every_process_must_read_the_same_examples(tmp_path):
    store = tmp_path / "store"
    procs = [subprocess.Popen([sys.executable, "-c", CHECK, str(rank), str(store)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env())
             for rank in (0, 1)]
    outs = [p.communicate(timeout=120)[0].decode().strip().splitlines() for p in procs]
    for out in outs:
        assert out[0] == "same", outs
        assert "the processes read different examples" in out[1], outs
