"""The openai sampler over a fleet of two real `vllm serve` processes (vLLM's CPU build;
`make test-vllm` installs it) of the tiny random Llama, with runtime LoRA updating: one
iteration of bin/iterate.sh samples from both and loads its adapter into both by name, then
one server is killed in the middle of a sampling stage and the stage still completes.

The kill is placed by the input, not by a clock: the stage reads its tasks from a pipe, the
first window is written and answered by both servers, the server is killed, then the rest is
written. Every wait is bounded; the servers run in their own process groups and are killed in
a finally.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

pytest.importorskip("vllm", reason="vLLM is not installed; `make test-vllm` runs these tests")

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from conftest import make_task  # noqa: E402
from test_openai_vllm_serve import free_port, stop  # noqa: E402

from rf_core.testing import build_tiny_model  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
NAME = "tiny"  # the served model name
START_S = 400  # two servers starting at once on 2 busy cores
STAGE_S = 600


def wait_healthy(procs: list, urls: list[str], logs: list[Path]) -> None:
    deadline = time.monotonic() + START_S
    waiting = set(range(len(procs)))
    while waiting and time.monotonic() < deadline:
        for i in sorted(waiting):
            if procs[i].poll() is not None:
                pytest.fail(f"vLLM's server exited ({procs[i].returncode}):\n"
                            + logs[i].read_text(errors="replace")[-3000:])
            try:
                with urllib.request.urlopen(urls[i] + "/health", timeout=5) as response:
                    if response.status == 200:
                        waiting.discard(i)
            except OSError:
                pass
        time.sleep(2)
    if waiting:
        i = min(waiting)
        pytest.fail(f"vLLM's server was not healthy within {START_S} s:\n"
                    + logs[i].read_text(errors="replace")[-3000:])


@pytest.fixture(scope="module")
def llama(tmp_path_factory) -> str:
    return str(build_tiny_model(tmp_path_factory.mktemp("fleet") / "llama", arch="llama"))


@pytest.fixture(scope="module")
def servers(llama, tmp_path_factory):
    """Two servers of the tiny Llama with runtime LoRA loading: (base_urls, processes)."""
    folder = tmp_path_factory.mktemp("fleet-serve")
    env = {**os.environ, "VLLM_CPU_KVCACHE_SPACE": "1", "VLLM_LOGGING_LEVEL": "WARNING",
           "VLLM_ALLOW_RUNTIME_LORA_UPDATING": "True"}
    procs, urls, logs = [], [], []
    try:
        for i in range(2):
            port = free_port()
            logs.append(folder / f"server{i}.log")
            cmd = [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", llama,
                   "--served-model-name", NAME, "--host", "127.0.0.1", "--port", str(port),
                   "--max-model-len", "2048", "--enforce-eager", "--seed", "0",
                   "--enable-lora", "--max-lora-rank", "16"]
            with open(logs[-1], "wb") as fh:
                procs.append(subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT,
                                              env=env, start_new_session=True))
            urls.append(f"http://127.0.0.1:{port}")
        wait_healthy(procs, urls, logs)
        yield [u + "/v1" for u in urls], procs
    finally:
        for proc in procs:
            stop(proc)


def environment(tmp: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RF_")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    env["RF_CACHE_DIR"] = str(tmp / "cache")
    env.pop("OPENAI_API_KEY", None)
    return env


def served(url: str) -> set[str]:
    with urllib.request.urlopen(url + "/models", timeout=30) as response:
        return {m["id"] for m in json.loads(response.read())["data"]}


def test_a_loop_iteration_then_a_server_killed_mid_stage(servers, llama, tmp_path):
    urls, procs = servers
    env = environment(tmp_path)
    out = tmp_path / "run"
    options = [a for u in urls for a in ("--sampler-option", f"base_url={u}")]
    cmd = ["bash", str(ROOT / "bin" / "iterate.sh"), "--model", NAME, "--train-model", llama,
           "--sampler", "openai", *options, "--sampler-option", "timeout=120",
           "--out", str(out), "--dataset", "demo", "--iterations", "1", "-k", "2",
           "--train-size", "4", "--dev-size", "2", "--val-size", "0", "--vote", "0",
           "--values", "0", "--max-new-tokens", "8", "--epochs", "1", "--batch-size", "2",
           "--max-len", "4096", "--no-sft-baseline"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=STAGE_S * 2)
    assert proc.returncode == 0, proc.stderr[-4000:]
    adapter = out / "iter1" / "adapter"
    records = [json.loads(line) for line in
               (out / "iter1" / "dev.greedy.sampled.jsonl").read_text().splitlines()]
    names = {c["ext"]["openai"]["served_model"] for t in records for c in t["candidates"]}
    assert len(names) == 1 and next(iter(names)).startswith("rf-")
    name = next(iter(names))
    assert all(name in served(u) for u in urls)  # loaded into both at run time
    base = [json.loads(line) for line in
            (out / "iter1" / "train.sampled.jsonl").read_text().splitlines()]
    assert {c["ext"]["openai"]["endpoint"] for t in base for c in t["candidates"]} == set(urls)

    # a sampling stage with that adapter; the second server is killed between two windows
    # of its input (window: concurrency 1 x 2 endpoints x 4 tasks = 8)
    db = records[0]["db_path"]
    tasks = [make_task(db, "SELECT 1", None, id=f"k/{i}", question=f"Question {i}?")
             for i in range(16)]
    stage = subprocess.Popen(
        ["rf-sample", "--sampler", "openai", "--model", NAME, "--adapter", str(adapter),
         "-o", "base_url", urls[0], "-o", "base_url", urls[1], "-o", "concurrency", "1",
         "-o", "max_retries", "1", "-o", "backoff", "0.1", "-o", "timeout", "120",
         "-k", "2", "-t", "0.7", "--max-new-tokens", "8"],
        env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        for t in tasks[:8]:
            stage.stdin.write((json.dumps(t) + "\n").encode())
        stage.stdin.flush()
        first = []
        for _ in range(8):
            line = stage.stdout.readline()
            if not line:
                pytest.fail("the stage ended early:\n" + stage.stderr.read().decode()[-3000:])
            first.append(json.loads(line))
        assert {c["ext"]["openai"]["endpoint"] for t in first for c in t["candidates"]} == \
            set(urls)
        os.killpg(procs[1].pid, signal.SIGKILL)
        procs[1].wait(timeout=30)
        rest, err = stage.communicate(
            input="".join(json.dumps(t) + "\n" for t in tasks[8:]).encode(), timeout=STAGE_S)
    finally:
        if stage.poll() is None:
            stage.kill()
    err = err.decode()
    assert stage.returncode == 0, err[-3000:]
    later = [json.loads(line) for line in rest.decode().splitlines()]
    assert [t["id"] for t in first + later] == [t["id"] for t in tasks]
    assert all(len(t["candidates"]) == 2 for t in later)
    assert {c["ext"]["openai"]["endpoint"] for t in later for c in t["candidates"]} == \
        {urls[0]}
    assert f"giving up on {urls[1]}" in err and "resent after an endpoint went down" in err
