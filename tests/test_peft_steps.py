"""The peft trainer's named steps, each alone: its settings and defaults, the out-of-memory
retry choice, the update that skips a non-finite step, the end check, and its memory plan."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from rf_core.api import TRAIN_DEFAULTS, RFError
from rf_plugins.peft import run
from rf_plugins.peft.batching import Encoded
from rf_plugins.peft.options import DEFAULTS, OPTIONS
from rf_plugins.peft.trainer import PeftTrainer


def test_settings_take_their_defaults_from_the_options_and_rf_trains_defaults():
    s = run.Settings.of(base="b", out="o", later_argument=1, rank=4)
    assert s.rank == 4 and not hasattr(s, "later_argument")
    for option in OPTIONS:
        if option.name != "rank":
            assert getattr(s, option.name) == option.default, option.name
    assert (s.epochs, s.lr, s.batch_size, s.max_len, s.seed) == (
        TRAIN_DEFAULTS.epochs, TRAIN_DEFAULTS.lr, TRAIN_DEFAULTS.batch_size,
        TRAIN_DEFAULTS.max_len, TRAIN_DEFAULTS.seed)


def test_rf_train_and_rf_doctor_read_the_same_defaults():
    from rf_core.commands import doctor, train

    flags = {p.name: p.default for p in train.cli.params}
    assert (flags["epochs"], flags["lr"], flags["batch_size"], flags["max_len"],
            flags["seed"]) == (2, 1e-4, 16, 2048, 0)
    assert flags["max_len"] == TRAIN_DEFAULTS.max_len
    assert {p.name: p.default for p in doctor.cli.params}["max_len"] == TRAIN_DEFAULTS.max_len


def _example(n: int) -> Encoded:
    return Encoded(0, [1] * n, 1, 1.0)


def _run(**fields) -> SimpleNamespace:
    said: list[str] = []
    proc = SimpleNamespace(world=1, rank=0, main=True, say=said.append)
    base = dict(proc=proc, state=run.fresh_state(), budget=64, checkpointing=False,
                model=None, said=said)
    return SimpleNamespace(**{**base, **fields})


def test_out_of_memory_halves_then_checkpoints_then_stops(monkeypatch):
    enabled = []
    monkeypatch.setattr(run.parts, "enable_checkpointing", enabled.append)
    r = _run()
    mbs = [[_example(3), _example(4)]]
    mbs = run.after_out_of_memory(r, 0, mbs)
    assert [len(mb) for mb in mbs] == [1, 1] and r.state["oom_retries"] == 1
    assert run.after_out_of_memory(r, 0, mbs) is mbs
    assert r.checkpointing is True and enabled == [None]
    with pytest.raises(RFError, match="gradient checkpointing on; lower --max-len"):
        run.after_out_of_memory(r, 0, mbs)
    assert r.said[0].startswith("step 1: CUDA out of memory in 1 micro-batch(es); retrying")
    distributed = _run()
    distributed.proc.world = 2
    with pytest.raises(RFError, match="smaller -o micro_batch_tokens than 64"):
        run.after_out_of_memory(distributed, 4, mbs)


def test_a_non_finite_step_is_skipped_and_too_many_stop_the_run():
    torch = pytest.importorskip("torch")

    weight = torch.nn.Parameter(torch.ones(2))
    optimizer = torch.optim.SGD([weight], lr=0.5)
    sched = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: 1.0)
    r = _run(params=[weight], optimizer=optimizer, sched=sched, limit=1,
             settings=SimpleNamespace(max_grad_norm=10.0))
    weight.grad = torch.tensor([1.0, 0.0])
    assert run.apply_update(r, 0, torch.tensor(2.5)) == 2.5
    assert weight.tolist() == [0.5, 1.0] and weight.grad is None
    weight.grad = torch.tensor([float("nan"), 0.0])
    run.apply_update(r, 1, torch.tensor(1.0))
    assert weight.tolist() == [0.5, 1.0] and r.state["skipped"] == 1
    assert "step 2: non-finite loss or gradient norm; step skipped (1 so far)" in r.said
    with pytest.raises(RFError, match="2 steps had a non-finite loss"):
        run.apply_update(r, 2, torch.tensor(float("inf")))


def test_a_run_with_no_applied_step_writes_nothing(tmp_path):
    partial = tmp_path / "out.partial"
    partial.mkdir()
    r = _run(partial=partial, steps=[[], []])
    r.total = 2
    r.state["skipped"] = 1
    run.check_learnt(r)
    r.state["skipped"] = 2
    with pytest.raises(RFError, match="no optimizer step was applied"):
        run.check_learnt(r)
    assert not partial.exists()


def test_prepare_output_refuses_an_existing_adapter_without_force(tmp_path):
    proc = SimpleNamespace(main=True)
    (tmp_path / "a").mkdir()
    (tmp_path / "a.partial").mkdir()
    with pytest.raises(RFError, match="pass --force"):
        run.prepare_output(run.Settings(base="b", out=str(tmp_path / "a")), proc)
    kept = run.prepare_output(run.Settings(base="b", out=str(tmp_path / "a"), force=True,
                                           resume=True), proc)
    assert kept == Path(tmp_path / "a.partial") and kept.is_dir()
    run.prepare_output(run.Settings(base="b", out=str(tmp_path / "a"), force=True), proc)
    assert not kept.exists()


QWEN_05B = {"num_hidden_layers": 24, "hidden_size": 896, "intermediate_size": 4864,
            "num_attention_heads": 14, "num_key_value_heads": 2, "vocab_size": 151936,
            "tie_word_embeddings": True}


def test_the_memory_plan_rf_doctor_gets():
    trainer = PeftTrainer()
    cpu = trainer.memory_plan(QWEN_05B, free_bytes=None, max_len=2048, **DEFAULTS)
    assert cpu["device"] == "cpu" and cpu["micro_batch_tokens"] == 4096
    assert (cpu["rank"], cpu["dropout"]) == (16, 0.15)
    gpu = trainer.memory_plan(QWEN_05B, free_bytes=80_000_000_000, max_len=2048,
                              **{**DEFAULTS, "dropout": 0.0})
    assert gpu["device"] == "cuda" and gpu["free_gb"] == 80.0 and gpu["dropout"] == 0.0
    assert gpu["grad_checkpointing"] is False and gpu["micro_batch_tokens"] > 4096
