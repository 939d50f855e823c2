"""--sampler auto where vLLM is installed (its CPU build) but there is no CUDA GPU: it picks
the hf engine and says why. Skipped where vLLM is not installed."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

pytest.importorskip("vllm", reason="vLLM is not installed; `make test-vllm` runs these tests")

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from conftest import make_task, run  # noqa: E402


def test_auto_picks_hf_without_cuda_even_with_vllm(tiny_model, shop_db):
    import torch

    from rf_core.plugins.auto import probe as probe_auto_choice

    if torch.cuda.is_available():
        pytest.skip("a CUDA GPU is present: auto picks vllm here")
    assert probe_auto_choice() == ("hf", "no CUDA GPU")
    task = make_task(shop_db, "SELECT 1", None, id="a/0", question="How many products?")
    r = run("rf-sample", ["--model", tiny_model, "--max-new-tokens", "4"], input=[task])
    assert r.code == 0, r.stderr[-3000:]
    assert r.stderr.splitlines()[0] == "rf-sample: sampler auto -> hf (no CUDA GPU)"
    assert [c["sampler"] for c in r.records[0]["candidates"]] == ["hf"]
