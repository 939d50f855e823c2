"""What rf-train records for refitting its memory plan on a GPU (the largest micro-batch that
ran, peak GPU memory), where the plan's fitted values live, and bench/loop_summary.py's tables
(the SFT baseline's row and stage seconds, the peak-memory column)."""

from __future__ import annotations

import importlib.util
import inspect
import json
from pathlib import Path

import pytest

from conftest import run
from rf_plugins.peft import memory

ROOT = Path(__file__).resolve().parents[1]


def loop_summary():
    spec = importlib.util.spec_from_file_location("loop_summary",
                                                  ROOT / "bench" / "loop_summary.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# -- the memory plan's values, in one place -----------------------------------------------------

def test_the_plans_margins_are_the_named_constants():
    defaults = {name: p.default for name, p in
                inspect.signature(memory.plan_memory).parameters.items()}
    assert defaults["usable"] is memory.USABLE_SHARE == 0.85
    assert defaults["reserve_bytes"] == memory.RESERVE_BYTES == memory.GIB
    assert defaults["logit_share"] == memory.LOGIT_SHARE == 0.2
    assert defaults["efficient_tokens"] == memory.EFFICIENT_TOKENS == 4096
    assert defaults["max_tokens"] == memory.MAX_TOKENS and defaults["granule"] == memory.GRANULE


def test_the_activation_fit_is_read_from_its_constants(monkeypatch):
    shape = memory.ModelShape(layers=2, hidden=10, intermediate=20, vocab=100, kv_dim=5)
    a, b, c = memory.ACT_DROPOUT
    assert shape.activation_bytes(0.1, False) == pytest.approx(3 * (a * 10 + b * 20 + c * 5))
    monkeypatch.setattr(memory, "ACT_DROPOUT", (1.0, 0.0, 0.0))
    monkeypatch.setattr(memory, "CKPT_PER_HIDDEN", 0.0)
    assert shape.activation_bytes(0.1, False) == 3 * 10
    assert shape.activation_bytes(0.1, True) == 10  # one layer recomputed, nothing kept
    monkeypatch.setattr(memory, "LOGIT_BYTES_PER_VOCAB", 1)
    assert shape.logit_bytes == 100


# -- rf-train's report ----------------------------------------------------------------------------

def _train(tiny_model, out, *args):
    from test_train import FAST, examples

    r = run("rf-train", ["--base", tiny_model, "--out", str(out), *FAST, "--epochs", "1",
                         "--batch-size", "4", *args], input=examples(4))
    assert r.code == 0, r.stderr
    return r.records[0]


def _lengths(tiny_model) -> list[int]:
    from transformers import AutoTokenizer

    from rf_core.api import end_of_turn_id
    from rf_plugins.peft.batching import encode_examples
    from test_train import examples

    tok = AutoTokenizer.from_pretrained(tiny_model)
    encoded, _ = encode_examples(examples(4), tok, end_of_turn_id(tok), 2048, lambda m: None)
    return [len(e.input_ids) for e in encoded]


def test_the_report_records_the_largest_micro_batch_and_no_gpu_peak_on_a_cpu(
        tiny_model, tmp_path, validate):
    longest = max(_lengths(tiny_model))
    rep = _train(tiny_model, tmp_path / "a")  # the CPU budget, 4096 tokens: one micro-batch
    validate(rep)
    assert rep["largest_micro_batch_rows"] == 4
    assert rep["largest_micro_batch_tokens"] == 4 * longest <= rep["micro_batch_tokens"]
    assert rep["peak_gpu_allocated_bytes"] is None and rep["peak_gpu_reserved_bytes"] is None
    saved = json.loads((tmp_path / "a" / "rf_train.json").read_text())
    assert saved["largest_micro_batch_tokens"] == rep["largest_micro_batch_tokens"]
    # a budget below one example: every example runs alone, and the record says so
    rep = _train(tiny_model, tmp_path / "b", "-o", "micro_batch_tokens", "16")
    assert rep["largest_micro_batch_rows"] == 1
    assert rep["largest_micro_batch_tokens"] == longest


def test_the_largest_micro_batch_is_one_that_ran_after_out_of_memory_halving(
        tiny_model, tmp_path, monkeypatch):
    import torch

    from rf_plugins.peft.model import CompletionLoss

    original = CompletionLoss.build

    def build(peft_model):  # every micro-batch of more than one row runs out of memory
        module = original(peft_model)
        forward = module.forward

        def small_only(ids, *args, **kwargs):
            if ids.shape[0] > 1:
                raise torch.cuda.OutOfMemoryError("CUDA out of memory. (fake)")
            return forward(ids, *args, **kwargs)

        module.forward = small_only
        return module

    monkeypatch.setattr(CompletionLoss, "build", staticmethod(build))
    rep = _train(tiny_model, tmp_path / "a")
    assert rep["oom_retries"] == 2  # 4 rows -> 2 x 2 -> 4 x 1
    assert rep["largest_micro_batch_rows"] == 1
    assert rep["largest_micro_batch_tokens"] == max(_lengths(tiny_model))


def test_the_peak_is_read_from_the_cuda_allocator(monkeypatch):
    torch = pytest.importorskip("torch")
    from rf_plugins.peft.model import peak_memory

    monkeypatch.setattr(torch.cuda, "max_memory_allocated", lambda dev: 7_000_000_000)
    monkeypatch.setattr(torch.cuda, "max_memory_reserved", lambda dev: 9_000_000_000)
    assert peak_memory(torch.device("cuda:0")) == (7_000_000_000, 9_000_000_000)
    assert peak_memory(torch.device("cpu")) == (None, None)


def test_the_schema_documents_the_new_fields():
    schema = json.loads((ROOT / "schemas" / "train_report.schema.json").read_text())
    for name in ("largest_micro_batch_tokens", "largest_micro_batch_rows",
                 "peak_gpu_allocated_bytes", "peak_gpu_reserved_bytes"):
        assert name not in schema["required"] and schema["properties"][name]["description"]
    assert schema["properties"]["peak_gpu_reserved_bytes"]["type"] == ["integer", "null"]


# -- the loop's summary ---------------------------------------------------------------------------

def _row(label, ex, timings, training=None):
    return {"iteration": label, "dev": {"greedy": {"ex": ex}, "vote": None},
            "training": training, "timings_s": timings}


def _history(with_peak: bool) -> dict:
    peak = ({"peak_gpu_allocated_bytes": 30_100_000_000, "peak_gpu_reserved_bytes": 34_000_000_000,
             "largest_micro_batch_tokens": 16384, "largest_micro_batch_rows": 32}
            if with_peak else {"peak_gpu_allocated_bytes": None, "peak_gpu_reserved_bytes": None})
    return {"config": {"vote": "0"},
            "iterations": [_row(0, 62.0, {"dev-greedy-sample": 10.0}),
                           _row(1, 64.5, {"train-sample": 50.0, "train": 100.0},
                                {"tokens_per_s": 12000.0, **peak})],
            "sft": _row("sft", 59.1, {"train": 230.0, "dev-greedy-sample": 12.0},
                        {"tokens_per_s": 11800.0, **peak})}


def test_loop_summary_has_the_sft_row_its_stage_seconds_and_the_peak_column():
    out = loop_summary().tables(_history(with_peak=True))
    lines = out.splitlines()
    assert "largest micro-batch tokens x rows" in lines[0]
    assert "training peak GPU GB allocated / reserved" in lines[0]
    body = [line for line in lines if line.startswith("| 0 (base)") or
            line.startswith("| SFT on gold") or line.startswith("| 1 ")]
    assert [line.split(" |")[0] for line in body] == ["| 0 (base)", "| SFT on gold", "| 1"]
    assert body[1].endswith("| 11800.0 | 16,384 x 32 | 30.1 / 34.0 |")
    assert body[0].endswith("|  |  |  |")  # no training for the base model
    stage_header = next(line for line in lines if line.startswith("| stage |"))
    assert stage_header == "| stage | iteration 0 s | SFT on gold s | iteration 1 s |"
    assert "| train |  | 230.0 | 100.0 |" in lines
    assert "| all stages | 10.0 | 242.0 | 150.0 |" in lines


def test_loop_summary_without_a_gpu_peak_or_an_sft_baseline():
    history = _history(with_peak=False)
    out = loop_summary().tables(history)
    assert "peak GPU" not in out and "largest micro-batch" not in out
    assert "SFT on gold" in out
    history["sft"] = None  # a run without the baseline
    out = loop_summary().tables(history)
    assert "SFT" not in out
    assert "| stage | iteration 0 s | iteration 1 s |" in out.splitlines()


def test_history_carries_the_reports_memory_fields(tmp_path):
    from rf_core.report.history import build_history

    (tmp_path / "iter0").mkdir()
    (tmp_path / "sft").mkdir()
    report = {"schema_version": 1, "kind": "train_report", "tokens_per_s": 10.0,
              "loss_curve": [1.0], "micro_batch_tokens": 65536,
              "largest_micro_batch_tokens": 16384, "largest_micro_batch_rows": 32,
              "peak_gpu_allocated_bytes": 3, "peak_gpu_reserved_bytes": 4}
    (tmp_path / "sft" / "train.report.json").write_text(json.dumps(report))
    training = build_history(tmp_path)["sft"]["training"]
    assert {k: training[k] for k in report if k in training} == {
        k: v for k, v in report.items() if k not in ("schema_version", "kind", "loss_curve")}
    assert "SFT on gold" in loop_summary().tables(build_history(tmp_path))
