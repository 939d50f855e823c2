"""rf-train's memory sizing (pure arithmetic) and its out-of-memory retry (a fake raises once)."""

from __future__ import annotations

import pytest

from rf_plugins.peft.batching import Encoded, halve, micro_batches
from rf_plugins.peft.memory import ModelShape, plan_before_loading, plan_memory

MIB = 1 << 20
# Qwen2.5-Coder-1.5B-Instruct as rf-model converts it (untied output layer: 1.78B parameters)
QWEN_15B = ModelShape(layers=28, hidden=1536, intermediate=8960, vocab=151936, kv_dim=256,
                      tied=False)
# free memory that torch.cuda.mem_get_info reports on an idle card, after the CUDA context
H100_80GB = 81_000 * MIB     # of 81,559 MiB
H200_141GB = 143_200 * MIB   # of 143,771 MiB
CARD_24GB = 24_000 * MIB     # of 24,564 MiB (e.g. an RTX 4090 or an A10G)


def test_shapes_from_a_config_dict():
    cfg = {"num_hidden_layers": 28, "hidden_size": 1536, "intermediate_size": 8960,
           "vocab_size": 151936, "num_attention_heads": 12, "num_key_value_heads": 2,
           "tie_word_embeddings": False}
    assert ModelShape.from_config(cfg) == QWEN_15B
    assert QWEN_15B.params == pytest.approx(1.777e9, rel=0.01)
    assert QWEN_15B.lora_params(16) == pytest.approx(18.46e6, rel=0.01)


def test_the_old_fixed_budget_did_not_fit_an_h100():
    # 16k tokens without checkpointing: more activation memory than the card has
    assert QWEN_15B.activation_bytes(0.15, False) * 16384 > H100_80GB
    # checkpointing keeps about 15 times less
    ratio = QWEN_15B.activation_bytes(0.15, False) / QWEN_15B.activation_bytes(0.15, True)
    assert 12 < ratio < 20
    # LoRA dropout keeps a copy of every adapted layer's input: about 37% more
    extra = QWEN_15B.activation_bytes(0.15, False) / QWEN_15B.activation_bytes(0, False)
    assert 1.3 < extra < 1.45


@pytest.mark.parametrize("free, dropout, tokens, ckpt", [
    (H100_80GB, 0.15, 9216, False),
    (H100_80GB, 0.0, 12544, False),
    (H200_141GB, 0.15, 16640, False),
    (H200_141GB, 0.0, 23040, False),
    (CARD_24GB, 0.15, 36352, True),   # 2,304 tokens without checkpointing: too few
    (CARD_24GB, 0.0, 42496, True),
])
def test_budgets_for_three_cards(free, dropout, tokens, ckpt):
    plan = plan_before_loading(free, QWEN_15B, dropout=dropout, longest=2048)
    assert (plan.token_budget, plan.checkpointing) == (tokens, ckpt)
    assert plan.token_budget >= 2048  # the longest example fits
    assert "warning" not in plan.reason
    # what the plan spends stays within what was free
    weights = QWEN_15B.params * 2 + QWEN_15B.lora_params(16) * 16
    spent = (weights + plan.token_budget * QWEN_15B.activation_bytes(dropout, ckpt)
             + plan.completion_budget * QWEN_15B.logit_bytes)
    assert spent < free * 0.9


def test_more_memory_never_means_a_smaller_budget():
    plans = [plan_before_loading(f, QWEN_15B) for f in (CARD_24GB, H100_80GB, H200_141GB)]
    plain = [p.budget_without_checkpointing for p in plans]
    assert plain == sorted(plain) and plain[0] < 4096 <= plain[1]
    completions = [p.completion_budget for p in plans]
    assert completions == sorted(completions) and completions[0] >= 1024


def test_modes_and_a_card_too_small():
    on = plan_before_loading(H100_80GB, QWEN_15B, mode="on")
    off = plan_before_loading(CARD_24GB, QWEN_15B, mode="off")
    assert on.checkpointing and on.token_budget > 30_000
    assert not off.checkpointing and off.token_budget == 2304
    assert "longest example (4,096 tokens) may not fit" in plan_before_loading(
        CARD_24GB, QWEN_15B, mode="off", longest=4096).reason
    tiny = plan_before_loading(5_000 * MIB, QWEN_15B)  # weights alone take most of it
    assert tiny.checkpointing and tiny.token_budget < 2048 and "may not fit" in tiny.reason
    with pytest.raises(ValueError):
        plan_memory(H100_80GB, QWEN_15B, mode="sometimes")


def _enc(length, completion):
    return Encoded(index=length, input_ids=[0] * length, n_prompt=length - completion,
                   weight=1.0)


def test_micro_batches_respect_both_budgets():
    step = [_enc(100, 10), _enc(100, 40), _enc(90, 30), _enc(50, 5)]
    assert [len(mb) for mb in micro_batches(step, 10_000)] == [4]
    assert [len(mb) for mb in micro_batches(step, 200)] == [2, 2]  # rows x longest
    by_completion = micro_batches(step, 10_000, completion_budget=50)
    assert all(sum(e.n_completion for e in mb) <= 50 for mb in by_completion)
    assert sorted(e.index for mb in by_completion for e in mb) == [50, 90, 100, 100]
    # an example larger than the budget still gets a micro-batch of its own
    assert [len(mb) for mb in micro_batches(step, 10, completion_budget=1)] == [1, 1, 1, 1]


def test_halve_splits_every_micro_batch_until_one_row():
    a, b, c = _enc(10, 1), _enc(20, 1), _enc(30, 1)
    assert halve([[a, b, c]]) == [[a, b], [c]]
    assert halve([[a, b], [c]]) == [[a], [b], [c]]
    assert halve([[a], [b], [c]]) is None


# --- the retry, on CPU: a fake loss module raises torch.cuda.OutOfMemoryError once ---

def _fail_once(monkeypatch, at_call: int):
    import torch

    from rf_plugins.peft.model import CompletionLoss

    original = CompletionLoss.build
    calls = {"n": 0}

    def build(peft_model):
        module = original(peft_model)
        forward = module.forward

        def flaky(*args, **kwargs):
            calls["n"] += 1
            if calls["n"] == at_call:
                raise torch.cuda.OutOfMemoryError("CUDA out of memory. (fake)")
            return forward(*args, **kwargs)

        module.forward = flaky
        return module

    monkeypatch.setattr(CompletionLoss, "build", staticmethod(build))
    return calls


def _train(tiny_model, out, *args):
    from conftest import run
    from test_train import FAST, examples

    return run("rf-train", ["--base", tiny_model, "--out", str(out), *FAST, "--epochs", "3",
                            "--batch-size", "4", *args], input=examples(4))


def test_out_of_memory_halves_the_step_and_the_run_goes_on(tiny_model, tmp_path,
                                                           monkeypatch):
    ref = _train(tiny_model, tmp_path / "ref")
    assert ref.code == 0, ref.stderr
    expected = ref.records[0]
    assert expected["oom_retries"] == 0 and expected["grad_checkpointing"] is False
    calls = _fail_once(monkeypatch, at_call=1)
    r = _train(tiny_model, tmp_path / "a")
    assert r.code == 0, r.stderr
    assert "step 1: CUDA out of memory in 1 micro-batch(es); retrying it in 2" in r.stderr
    got = r.records[0]
    assert got["oom_retries"] == 1 and got["steps"] == expected["steps"]
    assert got["tokens"] == expected["tokens"]  # the failed attempt is not counted
    assert got["loss_curve"] == pytest.approx(expected["loss_curve"], rel=1e-4, abs=1e-5)
    assert calls["n"] == 1 + 2 + (expected["steps"] - 1)  # step 1 ran in two halves
    assert (tmp_path / "a" / "adapter_config.json").is_file()


def test_out_of_memory_after_a_backward_discards_its_gradients(tiny_model, tmp_path,
                                                               monkeypatch):
    # --micro-batch-tokens 16: one example per micro-batch, so halving cannot help and the
    # retry turns gradient checkpointing on; the first micro-batch's gradients must not count
    ref = _train(tiny_model, tmp_path / "ref", "-o", "micro_batch_tokens", "16")
    assert ref.code == 0, ref.stderr
    _fail_once(monkeypatch, at_call=2)
    r = _train(tiny_model, tmp_path / "a", "-o", "micro_batch_tokens", "16")
    assert r.code == 0, r.stderr
    assert "retrying it with gradient checkpointing on" in r.stderr
    got = r.records[0]
    assert got["oom_retries"] == 1 and got["grad_checkpointing"] is True
    assert got["loss_curve"] == pytest.approx(ref.records[0]["loss_curve"], rel=1e-4,
                                              abs=1e-5)


def test_grad_checkpointing_on_gives_the_same_run(tiny_model, tmp_path):
    off = _train(tiny_model, tmp_path / "off", "-o", "grad_checkpointing", "off")
    on = _train(tiny_model, tmp_path / "on", "-o", "grad_checkpointing", "on")
    assert off.code == 0 and on.code == 0, on.stderr
    assert "gradient checkpointing on (explicit)" in on.stderr
    assert on.records[0]["grad_checkpointing"] is True
    assert off.records[0]["grad_checkpointing"] is False
    assert on.records[0]["loss_curve"] == pytest.approx(off.records[0]["loss_curve"],
                                                        rel=1e-4, abs=1e-5)
