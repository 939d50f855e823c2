"""The vllm sampler, for real, on vLLM's CPU build (`make test-vllm` installs it).

Skipped where vLLM is not installed. Each rf-sample call starts one vLLM engine in a subprocess.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from rf_core.testing import build_tiny_model

pytest.importorskip("vllm", reason="vLLM is not installed; `make test-vllm` runs these tests")

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from conftest import make_task, run  # noqa: E402


@pytest.fixture(scope="module")
def llama(tmp_path_factory):
    return str(build_tiny_model(tmp_path_factory.mktemp("vllm") / "llama", arch="llama"))


def tasks(db):
    return [make_task(db, "SELECT 1", None, id=f"v/{i}", question=q)
            for i, q in enumerate(["How many products?", "Which customers live in Paris?"])]


def sample(model, db, *args):
    r = run("rf-sample", ["--sampler", "vllm", "--model", model, "-k", "3", "-t", "1.0",
                          "--max-new-tokens", "8", *args], input=tasks(db))
    assert r.code == 0, r.stderr[-3000:]
    return r.records


def test_vllm_sampler_seeds_adapters_and_fields(llama, shop_db, tmp_path, validate):
    a = sample(llama, shop_db, "--seed", "5")
    validate(a)
    for t in a:
        assert len(t["candidates"]) == 3 and t["messages"][1]["role"] == "user"
        for c in t["candidates"]:
            assert c["sampler"] == "vllm" and c["n_tokens"] <= 8
    # per-task seeds: the same --seed gives the same candidates
    b = sample(llama, shop_db, "--seed", "5")
    texts = lambda out: [[c["text"] for c in t["candidates"]] for t in out]  # noqa: E731
    assert texts(a) == texts(b)

    # an adapter written by rf-train loads in the vllm sampler and changes what it samples
    msgs = a[0]["messages"]
    examples = [{"schema_version": 1, "kind": "example", "task_id": "v/0", "messages": msgs,
                 "completion": "SELECT count(*) FROM product", "source": "gold", "weight": 1}]
    trained = run("rf-train", ["--base", llama, "--out", str(tmp_path / "adapter"), "--lr",
                               "1e-2", "--epochs", "20", "--batch-size", "1", "-o", "rank", "8",
                               "-o", "dropout", "0"], input=examples)
    assert trained.code == 0, trained.stderr[-2000:]
    c = sample(llama, shop_db, "--seed", "5", "--adapter", str(tmp_path / "adapter"))
    assert c[0]["candidates"][0]["adapter"] == str(tmp_path / "adapter")
    assert texts(c) != texts(a)
